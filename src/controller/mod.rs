//! Controllers: one module per kind, plus the per-cluster observer.
//!
//! Data flow is one-way: watch events and observer triggers → reconcile (resolve → validate →
//! plan → apply at most one task → status by server-side apply, only when it changed).

pub mod backup;
pub mod cluster;
pub mod conditions;
pub mod container;
pub mod context;
pub mod error;
pub mod leader;
pub mod run;
pub mod status;
pub mod template;

pub use context::{Context, Settings};
pub use error::Error;

use std::time::Duration;

/// `base` plus up to 20% random jitter, so that many objects do not retry in lockstep.
pub fn jitter(base: Duration) -> Duration {
    base + base.mul_f64(rand::random::<f64>() * 0.2)
}

/// Runs one reconcile of a `kind` object: a panic becomes [`Error::Panic`] (one bad object
/// cannot stop its controller), and the outcome and duration go to the metrics and the debug log.
pub async fn instrumented<T>(kind: &'static str, name: &str, metrics: &crate::metrics::Metrics, pass: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let started = std::time::Instant::now();
    let res = Error::catch_panic(pass).await;
    let class = res.as_ref().map(|_| "ok").unwrap_or_else(|e| e.class());
    metrics.reconcile(kind, class, started.elapsed());
    tracing::debug!(kind, object = name, outcome = class, elapsed_ms = started.elapsed().as_millis() as u64, "reconcile pass");
    res
}

/// The requeue for a failed reconcile, by error class: lock errors after the lock retry,
/// conflicts soon, transient and Kubernetes errors after 5 s, everything else after 30 s
/// (all with jitter).
pub fn requeue_after_error(err: &Error, settings: &Settings) -> kube::runtime::controller::Action {
    use kube::runtime::controller::Action;
    match err.class() {
        "Locked" => Action::requeue(jitter(settings.lock_retry)),
        "Conflict" => Action::requeue(jitter(Duration::from_millis(500))),
        "Transient" | "Kubernetes" => Action::requeue(jitter(Duration::from_secs(5))),
        _ => Action::requeue(jitter(Duration::from_secs(30))),
    }
}
