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
    let mut nodes = BTreeSet::new();
    for n in ["web-0", "web-1", "web-2"] {
        let out = cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&replica(n)));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let o = wait_ready(cp, &ns, "lxc", n, T);
        nodes.insert(o["status"]["node"].as_str().unwrap().to_string());
    }
    assert_eq!(nodes.len(), 3, "three replicas on three nodes: {nodes:?}");
    let out = cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&replica("web-3")));
    assert!(out.status.success());
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
