//! The `LxcBackup` and `LxcBackupSchedule` controllers.
//!
//! - [`lxc_backup`]: one `vzdump` per `LxcBackup`, queued so that at most one runs per Proxmox node
//!   at a time across every backup this process runs; finalizer deletes the archive.
//! - [`precheck`]: the storage named, against the inventory, before any call (pure).
//! - [`schedule`]: cron / Proxmox calendar schedules that create `LxcBackup`s for the
//!   containers matching a selector, and prune them with Proxmox's retention semantics.
//! - [`calendar`] and [`prune`]: the pure parts, shared with the snapshot schedules
//!   ([`crate::controller::schedule`]).

pub mod lxc_backup;
pub mod precheck;
mod protected;
pub mod schedule;

pub use crate::controller::schedule::{
    calendar, prune, ScheduleClock, ANNOTATION_SCHEDULED_AT, LABEL_CONTAINER, LABEL_SCHEDULE,
};

use super::context::Context;
use super::kernel::wiring::ControllerFuture;
use kube::Client;
use std::sync::Arc;

/// The backup controllers of one namespace (or all): `LxcBackup` and `LxcBackupSchedule`,
/// joined into one future, and the `LxcBackup` cache (for the prune of vanished objects).
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, kube::runtime::reflector::Store<crate::crd::LxcBackup>) {
    let (b, store) = lxc_backup::controller(client, namespace, ctx.clone());
    let (s, schedules) = schedule::controller(client, namespace, ctx.clone());
    ctx.tenancy.add_schedules(schedules);
    let run = Box::pin(async move {
        futures::future::join(b, s).await;
    });
    (run, store)
}
