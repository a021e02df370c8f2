//! Turning a failed storage call into a cause and a fix a person can act on.
//!
//! One table, used by `mount` when it fails at start-up and by the filesystem's logs at run
//! time, so the same answer from the service always gets the same explanation.

use super::StoreError;

/// What went wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub cause: String,
    pub fix: String,
}

/// Explains `err`, met while reaching the container `what` (e.g. the SOURCE's display form).
pub fn diagnose(err: &StoreError, what: &str) -> Diagnosis {
    let d = |cause: String, fix: &str| Diagnosis {
        cause,
        fix: fix.to_string(),
    };
    match err {
        StoreError::Transport { endpoint, reason } => d(
            format!("cannot reach {endpoint} ({reason})"),
            "check the account name in SOURCE, DNS, proxy and firewall settings, and that the endpoint is up",
        ),
        StoreError::Credential(reason) if reason.contains("no managed identity endpoint answers") => d(
            format!("no managed identity is available on this machine ({reason})"),
            "run on Azure compute with a managed identity enabled (or set MSI_ENDPOINT/IDENTITY_ENDPOINT), or use another --auth",
        ),
        StoreError::Credential(reason) => d(
            format!("could not get a token ({reason})"),
            "check the identity selection (--client-id/--object-id/--resource-id) and that the identity is assigned to this machine",
        ),
        StoreError::NotFound { code, .. } if code == "ContainerNotFound" => d(
            format!("container not found: {what}"),
            "check the container name in SOURCE (names are case-sensitive), or create the container",
        ),
        StoreError::NotFound { code, .. } if code == "ResourceNotFound" => d(
            format!("account or container not found: {what}"),
            "check the account and container names in SOURCE",
        ),
        StoreError::NotFound { code, .. } => d(
            format!("not found ({code}): {what}"),
            "check the path in SOURCE",
        ),
        StoreError::Service { code, .. } if code == "AuthenticationFailed" => d(
            "the service refused the credential (AuthenticationFailed): the SAS or token is invalid, expired or signed for another account, or the clock is skewed".into(),
            "create a new SAS (or token) for this account with read and list permission (sp=rl), and check the machine's clock",
        ),
        StoreError::Service { code, .. } if code == "AuthorizationPermissionMismatch" => d(
            "the identity is authenticated but has no data-plane role on this container (AuthorizationPermissionMismatch)".into(),
            "assign the 'Storage Blob Data Reader' role to this identity on the container or account (Owner/Contributor are not enough), then wait a few minutes",
        ),
        StoreError::Service { code, .. } if code == "AuthorizationFailure" => d(
            "the request was refused by network rules, or the credential does not authorize it (AuthorizationFailure)".into(),
            "allow this machine's network (storage firewall, virtual network, private endpoint); with a SAS, check that it is for this account, unaltered, and grants read and list (sp=rl)",
        ),
        StoreError::Service {
            code, status: 403, ..
        } if code.starts_with("AuthorizationResourceTypeMismatch")
            || code.starts_with("AuthorizationServiceMismatch")
            || code.starts_with("AuthorizationPermission") =>
        {
            d(
                format!("the credential does not allow this operation ({code})"),
                "create a SAS for the blob service with resource types container and object (ss=b, srt=co) and permissions sp=rl",
            )
        }
        StoreError::Service {
            status: 401, code, ..
        } => d(
            format!("the request was not authenticated ({code}): the token is for the wrong audience, malformed, or missing"),
            "request the token for https://storage.azure.com/, or use a credential (--sas-token) if the container is not public",
        ),
        StoreError::Service {
            status: 403, code, ..
        } if code == "NoAuthenticationInformation" || code == "PublicAccessNotPermitted" => d(
            format!("the container is not public and no credential was given ({code})"),
            "pass a SAS with --sas-token or AZURE_STORAGE_SAS_TOKEN",
        ),
        StoreError::Service {
            status: 429 | 503, code, ..
        } => d(
            format!("the account is throttling requests ({code})"),
            "retry later; spread load over more accounts or reduce concurrency",
        ),
        StoreError::Service {
            status: 500..=599, code, ..
        } => d(
            format!("the service failed transiently ({code})"),
            "retry; if it persists, quote the request id to Azure support",
        ),
        StoreError::PreconditionFailed { .. } => d(
            "the blob changed after the file was opened".into(),
            "reopen the file to read the new content",
        ),
        other => d(other.to_string(), "see the request id in the log and retry"),
    }
}

/// One line: cause, fix and (when known) the request id, for errors shown to users.
pub fn explain(err: &StoreError, what: &str) -> String {
    let Diagnosis { cause, fix } = diagnose(err, what);
    match request_id(err) {
        Some(id) => format!("{cause}: {fix} (x-ms-request-id {id})"),
        None => format!("{cause}: {fix}"),
    }
}

/// The service's `x-ms-request-id` for `err`, when it came from an answer.
pub fn request_id(err: &StoreError) -> Option<&str> {
    match err {
        StoreError::NotFound { request_id, .. }
        | StoreError::PreconditionFailed { request_id }
        | StoreError::Service { request_id, .. } => Some(request_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, code: &str) -> StoreError {
        StoreError::Service {
            status,
            code: code.into(),
            message: String::new(),
            request_id: "rid-1".into(),
        }
    }

    #[test]
    fn each_class_names_its_fix() {
        let cases = [
            (
                service(403, "AuthorizationPermissionMismatch"),
                "Storage Blob Data Reader",
            ),
            (service(403, "AuthorizationFailure"), "network"),
            (service(403, "AuthenticationFailed"), "new SAS"),
            (
                service(401, "InvalidAuthenticationInfo"),
                "https://storage.azure.com/",
            ),
            (
                StoreError::NotFound {
                    code: "ContainerNotFound".into(),
                    request_id: "r".into(),
                },
                "container name",
            ),
            (
                StoreError::Transport {
                    endpoint: "http://x".into(),
                    reason: "refused".into(),
                },
                "cannot reach http://x",
            ),
        ];
        for (err, needle) in cases {
            let line = explain(&err, "c");
            assert!(line.contains(needle), "{line}");
            assert!(!line.contains('\n'));
        }
        assert!(explain(&service(403, "AuthenticationFailed"), "c").contains("rid-1"));
    }
}
