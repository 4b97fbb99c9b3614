//! Snapshots end to end: an `LxcSnapshot` is a Proxmox snapshot of one container; rollbacks are
//! explicit requests carried out once each; deletion deletes only what the object took.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn snapshot(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcSnapshot\nmetadata:\n  name: {name}\nspec:\n  containerRef: {{name: web}}\n  description: before the upgrade\n{extra}"
    )
}

const WEB: &str = "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: web\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n";

/// A namespace connected to a fresh simulator, and the operator watching it.
fn env(prefix: &str) -> (&'static ControlPlane, String, Sim, Operator) {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let op = Operator::start(cp, &ns);
    (cp, ns, sim, op)
}

/// An `LxcContainer` `copy`: a full clone of CT `origin`.
fn copy_of(origin: u64) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: copy\nspec:\n  source:\n    clone: {{vmid: {origin}, full: true}}\n"
    )
}

/// A running `web` on a simulator whose tasks take seconds, and its clone `copy` applied,
/// once the temporary snapshot is recorded in `copy`'s status; the vmid of `web`.
fn cloning_slowly(prefix: &str) -> (&'static ControlPlane, String, Sim, Operator, u64) {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = Sim::start(&["--clock-speed", "1"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let op = Operator::start(cp, &ns);
    cp.apply(&ns, WEB);
    let origin = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    cp.apply(&ns, &copy_of(origin));
    let name = wait_for("the temporary snapshot recorded", T, || {
        let o = get_json(cp, &ns, "lxc", "copy")?;
        o["status"]["cloneSnapshot"]["name"].as_str().map(str::to_string)
    });
    assert!(name.starts_with("k8s-clone-"), "{name}");
    (cp, ns, sim, op, origin)
}

fn rollbacks(sim: &Sim) -> u64 {
    sim.count("POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback")
}

#[test]
fn a_rollback_is_carried_out_once_per_request_and_deleting_the_object_deletes_the_snapshot() {
    let (cp, ns, sim, _op) = env("snap");
    cp.apply(&ns, WEB);
    let vmid = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    cp.apply(&ns, &snapshot("before.upgrade", ""));
    let s = wait_ready(cp, &ns, "lxcsnap", "before.upgrade", T);
    assert_eq!(s["status"]["snapshotName"], "k8s-before-upgrade");
    let ct = sim.container(vmid).unwrap();
    assert_eq!(ct["snapshots"], serde_json::json!(["k8s-before-upgrade"]));

    // the rollback request, applied twice (GitOps re-syncs): one rollback
    let rb = "  rollback: {request: incident-42}\n";
    cp.apply(&ns, &snapshot("before.upgrade", rb));
    let done = wait_for("the rollback recorded", T, || {
        let o = get_json(cp, &ns, "lxcsnap", "before.upgrade")?;
        o["status"]["rollback"]["completedAt"].is_string().then_some(o)
    });
    assert_eq!(done["status"]["rollback"]["request"], "incident-42");
    assert_eq!(done["status"]["rollback"]["snapshotName"], "k8s-before-upgrade");
    cp.apply(
        &ns,
        &snapshot("before.upgrade", &format!("{rb}  deletionPolicy: Delete\n")),
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(rollbacks(&sim), 1, "the same request is never carried out twice");
    // the container runs again (its spec says Running)
    wait_for("the container running again", T, || {
        (sim.container(vmid)?["status"] == "running").then_some(())
    });
    // a new request: one more rollback
    cp.apply(&ns, &snapshot("before.upgrade", "  rollback: {request: incident-43}\n"));
    wait_for("the second rollback", T, || (rollbacks(&sim) == 2).then_some(()));

    cp.kubectl_ok(&[
        "delete",
        "-n",
        &ns,
        "lxcsnap",
        "before.upgrade",
        "--wait=true",
        "--timeout=60s",
    ]);
    let ct = sim.container(vmid).unwrap();
    assert_eq!(
        ct["snapshots"],
        serde_json::json!([]),
        "the Proxmox snapshot is deleted"
    );
}

#[test]
fn a_snapshot_the_object_did_not_take_is_never_adopted_rolled_back_to_or_deleted() {
    let (cp, ns, sim, _op) = env("snapforeign");
    cp.apply(&ns, WEB);
    let o = wait_ready(cp, &ns, "lxc", "web", T);
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    let node = o["status"]["node"].as_str().unwrap().to_string();
    // an admin's own snapshot, made in Proxmox
    sim.call(
        "POST",
        &format!("/nodes/{node}/lxc/{vmid}/snapshot"),
        &[("snapname", "weekly"), ("description", "by hand")],
    );
    wait_for("the admin's snapshot", T, || {
        sim.container(vmid)?["snapshots"]
            .as_array()?
            .iter()
            .any(|s| s == "weekly")
            .then_some(())
    });
    cp.apply(
        &ns,
        &snapshot("mine", "  snapshotName: weekly\n  rollback: {request: now}\n"),
    );
    let msg = wait_for("refused", T, || {
        let o = get_json(cp, &ns, "lxcsnap", "mine")?;
        condition(&o, "Ready").filter(|c| c.0 == "False" && c.1 == "VmidConflict")
    })
    .2;
    assert!(msg.contains("did not take"), "{msg}");
    cp.kubectl_ok(&["delete", "-n", &ns, "lxcsnap", "mine", "--wait=true", "--timeout=60s"]);
    assert_eq!(rollbacks(&sim), 0);
    let ct = sim.container(vmid).unwrap();
    assert_eq!(
        ct["snapshots"],
        serde_json::json!(["weekly"]),
        "the admin's snapshot stays"
    );
}

#[test]
fn a_running_container_is_cloned_through_a_temporary_snapshot_that_is_deleted_afterwards() {
    let (cp, ns, sim, _op) = env("snapclone");
    cp.apply(&ns, WEB);
    let origin = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    assert_eq!(sim.container(origin).unwrap()["status"], "running");
    cp.apply(&ns, &copy_of(origin));
    let copy = wait_ready(cp, &ns, "lxc", "copy", T);
    let vmid = copy["status"]["vmid"].as_u64().unwrap();
    assert_eq!(copy["status"]["phase"], "Running", "{copy}");
    assert_eq!(sim.container(vmid).unwrap()["status"], "running");
    // through one temporary snapshot and one clone, and the snapshot is gone again
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/snapshot"), 1);
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/clone"), 1);
    wait_for("the temporary snapshot deleted", T, || {
        let left = sim.container(origin)?["snapshots"].as_array()?.len();
        (left == 0).then_some(())
    });
    assert!(get_json(cp, &ns, "lxc", "copy").unwrap()["status"]["cloneSnapshot"].is_null());
    // the source was never stopped
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/status/stop"), 0);
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/status/shutdown"), 0);
    assert_eq!(sim.container(origin).unwrap()["status"], "running");
}

#[test]
fn deleting_a_clone_while_its_temporary_snapshot_exists_leaves_no_snapshot_and_no_clone() {
    // tasks take seconds: the object is deleted while the snapshot is taken or cloned from
    let (cp, ns, sim, _op, origin) = cloning_slowly("snapclonedel");
    let out = cp.kubectl(&["delete", "-n", &ns, "lxc", "copy", "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the object to be gone", T, || {
        get_json(cp, &ns, "lxc", "copy").is_none().then_some(())
    });
    let left = &sim.container(origin).unwrap()["snapshots"];
    assert_eq!(
        left,
        &serde_json::json!([]),
        "no temporary snapshot is left on the source"
    );
    assert_eq!(sim.containers().len(), 1, "no clone is left behind");
    assert_eq!(sim.container(origin).unwrap()["status"], "running");
}

#[test]
fn an_operator_restarted_after_the_temporary_snapshot_clones_once_and_leaks_nothing() {
    // tasks take seconds: the operator is killed while the snapshot is taken
    let (cp, ns, sim, mut op, origin) = cloning_slowly("snapclonerestart");
    op.kill();
    std::thread::sleep(Duration::from_secs(3));
    op.restart();
    let copy = wait_ready(cp, &ns, "lxc", "copy", T);
    assert_eq!(copy["status"]["phase"], "Running", "{copy}");
    wait_for("the temporary snapshot deleted", T, || {
        let left = sim.container(origin)?["snapshots"].as_array()?.len();
        (left == 0).then_some(())
    });
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/snapshot"), 1, "one snapshot");
    assert_eq!(sim.count("POST /nodes/{node}/lxc/{vmid}/clone"), 1, "one clone");
    assert_eq!(sim.containers().len(), 2);
}

#[test]
fn a_clone_proxmox_refuses_deletes_its_temporary_snapshot_and_the_next_try_takes_a_new_one() {
    let (cp, ns, sim, _op) = env("snapclonefail");
    cp.apply(&ns, WEB);
    let origin = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    let clone = "POST /nodes/{node}/lxc/{vmid}/clone";
    let (take, delete) = (
        "POST /nodes/{node}/lxc/{vmid}/snapshot",
        "DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
    );
    sim.post_json(
        "/_sim/faults",
        &serde_json::json!({"rules": [{"endpoint": clone, "rate": 1.0, "kind": "error", "status": 500, "message": "injected clone failure"}]}),
    );
    cp.apply(&ns, &copy_of(origin));
    // refused: the snapshot goes, and the next try takes a new one
    wait_for("a second temporary snapshot after a refused clone", T, || {
        (sim.count(delete) >= 1 && sim.count(take) >= 2).then_some(())
    });
    sim.post_json("/_sim/faults", &serde_json::json!({"rules": []}));
    let copy = wait_ready(cp, &ns, "lxc", "copy", T);
    assert_eq!(copy["status"]["phase"], "Running", "{copy}");
    wait_for("no temporary snapshot left", T, || {
        (sim.container(origin)?["snapshots"].as_array()?.is_empty()).then_some(())
    });
    assert_eq!(sim.count(take), sim.count(delete), "every snapshot taken was deleted");
    assert_eq!(sim.containers().len(), 2, "one clone");
}
