//! Tenancy end to end: namespaces are security boundaries. Each test is an attack path of the
//! security review (`shared/reviews/security-2026-12.md`, findings 1–8) on a real kube-apiserver
//! and the Proxmox simulator, named after what it prevents: the tenant in namespace `a` goes
//! after what the operator made for namespace `b`, on one Proxmox and one token.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn container(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}"
    )
}

fn raw_container(name: &str, spec: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

/// Two tenant namespaces on one Proxmox (one token), one operator watching both.
struct Env {
    cp: &'static ControlPlane,
    /// The attacker's namespace (also the operator's own).
    a: String,
    /// The victim's namespace.
    b: String,
    sim: Sim,
    op: Operator,
}

fn env(prefix: &str) -> Env {
    let cp = ControlPlane::shared();
    let a = cp.namespace(&format!("{prefix}-a"));
    let b = cp.namespace(&format!("{prefix}-b"));
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &a, &sim, "1s");
    let op = Operator::start(cp, &format!("{a},{b}"));
    wait_ready(cp, &a, "proxmoxcluster", &a, T);
    Env { cp, a, b, sim, op }
}

/// Waits until `kind/name` in `ns` has Ready=False with `reason`; returns the message.
fn refused(e: &Env, ns: &str, kind: &str, name: &str, reason: &str) -> String {
    let what = format!("{kind}/{name} Ready=False reason={reason}");
    wait_for(&what, T, || {
        let o = get_json(e.cp, ns, kind, name)?;
        condition(&o, "Ready").filter(|(s, r, _)| s == "False" && r == reason)
    })
    .2
}

fn vmid(o: &Value) -> u64 {
    o["status"]["vmid"].as_u64().expect("a vmid in status")
}

/// B's stopped container, made by the operator for namespace b.
fn victim(e: &Env) -> u64 {
    e.cp.apply(&e.b, &container("db", "  state: Stopped\n"));
    vmid(&wait_ready(e.cp, &e.b, "lxc", "db", T))
}

/// A completed backup of B's container; returns its archive volid.
fn victim_archive(e: &Env) -> (u64, String) {
    let v = victim(e);
    e.cp.apply(&e.b,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: db-1\nspec:\n  containerRef: {name: db}\n  storage: local\n",
    );
    let b = wait_ready(e.cp, &e.b, "lxcb", "db-1", T);
    (v, b["status"]["volid"].as_str().unwrap().to_string())
}

#[test]
fn tenant_cannot_clone_a_container_of_another_namespace() {
    let e = env("t-clone");
    let v = victim(&e);
    let before = e.sim.containers().len();
    e.cp.apply(
        &e.a,
        &raw_container("copy", &format!("  source:\n    clone: {{vmid: {v}, full: true}}\n")),
    );
    let msg = refused(&e, &e.a, "lxc", "copy", "NotOwned");
    assert!(msg.contains("another namespace"), "{msg}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.containers().len(), before, "no copy of B's disk exists");
    assert_eq!(e.sim.count("POST /nodes/{node}/lxc/{vmid}/clone"), 0);
}

#[test]
fn tenant_cannot_restore_an_archive_of_another_namespace() {
    let e = env("t-restore");
    let (_, volid) = victim_archive(&e);
    let before = e.sim.containers().len();
    e.cp.apply(
        &e.a,
        &raw_container("stolen", &format!("  source:\n    backup: {{volid: \"{volid}\"}}\n")),
    );
    let msg = refused(&e, &e.a, "lxc", "stolen", "NotOwned");
    assert!(msg.contains(&volid), "{msg}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.containers().len(), before, "nothing was restored");
}

#[test]
fn a_reused_vmid_never_shows_the_previous_owners_archives() {
    let e = env("t-reuse");
    let (v, volid) = victim_archive(&e);
    // B deletes its container; the archive stays (purge keeps archives), the vmid is free
    e.cp.kubectl_ok(&["delete", "-n", &e.b, "lxc", "db", "--wait=true", "--timeout=60s"]);
    assert!(e.sim.container(v).is_none());
    e.cp.apply(&e.a, &container("next", &format!("  vmid: {v}\n")));
    let o = wait_ready(e.cp, &e.a, "lxc", "next", T);
    assert_eq!(vmid(&o), v, "A got B's old vmid");
    // status.backups is refreshed with the usage: give it a few inventory rounds
    std::thread::sleep(Duration::from_secs(4));
    let o = get_json(e.cp, &e.a, "lxc", "next").unwrap();
    let listed = o["status"]["backups"].to_string();
    assert!(!listed.contains(&volid), "B's archive is listed for A: {listed}");
}

#[test]
fn a_forged_backup_status_never_restores_or_deletes_a_foreign_archive() {
    let e = env("t-forge");
    let (v, volid) = victim_archive(&e);
    // A's own LxcBackup of a container that does not exist, its status forged to B's archive
    e.cp.apply(&e.a,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: fake\nspec:\n  containerRef: {name: nothing}\n",
    );
    let forged = format!(
        r#"{{"status":{{"phase":"Completed","volid":"{volid}","vmid":{v},"node":"pve1","storage":"local","cluster":"{}"}}}}"#,
        e.a
    );
    e.cp.kubectl_ok(&[
        "patch",
        "-n",
        &e.a,
        "lxcb",
        "fake",
        "--subresource=status",
        "--type=merge",
        "-p",
        &forged,
    ]);
    e.cp.apply(&e.a, &raw_container("stolen", "  source:\n    backup: {name: fake}\n"));
    let msg = refused(&e, &e.a, "lxc", "stolen", "NotOwned");
    assert!(msg.contains("was not made by it"), "{msg}");
    e.cp.kubectl_ok(&["delete", "-n", &e.a, "lxcb", "fake", "--wait=true", "--timeout=60s"]);
    let listed = e.sim.call(
        "GET",
        &format!("/nodes/pve1/storage/local/content?content=backup&vmid={v}"),
        &[],
    );
    assert!(listed.to_string().contains(&volid), "B's archive was deleted: {listed}");
}

#[test]
fn observe_only_cannot_adopt_or_back_up_a_container_of_another_namespace() {
    let e = env("t-observe");
    let v = victim(&e);
    e.cp.apply(&e.a,
        &raw_container(
            "spy",
            &format!(
                "  vmid: {v}\n  management: ObserveOnly\n  source: {{osTemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n"
            ),
        ),
    );
    refused(&e, &e.a, "lxc", "spy", "NotOwned");
    let o = get_json(e.cp, &e.a, "lxc", "spy").unwrap();
    assert!(o["status"]["node"].is_null(), "where B's container runs leaked: {o}");
    assert!(o["status"]["vmid"].is_null(), "{o}");
    // even a read-only adoption of one's own hand-made guest is never backed up
    e.cp.apply(&e.a,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: spy-1\nspec:\n  containerRef: {name: spy}\n  mode: stop\n",
    );
    refused(&e, &e.a, "lxcb", "spy-1", "NotOwned");
    assert_eq!(
        e.sim.count("POST /nodes/{node}/vzdump"),
        0,
        "no vzdump ran on B's container"
    );
}

#[test]
fn observe_only_never_runs_a_backup_even_in_its_own_namespace() {
    let e = env("t-observe-own");
    // a hand-made container (the single-team case: adopting it read-only is allowed)
    e.sim.call(
        "POST",
        "/nodes/pve1/lxc",
        &[
            ("vmid", "700"),
            ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
        ],
    );
    wait_for("CT 700", T, || e.sim.container(700).map(|_| ()));
    e.cp.apply(&e.a,
        &raw_container(
            "legacy",
            "  vmid: 700\n  management: ObserveOnly\n  source: {osTemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}\n",
        ),
    );
    wait_ready(e.cp, &e.a, "lxc", "legacy", T);
    e.cp.apply(&e.a,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackup\nmetadata:\n  name: legacy-1\nspec:\n  containerRef: {name: legacy}\n  mode: stop\n",
    );
    let msg = refused(&e, &e.a, "lxcb", "legacy-1", "NotOwned");
    assert!(msg.contains("ObserveOnly"), "{msg}");
    assert_eq!(e.sim.count("POST /nodes/{node}/vzdump"), 0);
}

#[test]
fn a_forged_status_never_makes_the_operator_claim_or_destroy_a_foreign_container() {
    let mut e = env("t-claim");
    let v = victim(&e);
    let tags_before = e.sim.container(v).unwrap()["config"]["tags"].clone();
    // with the operator stopped, A makes a clone object whose status claims B's container as
    // the clone it started
    e.op.kill();
    e.cp.apply(
        &e.a,
        &raw_container("thief", "  source:\n    clone: {vmid: 999, full: true}\n"),
    );
    e.cp.kubectl_ok(&[
        "patch",
        "-n",
        &e.a,
        "lxc",
        "thief",
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status":{{"vmid":{v},"phase":"Creating","node":"pve1","cluster":"{}"}}}}"#,
            e.a
        ),
    ]);
    e.op.restart();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        e.sim.container(v).unwrap()["config"]["tags"],
        tags_before,
        "B's container was re-tagged"
    );
    e.cp.kubectl_ok(&["delete", "-n", &e.a, "lxc", "thief", "--wait=true", "--timeout=60s"]);
    assert!(e.sim.container(v).is_some(), "B's container was destroyed");
}

#[test]
fn the_operator_reads_cluster_credentials_only_from_its_own_namespace() {
    let e = env("t-deputy");
    // the admin's token Secret lives in b; a ProxmoxCluster naming it (pointed at another
    // endpoint) must not make the operator read it and send it there
    let evil = Sim::start(&[]);
    e.cp.apply(&e.b,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: admin-token\nstringData:\n  tokenId: \"{SIM_TOKEN_ID}\"\n  tokenSecret: \"{SIM_TOKEN_SECRET}\"\n"
        ),
    );
    let name = format!("{}-evil", e.a);
    let m = format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxCluster\nmetadata:\n  name: {name}\n  labels: {{{TEST_CLUSTER_LABEL}: {a}}}\nspec:\n  endpoints: [\"{}\"]\n  credentialsRef: {{name: admin-token}}\n  tls: {{insecureSkipVerify: true}}\n",
        evil.url,
        a = e.a
    );
    e.cp.apply(&e.a, &m);
    let msg = refused(&e, &e.a, "proxmoxcluster", &name, "CredentialsNotFound");
    assert!(msg.contains(&e.a), "the message names the namespace looked in: {msg}");
    assert_eq!(
        evil.stats()["requests"].as_u64().unwrap_or(0),
        0,
        "nothing reached the endpoint"
    );
}

#[test]
fn a_secret_not_meant_as_a_root_password_is_never_used_as_one() {
    let e = env("t-passwd");
    e.cp.apply(&e.a,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-creds\ntype: kubernetes.io/basic-auth\nstringData:\n  username: app\n  password: s3cret\n",
    );
    e.cp.apply(
        &e.a,
        &container(
            "web",
            "  auth:\n    passwordSecretRef: {name: db-creds, key: password}\n",
        ),
    );
    let msg = refused(&e, &e.a, "lxc", "web", "PasswordSecretNotFound");
    assert!(msg.contains("pve.lxc.dev/root-password"), "{msg}");
    assert!(e.sim.containers().is_empty());
}

#[test]
fn root_credentials_with_a_clone_source_are_refused_not_ignored() {
    let e = env("t-auth");
    e.cp.apply(&e.a,
        &raw_container(
            "copy",
            "  source:\n    clone: {vmid: 999}\n  auth:\n    sshPublicKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGv2Hq6Nl1aJ0aQ5tMx0tq9nF5mDl5n4dWAq6Zp2y6Jc a@b\"]\n",
        ),
    );
    let msg = refused(&e, &e.a, "lxc", "copy", "InvalidSpec");
    assert!(msg.contains("osTemplate"), "{msg}");
}

#[test]
fn a_privileged_archive_is_restored_unprivileged() {
    let e = env("t-priv-restore");
    // a privileged container made by hand, and its archive
    e.sim.call(
        "POST",
        "/nodes/pve1/lxc",
        &[
            ("vmid", "800"),
            ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
            ("unprivileged", "0"),
        ],
    );
    wait_for("CT 800 made", T, || {
        e.sim.container(800).filter(|c| c["lock"].is_null()).map(|_| ())
    });
    let upid = e
        .sim
        .call("POST", "/nodes/pve1/vzdump", &[("vmid", "800"), ("storage", "local")]);
    assert!(upid["data"].as_str().is_some_and(|u| u.starts_with("UPID:")), "{upid}");
    let volid = wait_for("its archive", T, || {
        let v = e
            .sim
            .call("GET", "/nodes/pve1/storage/local/content?content=backup&vmid=800", &[]);
        v["data"][0]["volid"].as_str().map(str::to_string)
    });
    e.cp.apply(
        &e.a,
        &raw_container("restored", &format!("  source:\n    backup: {{volid: \"{volid}\"}}\n")),
    );
    let v = vmid(&wait_ready(e.cp, &e.a, "lxc", "restored", T));
    assert_eq!(
        e.sim.container(v).unwrap()["config"]["unprivileged"],
        "1",
        "the archive's privilege flag was kept"
    );
}

/// A tenant covering namespace `a` only, on the test's cluster.
fn tenant(e: &Env, spec: &str) {
    let m = format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxTenant\nmetadata:\n  name: {a}\nspec:\n  clusters: [{a}]\n  namespaces: [{a}]\n{spec}",
        a = e.a
    );
    e.cp.apply(&e.a, &m);
}

#[test]
fn a_restricted_cluster_admits_only_the_namespaces_of_its_tenants() {
    let e = env("t-restricted");
    e.cp.kubectl_ok(&[
        "patch",
        "proxmoxcluster",
        &e.a,
        "--type=merge",
        "-p",
        r#"{"spec":{"tenancy":"Restricted"}}"#,
    ]);
    e.sim.call("POST", "/pools", &[("poolid", "team-a")]);
    tenant(&e, "  pool: team-a\n  vmidRange: {min: 3000, max: 3009}\n");
    e.cp.apply(&e.b, &container("outsider", ""));
    e.cp.apply(&e.a, &container("insider", ""));
    let msg = refused(&e, &e.b, "lxc", "outsider", "TenantPolicyClusterNotAllowed");
    assert!(msg.contains("Restricted"), "{msg}");
    let o = wait_ready(e.cp, &e.a, "lxc", "insider", T);
    let v = vmid(&o);
    assert!((3000..=3009).contains(&v), "allocated inside the tenant's range: {v}");
    assert_eq!(
        e.sim.container(v).unwrap()["pool"],
        "team-a",
        "put in the tenant's pool"
    );
    assert_eq!(e.sim.containers().len(), 1, "the outsider reached nothing");
    let listed = e.cp.kubectl_ok(&["get", "pvet", &e.a]);
    assert!(listed.contains(&e.a), "{listed}");
}

#[test]
fn a_tenants_limits_are_named_when_a_spec_exceeds_them_and_nothing_reaches_proxmox() {
    let e = env("t-limits");
    tenant(
        &e,
        "  network:\n    bridges: [{name: vmbr0, vlans: [20]}]\n  quota: {containers: 2}\n",
    );
    let nic = |extra: &str| format!("  network:\n    - {{name: eth0, bridge: vmbr0, vlan: 20{extra}}}\n");
    e.cp.apply(&e.a, &container("priv", &format!("  unprivileged: false\n{}", nic(""))));
    e.cp.apply(
        &e.a,
        &container("vlan", "  network:\n    - {name: eth0, bridge: vmbr0, vlan: 30}\n"),
    );
    e.cp.apply(&e.a, &container("mac", &nic(", mac: \"BC:24:11:00:00:01\"")));
    refused(&e, &e.a, "lxc", "priv", "TenantPolicyPrivileged");
    let msg = refused(&e, &e.a, "lxc", "vlan", "TenantPolicyNetwork");
    assert!(msg.contains("VLAN 30"), "{msg}");
    refused(&e, &e.a, "lxc", "mac", "TenantPolicyMacAddress");
    assert!(e.sim.containers().is_empty(), "nothing reached Proxmox");
    // within the limits: made, with the firewall forced on and Proxmox's MAC filter
    for n in ["one", "two", "three"] {
        e.cp.apply(&e.a, &container(n, &nic("")));
    }
    let mut made = 0;
    wait_for("two made, the third refused by the quota", T, || {
        let ready: Vec<bool> = ["one", "two", "three"]
            .iter()
            .map(|n| {
                get_json(e.cp, &e.a, "lxc", n)
                    .and_then(|o| condition(&o, "Ready"))
                    .is_some_and(|c| c.0 == "True")
            })
            .collect();
        made = ready.iter().filter(|r| **r).count();
        let quota = ["one", "two", "three"].iter().any(|n| {
            get_json(e.cp, &e.a, "lxc", n)
                .and_then(|o| condition(&o, "Ready"))
                .is_some_and(|c| c.1 == "TenantPolicyQuotaExceeded")
        });
        (made == 2 && quota).then_some(())
    });
    assert_eq!(e.sim.containers().len(), 2, "the quota held");
    let ct = e.sim.containers().into_iter().next().unwrap();
    let net0 = ct["config"]["net0"].as_str().unwrap_or_default().to_string();
    assert!(net0.contains("firewall=1"), "{net0}");
    let v = ct["vmid"].as_u64().unwrap();
    let opts = wait_for("the forced firewall options", T, || {
        let o = e.sim.container(v)?["firewall_options"].clone();
        (o["enable"] == "1").then_some(o)
    });
    assert_eq!(opts["macfilter"], "1", "{opts}");
    let usage = wait_for("usage in the tenant's status", T, || {
        let t = get_json(e.cp, &e.a, "pvet", &e.a)?;
        let c = t["status"]["usage"]["containers"].as_str()?.to_string();
        (c == "2/2").then_some(c)
    });
    assert_eq!(usage, "2/2");
}

/// A guest the admin made by hand at `vmid` (a "golden" template) with `params`, made a template.
fn golden(e: &Env, vmid: u64, params: &[(&str, &str)]) {
    let id = vmid.to_string();
    let mut all = vec![
        ("vmid", id.as_str()),
        ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
        ("unprivileged", "1"),
    ];
    all.extend_from_slice(params);
    e.sim.call("POST", "/nodes/pve1/lxc", &all);
    wait_for("the golden guest made", T, || {
        e.sim.container(vmid).filter(|c| c["lock"].is_null()).map(|_| ())
    });
    e.sim.call("POST", &format!("/nodes/pve1/lxc/{vmid}/template"), &[]);
    wait_for("the golden guest a template", T, || {
        e.sim.container(vmid).filter(|c| c["template"] == true).map(|_| ())
    });
}

/// The vmid the operator recorded for `name` in namespace `a` once Proxmox has the guest.
fn made(e: &Env, name: &str) -> u64 {
    wait_for(&format!("{name} made in Proxmox"), T, || {
        let v = get_json(e.cp, &e.a, "lxc", name)?["status"]["vmid"].as_u64()?;
        e.sim.container(v).filter(|c| c["lock"].is_null()).map(|_| v)
    })
}

#[test]
fn a_tenant_cannot_reach_the_admins_lan_by_cloning_a_shared_template() {
    let e = env("t-clone-lan");
    // the admin's template: net0 on vmbr0 untagged (the admin's LAN), no firewall
    golden(&e, 9000, &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp")]);
    tenant(
        &e,
        "  network:\n    bridges: [{name: vmbr0, vlans: [20]}]\n  sharedVmids: [{min: 9000, max: 9000}]\n",
    );
    // no spec.network: the clone keeps the template's net0
    e.cp.apply(
        &e.a,
        &raw_container("copy", "  source:\n    clone: {vmid: 9000, full: true}\n"),
    );
    let msg = refused(&e, &e.a, "lxc", "copy", "TenantPolicyNetwork");
    assert!(msg.contains("net0") && msg.contains("untagged"), "{msg}");
    let v = made(&e, "copy");
    std::thread::sleep(Duration::from_secs(3));
    let ct = e.sim.container(v).unwrap();
    assert_eq!(
        ct["status"], "stopped",
        "the clone on the admin's LAN was started: {ct}"
    );
    // with its interfaces in the spec, the operator replaces the template's and starts it
    e.cp.apply(
        &e.a,
        &raw_container(
            "copy",
            "  source:\n    clone: {vmid: 9000, full: true}\n  network:\n    - {name: eth0, bridge: vmbr0, vlan: 20}\n",
        ),
    );
    wait_ready(e.cp, &e.a, "lxc", "copy", T);
    let ct = e.sim.container(v).unwrap();
    let net0 = ct["config"]["net0"].as_str().unwrap_or_default().to_string();
    assert!(net0.contains("tag=20") && net0.contains("firewall=1"), "{net0}");
    assert_eq!(ct["status"], "running");
}

#[test]
fn a_tenant_without_extra_features_cannot_get_keyctl_from_a_clone_source() {
    let e = env("t-clone-feat");
    golden(&e, 9001, &[("features", "keyctl=1,nesting=1")]);
    tenant(&e, "  sharedVmids: [{min: 9001, max: 9001}]\n");
    e.cp.apply(
        &e.a,
        &raw_container("copy", "  source:\n    clone: {vmid: 9001, full: true}\n"),
    );
    let msg = refused(&e, &e.a, "lxc", "copy", "TenantPolicyFeatures");
    assert!(msg.contains("keyctl"), "{msg}");
    let v = made(&e, "copy");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.container(v).unwrap()["status"], "stopped", "started with keyctl");
    // features in the spec replace the source's
    e.cp.apply(
        &e.a,
        &raw_container(
            "copy",
            "  source:\n    clone: {vmid: 9001, full: true}\n  features: {nesting: true}\n",
        ),
    );
    wait_ready(e.cp, &e.a, "lxc", "copy", T);
    let features = e.sim.container(v).unwrap()["config"]["features"].clone();
    assert!(!features.to_string().contains("keyctl"), "{features}");
}

#[test]
fn an_app_env_secret_not_marked_for_it_never_reaches_proxmox() {
    let e = env("t-appenv");
    e.cp.apply(
        &e.a,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: ci-deployer-token}\nstringData: {token: deploy-s3cret}\n",
    );
    let app = |name: &str, secret: &str| {
        format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    image: {{reference: \"docker.io/library/nginx:1.27\"}}\n  rootfs: {{storage: local-lvm, size: 2Gi}}\n  app:\n    env:\n      - {{name: T, valueFrom: {{secretKeyRef: {{name: {secret}, key: token}}}}}}\n"
        )
    };
    e.cp.apply(&e.a, &app("leak", "ci-deployer-token"));
    let msg = refused(&e, &e.a, "lxc", "leak", "EnvSourceNotFound");
    assert!(
        msg.contains("ci-deployer-token") && msg.contains("pve.lxc.dev/app-env"),
        "{msg}"
    );
    for c in e.sim.containers() {
        assert!(
            !c.to_string().contains("deploy-s3cret"),
            "the token reached Proxmox: {c}"
        );
    }
    // a Secret its owner marked for app.env is read
    e.cp.apply(
        &e.a,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-token\n  labels: {pve.lxc.dev/app-env: \"true\"}\nstringData: {token: app-value}\n",
    );
    e.cp.apply(&e.a, &app("ok", "app-token"));
    let o = wait_ready(e.cp, &e.a, "lxc", "ok", T);
    let v = vmid(&o);
    let env = e.sim.container(v).unwrap()["config"]["env"].to_string();
    assert!(env.contains("T=app-value"), "{env}");
}

#[test]
fn a_resize_past_the_tenants_quota_is_refused_and_proxmox_keeps_its_old_memory() {
    let e = env("t-resize");
    tenant(&e, "  quota: {memory: 1Gi}\n");
    e.cp.apply(&e.a, &container("web", "  resources: {memory: 512Mi}\n"));
    let v = vmid(&wait_ready(e.cp, &e.a, "lxc", "web", T));
    e.cp.apply(&e.a, &container("web", "  resources: {memory: 2Gi}\n"));
    let msg = refused(&e, &e.a, "lxc", "web", "TenantPolicyQuotaExceeded");
    assert!(msg.contains("memory"), "{msg}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        e.sim.container(v).unwrap()["config"]["memory"]
            .to_string()
            .trim_matches('"'),
        "512"
    );
    // a size within the quota is applied again
    e.cp.apply(&e.a, &container("web", "  resources: {memory: 1Gi}\n"));
    wait_for("memory 1024 in Proxmox", T, || {
        let m = e.sim.container(v)?["config"]["memory"].to_string();
        (m.trim_matches('"') == "1024").then_some(())
    });
}

#[test]
fn an_observe_only_object_switched_to_full_is_counted_against_the_quota_first() {
    let e = env("t-switch");
    tenant(&e, "  quota: {containers: 1}\n  vmidRange: {min: 4000, max: 4009}\n");
    e.cp.apply(&e.a, &container("one", ""));
    wait_ready(e.cp, &e.a, "lxc", "one", T);
    // an ObserveOnly object on a free vmid of the range, then switched to Full
    e.cp.apply(&e.a, &container("sleeper", "  vmid: 4005\n  management: ObserveOnly\n"));
    std::thread::sleep(Duration::from_secs(3));
    e.cp.apply(&e.a, &container("sleeper", "  vmid: 4005\n  management: Full\n"));
    refused(&e, &e.a, "lxc", "sleeper", "TenantPolicyQuotaExceeded");
    std::thread::sleep(Duration::from_secs(3));
    assert!(e.sim.container(4005).is_none(), "created past the quota");
    assert_eq!(e.sim.containers().len(), 1);
}

#[test]
fn two_creates_in_the_same_second_cannot_both_exceed_the_quota() {
    let e = env("t-burst");
    tenant(&e, "  quota: {memory: 1Gi}\n");
    let two = format!(
        "{}\n---\n{}",
        container("first", "  resources: {memory: 768Mi}\n"),
        container("second", "  resources: {memory: 768Mi}\n")
    );
    e.cp.apply(&e.a, &two);
    wait_for("one made, the other refused by the quota", T, || {
        let reasons: Vec<String> = ["first", "second"]
            .iter()
            .filter_map(|n| condition(&get_json(e.cp, &e.a, "lxc", n)?, "Ready").map(|c| c.1))
            .collect();
        (reasons.iter().any(|r| r == "TenantPolicyQuotaExceeded") && e.sim.containers().len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.containers().len(), 1, "the quota held");
}

#[test]
fn containers_made_before_a_restart_count_against_the_quota_right_after_it() {
    let mut e = env("t-restart");
    tenant(&e, "  quota: {containers: 1}\n");
    e.cp.apply(&e.a, &container("one", ""));
    wait_ready(e.cp, &e.a, "lxc", "one", T);
    e.op.kill();
    e.cp.apply(&e.a, &container("two", ""));
    e.op.restart();
    refused(&e, &e.a, "lxc", "two", "TenantPolicyQuotaExceeded");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.containers().len(), 1, "the quota held across the restart");
}

#[test]
fn a_tenants_limits_hold_for_what_is_applied_while_the_operator_is_down() {
    let mut e = env("t-cold");
    e.op.kill();
    // a tenant selecting namespace a by label, and a privileged container in it, all made
    // while the operator is down: its first passes run as its caches fill
    e.cp.kubectl_ok(&["label", "namespace", &e.a, &format!("tenant={}", e.a)]);
    e.cp.apply(
        &e.a,
        &format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxTenant\nmetadata:\n  name: {a}\nspec:\n  clusters: [{a}]\n  namespaceSelector: {{matchLabels: {{tenant: {a}}}}}\n",
            a = e.a
        ),
    );
    e.cp.apply(&e.a, &container("root", "  unprivileged: false\n"));
    e.op.restart();
    refused(&e, &e.a, "lxc", "root", "TenantPolicyPrivileged");
    assert!(e.sim.containers().is_empty(), "a privileged container was made");
}

#[test]
fn a_tenants_vmid_range_does_not_run_dry_when_its_containers_are_deleted() {
    let e = env("t-vmids");
    tenant(&e, "  vmidRange: {min: 5000, max: 5002}\n");
    for i in 0..5 {
        e.cp.apply(&e.a, &container("cycle", "  state: Stopped\n"));
        let o = wait_ready(e.cp, &e.a, "lxc", "cycle", T);
        assert!((5000..=5002).contains(&vmid(&o)), "round {i}: {o}");
        e.cp.kubectl_ok(&["delete", "-n", &e.a, "lxc", "cycle", "--wait=true", "--timeout=60s"]);
    }
}

#[test]
fn a_container_outside_its_tenants_limits_in_proxmox_says_so_and_is_not_started_again() {
    let e = env("t-outside");
    tenant(&e, "  network:\n    bridges: [{name: vmbr0, vlans: [20]}]\n");
    e.cp.apply(&e.a, &container("web", ""));
    let v = vmid(&wait_ready(e.cp, &e.a, "lxc", "web", T));
    // an interface on the untagged LAN appears in Proxmox (by hand, or a snapshot rollback):
    // the spec lists no interfaces, so the operator does not manage them
    let r = e.sim.call(
        "PUT",
        &format!("/nodes/pve1/lxc/{v}/config"),
        &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp")],
    );
    assert!(
        e.sim.container(v).unwrap()["config"]["net0"].is_string(),
        "the simulator took the change: {r}"
    );
    // a change of the object makes a pass (the test operator's drift check is off)
    e.cp.kubectl_ok(&["annotate", "-n", &e.a, "lxc", "web", "poke=1"]);
    let c = wait_for("OutsideTenantPolicy", T, || {
        condition(&get_json(e.cp, &e.a, "lxc", "web")?, "OutsideTenantPolicy").filter(|c| c.0 == "True")
    });
    assert_eq!(c.1, "TenantPolicyNetwork", "{c:?}");
    assert!(c.2.contains("net0"), "{c:?}");
    // stopped outside Kubernetes, it is not started again while outside the limits
    e.sim.call("POST", &format!("/nodes/pve1/lxc/{v}/status/stop"), &[]);
    refused(&e, &e.a, "lxc", "web", "TenantPolicyNetwork");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.sim.container(v).unwrap()["status"], "stopped");
}

fn template(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcTemplate\nmetadata:\n  name: {name}\nspec:\n  image: {{volid: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}}\n{extra}"
    )
}

#[test]
fn a_tenants_template_outside_its_nodes_or_vmid_range_is_refused_and_counts_against_its_disk_quota() {
    let e = env("t-tmpl");
    tenant(
        &e,
        "  nodes: [pve1]\n  vmidRange: {min: 1000, max: 1099}\n  quota: {disk: 12Gi}\n",
    );
    e.cp.apply(&e.a, &template("far", "  node: pve3\n"));
    e.cp.apply(&e.a, &template("squat", "  vmid: 5000\n"));
    let msg = refused(&e, &e.a, "lxctemplate", "far", "TenantPolicyNode");
    assert!(msg.contains("pve3"), "{msg}");
    refused(&e, &e.a, "lxctemplate", "squat", "TenantPolicyVmidRange");
    // within the limits: built on the tenant's node, inside its range
    e.cp.apply(&e.a, &template("base", ""));
    let o = wait_ready(e.cp, &e.a, "lxctemplate", "base", T);
    let v = vmid(&o);
    assert!((1000..=1099).contains(&v), "inside the tenant's range: {v}");
    assert_eq!(o["status"]["node"], "pve1");
    // its 8 GiB root disk counts: another 8 GiB would pass the 12 GiB quota
    e.cp.apply(&e.a, &container("web", ""));
    let msg = refused(&e, &e.a, "lxc", "web", "TenantPolicyQuotaExceeded");
    assert!(msg.contains("disk"), "{msg}");
    assert!(e.sim.container(5000).is_none(), "the other tenant's vmid was taken");
    assert_eq!(e.sim.containers().len(), 1, "only the template reached Proxmox");
}
