//! Removal of secrets from text that may reach a log, an error or a panic message.
//!
//! Error texts from lower layers (reqwest, azure_core) can quote a request URL, and a URL
//! carrying a SAS holds its signature in `sig=`. [`scrub`] blanks every such value.

/// Query fields whose values are secrets or name a secret.
const SECRET_FIELDS: &[&str] = &[
    "sig=",
    "signature=",
    "code=",
    "client_secret=",
    "access_token=",
];

/// Returns `text` with the value of every secret query field replaced by `REDACTED`.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for field in SECRET_FIELDS {
            if starts_with_ignore_case(rest, field) && at_field_start(text, rest) {
                out.push_str(&rest[..field.len()]);
                out.push_str("REDACTED");
                let value_len = rest[field.len()..]
                    .find(|c: char| {
                        c == '&' || c == ')' || c == '"' || c == '\'' || c.is_whitespace()
                    })
                    .unwrap_or(rest.len() - field.len());
                rest = &rest[field.len() + value_len..];
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A field starts the text or follows `?`, `&` or a separator (not the middle of a word).
fn at_field_start(whole: &str, rest: &str) -> bool {
    let pos = whole.len() - rest.len();
    pos == 0
        || matches!(
            whole.as_bytes()[pos - 1],
            b'?' | b'&' | b' ' | b'(' | b'"' | b'\''
        )
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn blanks_signatures_in_urls() {
        let t = "error sending request for url (http://h/c/b?sv=1&sig=abc%2Bdef&se=2)";
        let s = scrub(t);
        assert!(!s.contains("abc"), "{s}");
        assert!(s.contains("sig=REDACTED&se=2"), "{s}");
        assert_eq!(scrub("sig=x"), "sig=REDACTED");
        assert_eq!(scrub("design=keep"), "design=keep");
    }
}
