//! Credential sources: how requests to the Blob service are authorized.
//!
//! Every source implements [`Credential`], which hands the storage layer one `azure_core`
//! pipeline policy (or none, for anonymous access). The storage and filesystem code never
//! see which source is in use, so new sources (managed identity, workload identity, ...)
//! slot in here alone. Secrets live in types whose `Debug` and `Display` print no secret.

pub mod managed_identity;
mod sas;
pub mod token;

use std::fmt::Debug;
use std::sync::Arc;

use azure_core::http::policies::Policy;

pub use managed_identity::{IdentityEnv, IdentitySelector, ManagedIdentity};
pub use sas::{SasError, SasToken};
pub use token::{BearerCredential, TokenCache};

/// A way to authorize Blob requests.
pub trait Credential: Send + Sync + Debug {
    /// A one-line, secret-free description for logs ("SAS token (expires ...)").
    fn describe(&self) -> String;
    /// The policy that authorizes each request (run on every try), or `None`.
    fn policy(&self) -> Option<Arc<dyn Policy>>;
    /// Whether requests carry a bearer token, which must only travel over https.
    fn is_bearer(&self) -> bool {
        false
    }
    /// The token cache behind a bearer credential.
    fn token_cache(&self) -> Option<Arc<TokenCache>> {
        None
    }
}

/// No credential: the container must allow public read access.
#[derive(Debug)]
pub struct Anonymous;

impl Credential for Anonymous {
    fn describe(&self) -> String {
        "anonymous (the container must allow public read access)".to_string()
    }
    fn policy(&self) -> Option<Arc<dyn Policy>> {
        None
    }
}

/// What the user asked for with `--auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// A SAS if one was given, else managed identity if an identity endpoint is configured
    /// (or --client-id/--object-id/--resource-id/--identity-endpoint given), else anonymous.
    Auto,
    /// The machine's managed identity (IMDS, Azure ML or App Service endpoint).
    ManagedIdentity,
    /// A shared access signature (`--sas-token`, `AZURE_STORAGE_SAS_TOKEN` or SOURCE's query).
    Sas,
    /// No credential: public containers only.
    Anonymous,
}

/// Why no credential could be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "--auth sas needs a SAS token: pass --sas-token, set AZURE_STORAGE_SAS_TOKEN, or append it to SOURCE"
    )]
    MissingSas,
    #[error(transparent)]
    Sas(#[from] SasError),
    #[error("managed identity: {0}")]
    Identity(String),
}

/// How to reach and select a managed identity (from flags and the environment).
#[derive(Clone, Debug)]
pub struct IdentityOptions {
    pub endpoint: Option<String>,
    pub selector: IdentitySelector,
    pub env: IdentityEnv,
}

impl IdentityOptions {
    /// Whether anything points at a managed identity.
    fn configured(&self) -> bool {
        self.endpoint.is_some()
            || self.selector != IdentitySelector::System
            || self.env.has_endpoint()
    }

    fn credential(&self) -> Result<Arc<dyn Credential>, AuthError> {
        let source = ManagedIdentity::new(&self.env, self.endpoint.clone(), self.selector.clone())
            .map_err(|e| AuthError::Identity(e.message))?;
        Ok(Arc::new(BearerCredential(TokenCache::new(Box::new(
            source,
        )))))
    }
}

/// Picks the credential for `mode`: SAS candidates in order of precedence, then identity.
pub fn resolve(
    mode: AuthMode,
    sas_candidates: impl IntoIterator<Item = Option<SasToken>>,
    identity: &IdentityOptions,
) -> Result<(Arc<dyn Credential>, &'static str), AuthError> {
    let sas = sas_candidates.into_iter().flatten().next();
    match (mode, sas) {
        (AuthMode::Anonymous, _) => Ok((Arc::new(Anonymous), "--auth anonymous")),
        (AuthMode::ManagedIdentity, _) => Ok((identity.credential()?, "--auth managed-identity")),
        (AuthMode::Sas | AuthMode::Auto, Some(sas)) => {
            sas.validate()?;
            Ok((Arc::new(sas), "a SAS token was given"))
        }
        (AuthMode::Sas, None) => Err(AuthError::MissingSas),
        (AuthMode::Auto, None) if identity.configured() => Ok((
            identity.credential()?,
            "no SAS was given and an identity endpoint is configured",
        )),
        (AuthMode::Auto, None) => Ok((Arc::new(Anonymous), "no credential was given")),
    }
}
