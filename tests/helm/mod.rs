//! The chart tests' access to the real Helm v4 SDK (`helm-python-sdk`, in a venv outside the
//! repository made by `tests/scripts/helm-venv.sh`): lint, schema check and render, as `helm lint`,
//! `helm install --dry-run` and `helm template` would. Shared by tests/chart_helm.rs,
//! tests/chart_rbac.rs and tests/chart_release.rs.
#![allow(dead_code)]

use crate::common::repo;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

pub const RELEASE_NAMESPACE: &str = "plo-system";
/// Kubernetes version of the `kubernetes-validate` schemas (the crate's k8s-openapi is v1_33).
pub const VALIDATE_KUBE_VERSION: &str = "1.33.0";
/// Version of the local kube-apiserver.
pub const LOCAL_KUBE_VERSION: &str = "v1.20.2";

/// The helper run inside the venv: one JSON request on stdin, one JSON answer on stdout.
pub const HELM_PY: &str = r#"
import json, sys, time
import yaml
import helm_python as helm
from helm_python import _native

def merge(a, b):
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            merge(a[k], v)
        else:
            a[k] = v
    return a

req = json.load(sys.stdin)
values = {}
if req.get("values_file"):
    values = yaml.safe_load(open(req["values_file"])) or {}
merge(values, req.get("set") or {})
chart_dir = req["chart"]
op = req["op"]
if op == "version":
    out = {"sdk": helm.__version__, "helm": helm.helm_sdk_version()}
elif op == "lint":
    out = helm.lint(chart_dir, values or None, strict=True, namespace=req["namespace"])
elif op == "schema":
    chart = helm.Chart.load(chart_dir)
    try:
        chart.validate_schema(values)
        out = {"ok": True}
    except helm.HelmValuesError as e:
        out = {"ok": False, "error": str(e)}
elif op == "render":
    started = time.monotonic()
    chart = helm.Chart.load(chart_dir)
    opts = {"name": req["release"], "namespace": req["namespace"], "is_install": True,
            "kube_version": req["kube_version"]}
    # helm-python-sdk 0.2.2's Chart.render() has no kube_version keyword; the C ABI call it wraps
    # (helm_render with an options JSON) takes it, like `helm template --kube-version`.
    try:
        rendered = json.loads(_native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts)))
    except helm.HelmError as e:
        print(json.dumps({"error": str(e), "error_type": type(e).__name__}))
        sys.exit(0)
    elapsed = time.monotonic() - started
    objects = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc:
                objects.append({"template": path, "object": doc})
    out = {"notes": rendered.get(chart.name + "/templates/NOTES.txt", ""), "objects": objects,
           "crds": [{"filename": c["filename"], "data": c["data"]} for c in chart.crds],
           "render_seconds": elapsed}
else:
    raise SystemExit("unknown op " + op)
print(json.dumps(out))
"#;

/// The venv's python, made once (`tests/scripts/helm-venv.sh`); panics when it cannot be made.
pub fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/scripts/helm-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/scripts/helm-venv.sh");
        assert!(
            out.status.success(),
            "tests/scripts/helm-venv.sh failed: the chart tests need helm-python-sdk and kubernetes-validate"
        );
        let py = PathBuf::from(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .lines()
                .last()
                .expect("venv python path")
                .to_string(),
        );
        assert!(py.exists(), "{} missing", py.display());
        py
    })
}

pub fn chart_dir() -> PathBuf {
    repo().join("charts/proxmox-lxc-operator")
}

pub fn all_on() -> PathBuf {
    repo().join("tests/fixtures/chart/values-all-on.yaml")
}

/// One request to the Helm SDK helper.
pub fn helm(mut req: Value) -> Value {
    use std::io::Write;
    req["chart"] = json!(chart_dir());
    let mut child = Command::new(python())
        .arg("-c")
        .arg(HELM_PY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("venv python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "helm helper {req} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A rendered release.
pub struct Rendered {
    pub objects: Vec<Value>,
    pub notes: String,
    /// What Helm's own `crds/` directory holds (installed once, never upgraded): nothing, since
    /// the CRDs are templates and so among `objects`.
    pub crds_dir: Vec<String>,
}

impl Rendered {
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }
    pub fn one(&self, kind: &str) -> &Value {
        let all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected one {kind}, got {}", all.len());
        all[0]
    }
    pub fn kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        kinds
    }
}

/// Renders the chart with the SDK (values file and overrides, as `helm template -f FILE --set`).
pub fn render(values_file: Option<&Path>, set: Value, namespace: &str, kube_version: &str) -> Rendered {
    let started = Instant::now();
    let out = helm(
        json!({"op": "render", "values_file": values_file, "set": set, "release": "plo", "namespace": namespace, "kube_version": kube_version}),
    );
    assert!(out.get("error").is_none(), "render failed: {}", out["error"]);
    eprintln!(
        "render ({}, kube {kube_version}): {:.1} ms in the SDK, {:.0} ms with the Python start",
        values_file
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .unwrap_or_else(|| "defaults".into()),
        out["render_seconds"].as_f64().unwrap() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );
    Rendered {
        objects: out["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["object"].clone())
            .collect(),
        notes: out["notes"].as_str().unwrap().to_string(),
        crds_dir: out["crds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["data"].as_str().unwrap().to_string())
            .collect(),
    }
}

pub fn schema_ok(set: Value) -> Result<(), String> {
    let out = helm(json!({"op": "schema", "set": set}));
    if out["ok"] == true {
        Ok(())
    } else {
        Err(out["error"].as_str().unwrap().to_string())
    }
}

pub fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

pub fn args(deploy: &Value) -> Vec<String> {
    container(deploy)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

pub fn as_list(objects: &[Value]) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()
}
