//! Shared helpers of the integration tests: one real control plane per test binary, `kubectl`,
//! and a namespace per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A kube-apiserver + etcd on loopback, started once per test binary and stopped when it exits.
///
/// With `TEST_KUBECONFIG` set, that cluster is used instead (a real cluster): nothing is started.
pub struct ControlPlane {
    /// Path of the kubeconfig with admin rights.
    pub kubeconfig: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static CP: OnceLock<ControlPlane> = OnceLock::new();
        CP.get_or_init(|| {
            if let Ok(kc) = std::env::var("TEST_KUBECONFIG") {
                return ControlPlane { kubeconfig: kc.into(), _dir: None };
            }
            let dir = tempfile::Builder::new().prefix("plo-cp-").tempdir().expect("tempdir");
            let out = Command::new("bash")
                .arg(repo().join("tests/scripts/control-plane.sh"))
                .arg("start")
                .arg(dir.path())
                .arg("--watch-pid")
                .arg(std::process::id().to_string())
                .stderr(Stdio::inherit())
                .output()
                .expect("run control-plane.sh");
            assert!(out.status.success(), "control plane did not start (run tests/scripts/setup.sh first)");
            let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap());
            let cp = ControlPlane { kubeconfig, _dir: Some(dir) };
            cp.install_crds();
            cp
        })
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
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Applies `crds/` and waits until every CRD is Established.
    ///
    /// `--validate=false`: kubectl's client-side check rejects `x-kubernetes-validations` (CEL)
    /// on apiservers older than 1.25, which ignore the rules themselves.
    pub fn install_crds(&self) {
        let crds = repo().join("crds");
        self.kubectl_ok(&["apply", "--validate=false", "-f", crds.to_str().unwrap()]);
        self.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "-f", crds.to_str().unwrap()]);
    }

    /// Creates a fresh namespace for one test.
    pub fn namespace(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        self.kubectl_ok(&["create", "namespace", &name]);
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
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
