//! The single error type of the Proxmox VE client and its classification.
//!
//! Proxmox reports errors as an HTTP status plus a reason phrase (the first line of the
//! error message) and, since libpve-http-server-perl 5.2.0, a JSON body
//! `{"data": null, "message": "...", "errors": {...}}`. [`Error::from_response`] turns
//! those three pieces into a typed variant; every variant keeps Proxmox's text.

use std::collections::BTreeMap;
use std::time::Duration;

/// Coarse classes the controllers map onto status conditions and requeue policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Network trouble, timeouts, 5xx: try again later.
    Transient,
    /// The container (or its config file) is locked; try again once the lock is gone.
    Locked,
    /// The request itself is wrong (400, bad property string): retrying will not help.
    InvalidSpec,
    /// Credentials or TLS trust are wrong (401, 403, certificate problems).
    Auth,
    /// The object does not exist.
    NotFound,
    /// The object exists or is in a state that conflicts with the request.
    Conflict,
    /// Anything else that will not go away by itself.
    Permanent,
}

/// Every error the Proxmox VE client returns.
///
/// `method` and `path` are the HTTP method and API path (below `/api2/json`), `message` is
/// Proxmox's own text (body `message`, else the HTTP reason phrase), trimmed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No connection could be established to any endpoint: the request was never sent.
    #[error("cannot connect to {endpoint} for {method} {path}: {message}")]
    Connect {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// The last endpoint tried.
        endpoint: String,
        /// Underlying error text.
        message: String,
    },
    /// The request or the response timed out (the request may have been executed).
    #[error("timeout during {method} {path}: {message}")]
    Timeout {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Underlying error text.
        message: String,
    },
    /// The connection broke after the request was (possibly) sent.
    #[error("transport error during {method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Underlying error text.
        message: String,
    },
    /// 401: missing, wrong or expired credentials.
    #[error("{method} {path}: 401 unauthorized: {message}")]
    Unauthorized {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text, e.g. `No ticket` or `Authentication failed!`.
        message: String,
    },
    /// 403: the user or token lacks a privilege.
    #[error("{method} {path}: 403 forbidden: {message}")]
    Forbidden {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text, e.g. `Permission check failed (/vms/100, VM.Allocate)`.
        message: String,
        /// The ACL path from the message (`/vms/100`), if it could be parsed.
        acl_path: Option<String>,
        /// The privilege from the message (`VM.Allocate`), if it could be parsed.
        permission: Option<String>,
    },
    /// 400: parameter verification failed; `errors` maps parameter name to problem.
    #[error("{method} {path}: invalid parameters: {message}{}", fmt_errors(errors))]
    InvalidParameters {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text, usually `Parameter verification failed.`.
        message: String,
        /// Per-parameter messages.
        errors: BTreeMap<String, String>,
    },
    /// The guest id is already used (`CT 100 already exists on node 'pve'`, or nextid probe).
    #[error("{method} {path}: already exists: {message}")]
    AlreadyExists {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
        /// The vmid named in the message, if any.
        vmid: Option<u32>,
    },
    /// `CT is locked (<reason>)`.
    #[error("{method} {path}: locked ({reason}): {message}")]
    Locked {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
        /// The lock name: backup, create, disk, migrate, snapshot, ...
        reason: String,
    },
    /// `can't lock file '...' - got timeout`: the config file lock was busy.
    #[error("{method} {path}: lock timeout: {message}")]
    LockTimeout {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
    },
    /// `detected modified configuration - file changed by other user? Try again.`
    #[error("{method} {path}: config digest mismatch: {message}")]
    DigestMismatch {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
    },
    /// The object does not exist (404, or `Configuration file '...' does not exist`).
    #[error("{method} {path}: not found: {message}")]
    NotFound {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
    },
    /// The guest is in the wrong state for the call (`CT 100 already running`,
    /// `CT 100 not running`, `unable to destroy CT 100 - container is running`, ...).
    #[error("{method} {path}: wrong state: {message}")]
    WrongState {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
    },
    /// 501: unknown path or method.
    #[error("{method} {path}: not implemented: {message}")]
    NotImplemented {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// Proxmox's text.
        message: String,
    },
    /// Any other 5xx (including 59x proxy errors between nodes).
    #[error("{method} {path}: server error {status}: {message}")]
    Server {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Proxmox's text.
        message: String,
    },
    /// Any other non-success status (4xx not covered above).
    #[error("{method} {path}: HTTP {status}: {message}")]
    Rejected {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// Proxmox's text.
        message: String,
    },
    /// A worker task ended with an error.
    #[error("task {upid} failed: {exitstatus}{}", fmt_tail(log_tail))]
    TaskFailed {
        /// The task id.
        upid: String,
        /// The task's exit status (the error text).
        exitstatus: String,
        /// The last lines of the task log.
        log_tail: Vec<String>,
    },
    /// [`Client::wait_task`](crate::pve::Client::wait_task) gave up; the task may still run.
    #[error("task {upid} still running after {waited:?}")]
    TaskWaitTimeout {
        /// The task id.
        upid: String,
        /// How long we waited.
        waited: Duration,
    },
    /// The server certificate's SHA-256 fingerprint is not the pinned one.
    #[error("TLS: certificate fingerprint mismatch at {endpoint}: expected {expected}, got {actual}")]
    TlsFingerprintMismatch {
        /// The endpoint URL.
        endpoint: String,
        /// The pinned fingerprint(s), `AB:CD:..` form.
        expected: String,
        /// The presented leaf certificate's fingerprint, `AB:CD:..` form.
        actual: String,
    },
    /// The server certificate is not signed by a trusted CA.
    #[error("TLS: certificate at {endpoint} is signed by an unknown CA: {message}")]
    TlsUnknownCa {
        /// The endpoint URL.
        endpoint: String,
        /// rustls' text.
        message: String,
    },
    /// Other TLS failures (name mismatch, expired, handshake error, ...).
    #[error("TLS error at {endpoint}: {message}")]
    Tls {
        /// The endpoint URL.
        endpoint: String,
        /// rustls' text.
        message: String,
    },
    /// The response body could not be decoded.
    #[error("{method} {path}: cannot decode response: {message}")]
    Decode {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// serde's text.
        message: String,
    },
    /// A property string value could not be encoded or parsed.
    #[error("invalid property `{field}`: {message}")]
    InvalidProperty {
        /// The property (and sub-key) at fault, e.g. `net0.ip`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The client configuration is unusable (bad URL, bad CA PEM, bad fingerprint, ...).
    #[error("invalid client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// Every endpoint failed before a request was answered (connect or TLS errors), with
    /// several endpoints configured. `failures` names each endpoint's own error, in the order
    /// tried; the request was never executed.
    #[error("no Proxmox endpoint usable for {method} {path}: {message}")]
    Endpoints {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// One error per endpoint tried (each names its endpoint).
        failures: Vec<Error>,
        /// `failures` joined into one line.
        message: String,
    },
    /// The response body exceeded the client's limit (`ClientConfig::max_response_bytes`);
    /// reading stopped there.
    #[error("{method} {path}: response from {endpoint} larger than the limit of {limit} bytes")]
    ResponseTooLarge {
        /// HTTP method.
        method: String,
        /// API path.
        path: String,
        /// The endpoint URL.
        endpoint: String,
        /// The limit in bytes.
        limit: u64,
    },
}

fn fmt_errors(errors: &BTreeMap<String, String>) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {}", v.trim_end())).collect();
    format!(" ({})", parts.join("; "))
}

fn fmt_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(" (log tail: {})", tail.join(" | "))
    }
}

/// What a message text says, independent of the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MessageKind {
    AlreadyExists(Option<u32>),
    Locked(String),
    LockTimeout,
    DigestMismatch,
    NotFound,
    WrongState,
}

fn classify_message(msg: &str) -> Option<MessageKind> {
    let m = msg.trim();
    if let Some(reason) = locked_reason(m) {
        return Some(MessageKind::Locked(reason));
    }
    if m.contains("can't lock file") && m.contains("got timeout") {
        return Some(MessageKind::LockTimeout);
    }
    if m.contains("detected modified configuration") {
        return Some(MessageKind::DigestMismatch);
    }
    if m.contains("already exists")
        && (m.starts_with("CT ")
            || m.starts_with("VM ")
            || m.starts_with("unable to create CT")
            || m.starts_with("unable to restore CT"))
    {
        return Some(MessageKind::AlreadyExists(first_vmid(m)));
    }
    if (m.starts_with("Configuration file '") && m.contains("does not exist"))
        || m.starts_with("no such CT")
        || m.starts_with("no such VM")
        || m.starts_with("no such resource '")
        || m.starts_with("no such ha rule '")
        || (m.starts_with("cannot delete service '") && m.ends_with("not HA managed!"))
    {
        return Some(MessageKind::NotFound);
    }
    if m.contains("already running")
        || m.contains(" not running")
        || m.contains("container is running")
        || m.contains("if the CT is running")
        || m.contains("contains snapshots")
        || m.contains("protection mode enabled")
    {
        return Some(MessageKind::WrongState);
    }
    None
}

/// Whether a 5xx text or a task's exit status says the request named something that cannot be
/// used (a volume or storage that does not exist, a storage that cannot hold that content):
/// Proxmox answers these with 500, but retrying will not help until the spec changes.
fn names_unusable_thing(m: &str) -> bool {
    let m = m.trim();
    (m.starts_with("volume '") && m.contains("' does not exist"))
        || (m.starts_with("storage '")
            && (m.contains("' does not exist")
                || m.contains("' does not support ")
                || m.contains("' is not configured for content-type")
                || m.contains("' is not available on node")))
        || m.starts_with("unable to parse volume ID")
}

/// Extracts `<reason>` from `CT is locked (<reason>)` / `VM is locked (<reason>)`.
pub fn locked_reason(m: &str) -> Option<String> {
    let idx = m.find("is locked (")?;
    let rest = &m[idx + "is locked (".len()..];
    let end = rest.find(')')?;
    Some(rest[..end].to_string())
}

fn first_vmid(m: &str) -> Option<u32> {
    m.split(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
}

fn parse_permission(m: &str) -> (Option<String>, Option<String>) {
    // "Permission check failed (/vms/100, VM.Allocate)"
    if let Some(start) = m.find("Permission check failed (") {
        let rest = &m[start + "Permission check failed (".len()..];
        if let Some(end) = rest.find(')') {
            let inner = &rest[..end];
            let mut parts = inner.splitn(2, ',');
            let path = parts.next().map(|s| s.trim().to_string());
            let perm = parts.next().map(|s| s.trim().to_string());
            return (path, perm.filter(|p| !p.is_empty()));
        }
    }
    (None, None)
}

impl Error {
    /// Builds the error for a non-success HTTP response.
    ///
    /// `reason` is the raw HTTP reason phrase (Proxmox puts the first message line there),
    /// `body` the raw response body (may be empty or not JSON).
    pub fn from_response(method: &str, path: &str, status: u16, reason: Option<&str>, body: &[u8]) -> Error {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let body_message = parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(|v| v.as_str())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let errors: BTreeMap<String, String> = parsed
            .as_ref()
            .and_then(|v| v.get("errors"))
            .and_then(|v| v.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        let text = match v {
                            serde_json::Value::String(s) => s.trim_end().to_string(),
                            other => other.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let message = body_message
            .or_else(|| reason.map(str::to_string))
            .or_else(|| {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        let method = method.to_string();
        let path = path.to_string();

        match status {
            401 => Error::Unauthorized { method, path, message },
            403 => {
                let (acl_path, permission) = parse_permission(&message);
                Error::Forbidden {
                    method,
                    path,
                    message,
                    acl_path,
                    permission,
                }
            }
            400 => {
                // nextid?vmid=N on a used id: errors.vmid = "VM N already exists".
                if let Some(v) = errors.get("vmid") {
                    if v.contains("already exists") {
                        return Error::AlreadyExists {
                            method,
                            path,
                            vmid: first_vmid(v),
                            message: format!("{message} vmid: {v}"),
                        };
                    }
                }
                Error::InvalidParameters {
                    method,
                    path,
                    message,
                    errors,
                }
            }
            404 => Error::NotFound { method, path, message },
            501 => Error::NotImplemented { method, path, message },
            500..=599 => match classify_message(&message) {
                Some(MessageKind::AlreadyExists(vmid)) => Error::AlreadyExists {
                    method,
                    path,
                    message,
                    vmid,
                },
                Some(MessageKind::Locked(reason)) => Error::Locked {
                    method,
                    path,
                    message,
                    reason,
                },
                Some(MessageKind::LockTimeout) => Error::LockTimeout { method, path, message },
                Some(MessageKind::DigestMismatch) => Error::DigestMismatch { method, path, message },
                Some(MessageKind::NotFound) => Error::NotFound { method, path, message },
                Some(MessageKind::WrongState) => Error::WrongState { method, path, message },
                None => Error::Server {
                    method,
                    path,
                    status,
                    message,
                },
            },
            _ => Error::Rejected {
                method,
                path,
                status,
                message,
            },
        }
    }

    /// Whether repeating the same call later can succeed without changing it.
    ///
    /// True for connect failures, timeouts, broken connections, locks, lock timeouts,
    /// digest mismatches (re-read the config first), generic 5xx and task-wait timeouts.
    /// The client itself only retries GET requests; this tells callers what is safe.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::Transport { .. }
                | Error::Locked { .. }
                | Error::LockTimeout { .. }
                | Error::DigestMismatch { .. }
                | Error::Server { .. }
                | Error::TaskWaitTimeout { .. }
        ) || matches!(self, Error::Endpoints { failures, .. } if failures.iter().any(Error::is_retryable))
    }

    /// The coarse class of this error (see [`ErrorClass`]).
    ///
    /// A failed task is classified by its exit status text, so a `vzstart` task that ended
    /// in `CT is locked (backup)` is [`ErrorClass::Locked`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Server { message, .. } if names_unusable_thing(message) => ErrorClass::InvalidSpec,
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::LockTimeout { .. }
            | Error::Server { .. }
            | Error::TaskWaitTimeout { .. } => ErrorClass::Transient,
            Error::Locked { .. } => ErrorClass::Locked,
            Error::InvalidParameters { .. } | Error::InvalidProperty { .. } => ErrorClass::InvalidSpec,
            Error::Unauthorized { .. }
            | Error::Forbidden { .. }
            | Error::TlsFingerprintMismatch { .. }
            | Error::TlsUnknownCa { .. }
            | Error::Tls { .. } => ErrorClass::Auth,
            Error::NotFound { .. } => ErrorClass::NotFound,
            Error::AlreadyExists { .. } | Error::DigestMismatch { .. } | Error::WrongState { .. } => {
                ErrorClass::Conflict
            }
            Error::TaskFailed { exitstatus, .. } => match classify_message(exitstatus) {
                Some(MessageKind::Locked(_)) => ErrorClass::Locked,
                Some(MessageKind::LockTimeout) => ErrorClass::Transient,
                Some(MessageKind::NotFound) => ErrorClass::NotFound,
                Some(MessageKind::AlreadyExists(_))
                | Some(MessageKind::DigestMismatch)
                | Some(MessageKind::WrongState) => ErrorClass::Conflict,
                None if names_unusable_thing(exitstatus) => ErrorClass::InvalidSpec,
                None => ErrorClass::Permanent,
            },
            Error::NotImplemented { .. }
            | Error::Rejected { .. }
            | Error::Decode { .. }
            | Error::ResponseTooLarge { .. }
            | Error::Config { .. } => ErrorClass::Permanent,
            Error::Endpoints { failures, .. } => failures.last().map(Error::class).unwrap_or(ErrorClass::Transient),
        }
    }

    /// The HTTP status, for errors that came from an HTTP response.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::InvalidParameters { .. } => Some(400),
            Error::NotImplemented { .. } => Some(501),
            Error::Server { status, .. } | Error::Rejected { status, .. } => Some(*status),
            Error::AlreadyExists { .. }
            | Error::Locked { .. }
            | Error::LockTimeout { .. }
            | Error::DigestMismatch { .. }
            | Error::NotFound { .. }
            | Error::WrongState { .. } => None,
            _ => None,
        }
    }

    /// Proxmox's (or the transport's) message text.
    pub fn message(&self) -> &str {
        match self {
            Error::Connect { message, .. }
            | Error::Timeout { message, .. }
            | Error::Transport { message, .. }
            | Error::Unauthorized { message, .. }
            | Error::Forbidden { message, .. }
            | Error::InvalidParameters { message, .. }
            | Error::AlreadyExists { message, .. }
            | Error::Locked { message, .. }
            | Error::LockTimeout { message, .. }
            | Error::DigestMismatch { message, .. }
            | Error::NotFound { message, .. }
            | Error::WrongState { message, .. }
            | Error::NotImplemented { message, .. }
            | Error::Server { message, .. }
            | Error::Rejected { message, .. }
            | Error::TlsUnknownCa { message, .. }
            | Error::Tls { message, .. }
            | Error::Decode { message, .. }
            | Error::InvalidProperty { message, .. }
            | Error::Endpoints { message, .. }
            | Error::Config { message } => message,
            Error::ResponseTooLarge { endpoint, .. } => endpoint,
            Error::TaskFailed { exitstatus, .. } => exitstatus,
            Error::TlsFingerprintMismatch { actual, .. } => actual,
            Error::TaskWaitTimeout { upid, .. } => upid,
        }
    }

    /// With [`Error::Endpoints`]: the error of each endpoint tried; otherwise empty.
    pub fn endpoint_failures(&self) -> &[Error] {
        match self {
            Error::Endpoints { failures, .. } => failures,
            _ => &[],
        }
    }

    pub(crate) fn invalid_property(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidProperty {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Result alias for the Proxmox VE client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_reason_is_extracted_from_the_reason_phrase_when_the_body_has_no_message() {
        let e = Error::from_response("POST", "/x", 500, Some("CT is locked (disk)"), b"{\"data\":null}");
        assert!(matches!(&e, Error::Locked { reason, .. } if reason == "disk"));
        assert_eq!(e.class(), ErrorClass::Locked);
        assert!(e.is_retryable());
    }

    #[test]
    fn a_permission_message_names_path_and_privilege() {
        let e = Error::from_response(
            "POST",
            "/nodes/pve/lxc",
            403,
            None,
            br#"{"data":null,"message":"Permission check failed (/vms/100, VM.Allocate)\n"}"#,
        );
        match e {
            Error::Forbidden {
                acl_path, permission, ..
            } => {
                assert_eq!(acl_path.as_deref(), Some("/vms/100"));
                assert_eq!(permission.as_deref(), Some("VM.Allocate"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failed_task_is_classified_by_its_exit_status() {
        let e = Error::TaskFailed {
            upid: "u".into(),
            exitstatus: "CT is locked (backup)".into(),
            log_tail: vec![],
        };
        assert_eq!(e.class(), ErrorClass::Locked);
    }

    #[test]
    fn a_500_naming_a_missing_volume_or_an_unfit_storage_is_a_bad_spec_not_a_blip() {
        let server = |m: &str| {
            let body = serde_json::json!({"data": null, "message": format!("{m}\n")}).to_string();
            Error::from_response("POST", "/nodes/pve1/lxc", 500, None, body.as_bytes()).class()
        };
        for m in [
            "volume 'local:vztmpl/ubuntu-99.tar.zst' does not exist",
            "storage 'local-lvm' does not support backups",
            "storage 'nas' does not exist",
            "storage 'local-lvm' is not configured for content-type 'vztmpl'",
            "storage 'tank' is not available on node 'pve2'",
        ] {
            assert_eq!(server(m), ErrorClass::InvalidSpec, "{m}");
        }
        for m in [
            "unable to get IP for node 'pve9' - node offline?",
            "got timeout",
            "Connection refused",
        ] {
            assert_eq!(server(m), ErrorClass::Transient, "{m}");
        }
        let task = Error::TaskFailed {
            upid: "u".into(),
            exitstatus: "storage 'nfs-backup' does not support container directories".into(),
            log_tail: vec![],
        };
        assert_eq!(task.class(), ErrorClass::InvalidSpec);
    }
}
