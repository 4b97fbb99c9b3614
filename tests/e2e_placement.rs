//! Spread placement end to end: replicas of one service (`spec.spreadBy`) land on different
//! Proxmox nodes while there are nodes without one, and the operator says when there are none.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn replica(name: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\n  labels: {{app: web}}\nspec:\n  spreadBy: app\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n"
    )
}

#[test]
fn replicas_of_a_spread_group_run_on_different_nodes_and_a_fourth_is_reported() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("spread");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let _op = Operator::start(cp, &ns);
    // applied at once (one kubectl apply, as a Deployment-like burst would come)
    let burst: Vec<String> = ["web-0", "web-1", "web-2"].iter().map(|n| replica(n)).collect();
    cp.apply(&ns, &burst.join("---\n"));
    let mut nodes = BTreeSet::new();
    for n in ["web-0", "web-1", "web-2"] {
        let o = wait_ready(cp, &ns, "lxc", n, T);
        nodes.insert(o["status"]["node"].as_str().unwrap().to_string());
    }
    assert_eq!(nodes.len(), 3, "three replicas on three nodes: {nodes:?}");
    cp.apply(&ns, &replica("web-3"));
    wait_ready(cp, &ns, "lxc", "web-3", T);
    let events = cp.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns,
        "--field-selector",
        "regarding.name=web-3",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("SpreadNotPossible"), "{events}");
}

fn container(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
    )
}

fn node_of(cp: &ControlPlane, ns: &str, name: &str) -> Option<String> {
    get_json(cp, ns, "lxc", name)?["status"]["node"]
        .as_str()
        .map(str::to_string)
}

fn maintenance(cp: &ControlPlane, ns: &str, entries: &str) {
    cp.kubectl_ok(&[
        "patch",
        "proxmoxcluster",
        ns,
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"maintenance":{entries}}}}}"#),
    ]);
}

#[test]
fn a_node_in_maintenance_is_drained_of_our_containers_and_pinned_ones_move_only_when_allowed() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("drain");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let _op = Operator::start(cp, &ns);
    let apply = |m: &str| cp.apply(&ns, m);
    // two containers made on pve2 and then left free to move, one pinned there
    for n in ["free-a", "free-b", "pinned"] {
        apply(&container(n, "  node: pve2\n"));
    }
    for n in ["free-a", "free-b", "pinned"] {
        wait_ready(cp, &ns, "lxc", n, T);
    }
    for n in ["free-a", "free-b"] {
        apply(&container(n, ""));
    }
    maintenance(cp, &ns, r#"[{"node":"pve2"}]"#);
    wait_for("the free ones moved off pve2", T, || {
        ["free-a", "free-b"]
            .iter()
            .all(|n| node_of(cp, &ns, n).is_some_and(|node| node != "pve2"))
            .then_some(())
    });
    let left = wait_for("progress in the cluster's status", T, || {
        let pc = get_json(cp, &ns, "proxmoxcluster", &ns)?;
        let m = pc["status"]["maintenance"][0].clone();
        (m["containersLeft"] == 1).then_some(m)
    });
    assert_eq!(left["node"], "pve2");
    assert_eq!(node_of(cp, &ns, "pinned").as_deref(), Some("pve2"), "pinned stays");
    // nothing new goes there
    apply(&container("new", ""));
    assert_ne!(
        wait_ready(cp, &ns, "lxc", "new", T)["status"]["node"].as_str(),
        Some("pve2")
    );
    // pinned ones move when allowed, and come back when the maintenance ends
    maintenance(cp, &ns, r#"[{"node":"pve2","movePinned":true}]"#);
    wait_for("the pinned one moved", T, || {
        node_of(cp, &ns, "pinned").filter(|n| n != "pve2").map(|_| ())
    });
    maintenance(cp, &ns, "[]");
    wait_for("the pinned one back on pve2", T, || {
        (node_of(cp, &ns, "pinned")? == "pve2").then_some(())
    });
    let ct = sim
        .containers()
        .into_iter()
        .find(|c| c["node"] == "pve2")
        .expect("a container on pve2");
    assert_eq!(ct["status"], "running");
}
