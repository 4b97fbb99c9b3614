//! Request parameters of the task-starting and writing calls.

use super::*;

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
///
/// `Debug` redacts the value of `env` (it may carry values read from Secrets).
#[derive(Clone, PartialEq, Default)]
pub struct ConfigUpdate {
    /// Keys to set (values already encoded: property strings, `0`/`1` booleans).
    pub set: BTreeMap<String, String>,
    /// Keys to delete.
    pub delete: Vec<String>,
    /// Only apply if the config digest still matches (else `DigestMismatch`).
    pub digest: Option<String>,
}

impl fmt::Debug for ConfigUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: BTreeMap<&str, &str> = self
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), if k == "env" { "<redacted>" } else { v.as_str() }))
            .collect();
        f.debug_struct("ConfigUpdate")
            .field("set", &set)
            .field("delete", &self.delete)
            .field("digest", &self.digest)
            .finish()
    }
}

/// Parameters of `POST /nodes/{node}/storage/{storage}/oci-registry-pull`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OciPullParams {
    /// The image, `[registry/]repository:tag` (a tag is required; digests are refused).
    pub reference: String,
    /// Destination file name without `.tar` (Proxmox normalizes it: only the part after the
    /// last `/`, `[^a-zA-Z0-9_.-]` replaced by `_`); the reference's last path part when `None`.
    pub filename: Option<String>,
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
    /// `destroy-unreferenced-disks`: also destroy every `vm-<vmid>-disk-*` on every enabled
    /// storage that the config does **not** reference: detached disks, or another cluster's
    /// guest with the same vmid on shared storage. Dangerous for an operator, which did not
    /// make those; leave it `None` (not sent, Proxmox then keeps them).
    pub destroy_unreferenced_disks: Option<bool>,
}

impl DeleteParams {
    /// What an operator sends to delete a container it made: `purge=1` (drop it from backup
    /// jobs, replication and HA) and nothing else, so Proxmox destroys only the volumes the
    /// container's config references (rootfs, `mpN`, `unusedN`).
    pub fn purge_referenced_only() -> DeleteParams {
        DeleteParams {
            purge: Some(true),
            ..Default::default()
        }
    }
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
    /// Fleecing (`enabled=1,storage=ID`): writes the guest makes during the backup go to a
    /// fleecing image there, so a slow backup target does not slow the guest.
    pub fleecing: Option<String>,
    /// PBS change detection: `legacy`, `data` or `metadata`.
    pub pbs_change_detection_mode: Option<String>,
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
