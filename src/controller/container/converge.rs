//! Converging an existing container, read top to bottom: `gather` what the rules need,
//! `converge_step::decide` the next step (pure, table-tested in
//! `converge_tests.rs`), `act` on it. A step that starts a task, waits or reports ends the pass;
//! a step that does not (the HA sync, a synchronous config update, a check) fills in its fact
//! and the pass decides again. The in-sync report is in [`super::report`].

use super::converge_step::{decide, ConvergeStep, Facts, ImageChange, Planned, Target};
use super::desired::{Desired, InvalidSpec, Source};
use super::identity::{self, Evidence, Ownership};
use super::locate::Located;
use super::pass::{start_task, CONDITION_PENDING_RESTART, P};
use super::plan::{plan, Observed, PowerAction};
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::{Halt, Reason, Step};
use crate::controller::{jitter, Error};
use crate::crd::app::AppExitPolicy;
use crate::crd::lxc_container::*;
use crate::crd::{Operation, CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::time::Duration;

/// How often a bind mount or device Proxmox refused for want of `root@pam` is tried again (the
/// credentials may change without the spec changing).
pub(super) const ROOT_RETRY: Duration = Duration::from_secs(120);

/// More steps than any pass takes (each step that goes on fills in a fact the next decision
/// reads): a bound against a rule that would repeat itself.
const MAX_STEPS: usize = 16;

/// Converges the container found at our vmid: gather, then decide and act until a step ends
/// the pass.
pub(super) async fn converge(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    vmid: u32,
    found: Located,
) -> Result<Action, Error> {
    let Located { node, config, current } = found;
    let observed = Observed {
        node,
        status: current.status.clone(),
        config,
    };
    let t = Target {
        handle,
        snap,
        desired,
        vmid,
        observed,
        current,
    };
    let mut facts = gather(p, &t).await?;
    for _ in 0..MAX_STEPS {
        let step = decide(&facts);
        tracing::trace!(object = %p.obj.name_any(), ?step, "converge step");
        match act(p, &t, &mut facts, step).await {
            Ok(None) => {}
            Ok(Some(action)) => return Ok(action),
            Err(halt) => return halt.into(),
        }
    }
    Err(Error::Panic(format!(
        "converging CT {vmid} did not settle in {MAX_STEPS} steps"
    )))
}

/// Reads what the rules need before the first decision: whose the container is (the evidence
/// in one read), its lock and power state, and the image change the spec asks for.
pub(super) async fn gather(p: &mut P<'_>, t: &Target<'_>) -> Result<Facts, Error> {
    let cfg = &t.observed.config;
    let verdict = identity::ownership(&Evidence::gather(p, t.snap, t.vmid, cfg).await?);
    let image = match &t.desired.source {
        Source::Image { reference, .. } => p.status.image.clone().map(|now| ImageChange {
            now,
            wanted: reference.clone(),
            strategy: p.obj.spec.update_strategy,
            blocker: super::image::recreate_blocker(cfg),
        }),
        _ => None,
    };
    Ok(Facts {
        verdict,
        node: t.observed.node.clone(),
        status_node: p.status.node.clone(),
        phase: p.status.phase,
        lock: cfg.lock.clone(),
        running: t.observed.running(),
        ha: None,
        image,
        image_pulled: false,
        planned: None,
        config_applied: false,
        reboot: false,
        tenant_checked: false,
    })
}

/// Carries out one step: `Some(action)` ends the pass; `None` goes on (its fact filled in).
pub(super) async fn act(p: &mut P<'_>, t: &Target<'_>, f: &mut Facts, step: ConvergeStep) -> Step<Option<Action>> {
    let (vmid, node) = (t.vmid, t.observed.node.as_str());
    let end = |r: Result<Action, Error>| r.map(Some).map_err(Halt::Fail);
    match step {
        ConvergeStep::Foreign(verdict) => {
            let what = format!("it lacks the tag {}", t.desired.identity_tag);
            end(foreign(p, verdict, vmid, node, t.desired, &what).await)
        }
        ConvergeStep::NoteNode { moved } => {
            if moved {
                p.event(Reason::Moved, format!("CT {vmid} is now on node {node}")).await;
            }
            (p.status.node, f.status_node) = (Some(node.to_string()), Some(node.to_string()));
            Ok(None)
        }
        ConvergeStep::WaitLocked(lock) => {
            if lock == "backup" {
                super::report::backup_lock_seen(&p.uid);
            }
            let msg = format!("CT is locked ({lock}); waiting");
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::Locked, msg));
            p.save().await?;
            Ok(Some(p.retry(Reason::Locked)))
        }
        ConvergeStep::SyncHa => {
            // the HA resource and rule first: while HA manages the container it decides power and place
            f.ha = Some(super::ha::sync(p, t.handle, t.snap, vmid).await?);
            Ok(None)
        }
        ConvergeStep::RefuseImage(why) => refuse_image(p, f, &why).await.map(Some),
        ConvergeStep::PullImage => {
            if let Source::Image { reference, storage } = &t.desired.source {
                super::image::ensure_pulled(p, t.handle, node, storage, reference).await?;
            }
            f.image_pulled = true;
            Ok(None)
        }
        ConvergeStep::StopForImage | ConvergeStep::DestroyForImage => end(recreate(p, t, f, &step).await),
        ConvergeStep::MakePlan => {
            f.planned = Some(make_plan(p, t, f).await?);
            Ok(None)
        }
        ConvergeStep::BackOff { restarts, wait } => end(back_off(p, t, restarts, wait).await),
        ConvergeStep::HaMove { target, ask } => end(super::ha::steer_move(p, t.handle, vmid, node, &target, ask).await),
        ConvergeStep::TargetOffline(target) => {
            let msg = format!("cannot move to node {target}: it is not online");
            end(p
                .not_ready(Reason::NodeUnavailable, msg, p.retry(Reason::NodeUnavailable))
                .await)
        }
        ConvergeStep::Migrate { target } => end(migrate(p, t, &target).await),
        ConvergeStep::ApplyConfig => apply_config(p, t, f).await,
        ConvergeStep::Reboot => {
            let msg = format!("restarting CT {vmid} to apply spec.app (restartPolicy OnChange)");
            p.event(Reason::Restarting, msg).await;
            let (client, n) = (t.handle.client.clone(), node.to_string());
            let call = async move { client.lxc_reboot(&n, vmid, Some(60)).await };
            end(start_task(p, t.handle, node, Operation::Reboot, call).await)
        }
        ConvergeStep::Resize { disk, gib } => {
            let (client, n) = (t.handle.client.clone(), node.to_string());
            p.event(Reason::Resizing, format!("growing {disk} of CT {vmid} to {gib}Gi"))
                .await;
            let call = async move { client.lxc_resize(&n, vmid, &disk, &format!("{gib}G")).await };
            end(start_task(p, t.handle, node, Operation::Resize, call).await)
        }
        ConvergeStep::CheckTenant => {
            let plan = &f.planned.as_ref().expect("planned before the tenant check").plan;
            if let Some(action) = super::tenancy::hold_start(p, t.handle, &t.observed.config, plan).await? {
                return Ok(Some(action));
            }
            f.tenant_checked = true;
            Ok(None)
        }
        ConvergeStep::WaitHaPower(action) => end(super::ha::wait_for_power(p, vmid, action, &t.current.status).await),
        ConvergeStep::Power { action, drift } => end(power(p, t, action, drift).await),
        ConvergeStep::InSync => end(super::report::in_sync(p, t).await),
    }
}

/// Acts on a verdict that the container at our vmid is not (or no longer) ours: wait, pick
/// another vmid, or stop with a condition that says what happened and how to resolve it.
pub(super) async fn foreign(
    p: &mut P<'_>,
    verdict: Ownership,
    vmid: u32,
    node: &str,
    desired: &Desired,
    what: &str,
) -> Result<Action, Error> {
    let tag = &desired.identity_tag;
    let (reason, msg) = match verdict {
        Ownership::Ours | Ownership::Claim => return Ok(Action::requeue(Duration::from_millis(100))),
        Ownership::WaitLocked(lock) => {
            let msg = format!("CT {vmid} is locked ({lock}); waiting before deciding whose it is");
            let wait = p.retry(Reason::Locked);
            return p.not_synced(Reason::Locked, msg, wait).await;
        }
        Ownership::Reallocate => {
            // an id we picked ourselves was taken by someone else before our create: pick another
            tracing::info!(object = %p.obj.name_any(), vmid, what, "allocated vmid is taken by a guest that is not ours; allocating another");
            p.status.vmid = None;
            p.status.phase = Some(ContainerPhase::Pending);
            p.status.node = None;
            p.uncond(CONDITION_STALLED);
            p.save().await?;
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
        Ownership::TagLost => (
            Reason::IdentityTagMissing,
            format!(
                "CT {vmid} on {node} was created by this object but no longer carries the tag {tag} (removed in Proxmox?); nothing is changed, and no second container is created: add the tag back in Proxmox to resume, or delete this object (the container is then left untouched)"
            ),
        ),
        Ownership::Conflict => {
            p.status.phase = Some(ContainerPhase::Failed);
            (
                Reason::VmidConflict,
                format!(
                    "CT {vmid} exists on {node} but is not managed by this object ({what}); it is left untouched — choose another vmid, or adopt it with management: ObserveOnly"
                ),
            )
        }
    };
    p.cond(CondSpec::no(CONDITION_SYNCED, reason, msg.clone()));
    p.cond(CondSpec::yes(CONDITION_STALLED, reason, msg.clone()));
    let wait = p.retry(reason);
    p.not_ready(reason, msg, wait).await
}

/// A new image the spec asks for is refused (`Synced=False`, `Stalled=True`, reason
/// `ImageUpdateRefused`, nothing changed); the event only when the message is new.
async fn refuse_image(p: &mut P<'_>, f: &Facts, why: &str) -> Step<Action> {
    let change = f.image.as_ref().expect("an image change to refuse");
    let msg = format!(
        "the container runs {}; changing spec.source.image.reference to {} is refused (nothing was changed): {why}; set the reference back to go on",
        change.now, change.wanted
    );
    let was = p.cond_of(CONDITION_SYNCED);
    p.cond(CondSpec::yes(
        CONDITION_STALLED,
        Reason::ImageUpdateRefused,
        msg.clone(),
    ));
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::ImageUpdateRefused, msg.clone()));
    p.save().await?;
    if was != Some((Reason::ImageUpdateRefused.as_str().into(), msg.clone())) {
        p.event(Reason::ImageUpdateRefused, msg).await;
    }
    Ok(p.retry(Reason::ImageUpdateRefused))
}

/// `updateStrategy: Recreate` with the new image pulled: the stop, then the destroy after
/// which the next passes create the container again from the new image (on this node: pinned
/// while Creating), with the same vmid and MACs.
async fn recreate(p: &mut P<'_>, t: &Target<'_>, f: &Facts, step: &ConvergeStep) -> Result<Action, Error> {
    let (vmid, node) = (t.vmid, t.observed.node.as_str());
    let wanted = &f.image.as_ref().expect("an image change to roll out").wanted;
    let (client, n) = (t.handle.client.clone(), node.to_string());
    if *step == ConvergeStep::StopForImage {
        let msg = format!("stopping CT {vmid} to create it again from {wanted} (updateStrategy Recreate)");
        p.event(Reason::Stopping, msg).await;
        let call = async move { client.lxc_shutdown(&n, vmid, Some(60), Some(true)).await };
        return start_task(p, t.handle, node, Operation::Shutdown, call).await;
    }
    p.event(
        Reason::Recreating,
        format!("destroying CT {vmid} on {node} to create it again from {wanted} with the same vmid and MACs (updateStrategy Recreate)"),
    )
    .await;
    p.status.phase = Some(ContainerPhase::Creating);
    p.status.ip_addresses.clear();
    let params = pve::DeleteParams::purge_referenced_only();
    let call = async move { client.lxc_delete(&n, vmid, &params).await };
    start_task(p, t.handle, node, super::image::RECREATE_OPERATION, call).await
}

/// The plan: `spec.app` with its values read now, the node the container should be on (node
/// maintenance), desired vs observed, and what the restart back-off and HA moves need.
async fn make_plan(p: &mut P<'_>, t: &Target<'_>, f: &Facts) -> Step<Planned> {
    if let (Source::Image { reference, .. }, None) = (&t.desired.source, &p.status.image) {
        // the image a container from an image runs is known from its first converge on
        p.status.image = Some(reference.clone());
    }
    let current_env = t.observed.config.raw.get("env").and_then(|v| v.as_str());
    let mut desired = match super::app_values::resolve(p).await? {
        None => t.desired.clone(),
        Some(app) => super::desired::with_app(t.desired, &app, current_env),
    };
    // only the bind mounts and devices the operator set are removed when they leave the spec
    desired.host.managed = p.status.host_mounts.iter().cloned().collect();
    let node = t.observed.node.as_str();
    let (wanted, report) = super::tenancy::wanted_node(p, t.handle, t.snap, &desired, node);
    if let Some(m) = report {
        p.event(Reason::NodeInMaintenance, m).await;
    }
    let plan = match plan(&desired, wanted.as_deref(), &t.observed) {
        Ok(pl) => pl,
        Err(e) => return Err(Halt::end(p.invalid(e).await)),
    };
    let drift = p.status.observed_generation == p.generation()
        && matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped));
    let stays = p
        .obj
        .spec
        .app
        .as_ref()
        .is_some_and(|a| a.on_exit == AppExitPolicy::Stay);
    let since_restart = p
        .status
        .restarted_at
        .as_ref()
        .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok());
    let since_exit = since_exit_seen(&p.status.conditions, p.status.restarted_at.as_ref());
    let ha_moving = p
        .status
        .high_availability
        .as_ref()
        .and_then(|h| h.state.as_deref())
        .is_some_and(|s| s == "migrate" || s == "relocate");
    let mut planned = Planned {
        target_online: plan.migrate_to.as_deref().is_some_and(|n| t.snap.node_online(n)),
        plan,
        drift,
        stays,
        restarts: p.status.restart_count.unwrap_or(0),
        since_exit,
        in_maintenance: t.handle.in_maintenance(node).is_some(),
        ha_moving,
    };
    // ten minutes without a start of its own start the count over
    let by_ha = f.ha == Some(super::ha::HaView::Managed);
    if planned.restarts_by_itself(by_ha) && since_restart.is_some_and(|d: Duration| d >= Duration::from_secs(600)) {
        p.status.restart_count = Some(0);
        planned.restarts = 0;
    }
    Ok(planned)
}

/// How long ago the operator saw the process end (the back-off's clock): zero while `Ready` is
/// True (this pass is the first to see it stopped), else since `Ready` turned False or since
/// the last restart, whichever is later (an app that ends before it was ever reported ready
/// ended after its restart).
fn since_exit_seen(conditions: &[Condition], restarted_at: Option<&Time>) -> Duration {
    let Some(ready) = crate::controller::conditions::get(conditions, CONDITION_READY).filter(|c| c.status == "False")
    else {
        return Duration::ZERO;
    };
    let seen = restarted_at.map_or(ready.last_transition_time.0, |r| r.0.max(ready.last_transition_time.0));
    jiff::Timestamp::now()
        .duration_since(seen)
        .try_into()
        .unwrap_or_default()
}

/// A container that stopped by itself and was started often lately waits before it is started
/// again (`Ready=False`, reason `RestartBackOff`).
async fn back_off(p: &mut P<'_>, t: &Target<'_>, restarts: u32, wait: Duration) -> Result<Action, Error> {
    p.status.phase = Some(ContainerPhase::Stopped);
    p.status.state = Some(t.current.status.clone());
    let msg = format!(
        "CT {} stopped by itself {restarts} times; back-off {}s before it is started again",
        t.vmid,
        wait.as_secs().max(1)
    );
    p.not_ready(Reason::RestartBackOff, msg, Action::requeue(wait)).await
}

/// Migrates the container (a task); a move Proxmox refuses is reported.
async fn migrate(p: &mut P<'_>, t: &Target<'_>, target: &str) -> Result<Action, Error> {
    let (vmid, node) = (t.vmid, t.observed.node.clone());
    let params = pve::MigrateParams {
        target: target.to_string(),
        restart: t.observed.running().then_some(true),
        ..Default::default()
    };
    p.event(Reason::Migrating, format!("moving CT {vmid} from {node} to {target}"))
        .await;
    let client = t.handle.client.clone();
    let n = node.clone();
    let call = async move { client.lxc_migrate(&n, vmid, &params).await };
    match start_task(p, t.handle, &node, Operation::Migrate, call).await {
        Err(Error::Pve(e)) if matches!(e.class(), ErrorClass::Conflict | ErrorClass::Permanent) => {
            let msg = format!("Proxmox refused to move CT {vmid} to {target}: {}", e.message());
            p.not_ready(Reason::MigrationRefused, msg, p.retry(Reason::MigrationRefused))
                .await
        }
        other => other,
    }
}

/// The synchronous config update (when the plan has changes), then what waits for a restart:
/// `PendingRestart`, or a restart `spec.app` asks for.
async fn apply_config(p: &mut P<'_>, t: &Target<'_>, f: &mut Facts) -> Step<Option<Action>> {
    let (vmid, node) = (t.vmid, t.observed.node.as_str());
    let planned = f.planned.as_ref().expect("planned before the config update");
    let plan = &planned.plan;
    let running = t.observed.running();
    let mut restart_keys: Vec<String> = Vec::new();
    if !plan.changes.is_empty() {
        if let Some(action) = update_config(p, t, plan).await? {
            return Ok(Some(action));
        }
        p.status.host_mounts = plan.host_keys.iter().cloned().collect();
        let what = plan.describe_changes();
        if planned.drift && f.verdict == Ownership::Ours {
            p.event(
                Reason::DriftCorrected,
                format!("put back values changed in Proxmox: {what}"),
            )
            .await;
        } else {
            p.event(Reason::Updated, format!("updated CT {vmid}: {what}")).await;
        }
        if running {
            restart_keys = awaiting_restart(t.handle, node, vmid).await;
        }
        t.handle.refresh.notify_one();
    } else {
        p.status.host_mounts = plan.host_keys.iter().cloned().collect();
        if running && p.is_true(CONDITION_PENDING_RESTART) {
            restart_keys = awaiting_restart(t.handle, node, vmid).await;
        }
    }
    let by_ha = f.ha == Some(super::ha::HaView::Managed);
    if let Some(action) = super::restart::honour(p, t.handle, node, vmid, running, by_ha).await? {
        return Ok(Some(action));
    }
    f.config_applied = true;
    f.reboot = super::app::restart_now(&p.obj.spec, &restart_keys);
    if f.reboot {
        return Ok(None);
    }
    if restart_keys.is_empty() {
        p.uncond(CONDITION_PENDING_RESTART);
    } else {
        p.cond(CondSpec::yes(
            CONDITION_PENDING_RESTART,
            Reason::RestartRequired,
            format!("Proxmox applies these after a restart: {}", restart_keys.join(", ")),
        ));
    }
    Ok(None)
}

/// Sends the plan's config update; `Some(action)` when Proxmox refused it (reported).
async fn update_config(p: &mut P<'_>, t: &Target<'_>, plan: &super::plan::Plan) -> Step<Option<Action>> {
    let (set, delete) = plan.config_update();
    let update = pve::ConfigUpdate {
        set,
        delete,
        digest: t.observed.config.digest.clone(),
    };
    let node = t.observed.node.as_str();
    super::locate::config_written(&p.uid);
    match t.handle.client.lxc_update_config(node, t.vmid, &update).await {
        Ok(()) => Ok(None),
        Err(e) if e.class() == ErrorClass::InvalidSpec => {
            let e = InvalidSpec {
                field: "(config)".into(),
                message: format!("Proxmox refused the update: {e}"),
            };
            Err(Halt::end(p.invalid(e).await))
        }
        Err(e) => match super::host_mounts::root_required(&e) {
            Some(msg) => {
                let wait = Action::requeue(jitter(ROOT_RETRY));
                Err(Halt::end(p.not_ready(Reason::RootRequired, msg, wait).await))
            }
            None => Err(e.into()),
        },
    }
}

/// Starts or shuts down the container (a task); a start after it stopped outside Kubernetes
/// counts as a restart (the back-off).
async fn power(p: &mut P<'_>, t: &Target<'_>, action: PowerAction, drift: bool) -> Result<Action, Error> {
    let (vmid, node) = (t.vmid, t.observed.node.as_str());
    let (client, n) = (t.handle.client.clone(), node.to_string());
    match action {
        PowerAction::Start => {
            if drift {
                p.status.restart_count = Some(p.status.restart_count.unwrap_or(0) + 1);
                p.status.restarted_at = Some(Time(jiff::Timestamp::now()));
                // not running until the start is done: a Pod shows its container waiting, and
                // an exit right after the start is a new one (the back-off counts from it)
                p.status.phase = Some(ContainerPhase::Stopped);
                p.status.state = Some(t.current.status.clone());
                let msg = format!("CT {vmid} stopped outside Kubernetes; starting it (spec.state is Running)");
                p.cond(CondSpec::no(CONDITION_READY, Reason::Starting, msg.clone()));
                p.event(Reason::Starting, msg).await;
            } else {
                p.event(Reason::Starting, format!("starting CT {vmid}")).await;
            }
            let call = async move { client.lxc_start(&n, vmid).await };
            start_task(p, t.handle, node, Operation::Start, call).await
        }
        PowerAction::Shutdown => {
            p.event(Reason::Stopping, format!("stopping CT {vmid}")).await;
            let call = async move { client.lxc_shutdown(&n, vmid, Some(60), Some(true)).await };
            start_task(p, t.handle, node, Operation::Shutdown, call).await
        }
    }
}

/// The config keys Proxmox applies only after a restart (empty when it cannot tell).
async fn awaiting_restart(handle: &ClusterHandle, node: &str, vmid: u32) -> Vec<String> {
    let pending = handle.client.lxc_pending(node, vmid).await.unwrap_or_default();
    pending
        .into_iter()
        .filter(|e| e.pending.is_some() || e.delete.is_some())
        .map(|e| e.key)
        .collect()
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
