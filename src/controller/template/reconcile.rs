//! The effectful part of the `LxcTemplate` controller: resolve the image (download it when
//! absent), create the template container, convert it with `template`, keep earlier builds while
//! linked clones use them, and clean up on deletion. At most one Proxmox task per pass; the task
//! in flight is kept in `status.pendingTask`; status is written only when it changed.

use super::build::{self, create_params, disk_storages, image_volid, is_linked_clone_of, pick_appliance, volume_owner, Image, TemplatePlan};
use crate::controller::cluster::{ClusterHandle, ClusterKey, Connection};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::container::desired::{identity_tag, InvalidSpec};
use crate::controller::context::Context;
use crate::controller::status::{add_finalizer, apply_status, remove_finalizer};
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::{LxcContainer, PendingTask};
use crate::crd::lxc_template::{LxcTemplate, LxcTemplateStatus, PreviousTemplate};
use crate::crd::{DeletionPolicy, CONDITION_READY, FINALIZER};
use crate::pve::{self, ErrorClass, LxcConfig, TaskResult, Upid};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
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
const NO_UPID: &str = "none";
/// How long a conversion may take before the call is made again.
const CONVERSION_TIMEOUT: Duration = Duration::from_secs(600);

/// One pass over one object.
struct Pass<'a> {
    obj: &'a LxcTemplate,
    ctx: &'a Context,
    api: Api<LxcTemplate>,
    status: LxcTemplateStatus,
    written: Option<LxcTemplateStatus>,
    now: Time,
    uid: String,
    key: ClusterKey,
}

impl Pass<'_> {
    fn cond(&mut self, c: CondSpec) {
        let g = self.obj.metadata.generation;
        conditions::set(&mut self.status.conditions, c, g, &self.now);
    }

    async fn save(&mut self) -> Result<(), Error> {
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        apply_status(&self.api, self.obj, &self.status).await?;
        self.ctx.metrics.kube_write("LxcTemplate");
        self.written = Some(self.status.clone());
        Ok(())
    }

    async fn event(&self, warning: bool, reason: &str, note: String) {
        self.ctx.event(self.obj, warning, reason, note).await;
    }

    fn ready_reason(&self) -> Option<String> {
        conditions::get(&self.status.conditions, CONDITION_READY).map(|c| c.reason.clone())
    }

    /// Not ready, with a reason (an Event when the reason is new); saves and ends the pass.
    async fn not_ready(&mut self, reason: &str, message: String, action: Action) -> Result<Action, Error> {
        let was = self.ready_reason();
        self.cond(CondSpec::no(CONDITION_READY, reason, message.clone()));
        self.save().await?;
        if was.as_deref() != Some(reason) && !matches!(reason, "Downloading" | "Building" | "Converting" | "ClusterNotReady") {
            self.event(true, reason, message).await;
        }
        Ok(action)
    }

    /// The spec cannot be built: `Ready=False, reason=InvalidSpec`; no retry until it changes.
    async fn invalid(&mut self, e: InvalidSpec) -> Result<Action, Error> {
        self.status.phase = Some(PHASE_FAILED.into());
        self.status.observed_generation = self.obj.metadata.generation;
        self.not_ready("InvalidSpec", e.to_string(), Action::await_change()).await
    }

    fn release(&self) {
        self.ctx.release_slot(&self.uid);
        self.ctx.downloads.lock().unwrap().retain(|_, v| *v != self.uid);
    }
}

/// Reconciles one `LxcTemplate`.
pub async fn reconcile(obj: Arc<LxcTemplate>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::instrumented("LxcTemplate", &obj.name_any(), &ctx.metrics, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: transient and lock errors retry soon with jitter; others back off.
pub fn error_policy(obj: Arc<LxcTemplate>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %obj.name_any(), namespace = ?obj.namespace(), class = err.class(), error = %err, "LxcTemplate reconcile failed");
    crate::controller::requeue_after_error(err, &ctx.settings)
}

fn cluster_key(obj: &LxcTemplate) -> ClusterKey {
    ClusterKey {
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.spec.cluster_ref.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| "default".into()),
    }
}

/// The connected cluster, or the reason it cannot be used.
fn connected(ctx: &Context, key: &ClusterKey) -> Result<Arc<ClusterHandle>, String> {
    let Some(h) = ctx.clusters.get(key) else {
        return Err(format!("ProxmoxCluster {} is not connected (missing, or its credentials are not usable)", key.name));
    };
    if h.connected() && h.snapshot().is_some() {
        return Ok(h);
    }
    let why = match &*h.connection.borrow() {
        Connection::Failed { reason, message } => format!("ProxmoxCluster {} is not ready ({reason}): {message}", key.name),
        _ => format!("ProxmoxCluster {} is connecting", key.name),
    };
    Err(why)
}

async fn reconcile_inner(obj: &LxcTemplate, ctx: &Context) -> Result<Action, Error> {
    let api: Api<LxcTemplate> = Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
    let mut p = Pass {
        obj,
        ctx,
        api: api.clone(),
        status: obj.status.clone().unwrap_or_default(),
        written: obj.status.clone(),
        now: Time(jiff::Timestamp::now()),
        uid: obj.uid().unwrap_or_default(),
        key: cluster_key(obj),
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return cleanup(&mut p).await;
    }
    if add_finalizer(&api, obj, FINALIZER).await? {
        ctx.metrics.kube_write("LxcTemplate");
    }
    let handle = match connected(ctx, &p.key) {
        Ok(h) => h,
        Err(why) => {
            p.status.phase.get_or_insert_with(|| PHASE_PENDING.into());
            return p.not_ready("ClusterNotReady", why, Action::requeue(jitter(Duration::from_secs(10)))).await;
        }
    };
    let plan = match build::plan(&obj.spec, &obj.name_any(), &p.uid) {
        Ok(pl) => pl,
        Err(e) => return p.invalid(e).await,
    };
    // a task in flight: check it, and do nothing else until it has ended
    if let Some(action) = check_task(&mut p, &handle).await? {
        return Ok(action);
    }
    // a changed spec builds a new template; the current one is kept as a previous build
    if p.status.build_hash.as_deref() != Some(plan.hash.as_str()) {
        if let (Some(vmid), Some(node)) = (p.status.vmid, p.status.node.clone()) {
            p.status.previous.push(PreviousTemplate { vmid, node: node.clone() });
            p.event(false, "Rebuilding", format!("the spec changed: building a new template; CT {vmid} on {node} is kept while linked clones use it")).await;
        }
        p.status.vmid = None;
        p.status.node = None;
        p.status.os_template = None;
        p.status.build_hash = Some(plan.hash.clone());
        p.status.phase = Some(PHASE_PENDING.into());
        p.cond(CondSpec::no(CONDITION_READY, "Pending", "the template is about to be built"));
        p.save().await?;
    }
    // earlier builds nothing clones from any more are deleted first (one task per pass)
    let kept = match collect_previous(&mut p, &handle).await? {
        Collected::Kept(k) => k,
        Collected::Started(action) => return Ok(action),
    };
    build_current(&mut p, &handle, &plan, kept).await
}

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs or just failed;
/// `None` once it has ended well or when there is none.
async fn check_task(p: &mut Pass<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    let Some(pt) = p.status.pending_task.clone() else { return Ok(None) };
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
    let Ok(upid) = pt.upid.parse::<Upid>() else {
        // written before a call whose answer never reached us: what exists decides
        p.status.pending_task = None;
        p.release();
        return Ok(None);
    };
    let st = match handle.client.task_status(&upid).await {
        Ok(s) => s,
        Err(e) if e.class() == ErrorClass::NotFound || matches!(e, pve::Error::InvalidParameters { .. }) => {
            p.status.pending_task = None;
            p.release();
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match st.result() {
        TaskResult::Running => {
            if !p.ctx.task_slots.lock().unwrap().contains_key(&p.uid) {
                if let Some(permit) = handle.client.try_acquire_task_slot(upid.node()) {
                    p.ctx.hold_slot(&p.uid, permit);
                }
            }
            Ok(Some(Action::requeue(p.ctx.settings.task_poll)))
        }
        TaskResult::Ok | TaskResult::Warnings(_) => {
            p.status.pending_task = None;
            p.release();
            handle.refresh.notify_one();
            Ok(None)
        }
        TaskResult::Failed(text) => {
            p.status.pending_task = None;
            p.release();
            p.ctx.metrics.task_failed(&pt.operation);
            let tail = handle.client.task_log_tail(&upid, 3).await.unwrap_or_default().join(" | ");
            let msg = if tail.is_empty() { format!("{} task failed: {text}", pt.operation) } else { format!("{} task failed: {text} ({tail})", pt.operation) };
            let reason = match pt.operation.as_str() {
                "download" => "DownloadFailed",
                "create" => "CreateFailed",
                "delete" => "DeleteFailed",
                _ => "TaskFailed",
            };
            if matches!(reason, "DownloadFailed" | "CreateFailed") {
                p.status.phase = Some(PHASE_FAILED.into());
            }
            // not_ready publishes the Event
            let action = p.not_ready(reason, msg, Action::requeue(jitter(Duration::from_secs(30)))).await?;
            Ok(Some(action))
        }
    }
}

/// Takes a task slot on `node` and starts `call`, recording its UPID as `operation`.
async fn start_task(p: &mut Pass<'_>, handle: &ClusterHandle, node: &str, operation: &str, call: impl std::future::Future<Output = pve::Result<Upid>>) -> Result<Result<Action, pve::Error>, Error> {
    p.ctx.metrics.queue_wait("LxcTemplate", 1.0);
    let permit = tokio::time::timeout(Duration::from_secs(20), handle.client.acquire_task_slot(node)).await;
    p.ctx.metrics.queue_wait("LxcTemplate", -1.0);
    let permit = match permit {
        Ok(permit) => permit,
        Err(_) => return p.not_ready("WaitingForTaskSlot", format!("waiting for a task slot on node {node}"), Action::requeue(jitter(Duration::from_millis(500)))).await.map(Ok),
    };
    // the marker goes first: a crash after the call leaves the status saying what was started
    p.status.pending_task = Some(PendingTask { upid: "unknown".into(), operation: operation.into(), started_at: Some(p.now.clone()) });
    p.save().await?;
    match call.await {
        Ok(upid) => {
            p.ctx.hold_slot(&p.uid, permit);
            p.ctx.metrics.task_started(operation);
            p.status.pending_task = Some(PendingTask { upid: upid.to_string(), operation: operation.into(), started_at: Some(p.now.clone()) });
            p.save().await?;
            Ok(Ok(Action::requeue(p.ctx.settings.task_poll)))
        }
        Err(e) => {
            p.status.pending_task = None;
            p.save().await?;
            Ok(Err(e))
        }
    }
}

/// The config of CT `vmid` on `node`, `None` when it does not exist.
async fn config(handle: &ClusterHandle, node: &str, vmid: u32) -> Result<Option<LxcConfig>, Error> {
    match handle.client.lxc_config(node, vmid).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The linked clones of template CT `vmid` on `node` (their vmids), found in the listings of
/// the storages that hold its disks, so clones made outside Kubernetes count too.
async fn linked_clones(handle: &ClusterHandle, node: &str, vmid: u32, cfg: &LxcConfig) -> Result<Vec<u32>, Error> {
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
async fn describe_clones(p: &Pass<'_>, vmids: &[u32]) -> String {
    let api: Api<LxcContainer> = Api::namespaced(p.ctx.kube.clone(), &p.obj.namespace().unwrap_or_default());
    let list = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    vmids
        .iter()
        .map(|v| match list.iter().find(|c| c.status.as_ref().and_then(|s| s.vmid) == Some(*v)) {
            Some(c) => format!("CT {v} (LxcContainer {})", c.name_any()),
            None => format!("CT {v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What happened to the earlier builds in this pass.
enum Collected {
    /// No task was started; these are kept because linked clones use them (vmid, clones).
    Kept(Vec<(u32, Vec<u32>)>),
    /// A deletion task was started.
    Started(Action),
}

/// Deletes earlier builds that no linked clone uses any more (at most one task).
async fn collect_previous(p: &mut Pass<'_>, handle: &ClusterHandle) -> Result<Collected, Error> {
    let identity = identity_tag(&p.uid);
    let mut kept = Vec::new();
    for prev in p.status.previous.clone() {
        let Some(cfg) = config(handle, &prev.node, prev.vmid).await? else {
            p.status.previous.retain(|x| *x != prev);
            p.save().await?;
            continue;
        };
        if !cfg.tag_list().contains(&identity) {
            p.event(false, "LeftUntouched", format!("earlier build CT {} on {} no longer carries our tag; it is not deleted", prev.vmid, prev.node)).await;
            p.status.previous.retain(|x| *x != prev);
            p.save().await?;
            continue;
        }
        let clones = linked_clones(handle, &prev.node, prev.vmid, &cfg).await?;
        if !clones.is_empty() || cfg.lock.is_some() {
            kept.push((prev.vmid, clones));
            continue;
        }
        p.event(false, "DeletingPrevious", format!("deleting earlier build CT {} on {}: no linked clone uses it any more", prev.vmid, prev.node)).await;
        let client = handle.client.clone();
        let (n, v) = (prev.node.clone(), prev.vmid);
        let params = pve::DeleteParams::purge_referenced_only();
        return match start_task(p, handle, &prev.node, "delete", async move { client.lxc_delete(&n, v, &params).await }).await? {
            Ok(a) => Ok(Collected::Started(a)),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(Collected::Started(Action::requeue(Duration::from_millis(200)))),
            Err(e) => Err(e.into()),
        };
    }
    Ok(Collected::Kept(kept))
}

/// Builds (or checks) the current template: node, image, create, convert, Ready.
async fn build_current(p: &mut Pass<'_>, handle: &ClusterHandle, plan: &TemplatePlan, kept: Vec<(u32, Vec<u32>)>) -> Result<Action, Error> {
    let spec = &p.obj.spec;
    let snap = handle.snapshot().expect("checked by the caller");
    // where
    let node = match (&p.status.node, &spec.node) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => {
            if !snap.node_online(n) {
                p.status.phase.get_or_insert_with(|| PHASE_PENDING.into());
                return p.not_ready("NodeUnavailable", format!("node {n} is not online in Proxmox"), Action::requeue(jitter(Duration::from_secs(15)))).await;
            }
            n.clone()
        }
        (None, None) => {
            let storage = plan.desired.rootfs.as_ref().map(|r| r.0.clone()).unwrap_or_else(|| "local".into());
            let memory = plan.desired.keys.get("memory").and_then(|m| m.parse::<u64>().ok()).unwrap_or(512) << 20;
            match handle.place(&storage, memory) {
                Some(n) => n,
                None => return p.not_ready("NoNodeAvailable", format!("no online node has storage {storage} for containers (content rootdir)"), Action::requeue(jitter(Duration::from_secs(15)))).await,
            }
        }
    };
    // the image
    let os_template = match p.status.os_template.clone() {
        Some(t) => t,
        None => match resolve_image(p, handle, plan, &node).await? {
            Ok(volid) => {
                p.status.node = Some(node.clone());
                p.status.os_template = Some(volid.clone());
                p.save().await?;
                volid
            }
            Err(action) => return Ok(action),
        },
    };
    // the container
    let vmid = match p.status.vmid {
        Some(v) => v,
        None => {
            let v = match spec.vmid {
                Some(v) => {
                    if let Some((_, clones)) = kept.iter().find(|(pv, _)| *pv == v) {
                        let who = describe_clones(p, clones).await;
                        return p.not_ready("VmidInUse", format!("spec.vmid {v} is the earlier build of this template, which linked clones still use ({who}); remove spec.vmid or choose another to build the changed template"), Action::requeue(jitter(Duration::from_secs(30)))).await;
                    }
                    v
                }
                None => handle.allocate_vmid().await?,
            };
            // the vmid is recorded before anything is created with it
            p.status.vmid = Some(v);
            p.status.node = Some(node.clone());
            p.save().await?;
            v
        }
    };
    let identity = identity_tag(&p.uid);
    // steady state: the inventory shows our template; nothing to read
    let seen = snap.guests.get(&vmid).is_some_and(|g| g.template && g.node == node && g.has_tag(&identity));
    if !(seen && p.status.phase.as_deref() == Some(PHASE_READY)) {
        let Some(cfg) = config(handle, &node, vmid).await? else {
            if p.status.phase.as_deref() == Some(PHASE_READY) {
                p.event(true, "Recreating", format!("template CT {vmid} is gone from Proxmox; building it again")).await;
            }
            p.status.phase = Some(PHASE_BUILDING.into());
            p.cond(CondSpec::no(CONDITION_READY, "Building", format!("creating CT {vmid} on {node} from {os_template}")));
            let params = create_params(&plan.desired, vmid, &os_template);
            let client = handle.client.clone();
            let n = node.clone();
            return match start_task(p, handle, &node, "create", async move { client.lxc_create(&n, &params).await }).await? {
                Ok(a) => {
                    p.event(false, "Building", format!("creating template CT {vmid} on {node} from {os_template}")).await;
                    Ok(a)
                }
                // exists already: the next pass looks at its tag
                Err(pve::Error::AlreadyExists { .. }) => Ok(Action::requeue(Duration::from_millis(500))),
                Err(e) if e.class() == ErrorClass::InvalidSpec => p.invalid(InvalidSpec { field: "(create)".into(), message: format!("Proxmox refused the create: {e}") }).await,
                Err(e) => Err(e.into()),
            };
        };
        if !cfg.tag_list().contains(&identity) {
            if spec.vmid.is_none() && p.status.phase.as_deref() != Some(PHASE_READY) {
                // an id we picked was taken by someone else before our create: pick another
                p.status.vmid = None;
                p.save().await?;
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            p.status.phase = Some(PHASE_FAILED.into());
            return p
                .not_ready("VmidConflict", format!("CT {vmid} exists on {node} but is not managed by this object (it lacks the tag {identity}); it is left untouched — choose another vmid"), Action::requeue(jitter(Duration::from_secs(300))))
                .await;
        }
        if let Some(lock) = &cfg.lock {
            p.cond(CondSpec::no(CONDITION_READY, "Building", format!("CT {vmid} is locked ({lock}); waiting")));
            p.save().await?;
            return Ok(Action::requeue(jitter(p.ctx.settings.lock_retry)));
        }
        if cfg.template != Some(true) {
            p.status.phase = Some(PHASE_BUILDING.into());
            let running = handle.client.lxc_status(&node, vmid).await?.is_running();
            if running {
                let client = handle.client.clone();
                let n = node.clone();
                return match start_task(p, handle, &node, "stop", async move { client.lxc_stop(&n, vmid).await }).await? {
                    Ok(a) => Ok(a),
                    Err(e) => Err(e.into()),
                };
            }
            p.cond(CondSpec::no(CONDITION_READY, "Converting", format!("converting CT {vmid} into a template")));
            handle.client.lxc_template(&node, vmid).await?;
            p.status.pending_task = Some(PendingTask { upid: NO_UPID.into(), operation: "template".into(), started_at: Some(p.now.clone()) });
            p.save().await?;
            return Ok(Action::requeue(p.ctx.settings.task_poll));
        }
    }
    // ready
    let became_ready = !conditions::is_true(&p.status.conditions, CONDITION_READY);
    let mut msg = format!("template CT {vmid} on {node}, built from {os_template}");
    if !kept.is_empty() {
        let mut parts = Vec::new();
        for (v, clones) in &kept {
            parts.push(format!("CT {v} (used by {})", describe_clones(p, clones).await));
        }
        msg.push_str(&format!("; earlier builds kept while linked clones use them: {}", parts.join(", ")));
    }
    p.status.phase = Some(PHASE_READY.into());
    p.cond(CondSpec::yes(CONDITION_READY, "Ready", msg));
    p.status.observed_generation = p.obj.metadata.generation;
    p.save().await?;
    if became_ready {
        p.event(false, "Ready", format!("template CT {vmid} is ready on {node}")).await;
    }
    // earlier builds are looked at again when clones go away (watch) and periodically
    Ok(if p.status.previous.is_empty() { Action::requeue(jitter(Duration::from_secs(600))) } else { Action::requeue(jitter(Duration::from_secs(15))) })
}

/// The image's volume id when it is present on `node`; otherwise starts its download (or
/// explains why it cannot be had) and returns the action that ends the pass.
async fn resolve_image(p: &mut Pass<'_>, handle: &ClusterHandle, plan: &TemplatePlan, node: &str) -> Result<Result<String, Action>, Error> {
    let (volid, storage, file) = match &plan.image {
        Image::Volid(v) => {
            let storage = v.split(':').next().unwrap_or_default().to_string();
            if present(handle, node, &storage, v).await? {
                return Ok(Ok(v.clone()));
            }
            p.status.phase = Some(PHASE_PENDING.into());
            let a = p.not_ready("ImageNotFound", format!("image {v} does not exist on node {node} (spec.image.volid)"), Action::requeue(jitter(Duration::from_secs(60)))).await?;
            return Ok(Err(a));
        }
        Image::Appliance { name } => {
            let index = handle.client.aplinfo(node).await?;
            let Some(entry) = pick_appliance(&index, name) else {
                p.status.phase = Some(PHASE_FAILED.into());
                let a = p.not_ready("ApplianceNotFound", format!("appliance {name} is not in the appliance index of node {node} (spec.image.appliance; see `pveam available`)"), Action::requeue(jitter(Duration::from_secs(300)))).await?;
                return Ok(Err(a));
            };
            (image_volid(&plan.image_storage, &entry.template), plan.image_storage.clone(), entry.template.clone())
        }
        Image::Url { file_name, .. } => (image_volid(&plan.image_storage, file_name), plan.image_storage.clone(), file_name.clone()),
    };
    if present(handle, node, &storage, &volid).await? {
        return Ok(Ok(volid));
    }
    // one download per image: another template may be fetching it already
    let claim = format!("{}/{node}/{volid}", p.key);
    let someone_else = {
        let mut d = p.ctx.downloads.lock().unwrap();
        match d.get(&claim) {
            Some(uid) if *uid != p.uid => true,
            _ => {
                d.insert(claim.clone(), p.uid.clone());
                false
            }
        }
    };
    if someone_else {
        p.status.phase = Some(PHASE_DOWNLOADING.into());
        let a = p.not_ready("Downloading", format!("waiting for the download of {volid} to node {node} started for another template"), Action::requeue(jitter(Duration::from_secs(2)))).await?;
        return Ok(Err(a));
    }
    p.status.phase = Some(PHASE_DOWNLOADING.into());
    p.status.node = Some(node.to_string());
    p.cond(CondSpec::no(CONDITION_READY, "Downloading", format!("downloading {file} to {storage} on node {node}")));
    let client = handle.client.clone();
    let n = node.to_string();
    let started = match &plan.image {
        Image::Url { url, algorithm, checksum, file_name } => {
            let params = pve::DownloadUrlParams {
                url: url.clone(),
                content: "vztmpl".into(),
                filename: file_name.clone(),
                checksum: Some(checksum.clone()),
                checksum_algorithm: Some(algorithm.clone()),
                ..Default::default()
            };
            start_task(p, handle, node, "download", async move { client.download_url(&n, &storage, &params).await }).await?
        }
        _ => {
            let f = file.clone();
            start_task(p, handle, node, "download", async move { client.aplinfo_download(&n, &storage, &f).await }).await?
        }
    };
    match started {
        Ok(a) => {
            p.event(false, "Downloading", format!("downloading {file} to {} on node {node}", plan.image_storage)).await;
            Ok(Err(a))
        }
        Err(e) => {
            p.ctx.downloads.lock().unwrap().remove(&claim);
            if matches!(e.class(), ErrorClass::InvalidSpec | ErrorClass::Permanent | ErrorClass::Conflict) {
                p.status.phase = Some(PHASE_FAILED.into());
                let a = p.not_ready("DownloadFailed", format!("Proxmox refused to download {file} to {} on node {node}: {}", plan.image_storage, e.message()), Action::requeue(jitter(Duration::from_secs(120)))).await?;
                return Ok(Err(a));
            }
            Err(e.into())
        }
    }
}

/// Whether `volid` is listed in `storage` on `node` (a storage missing there counts as absent).
async fn present(handle: &ClusterHandle, node: &str, storage: &str, volid: &str) -> Result<bool, Error> {
    match handle.client.storage_content(node, storage, Some("vztmpl"), None).await {
        Ok(list) => Ok(list.iter().any(|v| v.volid == volid)),
        Err(e) if matches!(e.class(), ErrorClass::NotFound | ErrorClass::InvalidSpec | ErrorClass::Permanent) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletion: refused while linked clones depend on any build; `Retain` removes our tag and
/// leaves the templates; `Delete` destroys them (one task per pass), then the finalizer goes.
async fn cleanup(p: &mut Pass<'_>) -> Result<Action, Error> {
    let obj = p.obj;
    let api = p.api.clone();
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let mut targets: Vec<(u32, String)> = p.status.previous.iter().map(|x| (x.vmid, x.node.clone())).collect();
    if let (Some(v), Some(n)) = (p.status.vmid, p.status.node.clone()) {
        targets.push((v, n));
    }
    if targets.is_empty() && p.status.pending_task.is_none() {
        p.release();
        remove_finalizer(&api, obj, FINALIZER).await?;
        return Ok(Action::await_change());
    }
    let handle = match connected(p.ctx, &p.key) {
        Ok(h) => h,
        Err(why) => return p.not_ready("ClusterNotReady", format!("cannot clean up: {why}"), Action::requeue(jitter(Duration::from_secs(10)))).await,
    };
    if let Some(action) = check_task(p, &handle).await? {
        return Ok(action);
    }
    let identity = identity_tag(&p.uid);
    // what still exists and is ours
    let mut ours: Vec<(u32, String, LxcConfig)> = Vec::new();
    for (vmid, node) in targets {
        match config(&handle, &node, vmid).await? {
            None => {}
            Some(cfg) if !cfg.tag_list().contains(&identity) => {
                p.event(false, "LeftUntouched", format!("CT {vmid} on {node} does not carry our tag; it is not deleted")).await;
            }
            Some(cfg) => ours.push((vmid, node, cfg)),
        }
    }
    if obj.spec.deletion_policy == DeletionPolicy::Retain {
        for (vmid, node, cfg) in &ours {
            let tags: Vec<String> = cfg.tag_list().into_iter().filter(|t| *t != identity).collect();
            let update = if tags.is_empty() {
                pve::ConfigUpdate { delete: vec!["tags".into()], digest: cfg.digest.clone(), ..Default::default() }
            } else {
                pve::ConfigUpdate { set: [("tags".to_string(), tags.join(";"))].into(), digest: cfg.digest.clone(), ..Default::default() }
            };
            handle.client.lxc_update_config(node, *vmid, &update).await?;
            p.event(false, "Retained", format!("template CT {vmid} stays in Proxmox on {node} (deletionPolicy Retain); our tag was removed")).await;
        }
        p.release();
        remove_finalizer(&api, obj, FINALIZER).await?;
        return Ok(Action::await_change());
    }
    // refused while linked clones depend on it
    let mut users: Vec<u32> = Vec::new();
    for (vmid, node, cfg) in &ours {
        users.extend(linked_clones(&handle, node, *vmid, cfg).await?);
    }
    if !users.is_empty() {
        users.sort();
        users.dedup();
        let who = describe_clones(p, &users).await;
        let msg = format!("deletion waits: linked clones depend on this template: {who}; delete them (or make them full clones) first");
        let was = conditions::get(&p.status.conditions, CONDITION_READY).map(|c| (c.reason.clone(), c.message.clone()));
        p.cond(CondSpec::no(CONDITION_READY, "InUse", msg.clone()));
        p.save().await?;
        if was != Some(("InUse".into(), msg.clone())) {
            p.event(true, "InUse", msg).await;
        }
        return Ok(Action::requeue(jitter(Duration::from_secs(10))));
    }
    let Some((vmid, node, cfg)) = ours.into_iter().next() else {
        p.release();
        remove_finalizer(&api, obj, FINALIZER).await?;
        return Ok(Action::await_change());
    };
    p.status.phase = Some(PHASE_DELETING.into());
    if let Some(lock) = &cfg.lock {
        return p.not_ready("Locked", format!("CT {vmid} is locked ({lock}); deletion waits"), Action::requeue(jitter(p.ctx.settings.lock_retry))).await;
    }
    p.cond(CondSpec::no(CONDITION_READY, "Deleting", format!("deleting template CT {vmid} on {node}")));
    p.event(false, "Deleting", format!("destroying template CT {vmid} on {node}")).await;
    let client = handle.client.clone();
    let n = node.clone();
    let params = pve::DeleteParams::purge_referenced_only();
    match start_task(p, &handle, &node, "delete", async move { client.lxc_delete(&n, vmid, &params).await }).await? {
        Ok(a) => Ok(a),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(Action::requeue(Duration::from_millis(200))),
        Err(e) => Err(e.into()),
    }
}
