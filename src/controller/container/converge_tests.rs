//! The converge decision, one row per rule (DESIGN.md §3 for an existing container, and the
//! order the pass applies them in).

use super::super::converge_step::*;
use super::super::ha::HaView;
use super::super::identity::Ownership;
use super::super::plan::{Change, Plan, PowerAction};
use crate::crd::app::UpdateStrategy;
use crate::crd::lxc_container::ContainerPhase;
use std::time::Duration;

/// Ours, on the node status names, unlocked, HA synced (direct), planned with nothing to do,
/// config applied and tenant checked: in sync.
fn settled() -> Facts {
    Facts {
        verdict: Ownership::Ours,
        node: "pve1".into(),
        status_node: Some("pve1".into()),
        phase: Some(ContainerPhase::Running),
        lock: None,
        running: true,
        ha: Some(HaView::Direct),
        image: None,
        image_pulled: false,
        planned: Some(Planned::default()),
        config_applied: true,
        reboot: false,
        tenant_checked: true,
    }
}

fn planned(f: &mut Facts) -> &mut Planned {
    f.planned.as_mut().unwrap()
}

fn image(strategy: UpdateStrategy, blocker: Option<&str>) -> Option<ImageChange> {
    Some(ImageChange {
        now: "docker.io/library/nginx:1.26".into(),
        wanted: "nginx:1.27".into(),
        strategy,
        blocker: blocker.map(String::from),
    })
}

fn change() -> Change {
    Change {
        key: "memory".into(),
        from: Some("512".into()),
        to: Some("1024".into()),
    }
}

#[test]
fn whose_it_is_where_it_is_and_its_lock_come_before_any_change() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "identity: a container without our tag is never changed",
            |f| f.verdict = Ownership::Conflict,
            Foreign(Ownership::Conflict),
        ),
        (
            "identity: a tag removed in Proxmox stops everything",
            |f| f.verdict = Ownership::TagLost,
            Foreign(Ownership::TagLost),
        ),
        (
            "identity: locked and untagged waits before judging",
            |f| f.verdict = Ownership::WaitLocked("create".into()),
            Foreign(Ownership::WaitLocked("create".into())),
        ),
        (
            "identity: a vmid we picked, taken by another, is given up",
            |f| f.verdict = Ownership::Reallocate,
            Foreign(Ownership::Reallocate),
        ),
        (
            "identity: a clone we started is claimed and converged",
            |f| f.verdict = Ownership::Claim,
            InSync,
        ),
        (
            "a container seen on another node is recorded with an event",
            |f| f.status_node = Some("pve2".into()),
            NoteNode { moved: true },
        ),
        (
            "a container first seen while Creating is recorded without a move event",
            |f| {
                f.status_node = None;
                f.phase = Some(ContainerPhase::Creating);
            },
            NoteNode { moved: false },
        ),
        (
            "a node change while Creating is no move",
            |f| {
                f.status_node = Some("pve2".into());
                f.phase = Some(ContainerPhase::Creating);
            },
            NoteNode { moved: false },
        ),
        (
            "faults: a locked container is waited for",
            |f| f.lock = Some("backup".into()),
            WaitLocked("backup".into()),
        ),
        (
            "HA is synced before power and place are planned",
            |f| f.ha = None,
            SyncHa,
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn a_new_image_is_refused_or_pulled_then_the_container_stopped_and_destroyed() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "image: Refuse refuses a new reference",
            |f| f.image = image(UpdateStrategy::Refuse, None),
            RefuseImage("updateStrategy is Refuse".into()),
        ),
        (
            "image: Recreate cannot destroy a container with volumes",
            |f| f.image = image(UpdateStrategy::Recreate, Some("it has volumes")),
            RefuseImage("updateStrategy Recreate cannot: it has volumes".into()),
        ),
        (
            "image: the new image is pulled first",
            |f| f.image = image(UpdateStrategy::Recreate, None),
            PullImage,
        ),
        (
            "image: pulled, a running container is stopped",
            |f| {
                f.image = image(UpdateStrategy::Recreate, None);
                f.image_pulled = true;
            },
            StopForImage,
        ),
        (
            "image: pulled and stopped, it is destroyed to be created again",
            |f| {
                f.image = image(UpdateStrategy::Recreate, None);
                f.image_pulled = true;
                f.running = false;
            },
            DestroyForImage,
        ),
        (
            "image: the same image by another spelling is no change",
            |f| {
                f.image = image(UpdateStrategy::Refuse, None);
                f.image.as_mut().unwrap().wanted = "docker.io/library/nginx:1.26".into();
            },
            InSync,
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn the_plan_comes_after_the_image_and_a_container_that_stopped_by_itself_backs_off() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "the plan is made once HA and the image are settled",
            |f| f.planned = None,
            MakePlan,
        ),
        (
            "a container that stopped by itself waits out its back-off",
            |f| {
                let p = planned(f);
                p.plan.power = Some(PowerAction::Start);
                p.drift = true;
                p.restarts = 2;
                p.since_exit = Duration::from_secs(5);
            },
            BackOff {
                restarts: 2,
                wait: Duration::from_secs(15),
            },
        ),
        (
            "a container that stopped by itself is started again after its back-off",
            |f| {
                let p = planned(f);
                p.plan.power = Some(PowerAction::Start);
                p.drift = true;
                p.restarts = 1;
                p.since_exit = Duration::from_secs(60);
            },
            Power {
                action: PowerAction::Start,
                drift: true,
            },
        ),
        (
            "spec.app onExit Stay keeps an ended process stopped",
            |f| {
                let p = planned(f);
                p.plan.power = Some(PowerAction::Start);
                p.drift = true;
                p.stays = true;
            },
            InSync,
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn a_move_goes_first_and_ha_moves_an_ha_managed_container_only_off_a_node_in_maintenance() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "a move goes first",
            |f| {
                let p = planned(f);
                p.plan.migrate_to = Some("pve2".into());
                p.plan.changes = vec![change()];
                p.target_online = true;
            },
            Migrate { target: "pve2".into() },
        ),
        (
            "a move to a node that is not online waits",
            |f| planned(f).plan.migrate_to = Some("pve2".into()),
            TargetOffline("pve2".into()),
        ),
        (
            "HA moves an HA-managed container off a node in maintenance",
            |f| {
                f.ha = Some(HaView::Managed);
                let p = planned(f);
                p.plan.migrate_to = Some("pve2".into());
                p.in_maintenance = true;
            },
            HaMove {
                target: "pve2".into(),
                ask: true,
            },
        ),
        (
            "HA is asked to move it once",
            |f| {
                f.ha = Some(HaView::Managed);
                let p = planned(f);
                p.plan.migrate_to = Some("pve2".into());
                p.in_maintenance = true;
                p.ha_moving = true;
            },
            HaMove {
                target: "pve2".into(),
                ask: false,
            },
        ),
        (
            "HA decides where an HA-managed container runs otherwise",
            |f| {
                f.ha = Some(HaView::Managed);
                planned(f).plan.migrate_to = Some("pve2".into());
            },
            InSync,
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn the_config_update_and_a_restart_spec_app_asks_for_come_after_the_move() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "the config update is made after the move",
            |f| {
                f.config_applied = false;
                planned(f).plan.changes = vec![change()];
            },
            ApplyConfig,
        ),
        (
            "what waits for a restart is looked at also without changes",
            |f| f.config_applied = false,
            ApplyConfig,
        ),
        (
            "spec.app restartPolicy OnChange restarts the container",
            |f| f.reboot = true,
            Reboot,
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn one_disk_grows_per_step_then_the_tenant_check_then_power() {
    use ConvergeStep::*;
    type Row = (&'static str, fn(&mut Facts), ConvergeStep);
    let rows: Vec<Row> = vec![
        (
            "one disk grows per step",
            |f| planned(f).plan.resizes = vec![("rootfs".into(), 8), ("mp0".into(), 4)],
            Resize {
                disk: "rootfs".into(),
                gib: 8,
            },
        ),
        (
            "tenancy: the config Proxmox will have is judged before a start",
            |f| {
                f.tenant_checked = false;
                planned(f).plan.power = Some(PowerAction::Start);
            },
            CheckTenant,
        ),
        (
            "power: a stopped container is started",
            |f| planned(f).plan.power = Some(PowerAction::Start),
            Power {
                action: PowerAction::Start,
                drift: false,
            },
        ),
        (
            "power: a running container is shut down",
            |f| planned(f).plan.power = Some(PowerAction::Shutdown),
            Power {
                action: PowerAction::Shutdown,
                drift: false,
            },
        ),
        (
            "power: HA carries out power changes of an HA-managed container",
            |f| {
                f.ha = Some(HaView::Managed);
                planned(f).plan.power = Some(PowerAction::Shutdown);
            },
            WaitHaPower(PowerAction::Shutdown),
        ),
        (
            "no back-off for an HA-managed container: HA restarts it",
            |f| {
                f.ha = Some(HaView::Managed);
                let p = planned(f);
                p.plan.power = Some(PowerAction::Start);
                p.drift = true;
                p.restarts = 3;
                p.since_exit = Duration::from_secs(1);
            },
            WaitHaPower(PowerAction::Start),
        ),
        ("status: nothing to do reports in sync", |_| {}, InSync),
    ];
    for (rule, edit, want) in rows {
        let mut f = settled();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn a_pass_that_changes_everything_takes_its_steps_in_order_and_ends_with_one_task() {
    use ConvergeStep::*;
    let mut f = settled();
    f.status_node = None;
    f.ha = None;
    f.planned = None;
    f.config_applied = false;
    f.tenant_checked = false;
    let mut seen = Vec::new();
    loop {
        let step = decide(&f);
        seen.push(step.clone());
        match step {
            NoteNode { .. } => f.status_node = Some(f.node.clone()),
            SyncHa => f.ha = Some(HaView::Direct),
            MakePlan => {
                f.planned = Some(Planned {
                    plan: Plan {
                        changes: vec![change()],
                        resizes: vec![("rootfs".into(), 8)],
                        power: Some(PowerAction::Shutdown),
                        ..Plan::default()
                    },
                    ..Planned::default()
                })
            }
            ApplyConfig => f.config_applied = true,
            _ => break,
        }
    }
    assert_eq!(
        seen,
        vec![
            NoteNode { moved: false },
            SyncHa,
            MakePlan,
            ApplyConfig,
            Resize {
                disk: "rootfs".into(),
                gib: 8
            }
        ]
    );
}

#[test]
fn the_restart_back_off_counts_from_when_the_exit_was_seen_never_from_a_stale_condition() {
    use crate::crd::CONDITION_READY;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let ago = |s: i64| Time(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s));
    let ready = |status: &str, since: i64| {
        vec![Condition {
            type_: CONDITION_READY.into(),
            status: status.into(),
            reason: "RestartBackOff".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: ago(since),
        }]
    };
    let secs =
        |c: &[Condition], restarted: Option<i64>| super::since_exit_seen(c, restarted.map(ago).as_ref()).as_secs();
    type Row = (&'static str, Vec<Condition>, Option<i64>, std::ops::RangeInclusive<u64>);
    let rows: [Row; 4] = [
        (
            "ready until this pass: first seen now",
            ready("True", 300),
            Some(400),
            0..=0,
        ),
        ("no Ready condition yet: first seen now", vec![], None, 0..=0),
        (
            "not ready since the exit was seen",
            ready("False", 30),
            Some(60),
            29..=31,
        ),
        (
            "not ready since before the last restart: counted from the restart",
            ready("False", 100),
            Some(5),
            4..=6,
        ),
    ];
    for (rule, conditions, restarted, want) in rows {
        let got = secs(&conditions, restarted);
        assert!(want.contains(&got), "{rule}: {got} s, want {want:?}");
    }
}
