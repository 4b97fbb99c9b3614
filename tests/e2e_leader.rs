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
    let args = [
        "--leader-election",
        "--lease-namespace",
        ns.as_str(),
        "--lease-name",
        "plo",
    ];
    let mut a = Operator::start_with(cp, &ns, &args);
    wait_for("a leads", Duration::from_secs(30), || {
        a.log().contains("became the leader").then_some(())
    });
    let b = Operator::start_with(cp, &ns, &args);
    wait_for("b stands by", Duration::from_secs(30), || {
        b.log().contains("standing by").then_some(())
    });
    for n in ["one", "two"] {
        cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container(n)));
    }
    for n in ["one", "two"] {
        wait_ready(cp, &ns, "lxc", n, Duration::from_secs(60));
    }
    assert!(
        !b.log().contains("became the leader"),
        "the standby must not lead while the leader lives"
    );
    let killed = std::time::Instant::now();
    a.kill();
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("three")));
    wait_for("b leads", Duration::from_secs(40), || {
        b.log().contains("became the leader").then_some(())
    });
    let failover = killed.elapsed();
    wait_ready(cp, &ns, "lxc", "three", Duration::from_secs(60));
    eprintln!("failover took {failover:?}");
    assert!(failover < Duration::from_secs(25), "failover took {failover:?}");
    let lease: serde_json::Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "lease", "-n", &ns, "plo", "-o", "json"])).unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(
        creates(&sim),
        3,
        "each container is created exactly once: {}",
        sim.stats()
    );
    assert_eq!(sim.containers().len(), 3);
}

fn sigterm_and_wait(op: &mut Operator, within: Duration) -> Duration {
    let pid = op.pid().expect("operator runs");
    let t0 = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
    wait_for("the operator exits after SIGTERM", within, || {
        (!op.is_running()).then_some(())
    });
    t0.elapsed()
}

#[test]
fn sigterm_stops_a_running_operator_gracefully() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("sigterm");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let mut op = Operator::start_with(cp, &ns, &["--shutdown-timeout", "5s"]);
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("one")));
    wait_ready(cp, &ns, "lxc", "one", Duration::from_secs(60));
    let took = sigterm_and_wait(&mut op, Duration::from_secs(15));
    assert!(
        op.log().contains("operator stopped") || op.log().contains("shutdown timeout"),
        "{}",
        op.log()
    );
    eprintln!("stopped {took:?} after SIGTERM");
}

/// A proxy in front of the control plane's apiserver (to freeze one operator's connection),
/// and a directory for its kubeconfig.
fn proxy_to_apiserver(cp: &ControlPlane) -> (FreezableProxy, tempfile::TempDir) {
    let server = std::fs::read_to_string(&cp.kubeconfig)
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://").map(str::to_string))
        .unwrap();
    (
        FreezableProxy::start(server.parse().unwrap()),
        tempfile::tempdir().unwrap(),
    )
}

#[test]
fn sigterm_stops_an_operator_whose_apiserver_stopped_answering() {
    // the control plane's host goes away without closing sockets: a reconcile hangs on its
    // request and kube's graceful shutdown would wait for it; SIGTERM must still end the
    // process within --shutdown-timeout, as Kubernetes expects of a pod being deleted
    let cp = ControlPlane::shared();
    let ns = cp.namespace("frozen");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let (proxy, dir) = proxy_to_apiserver(cp);
    let mut op = Operator::start_with_kubeconfig(
        &proxy.kubeconfig(&cp.kubeconfig, dir.path()),
        &ns,
        &["--shutdown-timeout", "3s"],
    );
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("one")));
    wait_ready(cp, &ns, "lxc", "one", Duration::from_secs(60));
    proxy.freeze();
    // the ProxmoxCluster controller reads its Secret every 2 s: that read now hangs
    std::thread::sleep(Duration::from_secs(4));
    assert!(op.is_running());
    let took = sigterm_and_wait(&mut op, Duration::from_secs(12));
    eprintln!("stopped {took:?} after SIGTERM");
    assert!(
        op.log().contains("shutdown timeout") || op.log().contains("operator stopped"),
        "{}",
        op.log()
    );
}

#[test]
fn a_leader_whose_apiserver_stops_answering_stops_before_its_lease_can_pass() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("frozenlead");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let (proxy, dir) = proxy_to_apiserver(cp);
    let args = [
        "--leader-election",
        "--lease-namespace",
        ns.as_str(),
        "--lease-name",
        "plo",
    ];
    let mut a = Operator::start_with_kubeconfig(&proxy.kubeconfig(&cp.kubeconfig, dir.path()), &ns, &args);
    wait_for("a leads", Duration::from_secs(30), || {
        a.log().contains("became the leader").then_some(())
    });
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("one")));
    wait_ready(cp, &ns, "lxc", "one", Duration::from_secs(60));
    proxy.freeze();
    let frozen = std::time::Instant::now();
    // the lease was renewed at most 5 s before the freeze; it lasts 15 s
    wait_for("the frozen leader to stop", Duration::from_secs(20), || {
        (!a.is_running()).then_some(())
    });
    let stopped = frozen.elapsed();
    eprintln!("the frozen leader stopped {stopped:?} after the freeze");
    assert!(
        stopped < Duration::from_secs(15),
        "stopped after {stopped:?}: its lease could have passed"
    );
    assert!(a.log().contains("could not renew the lease in time"), "{}", a.log());
    // a standby now takes over and works
    let writes_before = sim.count("POST /nodes/{node}/lxc");
    let b = Operator::start_with(cp, &ns, &args);
    wait_for("b leads", Duration::from_secs(40), || {
        b.log().contains("became the leader").then_some(())
    });
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("two")));
    wait_ready(cp, &ns, "lxc", "two", Duration::from_secs(60));
    assert_eq!(
        sim.count("POST /nodes/{node}/lxc"),
        writes_before + 1,
        "one create, by the new leader"
    );
}
