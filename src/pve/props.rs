//! Typed encoders/decoders for LXC property strings (`netN`, `rootfs`, `mpN`, `features`,
//! `startup`) and tag lists.
//!
//! Encoding follows `PVE::JSONSchema::print_property_string`: the default key's value
//! first (without `key=`), then required keys, then all other keys sorted alphabetically
//! (README §6). Encoders reject any value containing `,`, `=`, a control character
//! (including newlines) or — where the value is not a list — `;`, and name the field at
//! fault, so no extra key can be injected. Unknown keys found while parsing are kept in
//! `extra` and written back, so a config read from a newer Proxmox round-trips.

use std::collections::BTreeMap;

use super::error::{Error, Result};

/// Parses a Proxmox boolean as accepted inside property strings:
/// `1|on|yes|true` / `0|off|no|false` (case-insensitive).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn enc_bool(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// Checks that `value` cannot break out of its `key=value` slot.
fn check_value(field: &str, value: &str, allow_semicolon: bool) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid_property(field, "value must not be empty"));
    }
    if value.trim() != value {
        return Err(Error::invalid_property(
            field,
            format!("value {value:?} has leading or trailing whitespace"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == ',' || *c == '=' || c.is_control() || (!allow_semicolon && *c == ';'))
    {
        return Err(Error::invalid_property(
            field,
            format!("value {value:?} contains forbidden character {c:?}"),
        ));
    }
    Ok(())
}

fn check_key(field: &str, key: &str) -> Result<()> {
    let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_property(field, format!("invalid key {key:?}")))
    }
}

/// Collects `key=value` pairs and prints them in Proxmox order.
struct Printer<'a> {
    prop: &'a str,
    default: Option<String>,
    required: Vec<(String, String)>,
    rest: Vec<(String, String)>,
}

impl<'a> Printer<'a> {
    fn new(prop: &'a str) -> Self {
        Printer {
            prop,
            default: None,
            required: Vec::new(),
            rest: Vec::new(),
        }
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{}", self.prop, key)
    }

    fn default_value(&mut self, key: &str, value: &str) -> Result<()> {
        check_value(&self.field(key), value, false)?;
        self.default = Some(value.to_string());
        Ok(())
    }

    fn required(&mut self, key: &str, value: &str) -> Result<()> {
        check_value(&self.field(key), value, false)?;
        self.required.push((key.to_string(), value.to_string()));
        Ok(())
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) -> Result<()> {
        if let Some(v) = value {
            check_value(&self.field(key), v, false)?;
            self.rest.push((key.to_string(), v.to_string()));
        }
        Ok(())
    }

    fn opt_bool(&mut self, key: &str, value: Option<bool>) {
        if let Some(b) = value {
            self.rest.push((key.to_string(), enc_bool(b)));
        }
    }

    fn opt_num<T: std::fmt::Display>(&mut self, key: &str, value: Option<T>) {
        if let Some(n) = value {
            self.rest.push((key.to_string(), n.to_string()));
        }
    }

    fn list<T: AsRef<str>>(&mut self, key: &str, items: &[T]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let field = self.field(key);
        for i in items {
            check_value(&field, i.as_ref(), false)?;
        }
        let joined: Vec<&str> = items.iter().map(|s| s.as_ref()).collect();
        self.rest.push((key.to_string(), joined.join(";")));
        Ok(())
    }

    fn extra(&mut self, extra: &BTreeMap<String, String>, known: &[&str]) -> Result<()> {
        for (k, v) in extra {
            let field = self.field(k);
            check_key(&field, k)?;
            if known.contains(&k.as_str()) {
                return Err(Error::invalid_property(
                    field,
                    "key is a typed field; do not set it in `extra`",
                ));
            }
            check_value(&field, v, true)?;
            self.rest.push((k.clone(), v.clone()));
        }
        Ok(())
    }

    fn finish(mut self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.default.take() {
            parts.push(d);
        }
        self.required.sort();
        self.rest.sort();
        for (k, v) in self.required.into_iter().chain(self.rest) {
            parts.push(format!("{k}={v}"));
        }
        parts.join(",")
    }
}

/// Splits a property string into a key → value map.
fn parse_pairs(prop: &str, s: &str, default_key: Option<&str>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for part in s.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match default_key {
                Some(d) => (d.to_string(), part.to_string()),
                None => return Err(Error::invalid_property(prop, format!("missing `key=` in {part:?}"))),
            },
        };
        if out.insert(k.clone(), v).is_some() {
            return Err(Error::invalid_property(format!("{prop}.{k}"), "duplicate key"));
        }
    }
    Ok(out)
}

fn take_bool(prop: &str, m: &mut BTreeMap<String, String>, key: &str) -> Result<Option<bool>> {
    m.remove(key)
        .map(|v| {
            parse_bool(&v)
                .ok_or_else(|| Error::invalid_property(format!("{prop}.{key}"), format!("not a boolean: {v:?}")))
        })
        .transpose()
}

fn take_num<T: std::str::FromStr>(prop: &str, m: &mut BTreeMap<String, String>, key: &str) -> Result<Option<T>> {
    m.remove(key)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| Error::invalid_property(format!("{prop}.{key}"), format!("not a number: {v:?}")))
        })
        .transpose()
}

fn take_list(m: &mut BTreeMap<String, String>, key: &str) -> Vec<String> {
    m.remove(key)
        .map(|v| v.split(';').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A container network interface, `netN`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConfig {
    /// Interface name inside the container (required), e.g. `eth0`.
    pub name: String,
    /// Host bridge, e.g. `vmbr0`.
    pub bridge: Option<String>,
    /// Enable the Proxmox firewall on this interface.
    pub firewall: Option<bool>,
    /// IPv4 gateway.
    pub gw: Option<String>,
    /// IPv6 gateway.
    pub gw6: Option<String>,
    /// The network is managed by the host (`host-managed`).
    pub host_managed: Option<bool>,
    /// MAC address `XX:XX:XX:XX:XX:XX` (Proxmox generates one if missing).
    pub hwaddr: Option<String>,
    /// `IPv4/CIDR`, `dhcp` or `manual`.
    pub ip: Option<String>,
    /// `IPv6/CIDR`, `auto`, `dhcp` or `manual`.
    pub ip6: Option<String>,
    /// Keep the link down.
    pub link_down: Option<bool>,
    /// MTU (64..65535).
    pub mtu: Option<u16>,
    /// Rate limit in MB/s.
    pub rate: Option<f64>,
    /// VLAN tag (1..4094).
    pub tag: Option<u16>,
    /// VLAN trunks.
    pub trunks: Vec<u16>,
    /// Interface type (`veth`).
    pub net_type: Option<String>,
    /// Keys this client does not know, kept for round-tripping.
    pub extra: BTreeMap<String, String>,
}

const NET_KEYS: &[&str] = &[
    "name",
    "bridge",
    "firewall",
    "gw",
    "gw6",
    "host-managed",
    "hwaddr",
    "ip",
    "ip6",
    "link_down",
    "mtu",
    "rate",
    "tag",
    "trunks",
    "type",
];

impl NetConfig {
    /// Encodes as a `netN` property string.
    pub fn encode(&self) -> Result<String> {
        let mut p = Printer::new("net");
        if self.name.is_empty() {
            return Err(Error::invalid_property("net.name", "name is required"));
        }
        p.required("name", &self.name)?;
        p.opt_str("bridge", self.bridge.as_deref())?;
        p.opt_bool("firewall", self.firewall);
        p.opt_str("gw", self.gw.as_deref())?;
        p.opt_str("gw6", self.gw6.as_deref())?;
        p.opt_bool("host-managed", self.host_managed);
        p.opt_str("hwaddr", self.hwaddr.as_deref())?;
        p.opt_str("ip", self.ip.as_deref())?;
        p.opt_str("ip6", self.ip6.as_deref())?;
        p.opt_bool("link_down", self.link_down);
        p.opt_num("mtu", self.mtu);
        if let Some(r) = self.rate {
            if !r.is_finite() || r < 0.0 {
                return Err(Error::invalid_property("net.rate", format!("invalid rate {r}")));
            }
        }
        p.opt_num("rate", self.rate);
        p.opt_num("tag", self.tag);
        let trunks: Vec<String> = self.trunks.iter().map(|t| t.to_string()).collect();
        p.list("trunks", &trunks)?;
        p.opt_str("type", self.net_type.as_deref())?;
        p.extra(&self.extra, NET_KEYS)?;
        Ok(p.finish())
    }

    /// Parses a `netN` property string.
    pub fn parse(s: &str) -> Result<NetConfig> {
        let prop = "net";
        let mut m = parse_pairs(prop, s, None)?;
        let name = m
            .remove("name")
            .ok_or_else(|| Error::invalid_property("net.name", "name is required"))?;
        let trunks = take_list(&mut m, "trunks")
            .into_iter()
            .map(|t| {
                t.parse::<u16>()
                    .map_err(|_| Error::invalid_property("net.trunks", format!("not a VLAN id: {t:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(NetConfig {
            name,
            bridge: m.remove("bridge"),
            firewall: take_bool(prop, &mut m, "firewall")?,
            gw: m.remove("gw"),
            gw6: m.remove("gw6"),
            host_managed: take_bool(prop, &mut m, "host-managed")?,
            hwaddr: m.remove("hwaddr"),
            ip: m.remove("ip"),
            ip6: m.remove("ip6"),
            link_down: take_bool(prop, &mut m, "link_down")?,
            mtu: take_num(prop, &mut m, "mtu")?,
            rate: take_num(prop, &mut m, "rate")?,
            tag: take_num(prop, &mut m, "tag")?,
            trunks,
            net_type: m.remove("type"),
            extra: m,
        })
    }
}

/// A volume: `rootfs` (no `mp`) or a mount point `mpN` (with `mp`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MountPoint {
    /// Volume id (`local-lvm:vm-100-disk-0`), new-volume spec (`local-lvm:8`, see
    /// [`new_volume`]) or host path (root only).
    pub volume: String,
    /// Path inside the container (required for `mpN`, absent for `rootfs`).
    pub mp: Option<String>,
    /// POSIX ACLs.
    pub acl: Option<bool>,
    /// Include in backups (`mpN` only).
    pub backup: Option<bool>,
    /// Keep attributes on restore (`mpN` only).
    pub keepattrs: Option<bool>,
    /// Mount options (discard, lazytime, noatime, nodev, noexec, nosuid).
    pub mountoptions: Vec<String>,
    /// User quotas.
    pub quota: Option<bool>,
    /// Include in replication.
    pub replicate: Option<bool>,
    /// Read-only.
    pub ro: Option<bool>,
    /// Shared (not migrated).
    pub shared: Option<bool>,
    /// Size in bytes (read-only, reported by Proxmox like `8G`).
    pub size: Option<u64>,
    /// Keys this client does not know, kept for round-tripping.
    pub extra: BTreeMap<String, String>,
}

const MP_KEYS: &[&str] = &[
    "volume",
    "mp",
    "acl",
    "backup",
    "keepattrs",
    "mountoptions",
    "quota",
    "replicate",
    "ro",
    "shared",
    "size",
];

impl MountPoint {
    fn encode_as(&self, prop: &str, is_rootfs: bool) -> Result<String> {
        let mut p = Printer::new(prop);
        p.default_value("volume", &self.volume)?;
        if is_rootfs {
            for (k, set) in [
                ("mp", self.mp.is_some()),
                ("backup", self.backup.is_some()),
                ("keepattrs", self.keepattrs.is_some()),
            ] {
                if set {
                    return Err(Error::invalid_property(format!("{prop}.{k}"), "not allowed for rootfs"));
                }
            }
        } else {
            let mp = self
                .mp
                .as_deref()
                .ok_or_else(|| Error::invalid_property(format!("{prop}.mp"), "mp is required"))?;
            p.required("mp", mp)?;
        }
        p.opt_bool("acl", self.acl);
        p.opt_bool("backup", self.backup);
        p.opt_bool("keepattrs", self.keepattrs);
        p.list("mountoptions", &self.mountoptions)?;
        p.opt_bool("quota", self.quota);
        p.opt_bool("replicate", self.replicate);
        p.opt_bool("ro", self.ro);
        p.opt_bool("shared", self.shared);
        if let Some(sz) = self.size {
            p.rest.push(("size".to_string(), format_size(sz)));
        }
        p.extra(&self.extra, MP_KEYS)?;
        Ok(p.finish())
    }

    /// Encodes as a `rootfs` property string (`mp`, `backup`, `keepattrs` must be unset).
    pub fn encode_rootfs(&self) -> Result<String> {
        self.encode_as("rootfs", true)
    }

    /// Encodes as an `mpN` property string (`mp` is required).
    pub fn encode_mp(&self) -> Result<String> {
        self.encode_as("mp", false)
    }

    fn parse_as(prop: &str, s: &str, is_rootfs: bool) -> Result<MountPoint> {
        let mut m = parse_pairs(prop, s, Some("volume"))?;
        let volume = m
            .remove("volume")
            .ok_or_else(|| Error::invalid_property(format!("{prop}.volume"), "volume is required"))?;
        let mp = m.remove("mp");
        if !is_rootfs && mp.is_none() {
            return Err(Error::invalid_property(format!("{prop}.mp"), "mp is required"));
        }
        let size = m
            .remove("size")
            .map(|v| {
                parse_size(&v)
                    .map_err(|_| Error::invalid_property(format!("{prop}.size"), format!("invalid size {v:?}")))
            })
            .transpose()?;
        Ok(MountPoint {
            volume,
            mp,
            acl: take_bool(prop, &mut m, "acl")?,
            backup: take_bool(prop, &mut m, "backup")?,
            keepattrs: take_bool(prop, &mut m, "keepattrs")?,
            mountoptions: take_list(&mut m, "mountoptions"),
            quota: take_bool(prop, &mut m, "quota")?,
            replicate: take_bool(prop, &mut m, "replicate")?,
            ro: take_bool(prop, &mut m, "ro")?,
            shared: take_bool(prop, &mut m, "shared")?,
            size,
            extra: m,
        })
    }

    /// Parses a `rootfs` property string.
    pub fn parse_rootfs(s: &str) -> Result<MountPoint> {
        Self::parse_as("rootfs", s, true)
    }

    /// Parses an `mpN` property string.
    pub fn parse_mp(s: &str) -> Result<MountPoint> {
        Self::parse_as("mp", s, false)
    }

    /// Size in MiB (rounded down), if known.
    pub fn size_mib(&self) -> Option<u64> {
        self.size.map(|b| b / (1024 * 1024))
    }
}

/// A device passed through, `devN`: `/dev/xyz[,deny-write=1][,gid=N][,mode=0660][,uid=N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevConfig {
    /// Device node on the host.
    pub path: String,
    /// Deny the container writes.
    pub deny_write: Option<bool>,
    /// Group id in the container.
    pub gid: Option<u32>,
    /// Access mode in the container (`0660`).
    pub mode: Option<String>,
    /// User id in the container.
    pub uid: Option<u32>,
}

impl DevConfig {
    /// Encodes as a `devN` property string.
    pub fn encode(&self) -> Result<String> {
        let mut p = Printer::new("dev");
        p.default_value("path", &self.path)?;
        p.opt_bool("deny-write", self.deny_write);
        p.opt_num("gid", self.gid);
        p.opt_str("mode", self.mode.as_deref())?;
        p.opt_num("uid", self.uid);
        Ok(p.finish())
    }

    /// Parses a `devN` property string.
    pub fn parse(s: &str) -> Result<DevConfig> {
        let mut m = parse_pairs("dev", s, Some("path"))?;
        let num = |m: &mut BTreeMap<String, String>, k: &str| -> Result<Option<u32>> {
            m.remove(k)
                .map(|v| {
                    v.parse()
                        .map_err(|_| Error::invalid_property(format!("dev.{k}"), "not a number"))
                })
                .transpose()
        };
        Ok(DevConfig {
            path: m
                .remove("path")
                .ok_or_else(|| Error::invalid_property("dev.path", "path is required"))?,
            deny_write: m.remove("deny-write").and_then(|v| parse_bool(&v)),
            gid: num(&mut m, "gid")?,
            mode: m.remove("mode"),
            uid: num(&mut m, "uid")?,
        })
    }
}

/// Container features, `features`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Mount `/sys` read-write in unprivileged containers.
    pub force_rw_sys: Option<bool>,
    /// Allow FUSE.
    pub fuse: Option<bool>,
    /// Allow keyctl() (unprivileged containers; needed by Docker).
    pub keyctl: Option<bool>,
    /// Allow mknod (experimental).
    pub mknod: Option<bool>,
    /// Allowed filesystem types for mount.
    pub mount: Vec<String>,
    /// Allow nesting.
    pub nesting: Option<bool>,
    /// Keys this client does not know, kept for round-tripping.
    pub extra: BTreeMap<String, String>,
}

const FEATURE_KEYS: &[&str] = &["force_rw_sys", "fuse", "keyctl", "mknod", "mount", "nesting"];

impl Features {
    /// Encodes as a `features` property string (may be empty when nothing is set).
    pub fn encode(&self) -> Result<String> {
        let mut p = Printer::new("features");
        p.opt_bool("force_rw_sys", self.force_rw_sys);
        p.opt_bool("fuse", self.fuse);
        p.opt_bool("keyctl", self.keyctl);
        p.opt_bool("mknod", self.mknod);
        p.list("mount", &self.mount)?;
        p.opt_bool("nesting", self.nesting);
        p.extra(&self.extra, FEATURE_KEYS)?;
        Ok(p.finish())
    }

    /// Parses a `features` property string.
    pub fn parse(s: &str) -> Result<Features> {
        let prop = "features";
        let mut m = parse_pairs(prop, s, None)?;
        Ok(Features {
            force_rw_sys: take_bool(prop, &mut m, "force_rw_sys")?,
            fuse: take_bool(prop, &mut m, "fuse")?,
            keyctl: take_bool(prop, &mut m, "keyctl")?,
            mknod: take_bool(prop, &mut m, "mknod")?,
            mount: take_list(&mut m, "mount"),
            nesting: take_bool(prop, &mut m, "nesting")?,
            extra: m,
        })
    }
}

/// Start/stop ordering, `startup`: `[order=]N[,up=N][,down=N]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Startup {
    /// Start order (ascending on boot, reverse on shutdown).
    pub order: Option<u32>,
    /// Seconds to wait after starting before the next guest.
    pub up: Option<u32>,
    /// Seconds to wait for shutdown.
    pub down: Option<u32>,
}

impl Startup {
    /// Encodes as `order=N,up=N,down=N` (only the set keys).
    pub fn encode(&self) -> String {
        let mut parts = Vec::new();
        if let Some(o) = self.order {
            parts.push(format!("order={o}"));
        }
        if let Some(u) = self.up {
            parts.push(format!("up={u}"));
        }
        if let Some(d) = self.down {
            parts.push(format!("down={d}"));
        }
        parts.join(",")
    }

    /// Parses a `startup` string.
    pub fn parse(s: &str) -> Result<Startup> {
        let prop = "startup";
        let mut m = parse_pairs(prop, s, Some("order"))?;
        let st = Startup {
            order: take_num(prop, &mut m, "order")?,
            up: take_num(prop, &mut m, "up")?,
            down: take_num(prop, &mut m, "down")?,
        };
        if let Some(k) = m.keys().next() {
            return Err(Error::invalid_property(format!("startup.{k}"), "unknown key"));
        }
        Ok(st)
    }
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '+' | '.'))
}

/// Parses a tag list as Proxmox stores it (`;`, `,` or space separated), returning the
/// tags lower-cased, sorted and de-duplicated.
pub fn parse_tags(s: &str) -> Vec<String> {
    let mut tags: Vec<String> = s
        .split([';', ',', ' '])
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// Encodes tags the way Proxmox stores them: lower-cased, sorted, de-duplicated, joined
/// by `;`. Each tag must match `[a-z0-9_][a-z0-9_\-+.]*` (after lower-casing).
pub fn encode_tags<I, S>(tags: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.as_ref().to_ascii_lowercase();
        if !valid_tag(&t) {
            return Err(Error::invalid_property(
                "tags",
                format!("invalid tag {t:?} (allowed: [a-z0-9_][a-z0-9_-+.]*)"),
            ));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    Ok(out.join(";"))
}

/// Parses a Proxmox disk size (`8G`, `512M`, `1T`, `100K`, `1.5G`, or bare bytes) into bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let bad = || Error::invalid_property("size", format!("invalid size {s:?}"));
    let (num, mult) = match s.chars().last() {
        Some('K') | Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') | Some('m') => (&s[..s.len() - 1], 1u64 << 20),
        Some('G') | Some('g') => (&s[..s.len() - 1], 1u64 << 30),
        Some('T') | Some('t') => (&s[..s.len() - 1], 1u64 << 40),
        _ => (s, 1u64),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(bad);
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(v as u64)
}

/// Formats bytes like `PVE::JSONSchema::format_size`: the largest unit that divides evenly.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 || !bytes.is_multiple_of(1024) {
        return bytes.to_string();
    }
    let kb = bytes / 1024;
    if !kb.is_multiple_of(1024) {
        return format!("{kb}K");
    }
    let mb = kb / 1024;
    if !mb.is_multiple_of(1024) {
        return format!("{mb}M");
    }
    let gb = mb / 1024;
    if !gb.is_multiple_of(1024) {
        return format!("{gb}G");
    }
    format!("{}T", gb / 1024)
}

/// The new-volume syntax for create/PUT: `STORAGE:SIZE_IN_GiB`, e.g. `local-lvm:8`.
pub fn new_volume(storage: &str, size_gib: u32) -> Result<String> {
    if storage.is_empty()
        || storage
            .chars()
            .any(|c| c == ':' || c == ',' || c == '=' || c == ';' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid_property(
            "storage",
            format!("invalid storage id {storage:?}"),
        ));
    }
    Ok(format!("{storage}:{size_gib}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_net0_example_round_trips_byte_for_byte() {
        let s =
            "name=eth0,bridge=vmbr0,firewall=1,gw=192.0.2.1,hwaddr=BC:24:11:5E:7A:01,ip=192.0.2.10/24,tag=20,type=veth";
        let n = NetConfig::parse(s).unwrap();
        assert_eq!(n.tag, Some(20));
        assert_eq!(n.encode().unwrap(), s);
    }

    #[test]
    fn a_mount_point_prints_volume_then_mp_then_the_rest_sorted() {
        let s = "local-lvm:vm-100-disk-1,mp=/srv/data,backup=1,size=32G";
        let m = MountPoint::parse_mp(s).unwrap();
        assert_eq!(m.size, Some(32 << 30));
        assert_eq!(m.encode_mp().unwrap(), s);
        let r = MountPoint::parse_rootfs("vmstore:subvol-101-disk-0,size=30G").unwrap();
        assert_eq!(r.encode_rootfs().unwrap(), "vmstore:subvol-101-disk-0,size=30G");
    }

    #[test]
    fn sizes_parse_and_format_like_proxmox() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("100K").unwrap(), 100 << 10);
        assert_eq!(parse_size("1.5G").unwrap(), 1536 << 20);
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(format_size(8 << 30), "8G");
        assert!(parse_size("8X").is_err());
        assert_eq!(new_volume("local-lvm", 8).unwrap(), "local-lvm:8");
        assert!(new_volume("a,b", 8).is_err());
    }

    #[test]
    fn tags_are_lowercased_sorted_and_deduplicated() {
        assert_eq!(encode_tags(["Web", "prod", "web"]).unwrap(), "prod;web");
        assert_eq!(parse_tags("prod;Web,web x"), vec!["prod", "web", "x"]);
        assert!(encode_tags(["a;b"]).is_err());
    }

    #[test]
    fn an_injected_comma_is_rejected_naming_the_field() {
        let n = NetConfig {
            name: "eth0".into(),
            bridge: Some("vmbr0,firewall=0".into()),
            ..Default::default()
        };
        match n.encode() {
            Err(Error::InvalidProperty { field, .. }) => assert_eq!(field, "net.bridge"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn startup_accepts_a_bare_order() {
        let s = Startup::parse("2,up=30").unwrap();
        assert_eq!(s.order, Some(2));
        assert_eq!(s.encode(), "order=2,up=30");
    }
}
