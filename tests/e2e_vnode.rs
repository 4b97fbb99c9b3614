//! Virtual nodes end to end: Pods on Proxmox through a real control plane (kube-apiserver,
//! kube-controller-manager, kube-scheduler; no kubelet), the Proxmox simulator and the operator
//! binary run with `--virtual-nodes`. Each test has its own namespace, simulator, operator and
//! Nodes. Pods get the ServiceAccount token volume the apiserver's admission adds, as anywhere.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    op: Operator,
    /// The kubelet endpoint's port.
    kubelet_port: String,
}

/// A namespace (its `default` ServiceAccount made by the controller-manager), its cluster with
/// `virtualNodes`, and an operator running virtual nodes.
fn env(prefix: &str) -> Env {
    env_with(prefix, &[])
}

/// [`env`] with more operator flags.
fn env_with(prefix: &str, extra: &[&str]) -> Env {
    env_spec(prefix, r#"{"namespaces":"All"}"#, extra)
}

/// [`env`] with the cluster's `spec.virtualNodes` as JSON and more operator flags.
fn env_spec(prefix: &str, virtual_nodes: &str, extra: &[&str]) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = virtual_node_cluster(cp, &ns, virtual_nodes);
    let port = free_port();
    let mut args_owned = virtual_node_flags(port);
    args_owned.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args_owned.iter().map(String::as_str).collect();
    let op = Operator::start_with(cp, &ns, &args);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    Env {
        cp,
        ns,
        sim,
        op,
        kubelet_port: port.to_string(),
    }
}

fn node(e: &Env, pve: &str) -> Option<Value> {
    let out = e.cp.kubectl(&["get", "node", &format!("{}-{pve}", e.ns), "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The Node of Proxmox node pve1, once it is registered.
fn node1(e: &Env) -> String {
    wait_for("Node pve1", T, || node(e, "pve1"));
    format!("{}-pve1", e.ns)
}

/// The test apiserver's admin token (`system:masters`).
fn admin_token(e: &Env) -> String {
    let t =
        e.cp.kubectl_ok(&["config", "view", "--raw", "-o", "jsonpath={.users[0].user.token}"]);
    t.trim().to_string()
}

fn node_ready(n: &Value) -> (String, String) {
    let c = n["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        c["status"].as_str().unwrap_or_default().to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
    )
}

fn pod(e: &Env, name: &str) -> Value {
    get_json(e.cp, &e.ns, "pod", name).unwrap_or(Value::Null)
}

/// Waits until Pod `name` is as `ok` says (`what` names it in the timeout message).
fn wait_pod(e: &Env, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("Pod {name} {what}"), T, || {
        Some(pod(e, name)).filter(|p| ok(p))
    })
}

/// `kubectl get pod NAME -o wide` without the header, as its columns.
fn wide(e: &Env, name: &str) -> Vec<String> {
    let out =
        e.cp.kubectl_ok(&["get", "pod", name, "-n", &e.ns, "-o", "wide", "--no-headers"]);
    out.split_whitespace().map(str::to_string).collect()
}

fn pod_yaml(name: &str, node: Option<&str>, extra: &str) -> String {
    let node = node.map(|n| format!("  nodeName: {n}\n")).unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{node}  tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n{extra}"
    )
}

fn vmid_of(e: &Env, pod_name: &str) -> u64 {
    let c = get_json(e.cp, &e.ns, "lxc", &format!("pod-{pod_name}")).expect("the Pod's LxcContainer");
    c["status"]["vmid"].as_u64().expect("vmid")
}

#[test]
fn virtual_nodes_follow_the_proxmox_nodes_renew_their_leases_and_go_with_their_cluster() {
    let e = env("vn-nodes");
    let n = wait_for("Node <ns>-pve1 Ready", T, || {
        node(&e, "pve1").filter(|n| node_ready(n).0 == "True")
    });
    assert_eq!(node_ready(&n).1, "ProxmoxNodeOnline");
    // capacity from the simulator's node; the taint keeps ordinary Pods away
    let sim_node = &e.sim.call("GET", "/nodes/pve1/status", &[])["data"];
    assert_eq!(
        n["status"]["capacity"]["cpu"].as_str().unwrap(),
        sim_node["cpuinfo"]["cpus"].to_string()
    );
    assert_eq!(
        n["status"]["capacity"]["memory"].as_str().unwrap(),
        sim_node["memory"]["total"].to_string()
    );
    assert_eq!(n["spec"]["taints"][0]["key"], "pve.lxc.dev/virtual-node");
    assert_eq!(n["metadata"]["labels"]["pve.lxc.dev/cluster"], e.ns.as_str());
    assert!(node(&e, "pve2").is_some() && node(&e, "pve3").is_some());
    // the Lease renews
    let lease = |e: &Env| {
        let l = e.cp.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &format!("{}-pve1", e.ns),
            "-o",
            "json",
        ]);
        serde_json::from_str::<Value>(&l).unwrap()["spec"]["renewTime"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let first = lease(&e);
    wait_for("the Lease's renewTime to advance", T, || {
        (lease(&e) != first).then_some(())
    });
    // a node going offline makes its Node NotReady
    e.sim.call("POST", "/_sim/nodes/pve2/offline", &[]);
    let n2 = wait_for("Node pve2 NotReady", T, || {
        node(&e, "pve2").filter(|n| node_ready(n).0 == "False")
    });
    assert_eq!(node_ready(&n2).1, "ProxmoxNodeOffline");
    // gone with the cluster
    e.cp.kubectl_ok(&["delete", "proxmoxcluster", &e.ns, "--wait=false"]);
    wait_for("the Nodes to be gone", T, || {
        (node(&e, "pve1").is_none() && node(&e, "pve2").is_none() && node(&e, "pve3").is_none()).then_some(())
    });
    let leases =
        e.cp.kubectl_ok(&["get", "lease", "-n", "kube-node-lease", "-o", "name"]);
    assert!(!leases.contains(&format!("{}-pve", e.ns)), "{leases}");
}

#[test]
fn a_pod_runs_as_a_container_reads_running_in_kubectl_and_is_deleted_within_its_grace_period() {
    let ui_port = free_port();
    let e = env_with("vn-pod", &["--ui-addr", &format!("127.0.0.1:{ui_port}")]);
    let n1 = node1(&e);
    e.cp.apply(
        &e.ns,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: s3cret-pw}\n",
    );
    e.cp.apply(
        &e.ns,
        &pod_yaml(
            "web",
            Some(&n1),
            "  containers:\n  - name: web\n    image: nginx:1.27\n    resources: {limits: {cpu: 500m, memory: 256Mi}}\n    env:\n    - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}\n    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n",
        ),
    );
    let p = wait_pod(&e, "web", "Running with an IP", |p| {
        p["status"]["phase"] == "Running" && p["status"]["podIP"].is_string()
    });
    let ip = p["status"]["podIP"].as_str().unwrap().to_string();
    let cols = wide(&e, "web");
    assert_eq!(&cols[1..4], ["1/1", "Running", "0"], "{cols:?}");
    assert_eq!(cols[5], ip, "{cols:?}");
    assert_eq!(cols[6], n1, "{cols:?}");
    // the container in Proxmox: the image, the env (Secret and downward API), the limits
    let vmid = vmid_of(&e, "web");
    let config = &e.sim.call("GET", &format!("/nodes/pve1/lxc/{vmid}/config"), &[])["data"];
    let env = config["env"].as_str().unwrap_or_default();
    assert!(
        env.contains("DB_PASSWORD=s3cret-pw") && env.contains("POD_NAME=web"),
        "{env:?}"
    );
    assert_eq!(config["memory"], 256);
    assert_eq!(config["cpulimit"].to_string().trim_matches('"'), "0.5");
    // the Secret's value is not in the Pod's status or Events
    let events = e.cp.kubectl_ok(&["get", "events", "-n", &e.ns, "-o", "json"]);
    assert!(!events.contains("s3cret-pw") && !p.to_string().contains("s3cret-pw"));
    // kubectl logs goes through the apiserver to the operator's kubelet endpoint
    let logs = e.cp.kubectl_ok(&["logs", "-n", &e.ns, "web"]);
    assert!(logs.contains("[proxmox task vzstart"), "{logs}");
    let tail = e.cp.kubectl_ok(&["logs", "-n", &e.ns, "web", "--tail=1"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    // the UI's Pods page and log viewer, through the signed-in user's token
    let ui = common::ui::UiClient::new(&common::ui::wait_ui(ui_port));
    ui.login(&admin_token(&e), &e.ns);
    let (code, page) = ui.get(&format!("/ui/pods?ns={}", e.ns));
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(">web<") && page.contains(">Running<") && page.contains(&ip),
        "{page}"
    );
    let (code, log) = ui.get(&format!("/ui/pods/{}/web/log?tail=50", e.ns));
    assert_eq!(code, 200, "{log}");
    assert!(log.contains("[proxmox task vzstart"), "{log}");
    let exec = e.cp.kubectl(&["exec", "-n", &e.ns, "web", "--", "true"]);
    assert!(!exec.status.success());
    // delete returns (the default grace period is 30 s) and the container is gone
    let started = std::time::Instant::now();
    e.cp.kubectl_ok(&["delete", "pod", "web", "-n", &e.ns, "--timeout=60s"]);
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(e.sim.container(vmid).is_none(), "CT {vmid} is still in Proxmox");
}

#[test]
fn kubectl_run_with_the_operators_scheduler_name_is_bound_and_runs() {
    let e = env("vn-run");
    node1(&e);
    e.cp.kubectl_ok(&[
        "run",
        "hello",
        "-n",
        &e.ns,
        "--image=nginx:1.27",
        r#"--overrides={"apiVersion":"v1","spec":{"schedulerName":"proxmox-lxc"}}"#,
    ]);
    let p = wait_pod(&e, "hello", "Running", |p| p["status"]["phase"] == "Running");
    let node = p["spec"]["nodeName"].as_str().unwrap();
    assert!(node.starts_with(&format!("{}-pve", e.ns)), "{node}");
    let cols = wide(&e, "hello");
    assert_eq!(&cols[1..4], ["1/1", "Running", "0"], "{cols:?}");
    let events = e.cp.kubectl_ok(&["get", "events", "-n", &e.ns]);
    assert!(
        events.contains("Scheduled") && events.contains("Successfully assigned"),
        "{events}"
    );
}

#[test]
fn pods_that_cannot_run_say_why_and_an_exited_app_is_restarted_with_the_count_shown() {
    let e = env("vn-fail");
    let n1 = node1(&e);
    // two containers: Pending with the kubelet's waiting reason and a message naming them,
    // one Event, nothing made in Proxmox (never Failed: a controller would replace it in a loop)
    e.cp.apply(
        &e.ns,
        &pod_yaml(
            "two",
            Some(&n1),
            "  containers:\n  - {name: a, image: nginx:1.27}\n  - {name: b, image: nginx:1.27}\n",
        ),
    );
    let p = wait_pod(&e, "two", "CreateContainerConfigError", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    assert_eq!(p["status"]["phase"], "Pending");
    let message = p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("MultipleContainersUnsupported:") && message.contains("a, b"),
        "{message}"
    );
    assert_eq!(wide(&e, "two")[2], "CreateContainerConfigError");
    assert!(get_json(e.cp, &e.ns, "lxc", "pod-two").is_none());
    // an unknown image: ErrImagePull with Proxmox's text, and nothing half-made
    e.cp.apply(
        &e.ns,
        &pod_yaml(
            "ghost",
            Some(&n1),
            "  containers:\n  - {name: ghost, image: docker.io/nobody/none:1}\n",
        ),
    );
    let waiting = wait_for("Pod ghost ErrImagePull", T, || {
        let p = pod(&e, "ghost");
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        matches!(w["reason"].as_str(), Some("ErrImagePull" | "ImagePullBackOff")).then_some(w)
    });
    assert!(
        waiting["message"].as_str().unwrap_or_default().contains("none"),
        "{waiting}"
    );
    let cols = wide(&e, "ghost");
    assert!(
        matches!(cols[2].as_str(), "ErrImagePull" | "ImagePullBackOff"),
        "{cols:?}"
    );
    // an app whose process exits is started again (restartPolicy Always) and counted
    e.cp.apply(
        &e.ns,
        &pod_yaml("app", Some(&n1), "  containers:\n  - {name: app, image: nginx:1.27}\n"),
    );
    wait_for("Pod app Running", T, || {
        (pod(&e, "app")["status"]["phase"] == "Running").then_some(())
    });
    let vmid = vmid_of(&e, "app");
    let mut follow = std::process::Command::new("kubectl")
        .args(["logs", "-f", "-n", &e.ns, "app"])
        .env("KUBECONFIG", &e.cp.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let starts = |rx: &std::sync::mpsc::Receiver<String>, want: usize| {
        let mut seen = 0;
        let deadline = std::time::Instant::now() + T;
        while seen < want && std::time::Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                seen += usize::from(l.contains("[proxmox task vzstart"));
            }
        }
        seen
    };
    assert_eq!(starts(&rx, 1), 1, "the first start in the followed log");
    e.sim.call("POST", &format!("/_sim/containers/{vmid}/exit"), &[]);
    // while the start runs the container waits (READY 0/1); running again, it counts one restart
    let p = wait_pod(&e, "app", "restarted once", |p| {
        let c = &p["status"]["containerStatuses"][0];
        c["restartCount"] == 1 && c["ready"] == true && c["state"]["running"].is_object()
    });
    assert_eq!(p["status"]["phase"], "Running");
    // a second exit (what the first restart printed is read from the follow afterwards): a
    // kubelet's back-off, 10 s from the exit, shown as CrashLoopBackOff, then a restart
    let r = e.sim.call("POST", &format!("/_sim/containers/{vmid}/exit"), &[]);
    assert_eq!(r["ok"], true, "the app runs again when the Pod says so: {r}");
    assert_eq!(starts(&rx, 1), 1, "kubectl logs -f shows the restart's start task");
    let _ = follow.kill();
    let _ = follow.wait();
    let backing_off = wait_for("STATUS CrashLoopBackOff", T, || {
        let w = wide(&e, "app");
        (w[2] == "CrashLoopBackOff").then_some(w)
    });
    assert_eq!(
        backing_off[3], "1",
        "RESTARTS counts the first restart: {backing_off:?}"
    );
    wait_pod(&e, "app", "restarted twice", |p| {
        p["status"]["containerStatuses"][0]["restartCount"] == 2 && p["status"]["containerStatuses"][0]["ready"] == true
    });
}

/// `GET https://127.0.0.1:PORT/PATH` (certificate not checked), with a bearer token when given:
/// the status code.
fn kubelet_get(e: &Env, path: &str, token: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{}{path}", e.kubelet_port))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn with_a_client_ca_pod_logs_need_its_certificate_or_a_token_allowed_nodes_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let key = dir.path().join("ca.key");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-kubelet-client-ca",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let e = env_with("vn-auth", &["--kubelet-client-ca", ca.to_str().unwrap()]);
    let n1 = node1(&e);
    e.cp.apply(
        &e.ns,
        &pod_yaml("web", Some(&n1), "  containers:\n  - {name: web, image: nginx:1.27}\n"),
    );
    wait_pod(&e, "web", "Running", |p| p["status"]["phase"] == "Running");
    let path = format!("/containerLogs/{}/web/web", e.ns);
    assert_eq!(kubelet_get(&e, &path, None), "401", "no certificate, no token");
    assert_eq!(
        kubelet_get(&e, &path, Some("not-a-token")),
        "401",
        "a token the apiserver does not know"
    );
    let viewer = service_account_token(e.cp, &e.ns, "no-node-rights");
    assert_eq!(
        kubelet_get(&e, &path, Some(&viewer)),
        "403",
        "a valid token without nodes/proxy"
    );
    assert_eq!(
        kubelet_get(&e, &path, Some(&admin_token(&e))),
        "200",
        "a token allowed nodes/proxy"
    );
    // nothing is told before the caller is allowed: a Pod that does not exist answers as one
    // that does (no oracle of Pods and container names in other namespaces)
    let nowhere = format!("/containerLogs/{}/no-such-pod/web", e.ns);
    assert_eq!(kubelet_get(&e, &nowhere, Some("not-a-token")), "401");
    assert_eq!(kubelet_get(&e, &nowhere, Some(&viewer)), "403");
    assert_eq!(kubelet_get(&e, &nowhere, Some(&admin_token(&e))), "404");
    // this apiserver shows no client certificate: the endpoint refuses it too
    let logs = e.cp.kubectl(&["logs", "-n", &e.ns, "web"]);
    assert!(
        !logs.status.success(),
        "an apiserver without the CA's certificate was served"
    );
}

#[test]
fn a_restarted_operator_adopts_running_pods_and_removes_the_containers_of_pods_deleted_meanwhile() {
    let mut e = env("vn-adopt");
    let n1 = node1(&e);
    for name in ["keep", "gone"] {
        e.cp.apply(
            &e.ns,
            &pod_yaml(
                name,
                Some(&n1),
                &format!("  containers:\n  - {{name: {name}, image: nginx:1.27}}\n"),
            ),
        );
    }
    for name in ["keep", "gone"] {
        wait_pod(&e, name, "Running", |p| p["status"]["phase"] == "Running");
    }
    let (keep, gone) = (vmid_of(&e, "keep"), vmid_of(&e, "gone"));
    let creates = || {
        let tasks = e.sim.call("GET", "/_sim/tasks", &[]);
        tasks
            .as_array()
            .map_or(0, |t| t.iter().filter(|t| t["type"] == "vzcreate").count())
    };
    let before = creates();
    e.op.kill();
    // force-deleted while the operator is down (no kubelet confirms it): the garbage collector
    // deletes the child LxcContainer, whose finalizer waits for the operator
    e.cp.kubectl_ok(&["delete", "pod", "gone", "-n", &e.ns, "--grace-period=0", "--force"]);
    e.op.restart();
    wait_for("the deleted Pod's container to be destroyed", T, || {
        e.sim.container(gone).is_none().then_some(())
    });
    // the object goes right after its container (its finalizer is released next)
    wait_for("the deleted Pod's LxcContainer to go", T, || {
        get_json(e.cp, &e.ns, "lxc", "pod-gone").is_none().then_some(())
    });
    // the other Pod is taken over as it is: same container, no second create
    let p = wait_pod(&e, "keep", "Running after the restart", |p| {
        p["status"]["phase"] == "Running"
    });
    assert_eq!(vmid_of(&e, "keep"), keep);
    assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 0);
    assert!(e.sim.container(keep).is_some_and(|c| c["status"] == "running"));
    assert_eq!(creates(), before, "no container was created again");
}

/// What the node-lifecycle controller does to the Pods of a Node whose Lease stopped (after the
/// 300 s `unreachable` toleration) and what `kubectl drain` does: it evicts them through the
/// eviction API. Made here by hand (waiting 340 s for the controller is too long for a test):
/// the operator carries it out like any deletion, and the container is destroyed. This is the
/// risk the README's toleration advice avoids.
#[test]
fn an_evicted_pod_has_its_container_destroyed() {
    let e = env("vn-evict");
    let n1 = node1(&e);
    e.cp.apply(
        &e.ns,
        &pod_yaml("web", Some(&n1), "  containers:\n  - {name: web, image: nginx:1.27}\n"),
    );
    wait_pod(&e, "web", "Running", |p| p["status"]["phase"] == "Running");
    let vmid = vmid_of(&e, "web");
    // policy/v1beta1: the test apiserver is v1.20 (policy/v1 came with 1.22)
    let eviction = format!(
        r#"{{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{{"name":"web","namespace":"{}"}}}}"#,
        e.ns
    );
    let path = format!("/api/v1/namespaces/{}/pods/web/eviction", e.ns);
    let out =
        e.cp.kubectl_stdin(&["create", "--raw", &path, "-f", "-"], Some(&eviction));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the evicted Pod to be gone", T, || {
        get_json(e.cp, &e.ns, "pod", "web").is_none().then_some(())
    });
    assert!(e.sim.container(vmid).is_none(), "CT {vmid} is still in Proxmox");
}

/// The container state's waiting reason and message of Pod `name`, once it has one.
fn wait_waiting(e: &Env, name: &str) -> (String, String) {
    let p = wait_pod(e, name, "waiting with a reason", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    });
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(p["status"]["phase"], "Pending");
    (
        w["reason"].as_str().unwrap_or_default().to_string(),
        w["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn pods_run_only_in_namespaces_granted_them_and_setting_node_name_does_not_bypass_the_grant() {
    // the cluster's default: only namespaces of a ProxmoxTenant with privileges.pods
    let e = env_spec("vn-grant", "{}", &[]);
    let n1 = node1(&e);
    let web = |name: &str| {
        pod_yaml(
            name,
            Some(&n1),
            &format!("  containers:\n  - {{name: {name}, image: nginx:1.27}}\n"),
        )
    };
    // no tenant covers the namespace (an Open cluster): nodeName set directly is refused too
    e.cp.apply(&e.ns, &web("direct"));
    let (_, message) = wait_waiting(&e, "direct");
    assert!(
        message.starts_with("NamespaceNotServed:") && message.contains("virtualNodes.namespaces: Tenants"),
        "{message}"
    );
    // a tenant without the grant
    let tenant = |pods: bool| {
        format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxTenant\nmetadata: {{name: {ns}}}\nspec:\n  clusters: [{ns}]\n  namespaces: [{ns}]\n  imageRegistries: [docker.io]\n  privileges: {{pods: {pods}}}\n",
            ns = e.ns
        )
    };
    e.cp.apply(&e.ns, &tenant(false));
    std::thread::sleep(Duration::from_secs(2));
    e.cp.apply(&e.ns, &web("ungranted"));
    let (_, message) = wait_waiting(&e, "ungranted");
    assert!(message.contains("spec.privileges.pods is false"), "{message}");
    assert!(e.sim.containers().is_empty(), "nothing reached Proxmox");
    assert!(get_json(e.cp, &e.ns, "lxc", "pod-direct").is_none());
    // the grant: a new Pod runs, within the tenant's limits
    e.cp.apply(&e.ns, &tenant(true));
    std::thread::sleep(Duration::from_secs(2));
    e.cp.apply(&e.ns, &web("granted"));
    wait_pod(&e, "granted", "Running", |p| p["status"]["phase"] == "Running");
    // the operator's scheduler binds only where the namespace is served
    e.cp.kubectl_ok(&[
        "patch",
        "proxmoxtenant",
        &e.ns,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"privileges":{"pods":false}}}"#,
    ]);
    std::thread::sleep(Duration::from_secs(2));
    e.cp.kubectl_ok(&[
        "run",
        "unbound",
        "-n",
        &e.ns,
        "--image=nginx:1.27",
        r#"--overrides={"apiVersion":"v1","spec":{"schedulerName":"proxmox-lxc"}}"#,
    ]);
    wait_for("a FailedScheduling Event naming the grant", T, || {
        let ev = e.cp.kubectl_ok(&[
            "get",
            "events",
            "-n",
            &e.ns,
            "--field-selector",
            "involvedObject.name=unbound",
        ]);
        ev.contains("privileges.pods").then_some(())
    });
    assert!(pod(&e, "unbound")["spec"]["nodeName"].is_null());
    // a running Pod is not destroyed when the grant is taken back
    assert_eq!(pod(&e, "granted")["status"]["phase"], "Running");
}

#[test]
fn a_pod_over_its_tenants_memory_quota_stays_pending_saying_why_and_node_name_does_not_bypass_it() {
    let e = env_spec("vn-quota", "{}", &[]);
    let n1 = node1(&e);
    e.cp.apply(
        &e.ns,
        &format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxTenant\nmetadata: {{name: {ns}}}\nspec:\n  clusters: [{ns}]\n  namespaces: [{ns}]\n  imageRegistries: [docker.io]\n  privileges: {{pods: true}}\n  quota: {{memory: 1Gi}}\n",
            ns = e.ns
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    let web = |name: &str, memory: &str| {
        pod_yaml(
            name,
            Some(&n1),
            &format!(
                "  containers:\n  - {{name: {name}, image: nginx:1.27, resources: {{limits: {{memory: {memory}}}}}}}\n"
            ),
        )
    };
    // within the quota: runs
    e.cp.apply(&e.ns, &web("fits", "512Mi"));
    wait_pod(&e, "fits", "Running", |p| p["status"]["phase"] == "Running");
    // past it, with nodeName set directly (no scheduler asked): Pending, saying why
    e.cp.apply(&e.ns, &web("big", "768Mi"));
    let p = wait_pod(&e, "big", "waiting on the quota", |p| {
        p["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("quota for memory"))
    });
    assert_eq!(p["status"]["phase"], "Pending", "{p:#}");
    let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(w["reason"], "CreateContainerError", "{w}");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("1280 MiB asked in all, 1024 MiB allowed"),
        "{w}"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        e.sim.containers().len(),
        1,
        "only the Pod within the quota reached Proxmox"
    );
    assert_eq!(pod(&e, "big")["status"]["phase"], "Pending");
    // room made: the waiting Pod starts
    e.cp.kubectl_ok(&["delete", "pod", "fits", "-n", &e.ns]);
    wait_pod(&e, "big", "Running", |p| p["status"]["phase"] == "Running");
    e.cp.kubectl_ok(&["delete", "pod", "big", "-n", &e.ns]);
    wait_for("nothing left in Proxmox", T, || {
        e.sim.containers().is_empty().then_some(())
    });
}

#[test]
fn a_real_node_of_the_same_name_is_never_taken_over_and_the_other_virtual_nodes_leases_renew() {
    // a Node someone else registered (a kubelet) under the name our pve2 would get
    let prefix = format!("clash{}n", std::process::id());
    let cp = ControlPlane::shared();
    cp.apply(
        "default",
        &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {prefix}pve2\n  labels: {{owner: someone-else}}\n"),
    );
    let e = env_spec(
        "vn-clash",
        &format!(r#"{{"namespaces":"All","namePrefix":"{prefix}"}}"#),
        &[],
    );
    let get = |name: &str| {
        let out = e.cp.kubectl(&["get", "node", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
    };
    for pve in ["pve1", "pve3"] {
        wait_for(&format!("our Node {pve} Ready"), T, || {
            get(&format!("{prefix}{pve}")).filter(|n| node_ready(n).0 == "True")
        });
    }
    let lease = || {
        let out = e.cp.kubectl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            &format!("{prefix}pve1"),
            "-o",
            "json",
        ]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()["spec"]["renewTime"].clone())
    };
    let first = wait_for("the Lease of pve1", T, lease);
    wait_for("the Lease of pve1 to be renewed past the clash", T, || {
        lease().filter(|t| *t != first)
    });
    let theirs = get(&format!("{prefix}pve2")).expect("the other Node is still there");
    assert_eq!(theirs["metadata"]["labels"]["owner"], "someone-else");
    assert!(
        theirs["metadata"]["labels"]["pve.lxc.dev/virtual-node"].is_null(),
        "not taken over: {theirs:#}"
    );
    let their_lease =
        e.cp.kubectl(&["get", "lease", "-n", "kube-node-lease", &format!("{prefix}pve2")]);
    assert!(!their_lease.status.success(), "no Lease is renewed in its name");
    assert!(
        e.op.log().contains("is not a virtual node of ours"),
        "the operator says why pve2 has no Node"
    );
    e.cp.kubectl_ok(&["delete", "node", &format!("{prefix}pve2")]);
}

#[test]
fn kubectl_logs_of_a_pod_whose_container_took_a_vmid_used_before_shows_none_of_the_earlier_tasks() {
    let e = env("vn-reuse");
    let n1 = node1(&e);
    let web = |name: &str| {
        pod_yaml(
            name,
            Some(&n1),
            &format!("  containers:\n  - {{name: {name}, image: nginx:1.27}}\n"),
        )
    };
    e.cp.apply(&e.ns, &web("first"));
    wait_pod(&e, "first", "Running", |p| p["status"]["phase"] == "Running");
    let vmid = vmid_of(&e, "first");
    e.cp.kubectl_ok(&["delete", "pod", "first", "-n", &e.ns, "--timeout=60s"]);
    wait_for("the first container to go", T, || {
        e.sim.container(vmid).is_none().then_some(())
    });
    // task start times have whole seconds: the next Pod's object is made in a later one
    std::thread::sleep(Duration::from_secs(2));
    e.cp.apply(&e.ns, &web("second"));
    wait_pod(&e, "second", "Running", |p| p["status"]["phase"] == "Running");
    assert_eq!(vmid_of(&e, "second"), vmid, "Proxmox handed the same vmid out again");
    let logs = e.cp.kubectl_ok(&["logs", "-n", &e.ns, "second"]);
    assert_eq!(
        logs.matches("[proxmox task vzcreate").count(),
        1,
        "only its own create: {logs}"
    );
    assert!(
        !logs.contains("vzdestroy") && !logs.contains("vzstop"),
        "none of the earlier owner's tasks: {logs}"
    );
}
