//! The rules that turn blob names into POSIX names (docs/SEMANTICS.md, "Names").
//!
//! A blob name is split on `/`; each segment must be a usable file name. Segments that are
//! empty (from `//` or a trailing `/`), `.`, `..`, longer than 255 bytes or holding a NUL
//! cannot be, and the blobs under them are skipped (with one warning each) without
//! disturbing their siblings.

/// Longest file name Linux accepts, in bytes.
pub const NAME_MAX: usize = 255;

/// Why a segment cannot be a file name, or `None` when it can.
pub fn invalid_reason(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("it has an empty path segment ('//' or a trailing '/')")
    } else if segment == "." || segment == ".." {
        Some("it has a '.' or '..' path segment")
    } else if segment.len() > NAME_MAX {
        Some("a path segment is longer than 255 bytes")
    } else if segment.contains('\0') {
        Some("a path segment contains a NUL byte")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_names_pass_and_others_do_not() {
        for ok in [
            "a",
            "a b",
            "#%?+",
            "é日本",
            "...",
            ".hidden",
            &"x".repeat(255),
        ] {
            assert_eq!(invalid_reason(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", &"x".repeat(256), "a\0b"] {
            assert!(invalid_reason(bad).is_some(), "{bad:?}");
        }
        // 255 bytes, not characters: 128 two-byte characters are too long.
        assert!(invalid_reason(&"é".repeat(128)).is_some());
    }
}
