//! The chart's `crds/` is generated too: the same files as the top-level `crds/`, from the Rust
//! types, and nothing else. Fails on drift.

use proxmox_lxc_operator::crd;

#[test]
fn chart_crds_directory_is_exactly_the_generated_crds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/proxmox-lxc-operator/crds");
    let mut expected: Vec<String> = Vec::new();
    for (file, def) in crd::all_crds() {
        let generated = crd::crd_yaml(&def).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| {
            panic!(
                "charts/proxmox-lxc-operator/crds/{file} missing ({e}); run `{}`",
                crd::docs::GENERATE_COMMAND
            )
        });
        assert!(
            on_disk == generated,
            "charts/proxmox-lxc-operator/crds/{file} differs from the Rust types; regenerate with `{}`",
            crd::docs::GENERATE_COMMAND
        );
        expected.push(file.to_string());
    }
    let mut actual: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    actual.sort();
    expected.sort();
    assert_eq!(
        actual, expected,
        "the chart's crds/ holds files that are not generated CRDs"
    );
}

#[test]
fn chart_crds_are_byte_identical_to_the_top_level_crds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, _) in crd::all_crds() {
        let top = std::fs::read(root.join("crds").join(file)).unwrap();
        let chart =
            std::fs::read(root.join("charts/proxmox-lxc-operator/crds").join(file)).unwrap();
        assert!(
            top == chart,
            "crds/{file} and the chart's copy differ; run `{}`",
            crd::docs::GENERATE_COMMAND
        );
    }
}

#[test]
fn crds_command_with_chart_dir_writes_both_directories_and_the_api_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
        .args(["crds", "--out-dir"])
        .arg(tmp.path().join("crds"))
        .arg("--chart-dir")
        .arg(tmp.path().join("chart"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, _) in crd::all_crds() {
        assert_eq!(
            std::fs::read(tmp.path().join("crds").join(file)).unwrap(),
            std::fs::read(root.join("crds").join(file)).unwrap()
        );
        assert_eq!(
            std::fs::read(tmp.path().join("chart/crds").join(file)).unwrap(),
            std::fs::read(root.join("crds").join(file)).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("crds/API.md")).unwrap(),
        crd::docs::api_markdown()
    );
    assert!(
        !tmp.path().join("chart/crds/API.md").exists(),
        "the chart gets CRDs only"
    );
}
