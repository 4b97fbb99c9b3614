//! `LxcContainer`: one Proxmox VE LXC container.

pub use super::app::*;
use super::common::*;
pub use super::firewall::*;
pub use super::mounts::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of one LXC container in Proxmox VE.
///
/// Every list, map and string has an upper bound (shown with each field), chosen for real use
/// with room to spare: the operator caches every object it watches, so the bounds keep what one
/// namespace can make it hold in memory (a maximal object is at most
/// [`MAX_OBJECT_BYTES`](crate::crd::bounds::MAX_OBJECT_BYTES)) within its limit.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcContainer",
    namespaced,
    doc = "One Proxmox VE LXC container: source, resources, disks, network, firewall and power state; status holds vmid, node, state, IPs, usage and conditions.",
    shortname = "lxc",
    category = "proxmox",
    status = "LxcContainerStatus",
    printcolumn = r#"{"name":"VMID","type":"integer","jsonPath":".status.vmid"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"IP","type":"string","jsonPath":".status.ipAddresses[0]"}"#,
    printcolumn = r#"{"name":"Cores","type":"integer","jsonPath":".spec.resources.cores"}"#,
    printcolumn = r#"{"name":"Memory","type":"string","jsonPath":".spec.resources.memory"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"PendingRestart","type":"string","jsonPath":".status.conditions[?(@.type==\"PendingRestart\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Synced\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcContainerSpec {
    /// The `ProxmoxCluster` (cluster-scoped) this container lives in; when omitted, the one
    /// annotated `pve.lxc.dev/is-default-cluster: "true"`, else the one named `default`.
    /// Immutable once the container exists: a container cannot move between Proxmox clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable"))]
    pub cluster_ref: Option<ClusterRef>,
    /// Proxmox node to run on. When omitted, placement picks an online node that has the needed
    /// storage and the most free memory. Changing it migrates the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = NODE_PATTERN))]
    pub node: Option<String>,
    /// Proxmox VM id; allocated when omitted. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 999_999_999))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vmid is immutable"))]
    pub vmid: Option<u32>,
    /// Where the container's root filesystem comes from: exactly one of `osTemplate`, `template`,
    /// `clone`, `backup` or `image`. Immutable (Proxmox cannot change it after creation), except
    /// `image.reference`: a new tag is an image update (see `updateStrategy`).
    #[x_kube(
        validation = Rule::new("self == oldSelf || (has(self.image) && has(oldSelf.image) && self.image.storage == oldSelf.image.storage)")
            .message("source is immutable (only source.image.reference may change: an image update)"),
        validation = Rule::new("(has(self.osTemplate) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.clone) ? 1 : 0) + (has(self.backup) ? 1 : 0) + (has(self.image) ? 1 : 0) == 1")
            .message("set exactly one of `osTemplate`, `template`, `clone`, `backup` or `image`")
    )]
    pub source: ContainerSource,
    /// The process of an application container (`source.image` only): command, arguments and
    /// environment, like a Pod container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<Box<AppSpec>>,
    /// How a new `source.image.reference` (an image update) is rolled out: `Recreate` (same
    /// vmid, MACs and IPs, new root filesystem; refused while volume mount points exist; bind
    /// mounts and devices are made again) or `Refuse`. A refused update says why in
    /// `Synced=False` (reason `ImageUpdateRefused`); the container keeps running the image in
    /// `status.image`.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
    /// Host name inside the container; defaults to `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub hostname: Option<String>,
    /// Free-text description shown in Proxmox (may span several lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,
    /// Proxmox tags. The operator adds its own identity tag `k8s-<uid>` besides these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64), regex(pattern = TAG_PATTERN)))]
    pub tags: Vec<String>,
    /// Proxmox resource pool to put the container in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = POOL_PATTERN))]
    pub pool: Option<String>,
    /// Run as an unprivileged container (user namespaces). Immutable after creation.
    #[serde(default = "default_true")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("unprivileged is immutable"))]
    pub unprivileged: bool,
    /// CPU and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The root disk. It can grow in place; shrinking is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<Box<RootFs>>,
    /// Extra volumes mounted inside the container (`mp0`, `mp1`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub mount_points: Vec<MountPoint>,
    /// Host directories bind-mounted into the container (`mpN: /host/path,mp=/path`, in `mpN`
    /// slots the operator picks besides `mountPoints`). Proxmox lets only `root@pam` itself set
    /// them: the operator must sign in with `root@pam`'s password (a token, even one of
    /// `root@pam`, is refused). A tenant needs `privileges.bindMounts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub bind_mounts: Vec<BindMount>,
    /// Host devices passed into the container (`dev0`, `dev1`, ...). `root@pam` only, like
    /// `bindMounts`; a tenant needs `privileges.devices`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub devices: Vec<Device>,
    /// Network interfaces (`net0`..`net31`), in order; names must be unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub network: Vec<NetworkInterface>,
    /// DNS settings inside the container; the host's are used when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Box<Dns>>,
    /// Container features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// Credentials set at creation only (Proxmox accepts them only then). Never copied into status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Box<ContainerAuth>>,
    /// Start the container when its Proxmox node boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_on_boot: Option<bool>,
    /// Start/stop order and delays at node boot and shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<Box<Startup>>,
    /// Console mode and number of ttys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<Console>,
    /// Time zone inside the container: `host` (the node's), `UTC` or a zone such as
    /// `Europe/Berlin`; Proxmox leaves it alone when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = TIMEZONE_PATTERN))]
    pub timezone: Option<String>,
    /// Desired power state, driven to and kept: `Running` (default) or `Stopped` (a clean
    /// shutdown, forced after 60 s).
    #[serde(default)]
    pub state: PowerState,
    /// The container's firewall: options and rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<Box<Firewall>>,
    /// Ports published in-cluster as a Service (without selector) and an EndpointSlice pointing at
    /// the container's IP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ports: Vec<ServicePort>,
    /// `Full` manages the container; `ObserveOnly` adopts an existing one (by `vmid`) read-only:
    /// status is reported, nothing is changed.
    #[serde(default)]
    pub management: Management,
    /// What happens to the Proxmox container when this object is deleted: `Delete` (default:
    /// stopped, then destroyed with purge) or `Retain` (kept; only the operator's tag is removed).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Proxmox protection flag: when set, Proxmox refuses to remove the container or its disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<bool>,
    /// Spread placement: the key of a label of this object (e.g. `app`). Containers of the
    /// namespace with the same value of that label (replicas of one service) are placed on
    /// different Proxmox nodes while there are nodes without one; when there are none, the
    /// container is placed anyway and an Event (`SpreadNotPossible`) says so. Applies when
    /// placement chooses the node (no `spec.node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317), regex(pattern = LABEL_KEY_PATTERN))]
    pub spread_by: Option<String>,
    /// High availability through Proxmox's HA stack (restart on failure, recovery on another
    /// node, node affinity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<Box<crate::crd::ha::HighAvailability>>,
}

/// Where a container comes from. Exactly one field must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["osTemplate"]},
    {"required": ["template"]},
    {"required": ["clone"]},
    {"required": ["backup"]},
    {"required": ["image"]}
]))]
pub struct ContainerSource {
    /// A container template volume, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), regex(pattern = VZTMPL_VOLID_PATTERN))]
    pub os_template: Option<String>,
    /// Clone an `LxcTemplate` of the same namespace (linked clone by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateSource>,
    /// Clone any existing Proxmox container or template by vmid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone: Option<CloneSource>,
    /// Restore from a backup: an `LxcBackup` of the same namespace or an archive volume id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSource>,
    /// An OCI image (Proxmox VE 9.1 application container), pulled by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
}

/// Clone from an `LxcTemplate`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSource {
    /// Name of the `LxcTemplate` in the same namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
    /// Full clone (independent copy) instead of a linked clone.
    #[serde(default)]
    pub full: bool,
}

/// Clone an existing Proxmox container or template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSource {
    /// vmid of the container or template to clone.
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: u32,
    /// Full clone. Proxmox always makes full clones of normal containers; linked clones need a template.
    #[serde(default = "default_true")]
    pub full: bool,
}

/// Restore from a backup: exactly one of `name` or `volid`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["name"]}, {"required": ["volid"]}]))]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.name) != has(self.volid)", "message": "set either `name` (an LxcBackup) or `volid` (an archive)"}]))]
pub struct BackupSource {
    /// Name of an `LxcBackup` in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: Option<String>,
    /// A backup archive volume id, e.g. `nfs-backup:backup/vzdump-lxc-100-2026_11_27-02_00_00.tar.zst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), regex(pattern = BACKUP_VOLID_PATTERN))]
    pub volid: Option<String>,
}

/// CPU and memory of a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Number of CPU cores visible to the container (1–8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub cores: Option<u32>,
    /// CPU time limit in cores, e.g. `"1.5"` (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = r"^[0-9]+(\.[0-9]{1,4})?$"))]
    pub cpu_limit: Option<String>,
    /// CPU weight relative to other guests (Proxmox `cpuunits`, 0–500000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 500_000))]
    pub cpu_units: Option<u32>,
    /// Memory, a whole number of MiB in binary units (e.g. `1Gi`, `512Mi`; not `1G`); at least
    /// `16Mi`. Proxmox's default (512 MiB) when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "!string(self).matches('[kMGTPE]$')", "message": "memory takes binary units: 1Gi, 512Mi (Proxmox counts in MiB)"}]))]
    pub memory: Option<ByteQuantity>,
    /// Swap, a whole number of MiB in binary units (e.g. `512Mi`); `0` disables swap.
    /// Proxmox's default (512 MiB) when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "!string(self).matches('[kMGTPE]$')", "message": "swap takes binary units: 1Gi, 512Mi (Proxmox counts in MiB)"}]))]
    pub swap: Option<ByteQuantity>,
}

/// The root disk.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootFs {
    /// Proxmox storage id holding the disk (content `rootdir`).
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: String,
    /// Size, a whole number of GiB for new disks (e.g. `8Gi`). Can grow; shrinking is refused.
    pub size: ByteQuantity,
}

/// An extra volume mounted inside the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// Proxmox key of the mount point, `mp0`..`mp255`.
    #[schemars(
        length(max = 5),
        regex(pattern = r"^mp([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$")
    )]
    pub name: String,
    /// Proxmox storage id holding the volume.
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: String,
    /// Size, a whole number of GiB (e.g. `10Gi`). Can grow; shrinking is refused.
    pub size: ByteQuantity,
    /// Absolute path inside the container.
    #[schemars(length(min = 2, max = 256), regex(pattern = MOUNT_PATH_PATTERN))]
    pub path: String,
    /// Include the volume in backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<bool>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// One network interface of the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Interface name inside the container, e.g. `eth0`.
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-zA-Z0-9_.-]+$"))]
    pub name: String,
    /// Host bridge to attach to, e.g. `vmbr0`.
    #[schemars(length(min = 1, max = 15), regex(pattern = BRIDGE_PATTERN))]
    pub bridge: String,
    /// IPv4 configuration; none when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4Config>,
    /// IPv6 configuration; none when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
    /// VLAN tag (1–4094).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4094))]
    pub vlan: Option<u16>,
    /// Apply the Proxmox firewall on this interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<bool>,
    /// MTU (64–65535); the bridge's when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 64, max = 65535))]
    pub mtu: Option<u32>,
    /// Rate limit in megabytes (not megabits) per second, fractions allowed: Proxmox's `rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub rate_megabytes_per_second: Option<f64>,
    /// Deprecated name of `rateMegabytesPerSecond` (also megabytes per second, despite the
    /// name); still accepted. Setting both to different values is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100000.0))]
    pub rate_mbps: Option<f64>,
    /// Fixed MAC address; Proxmox assigns one when omitted (recorded in status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 17), regex(pattern = MAC_PATTERN))]
    pub mac: Option<String>,
    /// The host runs the interface's IP configuration (its DHCP client) inside the container's
    /// network namespace (Proxmox `host-managed`), for images without a network stack. Proxmox
    /// turns it on for containers from OCI images when omitted; SLAAC (`ipv6.auto`) cannot be
    /// host-managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_managed: Option<bool>,
}

/// IPv4 configuration of an interface: `dhcp: true`, or `address` (CIDR) with optional `gateway`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["dhcp"]}, {"required": ["address"]}]))]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "has(self.dhcp) != has(self.address)", "message": "set either `dhcp` or `address`"}]))]
pub struct Ipv4Config {
    /// Get the address by DHCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    /// Static address with prefix length, e.g. `10.0.0.5/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 18), regex(pattern = IPV4_CIDR_PATTERN))]
    pub address: Option<String>,
    /// Default gateway, inside the address's subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15), regex(pattern = IPV4_PATTERN))]
    pub gateway: Option<String>,
}

/// IPv6 configuration of an interface: `auto: true` (SLAAC), `dhcp: true`, or `address` with
/// optional `gateway`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["auto"]}, {"required": ["dhcp"]}, {"required": ["address"]}]))]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "(has(self.auto) ? 1 : 0) + (has(self.dhcp) ? 1 : 0) + (has(self.address) ? 1 : 0) == 1", "message": "set exactly one of `auto`, `dhcp` or `address`"}]))]
pub struct Ipv6Config {
    /// Stateless address autoconfiguration (SLAAC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<bool>,
    /// Get the address by DHCPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<bool>,
    /// Static address with prefix length, e.g. `fd00::5/64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = IPV6_CIDR_PATTERN))]
    pub address: Option<String>,
    /// Default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = IPV6_PATTERN))]
    pub gateway: Option<String>,
}

/// DNS settings inside the container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Name server addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3), inner(length(max = 64), regex(pattern = IP_PATTERN)))]
    pub nameservers: Vec<String>,
    /// DNS search domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = HOSTNAME_PATTERN))]
    pub search_domain: Option<String>,
}

/// Container features (Proxmox `features`). API tokens may only toggle `nesting`; the others need
/// `root@pam`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Allow nested containers (needed by systemd in recent distributions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nesting: Option<bool>,
    /// Allow the `keyctl()` system call (Docker inside unprivileged containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyctl: Option<bool>,
    /// Allow FUSE mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse: Option<bool>,
}

/// Credentials applied when the container is created.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerAuth {
    /// SSH public keys installed for root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(
            length(max = 2048),
            regex(
                pattern = r"^(ssh-[a-z0-9-]+|ecdsa-sha2-[a-z0-9-]+|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( [\x20-\x7e]*)?$"
            )
        )
    )]
    pub ssh_public_keys: Vec<String>,
    /// The root password, from a Secret in the same namespace. Never copied into status, events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// Boot order and delays.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// Start order (lower starts first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub order: Option<u32>,
    /// Seconds to wait after starting this container before starting the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86_400))]
    pub up_delay_seconds: Option<u32>,
    /// Seconds to wait after stopping this container before stopping the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86_400))]
    pub down_delay_seconds: Option<u32>,
}

/// Desired power state.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PowerState {
    /// Keep the container running.
    #[default]
    Running,
    /// Keep the container stopped.
    Stopped,
}

/// How much the operator manages.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Management {
    /// Create, update and delete the container to match the spec.
    #[default]
    Full,
    /// Adopt an existing container (by `vmid`) read-only: report status, change nothing.
    ObserveOnly,
}

/// A port published as part of the in-cluster Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Port name (a DNS label), unique in the list.
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Port number on the container (and the Service).
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: PortProtocol,
}

/// Transport protocol of a published port.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PortProtocol {
    /// TCP.
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

/// Observed state of a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcContainerStatus {
    /// The container's vmid in Proxmox (recorded before it is created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The `ProxmoxCluster` the container was created in (recorded with the vmid; a later
    /// `clusterRef` naming another one is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The node the container is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The OCI image reference the container was created from (`source.image` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Proxmox's status of the container (`running`, `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Lifecycle phase: Pending, Creating, Running, Stopped, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ContainerPhase>,
    /// How often the operator started the container again after it stopped outside Kubernetes
    /// (its process ended, or someone stopped it) while `spec.state` is `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_count: Option<u32>,
    /// When the operator last started the container again that way (the back-off between
    /// restarts grows from 10 s to 5 min, as a kubelet's, and resets after 10 min of running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Addresses of the container's interfaces (IPv4 first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// MAC address per interface name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mac: std::collections::BTreeMap<String, String>,
    /// Resource usage when the status last changed: not live (a container whose state does not
    /// change makes no status writes). Live figures: the `plo_container_*` metrics and the
    /// UI's charts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The Proxmox task in flight for this container (at most one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_task: Option<Box<PendingTask>>,
    /// The temporary snapshot of a running clone source this container is cloned from
    /// (recorded before it is taken; deleted once the clone has ended or the object goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_snapshot: Option<Box<CloneSnapshot>>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`, `Synced`, `PendingRestart`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// When the status last changed (written with a change, never on its own: not when
    /// Proxmox was last read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// Backup archives of this container found in Proxmox storage (any origin), newest first,
    /// at most 10. Restore one with `spec.source.backup.volid` in a new `LxcContainer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupArchive>,
    /// The `mpN`/`devN` keys the operator set for `spec.bindMounts` and `spec.devices`. Only
    /// these are removed when entries leave the spec: bind mounts and devices set in Proxmox by
    /// hand are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_mounts: Vec<String>,
    /// The last value of the `pve.lxc.dev/restartedAt` annotation honoured (the container was
    /// rebooted for it, or it was not running): a new value restarts it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_request: Option<String>,
    /// The HA resource the operator manages for `spec.highAvailability`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_availability: Option<Box<crate::crd::ha::HighAvailabilityStatus>>,
    /// The root volume in Proxmox (volume, storage, size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootVolume>,
}

/// A backup archive found in storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupArchive {
    /// Volume id, e.g. `nfs-backup:backup/vzdump-lxc-100-2026_11_27-02_00_00.tar.zst`.
    pub volid: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// When it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Notes stored with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Lifecycle phase of a container.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ContainerPhase {
    /// Accepted, nothing done in Proxmox yet.
    Pending,
    /// Being created.
    Creating,
    /// Exists and runs.
    Running,
    /// Exists and is stopped.
    Stopped,
    /// Cannot make progress without a change (see conditions).
    Failed,
    /// Being removed.
    Deleting,
}

/// Resource usage of a container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// CPU usage as a fraction of the host's CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Root disk in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
    /// Seconds since the container started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Bytes received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_in_bytes: Option<u64>,
    /// Bytes sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_out_bytes: Option<u64>,
}

pub use super::common::PendingTask;

/// A temporary snapshot of a running clone source (Proxmox clones a running container fully
/// only from a snapshot).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneSnapshot {
    /// The source's node.
    pub node: String,
    /// The source's vmid.
    pub vmid: u32,
    /// The snapshot's name (`k8s-clone-…`).
    pub name: String,
    /// Whether the clone from it was started (then it is deleted once no task runs).
    #[serde(default)]
    pub used: bool,
}
