//! Errors of a reconcile, their classes, and the one requeue policy every kind uses.

use super::kernel::Reason;
use super::settings::Settings;
use crate::pve;
use std::time::Duration;

/// A spec that cannot be applied: the field (JSON path below `spec`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct InvalidSpec {
    /// The offending field, e.g. `network[0].ipv4.gateway`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a reconcile failed. Specs that cannot be applied are usually not errors: they end in a
/// `Ready=False, reason=InvalidSpec` condition and wait for the next spec change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API ({op}): {source}")]
    Kube {
        /// What the call was for, e.g. `write status`.
        op: &'static str,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A Proxmox call failed (the error names the method and path).
    #[error("Proxmox: {0}")]
    Pve(#[from] pve::Error),
    /// The spec cannot be applied (reported as a condition, not retried until it changes).
    #[error("{0}")]
    Invalid(InvalidSpec),
    /// The reconcile panicked (a bug): the object is retried later, the others go on.
    #[error("reconcile panicked: {0}")]
    Panic(String),
}

impl From<kube::Error> for Error {
    fn from(source: kube::Error) -> Self {
        Error::Kube { op: "request", source }
    }
}

/// Names the Kubernetes call behind an error: `api.get(..).await.op("read Secret")?`.
pub trait KubeOp<T> {
    /// Wraps the error as [`Error::Kube`] with `op`.
    fn op(self, op: &'static str) -> Result<T, Error>;
}

impl<T> KubeOp<T> for Result<T, kube::Error> {
    fn op(self, op: &'static str) -> Result<T, Error> {
        self.map_err(|source| Error::Kube { op, source })
    }
}

/// The class of a failed pass: decides the requeue, the metric label and the condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Connect, timeout, 5xx: retried soon.
    Transient,
    /// A Proxmox lock: retried after the lock retry.
    Locked,
    /// A parameter Proxmox refused.
    InvalidSpec,
    /// 401/403 from Proxmox.
    Auth,
    /// Proxmox does not know the object.
    NotFound,
    /// Proxmox refused because of the current state.
    Conflict,
    /// Any other Proxmox error.
    Permanent,
    /// A Kubernetes API error.
    Kube,
    /// A Kubernetes write lost a race (409).
    KubeConflict,
    /// A bug.
    Panic,
}

impl Class {
    /// The class as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Transient => "Transient",
            Class::Locked => "Locked",
            Class::InvalidSpec => "InvalidSpec",
            Class::Auth => "Auth",
            Class::NotFound => "NotFound",
            Class::Conflict => "Conflict",
            Class::Permanent => "Permanent",
            Class::Kube => "Kubernetes",
            Class::KubeConflict => "KubernetesConflict",
            Class::Panic => "Panic",
        }
    }

    /// The `Synced=False` reason of a pass that failed with this class.
    pub fn reason(self) -> Reason {
        match self {
            Class::Transient => Reason::ProxmoxUnavailable,
            Class::Locked => Reason::Locked,
            Class::InvalidSpec => Reason::InvalidSpec,
            Class::Auth => Reason::ProxmoxAuthFailed,
            Class::NotFound => Reason::ProxmoxNotFound,
            Class::Conflict => Reason::ProxmoxConflict,
            Class::Permanent => Reason::ProxmoxError,
            Class::Kube => Reason::KubernetesError,
            Class::KubeConflict => Reason::KubernetesConflict,
            Class::Panic => Reason::InternalError,
        }
    }

    /// A blip that the next pass most likely gets past (the object's readiness is left alone).
    pub fn is_blip(self) -> bool {
        matches!(
            self,
            Class::Transient | Class::Locked | Class::KubeConflict | Class::Kube
        )
    }

    /// How soon a pass that failed with this class is retried (before jitter): lock errors after
    /// the lock retry, conflicts soon, transient and Kubernetes errors after 5 s, the rest after 30 s.
    pub fn requeue(self, settings: &Settings) -> Duration {
        match self {
            Class::Locked => settings.lock_retry,
            Class::KubeConflict | Class::Conflict => Duration::from_millis(500),
            Class::Transient | Class::Kube => Duration::from_secs(5),
            _ => Duration::from_secs(30),
        }
    }
}

impl Error {
    /// Runs one reconcile, turning a panic into [`Error::Panic`] so that one bad object cannot
    /// stop the controller (and with it every other object).
    pub async fn catch_panic<T>(fut: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Err(Error::Panic(msg))
            }
        }
    }

    /// The error class.
    pub fn class(&self) -> Class {
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => Class::KubeConflict,
            Error::Kube { .. } => Class::Kube,
            Error::Invalid(_) => Class::InvalidSpec,
            Error::Panic(_) => Class::Panic,
            Error::Pve(e) => match e.class() {
                pve::ErrorClass::Transient => Class::Transient,
                pve::ErrorClass::Locked => Class::Locked,
                pve::ErrorClass::InvalidSpec => Class::InvalidSpec,
                pve::ErrorClass::Auth => Class::Auth,
                pve::ErrorClass::NotFound => Class::NotFound,
                pve::ErrorClass::Conflict => Class::Conflict,
                pve::ErrorClass::Permanent => Class::Permanent,
            },
        }
    }

    /// Whether the Kubernetes object itself is gone (a write to it answered 404; a 404 on some
    /// other object is an ordinary failure).
    pub fn object_gone(&self) -> bool {
        matches!(
            self,
            Error::Kube { op: "write status" | "add finalizer" | "remove finalizer", source: kube::Error::Api(s) } if s.code == 404
        )
    }
}

/// The requeue for a failed reconcile, by error class, with jitter.
pub fn requeue_after_error(err: &Error, settings: &Settings) -> kube::runtime::controller::Action {
    kube::runtime::controller::Action::requeue(super::kernel::reason::jitter(err.class().requeue(settings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_waits_for_the_lock_retry_and_a_conflict_retries_soon() {
        let s = Settings::default();
        assert_eq!(Class::Locked.requeue(&s), s.lock_retry);
        assert_eq!(Class::KubeConflict.requeue(&s), Duration::from_millis(500));
        assert_eq!(Class::Auth.requeue(&s), Duration::from_secs(30));
        assert!(!Class::Auth.is_blip());
        assert!(Class::Transient.is_blip());
    }
}
