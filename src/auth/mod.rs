//! Credential sources: how requests to the Blob service are authorized.
//!
//! Every source implements [`Credential`], which hands the storage layer one `azure_core`
//! pipeline policy (or none, for anonymous access). The storage and filesystem code never
//! see which source is in use, so new sources (managed identity, workload identity, ...)
//! slot in here alone. Secrets live in types whose `Debug` and `Display` print no secret.

mod sas;

use std::fmt::Debug;
use std::sync::Arc;

use azure_core::http::policies::Policy;

pub use sas::{SasError, SasToken};

/// A way to authorize Blob requests.
pub trait Credential: Send + Sync + Debug {
    /// A one-line, secret-free description for logs ("SAS token (expires ...)").
    fn describe(&self) -> String;
    /// The policy that authorizes each request (run on every try), or `None`.
    fn policy(&self) -> Option<Arc<dyn Policy>>;
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
    /// A SAS if one was given, else anonymous.
    Auto,
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
}

/// Picks the credential for `mode` from the SAS candidates, in order of precedence.
pub fn resolve(
    mode: AuthMode,
    sas_candidates: impl IntoIterator<Item = Option<SasToken>>,
) -> Result<(Arc<dyn Credential>, &'static str), AuthError> {
    let sas = sas_candidates.into_iter().flatten().next();
    match (mode, sas) {
        (AuthMode::Anonymous, _) => Ok((Arc::new(Anonymous), "--auth anonymous")),
        (AuthMode::Sas | AuthMode::Auto, Some(sas)) => {
            sas.validate()?;
            Ok((Arc::new(sas), "a SAS token was given"))
        }
        (AuthMode::Sas, None) => Err(AuthError::MissingSas),
        (AuthMode::Auto, None) => Ok((Arc::new(Anonymous), "no credential was given")),
    }
}
