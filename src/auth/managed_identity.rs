//! Managed identity: tokens from the machine's identity endpoint, in its three dialects.
//!
//! - Azure VM / VMSS / AKS node: IMDS (`Metadata: true`, `client_id` / `object_id` /
//!   `msi_res_id` for a user-assigned identity);
//! - Azure ML compute: `MSI_ENDPOINT` + `MSI_SECRET` (`secret` header, `clientid`, defaulting
//!   to `DEFAULT_IDENTITY_CLIENT_ID`);
//! - App Service / Container Apps / Functions: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`.
//!
//! `--identity-endpoint` (or `BLOBMOUNT_IDENTITY_ENDPOINT`) replaces the address, so tests
//! can point it at a local server. The SDK's own credential refuses Azure ML and hard-codes
//! the IMDS address, hence this source.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::token::{AccessToken, Secret, TokenError, TokenFuture, TokenSource};

/// The audience of Azure Storage.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com/";
const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Which user-assigned identity to use; `System` for the system-assigned one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySelector {
    System,
    ClientId(String),
    ObjectId(String),
    ResourceId(String),
}

/// The endpoint dialect, with what it needs.
#[derive(Clone, Debug)]
pub enum Dialect {
    Imds,
    AzureMl { secret: Secret },
    AppService { header: Secret },
}

/// A managed identity endpoint.
#[derive(Debug)]
pub struct ManagedIdentity {
    dialect: Dialect,
    endpoint: url::Url,
    selector: IdentitySelector,
    http: reqwest::Client,
}

/// What the environment says about identity endpoints (a testable copy of it).
#[derive(Clone, Debug, Default)]
pub struct IdentityEnv {
    pub msi_endpoint: Option<String>,
    pub msi_secret: Option<String>,
    pub default_client_id: Option<String>,
    pub identity_endpoint: Option<String>,
    pub identity_header: Option<String>,
}

impl IdentityEnv {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        IdentityEnv {
            msi_endpoint: var("MSI_ENDPOINT"),
            msi_secret: var("MSI_SECRET"),
            default_client_id: var("DEFAULT_IDENTITY_CLIENT_ID"),
            identity_endpoint: var("IDENTITY_ENDPOINT"),
            identity_header: var("IDENTITY_HEADER"),
        }
    }

    /// Whether a non-IMDS identity endpoint is configured.
    pub fn has_endpoint(&self) -> bool {
        (self.msi_endpoint.is_some() && self.msi_secret.is_some())
            || (self.identity_endpoint.is_some() && self.identity_header.is_some())
    }
}

impl ManagedIdentity {
    /// Picks the dialect from the environment: App Service, then Azure ML, else IMDS.
    pub fn new(
        env: &IdentityEnv,
        endpoint_override: Option<String>,
        selector: IdentitySelector,
    ) -> Result<Self, TokenError> {
        let (dialect, endpoint, selector) = match env {
            IdentityEnv {
                identity_endpoint: Some(ep),
                identity_header: Some(h),
                ..
            } => (
                Dialect::AppService {
                    header: Secret::new(h.as_str()),
                },
                ep.clone(),
                selector,
            ),
            IdentityEnv {
                msi_endpoint: Some(ep),
                msi_secret: Some(s),
                ..
            } => {
                let selector = match (selector, &env.default_client_id) {
                    (IdentitySelector::System, Some(id)) => IdentitySelector::ClientId(id.clone()),
                    (IdentitySelector::ObjectId(_) | IdentitySelector::ResourceId(_), _) => {
                        return Err(TokenError::fatal(
                            "Azure ML compute selects a user-assigned identity by client id only: use --client-id",
                        ));
                    }
                    (s, _) => s,
                };
                (
                    Dialect::AzureMl {
                        secret: Secret::new(s.as_str()),
                    },
                    ep.clone(),
                    selector,
                )
            }
            _ => (Dialect::Imds, IMDS_ENDPOINT.to_string(), selector),
        };
        let http = reqwest::Client::builder()
            .no_proxy() // the identity endpoint must never go through a proxy
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| TokenError::fatal(format!("cannot build the HTTP client: {e}")))?;
        let endpoint = endpoint_override.unwrap_or(endpoint);
        let endpoint = url::Url::parse(&endpoint).map_err(|_| {
            TokenError::fatal(format!(
                "the identity endpoint '{endpoint}' is not a URL: give e.g. http://127.0.0.1:8080/token"
            ))
        })?;
        Ok(ManagedIdentity {
            dialect,
            endpoint,
            selector,
            http,
        })
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let (version, selector_param) = match self.dialect {
            Dialect::Imds => ("2018-02-01", ["client_id", "object_id", "msi_res_id"]),
            Dialect::AzureMl { .. } => ("2017-09-01", ["clientid", "", ""]),
            Dialect::AppService { .. } => {
                ("2019-08-01", ["client_id", "principal_id", "mi_res_id"])
            }
        };
        let mut query = vec![
            ("api-version", version.to_string()),
            ("resource", STORAGE_RESOURCE.to_string()),
        ];
        let chosen = match &self.selector {
            IdentitySelector::System => None,
            IdentitySelector::ClientId(v) => Some((selector_param[0], v)),
            IdentitySelector::ObjectId(v) => Some((selector_param[1], v)),
            IdentitySelector::ResourceId(v) => Some((selector_param[2], v)),
        };
        if let Some((k, v)) = chosen {
            query.push((k, v.clone()));
        }
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().extend_pairs(&query);
        let req = self.http.get(url);
        match &self.dialect {
            Dialect::Imds => req.header("Metadata", "true"),
            Dialect::AzureMl { secret } => req.header("secret", secret.expose()),
            Dialect::AppService { header } => req.header("X-IDENTITY-HEADER", header.expose()),
        }
    }

    async fn fetch_once(&self) -> Result<AccessToken, TokenError> {
        let rsp = self.request().send().await.map_err(|e| {
            // Nothing listening (connect failed) means no identity on this machine: not
            // worth the backoff. A dropped or slow answer may pass: retried.
            let connect = e.is_connect();
            let reason = e.without_url();
            if connect {
                TokenError::fatal(format!(
                    "no managed identity endpoint answers at {} ({reason})",
                    self.endpoint
                ))
            } else {
                TokenError::transient(format!(
                    "the managed identity endpoint at {} failed ({reason})",
                    self.endpoint
                ))
            }
        })?;
        let status = rsp.status().as_u16();
        let body = rsp.text().await.unwrap_or_default();
        if status != 200 {
            let message = format!(
                "the managed identity endpoint {} answered {status}: {}",
                self.endpoint,
                crate::redact::scrub(body.lines().next().unwrap_or_default())
            );
            return Err(TokenError {
                message,
                retryable: matches!(status, 404 | 410 | 429 | 500..=599),
            });
        }
        parse_token(&body)
    }
}

impl TokenSource for ManagedIdentity {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch_once())
    }

    fn describe(&self) -> String {
        let style = match self.dialect {
            Dialect::Imds => "IMDS",
            Dialect::AzureMl { .. } => "Azure ML",
            Dialect::AppService { .. } => "App Service",
        };
        let who = match &self.selector {
            IdentitySelector::System => "system-assigned".to_string(),
            IdentitySelector::ClientId(v) => format!("client id {v}"),
            IdentitySelector::ObjectId(v) => format!("object id {v}"),
            IdentitySelector::ResourceId(v) => format!("resource id {v}"),
        };
        format!("managed identity ({style} at {}, {who})", self.endpoint)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Parses an identity endpoint's answer. Numbers may be JSON strings, and `expires_on` may
/// be epoch seconds or a date string.
pub fn parse_token(body: &str) -> Result<AccessToken, TokenError> {
    let r: TokenResponse = serde_json::from_str(body).map_err(|e| {
        TokenError::fatal(format!(
            "the identity endpoint's answer is not a token: {e}"
        ))
    })?;
    let now = SystemTime::now();
    let as_u64 = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let from_date = |v: &serde_json::Value| {
        v.as_str().and_then(|s| {
            httpdate::parse_http_date(s).ok().or_else(|| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(SystemTime::from)
            })
        })
    };
    let expires_on = r
        .expires_on
        .as_ref()
        .and_then(|v| {
            as_u64(v)
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
                .or_else(|| from_date(v))
        })
        .or_else(|| {
            r.expires_in
                .as_ref()
                .and_then(as_u64)
                .map(|s| now + Duration::from_secs(s))
        })
        .ok_or_else(|| TokenError::fatal("the identity endpoint's token has no expiry"))?;
    Ok(AccessToken {
        token: Secret::new(r.access_token),
        expires_on,
        obtained: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_numbers_dates_and_expires_in() {
        let t =
            parse_token(r#"{"access_token":"a","expires_on":"4102444800","expires_in":"86399"}"#)
                .unwrap();
        assert_eq!(
            t.expires_on,
            SystemTime::UNIX_EPOCH + Duration::from_secs(4102444800)
        );
        let t = parse_token(r#"{"access_token":"a","expires_on":"2100-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(
            t.expires_on,
            SystemTime::UNIX_EPOCH + Duration::from_secs(4102444800)
        );
        let t = parse_token(r#"{"access_token":"a","expires_in":60}"#).unwrap();
        assert!(t.expires_on > SystemTime::now());
        assert!(parse_token(r#"{"access_token":"a"}"#).is_err());
    }

    #[test]
    fn dialect_follows_the_environment() {
        let ml = IdentityEnv {
            msi_endpoint: Some("http://127.0.0.1:1/msi".into()),
            msi_secret: Some("s".into()),
            default_client_id: Some("cid".into()),
            ..Default::default()
        };
        let mi = ManagedIdentity::new(&ml, None, IdentitySelector::System).unwrap();
        assert!(matches!(mi.dialect, Dialect::AzureMl { .. }));
        assert_eq!(mi.selector, IdentitySelector::ClientId("cid".into()));
        assert!(ManagedIdentity::new(&ml, None, IdentitySelector::ObjectId("o".into())).is_err());
        let imds =
            ManagedIdentity::new(&IdentityEnv::default(), None, IdentitySelector::System).unwrap();
        assert_eq!(imds.endpoint.as_str(), IMDS_ENDPOINT);
        assert!(
            !format!(
                "{:?}",
                ManagedIdentity::new(&ml, None, IdentitySelector::System).unwrap()
            )
            .contains("\"s\"")
        );
    }
}
