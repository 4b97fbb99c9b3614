//! Tests of `desired`: the spec validated into the Proxmox config it asks for.

use super::*;
use crate::crd::ByteQuantity;

/// A valid spec with nothing but a source (the other tests of the container kind start from it).
pub(in crate::controller::container) fn base() -> LxcContainerSpec {
    LxcContainerSpec {
        source: ContainerSource {
            os_template: Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()),
            ..Default::default()
        },
        unprivileged: true,
        ..Default::default()
    }
}

fn net(f: impl FnOnce(&mut NetworkInterface)) -> LxcContainerSpec {
    let mut n = NetworkInterface {
        name: "eth0".into(),
        bridge: "vmbr0".into(),
        ..Default::default()
    };
    f(&mut n);
    LxcContainerSpec {
        network: vec![n],
        ..base()
    }
}

#[test]
fn a_minimal_spec_manages_only_the_hostname_and_our_tag() {
    let d = validate(&base(), "web", "ABC-1").unwrap();
    let only_hostname = ManagedConfig {
        hostname: "web".into(),
        ..Default::default()
    };
    assert_eq!(d.config, only_hostname);
    assert_eq!(d.identity_tag, "k8s-abc-1");
    assert_eq!(d.all_tags(), vec!["k8s-abc-1"]);
    assert!(d.nets.is_empty());
}

#[test]
fn resources_become_proxmox_units() {
    let spec = LxcContainerSpec {
        resources: Some(Resources {
            cores: Some(2),
            cpu_limit: Some("1.5".into()),
            cpu_units: Some(100),
            memory: Some(ByteQuantity::new("1Gi")),
            swap: Some(ByteQuantity::new("512Mi")),
        }),
        ..base()
    };
    let d = validate(&spec, "web", "u").unwrap();
    assert_eq!(d.config.cores, Some(2));
    assert_eq!(d.config.cpulimit, Some(1.5));
    assert_eq!(d.config.cpuunits, Some(100));
    assert_eq!(d.config.memory_mib, Some(1024));
    assert_eq!(d.config.swap_mib, Some(512));
}

#[test]
fn memory_that_is_not_whole_mib_names_the_field() {
    let spec = LxcContainerSpec {
        resources: Some(Resources {
            memory: Some(ByteQuantity::new("1G")),
            ..Default::default()
        }),
        ..base()
    };
    let e = validate(&spec, "web", "u").unwrap_err();
    assert_eq!(e.field, "resources.memory");
}

#[test]
fn a_backup_volid_that_climbs_out_of_its_storage_is_refused() {
    let mut spec = base();
    spec.source = ContainerSource {
        backup: Some(BackupSource {
            name: None,
            volid: Some("local:backup/../../etc/vzdump-lxc-1.tar".into()),
        }),
        ..Default::default()
    };
    let e = validate(&spec, "web", "u").unwrap_err();
    assert_eq!(e.field, "source.backup.volid");
    spec.source.backup = Some(BackupSource {
        name: None,
        volid: Some("local:backup/vzdump-lxc-101-2026_01_01-00_00_00.tar.zst".into()),
    });
    assert!(validate(&spec, "web", "u").is_ok());
}

#[test]
fn two_sources_or_none_are_refused() {
    let mut spec = base();
    spec.source.clone = Some(CloneSource { vmid: 9000, full: true });
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "source");
    spec.source = ContainerSource::default();
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "source");
}

#[test]
fn injected_property_separators_never_get_through() {
    for bad in ["vmbr0,firewall=0", "vmbr0=1", "vmbr0;x", "vmbr0\nx"] {
        let e = validate(&net(|n| n.bridge = bad.into()), "x", "u").unwrap_err();
        assert_eq!(e.field, "network[0].bridge", "{bad}");
    }
    let mut spec = base();
    spec.tags = vec!["a,b=c".into()];
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "tags[0]");
    spec.tags = vec![];
    spec.rootfs = Some(Box::new(RootFs {
        storage: "local,size=1".into(),
        size: ByteQuantity::new("8Gi"),
    }));
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "rootfs.storage");
    spec.rootfs = Some(Box::new(RootFs {
        storage: "local".into(),
        size: ByteQuantity::new("8Gi"),
    }));
    spec.mount_points = vec![MountPoint {
        name: "mp0".into(),
        storage: "local".into(),
        size: ByteQuantity::new("1Gi"),
        path: "/data,backup=0".into(),
        backup: None,
        read_only: None,
    }];
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "mountPoints[0].path");
}

#[test]
fn gateway_outside_the_subnet_is_refused() {
    let e = validate(
        &net(|n| {
            n.ipv4 = Some(Ipv4Config {
                address: Some("10.0.0.5/24".into()),
                gateway: Some("10.0.1.1".into()),
                dhcp: None,
            })
        }),
        "x",
        "u",
    )
    .unwrap_err();
    assert_eq!(e.field, "network[0].ipv4.gateway");
    let d = validate(
        &net(|n| {
            n.ipv4 = Some(Ipv4Config {
                address: Some("10.0.0.5/24".into()),
                gateway: Some("10.0.0.1".into()),
                dhcp: None,
            })
        }),
        "x",
        "u",
    )
    .unwrap();
    assert_eq!(
        d.nets[&0].encode().unwrap(),
        "name=eth0,bridge=vmbr0,gw=10.0.0.1,ip=10.0.0.5/24,type=veth"
    );
}

#[test]
fn duplicate_interface_names_are_refused() {
    let mut spec = net(|_| {});
    spec.network.push(spec.network[0].clone());
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "network[1].name");
}

#[test]
fn our_identity_tag_cannot_be_claimed_by_the_user() {
    let mut spec = base();
    spec.tags = vec!["k8s-someone-else".into()];
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "tags[0]");
}

#[test]
fn disks_must_be_whole_gib() {
    let mut spec = base();
    spec.rootfs = Some(Box::new(RootFs {
        storage: "local-lvm".into(),
        size: ByteQuantity::new("1536Mi"),
    }));
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "rootfs.size");
    spec.rootfs = Some(Box::new(RootFs {
        storage: "local-lvm".into(),
        size: ByteQuantity::new("8Gi"),
    }));
    assert_eq!(validate(&spec, "x", "u").unwrap().rootfs, Some(("local-lvm".into(), 8)));
}

#[test]
fn observe_only_needs_a_vmid() {
    let mut spec = base();
    spec.management = Management::ObserveOnly;
    assert_eq!(validate(&spec, "x", "u").unwrap_err().field, "vmid");
}

#[test]
fn console_and_time_zone_become_cmode_tty_and_timezone() {
    let spec = LxcContainerSpec {
        console: Some(Console {
            mode: Some(ConsoleMode::Shell),
            ttys: Some(0),
        }),
        timezone: Some("Europe/Berlin".into()),
        ..base()
    };
    let d = validate(&spec, "web", "uid").unwrap();
    assert_eq!(d.config.cmode, Some(ConsoleMode::Shell));
    assert_eq!(d.config.tty, Some(0));
    assert_eq!(d.config.timezone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        d.create_params(100, "local:vztmpl/x.tar.zst").timezone.as_deref(),
        Some("Europe/Berlin")
    );
    for bad in ["Europe/../etc", "a b", "/x"] {
        let spec = LxcContainerSpec {
            timezone: Some(bad.into()),
            ..base()
        };
        assert_eq!(validate(&spec, "web", "uid").unwrap_err().field, "timezone", "{bad}");
    }
}
