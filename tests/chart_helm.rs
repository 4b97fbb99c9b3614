//! The Helm chart, checked with the real tools: the Helm v4 SDK (`helm-python-sdk`: lint, schema,
//! render), `kubernetes-validate --strict`, a real kube-apiserver (`kubectl apply
//! --dry-run=server`), and RBAC through impersonation of the chart's ServiceAccount
//! (`kubectl auth can-i --as=...`). The Python tools live in a venv outside the repository made by
//! `tests/scripts/helm-venv.sh`; a test fails (never skips) when it cannot be made.

mod common;

use common::{repo, ControlPlane};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

const RELEASE_NAMESPACE: &str = "plo-system";
/// Kubernetes version of the `kubernetes-validate` schemas (the crate's k8s-openapi is v1_33).
const VALIDATE_KUBE_VERSION: &str = "1.33.0";
/// Version of the local kube-apiserver.
const LOCAL_KUBE_VERSION: &str = "v1.20.2";
const METRICS: [&str; 14] = [
    "plo_reconcile_total",
    "plo_reconcile_duration_seconds",
    "plo_reconcile_errors_total",
    "plo_proxmox_requests_total",
    "plo_proxmox_request_duration_seconds",
    "plo_tasks_started_total",
    "plo_tasks_failed_total",
    "plo_container_cpu_ratio",
    "plo_container_memory_bytes",
    "plo_container_disk_bytes",
    "plo_container_network_receive_bytes_total",
    "plo_container_network_transmit_bytes_total",
    "plo_container_up",
    "plo_queue_depth",
];

/// The helper run inside the venv: one JSON request on stdin, one JSON answer on stdout.
const HELM_PY: &str = r#"
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
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/scripts/helm-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/scripts/helm-venv.sh");
        assert!(out.status.success(), "tests/scripts/helm-venv.sh failed: the chart tests need helm-python-sdk and kubernetes-validate");
        let py = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim().lines().last().expect("venv python path").to_string());
        assert!(py.exists(), "{} missing", py.display());
        py
    })
}

fn chart_dir() -> PathBuf {
    repo().join("charts/proxmox-lxc-operator")
}

fn all_on() -> PathBuf {
    repo().join("tests/fixtures/chart/values-all-on.yaml")
}

/// One request to the Helm SDK helper.
fn helm(mut req: Value) -> Value {
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
struct Rendered {
    objects: Vec<Value>,
    notes: String,
    crds: Vec<String>,
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }
    fn one(&self, kind: &str) -> &Value {
        let all = self.of_kind(kind);
        assert_eq!(all.len(), 1, "expected one {kind}, got {}", all.len());
        all[0]
    }
    fn kinds(&self) -> Vec<String> {
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
fn render(values_file: Option<&Path>, set: Value, namespace: &str, kube_version: &str) -> Rendered {
    let started = Instant::now();
    let out = helm(
        json!({"op": "render", "values_file": values_file, "set": set, "release": "plo", "namespace": namespace, "kube_version": kube_version}),
    );
    assert!(
        out.get("error").is_none(),
        "render failed: {}",
        out["error"]
    );
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
        crds: out["crds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["data"].as_str().unwrap().to_string())
            .collect(),
    }
}

fn schema_ok(set: Value) -> Result<(), String> {
    let out = helm(json!({"op": "schema", "set": set}));
    if out["ok"] == true {
        Ok(())
    } else {
        Err(out["error"].as_str().unwrap().to_string())
    }
}

fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

fn args(deploy: &Value) -> Vec<String> {
    container(deploy)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn chart_lints_with_the_real_helm_sdk_for_default_and_all_on_values() {
    let version = helm(json!({"op": "version"}));
    assert!(
        version["helm"].as_str().unwrap().starts_with("v4."),
        "not Helm v4: {version}"
    );
    for values_file in [None, Some(all_on())] {
        let mut req = json!({"op": "lint", "namespace": RELEASE_NAMESPACE});
        req["values_file"] = json!(values_file);
        let report = helm(req);
        assert_eq!(report["total_charts_linted"], 1, "{report}");
        assert_eq!(report["errors"], json!([]), "lint errors: {report}");
        // Severity 2 = warning, 3 = error; 1 (info) is only "icon is recommended".
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap() >= 2)
            .collect();
        assert!(
            serious.is_empty(),
            "lint warnings with {values_file:?}: {serious:?}"
        );
    }
}

#[test]
fn chart_renders_a_hardened_least_privilege_release_for_default_values() {
    let r = render(None, json!({}), RELEASE_NAMESPACE, "v1.33.0");
    assert_eq!(
        r.kinds(),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount"
        ],
        "default values make exactly these objects"
    );
    assert_eq!(r.crds.len(), 5, "the chart ships the five CRDs");
    let deploy = r.one("Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "Recreate",
        "one replica without leader election never overlaps"
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = container(deploy);
    assert_eq!(
        c["image"], "proxmox-lxc-operator:0.1.0",
        "tag defaults to appVersion"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].is_string(),
                "resources.{kind}.{res} missing"
            );
        }
    }
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(
        args(deploy),
        ["run", "--http-addr=0.0.0.0:8080", "--log-format=json", "--shutdown-timeout=20s"]
    );
    let env = c["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "RUST_LOG" && e["value"] == "info"));
    assert!(env.iter().any(|e| e["name"] == "POD_NAMESPACE"
        && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"));

    let svc = r.one("Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );

    let roles = r.of_kind("ClusterRole");
    let main = roles
        .iter()
        .find(|r| !r["metadata"]["name"].as_str().unwrap().ends_with("-crds"))
        .unwrap();
    let rules = main["rules"].as_array().unwrap();
    let secrets: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .contains(&json!("secrets"))
        })
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["verbs"], json!(["get"]), "Secrets: get only");
    for rule in rules {
        let verbs = rule["verbs"].as_array().unwrap();
        assert!(
            !verbs.contains(&json!("*"))
                && !rule["resources"].as_array().unwrap().contains(&json!("*")),
            "no wildcards: {rule}"
        );
        assert!(!rule["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("pods")));
    }
    let crds_role = roles
        .iter()
        .find(|r| r["metadata"]["name"].as_str().unwrap().ends_with("-crds"))
        .unwrap();
    assert_eq!(
        crds_role["rules"][0]["resourceNames"]
            .as_array()
            .unwrap()
            .len(),
        5,
        "CRD get is limited to our five"
    );
    assert!(
        r.notes.contains("kubectl get proxmox") && r.notes.contains("ProxmoxCluster"),
        "NOTES tell the next step:\n{}",
        r.notes
    );
}

#[test]
fn chart_renders_every_option_of_the_all_on_values() {
    let r = render(Some(&all_on()), json!({}), RELEASE_NAMESPACE, "v1.33.0");
    let deploy = r.one("Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert!(
        deploy["spec"]["strategy"].is_null(),
        "rolling update with leader election"
    );
    assert_eq!(deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"], 60);
    let a = args(deploy);
    for want in [
        "--namespace=plo-team-a,plo-team-b",
        "--leader-election",
        "--lease-name=plo-all-on-leader",
        "--lease-namespace=$(POD_NAMESPACE)",
        "--http-addr=0.0.0.0:9090",
        "--log-format=text",
        "--shutdown-timeout=45s",
        "--max-concurrent-reconciles=128",
    ] {
        assert!(a.contains(&want.to_string()), "{want} missing from {a:?}");
    }
    assert!(
        r.of_kind("ClusterRole").len() == 1 && r.of_kind("ClusterRoleBinding").len() == 1,
        "with watchNamespaces only the CRD-read ClusterRole is cluster-wide"
    );
    let roles = r.of_kind("Role");
    let ns_of = |o: &&Value| o["metadata"]["namespace"].as_str().unwrap().to_string();
    let mut role_ns: Vec<String> = roles.iter().map(ns_of).collect();
    role_ns.sort();
    assert_eq!(
        role_ns,
        ["plo-system", "plo-team-a", "plo-team-b"],
        "a Role per watched namespace + the leader-election Role"
    );
    assert_eq!(r.of_kind("RoleBinding").len(), 3);
    let lease_role = roles
        .iter()
        .find(|r| r["metadata"]["namespace"] == RELEASE_NAMESPACE)
        .unwrap();
    assert!(lease_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|rule| rule["resourceNames"] == json!(["plo-all-on-leader"])));
    assert_eq!(
        r.one("ServiceMonitor")["spec"]["endpoints"][0]["path"],
        "/metrics"
    );
    assert_eq!(r.one("PodDisruptionBudget")["apiVersion"], "policy/v1");
    assert_eq!(r.one("PodDisruptionBudget")["spec"]["minAvailable"], 1);
    let cm = r.one("ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["proxmox-lxc-operator.json"].as_str().unwrap()).unwrap();
    let text = dashboard.to_string();
    for metric in METRICS {
        assert!(text.contains(metric), "dashboard does not chart {metric}");
    }
    let pvec = r.one("ProxmoxCluster");
    assert_eq!(pvec["metadata"]["namespace"], "plo-team-a");
    assert_eq!(
        pvec["spec"]["credentialsRef"]["name"],
        "default-credentials"
    );
    assert_eq!(pvec["spec"]["endpoints"].as_array().unwrap().len(), 2);
    let secret = r.one("Secret");
    assert_eq!(secret["stringData"]["tokenId"], "operator@pve!k8s");
    assert_eq!(r.one("ServiceAccount")["metadata"]["name"], "plo-all-on-sa");

    // Leader election follows replicas; an existing Secret makes the chart write none.
    let two = render(
        None,
        json!({"replicas": 2, "proxmoxCluster": {"create": true, "endpoints": ["https://pve:8006"], "existingSecret": "mine"}}),
        RELEASE_NAMESPACE,
        "v1.33.0",
    );
    assert!(args(two.one("Deployment")).contains(&"--leader-election".to_string()));
    assert_eq!(two.of_kind("Role").len(), 1);
    assert!(two.of_kind("Secret").is_empty());
    assert_eq!(
        two.one("ProxmoxCluster")["spec"]["credentialsRef"]["name"],
        "mine"
    );
    // policy/v1beta1 for clusters before 1.21 (helm install reads the version from the cluster).
    let old = render(
        Some(&all_on()),
        json!({}),
        RELEASE_NAMESPACE,
        LOCAL_KUBE_VERSION,
    );
    assert_eq!(
        old.one("PodDisruptionBudget")["apiVersion"],
        "policy/v1beta1"
    );
}

#[test]
fn rendered_manifests_pass_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (label, values_file) in [("default", None), ("all-on", Some(all_on()))] {
        let r = render(
            values_file.as_deref(),
            json!({}),
            RELEASE_NAMESPACE,
            &format!("v{VALIDATE_KUBE_VERSION}"),
        );
        for (i, obj) in r.objects.iter().enumerate() {
            // kubernetes-validate ships schemas for built-in kinds only: our ProxmoxCluster and the
            // Prometheus Operator's ServiceMonitor are checked by the apiserver dry-run instead.
            let api = obj["apiVersion"].as_str().unwrap();
            if api.starts_with("pve.lxc.dev/") || api.starts_with("monitoring.coreos.com/") {
                skipped.push(format!("{label}: {}", obj["kind"]));
                continue;
            }
            let path = dir.path().join(format!(
                "{label}-{i:02}-{}.json",
                obj["kind"].as_str().unwrap()
            ));
            std::fs::write(&path, obj.to_string()).unwrap();
            files.push(path);
        }
        if label == "default" {
            for (i, crd) in r.crds.iter().enumerate() {
                let path = dir.path().join(format!("crd-{i}.yaml"));
                std::fs::write(&path, crd).unwrap();
                files.push(path);
            }
        }
    }
    assert_eq!(
        skipped,
        ["all-on: \"ProxmoxCluster\"", "all-on: \"ServiceMonitor\""]
    );
    let bin = python().parent().unwrap().join("kubernetes-validate");
    let out = Command::new(&bin)
        .args(["--strict", "--no-warn", "-k", VALIDATE_KUBE_VERSION])
        .args(&files)
        .output()
        .expect("kubernetes-validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubernetes-validate --strict refused the chart:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("INFO").count(),
        files.len(),
        "every file validated:\n{stdout}"
    );
}

#[test]
fn bad_values_are_refused_by_the_schema() {
    assert_eq!(schema_ok(json!({})), Ok(()));
    let all_on: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(all_on()).unwrap()).unwrap();
    assert_eq!(schema_ok(all_on), Ok(()));
    assert_eq!(
        schema_ok(
            json!({"proxmoxCluster": {"create": true, "endpoints": ["https://pve:8006"], "existingSecret": "pve"}})
        ),
        Ok(())
    );
    let bad = [
        (json!({"replicas": -1}), "/replicas"),
        (json!({"replicas": "two"}), "/replicas"),
        (json!({"logFormat": "yaml"}), "/logFormat"),
        (json!({"logLevel": ""}), "/logLevel"),
        (json!({"replica": 2}), "replica"),
        (json!({"image": {"tags": "1"}}), "tags"),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            "/image/pullPolicy",
        ),
        (json!({"watchNamespaces": ["Team_A"]}), "/watchNamespaces/0"),
        (json!({"httpPort": 80}), "/httpPort"),
        (
            json!({"serviceMonitor": {"interval": "soon"}}),
            "/serviceMonitor/interval",
        ),
        (
            json!({"podDisruptionBudget": {"minAvailable": "150%"}}),
            "/podDisruptionBudget/minAvailable",
        ),
        (
            json!({"proxmoxCluster": {"create": true}}),
            "/proxmoxCluster",
        ),
        (
            json!({"proxmoxCluster": {"create": true, "endpoints": ["https://pve:8006"]}}),
            "/proxmoxCluster",
        ),
        (
            json!({"proxmoxCluster": {"endpoints": ["http://pve:8006"]}}),
            "/proxmoxCluster/endpoints/0",
        ),
        (
            json!({"proxmoxCluster": {"tokenId": "root"}}),
            "/proxmoxCluster/tokenId",
        ),
        (
            json!({"proxmoxCluster": {"tls": {"fingerprint": "AB:CD"}}}),
            "/proxmoxCluster/tls/fingerprint",
        ),
        (
            json!({"proxmoxCluster": {"tls": {"insecureSkipVerify": true, "fingerprint": "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"}}}),
            "/proxmoxCluster/tls",
        ),
        (
            json!({"proxmoxCluster": {"limits": {"maxConcurrentTasksPerNode": 0}}}),
            "/proxmoxCluster/limits/maxConcurrentTasksPerNode",
        ),
    ];
    for (values, path) in bad {
        match schema_ok(values.clone()) {
            Ok(()) => panic!("the schema accepted {values}"),
            Err(e) => assert!(
                e.contains(path),
                "refusal of {values} does not name {path}: {e}"
            ),
        }
    }
    // The install path (render) refuses too, before any template runs.
    let out = helm(
        json!({"op": "render", "set": {"replicas": -1}, "release": "plo", "namespace": RELEASE_NAMESPACE, "kube_version": "v1.33.0"}),
    );
    assert_eq!(out["error_type"], "HelmValuesError", "{out}");
}

/// A minimal ServiceMonitor CRD, so the dry-run can check the chart's ServiceMonitor too.
const SERVICE_MONITOR_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
  "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
    "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor", "listKind": "ServiceMonitorList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
}"#;

fn as_list(objects: &[Value]) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string()
}

#[test]
fn rendered_manifests_are_accepted_by_the_local_apiserver_dry_run() {
    let cp = ControlPlane::shared();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], Some(SERVICE_MONITOR_CRD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
    ]);
    let release_ns = cp.namespace("plo-chart");
    let (team_a, team_b) = (cp.namespace("plo-team"), cp.namespace("plo-team"));
    let cases = [
        ("default", None, json!({})),
        (
            "all-on",
            Some(all_on()),
            json!({"watchNamespaces": [team_a, team_b], "proxmoxCluster": {"namespace": team_a}}),
        ),
    ];
    for (label, values_file, set) in cases {
        let r = render(values_file.as_deref(), set, &release_ns, LOCAL_KUBE_VERSION);
        let started = Instant::now();
        let out = cp.kubectl_stdin(
            &["apply", "--dry-run=server", "-f", "-"],
            Some(&as_list(&r.objects)),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the apiserver refused the {label} release: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("(server dry run)").count(),
            r.objects.len(),
            "{label}: every object accepted:\n{stdout}"
        );
        eprintln!(
            "dry-run of {label} ({} objects): {:.0} ms",
            r.objects.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        if label == "all-on" {
            assert!(
                stdout.contains("poddisruptionbudget.policy/plo-all-on"),
                "{stdout}"
            );
            assert!(
                stdout.contains("servicemonitor.monitoring.coreos.com/plo-all-on"),
                "{stdout}"
            );
            assert!(
                stdout.contains("proxmoxcluster.pve.lxc.dev/default"),
                "{stdout}"
            );
        }
    }
}

/// `kubectl auth can-i` as the chart's ServiceAccount.
fn can_i(cp: &ControlPlane, sa: &str, namespace: Option<&str>, args: &[&str]) -> bool {
    let mut all: Vec<&str> = vec!["auth", "can-i", "--as", sa];
    match namespace {
        Some(ns) => all.extend(["-n", ns]),
        None => all.push("--all-namespaces"),
    }
    all.extend(args);
    let out = cp.kubectl(&all);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl {all:?}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

/// Installs the ServiceAccount and RBAC objects of a render for real; returns the SA's user name.
fn install_rbac(cp: &ControlPlane, r: &Rendered, release_ns: &str) -> (String, Vec<String>) {
    let rbac: Vec<Value> = r
        .objects
        .iter()
        .filter(|o| {
            [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
            ]
            .contains(&o["kind"].as_str().unwrap())
        })
        .cloned()
        .collect();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], Some(&as_list(&rbac)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sa = r.one("ServiceAccount")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let cluster_scoped = rbac
        .iter()
        .filter(|o| o["kind"].as_str().unwrap().starts_with("Cluster"))
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap().to_lowercase(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    (
        format!("system:serviceaccount:{release_ns}:{sa}"),
        cluster_scoped,
    )
}

fn cleanup(cp: &ControlPlane, cluster_scoped: &[String]) {
    let mut args = vec!["delete", "--ignore-not-found"];
    args.extend(cluster_scoped.iter().map(String::as_str));
    cp.kubectl_ok(&args);
}

#[test]
fn service_account_can_do_what_the_operator_needs_and_nothing_more() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbac");
    let apps = cp.namespace("plo-apps");
    // A release name of its own, so the cluster-scoped names do not collide with other tests.
    let r = render(
        None,
        json!({"fullnameOverride": release_ns}),
        &release_ns,
        LOCAL_KUBE_VERSION,
    );
    let (sa, cluster_scoped) = install_rbac(cp, &r, &release_ns);
    let ns = Some(apps.as_str());
    let allowed: &[&[&str]] = &[
        &["list", "lxccontainers.pve.lxc.dev"],
        &["watch", "lxcbackupschedules.pve.lxc.dev"],
        &["patch", "lxccontainers.pve.lxc.dev", "--subresource=status"],
        &[
            "update",
            "proxmoxclusters.pve.lxc.dev",
            "--subresource=status",
        ],
        &[
            "update",
            "lxccontainers.pve.lxc.dev",
            "--subresource=finalizers",
        ],
        &["patch", "lxctemplates.pve.lxc.dev"],
        &["create", "lxcbackups.pve.lxc.dev"],
        &["delete", "lxcbackups.pve.lxc.dev"],
        &["get", "secrets/pve-credentials"],
        &["create", "events.events.k8s.io"],
        &["patch", "events.events.k8s.io"],
        &["create", "services"],
        &["delete", "endpointslices.discovery.k8s.io"],
    ];
    for a in allowed {
        assert!(can_i(cp, &sa, ns, a), "the operator needs {a:?}");
    }
    assert!(
        can_i(cp, &sa, None, &["list", "lxccontainers.pve.lxc.dev"]),
        "cluster mode watches all namespaces"
    );
    assert!(can_i(
        cp,
        &sa,
        ns,
        &[
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/lxccontainers.pve.lxc.dev"
        ]
    ));
    let denied: &[&[&str]] = &[
        &["list", "secrets"],
        &["watch", "secrets"],
        &["create", "secrets"],
        &["delete", "pods"],
        &["get", "pods"],
        &["create", "clusterroles.rbac.authorization.k8s.io"],
        &["create", "rolebindings.rbac.authorization.k8s.io"],
        &["create", "lxccontainers.pve.lxc.dev"],
        &["delete", "lxccontainers.pve.lxc.dev"],
        &["delete", "proxmoxclusters.pve.lxc.dev"],
        &["get", "configmaps"],
        &["get", "leases.coordination.k8s.io"],
        &[
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/widgets.example.com",
        ],
        &["list", "customresourcedefinitions.apiextensions.k8s.io"],
    ];
    for d in denied {
        assert!(!can_i(cp, &sa, ns, d), "the operator must not {d:?}");
    }
    assert!(
        !can_i(cp, &sa, None, &["list", "secrets"]),
        "no cluster-wide Secret list"
    );
    cleanup(cp, &cluster_scoped);
}

#[test]
fn with_watch_namespaces_the_service_account_is_confined_to_them() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacns");
    let (watched, other) = (cp.namespace("plo-watched"), cp.namespace("plo-other"));
    let r = render(
        None,
        json!({"fullnameOverride": release_ns, "watchNamespaces": [watched], "replicas": 2}),
        &release_ns,
        LOCAL_KUBE_VERSION,
    );
    let (sa, cluster_scoped) = install_rbac(cp, &r, &release_ns);
    let lease = format!("leases.coordination.k8s.io/{release_ns}");
    assert!(can_i(
        cp,
        &sa,
        Some(&watched),
        &["list", "lxccontainers.pve.lxc.dev"]
    ));
    assert!(can_i(
        cp,
        &sa,
        Some(&watched),
        &["get", "secrets/pve-credentials"]
    ));
    assert!(can_i(
        cp,
        &sa,
        Some(&release_ns),
        &["create", "leases.coordination.k8s.io"]
    ));
    assert!(can_i(cp, &sa, Some(&release_ns), &["update", &lease]));
    assert!(can_i(
        cp,
        &sa,
        Some(&watched),
        &[
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/lxcbackups.pve.lxc.dev"
        ]
    ));
    assert!(
        !can_i(
            cp,
            &sa,
            Some(&other),
            &["list", "lxccontainers.pve.lxc.dev"]
        ),
        "outside watchNamespaces"
    );
    assert!(
        !can_i(cp, &sa, Some(&other), &["get", "secrets/pve-credentials"]),
        "no Secrets outside watchNamespaces"
    );
    assert!(
        !can_i(cp, &sa, None, &["list", "lxccontainers.pve.lxc.dev"]),
        "no cluster-wide list"
    );
    assert!(!can_i(cp, &sa, Some(&watched), &["list", "secrets"]));
    assert!(
        !can_i(
            cp,
            &sa,
            Some(&release_ns),
            &["update", "leases.coordination.k8s.io/someone-else"]
        ),
        "only its own Lease"
    );
    assert!(
        !can_i(
            cp,
            &sa,
            Some(&watched),
            &["create", "leases.coordination.k8s.io"]
        ),
        "Leases only in the release namespace"
    );
    cleanup(cp, &cluster_scoped);
}

/// An operator process started with a kubeconfig that impersonates the chart's ServiceAccount.
struct ImpersonatedOperator {
    child: std::process::Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ImpersonatedOperator {
    fn start(cp: &ControlPlane, service_account: &str, namespace: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // The admin kubeconfig with `as: system:serviceaccount:NS:NAME` (kubeconfig impersonation,
        // which kube-rs honours): every request the operator makes is authorized as the SA.
        let mut kubeconfig: Value = serde_json::from_str(&cp.kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--flatten",
            "-o",
            "json",
        ]))
        .unwrap();
        for user in kubeconfig["users"].as_array_mut().unwrap() {
            user["user"]["as"] = json!(service_account);
        }
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig.to_string()).unwrap();
        let log = dir.path().join("operator.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--http-addr",
                &format!("127.0.0.1:{}", common::free_port()),
            ])
            .args([
                "--task-poll-interval",
                "200ms",
                "--drift-check-interval",
                "0s",
            ])
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "info,kube_runtime=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start operator");
        ImpersonatedOperator {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ImpersonatedOperator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_operator_reconciles_an_example_with_only_the_charts_service_account_rbac() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacop");
    let apps = cp.namespace("plo-rbacapps");
    // The strictest mode: namespace-scoped Roles for one watched namespace.
    let r = render(
        None,
        json!({"fullnameOverride": release_ns, "watchNamespaces": [apps]}),
        &release_ns,
        LOCAL_KUBE_VERSION,
    );
    let (sa, cluster_scoped) = install_rbac(cp, &r, &release_ns);
    let sim = common::Sim::start(&["--clock-speed", "5"]);
    common::connect_cluster(cp, &apps, &sim, "2s");
    let op = ImpersonatedOperator::start(cp, &sa, &apps);
    let timeout = std::time::Duration::from_secs(90);
    common::wait_ready(cp, &apps, "proxmoxcluster", "default", timeout);
    let example =
        std::fs::read_to_string(repo().join("examples/lxccontainer-minimal.yaml")).unwrap();
    let out = cp.kubectl_stdin(&["apply", "-n", &apps, "-f", "-"], Some(&example));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: "))
        .unwrap()
        .trim()
        .to_string();
    let obj = common::wait_ready(cp, &apps, "lxc", &name, timeout);
    let vmid = obj["status"]["vmid"].as_u64().expect("vmid in status");
    assert!(
        sim.container(vmid).is_some(),
        "container {vmid} not in the simulator"
    );
    let log = op.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    drop(op);
    cleanup(cp, &cluster_scoped);
}
