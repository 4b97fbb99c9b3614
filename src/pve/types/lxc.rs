//! Container status, config, pending changes, interfaces and snapshots.

use super::*;

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
        self.rootfs.as_deref().map(MountPoint::parse_rootfs).transpose()
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
        self.tags.as_deref().map(props::parse_tags).unwrap_or_default()
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
                let family = a.get("ip-address-type").and_then(Value::as_str).unwrap_or("");
                let is_v6 = family == "ipv6" || (family.is_empty() && ip.contains(':'));
                let list = if is_v6 { &mut iface.inet6 } else { &mut iface.inet };
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
