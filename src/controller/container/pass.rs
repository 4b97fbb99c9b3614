//! What every step of an `LxcContainer` pass uses: the pass type `P` (the kernel's `Pass` for
//! the kind, with its [`Managed`] impl), starting a task, when to poll it, the cluster an object
//! uses. Steps import this; nothing here imports a step.

use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::controller::conditions::CondSpec;
use crate::controller::context::Context;
use crate::controller::kernel::task::{self, Started};
use crate::controller::kernel::{Managed, Pass, Reason, StatusCache, TaskRecord, WakeRoutes};
use crate::controller::Error;
use crate::controller::InvalidSpec;
use crate::crd::lxc_container::*;
use crate::crd::{Operation, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass, Upid};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
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
    fn ready_is_about_the_guest() -> bool {
        true
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
        self.pending_task.as_deref().cloned()
    }
    fn set_pending(&mut self, task: Option<PendingTask>) {
        self.pending_task = task.map(Box::new);
    }
}

/// The `ProxmoxCluster` an object uses (see [`ClusterRegistry::of_container`](crate::controller::cluster::ClusterRegistry::of_container)).
pub(super) fn cluster_key(obj: &LxcContainer, ctx: &Context) -> ClusterKey {
    ctx.clusters.of_container(obj)
}

/// When to look at the task in status again (see [`task::next_poll`]).
pub(super) fn next_poll(p: &P<'_>) -> Action {
    Action::requeue(task::next_poll(p))
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
