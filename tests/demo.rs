//! The README's first command works: the demo runs headless to the end.

#[test]
fn the_demo_brings_the_example_containers_to_ready() {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
        .parent()
        .unwrap()
        .to_path_buf();
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scripts/demo.sh"))
        .arg("--headless")
        .env("PLO_BIN_DIR", &bin_dir)
        .env("PLO_DEMO_DIR", state.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(state.path().join("operator.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}\noperator log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all containers are Ready"));
    assert!(
        stdout.contains("the Deployment's Pods are Running on Proxmox"),
        "the demo shows Pods on virtual nodes: {stdout}"
    );
    assert!(stdout.contains("lxccontainer.pve.lxc.dev/web"), "{stdout}");
    assert!(
        stdout.contains("web UI on http://127.0.0.1:"),
        "the demo prints the UI's address: {stdout}"
    );
}
