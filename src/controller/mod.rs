//! Controllers: one module per kind on one shared [`kernel`], plus the per-cluster observer.
//!
//! Data flow is one-way: watch events and observer triggers → reconcile (resolve → validate →
//! decide → act: at most one task started → status by server-side apply, only when it changed).

pub mod backup;
pub mod cluster;
pub mod conditions;
pub mod container;
pub mod context;
pub mod error;
pub mod events;
pub mod guest;
pub mod kernel;
pub mod leader;
pub mod oci;
pub mod run;
pub mod schedule;
pub mod snapshot;
pub mod status;
pub mod template;
pub mod tenancy;
pub mod vnode;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod unit_tests;

pub use context::{Context, Settings};
pub use error::{Error, InvalidSpec};

use std::time::Duration;

/// `base` plus up to 20% random jitter, so that many objects do not retry in lockstep.
pub fn jitter(base: Duration) -> Duration {
    base + base.mul_f64(rand::random::<f64>() * 0.2)
}

/// Runs one reconcile of a `kind` object: a panic becomes [`Error::Panic`] (one bad object
/// cannot stop its controller), and the outcome and duration go to the metrics and the debug log.
pub async fn instrumented<T>(
    kind: &'static str,
    name: &str,
    metrics: &crate::metrics::Metrics,
    pass: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("reconcile", kind, object = name);
    let res = Error::catch_panic(pass).instrument(span).await;
    let class = res.as_ref().map(|_| "ok").unwrap_or_else(|e| e.class().as_str());
    metrics.reconcile(kind, class, started.elapsed());
    tracing::debug!(
        kind,
        object = name,
        outcome = class,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconcile pass"
    );
    res
}
