//! Errors of a reconcile and how each class is retried.

use crate::pve;

/// Why a reconcile failed. Specs that cannot be applied are not errors: they end in a
/// `Ready=False, reason=InvalidSpec` condition and wait for the next spec change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Proxmox failed.
    #[error("Proxmox: {0}")]
    Pve(#[from] pve::Error),
    /// The spec cannot be applied (reported as a condition, not retried until it changes).
    #[error("{0}")]
    Invalid(crate::controller::container::desired::InvalidSpec),
    /// The reconcile panicked (a bug): the object is retried later, the others go on.
    #[error("reconcile panicked: {0}")]
    Panic(String),
}

impl Error {
    /// Runs one reconcile, turning a panic into [`Error::Panic`] so that one bad object cannot
    /// stop the controller (and with it every other object).
    pub async fn catch_panic<T>(fut: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
        use futures::FutureExt;
        match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
            Ok(r) => r,
            Err(p) => {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into());
                Err(Error::Panic(msg))
            }
        }
    }

    /// The error class, for metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "Conflict",
            Error::Kube(_) => "Kubernetes",
            Error::Invalid(_) => "InvalidSpec",
            Error::Panic(_) => "Panic",
            Error::Pve(e) => match e.class() {
                pve::ErrorClass::Transient => "Transient",
                pve::ErrorClass::Locked => "Locked",
                pve::ErrorClass::InvalidSpec => "InvalidSpec",
                pve::ErrorClass::Auth => "Auth",
                pve::ErrorClass::NotFound => "NotFound",
                pve::ErrorClass::Conflict => "Conflict",
                pve::ErrorClass::Permanent => "Permanent",
            },
        }
    }
}
