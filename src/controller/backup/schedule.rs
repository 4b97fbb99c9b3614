//! The `LxcBackupSchedule` controller: the shared schedule pass
//! ([`schedule::pass`](crate::controller::schedule::pass)) making one `LxcBackup` per matching
//! container and slot. Retention prunes the schedule's Completed backups per container
//! (Proxmox semantics; the newest is never pruned; protected backups never and do not count)
//! by deleting the `LxcBackup` objects, whose finalizer deletes the archives; of Failed
//! backups the newest [`KEEP_FAILED`] per container are kept. A schedule with `pool` covers
//! only the containers of that Proxmox pool.

use crate::controller::context::Context;
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::kernel::{Managed, StatusCache, WakeRoutes};
use crate::controller::schedule::pass::{self, ItemState};
use crate::controller::schedule::{Outcome, ScheduleKind};
use crate::crd::lxc_backup::{BackupPhase, LxcBackup, LxcBackupSpec};
use crate::crd::lxc_backup_schedule::{LxcBackupSchedule, LxcBackupScheduleStatus};
use crate::crd::lxc_container::LxcContainer;
use crate::crd::schedule::ScheduleCommon;
use crate::crd::{DeletionPolicy, LocalObjectRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Client, ResourceExt};
use std::sync::Arc;

pub use crate::controller::schedule::KEEP_FAILED;

/// The `LxcBackupSchedule` controller of one namespace (or all), and its cache.
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, kube::runtime::reflector::Store<LxcBackupSchedule>) {
    pass::controller::<LxcBackupSchedule>(client, namespace, ctx)
}

impl Managed for LxcBackupSchedule {
    type Status = LxcBackupScheduleStatus;
    const KIND: &'static str = "LxcBackupSchedule";

    fn status_of(&self) -> Option<&LxcBackupScheduleStatus> {
        self.status.as_ref()
    }
    fn conditions(
        s: &mut LxcBackupScheduleStatus,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcBackupScheduleStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcBackupScheduleStatus> {
        &ctx.status.schedules
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcBackupSchedule> {
        &ctx.wakes.schedules
    }
}

impl ScheduleKind for LxcBackupSchedule {
    type Item = LxcBackup;
    const ITEM: &'static str = "backup";

    fn common(&self) -> &ScheduleCommon {
        &self.spec.common
    }

    fn covers(&self, ctx: &Context, ct: &LxcContainer) -> bool {
        self.spec.pool.is_none() || pool_of(ctx, ct) == self.spec.pool
    }

    fn item(&self, ct: &LxcContainer, metadata: ObjectMeta) -> LxcBackup {
        let (ns, name) = (self.namespace().unwrap_or_default(), self.name_any());
        LxcBackup {
            metadata,
            spec: LxcBackupSpec {
                container_ref: LocalObjectRef { name: ct.name_any() },
                storage: Some(self.spec.storage.clone()),
                mode: self.spec.mode,
                compress: self.spec.compress,
                notes: Some(format!("{{{{guestname}}}} by LxcBackupSchedule {ns}/{name}")),
                deletion_policy: DeletionPolicy::Delete,
                options: self.spec.options.clone(),
            },
            status: None,
        }
    }

    fn state(b: &LxcBackup) -> ItemState {
        let status = b.status.as_ref();
        ItemState {
            container: b.spec.container_ref.name.clone(),
            outcome: match status.and_then(|s| s.phase) {
                Some(BackupPhase::Completed) => Outcome::Done,
                Some(BackupPhase::Failed) => Outcome::Failed,
                _ => Outcome::Pending,
            },
            completed_at: status.and_then(|s| s.completed_at.as_ref()).map(|t| t.0),
            protected: b.spec.options.protected,
        }
    }
}

/// The Proxmox pool a container is in: its `spec.pool`, else its tenant's pool.
fn pool_of(ctx: &Context, ct: &LxcContainer) -> Option<String> {
    if ct.spec.pool.is_some() {
        return ct.spec.pool.clone();
    }
    let ns = ct.namespace().unwrap_or_default();
    let labels = ctx.tenancy.labels(&ns);
    crate::controller::tenancy::policy::tenant_of(&ns, labels.as_ref(), &ctx.tenancy.tenants())
        .ok()
        .flatten()
        .and_then(|t| t.spec.pool.clone())
}
