//! The `pve-sim` binary: example config, ready line, certificate output, token shortcut.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use proxmox_lxc_operator::sim::SimConfig;

fn example_config() -> String {
    format!("{}/examples/pve-sim/config.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_config_parses_with_the_documented_fields() {
    let cfg = SimConfig::from_yaml(&std::fs::read_to_string(example_config()).unwrap()).unwrap();
    assert_eq!(cfg.cluster_name, "homelab");
    assert_eq!(cfg.nodes.len(), 3);
    assert_eq!(cfg.tokens[1].privileges.as_ref().unwrap().len(), 6);
    assert_eq!(cfg.task_duration_ms("vzcreate"), 3000);
    assert_eq!(
        cfg.task_duration_ms("vzclone"),
        3000,
        "defaults kept for types not listed"
    );
    assert_eq!(cfg.faults.rules.len(), 4);
    assert!(SimConfig::from_yaml("nodes: 3").is_err());
}

#[tokio::test]
async fn binary_prints_ready_line_writes_cert_and_serves_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("sim.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pve-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--config",
            &example_config(),
            "--cert-out",
            cert.to_str().unwrap(),
        ])
        .args(["--token", "ci@pve!bin=abc-123", "--seed", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("pve-sim listening on ")
        .unwrap_or_else(|| panic!("ready line: {line:?}"))
        .to_string();
    assert!(
        regex::Regex::new(r"^https://127\.0\.0\.1:\d+$")
            .unwrap()
            .is_match(&base),
        "{base}"
    );

    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der)).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap();
    let get = |auth: &str| {
        http.get(format!("{base}/api2/json/cluster/status"))
            .header("Authorization", auth.to_string())
            .send()
    };
    let r = get("PVEAPIToken=ci@pve!bin=abc-123").await.unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"][0]["name"], "homelab");
    let r = get("PVEAPIToken=root@pam!operator=0f4d9c1e-5b7a-4e2c-8d3f-a1b2c3d4e5f6")
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "config tokens are kept next to --token");
    let r = get("PVEAPIToken=root@pam!operator=nope").await.unwrap();
    assert_eq!(r.status(), 401);
    child.kill().unwrap();
    child.wait().unwrap();
}
