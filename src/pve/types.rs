//! Typed responses and request parameters. Every response field is optional-tolerant and
//! accepts numbers sent as strings; unknown fields are ignored (or kept in `extra`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::de;
use super::error::Result;
use super::props::{self, Features, MountPoint, NetConfig, Startup};
use super::upid::Upid;

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VersionInfo {
    /// e.g. `9.1.1`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub version: Option<String>,
    /// e.g. `9.1`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub release: Option<String>,
    /// Git commit of pve-manager.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub repoid: Option<String>,
}

/// One entry of `GET /nodes`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// Node name.
    #[serde(default)]
    pub node: String,
    /// `online`, `offline` or `unknown`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    /// CPU usage (0..1 per CPU).
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Logical CPUs.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxcpu: Option<u64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Total memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Used root disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Root disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Support level.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub level: Option<String>,
    /// `node/<name>`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// SHA-256 fingerprint of the node's certificate (`AB:CD:..`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub ssl_fingerprint: Option<String>,
}

/// `GET /nodes/{node}/status` (the common fields; everything else in `extra`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NodeStatus {
    /// CPU usage.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// e.g. `pve-manager/9.1.1/...`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pveversion: Option<String>,
    /// Kernel version string.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub kversion: Option<String>,
    /// Load averages as strings.
    #[serde(default)]
    pub loadavg: Vec<Value>,
    /// `{total, used, free}` in bytes.
    #[serde(default)]
    pub memory: Option<MemoryInfo>,
    /// `{total, used, free}` in bytes.
    #[serde(default)]
    pub swap: Option<MemoryInfo>,
    /// `{total, used, free, avail}` in bytes.
    #[serde(default)]
    pub rootfs: Option<MemoryInfo>,
    /// Everything else (cpuinfo, boot-info, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Total/used/free triple in bytes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MemoryInfo {
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Free bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub free: Option<u64>,
}

/// One entry of `GET /nodes/{node}/storage`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StorageInfo {
    /// Storage id.
    #[serde(default)]
    pub storage: String,
    /// Plugin type: dir, lvmthin, zfspool, nfs, rbd, pbs, ...
    #[serde(default, rename = "type", deserialize_with = "de::opt_string")]
    pub storage_type: Option<String>,
    /// Comma-separated content types: `rootdir,images,vztmpl,backup,iso,...`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub content: Option<String>,
    /// Storage is active.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub active: Option<bool>,
    /// Storage is enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enabled: Option<bool>,
    /// Shared between nodes.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Total bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub total: Option<u64>,
    /// Used bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Available bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub avail: Option<u64>,
    /// used / total.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub used_fraction: Option<f64>,
}

impl StorageInfo {
    /// Whether `content` lists `kind` (e.g. `rootdir`, `vztmpl`, `backup`).
    pub fn has_content(&self, kind: &str) -> bool {
        self.content
            .as_deref()
            .is_some_and(|c| c.split(',').any(|k| k.trim() == kind))
    }
}

/// One entry of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StorageVolume {
    /// Volume id, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    #[serde(default)]
    pub volid: String,
    /// Content type: vztmpl, backup, iso, rootdir, images, snippets.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub content: Option<String>,
    /// Format: tzst, txz, tar.zst, raw, subvol, ...
    #[serde(default, deserialize_with = "de::opt_string")]
    pub format: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub size: Option<u64>,
    /// Used bytes (for images).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub used: Option<u64>,
    /// Creation time (epoch seconds).
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub ctime: Option<i64>,
    /// Owner guest.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Backup notes.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub notes: Option<String>,
    /// Protected backup.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub protected: Option<bool>,
    /// Backup subtype: `lxc` or `qemu`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub subtype: Option<String>,
    /// Base volume of a linked clone.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub parent: Option<String>,
}

/// One entry of `GET /nodes/{node}/aplinfo` (the appliance/template catalogue).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AplInfo {
    /// File name to pass as `template` to the download call.
    #[serde(default)]
    pub template: String,
    /// Package name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub package: Option<String>,
    /// OS, e.g. `debian-12`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub os: Option<String>,
    /// Version.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub version: Option<String>,
    /// Section: system, turnkeylinux, ...
    #[serde(default, deserialize_with = "de::opt_string")]
    pub section: Option<String>,
    /// `lxc`.
    #[serde(default, rename = "type", deserialize_with = "de::opt_string")]
    pub apl_type: Option<String>,
    /// One-line description.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub headline: Option<String>,
    /// Download URL.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub location: Option<String>,
    /// SHA-512 of the file.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub sha512sum: Option<String>,
    /// MD5 of the file (older catalogues).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub md5sum: Option<String>,
    /// Architecture.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub architecture: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of `GET /cluster/resources`: guests, nodes, storages, pools, sdn.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClusterResource {
    /// `lxc/100`, `qemu/100`, `node/pve`, `storage/pve/local`, ...
    #[serde(default)]
    pub id: String,
    /// `lxc`, `qemu`, `node`, `storage`, `pool`, `sdn`, `network`, ...
    #[serde(default, rename = "type")]
    pub resource_type: String,
    /// Guest id.
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub vmid: Option<u32>,
    /// Node.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub node: Option<String>,
    /// Guest/node/storage status.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    /// Guest name.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Tags as stored (`a;b`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub tags: Option<String>,
    /// Current lock, if any.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub template: Option<bool>,
    /// Pool.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pool: Option<String>,
    /// HA state.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub hastate: Option<String>,
    /// CPU usage.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPUs.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub maxcpu: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Used disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Network in, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netin: Option<u64>,
    /// Network out, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netout: Option<u64>,
    /// Disk read, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskread: Option<u64>,
    /// Disk write, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskwrite: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// Storage id (storage entries).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub storage: Option<String>,
    /// Storage content types (storage entries).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub content: Option<String>,
    /// Shared storage.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub shared: Option<bool>,
    /// Storage plugin type.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub plugintype: Option<String>,
}

/// Entry of `GET /nodes/{node}/lxc` and body of `GET …/lxc/{vmid}/status/current`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LxcStatus {
    /// Container id (a string on PVE 7, an integer on 8/9).
    #[serde(deserialize_with = "de::u32_lenient")]
    pub vmid: u32,
    /// `running` or `stopped`.
    #[serde(default)]
    pub status: String,
    /// Host name (falls back to `CT<vmid>`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub name: Option<String>,
    /// Tags as stored.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub tags: Option<String>,
    /// Current lock, if any.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub lock: Option<String>,
    /// Template flag.
    #[serde(default, deserialize_with = "de::bool_default_false")]
    pub template: bool,
    /// Init pid while running.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    /// Uptime, seconds.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub uptime: Option<u64>,
    /// CPU usage.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpu: Option<f64>,
    /// CPU limit.
    #[serde(default, deserialize_with = "de::opt_f64")]
    pub cpus: Option<f64>,
    /// Used memory, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub mem: Option<u64>,
    /// Memory limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxmem: Option<u64>,
    /// Used swap, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub swap: Option<u64>,
    /// Swap limit, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxswap: Option<u64>,
    /// Used root disk, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub disk: Option<u64>,
    /// Root disk size, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub maxdisk: Option<u64>,
    /// Disk read, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskread: Option<u64>,
    /// Disk write, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub diskwrite: Option<u64>,
    /// Network in, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netin: Option<u64>,
    /// Network out, bytes.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub netout: Option<u64>,
    /// HA state (`{managed: 0}` or HA details), status/current only.
    #[serde(default)]
    pub ha: Option<Value>,
}

impl LxcStatus {
    /// True when `status == "running"`.
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }
}

/// `GET …/lxc/{vmid}/config`: the common keys typed, everything in `raw`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LxcConfig {
    /// Host name.
    pub hostname: Option<String>,
    /// OS type.
    pub ostype: Option<String>,
    /// Architecture.
    pub arch: Option<String>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// CPU limit (0 = unlimited).
    pub cpulimit: Option<f64>,
    /// CPU weight.
    pub cpuunits: Option<u32>,
    /// Memory, MiB.
    pub memory: Option<u64>,
    /// Swap, MiB.
    pub swap: Option<u64>,
    /// Unprivileged container.
    pub unprivileged: Option<bool>,
    /// Start on boot.
    pub onboot: Option<bool>,
    /// Deletion protection.
    pub protection: Option<bool>,
    /// Template flag.
    pub template: Option<bool>,
    /// Current lock.
    pub lock: Option<String>,
    /// Tags as stored (`a;b`).
    pub tags: Option<String>,
    /// Description (multi-line).
    pub description: Option<String>,
    /// `rootfs` property string.
    pub rootfs: Option<String>,
    /// `features` property string.
    pub features: Option<String>,
    /// `startup` string.
    pub startup: Option<String>,
    /// DNS servers.
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// SHA-1 of the config file; pass it back to `update_config` to detect races.
    pub digest: Option<String>,
    /// Every key as returned (including the ones above, `netN`, `mpN`, `unusedN`, `lxc`).
    pub raw: BTreeMap<String, Value>,
}

impl<'de> Deserialize<'de> for LxcConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
        Ok(LxcConfig::from_raw(raw))
    }
}

impl LxcConfig {
    /// Builds the typed view from the raw key/value map.
    pub fn from_raw(raw: BTreeMap<String, Value>) -> LxcConfig {
        let s = |k: &str| raw.get(k).and_then(de::value_to_string);
        let u = |k: &str| raw.get(k).and_then(de::value_to_u64);
        let b = |k: &str| raw.get(k).and_then(de::value_to_bool);
        LxcConfig {
            hostname: s("hostname"),
            ostype: s("ostype"),
            arch: s("arch"),
            cores: u("cores").and_then(|n| u32::try_from(n).ok()),
            cpulimit: raw.get("cpulimit").and_then(de::value_to_f64),
            cpuunits: u("cpuunits").and_then(|n| u32::try_from(n).ok()),
            memory: u("memory"),
            swap: u("swap"),
            unprivileged: b("unprivileged"),
            onboot: b("onboot"),
            protection: b("protection"),
            template: b("template"),
            lock: s("lock"),
            tags: s("tags"),
            description: s("description"),
            rootfs: s("rootfs"),
            features: s("features"),
            startup: s("startup"),
            nameserver: s("nameserver"),
            searchdomain: s("searchdomain"),
            digest: s("digest"),
            raw,
        }
    }

    fn indexed(&self, prefix: &str) -> Vec<(u32, String)> {
        self.raw
            .iter()
            .filter_map(|(k, v)| {
                let idx: u32 = k.strip_prefix(prefix)?.parse().ok()?;
                Some((idx, de::value_to_string(v)?))
            })
            .collect()
    }

    /// Parsed `netN` entries by index.
    pub fn networks(&self) -> Result<BTreeMap<u32, NetConfig>> {
        self.indexed("net")
            .into_iter()
            .map(|(i, s)| Ok((i, NetConfig::parse(&s)?)))
            .collect()
    }

    /// Parsed `mpN` entries by index.
    pub fn mount_points(&self) -> Result<BTreeMap<u32, MountPoint>> {
        self.indexed("mp")
            .into_iter()
            .map(|(i, s)| Ok((i, MountPoint::parse_mp(&s)?)))
            .collect()
    }

    /// `unusedN` volume ids by index.
    pub fn unused_volumes(&self) -> BTreeMap<u32, String> {
        self.indexed("unused").into_iter().collect()
    }

    /// Parsed `rootfs`.
    pub fn rootfs_parsed(&self) -> Result<Option<MountPoint>> {
        self.rootfs
            .as_deref()
            .map(MountPoint::parse_rootfs)
            .transpose()
    }

    /// Parsed `features`.
    pub fn features_parsed(&self) -> Result<Option<Features>> {
        self.features.as_deref().map(Features::parse).transpose()
    }

    /// Parsed `startup`.
    pub fn startup_parsed(&self) -> Result<Option<Startup>> {
        self.startup.as_deref().map(Startup::parse).transpose()
    }

    /// Tags, lower-cased, sorted, de-duplicated.
    pub fn tag_list(&self) -> Vec<String> {
        self.tags
            .as_deref()
            .map(props::parse_tags)
            .unwrap_or_default()
    }
}

/// One entry of `GET …/lxc/{vmid}/pending`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PendingEntry {
    /// Config key.
    pub key: String,
    /// Current value.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub value: Option<String>,
    /// Pending value (applied at next start).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub pending: Option<String>,
    /// A pending delete (1 or 2 = force) if present and not 0.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub delete: Option<u64>,
}

/// A container interface from `GET …/lxc/{vmid}/interfaces`, both shapes normalized.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interface {
    /// Interface name (`lo`, `eth0`).
    pub name: String,
    /// MAC address (`hwaddr` or `hardware-address`).
    pub hwaddr: Option<String>,
    /// IPv4 addresses with prefix (`192.0.2.10/24`).
    pub inet: Vec<String>,
    /// IPv6 addresses with prefix.
    pub inet6: Vec<String>,
}

impl<'de> Deserialize<'de> for Interface {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let get = |k: &str| v.get(k).and_then(de::value_to_string);
        let mut iface = Interface {
            name: get("name").unwrap_or_default(),
            hwaddr: get("hwaddr").or_else(|| get("hardware-address")),
            inet: Vec::new(),
            inet6: Vec::new(),
        };
        let split = |s: Option<String>| -> Vec<String> {
            s.map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        iface.inet = split(get("inet"));
        iface.inet6 = split(get("inet6"));
        if let Some(list) = v.get("ip-addresses").and_then(Value::as_array) {
            for a in list {
                let Some(ip) = a.get("ip-address").and_then(de::value_to_string) else {
                    continue;
                };
                let with_prefix = match a.get("prefix").and_then(de::value_to_u64) {
                    Some(p) if !ip.contains('/') => format!("{ip}/{p}"),
                    _ => ip.clone(),
                };
                let family = a
                    .get("ip-address-type")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let is_v6 = family == "ipv6" || (family.is_empty() && ip.contains(':'));
                let list = if is_v6 {
                    &mut iface.inet6
                } else {
                    &mut iface.inet
                };
                if !list.contains(&with_prefix) {
                    list.push(with_prefix);
                }
            }
        }
        Ok(iface)
    }
}

/// One entry of `GET …/lxc/{vmid}/snapshot` (includes the pseudo-entry `current`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Snapshot name (`current` = "You are here!").
    pub name: String,
    /// Description.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub description: Option<String>,
    /// Parent snapshot.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub parent: Option<String>,
    /// Creation time (epoch seconds).
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub snaptime: Option<i64>,
    /// `current` only: the container is running.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub running: Option<bool>,
    /// `current` only: config digest.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// `GET …/lxc/{vmid}/firewall/options`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct FirewallOptions {
    /// Firewall enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Allow DHCP.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub dhcp: Option<bool>,
    /// Default IP filter.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub ipfilter: Option<bool>,
    /// MAC filter.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub macfilter: Option<bool>,
    /// Allow NDP.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub ndp: Option<bool>,
    /// Allow router advertisements.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub radv: Option<bool>,
    /// Log level in.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log_level_in: Option<String>,
    /// Log level out.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log_level_out: Option<String>,
    /// `ACCEPT`, `REJECT` or `DROP`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub policy_in: Option<String>,
    /// `ACCEPT`, `REJECT` or `DROP`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub policy_out: Option<String>,
    /// Digest of the firewall config.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// Changes for `PUT …/firewall/options`; unset fields are left alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirewallOptionsUpdate {
    /// Firewall enabled.
    pub enable: Option<bool>,
    /// Allow DHCP.
    pub dhcp: Option<bool>,
    /// Default IP filter.
    pub ipfilter: Option<bool>,
    /// MAC filter.
    pub macfilter: Option<bool>,
    /// Allow NDP.
    pub ndp: Option<bool>,
    /// Allow router advertisements.
    pub radv: Option<bool>,
    /// Log level in.
    pub log_level_in: Option<String>,
    /// Log level out.
    pub log_level_out: Option<String>,
    /// Policy in.
    pub policy_in: Option<String>,
    /// Policy out.
    pub policy_out: Option<String>,
    /// Keys to reset to default.
    pub delete: Vec<String>,
    /// Only apply if the digest still matches.
    pub digest: Option<String>,
}

/// A firewall rule as listed by `GET …/firewall/rules`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct FirewallRule {
    /// Position (0-based).
    #[serde(default, deserialize_with = "de::u32_lenient")]
    pub pos: u32,
    /// `in`, `out`, `forward` or `group`.
    #[serde(default, rename = "type")]
    pub rule_type: String,
    /// `ACCEPT`, `DROP`, `REJECT` or a security group name.
    #[serde(default)]
    pub action: String,
    /// Enabled flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Source address/alias/ipset.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub source: Option<String>,
    /// Destination address/alias/ipset.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub dest: Option<String>,
    /// Protocol.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub proto: Option<String>,
    /// Destination port(s).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub dport: Option<String>,
    /// Source port(s).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub sport: Option<String>,
    /// Interface (`net0`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub iface: Option<String>,
    /// Macro name.
    #[serde(default, rename = "macro", deserialize_with = "de::opt_string")]
    pub macro_name: Option<String>,
    /// Comment.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub comment: Option<String>,
    /// Log level.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log: Option<String>,
    /// ICMP type.
    #[serde(default, rename = "icmp-type", deserialize_with = "de::opt_string")]
    pub icmp_type: Option<String>,
    /// IP version (4/6).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub ipversion: Option<u64>,
    /// Digest.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// Parameters to create (`POST …/firewall/rules`) or update (`PUT …/rules/{pos}`) a rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirewallRuleParams {
    /// `in`, `out`, `forward` or `group` (required on create).
    pub rule_type: Option<String>,
    /// Action (required on create).
    pub action: Option<String>,
    /// Enabled flag.
    pub enable: Option<bool>,
    /// Source.
    pub source: Option<String>,
    /// Destination.
    pub dest: Option<String>,
    /// Protocol.
    pub proto: Option<String>,
    /// Destination port(s).
    pub dport: Option<String>,
    /// Source port(s).
    pub sport: Option<String>,
    /// Interface.
    pub iface: Option<String>,
    /// Macro.
    pub macro_name: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Log level.
    pub log: Option<String>,
    /// ICMP type.
    pub icmp_type: Option<String>,
    /// Create: insert at this position. Update: not used (see `moveto`).
    pub pos: Option<u32>,
    /// Update only: move the rule to this position.
    pub moveto: Option<u32>,
    /// Update only: keys to clear.
    pub delete: Vec<String>,
    /// Only apply if the digest still matches.
    pub digest: Option<String>,
}

/// Parameters of `POST /nodes/{node}/lxc` (create or restore).
///
/// `Debug` redacts `password`.
#[derive(Clone, PartialEq, Default)]
pub struct LxcCreateParams {
    /// Container id (required).
    pub vmid: u32,
    /// Template volid (`local:vztmpl/...`), or the backup volid when `restore`.
    pub ostemplate: String,
    /// Host name.
    pub hostname: Option<String>,
    /// Default storage for `rootfs` given as bare size / restore target.
    pub storage: Option<String>,
    /// `rootfs` property string (see [`MountPoint::encode_rootfs`], [`props::new_volume`]).
    pub rootfs: Option<String>,
    /// `mpN` property strings by index.
    pub mount_points: BTreeMap<u32, String>,
    /// `netN` property strings by index.
    pub networks: BTreeMap<u32, String>,
    /// Memory, MiB.
    pub memory: Option<u64>,
    /// Swap, MiB.
    pub swap: Option<u64>,
    /// CPU cores.
    pub cores: Option<u32>,
    /// CPU limit.
    pub cpulimit: Option<f64>,
    /// CPU weight.
    pub cpuunits: Option<u32>,
    /// Root password (≥ 5 characters).
    pub password: Option<String>,
    /// Authorized SSH keys (newline separated).
    pub ssh_public_keys: Option<String>,
    /// Unprivileged (Proxmox default on create: 1).
    pub unprivileged: Option<bool>,
    /// `features` property string.
    pub features: Option<String>,
    /// Pool.
    pub pool: Option<String>,
    /// Tags (`;`-joined, see [`props::encode_tags`]).
    pub tags: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Start after creation.
    pub start: Option<bool>,
    /// Start on boot.
    pub onboot: Option<bool>,
    /// `startup` string.
    pub startup: Option<String>,
    /// DNS servers.
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
    /// OS type.
    pub ostype: Option<String>,
    /// Architecture.
    pub arch: Option<String>,
    /// Time zone.
    pub timezone: Option<String>,
    /// Deletion protection.
    pub protection: Option<bool>,
    /// Restore from the backup in `ostemplate`.
    pub restore: bool,
    /// Restore over an existing (stopped) container.
    pub force: Option<bool>,
    /// Restore with new MAC addresses.
    pub unique: Option<bool>,
    /// Any other parameter, passed as is.
    pub extra: BTreeMap<String, String>,
}

impl fmt::Debug for LxcCreateParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LxcCreateParams")
            .field("vmid", &self.vmid)
            .field("ostemplate", &self.ostemplate)
            .field("hostname", &self.hostname)
            .field("storage", &self.storage)
            .field("rootfs", &self.rootfs)
            .field("restore", &self.restore)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// `PUT …/lxc/{vmid}/config`: keys to set, keys to delete, optional digest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigUpdate {
    /// Keys to set (values already encoded: property strings, `0`/`1` booleans).
    pub set: BTreeMap<String, String>,
    /// Keys to delete.
    pub delete: Vec<String>,
    /// Only apply if the config digest still matches (else `DigestMismatch`).
    pub digest: Option<String>,
}

/// Parameters of `POST …/lxc/{vmid}/migrate`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MigrateParams {
    /// Target node (required).
    pub target: String,
    /// Restart migration (stop, move, start) for running containers.
    pub restart: Option<bool>,
    /// Online migration (not supported for containers by current PVE; passed through).
    pub online: Option<bool>,
    /// Target storage (or `SOURCE:TARGET` mappings).
    pub target_storage: Option<String>,
    /// Shutdown timeout for restart migration, seconds.
    pub timeout: Option<u32>,
    /// Bandwidth limit, KiB/s.
    pub bwlimit: Option<u64>,
}

/// Parameters of `POST …/lxc/{vmid}/clone`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CloneParams {
    /// New container id (required).
    pub newid: u32,
    /// Full clone (default: linked for templates).
    pub full: Option<bool>,
    /// Target node (shared storage only).
    pub target: Option<String>,
    /// Target storage (full clones only).
    pub storage: Option<String>,
    /// Host name of the clone.
    pub hostname: Option<String>,
    /// Pool.
    pub pool: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Clone from this snapshot.
    pub snapname: Option<String>,
    /// Bandwidth limit, KiB/s.
    pub bwlimit: Option<u64>,
}

/// Parameters of `DELETE …/lxc/{vmid}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeleteParams {
    /// Also remove from backup jobs, replication and HA.
    pub purge: Option<bool>,
    /// Stop a running container first.
    pub force: Option<bool>,
    /// Also destroy disks not referenced in the config.
    pub destroy_unreferenced_disks: Option<bool>,
}

/// Parameters of `POST /nodes/{node}/vzdump`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VzdumpParams {
    /// Guests to back up (comma list on the wire).
    pub vmid: Vec<u32>,
    /// Back up all guests on the node.
    pub all: Option<bool>,
    /// Target storage.
    pub storage: Option<String>,
    /// `snapshot` (default), `suspend` or `stop`.
    pub mode: Option<String>,
    /// `0`, `1`, `gzip`, `lzo`, `zstd`.
    pub compress: Option<String>,
    /// Notes template.
    pub notes_template: Option<String>,
    /// Prune after backup (Proxmox default 1).
    pub remove: Option<bool>,
    /// Mark the backup protected.
    pub protected: Option<bool>,
    /// `keep-last=N,...`.
    pub prune_backups: Option<String>,
    /// Bandwidth limit, KiB/s.
    pub bwlimit: Option<u64>,
    /// Minutes to wait for the global vzdump lock.
    pub lockwait: Option<u32>,
    /// Minutes to wait for a guest to stop.
    pub stopwait: Option<u32>,
    /// Any other parameter, passed as is.
    pub extra: BTreeMap<String, String>,
}

/// Result of `POST /nodes/{node}/vzdump`.
#[derive(Debug, Clone, PartialEq)]
pub enum VzdumpResult {
    /// A backup task was started.
    Task(Upid),
    /// Proxmox answered `"OK"`: none of the selected guests is on this node.
    NothingToDo,
}

/// Parameters of `POST /nodes/{node}/storage/{storage}/download-url`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DownloadUrlParams {
    /// Source URL.
    pub url: String,
    /// `vztmpl`, `iso` or `import`.
    pub content: String,
    /// Target file name.
    pub filename: String,
    /// Expected checksum.
    pub checksum: Option<String>,
    /// `md5`, `sha1`, `sha224`, `sha256`, `sha384`, `sha512`.
    pub checksum_algorithm: Option<String>,
    /// Verify the source's TLS certificate (Proxmox default 1).
    pub verify_certificates: Option<bool>,
    /// Decompression algorithm.
    pub compression: Option<String>,
}
