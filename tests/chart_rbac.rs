//! The chart's RBAC, for real: its ServiceAccount and (Cluster)Roles installed on the local
//! kube-apiserver, checked by impersonation (`kubectl auth can-i --as=...`), and the operator
//! reconciling an example with nothing but those rights.

mod common;
mod helm;

use common::{repo, ControlPlane};
use helm::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
    (format!("system:serviceaccount:{release_ns}:{sa}"), cluster_scoped)
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
        &["update", "proxmoxclusters.pve.lxc.dev", "--subresource=status"],
        &["update", "lxccontainers.pve.lxc.dev", "--subresource=finalizers"],
        &["patch", "lxctemplates.pve.lxc.dev"],
        &["create", "lxcbackups.pve.lxc.dev"],
        &["delete", "lxcbackups.pve.lxc.dev"],
        &["get", "secrets/pve-credentials"],
        &["get", "configmaps/app-settings"],
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
        &["list", "configmaps"],
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
    assert!(can_i(cp, &sa, Some(&watched), &["list", "lxccontainers.pve.lxc.dev"]));
    assert!(can_i(cp, &sa, Some(&watched), &["get", "secrets/pve-credentials"]));
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
        !can_i(cp, &sa, Some(&other), &["list", "lxccontainers.pve.lxc.dev"]),
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
        !can_i(cp, &sa, Some(&watched), &["create", "leases.coordination.k8s.io"]),
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
        let mut kubeconfig: Value =
            serde_json::from_str(&cp.kubectl_ok(&["config", "view", "--raw", "--flatten", "-o", "json"])).unwrap();
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
            .args(["--task-poll-interval", "200ms", "--drift-check-interval", "0s"])
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "info,kube_runtime=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start operator");
        ImpersonatedOperator { child, log, _dir: dir }
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
    let example = std::fs::read_to_string(repo().join("examples/lxccontainer-minimal.yaml")).unwrap();
    let out = cp.kubectl_stdin(&["apply", "-n", &apps, "-f", "-"], Some(&example));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let name = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: "))
        .unwrap()
        .trim()
        .to_string();
    let obj = common::wait_ready(cp, &apps, "lxc", &name, timeout);
    let vmid = obj["status"]["vmid"].as_u64().expect("vmid in status");
    assert!(sim.container(vmid).is_some(), "container {vmid} not in the simulator");
    let log = op.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    drop(op);
    cleanup(cp, &cluster_scoped);
}
