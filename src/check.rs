//! The `check` command: runs what a mount needs, step by step, and explains the first
//! failure with its cause and fix.
//!
//! Steps: parse SOURCE and pick the credential; for token credentials, get a token and say
//! whom it names (claims, never the token); list the container under the prefix; read one
//! byte range of the first blob. Each step prints one `[ ok ]`, `[FAIL]` or `[skip]` line;
//! a failure adds the cause, the fix and the service's request id. Exit 0 when all pass.

use std::time::SystemTime;

use crate::auth::token::TokenIdentity;
use crate::cli::CheckArgs;
use crate::mount::source_and_credential;
use crate::source::ContainerSource;
use crate::store::diagnose::{diagnose, request_id};
use crate::store::{AzureBlobStore, BlobStore, StoreError, StoreOptions};

fn ok(step: &str, detail: &str) {
    println!("[ ok ] {step}: {detail}");
}

fn skip(step: &str, why: &str) {
    println!("[skip] {step}: {why}");
}

/// Prints a failed step with its explanation; returns the exit code.
fn fail(
    step: &str,
    err: &StoreError,
    source: &ContainerSource,
    who: Option<&TokenIdentity>,
) -> i32 {
    let what = source.display_name();
    let d = diagnose(err, &what);
    println!("[FAIL] {step}: {err}");
    println!("       cause: {}", d.cause);
    println!("       fix:   {}", d.fix);
    if err.code() == Some("AuthorizationPermissionMismatch") {
        let assignee = who
            .and_then(|w| w.object_id.clone())
            .unwrap_or_else(|| "<principal id of the identity>".to_string());
        println!(
            "       grant: az role assignment create --role \"Storage Blob Data Reader\" --assignee-object-id {assignee} --assignee-principal-type ServicePrincipal --scope \"/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Storage/storageAccounts/{}/blobServices/default/containers/{}\"",
            source.account, source.container
        );
    }
    if let Some(who) = who {
        println!("       identity: {}", who.describe());
    }
    if let Some(id) = request_id(err) {
        println!("       x-ms-request-id: {id}");
    }
    1
}

/// Runs `blobmount check`; returns the process exit code.
pub fn run(args: CheckArgs) -> i32 {
    crate::daemon::init_logging("error");
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(check(args)),
        Err(e) => {
            println!("[FAIL] runtime: {e}");
            1
        }
    }
}

async fn check(args: CheckArgs) -> i32 {
    let (source, credential, why) = match source_and_credential(&args.source, &args.auth) {
        Ok(found) => found,
        Err(message) => {
            println!("[FAIL] source and credential: {message}");
            return 1;
        }
    };
    let prefix = if source.prefix.is_empty() {
        "(none)".to_string()
    } else {
        source.prefix.clone()
    };
    ok(
        "source",
        &format!(
            "account {}, container {}, prefix {prefix}",
            source.account, source.container
        ),
    );
    ok("credential", &format!("{} ({why})", credential.describe()));
    let mut who = None;
    if let Some(cache) = credential.token_cache() {
        match cache.token().await {
            Ok(token) => {
                let id = TokenIdentity::from_jwt(token.token.expose()).unwrap_or_default();
                let left = token
                    .expires_on
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .as_secs();
                ok("token", &format!("{} (expires in {left} s)", id.describe()));
                who = Some(id);
            }
            Err(e) => return fail("token", &StoreError::Credential(e.message), &source, None),
        }
    }
    let store = match AzureBlobStore::new(source.clone(), credential, &StoreOptions::default()) {
        Ok(store) => store,
        Err(e) => return fail("client", &e, &source, who.as_ref()),
    };
    let blob = match store.first_blob(&source.prefix).await {
        Ok(Some(blob)) => {
            ok(
                "list",
                &format!("first blob: {} ({} bytes)", blob.name, blob.size),
            );
            blob
        }
        Ok(None) => {
            ok("list", "the container holds no blob under this prefix");
            skip("read", "nothing to read");
            return 0;
        }
        Err(e) => {
            let code = fail("list", &e, &source, who.as_ref());
            skip("read", "the listing failed");
            return code;
        }
    };
    let range = 0..blob.size.min(4096);
    match store.read(&blob.name, range.clone(), &blob.etag).await {
        Ok(bytes) => {
            ok("read", &format!("{} bytes of {}", bytes.len(), blob.name));
            0
        }
        Err(e) => fail("read", &e, &source, who.as_ref()),
    }
}
