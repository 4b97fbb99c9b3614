//! The client against the simulator for the harms of issue 16 that live in `src/pve` and
//! `src/sim`: what a delete destroys, failover with pinned per-node certificates, bounded
//! responses, refused endpoints, redaction, firewall deletes with a digest, QEMU vmids.

mod sim_util;

use std::time::Duration;

use proxmox_lxc_operator::pve::{self, Auth, ClientConfig, TlsMode};
use proxmox_lxc_operator::sim::{start, SimConfig, SimHandle};

fn client_for(sim: &SimHandle, endpoints: Vec<String>, tls: TlsMode) -> pve::Client {
    let t = &sim.tokens()[0];
    let mut cfg = ClientConfig::new(
        endpoints,
        Auth::Token {
            token_id: t.id.clone(),
            secret: t.secret.clone(),
        },
    );
    cfg.tls = tls;
    cfg.connect_timeout = Duration::from_secs(2);
    pve::Client::new(cfg).unwrap()
}

fn pinned(sim: &SimHandle) -> pve::Client {
    client_for(
        sim,
        vec![sim.base_url()],
        TlsMode::Fingerprint(sim.fingerprint().to_string()),
    )
}

async fn wait(c: &pve::Client, upid: pve::Upid) {
    c.wait_task(&upid, Duration::from_millis(10), Duration::from_secs(20))
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_a_container_keeps_disks_it_does_not_reference() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let http = sim_util::client(&sim);
    http.create_ct("pve1", 150, &[]).await;
    // A detached disk of the same vmid (e.g. left behind by a manual detach, or another
    // cluster's guest on the same storage): no config references it.
    let foreign = sim.plant_unreferenced_disk("pve1", "local-lvm", 150, 2 << 30).unwrap();
    let own = sim.container(150).unwrap().config["rootfs"]
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert!(sim.volumes("pve1", "local-lvm").contains(&foreign));

    let c = pinned(&sim);
    // exactly what the operator sends when it deletes a container it owns
    let upid = c
        .lxc_delete("pve1", 150, &pve::DeleteParams::purge_referenced_only())
        .await
        .unwrap();
    wait(&c, upid).await;

    let vols = sim.volumes("pve1", "local-lvm");
    assert!(sim.container(150).is_none());
    assert!(
        !vols.contains(&own),
        "the container's own rootfs is destroyed: {vols:?}"
    );
    assert!(
        vols.contains(&foreign),
        "a disk the config did not reference survives: {vols:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_simulator_destroys_unreferenced_disks_only_when_asked() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let http = sim_util::client(&sim);
    http.create_ct("pve1", 151, &[]).await;
    let foreign = sim.plant_unreferenced_disk("pve1", "local-lvm", 151, 1 << 30).unwrap();
    let c = pinned(&sim);
    let p = pve::DeleteParams {
        destroy_unreferenced_disks: Some(true),
        ..pve::DeleteParams::purge_referenced_only()
    };
    let upid = c.lxc_delete("pve1", 151, &p).await.unwrap();
    wait(&c, upid).await;
    assert!(
        !sim.volumes("pve1", "local-lvm").contains(&foreign),
        "Proxmox semantics of destroy-unreferenced-disks=1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_vmid_held_by_a_qemu_vm_shows_in_the_inventory_and_refuses_a_container() {
    let sim = start(SimConfig::fast()).await.unwrap();
    sim.add_qemu_vm(123, "pve2", "db").unwrap();
    let http = sim_util::client(&sim);
    let res = http.get("/cluster/resources?type=vm").await;
    let vm = res
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vmid"] == 123)
        .cloned()
        .unwrap();
    assert_eq!(
        (vm["type"].as_str(), vm["id"].as_str(), vm["node"].as_str()),
        (Some("qemu"), Some("qemu/123"), Some("pve2"))
    );

    let r = http
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "123"),
                ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
            ],
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.reason, "VM 123 already exists on node 'pve2'");
    let n = http.get("/cluster/nextid?vmid=123").await;
    assert_eq!(n.status, 400, "{}", n.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn failover_works_when_each_node_has_its_own_pinned_certificate() {
    use proxmox_lxc_operator::crd::proxmox_cluster::TlsSpec;
    let sim = start(SimConfig::fast()).await.unwrap();
    let pve1 = sim.add_node_endpoint("pve1").await.unwrap();
    let pve2 = sim.add_node_endpoint("pve2").await.unwrap();
    assert_ne!(
        pve1.fingerprint(),
        pve2.fingerprint(),
        "each node has its own certificate"
    );
    // the ProxmoxCluster's `tls` as the admin writes it: one pinned fingerprint per node
    let tls: TlsSpec = serde_json::from_value(serde_json::json!({
        "fingerprints": [pve1.fingerprint(), pve2.fingerprint()]
    }))
    .unwrap();
    let mode = TlsMode::Fingerprint(tls.pinned_fingerprints().expect("pinned"));
    let c = client_for(&sim, vec![pve1.base_url(), pve2.base_url()], mode);
    assert_eq!(c.version().await.unwrap().version.as_deref(), Some("9.1.3"));
    assert!(c.active_endpoint().starts_with(&pve1.base_url()));

    pve1.shutdown().await; // node 1 goes away; node 2 answers with its own certificate
    assert_eq!(c.version().await.unwrap().version.as_deref(), Some("9.1.3"));
    assert!(
        c.active_endpoint().starts_with(&pve2.base_url()),
        "{}",
        c.active_endpoint()
    );
    pve2.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_tls_failure_at_one_endpoint_fails_over_and_the_error_names_each_endpoint() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let stranger = sim.add_node_endpoint("pve1").await.unwrap(); // a certificate nobody pinned
    let pve2 = sim.add_node_endpoint("pve2").await.unwrap();
    let c = client_for(
        &sim,
        vec![stranger.base_url(), pve2.base_url()],
        TlsMode::Fingerprint(pve2.fingerprint().to_string()),
    );
    c.version()
        .await
        .expect("the TLS failure at the first endpoint fails over to the second");
    assert!(c.active_endpoint().starts_with(&pve2.base_url()));

    // nothing usable: one error that says which endpoint failed and why
    let c = client_for(
        &sim,
        vec![stranger.base_url(), "127.0.0.1:1".to_string()],
        TlsMode::Fingerprint(pve2.fingerprint().to_string()),
    );
    let err = c.version().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.endpoint_failures().len(), 2, "{text}");
    assert!(
        text.contains(&stranger.base_url()) && text.contains("fingerprint mismatch"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:1") && text.contains("cannot connect"),
        "{text}"
    );
    stranger.shutdown().await;
    pve2.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_response_bigger_than_the_limit_fails_clearly_instead_of_filling_memory() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let t = &sim.tokens()[0];
    let mut cfg = ClientConfig::new(
        vec![sim.base_url()],
        Auth::Token {
            token_id: t.id.clone(),
            secret: t.secret.clone(),
        },
    );
    cfg.tls = TlsMode::Fingerprint(sim.fingerprint().to_string());
    cfg.max_response_bytes = 1024; // the inventory of the default sim is larger
    let c = pve::Client::new(cfg).unwrap();
    let err = c.cluster_resources(None).await.unwrap_err();
    assert!(
        matches!(err, pve::Error::ResponseTooLarge { limit: 1024, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("larger than the limit of 1024 bytes"), "{err}");
    assert_eq!(pve::DEFAULT_MAX_RESPONSE_BYTES, 64 << 20);
    sim.shutdown().await;
}

#[test]
fn endpoints_over_plain_http_or_with_user_info_are_refused_by_the_client() {
    for e in ["http://127.0.0.1:8006", "https://root:secret@127.0.0.1:8006"] {
        let cfg = ClientConfig::new(
            vec![e.to_string()],
            Auth::Token {
                token_id: "a@pve!b".into(),
                secret: "s".into(),
            },
        );
        let err = pve::Client::new(cfg).unwrap_err().to_string();
        assert!(err.contains("invalid endpoint"), "{e}: {err}");
        assert!(!err.contains("secret@"), "{e}: {err}");
    }
}

#[tokio::test]
async fn a_firewall_rule_delete_with_a_stale_digest_removes_nothing() {
    let sim = start(SimConfig::fast()).await.unwrap();
    let http = sim_util::client(&sim);
    http.create_ct("pve1", 160, &[]).await;
    let c = pinned(&sim);
    let rules = "/nodes/pve1/lxc/160/firewall/rules";
    for port in ["22", "80"] {
        let r = http
            .post(
                rules,
                &[("type", "in"), ("action", "ACCEPT"), ("proto", "tcp"), ("dport", port)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let seen = c.lxc_firewall_rules("pve1", 160).await.unwrap();
    let digest = seen[0].digest.clone().expect("rules are listed with their digest");
    // someone else inserts a rule at the top: positions shift
    let r = http
        .post(
            rules,
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", "443"),
                ("pos", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let err = c
        .lxc_firewall_rule_delete("pve1", 160, 0, Some(&digest))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("detected modified configuration"), "{err}");
    assert_eq!(
        c.lxc_firewall_rules("pve1", 160).await.unwrap().len(),
        3,
        "the rule inserted meanwhile is kept"
    );
    let fresh = c.lxc_firewall_rules("pve1", 160).await.unwrap()[0].digest.clone();
    c.lxc_firewall_rule_delete("pve1", 160, 0, fresh.as_deref())
        .await
        .unwrap();
    sim.shutdown().await;
}
