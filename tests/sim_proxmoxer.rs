//! A real third-party client, Python `proxmoxer`, drives the simulator through
//! create -> task -> config -> start -> status -> interfaces -> stop -> delete,
//! with token auth and with ticket auth. Fails (does not skip) when the venv cannot be made.

use std::process::Command;

use proxmox_lxc_operator::sim::{start, SimConfig};

fn venv_python() -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/tests/scripts/python-venv.sh"))
        .output()
        .expect("run python-venv.sh");
    assert!(
        out.status.success(),
        "python-venv.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .expect("venv python path")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_drives_the_lifecycle_with_token_and_ticket_auth() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let sim = start(SimConfig::fast()).await.unwrap();
    let (user, password) = sim.user_credentials().unwrap();
    let script = format!("{}/tests/python/sim_lifecycle.py", env!("CARGO_MANIFEST_DIR"));
    for (auth, vmid) in [("token", "120"), ("ticket", "121")] {
        let mut cmd = tokio::process::Command::new(&python);
        cmd.arg(&script)
            .env("PVE_SIM_HOST", "127.0.0.1")
            .env("PVE_SIM_PORT", sim.addr().port().to_string())
            .env("PVE_SIM_TOKEN", sim.token())
            .env("PVE_SIM_USER", &user)
            .env("PVE_SIM_PASSWORD", &password)
            .env("PVE_SIM_AUTH", auth)
            .env("PVE_SIM_VMID", vmid);
        let out = cmd.output().await.unwrap();
        assert!(
            out.status.success(),
            "proxmoxer ({auth}) failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("OK {auth}"));
    }
    let stats = sim.stats();
    assert!(stats["requests"]["POST /access/ticket"].as_u64().unwrap() >= 1);
    assert!(
        stats["requests"]["GET /nodes/{node}/lxc/{vmid}/interfaces"]
            .as_u64()
            .unwrap()
            >= 4
    );
    sim.shutdown().await;
}
