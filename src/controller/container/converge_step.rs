//! What a converge pass does next (pure): the facts gathered about an existing container, and
//! [`decide`], which picks ONE [`ConvergeStep`] from them. The pass (`converge`) gathers the
//! facts, asks [`decide`], and acts; a step that ends the pass (a task, a wait, a refusal, the
//! in-sync report) ends it, and a step that does not (a synchronous update, the HA sync, a
//! check) fills in its fact so the next [`decide`] moves on. The order of the rules is the
//! order of the `if`s below, and every rule has a row in `converge_tests.rs`.

use super::decide::restart_back_off;
use super::ha::HaView;
use super::identity::Ownership;
use super::plan::{Plan, PowerAction};
use crate::crd::app::UpdateStrategy;
use crate::crd::lxc_container::ContainerPhase;
use std::time::Duration;

/// What a converge pass works on (the same for every step).
pub struct Target<'a> {
    /// The cluster.
    pub handle: &'a crate::controller::cluster::ClusterHandle,
    /// Its inventory.
    pub snap: &'a crate::controller::cluster::Snapshot,
    /// The validated spec.
    pub desired: &'a super::desired::Desired,
    /// The container's vmid.
    pub vmid: u32,
    /// Where it is and what Proxmox has.
    pub observed: super::plan::Observed,
    /// Its current status in Proxmox.
    pub current: crate::pve::LxcStatus,
}

/// A new `source.image.reference` for a container that runs another image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageChange {
    /// The reference the container runs (`status.image`).
    pub now: String,
    /// The reference the spec asks for.
    pub wanted: String,
    /// `spec.updateStrategy`.
    pub strategy: UpdateStrategy,
    /// What keeps `Recreate` from destroying the container ([`super::image::recreate_blocker`]).
    pub blocker: Option<String>,
}

/// The plan for the container, once `spec.app`'s values are read and the wanted node known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Planned {
    /// Desired vs observed.
    pub plan: Plan,
    /// The spec was already applied (same generation, Running or Stopped): a difference now is
    /// drift made outside Kubernetes.
    pub drift: bool,
    /// `spec.app.onExit` is `Stay`: a process that ended by itself stays stopped.
    pub stays: bool,
    /// Starts after the container stopped by itself (`status.restartCount`).
    pub restarts: u32,
    /// Since the operator saw the process end (zero in the pass that first sees it stopped): the
    /// back-off counts from there.
    pub since_exit: Duration,
    /// The container's node is in maintenance.
    pub in_maintenance: bool,
    /// HA is moving the container already (its HA state is `migrate` or `relocate`).
    pub ha_moving: bool,
    /// The node the plan moves the container to is online.
    pub target_online: bool,
}

impl Planned {
    /// The power action to take: none for a process that ended by itself and stays stopped.
    pub fn power(&self) -> Option<PowerAction> {
        match self.plan.power {
            Some(PowerAction::Start) if self.drift && self.stays => None,
            other => other,
        }
    }

    /// Whether this pass would start a container that stopped by itself, directly (not by HA).
    pub fn restarts_by_itself(&self, by_ha: bool) -> bool {
        self.drift && !by_ha && self.power() == Some(PowerAction::Start)
    }
}

/// What a converge pass knows. Filled by `converge::gather`, then by the steps that do not end
/// the pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Whose the container is.
    pub verdict: Ownership,
    /// The node it is on.
    pub node: String,
    /// `status.node`.
    pub status_node: Option<String>,
    /// `status.phase`.
    pub phase: Option<ContainerPhase>,
    /// Its Proxmox lock, if any.
    pub lock: Option<String>,
    /// Whether it runs.
    pub running: bool,
    /// How HA stands, once synced this pass.
    pub ha: Option<HaView>,
    /// A new image to roll out, if the spec asks for one.
    pub image: Option<ImageChange>,
    /// The new image is in storage on the node.
    pub image_pulled: bool,
    /// The plan, once made.
    pub planned: Option<Planned>,
    /// The config update is made (or none was needed) and what waits for a restart is known.
    pub config_applied: bool,
    /// `spec.app` asks for a restart to apply process settings waiting for one.
    pub reboot: bool,
    /// The tenant's limits were checked against the config Proxmox will have.
    pub tenant_checked: bool,
}

/// One thing a converge pass does next.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvergeStep {
    /// Not (or not yet known to be) ours: wait, allocate another vmid, or stop with a condition.
    Foreign(Ownership),
    /// Record the node the container is on (an event when it moved). Goes on.
    NoteNode {
        /// Whether the container moved (an event), rather than was first seen.
        moved: bool,
    },
    /// Locked in Proxmox: wait.
    WaitLocked(String),
    /// Make the HA resource and rule match `spec.highAvailability`. Goes on.
    SyncHa,
    /// The new image is refused (`Stalled`, nothing changed).
    RefuseImage(String),
    /// Pull the new image first (a task), or wait for its pull. Goes on once it is there.
    PullImage,
    /// Shut the container down to create it again from the new image (a task).
    StopForImage,
    /// Destroy the container; the next passes create it again from the new image (a task).
    DestroyForImage,
    /// Read `spec.app`'s values and plan. Goes on.
    MakePlan,
    /// It stopped by itself and was started often lately: wait before starting it again.
    BackOff {
        /// Starts so far.
        restarts: u32,
        /// How long to wait.
        wait: Duration,
    },
    /// Ask HA to move the container off a node in maintenance (`ask: false` while HA moves it).
    HaMove {
        /// The node.
        target: String,
        /// Whether to ask HA now.
        ask: bool,
    },
    /// The node to move to is not online: wait.
    TargetOffline(String),
    /// Migrate the container (a task).
    Migrate {
        /// The node.
        target: String,
    },
    /// The synchronous config update (when there are changes), and what waits for a restart.
    /// Goes on.
    ApplyConfig,
    /// Restart the container to apply `spec.app` (a task).
    Reboot,
    /// Grow one disk (a task).
    Resize {
        /// `rootfs` or `mpN`.
        disk: String,
        /// New size in GiB.
        gib: u32,
    },
    /// Judge the config against the tenant's limits (a start outside them is refused). Goes on.
    CheckTenant,
    /// HA carries out the power change: wait for it.
    WaitHaPower(PowerAction),
    /// Start or shut down the container (a task).
    Power {
        /// The action.
        action: PowerAction,
        /// It stopped outside Kubernetes (counted as a restart).
        drift: bool,
    },
    /// Everything matches: report it.
    InSync,
}

/// The next step for the container (the rules in the module documentation, in order).
pub fn decide(f: &Facts) -> ConvergeStep {
    use ConvergeStep::*;
    if !f.verdict.is_ours() {
        return Foreign(f.verdict.clone());
    }
    if f.status_node.as_deref() != Some(f.node.as_str()) {
        let moved = f.status_node.is_some() && f.phase != Some(ContainerPhase::Creating);
        return NoteNode { moved };
    }
    if let Some(lock) = &f.lock {
        return WaitLocked(lock.clone());
    }
    let Some(ha) = &f.ha else {
        return SyncHa;
    };
    let by_ha = *ha == HaView::Managed;
    if let Some(step) = image_step(f) {
        return step;
    }
    let Some(planned) = &f.planned else {
        return MakePlan;
    };
    if planned.restarts_by_itself(by_ha) {
        if let Some(wait) = restart_back_off(planned.restarts, planned.since_exit) {
            return BackOff {
                restarts: planned.restarts,
                wait,
            };
        }
    }
    if let Some(target) = planned.plan.migrate_to.clone() {
        // HA decides where an HA-managed container runs; only a node in maintenance is left
        match (by_ha, planned.in_maintenance) {
            (true, true) => {
                let ask = !planned.ha_moving;
                return HaMove { target, ask };
            }
            (true, false) => {}
            (false, _) if !planned.target_online => return TargetOffline(target),
            (false, _) => return Migrate { target },
        }
    }
    if !f.config_applied {
        return ApplyConfig;
    }
    if f.reboot {
        return Reboot;
    }
    if let Some((disk, gib)) = planned.plan.resizes.first().cloned() {
        return Resize { disk, gib };
    }
    if !f.tenant_checked {
        return CheckTenant;
    }
    match planned.power() {
        Some(action) if by_ha => WaitHaPower(action),
        Some(action) => Power {
            action,
            drift: planned.drift,
        },
        None => InSync,
    }
}

/// The image rollout: `None` once the container runs the wanted image (or there is none).
fn image_step(f: &Facts) -> Option<ConvergeStep> {
    let change = f.image.as_ref()?;
    if super::image::canonical_reference(&change.now) == super::image::canonical_reference(&change.wanted) {
        return None;
    }
    let why = match change.strategy {
        UpdateStrategy::Refuse => Some("updateStrategy is Refuse".to_string()),
        UpdateStrategy::Recreate => change
            .blocker
            .as_ref()
            .map(|b| format!("updateStrategy Recreate cannot: {b}")),
    };
    Some(match why {
        Some(why) => ConvergeStep::RefuseImage(why),
        // the new image first: a pull that fails leaves the container running the old one
        None if !f.image_pulled => ConvergeStep::PullImage,
        None if f.running => ConvergeStep::StopForImage,
        None => ConvergeStep::DestroyForImage,
    })
}
