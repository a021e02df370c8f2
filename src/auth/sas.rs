//! Shared access signatures: a query string appended to every request URL.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Credential;

/// A SAS query string (`sv=..&sp=rl&sig=..`), kept without its leading `?`.
/// Its `Debug` shows only the non-secret fields.
#[derive(Clone)]
pub struct SasToken(Arc<str>);

/// What is wrong with a SAS, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum SasError {
    #[error("the SAS token has no 'sig=' field: copy the whole token (sv=...&sig=...)")]
    NoSignature,
    #[error("the SAS token expired at {0}: create a new one with a later expiry (se=)")]
    Expired(String),
    #[error(
        "the SAS token lacks read permission (sp={0}): create one with at least 'r' and 'l' (sp=rl)"
    )]
    NoRead(String),
}

impl SasToken {
    pub fn new(text: &str) -> Self {
        SasToken(Arc::from(text.trim().trim_start_matches('?')))
    }

    /// The query string to append, without `?`.
    pub fn query(&self) -> &str {
        &self.0
    }

    fn field(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.0.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// Expiry (`se`), when it parses.
    pub fn expiry(&self) -> Option<OffsetDateTime> {
        let se = self.field("se")?;
        OffsetDateTime::parse(&se, &Rfc3339).ok().or_else(|| {
            let date = time::Date::parse(
                &se,
                time::macros::format_description!("[year]-[month]-[day]"),
            );
            date.ok().map(|d| d.midnight().assume_utc())
        })
    }

    /// Refuses tokens that cannot work: unsigned, expired, or without read permission.
    pub fn validate(&self) -> Result<(), SasError> {
        if self.field("sig").is_none() {
            return Err(SasError::NoSignature);
        }
        if let Some(exp) = self.expiry()
            && exp < OffsetDateTime::now_utc()
        {
            return Err(SasError::Expired(exp.format(&Rfc3339).unwrap_or_default()));
        }
        if let Some(sp) = self.field("sp")
            && !sp.contains('r')
        {
            return Err(SasError::NoRead(sp));
        }
        Ok(())
    }
}

impl fmt::Debug for SasToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SasToken(sp={:?}, se={:?}, sig=<redacted>)",
            self.field("sp"),
            self.field("se")
        )
    }
}

impl Credential for SasToken {
    fn describe(&self) -> String {
        match self.field("se") {
            Some(se) => format!("SAS token (expires {se})"),
            None => "SAS token".to_string(),
        }
    }
    fn policy(&self) -> Option<Arc<dyn Policy>> {
        Some(Arc::new(SasPolicy(self.clone())))
    }
}

/// Appends the SAS to each request's query string.
#[derive(Debug)]
struct SasPolicy(SasToken);

#[async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        // Runs on every try of the same request: append the SAS once.
        let url = request.url_mut();
        let query = match url.query() {
            Some(q) if q.ends_with(self.0.query()) => q.to_string(),
            Some(q) if !q.is_empty() => format!("{q}&{}", self.0.query()),
            _ => self.0.query().to_string(),
        };
        url.set_query(Some(&query));
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_signature() {
        let t = SasToken::new("?sv=2020-08-04&sp=rl&se=2099-01-01T00:00:00Z&sig=SECRET");
        assert!(!format!("{t:?}").contains("SECRET"));
        assert!(!t.describe().contains("SECRET"));
        t.validate().unwrap();
    }

    #[test]
    fn refuses_expired_unsigned_and_unreadable() {
        let expired = SasToken::new("sv=1&sp=rl&se=2001-01-01T00:00:00Z&sig=x");
        assert!(matches!(expired.validate(), Err(SasError::Expired(_))));
        let date_only = SasToken::new("sv=1&sp=rl&se=2001-01-01&sig=x");
        assert!(matches!(date_only.validate(), Err(SasError::Expired(_))));
        assert!(matches!(
            SasToken::new("sv=1&sp=rl").validate(),
            Err(SasError::NoSignature)
        ));
        assert!(matches!(
            SasToken::new("sv=1&sp=w&sig=x").validate(),
            Err(SasError::NoRead(_))
        ));
    }
}
