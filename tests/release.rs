//! What a release publishes stays in step: the crate version, the chart's `version` and
//! `appVersion`, the Containerfile's default `VERSION`, the image the chart pulls by default and the
//! image the release workflow pushes; the repository URL is the same everywhere. The workflows
//! (`.github/workflows/`) pass `actionlint` (with shellcheck on their `run:` scripts) and CI runs
//! exactly the README's test command.

mod common;

use common::repo;
use serde_json::Value;
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");
/// Where the release workflow publishes the image (and so the chart's default image).
const IMAGE: &str = "ghcr.io/pve-lxc/proxmox-lxc-operator";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn chart_version_app_version_crate_version_and_image_tag_move_together() {
    let chart = yaml("charts/proxmox-lxc-operator/Chart.yaml");
    assert_eq!(chart["version"], VERSION, "Chart.yaml version = Cargo.toml version");
    assert_eq!(
        chart["appVersion"], VERSION,
        "Chart.yaml appVersion = Cargo.toml version"
    );
    let values = yaml("charts/proxmox-lxc-operator/values.yaml");
    assert_eq!(
        values["image"]["repository"], IMAGE,
        "the chart pulls what the release publishes"
    );
    assert_eq!(
        values["image"]["tag"], "",
        "the tag defaults to appVersion, so it cannot drift"
    );
    let containerfile = read("Containerfile");
    assert!(
        containerfile.contains(&format!("\nARG VERSION={VERSION}\n")),
        "the Containerfile's default VERSION is not {VERSION}"
    );
    let release = yaml(".github/workflows/release.yml");
    assert_eq!(
        release["env"]["IMAGE"], IMAGE,
        "release.yml pushes somewhere else than the chart pulls from"
    );
    assert_eq!(release["env"]["CHART_REPO"], "oci://ghcr.io/pve-lxc/charts");
    // The release refuses a tag that is not the crate, chart and appVersion (its first job).
    let verify = release["jobs"]["verify"]["steps"].to_string();
    for file in ["Cargo.toml", "Chart.yaml"] {
        assert!(verify.contains(file), "release.yml's verify job does not read {file}");
    }
}

#[test]
fn the_repository_url_is_the_same_in_cargo_toml_the_chart_and_the_image_labels() {
    assert_eq!(REPOSITORY, "https://github.com/pve-lxc/proxmox-lxc-operator");
    let chart = yaml("charts/proxmox-lxc-operator/Chart.yaml");
    assert_eq!(chart["home"], REPOSITORY);
    assert_eq!(chart["sources"], serde_json::json!([REPOSITORY]));
    assert!(read("Containerfile").contains(&format!("org.opencontainers.image.source=\"{REPOSITORY}\"")));
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    assert!(read("LICENSE").contains("Apache License\n                           Version 2.0, January 2004"));
    assert!(read("Containerfile").contains("org.opencontainers.image.licenses=\"Apache-2.0\""));
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let readme = read("README.md");
    let command = "bash tests/scripts/test.sh";
    assert!(readme.contains(command), "the README no longer names {command}");
    let ci = yaml(".github/workflows/ci.yml");
    let runs: Vec<String> = ci["jobs"]["test"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str().map(str::trim).map(String::from))
        .collect();
    assert!(
        runs.iter().any(|r| r == command),
        "ci.yml does not run `{command}`: {runs:?}"
    );
    assert!(
        read(".ci/run").contains("exec bash tests/scripts/test.sh"),
        ".ci/run runs the same command"
    );
    assert!(
        ci["on"].get("pull_request").is_some(),
        "ci.yml runs on every pull request"
    );
}

#[test]
fn the_workflows_pass_actionlint_with_shellcheck() {
    let python = common::venv_python();
    let actionlint = std::path::Path::new(&python).with_file_name("actionlint");
    let shellcheck = Command::new("shellcheck").arg("--version").output();
    assert!(
        shellcheck.is_ok_and(|o| o.status.success()),
        "shellcheck missing: run tests/scripts/setup.sh (actionlint checks run: scripts with it)"
    );
    let mut files: Vec<_> = std::fs::read_dir(repo().join(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "ci.yml and release.yml expected: {files:?}");
    let out = Command::new(&actionlint)
        .current_dir(repo())
        .args(["-no-color", "-oneline", "-shellcheck", "shellcheck", "-pyflakes", ""])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", actionlint.display()));
    assert!(
        out.status.success(),
        "actionlint refused the workflows:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It really checks: a broken workflow is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.evnt.name }}\n",
    )
    .unwrap();
    let out = Command::new(&actionlint)
        .args(["-no-color", "-oneline"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("evnt"),
        "actionlint accepted a broken workflow"
    );
}
