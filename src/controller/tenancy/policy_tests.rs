use super::*;
use crate::crd::lxc_container::{Features, Ipv4Config, NetworkInterface, Resources};
use crate::crd::proxmox_tenant::*;
use crate::crd::ByteQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn tenant(name: &str, spec: ProxmoxTenantSpec) -> Arc<ProxmoxTenant> {
    Arc::new(ProxmoxTenant::new(name, spec))
}

fn team_a() -> ProxmoxTenantSpec {
    ProxmoxTenantSpec {
        clusters: vec!["pve".into()],
        namespaces: vec!["team-a".into()],
        pool: Some("team-a".into()),
        vmid_range: Some(VmidRange { min: 2000, max: 2999 }),
        nodes: vec!["pve1".into()],
        storages: Some(TenantStorages {
            rootfs: vec!["local-lvm".into()],
            ..Default::default()
        }),
        network: Some(TenantNetwork {
            bridges: vec![TenantBridge {
                name: "vmbr0".into(),
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

fn nic(bridge: &str, vlan: Option<u16>) -> NetworkInterface {
    NetworkInterface {
        name: "eth0".into(),
        bridge: bridge.into(),
        vlan,
        ..Default::default()
    }
}

fn spec() -> LxcContainerSpec {
    LxcContainerSpec {
        unprivileged: true,
        network: vec![nic("vmbr0", Some(20))],
        ..Default::default()
    }
}

fn refused(s: &LxcContainerSpec) -> Reason {
    check_container(&team_a(), s, "local-lvm").unwrap_err().reason
}

#[test]
fn a_namespace_without_tenant_uses_open_clusters_only() {
    assert!(matches!(
        admit("pve", Tenancy::Open, "x", None, &[]),
        Ok(Admission::Open)
    ));
    let r = admit("pve", Tenancy::Restricted, "x", Some(&BTreeMap::new()), &[]).unwrap_err();
    assert_eq!(r.reason, Reason::TenantPolicyClusterNotAllowed);
}

#[test]
fn a_tenants_namespace_uses_only_the_tenants_clusters_even_open_ones() {
    let ts = [tenant("a", team_a())];
    assert!(matches!(
        admit("pve", Tenancy::Restricted, "team-a", None, &ts),
        Ok(Admission::Tenant(_))
    ));
    let r = admit("other", Tenancy::Open, "team-a", None, &ts).unwrap_err();
    assert!(r.message.contains("may not use ProxmoxCluster other"), "{}", r.message);
}

#[test]
fn tenants_match_namespaces_by_label_but_never_by_an_empty_selector() {
    let mut by_label = team_a();
    by_label.namespaces.clear();
    by_label.namespace_selector = Some(LabelSelector {
        match_labels: Some([("team".to_string(), "a".to_string())].into()),
        ..Default::default()
    });
    let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
    assert!(covers(&by_label, "anything", Some(&labels)));
    assert!(!covers(&by_label, "anything", Some(&BTreeMap::new())));
    let mut empty = team_a();
    empty.namespaces.clear();
    empty.namespace_selector = Some(LabelSelector::default());
    assert!(!covers(&empty, "anything", Some(&labels)));
}

#[test]
fn a_namespace_claimed_by_two_tenants_is_refused() {
    let ts = [tenant("a", team_a()), tenant("b", team_a())];
    let r = admit("pve", Tenancy::Open, "team-a", None, &ts).unwrap_err();
    assert_eq!(r.reason, Reason::TenantPolicyAmbiguous);
}

#[test]
fn a_spec_inside_the_limits_passes() {
    assert_eq!(check_container(&team_a(), &spec(), "local-lvm"), Ok(()));
}

#[test]
fn each_limit_is_named_when_exceeded() {
    let mut s = spec();
    s.pool = Some("team-b".into());
    assert_eq!(refused(&s), Reason::TenantPolicyPool);
    let mut s = spec();
    s.vmid = Some(105);
    assert_eq!(refused(&s), Reason::TenantPolicyVmidRange);
    let mut s = spec();
    s.node = Some("pve2".into());
    assert_eq!(refused(&s), Reason::TenantPolicyNode);
    assert_eq!(
        check_container(&team_a(), &spec(), "local").unwrap_err().reason,
        Reason::TenantPolicyStorage
    );
    let mut s = spec();
    s.network = vec![nic("vmbr1", None)];
    assert_eq!(refused(&s), Reason::TenantPolicyNetwork);
    let mut s = spec();
    s.network = vec![nic("vmbr0", Some(30))];
    assert_eq!(refused(&s), Reason::TenantPolicyNetwork);
    let mut s = spec();
    s.network = vec![nic("vmbr0", None)];
    assert_eq!(refused(&s), Reason::TenantPolicyNetwork);
    let mut s = spec();
    s.network[0].mac = Some("BC:24:11:00:00:01".into());
    assert_eq!(refused(&s), Reason::TenantPolicyMacAddress);
    let mut s = spec();
    s.network[0].ipv4 = Some(Ipv4Config {
        address: Some("10.30.0.5/24".into()),
        ..Default::default()
    });
    assert_eq!(refused(&s), Reason::TenantPolicyAddress);
    s.network[0].ipv4.as_mut().unwrap().address = Some("10.20.0.5/24".into());
    assert_eq!(check_container(&team_a(), &s, "local-lvm"), Ok(()));
    let mut s = spec();
    s.unprivileged = false;
    assert_eq!(refused(&s), Reason::TenantPolicyPrivileged);
    let mut s = spec();
    s.features = Some(Features {
        nesting: Some(true),
        keyctl: Some(true),
        fuse: None,
    });
    assert_eq!(refused(&s), Reason::TenantPolicyFeatures);
}

#[test]
fn ipv6_ranges_are_checked_like_ipv4_ones() {
    let ranges = vec!["fd00:20::/64".to_string()];
    assert!(address_allowed("fd00:20::5/64", &ranges));
    assert!(!address_allowed("fd00:21::5/64", &ranges));
    assert!(!address_allowed("10.0.0.1/24", &ranges));
    assert!(address_allowed("anything", &[]));
}

#[test]
fn quotas_count_defaults_and_name_the_exceeded_one() {
    let mut s = spec();
    s.resources = Some(Resources {
        cores: Some(4),
        memory: Some(ByteQuantity::new("2Gi")),
        ..Default::default()
    });
    let f = footprint(&s);
    assert_eq!(
        f,
        Footprint {
            containers: 1,
            cores: 4,
            memory_mib: 2048,
            disk_gib: 8
        }
    );
    let q = TenantQuota {
        containers: Some(2),
        cores: Some(6),
        ..Default::default()
    };
    assert!(quota_check(&q, Footprint::default(), f).is_ok());
    let r = quota_check(&q, f, f).unwrap_err();
    assert_eq!(r.reason, Reason::TenantPolicyQuotaExceeded);
    assert!(r.message.contains("cores"), "{}", r.message);
    let memory = TenantQuota {
        memory: Some(ByteQuantity::new("3Gi")),
        ..Default::default()
    };
    assert!(quota_check(&memory, f, f).unwrap_err().message.contains("memory"));
}

#[test]
fn a_tenant_pulls_images_only_from_its_registries() {
    let mut t = team_a();
    let err = check_image(&t, "nginx:1.27", "local").unwrap_err();
    assert_eq!(err.reason, Reason::TenantPolicyImageRegistry);
    assert!(err.message.contains("docker.io"), "{}", err.message);
    t.image_registries = vec!["docker.io".into()];
    assert_eq!(check_image(&t, "nginx:1.27", "local"), Ok(()));
    assert!(check_image(&t, "ghcr.io/acme/app:1", "local").is_err());
    assert_eq!(
        registry_of("registry.example.org:5000/app:2"),
        "registry.example.org:5000"
    );
}

#[test]
fn bind_mounts_and_devices_need_the_tenants_privilege_and_stay_inside_its_paths() {
    use crate::crd::lxc_container::{BindMount, Device};
    let with = |host: &str, dev: Option<&str>| LxcContainerSpec {
        bind_mounts: vec![BindMount {
            host_path: host.into(),
            mount_path: "/data".into(),
            ..Default::default()
        }],
        devices: dev
            .map(|d| Device {
                path: d.into(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..spec()
    };
    let privileged = |bind_mounts, devices, paths: &[&str], device_paths: &[&str]| {
        let mut t = team_a();
        t.privileges = Some(TenantPrivileges {
            bind_mounts,
            devices,
            bind_mount_paths: paths.iter().map(|p| p.to_string()).collect(),
            device_paths: device_paths.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        });
        t
    };
    // (tenant, spec, refusal or None, what the message names)
    let table: Vec<(ProxmoxTenantSpec, LxcContainerSpec, Option<Reason>, &str)> = vec![
        (
            team_a(),
            with("/srv/a", None),
            Some(Reason::TenantPolicyBindMounts),
            "privileges.bindMounts",
        ),
        (privileged(true, false, &[], &[]), with("/anything", None), None, ""),
        (
            privileged(true, false, &["/srv/team-a"], &[]),
            with("/srv/team-a/media", None),
            None,
            "",
        ),
        (
            privileged(true, false, &["/srv/team-a/"], &[]),
            with("/srv/team-a", None),
            None,
            "",
        ),
        (
            privileged(true, false, &["/srv/team-a"], &[]),
            with("/srv/team-ab", None),
            Some(Reason::TenantPolicyBindMounts),
            "spec.bindMounts[0].hostPath /srv/team-ab is outside the tenant's allowed paths (/srv/team-a)",
        ),
        (
            privileged(true, false, &[], &[]),
            with("/srv/a", Some("/dev/dri/renderD128")),
            Some(Reason::TenantPolicyDevices),
            "privileges.devices",
        ),
        (
            privileged(true, true, &[], &["/dev/dri"]),
            with("/srv/a", Some("/dev/dri/renderD128")),
            None,
            "",
        ),
        (
            privileged(true, true, &[], &["/dev/dri"]),
            with("/srv/a", Some("/dev/ttyUSB0")),
            Some(Reason::TenantPolicyDevices),
            "spec.devices[0].path /dev/ttyUSB0",
        ),
    ];
    for (i, (t, s, want, says)) in table.into_iter().enumerate() {
        match (check_container(&t, &s, "local-lvm"), want) {
            (Ok(()), None) => {}
            (Err(r), Some(reason)) => {
                assert_eq!(r.reason, reason, "case {i}");
                assert!(r.message.contains(says), "case {i}: {}", r.message);
            }
            (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn high_availability_needs_the_tenants_privilege_and_affinity_only_names_its_nodes() {
    use crate::crd::ha::{HaNode, HaNodeAffinity, HighAvailability};
    let with_nodes = |nodes: &[&str]| LxcContainerSpec {
        high_availability: Some(Box::new(HighAvailability {
            node_affinity: (!nodes.is_empty()).then(|| HaNodeAffinity {
                nodes: nodes
                    .iter()
                    .map(|n| HaNode {
                        name: n.to_string(),
                        priority: None,
                    })
                    .collect(),
                strict: true,
            }),
            ..Default::default()
        })),
        ..spec()
    };
    let allowed = |on: bool| ProxmoxTenantSpec {
        privileges: Some(TenantPrivileges {
            high_availability: on,
            ..Default::default()
        }),
        ..team_a()
    };
    let e = check_container(&allowed(false), &with_nodes(&[]), "local-lvm").unwrap_err();
    assert_eq!(e.reason, Reason::TenantPolicyHighAvailability);
    assert!(e.message.contains("privileges.highAvailability"), "{}", e.message);
    assert!(check_container(&allowed(true), &with_nodes(&["pve1"]), "local-lvm").is_ok());
    let e = check_container(&allowed(true), &with_nodes(&["pve1", "pve2"]), "local-lvm").unwrap_err();
    assert_eq!(e.reason, Reason::TenantPolicyHighAvailability);
    assert!(
        e.message
            .contains("nodes[1] pve2 is not one of the tenant's nodes (pve1)"),
        "{}",
        e.message
    );
}

#[test]
fn a_namespace_whose_labels_are_unknown_is_not_admitted_while_a_tenant_selects_by_label() {
    let mut by_label = team_a();
    by_label.namespaces.clear();
    by_label.namespace_selector = Some(LabelSelector {
        match_labels: Some([("team".to_string(), "a".to_string())].into()),
        ..Default::default()
    });
    let ts = [tenant("a", by_label), tenant("named", team_a())];
    // unknown labels: the selector might cover it, so nothing is admitted (not even Open)
    let r = admit("pve", Tenancy::Open, "fresh", None, &ts).unwrap_err();
    assert_eq!(r.reason, Reason::TenantPolicyPending);
    assert!(r.message.contains("fresh"), "{}", r.message);
    // a namespace a tenant names needs no labels; known labels decide as before
    assert!(matches!(
        admit("pve", Tenancy::Open, "team-a", None, &ts),
        Ok(Admission::Tenant(_))
    ));
    assert!(matches!(
        admit("pve", Tenancy::Open, "fresh", Some(&BTreeMap::new()), &ts),
        Ok(Admission::Open)
    ));
}

#[test]
fn only_growth_is_checked_against_a_quota() {
    let small = Footprint {
        containers: 1,
        cores: 1,
        memory_mib: 512,
        disk_gib: 8,
    };
    let big = Footprint { cores: 4, ..small };
    assert!(small.within(&small));
    assert!(small.within(&big));
    assert!(!big.within(&small));
}

#[test]
fn a_tenant_limited_to_nodes_pve1_and_pve2_gets_tenant_policy_high_availability_without_a_strict_affinity_on_them() {
    use crate::crd::ha::{HaNode, HaNodeAffinity, HighAvailability};
    let t = ProxmoxTenantSpec {
        nodes: vec!["pve1".into(), "pve2".into()],
        privileges: Some(TenantPrivileges {
            high_availability: true,
            ..Default::default()
        }),
        ..team_a()
    };
    let ha = |affinity: Option<(&[&str], bool)>| LxcContainerSpec {
        high_availability: Some(Box::new(HighAvailability {
            node_affinity: affinity.map(|(nodes, strict)| HaNodeAffinity {
                nodes: nodes
                    .iter()
                    .map(|n| HaNode {
                        name: n.to_string(),
                        priority: None,
                    })
                    .collect(),
                strict,
            }),
            ..Default::default()
        })),
        ..spec()
    };
    // no affinity, or one HA may leave when pve1 and pve2 are down: recovered anywhere
    for s in [ha(None), ha(Some((&["pve1", "pve2"], false)))] {
        let e = check_container(&t, &s, "local-lvm").unwrap_err();
        assert_eq!(e.reason, Reason::TenantPolicyHighAvailability);
        assert!(e.message.contains("strict: true"), "{}", e.message);
    }
    assert!(check_container(&t, &ha(Some((&["pve1", "pve2"], true))), "local-lvm").is_ok());
    assert!(check_container(&t, &ha(Some((&["pve2"], true))), "local-lvm").is_ok());
    // a tenant free to use every node needs no affinity
    let anywhere = ProxmoxTenantSpec {
        nodes: Vec::new(),
        ..t.clone()
    };
    assert!(check_container(&anywhere, &ha(None), "local-lvm").is_ok());
}

#[test]
fn a_tenant_with_registries_docker_io_cannot_name_the_file_another_namespace_pulled_from_ghcr_io() {
    let t = ProxmoxTenantSpec {
        image_registries: vec!["docker.io".into()],
        storages: Some(TenantStorages {
            rootfs: vec!["local-lvm".into()],
            templates: vec!["local".into()],
            ..Default::default()
        }),
        ..team_a()
    };
    let theirs = crate::controller::container::image::volid("local", "ghcr.io/team-b/app:1.0");
    let with = |volid: &str| LxcContainerSpec {
        source: crate::crd::lxc_container::ContainerSource {
            os_template: Some(volid.to_string()),
            ..Default::default()
        },
        ..spec()
    };
    let e = check_container(&t, &with(&theirs), "local-lvm").unwrap_err();
    assert_eq!(e.reason, Reason::TenantPolicyImageRegistry);
    assert!(e.message.contains("spec.source.image"), "{}", e.message);
    // its own docker.io pull too: images are reached through spec.source.image only
    let mine = crate::controller::container::image::volid("local", "nginx:1");
    assert!(check_container(&t, &with(&mine), "local-lvm").is_err());
    // an OS template on one of its template storages is fine, on another storage not
    assert!(check_container(
        &t,
        &with("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
        "local-lvm"
    )
    .is_ok());
    let e = check_container(
        &t,
        &with("nfs:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
        "local-lvm",
    )
    .unwrap_err();
    assert_eq!(e.reason, Reason::TenantPolicyStorage);
    assert!(
        e.message.starts_with("spec.source.osTemplate nfs:vztmpl/"),
        "{}",
        e.message
    );
}

#[test]
fn a_template_counts_its_disks_against_the_quota_but_no_cores_memory_or_container() {
    let s = LxcContainerSpec {
        resources: Some(Resources {
            cores: Some(4),
            memory: Some(ByteQuantity::new("4Gi")),
            ..Default::default()
        }),
        ..spec()
    };
    assert_eq!(
        template_footprint(&s),
        Footprint {
            disk_gib: 8,
            ..Default::default()
        }
    );
}

#[test]
fn a_tenant_without_a_pool_cannot_put_its_container_in_another_teams_pool() {
    let t = ProxmoxTenantSpec { pool: None, ..team_a() };
    let s = LxcContainerSpec {
        pool: Some("team-b".into()),
        ..spec()
    };
    let e = check_container(&t, &s, "local-lvm").unwrap_err();
    assert_eq!(e.reason, Reason::TenantPolicyPool);
    assert!(e.message.contains("no pool of its own"), "{}", e.message);
    assert!(check_container(&t, &spec(), "local-lvm").is_ok());
}
