//! The `LxcBackup` controller: Pending → Running → Completed | Failed.
//!
//! At most one `vzdump` runs per Proxmox node at a time across every `LxcBackup` this process
//! runs (Proxmox itself takes a global per-node lock and would only make the others wait
//! inside their tasks): a process-wide queue per (Proxmox endpoint, node) hands the node to
//! the oldest waiting backup, and wakes the next one when a task ends. Backups that a previous
//! operator process left `Running` keep their node until their task has ended.
//!
//! The archive is found after the task from its log (`creating vzdump archive '…'`) and checked
//! against the storage content (which gives its size); when the log does not name it (PBS), the
//! newest archive of the container made since the start is taken. Deleting an `LxcBackup` with
//! `deletionPolicy: Delete` deletes the archive (already gone = done); `Retain` keeps it.

use crate::controller::cluster::{ClusterHandle, ClusterKey, Snapshot};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::Context;
use crate::controller::run::ControllerFuture;
use crate::controller::status::{add_finalizer, apply_status, remove_finalizer};
use crate::controller::{jitter, Error};
use crate::crd::lxc_backup::{BackupMode, BackupPhase, Compression, LxcBackup, LxcBackupStatus};
use crate::crd::lxc_container::LxcContainer;
use crate::crd::{DeletionPolicy, CONDITION_READY, FINALIZER};
use crate::pve::{self, ErrorClass, TaskResult, Upid, VzdumpParams, VzdumpResult};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What the `LxcBackup` reconciles of one namespace (or all) share.
pub struct BackupCtx {
    /// The operator's shared context.
    pub ctx: Arc<Context>,
    /// Every `LxcBackup` of the scope (to see backups left running by an earlier process).
    pub store: Store<LxcBackup>,
    /// Wakes a queued backup when the node it waits for is free.
    pub wake: mpsc::UnboundedSender<ObjectRef<LxcBackup>>,
}

// ------------------------------------------------------------------ the per-node queue

struct Waiter {
    uid: String,
    obj: ObjectRef<LxcBackup>,
    wake: mpsc::UnboundedSender<ObjectRef<LxcBackup>>,
}

#[derive(Default)]
struct NodeQueue {
    /// (uid, name) of the backup whose vzdump runs on the node.
    holder: Option<(String, String)>,
    /// Waiting backups, oldest first: (creation time, namespace/name).
    waiting: BTreeMap<(i64, String), Waiter>,
}

/// Queues by `<proxmox endpoints>|<node>`, shared by every namespace this process watches.
static QUEUES: LazyLock<Mutex<HashMap<String, NodeQueue>>> = LazyLock::new(Default::default);

fn queue_key(handle: &ClusterHandle, node: &str) -> String {
    format!("{}|{node}", handle.client.endpoints().join(","))
}

/// Removes `uid` from every waiting list.
fn leave_waiting(uid: &str) {
    for q in QUEUES.lock().unwrap().values_mut() {
        q.waiting.retain(|_, w| w.uid != uid);
    }
}

/// Takes the node for `uid` if it is free and `uid` is the oldest waiter; otherwise queues it
/// and returns the name of the backup that holds the node (or waits before it).
fn take_or_wait(qkey: &str, uid: &str, order: (i64, String), obj: &LxcBackup, wake: &mpsc::UnboundedSender<ObjectRef<LxcBackup>>) -> Result<(), String> {
    let mut queues = QUEUES.lock().unwrap();
    let q = queues.entry(qkey.to_string()).or_default();
    if q.holder.as_ref().is_some_and(|h| h.0 == uid) {
        return Ok(());
    }
    q.waiting.insert(order, Waiter { uid: uid.to_string(), obj: ObjectRef::from_obj(obj), wake: wake.clone() });
    if let Some((_, name)) = &q.holder {
        return Err(name.clone());
    }
    let (first_key, first) = q.waiting.iter().next().expect("just inserted");
    if first.uid != uid {
        return Err(first_key.1.clone());
    }
    let key = first_key.clone();
    q.waiting.remove(&key);
    q.holder = Some((uid.to_string(), key.1));
    Ok(())
}

/// Records that `uid` runs a vzdump on the node (a task found running after a restart).
fn claim(qkey: &str, uid: &str, name: &str) {
    let mut queues = QUEUES.lock().unwrap();
    let q = queues.entry(qkey.to_string()).or_default();
    if q.holder.is_none() {
        q.holder = Some((uid.to_string(), name.to_string()));
    }
}

/// Frees the node `uid` holds (if any) and wakes the waiters there (the oldest takes it).
fn release(uid: &str) {
    let mut queues = QUEUES.lock().unwrap();
    for q in queues.values_mut() {
        if q.holder.as_ref().is_some_and(|h| h.0 == uid) {
            q.holder = None;
            for w in q.waiting.values() {
                let _ = w.wake.send(w.obj.clone());
            }
        }
    }
}

// ------------------------------------------------------------------ the controller

/// The `LxcBackup` controller of one namespace (or all).
pub fn controller(client: &Client, namespace: Option<&str>, ctx: Arc<Context>) -> ControllerFuture {
    let api: Api<LxcBackup> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (wake, wake_rx) = mpsc::unbounded_channel::<ObjectRef<LxcBackup>>();
    let (reader, writer) = reflector::store();
    // spec changes and deletion (generation); not our own status writes
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer).applied_objects().predicate_filter(predicates::generation, Default::default());
    let stop = ctx.shutdown.triggered();
    let bctx = Arc::new(BackupCtx { ctx, store: reader.clone(), wake });
    let wakes = crate::controller::run::tokio_stream_from(wake_rx);
    let run = Controller::for_stream(stream, reader)
        .reconcile_on(wakes)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, bctx)
        .for_each(|_| async {});
    Box::pin(run)
}

/// Reconciles one `LxcBackup`.
pub async fn reconcile(obj: Arc<LxcBackup>, bctx: Arc<BackupCtx>) -> Result<Action, Error> {
    crate::controller::instrumented("LxcBackup", &obj.name_any(), &bctx.ctx.metrics, reconcile_inner(&obj, &bctx)).await
}

/// Requeue policy for errors.
pub fn error_policy(obj: Arc<LxcBackup>, err: &Error, _ctx: Arc<BackupCtx>) -> Action {
    tracing::warn!(object = %obj.name_any(), namespace = ?obj.namespace(), class = err.class(), error = %err, "LxcBackup reconcile failed");
    match err.class() {
        "Conflict" => Action::requeue(jitter(Duration::from_millis(500))),
        "Transient" | "Kubernetes" | "Locked" => Action::requeue(jitter(Duration::from_secs(5))),
        _ => Action::requeue(jitter(Duration::from_secs(30))),
    }
}

struct Pass<'a> {
    obj: &'a LxcBackup,
    bctx: &'a BackupCtx,
    api: Api<LxcBackup>,
    status: LxcBackupStatus,
    written: Option<LxcBackupStatus>,
    now: Time,
    uid: String,
}

impl Pass<'_> {
    fn ctx(&self) -> &Context {
        &self.bctx.ctx
    }

    fn cond(&mut self, c: CondSpec) {
        let g = self.obj.metadata.generation;
        conditions::set(&mut self.status.conditions, c, g, &self.now);
    }

    async fn save(&mut self) -> Result<(), Error> {
        self.status.observed_generation = self.obj.metadata.generation;
        if self.written.as_ref() == Some(&self.status) {
            return Ok(());
        }
        apply_status(&self.api, self.obj, &self.status).await?;
        self.ctx().metrics.kube_write("LxcBackup");
        self.written = Some(self.status.clone());
        Ok(())
    }

    async fn event(&self, warning: bool, reason: &str, note: String) {
        self.ctx().event(self.obj, warning, reason, note).await;
    }

    /// Still pending, with a reason.
    async fn pending(&mut self, reason: &str, message: String, action: Action) -> Result<Action, Error> {
        self.status.phase = Some(BackupPhase::Pending);
        self.cond(CondSpec::no(CONDITION_READY, reason, message));
        self.save().await?;
        Ok(action)
    }

    /// Ends in `Failed` with `message`.
    async fn fail(&mut self, reason: &str, message: String) -> Result<Action, Error> {
        release(&self.uid);
        self.ctx().release_slot(&self.uid);
        self.status.phase = Some(BackupPhase::Failed);
        self.status.completed_at = Some(self.now.clone());
        self.cond(CondSpec::no(CONDITION_READY, reason, message.clone()));
        self.save().await?;
        self.event(true, reason, message).await;
        Ok(Action::await_change())
    }
}

fn cluster_key(ns: &str, name: &str) -> ClusterKey {
    ClusterKey { namespace: ns.to_string(), name: name.to_string() }
}

async fn reconcile_inner(obj: &LxcBackup, bctx: &BackupCtx) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<LxcBackup> = Api::namespaced(bctx.ctx.kube.clone(), &ns);
    let mut p = Pass { obj, bctx, api: api.clone(), status: obj.status.clone().unwrap_or_default(), written: obj.status.clone(), now: Time(jiff::Timestamp::now()), uid: obj.uid().unwrap_or_default() };
    leave_waiting(&p.uid);
    if obj.metadata.deletion_timestamp.is_some() {
        return cleanup(&mut p).await;
    }
    if add_finalizer(&api, obj, FINALIZER).await? {
        bctx.ctx.metrics.kube_write("LxcBackup");
    }
    match p.status.phase {
        Some(BackupPhase::Completed) | Some(BackupPhase::Failed) => {
            release(&p.uid);
            p.ctx().release_slot(&p.uid);
            Ok(Action::await_change())
        }
        Some(BackupPhase::Running) => poll(&mut p).await,
        None | Some(BackupPhase::Pending) => start(&mut p).await,
    }
}

/// The cluster handle named in status, when connected.
fn connected_handle(p: &Pass<'_>) -> Option<Arc<ClusterHandle>> {
    let name = p.status.cluster.clone()?;
    p.ctx().clusters.get(&cluster_key(&p.obj.namespace().unwrap_or_default(), &name)).filter(|h| h.connected() && h.snapshot().is_some())
}

/// A storage for backups on `node` when the spec names none: a shared one first.
fn default_storage(snap: &Snapshot, node: &str) -> Option<String> {
    let mut candidates: Vec<_> = snap.storages.iter().filter(|s| s.node == node && s.content.iter().any(|c| c == "backup")).collect();
    candidates.sort_by_key(|s| (!s.shared, s.name != "local", s.name.clone()));
    candidates.first().map(|s| s.name.clone())
}

async fn start(p: &mut Pass<'_>) -> Result<Action, Error> {
    let ns = p.obj.namespace().unwrap_or_default();
    let spec = &p.obj.spec;
    let containers: Api<LxcContainer> = Api::namespaced(p.ctx().kube.clone(), &ns);
    let Some(ct) = containers.get_opt(&spec.container_ref.name).await? else {
        return p.pending("ContainerNotFound", format!("LxcContainer {} does not exist", spec.container_ref.name), Action::requeue(jitter(Duration::from_secs(15)))).await;
    };
    let cluster = ct.spec.cluster_ref.as_ref().map(|c| c.name.clone()).unwrap_or_else(|| "default".into());
    p.status.cluster = Some(cluster.clone());
    let Some(handle) = connected_handle(p) else {
        return p.pending("ClusterNotReady", format!("ProxmoxCluster {cluster} is not connected"), Action::requeue(jitter(Duration::from_secs(10)))).await;
    };
    let snap = handle.snapshot().expect("checked");
    let Some(vmid) = ct.status.as_ref().and_then(|s| s.vmid) else {
        return p.pending("WaitingForContainer", format!("LxcContainer {} has no vmid yet", ct.name_any()), Action::requeue(jitter(Duration::from_secs(10)))).await;
    };
    let guest = snap.guests.get(&vmid);
    let Some(node) = guest.map(|g| g.node.clone()) else {
        return p.pending("WaitingForContainer", format!("CT {vmid} of LxcContainer {} is not in Proxmox (yet)", ct.name_any()), Action::requeue(jitter(Duration::from_secs(10)))).await;
    };
    if let Some(lock) = guest.and_then(|g| g.lock.clone()) {
        return p.pending("ContainerLocked", format!("CT {vmid} is locked ({lock}); waiting"), Action::requeue(jitter(Duration::from_secs(5)))).await;
    }
    let storage = match spec.storage.clone().or_else(|| default_storage(&snap, &node)) {
        Some(s) => s,
        None => return p.pending("NoBackupStorage", format!("node {node} has no storage for backups (content backup); set spec.storage"), Action::requeue(jitter(Duration::from_secs(60)))).await,
    };
    p.status.vmid = Some(vmid);
    p.status.storage = Some(storage.clone());
    // the node: free in this process, oldest waiter first, and no backup of this scope left
    // running there by an earlier process
    let qkey = queue_key(&handle, &node);
    let order = (p.obj.creation_timestamp().map(|t| t.0.as_millisecond()).unwrap_or(0), format!("{ns}/{}", p.obj.name_any()));
    let left_running = p.bctx.store.state().into_iter().find(|b| {
        b.uid().as_deref() != Some(p.uid.as_str())
            && b.namespace() == p.obj.namespace()
            && b.metadata.deletion_timestamp.is_none()
            && b.status.as_ref().is_some_and(|s| s.phase == Some(BackupPhase::Running) && s.node.as_deref() == Some(node.as_str()) && s.cluster.as_deref() == Some(cluster.as_str()))
    });
    let taken = match left_running {
        Some(b) if QUEUES.lock().unwrap().get(&qkey).is_none_or(|q| q.holder.as_ref().is_none_or(|h| Some(&h.0) != b.uid().as_ref())) => Err(b.name_any()),
        _ => take_or_wait(&qkey, &p.uid, order, p.obj, &p.bctx.wake),
    };
    if let Err(other) = taken {
        return p.pending("Queued", format!("waiting for node {node}: one vzdump per node at a time ({other} goes first)"), Action::requeue(jitter(Duration::from_secs(10)))).await;
    }
    let Some(permit) = handle.client.try_acquire_task_slot(&node) else {
        release(&p.uid);
        return p.pending("WaitingForTaskSlot", format!("waiting for a task slot on node {node}"), Action::requeue(jitter(Duration::from_secs(1)))).await;
    };
    // recorded before the call: a crash in between leaves a Running backup without UPID, which
    // the next pass resolves from the container's lock and the storage content
    p.status.phase = Some(BackupPhase::Running);
    p.status.node = Some(node.clone());
    p.status.started_at = Some(p.now.clone());
    p.status.upid = None;
    p.cond(CondSpec::no(CONDITION_READY, "Running", format!("vzdump of CT {vmid} is starting on {node}")));
    if let Err(e) = p.save().await {
        release(&p.uid);
        return Err(e);
    }
    let params = VzdumpParams {
        vmid: vec![vmid],
        storage: Some(storage.clone()),
        mode: Some(mode_str(spec.mode).into()),
        compress: Some(compress_str(spec.compress).into()),
        // Proxmox escapes: backslash as `\\` (the CRD allows no line breaks)
        notes_template: spec.notes.as_ref().map(|n| n.replace('\\', "\\\\")),
        // retention is ours (per schedule, on LxcBackup objects): never let vzdump prune
        remove: Some(false),
        ..Default::default()
    };
    match handle.client.vzdump(&node, &params).await {
        Ok(VzdumpResult::Task(upid)) => {
            p.ctx().hold_slot(&p.uid, permit);
            p.ctx().metrics.task_started("vzdump");
            p.status.upid = Some(upid.to_string());
            p.cond(CondSpec::no(CONDITION_READY, "Running", format!("vzdump of CT {vmid} is running on {node}")));
            p.save().await?;
            p.event(false, "Started", format!("vzdump of CT {vmid} started on {node} to storage {storage}")).await;
            Ok(Action::requeue(p.ctx().settings.task_poll))
        }
        Ok(VzdumpResult::NothingToDo) => {
            release(&p.uid);
            handle.refresh.notify_one();
            p.status.started_at = None;
            p.pending("ContainerMoved", format!("CT {vmid} is no longer on {node}; looking again"), Action::requeue(jitter(Duration::from_secs(2)))).await
        }
        Err(e) if e.class() == ErrorClass::InvalidSpec || e.class() == ErrorClass::Permanent || e.class() == ErrorClass::Conflict => {
            p.ctx().metrics.task_failed("vzdump");
            p.fail("BackupFailed", format!("Proxmox refused the vzdump of CT {vmid}: {}", e.message())).await
        }
        Err(e) => {
            release(&p.uid);
            p.status.phase = Some(BackupPhase::Pending);
            p.status.started_at = None;
            p.cond(CondSpec::no(CONDITION_READY, "StartFailed", format!("vzdump of CT {vmid} could not be started: {e}")));
            p.save().await?;
            Err(e.into())
        }
    }
}

fn mode_str(m: BackupMode) -> &'static str {
    match m {
        BackupMode::Snapshot => "snapshot",
        BackupMode::Suspend => "suspend",
        BackupMode::Stop => "stop",
    }
}

fn compress_str(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "zstd",
        Compression::Gzip => "gzip",
        Compression::Lzo => "lzo",
        Compression::None => "0",
    }
}

/// The archive file named in a vzdump task log (`creating vzdump archive '/path/FILE'`).
pub fn archive_from_log(lines: &[String]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        let rest = l.split_once("creating vzdump archive '")?.1;
        let path = rest.split('\'').next()?;
        path.rsplit('/').next().filter(|f| !f.is_empty()).map(str::to_string)
    })
}

/// Finds the archive of a finished vzdump: (volid, size).
async fn find_archive(handle: &ClusterHandle, upid: Option<&Upid>, node: &str, storage: &str, vmid: u32, since: Option<&Time>) -> Result<Option<(String, Option<u64>)>, pve::Error> {
    let from_log = match upid {
        Some(u) => archive_from_log(&handle.client.task_log_tail(u, 50).await.unwrap_or_default()).map(|f| format!("{storage}:backup/{f}")),
        None => None,
    };
    let list = handle.client.storage_content(node, storage, Some("backup"), Some(vmid)).await?;
    if let Some(v) = &from_log {
        if let Some(e) = list.iter().find(|e| &e.volid == v) {
            return Ok(Some((e.volid.clone(), e.size)));
        }
    }
    let since = since.map(|t| t.0.as_second() - 5).unwrap_or(i64::MAX);
    Ok(list.iter().filter(|e| e.ctime.is_some_and(|c| c >= since)).max_by_key(|e| e.ctime).map(|e| (e.volid.clone(), e.size)))
}

async fn poll(p: &mut Pass<'_>) -> Result<Action, Error> {
    let Some(handle) = connected_handle(p) else {
        p.cond(CondSpec::no(CONDITION_READY, "ClusterNotReady", format!("ProxmoxCluster {} is not connected; the vzdump is checked once it is", p.status.cluster.clone().unwrap_or_default())));
        p.save().await?;
        return Ok(Action::requeue(jitter(Duration::from_secs(10))));
    };
    let (Some(node), Some(vmid), Some(storage)) = (p.status.node.clone(), p.status.vmid, p.status.storage.clone()) else {
        p.status.phase = Some(BackupPhase::Pending);
        return start(p).await;
    };
    let qkey = queue_key(&handle, &node);
    claim(&qkey, &p.uid, &p.obj.name_any());
    let Some(upid) = p.status.upid.as_ref().and_then(|u| u.parse::<Upid>().ok()) else {
        // the operator stopped between recording the start and learning the UPID
        let locked = handle.snapshot().and_then(|s| s.guests.get(&vmid).and_then(|g| g.lock.clone()));
        if locked.as_deref() == Some("backup") {
            return Ok(Action::requeue(jitter(Duration::from_secs(2))));
        }
        return match find_archive(&handle, None, &node, &storage, vmid, p.status.started_at.as_ref()).await? {
            Some(found) => complete(p, found, None).await,
            None => {
                release(&p.uid);
                p.status.phase = Some(BackupPhase::Pending);
                p.status.started_at = None;
                start(p).await
            }
        };
    };
    if !p.ctx().task_slots.lock().unwrap().contains_key(&p.uid) {
        if let Some(permit) = handle.client.try_acquire_task_slot(&node) {
            p.ctx().hold_slot(&p.uid, permit);
        }
    }
    let st = match handle.client.task_status(&upid).await {
        Ok(s) => s.result(),
        Err(e) if e.class() == ErrorClass::NotFound || matches!(e, pve::Error::InvalidParameters { .. }) => TaskResult::Failed("the vzdump task is unknown to Proxmox".into()),
        Err(e) => return Err(e.into()),
    };
    match st {
        TaskResult::Running => {
            if conditions::get(&p.status.conditions, CONDITION_READY).is_some_and(|c| c.reason != "Running") {
                p.cond(CondSpec::no(CONDITION_READY, "Running", format!("vzdump of CT {vmid} is running on {node}")));
                p.save().await?;
            }
            Ok(Action::requeue(p.ctx().settings.task_poll))
        }
        TaskResult::Ok | TaskResult::Warnings(_) => {
            let warnings = match st {
                TaskResult::Warnings(n) => Some(n),
                _ => None,
            };
            match find_archive(&handle, Some(&upid), &node, &storage, vmid, p.status.started_at.as_ref()).await? {
                Some(found) => complete(p, found, warnings).await,
                None => {
                    p.ctx().metrics.task_failed("vzdump");
                    p.fail("ArchiveNotFound", format!("vzdump of CT {vmid} reported success but no new archive of CT {vmid} is in storage {storage} on {node}")).await
                }
            }
        }
        TaskResult::Failed(text) => {
            p.ctx().metrics.task_failed("vzdump");
            let tail = handle.client.task_log_tail(&upid, 6).await.unwrap_or_default();
            let errors: Vec<&String> = tail.iter().filter(|l| l.contains("ERROR")).collect();
            let detail = if errors.is_empty() { tail.iter().collect::<Vec<_>>() } else { errors };
            let detail = detail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" | ");
            let msg = if detail.is_empty() { format!("vzdump of CT {vmid} failed: {text}") } else { format!("vzdump of CT {vmid} failed: {text} ({detail})") };
            handle.refresh.notify_one();
            p.fail("BackupFailed", msg).await
        }
    }
}

async fn complete(p: &mut Pass<'_>, (volid, size): (String, Option<u64>), warnings: Option<u32>) -> Result<Action, Error> {
    release(&p.uid);
    p.ctx().release_slot(&p.uid);
    let vmid = p.status.vmid.unwrap_or_default();
    p.status.phase = Some(BackupPhase::Completed);
    p.status.volid = Some(volid.clone());
    p.status.size_bytes = size;
    p.status.completed_at = Some(p.now.clone());
    let msg = match warnings {
        Some(n) => format!("archive {volid} of CT {vmid} (vzdump ended with {n} warnings)"),
        None => format!("archive {volid} of CT {vmid}"),
    };
    p.cond(CondSpec::yes(CONDITION_READY, "Completed", msg.clone()));
    p.save().await?;
    p.event(false, "Completed", msg).await;
    if let Some(h) = connected_handle(p) {
        h.refresh.notify_one();
    }
    Ok(Action::await_change())
}

async fn cleanup(p: &mut Pass<'_>) -> Result<Action, Error> {
    let obj = p.obj;
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        release(&p.uid);
        return Ok(Action::await_change());
    }
    // a vzdump in flight finishes first (its archive is then deleted or kept like any other)
    if p.status.phase == Some(BackupPhase::Running) {
        let action = poll(p).await?;
        if p.status.phase == Some(BackupPhase::Running) {
            let _ = action;
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    release(&p.uid);
    p.ctx().release_slot(&p.uid);
    let api = p.api.clone();
    let volid = match (&p.status.volid, obj.spec.deletion_policy) {
        (Some(v), DeletionPolicy::Delete) => v.clone(),
        (Some(v), DeletionPolicy::Retain) => {
            p.event(false, "Retained", format!("archive {v} stays in storage (deletionPolicy Retain)")).await;
            remove_finalizer(&api, obj, FINALIZER).await?;
            return Ok(Action::await_change());
        }
        (None, _) => {
            remove_finalizer(&api, obj, FINALIZER).await?;
            return Ok(Action::await_change());
        }
    };
    let Some(handle) = connected_handle(p) else {
        p.cond(CondSpec::no(CONDITION_READY, "ClusterNotReady", format!("cannot delete archive {volid}: ProxmoxCluster {} is not connected", p.status.cluster.clone().unwrap_or_default())));
        p.save().await?;
        return Ok(Action::requeue(jitter(Duration::from_secs(10))));
    };
    let storage = volid.split_once(':').map(|x| x.0.to_string()).unwrap_or_default();
    let snap = handle.snapshot().expect("checked");
    let node = p.status.node.clone().filter(|n| snap.node_online(n)).or_else(|| snap.storages.iter().find(|s| s.shared && s.name == storage && snap.node_online(&s.node)).map(|s| s.node.clone()));
    let Some(node) = node else {
        p.cond(CondSpec::no(CONDITION_READY, "NodeUnavailable", format!("cannot delete archive {volid}: node {} is not online", p.status.node.clone().unwrap_or_default())));
        p.save().await?;
        return Ok(Action::requeue(jitter(Duration::from_secs(30))));
    };
    let present = match handle.client.storage_content(&node, &storage, Some("backup"), p.status.vmid).await {
        Ok(list) => list.iter().any(|e| e.volid == volid),
        Err(e) if e.class() == ErrorClass::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    if present {
        match handle.client.delete_volume(&node, &storage, &volid).await {
            Ok(Some(upid)) => match handle.client.wait_task(&upid, p.ctx().settings.task_poll, Duration::from_secs(60)).await {
                Ok(_) => {}
                Err(e) if e.class() == ErrorClass::NotFound || e.message().contains("does not exist") => {}
                Err(e) => {
                    let msg = format!("deleting archive {volid} failed: {}", e.message());
                    p.cond(CondSpec::no(CONDITION_READY, "DeleteFailed", msg.clone()));
                    p.save().await?;
                    p.event(true, "DeleteFailed", msg).await;
                    return Ok(Action::requeue(jitter(Duration::from_secs(30))));
                }
            },
            Ok(None) => {}
            Err(e) if e.class() == ErrorClass::NotFound || e.message().contains("does not exist") => {}
            Err(e) => return Err(e.into()),
        }
        p.event(false, "ArchiveDeleted", format!("deleted archive {volid} from storage {storage}")).await;
    }
    remove_finalizer(&api, obj, FINALIZER).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_name_comes_from_the_task_log() {
        let log = vec![
            "INFO: starting new backup job: vzdump 101 --mode snapshot --storage local --compress zstd --node pve1".to_string(),
            "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2026_03_02-02_00_01.tar.zst'".to_string(),
            "INFO: Finished Backup of VM 101 (00:00:12)".to_string(),
        ];
        assert_eq!(archive_from_log(&log).as_deref(), Some("vzdump-lxc-101-2026_03_02-02_00_01.tar.zst"));
        assert_eq!(archive_from_log(&["INFO: creating Proxmox Backup Server archive 'ct/101/2026-03-02T02:00:01Z'".to_string()]), None);
    }

    #[test]
    fn the_queue_hands_a_node_to_the_oldest_waiter_and_the_next_on_release() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mk = |name: &str, uid: &str| {
            let mut b = LxcBackup::new(name, Default::default());
            b.metadata.namespace = Some("ns".into());
            b.metadata.uid = Some(uid.into());
            b
        };
        let (a, b, c) = (mk("a", "ua"), mk("b", "ub"), mk("c", "uc"));
        let k = "test-endpoint|pve1";
        // b (newer) waits while a (older) is queued first and takes the node
        assert!(take_or_wait(k, "ua", (1, "ns/a".into()), &a, &tx).is_ok());
        assert_eq!(take_or_wait(k, "ub", (2, "ns/b".into()), &b, &tx), Err("ns/a".into()));
        assert_eq!(take_or_wait(k, "uc", (3, "ns/c".into()), &c, &tx), Err("ns/a".into()));
        release("ua");
        assert_eq!(rx.try_recv().unwrap().name, "b");
        assert_eq!(rx.try_recv().unwrap().name, "c");
        // c is not first: b goes before it
        leave_waiting("uc");
        assert_eq!(take_or_wait(k, "uc", (3, "ns/c".into()), &c, &tx), Err("ns/b".into()));
        leave_waiting("ub");
        assert!(take_or_wait(k, "ub", (2, "ns/b".into()), &b, &tx).is_ok());
        assert!(take_or_wait(k, "ub", (2, "ns/b".into()), &b, &tx).is_ok(), "the holder keeps the node");
        release("ub");
        leave_waiting("uc");
        assert!(take_or_wait(k, "uc", (3, "ns/c".into()), &c, &tx).is_ok());
        release("uc");
    }
}
