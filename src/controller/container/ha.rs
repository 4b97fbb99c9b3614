//! `spec.highAvailability`: the container's Proxmox HA resource (`ct:<vmid>`) and its
//! node-affinity rule (`k8s-ct<vmid>`). Pure decisions first, then `sync`, which a converge
//! pass runs before it plans power and moves: while HA manages the container, its power state
//! is asked of HA (never started or stopped directly) and HA decides where it runs.

use super::desired::InvalidSpec;
use super::pass::P;
use super::plan::PowerAction;
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::halt::finish;
use crate::controller::kernel::{Halt, Reason, Step};
use crate::controller::{jitter, Error};
use crate::crd::ha::{HaMode, HighAvailability, HighAvailabilityStatus};
use crate::crd::lxc_container::{ContainerPhase, PowerState};
use crate::crd::{CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass, HaNodeAffinityParams, HaResource, HaResourceParams, HaRule};
use kube::runtime::controller::Action;
use std::collections::BTreeMap;
use std::time::Duration;

/// The id of the node-affinity rule the operator keeps for container `vmid`.
pub fn rule_id(vmid: u32) -> String {
    format!("k8s-ct{vmid}")
}

/// The comment that marks an HA resource or rule as kept for the object with `uid`.
pub fn mark(namespace: &str, name: &str, uid: &str) -> String {
    format!("pve.lxc.dev {namespace}/{name} uid={uid}")
}

/// The HA resource `ha` asks for, given the container's `spec.state`.
pub fn wanted_resource(ha: &HighAvailability, state: PowerState, mark: &str) -> HaResourceParams {
    let state = match (ha.mode, state) {
        (HaMode::Ignored, _) => "ignored",
        (HaMode::Managed, PowerState::Running) => "started",
        (HaMode::Managed, PowerState::Stopped) => "stopped",
    };
    HaResourceParams {
        state: Some(state.into()),
        max_restart: Some(ha.max_restart.unwrap_or(1)),
        max_relocate: Some(ha.max_relocate.unwrap_or(1)),
        failback: Some(ha.failback.unwrap_or(true)),
        comment: Some(mark.into()),
    }
}

/// Whether an existing HA resource belongs to someone else: not marked as this object's and
/// not one the operator already manages for it (`managed`: its status records one). Such a
/// resource (an admin's, made by hand) is never rewritten or removed.
pub fn resource_is_foreign(have: &HaResource, mark: &str, managed: bool) -> bool {
    !managed && have.comment.as_deref() != Some(mark)
}

/// Whether HA has what `want` asks for (`enabled` is Proxmox's old name for `started`).
pub fn resource_matches(want: &HaResourceParams, have: &HaResource) -> bool {
    let norm = |s: Option<&str>| match s {
        Some("enabled") | None => "started".to_string(),
        Some(s) => s.to_string(),
    };
    norm(want.state.as_deref()) == norm(have.state.as_deref())
        && want.max_restart == Some(have.max_restart.unwrap_or(1))
        && want.max_relocate == Some(have.max_relocate.unwrap_or(1))
        && want.failback == Some(have.failback.unwrap_or(true))
        && want.comment == have.comment
}

/// The node-affinity rule `ha` asks for, if any.
pub fn wanted_rule(ha: &HighAvailability, vmid: u32, mark: &str) -> Option<HaNodeAffinityParams> {
    let a = ha.node_affinity.as_ref().filter(|a| !a.nodes.is_empty())?;
    let nodes: Vec<String> = a
        .nodes
        .iter()
        .map(|n| format!("{}:{}", n.name, n.priority.unwrap_or(0)))
        .collect();
    Some(HaNodeAffinityParams {
        resources: pve::ct_sid(vmid),
        nodes: nodes.join(","),
        strict: a.strict,
        comment: Some(mark.into()),
    })
}

/// `node[:priority],...` as a map (priority 0 when left out).
fn node_map(list: &str) -> BTreeMap<String, u32> {
    list.split([',', ';', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once(':') {
            Some((n, p)) => (n.to_string(), p.parse().unwrap_or(0)),
            None => (s.to_string(), 0),
        })
        .collect()
}

/// Whether the rule in Proxmox is what `want` asks for.
pub fn rule_matches(want: &HaNodeAffinityParams, have: &HaRule) -> bool {
    have.rule_type == "node-affinity"
        && have.resources.as_deref() == Some(want.resources.as_str())
        && node_map(have.nodes.as_deref().unwrap_or_default()) == node_map(&want.nodes)
        && have.strict.unwrap_or(false) == want.strict
        && !have.disable.unwrap_or(false)
        && have.comment == want.comment
}

/// What to do about the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStep {
    /// Nothing.
    Keep,
    /// Create it.
    Create(HaNodeAffinityParams),
    /// Update ours.
    Update(HaNodeAffinityParams),
    /// Delete ours.
    Delete,
    /// A rule of that id exists and is not ours: it is never touched.
    Foreign,
}

/// Decides the rule step from what is wanted and what exists; a rule is ours when its comment
/// carries our `mark`.
pub fn rule_step(want: Option<HaNodeAffinityParams>, have: Option<&HaRule>, mark: &str) -> RuleStep {
    let ours = |r: &HaRule| r.comment.as_deref() == Some(mark);
    match (want, have) {
        (None, None) => RuleStep::Keep,
        (None, Some(r)) if ours(r) => RuleStep::Delete,
        (None, Some(_)) => RuleStep::Keep,
        (Some(w), None) => RuleStep::Create(w),
        (Some(_), Some(r)) if !ours(r) => RuleStep::Foreign,
        (Some(w), Some(r)) if rule_matches(&w, r) => RuleStep::Keep,
        (Some(w), Some(_)) => RuleStep::Update(w),
    }
}

/// How HA stands with the container after `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaView {
    /// HA does not manage it (or ignores it): the operator starts, stops and moves it.
    Direct,
    /// HA keeps it started or stopped; the operator only asks HA.
    Managed,
}

/// How long to wait before looking again while HA carries out a request.
pub(super) const HA_WAIT: Duration = Duration::from_secs(2);

/// Makes the HA resource and rule match `spec.highAvailability` (or removes the ones the
/// operator made when the field is gone). Halts the pass on a refusal (reported).
pub(super) async fn sync(p: &mut P<'_>, handle: &ClusterHandle, snap: &Snapshot, vmid: u32) -> Step<HaView> {
    let sid = pve::ct_sid(vmid);
    let client = &handle.client;
    let ns = p.obj.metadata.namespace.clone().unwrap_or_default();
    let name = p.obj.metadata.name.clone().unwrap_or_default();
    let mark = mark(&ns, &name, &p.uid);
    let Some(ha) = p.obj.spec.high_availability.clone() else {
        if p.status.high_availability.is_some() {
            return match remove(client, vmid, &mark).await {
                Ok(()) => {
                    p.status.high_availability = None;
                    p.event(
                        Reason::HaDisabled,
                        format!("CT {vmid} is no longer an HA resource ({sid})"),
                    )
                    .await;
                    Ok(HaView::Direct)
                }
                Err(e) => Err(refused(p, e, "removing the HA resource").await),
            };
        }
        return Ok(HaView::Direct);
    };
    // node names are checked here, before Proxmox would refuse the rule
    let unknown = ha
        .node_affinity
        .iter()
        .flat_map(|a| a.nodes.iter())
        .find(|n| !snap.nodes.iter().any(|k| k.name == n.name));
    if let Some(n) = unknown {
        let message = format!("node {} is not a node of this Proxmox cluster", n.name);
        let field = "highAvailability.nodeAffinity".into();
        return Err(Halt::end(p.invalid(InvalidSpec { field, message }).await));
    }
    sync_resource(p, client, &ha, vmid, &mark).await?;
    let kept = sync_rule(p, client, &ha, vmid, &mark).await?;
    let rule = rule_id(vmid);
    p.status.high_availability = Some(Box::new(HighAvailabilityStatus {
        resource: sid,
        state: snap.guests.get(&vmid).and_then(|g| g.hastate.clone()),
        rule: kept.then_some(rule),
    }));
    Ok(match ha.mode {
        HaMode::Managed => HaView::Managed,
        HaMode::Ignored => HaView::Direct,
    })
}

/// Creates or updates the HA resource `ct:<vmid>` as `ha` and `spec.state` ask (events for what
/// changed); halts the pass on a refusal.
async fn sync_resource(p: &mut P<'_>, client: &pve::Client, ha: &HighAvailability, vmid: u32, mark: &str) -> Step<()> {
    let sid = pve::ct_sid(vmid);
    let want = wanted_resource(ha, p.obj.spec.state, mark);
    let managed = p.status.high_availability.is_some();
    let step = match client.ha_resource(&sid).await {
        Ok(Some(have)) if resource_is_foreign(&have, mark, managed) => return Err(foreign(p, &sid).await),
        Ok(None) => client.ha_resource_create(&sid, &want).await.map(|()| Some(true)),
        Ok(Some(have)) if resource_matches(&want, &have) => Ok(None),
        Ok(Some(have)) => client
            .ha_resource_update(&sid, &want, have.digest.as_deref())
            .await
            .map(|()| Some(have.state.as_deref() != want.state.as_deref())),
        Err(e) => Err(e),
    };
    match step {
        Ok(Some(true)) if p.status.high_availability.is_none() => {
            let st = want.state.clone().unwrap_or_default();
            p.event(
                Reason::HaEnabled,
                format!("CT {vmid} is now an HA resource ({sid}, {st})"),
            )
            .await;
        }
        Ok(Some(true)) => {
            let st = want.state.clone().unwrap_or_default();
            p.event(Reason::HaRequested, format!("asked HA for CT {vmid}: state {st}"))
                .await;
        }
        Ok(Some(false)) => {
            p.event(Reason::Updated, format!("updated the HA resource {sid}")).await;
        }
        Ok(None) => {}
        Err(e) => return Err(refused(p, e, "the HA resource").await),
    }
    Ok(())
}

/// Creates, updates or deletes the node-affinity rule `k8s-ct<vmid>` as `ha` asks (a rule of
/// that id that is not ours is never touched: `Stalled`); whether the rule is ours and kept.
async fn sync_rule(p: &mut P<'_>, client: &pve::Client, ha: &HighAvailability, vmid: u32, mark: &str) -> Step<bool> {
    let rule = rule_id(vmid);
    let have_rule = match client.ha_rule(&rule).await {
        Ok(r) => r,
        Err(e) => return Err(refused(p, e, "the HA rule").await),
    };
    let kept = match rule_step(wanted_rule(ha, vmid, mark), have_rule.as_ref(), mark) {
        RuleStep::Keep => have_rule
            .as_ref()
            .filter(|r| r.comment.as_deref() == Some(mark))
            .is_some(),
        RuleStep::Create(w) => match client.ha_node_affinity_create(&rule, &w).await {
            Ok(()) => true,
            Err(e) => return Err(refused(p, e, "the HA rule").await),
        },
        RuleStep::Update(w) => {
            let digest = have_rule.as_ref().and_then(|r| r.digest.as_deref());
            match client.ha_node_affinity_update(&rule, &w, digest).await {
                Ok(()) => true,
                Err(e) => return Err(refused(p, e, "the HA rule").await),
            }
        }
        RuleStep::Delete => match client.ha_rule_delete(&rule).await {
            Ok(_) => false,
            Err(e) => return Err(refused(p, e, "the HA rule").await),
        },
        RuleStep::Foreign => {
            let msg = format!(
                "the HA rule {rule} exists in Proxmox and was not made for this object; it is left untouched: remove or rename it, or drop spec.highAvailability.nodeAffinity"
            );
            p.cond(CondSpec::yes(CONDITION_STALLED, Reason::HaRuleConflict, msg.clone()));
            let wait = p.retry(Reason::HaRuleConflict);
            return Err(Halt::end(p.not_ready(Reason::HaRuleConflict, msg, wait).await));
        }
    };
    Ok(kept)
}

/// Moves an HA-managed container off a node in maintenance by asking HA (`ask`: once; HA
/// shows `migrate` while it works), and reports that HA moves it. (A `spec.node` that differs
/// from where HA runs it is not acted on: it is where the container was created.)
pub(super) async fn steer_move(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    vmid: u32,
    node: &str,
    target: &str,
    ask: bool,
) -> Result<Action, Error> {
    if ask {
        match handle.client.ha_migrate(&pve::ct_sid(vmid), target).await {
            Ok(()) => {
                p.event(
                    Reason::HaRequested,
                    format!("asked HA to move CT {vmid} from {node} (in maintenance) to {target}"),
                )
                .await
            }
            Err(e) => return finish(Err(refused(p, e, "the HA move").await)),
        }
    }
    let msg = format!("HA moves CT {vmid} from {node} (in maintenance) to {target}");
    p.not_synced(Reason::HaRequested, msg, Action::requeue(jitter(HA_WAIT)))
        .await
}

/// An HA-managed container whose power state differs from `spec.state`: HA was asked (by
/// [`sync`]) and carries it out; the pass reports that and looks again soon.
pub(super) async fn wait_for_power(p: &mut P<'_>, vmid: u32, action: PowerAction, now: &str) -> Result<Action, Error> {
    let what = match action {
        PowerAction::Start => "start",
        PowerAction::Shutdown => "stop",
    };
    let state = p
        .status
        .high_availability
        .as_ref()
        .and_then(|h| h.state.clone())
        .unwrap_or_else(|| "queued".into());
    p.status.state = Some(now.to_string());
    p.status.phase = Some(if now == "running" {
        ContainerPhase::Running
    } else {
        ContainerPhase::Stopped
    });
    let msg = format!("waiting for HA to {what} CT {vmid} (HA state: {state})");
    p.not_synced(Reason::HaRequested, msg, Action::requeue(jitter(HA_WAIT)))
        .await
}

/// Removes the rule the operator made (only when it carries our mark) and the HA resource.
pub(super) async fn remove(client: &pve::Client, vmid: u32, mark: &str) -> pve::Result<()> {
    let rule = rule_id(vmid);
    if let Some(r) = client.ha_rule(&rule).await? {
        if r.comment.as_deref() == Some(mark) {
            client.ha_rule_delete(&rule).await?;
        }
    }
    client.ha_resource_delete(&pve::ct_sid(vmid)).await.map(|_| ())
}

/// An HA resource on the container that someone else made: left as it is, reported.
async fn foreign(p: &mut P<'_>, sid: &str) -> Halt {
    let msg = format!("HA resource {sid} exists and was not made for this LxcContainer: it is left as it is (remove it in Proxmox for the operator to manage HA, or remove spec.highAvailability)");
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::HaRefused, msg.clone()));
    let wait = p.retry(Reason::HaRefused);
    Halt::end(p.not_ready(Reason::HaRefused, msg, wait).await)
}

/// A refused HA change: a clear condition for what the user (or admin) can fix, otherwise the
/// error for the usual retry.
async fn refused(p: &mut P<'_>, e: pve::Error, what: &str) -> Halt {
    // the HA API's 500s are its `die`s: configuration refusals, not outages
    let refusal = matches!(&e, pve::Error::Server { status: 500, .. })
        || matches!(
            e.class(),
            ErrorClass::Auth | ErrorClass::InvalidSpec | ErrorClass::Permanent | ErrorClass::Conflict
        );
    match refusal {
        true => {
            let msg = format!("Proxmox refused {what}: {}", e.message());
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::HaRefused, msg.clone()));
            let wait = p.retry(Reason::HaRefused);
            Halt::end(p.not_ready(Reason::HaRefused, msg, wait).await)
        }
        false => Halt::Fail(e.into()),
    }
}

#[cfg(test)]
#[path = "ha_tests.rs"]
mod tests;
