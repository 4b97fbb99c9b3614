//! What every step of an `LxcTemplate` pass uses: the pass type `P` (the kernel's `Pass` for
//! the kind, with its [`Managed`] impl), the phases, checking and starting a task, reading a
//! config and the linked clones of a build. The pass (`reconcile`) and the deletion (`cleanup`)
//! import this; nothing here imports them.

use super::build::{disk_storages, is_linked_clone_of, volume_owner};
use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::controller::context::Context;
use crate::controller::kernel::task::{self, Polled, Started};
use crate::controller::kernel::{Managed, Pass, Reason, StatusCache, TaskRecord, WakeRoutes};
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::{LxcContainer, PendingTask};
use crate::crd::lxc_template::{LxcTemplate, LxcTemplateStatus};
use crate::pve::{self, ErrorClass, LxcConfig, Upid};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::time::Duration;

/// Phase while nothing has been done in Proxmox yet.
pub const PHASE_PENDING: &str = "Pending";
/// Phase while the image is downloaded.
pub const PHASE_DOWNLOADING: &str = "Downloading";
/// Phase while the template container is created and converted.
pub const PHASE_BUILDING: &str = "Building";
/// Phase of a template containers can clone from.
pub const PHASE_READY: &str = "Ready";
/// Phase of a template whose spec cannot be built.
pub const PHASE_FAILED: &str = "Failed";
/// Phase while the template is deleted.
pub const PHASE_DELETING: &str = "Deleting";

/// The `upid` of the conversion: Proxmox's `template` call returns no task id.
pub(super) const NO_UPID: &str = "none";
/// How long a conversion may take before the call is made again.
const CONVERSION_TIMEOUT: Duration = Duration::from_secs(600);

/// One pass over one `LxcTemplate`.
pub(super) type P<'a> = Pass<'a, LxcTemplate>;

impl Managed for LxcTemplate {
    type Status = LxcTemplateStatus;
    const KIND: &'static str = "LxcTemplate";

    fn status_of(&self) -> Option<&LxcTemplateStatus> {
        self.status.as_ref()
    }
    fn conditions(s: &mut LxcTemplateStatus) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcTemplateStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn on_invalid(s: &mut LxcTemplateStatus) {
        s.phase = Some(PHASE_FAILED.into());
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcTemplateStatus> {
        &ctx.status.templates
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcTemplate> {
        &ctx.wakes.templates
    }
}

impl TaskRecord for LxcTemplateStatus {
    fn pending(&self) -> Option<PendingTask> {
        self.pending_task.clone()
    }
    fn set_pending(&mut self, task: Option<PendingTask>) {
        self.pending_task = task;
    }
}

/// Frees what the object holds: its task slot and its download claims.
pub(super) fn release(p: &P<'_>) {
    p.ctx.slots.release(&p.uid);
    p.ctx.downloads.forget(&p.uid);
}

pub(super) fn cluster_key(obj: &LxcTemplate, ctx: &Context) -> ClusterKey {
    ctx.clusters.referenced(obj.spec.cluster_ref.as_ref())
}

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs or just failed;
/// `None` once it has ended well or when there is none.
pub(super) async fn check_task(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    let Some(pt) = p.status.pending_task.clone() else {
        return Ok(None);
    };
    if pt.operation == "template" {
        // the conversion has no task id: the config tells when it is done
        let (Some(vmid), Some(node)) = (p.status.vmid, p.status.node.clone()) else {
            p.status.pending_task = None;
            return Ok(None);
        };
        let done = match handle.client.lxc_config(&node, vmid).await {
            Ok(cfg) => cfg.template == Some(true),
            Err(e) if e.class() == ErrorClass::NotFound => true,
            Err(e) => return Err(e.into()),
        };
        let started = pt.started_at.as_ref().map(|t| t.0).unwrap_or(p.now.0);
        let overdue = p.now.0.duration_since(started).as_secs() > CONVERSION_TIMEOUT.as_secs() as i64;
        if done || overdue {
            p.status.pending_task = None;
            return Ok(None);
        }
        return Ok(Some(Action::requeue(p.ctx.settings.task_poll)));
    }
    match task::poll(p, handle, 3).await? {
        None | Some((_, Polled::Done(_))) => Ok(None),
        Some((_, Polled::Unknown)) => {
            // written before a call whose answer never reached us: what exists decides
            p.ctx.downloads.forget(&p.uid);
            Ok(None)
        }
        Some((pt, Polled::Running)) => Ok(Some(Action::requeue(task::poll_interval(
            pt.started_at.as_ref(),
            jiff::Timestamp::now(),
            p.ctx.settings.task_poll,
        )))),
        Some((pt, Polled::Failed { text, tail })) => {
            p.ctx.downloads.forget(&p.uid);
            let msg = task::failure_message(&pt.operation, &text, &tail);
            let reason = match pt.operation.as_str() {
                "download" => Reason::DownloadFailed,
                "create" => Reason::CreateFailed,
                "delete" => Reason::DeleteFailed,
                _ => Reason::TaskFailed,
            };
            if matches!(reason, Reason::DownloadFailed | Reason::CreateFailed) {
                p.status.phase = Some(PHASE_FAILED.into());
            }
            // not_ready publishes the Event
            let action = p
                .not_ready(reason, msg, Action::requeue(jitter(Duration::from_secs(30))))
                .await?;
            Ok(Some(action))
        }
    }
}

/// Takes a task slot on `node` and starts `call`, recording its UPID as `operation` (the
/// write-ahead marker first). `Ok(Err(e))`: Proxmox refused the call.
pub(super) async fn start_task(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    node: &str,
    operation: &str,
    call: impl std::future::Future<Output = pve::Result<Upid>>,
) -> Result<Result<Action, pve::Error>, Error> {
    match task::start(p, handle, node, operation, true, call).await? {
        Started::Task(_) | Started::NoTask => Ok(Ok(Action::requeue(task::poll_interval(
            None,
            jiff::Timestamp::now(),
            p.ctx.settings.task_poll,
        )))),
        Started::NoSlot => {
            let msg = format!("waiting for a task slot on node {node}");
            p.not_synced(
                Reason::WaitingForTaskSlot,
                msg,
                Action::requeue(jitter(Duration::from_secs(3))),
            )
            .await
            .map(Ok)
        }
        Started::Refused(e) => {
            p.save().await?;
            Ok(Err(e))
        }
    }
}

/// The config of CT `vmid` on `node`, `None` when it does not exist.
pub(super) async fn config(handle: &ClusterHandle, node: &str, vmid: u32) -> Result<Option<LxcConfig>, Error> {
    match handle.client.lxc_config(node, vmid).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The linked clones of template CT `vmid` on `node` (their vmids), found in the listings of
/// the storages that hold its disks, so clones made outside Kubernetes count too.
pub(super) async fn linked_clones(
    handle: &ClusterHandle,
    node: &str,
    vmid: u32,
    cfg: &LxcConfig,
) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    for storage in disk_storages(cfg) {
        let vols = match handle.client.storage_content(node, &storage, None, None).await {
            Ok(v) => v,
            Err(e) if e.class() == ErrorClass::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        for v in vols.iter().filter(|v| is_linked_clone_of(v, vmid)) {
            if let Some(owner) = volume_owner(v) {
                if !out.contains(&owner) {
                    out.push(owner);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `CT 101 (LxcContainer web), CT 102`: names the clones, with their objects where known.
pub(super) async fn describe_clones(p: &P<'_>, vmids: &[u32]) -> String {
    let api: Api<LxcContainer> = Api::namespaced(p.ctx.kube.clone(), &p.obj.namespace().unwrap_or_default());
    let list = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    vmids
        .iter()
        .map(
            |v| match list.iter().find(|c| c.status.as_ref().and_then(|s| s.vmid) == Some(*v)) {
                Some(c) => format!("CT {v} (LxcContainer {})", c.name_any()),
                None => format!("CT {v}"),
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}
