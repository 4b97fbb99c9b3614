//! ProxmoxCluster end to end: inventory in status, Ready reasons, credential rotation without a
//! restart, TLS pinning, and adopting an existing container read-only.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn cluster(ns_cp: (&ControlPlane, &str), sim: &Sim, secret: &str, tls: &str) {
    let (cp, ns) = ns_cp;
    let m = format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: ProxmoxCluster\nmetadata: {}\nspec:\n  endpoints: [\"{}\"]\n  credentialsRef: {{name: {secret}}}\n  tls: {tls}\n  resyncInterval: 2s\n",
        cluster_metadata(ns),
        sim.url
    );
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&m));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn secret(cp: &ControlPlane, ns: &str, name: &str, token_secret: &str) {
    let m = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n  tokenId: \"{SIM_TOKEN_ID}\"\n  tokenSecret: \"{token_secret}\"\n");
    let out = cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&m));
    assert!(out.status.success());
}

fn ready_reason(cp: &ControlPlane, ns: &str) -> Option<(String, String, String)> {
    condition(&get_json(cp, ns, "proxmoxcluster", ns)?, "Ready")
}

#[test]
fn the_inventory_is_in_status_and_a_rotated_secret_is_picked_up_without_restart() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("cluster");
    let sim = Sim::start(&[]);
    secret(cp, &ns, "creds", "not-the-secret");
    cluster(
        (cp, &ns),
        &sim,
        "creds",
        &format!("{{fingerprint: \"{}\"}}", sim.fingerprint),
    );
    let _op = Operator::start(cp, &ns);
    let failed = wait_for("AuthenticationFailed", T, || {
        ready_reason(cp, &ns).filter(|c| c.1 == "AuthenticationFailed")
    });
    assert_eq!(failed.0, "False");
    assert!(
        !failed.2.contains("not-the-secret"),
        "the secret leaked into the condition: {}",
        failed.2
    );
    secret(cp, &ns, "creds", SIM_TOKEN_SECRET);
    wait_for("Connected after rotation", T, || {
        ready_reason(cp, &ns).filter(|c| c.1 == "Connected")
    });
    let pc = get_json(cp, &ns, "proxmoxcluster", &ns).unwrap();
    let st = &pc["status"];
    assert_eq!(st["version"], "9.1.3");
    assert_eq!(st["nodesOnline"], "3/3");
    let nodes: Vec<&str> = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, vec!["pve1", "pve2", "pve3"]);
    assert!(st["storages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "local-lvm" && s["content"].as_array().unwrap().iter().any(|c| c == "rootdir")));
    // a node going offline shows up
    sim.call("POST", "/_sim/nodes/pve3/offline", &[]);
    wait_for("2/3 online", T, || {
        (get_json(cp, &ns, "proxmoxcluster", &ns)?["status"]["nodesOnline"] == "2/3").then_some(())
    });
    let listed = cp.kubectl_ok(&["get", "pvec", &ns]);
    assert!(
        listed.contains("9.1.3") && listed.contains("2/3") && listed.contains("True"),
        "{listed}"
    );
}

#[test]
fn a_wrong_fingerprint_is_refused_and_insecure_mode_is_reported() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("tls");
    let sim = Sim::start(&[]);
    secret(cp, &ns, "creds", SIM_TOKEN_SECRET);
    let wrong = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    cluster((cp, &ns), &sim, "creds", &format!("{{fingerprint: \"{wrong}\"}}"));
    let _op = Operator::start(cp, &ns);
    let c = wait_for("TLSVerificationFailed", T, || {
        ready_reason(cp, &ns).filter(|c| c.1 == "TLSVerificationFailed")
    });
    assert!(
        c.2.to_uppercase().contains(&sim.fingerprint.to_uppercase()) || c.2.contains("fingerprint"),
        "the message says which: {}",
        c.2
    );
    cluster((cp, &ns), &sim, "creds", "{insecureSkipVerify: true}");
    let c = wait_for("InsecureTLS", T, || {
        ready_reason(cp, &ns).filter(|c| c.1 == "InsecureTLS")
    });
    assert_eq!(c.0, "True");
}

#[test]
fn an_existing_container_is_adopted_read_only() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("adopt");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    sim.call(
        "POST",
        "/nodes/pve2/lxc",
        &[
            ("vmid", "700"),
            ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
            ("hostname", "legacy"),
            ("memory", "2048"),
            ("start", "1"),
        ],
    );
    wait_for("legacy running", T, || {
        (sim.container(700)?["status"] == "running").then_some(())
    });
    let before = sim.container(700).unwrap()["config"].clone();
    let _op = Operator::start(cp, &ns);
    let m = "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: legacy\nspec:\n  vmid: 700\n  management: ObserveOnly\n  source: {osTemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}\n  resources: {memory: 512Mi}\n";
    assert!(cp
        .kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(m))
        .status
        .success());
    let o = wait_ready(cp, &ns, "lxc", "legacy", T);
    assert_eq!(condition(&o, "Ready").unwrap().1, "Observed");
    assert_eq!(o["status"]["node"], "pve2");
    assert_eq!(o["status"]["phase"], "Running");
    cp.kubectl_ok(&["delete", "-n", &ns, "lxc", "legacy", "--wait=true", "--timeout=60s"]);
    let after = sim.container(700).expect("an adopted container is never deleted");
    assert_eq!(after["config"], before, "an adopted container is never changed");
}

fn container(name: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n")
}

#[test]
fn deleting_a_cluster_together_with_its_containers_cleans_them_up_through_it_first() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("pcdelete");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let _op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("web")));
    let vmid = wait_ready(cp, &ns, "lxc", "web", T)["status"]["vmid"].as_u64().unwrap();
    // what a namespace deletion does: everything at once
    let out = cp.kubectl(&[
        "delete",
        "-n",
        &ns,
        &format!("proxmoxcluster/{ns}"),
        "lxc/web",
        "--wait=false",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("the container to be gone", T, || {
        get_json(cp, &ns, "lxc", "web").is_none().then_some(())
    });
    assert!(
        sim.container(vmid).is_none(),
        "destroyed in Proxmox through the cluster"
    );
    wait_for("the cluster to be gone", T, || {
        get_json(cp, &ns, "proxmoxcluster", &ns).is_none().then_some(())
    });
}

#[test]
fn a_cluster_deleted_and_created_again_with_the_same_spec_connects_again() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("pcrecreate");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "2s");
    let _op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    let out = cp.kubectl(&[
        "delete",
        "-n",
        &ns,
        "proxmoxcluster",
        &ns,
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    connect_cluster(cp, &ns, &sim, "2s");
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&container("after")));
    let obj = wait_ready(cp, &ns, "lxc", "after", T);
    assert_eq!(obj["status"]["phase"], "Running");
}
