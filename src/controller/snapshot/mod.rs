//! The `LxcSnapshot` controller: Pending → Creating → Ready (| Failed), explicit rollbacks, and
//! deletion of the Proxmox snapshot through the finalizer.
//!
//! Ownership is proven in Proxmox: the container must carry its object's identity tag, and the
//! first line of the snapshot's description is the mark `pve.lxc.dev snapshot=<uid>` written
//! when it is taken. A snapshot of that name without our mark is never adopted, rolled back to
//! or deleted. A rollback is carried out once per `spec.rollback.request` value: the request
//! is recorded in status before the task starts, so a crash, a failure or a re-applied
//! manifest never rolls back twice.

pub mod decide;
pub mod schedule;

use crate::controller::cluster::ClusterHandle;
use crate::controller::conditions::CondSpec;
use crate::controller::context::Context;
use crate::controller::error::KubeOp;
use crate::controller::kernel::task::{self, failure_message, Polled, Started};
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::kernel::{Managed, Pass, Reason, StatusCache, TaskRecord, WakeRoutes};
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::{LxcContainer, Management, PendingTask, PowerState};
use crate::crd::lxc_snapshot::{LxcSnapshot, LxcSnapshotStatus, RollbackStatus, SnapshotPhase};
use crate::crd::{DeletionPolicy, CONDITION_READY, CONDITION_SYNCED};
use decide::{Next, Want};
use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{predicates, reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

impl Managed for LxcSnapshot {
    type Status = LxcSnapshotStatus;
    const KIND: &'static str = "LxcSnapshot";

    fn status_of(&self) -> Option<&LxcSnapshotStatus> {
        self.status.as_ref()
    }
    fn conditions(s: &mut LxcSnapshotStatus) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcSnapshotStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn failure_unreadies(_: crate::controller::error::Class) -> bool {
        // a snapshot taken stays usable whatever a later pass meets
        false
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcSnapshotStatus> {
        &ctx.status.snapshots
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcSnapshot> {
        &ctx.wakes.snapshots
    }
}

impl TaskRecord for LxcSnapshotStatus {
    fn pending(&self) -> Option<PendingTask> {
        self.pending_task.clone()
    }
    fn set_pending(&mut self, task: Option<PendingTask>) {
        self.pending_task = task;
    }
}

type P<'a> = Pass<'a, LxcSnapshot>;

/// The snapshot controllers of one namespace (or all): `LxcSnapshot` and
/// `LxcSnapshotSchedule`, joined into one future, and the `LxcSnapshot` cache.
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, Store<LxcSnapshot>) {
    let (snapshots, store) = snapshot_controller(client, namespace, ctx.clone());
    let (s, schedules) = crate::controller::schedule::pass::controller::<crate::crd::LxcSnapshotSchedule>(
        client,
        namespace,
        ctx.clone(),
    );
    ctx.tenancy.add_snapshot_schedules(schedules);
    let run = Box::pin(async move {
        futures::future::join(snapshots, s).await;
    });
    (run, store)
}

/// The `LxcSnapshot` controller of one namespace (or all).
fn snapshot_controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, Store<LxcSnapshot>) {
    let api: Api<LxcSnapshot> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (wake, wake_rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<LxcSnapshot>>();
    ctx.wakes.snapshots.add(namespace.map(str::to_string), wake);
    let (reader, writer) = reflector::store();
    let stream = watcher(api, crate::controller::kernel::wiring::cache_watch_config())
        .default_backoff()
        .modify(crate::controller::kernel::wiring::slim_for_cache)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let run = Controller::for_stream(stream, reader.clone())
        .reconcile_on(crate::controller::kernel::wiring::tokio_stream_from(wake_rx))
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    (Box::pin(run), reader)
}

/// Reconciles one `LxcSnapshot`.
pub async fn reconcile(obj: Arc<LxcSnapshot>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcSnapshot>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

fn wait(secs: u64) -> Action {
    Action::requeue(jitter(Duration::from_secs(secs)))
}

/// The container, its cluster connection and where it is, when it is ours to snapshot.
struct Target {
    handle: Arc<ClusterHandle>,
    node: String,
    vmid: u32,
    running_wanted: bool,
}

/// Finds the container and proves it ours in Proxmox; `Err` is the action after a condition.
async fn target(p: &mut P<'_>) -> Result<Result<Target, Action>, Error> {
    let ns = p.obj.namespace().unwrap_or_default();
    let name = p.obj.spec.container_ref.name.clone();
    let api: Api<LxcContainer> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let ct = api.get_opt(&name).await.op("read LxcContainer")?;
    let taken_of = p.status.container_uid.clone().zip(p.status.vmid);
    let now = ct
        .as_ref()
        .map(|c| (c.uid().unwrap_or_default(), c.status.as_ref().and_then(|s| s.vmid)));
    let snapshot = p.status.snapshot_name.clone().unwrap_or_default();
    if let Some((reason, msg)) = decide::container_changed(
        &name,
        &snapshot,
        taken_of.as_ref().map(|(u, v)| (u.as_str(), *v)),
        now.as_ref().map(|(u, v)| (u.as_str(), *v)),
    ) {
        p.status.phase = Some(SnapshotPhase::Failed);
        return Ok(Err(p.not_ready(reason, msg, Action::await_change()).await?));
    }
    let Some(ct) = ct else {
        let msg = format!("LxcContainer {name} does not exist");
        return Ok(Err(p.not_ready(Reason::ContainerNotFound, msg, wait(15)).await?));
    };
    if ct.spec.management != Management::Full {
        let msg = format!("LxcContainer {name} is ObserveOnly (read-only): it is never snapshotted");
        return Ok(Err(p.not_ready(Reason::NotOwned, msg, Action::await_change()).await?));
    }
    let key = p.ctx.clusters.of_container(&ct);
    let (handle, inv) = match p.ctx.clusters.usable(&key) {
        Ok(u) => u,
        Err(why) => return Ok(Err(p.not_ready(Reason::ClusterNotReady, why, wait(10)).await?)),
    };
    if let Err(r) = p.ctx.tenancy.admission(&ns, &handle) {
        return Ok(Err(p.not_ready(r.reason, r.message, wait(30)).await?));
    }
    let Some(vmid) = ct.status.as_ref().and_then(|s| s.vmid) else {
        let msg = format!("LxcContainer {name} has no vmid yet");
        return Ok(Err(p.not_ready(Reason::WaitingForContainer, msg, wait(10)).await?));
    };
    match decide::located(&inv, vmid, &ct.uid().unwrap_or_default()) {
        Ok(node) => {
            p.status.cluster = Some(key.name.clone());
            // recorded with the snapshot (and for one taken before this was recorded)
            if p.status.vmid.is_none_or(|v| v == vmid) {
                p.status.container_uid = ct.uid();
            }
            Ok(Ok(Target {
                handle,
                node,
                vmid,
                running_wanted: ct.spec.state == PowerState::Running,
            }))
        }
        Err((reason, msg)) => Ok(Err(p.not_ready(reason, msg, wait(10)).await?)),
    }
}

/// Whether Proxmox has snapshot `name` of `vmid`, and whether it carries our mark.
async fn find(p: &P<'_>, t: &Target, name: &str) -> Result<Option<bool>, Error> {
    let list = t.handle.client.lxc_snapshots(&t.node, t.vmid).await?;
    Ok(list
        .iter()
        .find(|s| s.name == name)
        .map(|s| decide::marked(s.description.as_deref(), &p.uid)))
}

async fn reconcile_inner(obj: &LxcSnapshot, ctx: &Context) -> Result<Action, Error> {
    let mut p = Pass::new(obj, ctx);
    if obj.metadata.deletion_timestamp.is_some() {
        return cleanup(&mut p).await;
    }
    p.add_finalizer().await?;
    let name = match decide::snapshot_name(obj, p.status.snapshot_name.as_deref()) {
        Ok(n) => n,
        Err(e) => return p.invalid(e).await,
    };
    if p.status.phase == Some(SnapshotPhase::Failed) {
        return Ok(Action::await_change());
    }
    let t = match target(&mut p).await? {
        Ok(t) => t,
        Err(action) => return Ok(action),
    };
    if let Some(action) = check_task(&mut p, &t.handle).await? {
        return Ok(action);
    }
    let exists = find(&p, &t, &name).await?;
    match decide::next(
        p.status.phase,
        exists,
        obj.spec.rollback.as_ref(),
        p.status.rollback.as_ref(),
    ) {
        Next::Take => {
            p.status.snapshot_name = Some(name.clone());
            p.status.node = Some(t.node.clone());
            p.status.vmid = Some(t.vmid);
            let description = decide::description(&p.uid, obj.spec.description.as_deref());
            let (client, node, vmid, n) = (t.handle.client.clone(), t.node.clone(), t.vmid, name.clone());
            let call = async move { client.lxc_snapshot_create(&node, vmid, &n, Some(&description)).await };
            run_task(&mut p, &t, Want::Snapshot, call).await
        }
        Next::Adopt => ready(&mut p, &name).await,
        Next::Taken => {
            p.status.phase = Some(SnapshotPhase::Failed);
            let msg = format!(
                "CT {} already has a snapshot named {name} that this object did not take; set spec.snapshotName to another name",
                t.vmid
            );
            p.not_ready(Reason::VmidConflict, msg, Action::await_change()).await
        }
        Next::Gone => {
            p.status.phase = Some(SnapshotPhase::Failed);
            let msg = format!("snapshot {name} of CT {} is gone from Proxmox", t.vmid);
            p.not_ready(Reason::NotFound, msg, Action::await_change()).await
        }
        Next::Rollback(request) => {
            let start = obj
                .spec
                .rollback
                .as_ref()
                .and_then(|r| r.start)
                .unwrap_or(t.running_wanted);
            // recorded before the task: whatever happens next, this request is not carried out twice
            p.status.rollback = Some(RollbackStatus {
                request,
                completed_at: None,
                snapshot_name: name.clone(),
            });
            let (client, node, vmid, n) = (t.handle.client.clone(), t.node.clone(), t.vmid, name.clone());
            let call = async move { client.lxc_snapshot_rollback(&node, vmid, &n, Some(start)).await };
            run_task(&mut p, &t, Want::Rollback, call).await
        }
        Next::Nothing => ready(&mut p, &name).await,
    }
}

async fn ready(p: &mut P<'_>, name: &str) -> Result<Action, Error> {
    if p.status.phase != Some(SnapshotPhase::Ready) {
        p.status.created_at.get_or_insert(p.now.clone());
    }
    p.status.phase = Some(SnapshotPhase::Ready);
    p.status.snapshot_name = Some(name.to_string());
    let vmid = p.status.vmid.unwrap_or_default();
    p.cond(CondSpec::yes(
        CONDITION_READY,
        Reason::Ready,
        format!("snapshot {name} of CT {vmid}"),
    ));
    p.cond(CondSpec::yes(
        CONDITION_SYNCED,
        Reason::InSync,
        "Proxmox matches the spec",
    ));
    p.observed();
    p.save().await?;
    // looked at again now and then: a container deleted or re-created is then reported
    Ok(match p.ctx.settings.drift_check_interval {
        d if d.is_zero() => Action::await_change(),
        d => Action::requeue(jitter(d)),
    })
}

/// Starts a snapshot or rollback task in a task slot of the container's node.
async fn run_task(
    p: &mut P<'_>,
    t: &Target,
    want: Want,
    call: impl std::future::Future<Output = crate::pve::Result<crate::pve::Upid>>,
) -> Result<Action, Error> {
    if want == Want::Snapshot {
        p.status.phase = Some(SnapshotPhase::Creating);
    }
    match task::start(p, &t.handle, &t.node, want.operation(), true, call).await? {
        Started::Task(_) | Started::NoTask => {
            p.event(
                Reason::Started,
                format!("{} of CT {} started", want.operation(), t.vmid),
            )
            .await;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Started::NoSlot => {
            let msg = format!("waiting for a task slot on node {}", t.node);
            p.not_ready(Reason::WaitingForTaskSlot, msg, wait(3)).await
        }
        Started::Refused(e) => {
            let msg = format!(
                "Proxmox refused the {} of CT {}: {}",
                want.operation(),
                t.vmid,
                e.message()
            );
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskFailed, msg.clone()));
            if want == Want::Snapshot {
                p.status.phase = Some(SnapshotPhase::Pending);
            }
            p.save().await?;
            Err(e.into())
        }
    }
}

/// Checks the task in status; `Some(action)` while it runs.
async fn check_task(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    let next = |p: &P<'_>| {
        let started = p.status.pending_task.as_ref().and_then(|t| t.started_at.as_ref());
        Action::requeue(task::poll_interval(
            started,
            jiff::Timestamp::now(),
            p.ctx.settings.task_poll,
        ))
    };
    match task::poll(p, handle, 3).await? {
        None | Some((_, Polled::Unknown)) => Ok(None),
        Some((_, Polled::Running)) => {
            p.save().await?;
            Ok(Some(next(p)))
        }
        Some((pt, Polled::Done(_))) => {
            if pt.operation == Want::Rollback.operation() {
                if let Some(r) = p.status.rollback.as_mut() {
                    r.completed_at = Some(p.now.clone());
                    let msg = format!("rolled back to snapshot {} (request {})", r.snapshot_name, r.request);
                    p.event(Reason::Completed, msg).await;
                }
            }
            Ok(None)
        }
        Some((pt, Polled::Failed { text, tail })) => {
            let msg = failure_message(&pt.operation, &text, &tail);
            p.event(Reason::TaskFailed, msg.clone()).await;
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskFailed, msg.clone()));
            if pt.operation == Want::Snapshot.operation() {
                p.status.phase = Some(SnapshotPhase::Failed);
                p.cond(CondSpec::no(CONDITION_READY, Reason::TaskFailed, msg));
            }
            // a failed rollback stays recorded: a new request value asks again
            p.observed();
            p.save().await?;
            Ok(Some(Action::await_change()))
        }
    }
}

/// Deletion: the Proxmox snapshot goes first (when ours and `Delete`), then the finalizer.
async fn cleanup(p: &mut P<'_>) -> Result<Action, Error> {
    if !p.has_finalizer() {
        p.ctx.forget(&p.uid);
        return Ok(Action::await_change());
    }
    let keep = p.obj.spec.deletion_policy == DeletionPolicy::Retain;
    let recorded = (
        p.status.cluster.clone(),
        p.status.node.clone(),
        p.status.vmid,
        p.status.snapshot_name.clone(),
    );
    let (Some(cluster), Some(_), Some(vmid), Some(name)) = recorded else {
        return done(p).await;
    };
    if keep {
        p.event(
            Reason::Retained,
            format!("snapshot {name} of CT {vmid} stays (deletionPolicy Retain)"),
        )
        .await;
        return done(p).await;
    }
    let key = crate::controller::cluster::ClusterKey::named(cluster);
    let (handle, inv) = match p.ctx.clusters.usable(&key) {
        Ok(u) => u,
        Err(why) => return p.not_ready(Reason::ClusterNotReady, why, wait(10)).await,
    };
    if let Some(action) = check_task(p, &handle).await? {
        return Ok(action);
    }
    // the container may have moved since: look where it is now
    let Some(node) = inv.guests.get(&vmid).map(|g| g.node.clone()) else {
        return done(p).await;
    };
    let list = handle.client.lxc_snapshots(&node, vmid).await?;
    match list.iter().find(|s| s.name == name) {
        None => done(p).await,
        Some(s) if !decide::marked(s.description.as_deref(), &p.uid) => {
            p.event(
                Reason::LeftUntouched,
                format!("snapshot {name} of CT {vmid} was not taken by this object; it is not deleted"),
            )
            .await;
            done(p).await
        }
        Some(_) => {
            let t = Target {
                handle: handle.clone(),
                node: node.clone(),
                vmid,
                running_wanted: false,
            };
            let (client, n) = (handle.client.clone(), name.clone());
            let call = async move { client.lxc_snapshot_delete(&node, vmid, &n, None).await };
            run_task(p, &t, Want::Delete, call).await
        }
    }
}

async fn done(p: &mut P<'_>) -> Result<Action, Error> {
    p.remove_finalizer().await?;
    p.ctx.forget(&p.uid);
    Ok(Action::await_change())
}
