//! The `LxcSnapshotSchedule` controller: the shared schedule pass
//! ([`schedule::pass`](crate::controller::schedule::pass)) making one `LxcSnapshot` per
//! matching container and slot. Retention deletes the schedule's Ready snapshots per container
//! that the policy does not keep (Proxmox prune semantics; the newest is never deleted); the
//! `LxcSnapshot` finalizer then deletes the Proxmox snapshot. Of Failed snapshots the newest
//! [`KEEP_FAILED`](crate::controller::schedule::KEEP_FAILED) per container are kept.

use crate::controller::context::Context;
use crate::controller::kernel::{Managed, StatusCache, WakeRoutes};
use crate::controller::schedule::pass::ItemState;
use crate::controller::schedule::{Outcome, ScheduleKind};
use crate::crd::lxc_container::LxcContainer;
use crate::crd::lxc_snapshot::{LxcSnapshot, LxcSnapshotSpec, SnapshotPhase};
use crate::crd::lxc_snapshot_schedule::{LxcSnapshotSchedule, LxcSnapshotScheduleStatus};
use crate::crd::schedule::ScheduleCommon;
use crate::crd::{DeletionPolicy, LocalObjectRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::ResourceExt;

impl Managed for LxcSnapshotSchedule {
    type Status = LxcSnapshotScheduleStatus;
    const KIND: &'static str = "LxcSnapshotSchedule";

    fn status_of(&self) -> Option<&LxcSnapshotScheduleStatus> {
        self.status.as_ref()
    }
    fn conditions(s: &mut LxcSnapshotScheduleStatus) -> &mut Vec<Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcSnapshotScheduleStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcSnapshotScheduleStatus> {
        // one status type for both schedule kinds; uids never collide
        &ctx.status.schedules
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcSnapshotSchedule> {
        &ctx.wakes.snapshot_schedules
    }
}

impl ScheduleKind for LxcSnapshotSchedule {
    type Item = LxcSnapshot;
    const ITEM: &'static str = "snapshot";

    fn common(&self) -> &ScheduleCommon {
        &self.spec.common
    }

    fn item(&self, ct: &LxcContainer, metadata: ObjectMeta) -> LxcSnapshot {
        let (ns, name) = (self.namespace().unwrap_or_default(), self.name_any());
        let description = self
            .spec
            .description
            .clone()
            .unwrap_or_else(|| format!("by LxcSnapshotSchedule {ns}/{name}"));
        LxcSnapshot {
            metadata,
            spec: LxcSnapshotSpec {
                container_ref: LocalObjectRef { name: ct.name_any() },
                snapshot_name: None,
                description: Some(description),
                deletion_policy: DeletionPolicy::Delete,
                rollback: None,
            },
            status: None,
        }
    }

    fn state(s: &LxcSnapshot) -> ItemState {
        let status = s.status.as_ref();
        ItemState {
            container: s.spec.container_ref.name.clone(),
            outcome: match status.and_then(|s| s.phase) {
                Some(SnapshotPhase::Ready) => Outcome::Done,
                Some(SnapshotPhase::Failed) => Outcome::Failed,
                _ => Outcome::Pending,
            },
            completed_at: status.and_then(|s| s.created_at.as_ref()).map(|t| t.0),
            protected: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::lxc_snapshot::LxcSnapshotStatus;
    use crate::crd::LxcSnapshotScheduleSpec;

    #[test]
    fn a_snapshot_schedule_makes_deletable_snapshots_that_name_it() {
        let mut s = LxcSnapshotSchedule::new("hourly", LxcSnapshotScheduleSpec::default());
        s.metadata.namespace = Some("ns".into());
        let ct = LxcContainer::new("web", Default::default());
        let snap = s.item(&ct, ObjectMeta::default());
        assert_eq!(snap.spec.container_ref.name, "web");
        assert_eq!(snap.spec.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(
            snap.spec.description.as_deref(),
            Some("by LxcSnapshotSchedule ns/hourly")
        );
        assert!(snap.spec.rollback.is_none(), "a schedule never rolls back");
        s.spec.description = Some("nightly state".into());
        assert_eq!(
            s.item(&ct, ObjectMeta::default()).spec.description.as_deref(),
            Some("nightly state")
        );
    }

    #[test]
    fn only_ready_snapshots_count_as_done_and_failed_ones_as_failed() {
        let ct = LxcContainer::new("web", Default::default());
        let s = LxcSnapshotSchedule::new("h", LxcSnapshotScheduleSpec::default());
        let mut snap = s.item(&ct, ObjectMeta::default());
        let cases = [
            (None, Outcome::Pending),
            (Some(SnapshotPhase::Pending), Outcome::Pending),
            (Some(SnapshotPhase::Creating), Outcome::Pending),
            (Some(SnapshotPhase::Ready), Outcome::Done),
            (Some(SnapshotPhase::Failed), Outcome::Failed),
        ];
        for (phase, want) in cases {
            snap.status = Some(LxcSnapshotStatus {
                phase,
                ..Default::default()
            });
            let st = LxcSnapshotSchedule::state(&snap);
            assert_eq!((st.outcome, st.container.as_str()), (want, "web"), "{phase:?}");
        }
    }
}
