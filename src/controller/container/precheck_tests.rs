//! Tests of `precheck`, and the operator's share of the corpus of mistaken manifests: each
//! spec here passes the CRD schema and is refused by the operator before any Proxmox call,
//! either by `desired::validate` (the spec alone) or by `precheck::check` (the spec against
//! the inventory). The schema's share is in tests/e2e_mistakes.rs.

use super::*;
use crate::controller::container::desired::validate;
use crate::pve::ClusterResource;
use std::collections::HashMap;
use std::time::Instant;

const GIB: u64 = 1 << 30;

/// pve1 and pve2 online (16 CPUs, 64 GiB, bridges vmbr0 and vmbr1), pve3 offline; `local`
/// (iso, vztmpl, backup), `local-lvm` (rootdir, images) on every node, `nfs-backup` (backup,
/// shared).
fn inventory() -> Snapshot {
    let mut list = Vec::new();
    for (n, online) in [("pve1", true), ("pve2", true), ("pve3", false)] {
        list.push(serde_json::json!({"id": format!("node/{n}"), "type": "node", "node": n,
            "status": if online { "online" } else { "offline" }, "maxcpu": 16, "maxmem": 64 * GIB, "mem": 4 * GIB}));
        for (s, ty, content, shared) in [
            ("local", "dir", "iso,vztmpl,backup", false),
            ("local-lvm", "lvmthin", "rootdir,images", false),
            ("nfs-backup", "nfs", "backup", true),
        ] {
            list.push(
                serde_json::json!({"id": format!("storage/{n}/{s}"), "type": "storage", "node": n,
                "storage": s, "plugintype": ty, "content": content, "shared": shared as u8}),
            );
        }
    }
    let list: Vec<ClusterResource> = serde_json::from_value(serde_json::Value::Array(list)).unwrap();
    let mut snap = Snapshot::from_resources(&list, Instant::now());
    let bridges = vec!["vmbr0".to_string(), "vmbr1".to_string()];
    snap.set_bridges(&HashMap::from([
        ("pve1".to_string(), bridges.clone()),
        ("pve2".to_string(), bridges),
    ]));
    snap
}

const DEBIAN: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn known() -> Known<'static> {
    Known {
        cluster: "default",
        templates: Some(vec![DEBIAN.to_string()].into()),
    }
}

/// The earliest layer that refuses a spec, the field it names, and a text the message holds.
#[derive(Debug, PartialEq)]
enum Verdict {
    Accepted,
    /// `desired::validate` (the spec alone).
    Validate(&'static str, &'static str),
    /// `precheck::check` (the spec against the inventory).
    Precheck(&'static str, &'static str),
}

fn verdict(spec: serde_json::Value) -> Result<(), (bool, InvalidSpec)> {
    let spec: LxcContainerSpec = serde_json::from_value(spec).expect("the spec parses");
    let desired = validate(&spec, "web", "uid-1").map_err(|e| (false, e))?;
    check(&spec, &desired, &inventory(), &known()).map_err(|e| (true, e))
}

fn os(extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({"source": {"osTemplate": DEBIAN}});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

#[test]
fn mistaken_specs_are_refused_by_the_operator_before_any_proxmox_call_naming_the_field() {
    use serde_json::json;
    use Verdict::*;
    let net = |bridge: &str| json!({"network": [{"name": "eth0", "bridge": bridge, "ipv4": {"dhcp": true}}]});
    let cases: Vec<(&str, serde_json::Value, Verdict)> = vec![
        ("a valid spec", os(json!({"node": "pve1"})), Accepted),
        ("a valid spec without a node", os(json!({})), Accepted),
        ("an offline node is not judged by its inventory", os(json!({"node": "pve3", "network": [{"name": "eth0", "bridge": "vmbr7"}]})), Accepted),
        ("a typo in the node", os(json!({"node": "pve9"})), Precheck("node", "node pve9 is not in ProxmoxCluster default: pve1, pve2, pve3")),
        ("a node named by its host name", os(json!({"node": "pve1.example.com"})), Precheck("node", "pve1, pve2, pve3")),
        ("a root disk on a storage that does not exist", os(json!({"rootfs": {"storage": "local-zfs", "size": "8Gi"}})), Precheck("rootfs.storage", "storage local-zfs does not exist in ProxmoxCluster default; storages that can hold rootdir: local-lvm")),
        ("a root disk on a storage without rootdir", os(json!({"rootfs": {"storage": "nfs-backup", "size": "8Gi"}})), Precheck("rootfs.storage", "cannot hold rootdir (its content types: backup)")),
        ("a root disk on an ISO storage", os(json!({"node": "pve2", "rootfs": {"storage": "local", "size": "8Gi"}})), Precheck("rootfs.storage", "storage local on node pve2 cannot hold rootdir")),
        ("a mount point on a backup storage", os(json!({"rootfs": {"storage": "local-lvm", "size": "8Gi"}, "mountPoints": [{"name": "mp0", "storage": "nfs-backup", "size": "4Gi", "path": "/data"}]})), Precheck("mountPoints[0].storage", "storages that can: local-lvm")),
        ("a mount point without a root disk", os(json!({"mountPoints": [{"name": "mp0", "storage": "local-lvm", "size": "4Gi", "path": "/data"}]})), Validate("rootfs", "mount points need spec.rootfs")),
        ("an OS template on a storage that does not exist", json!({"source": {"osTemplate": "nas:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}}), Precheck("source.osTemplate", "storage nas does not exist")),
        ("an OS template on a storage without vztmpl", json!({"source": {"osTemplate": "local-lvm:vztmpl/debian-12.tar.zst"}}), Precheck("source.osTemplate", "cannot hold vztmpl")),
        ("an OS template that is not there", json!({"source": {"osTemplate": "local:vztmpl/ubuntu-99.tar.zst"}}), Precheck("source.osTemplate", "volume local:vztmpl/ubuntu-99.tar.zst does not exist; OS templates on storage local: local:vztmpl/debian-12")),
        ("an image pulled into a rootdir-only storage", json!({"source": {"image": {"reference": "docker.io/library/nginx:1.27", "storage": "local-lvm"}}}), Precheck("source.image.storage", "cannot hold vztmpl")),
        ("a restore from a storage without backups", json!({"source": {"backup": {"volid": "local-lvm:backup/vzdump-lxc-100-2026_01_01-00_00_00.tar.zst"}}}), Precheck("source.backup.volid", "storages that can: local, nfs-backup")),
        ("a bridge that does not exist", os(net("vmbr9")), Precheck("network[0].bridge", "bridge vmbr9 does not exist on any online node; bridges: vmbr0, vmbr1")),
        ("a bridge typo on a pinned node", os(json!({"node": "pve1", "network": [{"name": "eth0", "bridge": "vmbr0"}, {"name": "eth1", "bridge": "vmrb1"}]})), Precheck("network[1].bridge", "does not exist on node pve1")),
        ("more cores than any node has", os(json!({"resources": {"cores": 512}})), Precheck("resources.cores", "512 cores do not fit the largest online node, which has 16 CPUs")),
        ("more memory than the node has", os(json!({"node": "pve1", "resources": {"memory": "2Ti"}})), Precheck("resources.memory", "2097152 MiB of memory does not fit node pve1, which has 65536 MiB")),
        ("memory in decimal gigabytes", os(json!({"resources": {"memory": "1G"}})), Validate("resources.memory", "1G")),
        ("a root disk size that is not whole GiB", os(json!({"rootfs": {"storage": "local-lvm", "size": "1500Mi"}})), Validate("rootfs.size", "GiB")),
        ("a duplicate interface name", os(json!({"network": [{"name": "eth0", "bridge": "vmbr0"}, {"name": "eth0", "bridge": "vmbr1"}]})), Validate("network[1].name", "eth0 is used twice")),
        ("a gateway outside the address's network", os(json!({"network": [{"name": "eth0", "bridge": "vmbr0", "ipv4": {"address": "10.0.0.7/24", "gateway": "10.1.0.1"}}]})), Validate("network[0].ipv4.gateway", "10.1.0.1")),
        ("ObserveOnly without a vmid", os(json!({"management": "ObserveOnly"})), Validate("vmid", "set spec.vmid")),
        ("two names of the rate limit that disagree", os(json!({"network": [{"name": "eth0", "bridge": "vmbr0", "rateMbps": 100, "rateMegabytesPerSecond": 12.5}]})), Validate("network[0].rateMbps", "rateMbps is its old name, set only one")),
        ("root credentials with a clone", json!({"source": {"clone": {"vmid": 100}}, "auth": {"sshPublicKeys": ["ssh-ed25519 AAAA x"]}}), Validate("auth", "source.osTemplate")),
    ];
    let mut failures = Vec::new();
    for (name, spec, want) in cases {
        let got = verdict(spec);
        let ok = match (&want, &got) {
            (Accepted, Ok(())) => true,
            (Validate(f, m), Err((false, e))) | (Precheck(f, m), Err((true, e))) => {
                e.field == *f && e.to_string().contains(m) && e.to_string().starts_with(&format!("spec.{f}: "))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn with_every_node_offline_only_the_node_name_is_checked() {
    let spec: LxcContainerSpec = serde_json::from_value(os(serde_json::json!({
        "rootfs": {"storage": "local-zfs", "size": "8Gi"}
    })))
    .unwrap();
    let desired = validate(&spec, "web", "uid-1").unwrap();
    let mut snap = inventory();
    for n in &mut snap.nodes {
        n.online = false;
    }
    assert_eq!(check(&spec, &desired, &snap, &known()), Ok(()));
}

#[test]
fn the_capacity_check_reads_the_typed_cores_and_memory_of_the_validated_config() {
    let spec: LxcContainerSpec = serde_json::from_value(os(serde_json::json!({"node": "pve1"}))).unwrap();
    let fits = validate(&spec, "web", "uid-1").unwrap();
    let cases = [
        ("16 cores fit 16 CPUs", Some(16), None, Ok(())),
        ("17 cores do not", Some(17), None, Err("resources.cores")),
        ("64 GiB fit 64 GiB", None, Some(65536), Ok(())),
        ("one MiB more does not", None, Some(65537), Err("resources.memory")),
    ];
    for (what, cores, memory_mib, want) in cases {
        let mut desired = fits.clone();
        desired.config.cores = cores;
        desired.config.memory_mib = memory_mib;
        let got = check(&spec, &desired, &inventory(), &known()).map_err(|e| e.field);
        assert_eq!(got.as_ref().map_err(String::as_str).copied(), want, "{what}");
    }
}

#[test]
fn unknown_inventory_is_not_checked() {
    let spec: LxcContainerSpec = serde_json::from_value(os(serde_json::json!({
        "network": [{"name": "eth0", "bridge": "vmbr7"}]
    })))
    .unwrap();
    let desired = validate(&spec, "web", "uid-1").unwrap();
    let mut snap = inventory();
    snap.set_bridges(&HashMap::new());
    let unknown = Known {
        cluster: "default",
        templates: None,
    };
    assert_eq!(
        check(&spec, &desired, &snap, &unknown),
        Ok(()),
        "no bridges read, no template list"
    );
}

#[test]
fn a_refused_spec_is_looked_at_again_ever_more_slowly_up_to_ten_minutes() {
    let waits: Vec<u64> = [0, 30, 60, 120, 240, 480, 960, 5000]
        .into_iter()
        .map(|s| retry_after(Duration::from_secs(s)).as_secs())
        .collect();
    assert_eq!(waits, vec![30, 30, 60, 120, 240, 480, 600, 600]);
}

#[test]
fn a_missing_template_or_backup_is_looked_for_again_soon_then_every_two_minutes() {
    let waits: Vec<u64> = [0, 5, 10, 20, 40, 80, 160, 1000]
        .into_iter()
        .map(|s| reference_retry_after(Duration::from_secs(s)).as_secs())
        .collect();
    assert_eq!(waits, vec![5, 5, 10, 20, 40, 80, 120, 120]);
}

#[test]
fn a_missing_lxc_template_or_backup_is_named_with_its_namespace() {
    let d = |source: serde_json::Value| {
        let spec: LxcContainerSpec = serde_json::from_value(serde_json::json!({ "source": source })).unwrap();
        validate(&spec, "web", "uid-1").unwrap()
    };
    let t = d(serde_json::json!({"template": {"name": "base"}}));
    let e = check_references(&t, "apps", |_, _| false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.source.template.name: LxcTemplate base does not exist in namespace apps"
    );
    assert_eq!(
        check_references(&t, "apps", |k, n| k == "LxcTemplate" && n == "base"),
        Ok(())
    );
    let b = d(serde_json::json!({"backup": {"name": "nightly"}}));
    let e = check_references(&b, "apps", |_, _| false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.source.backup.name: LxcBackup nightly does not exist in namespace apps"
    );
    assert_eq!(
        check_references(&d(serde_json::json!({"osTemplate": DEBIAN})), "apps", |_, _| false),
        Ok(())
    );
}

#[test]
fn a_create_that_keeps_failing_waits_as_long_as_the_container_has_not_been_ready() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let cond = |status: &str, ago: i64| Condition {
        type_: CONDITION_READY.into(),
        status: status.into(),
        reason: "CreateFailed".into(),
        message: String::new(),
        observed_generation: None,
        last_transition_time: Time(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(ago)),
    };
    let wait = |c: &[Condition]| retry_after(not_ready_for(c)).as_secs();
    assert_eq!(wait(&[]), 30, "no condition yet");
    assert_eq!(wait(&[cond("False", 10)]), 30);
    assert_eq!(wait(&[cond("False", 130)]), 130);
    assert_eq!(wait(&[cond("False", 7200)]), 600, "at most 10 minutes");
    assert_eq!(wait(&[cond("True", 7200)]), 30, "a Ready container failed only now");
    let long = [cond("False", 7200)];
    assert_eq!(
        create_retry("volume 'local:vztmpl/x.tar.zst' does not exist", &long).as_secs(),
        600
    );
    assert_eq!(
        create_retry("command 'lxc-usernsexec' failed: exit code 1", &long).as_secs(),
        5,
        "a passing fault"
    );
    assert_eq!(create_retry("CT is locked (backup)", &long).as_secs(), 5);
}

#[test]
fn the_old_rate_name_still_means_megabytes_per_second_and_the_new_one_wins_when_equal() {
    let rate = |nic: serde_json::Value| {
        let spec: LxcContainerSpec = serde_json::from_value(os(serde_json::json!({ "network": [nic] }))).unwrap();
        validate(&spec, "web", "uid-1").unwrap().nets[&0].rate
    };
    let nic = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"name": "eth0", "bridge": "vmbr0"});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    assert_eq!(rate(nic(serde_json::json!({"rateMbps": 100}))), Some(100.0));
    assert_eq!(
        rate(nic(serde_json::json!({"rateMegabytesPerSecond": 12.5}))),
        Some(12.5)
    );
    assert_eq!(
        rate(nic(serde_json::json!({"rateMbps": 8, "rateMegabytesPerSecond": 8}))),
        Some(8.0)
    );
}
