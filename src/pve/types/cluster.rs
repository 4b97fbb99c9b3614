//! Cluster, node and storage responses.

use super::*;

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

/// `GET /access/permissions`: ACL path → privilege → whether it propagates to the paths
/// below (Proxmox sends `1`/`0`, numbers or strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions(pub BTreeMap<String, BTreeMap<String, bool>>);

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::deserialize(d)?;
        Ok(Permissions(
            raw.into_iter()
                .map(|(path, privs)| {
                    let privs = privs
                        .into_iter()
                        .map(|(p, v)| (p, de::value_to_bool(&v).unwrap_or(false)))
                        .collect();
                    (path, privs)
                })
                .collect(),
        ))
    }
}

impl Permissions {
    /// Whether `privilege` holds on `path`: granted there, or on a parent path with
    /// propagation (`/vms` covers `/vms/100`, `/` covers everything).
    pub fn allows(&self, path: &str, privilege: &str) -> bool {
        if self.0.get(path).is_some_and(|p| p.contains_key(privilege)) {
            return true;
        }
        let mut at = path.trim_end_matches('/');
        while let Some(i) = at.rfind('/') {
            at = &at[..i];
            let parent = if at.is_empty() { "/" } else { at };
            if self.0.get(parent).and_then(|p| p.get(privilege)) == Some(&true) {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod permission_tests {
    use super::Permissions;

    #[test]
    fn a_privilege_holds_on_its_path_and_below_when_it_propagates() {
        let p: Permissions = serde_json::from_value(serde_json::json!({
            "/": {"Sys.Audit": 1},
            "/vms": {"VM.Audit": "1", "VM.Backup": 0},
            "/storage/local": {"Datastore.AllocateSpace": 0}
        }))
        .unwrap();
        assert!(p.allows("/nodes/pve1", "Sys.Audit"));
        assert!(p.allows("/vms/100", "VM.Audit"));
        assert!(p.allows("/vms", "VM.Backup"));
        assert!(!p.allows("/vms/100", "VM.Backup"));
        assert!(p.allows("/storage/local", "Datastore.AllocateSpace"));
        assert!(!p.allows("/storage/other", "Datastore.AllocateSpace"));
        assert!(!p.allows("/vms/100", "VM.Snapshot"));
    }
}
