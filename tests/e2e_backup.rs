//! Backups end to end: a real kube-apiserver, the Proxmox simulator, and the operator binary.
//!
//! Schedules run on the operator's fast schedule clock (`--schedule-clock-speed 360`: 30
//! schedule minutes pass in 5 s), so `*:0/30` fires every 5 s and hourly retention periods
//! pass in 10 s; the simulator runs its tasks 5× faster (a vzdump takes 1 s).

mod common;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let (sim, op) = fast_schedules(cp, &ns);
    Env { cp, ns, sim, op }
}

fn container(name: &str, labels: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
    )
}

fn backups(e: &Env) -> Vec<Value> {
    list_json(e.cp, &e.ns, "lxcb")
}

fn label(b: &Value, key: &str) -> String {
    b["metadata"]["labels"][key].as_str().unwrap_or_default().to_string()
}

/// The listing entry of archive `volid` in storage `local` on `node`, per the simulator.
fn listed(sim: &Sim, node: &str, volid: &str) -> Value {
    let content = sim.call(
        "GET",
        &format!("/nodes/{node}/storage/local/content?content=backup"),
        &[],
    );
    content["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volid"] == volid)
        .cloned()
        .expect("archive listed in storage")
}

/// Archives (volid) of `vmid` in `storage` on `node`, per the simulator.
fn archives(sim: &Sim, node: &str, storage: &str, vmid: u64) -> BTreeSet<String> {
    let v = sim.call(
        "GET",
        &format!("/nodes/{node}/storage/{storage}/content?content=backup&vmid={vmid}"),
        &[],
    );
    v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["volid"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_schedule_backs_up_every_labelled_container_at_each_slot_one_vzdump_per_node_and_prunes() {
    let started = Instant::now();
    let e = env("bsched");
    // three labelled containers on one node (so their backups must queue) and one unlabelled
    for name in ["a", "b", "c"] {
        apply(e.cp, &e.ns, &container(name, "backup: fast", "  node: pve1\n"));
    }
    apply(e.cp, &e.ns, &container("other", "backup: never", "  node: pve1\n"));
    let mut vmids = BTreeMap::new();
    for name in ["a", "b", "c", "other"] {
        vmids.insert(
            name,
            wait_ready(e.cp, &e.ns, "lxc", name, T)["status"]["vmid"]
                .as_u64()
                .unwrap(),
        );
    }
    apply(
        e.cp,
        &e.ns,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackupSchedule\nmetadata:\n  name: fast\nspec:\n  schedule: \"*:0/30\"\n  selector: {matchLabels: {backup: fast}}\n  storage: local\n  retention: {keepLast: 1, keepHourly: 1}\n",
    );
    // watch the backups come and go: slot → containers backed up
    let mut seen: BTreeMap<Timestamp, BTreeSet<String>> = BTreeMap::new();
    let deadline = Instant::now() + T;
    while seen.len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} slots after {T:?}: {seen:?}\n{}",
            seen.len(),
            e.op.log()
        );
        for b in backups(&e) {
            seen.entry(slot_of(&b))
                .or_default()
                .insert(label(&b, "pve.lxc.dev/container"));
            assert_eq!(label(&b, "pve.lxc.dev/schedule"), "fast");
            assert_eq!(b["metadata"]["ownerReferences"][0]["kind"], "LxcBackupSchedule");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let out = e.cp.kubectl(&[
        "patch",
        "-n",
        &e.ns,
        "lxcbs",
        "fast",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert!(out.status.success());
    // settled: nothing active, two Completed backups per container, nothing being deleted
    let (sched, left) = wait_for("the schedule to settle after suspend", T, || {
        let s = get_json(e.cp, &e.ns, "lxcbs", "fast")?;
        let list = backups(&e);
        for b in &list {
            seen.entry(slot_of(b))
                .or_default()
                .insert(label(b, "pve.lxc.dev/container"));
        }
        let settled = s["status"]["active"].as_array().is_none_or(|a| a.is_empty())
            && list
                .iter()
                .all(|b| b["status"]["phase"] == "Completed" && b["metadata"]["deletionTimestamp"].is_null())
            && ["a", "b", "c"]
                .iter()
                .all(|c| list.iter().filter(|b| label(b, "pve.lxc.dev/container") == *c).count() == 2);
        settled.then_some((s, list))
    });
    // every slot backed up exactly the three labelled containers, slots 30 minutes apart
    let abc: BTreeSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    for (slot, cts) in &seen {
        assert_eq!(cts, &abc, "slot {slot}");
    }
    let slots: Vec<Timestamp> = seen.keys().copied().collect();
    for w in slots.windows(2) {
        assert_eq!(
            w[1].duration_since(w[0]),
            SignedDuration::from_mins(30),
            "slots {slots:?}"
        );
    }
    // never two vzdumps on one node at once
    assert_eq!(e.sim.stats()["vzdump_overlaps"], 0, "{}", e.sim.stats());
    // retention keepLast 1 + keepHourly 1: the newest slot L, and the newest slot of the hour
    // before L's hour (the :30 one)
    let last: Timestamp = sched["status"]["lastScheduleTime"].as_str().unwrap().parse().unwrap();
    let minute = last.to_zoned(jiff::tz::TimeZone::UTC).minute();
    let prev = last - SignedDuration::from_mins(if minute == 0 { 30 } else { 60 });
    let want: BTreeSet<Timestamp> = [last, prev].into();
    for c in ["a", "b", "c"] {
        let mine: Vec<&Value> = left.iter().filter(|b| label(b, "pve.lxc.dev/container") == c).collect();
        let kept: BTreeSet<Timestamp> = mine.iter().map(|b| slot_of(b)).collect();
        assert_eq!(kept, want, "container {c}");
        // the pruned backups' archives are gone from storage; the kept ones are there
        let volids: BTreeSet<String> = mine
            .iter()
            .map(|b| b["status"]["volid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(archives(&e.sim, "pve1", "local", vmids[c]), volids, "archives of {c}");
    }
    assert!(archives(&e.sim, "pve1", "local", vmids["other"]).is_empty());
    assert!(sched["status"]["lastSuccessfulTime"].as_str().is_some());
    assert_eq!(condition(&sched, "Ready").unwrap().1, "Suspended");
    eprintln!("schedule test took {:?}", started.elapsed());
}

/// A snapshot schedule and a backup schedule at the same hour meet: the vzdump finds the
/// container locked by the snapshot. The backup waits for the lock and completes; it does not
/// fail for good (and leave the night without a backup).
#[test]
fn a_backup_that_meets_a_snapshot_lock_waits_for_it_and_completes() {
    let e = env("bklock");
    for name in ["a", "b"] {
        apply(e.cp, &e.ns, &container(name, "", "  node: pve1\n"));
    }
    let vmid = |n: &str| wait_ready(e.cp, &e.ns, "lxc", n, T)["status"]["vmid"].as_u64().unwrap();
    let (va, vb) = (vmid("a"), vmid("b"));
    // an admin's vzdump of b holds the node's vzdump lock for a while (tasks run slower now)
    e.sim.call("POST", "/_sim/clock?speed=0.5", &[]);
    let upid = e.sim.call(
        "POST",
        "/nodes/pve1/vzdump",
        &[("vmid", &vb.to_string()), ("storage", "local")],
    );
    assert!(upid["data"].as_str().is_some_and(|u| u.contains(":vzdump:")), "{upid}");
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: nightly\nspec:\n  containerRef: {name: a}\n  storage: local\n");
    let running = |t: &Value| t["type"] == "vzdump" && t["status"] == "running";
    wait_for("the operator's vzdump to wait behind the admin's", T, || {
        let tasks = e.sim.call("GET", "/_sim/tasks", &[]);
        (tasks.as_array()?.iter().filter(|t| running(t)).count() == 2).then_some(())
    });
    // a snapshot takes the container's lock before the operator's vzdump reaches it
    e.sim.post_json(
        &format!("/_sim/containers/{va}/lock"),
        &serde_json::json!({"lock": "snapshot"}),
    );
    let waiting = wait_for("the backup to wait for the lock", T, || {
        let b = get_json(e.cp, &e.ns, "lxcb", "nightly")?;
        assert_ne!(b["status"]["phase"], "Failed", "{b}");
        let (_, reason, message) = condition(&b, "Ready")?;
        (reason == "ContainerLocked" && message.contains("snapshot")).then_some(b)
    });
    assert_eq!(waiting["status"]["phase"], "Pending", "{waiting}");
    e.sim.call("POST", "/_sim/clock?speed=5", &[]);
    e.sim.post_json(
        &format!("/_sim/containers/{va}/lock"),
        &serde_json::json!({"lock": null}),
    );
    let done = wait_ready(e.cp, &e.ns, "lxcb", "nightly", T);
    assert_eq!(done["status"]["phase"], "Completed", "{done}");
    assert!(!archives(&e.sim, "pve1", "local", va).is_empty());
}

#[test]
fn a_failed_vzdump_gives_a_failed_backup_the_next_slot_still_runs_and_missed_slots_run_once() {
    let mut e = env("bfail");
    apply(e.cp, &e.ns, &container("solo", "backup: solo", ""));
    wait_ready(e.cp, &e.ns, "lxc", "solo", T);
    e.sim
        .post_json("/_sim/faults", &serde_json::json!({"task_failure_rate": 1.0}));
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackupSchedule\nmetadata:\n  name: s\nspec:\n  schedule: \"*:0/30\"\n  selector: {matchLabels: {backup: solo}}\n  storage: local\n");
    let failed = wait_for("a Failed backup", T, || {
        backups(&e).into_iter().find(|b| b["status"]["phase"] == "Failed")
    });
    e.sim
        .post_json("/_sim/faults", &serde_json::json!({"task_failure_rate": 0.0}));
    let (status, reason, message) = condition(&failed, "Ready").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "BackupFailed"));
    assert!(message.contains("simulated task failure"), "{message}");
    assert!(failed["status"]["completedAt"].as_str().is_some());
    assert!(failed["status"]["upid"].as_str().unwrap().starts_with("UPID:"));
    let failed_slot = slot_of(&failed);
    let ok = wait_for("a later slot's backup Completed", T, || {
        backups(&e)
            .into_iter()
            .find(|b| b["status"]["phase"] == "Completed" && slot_of(b) > failed_slot)
    });
    assert!(ok["status"]["volid"]
        .as_str()
        .unwrap()
        .starts_with("local:backup/vzdump-lxc-"));
    // the failed backup is still there to look at
    assert!(get_json(e.cp, &e.ns, "lxcb", failed["metadata"]["name"].as_str().unwrap()).is_some());

    // the operator is down for more than two slots: on start, one backup for the latest slot
    wait_for("a settled schedule", T, || {
        let s = get_json(e.cp, &e.ns, "lxcbs", "s")?;
        let last: Timestamp = s["status"]["lastScheduleTime"].as_str()?.parse().ok()?;
        backups(&e).iter().any(|b| slot_of(b) == last).then_some(last)
    });
    e.op.kill();
    // read once the operator is down (under load it may have run another slot since the wait)
    let before: Timestamp = get_json(e.cp, &e.ns, "lxcbs", "s").unwrap()["status"]["lastScheduleTime"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_secs(13));
    let slots_before: BTreeSet<Timestamp> = backups(&e).iter().map(slot_of).collect();
    e.op.restart();
    let after = wait_for("the missed slot to run", T, || {
        let s = get_json(e.cp, &e.ns, "lxcbs", "s")?;
        let last: Timestamp = s["status"]["lastScheduleTime"].as_str()?.parse().ok()?;
        (last > before).then_some(last)
    });
    let new: BTreeSet<Timestamp> = backups(&e)
        .iter()
        .map(slot_of)
        .filter(|s| !slots_before.contains(s))
        .collect();
    assert!(
        after.duration_since(before) >= SignedDuration::from_mins(60),
        "{before} → {after}: at least two slots were missed"
    );
    assert_eq!(
        new.iter().next(),
        Some(&after),
        "the first slot after the restart is the latest missed one: {new:?}"
    );
    assert!(
        new.iter().all(|s| *s >= after),
        "no backup for the other missed slots: {new:?}"
    );
}

#[test]
fn a_container_restored_from_a_backup_runs_with_its_config_and_deletion_follows_the_policy() {
    let e = env("brestore");
    apply(
        e.cp,
        &e.ns,
        &container("src", "app: web", "  resources: {cores: 2, memory: 1Gi}\n"),
    );
    let src = wait_ready(e.cp, &e.ns, "lxc", "src", T);
    let vmid = src["status"]["vmid"].as_u64().unwrap();
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: b1\nspec:\n  containerRef: {name: src}\n  storage: local\n  notes: before the upgrade\n");
    let b1 = wait_ready(e.cp, &e.ns, "lxcb", "b1", T);
    let st = &b1["status"];
    assert_eq!(st["phase"], "Completed");
    let volid = st["volid"].as_str().unwrap().to_string();
    assert!(
        volid.starts_with(&format!("local:backup/vzdump-lxc-{vmid}-")) && volid.ends_with(".tar.zst"),
        "{volid}"
    );
    assert!(st["sizeBytes"].as_u64().unwrap() > 0);
    assert!(st["upid"].as_str().unwrap().starts_with("UPID:"));
    assert!(
        !st["upid"].as_str().unwrap().contains('!'),
        "the UPID in status does not carry the token id: {}",
        st["upid"]
    );
    assert!(st["startedAt"].as_str().is_some() && st["completedAt"].as_str().is_some());
    let node = st["node"].as_str().unwrap().to_string();
    let entry = listed(&e.sim, &node, &volid);
    // the first line (what listings show) says whose it is; the user's notes follow
    let b1_uid = b1["metadata"]["uid"].as_str().unwrap();
    let mark = entry["notes"].as_str().unwrap_or_default();
    assert!(
        mark.starts_with(&format!("pve.lxc.dev ns={} ", e.ns)) && mark.ends_with(&format!("backup={b1_uid}")),
        "{mark}"
    );
    let info = e.sim.call(
        "GET",
        &format!("/nodes/{node}/storage/local/content/{}", volid.replace('/', "%2F")),
        &[],
    );
    assert_eq!(
        info["data"]["notes"]
            .as_str()
            .and_then(|n| n.split_once('\n'))
            .map(|x| x.1),
        Some("before the upgrade"),
        "{info}"
    );

    // restore by name: the backed-up config (memory) with the new spec on top
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: copy\nspec:\n  source:\n    backup: {name: b1}\n  resources: {cores: 4}\n  tags: [restored]\n");
    let copy = wait_ready(e.cp, &e.ns, "lxc", "copy", T);
    let ct = e.sim.container(copy["status"]["vmid"].as_u64().unwrap()).unwrap();
    assert_eq!(ct["status"], "running");
    assert_eq!(
        ct["node"],
        node.as_str(),
        "restored where the archive is (storage local is per node)"
    );
    let cfg = &ct["config"];
    assert_eq!(cfg["cores"], "4");
    assert_eq!(cfg["memory"], "1024");
    assert_eq!(cfg["hostname"], "copy");
    let tags = cfg["tags"].as_str().unwrap();
    assert!(
        tags.contains("restored") && tags.contains(copy["metadata"]["uid"].as_str().unwrap()),
        "{tags}"
    );
    assert!(
        !tags.contains(src["metadata"]["uid"].as_str().unwrap()),
        "the source's identity tag is not copied: {tags}"
    );

    // Delete (the default) removes the archive
    e.cp.kubectl_ok(&["delete", "-n", &e.ns, "lxcb", "b1", "--wait=true", "--timeout=60s"]);
    assert!(
        !archives(&e.sim, &node, "local", vmid).contains(&volid),
        "archive {volid} should be gone"
    );
    // Retain keeps it
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: keep\nspec:\n  containerRef: {name: src}\n  storage: local\n  deletionPolicy: Retain\n");
    let keep = wait_ready(e.cp, &e.ns, "lxcb", "keep", T);
    let kept = keep["status"]["volid"].as_str().unwrap().to_string();
    e.cp.kubectl_ok(&["delete", "-n", &e.ns, "lxcb", "keep", "--wait=true", "--timeout=60s"]);
    assert!(get_json(e.cp, &e.ns, "lxcb", "keep").is_none());
    assert!(
        archives(&e.sim, &node, "local", vmid).contains(&kept),
        "archive {kept} should stay"
    );
    assert_eq!(e.sim.stats()["vzdump_overlaps"], 0);
}

#[test]
fn a_protected_backup_with_fleecing_and_pbs_options_is_accepted_and_protected_in_proxmox() {
    let e = env("bprotect");
    apply(e.cp, &e.ns, &container("src", "app: db", ""));
    wait_ready(e.cp, &e.ns, "lxc", "src", T);
    apply(
        e.cp,
        &e.ns,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: keep\nspec:\n  containerRef: {name: src}\n  storage: local\n  protected: true\n  fleecingStorage: local-lvm\n  pbsChangeDetectionMode: Metadata\n",
    );
    let b = wait_ready(e.cp, &e.ns, "lxcb", "keep", T);
    let volid = b["status"]["volid"].as_str().unwrap().to_string();
    let node = b["status"]["node"].as_str().unwrap().to_string();
    let entry = listed(&e.sim, &node, &volid);
    assert_eq!(entry["protected"], 1, "{entry}");
}

#[test]
fn deleting_a_protected_backup_deletes_its_archive_and_does_not_hold_its_namespace_forever() {
    let e = env("bprotdel");
    apply(e.cp, &e.ns, &container("src", "app: db", "  state: Stopped\n"));
    wait_ready(e.cp, &e.ns, "lxc", "src", T);
    let backup = |name: &str, extra: &str| {
        format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: {name}\nspec:\n  containerRef: {{name: src}}\n  storage: local\n{extra}")
    };
    apply(e.cp, &e.ns, &backup("mine", "  protected: true\n"));
    let mine = wait_ready(e.cp, &e.ns, "lxcb", "mine", T);
    apply(e.cp, &e.ns, &backup("theirs", ""));
    let theirs = wait_ready(e.cp, &e.ns, "lxcb", "theirs", T);
    let at = |b: &Value, k: &str| b["status"][k].as_str().unwrap().to_string();
    let (node, vmid) = (at(&mine, "node"), mine["status"]["vmid"].as_u64().unwrap());
    // an admin protects the other archive by hand in Proxmox
    let enc = at(&theirs, "volid").replace(':', "%3A").replace('/', "%2F");
    e.sim.call(
        "PUT",
        &format!("/nodes/{}/storage/local/content/{enc}", at(&theirs, "node")),
        &[("protected", "1")],
    );
    e.cp.kubectl_ok(&["delete", "-n", &e.ns, "lxcb", "mine", "theirs", "--wait=false"]);
    wait_for("both LxcBackups gone (no finalizer left looping)", T, || {
        (get_json(e.cp, &e.ns, "lxcb", "mine").is_none() && get_json(e.cp, &e.ns, "lxcb", "theirs").is_none())
            .then_some(())
    });
    let left = archives(&e.sim, &node, "local", vmid);
    assert!(
        !left.contains(&at(&mine, "volid")),
        "its own protection lifted, the archive deleted: {left:?}"
    );
    assert!(
        left.contains(&at(&theirs, "volid")),
        "the admin's protection respected: {left:?}"
    );
}
