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
