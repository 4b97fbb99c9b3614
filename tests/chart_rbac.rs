//! The chart's RBAC, for real: its ServiceAccount and (Cluster)Roles installed on the local
//! kube-apiserver, checked by impersonation (`kubectl auth can-i --as=...`), the tenant roles
//! checked the same way, and the operator reconciling an example with nothing but those rights.

mod common;
mod helm;

use common::{repo, ControlPlane};
use helm::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// `kubectl auth can-i` as `user` (the chart's ServiceAccount, or a tenant).
fn can_i(cp: &ControlPlane, user: &str, namespace: Option<&str>, args: &[&str]) -> bool {
    let mut all: Vec<&str> = vec!["auth", "can-i", "--as", user];
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

/// Renders the chart with `values` as a release of its own name (`release_ns`: the cluster-scoped
/// names do not collide with other tests) and installs its RBAC: [`install_rbac`]'s answer.
fn install_release(cp: &ControlPlane, release_ns: &str, mut values: Value) -> (String, Vec<String>) {
    values["fullnameOverride"] = json!(release_ns);
    let r = render(None, values, release_ns, LOCAL_KUBE_VERSION);
    install_rbac(cp, &r, release_ns)
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
    let (sa, cluster_scoped) = install_release(cp, &release_ns, json!({}));
    let ns = Some(apps.as_str());
    let allowed: &[&[&str]] = &[
        &["list", "lxccontainers.pve.lxc.dev"],
        &["watch", "lxcbackupschedules.pve.lxc.dev"],
        &["watch", "lxcsnapshotschedules.pve.lxc.dev"],
        &["patch", "lxcsnapshotschedules.pve.lxc.dev", "--subresource=status"],
        &["patch", "lxccontainers.pve.lxc.dev", "--subresource=status"],
        &["update", "proxmoxclusters.pve.lxc.dev", "--subresource=status"],
        &["patch", "proxmoxtenants.pve.lxc.dev", "--subresource=status"],
        &["watch", "proxmoxtenants.pve.lxc.dev"],
        &["list", "namespaces"],
        &["watch", "namespaces"],
        &["update", "lxccontainers.pve.lxc.dev", "--subresource=finalizers"],
        &["patch", "lxctemplates.pve.lxc.dev"],
        &["create", "lxcbackups.pve.lxc.dev"],
        &["delete", "lxcbackups.pve.lxc.dev"],
        &["create", "lxcsnapshots.pve.lxc.dev"],
        &["delete", "lxcsnapshots.pve.lxc.dev"],
        &["get", "configmaps/app-settings"],
        &["create", "events"],
        &["patch", "events"],
        &["create", "services"],
        &["get", "services/web"],
        &["delete", "endpointslices.discovery.k8s.io"],
        &["create", "tokenreviews.authentication.k8s.io"],
        &["create", "subjectaccessreviews.authorization.k8s.io"],
    ];
    for a in allowed {
        assert!(can_i(cp, &sa, ns, a), "the operator needs {a:?}");
    }
    assert!(
        can_i(cp, &sa, None, &["list", "lxccontainers.pve.lxc.dev"]),
        "cluster mode watches all namespaces"
    );
    for crd in ["lxccontainers", "proxmoxtenants"] {
        let crd = format!("customresourcedefinitions.apiextensions.k8s.io/{crd}.pve.lxc.dev");
        assert!(can_i(cp, &sa, ns, &["get", &crd]), "{crd}");
    }
    assert!(can_i(cp, &sa, Some(&release_ns), &["get", "secrets/pve-credentials"]));
    let denied: &[&[&str]] = &[
        // rbac.tenantSecrets is off by default: no Secret of a tenant namespace
        &["get", "secrets/root-password"],
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
        &["create", "proxmoxtenants.pve.lxc.dev"],
        &["update", "namespaces"],
        // Services and EndpointSlices are read by name, never listed or watched
        &["list", "services"],
        &["watch", "endpointslices.discovery.k8s.io"],
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
    assert!(
        !can_i(cp, &sa, Some(&release_ns), &["list", "secrets"]),
        "not even in its own namespace"
    );
    cleanup(cp, &cluster_scoped);
}

#[test]
fn without_tenant_secrets_the_operator_reads_secrets_only_in_its_own_namespace() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacsec");
    let apps = cp.namespace("plo-secapps");
    let (sa, cluster_scoped) = install_release(cp, &release_ns, json!({"rbac": {"tenantSecrets": false}}));
    let own = Some(release_ns.as_str());
    assert!(
        can_i(cp, &sa, own, &["get", "secrets/pve-credentials"]),
        "ProxmoxCluster credentials and CA"
    );
    assert!(!can_i(cp, &sa, own, &["list", "secrets"]));
    assert!(!can_i(cp, &sa, own, &["watch", "secrets"]));
    assert!(
        !can_i(cp, &sa, Some(&apps), &["get", "secrets/root-password"]),
        "no Secrets in tenant namespaces"
    );
    assert!(!can_i(cp, &sa, None, &["get", "secrets"]), "no Secrets cluster-wide");
    assert!(
        can_i(cp, &sa, Some(&apps), &["patch", "lxccontainers.pve.lxc.dev"]),
        "the rest is unchanged"
    );
    cleanup(cp, &cluster_scoped);
}

#[test]
fn by_default_the_operator_reads_no_secret_of_a_tenant_namespace_but_those_the_admin_listed() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacdef");
    let (listed, other) = (cp.namespace("plo-seclisted"), cp.namespace("plo-secother"));
    let (sa, cluster_scoped) = install_release(cp, &release_ns, json!({"rbac": {"secretNamespaces": [listed]}}));
    assert!(
        !can_i(cp, &sa, Some(&other), &["get", "secrets/ci-deployer-token"]),
        "a Secret of a namespace the admin did not list"
    );
    assert!(!can_i(cp, &sa, None, &["get", "secrets"]), "no Secrets cluster-wide");
    assert!(
        can_i(cp, &sa, Some(&listed), &["get", "secrets/root-password"]),
        "rbac.secretNamespaces: root passwords and app env Secrets there"
    );
    assert!(!can_i(cp, &sa, Some(&listed), &["list", "secrets"]), "by name only");
    assert!(can_i(cp, &sa, Some(&release_ns), &["get", "secrets/pve-credentials"]));
    // virtual nodes add their part only when enabled
    assert!(!can_i(cp, &sa, None, &["patch", "nodes"]));
    assert!(!can_i(cp, &sa, Some(&other), &["create", "pods/binding"]));
    cleanup(cp, &cluster_scoped);
}

#[test]
fn a_tenant_with_the_edit_role_cannot_write_status_clusters_or_tenants() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacten");
    let team = cp.namespace("plo-team");
    let (_, cluster_scoped) = install_release(cp, &release_ns, json!({}));
    // No controller-manager aggregates the built-in roles here: bind the chart's roles directly.
    let (alice, bob, carol) = (format!("alice-{team}"), format!("bob-{team}"), format!("carol-{team}"));
    let bind = |kind: &str, name: &str, role: &str, user: &str| {
        let ns = if kind == "RoleBinding" {
            format!(r#","namespace":"{team}""#)
        } else {
            String::new()
        };
        format!(
            r#"{{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"{kind}","metadata":{{"name":"{name}"{ns}}},
  "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"{release_ns}-{role}"}},
  "subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"{user}"}}]}}"#
        )
    };
    let admin_binding = format!("{release_ns}-carol");
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[{},{},{}]}}"#,
        bind("RoleBinding", "alice", "edit", &alice),
        bind("RoleBinding", "bob", "view", &bob),
        bind("ClusterRoleBinding", &admin_binding, "cluster-admin", &carol),
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ns = Some(team.as_str());
    for kind in [
        "lxccontainers",
        "lxctemplates",
        "lxcbackups",
        "lxcbackupschedules",
        "lxcsnapshots",
        "lxcsnapshotschedules",
    ] {
        let res = format!("{kind}.pve.lxc.dev");
        for verb in ["create", "update", "patch", "delete", "list", "watch"] {
            assert!(can_i(cp, &alice, ns, &[verb, &res]), "the edit role may {verb} {kind}");
        }
        for verb in ["update", "patch"] {
            assert!(
                !can_i(cp, &alice, ns, &[verb, &res, "--subresource=status"]),
                "status is the operator's proof of what it did: no {verb} of {kind}/status"
            );
        }
        assert!(can_i(cp, &bob, ns, &["get", &res]), "the view role reads {kind}");
        assert!(!can_i(cp, &bob, ns, &["create", &res]), "the view role only reads");
    }
    let console = ["create", "lxccontainers.pve.lxc.dev", "--subresource=console"];
    assert!(
        can_i(cp, &alice, ns, &console),
        "the edit role opens consoles (the web UI's)"
    );
    assert!(!can_i(cp, &bob, ns, &console), "the view role does not");
    assert!(
        can_i(cp, &carol, ns, &console),
        "nor does the cluster-admin role lack it"
    );
    for kind in ["proxmoxclusters", "proxmoxtenants"] {
        let res = format!("{kind}.pve.lxc.dev");
        for verb in ["create", "patch", "update", "delete", "get"] {
            assert!(!can_i(cp, &alice, ns, &[verb, &res]), "a tenant may not {verb} {kind}");
            assert!(
                !can_i(cp, &alice, None, &[verb, &res]),
                "nor cluster-wide: {verb} {kind}"
            );
        }
        assert!(
            can_i(cp, &carol, None, &["create", &res]),
            "the cluster-admin role manages {kind}"
        );
        assert!(can_i(cp, &carol, None, &["patch", &res, "--subresource=status"]));
    }
    assert!(
        !can_i(cp, &alice, ns, &["get", "secrets"]),
        "the chart grants tenants no Secrets"
    );
    assert!(!can_i(cp, &carol, Some(&release_ns), &["get", "secrets"]), "nor admins");
    assert!(
        !can_i(cp, &alice, None, &["create", "lxccontainers.pve.lxc.dev"]),
        "the edit role only in its namespace"
    );
    // And for real: the apiserver refuses a ProxmoxCluster from the tenant.
    let cluster = format!(
        r#"{{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{{"name":"{team}-evil"}},
  "spec":{{"endpoints":["https://evil.example:8006"],"credentialsRef":{{"name":"pve-credentials"}},"tls":{{"insecureSkipVerify":true}}}}}}"#
    );
    let out = cp.kubectl_stdin(&["create", "--as", &alice, "-f", "-"], Some(&cluster));
    assert!(!out.status.success(), "a tenant created a ProxmoxCluster");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = cluster_scoped.clone();
    all.push(format!("clusterrolebinding/{admin_binding}"));
    cleanup(cp, &all);
}

#[test]
fn with_watch_namespaces_the_service_account_is_confined_to_them() {
    let cp = ControlPlane::shared();
    let release_ns = cp.namespace("plo-rbacns");
    let (watched, other) = (cp.namespace("plo-watched"), cp.namespace("plo-other"));
    let (sa, cluster_scoped) = install_release(
        cp,
        &release_ns,
        json!({"watchNamespaces": [watched], "replicas": 2, "rbac": {"tenantSecrets": true}}),
    );
    let lease = format!("leases.coordination.k8s.io/{release_ns}");
    assert!(can_i(cp, &sa, Some(&watched), &["list", "lxccontainers.pve.lxc.dev"]));
    assert!(
        can_i(cp, &sa, Some(&watched), &["get", "secrets/root-password"]),
        "rbac.tenantSecrets: root passwords in the watched namespaces"
    );
    assert!(can_i(cp, &sa, Some(&release_ns), &["get", "secrets/pve-credentials"]));
    assert!(
        can_i(cp, &sa, None, &["watch", "proxmoxclusters.pve.lxc.dev"]),
        "cluster-scoped"
    );
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
        !can_i(cp, &sa, Some(&other), &["get", "secrets/root-password"]),
        "no Secrets outside watchNamespaces and the release namespace"
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
    http_port: u16,
    _dir: tempfile::TempDir,
}

impl ImpersonatedOperator {
    /// Watches `namespace`; lives in `home` (its Secrets, and the label of its ProxmoxClusters).
    fn start(cp: &ControlPlane, service_account: &str, namespace: &str, home: &str) -> Self {
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
        let http_port = common::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
            .args([
                "run",
                "--namespace",
                namespace,
                "--http-addr",
                &format!("127.0.0.1:{http_port}"),
            ])
            .args(["--task-poll-interval", "200ms", "--drift-check-interval", "0s"])
            // as the chart runs it (metrics.secure), and as common's Operator: only its clusters
            .arg("--metrics-auth")
            .args(["--cluster-selector", &format!("{}={home}", common::TEST_CLUSTER_LABEL)])
            .env("POD_NAMESPACE", home)
            .env("KUBECONFIG", &path)
            .env("RUST_LOG", "info,kube_runtime=warn")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start operator");
        ImpersonatedOperator {
            child,
            log,
            http_port,
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
    // The strictest mode: namespace-scoped Roles for one watched namespace, and the chart's
    // metrics-reader role bound to a scraper.
    let scraper = json!([{"kind": "ServiceAccount", "name": "scraper", "namespace": release_ns}]);
    let (sa, cluster_scoped) = install_release(
        cp,
        &release_ns,
        json!({"watchNamespaces": [apps], "metrics": {"readers": scraper}}),
    );
    let sim = common::Sim::start(&["--clock-speed", "5"]);
    // the (cluster-scoped) ProxmoxCluster, its Secret in the release namespace
    common::connect_cluster(cp, &release_ns, &sim, "2s");
    let op = ImpersonatedOperator::start(cp, &sa, &apps, &release_ns);
    let timeout = std::time::Duration::from_secs(90);
    common::wait_ready(cp, &release_ns, "proxmoxcluster", &release_ns, timeout);
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
    // /metrics: the chart's rules let the operator review tokens, its reader role opens them
    assert_eq!(common::http_get(op.http_port, "/metrics", None).0, 401);
    let token = common::service_account_token(cp, &release_ns, "scraper");
    let (code, body) = common::http_get(op.http_port, "/metrics", Some(&token));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("plo_reconcile_total{"), "{body}");
    let log = op.log();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    drop(op);
    cleanup(cp, &cluster_scoped);
}
