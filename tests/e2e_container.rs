//! The operator end to end: a real kube-apiserver, the Proxmox simulator, and the operator
//! binary. Each test has its own namespace, simulator and operator process.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn apply(cp: &ControlPlane, ns: &str, manifest: &str) {
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn container_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
    )
}

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    op: Operator,
}

fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", "default", T);
    Env { cp, ns, sim, op }
}

#[test]
fn a_container_from_a_template_is_created_running_with_the_spec_config() {
    let e = env("create");
    apply(e.cp, &e.ns, &container_yaml("web", "  hostname: web1\n  tags: [web, prod]\n  resources: {cores: 2, memory: 1Gi, swap: 256Mi}\n  rootfs: {storage: local-lvm, size: 4Gi}\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.0.0.5/24, gateway: 10.0.0.1}}\n"));
    let obj = wait_ready(e.cp, &e.ns, "lxc", "web", T);
    let vmid = obj["status"]["vmid"].as_u64().expect("vmid in status");
    assert_eq!(obj["status"]["phase"], "Running");
    assert_eq!(obj["status"]["ipAddresses"][0], "10.0.0.5");
    let ct = e.sim.container(vmid).expect("container in the simulator");
    assert_eq!(ct["status"], "running");
    let cfg = &ct["config"];
    assert_eq!(cfg["hostname"], "web1");
    assert_eq!(cfg["cores"], "2");
    assert_eq!(cfg["memory"], "1024");
    assert_eq!(cfg["swap"], "256");
    let uid = obj["metadata"]["uid"].as_str().unwrap();
    let tags = cfg["tags"].as_str().unwrap();
    assert!(tags.split(';').any(|t| t == format!("k8s-{uid}")), "identity tag missing: {tags}");
    assert!(cfg["net0"].as_str().unwrap().contains("ip=10.0.0.5/24"));
    assert!(e.op.log().contains("operator running"));
}
