//! The simulator's `GET /access/permissions`: what it answers matches what its own privilege
//! checks let through.

mod sim_util;
use proxmox_lxc_operator::sim::{start, SimConfig, TokenConfig};
use sim_util::client;

/// A simulator with one more token, `id` (secret `s3cret`), holding `privileges`, and a client
/// that signs in with it.
async fn sim_with_token(id: &str, privileges: &[&str]) -> (proxmox_lxc_operator::sim::SimHandle, sim_util::Client) {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: id.into(),
        secret: "s3cret".into(),
        privileges: Some(privileges.iter().map(|p| p.to_string()).collect()),
    });
    let sim = start(cfg).await.unwrap();
    let mut c = client(&sim);
    c.auth = Some(format!("PVEAPIToken={id}=s3cret"));
    (sim, c)
}

#[tokio::test]
async fn a_token_reads_its_own_privileges_and_they_match_what_the_simulator_lets_it_do() {
    let (sim, c) = sim_with_token("ops@pve!limited", &["VM.Audit", "Sys.Audit", "VM.Allocate"]).await;
    let r = c.get("/access/permissions").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let granted = r.data()["/"].as_object().unwrap();
    let mut names: Vec<&str> = granted.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["Sys.Audit", "VM.Allocate", "VM.Audit"]);
    assert!(granted.values().all(|v| v == 1), "privileges propagate: {}", r.text);
    // a path asked for is answered for that path
    let r = c.call("GET", "/access/permissions", &[("path", "/vms/100")]).await;
    assert!(r.data()["/vms/100"]["VM.Audit"] == 1, "{}", r.text);
    // consistent with its checks: VM.Backup is not listed, and vzdump is refused
    assert!(!granted.contains_key("VM.Backup"));
    let r = c.post("/nodes/pve1/vzdump", &[("vmid", "100")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Permission check failed (/vms, VM.Backup)")
    );
    // somebody else's privileges need Sys.Audit (which this token has), a bad userid is refused
    let r = c.call("GET", "/access/permissions", &[("userid", "root@pam")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["/"]["VM.Backup"] == 1, "root holds everything: {}", r.text);
    let r = c
        .call("GET", "/access/permissions", &[("userid", "no spaces@pam")])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_token_without_sys_audit_may_not_read_other_users_privileges() {
    let (sim, c) = sim_with_token("ops@pve!tiny", &["VM.Audit"]).await;
    let r = c.call("GET", "/access/permissions", &[("userid", "root@pam")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Permission check failed (/access, Sys.Audit)")
    );
    let r = c
        .call("GET", "/access/permissions", &[("userid", "ops@pve!tiny")])
        .await;
    assert_eq!(r.status, 200, "its own: {}", r.text);
    sim.shutdown().await;
}
