//! The Argo CD health check (`charts/proxmox-lxc-operator/argocd/health.lua`) against its test
//! cases (`health_test.yaml` + `testdata/`), run by Debian's `lua5.4` as Argo CD would: the
//! object as a Lua table in the global `obj`, the script's returned table read back.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn argocd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/proxmox-lxc-operator/argocd")
}

/// `lua5.4`, installed with apt-get when missing; panics (the test fails) when that is impossible.
fn lua() -> &'static str {
    let found = |name: &str| Command::new(name).arg("-v").output().is_ok_and(|o| o.status.success());
    if !found("lua5.4") {
        let installed = Command::new("sh")
            .args(["-c", "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq lua5.4 >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq lua5.4 >/dev/null; }"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && found("lua5.4"),
            "lua5.4 is missing and `apt-get install lua5.4` failed"
        );
    }
    "lua5.4"
}

/// A JSON value as a Lua table constructor (as Argo CD hands objects to health scripts).
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => format!("{:?}", n.as_f64().unwrap()),
        Value::String(s) => lua_string(s),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs health.lua once per object, in one Lua process; returns (status, message) per object.
fn run_health(objects: &[Value]) -> Vec<(String, String)> {
    let script = argocd_dir().join("health.lua");
    let mut program = String::from("local script = assert(loadfile(arg[1]))\n");
    for obj in objects {
        program.push_str(&format!(
            "obj = {}\ndo local hs = script(); io.write(tostring(hs.status), \"\\t\", tostring(hs.message), \"\\n\") end\n",
            lua_literal(obj)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let runner = dir.path().join("runner.lua");
    std::fs::write(&runner, program).unwrap();
    let out = Command::new(lua())
        .arg(&runner)
        .arg(&script)
        .output()
        .expect("run lua5.4");
    assert!(
        out.status.success(),
        "lua5.4 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (s, m) = l.split_once('\t').unwrap();
            (s.to_string(), m.to_string())
        })
        .collect()
}

#[test]
fn health_check_passes_every_test_case_with_debian_lua() {
    let cases = yaml(&argocd_dir().join("health_test.yaml"));
    let cases = cases["tests"].as_array().expect("tests: [...]");
    assert!(cases.len() >= 15, "expected the full set of cases");
    let objects: Vec<Value> = cases
        .iter()
        .map(|c| yaml(&argocd_dir().join(c["inputPath"].as_str().unwrap())))
        .collect();
    let results = run_health(&objects);
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for (case, (status, message)) in cases.iter().zip(&results) {
        let want = &case["healthStatus"];
        if want["status"] != status.as_str() || want["message"] != message.as_str() {
            failures.push(format!(
                "{}: want {} / {:?}, got {status} / {message:?}",
                case["inputPath"], want["status"], want["message"]
            ));
        }
    }
    assert!(failures.is_empty(), "health.lua disagrees:\n{}", failures.join("\n"));
}

#[test]
fn test_cases_cover_every_kind_and_every_health_status() {
    let cases = yaml(&argocd_dir().join("health_test.yaml"));
    let mut kinds = std::collections::BTreeSet::new();
    let mut statuses = std::collections::BTreeSet::new();
    for case in cases["tests"].as_array().unwrap() {
        let obj = yaml(&argocd_dir().join(case["inputPath"].as_str().unwrap()));
        kinds.insert(obj["kind"].as_str().unwrap().to_string());
        statuses.insert(case["healthStatus"]["status"].as_str().unwrap().to_string());
    }
    let want_kinds = [
        "LxcBackup",
        "LxcBackupSchedule",
        "LxcContainer",
        "LxcSnapshotSchedule",
        "LxcTemplate",
        "ProxmoxCluster",
    ];
    assert_eq!(kinds.iter().map(String::as_str).collect::<Vec<_>>(), want_kinds);
    assert_eq!(
        statuses.iter().map(String::as_str).collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing", "Suspended"]
    );
    let files: Vec<String> = std::fs::read_dir(argocd_dir().join("testdata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let listed = cases["tests"].as_array().unwrap().len();
    assert_eq!(files.len(), listed, "every file in testdata/ is a listed case");
}

#[test]
fn health_check_uses_only_what_argo_cds_lua_sandbox_allows() {
    let script = std::fs::read_to_string(argocd_dir().join("health.lua")).unwrap();
    for forbidden in ["require", "io.", "os.", "dofile", "loadfile", "debug."] {
        assert!(
            !script.contains(forbidden),
            "health.lua uses `{forbidden}`, which Argo CD's sandbox does not offer"
        );
    }
    assert!(script.trim_end().ends_with("return hs"));
}

#[test]
fn chart_readme_documents_the_argocd_cm_snippet_for_every_kind() {
    let readme = std::fs::read_to_string(argocd_dir().join("../README.md")).unwrap();
    let script = std::fs::read_to_string(argocd_dir().join("health.lua")).unwrap();
    for kind in [
        "ProxmoxCluster",
        "LxcContainer",
        "LxcTemplate",
        "LxcBackupSchedule",
        "LxcBackup",
        "LxcSnapshot",
        "ProxmoxTenant",
    ] {
        assert!(
            readme.contains(&format!("  resource.customizations.health.pve.lxc.dev_{kind}: ")),
            "README lacks {kind}"
        );
    }
    // The README embeds the whole script (indented under the first key), so it cannot go stale.
    let indented: String = script
        .lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    assert!(
        readme.contains(&indented),
        "the argocd-cm snippet in the chart README differs from argocd/health.lua"
    );
}
