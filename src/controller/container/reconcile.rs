//! The effectful part of the `LxcContainer` controller: resolve → validate → plan → apply (at
//! most one Proxmox task started per pass) → status (server-side apply, only when changed).

use super::desired::{validate, Desired, InvalidSpec, Source};
use super::plan::{plan, Observed, PowerAction};
use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::Context;
use crate::controller::status::{add_finalizer, apply_status, remove_finalizer};
use crate::controller::{jitter, Error};
use crate::crd::lxc_backup::LxcBackup;
use crate::crd::lxc_container::*;
use crate::crd::lxc_template::LxcTemplate;
use crate::crd::{DeletionPolicy, CONDITION_READY, CONDITION_SYNCED, FINALIZER};
use crate::pve::{self, ErrorClass, LxcConfig, TaskResult, Upid};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The condition type set while changes wait for a restart of the container.
pub const CONDITION_PENDING_RESTART: &str = "PendingRestart";
/// Set (True) when no progress is possible without a change by the user; read by Flux's kstatus.
pub const CONDITION_STALLED: &str = "Stalled";

/// The `upid` recorded before a task-starting call returns: if the operator dies in between, the
/// next pass knows a call may have been made, and the identity rules decide what exists.
pub const UNKNOWN_UPID: &str = "unknown";

/// One pass over one object.
struct Pass<'a> {
    obj: &'a LxcContainer,
    ctx: &'a Context,
    api: Api<LxcContainer>,
    status: LxcContainerStatus,
    written: Option<LxcContainerStatus>,
    now: Time,
    uid: String,
}

impl Pass<'_> {
    fn generation(&self) -> Option<i64> {
        self.obj.metadata.generation
    }

    fn cond(&mut self, c: CondSpec) {
        let g = self.generation();
        conditions::set(&mut self.status.conditions, c, g, &self.now);
    }

    /// Writes the status when it differs from the last one written (ignoring `lastSyncTime`).
    async fn save(&mut self) -> Result<(), Error> {
        let mut cmp = self.status.clone();
        cmp.last_sync_time = self.written.as_ref().and_then(|w| w.last_sync_time.clone());
        if self.written.as_ref() == Some(&cmp) {
            return Ok(());
        }
        self.status.last_sync_time = Some(self.now.clone());
        apply_status(&self.api, self.obj, &self.status).await?;
        self.ctx.metrics.kube_write("LxcContainer");
        self.written = Some(self.status.clone());
        self.ctx.last_status.lock().unwrap().insert(self.uid.clone(), self.status.clone());
        Ok(())
    }

    async fn event(&self, warning: bool, reason: &str, note: String) {
        self.ctx.event(self.obj, warning, reason, note).await;
    }

    /// Not ready, with a reason; the status is saved and the pass ends with `action`.
    async fn not_ready(&mut self, reason: &str, message: String, action: Action) -> Result<Action, Error> {
        self.cond(CondSpec::no(CONDITION_READY, reason, message));
        self.save().await?;
        Ok(action)
    }

    /// The spec cannot be applied: `Ready=False, reason=InvalidSpec` naming the field; no retry
    /// until the spec changes.
    async fn invalid(&mut self, e: InvalidSpec) -> Result<Action, Error> {
        let msg = e.to_string();
        let was = conditions::get(&self.status.conditions, CONDITION_READY).map(|c| (c.reason.clone(), c.message.clone()));
        self.cond(CondSpec::no(CONDITION_READY, "InvalidSpec", msg.clone()));
        self.cond(CondSpec::no(CONDITION_SYNCED, "InvalidSpec", msg.clone()));
        self.cond(CondSpec::yes(CONDITION_STALLED, "InvalidSpec", msg.clone()));
        if self.status.vmid.is_none() || self.status.phase.is_none() || self.status.phase == Some(ContainerPhase::Pending) {
            self.status.phase = Some(ContainerPhase::Failed);
        }
        self.status.observed_generation = self.generation();
        self.save().await?;
        if was != Some(("InvalidSpec".into(), msg.clone())) {
            self.event(true, "InvalidSpec", msg).await;
        }
        Ok(Action::await_change())
    }
}

/// Reconciles one `LxcContainer`.
pub async fn reconcile(obj: Arc<LxcContainer>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::instrumented("LxcContainer", &obj.name_any(), &ctx.metrics, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: transient and lock errors retry soon with jitter; others back off.
pub fn error_policy(obj: Arc<LxcContainer>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %obj.name_any(), namespace = ?obj.namespace(), class = err.class(), error = %err, "reconcile failed");
    crate::controller::requeue_after_error(err, &ctx.settings)
}

fn cluster_key(obj: &LxcContainer) -> ClusterKey {
    ClusterKey {
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.spec.cluster_ref.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| "default".into()),
    }
}

async fn reconcile_inner(obj: &LxcContainer, ctx: &Context) -> Result<Action, Error> {
    let api: Api<LxcContainer> = Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default());
    // the status this process wrote last is newer than a cache that has not seen it yet; acting
    // on the older one could redo a create or drop a pending task
    let uid = obj.uid().unwrap_or_default();
    let last = ctx.last_status.lock().unwrap().get(&uid).cloned();
    let current = match (last, &obj.status) {
        (Some(mine), Some(cached)) if &mine != cached => Some(mine),
        (Some(mine), None) => Some(mine),
        (Some(_), cached) => {
            // the cache has caught up: it is the reference again (and the copy costs memory)
            ctx.last_status.lock().unwrap().remove(&uid);
            cached.clone()
        }
        (None, cached) => cached.clone(),
    };
    let mut p = Pass {
        obj,
        ctx,
        api: api.clone(),
        status: current.clone().unwrap_or_default(),
        written: current,
        // whole seconds, as the apiserver stores them: a status read back equals the one written
        now: Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap_or_else(|_| jiff::Timestamp::now())),
        uid: obj.uid().unwrap_or_default(),
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return cleanup(&mut p).await;
    }
    if obj.spec.management == Management::Full && add_finalizer(&api, obj, FINALIZER).await? {
        ctx.metrics.kube_write("LxcContainer");
        // the finalizer patch triggers no new pass (generation unchanged): go on
    }
    let key = cluster_key(obj);
    let Some(handle) = ctx.clusters.get(&key) else {
        if p.status.phase.is_none() {
            p.status.phase = Some(ContainerPhase::Pending);
        }
        return p.not_ready("ClusterNotReady", format!("ProxmoxCluster {} is not connected (missing, or its credentials are not usable)", key.name), Action::requeue(jitter(Duration::from_secs(10)))).await;
    };
    if !handle.connected() || handle.snapshot().is_none() {
        if p.status.phase.is_none() {
            p.status.phase = Some(ContainerPhase::Pending);
        }
        let why = match &*handle.connection.borrow() {
            crate::controller::cluster::Connection::Failed { reason, message } => format!("ProxmoxCluster {} is not ready ({reason}): {message}", key.name),
            _ => format!("ProxmoxCluster {} is connecting", key.name),
        };
        return p.not_ready("ClusterNotReady", why, Action::requeue(jitter(Duration::from_secs(5)))).await;
    }
    let desired = match validate(&obj.spec, &obj.name_any(), &p.uid) {
        Ok(d) => d,
        Err(e) => return p.invalid(e).await,
    };
    // a valid spec can make progress again (set anew below if it cannot)
    conditions::remove(&mut p.status.conditions, CONDITION_STALLED);
    if let (Some(have), Some(want)) = (p.status.vmid, obj.spec.vmid) {
        if have != want && obj.spec.management == Management::Full {
            return p.invalid(InvalidSpec { field: "vmid".into(), message: format!("vmid is immutable: this container is {have}") }).await;
        }
    }
    if obj.spec.management == Management::ObserveOnly {
        return observe_only(&mut p, &handle).await;
    }
    // a task in flight: check it, and do nothing else until it has ended
    if let Some(action) = check_pending_task(&mut p, &handle).await? {
        return Ok(action);
    }
    let vmid = match p.status.vmid {
        Some(v) => v,
        None => {
            let v = match obj.spec.vmid {
                Some(v) => v,
                None => handle.allocate_vmid().await?,
            };
            // the vmid is recorded before anything is created with it
            p.status.vmid = Some(v);
            p.status.phase = Some(ContainerPhase::Pending);
            p.save().await?;
            v
        }
    };
    match locate(&handle, vmid, &p.status, obj.spec.node.as_deref()).await? {
        None => {
            if matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped)) {
                p.event(true, "Recreating", format!("CT {vmid} is gone from Proxmox; creating it again with the same vmid")).await;
            }
            create(&mut p, &handle, &desired, vmid).await
        }
        Some(found) => converge(&mut p, &handle, &desired, vmid, found).await,
    }
}

/// Where a container was found, with its config and power state (read together: one round
/// trip instead of two on every pass).
struct Located {
    node: String,
    config: LxcConfig,
    current: pve::LxcStatus,
}

/// Reads config and status of `vmid` on `node` concurrently; `None` when it is not there.
async fn read_on(handle: &ClusterHandle, node: &str, vmid: u32) -> Result<Option<Located>, Error> {
    let (cfg, st) = tokio::join!(handle.client.lxc_config(node, vmid), handle.client.lxc_status(node, vmid));
    match cfg {
        Ok(config) => Ok(Some(Located { node: node.to_string(), config, current: st? })),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finds the container: on the node the inventory says, else the node in status, else the
/// spec's node. `None` when Proxmox has no config for it on any of them.
async fn locate(handle: &ClusterHandle, vmid: u32, status: &LxcContainerStatus, spec_node: Option<&str>) -> Result<Option<Located>, Error> {
    let snap = handle.snapshot();
    let mut nodes: Vec<String> = Vec::new();
    if let Some(g) = snap.as_ref().and_then(|s| s.guests.get(&vmid)) {
        nodes.push(g.node.clone());
    }
    nodes.extend(status.node.clone());
    nodes.extend(spec_node.map(str::to_string));
    let mut seen = std::collections::HashSet::new();
    for node in nodes.into_iter().filter(|n| seen.insert(n.clone())) {
        if let Some(found) = read_on(handle, &node, vmid).await? {
            return Ok(Some(found));
        }
    }
    // moved behind our back since the last inventory? ask for a fresh one once — only for a
    // container known to have existed (a new one is simply not there yet)
    let existed = matches!(status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped | ContainerPhase::Deleting));
    if !existed {
        return Ok(None);
    }
    if let Some(s) = handle.fresh_snapshot(Instant::now(), Duration::from_secs(10)).await {
        if let Some(g) = s.guests.get(&vmid) {
            if status.node.as_deref() != Some(g.node.as_str()) {
                return read_on(handle, &g.node, vmid).await;
            }
        }
    }
    Ok(None)
}

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs; `None` once it has
/// ended (its outcome is recorded) or when there is none.
async fn check_pending_task(p: &mut Pass<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    let Some(pt) = p.status.pending_task.clone() else { return Ok(None) };
    let Ok(upid) = pt.upid.parse::<Upid>() else {
        // written before a call whose answer never reached us: the identity rules sort it out
        p.status.pending_task = None;
        p.ctx.release_slot(&p.uid);
        return Ok(None);
    };
    let st = match handle.client.task_status(&upid).await {
        Ok(s) => s,
        Err(e) if e.class() == ErrorClass::NotFound || matches!(e, pve::Error::InvalidParameters { .. }) => {
            p.status.pending_task = None;
            p.ctx.release_slot(&p.uid);
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match st.result() {
        TaskResult::Running => {
            // keep the slot of a task started by an earlier operator process, too
            if !p.ctx.task_slots.lock().unwrap().contains_key(&p.uid) {
                if let Some(permit) = handle.client.try_acquire_task_slot(upid.node()) {
                    p.ctx.hold_slot(&p.uid, permit);
                }
            }
            p.save().await?;
            Ok(Some(Action::requeue(p.ctx.settings.task_poll)))
        }
        TaskResult::Ok | TaskResult::Warnings(_) => {
            p.status.pending_task = None;
            p.ctx.release_slot(&p.uid);
            handle.refresh.notify_one();
            Ok(None)
        }
        TaskResult::Failed(text) => {
            p.status.pending_task = None;
            p.ctx.release_slot(&p.uid);
            p.ctx.metrics.task_failed(&pt.operation);
            let tail = handle.client.task_log_tail(&upid, 3).await.unwrap_or_default().join(" | ");
            let msg = if tail.is_empty() { format!("{} task failed: {text}", pt.operation) } else { format!("{} task failed: {text} ({tail})", pt.operation) };
            p.event(true, "TaskFailed", msg.clone()).await;
            p.cond(CondSpec::no(CONDITION_SYNCED, "TaskFailed", msg.clone()));
            if pt.operation == "create" || pt.operation == "clone" || pt.operation == "restore" {
                p.status.phase = Some(ContainerPhase::Pending);
                p.cond(CondSpec::no(CONDITION_READY, "CreateFailed", msg));
            }
            p.save().await?;
            Ok(Some(Action::requeue(jitter(Duration::from_secs(5)))))
        }
    }
}

/// A task slot on `node`, if one is free now. A pass never waits for one: with a bounded number
/// of reconciles in flight, passes parked on a slot would keep out the task polls that free
/// slots. The object is requeued instead (see [`SLOT_RETRY`]) and counted in `plo_queue_depth`.
fn task_slot(p: &Pass<'_>, handle: &ClusterHandle, node: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let permit = handle.client.try_acquire_task_slot(node);
    p.ctx.slot_waiting(&p.uid, permit.is_none().then(|| (node, kube::runtime::reflector::ObjectRef::from_obj(p.obj))));
    permit
}

/// How soon an object that found no free task slot looks again on its own (plus up to 20 %
/// jitter). Waiters are woken first come first as slots free up; this is only the safety net
/// for slots freed elsewhere (another controller, a failed call).
const SLOT_RETRY: Duration = Duration::from_secs(3);

async fn start_task(p: &mut Pass<'_>, handle: &ClusterHandle, node: &str, operation: &str, call: impl std::future::Future<Output = pve::Result<Upid>>) -> Result<Action, Error> {
    let permit = match task_slot(p, handle, node) {
        Some(p) => p,
        None => {
            p.cond(CondSpec::no(CONDITION_SYNCED, "WaitingForTaskSlot", format!("waiting for a task slot on node {node}")));
            p.save().await?;
            return Ok(Action::requeue(jitter(SLOT_RETRY)));
        }
    };
    match call.await {
        Ok(upid) => {
            p.ctx.hold_slot(&p.uid, permit);
            p.ctx.metrics.task_started(operation);
            p.status.pending_task = Some(PendingTask { upid: upid.to_string(), operation: operation.into(), started_at: Some(p.now.clone()) });
            p.cond(CondSpec::no(CONDITION_SYNCED, "TaskRunning", format!("{operation} is running on {node}")));
            p.save().await?;
            Ok(Action::requeue(p.ctx.settings.task_poll))
        }
        Err(e) => {
            drop(permit);
            p.ctx.wake_slot_waiters();
            match e.class() {
                ErrorClass::InvalidSpec => p.invalid(InvalidSpec { field: operation.into(), message: format!("Proxmox refused it: {e}") }).await,
                _ => Err(e.into()),
            }
        }
    }
}

async fn create(p: &mut Pass<'_>, handle: &ClusterHandle, desired: &Desired, vmid: u32) -> Result<Action, Error> {
    let spec = &p.obj.spec;
    let ns = p.obj.namespace().unwrap_or_default();
    let snap = handle.snapshot().expect("checked by the caller");
    let memory_bytes = desired.keys.get("memory").and_then(|m| m.parse::<u64>().ok()).unwrap_or(512) << 20;
    let rootfs_storage = desired.rootfs.as_ref().map(|r| r.0.clone()).unwrap_or_else(|| "local".into());
    // what to create from
    enum How {
        Create { ostemplate: String, restore: bool },
        Clone { src_node: String, src_vmid: u32, full: bool },
    }
    // a backup archive on storage that is not shared can only be restored on its node
    let mut archive_node: Option<String> = None;
    let how = match &desired.source {
        Source::OsTemplate(t) => How::Create { ostemplate: t.clone(), restore: false },
        Source::BackupVolid(v) => How::Create { ostemplate: v.clone(), restore: true },
        Source::BackupName(n) => {
            let backups: Api<LxcBackup> = Api::namespaced(p.ctx.kube.clone(), &ns);
            match backups.get_opt(n).await?.and_then(|b| b.status).and_then(|s| Some((s.volid?, s.node))) {
                Some((v, bnode)) => {
                    let storage = v.split_once(':').map(|x| x.0).unwrap_or_default();
                    if !snap.storages.iter().any(|s| s.name == storage && s.shared) {
                        archive_node = bnode;
                    }
                    How::Create { ostemplate: v, restore: true }
                }
                None => return p.not_ready("WaitingForBackup", format!("LxcBackup {n} has no completed archive yet"), Action::requeue(jitter(Duration::from_secs(10)))).await,
            }
        }
        Source::Clone { vmid: src, full } => match snap.guests.get(src) {
            Some(g) => How::Clone { src_node: g.node.clone(), src_vmid: *src, full: *full || !g.template },
            None => return p.not_ready("SourceNotFound", format!("source CT {src} does not exist in Proxmox"), Action::requeue(jitter(Duration::from_secs(30)))).await,
        },
        Source::Template { name, full } => {
            let templates: Api<LxcTemplate> = Api::namespaced(p.ctx.kube.clone(), &ns);
            let t = templates.get_opt(name).await?;
            let ready = t.as_ref().and_then(|t| t.status.as_ref()).filter(|s| conditions::is_true(&s.conditions, CONDITION_READY));
            match ready.and_then(|s| Some((s.vmid?, s.node.clone()?))) {
                Some((tv, tn)) => How::Clone { src_node: tn, src_vmid: tv, full: *full },
                None => return p.not_ready("WaitingForTemplate", format!("LxcTemplate {name} is not Ready yet"), Action::requeue(jitter(Duration::from_secs(5)))).await,
            }
        }
    };
    // where
    let node = match (&spec.node, &how) {
        (Some(n), _) => {
            if !snap.node_online(n) {
                return p.not_ready("NodeUnavailable", format!("node {n} is not online in Proxmox"), Action::requeue(jitter(Duration::from_secs(15)))).await;
            }
            n.clone()
        }
        (None, How::Clone { src_node, .. }) => src_node.clone(),
        (None, How::Create { .. }) if archive_node.is_some() => {
            let n = archive_node.clone().unwrap_or_default();
            if !snap.node_online(&n) {
                return p.not_ready("NodeUnavailable", format!("the backup archive is on node {n}, which is not online"), Action::requeue(jitter(Duration::from_secs(15)))).await;
            }
            n
        }
        (None, How::Create { .. }) => match handle.place(&rootfs_storage, memory_bytes) {
            Some(n) => n,
            None => {
                return p
                    .not_ready("NoNodeAvailable", format!("no online node has storage {rootfs_storage} for containers (content rootdir)"), Action::requeue(jitter(Duration::from_secs(15))))
                    .await
            }
        },
    };
    // a clone onto another node: Proxmox `target` works only when every disk of the source is
    // on shared storage; otherwise a full clone is made next to the source and then migrated
    // (the normal update path moves it to spec.node), and a linked clone is refused
    let node = match &how {
        How::Clone { src_node, src_vmid, full } if node != *src_node => {
            let src_cfg = handle.client.lxc_config(src_node, *src_vmid).await?;
            let local: Vec<String> = crate::controller::template::build::disk_storages(&src_cfg)
                .into_iter()
                .filter(|s| !snap.storages.iter().any(|st| st.node == *src_node && st.name == *s && st.shared))
                .collect();
            if local.is_empty() {
                node
            } else if *full {
                src_node.clone()
            } else {
                let what = match &desired.source {
                    Source::Template { name, .. } => format!("LxcTemplate {name} (CT {src_vmid})"),
                    _ => format!("CT {src_vmid}"),
                };
                p.status.phase = Some(ContainerPhase::Pending);
                return p
                    .not_ready(
                        "CloneNotPossible",
                        format!("a linked clone of {what} can only be made on node {src_node}: its disks are on storage {} that is not shared; remove spec.node, set it to {src_node}, or ask for a full clone", local.join(", ")),
                        Action::requeue(jitter(Duration::from_secs(60))),
                    )
                    .await;
            }
        }
        _ => node,
    };
    let slot_node = match &how {
        How::Clone { src_node, .. } => src_node.clone(),
        How::Create { .. } => node.clone(),
    };
    let permit = match task_slot(p, handle, &slot_node) {
        Some(permit) => permit,
        None => {
            p.status.phase = Some(ContainerPhase::Pending);
            return p.not_ready("WaitingForTaskSlot", format!("waiting for a task slot on node {node}"), Action::requeue(jitter(SLOT_RETRY))).await;
        }
    };
    // the marker goes first: a crash after the call leaves the status saying what was started
    let operation = match &how {
        How::Create { restore: true, .. } => "restore",
        How::Create { .. } => "create",
        How::Clone { .. } => "clone",
    };
    p.status.node = Some(node.clone());
    p.status.phase = Some(ContainerPhase::Creating);
    p.status.pending_task = Some(PendingTask { upid: UNKNOWN_UPID.into(), operation: operation.into(), started_at: Some(p.now.clone()) });
    p.cond(CondSpec::no(CONDITION_READY, "Creating", format!("creating CT {vmid} on {node}")));
    p.save().await?;
    let result = match &how {
        How::Create { ostemplate, restore } => {
            let password = match spec.auth.as_ref().and_then(|a| a.password_secret_ref.as_ref()) {
                Some(r) => {
                    let secrets: Api<Secret> = Api::namespaced(p.ctx.kube.clone(), &ns);
                    let value = secrets.get_opt(&r.name).await?.and_then(|s| s.data.and_then(|d| d.get(&r.key).map(|v| String::from_utf8_lossy(&v.0).into_owned())));
                    match value {
                        Some(v) => Some(v),
                        None => {
                            p.status.pending_task = None;
                            p.ctx.release_slot(&p.uid);
                            drop(permit);
                            return p.not_ready("PasswordSecretNotFound", format!("Secret {} with key {} not found", r.name, r.key), Action::requeue(jitter(Duration::from_secs(15)))).await;
                        }
                    }
                }
                None => None,
            };
            let params = create_params(desired, vmid, ostemplate, *restore, password, spec.auth.as_ref());
            handle.client.lxc_create(&node, &params).await
        }
        How::Clone { src_node, src_vmid, full } => {
            let params = pve::CloneParams {
                newid: vmid,
                full: Some(*full),
                target: (node != *src_node).then(|| node.clone()),
                storage: if *full { desired.rootfs.as_ref().map(|r| r.0.clone()) } else { None },
                hostname: desired.keys.get("hostname").cloned(),
                pool: desired.pool.clone(),
                description: desired.keys.get("description").cloned(),
                ..Default::default()
            };
            handle.client.lxc_clone(src_node, *src_vmid, &params).await
        }
    };
    match result {
        Ok(upid) => {
            p.ctx.hold_slot(&p.uid, permit);
            p.ctx.metrics.task_started(operation);
            p.status.pending_task = Some(PendingTask { upid: upid.to_string(), operation: operation.into(), started_at: Some(p.now.clone()) });
            p.save().await?;
            p.event(false, "Creating", format!("{operation} of CT {vmid} started on {node}")).await;
            Ok(Action::requeue(p.ctx.settings.task_poll))
        }
        Err(e) => {
            drop(permit);
            p.ctx.wake_slot_waiters();
            p.status.pending_task = None;
            p.status.phase = Some(ContainerPhase::Pending);
            match e.class() {
                // exists already: the next pass looks at its tag (ours → adopt; not ours → conflict)
                ErrorClass::Conflict if matches!(e, pve::Error::AlreadyExists { .. }) => {
                    handle.refresh.notify_one();
                    p.save().await?;
                    Ok(Action::requeue(Duration::from_millis(500)))
                }
                ErrorClass::InvalidSpec => p.invalid(InvalidSpec { field: "source".into(), message: format!("Proxmox refused the {operation}: {e}") }).await,
                _ => {
                    p.cond(CondSpec::no(CONDITION_READY, "CreateFailed", e.to_string()));
                    p.save().await?;
                    Err(e.into())
                }
            }
        }
    }
}

fn create_params(d: &Desired, vmid: u32, ostemplate: &str, restore: bool, password: Option<String>, auth: Option<&ContainerAuth>) -> pve::LxcCreateParams {
    let k = |key: &str| d.keys.get(key).cloned();
    let mut params = pve::LxcCreateParams {
        vmid,
        ostemplate: ostemplate.to_string(),
        hostname: k("hostname"),
        rootfs: d.rootfs.as_ref().and_then(|(s, g)| pve::props::new_volume(s, *g).ok()),
        mount_points: d
            .mount_points
            .iter()
            .filter_map(|(i, m)| {
                let mp = pve::MountPoint { volume: pve::props::new_volume(&m.storage, m.size_gib).ok()?, mp: Some(m.path.clone()), backup: m.backup, ro: m.read_only, ..Default::default() };
                Some((*i, mp.encode_mp().ok()?))
            })
            .collect(),
        networks: d.nets.iter().filter_map(|(i, n)| Some((*i, n.encode().ok()?))).collect(),
        memory: k("memory").and_then(|v| v.parse().ok()),
        swap: k("swap").and_then(|v| v.parse().ok()),
        cores: k("cores").and_then(|v| v.parse().ok()),
        cpulimit: k("cpulimit").and_then(|v| v.parse().ok()),
        cpuunits: k("cpuunits").and_then(|v| v.parse().ok()),
        password,
        ssh_public_keys: auth.filter(|a| !a.ssh_public_keys.is_empty()).map(|a| a.ssh_public_keys.join("\n")),
        unprivileged: if restore { None } else { Some(d.unprivileged) },
        features: k("features"),
        pool: d.pool.clone(),
        tags: Some(d.all_tags().join(";")),
        description: k("description"),
        start: Some(d.state == PowerState::Running),
        onboot: k("onboot").map(|v| v == "1"),
        startup: k("startup"),
        nameserver: k("nameserver"),
        searchdomain: k("searchdomain"),
        protection: k("protection").map(|v| v == "1"),
        restore,
        ..Default::default()
    };
    if restore {
        params.unique = Some(true);
    }
    params
}

async fn converge(p: &mut Pass<'_>, handle: &ClusterHandle, desired: &Desired, vmid: u32, found: Located) -> Result<Action, Error> {
    let Located { node, config: cfg, current } = found;
    let ours = cfg.tag_list().contains(&desired.identity_tag);
    // a locked container cannot be judged: while Proxmox creates one, its config holds little
    // more than `lock: create` (no tags yet), so "not ours" would be a guess — wait for the lock
    if !ours {
        if let Some(lock) = &cfg.lock {
            p.cond(CondSpec::no(CONDITION_SYNCED, "Locked", format!("CT {vmid} is locked ({lock}); waiting before deciding whose it is")));
            p.save().await?;
            return Ok(Action::requeue(jitter(p.ctx.settings.lock_retry)));
        }
    }
    // a clone we started carries no tag until our first update: it is claimed below
    let claim = matches!(&p.status.phase, Some(ContainerPhase::Creating)) && matches!(desired.source, Source::Clone { .. } | Source::Template { .. });
    // an id we picked ourselves (never the user's) held by an unlocked container without our tag
    // is someone else's — also after a crash or failed create left us in Creating or Failed
    let never_ours = matches!(p.status.phase, None | Some(ContainerPhase::Pending | ContainerPhase::Creating | ContainerPhase::Failed));
    if !ours && !claim && p.obj.spec.vmid.is_none() && never_ours {
        // an id we picked ourselves was taken by someone else before our create: pick another
        tracing::info!(object = %p.obj.name_any(), vmid, "allocated vmid is taken by a container that is not ours; allocating another");
        p.status.vmid = None;
        p.status.phase = Some(ContainerPhase::Pending);
        p.status.node = None;
        conditions::remove(&mut p.status.conditions, CONDITION_STALLED);
        p.save().await?;
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    // (a clone we started whose tag is not set yet is claimed: the config update below sets it)
    if !ours && !claim {
        let msg = format!("CT {vmid} exists on {node} but is not managed by this object (it lacks the tag {}); it is left untouched — choose another vmid, or adopt it with management: ObserveOnly", desired.identity_tag);
        p.status.phase = Some(ContainerPhase::Failed);
        p.cond(CondSpec::no(CONDITION_SYNCED, "VmidConflict", msg.clone()));
        let was = conditions::get(&p.status.conditions, CONDITION_READY).map(|c| c.reason.clone());
        p.cond(CondSpec::no(CONDITION_READY, "VmidConflict", msg.clone()));
        p.cond(CondSpec::yes(CONDITION_STALLED, "VmidConflict", msg.clone()));
        p.save().await?;
        if was.as_deref() != Some("VmidConflict") {
            p.event(true, "VmidConflict", msg).await;
        }
        return Ok(Action::requeue(jitter(Duration::from_secs(300))));
    }
    if p.status.node.as_deref() != Some(node.as_str()) {
        if p.status.node.is_some() && !matches!(p.status.phase, Some(ContainerPhase::Creating)) {
            p.event(false, "Moved", format!("CT {vmid} is now on node {node}")).await;
        }
        p.status.node = Some(node.clone());
    }
    if let Some(lock) = &cfg.lock {
        p.cond(CondSpec::no(CONDITION_SYNCED, "Locked", format!("CT is locked ({lock}); waiting")));
        p.save().await?;
        return Ok(Action::requeue(jitter(p.ctx.settings.lock_retry)));
    }
    let observed = Observed { node: node.clone(), status: current.status.clone(), config: cfg };
    let plan = match plan(desired, p.obj.spec.node.as_deref(), &observed) {
        Ok(pl) => pl,
        Err(e) => return p.invalid(e).await,
    };
    let drift = p.status.observed_generation == p.generation() && matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped));
    if let Some(target) = &plan.migrate_to {
        let snap = handle.snapshot().expect("checked by the caller");
        if !snap.node_online(target) {
            return p.not_ready("NodeUnavailable", format!("cannot move to node {target}: it is not online"), Action::requeue(jitter(Duration::from_secs(15)))).await;
        }
        let params = pve::MigrateParams { target: target.clone(), restart: observed.running().then_some(true), ..Default::default() };
        p.event(false, "Migrating", format!("moving CT {vmid} from {node} to {target}")).await;
        let client = handle.client.clone();
        let (n, t) = (node.clone(), params);
        return match start_task(p, handle, &node, "migrate", async move { client.lxc_migrate(&n, vmid, &t).await }).await {
            Err(Error::Pve(e)) if matches!(e.class(), ErrorClass::Conflict | ErrorClass::Permanent) => {
                p.not_ready("MigrationRefused", format!("Proxmox refused to move CT {vmid} to {target}: {}", e.message()), Action::requeue(jitter(Duration::from_secs(60)))).await
            }
            other => other,
        };
    }
    let mut restart_keys: Vec<String> = Vec::new();
    if !plan.changes.is_empty() {
        let (set, delete) = plan.config_update();
        let update = pve::ConfigUpdate { set, delete, digest: observed.config.digest.clone() };
        match handle.client.lxc_update_config(&node, vmid, &update).await {
            Ok(()) => {}
            Err(e) if e.class() == ErrorClass::InvalidSpec => return p.invalid(InvalidSpec { field: "(config)".into(), message: format!("Proxmox refused the update: {e}") }).await,
            Err(e) => return Err(e.into()),
        }
        let what = plan.describe_changes();
        if drift && ours {
            p.event(false, "DriftCorrected", format!("put back values changed in Proxmox: {what}")).await;
        } else {
            p.event(false, "Updated", format!("updated CT {vmid}: {what}")).await;
        }
        if observed.running() {
            restart_keys = handle.client.lxc_pending(&node, vmid).await.map(|l| l.into_iter().filter(|e| e.pending.is_some() || e.delete.is_some()).map(|e| e.key).collect()).unwrap_or_default();
        }
        handle.refresh.notify_one();
    } else if observed.running() && conditions::is_true(&p.status.conditions, CONDITION_PENDING_RESTART) {
        restart_keys = handle.client.lxc_pending(&node, vmid).await.map(|l| l.into_iter().filter(|e| e.pending.is_some() || e.delete.is_some()).map(|e| e.key).collect()).unwrap_or_default();
    }
    if restart_keys.is_empty() {
        conditions::remove(&mut p.status.conditions, CONDITION_PENDING_RESTART);
    } else {
        p.cond(CondSpec::yes(CONDITION_PENDING_RESTART, "RestartRequired", format!("Proxmox applies these after a restart: {}", restart_keys.join(", "))));
    }
    if let Some((disk, gib)) = plan.resizes.first().cloned() {
        let client = handle.client.clone();
        let n = node.clone();
        p.event(false, "Resizing", format!("growing {disk} of CT {vmid} to {gib}Gi")).await;
        return start_task(p, handle, &node, "resize", async move { client.lxc_resize(&n, vmid, &disk, &format!("{gib}G")).await }).await;
    }
    if let Some(action) = plan.power {
        let client = handle.client.clone();
        let n = node.clone();
        return match action {
            PowerAction::Start => {
                if drift {
                    p.event(false, "Starting", format!("CT {vmid} was stopped outside Kubernetes; starting it (spec.state is Running)")).await;
                } else {
                    p.event(false, "Starting", format!("starting CT {vmid}")).await;
                }
                start_task(p, handle, &node, "start", async move { client.lxc_start(&n, vmid).await }).await
            }
            PowerAction::Shutdown => {
                p.event(false, "Stopping", format!("stopping CT {vmid}")).await;
                start_task(p, handle, &node, "shutdown", async move { client.lxc_shutdown(&n, vmid, Some(60), Some(true)).await }).await
            }
        };
    }
    // in sync
    let running = observed.running();
    p.status.state = Some(current.status.clone());
    p.status.phase = Some(if running { ContainerPhase::Running } else { ContainerPhase::Stopped });
    p.status.usage = Some(Usage {
        cpu: current.cpu.map(|c| (c * 1000.0).round() / 1000.0),
        memory_bytes: current.mem,
        disk_bytes: current.disk,
        uptime_seconds: current.uptime,
        net_in_bytes: current.netin,
        net_out_bytes: current.netout,
    });
    if let Some(g) = handle.snapshot().and_then(|s| s.guests.get(&vmid).cloned()) {
        p.ctx.metrics.container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), &g);
    }
    // MACs from the config; IPs from the running container (polled until known)
    p.status.mac = observed.config.networks().unwrap_or_default().values().filter_map(|n| Some((n.name.clone(), n.hwaddr.clone()?))).collect();
    let mut requeue = if p.ctx.settings.drift_check_interval.is_zero() { Action::await_change() } else { Action::requeue(jitter(p.ctx.settings.drift_check_interval)) };
    // the reads for the status go out together
    let want_ips = running
        && !observed.config.networks().unwrap_or_default().is_empty()
        && (p.status.ip_addresses.is_empty() || p.status.observed_generation != p.generation());
    let (ifaces, backups) = tokio::join!(
        async {
            match want_ips {
                true => Some(handle.client.lxc_interfaces(&node, vmid).await.unwrap_or_default()),
                false => None,
            }
        },
        backup_archives(handle, &node, vmid)
    );
    if let Some(ifaces) = ifaces {
        p.status.ip_addresses = addresses(&ifaces);
        if p.status.ip_addresses.is_empty() {
            requeue = Action::requeue(jitter(Duration::from_secs(3)));
        }
    }
    let last_ipv4 = p.status.ip_addresses.iter().find(|a| a.parse::<std::net::Ipv4Addr>().is_ok()).cloned();
    if !running {
        p.status.ip_addresses.clear();
    }
    if let Some(fw) = &p.obj.spec.firewall {
        match super::firewall::sync(&handle.client, &node, vmid, fw).await {
            Ok(Some(note)) => p.event(false, "FirewallUpdated", note).await,
            Ok(None) => {}
            Err(Error::Invalid(e)) => return p.invalid(e).await,
            Err(e) => return Err(e),
        }
    }
    // the endpoint keeps the last known address while stopped, marked not ready
    let static_ipv4 = desired.nets.values().find_map(|n| n.ip.as_deref().filter(|ip| ip.contains('/')).map(|ip| ip.split('/').next().unwrap_or(ip).to_string()));
    let primary = if running { last_ipv4.clone() } else { last_ipv4.clone().or(static_ipv4) };
    if super::service::sync(&p.ctx.kube, p.obj, primary.as_deref(), running).await? {
        p.ctx.metrics.kube_write("Service");
    }
    p.status.backups = backups;
    let (reason, msg) = if running { ("Running", format!("CT {vmid} runs on {node}")) } else { ("Stopped", format!("CT {vmid} is stopped on {node}, as requested")) };
    let became_ready = !conditions::is_true(&p.status.conditions, CONDITION_READY);
    p.cond(CondSpec::yes(CONDITION_READY, reason, msg));
    p.cond(CondSpec::yes(CONDITION_SYNCED, "InSync", "Proxmox matches the spec"));
    conditions::remove(&mut p.status.conditions, CONDITION_STALLED);
    p.status.observed_generation = p.generation();
    p.save().await?;
    if became_ready {
        p.event(false, "Ready", format!("CT {vmid} is {}", if running { "running" } else { "stopped" })).await;
    }
    p.ctx.last_full_read.lock().unwrap().insert(p.uid.clone(), Instant::now());
    Ok(requeue)
}

/// The container's addresses without prefix: IPv4 first, then IPv6 (no loopback, no link-local).
pub fn addresses(ifaces: &[pve::Interface]) -> Vec<String> {
    let strip = |a: &String| a.split('/').next().unwrap_or(a).to_string();
    let up = ifaces.iter().filter(|i| i.name != "lo");
    let v4 = up.clone().flat_map(|i| i.inet.iter().map(strip));
    let v6 = up.flat_map(|i| i.inet6.iter().map(strip)).filter(|a| !a.to_ascii_lowercase().starts_with("fe80"));
    v4.chain(v6).collect()
}

/// How many archives `status.backups` lists.
pub const MAX_LISTED_BACKUPS: usize = 10;

/// Backup archives of `vmid` on the backup storages `node` can see (shared ones once), newest
/// first, bounded. Storages that cannot be read are skipped.
async fn backup_archives(handle: &ClusterHandle, node: &str, vmid: u32) -> Vec<BackupArchive> {
    let Some(snap) = handle.snapshot() else { return Vec::new() };
    let storages: Vec<String> = snap.storages.iter().filter(|s| s.node == node && s.content.iter().any(|c| c == "backup")).map(|s| s.name.clone()).collect();
    let mut found: Vec<(i64, BackupArchive)> = Vec::new();
    let lists = futures::future::join_all(storages.iter().map(|storage| handle.client.storage_content(node, storage, Some("backup"), Some(vmid)))).await;
    for v in lists.into_iter().flatten().flatten().filter(|v| v.vmid.is_none_or(|id| id == vmid)) {
        let created = v.ctime.and_then(|t| jiff::Timestamp::from_second(t).ok()).map(Time);
        found.push((v.ctime.unwrap_or(0), BackupArchive { volid: v.volid, size_bytes: v.size, created_at: created, notes: v.notes.filter(|n| !n.is_empty()) }));
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.volid.cmp(&b.1.volid)));
    found.dedup_by(|a, b| a.1.volid == b.1.volid);
    found.into_iter().take(MAX_LISTED_BACKUPS).map(|(_, a)| a).collect()
}

async fn observe_only(p: &mut Pass<'_>, handle: &ClusterHandle) -> Result<Action, Error> {
    let vmid = p.obj.spec.vmid.expect("validated");
    // an adopted container is never changed: no finalizer, no tag
    let api = p.api.clone();
    remove_finalizer(&api, p.obj, FINALIZER).await?;
    p.status.vmid = Some(vmid);
    let snap = handle.snapshot().expect("checked by the caller");
    let Some(g) = snap.guests.get(&vmid).cloned() else {
        p.status.phase = Some(ContainerPhase::Pending);
        p.status.ip_addresses.clear();
        return p.not_ready("NotFound", format!("CT {vmid} does not exist in Proxmox"), Action::requeue(jitter(Duration::from_secs(60)))).await;
    };
    let running = g.status == "running";
    p.status.node = Some(g.node.clone());
    p.status.state = Some(g.status.clone());
    p.status.phase = Some(if running { ContainerPhase::Running } else { ContainerPhase::Stopped });
    p.status.usage = Some(Usage { cpu: g.cpu.map(|c| (c * 1000.0).round() / 1000.0), memory_bytes: g.mem, disk_bytes: g.disk, uptime_seconds: g.uptime, net_in_bytes: g.netin, net_out_bytes: g.netout });
    if running && p.status.ip_addresses.is_empty() {
        p.status.ip_addresses = addresses(&handle.client.lxc_interfaces(&g.node, vmid).await.unwrap_or_default());
    } else if !running {
        p.status.ip_addresses.clear();
    }
    p.ctx.metrics.container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), &g);
    p.cond(CondSpec::yes(CONDITION_READY, "Observed", format!("CT {vmid} on {} is {} (observed only; nothing is changed)", g.node, g.status)));
    conditions::remove(&mut p.status.conditions, CONDITION_SYNCED);
    conditions::remove(&mut p.status.conditions, CONDITION_STALLED);
    p.status.observed_generation = p.generation();
    p.save().await?;
    Ok(Action::await_change())
}

async fn cleanup(p: &mut Pass<'_>) -> Result<Action, Error> {
    let obj = p.obj;
    let api = p.api.clone();
    let done = |p: &Pass<'_>| {
        p.ctx.release_slot(&p.uid);
        p.ctx.slot_waiting(&p.uid, None);
        p.ctx.last_status.lock().unwrap().remove(&p.uid);
        p.ctx.metrics.forget_container(&obj.namespace().unwrap_or_default(), &obj.name_any());
    };
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if super::service::remove(&p.ctx.kube, obj).await? {
        p.ctx.metrics.kube_write("Service");
    }
    let Some(vmid) = p.status.vmid.filter(|_| obj.spec.management == Management::Full) else {
        remove_finalizer(&api, obj, FINALIZER).await?;
        done(p);
        return Ok(Action::await_change());
    };
    let key = cluster_key(obj);
    let handle = match p.ctx.clusters.get(&key).filter(|h| h.connected()) {
        Some(h) => h,
        None => {
            p.status.phase = Some(ContainerPhase::Deleting);
            return p.not_ready("ClusterNotReady", format!("cannot clean up CT {vmid}: ProxmoxCluster {} is not connected", key.name), Action::requeue(jitter(Duration::from_secs(10)))).await;
        }
    };
    if let Some(action) = check_pending_task(p, &handle).await? {
        return Ok(action);
    }
    let identity = super::desired::identity_tag(&p.uid);
    let Some(Located { node, config: cfg, current }) = locate(&handle, vmid, &p.status, obj.spec.node.as_deref()).await? else {
        // already gone counts as deleted
        remove_finalizer(&api, obj, FINALIZER).await?;
        done(p);
        return Ok(Action::await_change());
    };
    if !cfg.tag_list().contains(&identity) {
        p.event(false, "LeftUntouched", format!("CT {vmid} on {node} does not carry our tag; it is not deleted")).await;
        remove_finalizer(&api, obj, FINALIZER).await?;
        done(p);
        return Ok(Action::await_change());
    }
    if let Some(lock) = &cfg.lock {
        p.status.phase = Some(ContainerPhase::Deleting);
        return p.not_ready("Locked", format!("CT is locked ({lock}); deletion waits"), Action::requeue(jitter(p.ctx.settings.lock_retry))).await;
    }
    if obj.spec.deletion_policy == DeletionPolicy::Retain {
        let tags: Vec<String> = cfg.tag_list().into_iter().filter(|t| *t != identity).collect();
        let update = if tags.is_empty() {
            pve::ConfigUpdate { delete: vec!["tags".into()], digest: cfg.digest.clone(), ..Default::default() }
        } else {
            pve::ConfigUpdate { set: [("tags".to_string(), tags.join(";"))].into(), digest: cfg.digest.clone(), ..Default::default() }
        };
        handle.client.lxc_update_config(&node, vmid, &update).await?;
        p.event(false, "Retained", format!("CT {vmid} stays in Proxmox on {node} (deletionPolicy Retain); our tag was removed")).await;
        remove_finalizer(&api, obj, FINALIZER).await?;
        done(p);
        return Ok(Action::await_change());
    }
    p.status.phase = Some(ContainerPhase::Deleting);
    if cfg.protection == Some(true) {
        if obj.spec.protection == Some(true) {
            return p.not_ready("Protected", format!("CT {vmid} has protection enabled; set spec.protection to false (or deletionPolicy Retain) to let it be deleted"), Action::requeue(jitter(Duration::from_secs(30)))).await;
        }
        let update = pve::ConfigUpdate { set: [("protection".to_string(), "0".to_string())].into(), digest: cfg.digest.clone(), ..Default::default() };
        handle.client.lxc_update_config(&node, vmid, &update).await?;
    }
    let client = handle.client.clone();
    p.cond(CondSpec::no(CONDITION_READY, "Deleting", format!("deleting CT {vmid}")));
    if current.status == "running" {
        p.event(false, "Stopping", format!("stopping CT {vmid} before deleting it")).await;
        let n = node.clone();
        return start_task(p, &handle, &node, "stop", async move { client.lxc_stop(&n, vmid).await }).await;
    }
    p.event(false, "Deleting", format!("destroying CT {vmid} on {node}")).await;
    let n = node.clone();
    let params = pve::DeleteParams::purge_referenced_only();
    start_task(p, &handle, &node, "delete", async move { client.lxc_delete(&n, vmid, &params).await }).await
}
