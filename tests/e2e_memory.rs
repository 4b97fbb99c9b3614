//! Bounded memory per tenant (security review N5): the operator caches every object it watches,
//! so what one namespace can make it hold is bounded by the schema (`src/crd/bounds.rs`). Here
//! a tenant fills its namespace with objects as large as the schema allows, every free-text
//! character a 4-byte one, and the operator (debug build, the tests' flags) must stay within
//! the chart's default memory limit, while it processes them and after a restart that lists
//! them all at once.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// How many maximal objects the tenant makes (the review's exploit: 200 in one namespace).
const OBJECTS: usize = 200;

/// A character that takes 4 bytes in UTF-8: the worst case for every field whose pattern admits
/// more than ASCII.
const WIDE: &str = "\u{1F600}";

fn wide(n: usize) -> String {
    WIDE.repeat(n)
}

/// `resources.limits.memory` of the chart's default values, in bytes.
fn chart_memory_limit() -> u64 {
    let values = std::fs::read_to_string(repo().join("charts/proxmox-lxc-operator/values.yaml")).unwrap();
    let limits = values
        .split("\n  limits:")
        .nth(1)
        .expect("resources.limits in values.yaml");
    let line = limits
        .lines()
        .find(|l| l.trim_start().starts_with("memory:"))
        .expect("limits.memory");
    let v = line.split(':').nth(1).unwrap().trim().trim_matches('"');
    let mib: u64 = v.strip_suffix("Mi").expect("a limit in Mi").parse().unwrap();
    mib * 1024 * 1024
}

/// An `LxcContainer` with every list full and every string at its longest.
fn maximal_container(i: usize) -> Value {
    let key = |k: usize| {
        let comment = format!(" user{k}@host");
        format!("ssh-ed25519 {}{comment}", "A".repeat(2048 - 12 - comment.len()))
    };
    let ports = |_: usize| {
        let mut s = "11111".to_string();
        while s.len() + 6 <= 64 {
            s.push_str(",22222");
        }
        s
    };
    json!({
        "apiVersion": "pve.lxc.dev/v1alpha1",
        "kind": "LxcContainer",
        "metadata": {"name": format!("big-{i:03}"), "labels": {"app": "big"}},
        "spec": {
            "source": {"image": {"reference": "docker.io/library/nginx:1.27"}},
            "description": wide(8192),
            "tags": (0..64).map(|t| format!("t{t:02}{}", "a".repeat(61))).collect::<Vec<_>>(),
            "auth": {"sshPublicKeys": (0..32).map(key).collect::<Vec<_>>()},
            "app": {
                "command": (0..16).map(|_| wide(512)).collect::<Vec<_>>(),
                "args": (0..16).map(|_| wide(512)).collect::<Vec<_>>(),
                "env": (0..32).map(|e| json!({"name": format!("V{e:02}{}", "_".repeat(125)), "value": wide(512)})).collect::<Vec<_>>(),
            },
            "firewall": {"enabled": true, "rules": (0..64).map(|r| json!({
                "action": "ACCEPT", "direction": "in", "comment": wide(128),
                "source": "a".repeat(64), "dest": "b".repeat(64), "port": ports(r), "sourcePort": ports(r),
                "protocol": "tcp", "iface": "net0",
            })).collect::<Vec<_>>()},
            "network": (0..32).map(|n| json!({
                "name": format!("eth{n}"), "bridge": "vmbr0", "mac": format!("02:00:00:00:{:02x}:{n:02x}", i % 256),
                "ipv4": {"dhcp": true},
            })).collect::<Vec<_>>(),
            "mountPoints": (0..32).map(|m| json!({
                "name": format!("mp{m}"), "storage": "local-lvm", "size": "1Gi",
                "path": format!("/m{m:02}/{}", wide(251)),
            })).collect::<Vec<_>>(),
            "bindMounts": (0..16).map(|b| json!({
                "hostPath": format!("/h{b:02}/{}", wide(251)), "mountPath": format!("/b{b:02}/{}", wide(251)),
            })).collect::<Vec<_>>(),
            "devices": (0..16).map(|d| json!({"path": format!("/dev/d{d:02}{}", wide(120)), "mode": "0660"})).collect::<Vec<_>>(),
            "ports": (0..64).map(|p| json!({"name": format!("p{p}"), "port": 1000 + p})).collect::<Vec<_>>(),
        }
    })
}

/// `VmRSS` and `VmHWM` (the peak) of `pid`, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Waits until every object of the namespace carries a `Ready` condition (the operator has
/// been through each once), checking the operator is alive meanwhile.
fn wait_all_seen(cp: &ControlPlane, ns: &str, op: &mut Operator) {
    let ready = r#"-o=jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].type}{"\n"}{end}"#;
    wait_for(
        "a Ready condition on every maximal object",
        Duration::from_secs(600),
        || {
            assert!(op.is_running(), "the operator died; log: {}", op.log_path().display());
            // the objects are large: a few reads, not one every 100 ms
            std::thread::sleep(Duration::from_secs(3));
            let out = cp.kubectl_ok(&["get", "-n", ns, "lxccontainer", ready]);
            let seen = out.lines().filter(|l| l.trim() == "Ready").count();
            (seen == OBJECTS).then_some(())
        },
    );
}

#[test]
fn two_hundred_maximal_objects_do_not_push_the_operator_out_of_its_memory_limit() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("mem");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "5s");
    let mut op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(90));
    let limit = chart_memory_limit();
    let one = serde_json::to_string(&maximal_container(0)).unwrap();
    eprintln!("one maximal LxcContainer: {} bytes of JSON", one.len());
    // `create`, not `apply`: kubectl's last-applied copy would not fit in the 256 KiB the
    // apiserver allows for annotations
    for chunk in (0..OBJECTS).collect::<Vec<_>>().chunks(10) {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk.iter().map(|i| maximal_container(*i)).collect::<Vec<_>>()});
        let out = cp.kubectl_stdin(&["create", "-n", &ns, "-f", "-"], Some(&list.to_string()));
        assert!(
            out.status.success(),
            "kubectl create: {}",
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(3000)
                .collect::<String>()
        );
    }
    wait_all_seen(cp, &ns, &mut op);
    let pid = op.pid().unwrap();
    let (now, peak) = rss(pid);
    eprintln!(
        "after {OBJECTS} maximal objects: RSS {:.1} MiB, peak {:.1} MiB, limit {:.0} MiB",
        now as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        limit as f64 / 1048576.0
    );
    assert!(peak < limit, "peak RSS {peak} bytes over the chart's limit {limit}");
    // a restart lists them all at once: the peak of a relist
    op.restart();
    wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(90));
    wait_for("the restarted operator to be ready", Duration::from_secs(300), || {
        let (code, _) = http_get(op.http_port, "/readyz", None);
        (code == 200).then_some(())
    });
    // a pass over every object after the restart
    std::thread::sleep(Duration::from_secs(20));
    assert!(op.is_running(), "the operator died after its restart");
    let (now, peak) = rss(op.pid().unwrap());
    eprintln!(
        "restarted with {OBJECTS} maximal objects: RSS {:.1} MiB, peak {:.1} MiB",
        now as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(
        peak < limit,
        "peak RSS after a restart {peak} bytes over the chart's limit {limit}"
    );
    cp.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
}
