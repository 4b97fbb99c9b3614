//! What to do in Proxmox to make an existing container match its spec (pure).

pub use super::config::{raw_strings, Change};
use super::desired::{Desired, InvalidSpec};
use crate::crd::lxc_container::PowerState;
use crate::pve::props::{self, MountPoint, NetConfig};
use crate::pve::LxcConfig;
use std::collections::BTreeMap;

/// What Proxmox has, as far as planning needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Node the container is on.
    pub node: String,
    /// `running` or `stopped` (anything else counts as not running).
    pub status: String,
    /// The config (pending values merged, as Proxmox returns it).
    pub config: LxcConfig,
}

impl Observed {
    /// Whether the container runs.
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Start the container.
    Start,
    /// Shut the container down (stopping it hard after the timeout).
    Shutdown,
}

/// Everything needed to make the container match its spec, in the order it is applied:
/// migrate, config update (synchronous), one disk resize per step, power.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Move the container to this node first.
    pub migrate_to: Option<String>,
    /// Config keys to set or delete.
    pub changes: Vec<Change>,
    /// Disks to grow: (`rootfs` or `mpN`, new size in GiB).
    pub resizes: Vec<(String, u32)>,
    /// Power action, if the state differs.
    pub power: Option<PowerAction>,
    /// The `mpN`/`devN` keys of the spec's bind mounts and devices once the changes are made
    /// (recorded in `status.hostMounts`).
    pub host_keys: std::collections::BTreeSet<String>,
    /// Managed keys whose value in Proxmox did not read as their type, with what it should
    /// have been (`memory → a whole number`): changed like any drift, and said so.
    pub unreadable: BTreeMap<String, &'static str>,
}

impl Plan {
    /// Whether nothing needs to be done.
    pub fn is_empty(&self) -> bool {
        self.migrate_to.is_none() && self.changes.is_empty() && self.resizes.is_empty() && self.power.is_none()
    }

    /// The config update to send (`set` and `delete`).
    pub fn config_update(&self) -> (BTreeMap<String, String>, Vec<String>) {
        let mut set = BTreeMap::new();
        let mut delete = Vec::new();
        for c in &self.changes {
            match &c.to {
                Some(v) => {
                    set.insert(c.key.clone(), v.clone());
                }
                None => delete.push(c.key.clone()),
            }
        }
        (set, delete)
    }

    /// A one-line summary of the config changes, e.g. `memory 512 → 1024, net0 changed`.
    /// Values of `description` are not repeated. A value Proxmox held that did not read as its
    /// type is said so: `memory "lots" (unreadable, not a whole number) → 1024`.
    pub fn describe_changes(&self) -> String {
        self.changes
            .iter()
            .map(|c| match (&c.from, &c.to) {
                // `env` may hold values from Secrets: never repeated
                (_, _)
                    if c.key == "description"
                        || c.key == "env"
                        || c.key.starts_with("net")
                        || c.key.starts_with("mp") =>
                {
                    match self.unreadable.get(&c.key) {
                        Some(_) => format!("{} changed (unreadable in Proxmox)", c.key),
                        None => format!("{} changed", c.key),
                    }
                }
                (Some(f), Some(t)) if self.unreadable.contains_key(&c.key) => {
                    let expected = self.unreadable[&c.key];
                    format!("{} {f:?} (unreadable, not {expected}) → {t}", c.key)
                }
                (Some(f), Some(t)) => format!("{} {f} → {t}", c.key),
                (None, Some(t)) => format!("{} set to {t}", c.key),
                (Some(_), None) | (None, None) => format!("{} removed", c.key),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Compares `desired` with `observed` and returns the plan, or why the spec cannot be applied to
/// this container (a disk would shrink, a disk would move storage, `unprivileged` would change).
/// `desired_node` is `spec.node`, when set.
pub fn plan(desired: &Desired, desired_node: Option<&str>, observed: &Observed) -> Result<Plan, InvalidSpec> {
    let cfg = &observed.config;
    let raw = raw_strings(cfg);
    let mut p = Plan::default();
    if let Some(n) = desired_node {
        if n != observed.node {
            p.migrate_to = Some(n.to_string());
        }
    }
    if let Some(u) = cfg.unprivileged {
        if u != desired.unprivileged {
            return Err(InvalidSpec {
                field: "unprivileged".into(),
                message: format!("the container was created with unprivileged={u}; Proxmox cannot change it"),
            });
        }
    }
    for d in desired.config.drift(cfg) {
        if let Some(expected) = d.unreadable {
            p.unreadable.insert(d.key.to_string(), expected);
        }
        p.changes.push(Change {
            key: d.key.to_string(),
            from: d.from,
            to: Some(d.to),
        });
    }
    // tags: exactly the user's plus ours
    let want_tags = desired.all_tags();
    let have_tags = cfg.tags.as_deref().map(props::parse_tags).unwrap_or_default();
    if have_tags != want_tags {
        p.changes.push(Change {
            key: "tags".into(),
            from: cfg.tags.clone(),
            to: Some(want_tags.join(";")),
        });
    }
    plan_networks(desired, cfg, &raw, &mut p)?;
    // root disk: grow only, same storage
    if let Some((storage, size)) = &desired.rootfs {
        if let Ok(Some(have)) = cfg.rootfs_parsed() {
            disk_step("rootfs", "rootfs", storage, *size, &have, &mut p)?;
        }
    }
    plan_mount_points(desired, cfg, &raw, &mut p)?;
    // bind mounts and devices, in slots no volume holds
    let volume_slots = desired.mount_points.keys().copied().collect();
    let (host, host_keys) = super::host_mounts::changes(&desired.host, &volume_slots, cfg)?;
    p.changes.extend(host);
    p.host_keys = host_keys;
    p.power = match (desired.state, observed.running()) {
        (PowerState::Running, false) => Some(PowerAction::Start),
        (PowerState::Stopped, true) => Some(PowerAction::Shutdown),
        _ => None,
    };
    Ok(p)
}

/// The interface changes: managed when the spec lists interfaces (the MAC Proxmox assigned is
/// kept; interfaces the spec does not list are removed).
fn plan_networks(
    desired: &Desired,
    cfg: &LxcConfig,
    raw: &BTreeMap<&str, String>,
    p: &mut Plan,
) -> Result<(), InvalidSpec> {
    if !desired.nets.is_empty() {
        let have = cfg.networks().unwrap_or_default();
        for (idx, want) in &desired.nets {
            let key = format!("net{idx}");
            match have.get(idx) {
                Some(h) if same_net(want, h) => {}
                h => {
                    let mut w = want.clone();
                    if w.hwaddr.is_none() {
                        // keep the MAC Proxmox assigned, so the interface keeps its identity
                        w.hwaddr = h.and_then(|h| h.hwaddr.clone());
                    }
                    if w.host_managed.is_none() {
                        // Proxmox turns it on for app containers by itself: not ours to undo
                        w.host_managed = h.and_then(|h| h.host_managed);
                    }
                    let enc = w.encode().map_err(|e| InvalidSpec {
                        field: format!("network[{idx}]"),
                        message: e.to_string(),
                    })?;
                    p.changes.push(Change {
                        key: key.clone(),
                        from: raw.get(key.as_str()).cloned(),
                        to: Some(enc),
                    });
                }
            }
        }
        for idx in have.keys().filter(|i| !desired.nets.contains_key(i)) {
            let key = format!("net{idx}");
            p.changes.push(Change {
                key: key.clone(),
                from: raw.get(key.as_str()).cloned(),
                to: None,
            });
        }
    }
    Ok(())
}

/// The volume mount point changes: added, options updated, grown.
fn plan_mount_points(
    desired: &Desired,
    cfg: &LxcConfig,
    raw: &BTreeMap<&str, String>,
    p: &mut Plan,
) -> Result<(), InvalidSpec> {
    let have_mps = cfg.mount_points().unwrap_or_default();
    for (idx, want) in &desired.mount_points {
        let key = format!("mp{idx}");
        let field = format!("mountPoints[mp{idx}]");
        // a bind mount in a slot the spec gives a volume moves elsewhere (host_mounts)
        match have_mps.get(idx).filter(|m| !super::host_mounts::is_bind(m)) {
            None => {
                let mp = MountPoint {
                    volume: props::new_volume(&want.storage, want.size_gib).map_err(|e| InvalidSpec {
                        field: field.clone(),
                        message: e.to_string(),
                    })?,
                    mp: Some(want.path.clone()),
                    backup: want.backup,
                    ro: want.read_only,
                    ..Default::default()
                };
                let enc = mp.encode_mp().map_err(|e| InvalidSpec {
                    field,
                    message: e.to_string(),
                })?;
                p.changes.push(Change {
                    key,
                    from: None,
                    to: Some(enc),
                });
            }
            Some(have) => {
                let differs = have.mp.as_deref() != Some(want.path.as_str())
                    || (want.backup.is_some() && have.backup.unwrap_or(false) != want.backup.unwrap_or(false))
                    || (want.read_only.is_some() && have.ro.unwrap_or(false) != want.read_only.unwrap_or(false));
                if differs {
                    let mut mp = have.clone();
                    mp.mp = Some(want.path.clone());
                    if want.backup.is_some() {
                        mp.backup = want.backup;
                    }
                    if want.read_only.is_some() {
                        mp.ro = want.read_only;
                    }
                    mp.size = None; // read-only for the API; Proxmox keeps it
                    let enc = mp.encode_mp().map_err(|e| InvalidSpec {
                        field: field.clone(),
                        message: e.to_string(),
                    })?;
                    p.changes.push(Change {
                        key: key.clone(),
                        from: raw.get(key.as_str()).cloned(),
                        to: Some(enc),
                    });
                }
                disk_step(&key, &field, &want.storage, want.size_gib, have, p)?;
            }
        }
    }
    Ok(())
}

fn disk_step(
    key: &str,
    field: &str,
    storage: &str,
    want_gib: u32,
    have: &MountPoint,
    p: &mut Plan,
) -> Result<(), InvalidSpec> {
    let have_storage = have.volume.split(':').next().unwrap_or_default();
    if have_storage != storage {
        return Err(InvalidSpec {
            field: format!("{field}.storage"),
            message: format!("the volume is on storage {have_storage}; moving it to {storage} is not supported"),
        });
    }
    let want_mib = u64::from(want_gib) * 1024;
    if let Some(have_mib) = have.size_mib() {
        if want_mib < have_mib {
            return Err(InvalidSpec {
                field: format!("{field}.size"),
                message: format!(
                    "shrinking from {} to {want_gib}Gi is not supported (disks only grow)",
                    gib_text(have_mib)
                ),
            });
        }
        if want_mib > have_mib {
            p.resizes.push((key.to_string(), want_gib));
        }
    }
    Ok(())
}

fn gib_text(mib: u64) -> String {
    if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    }
}

fn same_net(want: &NetConfig, have: &NetConfig) -> bool {
    let rate_eq = match (want.rate, have.rate) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-9,
        (None, None) => true,
        _ => false,
    };
    want.name == have.name
        && want.bridge == have.bridge
        && want.ip == have.ip
        && want.gw == have.gw
        && want.ip6 == have.ip6
        && want.gw6 == have.gw6
        && want.tag == have.tag
        && want.mtu == have.mtu
        && rate_eq
        && want.firewall.unwrap_or(false) == have.firewall.unwrap_or(false)
        && want
            .host_managed
            .is_none_or(|w| w == have.host_managed.unwrap_or(false))
        && (want.hwaddr.is_none()
            || want.hwaddr.as_deref().map(str::to_ascii_uppercase)
                == have.hwaddr.as_deref().map(str::to_ascii_uppercase))
}

#[cfg(test)]
mod tests {
    use super::super::desired::validate;
    use super::*;
    use crate::crd::lxc_container::*;
    use crate::crd::ByteQuantity;
    use serde_json::json;

    fn spec() -> LxcContainerSpec {
        LxcContainerSpec {
            source: ContainerSource {
                os_template: Some("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()),
                ..Default::default()
            },
            unprivileged: true,
            resources: Some(Resources {
                cores: Some(2),
                memory: Some(ByteQuantity::new("1Gi")),
                ..Default::default()
            }),
            rootfs: Some(Box::new(RootFs {
                storage: "local-lvm".into(),
                size: ByteQuantity::new("8Gi"),
            })),
            network: vec![NetworkInterface {
                name: "eth0".into(),
                bridge: "vmbr0".into(),
                ipv4: Some(Ipv4Config {
                    dhcp: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn observed(cfg: serde_json::Value, status: &str) -> Observed {
        let raw = serde_json::from_value(cfg).unwrap();
        Observed {
            node: "pve1".into(),
            status: status.into(),
            config: LxcConfig::from_raw(raw),
        }
    }

    fn in_sync() -> serde_json::Value {
        json!({
            "hostname": "web", "cores": 2, "memory": 1024, "swap": 512, "unprivileged": 1,
            "tags": "k8s-uid",
            "rootfs": "local-lvm:vm-100-disk-0,size=8G",
            "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth",
            "digest": "abc"
        })
    }

    #[test]
    fn a_container_that_matches_needs_nothing() {
        let d = validate(&spec(), "web", "uid").unwrap();
        let p = plan(&d, None, &observed(in_sync(), "running")).unwrap();
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn drifted_values_are_put_back_and_described() {
        let d = validate(&spec(), "web", "uid").unwrap();
        let mut cfg = in_sync();
        cfg["memory"] = json!(2048);
        cfg["tags"] = json!("k8s-uid;manual");
        let p = plan(&d, None, &observed(cfg, "running")).unwrap();
        let (set, del) = p.config_update();
        assert_eq!(set["memory"], "1024");
        assert_eq!(set["tags"], "k8s-uid");
        assert!(del.is_empty());
        assert!(p.describe_changes().contains("memory 2048 → 1024"));
    }

    #[test]
    fn a_value_proxmox_holds_that_does_not_read_as_its_type_is_put_back_and_said_unreadable() {
        let d = validate(&spec(), "web", "uid").unwrap();
        let mut cfg = in_sync();
        cfg["memory"] = json!("lots");
        let p = plan(&d, None, &observed(cfg, "running")).unwrap();
        assert_eq!(p.config_update().0["memory"], "1024");
        assert_eq!(
            p.describe_changes(),
            "memory \"lots\" (unreadable, not a whole number) → 1024"
        );
    }

    #[test]
    fn env_values_are_never_repeated_in_change_summaries() {
        let mut d = validate(&spec(), "web", "uid").unwrap();
        d.config.env = Some("DB_PASSWORD=s3cret".into());
        let mut cfg = in_sync();
        cfg["env"] = json!("DB_PASSWORD=old-s3cret");
        let p = plan(&d, None, &observed(cfg, "running")).unwrap();
        assert_eq!(p.config_update().0["env"], "DB_PASSWORD=s3cret");
        let said = p.describe_changes();
        assert_eq!(said, "env changed");
    }

    #[test]
    fn a_host_managed_interface_proxmox_turned_on_is_kept_unless_the_spec_says_otherwise() {
        let d = validate(&spec(), "web", "uid").unwrap();
        let mut cfg = in_sync();
        cfg["net0"] = json!("name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,type=veth,host-managed=1");
        assert!(plan(&d, None, &observed(cfg.clone(), "running"))
            .unwrap()
            .changes
            .is_empty());
        let mut s = spec();
        s.network[0].host_managed = Some(false);
        let d = validate(&s, "web", "uid").unwrap();
        let p = plan(&d, None, &observed(cfg, "running")).unwrap();
        assert!(p.config_update().0["net0"].contains("host-managed=0"), "{p:?}");
    }

    #[test]
    fn a_changed_interface_keeps_the_mac_proxmox_assigned() {
        let mut s = spec();
        s.network[0].vlan = Some(20);
        let d = validate(&s, "web", "uid").unwrap();
        let p = plan(&d, None, &observed(in_sync(), "running")).unwrap();
        assert_eq!(
            p.config_update().0["net0"],
            "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:BB:CC,ip=dhcp,tag=20,type=veth"
        );
    }

    #[test]
    fn interfaces_removed_from_the_spec_are_deleted() {
        let d = validate(&spec(), "web", "uid").unwrap();
        let mut cfg = in_sync();
        cfg["net1"] = json!("name=eth1,bridge=vmbr0,ip=dhcp,type=veth");
        let p = plan(&d, None, &observed(cfg, "running")).unwrap();
        assert_eq!(p.config_update().1, vec!["net1".to_string()]);
    }

    #[test]
    fn a_bigger_disk_is_a_resize_and_a_smaller_one_is_refused() {
        let mut s = spec();
        s.rootfs.as_mut().unwrap().size = ByteQuantity::new("10Gi");
        let d = validate(&s, "web", "uid").unwrap();
        let p = plan(&d, None, &observed(in_sync(), "running")).unwrap();
        assert_eq!(p.resizes, vec![("rootfs".to_string(), 10)]);
        s.rootfs.as_mut().unwrap().size = ByteQuantity::new("4Gi");
        let d = validate(&s, "web", "uid").unwrap();
        let e = plan(&d, None, &observed(in_sync(), "running")).unwrap_err();
        assert_eq!(e.field, "rootfs.size");
        assert!(e.message.contains("shrinking from 8Gi to 4Gi"), "{}", e.message);
    }

    #[test]
    fn a_new_mount_point_is_added_with_the_new_volume_syntax() {
        let mut s = spec();
        s.mount_points = vec![crate::crd::lxc_container::MountPoint {
            name: "mp0".into(),
            storage: "local-lvm".into(),
            size: ByteQuantity::new("10Gi"),
            path: "/data".into(),
            backup: Some(true),
            read_only: None,
        }];
        let d = validate(&s, "web", "uid").unwrap();
        let p = plan(&d, None, &observed(in_sync(), "running")).unwrap();
        assert_eq!(p.config_update().0["mp0"], "local-lvm:10,mp=/data,backup=1");
    }

    #[test]
    fn power_state_and_node_are_planned() {
        let mut s = spec();
        s.state = PowerState::Stopped;
        let d = validate(&s, "web", "uid").unwrap();
        let p = plan(&d, Some("pve2"), &observed(in_sync(), "running")).unwrap();
        assert_eq!(p.power, Some(PowerAction::Shutdown));
        assert_eq!(p.migrate_to.as_deref(), Some("pve2"));
        let d = validate(&spec(), "web", "uid").unwrap();
        let p = plan(&d, Some("pve1"), &observed(in_sync(), "stopped")).unwrap();
        assert_eq!(p.power, Some(PowerAction::Start));
        assert_eq!(p.migrate_to, None);
    }

    #[test]
    fn unprivileged_cannot_change() {
        let mut s = spec();
        s.unprivileged = false;
        let d = validate(&s, "web", "uid").unwrap();
        assert_eq!(
            plan(&d, None, &observed(in_sync(), "running")).unwrap_err().field,
            "unprivileged"
        );
    }
}
