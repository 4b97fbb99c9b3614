//! What people run on virtual nodes, under Kubernetes' own controllers: Deployments placed by
//! the default scheduler, scaled, rolled and garbage-collected; `kubectl drain` and `cordon`
//! with a PodDisruptionBudget; Jobs and CronJobs; a DaemonSet that tolerates everything;
//! namespace deletion; Nodes under the node-lifecycle controller. A real control plane
//! (kube-apiserver, kube-controller-manager, kube-scheduler), the Proxmox simulator and the
//! operator binary; nothing here does what a Kubernetes controller does. Every test ends with
//! nothing of its own left in Proxmox.

mod common;
use common::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    op: Operator,
}

/// A namespace, a simulator whose cluster has `virtualNodes`, and an operator running them
/// (watching the namespaces `ns` and `extra`), once its three Nodes are Ready.
fn env_watching(prefix: &str, extra_namespaces: &[&str], defaults: bool) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = virtual_node_cluster(cp, &ns, r#"{"namespaces":"All"}"#);
    let watched = std::iter::once(ns.as_str())
        .chain(extra_namespaces.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    let kubelet_port = free_port();
    let kubelet_addr = format!("127.0.0.1:{kubelet_port}");
    let op = if defaults {
        // production timings for Nodes and Leases (renewed every 10 s, 40 s leases)
        let args = [
            "--virtual-nodes",
            "--kubelet-addr",
            &kubelet_addr,
            "--node-address",
            "127.0.0.1",
        ];
        Operator::start_with_defaults(cp, &watched, &args)
    } else {
        let flags = virtual_node_flags(kubelet_port);
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        Operator::start_with(cp, &watched, &args)
    };
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    let e = Env { cp, ns, sim, op };
    for pve in ["pve1", "pve2", "pve3"] {
        wait_for(&format!("Node {pve} Ready"), T, || {
            node(&e, pve).filter(|n| node_ready(n) == "True")
        });
    }
    e
}

fn env(prefix: &str) -> Env {
    env_watching(prefix, &[], false)
}

/// A cluster-scoped object as JSON, `None` when it does not exist.
fn cluster_object(cp: &ControlPlane, kind: &str, name: &str) -> Option<Value> {
    let out = cp.kubectl(&["get", kind, name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn node(e: &Env, pve: &str) -> Option<Value> {
    cluster_object(e.cp, "node", &format!("{}-{pve}", e.ns))
}

fn node_ready(n: &Value) -> String {
    n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The Pods of `ns` labelled `app=APP`.
fn pods(e: &Env, ns: &str, app: &str) -> Vec<Value> {
    let out =
        e.cp.kubectl_ok(&["get", "pods", "-n", ns, "-l", &format!("app={app}"), "-o", "json"]);
    serde_json::from_str::<Value>(&out).unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn running(p: &Value) -> bool {
    p["status"]["phase"] == "Running"
        && p["status"]["podIP"].is_string()
        && p["metadata"]["deletionTimestamp"].is_null()
}

/// Waits until exactly `n` Pods of `app` exist and all run with an IP.
fn wait_running(e: &Env, ns: &str, app: &str, n: usize) -> Vec<Value> {
    wait_for(&format!("{n} Pods of {app} Running"), T, || {
        let ps = pods(e, ns, app);
        (ps.len() == n && ps.iter().all(running)).then_some(ps)
    })
}

/// The simulator's containers made for Pods (tagged `kube-pod`).
fn pod_containers(e: &Env) -> Vec<Value> {
    e.sim
        .containers()
        .into_iter()
        .filter(|c| c.to_string().contains("kube-pod"))
        .collect()
}

fn wait_pod_containers(e: &Env, n: usize) {
    wait_for(&format!("{n} Pod containers in Proxmox"), T, || {
        (pod_containers(e).len() == n).then_some(())
    });
}

/// The nodeSelector of Pods for the virtual nodes of the test's cluster `cluster` (the
/// apiserver is shared by every test, each with its own cluster and Nodes; a user with several
/// clusters selects one the same way).
fn on_cluster(cluster: &str) -> String {
    format!("{{type: virtual-kubelet, pve.lxc.dev/cluster: {cluster}}}")
}

/// A Deployment `name` of `replicas` nginx Pods placed by the default scheduler on the virtual
/// nodes of `cluster` (a toleration and a nodeSelector, as the README says), with the
/// ServiceAccount token mounted as anywhere. `extra` goes into the Pod spec.
fn deployment(cluster: &str, name: &str, replicas: u32, extra: &str) -> String {
    let selector = on_cluster(cluster);
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      nodeSelector: {selector}\n      tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n      containers:\n      - name: {name}\n        image: nginx:1.27\n        resources: {{limits: {{cpu: 250m, memory: 128Mi}}}}\n{extra}"
    )
}

fn waiting(p: &Value) -> (String, String) {
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The Events of `ns` about the object named `name` with `reason`.
fn events_for(e: &Env, ns: &str, name: &str, reason: &str) -> Vec<Value> {
    let out = e.cp.kubectl_ok(&["get", "events", "-n", ns, "-o", "json"]);
    serde_json::from_str::<Value>(&out).unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|ev| ev["involvedObject"]["name"] == name && ev["reason"] == reason)
        .collect()
}

#[test]
fn a_deployment_with_a_volume_it_cannot_mount_has_one_pod_after_a_minute_and_that_pod_says_why() {
    let e = env("wl-storm");
    let started = Instant::now();
    e.cp.apply(
        &e.ns,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
    );
    e.cp.apply(
        &e.ns,
        &deployment(&e.ns, "cfg",
            1,
            "        volumeMounts: [{name: cfg, mountPath: /etc/cfg}]\n      volumes: [{name: cfg, configMap: {name: cfg}}]\n",
        ),
    );
    let p = wait_for("the Pod to say why it waits", T, || {
        pods(&e, &e.ns, "cfg")
            .into_iter()
            .find(|p| waiting(p).0 == "CreateContainerConfigError")
    });
    let (_, message) = waiting(&p);
    assert!(
        message.starts_with("VolumesUnsupported:") && message.contains("spec.volumes[cfg]"),
        "{message}"
    );
    std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
    let all = pods(&e, &e.ns, "cfg");
    assert_eq!(all.len(), 1, "one Pod after a minute, not a replacement loop: {all:#?}");
    assert_eq!(all[0]["metadata"]["uid"], p["metadata"]["uid"], "the same Pod");
    assert_eq!(all[0]["status"]["phase"], "Pending");
    let name = p["metadata"]["name"].as_str().unwrap();
    let told = events_for(&e, &e.ns, name, "Failed");
    assert_eq!(told.len(), 1, "one Event: {told:#?}");
    assert_eq!(told[0]["count"].as_u64().unwrap_or(1), 1, "and no repeats: {told:#?}");
    assert!(pod_containers(&e).is_empty(), "nothing made in Proxmox");
    let rs =
        e.cp.kubectl_ok(&["get", "rs", "-n", &e.ns, "-o", "jsonpath={.items[*].status.replicas}"]);
    assert_eq!(rs.trim(), "1", "the ReplicaSet counts one replica");
}

#[test]
fn a_deployment_placed_by_the_default_scheduler_scales_rolls_and_goes_with_the_garbage_collector() {
    let e = env("wl-deploy");
    e.cp.apply(&e.ns, &deployment(&e.ns, "web", 2, ""));
    let ps = wait_running(&e, &e.ns, "web", 2);
    for p in &ps {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        assert!(
            node.starts_with(&format!("{}-pve", e.ns)),
            "placed on a virtual node: {node}"
        );
        // the ServiceAccount token volume the apiserver added did not stop it
        let vols = p["spec"]["volumes"].to_string();
        assert!(vols.contains("token"), "the admission added the token volume: {vols}");
    }
    let scheduled = events_for(&e, &e.ns, ps[0]["metadata"]["name"].as_str().unwrap(), "Scheduled");
    assert!(
        scheduled
            .iter()
            .any(|ev| ev["reportingComponent"] == "default-scheduler"
                || ev["source"]["component"] == "default-scheduler"),
        "{scheduled:#?}"
    );
    e.cp.kubectl_ok(&["rollout", "status", "deployment/web", "-n", &e.ns, "--timeout=120s"]);
    wait_pod_containers(&e, 2);
    // scale up and down
    e.cp.kubectl_ok(&["scale", "deployment/web", "-n", &e.ns, "--replicas=3"]);
    wait_running(&e, &e.ns, "web", 3);
    wait_pod_containers(&e, 3);
    e.cp.kubectl_ok(&["scale", "deployment/web", "-n", &e.ns, "--replicas=1"]);
    wait_running(&e, &e.ns, "web", 1);
    wait_pod_containers(&e, 1);
    // a rolling update: the new Pod's container has the new setting, the old one goes
    let old = pod_containers(&e)[0]["vmid"].as_u64().unwrap();
    e.cp.kubectl_ok(&["set", "env", "deployment/web", "-n", &e.ns, "COLOR=blue"]);
    e.cp.kubectl_ok(&["rollout", "status", "deployment/web", "-n", &e.ns, "--timeout=120s"]);
    let p = wait_running(&e, &e.ns, "web", 1).remove(0);
    wait_for("the old container to go", T, || {
        e.sim.container(old).is_none().then_some(())
    });
    let child = get_json(
        e.cp,
        &e.ns,
        "lxc",
        &format!("pod-{}", p["metadata"]["name"].as_str().unwrap()),
    )
    .expect("the new Pod's LxcContainer");
    let (vmid, node) = (
        child["status"]["vmid"].as_u64().unwrap(),
        child["status"]["node"].as_str().unwrap().to_string(),
    );
    let config = &e.sim.call("GET", &format!("/nodes/{node}/lxc/{vmid}/config"), &[])["data"];
    assert!(
        config["env"].as_str().unwrap_or_default().contains("COLOR=blue"),
        "{config}"
    );
    // deleting the Deployment: the garbage collector deletes the ReplicaSet and its Pods, the
    // operator their containers
    e.cp.kubectl_ok(&["delete", "deployment", "web", "-n", &e.ns]);
    wait_for("the Pods to be gone", T, || {
        pods(&e, &e.ns, "web").is_empty().then_some(())
    });
    wait_pod_containers(&e, 0);
    assert!(list_json(e.cp, &e.ns, "lxc").is_empty(), "no LxcContainer left");
}

#[test]
fn a_deployment_with_the_operators_scheduler_name_is_bound_without_tolerations() {
    let e = env("wl-binder");
    let manifest = deployment(&e.ns, "bound", 2, "      schedulerName: proxmox-lxc\n")
        .replace(&format!("      nodeSelector: {}\n", on_cluster(&e.ns)), "")
        .replace(
            "      tolerations: [{key: pve.lxc.dev/virtual-node, operator: Exists}]\n",
            "",
        );
    e.cp.apply(&e.ns, &manifest);
    let ps = wait_running(&e, &e.ns, "bound", 2);
    for p in &ps {
        assert!(p["spec"]["nodeName"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}-pve", e.ns)));
    }
    e.cp.kubectl_ok(&["delete", "deployment", "bound", "-n", &e.ns]);
    wait_pod_containers(&e, 0);
}

#[test]
fn kubectl_drain_moves_pods_off_a_virtual_node_through_evictions_and_respects_a_disruption_budget() {
    let e = env("wl-drain");
    // both replicas on pve1, so that draining it must move both
    let node1 = format!("{}-pve1", e.ns);
    let pinned = deployment(&e.ns, "db", 2, "").replace(
        "      tolerations:",
        "      affinity: {nodeAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, preference: {matchExpressions: [{key: pve.lxc.dev/node, operator: In, values: [pve1]}]}}]}}\n      tolerations:",
    );
    e.cp.apply(&e.ns, &pinned);
    e.cp.apply(
        &e.ns,
        "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: db}\nspec:\n  minAvailable: 2\n  selector: {matchLabels: {app: db}}\n",
    );
    let before = wait_running(&e, &e.ns, "db", 2);
    let on_node1: Vec<String> = before
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node1.as_str())
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    assert!(!on_node1.is_empty(), "the preferred node got Pods");
    // the budget allows no disruption: drain cordons the node but evicts nothing
    let blocked = e.cp.kubectl(&["drain", &node1, "--ignore-daemonsets", "--timeout=15s"]);
    assert!(!blocked.status.success(), "drain must not break the budget");
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    assert!(stderr.contains("disruption budget"), "{stderr}");
    let n = node(&e, "pve1").unwrap();
    assert_eq!(n["spec"]["unschedulable"], true, "cordoned");
    assert_eq!(wait_running(&e, &e.ns, "db", 2).len(), 2, "nothing evicted");
    // one at a time: drain evicts, the ReplicaSet replaces each Pod on another node
    e.cp.kubectl_ok(&[
        "patch",
        "pdb",
        "db",
        "-n",
        &e.ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    e.cp.kubectl_ok(&["drain", &node1, "--ignore-daemonsets", "--timeout=180s"]);
    let after = wait_running(&e, &e.ns, "db", 2);
    for p in &after {
        assert_ne!(
            p["spec"]["nodeName"],
            node1.as_str(),
            "nothing left on the drained node"
        );
    }
    wait_pod_containers(&e, 2);
    for c in pod_containers(&e) {
        assert_ne!(c["node"], "pve1", "the containers moved too: {c}");
    }
    e.cp.kubectl_ok(&["uncordon", &node1]);
    e.cp.kubectl_ok(&["delete", "deployment", "db", "-n", &e.ns]);
    wait_pod_containers(&e, 0);
}

#[test]
fn a_job_whose_app_runs_to_its_end_completes_and_a_cronjob_makes_its_job() {
    let e = env("wl-job");
    e.cp.apply(
        &e.ns,
        &format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: once}}\nspec:\n  backoffLimit: 0\n  template:\n    metadata: {{labels: {{app: once}}}}\n    spec:\n      restartPolicy: Never\n      nodeSelector: {}\n      tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n      containers: [{{name: once, image: nginx:1.27}}]\n", on_cluster(&e.ns)),
    );
    let p = wait_running(&e, &e.ns, "once", 1).remove(0);
    let child = get_json(
        e.cp,
        &e.ns,
        "lxc",
        &format!("pod-{}", p["metadata"]["name"].as_str().unwrap()),
    )
    .unwrap();
    let vmid = child["status"]["vmid"].as_u64().unwrap();
    // the app ends
    e.sim.call("POST", &format!("/_sim/containers/{vmid}/exit"), &[]);
    wait_for("the Job to complete", T, || {
        let j = get_json(e.cp, &e.ns, "job", "once")?;
        (j["status"]["succeeded"] == 1).then_some(())
    });
    // Proxmox reports no exit code: the Pod says so rather than a plain `Completed`
    let done = pods(&e, &e.ns, "once").remove(0);
    assert_eq!(done["status"]["phase"], "Succeeded");
    assert_eq!(done["status"]["reason"], "ExitCodeUnknown", "{done:#}");
    let term = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["reason"], "ExitCodeUnknown", "{term}");
    // the Job's Pod stays (as a kubelet leaves a completed one) until the Job goes
    e.cp.kubectl_ok(&["delete", "job", "once", "-n", &e.ns]);
    wait_for("the Job's Pod to go", T, || {
        pods(&e, &e.ns, "once").is_empty().then_some(())
    });
    wait_for("its container to go", T, || {
        e.sim.container(vmid).is_none().then_some(())
    });
    // a CronJob every minute makes a Job whose Pod runs on a virtual node
    e.cp.apply(
        &e.ns,
        &format!("apiVersion: batch/v1beta1\nkind: CronJob\nmetadata: {{name: tick}}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        metadata: {{labels: {{app: tick}}}}\n        spec:\n          restartPolicy: Never\n          nodeSelector: {}\n          tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n          containers: [{{name: tick, image: nginx:1.27}}]\n", on_cluster(&e.ns)),
    );
    wait_for("the CronJob's Pod to run", Duration::from_secs(150), || {
        pods(&e, &e.ns, "tick").into_iter().find(running)
    });
    e.cp.kubectl_ok(&["delete", "cronjob", "tick", "-n", &e.ns]);
    wait_for("the CronJob's Pods to go", T, || {
        pods(&e, &e.ns, "tick").is_empty().then_some(())
    });
    wait_pod_containers(&e, 0);
}

/// A Job `name` (no retries) whose Pod runs the fixture counter, which prints six lines and
/// exits with `code`; the Pod says its image has a shell, so the operator runs the command
/// under the wrapper that reports the exit status.
fn counter_job(cluster: &str, name: &str, code: i32) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  backoffLimit: 0\n  template:\n    metadata: {{labels: {{app: {name}}}, annotations: {{pve.lxc.dev/shell: /bin/sh}}}}\n    spec:\n      restartPolicy: Never\n      nodeSelector: {}\n      tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n      containers:\n      - name: {name}\n        image: ghcr.io/example/counter:1.0\n        command: [/app/counter]\n        env: [{{name: COUNTER_INTERVAL_MS, value: \"1000\"}}, {{name: COUNTER_LINES, value: \"6\"}}, {{name: COUNTER_EXIT_CODE, value: \"{code}\"}}]\n",
        on_cluster(cluster)
    )
}

/// Runs [`counter_job`] with `code` until the Job has a `want` (`failed` or `succeeded`) Pod;
/// returns that Pod, its `kubectl logs`, and deletes the Job (nothing left in Proxmox).
fn run_counter_job(e: &Env, name: &str, code: i32, want: &str) -> (Value, String) {
    e.cp.apply(&e.ns, &counter_job(&e.ns, name, code));
    wait_for(&format!("the Job {name} to count one {want} Pod"), T, || {
        let j = get_json(e.cp, &e.ns, "job", name)?;
        (j["status"][want] == 1).then_some(())
    });
    let done = pods(e, &e.ns, name).remove(0);
    let pod_name = done["metadata"]["name"].as_str().unwrap().to_string();
    let logs = e.cp.kubectl_ok(&["logs", "-n", &e.ns, &pod_name]);
    e.cp.kubectl_ok(&["delete", "job", name, "-n", &e.ns]);
    wait_for("the Job's Pod to go", T, || {
        pods(e, &e.ns, name).is_empty().then_some(())
    });
    wait_pod_containers(e, 0);
    (done, logs)
}

#[test]
fn a_job_whose_app_fails_is_failed_with_its_exit_code() {
    let e = env("wl-jobfail");
    let (done, logs) = run_counter_job(&e, "fails", 3, "failed");
    assert_eq!(done["status"]["phase"], "Failed", "{done:#}");
    let term = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 3, "{term}");
    assert_eq!(term["reason"], "Error", "{term}");
    // the app's own lines, without the wrapper's marker
    assert!(logs.contains(": line 6\n"), "{logs:?}");
    assert!(!logs.contains('\u{1b}') && !logs.contains("exit-code"), "{logs:?}");
}

#[test]
fn a_job_whose_app_exits_with_0_succeeds_with_exit_code_0() {
    let e = env("wl-jobok");
    let (done, logs) = run_counter_job(&e, "works", 0, "succeeded");
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");
    // known, so not the ExitCodeUnknown of an app without a shell
    assert!(done["status"]["reason"].is_null(), "{done:#}");
    let term = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0, "{term}");
    assert_eq!(term["reason"], "Completed", "{term}");
    assert!(logs.ends_with(": line 6\n"), "{logs:?}");
}

#[test]
fn a_daemon_set_that_tolerates_everything_is_not_run_on_virtual_nodes_and_says_how_to_keep_it_off() {
    let e = env("wl-ds");
    e.cp.apply(
        &e.ns,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec:\n      tolerations: [{operator: Exists}]\n      containers: [{name: agent, image: nginx:1.27}]\n",
    );
    let ours = |ps: &[Value]| {
        ps.iter()
            .filter(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().starts_with(&e.ns))
            .count()
    };
    let mine = |ps: Vec<Value>| -> Vec<Value> {
        ps.into_iter()
            .filter(|p| p["spec"]["nodeName"].as_str().unwrap_or_default().starts_with(&e.ns))
            .collect()
    };
    // (the DaemonSet also gets Pods on the other tests' Nodes; their operators do not watch here)
    let ps = wait_for(
        "a DaemonSet Pod on each of our three Nodes, saying why it waits",
        T,
        || {
            let ps = mine(pods(&e, &e.ns, "agent"));
            let told = ps
                .iter()
                .filter(|p| waiting(p).0 == "CreateContainerConfigError")
                .count();
            (ps.len() == 3 && told == 3).then_some(ps)
        },
    );
    let (_, message) = waiting(&ps[0]);
    assert!(
        message.starts_with("DaemonSetUnsupported:") && message.contains("NotIn"),
        "{message}"
    );
    let uids: Vec<Value> = ps.iter().map(|p| p["metadata"]["uid"].clone()).collect();
    std::thread::sleep(Duration::from_secs(15));
    let again: Vec<Value> = mine(pods(&e, &e.ns, "agent"))
        .iter()
        .map(|p| p["metadata"]["uid"].clone())
        .collect();
    assert_eq!(again, uids, "the same Pods: no replacement loop");
    assert!(pod_containers(&e).is_empty(), "nothing made in Proxmox");
    e.cp.kubectl_ok(&["delete", "daemonset", "agent", "-n", &e.ns]);
    wait_for("the DaemonSet's Pods to go", T, || {
        (ours(&pods(&e, &e.ns, "agent")) == 0).then_some(())
    });
}

#[test]
fn deleting_a_namespace_with_pods_containers_backups_and_snapshots_inside_finishes() {
    let cp = ControlPlane::shared();
    let work = cp.namespace("wl-gone");
    let e = env_watching("wl-home", &[&work], false);
    e.cp.apply(&work, &deployment(&e.ns, "web", 1, ""));
    e.cp.apply(
        &work,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata: {name: db}\nspec:\n  source: {osTemplate: 'local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst'}\n",
    );
    wait_running(&e, &work, "web", 1);
    wait_ready(e.cp, &work, "lxc", "db", T);
    // one after the other: Proxmox refuses a backup while a snapshot holds the container's lock
    e.cp.apply(
        &work,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcSnapshot\nmetadata: {name: db-snap}\nspec: {containerRef: {name: db}}\n",
    );
    wait_ready(e.cp, &work, "lxcsnapshot", "db-snap", T);
    e.cp.apply(
        &work,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata: {name: db-backup}\nspec: {containerRef: {name: db}}\n",
    );
    wait_ready(e.cp, &work, "lxcbackup", "db-backup", T);
    assert_eq!(e.sim.containers().len(), 2);
    let started = Instant::now();
    e.cp.kubectl_ok(&["delete", "namespace", &work, "--timeout=180s"]);
    let took = started.elapsed();
    assert!(
        cluster_object(e.cp, "namespace", &work).is_none(),
        "the namespace is gone"
    );
    assert!(
        e.sim.containers().is_empty(),
        "nothing left in Proxmox: {:#?}",
        e.sim.containers()
    );
    eprintln!("namespace deletion took {took:?}");
}

#[test]
fn nodes_stay_ready_under_the_node_lifecycle_controller_and_an_operator_restart_evicts_nothing() {
    let mut e = env_watching("wl-life", &[], true);
    e.cp.apply(&e.ns, &deployment(&e.ns, "web", 2, ""));
    let before = wait_running(&e, &e.ns, "web", 2);
    let uids = |ps: &[Value]| {
        let mut u: Vec<String> = ps
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        u.sort();
        u
    };
    let vmids: Vec<Value> = pod_containers(&e).iter().map(|c| c["vmid"].clone()).collect();
    // past the controller's 40 s grace period with the operator's default renewals
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        for pve in ["pve1", "pve2", "pve3"] {
            let n = node(&e, pve).unwrap();
            assert_eq!(node_ready(&n), "True", "{n:#}");
            let taints = n["spec"]["taints"].to_string();
            assert!(!taints.contains("node.kubernetes.io/unreachable"), "{taints}");
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    // a restart (as at an upgrade or a leader change) takes over what runs
    e.op.kill();
    std::thread::sleep(Duration::from_secs(10));
    e.op.restart();
    std::thread::sleep(Duration::from_secs(30));
    let after = wait_running(&e, &e.ns, "web", 2);
    assert_eq!(uids(&after), uids(&before), "no Pod was evicted or replaced");
    let now: Vec<Value> = pod_containers(&e).iter().map(|c| c["vmid"].clone()).collect();
    assert_eq!(now.len(), vmids.len());
    for v in &vmids {
        assert!(now.contains(v), "container {v} kept");
    }
    for pve in ["pve1", "pve2", "pve3"] {
        assert_eq!(node_ready(&node(&e, pve).unwrap()), "True");
    }
    e.cp.kubectl_ok(&["delete", "deployment", "web", "-n", &e.ns]);
    wait_pod_containers(&e, 0);
}
