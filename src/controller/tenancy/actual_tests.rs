use super::*;
use crate::crd::proxmox_tenant::*;
use serde_json::json;

/// Bridge vmbr1 with VLAN 20 only, firewall forced, no privileges.
fn team_a() -> ProxmoxTenantSpec {
    ProxmoxTenantSpec {
        clusters: vec!["pve".into()],
        namespaces: vec!["team-a".into()],
        network: Some(TenantNetwork {
            bridges: vec![TenantBridge {
                name: "vmbr1".into(),
                vlans: vec![20],
                allow_untagged: false,
            }],
            address_ranges: vec!["10.20.0.0/24".into()],
            force_firewall: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn config(keys: &[(&str, serde_json::Value)]) -> LxcConfig {
    let mut raw: BTreeMap<String, Value> = BTreeMap::new();
    raw.insert("unprivileged".into(), json!(1));
    raw.insert("net0".into(), json!("name=eth0,bridge=vmbr1,tag=20,firewall=1,ip=dhcp"));
    for (k, v) in keys {
        if v.is_null() {
            raw.remove(*k);
        } else {
            raw.insert((*k).into(), v.clone());
        }
    }
    LxcConfig::from_raw(raw)
}

fn reason(keys: &[(&str, serde_json::Value)]) -> Option<Reason> {
    check_config(&team_a(), &config(keys)).err().map(|r| r.reason)
}

#[test]
fn the_policy_judges_every_key_a_clone_or_restore_brings() {
    use Reason::*;
    let v = |s: &str| json!(s);
    type Case<'a> = (&'a str, Vec<(&'a str, serde_json::Value)>, Option<Reason>);
    let cases: Vec<Case> = vec![
        ("within the limits", vec![], None),
        ("no interface at all", vec![("net0", json!(null))], None),
        (
            "the admin's LAN, untagged",
            vec![("net0", v("name=eth0,bridge=vmbr0,firewall=1"))],
            Some(TenantPolicyNetwork),
        ),
        (
            "the right bridge, untagged",
            vec![("net0", v("name=eth0,bridge=vmbr1,firewall=1"))],
            Some(TenantPolicyNetwork),
        ),
        (
            "another VLAN",
            vec![("net0", v("name=eth0,bridge=vmbr1,tag=30,firewall=1"))],
            Some(TenantPolicyNetwork),
        ),
        (
            "trunks",
            vec![("net0", v("name=eth0,bridge=vmbr1,tag=20,firewall=1,trunks=30;40"))],
            Some(TenantPolicyNetwork),
        ),
        (
            "no firewall on a second interface",
            vec![("net1", v("name=eth1,bridge=vmbr1,tag=20"))],
            Some(TenantPolicyNetwork),
        ),
        (
            "a static address outside the ranges",
            vec![("net0", v("name=eth0,bridge=vmbr1,tag=20,firewall=1,ip=192.168.1.5/24"))],
            Some(TenantPolicyAddress),
        ),
        (
            "a static address inside",
            vec![("net0", v("name=eth0,bridge=vmbr1,tag=20,firewall=1,ip=10.20.0.5/24"))],
            None,
        ),
        (
            "privileged",
            vec![("unprivileged", json!(0))],
            Some(TenantPolicyPrivileged),
        ),
        (
            "privileged by default",
            vec![("unprivileged", json!(null))],
            Some(TenantPolicyPrivileged),
        ),
        ("nesting", vec![("features", v("nesting=1"))], None),
        (
            "keyctl",
            vec![("features", v("keyctl=1,nesting=1"))],
            Some(TenantPolicyFeatures),
        ),
        (
            "mount types",
            vec![("features", v("mount=nfs"))],
            Some(TenantPolicyFeatures),
        ),
        (
            "a volume mount point",
            vec![("mp0", v("local-lvm:vm-100-disk-1,mp=/data,size=8G"))],
            None,
        ),
        (
            "a bind mount",
            vec![("mp0", v("/srv,mp=/srv"))],
            Some(TenantPolicyBindMounts),
        ),
        ("a device", vec![("dev0", v("/dev/kvm"))], Some(TenantPolicyDevices)),
        (
            "raw lxc keys",
            vec![("lxc", json!([["lxc.cgroup2.devices.allow", "a"]]))],
            Some(TenantPolicyRawConfig),
        ),
        (
            "a hookscript",
            vec![("hookscript", v("local:snippets/x.pl"))],
            Some(TenantPolicyRawConfig),
        ),
    ];
    for (what, keys, want) in cases {
        assert_eq!(reason(&keys), want, "{what}");
    }
}

#[test]
fn granted_privileges_admit_what_the_source_brings_within_their_paths() {
    let mut t = team_a();
    t.privileges = Some(TenantPrivileges {
        privileged: true,
        extra_features: true,
        bind_mounts: true,
        bind_mount_paths: vec!["/srv/a".into()],
        devices: true,
        device_paths: vec!["/dev/dri".into()],
        ..Default::default()
    });
    let ok = config(&[
        ("unprivileged", json!(0)),
        ("features", json!("keyctl=1,fuse=1")),
        ("mp0", json!("/srv/a/x,mp=/x")),
        ("dev0", json!("/dev/dri/card0,mode=0660")),
    ]);
    assert_eq!(check_config(&t, &ok), Ok(()));
    let outside = config(&[("mp0", json!("/srv/ab,mp=/x"))]);
    assert_eq!(
        check_config(&t, &outside).unwrap_err().reason,
        Reason::TenantPolicyBindMounts
    );
}

#[test]
fn the_firewall_is_required_only_where_the_tenant_forces_it() {
    let mut t = team_a();
    let bare = config(&[("net0", json!("name=eth0,bridge=vmbr1,tag=20"))]);
    assert!(check_config(&t, &bare).is_err());
    t.network.as_mut().unwrap().force_firewall = false;
    assert_eq!(check_config(&t, &bare), Ok(()));
    // a tenant without network limits gets the firewall forced (the default)
    t.network = None;
    let lan = config(&[("net0", json!("name=eth0,bridge=vmbr0"))]);
    assert_eq!(check_config(&t, &lan).unwrap_err().reason, Reason::TenantPolicyNetwork);
}

#[test]
fn the_passes_own_update_is_judged_not_the_config_before_it() {
    let before = config(&[
        ("net0", json!("name=eth0,bridge=vmbr0")),
        ("features", json!("keyctl=1")),
    ]);
    let set = BTreeMap::from([(
        "net0".to_string(),
        "name=eth0,bridge=vmbr1,tag=20,firewall=1".to_string(),
    )]);
    let after = effective(&before, &set, &["features".to_string()]);
    assert_eq!(check_config(&team_a(), &after), Ok(()));
    assert!(check_config(&team_a(), &before).is_err());
}

#[test]
fn a_clone_counts_at_least_what_proxmox_reports() {
    let spec = Footprint {
        containers: 1,
        cores: 1,
        memory_mib: 512,
        disk_gib: 8,
    };
    let big = actual_footprint(spec, Some(4 << 30), Some(100 << 30));
    assert_eq!(
        big,
        Footprint {
            containers: 1,
            cores: 1,
            memory_mib: 4096,
            disk_gib: 100
        }
    );
    assert_eq!(actual_footprint(spec, Some(1 << 20), None), spec);
    assert_eq!(
        actual_footprint(Footprint::default(), Some(4 << 30), None),
        Footprint::default()
    );
}
