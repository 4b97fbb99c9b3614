//! Mistaken manifests fail early and clearly, and nothing gets stuck: a real kube-apiserver,
//! the Proxmox simulator and the operator binary.
//!
//! The corpus of mistakes is split by the earliest layer that refuses each one:
//! - the CRD schema (here, [`the_schema_refuses_mistakes_naming_the_field`], server-side dry
//!   runs against the real apiserver),
//! - the operator before any Proxmox call (the table test in
//!   src/controller/container/precheck_tests.rs, and end to end here for a node typo, a
//!   missing OS template and a missing LxcTemplate),
//! - Proxmox (the error taxonomy test in src/pve/error.rs: its 500s for a missing volume or
//!   an unfit storage are InvalidSpec, not a blip).

mod common;
use common::*;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn container(name: &str, spec: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata: {{name: {name}}}\nspec: {spec}\n")
}

/// Waits for `Ready=False` with `reason` on the container; returns the message.
fn wait_refused(e: &Env, name: &str, reason: &str) -> String {
    wait_for(&format!("{name}: Ready=False {reason}"), T, || {
        let o = get_json(e.cp, &e.ns, "lxc", name)?;
        condition(&o, "Ready")
            .filter(|c| c.0 == "False" && c.1 == reason)
            .map(|c| c.2)
    })
}

/// Proxmox requests the operator made in total (every counter of `/_sim/stats`).
/// All Proxmox requests so far, and those of them the observer makes whatever the objects
/// (inventory, privileges, version and bridge reads), from one reading of the counters (two
/// readings let an observer request land between them, counted in one and not the other).
fn requests_and_observers(sim: &Sim) -> (u64, u64) {
    let stats = sim.stats();
    let count = |k: &str| stats["requests"][k].as_u64().unwrap_or(0);
    let total = stats["requests"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    let observer = [
        "GET /cluster/resources",
        "GET /access/permissions",
        "GET /version",
        "GET /nodes/{node}/network",
    ]
    .iter()
    .map(|k| count(k))
    .sum();
    (total, observer)
}

/// `kubectl delete` with a timeout; returns how long it took.
fn delete_within(e: &Env, kind: &str, name: &str, timeout: &str) -> Duration {
    let start = Instant::now();
    let out =
        e.cp.kubectl(&["delete", "-n", &e.ns, kind, name, &format!("--timeout={timeout}")]);
    assert!(
        out.status.success(),
        "kubectl delete {kind}/{name} did not finish within {timeout}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn event_messages(e: &Env) -> String {
    e.cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        &e.ns,
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ])
}

#[test]
fn a_typo_in_spec_node_names_the_valid_nodes_and_deletes_at_once() {
    let e = env("typo-node");
    apply(
        e.cp,
        &e.ns,
        &container(
            "bad-node",
            &format!("{{node: pve9, source: {{osTemplate: \"{DEBIAN}\"}}}}"),
        ),
    );
    let msg = wait_refused(&e, "bad-node", "InvalidSpec");
    assert_eq!(
        msg,
        format!(
            "spec.node: node pve9 is not in ProxmoxCluster {}: pve1, pve2, pve3",
            e.ns
        )
    );
    let obj = get_json(e.cp, &e.ns, "lxc", "bad-node").unwrap();
    assert_eq!(condition(&obj, "Stalled").unwrap().0, "True");
    let vmid = obj["status"]["vmid"].clone();
    // no retry storm: over 10 s, the requests the object causes (all but the observer's
    // inventory, privileges, version and bridge reads) are at most one retry's template listing
    let (before, observer_before) = requests_and_observers(&e.sim);
    std::thread::sleep(Duration::from_secs(10));
    let (after, observer_after) = requests_and_observers(&e.sim);
    let spent = after - before;
    let caused = spent - (observer_after - observer_before);
    println!("Proxmox requests in 10 s with a refused container: {spent}, {caused} caused by the object");
    assert!(
        caused <= 1,
        "{caused} requests in 10 s caused by the refused object ({spent} in all)"
    );
    assert_eq!(e.sim.count("POST /nodes/{node}/lxc"), 0, "nothing was created");
    assert_eq!(
        get_json(e.cp, &e.ns, "lxc", "bad-node").unwrap()["status"]["vmid"],
        vmid,
        "no new vmid per pass"
    );
    let took = delete_within(&e, "lxc", "bad-node", "15s");
    println!("kubectl delete of the never-created container took {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let events = event_messages(&e);
    assert!(
        events.contains("was never created in Proxmox; nothing to delete there"),
        "{events}"
    );
}

#[test]
fn a_missing_os_template_or_lxc_template_or_bridge_is_named_before_any_create() {
    let e = env("missing");
    apply(
        e.cp,
        &e.ns,
        &container(
            "no-volume",
            "{source: {osTemplate: \"local:vztmpl/ubuntu-99.tar.zst\"}}",
        ),
    );
    apply(
        e.cp,
        &e.ns,
        &container("no-template", "{source: {template: {name: no-such-template}}}"),
    );
    apply(
        e.cp,
        &e.ns,
        &container("no-backup", "{source: {backup: {name: no-such-backup}}}"),
    );
    apply(
        e.cp,
        &e.ns,
        &container(
            "no-bridge",
            &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}, network: [{{name: eth0, bridge: vmbr9}}]}}"),
        ),
    );
    let msg = wait_refused(&e, "no-volume", "InvalidSpec");
    assert!(
        msg.starts_with("spec.source.osTemplate: volume local:vztmpl/ubuntu-99.tar.zst does not exist; OS templates on storage local: local:vztmpl/debian-12"),
        "{msg}"
    );
    let msg = wait_refused(&e, "no-template", "SourceNotFound");
    assert_eq!(
        msg,
        format!(
            "spec.source.template.name: LxcTemplate no-such-template does not exist in namespace {}",
            e.ns
        )
    );
    let msg = wait_refused(&e, "no-backup", "SourceNotFound");
    assert_eq!(
        msg,
        format!(
            "spec.source.backup.name: LxcBackup no-such-backup does not exist in namespace {}",
            e.ns
        )
    );
    let msg = wait_refused(&e, "no-bridge", "InvalidSpec");
    assert_eq!(
        msg,
        "spec.network[0].bridge: bridge vmbr9 does not exist on any online node; bridges: vmbr0"
    );
    let cluster = get_json(e.cp, "", "proxmoxcluster", &e.ns).unwrap();
    assert_eq!(
        cluster["status"]["nodes"][0]["bridges"],
        serde_json::json!(["vmbr0"]),
        "bridges in status"
    );
    assert_eq!(e.sim.count("POST /nodes/{node}/lxc"), 0, "nothing was created");
    for name in ["no-volume", "no-template", "no-backup", "no-bridge"] {
        let took = delete_within(&e, "lxc", name, "15s");
        assert!(took < Duration::from_secs(10), "{name}: {took:?}");
    }
}

#[test]
fn a_rejected_edit_keeps_a_running_container_ready_and_says_what_was_refused() {
    let e = env("refused-edit");
    let spec = |size: &str| {
        container(
            "live",
            &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}, rootfs: {{storage: local-lvm, size: {size}}}}}"),
        )
    };
    apply(e.cp, &e.ns, &spec("4Gi"));
    let obj = wait_ready(e.cp, &e.ns, "lxc", "live", T);
    assert_eq!(condition(&obj, "Ready").unwrap().1, "Running");
    apply(e.cp, &e.ns, &spec("2Gi"));
    let (obj, synced) = wait_for("Synced=False InvalidSpec", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "live")?;
        let c = condition(&o, "Synced").filter(|c| c.0 == "False" && c.1 == "InvalidSpec")?;
        Some((o, c))
    });
    assert!(synced.2.contains("rootfs"), "the message names the field: {}", synced.2);
    let ready = condition(&obj, "Ready").unwrap();
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("True", "Running"),
        "Ready stays about the guest, which runs untouched"
    );
    let stalled = condition(&obj, "Stalled").unwrap();
    assert_eq!((stalled.0.as_str(), stalled.1.as_str()), ("True", "InvalidSpec"));
    assert_eq!(obj["status"]["phase"], "Running");
    assert!(event_messages(&e).contains(&synced.2), "an Event says what was refused");
    // undoing the edit clears the refusal
    apply(e.cp, &e.ns, &spec("4Gi"));
    wait_for("Synced=True and no Stalled", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "live")?;
        (condition(&o, "Synced")?.0 == "True" && condition(&o, "Stalled").is_none()).then_some(())
    });
    delete_within(&e, "lxc", "live", "30s");
}

// ---- everyday verbs and views

fn reboots(sim: &Sim) -> u64 {
    sim.count("POST /nodes/{node}/lxc/{vmid}/status/reboot")
}

fn annotate_restart(e: &Env, name: &str, value: &str) {
    e.cp.kubectl_ok(&[
        "annotate",
        "-n",
        &e.ns,
        "lxc",
        name,
        &format!("pve.lxc.dev/restartedAt={value}"),
        "--overwrite",
    ]);
}

#[test]
fn a_restart_request_reboots_a_running_container_once_per_value() {
    let e = env("restart");
    let spec = |description: &str| {
        container(
            "verb",
            &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}, description: {description}, resources: {{cores: 2, memory: 512Mi}}}}"),
        )
    };
    apply(e.cp, &e.ns, &spec("one"));
    wait_ready(e.cp, &e.ns, "lxc", "verb", T);
    let wide = e.cp.kubectl_ok(&["get", "lxc", "-n", &e.ns, "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    for column in ["CORES", "MEMORY", "READY", "PENDINGRESTART", "SYNCED"] {
        assert!(header.contains(&column), "{column} in {header:?}");
    }
    let row = wide.lines().nth(1).unwrap();
    assert!(row.contains(" 2 ") && row.contains("512Mi"), "{row}");
    let before = reboots(&e.sim);
    annotate_restart(&e, "verb", "2026-12-06T09:00:00Z");
    wait_for("one reboot", T, || (reboots(&e.sim) == before + 1).then_some(()));
    wait_for("status.restartRequest", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "verb")?;
        (o["status"]["restartRequest"] == "2026-12-06T09:00:00Z").then_some(())
    });
    wait_ready(e.cp, &e.ns, "lxc", "verb", T);
    // another pass (a new generation) does not reboot it again for the same value
    apply(e.cp, &e.ns, &spec("two"));
    wait_for("generation observed", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "verb")?;
        (o["status"]["observedGeneration"] == o["metadata"]["generation"] && condition(&o, "Synced")?.0 == "True")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reboots(&e.sim), before + 1, "the same value reboots once");
    annotate_restart(&e, "verb", "2026-12-06T10:00:00Z");
    wait_for("a second reboot for a new value", T, || {
        (reboots(&e.sim) == before + 2).then_some(())
    });
    let restarting = e.cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        &e.ns,
        "--field-selector",
        "reason=Restarting",
        "-o",
        "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
    ]);
    assert!(
        restarting.contains("as requested (pve.lxc.dev/restartedAt: 2026-12-06T09:00:00Z)"),
        "{restarting}"
    );
    delete_within(&e, "lxc", "verb", "30s");
}

#[test]
fn events_sort_by_last_timestamp_and_a_repeat_counts_up_on_one_event() {
    let e = env("events");
    let spec = |description: &str| {
        container(
            "fw",
            &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}, description: {description}, network: [{{name: eth0, bridge: vmbr0, ipv4: {{dhcp: true}}}}], firewall: {{enabled: true, rules: [{{action: ACCEPT, direction: in, protocol: tcp, port: \"22\"}}]}}}}"),
        )
    };
    apply(e.cp, &e.ns, &spec("one"));
    wait_ready(e.cp, &e.ns, "lxc", "fw", T);
    let warning = |e: &Env| {
        let out = e.cp.kubectl_ok(&[
            "get",
            "events",
            "-n",
            &e.ns,
            "--field-selector",
            "reason=FirewallNotApplied",
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    };
    let first = wait_for("a FirewallNotApplied warning", T, || warning(&e).first().cloned());
    assert_eq!(first["type"], "Warning");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("no interface has `firewall: true`"),
        "{first}"
    );
    // the same warning again (a new generation) counts up on the same Event
    apply(e.cp, &e.ns, &spec("two"));
    let again = wait_for("the warning counted twice", T, || {
        let items = warning(&e);
        (items.len() == 1 && items[0]["count"] == 2).then(|| items[0].clone())
    });
    assert_eq!(again["metadata"]["name"], first["metadata"]["name"]);
    assert!(again["lastTimestamp"].as_str() >= first["lastTimestamp"].as_str());
    // every Event has a lastTimestamp, so --sort-by=.lastTimestamp orders them all
    let sorted = e.cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        &e.ns,
        "--sort-by=.lastTimestamp",
        "-o",
        "jsonpath={range .items[*]}{.lastTimestamp}{\"\\n\"}{end}",
    ]);
    let stamps: Vec<&str> = sorted.lines().collect();
    assert!(stamps.len() >= 3, "{sorted}");
    assert!(
        stamps.iter().all(|t| !t.is_empty()),
        "an Event without lastTimestamp:\n{sorted}"
    );
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "not in order:\n{sorted}");
    delete_within(&e, "lxc", "fw", "30s");
}

#[test]
fn a_backup_or_snapshot_naming_what_is_not_there_says_so_and_deletes_at_once() {
    let e = env("refs");
    apply(
        e.cp,
        &e.ns,
        &container("src", &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}}}")),
    );
    wait_ready(e.cp, &e.ns, "lxc", "src", T);
    let kind = |k: &str, name: &str, spec: &str| {
        format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: {k}\nmetadata: {{name: {name}}}\nspec: {spec}\n")
    };
    apply(
        e.cp,
        &e.ns,
        &kind("LxcBackup", "to-lvm", "{containerRef: {name: src}, storage: local-lvm}"),
    );
    apply(
        e.cp,
        &e.ns,
        &kind("LxcSnapshot", "of-nothing", "{containerRef: {name: nothing}}"),
    );
    apply(
        e.cp,
        &e.ns,
        &kind("LxcSnapshot", "before", "{containerRef: {name: src}}"),
    );
    let refused = |k: &str, name: &str, reason: &str| {
        wait_for(&format!("{k}/{name}: Ready=False {reason}"), T, || {
            let o = get_json(e.cp, &e.ns, k, name)?;
            condition(&o, "Ready")
                .filter(|c| c.0 == "False" && c.1 == reason)
                .map(|c| c.2)
        })
    };
    let msg = refused("lxcbackup", "to-lvm", "InvalidSpec");
    assert!(
        msg.starts_with("spec.storage: storage local-lvm cannot hold backups (content: "),
        "{msg}"
    );
    assert_eq!(e.sim.count("POST /nodes/{node}/vzdump"), 0, "no vzdump was started");
    let msg = refused("lxcsnapshot", "of-nothing", "ContainerNotFound");
    assert_eq!(msg, "LxcContainer nothing does not exist");
    // a snapshot whose container was deleted and made again says so (and never rolls the new
    // one back)
    wait_ready(e.cp, &e.ns, "lxcsnapshot", "before", T);
    delete_within(&e, "lxc", "src", "60s");
    apply(
        e.cp,
        &e.ns,
        &container("src", &format!("{{source: {{osTemplate: \"{DEBIAN}\"}}}}")),
    );
    wait_ready(e.cp, &e.ns, "lxc", "src", T);
    apply(
        e.cp,
        &e.ns,
        &kind(
            "LxcSnapshot",
            "before",
            "{containerRef: {name: src}, rollback: {request: \"1\"}}",
        ),
    );
    let msg = refused("lxcsnapshot", "before", "ContainerRecreated");
    assert!(msg.starts_with("LxcContainer src was re-created (CT "), "{msg}");
    assert_eq!(
        e.sim
            .count("POST /nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback"),
        0
    );
    for (k, name) in [
        ("lxcbackup", "to-lvm"),
        ("lxcsnapshot", "of-nothing"),
        ("lxcsnapshot", "before"),
    ] {
        let took = delete_within(&e, k, name, "15s");
        assert!(took < Duration::from_secs(10), "{k}/{name}: {took:?}");
    }
}

#[test]
fn deleting_a_container_whose_cluster_does_not_exist_finishes_and_says_what_it_left() {
    let mut e = env("no-cluster");
    apply(
        e.cp,
        &e.ns,
        &container(
            "orphan",
            &format!("{{node: pve9, source: {{osTemplate: \"{DEBIAN}\"}}}}"),
        ),
    );
    wait_refused(&e, "orphan", "InvalidSpec");
    // the ProxmoxCluster goes without its cleanup (deleted while the operator is down, its
    // finalizer removed by hand), and the operator starts again without it
    e.op.kill();
    e.cp.kubectl_ok(&["delete", "proxmoxcluster", &e.ns, "--wait=false"]);
    e.cp.kubectl_ok(&[
        "patch",
        "proxmoxcluster",
        &e.ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for("the ProxmoxCluster is gone", T, || {
        get_json(e.cp, "", "proxmoxcluster", &e.ns).is_none().then_some(())
    });
    e.op.restart();
    let took = delete_within(&e, "lxc", "orphan", "15s");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let events = event_messages(&e);
    assert!(
        events.contains(&format!("ProxmoxCluster {} does not exist and CT", e.ns))
            && events.contains("was never created there; nothing to delete"),
        "{events}"
    );
}

/// One mistaken manifest the CRD schema refuses: kind, spec (YAML flow), and the field path the
/// apiserver's message must name.
const SCHEMA_CORPUS: &[(&str, &str, &str)] = &[
    ("LxcContainer", "{source: {osTemplate: x}, state: Runing}", "spec.state"),
    ("LxcContainer", "{source: {osTemplate: x}, vmid: 42}", "spec.vmid"),
    (
        "LxcContainer",
        "{source: {osTemplate: x}, resources: {cores: two}}",
        "spec.resources.cores",
    ),
    (
        "LxcContainer",
        "{source: {osTemplate: x}, resources: {memory: 1 GB}}",
        "spec.resources.memory",
    ),
    ("LxcContainer", "{node: pve1}", "spec.source"),
    ("LxcContainer", "{source: {osTemplate: x}, node: PVE_1}", "spec.node"),
    (
        "LxcContainer",
        "{source: {osTemplate: x}, management: observe}",
        "spec.management",
    ),
    (
        "LxcContainer",
        "{source: {osTemplate: x}, deletionPolicy: Keep}",
        "spec.deletionPolicy",
    ),
    (
        "LxcContainer",
        "{source: {osTemplate: x}, network: [{name: eth0}]}",
        "spec.network.bridge: Required value",
    ),
    (
        "LxcBackup",
        "{containerRef: {name: web}, compress: zip}",
        "spec.compress",
    ),
    ("LxcBackup", "{compress: zstd}", "spec.containerRef"),
    ("LxcBackup", "{containerRef: {name: web}, mode: live}", "spec.mode"),
    ("LxcBackupSchedule", "{schedule: daily, selector: {}}", "spec.storage"),
    ("LxcSnapshot", "{snapshotName: before}", "spec.containerRef"),
    (
        "LxcSnapshot",
        "{containerRef: {name: web}, snapshotName: before upgrade}",
        "spec.snapshotName",
    ),
    ("LxcSnapshotSchedule", "{selector: {}}", "spec.schedule"),
    ("LxcTemplate", "{node: pve1}", "spec.image"),
    ("ProxmoxCluster", "{credentialsRef: {name: c}}", "spec.endpoints"),
    (
        "ProxmoxCluster",
        "{endpoints: [\"https://pve:8006\"], credentialsRef: {name: c}, tenancy: Closed}",
        "spec.tenancy",
    ),
    ("ProxmoxTenant", "{nodes: [pve1]}", "spec.clusters"),
];

#[test]
fn the_schema_refuses_mistakes_naming_the_field() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("schema-mistakes");
    let mut failures = Vec::new();
    for (i, (kind, spec, field)) in SCHEMA_CORPUS.iter().enumerate() {
        let spec = spec.replace("osTemplate: x", &format!("osTemplate: \"{DEBIAN}\""));
        let manifest =
            format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: m{i}}}\nspec: {spec}\n");
        // --validate=false: the apiserver's answer, not kubectl's client-side check
        let args = ["apply", "--dry-run=server", "--validate=false", "-n", &ns, "-f", "-"];
        let out = cp.kubectl_stdin(&args, Some(&manifest));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // exactly one mistake per manifest: one error (the apiserver lists several as `* ...`)
        let several = stderr.contains("\n* ");
        if out.status.success() || !stderr.contains(field) || several {
            failures.push(format!("{kind} {spec}: want a refusal naming {field}, got: {stderr}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
