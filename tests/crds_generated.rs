//! `crds/` is generated: this fails when it drifts from the Rust types. So are the benchmark
//! tables of README.md and tests/bench/README.md (from tests/bench/results/).

#[path = "bench/table.rs"]
mod table;

use proxmox_lxc_operator::crd;

#[test]
fn crds_directory_is_exactly_the_generated_output() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut expected_files: Vec<String> = Vec::new();
    for (file, def) in crd::all_crds() {
        let generated = crd::crd_yaml(&def).unwrap();
        let on_disk = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("crds/{file} missing ({e}); run `cargo run -- crds --out-dir crds --chart-dir charts/proxmox-lxc-operator`"));
        assert!(
            on_disk == generated,
            "crds/{file} differs from the Rust types; regenerate with `cargo run -- crds --out-dir crds --chart-dir charts/proxmox-lxc-operator`"
        );
        expected_files.push(file.to_string());
    }
    let mut actual: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected_files.push(crd::docs::API_MD.to_string());
    actual.sort();
    expected_files.sort();
    assert_eq!(actual, expected_files, "crds/ holds files that are not generated");
}

#[test]
fn api_reference_is_exactly_the_generated_markdown() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(crd::docs::API_MD);
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("crds/API.md missing ({e}); run `{}`", crd::docs::GENERATE_COMMAND));
    assert!(
        on_disk == crd::docs::api_markdown(),
        "crds/API.md differs from the CRD schemas; regenerate with `{}`",
        crd::docs::GENERATE_COMMAND
    );
}

#[test]
fn crds_command_prints_all_five_kinds_in_one_stream() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_proxmox-lxc-operator"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let concatenated: String = crd::all_crds()
        .iter()
        .map(|(file, _)| std::fs::read_to_string(dir.join(file)).unwrap())
        .collect();
    assert_eq!(text, concatenated);
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 8);
    for kind in [
        "ProxmoxCluster",
        "ProxmoxTenant",
        "LxcContainer",
        "LxcTemplate",
        "LxcBackupSchedule",
        "LxcBackup",
        "LxcSnapshot",
        "LxcSnapshotSchedule",
    ] {
        assert!(text.contains(&format!("kind: {kind}\n")), "{kind} missing");
    }
}

#[test]
fn every_kind_is_in_category_proxmox_with_status_and_short_name_and_only_the_admins_are_cluster_scoped() {
    let shorts = [
        ("ProxmoxCluster", "pvec"),
        ("ProxmoxTenant", "pvet"),
        ("LxcContainer", "lxc"),
        ("LxcTemplate", "lxct"),
        ("LxcBackupSchedule", "lxcbs"),
        ("LxcBackup", "lxcb"),
        ("LxcSnapshot", "lxcsnap"),
        ("LxcSnapshotSchedule", "lxcss"),
    ];
    for (_, def) in crd::all_crds() {
        let spec = &def.spec;
        assert_eq!(spec.group, "pve.lxc.dev");
        let admins = ["ProxmoxCluster", "ProxmoxTenant"].contains(&spec.names.kind.as_str());
        assert_eq!(
            spec.scope,
            if admins { "Cluster" } else { "Namespaced" },
            "{}",
            spec.names.kind
        );
        assert_eq!(spec.names.categories.as_deref(), Some(&["proxmox".to_string()][..]));
        let short = shorts.iter().find(|(k, _)| *k == spec.names.kind).unwrap().1;
        assert_eq!(spec.names.short_names.as_deref(), Some(&[short.to_string()][..]));
        let v = &spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{} has no status subresource",
            spec.names.kind
        );
        assert!(v
            .additional_printer_columns
            .as_ref()
            .is_some_and(|c| c.iter().any(|c| c.name == "Age")));
    }
}

#[test]
fn readme_bench_tables_are_exactly_the_generated_ones() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for (doc, want) in table::expected(repo).unwrap() {
        let have = std::fs::read_to_string(repo.join(&doc)).unwrap();
        assert!(
            have == want,
            "the bench table of {doc} differs from tests/bench/results/; regenerate with `cargo bench --bench scale -- table`"
        );
    }
}

#[test]
fn the_bench_table_splice_replaces_only_between_the_markers() {
    let doc = format!("a\n{}\nold\n{}\nb\n", table::BEGIN, table::END);
    assert_eq!(
        table::splice(&doc, "new\n").unwrap(),
        format!("a\n{}\nnew\n{}\nb\n", table::BEGIN, table::END)
    );
    assert!(table::splice("no markers", "x").is_err());
}
