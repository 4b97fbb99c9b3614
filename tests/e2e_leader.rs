//! Two operator replicas with leader election: one works, the other takes over when it dies,
//! and no Proxmox task is started twice.

mod common;
use common::*;
use std::time::Duration;

fn container(name: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n")
}

fn creates(sim: &Sim) -> u64 {
    sim.count("POST /nodes/{node}/lxc")
}

#[test]
fn one_leader_works_and_the_standby_takes_over_when_it_is_killed() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("leader");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let args = ["--leader-election", "--lease-namespace", ns.as_str(), "--lease-name", "plo"];
    let mut a = Operator::start_with(cp, &ns, &args);
    wait_for("a leads", Duration::from_secs(30), || a.log().contains("became the leader").then_some(()));
    let b = Operator::start_with(cp, &ns, &args);
    wait_for("b stands by", Duration::from_secs(30), || b.log().contains("standing by").then_some(()));
    for n in ["one", "two"] {
        cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container(n)));
    }
    for n in ["one", "two"] {
        wait_ready(cp, &ns, "lxc", n, Duration::from_secs(60));
    }
    assert!(!b.log().contains("became the leader"), "the standby must not lead while the leader lives");
    let killed = std::time::Instant::now();
    a.kill();
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("three")));
    wait_for("b leads", Duration::from_secs(40), || b.log().contains("became the leader").then_some(()));
    let failover = killed.elapsed();
    wait_ready(cp, &ns, "lxc", "three", Duration::from_secs(60));
    eprintln!("failover took {failover:?}");
    assert!(failover < Duration::from_secs(25), "failover took {failover:?}");
    let lease: serde_json::Value = serde_json::from_str(&cp.kubectl_ok(&["get", "lease", "-n", &ns, "plo", "-o", "json"])).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(creates(&sim), 3, "each container is created exactly once: {}", sim.stats());
    assert_eq!(sim.containers().len(), 3);
}
