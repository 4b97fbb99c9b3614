//! Bind mounts (`mpN` whose volume is a host path) and device passthrough (`devN`) of a
//! container (pure): the spec checked again (the schema can be bypassed), the `mpN`/`devN`
//! slots chosen, and the changes that make Proxmox match.
//!
//! Slots: a bind mount keeps the slot Proxmox has it in (matched by its path in the
//! container); a new one takes the lowest slot that no mount point of the spec names and no
//! volume holds. Volumes are never touched here: an `mpN` holding a volume (in the spec or
//! not, e.g. one removed from the spec) is never overwritten or deleted, and a bind mount
//! removed from the spec is only unmounted (Proxmox keeps no data of it).

use super::config::{raw_strings, Change};
use crate::controller::InvalidSpec;
use crate::crd::lxc_container::LxcContainerSpec;
use crate::pve::props::{DevConfig, MountPoint};
use crate::pve::{self, LxcConfig};
use std::collections::{BTreeMap, BTreeSet};

/// Proxmox's number of `mpN` and of `devN` slots (`mp0`..`mp255`, `dev0`..`dev255`).
pub const SLOTS: u32 = 256;

/// A bind mount as Proxmox should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredBind {
    /// Host path (the mount point's volume).
    pub host_path: String,
    /// Path inside the container.
    pub mount_path: String,
    /// Read-only.
    pub read_only: bool,
    /// Mount options, sorted.
    pub mount_options: Vec<String>,
}

impl DesiredBind {
    fn encode(&self) -> pve::Result<String> {
        MountPoint {
            volume: self.host_path.clone(),
            mp: Some(self.mount_path.clone()),
            ro: self.read_only.then_some(true),
            mountoptions: self.mount_options.clone(),
            ..Default::default()
        }
        .encode_mp()
    }

    fn same(&self, have: &MountPoint) -> bool {
        let mut opts = have.mountoptions.clone();
        opts.sort();
        have.volume == self.host_path
            && have.mp.as_deref() == Some(self.mount_path.as_str())
            && have.ro.unwrap_or(false) == self.read_only
            && opts == self.mount_options
    }
}

/// The bind mounts and devices the spec asks for, in spec order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostMounts {
    /// Bind mounts.
    pub binds: Vec<DesiredBind>,
    /// Devices.
    pub devices: Vec<DevConfig>,
    /// The keys the operator set before (`status.hostMounts`): the only ones it removes.
    pub managed: BTreeSet<String>,
}

/// Whether a mount point is a bind (or device) mount: its volume is a host path, not a volume id.
pub fn is_bind(m: &MountPoint) -> bool {
    m.volume.starts_with('/')
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// Whether `p` is an absolute path of `/`-separated names, none empty, `.` or `..`, without
/// property-string separators, whitespace or control characters (not `/` itself).
pub fn is_clean_path(p: &str) -> bool {
    p.len() >= 2
        && p.len() <= 4096
        && p.starts_with('/')
        && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && !p
            .chars()
            .any(|c| matches!(c, ',' | ';' | '=') || c.is_whitespace() || c.is_control())
}

fn check_path(field: String, p: &str) -> Result<(), InvalidSpec> {
    if is_clean_path(p) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("{p:?} is not an absolute path of names separated by / (no . or .. names, no // or trailing /, no , ; = spaces or control characters, not / itself)"),
    ))
}

/// Checks `spec.bindMounts` and `spec.devices` (again: the schema can be bypassed).
pub fn validate(spec: &LxcContainerSpec) -> Result<HostMounts, InvalidSpec> {
    let mut out = HostMounts::default();
    let mut paths: BTreeSet<&str> = spec.mount_points.iter().map(|m| m.path.as_str()).collect();
    if spec.bind_mounts.len() + spec.mount_points.len() > SLOTS as usize {
        return Err(invalid(
            "bindMounts",
            format!("bind mounts and mountPoints share Proxmox's {SLOTS} mpN slots; there are more"),
        ));
    }
    for (i, b) in spec.bind_mounts.iter().enumerate() {
        let f = |k: &str| format!("bindMounts[{i}].{k}");
        check_path(f("hostPath"), &b.host_path)?;
        if b.host_path == "/dev" || b.host_path.starts_with("/dev/") {
            return Err(invalid(
                f("hostPath"),
                format!("{} is under /dev: Proxmox makes that a device mount point, not a bind mount; pass devices with spec.devices", b.host_path),
            ));
        }
        check_path(f("mountPath"), &b.mount_path)?;
        if !paths.insert(&b.mount_path) {
            return Err(invalid(
                f("mountPath"),
                format!(
                    "{} is mounted twice (bindMounts and mountPoints paths must be unique)",
                    b.mount_path
                ),
            ));
        }
        let mut mount_options: Vec<String> = b.mount_options.iter().map(|o| o.as_str().to_string()).collect();
        mount_options.sort();
        mount_options.dedup();
        out.binds.push(DesiredBind {
            host_path: b.host_path.clone(),
            mount_path: b.mount_path.clone(),
            read_only: b.read_only.unwrap_or(false),
            mount_options,
        });
    }
    if spec.devices.len() > SLOTS as usize {
        return Err(invalid(
            "devices",
            format!("Proxmox has {SLOTS} devN slots; there are more"),
        ));
    }
    let mut devs = BTreeSet::new();
    for (i, d) in spec.devices.iter().enumerate() {
        let f = |k: &str| format!("devices[{i}].{k}");
        check_path(f("path"), &d.path)?;
        if !d.path.starts_with("/dev/") {
            return Err(invalid(
                f("path"),
                format!("{} is not a device node under /dev/", d.path),
            ));
        }
        if !devs.insert(&d.path) {
            return Err(invalid(f("path"), format!("{} is listed twice", d.path)));
        }
        if let Some(m) = &d.mode {
            let octal = m.len() == 4 && m.starts_with('0') && m.chars().all(|c| ('0'..='7').contains(&c));
            if !octal {
                return Err(invalid(f("mode"), format!("{m:?} is not four octal digits like 0660")));
            }
        }
        out.devices.push(DevConfig {
            path: d.path.clone(),
            deny_write: d.read_only.filter(|r| *r),
            gid: d.gid,
            mode: d.mode.clone(),
            uid: d.uid,
        });
    }
    Ok(out)
}

/// The slots of `wanted` given what Proxmox `have`s: each keeps the slot of the entry with the
/// same identity (`same`), the others take the lowest slot neither `occupied` nor had, then
/// (when none is left) a slot of an entry no longer wanted. Returns the slots and the had
/// slots no longer wanted, or the index of a wanted entry without a slot.
fn assign<'a, W, H>(
    wanted: &'a [W],
    have: &BTreeMap<u32, H>,
    occupied: &BTreeSet<u32>,
    same: impl Fn(&W, &H) -> bool,
) -> Result<(BTreeMap<u32, &'a W>, Vec<u32>), usize> {
    let mut slots: BTreeMap<u32, &W> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        match have.iter().find(|(s, h)| !slots.contains_key(s) && same(w, h)) {
            Some((s, _)) => {
                slots.insert(*s, w);
            }
            None => unplaced.push(i),
        }
    }
    let unwanted: Vec<u32> = have.keys().filter(|s| !slots.contains_key(s)).copied().collect();
    let mut fresh = (0..SLOTS).filter(|s| !occupied.contains(s) && !have.contains_key(s));
    let mut reused = unwanted.iter().copied();
    for i in unplaced {
        let s = fresh.next().or_else(|| reused.next()).ok_or(i)?;
        slots.insert(s, &wanted[i]);
    }
    let gone = unwanted.into_iter().filter(|s| !slots.contains_key(s)).collect();
    Ok((slots, gone))
}

/// The indexed keys `prefix<N>` of the config with their values.
fn indexed<'a>(raw: &'a BTreeMap<&str, String>, prefix: &str) -> Vec<(u32, &'a String)> {
    raw.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.parse::<u32>().ok()?, v)))
        .collect()
}

/// How the assigned slots of one kind of key (`mpN` or `devN`) become config changes.
#[derive(Clone, Copy)]
struct SlotChanges<'a> {
    /// `mp` or `dev`.
    prefix: &'static str,
    /// The spec field, for errors.
    field: &'static str,
    /// The config as it is.
    raw: &'a BTreeMap<&'a str, String>,
    /// The keys the operator set.
    managed: &'a BTreeSet<String>,
}

impl SlotChanges<'_> {
    /// Sets each wanted item in its slot unless `unchanged` says it is there already, and
    /// removes the slots in `gone` that the operator set; records every key in use in `keys`.
    fn push<W, E: std::fmt::Display>(
        &self,
        slots: BTreeMap<u32, &W>,
        gone: Vec<u32>,
        unchanged: impl Fn(u32, &W) -> bool,
        encode: impl Fn(&W) -> Result<String, E>,
        out: &mut Vec<Change>,
        keys: &mut BTreeSet<String>,
    ) -> Result<(), InvalidSpec> {
        let change = |key: String, to: Option<String>| Change {
            from: self.raw.get(key.as_str()).cloned(),
            key,
            to,
        };
        for (s, w) in slots {
            let key = format!("{}{s}", self.prefix);
            keys.insert(key.clone());
            if unchanged(s, w) {
                continue;
            }
            let to = encode(w).map_err(|e| invalid(self.field, e.to_string()))?;
            out.push(change(key, Some(to)));
        }
        for key in gone.into_iter().map(|s| format!("{}{s}", self.prefix)) {
            if self.managed.contains(&key) {
                out.push(change(key, None));
            }
        }
        Ok(())
    }
}

/// The `mpN`/`devN` changes that make `cfg` carry `host`'s bind mounts and devices, and the
/// keys they are in afterwards. `volume_slots` are the `mpN` the spec's mount points name. A
/// bind mount or device no longer in the spec is removed only when the operator set it
/// (`host.managed`).
pub fn changes(
    host: &HostMounts,
    volume_slots: &BTreeSet<u32>,
    cfg: &LxcConfig,
) -> Result<(Vec<Change>, BTreeSet<String>), InvalidSpec> {
    let raw = raw_strings(cfg);
    let mut out = Vec::new();
    let mut keys = BTreeSet::new();
    // bind mounts: an mpN that is not a bind mount (a volume, or unreadable) is never touched
    let mut occupied = volume_slots.clone();
    let mut binds = BTreeMap::new();
    for (i, v) in indexed(&raw, "mp") {
        match MountPoint::parse_mp(v) {
            Ok(m) if is_bind(&m) && !volume_slots.contains(&i) => {
                binds.insert(i, m);
            }
            _ => {
                occupied.insert(i);
            }
        }
    }
    let (slots, gone) = assign(&host.binds, &binds, &occupied, |w, h| {
        h.mp.as_deref() == Some(w.mount_path.as_str())
    })
    .map_err(|i| {
        invalid(
            format!("bindMounts[{i}]"),
            format!("no free mpN slot: all {SLOTS} hold mount points"),
        )
    })?;
    let slotted = SlotChanges {
        prefix: "mp",
        field: "bindMounts",
        raw: &raw,
        managed: &host.managed,
    };
    slotted.push(
        slots,
        gone,
        |s, w| binds.get(&s).is_some_and(|h| w.same(h)),
        |w| w.encode(),
        &mut out,
        &mut keys,
    )?;
    // devices
    let mut occupied = BTreeSet::new();
    let mut devs = BTreeMap::new();
    for (i, v) in indexed(&raw, "dev") {
        match DevConfig::parse(v) {
            Ok(d) => {
                devs.insert(i, d);
            }
            Err(_) => {
                occupied.insert(i);
            }
        }
    }
    let (slots, gone) = assign(&host.devices, &devs, &occupied, |w, h| w.path == h.path).map_err(|i| {
        invalid(
            format!("devices[{i}]"),
            format!("no free devN slot: all {SLOTS} are used"),
        )
    })?;
    let slotted = SlotChanges {
        prefix: "dev",
        field: "devices",
        ..slotted
    };
    slotted.push(
        slots,
        gone,
        |s, w| devs.get(&s) == Some(w),
        |w| w.encode(),
        &mut out,
        &mut keys,
    )?;
    Ok((out, keys))
}

/// The `mpN` (bind mounts) and `devN` keys of a new container, besides the spec's mount points
/// in `volume_slots`.
pub fn create_keys(
    host: &HostMounts,
    volume_slots: &BTreeSet<u32>,
) -> (BTreeMap<u32, String>, BTreeMap<String, String>) {
    let mut mps = BTreeMap::new();
    let mut devs = BTreeMap::new();
    // against an empty config only the slot count can fail, which validation bounds
    let (set, _) = changes(host, volume_slots, &LxcConfig::default()).unwrap_or_default();
    for c in set {
        let Some(v) = c.to else { continue };
        match c.key.strip_prefix("mp").and_then(|n| n.parse::<u32>().ok()) {
            Some(i) => {
                mps.insert(i, v);
            }
            None => {
                devs.insert(c.key, v);
            }
        }
    }
    (mps, devs)
}

/// What to say when Proxmox refused a bind mount or a device because the operator is not
/// signed in as `root@pam` itself; `None` for any other error.
pub fn root_required(e: &pve::Error) -> Option<String> {
    let text = e.message();
    let root_only = (text.contains("only allowed for root@pam")
        && (text.contains("mount point type") || text.contains("device passthrough")))
        || text.contains("Only root can pass arbitrary filesystem paths");
    root_only.then(|| {
        format!(
            "Proxmox refused: {}. Bind mounts (spec.bindMounts) and devices (spec.devices) can be set only by root@pam itself: Proxmox compares the user name, so an API token is refused whatever its privileges, even a token of root@pam. Sign the operator in as root@pam with a password (the ProxmoxCluster's Secret with username: root@pam and password), or make spec.bindMounts and spec.devices match what the container has (removing a device needs root@pam too)",
            text.trim_end().trim_end_matches('.')
        )
    })
}

#[cfg(test)]
#[path = "host_mounts_tests.rs"]
mod tests;
