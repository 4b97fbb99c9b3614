//! `kubectl logs` of Pods on virtual nodes shows what the application printed: the operator
//! attaches to each Pod container's console (termproxy + vncwebsocket) and keeps the lines.
//! A real kube-apiserver, the Proxmox simulator (its `ghcr.io/example/counter` fixture app
//! prints numbered lines) and the operator binary with `--virtual-nodes`.

mod common;
use common::*;
use serde_json::Value;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(90);

struct Env {
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    _op: Operator,
    /// The kubelet endpoint's port.
    kubelet_port: u16,
}

/// A namespace (its ServiceAccount made by the controller-manager), its cluster serving every
/// namespace's Pods on `virtualNodes`, and an operator running virtual nodes with
/// the tests' short renewals.
fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = virtual_node_cluster(cp, &ns, r#"{"namespaces":"All"}"#);
    let kubelet_port = free_port();
    let flags = virtual_node_flags(kubelet_port);
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let op = Operator::start_with(cp, &ns, &args);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    Env {
        cp,
        ns,
        sim,
        _op: op,
        kubelet_port,
    }
}

fn pod(e: &Env, name: &str) -> Value {
    get_json(e.cp, &e.ns, "pod", name).unwrap_or(Value::Null)
}

fn logs(e: &Env, extra: &[&str]) -> String {
    let mut args = vec!["logs", "-n", &e.ns, "counter"];
    args.extend_from_slice(extra);
    e.cp.kubectl_ok(&args)
}

/// The app's lines: (pid, line number).
fn parsed(out: &str) -> Vec<(u64, u64)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.split("counter pid ").nth(1)?;
            let (pid, n) = rest.split_once(": line ")?;
            Some((pid.parse().ok()?, n.trim().parse().ok()?))
        })
        .collect()
}

/// `kubectl logs -f`, its lines sent to the receiver as they come.
fn follow(e: &Env) -> (std::process::Child, Receiver<String>) {
    let mut child = std::process::Command::new("kubectl")
        .args(["logs", "-f", "-n", &e.ns, "counter"])
        .env("KUBECONFIG", &e.cp.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

#[test]
fn kubectl_logs_shows_what_the_app_printed_follows_new_lines_and_previous_shows_the_run_before_a_restart() {
    let e = env("vn-logs");
    let n1 = wait_for("Node pve1", T, || {
        let n = format!("{}-pve1", e.ns);
        e.cp.kubectl(&["get", "node", &n]).status.success().then_some(n)
    });
    e.cp.apply(
        &e.ns,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: counter}}\nspec:\n  nodeName: {n1}\n  tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n  containers:\n  - name: counter\n    image: ghcr.io/example/counter:1.0\n    env: [{{name: COUNTER_INTERVAL_MS, value: \"300\"}}]\n"
        ),
    );
    wait_for("Pod counter Running", T, || {
        (pod(&e, "counter")["status"]["phase"] == "Running").then_some(())
    });
    // the app's own lines, not Proxmox task logs
    let first = wait_for("the app's third line in kubectl logs", T, || {
        let out = logs(&e, &[]);
        (parsed(&out).len() >= 3).then_some(out)
    });
    assert!(!first.contains("[proxmox task"), "{first}");
    let lines = parsed(&first);
    let pid1 = lines[0].0;
    assert!(lines.iter().all(|(p, _)| *p == pid1), "{first}");
    assert!(
        lines.windows(2).all(|w| w[1].1 == w[0].1 + 1),
        "numbered in order: {first}"
    );
    // --tail, --timestamps, --limit-bytes, --since
    assert_eq!(logs(&e, &["--tail=2"]).lines().count(), 2);
    let stamped = logs(&e, &["--timestamps", "--tail=1"]);
    let (time, text) = stamped.trim_end().split_once(' ').unwrap();
    assert!(
        time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'),
        "{stamped}"
    );
    assert!(text.starts_with("counter pid "), "{stamped}");
    assert_eq!(logs(&e, &["--limit-bytes=10"]), "counter pi");
    assert!(parsed(&logs(&e, &["--since=1h"])).len() >= 3);
    std::thread::sleep(Duration::from_secs(2));
    let recent = parsed(&logs(&e, &["--since=1s"]));
    assert!(
        !recent.is_empty() && recent.len() < parsed(&logs(&e, &[])).len(),
        "{recent:?}"
    );
    // -f: new lines as the app prints them
    let (mut f, rx) = follow(&e);
    let last_seen = parsed(&logs(&e, &[])).last().unwrap().1;
    let newer = wait_for("a new line in kubectl logs -f", T, || {
        let l = rx.recv_timeout(Duration::from_millis(200)).ok()?;
        parsed(&l).first().copied().filter(|(_, n)| *n > last_seen + 1)
    });
    assert_eq!(newer.0, pid1);
    // the app's process ends; the Pod's container is started again (restartPolicy Always)
    let vmid = get_json(e.cp, &e.ns, "lxc", "pod-counter").unwrap()["status"]["vmid"]
        .as_u64()
        .unwrap();
    e.sim.call("POST", &format!("/_sim/containers/{vmid}/exit"), &[]);
    // -f ends with the run, as a kubelet's does when the container exits
    let ended = Instant::now();
    while f.try_wait().unwrap().is_none() && ended.elapsed() < T {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        f.try_wait().unwrap().is_some(),
        "kubectl logs -f ends when the container stops"
    );
    wait_for("Pod counter restarted", T, || {
        (pod(&e, "counter")["status"]["containerStatuses"][0]["restartCount"] == 1).then_some(())
    });
    // the operator attaches to the new run as soon as it starts
    let now = wait_for("the new run's lines", T, || {
        let l = parsed(&logs(&e, &[]));
        (l.len() >= 2 && l[0].0 != pid1).then_some(l)
    });
    let pid2 = now[0].0;
    assert!(now.iter().all(|(p, _)| *p == pid2), "only the current run: {now:?}");
    assert!(now[0].1 <= 2, "the new run from its start: {now:?}");
    let previous = parsed(&logs(&e, &["--previous"]));
    assert!(previous.len() >= 3, "{previous:?}");
    assert!(
        previous.iter().all(|(p, _)| *p == pid1),
        "--previous is the run before: {previous:?}"
    );
    // one console per run: two starts, two termproxies (the stopped container is watched with
    // status reads, not consoles)
    let stats = e.sim.call("GET", "/_sim/stats", &[]);
    let requests = &stats["requests"];
    eprintln!(
        "termproxy {} vncwebsocket {} status/current {}",
        requests["POST /nodes/{node}/lxc/{vmid}/termproxy"],
        requests["GET /nodes/{node}/lxc/{vmid}/vncwebsocket"],
        requests["GET /nodes/{node}/lxc/{vmid}/status/current"]
    );
    assert_eq!(requests["POST /nodes/{node}/lxc/{vmid}/termproxy"], 2, "{requests}");
    // exec and port-forward say why not, in kubectl and at the kubelet endpoint
    let exec = e.cp.kubectl(&["exec", "-n", &e.ns, "counter", "--", "true"]);
    let why = String::from_utf8_lossy(&exec.stderr);
    assert!(
        !exec.status.success() && why.contains("not supported on Proxmox virtual nodes"),
        "{why}"
    );
    for op in ["exec", "portForward"] {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-X", "POST", "-w", " %{http_code}"])
            .arg(format!(
                "https://127.0.0.1:{}/{op}/{}/counter/counter",
                e.kubelet_port, e.ns
            ))
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains("is not supported on Proxmox virtual nodes") && body.ends_with(" 501"),
            "{body}"
        );
    }
}

#[test]
fn kubectl_attach_reaches_the_console_and_what_is_typed_comes_back() {
    let e = env("vn-attach");
    let n1 = wait_for("Node pve1", T, || {
        let n = format!("{}-pve1", e.ns);
        e.cp.kubectl(&["get", "node", &n]).status.success().then_some(n)
    });
    e.cp.apply(
        &e.ns,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: counter}}\nspec:\n  nodeName: {n1}\n  tolerations: [{{key: pve.lxc.dev/virtual-node, operator: Exists}}]\n  containers:\n  - name: counter\n    image: ghcr.io/example/counter:1.0\n    stdin: true\n    env: [{{name: COUNTER_INTERVAL_MS, value: \"300\"}}]\n"
        ),
    );
    wait_for("Pod counter Running", T, || {
        (pod(&e, "counter")["status"]["phase"] == "Running").then_some(())
    });
    // kubectl 1.32 asks the 1.20 apiserver for a websocket, proxied as it is to our endpoint
    let mut child = std::process::Command::new("kubectl")
        .args(["attach", "-i", "-n", &e.ns, "counter"])
        .env("KUBECONFIG", &e.cp.kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let (mut seen_app, mut seen_echo) = (false, false);
    let start = Instant::now();
    while !(seen_app && seen_echo) && start.elapsed() < Duration::from_secs(60) {
        if seen_app {
            use std::io::Write;
            let _ = writeln!(stdin, "typed-into-the-console");
        }
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            seen_app |= l.contains("counter pid ");
            seen_echo |= l.contains("typed-into-the-console");
        }
    }
    let _ = child.kill();
    let err = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(
        seen_app && seen_echo,
        "app lines {seen_app}, echo {seen_echo}; kubectl said {err:?}"
    );
}
