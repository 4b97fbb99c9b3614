//! The `LxcBackup` controller: Pending → Running → Completed | Failed.
//!
//! At most one `vzdump` runs per Proxmox node at a time across every `LxcBackup` this process
//! runs (Proxmox itself takes a global per-node lock and would only make the others wait
//! inside their tasks): the kernel's [`NodeQueue`](crate::controller::kernel::NodeQueue) hands
//! the node to the next waiting backup, namespaces in turn, and wakes the waiters when a task
//! ends. Backups that a previous operator process left `Running` keep their node until their
//! task has ended.
//!
//! The archive is found after the task from its log (`creating vzdump archive '…'`) and checked
//! against the storage content (which gives its size); when the log does not name it (PBS), the
//! newest archive of the container made since the start is taken. Deleting an `LxcBackup` with
//! `deletionPolicy: Delete` deletes the archive (already gone = done); `Retain` keeps it.

use crate::controller::cluster::{ClusterHandle, ClusterKey, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::context::Context;
use crate::controller::error::KubeOp;
use crate::controller::kernel::slots::node_key;
use crate::controller::kernel::task::{self, Polled, Started, UNKNOWN_UPID};
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::kernel::{Managed, Pass, Reason, StatusCache, TaskRecord, WakeRoutes};
use crate::controller::tenancy::ownership::{self, ArchiveMark};
use crate::controller::tenancy::policy::Refusal;
use crate::controller::{jitter, Error};
use crate::crd::lxc_backup::{BackupMode, BackupPhase, Compression, LxcBackup, LxcBackupStatus};
use crate::crd::lxc_container::{LxcContainer, PendingTask};
use crate::crd::{DeletionPolicy, CONDITION_READY};
use crate::pve::{self, ErrorClass, Upid, VzdumpParams};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the `LxcBackup` reconciles of one namespace (or all) share.
pub struct BackupCtx {
    /// The operator's shared context.
    pub ctx: Arc<Context>,
    /// Every `LxcBackup` of the scope (to see backups left running by an earlier process).
    pub store: Store<LxcBackup>,
}

impl AsRef<Context> for BackupCtx {
    fn as_ref(&self) -> &Context {
        &self.ctx
    }
}

impl Managed for LxcBackup {
    type Status = LxcBackupStatus;
    const KIND: &'static str = "LxcBackup";

    fn status_of(&self) -> Option<&LxcBackupStatus> {
        self.status.as_ref()
    }
    fn conditions(s: &mut LxcBackupStatus) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcBackupStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn failure_unreadies(_: crate::controller::error::Class) -> bool {
        // a completed backup stays usable whatever a later pass meets
        false
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcBackupStatus> {
        &ctx.status.backups
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcBackup> {
        &ctx.wakes.backups
    }
}

/// A running backup is its task: the marker is `Running` without UPID.
impl TaskRecord for LxcBackupStatus {
    fn pending(&self) -> Option<PendingTask> {
        (self.phase == Some(BackupPhase::Running)).then(|| PendingTask {
            upid: self.upid.clone().unwrap_or_else(|| UNKNOWN_UPID.into()),
            operation: "vzdump".into(),
            started_at: self.started_at.clone(),
        })
    }
    fn set_pending(&mut self, task: Option<PendingTask>) {
        // without a task the UPID stays: it tells which task made (or failed to make) the
        // archive; the phase, set by the caller, says whether it is still in flight
        if let Some(t) = task {
            self.phase = Some(BackupPhase::Running);
            self.upid = (t.upid != UNKNOWN_UPID).then_some(t.upid);
            self.started_at = t.started_at;
        }
    }
}

/// One pass over one `LxcBackup`.
type P<'a> = Pass<'a, LxcBackup>;

/// The `LxcBackup` controller of one namespace (or all).
pub fn controller(client: &Client, namespace: Option<&str>, ctx: Arc<Context>) -> (ControllerFuture, Store<LxcBackup>) {
    let api: Api<LxcBackup> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (wake, wake_rx) = mpsc::unbounded_channel::<ObjectRef<LxcBackup>>();
    ctx.wakes.backups.add(namespace.map(str::to_string), wake);
    let (reader, writer) = reflector::store();
    // spec changes and deletion (generation); not our own status writes
    let stream = watcher(api, crate::controller::kernel::wiring::cache_watch_config())
        .default_backoff()
        .modify(crate::controller::kernel::wiring::slim_for_cache)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let stop = ctx.shutdown.triggered();
    let bctx = Arc::new(BackupCtx {
        ctx,
        store: reader.clone(),
    });
    let wakes = crate::controller::kernel::wiring::tokio_stream_from(wake_rx);
    let run = Controller::for_stream(stream, reader.clone())
        .reconcile_on(wakes)
        .graceful_shutdown_on(stop)
        .run(reconcile, error_policy, bctx)
        .for_each(|_| async {});
    (Box::pin(run), reader)
}

/// Reconciles one `LxcBackup`.
pub async fn reconcile(obj: Arc<LxcBackup>, bctx: Arc<BackupCtx>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &bctx.ctx, reconcile_inner(&obj, &bctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcBackup>, err: &Error, bctx: Arc<BackupCtx>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, bctx)
}

/// Still pending, with a reason.
async fn pending(p: &mut P<'_>, reason: Reason, message: String, action: Action) -> Result<Action, Error> {
    p.status.phase = Some(BackupPhase::Pending);
    p.observed();
    p.not_ready(reason, message, action).await
}

/// Ends in `Failed` with `message`.
async fn fail(p: &mut P<'_>, reason: Reason, message: String) -> Result<Action, Error> {
    release(p);
    p.status.phase = Some(BackupPhase::Failed);
    p.status.completed_at = Some(p.now.clone());
    p.observed();
    p.not_ready(reason, message, Action::await_change()).await
}

/// Frees the node and the task slot the backup holds.
fn release(p: &P<'_>) {
    p.ctx.vzdump.forget(&p.uid);
    p.ctx.slots.release(&p.uid);
}

async fn reconcile_inner(obj: &LxcBackup, bctx: &BackupCtx) -> Result<Action, Error> {
    let mut p = Pass::new(obj, &bctx.ctx);
    p.ctx.vzdump.leave_waiting(&p.uid);
    if obj.metadata.deletion_timestamp.is_some() {
        return cleanup(&mut p, bctx).await;
    }
    p.add_finalizer().await?;
    match p.status.phase {
        Some(BackupPhase::Completed) | Some(BackupPhase::Failed) => {
            release(&p);
            Ok(Action::await_change())
        }
        Some(BackupPhase::Running) => poll(&mut p, bctx).await,
        None | Some(BackupPhase::Pending) => start(&mut p, bctx).await,
    }
}

/// The cluster named in status, when usable.
fn usable(p: &P<'_>) -> Option<(Arc<ClusterHandle>, Arc<Snapshot>)> {
    let name = p.status.cluster.clone()?;
    p.ctx.clusters.usable(&ClusterKey::named(name)).ok()
}

/// `Ready=False, reason=ClusterNotReady`: the cluster in status is not usable; `then` says what
/// happens once it is.
async fn cluster_not_ready(p: &mut P<'_>, then: &str) -> Result<Action, Error> {
    let cluster = p.status.cluster.clone().unwrap_or_default();
    let msg = format!("ProxmoxCluster {cluster} is not connected; {then}");
    p.not_ready(
        Reason::ClusterNotReady,
        msg,
        Action::requeue(jitter(Duration::from_secs(10))),
    )
    .await
}

/// A storage for backups on `node` when the spec names none: a shared one first.
fn default_storage(snap: &Snapshot, node: &str) -> Option<String> {
    let mut candidates: Vec<_> = snap
        .storages
        .iter()
        .filter(|s| s.node == node && s.content.iter().any(|c| c == "backup"))
        .collect();
    candidates.sort_by_key(|s| (!s.shared, s.name != "local", s.name.clone()));
    candidates.first().map(|s| s.name.clone())
}

async fn start(p: &mut P<'_>, bctx: &BackupCtx) -> Result<Action, Error> {
    let ns = p.obj.namespace().unwrap_or_default();
    let spec = &p.obj.spec;
    let wait = |secs| Action::requeue(jitter(Duration::from_secs(secs)));
    let containers: Api<LxcContainer> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let Some(ct) = containers
        .get_opt(&spec.container_ref.name)
        .await
        .op("read LxcContainer")?
    else {
        let msg = format!("LxcContainer {} does not exist", spec.container_ref.name);
        return pending(p, Reason::ContainerNotFound, msg, wait(15)).await;
    };
    // ObserveOnly is read-only: a backup (vzdump, possibly with mode stop) changes the guest
    if ct.spec.management != crate::crd::lxc_container::Management::Full {
        let msg = format!(
            "LxcContainer {} is ObserveOnly (read-only): it is never backed up by the operator",
            ct.name_any()
        );
        return fail(p, Reason::NotOwned, msg).await;
    }
    let cluster = p.ctx.clusters.of_container(&ct).name;
    p.status.cluster = Some(cluster.clone());
    let Some((handle, snap)) = usable(p) else {
        return pending(
            p,
            Reason::ClusterNotReady,
            format!("ProxmoxCluster {cluster} is not connected"),
            wait(10),
        )
        .await;
    };
    let Some(vmid) = ct.status.as_ref().and_then(|s| s.vmid) else {
        return pending(
            p,
            Reason::WaitingForContainer,
            format!("LxcContainer {} has no vmid yet", ct.name_any()),
            wait(10),
        )
        .await;
    };
    let guest = snap.guests.get(&vmid);
    // the vmid in the container's status counts only when Proxmox shows its identity tag there
    let identity = crate::controller::container::desired::identity_tag(&ct.uid().unwrap_or_default());
    if guest.is_some_and(|g| !g.tags.contains(&identity)) {
        let msg = format!(
            "CT {vmid} in the status of LxcContainer {} does not carry its identity tag",
            ct.name_any()
        );
        return pending(p, Reason::NotOwned, msg, wait(30)).await;
    }
    let Some(node) = guest.map(|g| g.node.clone()) else {
        let msg = format!("CT {vmid} of LxcContainer {} is not in Proxmox (yet)", ct.name_any());
        return pending(p, Reason::WaitingForContainer, msg, wait(10)).await;
    };
    if let Some(lock) = guest.and_then(|g| g.lock.clone()) {
        return pending(
            p,
            Reason::ContainerLocked,
            format!("CT {vmid} is locked ({lock}); waiting"),
            wait(5),
        )
        .await;
    }
    let Some(storage) = spec.storage.clone().or_else(|| default_storage(&snap, &node)) else {
        let msg = format!("node {node} has no storage for backups (content backup); set spec.storage");
        return pending(p, Reason::NoBackupStorage, msg, wait(60)).await;
    };
    if let Err(e) = super::precheck::storage(&snap, &node, &storage) {
        return p.invalid(e).await;
    }
    if let Err(r) = tenant_allows(p.ctx, &ns, &handle, &storage) {
        return pending(p, r.reason, r.message, wait(30)).await;
    }
    p.status.vmid = Some(vmid);
    p.status.storage = Some(storage.clone());
    // the node: free in this process, namespaces in turn, and no backup of this scope left
    // running there by an earlier process
    let qkey = node_key(&handle.key, &node);
    let order = (
        p.obj.creation_timestamp().map(|t| t.0.as_millisecond()).unwrap_or(0),
        format!("{ns}/{}", p.obj.name_any()),
    );
    let left_running = bctx.store.state().into_iter().find(|b| {
        b.uid().as_deref() != Some(p.uid.as_str())
            && b.namespace() == p.obj.namespace()
            && b.metadata.deletion_timestamp.is_none()
            && b.status.as_ref().is_some_and(|s| {
                s.phase == Some(BackupPhase::Running)
                    && s.node.as_deref() == Some(node.as_str())
                    && s.cluster.as_deref() == Some(cluster.as_str())
            })
    });
    let taken = match left_running {
        Some(b) if !p.ctx.vzdump.holds(&qkey, &b.uid().unwrap_or_default()) => Err(b.name_any()),
        _ => p.ctx.vzdump.take_or_wait(&qkey, &p.uid, &ns, order, p.waker()),
    };
    if let Err(other) = taken {
        let msg = format!("waiting for node {node}: one vzdump per node at a time ({other} goes first)");
        return pending(p, Reason::Queued, msg, wait(10)).await;
    }
    let params = VzdumpParams {
        vmid: vec![vmid],
        storage: Some(storage.clone()),
        mode: Some(mode_str(spec.mode).into()),
        compress: Some(compress_str(spec.compress).into()),
        // the mark first (whose archive it is), the user's notes after it (the CRD allows no
        // line breaks, so they cannot forge the first line)
        notes_template: Some(ownership::notes_template(&mark(p, &ns, &ct), spec.notes.as_deref())),
        // retention is ours (per schedule, on LxcBackup objects): never let vzdump prune
        remove: Some(false),
        protected: spec.options.protected.then_some(true),
        fleecing: spec.options.fleecing(),
        pbs_change_detection_mode: spec.options.pbs_mode().map(str::to_string),
        ..Default::default()
    };
    // recorded before the call: a crash in between leaves a Running backup without UPID, which
    // the next pass resolves from the container's lock and the storage content
    p.status.node = Some(node.clone());
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Running,
        format!("vzdump of CT {vmid} is running on {node}"),
    ));
    let client = handle.client.clone();
    let (n, params) = (node.clone(), params);
    match task::start(p, &handle, &node, "vzdump", true, async move {
        client.vzdump(&n, &params).await
    })
    .await
    {
        Err(e) => {
            release(p);
            Err(e)
        }
        Ok(Started::Task(_)) => {
            p.event(
                Reason::Started,
                format!("vzdump of CT {vmid} started on {node} to storage {storage}"),
            )
            .await;
            Ok(Action::requeue(task::poll_interval(
                None,
                jiff::Timestamp::now(),
                p.ctx.settings.task_poll,
            )))
        }
        Ok(Started::NoSlot) => {
            p.ctx.vzdump.forget(&p.uid);
            pending(
                p,
                Reason::WaitingForTaskSlot,
                format!("waiting for a task slot on node {node}"),
                wait(3),
            )
            .await
        }
        Ok(Started::NoTask) => {
            release(p);
            handle.refresh.notify_one();
            p.status.started_at = None;
            pending(
                p,
                Reason::ContainerMoved,
                format!("CT {vmid} is no longer on {node}; looking again"),
                wait(2),
            )
            .await
        }
        Ok(Started::Refused(e))
            if matches!(
                e.class(),
                ErrorClass::InvalidSpec | ErrorClass::Permanent | ErrorClass::Conflict
            ) =>
        {
            p.ctx.metrics.task_failed("vzdump");
            fail(
                p,
                Reason::BackupFailed,
                format!("Proxmox refused the vzdump of CT {vmid}: {}", e.message()),
            )
            .await
        }
        Ok(Started::Refused(e)) => {
            release(p);
            p.status.phase = Some(BackupPhase::Pending);
            p.status.started_at = None;
            p.cond(CondSpec::no(
                CONDITION_READY,
                Reason::StartFailed,
                format!("vzdump of CT {vmid} could not be started: {e}"),
            ));
            p.save().await?;
            Err(e.into())
        }
    }
}

/// The lock a failed vzdump met (`ERROR: Backup of VM 100 failed - CT is locked (snapshot)`),
/// when that is its only error: a transient state, not a failed backup.
fn met_lock(text: &str, tail: &[String]) -> Option<String> {
    // the task's own `TASK ERROR: job errors` summary line is not one of them
    let errors: Vec<&String> = tail
        .iter()
        .filter(|l| l.contains("ERROR") && !l.starts_with("TASK ERROR"))
        .collect();
    match errors.as_slice() {
        [] => pve::locked_reason(text),
        [one] => pve::locked_reason(one),
        _ => None,
    }
}

/// What the operator records in the archive's notes: the namespace, container and backup.
fn mark(p: &P<'_>, ns: &str, ct: &LxcContainer) -> ArchiveMark {
    ArchiveMark {
        namespace: ns.to_string(),
        namespace_uid: p.ctx.tenancy.namespace_uid(ns),
        container_uid: ct.uid().unwrap_or_default(),
        backup_uid: p.uid.clone(),
    }
}

/// Whether the tenant of `ns` may use the cluster and back up to `storage`.
fn tenant_allows(ctx: &Context, ns: &str, handle: &ClusterHandle, storage: &str) -> Result<(), Refusal> {
    let admission = ctx.tenancy.admission(ns, handle)?;
    let allowed = admission
        .spec()
        .and_then(|t| t.storages.as_ref())
        .map(|s| s.backup.clone())
        .unwrap_or_default();
    if !allowed.is_empty() && !allowed.iter().any(|s| s == storage) {
        return Err(Refusal::new(
            Reason::TenantPolicyStorage,
            format!(
                "storage {storage} is not one of the tenant's backup storages ({})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
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
async fn find_archive(
    handle: &ClusterHandle,
    upid: Option<&Upid>,
    node: &str,
    storage: &str,
    vmid: u32,
    since: Option<&Time>,
    (ns, uid): (&str, &str),
) -> Result<Option<(String, Option<u64>)>, pve::Error> {
    let from_log = match upid {
        Some(u) => archive_from_log(&handle.client.task_log_tail(u, 50).await.unwrap_or_default())
            .map(|f| format!("{storage}:backup/{f}")),
        None => None,
    };
    let list = handle
        .client
        .storage_content(node, storage, Some("backup"), Some(vmid))
        .await?;
    let since = since.map(|t| t.0.as_second() - 5).unwrap_or(i64::MAX);
    // only archives whose notes say this LxcBackup made them: never a foreign one
    let entries: Vec<(String, Option<i64>, Option<u64>)> = list
        .into_iter()
        .filter(|e| ownership::made_by_backup(e.notes.as_deref(), ns, uid))
        .map(|e| (e.volid, e.ctime, e.size))
        .collect();
    Ok(pick_archive(&entries, from_log.as_deref(), since))
}

/// Which archive a finished vzdump made, from the storage listing (volid, ctime, size): the one
/// its log names; when the log names none (PBS), the single archive of the container made
/// since the start. Several candidates (another job backed the container up meanwhile) or a
/// named archive not listed give none: a foreign archive is never adopted, and so never
/// deleted with this object.
pub fn pick_archive(
    list: &[(String, Option<i64>, Option<u64>)],
    from_log: Option<&str>,
    since: i64,
) -> Option<(String, Option<u64>)> {
    if let Some(v) = from_log {
        return list.iter().find(|e| e.0 == v).map(|e| (e.0.clone(), e.2));
    }
    let mut new = list.iter().filter(|e| e.1.is_some_and(|c| c >= since));
    match (new.next(), new.next()) {
        (Some(e), None) => Some((e.0.clone(), e.2)),
        _ => None,
    }
}

async fn poll(p: &mut P<'_>, bctx: &BackupCtx) -> Result<Action, Error> {
    let Some((handle, snap)) = usable(p) else {
        return cluster_not_ready(p, "the vzdump is checked once it is").await;
    };
    let (Some(node), Some(vmid), Some(storage)) = (p.status.node.clone(), p.status.vmid, p.status.storage.clone())
    else {
        p.status.phase = Some(BackupPhase::Pending);
        return start(p, bctx).await;
    };
    p.ctx
        .vzdump
        .claim(&node_key(&handle.key, &node), &p.uid, &p.obj.name_any());
    let principal = handle.client.principal();
    let Some(upid) = p
        .status
        .upid
        .as_ref()
        .and_then(|u| u.parse::<Upid>().ok())
        .map(|u| u.unredacted(&principal))
    else {
        // the operator stopped between recording the start and learning the UPID
        let locked = snap.guests.get(&vmid).and_then(|g| g.lock.clone());
        if locked.as_deref() == Some("backup") {
            return Ok(Action::requeue(jitter(Duration::from_secs(2))));
        }
        return match find_archive(
            &handle,
            None,
            &node,
            &storage,
            vmid,
            p.status.started_at.as_ref(),
            (&p.obj.namespace().unwrap_or_default(), &p.uid),
        )
        .await?
        {
            Some(found) => complete(p, &handle, found, None).await,
            None => {
                release(p);
                p.status.phase = Some(BackupPhase::Pending);
                p.status.started_at = None;
                start(p, bctx).await
            }
        };
    };
    match task::poll(p, &handle, 6).await? {
        None => Ok(Action::requeue(Duration::from_millis(100))),
        Some((pt, Polled::Running)) => {
            p.save().await?;
            Ok(Action::requeue(task::poll_interval(
                pt.started_at.as_ref(),
                jiff::Timestamp::now(),
                p.ctx.settings.task_poll,
            )))
        }
        Some((_, Polled::Unknown)) => {
            p.ctx.metrics.task_failed("vzdump");
            fail(
                p,
                Reason::BackupFailed,
                format!("vzdump of CT {vmid} failed: the vzdump task is unknown to Proxmox"),
            )
            .await
        }
        Some((_, Polled::Done(warnings))) => match find_archive(
            &handle,
            Some(&upid),
            &node,
            &storage,
            vmid,
            p.status.started_at.as_ref(),
            (&p.obj.namespace().unwrap_or_default(), &p.uid),
        )
        .await?
        {
            Some(found) => complete(p, &handle, found, warnings).await,
            None => {
                p.ctx.metrics.task_failed("vzdump");
                let msg = format!("vzdump of CT {vmid} reported success but no new archive of CT {vmid} is in storage {storage} on {node}");
                fail(p, Reason::ArchiveNotFound, msg).await
            }
        },
        Some((_, Polled::Failed { text, tail })) => {
            if let Some(lock) = met_lock(&text, &tail) {
                // the container was locked (a snapshot, a migration) when vzdump reached it:
                // nothing was written; wait for the lock like a backup that saw it first
                release(p);
                p.status.upid = None;
                p.status.started_at = None;
                let msg = format!("vzdump of CT {vmid} found it locked ({lock}); trying again once the lock is gone");
                p.event(Reason::ContainerLocked, msg.clone()).await;
                let wait = p.retry(Reason::ContainerLocked);
                return pending(p, Reason::ContainerLocked, msg, wait).await;
            }
            let errors: Vec<String> = tail.iter().filter(|l| l.contains("ERROR")).cloned().collect();
            let detail = if errors.is_empty() { tail } else { errors };
            let msg = task::failure_message(&format!("vzdump of CT {vmid}"), &text, &detail).replacen(
                " task failed",
                " failed",
                1,
            );
            fail(p, Reason::BackupFailed, msg).await
        }
    }
}

async fn complete(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    (volid, size): (String, Option<u64>),
    warnings: Option<u32>,
) -> Result<Action, Error> {
    release(p);
    crate::controller::container::report::backups_changed();
    let vmid = p.status.vmid.unwrap_or_default();
    p.status.phase = Some(BackupPhase::Completed);
    p.status.volid = Some(volid.clone());
    p.status.size_bytes = size;
    p.status.size = size.map(crate::crd::human_size);
    p.status.completed_at = Some(p.now.clone());
    let msg = match warnings {
        Some(n) => format!("archive {volid} of CT {vmid} (vzdump ended with {n} warnings)"),
        None => format!("archive {volid} of CT {vmid}"),
    };
    p.cond(CondSpec::yes(CONDITION_READY, Reason::Completed, msg.clone()));
    p.observed();
    p.save().await?;
    p.event(Reason::Completed, msg).await;
    handle.refresh.notify_one();
    Ok(Action::await_change())
}

/// The archive is gone: the containers list their archives again, and the event.
async fn archive_deleted(p: &P<'_>, volid: &str, storage: &str) {
    crate::controller::container::report::backups_changed();
    p.event(
        Reason::ArchiveDeleted,
        format!("deleted archive {volid} from storage {storage}"),
    )
    .await;
}

async fn cleanup(p: &mut P<'_>, bctx: &BackupCtx) -> Result<Action, Error> {
    let obj = p.obj;
    if !p.has_finalizer() {
        p.ctx.forget(&p.uid);
        return Ok(Action::await_change());
    }
    // a vzdump in flight finishes first (its archive is then deleted or kept like any other)
    if p.status.phase == Some(BackupPhase::Running) {
        poll(p, bctx).await?;
        if p.status.phase == Some(BackupPhase::Running) {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
    }
    release(p);
    let volid = match (&p.status.volid, obj.spec.deletion_policy) {
        (Some(v), DeletionPolicy::Delete) => v.clone(),
        (Some(v), DeletionPolicy::Retain) => {
            p.event(
                Reason::Retained,
                format!("archive {v} stays in storage (deletionPolicy Retain)"),
            )
            .await;
            p.remove_finalizer().await?;
            p.ctx.forget(&p.uid);
            return Ok(Action::await_change());
        }
        (None, _) => {
            p.remove_finalizer().await?;
            p.ctx.forget(&p.uid);
            return Ok(Action::await_change());
        }
    };
    let Some((handle, snap)) = usable(p) else {
        return cluster_not_ready(p, &format!("archive {volid} is deleted once it is")).await;
    };
    let storage = volid.split_once(':').map(|x| x.0.to_string()).unwrap_or_default();
    let node = p.status.node.clone().filter(|n| snap.node_online(n)).or_else(|| {
        snap.storages
            .iter()
            .find(|s| s.shared && s.name == storage && snap.node_online(&s.node))
            .map(|s| s.node.clone())
    });
    let Some(node) = node else {
        let msg = format!(
            "cannot delete archive {volid}: node {} is not online",
            p.status.node.clone().unwrap_or_default()
        );
        return p
            .not_ready(
                Reason::NodeUnavailable,
                msg,
                Action::requeue(jitter(Duration::from_secs(30))),
            )
            .await;
    };
    let present = match handle
        .client
        .storage_content(&node, &storage, Some("backup"), p.status.vmid)
        .await
    {
        Ok(list) => list.into_iter().find(|e| e.volid == volid).map(|e| e.notes),
        Err(e) if e.class() == ErrorClass::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    // the volid in status is only believed when the archive's notes say this LxcBackup made it
    let present = match present {
        Some(notes) if ownership::made_by_backup(notes.as_deref(), &p.obj.namespace().unwrap_or_default(), &p.uid) => {
            true
        }
        Some(_) => {
            p.event(
                Reason::LeftUntouched,
                format!("archive {volid} was not made by this LxcBackup; it is left in storage"),
            )
            .await;
            false
        }
        None => false,
    };
    let gone = |e: &pve::Error| e.class() == ErrorClass::NotFound || e.message().contains("does not exist");
    if present {
        super::protected::lift(p, &handle, &node, &storage, &volid).await?;
        match handle.client.delete_volume(&node, &storage, &volid).await {
            Ok(Some(upid)) => match handle
                .client
                .wait_task(&upid, p.ctx.settings.task_poll, Duration::from_secs(60))
                .await
            {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => {
                    let msg = format!("deleting archive {volid} failed: {}", e.message());
                    return p
                        .not_ready(
                            Reason::DeleteFailed,
                            msg,
                            Action::requeue(jitter(Duration::from_secs(30))),
                        )
                        .await;
                }
            },
            Ok(None) => {}
            Err(e) if gone(&e) => {}
            Err(e) if super::protected::refused(&e) => return super::protected::left(p, &volid).await,
            Err(e) => return Err(e.into()),
        }
        archive_deleted(p, &volid, &storage).await;
    }
    p.remove_finalizer().await?;
    p.ctx.forget(&p.uid);
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "lxc_backup_tests.rs"]
mod tests;
