//! Shared capacity between tenants (security review N6): a pull holds a task slot only for a
//! bounded time. The slots' namespace round-robin is table-tested in
//! `src/controller/kernel/slots.rs` (`one_tenants_slow_pulls_do_not_delay_another_tenants_creates`).

mod common;
use common::*;
use std::time::Duration;

#[test]
fn a_pull_from_a_registry_that_trickles_is_stopped_at_the_pull_timeout() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("trickle");
    // the simulator's task clock at 1/1000: its pull (500 ms) takes over 8 minutes
    let sim = Sim::start(&["--clock-speed", "0.001"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let _op = Operator::start_with(cp, &ns, &["--pull-timeout", "3s"]);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(90));
    cp.apply(
        &ns,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: slow\nspec:\n  source:\n    image: {reference: \"docker.io/library/nginx:1.27\"}\n  rootfs: {storage: local-lvm, size: 2Gi}\n",
    );
    let started = std::time::Instant::now();
    let msg = wait_for("Ready=False reason=PullFailed", Duration::from_secs(60), || {
        let o = get_json(cp, &ns, "lxc", "slow")?;
        condition(&o, "Ready").filter(|(s, r, _)| s == "False" && r == "PullFailed")
    })
    .2;
    assert!(msg.contains("stopped after 3s"), "{msg}");
    assert!(msg.contains("--pull-timeout"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the slot was held for {:?}",
        started.elapsed()
    );
    // the task is not running any more: its slot is free for others
    let tasks = sim.call("GET", "/_sim/tasks", &[]);
    let running: Vec<_> = tasks["data"]
        .as_array()
        .or_else(|| tasks.as_array())
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "ociregistrypull" && t["status"] == "running")
        .collect();
    assert!(running.is_empty(), "still running: {running:?}");
}
