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
