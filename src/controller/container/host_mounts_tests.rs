//! Tests of `host_mounts`: bind mounts and devices, their slots and their changes.

use super::*;
use crate::controller::container::desired::validate as validate_spec;
use crate::controller::container::plan::{plan, Observed};
use crate::crd::lxc_container::*;
use crate::crd::ByteQuantity;
use serde_json::json;

fn bind(host: &str, path: &str) -> BindMount {
    BindMount {
        host_path: host.into(),
        mount_path: path.into(),
        ..Default::default()
    }
}

fn volume(name: &str, path: &str) -> crate::crd::lxc_container::MountPoint {
    crate::crd::lxc_container::MountPoint {
        name: name.into(),
        storage: "local-lvm".into(),
        size: ByteQuantity::new("1Gi"),
        path: path.into(),
        backup: None,
        read_only: None,
    }
}

fn spec(binds: Vec<BindMount>, devices: Vec<Device>) -> LxcContainerSpec {
    LxcContainerSpec {
        source: ContainerSource {
            os_template: Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()),
            ..Default::default()
        },
        unprivileged: true,
        rootfs: Some(Box::new(RootFs {
            storage: "local-lvm".into(),
            size: ByteQuantity::new("8Gi"),
        })),
        bind_mounts: binds,
        devices,
        ..Default::default()
    }
}

fn cfg(extra: serde_json::Value) -> LxcConfig {
    let mut v = json!({"hostname": "web", "tags": "k8s-uid", "unprivileged": 1,
        "rootfs": "local-lvm:vm-100-disk-0,size=8G", "digest": "d"});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    LxcConfig::from_raw(serde_json::from_value(v).unwrap())
}

/// Every `mpN`/`devN` of the config as set by the operator before.
fn all_managed(c: &LxcConfig) -> BTreeSet<String> {
    c.raw
        .keys()
        .filter(|k| k.starts_with("mp") || k.starts_with("dev"))
        .cloned()
        .collect()
}

fn host_changes(s: &LxcContainerSpec, c: &LxcConfig) -> Vec<(String, Option<String>)> {
    let mut d = validate_spec(s, "web", "uid").unwrap();
    d.host.managed = all_managed(c);
    let slots = d.mount_points.keys().copied().collect();
    changes(&d.host, &slots, c)
        .unwrap()
        .0
        .into_iter()
        .map(|c| (c.key, c.to))
        .collect()
}

#[test]
fn a_bind_mount_or_device_set_in_proxmox_by_hand_is_left_alone_and_the_operators_keys_are_recorded() {
    let s = spec(vec![bind("/srv/a", "/a")], vec![]);
    let c = cfg(json!({"mp0": "/mnt/admin,mp=/admin", "dev0": "/dev/net/tun", "mp5": "/srv/a,mp=/a"}));
    let mut d = validate_spec(&s, "web", "uid").unwrap();
    d.host.managed = ["mp5".to_string()].into();
    let (set, keys) = changes(&d.host, &BTreeSet::new(), &c).unwrap();
    assert!(set.is_empty(), "the admin's mp0 and dev0 stay: {set:?}");
    assert_eq!(keys, ["mp5".to_string()].into());
}

#[test]
fn a_bind_mount_never_takes_a_volumes_mp_slot() {
    let mut s = spec(vec![bind("/srv/media", "/media")], vec![]);
    s.mount_points = vec![volume("mp0", "/data")];
    // mp1 holds a volume no longer in the spec: kept, and never reused
    let c = cfg(
        json!({"mp0": "local-lvm:vm-100-disk-1,mp=/data,size=1G", "mp1": "local-lvm:vm-100-disk-2,mp=/old,size=1G"}),
    );
    assert_eq!(
        host_changes(&s, &c),
        vec![("mp2".to_string(), Some("/srv/media,mp=/media".to_string()))]
    );
    // an unreadable mpN counts as a volume too
    let c = cfg(json!({"mp0": "local-lvm:vm-100-disk-1,mp=/data,size=1G", "mp1": "garbage", "mp2": "x:1,mp=/y"}));
    assert_eq!(host_changes(&s, &c)[0].0, "mp3");
}

#[test]
fn a_new_container_gets_its_bind_mounts_after_the_volumes_and_its_devices_in_the_create_call() {
    let mut s = spec(
        vec![BindMount {
            read_only: Some(true),
            mount_options: vec![MountOption::Nosuid, MountOption::Nodev],
            ..bind("/srv/media", "/media")
        }],
        vec![Device {
            path: "/dev/dri/renderD128".into(),
            mode: Some("0660".into()),
            gid: Some(44),
            ..Default::default()
        }],
    );
    s.mount_points = vec![volume("mp0", "/data")];
    let d = validate_spec(&s, "web", "uid").unwrap();
    let params = d.create_params(100, "local:vztmpl/x.tar.zst");
    assert_eq!(params.mount_points[&0], "local-lvm:1,mp=/data");
    assert_eq!(
        params.mount_points[&1],
        "/srv/media,mp=/media,mountoptions=nodev;nosuid,ro=1"
    );
    assert_eq!(params.extra["dev0"], "/dev/dri/renderD128,gid=44,mode=0660");
}

#[test]
fn a_bind_mount_keeps_its_slot_and_a_changed_one_is_set_in_place() {
    let s = spec(
        vec![
            bind("/srv/b", "/b"),
            BindMount {
                read_only: Some(true),
                ..bind("/srv/a", "/a")
            },
        ],
        vec![],
    );
    let c = cfg(json!({"mp4": "/srv/a,mp=/a", "mp7": "/srv/b,mp=/b"}));
    assert_eq!(
        host_changes(&s, &c),
        vec![("mp4".to_string(), Some("/srv/a,mp=/a,ro=1".to_string()))]
    );
    let unchanged = spec(vec![bind("/srv/b", "/b"), bind("/srv/a", "/a")], vec![]);
    assert!(host_changes(&unchanged, &c).is_empty(), "in sync: nothing to do");
}

#[test]
fn a_bind_mount_removed_from_the_spec_is_deleted_and_a_volume_removed_from_the_spec_is_not() {
    let s = spec(vec![], vec![]);
    let c =
        cfg(json!({"mp0": "local-lvm:vm-100-disk-1,mp=/data,size=1G", "mp3": "/srv/a,mp=/a", "dev1": "/dev/ttyUSB0"}));
    assert_eq!(
        host_changes(&s, &c),
        vec![("mp3".to_string(), None), ("dev1".to_string(), None)]
    );
    let mut d = validate_spec(&s, "web", "uid").unwrap();
    d.host.managed = all_managed(&c);
    let observed = Observed {
        node: "pve1".into(),
        status: "running".into(),
        config: c,
    };
    let p = plan(&d, None, &observed).unwrap();
    let (set, delete) = p.config_update();
    assert!(
        !set.contains_key("mp0") && !delete.contains(&"mp0".to_string()),
        "{p:?}"
    );
    assert_eq!(delete, vec!["mp3".to_string(), "dev1".to_string()]);
}

#[test]
fn a_bind_mount_in_a_slot_the_spec_gives_a_volume_moves_to_a_free_slot() {
    let mut s = spec(vec![bind("/srv/a", "/a")], vec![]);
    s.mount_points = vec![volume("mp0", "/data")];
    let d = validate_spec(&s, "web", "uid").unwrap();
    let observed = Observed {
        node: "pve1".into(),
        status: "stopped".into(),
        config: cfg(json!({"mp0": "/srv/a,mp=/a"})),
    };
    let (set, delete) = plan(&d, None, &observed).unwrap().config_update();
    assert_eq!(set["mp0"], "local-lvm:1,mp=/data");
    assert_eq!(set["mp1"], "/srv/a,mp=/a");
    assert!(delete.is_empty());
}

#[test]
fn devices_are_matched_by_path_and_new_ones_take_the_lowest_free_slot() {
    let s = spec(
        vec![],
        vec![
            Device {
                path: "/dev/ttyUSB0".into(),
                uid: Some(1000),
                ..Default::default()
            },
            Device {
                path: "/dev/dri/renderD128".into(),
                read_only: Some(true),
                ..Default::default()
            },
        ],
    );
    let c = cfg(json!({"dev0": "/dev/net/tun", "dev2": "/dev/ttyUSB0,uid=1000"}));
    // dev0 is reused only when no fresh slot is left: the new device goes to dev1, dev0 is removed
    assert_eq!(
        host_changes(&s, &c),
        vec![
            ("dev1".to_string(), Some("/dev/dri/renderD128,deny-write=1".to_string())),
            ("dev0".to_string(), None)
        ]
    );
}

#[test]
fn paths_with_dot_components_separators_or_under_dev_are_refused_naming_the_field() {
    let cases = [
        (spec(vec![bind("/srv/../etc", "/a")], vec![]), "bindMounts[0].hostPath"),
        (spec(vec![bind("/srv/a,ro=0", "/a")], vec![]), "bindMounts[0].hostPath"),
        (spec(vec![bind("/srv/a", "/a/./b")], vec![]), "bindMounts[0].mountPath"),
        (
            spec(vec![bind("/srv/a", "relative")], vec![]),
            "bindMounts[0].mountPath",
        ),
        (spec(vec![bind("/", "/a")], vec![]), "bindMounts[0].hostPath"),
        (spec(vec![bind("/dev/sda1", "/a")], vec![]), "bindMounts[0].hostPath"),
        (
            spec(vec![bind("/srv/a", "/a"), bind("/srv/b", "/a")], vec![]),
            "bindMounts[1].mountPath",
        ),
        (
            spec(
                vec![],
                vec![Device {
                    path: "/etc/shadow".into(),
                    ..Default::default()
                }],
            ),
            "devices[0].path",
        ),
        (
            spec(
                vec![],
                vec![Device {
                    path: "/dev/x\nlxc.raw".into(),
                    ..Default::default()
                }],
            ),
            "devices[0].path",
        ),
        (
            spec(
                vec![],
                vec![Device {
                    path: "/dev/x".into(),
                    mode: Some("0999".into()),
                    ..Default::default()
                }],
            ),
            "devices[0].mode",
        ),
    ];
    for (s, field) in cases {
        let e = validate_spec(&s, "web", "uid").unwrap_err();
        assert_eq!(e.field, field, "{e:?}");
    }
    let mut s = spec(vec![bind("/srv/a", "/data")], vec![]);
    s.mount_points = vec![volume("mp0", "/data")];
    assert_eq!(
        validate_spec(&s, "web", "uid").unwrap_err().field,
        "bindMounts[0].mountPath"
    );
}

#[test]
fn a_refusal_for_want_of_root_says_that_only_root_at_pam_itself_may_and_others_are_left_alone() {
    let forbidden = |m: &str| crate::pve::Error::Forbidden {
        method: "PUT".into(),
        path: "/nodes/pve1/lxc/100/config".into(),
        message: m.into(),
        acl_path: None,
        permission: None,
    };
    let msg = root_required(&forbidden(
        "Permission check failed (mount point type bind is only allowed for root@pam)",
    ))
    .unwrap();
    assert!(
        msg.contains("mount point type bind is only allowed for root@pam"),
        "{msg}"
    );
    assert!(
        msg.contains("even a token of root@pam") && msg.contains("username: root@pam"),
        "{msg}"
    );
    assert!(root_required(&forbidden(
        "Permission check failed (configuring device passthrough is only allowed for root@pam)"
    ))
    .is_some());
    assert!(root_required(&forbidden("Permission check failed (/vms/100, VM.Config.Disk)")).is_none());
}
