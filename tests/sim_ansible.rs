//! Ansible's `community.proxmox.proxmox_storage_info` module (from the `ansible` package on
//! PyPI, see tests/scripts/ansible-venv.sh) lists the simulator's storages: `GET /storage`,
//! `GET /storage?type=...` and `GET /storage/{storage}`, with token and password auth. Fails
//! (does not skip) when the venv cannot be made. Also checks the node network listing the
//! operator reads bridges from, with proxmoxer.

use std::process::Command;

use proxmox_lxc_operator::sim::{start, SimConfig};
use serde_json::Value;

fn ansible_bin() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/tests/scripts/ansible-venv.sh"))
        .output()
        .expect("run ansible-venv.sh");
    assert!(
        out.status.success(),
        "ansible-venv.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("venv bin path")
        .trim()
        .to_string()
}

/// Runs the module ad hoc on localhost with `args` and returns its result (the json callback's
/// `plays[0].tasks[0].hosts.localhost`).
async fn storage_info(bin: &str, port: u16, auth: &[(&str, &str)], args: &str) -> Value {
    let mut module_args = format!("api_host=127.0.0.1 api_port={port} validate_certs=false {args}");
    for (k, v) in auth {
        module_args.push_str(&format!(" {k}={v}"));
    }
    let out = tokio::process::Command::new(format!("{bin}/ansible"))
        .args([
            "localhost",
            "-c",
            "local",
            "-m",
            "community.proxmox.proxmox_storage_info",
            "-a",
        ])
        .arg(&module_args)
        .env("ANSIBLE_LOAD_CALLBACK_PLUGINS", "1")
        .env("ANSIBLE_STDOUT_CALLBACK", "json")
        .env("ANSIBLE_PYTHON_INTERPRETER", format!("{bin}/python"))
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .output()
        .await
        .expect("run ansible");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "ansible printed no JSON ({e}):\n{stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["plays"][0]["tasks"][0]["hosts"]["localhost"].clone()
}

fn ids(r: &Value) -> Vec<String> {
    r["proxmox_storages"]
        .as_array()
        .unwrap_or_else(|| panic!("no proxmox_storages in {r}"))
        .iter()
        .map(|s| s["storage"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ansible_proxmox_storage_info_lists_the_simulators_storages() {
    let bin = tokio::task::spawn_blocking(ansible_bin).await.unwrap();
    let sim = start(SimConfig::fast()).await.unwrap();
    let port = sim.addr().port();
    let token = sim.token();
    let (user_tok, secret) = token.rsplit_once('=').unwrap();
    let (user, token_id) = user_tok.split_once('!').unwrap();
    let (puser, password) = sim.user_credentials().unwrap();
    let token_auth = [
        ("api_user", user),
        ("api_token_id", token_id),
        ("api_token_secret", secret),
    ];
    let password_auth = [("api_user", puser.as_str()), ("api_password", password.as_str())];

    for auth in [&token_auth[..], &password_auth[..]] {
        let all = storage_info(&bin, port, auth, "").await;
        assert_eq!(all["failed"], Value::Null, "{all}");
        assert_eq!(ids(&all), vec!["local", "local-lvm", "nfs-backup"], "{all}");
        let lvm = &all["proxmox_storages"][1];
        assert_eq!(lvm["type"], "lvmthin");
        assert_eq!(
            lvm["content"],
            serde_json::json!(["images", "rootdir"]),
            "content is split into a list"
        );
        let local = &all["proxmox_storages"][0];
        assert_eq!(local["path"], "/var/lib/vz");
        assert!(local["digest"].as_str().is_some_and(|d| d.len() == 40));
    }
    let nfs = storage_info(&bin, port, &token_auth, "type=nfs").await;
    assert_eq!(ids(&nfs), vec!["nfs-backup"], "{nfs}");
    let one = storage_info(&bin, port, &token_auth, "storage=local-lvm").await;
    assert_eq!(ids(&one), vec!["local-lvm"], "{one}");
    let missing = storage_info(&bin, port, &token_auth, "storage=nas").await;
    assert_eq!(missing["failed"], true, "{missing}");
    assert_eq!(missing["msg"], "Storage 'nas' does not exist", "{missing}");

    let stats = sim.stats();
    assert!(stats["requests"]["GET /storage"].as_u64().unwrap() >= 3, "{stats}");
    assert!(
        stats["requests"]["GET /storage/{storage}"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_reads_the_bridges_of_a_node_and_an_unknown_node_is_refused() {
    let bin = tokio::task::spawn_blocking(ansible_bin).await.unwrap();
    let sim = start(SimConfig::fast()).await.unwrap();
    let script = r#"
import json, os, sys, urllib3
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException
urllib3.disable_warnings()
user_tok, secret = os.environ["PVE_SIM_TOKEN"].rsplit("=", 1)
user, token = user_tok.split("!", 1)
pve = ProxmoxAPI("127.0.0.1", port=int(os.environ["PVE_SIM_PORT"]), user=user, token_name=token, token_value=secret, verify_ssl=False)
out = {"all": pve.nodes("pve1").network.get(), "bridges": pve.nodes("pve1").network.get(type="any_bridge")}
try:
    pve.nodes("pve9").network.get()
except ResourceException as e:
    out["pve9"] = [e.status_code, e.content]
try:
    pve.nodes("pve1").network.get(type="wifi")
except ResourceException as e:
    out["wifi"] = [e.status_code, e.errors]
print(json.dumps(out))
"#;
    let out = tokio::process::Command::new(format!("{bin}/python"))
        .args(["-c", script])
        .env("PVE_SIM_PORT", sim.addr().port().to_string())
        .env("PVE_SIM_TOKEN", sim.token())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|i| i["iface"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("all"), vec!["eno1", "vmbr0"], "{v}");
    assert_eq!(names("bridges"), vec!["vmbr0"], "{v}");
    assert_eq!(v["bridges"][0]["bridge_ports"], "eno1");
    assert_eq!(v["pve9"][0], 500, "{v}");
    assert!(v["pve9"][1].as_str().unwrap().contains("pve9"), "{v}");
    assert_eq!(v["wifi"][0], 400, "the schema's enum is enforced: {v}");
    sim.shutdown().await;
}
