//! The Helm chart, checked with the real tools: the Helm v4 SDK (`helm-python-sdk`: lint, schema,
//! render), `kubernetes-validate --strict`, a real kube-apiserver (`kubectl apply
//! --dry-run=server`), and RBAC through impersonation of the chart's ServiceAccount
//! (`kubectl auth can-i --as=...`). The Python tools live in a venv outside the repository made by
//! `tests/scripts/helm-venv.sh`; a test fails (never skips) when it cannot be made.

mod common;
mod helm;

use common::{repo, ControlPlane};
use helm::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Instant;

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
        assert!(serious.is_empty(), "lint warnings with {values_file:?}: {serious:?}");
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
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ],
        "default values make exactly these objects"
    );
    assert!(
        r.crds_dir.is_empty(),
        "Helm's crds/ is never upgraded: the eight CRDs are templates"
    );
    let deploy = r.one("Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["strategy"]["type"], "Recreate",
        "one replica without leader election never overlaps"
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = container(deploy);
    assert_eq!(
        c["image"],
        format!("ghcr.io/pve-lxc/proxmox-lxc-operator:{}", env!("CARGO_PKG_VERSION")),
        "where the release publishes it; the tag defaults to appVersion (= the crate version)"
    );
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(c["resources"][kind][res].is_string(), "resources.{kind}.{res} missing");
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
        [
            "run",
            "--http-addr=0.0.0.0:8080",
            "--log-format=json",
            "--shutdown-timeout=20s",
            "--metrics-auth"
        ]
    );
    let env = c["env"].as_array().unwrap();
    assert!(env.iter().any(|e| e["name"] == "RUST_LOG" && e["value"] == "info"));
    assert!(env
        .iter()
        .any(|e| e["name"] == "POD_NAMESPACE" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"));

    let svc = r.one("Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(svc["spec"]["selector"], deploy["spec"]["selector"]["matchLabels"]);

    let roles = r.of_kind("ClusterRole");
    let fullname = "plo-proxmox-lxc-operator";
    let role = |suffix: &str| {
        let name = format!("{fullname}{suffix}");
        *roles
            .iter()
            .find(|r| r["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    };
    let rules_of = |r: &Value| r["rules"].as_array().unwrap().clone();
    let resources = |rule: &Value| -> Vec<String> {
        rule["resources"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    for r in &roles {
        for rule in rules_of(r) {
            let verbs = rule["verbs"].as_array().unwrap();
            assert!(
                !verbs.contains(&json!("*")) && !resources(&rule).contains(&"*".to_string()),
                "no wildcards: {rule}"
            );
            assert!(!resources(&rule).contains(&"pods".to_string()));
        }
    }
    let secrets: Vec<Value> = rules_of(role(""))
        .into_iter()
        .filter(|r| resources(r).contains(&"secrets".to_string()))
        .collect();
    assert!(
        secrets.is_empty(),
        "rbac.tenantSecrets is off: no Secret of a tenant namespace"
    );
    for rule in rules_of(role("")) {
        if resources(&rule)
            .iter()
            .any(|r| r == "services" || r == "endpointslices")
        {
            assert_eq!(
                rule["verbs"],
                json!(["get", "create", "patch", "update", "delete"]),
                "no list/watch"
            );
        }
    }
    let scoped = rules_of(role("-cluster-scoped"));
    let crd_rule = scoped
        .iter()
        .find(|r| resources(r) == ["customresourcedefinitions"])
        .unwrap();
    assert_eq!(
        crd_rule["resourceNames"].as_array().unwrap().len(),
        8,
        "CRD get is limited to our eight"
    );
    assert!(
        scoped.iter().any(|r| resources(r) == ["tokenreviews"]),
        "metrics.secure"
    );
    assert!(scoped
        .iter()
        .any(|r| resources(r) == ["namespaces"] && r["verbs"] == json!(["get", "list", "watch"])));
    let own_secrets = r.one("Role");
    assert_eq!(own_secrets["metadata"]["namespace"], RELEASE_NAMESPACE);
    assert_eq!(
        own_secrets["rules"],
        json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]),
        "ProxmoxCluster Secrets: get, in the release namespace"
    );
    // Tenant roles: aggregated, without status, clusters or tenants.
    for (suffix, label) in [("-view", "aggregate-to-view"), ("-edit", "aggregate-to-edit")] {
        let r = role(suffix);
        assert_eq!(
            r["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")],
            "true"
        );
        for rule in rules_of(r) {
            for res in resources(&rule) {
                // the one subresource: the web UI's console (no status, no finalizers)
                let console = suffix == "-edit" && res == "lxccontainers/console";
                assert!(
                    console || !res.contains('/') && !res.starts_with("proxmox"),
                    "{suffix}: a tenant gets {res}"
                );
            }
        }
    }
    assert_eq!(
        role("-edit")["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    let admin = rules_of(role("-cluster-admin"));
    assert!(resources(&admin[0]).contains(&"proxmoxtenants".to_string()));
    assert!(role("-cluster-admin")["metadata"]["labels"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.contains("aggregate")));
    assert_eq!(
        rules_of(role("-metrics-reader")),
        [json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})]
    );
    // NetworkPolicy: the http port in; DNS, the apiserver and Proxmox out.
    let np = &r.one("NetworkPolicy")["spec"];
    assert_eq!(np["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        np["podSelector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        np["ingress"],
        json!([{"ports": [{"port": "http", "protocol": "TCP"}], "from": [{"namespaceSelector": {}}]}])
    );
    let egress_ports: Vec<Value> = np["egress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!(e["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].clone())
                .collect::<Vec<_>>())
        })
        .collect();
    assert_eq!(egress_ports, [json!([53, 53]), json!([443, 6443]), json!([8006])]);
    assert!(
        r.notes.contains("kubectl get proxmox") && r.notes.contains("ProxmoxCluster"),
        "NOTES tell the next step:\n{}",
        r.notes
    );
}

/// The top-level `crds/` documents, parsed.
fn top_level_crds() -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_saphyr::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn chart_crds_are_templates_that_helm_upgrades_and_uninstall_keeps() {
    const CRD: &str = "CustomResourceDefinition";
    let r = render(None, json!({}), RELEASE_NAMESPACE, "v1.33.0");
    let crds = r.of_kind(CRD);
    let top = top_level_crds();
    assert_eq!(crds.len(), top.len(), "every CRD of crds/ is in the release");
    for want in &top {
        let name = &want["metadata"]["name"];
        let got = crds
            .iter()
            .find(|c| &c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not rendered"));
        assert_eq!(got["spec"], want["spec"], "{name}: the rendered spec is not crds/'s");
        assert_eq!(
            got["metadata"]["annotations"],
            json!({"helm.sh/resource-policy": "keep"}),
            "{name}: helm uninstall must leave the CRD (and every object of it)"
        );
        let labels = &got["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
        assert_eq!(labels["app.kubernetes.io/version"], env!("CARGO_PKG_VERSION"));
        assert!(got["metadata"]["namespace"].is_null(), "CRDs are cluster-scoped");
    }
    let no_keep = render(None, json!({"crds": {"keep": false}}), RELEASE_NAMESPACE, "v1.33.0");
    assert_eq!(no_keep.of_kind(CRD).len(), top.len());
    for c in no_keep.of_kind(CRD) {
        assert!(
            c["metadata"]["annotations"].is_null(),
            "crds.keep=false: no keep annotation: {}",
            c["metadata"]
        );
    }
    let off = render(None, json!({"crds": {"install": false}}), RELEASE_NAMESPACE, "v1.33.0");
    assert!(off.of_kind(CRD).is_empty(), "crds.install=false renders no CRD");
    assert_eq!(
        off.objects.len(),
        r.objects.len() - top.len(),
        "and changes nothing else"
    );
    for (bad, path) in [
        (json!({"crds": {"install": "yes"}}), "/crds/install"),
        (json!({"crds": {"upgrade": true}}), "upgrade"),
    ] {
        let e = schema_ok(bad.clone()).expect_err(&format!("the schema accepted {bad}"));
        assert!(e.contains(path), "refusal of {bad} does not name {path}: {e}");
    }
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
        "--ui-addr=0.0.0.0:8443",
        "--ui-secure-cookies",
        "--virtual-nodes",
        "--kubelet-addr=0.0.0.0:10250",
        "--pod-scheduler-name=proxmox-lxc",
        "--kubelet-client-ca=/etc/plo/kubelet-client-ca/ca.crt",
    ] {
        assert!(a.contains(&want.to_string()), "{want} missing from {a:?}");
    }
    // virtual nodes: Nodes cluster-wide, their Leases in kube-node-lease only, Pods where watched
    let cluster_scoped = r
        .of_kind("ClusterRole")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "plo-all-on-cluster-scoped")
        .expect("the cluster-scoped ClusterRole");
    assert!(
        cluster_scoped["rules"].to_string().contains("\"nodes/status\""),
        "{cluster_scoped}"
    );
    let leases = r
        .of_kind("Role")
        .into_iter()
        .find(|c| c["metadata"]["namespace"] == "kube-node-lease")
        .expect("the Role on the Node Leases");
    assert_eq!(leases["rules"][0]["resources"][0], "leases");
    let team_a = r
        .of_kind("Role")
        .into_iter()
        .find(|c| c["metadata"]["namespace"] == "plo-team-a")
        .expect("the operator's Role in plo-team-a");
    assert!(team_a["rules"].to_string().contains("\"pods/binding\""), "{team_a}");
    let ui = r
        .of_kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "plo-all-on-ui")
        .expect("UI Service");
    assert_eq!(ui["spec"]["type"], "ClusterIP");
    assert_eq!(ui["spec"]["ports"][0]["targetPort"], "ui");
    let ingress = r.one("Ingress");
    assert_eq!(ingress["spec"]["rules"][0]["host"], "plo.example.com");
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "plo-all-on-ui"
    );
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "plo-ui-tls");
    let mut bindings: Vec<&str> = r
        .of_kind("ClusterRoleBinding")
        .iter()
        .map(|b| b["roleRef"]["name"].as_str().unwrap())
        .collect();
    bindings.sort();
    assert_eq!(
        bindings,
        ["plo-all-on-cluster-scoped", "plo-all-on-metrics-reader"],
        "with watchNamespaces only the cluster-scoped kinds are bound cluster-wide (and the metrics readers)"
    );
    assert_eq!(
        r.of_kind("ClusterRole").len(),
        5,
        "cluster-scoped, view, edit, cluster-admin, metrics-reader"
    );
    let roles = r.of_kind("Role");
    let ns_of = |o: &&Value| o["metadata"]["namespace"].as_str().unwrap().to_string();
    let mut role_ns: Vec<String> = roles.iter().map(ns_of).collect();
    role_ns.sort();
    assert_eq!(
        role_ns,
        [
            "kube-node-lease",
            "plo-system",
            "plo-system",
            "plo-team-a",
            "plo-team-b"
        ],
        "a Role per watched namespace + the Secrets, leader-election and Node Lease Roles"
    );
    assert_eq!(r.of_kind("RoleBinding").len(), 5);
    let lease_role = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "plo-all-on-leader-election")
        .unwrap();
    assert!(lease_role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|rule| rule["resourceNames"] == json!(["plo-all-on-leader"])));
    let endpoint = &r.one("ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["authorization"]["credentials"]["name"], "prometheus-token");
    let np = &r.one("NetworkPolicy")["spec"];
    // the UI's and the kubelet endpoint's ports are let in when they are on (the UI's was not)
    let ingress_ports: Vec<&Value> = np["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| &rule["ports"][0]["port"])
        .collect();
    assert_eq!(ingress_ports, [&json!("http"), &json!("ui"), &json!("kubelet")]);
    // the listeners that run with the operator's identity, open only to who needs them
    assert_eq!(
        np["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "ingress-nginx"
    );
    assert_eq!(np["ingress"][2]["from"][0]["ipBlock"]["cidr"], "10.0.0.10/32");
    assert_eq!(np["egress"][1]["to"][1]["ipBlock"]["cidr"], "10.0.0.11/32");
    assert_eq!(np["egress"][2]["to"][0]["ipBlock"]["cidr"], "192.0.2.0/24");
    assert_eq!(
        np["egress"][0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(r.one("PodDisruptionBudget")["apiVersion"], "policy/v1");
    assert_eq!(r.one("PodDisruptionBudget")["spec"]["minAvailable"], 1);
    let cm = r.one("ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value = serde_json::from_str(cm["data"]["proxmox-lxc-operator.json"].as_str().unwrap()).unwrap();
    let text = dashboard.to_string();
    for metric in METRICS {
        assert!(text.contains(metric), "dashboard does not chart {metric}");
    }
    let pvec = r.one("ProxmoxCluster");
    assert!(
        pvec["metadata"]["namespace"].is_null(),
        "ProxmoxClusters are cluster-scoped"
    );
    assert_eq!(
        pvec["metadata"]["annotations"]["pve.lxc.dev/is-default-cluster"],
        "true"
    );
    assert_eq!(pvec["spec"]["tenancy"], "Restricted");
    assert_eq!(pvec["spec"]["credentialsRef"]["name"], "default-credentials");
    assert_eq!(pvec["spec"]["endpoints"].as_array().unwrap().len(), 2);
    let secret = r.one("Secret");
    assert_eq!(secret["stringData"]["tokenId"], "operator@pve!k8s");
    assert_eq!(
        secret["metadata"]["namespace"], RELEASE_NAMESPACE,
        "the operator reads ProxmoxCluster Secrets in its own namespace only"
    );
    assert_eq!(r.one("ServiceAccount")["metadata"]["name"], "plo-all-on-sa");

    // Leader election follows replicas; an existing Secret makes the chart write none.
    let two = render(
        None,
        json!({"replicas": 2, "proxmoxCluster": {"create": true, "endpoints": ["https://pve:8006"], "existingSecret": "mine"}}),
        RELEASE_NAMESPACE,
        "v1.33.0",
    );
    assert!(args(two.one("Deployment")).contains(&"--leader-election".to_string()));
    assert_eq!(two.of_kind("Role").len(), 2, "the Secrets and leader-election Roles");
    assert!(two.of_kind("Secret").is_empty());
    let pc = two.one("ProxmoxCluster");
    assert_eq!(pc["spec"]["credentialsRef"]["name"], "mine");
    assert_eq!(pc["spec"]["tenancy"], "Open", "the single-team default");
    // Without the default annotation, and with /metrics open: no review rules, no reader role.
    let plain = render(
        None,
        json!({"metrics": {"secure": false}, "networkPolicy": {"enabled": false}, "proxmoxCluster": {"create": true, "default": false, "endpoints": ["https://pve:8006"], "existingSecret": "mine"}}),
        RELEASE_NAMESPACE,
        "v1.33.0",
    );
    assert!(plain.one("ProxmoxCluster")["metadata"]["annotations"].is_null());
    assert!(plain.of_kind("NetworkPolicy").is_empty());
    assert!(!args(plain.one("Deployment")).contains(&"--metrics-auth".to_string()));
    let text = serde_json::to_string(&plain.objects).unwrap();
    assert!(!text.contains("tokenreviews") && !text.contains("metrics-reader"));
    // policy/v1beta1 for clusters before 1.21 (helm install reads the version from the cluster).
    let old = render(Some(&all_on()), json!({}), RELEASE_NAMESPACE, LOCAL_KUBE_VERSION);
    assert_eq!(old.one("PodDisruptionBudget")["apiVersion"], "policy/v1beta1");
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
            let path = dir
                .path()
                .join(format!("{label}-{i:02}-{}.json", obj["kind"].as_str().unwrap()));
            std::fs::write(&path, obj.to_string()).unwrap();
            files.push(path);
        }
    }
    assert_eq!(skipped, ["all-on: \"ProxmoxCluster\"", "all-on: \"ServiceMonitor\""]);
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
    let all_on: Value = serde_saphyr::from_str(&std::fs::read_to_string(all_on()).unwrap()).unwrap();
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
        (json!({"image": {"pullPolicy": "Sometimes"}}), "/image/pullPolicy"),
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
        (json!({"proxmoxCluster": {"create": true}}), "/proxmoxCluster"),
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
        (
            json!({"proxmoxCluster": {"tenancy": "Closed"}}),
            "/proxmoxCluster/tenancy",
        ),
        // ProxmoxClusters are cluster-scoped, their Secrets in the release namespace
        (json!({"proxmoxCluster": {"namespace": "team-a"}}), "namespace"),
        (json!({"rbac": {"tenantSecrets": "no"}}), "/rbac/tenantSecrets"),
        (json!({"metrics": {"secure": "yes"}}), "/metrics/secure"),
        (
            json!({"networkPolicy": {"apiserver": {"cidrs": ["10.0.0.1"], "ports": [443]}}}),
            "/networkPolicy/apiserver/cidrs/0",
        ),
        (
            json!({"networkPolicy": {"proxmox": {"cidrs": ["0.0.0.0/0"], "ports": [0]}}}),
            "/networkPolicy/proxmox/ports/0",
        ),
    ];
    for (values, path) in bad {
        match schema_ok(values.clone()) {
            Ok(()) => panic!("the schema accepted {values}"),
            Err(e) => assert!(e.contains(path), "refusal of {values} does not name {path}: {e}"),
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

#[test]
fn rendered_manifests_are_accepted_by_the_local_apiserver_dry_run() {
    let cp = ControlPlane::shared();
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], Some(SERVICE_MONITOR_CRD));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
        ("all-on", Some(all_on()), json!({"watchNamespaces": [team_a, team_b]})),
    ];
    for (label, values_file, set) in cases {
        let r = render(values_file.as_deref(), set, &release_ns, LOCAL_KUBE_VERSION);
        let started = Instant::now();
        // The CRDs go without kubectl's client-side check, which refuses `x-kubernetes-validations`
        // (CEL) against apiservers older than 1.25 (Helm does not run it); the server still checks.
        let (crds, rest): (Vec<Value>, Vec<Value>) = r
            .objects
            .iter()
            .cloned()
            .partition(|o| o["kind"] == "CustomResourceDefinition");
        assert_eq!(crds.len(), 8, "{label}: the eight CRDs are in the release");
        let mut stdout = String::new();
        for (objects, extra) in [(&crds, Some("--validate=false")), (&rest, None)] {
            let mut args = vec!["apply", "--dry-run=server", "-f", "-"];
            args.extend(extra);
            let out = cp.kubectl_stdin(&args, Some(&as_list(objects)));
            stdout.push_str(&String::from_utf8_lossy(&out.stdout));
            assert!(
                out.status.success(),
                "the apiserver refused the {label} release: {}\n{stdout}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
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
            assert!(stdout.contains("poddisruptionbudget.policy/plo-all-on"), "{stdout}");
            assert!(
                stdout.contains("servicemonitor.monitoring.coreos.com/plo-all-on"),
                "{stdout}"
            );
            assert!(stdout.contains("proxmoxcluster.pve.lxc.dev/default"), "{stdout}");
        }
    }
}
