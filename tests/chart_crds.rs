//! The chart's CRDs are generated too: one Helm template per CRD under `templates/crds/` (Helm's
//! `crds/` directory is installed once and never upgraded), each exactly the top-level `crds/`
//! document wrapped in `crds.install` with the chart's labels and the `crds.keep` annotation.
//! Fails on drift. (tests/chart_helm.rs renders them with the real Helm SDK.)

use proxmox_lxc_operator::crd;
use std::path::Path;

fn chart() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/proxmox-lxc-operator")
}

#[test]
fn chart_crd_templates_are_exactly_the_generated_templates() {
    let dir = chart().join(crd::docs::CHART_CRD_DIR);
    let mut expected: Vec<String> = Vec::new();
    for (file, def) in crd::all_crds() {
        let generated = crd::docs::chart_crd_template(&def).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| {
            panic!(
                "charts/proxmox-lxc-operator/templates/crds/{file} missing ({e}); run `{}`",
                crd::docs::GENERATE_COMMAND
            )
        });
        assert!(
            on_disk == generated,
            "charts/proxmox-lxc-operator/templates/crds/{file} differs from the Rust types; regenerate with `{}`",
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
        "the chart's templates/crds/ holds files that are not generated CRDs"
    );
}

#[test]
fn the_chart_has_no_crds_directory_that_helm_would_never_upgrade() {
    assert!(
        !chart().join("crds").exists(),
        "charts/proxmox-lxc-operator/crds/ is installed once by Helm and never upgraded: the CRDs are templates"
    );
}

#[test]
fn each_chart_crd_template_is_the_top_level_crd_below_its_metadata() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, def) in crd::all_crds() {
        let top = std::fs::read_to_string(root.join("crds").join(file)).unwrap();
        let template = std::fs::read_to_string(chart().join(crd::docs::CHART_CRD_DIR).join(file)).unwrap();
        let spec_of = |s: &str| {
            s[s.find("\nspec:\n").unwrap()..]
                .trim_end_matches("{{- end }}\n")
                .to_string()
        };
        assert_eq!(
            spec_of(&template),
            spec_of(&top),
            "{file}: the chart's spec differs from crds/{file}"
        );
        let name = def.metadata.name.unwrap();
        assert!(template.contains(&format!("metadata:\n  name: {name}\n")), "{file}");
        assert!(
            template.starts_with("{{- /* Generated") && template.contains("{{- if .Values.crds.install }}\n---\n"),
            "{file}: not wrapped in crds.install"
        );
        assert!(
            template.contains("{{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n"),
            "{file}: no keep annotation"
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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, _) in crd::all_crds() {
        assert_eq!(
            std::fs::read(tmp.path().join("crds").join(file)).unwrap(),
            std::fs::read(root.join("crds").join(file)).unwrap()
        );
        assert_eq!(
            std::fs::read(tmp.path().join("chart").join(crd::docs::CHART_CRD_DIR).join(file)).unwrap(),
            std::fs::read(chart().join(crd::docs::CHART_CRD_DIR).join(file)).unwrap()
        );
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("crds/API.md")).unwrap(),
        crd::docs::api_markdown()
    );
    assert!(
        !tmp.path().join("chart/crds").exists(),
        "nothing goes to the chart's crds/ any more"
    );
    let chart_files: Vec<_> = std::fs::read_dir(tmp.path().join("chart").join(crd::docs::CHART_CRD_DIR))
        .unwrap()
        .collect();
    assert_eq!(chart_files.len(), crd::all_crds().len(), "the chart gets CRDs only");
}
