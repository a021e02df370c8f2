//! Parsing of the List Blobs XML answer (`restype=container&comp=list`).

use std::collections::HashMap;
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use super::{BlobInfo, ListPage, StoreError};

#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: BlobsXml,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct BlobsXml {
    #[serde(rename = "$value", default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
enum Item {
    Blob(BlobXml),
    BlobPrefix(PrefixXml),
}

#[derive(Deserialize)]
struct NameXml {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

impl NameXml {
    /// Names holding characters invalid in XML come percent-encoded with `Encoded="true"`.
    fn decoded(self) -> String {
        if self.encoded.as_deref() == Some("true") {
            percent_decode_str(&self.text)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            self.text
        }
    }
}

#[derive(Deserialize)]
struct BlobXml {
    #[serde(rename = "Name")]
    name: NameXml,
    #[serde(rename = "Properties")]
    properties: PropertiesXml,
    #[serde(rename = "Metadata", default)]
    metadata: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct PropertiesXml {
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Etag", default)]
    etag: Option<String>,
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
}

#[derive(Deserialize)]
struct PrefixXml {
    #[serde(rename = "Name")]
    name: NameXml,
}

/// Whether metadata marks a directory (`hdi_isfolder=true`, any case).
pub fn is_folder_metadata<'a>(mut pairs: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    pairs.any(|(k, v)| k.eq_ignore_ascii_case("hdi_isfolder") && v.eq_ignore_ascii_case("true"))
}

/// Parses an RFC 7231 date; the epoch when absent or malformed.
pub fn parse_http_date(text: Option<&str>) -> SystemTime {
    text.and_then(|t| httpdate::parse_http_date(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Parses one page of a hierarchical listing.
pub fn parse_list_page(xml: &str) -> Result<ListPage, StoreError> {
    let doc: EnumerationResults = quick_xml::de::from_str(xml)
        .map_err(|e| StoreError::Protocol(format!("List Blobs XML: {e}")))?;
    let mut page = ListPage {
        next_marker: doc.next_marker.filter(|m| !m.is_empty()),
        ..ListPage::default()
    };
    for item in doc.blobs.items {
        match item {
            Item::Blob(b) => {
                let size = b.properties.content_length.unwrap_or(0);
                let is_folder_marker = size == 0
                    && b.metadata.as_ref().is_some_and(|m| {
                        is_folder_metadata(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    });
                page.blobs.push(BlobInfo {
                    name: b.name.decoded(),
                    size,
                    etag: b.properties.etag.unwrap_or_default(),
                    last_modified: parse_http_date(b.properties.last_modified.as_deref()),
                    is_folder_marker,
                });
            }
            Item::BlobPrefix(p) => page.prefixes.push(p.name.decoded()),
        }
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://x/" ContainerName="c">
  <Prefix>d/</Prefix><MaxResults>5000</MaxResults><Delimiter>/</Delimiter>
  <Blobs>
    <Blob><Name>d/a &amp; b.txt</Name><Properties><Last-Modified>Tue, 24 Nov 2026 01:14:33 GMT</Last-Modified><Etag>"0x1"</Etag><Content-Length>12</Content-Length><BlobType>BlockBlob</BlobType></Properties><Metadata/></Blob>
    <BlobPrefix><Name>d/sub/</Name></BlobPrefix>
    <Blob><Name>d/marker</Name><Properties><Etag>0x2</Etag><Content-Length>0</Content-Length></Properties><Metadata><hdi_isfolder>true</hdi_isfolder></Metadata></Blob>
    <Blob><Name Encoded="true">d/%EF%BF%BE</Name><Properties><Content-Length>1</Content-Length></Properties></Blob>
  </Blobs>
  <NextMarker>abc</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn parses_blobs_prefixes_markers_and_continuation() {
        let page = parse_list_page(PAGE).unwrap();
        assert_eq!(page.blobs.len(), 3);
        assert_eq!(page.blobs[0].name, "d/a & b.txt");
        assert_eq!(page.blobs[0].size, 12);
        assert_eq!(page.blobs[0].etag, "\"0x1\"");
        assert!(page.blobs[0].last_modified > SystemTime::UNIX_EPOCH);
        assert!(!page.blobs[0].is_folder_marker);
        assert!(page.blobs[1].is_folder_marker);
        assert_eq!(page.blobs[2].name, "d/\u{FFFE}");
        assert_eq!(page.prefixes, vec!["d/sub/".to_string()]);
        assert_eq!(page.next_marker.as_deref(), Some("abc"));
    }

    #[test]
    fn prefix_before_blobs_is_kept() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><EnumerationResults><Prefix>long/</Prefix><Marker/><Blobs><BlobPrefix><Name>long/p/</Name></BlobPrefix><Blob><Name>long/a</Name><Properties><Content-Length>1</Content-Length></Properties></Blob><Blob><Name>long/p</Name><Properties><Content-Length>3</Content-Length></Properties></Blob></Blobs><NextMarker/></EnumerationResults>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(page.prefixes, vec!["long/p/".to_string()]);
        assert_eq!(page.blobs.len(), 2);
    }

    #[test]
    fn empty_listing_has_no_marker() {
        let xml = r#"<?xml version="1.0"?><EnumerationResults><Blobs /><NextMarker /></EnumerationResults>"#;
        let page = parse_list_page(xml).unwrap();
        assert!(page.blobs.is_empty() && page.prefixes.is_empty());
        assert!(page.next_marker.is_none());
    }
}
