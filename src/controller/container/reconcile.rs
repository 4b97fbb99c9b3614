//! The `LxcContainer` pass: resolve (cluster, snapshot) → validate → decide (`decide`) → act
//! (at most one Proxmox task started per pass: `create`, `converge`, `lifecycle`) → status.

use super::desired::{validate, InvalidSpec};
use super::locate::locate;
use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::controller::conditions::CondSpec;
use crate::controller::context::Context;
use crate::controller::kernel::task::{self, failure_message, Polled, Started};
use crate::controller::kernel::{Managed, Pass, Reason, StatusCache, TaskRecord, WakeRoutes};
use crate::controller::Error;
use crate::crd::lxc_container::*;
use crate::crd::{Operation, CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass, Upid};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

pub use crate::controller::kernel::UNKNOWN_UPID;

/// The condition type set while changes wait for a restart of the container.
pub const CONDITION_PENDING_RESTART: &str = "PendingRestart";

/// One pass over one `LxcContainer`.
pub(super) type P<'a> = Pass<'a, LxcContainer>;

impl Managed for LxcContainer {
    type Status = LxcContainerStatus;
    const KIND: &'static str = "LxcContainer";

    fn status_of(&self) -> Option<&LxcContainerStatus> {
        self.status.as_ref()
    }
    fn conditions(s: &mut LxcContainerStatus) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcContainerStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn sync_time(s: &mut LxcContainerStatus) -> Option<&mut Option<Time>> {
        Some(&mut s.last_sync_time)
    }
    fn on_invalid(s: &mut LxcContainerStatus) {
        if s.vmid.is_none() || s.phase.is_none() || s.phase == Some(ContainerPhase::Pending) {
            s.phase = Some(ContainerPhase::Failed);
        }
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcContainerStatus> {
        &ctx.status.containers
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcContainer> {
        &ctx.wakes.containers
    }
}

impl TaskRecord for LxcContainerStatus {
    fn pending(&self) -> Option<PendingTask> {
        self.pending_task.clone()
    }
    fn set_pending(&mut self, task: Option<PendingTask>) {
        self.pending_task = task;
    }
}

/// Reconciles one `LxcContainer`.
pub async fn reconcile(obj: Arc<LxcContainer>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcContainer>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

/// The `ProxmoxCluster` an object uses (see [`ClusterRegistry::of_container`](crate::controller::cluster::ClusterRegistry::of_container)).
pub(super) fn cluster_key(obj: &LxcContainer, ctx: &Context) -> ClusterKey {
    ctx.clusters.of_container(obj)
}

async fn reconcile_inner(obj: &LxcContainer, ctx: &Context) -> Result<Action, Error> {
    let mut p = Pass::new(obj, ctx);
    if obj.metadata.deletion_timestamp.is_some() {
        return super::lifecycle::cleanup(&mut p).await;
    }
    if obj.spec.management == Management::Full {
        // the finalizer patch triggers no new pass (generation unchanged): go on
        p.add_finalizer().await?;
    }
    let key = cluster_key(obj, ctx);
    // a container cannot move between Proxmox clusters (checked first: the other cluster may
    // not even exist)
    match p.status.cluster.clone() {
        Some(c) if c != key.name && obj.spec.management == Management::Full => {
            let message = format!("clusterRef is immutable: this container lives in ProxmoxCluster {c}");
            return p
                .invalid(InvalidSpec {
                    field: "clusterRef".into(),
                    message,
                })
                .await;
        }
        None if p.status.vmid.is_some() => p.status.cluster = Some(key.name.clone()),
        _ => {}
    }
    let (handle, snap) = match ctx.clusters.usable(&key) {
        Ok(u) => u,
        Err(why) => {
            p.status.phase.get_or_insert(ContainerPhase::Pending);
            return p
                .not_ready(Reason::ClusterNotReady, why, p.retry(Reason::ClusterNotReady))
                .await;
        }
    };
    let mut desired = match validate(&obj.spec, &obj.name_any(), &p.uid) {
        Ok(d) => d,
        Err(e) => return p.invalid(e).await,
    };
    // the tenant's policy: nothing reaches Proxmox when the spec is outside it
    let admission = match super::tenancy::admit(obj, ctx, &handle, &mut desired) {
        Ok(a) => a,
        Err(r) => return super::tenancy::refuse(&mut p, r).await,
    };
    // a valid spec can make progress again (set anew below if it cannot)
    p.uncond(CONDITION_STALLED);
    if let (Some(have), Some(want)) = (p.status.vmid, obj.spec.vmid) {
        if have != want && obj.spec.management == Management::Full {
            let message = format!("vmid is immutable: this container is {have}");
            return p
                .invalid(InvalidSpec {
                    field: "vmid".into(),
                    message,
                })
                .await;
        }
    }
    if obj.spec.management == Management::ObserveOnly {
        return super::lifecycle::observe_only(&mut p, &handle, &snap, &admission).await;
    }
    // a task in flight: check it, and do nothing else until it has ended
    if let Some(action) = check_pending_task(&mut p, &handle).await? {
        return Ok(action);
    }
    // a temporary snapshot of a clone source goes once the clone from it has ended
    if let Some(action) = super::clone_snapshot::tidy_pass(&mut p, &handle, &snap, false).await? {
        return Ok(action);
    }
    let vmid = match p.status.vmid {
        Some(v) => v,
        None => {
            // the quota is counted when the vmid is taken: the check and the admission are one step
            if let Err(r) = super::tenancy::admit_quota(&p, &admission) {
                return super::tenancy::refuse(&mut p, r).await;
            }
            let range = admission.spec().and_then(|t| t.vmid_range);
            let v = match (obj.spec.vmid, range) {
                (Some(v), _) => v,
                (None, None) => handle.allocate_vmid().await?,
                (None, Some(r)) => match handle.allocate_vmid_in(r.min, r.max).await? {
                    Some(v) => v,
                    None => {
                        let msg = format!("every vmid of the tenant's range {}-{} is taken", r.min, r.max);
                        let r = crate::controller::tenancy::policy::Refusal::new(Reason::TenantPolicyVmidRange, msg);
                        return super::tenancy::refuse(&mut p, r).await;
                    }
                },
            };
            // the vmid is recorded before anything is created with it
            p.status.vmid = Some(v);
            p.status.cluster = Some(key.name.clone());
            p.status.phase = Some(ContainerPhase::Pending);
            p.save().await?;
            v
        }
    };
    match locate(&handle, vmid, &p.status, obj.spec.node.as_deref()).await? {
        None => {
            if matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped)) {
                p.event(
                    Reason::Recreating,
                    format!("CT {vmid} is gone from Proxmox; creating it again with the same vmid"),
                )
                .await;
            }
            super::create::create(&mut p, &handle, &snap, &desired, vmid, &admission).await
        }
        Some(found) => super::converge::converge(&mut p, &handle, &snap, &desired, vmid, found).await,
    }
}

/// When to look at the task in status again (see [`task::next_poll`]).
pub(super) fn next_poll(p: &P<'_>) -> Action {
    Action::requeue(task::next_poll(p))
}

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs or just failed; `None`
/// once it has ended well (or is unknown: the identity rules decide what exists) or when there
/// is none.
pub(super) async fn check_pending_task(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    match task::poll(p, handle, 3).await? {
        Some((pt, Polled::Unknown | Polled::Done(_))) if pt.op() == Some(Operation::Pull) => {
            super::image::pull_ended(p);
            Ok(None)
        }
        Some((pt, Polled::Failed { text, tail })) if pt.op() == Some(Operation::Pull) => {
            let msg = failure_message(&pt.operation, &text, &tail);
            super::image::pull_failed(p, msg).await.map(Some)
        }
        None | Some((_, Polled::Unknown | Polled::Done(_))) => Ok(None),
        Some((_, Polled::Running)) => {
            p.save().await?;
            Ok(Some(next_poll(p)))
        }
        Some((pt, Polled::Failed { text, tail })) => {
            let msg = failure_message(&pt.operation, &text, &tail);
            p.event(Reason::TaskFailed, msg.clone()).await;
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskFailed, msg.clone()));
            let mut retry = None;
            if pt.op().is_some_and(Operation::makes_container) {
                p.status.phase = Some(ContainerPhase::Pending);
                p.cond(CondSpec::no(CONDITION_READY, Reason::CreateFailed, msg));
                // a create Proxmox refuses for what the spec names is tried ever more slowly
                retry = Some(super::precheck::create_retry(&text, &p.status.conditions));
            }
            p.save().await?;
            Ok(Some(match retry {
                Some(after) => Action::requeue(crate::controller::jitter(after)),
                None => p.retry(Reason::TaskFailed),
            }))
        }
    }
}

/// How soon an object that found no free task slot looks again on its own (plus up to 20 %
/// jitter). Waiters are woken first come first as slots free up; this is only the safety net
/// for slots freed elsewhere (another controller, a failed call). Each look is a pass with its
/// Proxmox reads: at 3 s, a burst of 100 Pods made most of their requests waiting.
pub(super) const SLOT_RETRY: Duration = Duration::from_secs(20);

/// Starts a task that needs no write-ahead marker (the identity rules cover creates; a
/// repeated start, stop, resize or migrate is harmless), recording it as `TaskRunning`.
pub(super) async fn start_task(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    node: &str,
    operation: Operation,
    call: impl std::future::Future<Output = pve::Result<Upid>>,
) -> Result<Action, Error> {
    p.cond(CondSpec::no(
        CONDITION_SYNCED,
        Reason::TaskRunning,
        format!("{operation} is running on {node}"),
    ));
    match task::start(p, handle, node, operation.as_str(), false, call).await? {
        Started::Task(_) | Started::NoTask => Ok(next_poll(p)),
        Started::NoSlot => {
            let msg = format!("waiting for a task slot on node {node}");
            p.not_synced(Reason::WaitingForTaskSlot, msg, p.retry(Reason::WaitingForTaskSlot))
                .await
        }
        Started::Refused(e) if e.class() == ErrorClass::InvalidSpec => {
            p.invalid(InvalidSpec {
                field: operation.as_str().into(),
                message: format!("Proxmox refused it: {e}"),
            })
            .await
        }
        Started::Refused(e) => Err(e.into()),
    }
}
