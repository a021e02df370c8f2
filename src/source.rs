//! The SOURCE argument: which container (and which prefix inside it) to mount.
//!
//! Owns parsing and validation of container URLs in both styles:
//! virtual-host (`https://<account>.blob.core.windows.net/<container>[/<prefix>]`) and
//! path-style for the emulator (`http://127.0.0.1:10000/<account>/<container>[/<prefix>]`).
//! A SAS found in the query string is split off so that the URL itself never carries a secret.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use thiserror::Error;
use url::Url;

use crate::auth::SasToken;

/// A parsed container location. `prefix` is either empty or ends with `/`.
#[derive(Clone, Debug)]
pub struct ContainerSource {
    /// `scheme://host[:port][/<account>]/<container>` with no query, no trailing slash.
    container_url: Url,
    pub account: String,
    pub container: String,
    pub prefix: String,
}

/// Why a SOURCE was refused. Each message names the problem and the fix.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error(
        "SOURCE '{0}' is not a URL: give https://<account>.blob.core.windows.net/<container>[/<prefix>]"
    )]
    NotAUrl(String),
    #[error("SOURCE scheme '{0}' is not supported: use https:// (or http:// for a local emulator)")]
    Scheme(String),
    #[error(
        "SOURCE '{0}' names no container: give https://<account>.blob.core.windows.net/<container>"
    )]
    NoContainer(String),
    #[error(
        "container name '{0}' is invalid: use 3-63 lowercase letters, digits and single '-' (Azure's rule)"
    )]
    BadContainer(String),
    #[error("SOURCE prefix '{0}' is invalid: {1}")]
    BadPrefix(String, &'static str),
}

impl ContainerSource {
    /// Parses SOURCE, returning the location and any SAS found in its query string.
    pub fn parse(text: &str) -> Result<(Self, Option<SasToken>), SourceError> {
        let url = Url::parse(text).map_err(|_| SourceError::NotAUrl(redact_query(text)))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(SourceError::Scheme(url.scheme().to_string()));
        }
        let host = url.host_str().unwrap_or_default().to_string();
        let segments: Vec<String> = url
            .path_segments()
            .map(|s| s.map(percent_decode).collect())
            .unwrap_or_default();
        let path_style = is_path_style(&host, url.port());
        let (account, rest) = if path_style {
            match segments.split_first() {
                Some((a, rest)) if !a.is_empty() => (a.clone(), rest.to_vec()),
                _ => return Err(SourceError::NoContainer(redact_query(text))),
            }
        } else {
            (
                host.split('.').next().unwrap_or_default().to_string(),
                segments,
            )
        };
        let (container, prefix_parts) = match rest.split_first() {
            Some((c, p)) if !c.is_empty() => (c.clone(), p.to_vec()),
            _ => return Err(SourceError::NoContainer(redact_query(text))),
        };
        validate_container(&container)?;
        let prefix = build_prefix(&prefix_parts)?;
        let mut container_url = url.clone();
        container_url.set_query(None);
        container_url.set_fragment(None);
        let base_path = if path_style {
            format!(
                "/{}/{}",
                encode_segment(&account),
                encode_segment(&container)
            )
        } else {
            format!("/{}", encode_segment(&container))
        };
        container_url.set_path(&base_path);
        let sas = url.query().filter(|q| !q.is_empty()).map(SasToken::new);
        Ok((
            ContainerSource {
                container_url,
                account,
                container,
                prefix,
            },
            sas,
        ))
    }

    /// The container URL (no query): base for every request.
    pub fn container_url(&self) -> &Url {
        &self.container_url
    }

    /// The URL of one blob, every path segment escaped (`.` and `..` too, so that no
    /// URL normalization can change which blob is meant).
    pub fn blob_url(&self, blob_name: &str) -> Url {
        let mut url = self.container_url.clone();
        let mut path = url.path().to_string();
        for seg in blob_name.split('/') {
            path.push('/');
            match seg {
                "." => path.push_str("%2E"),
                ".." => path.push_str("%2E%2E"),
                _ => path.push_str(&encode_segment(seg)),
            }
        }
        url.set_path(&path);
        url
    }

    /// A display form safe for logs and mount tables: no query, no secret.
    pub fn display_name(&self) -> String {
        format!(
            "{}/{}",
            self.container_url,
            self.prefix.trim_end_matches('/')
        )
        .trim_end_matches('/')
        .to_string()
    }
}

/// Hosts addressed path-style (the account is the first path segment): an IP address,
/// localhost, or any host with an explicit port that is not an Azure blob host (emulators).
fn is_path_style(host: &str, port: Option<u16>) -> bool {
    host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok()
        || host.starts_with('[')
        || (port.is_some() && !host.contains(".blob."))
}

fn validate_container(name: &str) -> Result<(), SourceError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok = (3..=63).contains(&name.len())
        && ok_chars
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    // `$root` and `$web` are the two special containers Azure allows.
    if ok || name == "$root" || name == "$web" {
        Ok(())
    } else {
        Err(SourceError::BadContainer(name.to_string()))
    }
}

fn build_prefix(parts: &[String]) -> Result<String, SourceError> {
    let parts: Vec<&String> = match parts.split_last() {
        Some((last, init)) if last.is_empty() => init.iter().collect(),
        _ => parts.iter().collect(),
    };
    let mut prefix = String::new();
    for p in &parts {
        if p.is_empty() || p.as_str() == "." || p.as_str() == ".." {
            let joined = parts
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("/");
            return Err(SourceError::BadPrefix(
                joined,
                "it has an empty, '.' or '..' segment; give a plain path such as data/train",
            ));
        }
        prefix.push_str(p);
        prefix.push('/');
    }
    Ok(prefix)
}

fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Everything but RFC 3986 unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Escapes one path segment.
pub fn encode_segment(seg: &str) -> String {
    utf8_percent_encode(seg, SEGMENT).to_string()
}

/// Drops a query string (which may hold a SAS) from text shown to users.
fn redact_query(text: &str) -> String {
    match text.split_once('?') {
        Some((head, _)) => format!("{head}?<query removed>"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_host_with_prefix() {
        let (s, sas) =
            ContainerSource::parse("https://acct.blob.core.windows.net/data/train/images/")
                .unwrap();
        assert_eq!(s.account, "acct");
        assert_eq!(s.container, "data");
        assert_eq!(s.prefix, "train/images/");
        assert_eq!(
            s.container_url().as_str(),
            "https://acct.blob.core.windows.net/data"
        );
        assert!(sas.is_none());
    }

    #[test]
    fn path_style_with_sas() {
        let (s, sas) =
            ContainerSource::parse("http://127.0.0.1:10000/devstoreaccount1/c01?sv=1&sig=abc")
                .unwrap();
        assert_eq!(s.account, "devstoreaccount1");
        assert_eq!(s.container, "c01");
        assert_eq!(s.prefix, "");
        assert_eq!(sas.unwrap().query(), "sv=1&sig=abc");
        assert!(!s.container_url().as_str().contains("sig"));
    }

    #[test]
    fn a_named_emulator_host_with_a_port_is_path_style() {
        let (s, _) = ContainerSource::parse("http://azurite:10000/devstoreaccount1/c01/p").unwrap();
        assert_eq!(
            (s.account.as_str(), s.container.as_str()),
            ("devstoreaccount1", "c01")
        );
        assert_eq!(s.prefix, "p/");
    }

    #[test]
    fn blob_url_escapes_segments() {
        let (s, _) = ContainerSource::parse("http://127.0.0.1:1/a/cont").unwrap();
        let u = s.blob_url("dir x/a#b%c?d+e/é");
        assert_eq!(u.path(), "/a/cont/dir%20x/a%23b%25c%3Fd%2Be/%C3%A9");
    }

    #[test]
    fn bad_sources_are_refused_with_a_fix() {
        for bad in [
            "not a url",
            "ftp://x/y",
            "https://acct.blob.core.windows.net/",
            "https://acct.blob.core.windows.net/AB",
            "https://acct.blob.core.windows.net/ok1/a//b",
            "https://acct.blob.core.windows.net/ok1/../b",
        ] {
            let err = ContainerSource::parse(bad).unwrap_err().to_string();
            assert!(err.contains(':'), "{err}");
        }
        let err = ContainerSource::parse("nope?sig=secret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
