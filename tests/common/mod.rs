//! Shared helpers of the integration tests: one real control plane per test binary, `kubectl`,
//! and a namespace per test.
#![allow(dead_code)]

pub mod seed;
pub mod ui;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The repository root.
/// The Python of the project's venv (made by `tests/scripts/python-venv.sh`, which installs
/// what is missing and prints the interpreter's path last).
pub fn venv_python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("tests/scripts/python-venv.sh"))
        .output()
        .expect("run tests/scripts/python-venv.sh");
    assert!(
        out.status.success(),
        "tests/scripts/python-venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .expect("venv python path")
        .to_string()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A real control plane on loopback (etcd, kube-apiserver, kube-controller-manager,
/// kube-scheduler), started once per test binary and stopped when it exits.
///
/// With `TEST_KUBECONFIG` set, that cluster is used instead (a real cluster): nothing is started.
pub struct ControlPlane {
    /// Path of the kubeconfig with admin rights.
    pub kubeconfig: PathBuf,
    /// Whether Kubernetes' own controllers run (false: a bare apiserver, see [`Self::bare`]).
    pub controllers: bool,
    _dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use, with Kubernetes' own
    /// controllers (ServiceAccounts, garbage collector, namespace deletion, workloads, node
    /// lifecycle) and the default scheduler, as in any cluster.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| Self::start(false))
    }

    /// A bare apiserver (no controller-manager, no scheduler), for a test that must see what
    /// happens where no controller acts; the test says why it needs it.
    pub fn bare() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| Self::start(true))
    }

    fn start(bare: bool) -> ControlPlane {
        if let Ok(kc) = std::env::var("TEST_KUBECONFIG") {
            return ControlPlane {
                kubeconfig: kc.into(),
                controllers: true,
                _dir: None,
            };
        }
        let dir = tempfile::Builder::new().prefix("plo-cp-").tempdir().expect("tempdir");
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("tests/scripts/control-plane.sh"))
            .arg("start")
            .arg(dir.path())
            .arg("--watch-pid")
            .arg(std::process::id().to_string());
        if bare {
            cmd.arg("--bare");
        }
        let out = cmd.stderr(Stdio::inherit()).output().expect("run control-plane.sh");
        assert!(
            out.status.success(),
            "control plane did not start (run tests/scripts/setup.sh first)"
        );
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap());
        let cp = ControlPlane {
            kubeconfig,
            controllers: !bare,
            _dir: Some(dir),
        };
        cp.install_crds();
        cp
    }

    /// Runs `kubectl` against this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None)
    }

    /// Runs `kubectl` with `input` on its standard input.
    pub fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(input) = input {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `kubectl` and returns its standard output, panicking with its error output on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `kubectl apply -n NS -f -` of `manifest`, panicking with kubectl's error output on failure.
    #[allow(dead_code)]
    pub fn apply(&self, ns: &str, manifest: &str) {
        let out = self.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(manifest));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Applies `crds/` and waits until every CRD is Established.
    ///
    /// `--validate=false`: kubectl's client-side check rejects `x-kubernetes-validations` (CEL)
    /// on apiservers older than 1.25, which ignore the rules themselves.
    pub fn install_crds(&self) {
        let crds = repo().join("crds");
        self.kubectl_ok(&["apply", "--validate=false", "-f", crds.to_str().unwrap()]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            crds.to_str().unwrap(),
        ]);
    }

    /// Creates a fresh namespace for one test. With the controllers running, it returns once
    /// the ServiceAccount controller has made the namespace's `default` ServiceAccount and the
    /// token controller its token (as a user's `kubectl create namespace` is followed within a
    /// second), so that Pods created at once pass the ServiceAccount admission.
    pub fn namespace(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        self.kubectl_ok(&["create", "namespace", &name]);
        if self.controllers {
            wait_for(
                "the namespace's default ServiceAccount token",
                Duration::from_secs(60),
                || {
                    let out = self.kubectl(&[
                        "get",
                        "serviceaccount",
                        "default",
                        "-n",
                        &name,
                        "-o",
                        "jsonpath={.secrets[0].name}",
                    ]);
                    (out.status.success() && !out.stdout.is_empty()).then_some(())
                },
            );
        }
        name
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API token the tests give the simulator and the operator.
pub const SIM_TOKEN_ID: &str = "root@pam!operator";
/// Its secret.
pub const SIM_TOKEN_SECRET: &str = "0b6f6e21-7f0b-4c55-9a3c-5c6a1d2e3f40";

/// A `pve-sim` process on a free port, killed when dropped.
pub struct Sim {
    child: std::process::Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// SHA-256 fingerprint of its certificate, `AB:CD:...`.
    pub fingerprint: String,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// Starts the simulator with extra arguments (e.g. `--clock-speed 4`).
    pub fn start(extra: &[&str]) -> Sim {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_pve-sim"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--cert-out",
                cert.to_str().unwrap(),
            ])
            .args(["--token", &format!("{SIM_TOKEN_ID}={SIM_TOKEN_SECRET}")])
            .args(extra)
            // jitter, faults and MACs follow the run's seed unless the test names its own; the
            // n-th simulator of a test binary gets the n-th seed (two never share MACs)
            .args(if extra.contains(&"--seed") {
                vec![]
            } else {
                static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                vec![
                    "--seed".to_string(),
                    seed::seed_for(&format!("pve-sim {n}")).to_string(),
                ]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pve-sim");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .trim()
            .strip_prefix("pve-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected pve-sim output {line:?}"))
            .to_string();
        let stderr = child.stderr.take().unwrap();
        let mut fingerprint = String::new();
        for l in std::io::BufReader::new(stderr).lines() {
            let l = l.unwrap();
            if let Some(fp) = l.strip_prefix("pve-sim: certificate fingerprint ") {
                fingerprint = fp.trim().to_string();
                break;
            }
        }
        assert!(!fingerprint.is_empty(), "pve-sim printed no fingerprint");
        Sim {
            child,
            url,
            fingerprint,
            _dir: dir,
        }
    }

    /// Calls the simulator (Proxmox API or `/_sim/` admin API) with curl; returns the JSON body.
    pub fn call(&self, method: &str, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sk",
            "-X",
            method,
            "-H",
            &format!("Authorization: PVEAPIToken={SIM_TOKEN_ID}={SIM_TOKEN_SECRET}"),
        ]);
        for (k, v) in form {
            cmd.args(["--data-urlencode", &format!("{k}={v}")]);
        }
        let url = if path.starts_with("/_sim") {
            format!("{}{path}", self.url)
        } else {
            format!("{}/api2/json{path}", self.url)
        };
        let out = cmd.arg(url).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// POSTs a JSON body to the admin API (e.g. `/_sim/faults`).
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let out = Command::new("curl")
            .args([
                "-sk",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body.to_string(),
                &format!("{}{path}", self.url),
            ])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Requests counted for `"METHOD /template"` in `/_sim/stats`.
    pub fn count(&self, key: &str) -> u64 {
        self.stats()["requests"][key].as_u64().unwrap_or(0)
    }

    /// Every container in the simulator (admin API).
    pub fn containers(&self) -> Vec<serde_json::Value> {
        let v = self.call("GET", "/_sim/containers", &[]);
        v.get("data")
            .cloned()
            .unwrap_or(v)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The container with `vmid`, if it exists.
    pub fn container(&self, vmid: u64) -> Option<serde_json::Value> {
        self.containers().into_iter().find(|c| c["vmid"].as_u64() == Some(vmid))
    }

    /// Request counters (`/_sim/stats`).
    pub fn stats(&self) -> serde_json::Value {
        self.call("GET", "/_sim/stats", &[])
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An operator process watching one namespace, killed when dropped.
pub struct Operator {
    child: Option<std::process::Child>,
    kubeconfig: PathBuf,
    namespace: String,
    extra: Vec<String>,
    /// `RUST_LOG` of the process (default: env `OPERATOR_LOG`, else info).
    pub log_filter: Option<String>,
    /// Port of its health/metrics listener.
    pub http_port: u16,
    log: PathBuf,
    /// Whether the tests' short timings are passed (task poll, drift check, credentials
    /// recheck); without them the operator runs with its production defaults.
    test_timings: bool,
}

impl Operator {
    /// Starts `proxmox-lxc-operator run --namespace NS` with short timings for tests.
    pub fn start(cp: &ControlPlane, namespace: &str) -> Operator {
        Self::start_with(cp, namespace, &[])
    }

    /// Starts it with extra command-line arguments; each process logs to its own file.
    pub fn start_with(cp: &ControlPlane, namespace: &str, extra: &[&str]) -> Operator {
        Self::start_with_kubeconfig(&cp.kubeconfig, namespace, extra)
    }

    /// Starts it against the apiserver of `kubeconfig`.
    #[allow(dead_code)]
    pub fn start_with_kubeconfig(kubeconfig: &Path, namespace: &str, extra: &[&str]) -> Operator {
        let mut op = Self::unstarted(kubeconfig, namespace, extra, true);
        op.spawn();
        op
    }

    /// Starts it with its production defaults (none of the tests' short timings), plus `extra`.
    #[allow(dead_code)]
    pub fn start_with_defaults(cp: &ControlPlane, namespace: &str, extra: &[&str]) -> Operator {
        let mut op = Self::unstarted(&cp.kubeconfig, namespace, extra, false);
        op.spawn();
        op
    }

    fn unstarted(kubeconfig: &Path, namespace: &str, extra: &[&str], test_timings: bool) -> Operator {
        let port = free_port();
        let home = namespace.split(',').next().unwrap_or_default();
        let log = std::env::temp_dir().join(format!("plo-operator-{home}-{port}.log"));
        Operator {
            child: None,
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log_filter: None,
            http_port: port,
            log,
            test_timings,
        }
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        // PLO_OPERATOR_WRAPPER="heaptrack -o /tmp/ht" runs the operator under a profiler
        let wrapper: Vec<String> = std::env::var("PLO_OPERATOR_WRAPPER")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = Command::new(prog);
                c.args(args).arg(env!("CARGO_BIN_EXE_proxmox-lxc-operator"));
                // its own process group, so `kill` ends the operator the wrapper started too
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator")),
        };
        let child = cmd
            .args([
                "run",
                "--namespace",
                &self.namespace,
                "--http-addr",
                &format!("127.0.0.1:{}", self.http_port),
            ])
            .args(if self.test_timings {
                &[
                    "--task-poll-interval",
                    "200ms",
                    "--drift-check-interval",
                    "0s",
                    "--credentials-recheck-interval",
                    "2s",
                ][..]
            } else {
                &[][..]
            })
            .args(&self.extra)
            // each test's operator manages only its own namespace's cluster (cluster-scoped
            // objects are shared by every test on the apiserver), and reads its Secrets there
            .args(["--cluster-selector", &format!("{TEST_CLUSTER_LABEL}={}", self.home())])
            .env("POD_NAMESPACE", self.home())
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                self.log_filter
                    .clone()
                    .or_else(|| std::env::var("OPERATOR_LOG").ok())
                    .unwrap_or_else(|| "info,kube_runtime=warn".into()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start operator");
        self.child = Some(child);
    }

    /// The namespace it lives in (the first it watches): its clusters carry it as label.
    fn home(&self) -> String {
        self.namespace.split(',').next().unwrap_or_default().to_string()
    }

    /// Starts it logging at `filter` (e.g. `trace`).
    pub fn start_logging(cp: &ControlPlane, namespace: &str, filter: &str) -> Operator {
        let mut op = Self::start_with(cp, namespace, &[]);
        op.log_filter = Some(filter.to_string());
        op.restart();
        op
    }

    /// Kills the operator with SIGKILL (no cleanup at all).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            if std::env::var_os("PLO_OPERATOR_WRAPPER").is_some() {
                // the operator only: the profiler then writes out what it has and exits
                let group = c.id().to_string();
                let _ = Command::new("pkill")
                    .args(["-KILL", "-g", &group, "^proxmox-lxc"])
                    .status();
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after `kill`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Where the operator logs (kept after the test).
    pub fn log_path(&self) -> &std::path::Path {
        &self.log
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{}/metrics", self.http_port)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What most end-to-end tests start from: the binary's control plane, a fresh namespace, a
/// simulator (clock ×5) connected by a `ProxmoxCluster` named after the namespace (resync 2 s),
/// and an operator watching the namespace; the simulator and operator stop when it drops.
pub struct Env {
    /// The control plane of this test binary.
    pub cp: &'static ControlPlane,
    /// The test's namespace.
    pub ns: String,
    /// The simulator.
    pub sim: Sim,
    /// The operator process.
    pub op: Operator,
}

/// An [`Env`] in a new namespace named after `prefix`, once its cluster is Ready.
pub fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let ns = cp.namespace(prefix);
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(60));
    Env { cp, ns, sim, op }
}

/// `kubectl apply -f -` of `manifest` in `ns`; panics with kubectl's message when refused.
pub fn apply(cp: &ControlPlane, ns: &str, manifest: &str) {
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The label that ties a test's (cluster-scoped) `ProxmoxCluster`s to its operator.
pub const TEST_CLUSTER_LABEL: &str = "pve.lxc.dev/test-ns";

/// The `metadata` of the test's default `ProxmoxCluster` (cluster-scoped, so named after the
/// test's namespace, labelled for its operator, annotated as the default cluster), as JSON.
pub fn cluster_metadata(ns: &str) -> String {
    format!(
        r#"{{"name":"{ns}","labels":{{"{TEST_CLUSTER_LABEL}":"{ns}"}},"annotations":{{"pve.lxc.dev/is-default-cluster":"true"}}}}"#
    )
}

/// Creates the Secret (in `ns`, the test operator's own namespace) and the test's default
/// `ProxmoxCluster` (named `ns`), pointing at `sim` (certificate pinned by fingerprint), with a
/// short inventory interval.
pub fn connect_cluster(cp: &ControlPlane, ns: &str, sim: &Sim, resync: &str) {
    let token = format!(r#"{{"tokenId":"{SIM_TOKEN_ID}","tokenSecret":"{SIM_TOKEN_SECRET}"}}"#);
    connect_cluster_as(cp, ns, sim, resync, &token);
}

/// [`connect_cluster`] with other credentials: the Secret's `stringData` as JSON (e.g.
/// `{"username":"root@pam","password":"..."}`).
pub fn connect_cluster_as(cp: &ControlPlane, ns: &str, sim: &Sim, resync: &str, credentials: &str) {
    let meta = cluster_metadata(ns);
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
  {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"pve-credentials"}},"stringData":{credentials}}},
  {{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{meta},
    "spec":{{"endpoints":["{}"],"credentialsRef":{{"name":"pve-credentials"}},"tls":{{"fingerprint":"{}"}},
             "resyncInterval":"{resync}","limits":{{"maxConcurrentTasksPerNode":4,"requestsPerSecond":500}}}}}}
]}}"#,
        sim.url, sim.fingerprint
    );
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `kubectl get KIND NAME -o json` as JSON, or `None` when it does not exist.
pub fn get_json(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> Option<serde_json::Value> {
    let out = cp.kubectl(&["get", "-n", ns, kind, name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// A fresh simulator (tasks 5× faster) connected to `ns`, and the operator watching it with
/// schedules on a clock 360× the wall clock (`*:0/30` fires every 5 s), once the cluster is Ready.
pub fn fast_schedules(cp: &ControlPlane, ns: &str) -> (Sim, Operator) {
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, ns, &sim, "1s");
    let origin = jiff::Timestamp::now().to_string();
    let op = Operator::start_with(
        cp,
        ns,
        &["--schedule-clock-speed", "360", "--schedule-clock-origin", &origin],
    );
    wait_ready(cp, ns, "proxmoxcluster", ns, Duration::from_secs(90));
    (sim, op)
}

/// `kubectl get KIND -o json` in `ns`: the items.
pub fn list_json(cp: &ControlPlane, ns: &str, kind: &str) -> Vec<serde_json::Value> {
    let out = cp.kubectl_ok(&["get", "-n", ns, kind, "-o", "json"]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The slot an object made by a schedule was made for (its `pve.lxc.dev/scheduled-at`).
pub fn slot_of(obj: &serde_json::Value) -> jiff::Timestamp {
    obj["metadata"]["annotations"]["pve.lxc.dev/scheduled-at"]
        .as_str()
        .expect("scheduled-at")
        .parse()
        .unwrap()
}

/// The condition `type_` of an object as (status, reason, message).
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
}

/// Waits until `kind/name` has condition Ready=True; returns the object.
pub fn wait_ready(cp: &ControlPlane, ns: &str, kind: &str, name: &str, timeout: Duration) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let start = Instant::now();
    loop {
        if let Some(o) = get_json(cp, ns, kind, name) {
            if condition(&o, "Ready").is_some_and(|c| c.0 == "True") {
                return o;
            }
            last = o;
        }
        assert!(
            start.elapsed() < timeout,
            "{kind}/{name} not Ready after {timeout:?}; last seen: {}",
            serde_json::to_string_pretty(&last["status"]).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Operator {
    /// Process id of the running operator (for `/proc/PID/status`), `None` after `kill`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the operator process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

/// A TCP forwarder to the apiserver that can be frozen: connections stay open but nothing
/// passes any more, as when the control plane's host dies without closing sockets.
#[allow(dead_code)]
pub struct FreezableProxy {
    /// `127.0.0.1:PORT` to connect to.
    pub addr: std::net::SocketAddr,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

#[allow(dead_code)]
impl FreezableProxy {
    /// Forwards a local port to `target`.
    pub fn start(target: std::net::SocketAddr) -> FreezableProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while f.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        FreezableProxy { addr, frozen }
    }

    /// Stops passing bytes (connections stay open).
    pub fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A copy of `kubeconfig` in `dir` whose server is this proxy.
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let original = std::fs::read_to_string(kubeconfig).unwrap();
        let rewritten: Vec<String> = original
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("server:") {
                    format!("    server: https://{}", self.addr)
                } else {
                    l.to_string()
                }
            })
            .collect();
        let path = dir.join("kubeconfig");
        std::fs::write(&path, rewritten.join("\n")).unwrap();
        path
    }
}

/// A token of the ServiceAccount `ns/name` (created when missing), from the TokenRequest API
/// (works with or without the token controller, and expires).
#[allow(dead_code)]
pub fn service_account_token(cp: &ControlPlane, ns: &str, name: &str) -> String {
    let _ = cp.kubectl(&["create", "serviceaccount", "-n", ns, name]);
    let request =
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#;
    let path = format!("/api/v1/namespaces/{ns}/serviceaccounts/{name}/token");
    let out = cp.kubectl_stdin(&["create", "--raw", &path, "-f", "-"], Some(request));
    assert!(
        out.status.success(),
        "TokenRequest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["status"]["token"].as_str().expect("a token").to_string()
}

/// `GET http://127.0.0.1:PORT/PATH`, with `Authorization: Bearer TOKEN` when given: the status
/// code and the body.
#[allow(dead_code)]
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "10", "-w", "\n%{http_code}"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A simulator (tasks 5× faster) and the cluster `ns` on it with `spec.virtualNodes` set to
/// `virtual_nodes` (JSON, e.g. `{"namespaces":"All"}`): what every virtual-node test starts from.
pub fn virtual_node_cluster(cp: &ControlPlane, ns: &str, virtual_nodes: &str) -> Sim {
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, ns, &sim, "1s");
    cp.kubectl_ok(&[
        "patch",
        "proxmoxcluster",
        ns,
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"virtualNodes":{virtual_nodes}}}}}"#),
    ]);
    sim
}

/// The operator flags of the virtual-node tests: Leases renewed every second (4 s long), the
/// kubelet endpoint on `kubelet_port` of loopback, orphans pruned every 2 s.
pub fn virtual_node_flags(kubelet_port: u16) -> Vec<String> {
    let addr = format!("127.0.0.1:{kubelet_port}");
    [
        "--virtual-nodes",
        "--node-renew-interval",
        "1s",
        "--node-lease-duration",
        "4s",
        "--kubelet-addr",
        &addr,
        "--node-address",
        "127.0.0.1",
        "--prune-interval",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
