//! Controllers: one module per kind on one shared [`kernel`], plus the per-cluster observer.
//!
//! Data flow is one-way: watch events and observer triggers → reconcile (resolve → validate →
//! decide → act: at most one task started → status by server-side apply, only when it changed).
//!
//! Imports are one-way too: no two files here import each other, even through others
//! (`tests/structure.rs` checks it), and this file only declares and re-exports. So the files
//! can be read bottom-up, each knowing only the ones before it. A newcomer's order:
//!
//! 1. [`settings`]: the flags and timings; [`kernel::reason`]: every reason and how long a pass
//!    stopped on one waits; [`error`]: errors, their classes, the one requeue policy;
//!    [`kernel::halt`]: how a step ends a pass early.
//! 2. [`conditions`], [`events`]; the per-object services: [`kernel::slots`] (task slots, the
//!    vzdump queue, claims), [`kernel::status_cache`], [`kernel::wake`], [`kernel::task_times`].
//! 3. [`cluster::inventory`] (what the observer reads) and [`cluster`] (a connection and its
//!    snapshot); then [`context`]: what every pass shares.
//! 4. [`status`] (status apply, finalizers), [`kernel::pass`] (one pass over one object),
//!    [`kernel::task`] (start a task, poll it), [`kernel::wiring`] (what a controller is made of).
//! 5. One kind, the model of gather → decide → act: [`snapshot::decide`] (pure, table-tested),
//!    then [`snapshot`] (gather, act, the controller). The other kinds read the same way:
//!    [`container`] starts at `container::pass` and `container::reconcile`, [`template`] at
//!    [`template::pass`].
//! 6. [`run`] last: it wires every kind's controller, the observer and the listeners.

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
pub mod settings;
pub mod snapshot;
pub mod status;
pub mod template;
pub mod tenancy;
pub mod vnode;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod unit_tests;

pub use context::Context;
pub use error::{Error, InvalidSpec};
pub use kernel::pass::instrumented;
pub use kernel::reason::jitter;
pub use settings::Settings;
