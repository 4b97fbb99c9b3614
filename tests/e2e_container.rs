//! The operator end to end: a real kube-apiserver, the Proxmox simulator, and the operator
//! binary. Each test has its own namespace, simulator and operator process.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn container_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
    )
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
    assert!(
        tags.split(';').any(|t| t == format!("k8s-{uid}")),
        "identity tag missing: {tags}"
    );
    assert!(cfg["net0"].as_str().unwrap().contains("ip=10.0.0.5/24"));
    assert!(e.op.log().contains("operator running"));
    let metrics = e.op.metrics();
    for family in [
        "plo_reconcile_total{kind=\"LxcContainer\",result=\"ok\"}",
        "plo_reconcile_duration_seconds_bucket{kind=\"LxcContainer\"",
        "plo_proxmox_requests_total{method=\"POST\",endpoint=\"/nodes/{node}/lxc\",status=\"200\"} 1",
        "plo_proxmox_request_duration_seconds_count{method=\"GET\",endpoint=\"/cluster/resources\"}",
        "plo_tasks_started_total{operation=\"create\"} 1",
        "plo_kubernetes_writes_total{kind=\"LxcContainer\"}",
        "plo_container_up{namespace=",
        "plo_container_memory_bytes{",
        "# TYPE plo_queue_depth gauge",
    ] {
        assert!(metrics.contains(family), "/metrics lacks {family}:\n{metrics}");
    }
}

fn vmid_of(e: &Env, name: &str) -> u64 {
    get_json(e.cp, &e.ns, "lxc", name).unwrap()["status"]["vmid"]
        .as_u64()
        .unwrap()
}

fn wait_sim(e: &Env, what: &str, mut f: impl FnMut(&Sim) -> bool) {
    wait_for(what, T, || f(&e.sim).then_some(()));
}

#[test]
fn spec_edits_show_up_in_proxmox_and_state_stopped_stops_it() {
    let e = env("edit");
    apply(
        e.cp,
        &e.ns,
        &container_yaml(
            "app",
            "  resources: {cores: 1, memory: 512Mi}\n  rootfs: {storage: local-lvm, size: 2Gi}\n",
        ),
    );
    wait_ready(e.cp, &e.ns, "lxc", "app", T);
    let vmid = vmid_of(&e, "app");
    apply(e.cp, &e.ns, &container_yaml("app", "  description: edited\n  resources: {cores: 3, memory: 768Mi}\n  rootfs: {storage: local-lvm, size: 5Gi}\n  tags: [edited]\n"));
    wait_sim(&e, "cores 3, memory 768, rootfs 5G, tag", |s| {
        s.container(vmid).is_some_and(|c| {
            let cfg = &c["config"];
            cfg["cores"] == "3"
                && cfg["memory"] == "768"
                && cfg["rootfs"].as_str().unwrap_or("").contains("size=5G")
                && cfg["tags"].as_str().unwrap_or("").contains("edited")
        })
    });
    apply(e.cp, &e.ns, &container_yaml("app", "  description: edited\n  resources: {cores: 3, memory: 768Mi}\n  rootfs: {storage: local-lvm, size: 5Gi}\n  tags: [edited]\n  state: Stopped\n"));
    wait_sim(&e, "container stopped", |s| {
        s.container(vmid).is_some_and(|c| c["status"] == "stopped")
    });
    wait_for("phase Stopped", T, || {
        (get_json(e.cp, &e.ns, "lxc", "app")?["status"]["phase"] == "Stopped").then_some(())
    });
    let obj = wait_ready(e.cp, &e.ns, "lxc", "app", T);
    assert_eq!(condition(&obj, "Ready").unwrap().1, "Stopped");
}

#[test]
fn a_bad_spec_gets_invalid_spec_naming_the_field_and_no_request_loop() {
    let e = env("invalid");
    // valid for the schema of old apiservers, refused by the operator: gateway outside the subnet
    apply(
        e.cp,
        &e.ns,
        &container_yaml(
            "bad",
            "  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.0.0.5/24, gateway: 10.9.9.1}}\n",
        ),
    );
    let obj = wait_for("InvalidSpec", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "bad")?;
        condition(&o, "Ready").filter(|c| c.1 == "InvalidSpec").map(|_| o)
    });
    let (status, _, message) = condition(&obj, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains("spec.network[0].ipv4.gateway"), "{message}");
    assert_eq!(
        condition(&obj, "Stalled").map(|c| c.0),
        Some("True".to_string()),
        "kstatus sees it as failed"
    );
    // no loop: nothing but the inventory reaches Proxmox while the spec stays bad
    e.sim.call("POST", "/_sim/stats/reset", &[]);
    std::thread::sleep(Duration::from_secs(6));
    let stats = e.sim.stats();
    let other: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        // the inventory, and the token preflight's read when the objects in use change
        .filter(|(k, _)| {
            !k.contains("/cluster/resources") && !k.contains("/version") && !k.contains("/access/permissions")
        })
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(other, 0, "requests while the spec is invalid: {stats}");
    assert!(e.sim.containers().is_empty());
}

#[test]
fn a_container_without_our_tag_and_one_retained_survive_deletion_and_delete_removes_ours() {
    let e = env("delete");
    // a container made outside Kubernetes, with vmid 500
    e.sim.call(
        "POST",
        "/nodes/pve1/lxc",
        &[
            ("vmid", "500"),
            ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
            ("hostname", "manual"),
        ],
    );
    wait_sim(&e, "manual CT", |s| {
        s.container(500).is_some_and(|c| c["lock"].is_null())
    });
    apply(e.cp, &e.ns, &container_yaml("clash", "  vmid: 500\n"));
    let o = wait_for("VmidConflict", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "clash")?;
        condition(&o, "Ready").filter(|c| c.1 == "VmidConflict").map(|_| o)
    });
    assert!(condition(&o, "Ready").unwrap().2.contains("not managed by this object"));
    apply(e.cp, &e.ns, &container_yaml("keep", "  deletionPolicy: Retain\n"));
    apply(e.cp, &e.ns, &container_yaml("gone", ""));
    wait_ready(e.cp, &e.ns, "lxc", "keep", T);
    wait_ready(e.cp, &e.ns, "lxc", "gone", T);
    let keep = vmid_of(&e, "keep");
    let gone = vmid_of(&e, "gone");
    for name in ["clash", "keep", "gone"] {
        e.cp.kubectl_ok(&["delete", "-n", &e.ns, "lxc", name, "--wait=true", "--timeout=60s"]);
    }
    let manual = e
        .sim
        .container(500)
        .expect("the container without our tag is still there");
    assert_eq!(manual["config"]["hostname"], "manual");
    let kept = e.sim.container(keep).expect("the retained container is still there");
    assert!(
        !kept["config"]["tags"].as_str().unwrap_or("").contains("k8s-"),
        "our tag was not removed: {kept}"
    );
    assert!(
        e.sim.container(gone).is_none(),
        "the deleted container is still in Proxmox"
    );
}

#[test]
fn deleting_a_resource_whose_container_is_already_gone_finishes() {
    let e = env("gone");
    apply(e.cp, &e.ns, &container_yaml("ghost", ""));
    wait_ready(e.cp, &e.ns, "lxc", "ghost", T);
    let vmid = vmid_of(&e, "ghost");
    let node = e.sim.container(vmid).unwrap()["node"].as_str().unwrap().to_string();
    // stopped and destroyed behind the operator's back; it starts a stopped container again
    // (spec.state Running), so stop and destroy until the destroy wins that race
    wait_sim(&e, "destroyed", |s| {
        match s.container(vmid) {
            None => return true,
            Some(c) if c["lock"].is_null() && c["status"] == "stopped" => {
                s.call("DELETE", &format!("/nodes/{node}/lxc/{vmid}"), &[]);
            }
            Some(c) if c["lock"].is_null() => {
                s.call("POST", &format!("/nodes/{node}/lxc/{vmid}/status/stop"), &[]);
            }
            Some(_) => {}
        }
        s.container(vmid).is_none()
    });
    e.cp.kubectl_ok(&["delete", "-n", &e.ns, "lxc", "ghost", "--wait=true", "--timeout=60s"]);
    assert!(get_json(e.cp, &e.ns, "lxc", "ghost").is_none());
}

#[test]
fn drift_is_repaired_config_stopped_and_destroyed() {
    let e = env("drift");
    apply(e.cp, &e.ns, &container_yaml("steady", "  resources: {memory: 512Mi}\n"));
    wait_ready(e.cp, &e.ns, "lxc", "steady", T);
    let vmid = vmid_of(&e, "steady");
    let node = e.sim.container(vmid).unwrap()["node"].as_str().unwrap().to_string();
    // a value changed behind our back
    e.sim.call(
        "PUT",
        &format!("/nodes/{node}/lxc/{vmid}/config"),
        &[("memory", "2048")],
    );
    wait_sim(&e, "memory put back", |s| {
        s.container(vmid).is_some_and(|c| c["config"]["memory"] == "512")
    });
    // stopped behind our back
    e.sim
        .call("POST", &format!("/nodes/{node}/lxc/{vmid}/status/stop"), &[]);
    wait_sim(&e, "stopped", |s| {
        s.container(vmid).is_some_and(|c| c["status"] == "stopped")
    });
    wait_sim(&e, "started again", |s| {
        s.container(vmid).is_some_and(|c| c["status"] == "running")
    });
    // destroyed behind our back (force: Proxmox stops it first, so the operator cannot restart
    // it in between)
    wait_sim(&e, "unlocked", |s| {
        s.container(vmid).is_some_and(|c| c["lock"].is_null())
    });
    e.sim
        .call("DELETE", &format!("/nodes/{node}/lxc/{vmid}?force=1&purge=1"), &[]);
    wait_for("Recreating event", T, || {
        e.cp.kubectl_ok(&["get", "events", "-n", &e.ns, "-o", "json"])
            .contains("Recreating")
            .then_some(())
    });
    wait_sim(&e, "recreated with the same vmid and running", |s| {
        s.container(vmid)
            .is_some_and(|c| c["status"] == "running" && c["lock"].is_null())
    });
    let events = e.cp.kubectl_ok(&["get", "events", "-n", &e.ns, "-o", "json"]);
    assert!(events.contains("DriftCorrected"), "no DriftCorrected event");
    assert_eq!(e.sim.containers().len(), 1);
}

#[test]
fn changing_the_node_moves_the_running_container() {
    let e = env("move");
    apply(e.cp, &e.ns, &container_yaml("mover", "  node: pve1\n"));
    wait_ready(e.cp, &e.ns, "lxc", "mover", T);
    let vmid = vmid_of(&e, "mover");
    assert_eq!(e.sim.container(vmid).unwrap()["node"], "pve1");
    apply(e.cp, &e.ns, &container_yaml("mover", "  node: pve2\n"));
    wait_sim(&e, "on pve2 and running", |s| {
        s.container(vmid)
            .is_some_and(|c| c["node"] == "pve2" && c["status"] == "running")
    });
    wait_for("status.node pve2", T, || {
        (get_json(e.cp, &e.ns, "lxc", "mover")?["status"]["node"] == "pve2").then_some(())
    });
    wait_ready(e.cp, &e.ns, "lxc", "mover", T);
}

#[test]
fn a_container_cloned_and_one_restored_from_a_backup_volume_reach_running() {
    let e = env("sources");
    // Proxmox clones a running container only from a snapshot: the origin is kept stopped
    apply(e.cp, &e.ns, &container_yaml("origin", "  state: Stopped\n"));
    wait_ready(e.cp, &e.ns, "lxc", "origin", T);
    let origin = vmid_of(&e, "origin");
    let node = e.sim.container(origin).unwrap()["node"].as_str().unwrap().to_string();
    apply(e.cp, &e.ns, "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: copy\nspec:\n  source:\n    clone: {vmid: ORIGIN, full: true}\n  resources: {cores: 2}\n".replace("ORIGIN", &origin.to_string()).as_str());
    let copy = wait_ready(e.cp, &e.ns, "lxc", "copy", T);
    let copy_vmid = copy["status"]["vmid"].as_u64().unwrap();
    let c = e.sim.container(copy_vmid).unwrap();
    assert_eq!(c["config"]["cores"], "2");
    assert!(c["config"]["tags"]
        .as_str()
        .unwrap()
        .contains(copy["metadata"]["uid"].as_str().unwrap()));
    // a backup archive made in Proxmox, restored into a new container
    let upid = e.sim.call(
        "POST",
        &format!("/nodes/{node}/vzdump"),
        &[
            ("vmid", &origin.to_string()),
            ("storage", "nfs-backup"),
            ("mode", "snapshot"),
        ],
    );
    assert!(upid["data"].as_str().is_some_and(|u| u.starts_with("UPID:")), "{upid}");
    let volid = wait_for("backup archive", T, || {
        let content = e
            .sim
            .call("GET", &format!("/nodes/{node}/storage/nfs-backup/content"), &[]);
        content["data"]
            .as_array()?
            .iter()
            .find_map(|v| v["volid"].as_str().map(str::to_string))
    });
    // archives found in storage are listed in the container's status at its next full
    // reconcile (a spec change here; in production also the drift check)
    apply(
        e.cp,
        &e.ns,
        &container_yaml("origin", "  state: Stopped\n  tags: [backed-up]\n"),
    );
    wait_for("backup listed in status", T, || {
        (get_json(e.cp, &e.ns, "lxc", "origin")?["status"]["backups"][0]["volid"].as_str()? == volid).then_some(())
    });
    apply(e.cp, &e.ns, &format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: restored\nspec:\n  source:\n    backup: {{volid: \"{volid}\"}}\n  resources: {{memory: 256Mi}}\n"));
    let r = wait_ready(e.cp, &e.ns, "lxc", "restored", T);
    let rc = e.sim.container(r["status"]["vmid"].as_u64().unwrap()).unwrap();
    assert_eq!(rc["status"], "running");
    assert_eq!(rc["config"]["memory"], "256");
    assert_eq!(e.sim.containers().len(), 3);
}

/// Containers in the simulator carrying the identity tag of `uid`.
fn tagged(sim: &Sim, uid: &str) -> usize {
    sim.containers()
        .iter()
        .filter(|c| {
            c["config"]["tags"]
                .as_str()
                .unwrap_or("")
                .split(';')
                .any(|t| t == format!("k8s-{uid}"))
        })
        .count()
}

fn uids(e: &Env, names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            get_json(e.cp, &e.ns, "lxc", n).unwrap()["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn an_operator_killed_in_the_middle_of_creates_finishes_with_exactly_one_container_each() {
    let mut e = env("crash");
    let names: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    // kill points: right after apply, once a vmid is recorded, while the create task runs
    for (i, name) in names.iter().enumerate() {
        apply(e.cp, &e.ns, &container_yaml(name, ""));
        match i % 3 {
            0 => std::thread::sleep(Duration::from_millis(150)),
            1 => {
                wait_for("vmid recorded", T, || {
                    get_json(e.cp, &e.ns, "lxc", name)?["status"]["vmid"].as_u64()
                });
            }
            _ => wait_for("task running", T, || {
                get_json(e.cp, &e.ns, "lxc", name)?["status"]["pendingTask"]["upid"]
                    .as_str()
                    .filter(|u| u.starts_with("UPID:"))
                    .map(|_| ())
            }),
        }
        e.op.kill();
        e.op.restart();
    }
    for name in &names {
        wait_ready(e.cp, &e.ns, "lxc", name, Duration::from_secs(90));
    }
    for (name, uid) in names.iter().zip(uids(&e, &names)) {
        assert_eq!(tagged(&e.sim, &uid), 1, "{name} must have exactly one container");
    }
    assert_eq!(e.sim.containers().len(), names.len(), "no stray containers");
}

#[test]
fn with_injected_500s_and_lock_errors_every_container_converges_without_duplicates() {
    let e = env("faults");
    e.sim.post_json(
        "/_sim/faults",
        &serde_json::json!({"rules": [
            {"endpoint": "*", "rate": 0.03, "kind": "error", "status": 500, "message": "injected failure"},
            {"endpoint": "*", "rate": 0.03, "kind": "lock_timeout"}
        ]}),
    );
    let names: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    for n in &names {
        apply(e.cp, &e.ns, &container_yaml(n, "  resources: {memory: 256Mi}\n"));
    }
    for n in &names {
        wait_ready(e.cp, &e.ns, "lxc", n, Duration::from_secs(120));
    }
    let stats = e.sim.stats();
    assert!(
        stats["statuses"]["500"].as_u64().unwrap_or(0) > 0,
        "no fault was injected: {stats}"
    );
    for (name, uid) in names.iter().zip(uids(&e, &names)) {
        assert_eq!(tagged(&e.sim, &uid), 1, "{name} must have exactly one container");
    }
    assert_eq!(e.sim.containers().len(), names.len());
}

fn kube_writes(op: &Operator) -> f64 {
    op.metrics()
        .lines()
        .filter(|l| l.starts_with("plo_kubernetes_writes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn in_steady_state_the_inventory_and_a_flat_drift_budget_are_read_and_nothing_is_written() {
    let e = env("steady");
    let n = 50;
    let mut all = String::new();
    for i in 0..n {
        all.push_str(&container_yaml(&format!("s{i}"), "  resources: {memory: 128Mi}\n"));
        all.push_str("---\n");
    }
    apply(e.cp, &e.ns, &all);
    for i in 0..n {
        wait_ready(e.cp, &e.ns, "lxc", &format!("s{i}"), Duration::from_secs(180));
    }
    // let IP polling and the last status writes settle, then measure a window
    std::thread::sleep(Duration::from_secs(5));
    e.sim.call("POST", "/_sim/stats/reset", &[]);
    let writes_before = kube_writes(&e.op);
    let window = Duration::from_secs(20);
    std::thread::sleep(window);
    let stats = e.sim.stats();
    let writes = kube_writes(&e.op) - writes_before;
    let inventory = e.sim.count("GET /cluster/resources");
    let total = stats["total"].as_u64().unwrap();
    let drift = total - inventory;
    let resyncs = window.as_secs() / 2 + 1;
    eprintln!("steady state, {n} Ready containers, resync 2s, {window:?}: {inventory} inventory reads, {drift} drift reads (budget 10 containers per resync), {writes} Kubernetes writes");
    assert!(
        inventory <= resyncs,
        "at most one inventory read per resync: {inventory}"
    );
    // the drift reads: a flat budget (10 containers per resync, a few reads each), whatever
    // the number of containers
    assert!(drift > 0, "what the inventory cannot show is read too: {stats}");
    assert!(
        drift <= resyncs * 10 * 6,
        "drift reads stay within the budget: {drift} in {resyncs} resyncs: {stats}"
    );
    assert_eq!(
        e.sim.count("PUT /nodes/{node}/lxc/{vmid}/config"),
        0,
        "nothing is changed: {stats}"
    );
    assert_eq!(writes, 0.0, "no Kubernetes writes in steady state");
}

#[test]
fn the_root_password_and_the_api_token_never_reach_logs_events_or_status() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("secrets");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let op = Operator::start_logging(cp, &ns, "trace");
    let password = "S3cret-root-pa55word";
    apply(cp, &ns, &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: rootpw\n  labels: {{pve.lxc.dev/root-password: \"true\"}}\nstringData:\n  password: {password}\n---\n{}", container_yaml("locked", "  auth:\n    passwordSecretRef: {name: rootpw, key: password}\n    sshPublicKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv2Hq6Nl1aJ0aQ5tMx0tq9nF5mDl5n4dWAq6Zp2y6Jc admin@example.org\"]\n")));
    let obj = wait_ready(cp, &ns, "lxc", "locked", T);
    let events = cp.kubectl_ok(&["get", "events", "-n", &ns, "-o", "json"]);
    let log = op.log();
    assert!(log.contains("Proxmox API call"), "trace logging was on");
    for secret in [password, SIM_TOKEN_SECRET] {
        assert!(!log.contains(secret), "a secret is in the operator log");
        assert!(!events.contains(secret), "a secret is in an event");
        assert!(!obj.to_string().contains(secret), "a secret is in the object");
    }
}

#[test]
fn a_force_deleted_container_frees_its_task_slot_for_the_next_one() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("forcedel");
    // tasks take seconds, and one task at a time per node
    let sim = Sim::start(&["--clock-speed", "1"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let out = cp.kubectl(&[
        "patch",
        "-n",
        &ns,
        "proxmoxcluster",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"limits":{"maxConcurrentTasksPerNode":1,"requestsPerSecond":500}}}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _op = Operator::start_with(cp, &ns, &["--prune-interval", "2s"]);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    apply(cp, &ns, &container_yaml("first", "  node: pve1\n"));
    wait_for("the first create to run", T, || {
        let o = get_json(cp, &ns, "lxc", "first")?;
        o["status"]["pendingTask"]["upid"]
            .as_str()?
            .starts_with("UPID:")
            .then_some(())
    });
    // deleted, then its finalizer removed by hand while the task runs: the object vanishes
    // without the cleanup pass that would free its slot
    let out = cp.kubectl(&["delete", "-n", &ns, "lxc", "first", "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cp.kubectl(&[
        "patch",
        "-n",
        &ns,
        "lxc",
        "first",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the first object to be gone", T, || {
        get_json(cp, &ns, "lxc", "first").is_none().then_some(())
    });
    apply(cp, &ns, &container_yaml("second", "  node: pve1\n"));
    let obj = wait_ready(cp, &ns, "lxc", "second", T);
    assert_eq!(obj["status"]["phase"], "Running");
}

#[test]
fn a_container_protected_in_proxmox_is_kept_until_the_spec_allows_its_deletion() {
    let e = env("protect");
    apply(e.cp, &e.ns, &container_yaml("keep", ""));
    let obj = wait_ready(e.cp, &e.ns, "lxc", "keep", T);
    let vmid = obj["status"]["vmid"].as_u64().unwrap();
    let node = obj["status"]["node"].as_str().unwrap().to_string();
    // an admin protects it in the Proxmox GUI
    e.sim.call(
        "PUT",
        &format!("/nodes/{node}/lxc/{vmid}/config"),
        &[("protection", "1")],
    );
    let out = e.cp.kubectl(&["delete", "-n", &e.ns, "lxc", "keep", "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, _, message) = wait_for("Ready=False reason=Protected", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "keep")?;
        condition(&o, "Ready").filter(|(s, r, _)| s == "False" && r == "Protected")
    });
    assert!(message.contains("spec.protection"), "{message}");
    std::thread::sleep(Duration::from_secs(3));
    let ct = e.sim.container(vmid).expect("the protected container is kept");
    assert_eq!(
        ct["config"]["protection"], "1",
        "protection is not removed behind the admin's back"
    );
    // the user says otherwise: now it goes
    let out = e.cp.kubectl(&[
        "patch",
        "-n",
        &e.ns,
        "lxc",
        "keep",
        "--type=merge",
        "-p",
        r#"{"spec":{"protection":false}}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the object to be gone", T, || {
        get_json(e.cp, &e.ns, "lxc", "keep").is_none().then_some(())
    });
    assert!(e.sim.container(vmid).is_none(), "destroyed once the spec allowed it");
}

#[test]
fn a_container_whose_tag_was_removed_in_proxmox_is_never_created_twice() {
    let e = env("untag");
    apply(
        e.cp,
        &e.ns,
        &container_yaml(
            "solo",
            "  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.0.0.9/24, gateway: 10.0.0.1}}\n",
        ),
    );
    let obj = wait_ready(e.cp, &e.ns, "lxc", "solo", T);
    let vmid = obj["status"]["vmid"].as_u64().unwrap();
    let node = obj["status"]["node"].as_str().unwrap().to_string();
    // someone edits the tags in the Proxmox GUI
    e.sim.call(
        "PUT",
        &format!("/nodes/{node}/lxc/{vmid}/config"),
        &[("delete", "tags")],
    );
    let (_, _, message) = wait_for("Ready=False reason=IdentityTagMissing", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "solo")?;
        condition(&o, "Ready").filter(|(s, r, _)| s == "False" && r == "IdentityTagMissing")
    });
    assert!(message.contains("add the tag back"), "{message}");
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        e.sim.containers().len(),
        1,
        "no second container with the same hostname and IP"
    );
    let o = get_json(e.cp, &e.ns, "lxc", "solo").unwrap();
    assert_eq!(o["status"]["vmid"].as_u64(), Some(vmid), "the evidence is kept");
    assert_eq!(o["status"]["phase"], "Running");
    // the tag back: the container is ours again
    let uid = o["metadata"]["uid"].as_str().unwrap();
    e.sim.call(
        "PUT",
        &format!("/nodes/{node}/lxc/{vmid}/config"),
        &[("tags", &format!("k8s-{uid}"))],
    );
    wait_ready(e.cp, &e.ns, "lxc", "solo", T);
}

#[test]
fn changing_the_cluster_of_an_existing_container_is_refused_and_orphans_nothing() {
    let e = env("clusterref");
    apply(e.cp, &e.ns, &container_yaml("pinned", ""));
    let obj = wait_ready(e.cp, &e.ns, "lxc", "pinned", T);
    assert_eq!(obj["status"]["cluster"], e.ns.as_str());
    // clusterRef set later (no transition rule sees it; a 1.20 apiserver runs no CEL at all)
    apply(e.cp, &e.ns, &container_yaml("pinned", "  clusterRef: {name: other}\n"));
    // refused on Synced; the container still runs, so Ready stays true of it
    let (_, _, message) = wait_for("Synced=False reason=InvalidSpec", T, || {
        let o = get_json(e.cp, &e.ns, "lxc", "pinned")?;
        condition(&o, "Synced").filter(|(s, r, _)| s == "False" && r == "InvalidSpec")
    });
    assert!(
        message.contains("clusterRef is immutable") && message.contains(e.ns.as_str()),
        "{message}"
    );
    assert_eq!(e.sim.containers().len(), 1);
}

#[test]
fn deleting_a_container_while_its_clone_runs_leaks_no_clone() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("clonedel");
    // tasks take seconds: a clone is still running when the object is deleted
    let sim = Sim::start(&["--clock-speed", "1"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let _op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    apply(cp, &ns, &container_yaml("origin", "  state: Stopped\n"));
    let origin = wait_ready(cp, &ns, "lxc", "origin", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    let copy = format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: copy\nspec:\n  source:\n    clone: {{vmid: {origin}, full: true}}\n"
    );
    apply(cp, &ns, &copy);
    let vmid = wait_for("the clone to run", T, || {
        let o = get_json(cp, &ns, "lxc", "copy")?;
        let running = o["status"]["pendingTask"]["operation"] == "clone"
            && o["status"]["pendingTask"]["upid"].as_str()?.starts_with("UPID:");
        running.then(|| o["status"]["vmid"].as_u64()).flatten()
    });
    let out = cp.kubectl(&["delete", "-n", &ns, "lxc", "copy", "--wait=false"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the object to be gone", Duration::from_secs(90), || {
        get_json(cp, &ns, "lxc", "copy").is_none().then_some(())
    });
    assert!(
        sim.container(vmid).is_none(),
        "the clone finished after the delete and was destroyed, not left behind"
    );
    assert!(sim.container(origin).is_some(), "the source stays");
}

#[test]
fn a_vmid_held_by_a_qemu_vm_is_a_conflict_not_a_create_loop() {
    let e = env("qemuvmid");
    e.sim.post_json(
        "/_sim/qemu",
        &serde_json::json!({"vmid": 555, "node": "pve2", "name": "db"}),
    );
    apply(e.cp, &e.ns, &container_yaml("clash", "  vmid: 555\n"));
    let (_, _, message) = wait_for("Ready=False reason=VmidConflict", T, || {
        condition(&get_json(e.cp, &e.ns, "lxc", "clash")?, "Ready")
            .filter(|(s, r, _)| s == "False" && r == "VmidConflict")
    });
    assert!(message.contains("QEMU"), "{message}");
    // at most the one try made before the inventory showed the VM, and none after
    let tried = e.sim.count("POST /nodes/{node}/lxc");
    assert!(tried <= 1, "{tried} creates");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        e.sim.count("POST /nodes/{node}/lxc"),
        tried,
        "no create loop over the VM"
    );
    // an allocated vmid never lands on the VM either
    apply(e.cp, &e.ns, &container_yaml("free", ""));
    let vmid = wait_ready(e.cp, &e.ns, "lxc", "free", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    assert_ne!(vmid, 555);
}

#[test]
fn deleting_a_container_keeps_disks_it_does_not_reference() {
    let e = env("keepdisks");
    apply(
        e.cp,
        &e.ns,
        &container_yaml("web", "  node: pve1\n  rootfs: {storage: local-lvm, size: 2Gi}\n"),
    );
    let vmid = wait_ready(e.cp, &e.ns, "lxc", "web", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    // a detached disk with the same vmid (or another cluster's guest on shared storage)
    let planted = e.sim.post_json(
        "/_sim/storage/local-lvm/disks",
        &serde_json::json!({"node": "pve1", "vmid": vmid, "size": 1u64 << 30}),
    );
    let volid = planted["volid"].as_str().expect("planted").to_string();
    let out =
        e.cp.kubectl(&["delete", "-n", &e.ns, "lxc", "web", "--wait=true", "--timeout=60s"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(e.sim.container(vmid).is_none(), "the container itself is destroyed");
    let storage = e.sim.call("GET", "/_sim/storage", &[]);
    let vols: Vec<&str> = storage["pve1/local-lvm"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["volid"].as_str())
        .collect();
    assert!(vols.contains(&volid.as_str()), "{volid} survives: {vols:?}");
}
