//! The kernel every kind's controller runs on:
//!
//! - [`pass`]: one pass over one object (status from the newest known, conditions, a single
//!   status write, Events, invalid specs) and the wrapper that reports a failed pass as
//!   `Synced=False` with the error's reason.
//! - [`task`]: start a Proxmox task (slot, write-ahead marker, call, UPID) and poll it.
//! - [`slots`]: the capacity services: task slots per node (a guard that wakes the next
//!   waiter when dropped), the fair one-per-node queue for vzdump, shared-work claims.
//! - [`status_cache`]: the status this process wrote last, per object (read-your-writes).
//! - [`wake`]: the wake channels of each kind's controllers.
//! - [`task_times`]: how long tasks took, so a running one is looked at near its end.
//! - [`reason`]: every condition and Event reason, and how long a pass stopped on one waits.
//! - [`halt`]: how a step ends a pass early (`Halt`), so steps use `?`.
//! - [`generations`]: the generation filter of a controller's own watch (16 bytes an object).
//! - [`wiring`]: what a kind's controller is made of (its run loop, wake streams, the watch
//!   configuration of its cache), so kinds depend on the kernel and only `run.rs` on the kinds.
//!
//! Each kind's reconcile decides with pure functions (e.g. `container::decide`) and uses the
//! kernel to act: `resolve → validate → decide → act (at most one task) → status`.

pub mod generations;
pub mod halt;
pub mod pass;
pub mod reason;
pub mod slots;
pub mod status_cache;
pub mod task;
pub mod task_times;
pub mod wake;
pub mod wiring;

/// The guard of a lock; a lock poisoned by a panic elsewhere is used anyway (every pass must
/// not wedge on it) and the process reports itself broken, so its liveness probe fails and
/// Kubernetes restarts it.
pub fn recover<G>(r: std::sync::LockResult<G>, what: &'static str) -> G {
    r.unwrap_or_else(|e| {
        crate::http::report_broken(format!("the lock of {what} was poisoned by a panic"));
        e.into_inner()
    })
}

/// Gives a map's memory back once most of it is empty (after a burst, as 10,000 objects
/// adopted at once leave): a `HashMap` never shrinks by itself, and its table holds every
/// entry's bytes inline.
pub fn shrink_when_sparse<K: Eq + std::hash::Hash, V>(m: &mut std::collections::HashMap<K, V>) {
    if m.capacity() > 64 && m.len() * 4 < m.capacity() {
        m.shrink_to_fit();
    }
}

pub use halt::{Halt, Step};
pub use pass::{Managed, Pass};
pub use reason::Reason;
pub use slots::{Claims, NodeQueue, TaskSlots, Waker};
pub use status_cache::StatusCache;
pub use task::{Polled, Started, TaskRecord, UNKNOWN_UPID};
pub use wake::WakeRoutes;
