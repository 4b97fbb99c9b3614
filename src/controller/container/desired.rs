//! Validation of an `LxcContainer` spec into the Proxmox configuration it asks for (pure).
//!
//! The apiserver's schema rejects most bad input already; this runs again because older
//! apiservers ignore CEL rules, because some rules (gateway inside the subnet, unique names)
//! cannot be expressed in a schema, and because every value that ends up in a Proxmox property
//! string must be proven free of `,` `=` `;` and control characters.

use super::managed::ManagedConfig;
use super::settings::{gib, storage_id, ContainerSettings};
use crate::crd::lxc_container::*;
use crate::crd::IDENTITY_TAG_PREFIX;
use crate::pve;
use crate::pve::props::{self, NetConfig};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::controller::error::InvalidSpec;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// Where the container comes from, resolved from `spec.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A vztmpl volume.
    OsTemplate(String),
    /// An `LxcTemplate` by name.
    Template {
        /// Name of the `LxcTemplate`.
        name: String,
        /// Full clone.
        full: bool,
    },
    /// An existing container by vmid.
    Clone {
        /// vmid to clone.
        vmid: u32,
        /// Full clone.
        full: bool,
    },
    /// An `LxcBackup` by name.
    BackupName(String),
    /// A backup archive volume id.
    BackupVolid(String),
    /// An OCI image, pulled into `storage` by the operator.
    Image {
        /// The image reference (`registry/repository:tag`).
        reference: String,
        /// The storage it is pulled into.
        storage: String,
    },
}

/// A mount point as Proxmox should have it.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredMountPoint {
    /// Storage id.
    pub storage: String,
    /// Size in GiB.
    pub size_gib: u32,
    /// Path inside the container.
    pub path: String,
    /// Included in backups.
    pub backup: Option<bool>,
    /// Read-only.
    pub read_only: Option<bool>,
}

/// The Proxmox configuration a valid spec asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Where the container comes from.
    pub source: Source,
    /// The scalar config keys the spec manages (`hostname`, `cores`, `memory`, `features`,
    /// `startup`, ...), typed; keys the spec leaves out are not managed.
    pub config: ManagedConfig,
    /// `netN` interfaces by index; managed only when the spec lists at least one.
    pub nets: BTreeMap<u32, NetConfig>,
    /// Root disk: storage and size in GiB.
    pub rootfs: Option<(String, u32)>,
    /// Mount points by index (`mpN`).
    pub mount_points: BTreeMap<u32, DesiredMountPoint>,
    /// Bind mounts and devices (their `mpN`/`devN` slots are chosen against the config).
    pub host: super::host_mounts::HostMounts,
    /// The user's tags, normalized (lower-case, sorted, unique), without the identity tag.
    pub tags: Vec<String>,
    /// The identity tag `k8s-<uid>`.
    pub identity_tag: String,
    /// Unprivileged container.
    pub unprivileged: bool,
    /// Desired power state.
    pub state: PowerState,
    /// The pool to create the container in.
    pub pool: Option<String>,
    /// The tenant's forced firewall (`Some(ip_filter)`): on, with the MAC filter, whatever
    /// `spec.firewall` says.
    pub firewall_forced: Option<bool>,
    /// No tenant applies (an `Open` cluster): archives not made by the operator, of this vmid
    /// since this object exists, count as its own (`status.backups`).
    pub open_tenancy: bool,
    /// The nodes the tenant may use (any when empty).
    pub allowed_nodes: Vec<String>,
}

impl Desired {
    /// Every tag the container must carry: the user's plus the identity tag, as Proxmox stores them.
    pub fn all_tags(&self) -> Vec<String> {
        super::settings::all_tags(&self.tags, &self.identity_tag)
    }
}

impl Desired {
    /// The parameters of `POST /nodes/{node}/lxc` that carry these settings (Proxmox's create
    /// takes the same keys as the config), from `ostemplate` at `vmid`.
    pub fn create_params(&self, vmid: u32, ostemplate: &str) -> pve::LxcCreateParams {
        let mount_point = |m: &DesiredMountPoint| -> Option<String> {
            let volume = props::new_volume(&m.storage, m.size_gib).ok()?;
            let mp = pve::MountPoint {
                volume,
                mp: Some(m.path.clone()),
                backup: m.backup,
                ro: m.read_only,
                ..Default::default()
            };
            mp.encode_mp().ok()
        };
        let volume_slots = self.mount_points.keys().copied().collect();
        let (binds, devices) = super::host_mounts::create_keys(&self.host, &volume_slots);
        pve::LxcCreateParams {
            rootfs: super::settings::rootfs_param(self.rootfs.as_ref()),
            mount_points: self
                .mount_points
                .iter()
                .filter_map(|(i, m)| Some((*i, mount_point(m)?)))
                .chain(binds)
                .collect(),
            networks: super::settings::net_params(&self.nets),
            unprivileged: Some(self.unprivileged),
            pool: self.pool.clone(),
            tags: Some(self.all_tags().join(";")),
            start: Some(self.state == PowerState::Running),
            extra: devices,
            ..self.config.create_params(vmid, ostemplate)
        }
    }
}

/// The config update that removes `identity` from the tags of `cfg` (deletionPolicy Retain:
/// the container stays, no longer ours), with the config's digest.
pub fn without_identity_tag(cfg: &pve::LxcConfig, identity: &str) -> pve::ConfigUpdate {
    let tags: Vec<String> = cfg.tag_list().into_iter().filter(|t| t != identity).collect();
    let digest = cfg.digest.clone();
    if tags.is_empty() {
        pve::ConfigUpdate {
            delete: vec!["tags".into()],
            digest,
            ..Default::default()
        }
    } else {
        pve::ConfigUpdate {
            set: [("tags".to_string(), tags.join(";"))].into(),
            digest,
            ..Default::default()
        }
    }
}

/// The identity tag of the object with this uid.
pub fn identity_tag(uid: &str) -> String {
    format!("{IDENTITY_TAG_PREFIX}{}", uid.to_ascii_lowercase())
}

/// Checks `spec` (of the object named `name` with uid `uid`) and computes what Proxmox should have.
pub fn validate(spec: &LxcContainerSpec, name: &str, uid: &str) -> Result<Desired, InvalidSpec> {
    let source = source(&spec.source)?;
    check_management(spec, &source)?;
    let settings = super::settings::validate(&ContainerSettings::from(spec), name)?;
    let mount_points = mount_points(spec)?;
    if !mount_points.is_empty() && settings.rootfs.is_none() {
        return Err(invalid(
            "rootfs",
            "mount points need spec.rootfs (Proxmox refuses mount points without rootfs)",
        ));
    }
    let host = super::host_mounts::validate(spec)?;
    check_rest(spec)?;
    Ok(Desired {
        source,
        config: settings.config,
        nets: settings.nets,
        rootfs: settings.rootfs,
        mount_points,
        host,
        tags: settings.tags,
        identity_tag: identity_tag(uid),
        unprivileged: settings.unprivileged,
        state: spec.state,
        pool: spec.pool.clone(),
        firewall_forced: None,
        open_tenancy: true,
        allowed_nodes: Vec::new(),
    })
}

/// The rules between `management`, the source, `auth`, `app` and `vmid`.
fn check_management(spec: &LxcContainerSpec, source: &Source) -> Result<(), InvalidSpec> {
    if spec.auth.is_some() && spec.management == Management::Full && !matches!(source, Source::OsTemplate(_)) {
        // Proxmox sets password and keys only when it creates from an OS template: a clone or
        // restore would keep the source's root credentials while the user believes theirs are set
        return Err(invalid(
            "auth",
            "root credentials are applied only when creating from source.osTemplate (Proxmox keeps the clone's, template's or archive's own on clone and restore); remove auth, or set the credentials inside the container",
        ));
    }
    super::app::validate(spec)?;
    if spec.management == Management::ObserveOnly && spec.vmid.is_none() {
        return Err(invalid(
            "vmid",
            "management ObserveOnly adopts an existing container: set spec.vmid",
        ));
    }
    if let Some(v) = spec.vmid {
        if !(100..=999_999_999).contains(&v) {
            return Err(invalid("vmid", format!("{v} is outside 100..999999999")));
        }
    }
    Ok(())
}

/// The volume mount points by slot (`mpN`): names, paths (each once) and sizes checked.
fn mount_points(spec: &LxcContainerSpec) -> Result<BTreeMap<u32, DesiredMountPoint>, InvalidSpec> {
    let mut mount_points = BTreeMap::new();
    let mut paths = BTreeSet::new();
    for (i, mp) in spec.mount_points.iter().enumerate() {
        let f = |k: &str| format!("mountPoints[{i}].{k}");
        let idx: u32 = mp
            .name
            .strip_prefix("mp")
            .and_then(|n| n.parse().ok())
            .filter(|n| *n <= 255)
            .ok_or_else(|| invalid(f("name"), format!("{:?} is not mp0..mp255", mp.name)))?;
        if !mp.path.starts_with('/') || mp.path.len() < 2 || has_separator(&mp.path) {
            return Err(invalid(
                f("path"),
                format!("{:?} must be an absolute path without , ; = or spaces", mp.path),
            ));
        }
        if !paths.insert(mp.path.clone()) {
            return Err(invalid(f("path"), format!("{} is mounted twice", mp.path)));
        }
        let d = DesiredMountPoint {
            storage: storage_id(&f("storage"), &mp.storage)?,
            size_gib: gib(&f("size"), &mp.size)?,
            path: mp.path.clone(),
            backup: mp.backup,
            read_only: mp.read_only,
        };
        if mount_points.insert(idx, d).is_some() {
            return Err(invalid(f("name"), format!("{} is used twice", mp.name)));
        }
    }
    Ok(mount_points)
}

/// The pool id, the firewall rules, the port names and the SSH keys.
fn check_rest(spec: &LxcContainerSpec) -> Result<(), InvalidSpec> {
    if let Some(p) = &spec.pool {
        if p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid("pool", format!("{p:?} is not a valid pool id")));
        }
    }
    if let Some(fw) = &spec.firewall {
        super::firewall::desired_rules(fw)?;
    }
    let mut port_names = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        if !port_names.insert(&p.name) {
            return Err(invalid(format!("ports[{i}].name"), format!("{} is used twice", p.name)));
        }
        if p.port == 0 {
            return Err(invalid(format!("ports[{i}].port"), "must be 1..65535"));
        }
    }
    if let Some(a) = &spec.auth {
        for (i, k) in a.ssh_public_keys.iter().enumerate() {
            if k.chars().any(|c| c.is_control()) {
                return Err(invalid(
                    format!("auth.sshPublicKeys[{i}]"),
                    "one key per entry, without line breaks",
                ));
            }
        }
    }
    Ok(())
}

fn source(s: &ContainerSource) -> Result<Source, InvalidSpec> {
    let mut found = Vec::new();
    if let Some(t) = &s.os_template {
        let ok = t
            .split_once(":vztmpl/")
            .is_some_and(|(st, f)| !st.is_empty() && !f.is_empty() && !has_separator(t) && !f.contains('/'));
        if !ok {
            return Err(invalid(
                "source.osTemplate",
                format!("{t:?} is not a volume id like local:vztmpl/NAME.tar.zst"),
            ));
        }
        found.push(Source::OsTemplate(t.clone()));
    }
    if let Some(i) = &s.image {
        super::image::check_reference("source.image.reference", &i.reference)?;
        found.push(Source::Image {
            reference: i.reference.clone(),
            storage: storage_id("source.image.storage", &i.storage)?,
        });
    }
    if let Some(t) = &s.template {
        found.push(Source::Template {
            name: t.name.clone(),
            full: t.full,
        });
    }
    if let Some(c) = &s.clone {
        found.push(Source::Clone {
            vmid: c.vmid,
            full: c.full,
        });
    }
    if let Some(b) = &s.backup {
        match (&b.name, &b.volid) {
            (Some(n), None) => found.push(Source::BackupName(n.clone())),
            (None, Some(v)) => {
                if !v.contains(":backup/") || has_separator(v) || !crate::crd::is_backup_volid(v) {
                    return Err(invalid(
                        "source.backup.volid",
                        format!("{v:?} is not a backup volume id"),
                    ));
                }
                found.push(Source::BackupVolid(v.clone()))
            }
            _ => return Err(invalid("source.backup", "set exactly one of name or volid")),
        }
    }
    match found.len() {
        1 => Ok(found.pop().unwrap()),
        0 => Err(invalid(
            "source",
            "set exactly one of osTemplate, template, clone, backup or image (none is set)",
        )),
        _ => Err(invalid(
            "source",
            "set exactly one of osTemplate, template, clone, backup or image (several are set)",
        )),
    }
}

fn has_separator(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, ',' | ';' | '=') || c.is_whitespace() || c.is_control())
}

/// The desired config of a container with `spec.app` applied: the `entrypoint` and `env` keys
/// `app` asks for (`current_env` is the container's `env` as Proxmox has it).
pub fn with_app(desired: &Desired, app: &super::app::ResolvedApp, current_env: Option<&str>) -> Desired {
    let mut d = desired.clone();
    if let Some(e) = &app.entrypoint {
        d.config.entrypoint = Some(e.clone());
    }
    if !app.env.is_empty() {
        d.config.env = Some(super::app::merge_env(current_env, &app.env));
    }
    d
}

/// The desired config with each interface keeping the MAC the container had (`status.mac`, by
/// interface name) unless the spec sets one: a container created again (image update) keeps
/// its MACs, and with them its DHCP leases.
pub fn with_kept_macs(desired: &Desired, macs: &BTreeMap<String, String>) -> Desired {
    let mut d = desired.clone();
    for n in d.nets.values_mut() {
        if n.hwaddr.is_none() {
            n.hwaddr = macs.get(&n.name).map(|m| m.to_ascii_uppercase());
        }
    }
    d
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
