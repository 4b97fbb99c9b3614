//! The CRDs on a real kube-apiserver: the examples are accepted with every field intact, the
//! category lists every kind, and invalid objects are refused with an error naming the field.

mod common;
use common::{repo, ControlPlane};
use serde_json::Value;

/// Every example manifest (one minimal and one full per kind).
fn example_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The documents of a manifest file as JSON, converted by kubectl itself.
fn documents(cp: &ControlPlane, file: &std::path::Path) -> Vec<Value> {
    let out = cp.kubectl_ok(&["create", "--dry-run=client", "-o", "json", "-f", file.to_str().unwrap()]);
    // one JSON object per document, concatenated
    serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

/// Fails when a value of `expected` is missing or different in `actual` (schema pruning drops
/// fields whose schema is wrong without an error: this catches it).
fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let p = format!("{path}.{k}");
                let got = a.get(k).unwrap_or_else(|| panic!("{p} was dropped by the apiserver"));
                assert_subset(v, got, &p);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: list length changed");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(e), Value::Number(a)) => assert_eq!(e.as_f64(), a.as_f64(), "{path}"),
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

#[test]
fn every_kind_has_a_minimal_and_a_full_example() {
    let names: Vec<String> = example_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for kind in [
        "proxmoxcluster",
        "proxmoxtenant",
        "lxccontainer",
        "lxctemplate",
        "lxcbackupschedule",
        "lxcbackup",
        "lxcsnapshot",
    ] {
        for variant in ["minimal", "full"] {
            let f = format!("{kind}-{variant}.yaml");
            assert!(names.contains(&f), "examples/{f} missing");
        }
    }
}

#[test]
fn examples_are_accepted_and_every_field_survives_the_round_trip() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("examples");
    for file in example_files() {
        let out = cp.kubectl(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{} refused: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        for doc in documents(cp, &file) {
            let kind = doc["kind"].as_str().unwrap();
            if kind == "Secret" || kind == "ConfigMap" {
                continue;
            }
            let name = doc["metadata"]["name"].as_str().unwrap();
            let stored: Value = serde_json::from_str(&cp.kubectl_ok(&[
                "get",
                "-n",
                &ns,
                &format!("{kind}.pve.lxc.dev"),
                name,
                "-o",
                "json",
            ]))
            .unwrap();
            assert_subset(
                &doc["spec"],
                &stored["spec"],
                &format!("{}: {kind}/{name} spec", file.display()),
            );
        }
    }
}

#[test]
fn the_examples_can_all_be_applied_in_one_namespace_and_again_in_another() {
    let cp = ControlPlane::shared();
    let mut seen = std::collections::BTreeMap::new();
    let mut addresses = std::collections::BTreeMap::new();
    for file in example_files() {
        for doc in documents(cp, &file) {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let name = doc["metadata"]["name"].as_str().unwrap().to_string();
            let here = file.file_name().unwrap().to_string_lossy().into_owned();
            if let Some(other) = seen.insert((kind.clone(), name.clone()), here.clone()) {
                panic!("{kind}/{name} is in {other} and {here}: applying both replaces one");
            }
            // what Proxmox holds once per cluster cannot be fixed in a manifest meant for any namespace
            if kind == "LxcContainer" || kind == "LxcTemplate" {
                assert!(doc["spec"]["vmid"].is_null(), "{here}: {kind}/{name} fixes a vmid");
                for nic in doc["spec"]["network"].as_array().into_iter().flatten() {
                    assert!(nic["mac"].is_null(), "{here}: {kind}/{name} fixes a MAC");
                    if let Some(a) = nic["ipv4"]["address"].as_str() {
                        if let Some(other) = addresses.insert(a.to_string(), here.clone()) {
                            panic!("{a} is in {other} and {here}");
                        }
                    }
                }
            }
        }
    }
    // applied as a user would (a directory, then the same into a second namespace): nothing
    // replaces anything, every object is there
    let dir = repo().join("examples");
    let files: Vec<String> = example_files()
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    for prefix in ["all-examples", "all-examples-again"] {
        let ns = cp.namespace(prefix);
        let mut args = vec!["apply", "-n", ns.as_str()];
        for f in &files {
            args.extend(["-f", f.as_str()]);
        }
        let out = cp.kubectl(&args);
        assert!(
            out.status.success(),
            "{}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = cp.kubectl_ok(&["get", "proxmox,secrets,configmaps", "-n", &ns, "-o", "name"]);
        for (kind, name) in seen.keys() {
            let want = match kind.as_str() {
                "Secret" => format!("secret/{name}"),
                "ConfigMap" => format!("configmap/{name}"),
                k => format!("{}.pve.lxc.dev/{name}", k.to_lowercase()),
            };
            assert!(listed.lines().any(|l| l == want), "{want} missing in {ns}:\n{listed}");
        }
    }
}

#[test]
fn kubectl_get_proxmox_lists_every_kind() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("category");
    for file in example_files()
        .iter()
        .filter(|f| f.to_string_lossy().ends_with("-minimal.yaml"))
    {
        cp.kubectl_ok(&["apply", "-n", &ns, "-f", file.to_str().unwrap()]);
    }
    let listed = cp.kubectl_ok(&["get", "proxmox", "-n", &ns, "-o", "name"]);
    for expected in [
        "proxmoxcluster.pve.lxc.dev/default",
        "proxmoxtenant.pve.lxc.dev/team-a",
        "lxccontainer.pve.lxc.dev/hello",
        "lxctemplate.pve.lxc.dev/debian-base",
        "lxcbackupschedule.pve.lxc.dev/nightly",
        "lxcbackup.pve.lxc.dev/hello-manual",
        "lxcsnapshotschedule.pve.lxc.dev/hourly",
    ] {
        assert!(
            listed.lines().any(|l| l == expected),
            "{expected} not in `kubectl get proxmox`:\n{listed}"
        );
    }
    // short names work too
    for short in ["pvec", "pvet", "lxc", "lxct", "lxcbs", "lxcb", "lxcss"] {
        assert!(
            !cp.kubectl_ok(&["get", short, "-n", &ns, "-o", "name"])
                .trim()
                .is_empty(),
            "{short}"
        );
    }
}

#[test]
fn defaults_are_filled_in_by_the_schema() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("defaults");
    cp.kubectl_ok(&[
        "apply",
        "-n",
        &ns,
        "-f",
        repo().join("examples/lxccontainer-minimal.yaml").to_str().unwrap(),
    ]);
    let stored: Value =
        serde_json::from_str(&cp.kubectl_ok(&["get", "-n", &ns, "lxc", "hello", "-o", "json"])).unwrap();
    let spec = &stored["spec"];
    assert_eq!(spec["state"], "Running");
    assert_eq!(spec["unprivileged"], true);
    assert_eq!(spec["management"], "Full");
    assert_eq!(spec["deletionPolicy"], "Delete");
}

const VALID_CONTAINER: &str = r#"{
  "apiVersion": "pve.lxc.dev/v1alpha1", "kind": "LxcContainer",
  "metadata": {"name": "probe"},
  "spec": {
    "source": {"osTemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
    "hostname": "probe", "tags": ["web"],
    "resources": {"cores": 1, "memory": "512Mi"},
    "network": [{"name": "eth0", "bridge": "vmbr0", "ipv4": {"address": "10.0.0.5/24", "gateway": "10.0.0.1"}}]
  }
}"#;

/// Applies `VALID_CONTAINER` with `edit` applied to its spec and returns the apiserver's error.
/// kubectl's own validation is off: the apiserver itself must refuse.
fn refused_container(cp: &ControlPlane, ns: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut obj: Value = serde_json::from_str(VALID_CONTAINER).unwrap();
    edit(&mut obj["spec"]);
    let out = cp.kubectl_stdin(
        &["create", "--validate=false", "-n", ns, "-f", "-"],
        Some(&obj.to_string()),
    );
    assert!(!out.status.success(), "the apiserver accepted an invalid object: {obj}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_valid_probe_object_is_accepted() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("probe");
    let out = cp.kubectl_stdin(&["create", "-n", &ns, "-f", "-"], Some(VALID_CONTAINER));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn invalid_containers_are_refused_with_the_field_named() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("invalid");
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "bad hostname",
            "spec.hostname",
            Box::new(|s| s["hostname"] = "bad_host!".into()),
        ),
        (
            "cores 0",
            "spec.resources.cores",
            Box::new(|s| s["resources"]["cores"] = 0.into()),
        ),
        (
            "cores too many",
            "spec.resources.cores",
            Box::new(|s| s["resources"]["cores"] = 8193.into()),
        ),
        (
            "two sources",
            "spec.source",
            Box::new(|s| s["source"]["clone"] = serde_json::json!({"vmid": 9000})),
        ),
        (
            "no source",
            "spec.source",
            Box::new(|s| s["source"] = serde_json::json!({})),
        ),
        ("vmid too small", "spec.vmid", Box::new(|s| s["vmid"] = 99.into())),
        (
            "vmid too large",
            "spec.vmid",
            Box::new(|s| s["vmid"] = 1_000_000_000u64.into()),
        ),
        ("bad state", "spec.state", Box::new(|s| s["state"] = "Paused".into())),
        (
            "bad management",
            "spec.management",
            Box::new(|s| s["management"] = "Sometimes".into()),
        ),
        (
            "bad deletion policy",
            "spec.deletionPolicy",
            Box::new(|s| s["deletionPolicy"] = "Orphan".into()),
        ),
        (
            "bridge with injected key",
            "bridge",
            Box::new(|s| s["network"][0]["bridge"] = "vmbr0,firewall=0".into()),
        ),
        (
            "bridge with =",
            "bridge",
            Box::new(|s| s["network"][0]["bridge"] = "vmbr0=1".into()),
        ),
        (
            "bridge with ;",
            "bridge",
            Box::new(|s| s["network"][0]["bridge"] = "vmbr0;x".into()),
        ),
        (
            "tag with ,",
            "spec.tags",
            Box::new(|s| s["tags"] = serde_json::json!(["a,b"])),
        ),
        (
            "tag with ;",
            "spec.tags",
            Box::new(|s| s["tags"] = serde_json::json!(["a;b"])),
        ),
        (
            "tag with =",
            "spec.tags",
            Box::new(|s| s["tags"] = serde_json::json!(["a=b"])),
        ),
        (
            "bad CIDR",
            "address",
            Box::new(|s| s["network"][0]["ipv4"]["address"] = "10.0.0.300/24".into()),
        ),
        (
            "CIDR without prefix",
            "address",
            Box::new(|s| s["network"][0]["ipv4"]["address"] = "10.0.0.5".into()),
        ),
        (
            "bad MAC",
            "mac",
            Box::new(|s| s["network"][0]["mac"] = "BC:24:11:00:00".into()),
        ),
        (
            "negative memory",
            "spec.resources.memory",
            Box::new(|s| s["resources"]["memory"] = "-1Gi".into()),
        ),
        (
            "negative memory as a number",
            "spec.resources.memory",
            Box::new(|s| s["resources"]["memory"] = (-1).into()),
        ),
        (
            "memory with unit typo",
            "spec.resources.memory",
            Box::new(|s| s["resources"]["memory"] = "1GB".into()),
        ),
        (
            "negative rootfs size",
            "spec.rootfs.size",
            Box::new(|s| s["rootfs"] = serde_json::json!({"storage": "local-lvm", "size": "-8Gi"})),
        ),
        (
            "storage with ,",
            "spec.rootfs.storage",
            Box::new(|s| s["rootfs"] = serde_json::json!({"storage": "local,size=1", "size": "8Gi"})),
        ),
        ("vlan 0", "vlan", Box::new(|s| s["network"][0]["vlan"] = 0.into())),
        (
            "mount path with ,",
            "path",
            Box::new(|s| {
                s["mountPoints"] = serde_json::json!([{"name": "mp0", "storage": "local-lvm", "size": "1Gi", "path": "/data,backup=0"}])
            }),
        ),
        (
            "mount point key",
            "name",
            Box::new(|s| {
                s["mountPoints"] =
                    serde_json::json!([{"name": "mp256", "storage": "local-lvm", "size": "1Gi", "path": "/data"}])
            }),
        ),
        (
            "template volid elsewhere",
            "osTemplate",
            Box::new(|s| s["source"]["osTemplate"] = "local:iso/x.iso".into()),
        ),
        (
            "firewall comment with newline",
            "comment",
            Box::new(
                |s| s["firewall"] = serde_json::json!({"enabled": true, "rules": [{"action": "ACCEPT", "direction": "in", "comment": "a\nb"}]}),
            ),
        ),
        (
            "firewall bad action",
            "action",
            Box::new(|s| {
                s["firewall"] = serde_json::json!({"enabled": true, "rules": [{"action": "ALLOW", "direction": "in"}]})
            }),
        ),
        (
            "port 0",
            "port",
            Box::new(|s| s["ports"] = serde_json::json!([{"name": "http", "port": 0}])),
        ),
        (
            "unknown power state casing",
            "spec.state",
            Box::new(|s| s["state"] = "running".into()),
        ),
    ];
    let mut failures = Vec::new();
    for (what, field, edit) in cases {
        let err = refused_container(cp, &ns, edit);
        if !err.contains(field) {
            failures.push(format!("{what}: error does not name {field}: {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_objects_of_the_other_kinds_are_refused_with_the_field_named() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("invalid-other");
    let cases = [
        (
            "no endpoints",
            "spec.endpoints",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{"name":"x"},"spec":{"endpoints":[],"credentialsRef":{"name":"c"}}}"#,
        ),
        (
            "http endpoint",
            "spec.endpoints",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{"name":"x"},"spec":{"endpoints":["http://pve:8006"],"credentialsRef":{"name":"c"}}}"#,
        ),
        (
            "two TLS modes",
            "spec.tls",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{"name":"x"},"spec":{"endpoints":["https://pve:8006"],"credentialsRef":{"name":"c"},"tls":{"insecureSkipVerify":true,"fingerprint":"AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"}}}"#,
        ),
        (
            "bad resync",
            "spec.resyncInterval",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{"name":"x"},"spec":{"endpoints":["https://pve:8006"],"credentialsRef":{"name":"c"},"resyncInterval":"soon"}}"#,
        ),
        (
            "tasks per node 0",
            "maxConcurrentTasksPerNode",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"ProxmoxCluster","metadata":{"name":"x"},"spec":{"endpoints":["https://pve:8006"],"credentialsRef":{"name":"c"},"limits":{"maxConcurrentTasksPerNode":0}}}"#,
        ),
        (
            "two images",
            "spec.image",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcTemplate","metadata":{"name":"x"},"spec":{"image":{"appliance":"debian-12-standard","volid":"local:vztmpl/a.tar.zst"}}}"#,
        ),
        (
            "no image",
            "spec.image",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcTemplate","metadata":{"name":"x"},"spec":{"image":{}}}"#,
        ),
        (
            "bad checksum",
            "checksum",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcTemplate","metadata":{"name":"x"},"spec":{"image":{"url":{"url":"https://x/a.tar.zst","checksum":"sha256:xyz"}}}}"#,
        ),
        (
            "bad backup mode",
            "spec.mode",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcBackup","metadata":{"name":"x"},"spec":{"containerRef":{"name":"web"},"mode":"hot"}}"#,
        ),
        (
            "notes with newline",
            "spec.notes",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcBackup","metadata":{"name":"x"},"spec":{"containerRef":{"name":"web"},"notes":"a\nb"}}"#,
        ),
        (
            "schedule missing",
            "spec.schedule",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcBackupSchedule","metadata":{"name":"x"},"spec":{"selector":{},"storage":"pbs"}}"#,
        ),
        (
            "keepLast 0",
            "keepLast",
            r#"{"apiVersion":"pve.lxc.dev/v1alpha1","kind":"LxcBackupSchedule","metadata":{"name":"x"},"spec":{"schedule":"daily","selector":{},"storage":"pbs","retention":{"keepLast":0}}}"#,
        ),
    ];
    let mut failures = Vec::new();
    for (what, field, obj) in cases {
        let out = cp.kubectl_stdin(&["create", "--validate=false", "-n", &ns, "-f", "-"], Some(obj));
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{what}: accepted"));
            let _ = cp.kubectl_stdin(&["delete", "-n", &ns, "-f", "-"], Some(obj));
        } else if !err.contains(field) {
            failures.push(format!("{what}: error does not name {field}: {err}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
