//! Bearer tokens: one [`TokenCache`] per daemon in front of a [`TokenSource`].
//!
//! The cache keeps the current token, refreshes it in the background well before it
//! expires (at half its lifetime, or 5 minutes before, whichever is sooner) with a single
//! request in flight, and retries the source on 404/410/429/5xx and connection errors with
//! the documented backoff. Reads never wait on a refresh while the current token is valid.
//! Tokens are kept in [`Secret`], which never prints its value.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use tracing::{info, warn};

use super::Credential;

/// A secret string: `Debug` and `Display` show `<redacted>`.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }
    /// The value itself: only for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An access token and when it stops working.
#[derive(Clone, Debug)]
pub struct AccessToken {
    pub token: Secret,
    pub expires_on: SystemTime,
    /// When it was obtained, to refresh at half its lifetime.
    pub obtained: SystemTime,
}

/// Why no token could be had; `retryable` failures are tried again with backoff.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    pub message: String,
    pub retryable: bool,
}

impl TokenError {
    pub fn fatal(message: impl Into<String>) -> Self {
        TokenError {
            message: message.into(),
            retryable: false,
        }
    }
    pub fn transient(message: impl Into<String>) -> Self {
        TokenError {
            message: message.into(),
            retryable: true,
        }
    }
}

pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, TokenError>> + Send + 'a>>;

/// Somewhere tokens come from (an identity endpoint, a token exchange, a CLI).
pub trait TokenSource: Send + Sync + fmt::Debug + 'static {
    /// One attempt; the cache does the retrying.
    fn fetch(&self) -> TokenFuture<'_>;
    /// Secret-free description for logs.
    fn describe(&self) -> String;
}

/// Delays before each retry of a transient failure (IMDS guidance: about 0, 2, 6, 14, 30 s).
pub const DEFAULT_BACKOFF: &[Duration] = &[
    Duration::from_secs(2),
    Duration::from_secs(6),
    Duration::from_secs(14),
    Duration::from_secs(30),
];

/// The daemon's one token cache.
#[derive(Debug)]
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    current: Mutex<Option<AccessToken>>,
    /// Held while a request to the source is in flight: one at a time.
    fetching: tokio::sync::Mutex<()>,
    backoff: Vec<Duration>,
}

impl TokenCache {
    pub fn new(source: Box<dyn TokenSource>) -> Arc<Self> {
        Self::with_backoff(source, DEFAULT_BACKOFF.to_vec())
    }

    pub fn with_backoff(source: Box<dyn TokenSource>, backoff: Vec<Duration>) -> Arc<Self> {
        Arc::new(TokenCache {
            source,
            current: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            backoff,
        })
    }

    pub fn source(&self) -> &dyn TokenSource {
        self.source.as_ref()
    }

    /// A valid token: the cached one (starting a background refresh when it is due), or a
    /// new one when there is none or it has expired.
    pub async fn token(self: &Arc<Self>) -> Result<AccessToken, TokenError> {
        let now = SystemTime::now();
        let cached = self.current.lock().unwrap().clone();
        if let Some(t) = cached.filter(|t| t.expires_on > now + Duration::from_secs(5)) {
            if refresh_due(&t, now) && self.fetching.try_lock().is_ok() {
                let cache = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = cache.refresh(false).await {
                        warn!(
                            "background token refresh failed (the current token is still valid): {e}"
                        );
                    }
                });
            }
            return Ok(t);
        }
        self.refresh(true).await
    }

    /// Fetches a new token (one request in flight). `force`: even if another caller just
    /// refreshed, unless that token is fresh.
    async fn refresh(self: &Arc<Self>, waiting: bool) -> Result<AccessToken, TokenError> {
        let _guard = self.fetching.lock().await;
        let now = SystemTime::now();
        if let Some(t) = self.current.lock().unwrap().clone()
            && t.expires_on > now + Duration::from_secs(5)
            && (waiting || !refresh_due(&t, now))
        {
            return Ok(t);
        }
        let token = self.fetch_with_retries().await?;
        let life = token
            .expires_on
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        info!(
            "got a token from {} (valid for {}s)",
            self.source.describe(),
            life.as_secs()
        );
        *self.current.lock().unwrap() = Some(token.clone());
        Ok(token)
    }

    async fn fetch_with_retries(&self) -> Result<AccessToken, TokenError> {
        let mut delays = self.backoff.iter();
        loop {
            match self.source.fetch().await {
                Ok(t) => return Ok(t),
                Err(e) if e.retryable => match delays.next() {
                    Some(d) => {
                        warn!("token request failed ({e}); retrying in {}s", d.as_secs());
                        tokio::time::sleep(*d).await;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

/// Due for refresh at half its lifetime or 5 minutes before expiry, whichever comes first.
fn refresh_due(t: &AccessToken, now: SystemTime) -> bool {
    let life = t.expires_on.duration_since(t.obtained).unwrap_or_default();
    let margin = (life / 2).min(Duration::from_secs(300));
    t.expires_on <= now + margin
}

/// A credential whose requests carry `Authorization: Bearer <token>` from a [`TokenCache`].
#[derive(Debug, Clone)]
pub struct BearerCredential(pub Arc<TokenCache>);

impl Credential for BearerCredential {
    fn describe(&self) -> String {
        self.0.source().describe()
    }
    fn policy(&self) -> Option<Arc<dyn Policy>> {
        Some(Arc::new(BearerPolicy(self.0.clone())))
    }
    fn is_bearer(&self) -> bool {
        true
    }
    fn token_cache(&self) -> Option<Arc<TokenCache>> {
        Some(self.0.clone())
    }
}

/// Who a token names, from its (unverified) JWT claims; never the token itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenIdentity {
    pub object_id: Option<String>,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub audience: Option<String>,
}

impl TokenIdentity {
    /// Decodes the payload of a JWT; `None` when it is not one.
    pub fn from_jwt(token: &str) -> Option<Self> {
        use base64::Engine;
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let get = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Some(TokenIdentity {
            object_id: get("oid"),
            client_id: get("appid").or_else(|| get("azp")),
            tenant_id: get("tid"),
            audience: get("aud"),
        })
    }

    /// "object id X, client id Y, tenant Z, audience A" (missing claims left out).
    pub fn describe(&self) -> String {
        [
            ("object id", &self.object_id),
            ("client id", &self.client_id),
            ("tenant", &self.tenant_id),
            ("audience", &self.audience),
        ]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

#[derive(Debug)]
struct BearerPolicy(Arc<TokenCache>);

#[async_trait]
impl Policy for BearerPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let token = self.0.token().await.map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.message)
        })?;
        request.insert_header("authorization", format!("Bearer {}", token.token.expose()));
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Script {
        calls: Arc<AtomicU32>,
        /// Per call: Ok(lifetime in seconds) or Err(retryable).
        answers: Vec<Result<u64, bool>>,
    }

    impl TokenSource for Script {
        fn fetch(&self) -> TokenFuture<'_> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) as usize;
                match self.answers.get(n).cloned().unwrap_or(Ok(3600)) {
                    Ok(secs) => {
                        let now = SystemTime::now();
                        Ok(AccessToken {
                            token: Secret::new(format!("t{n}")),
                            expires_on: now + Duration::from_secs(secs),
                            obtained: now,
                        })
                    }
                    Err(retryable) => Err(TokenError {
                        message: format!("answer {n}"),
                        retryable,
                    }),
                }
            })
        }
        fn describe(&self) -> String {
            "script".into()
        }
    }

    fn cache(answers: Vec<Result<u64, bool>>) -> (Arc<TokenCache>, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let source = Script {
            calls: calls.clone(),
            answers,
        };
        let cache = TokenCache::with_backoff(Box::new(source), vec![Duration::from_millis(10); 4]);
        (cache, calls)
    }

    #[tokio::test]
    async fn retries_transient_failures_then_caches() {
        let (c, calls) = cache(vec![Err(true), Err(true), Ok(3600)]);
        let t = c.token().await.unwrap();
        assert_eq!(t.token.expose(), "t2");
        assert_eq!(c.token().await.unwrap().token.expose(), "t2");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn fatal_failures_are_not_retried() {
        let (c, calls) = cache(vec![Err(false), Ok(3600)]);
        assert_eq!(c.token().await.unwrap_err().message, "answer 0");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refreshes_in_the_background_while_the_token_is_valid() {
        // A 12 s token is due for refresh at half its life, 6 s before it expires.
        let (c, _) = cache(vec![Ok(12), Err(false), Ok(3600)]);
        assert_eq!(c.token().await.unwrap().token.expose(), "t0");
        tokio::time::sleep(Duration::from_millis(6100)).await; // 5.9 s left: due
        // The refresh fails in the background; the valid token is still served.
        assert_eq!(c.token().await.unwrap().token.expose(), "t0");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.token().await.unwrap().token.expose(), "t0");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(c.token().await.unwrap().token.expose(), "t2");
    }

    #[test]
    fn token_identity_comes_from_the_claims() {
        use base64::Engine;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.{}",
            enc("{}"),
            enc(r#"{"oid":"o1","appid":"c1","tid":"t1","aud":"https://storage.azure.com"}"#),
            enc("sig")
        );
        let id = TokenIdentity::from_jwt(&jwt).unwrap();
        assert_eq!(
            id.describe(),
            "object id o1, client id c1, tenant t1, audience https://storage.azure.com"
        );
        assert!(TokenIdentity::from_jwt("not-a-jwt").is_none());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("eyJhbGciOi");
        assert_eq!(format!("{s:?}"), "<redacted>");
    }
}
