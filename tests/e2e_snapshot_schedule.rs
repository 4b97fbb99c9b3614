//! Snapshot schedules end to end: a real kube-apiserver, the Proxmox simulator and the
//! operator binary on its fast schedule clock (`--schedule-clock-speed 360`: `*:0/30` fires
//! every 5 s). Each slot makes one `LxcSnapshot` per labelled container; retention deletes the
//! objects it does not keep, and with them their Proxmox snapshots.

mod common;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

fn container(name: &str, labels: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
    )
}

fn snapshots(cp: &ControlPlane, ns: &str) -> Vec<Value> {
    list_json(cp, ns, "lxcsnap")
}

fn container_of(s: &Value) -> String {
    s["spec"]["containerRef"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The snapshot names the simulator lists for `vmid`.
fn in_proxmox(sim: &Sim, vmid: u64) -> BTreeSet<String> {
    sim.container(vmid).unwrap()["snapshots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

const SCHEDULE: &str = "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcSnapshotSchedule\nmetadata:\n  name: fast\nspec:\n  schedule: \"*:0/30\"\n  selector: {matchLabels: {snap: fast}}\n  retention: {keepLast: 2}\n";

#[test]
fn a_snapshot_schedule_keeps_exactly_what_its_retention_says_as_objects_and_in_proxmox() {
    let started = Instant::now();
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ssched");
    let (sim, op) = fast_schedules(cp, &ns);
    cp.apply(&ns, &container("web", "snap: fast"));
    cp.apply(&ns, &container("db", "snap: fast"));
    cp.apply(&ns, &container("other", "snap: never"));
    let mut vmids = BTreeMap::new();
    for name in ["web", "db", "other"] {
        let o = wait_ready(cp, &ns, "lxc", name, T);
        vmids.insert(name, o["status"]["vmid"].as_u64().unwrap());
    }
    cp.apply(&ns, SCHEDULE);
    // watch the snapshots come and go: slot → containers snapshotted
    let mut seen: BTreeMap<Timestamp, BTreeSet<String>> = BTreeMap::new();
    let record = |seen: &mut BTreeMap<Timestamp, BTreeSet<String>>, list: &[Value]| {
        for s in list {
            seen.entry(slot_of(s)).or_default().insert(container_of(s));
            assert_eq!(s["metadata"]["labels"]["pve.lxc.dev/schedule"], "fast");
            assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "LxcSnapshotSchedule");
        }
    };
    let deadline = Instant::now() + T;
    loop {
        record(&mut seen, &snapshots(cp, &ns));
        if seen.len() >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "only {seen:?} after {T:?}\n{}", op.log());
        std::thread::sleep(Duration::from_millis(250));
    }
    cp.apply(&ns, &format!("{SCHEDULE}  suspend: true\n"));
    // settled: nothing active, two Ready snapshots per container, none being deleted, and
    // Proxmox has exactly those
    let (sched, left) = wait_for("the schedule to settle after suspend", T, || {
        let s = get_json(cp, &ns, "lxcss", "fast")?;
        let list = snapshots(cp, &ns);
        let settled = s["status"]["active"].as_array().is_none_or(|a| a.is_empty())
            && condition(&s, "Ready").is_some_and(|c| c.1 == "Suspended")
            && list
                .iter()
                .all(|o| o["status"]["phase"] == "Ready" && o["metadata"]["deletionTimestamp"].is_null())
            && ["web", "db"].iter().all(|c| {
                let mine: BTreeSet<String> = list
                    .iter()
                    .filter(|o| container_of(o) == *c)
                    .filter_map(|o| o["status"]["snapshotName"].as_str().map(str::to_string))
                    .collect();
                mine.len() == 2 && in_proxmox(&sim, vmids[c]) == mine
            });
        settled.then_some((s, list))
    });
    record(&mut seen, &left);
    // every slot snapshotted exactly the two labelled containers, slots 30 minutes apart
    let both: BTreeSet<String> = ["web", "db"].iter().map(|s| s.to_string()).collect();
    for (slot, cts) in &seen {
        assert_eq!(cts, &both, "slot {slot}");
    }
    let slots: Vec<Timestamp> = seen.keys().copied().collect();
    for w in slots.windows(2) {
        assert_eq!(w[1].duration_since(w[0]), SignedDuration::from_mins(30), "{slots:?}");
    }
    // keepLast 2: the two newest slots, per container
    let last: Timestamp = sched["status"]["lastScheduleTime"].as_str().unwrap().parse().unwrap();
    let want: BTreeSet<Timestamp> = [last - SignedDuration::from_mins(30), last].into();
    for c in ["web", "db"] {
        let kept: BTreeSet<Timestamp> = left.iter().filter(|o| container_of(o) == c).map(slot_of).collect();
        assert_eq!(kept, want, "container {c}");
    }
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(
        in_proxmox(&sim, vmids["other"]).is_empty(),
        "the unlabelled one is never snapshotted"
    );
    assert!(sched["status"]["lastSuccessfulTime"].as_str().is_some(), "{sched}");
    // stays settled: suspended, nothing new
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(snapshots(cp, &ns).len(), 4);
    // (deleting the schedule deletes its snapshots through the garbage collector, which the
    // test control plane, a bare kube-apiserver, does not run)
    eprintln!("snapshot schedule test took {:?}", started.elapsed());
}
