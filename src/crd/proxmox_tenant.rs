//! `ProxmoxTenant`: which namespaces may use which `ProxmoxCluster`, under which limits.

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A tenant: the namespaces it covers, the clusters they may use and the limits that apply to
/// everything they create there. Cluster-scoped, owned by the platform admin.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "ProxmoxTenant",
    doc = "A tenant (cluster-scoped, owned by the platform admin): which namespaces may use which ProxmoxClusters and under which limits (pool, vmid range, nodes, storages, bridges and VLANs, privileges, quotas); status shows usage against each quota.",
    shortname = "pvet",
    category = "proxmox",
    status = "ProxmoxTenantStatus",
    printcolumn = r#"{"name":"Clusters","type":"string","jsonPath":".spec.clusters"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".status.namespaces"}"#,
    printcolumn = r#"{"name":"Containers","type":"string","jsonPath":".status.usage.containers"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxTenantSpec {
    /// Names of the `ProxmoxCluster`s these namespaces may use.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN)))]
    pub clusters: Vec<String>,
    /// Namespaces of the tenant, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = 63), regex(pattern = K8S_NAME_PATTERN)))]
    pub namespaces: Vec<String>,
    /// Namespaces of the tenant, by label (in addition to `namespaces`; at most 64
    /// `matchLabels` and 16 `matchExpressions` of at most 64 values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "bounded_optional_label_selector")]
    pub namespace_selector: Option<LabelSelector>,
    /// Proxmox pool every container of the tenant is put in (`spec.pool` must be unset or equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = POOL_PATTERN))]
    pub pool: Option<String>,
    /// vmids the tenant's containers and templates get (`spec.vmid` must be inside; allocation
    /// picks inside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid_range: Option<VmidRange>,
    /// Proxmox nodes the tenant's containers may run on; any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(max = 63), regex(pattern = NODE_PATTERN)))]
    pub nodes: Vec<String>,
    /// Storages the tenant may use, per purpose; any when a list is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storages: Option<TenantStorages>,
    /// Networks the tenant's interfaces may join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<TenantNetwork>,
    /// What beyond an unprivileged container with `nesting` the tenant may ask for (all off by
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileges: Option<TenantPrivileges>,
    /// Upper bounds over all of the tenant's containers (every namespace and cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<TenantQuota>,
    /// Registries OCI images (`source.image`, `LxcTemplate.image.oci`) may come from, as
    /// skopeo names them (`docker.io`, `ghcr.io`, `registry.example.org:5000`). Proxmox pulls
    /// them with the operator's token from the nodes' network, so a tenant gets none when the
    /// list is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253), regex(pattern = r"^[a-zA-Z0-9.-]+(:[0-9]{1,5})?$"))
    )]
    pub image_registries: Vec<String>,
    /// Existing Proxmox guests (not made by the operator) the tenant may clone or observe, by
    /// vmid: for example golden templates the admin made by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub shared_vmids: Vec<VmidRange>,
}

/// An inclusive range of vmids.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{"rule": "self.min <= self.max", "message": "min must not exceed max"}]))]
pub struct VmidRange {
    /// First vmid.
    #[schemars(range(min = 100, max = 999_999_999))]
    pub min: u32,
    /// Last vmid.
    #[schemars(range(min = 100, max = 999_999_999))]
    pub max: u32,
}

impl VmidRange {
    /// Whether `vmid` is inside.
    pub fn contains(&self, vmid: u32) -> bool {
        (self.min..=self.max).contains(&vmid)
    }
}

/// Storages by purpose.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStorages {
    /// For root filesystems and mount points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64), regex(pattern = STORAGE_PATTERN)))]
    pub rootfs: Vec<String>,
    /// For backup archives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64), regex(pattern = STORAGE_PATTERN)))]
    pub backup: Vec<String>,
    /// For downloaded templates and images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64), regex(pattern = STORAGE_PATTERN)))]
    pub templates: Vec<String>,
}

/// Network limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantNetwork {
    /// Bridges the tenant may attach to, each with its VLANs; any bridge when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub bridges: Vec<TenantBridge>,
    /// Let interfaces set their own MAC address (`network[].mac`). Off: Proxmox assigns one, so
    /// nobody can take over another tenant's MAC.
    #[serde(default)]
    pub allow_static_mac: bool,
    /// Networks static IPv4 and IPv6 addresses must lie in (`10.20.0.0/24`); any when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 64)))]
    pub address_ranges: Vec<String>,
    /// Turn on the Proxmox firewall of every interface with its MAC filter (the container
    /// cannot send with another MAC), whatever the container asks for. Default on. Proxmox
    /// applies container firewalls only while the datacenter firewall is enabled.
    #[serde(default = "yes")]
    pub force_firewall: bool,
    /// With `forceFirewall`, also Proxmox's IP filter (only the configured addresses may be
    /// sent from; DHCP-only interfaces then cannot talk). Default off.
    #[serde(default)]
    pub ip_filter: bool,
}

fn yes() -> bool {
    true
}

/// One bridge and its VLANs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantBridge {
    /// Bridge name, e.g. `vmbr0`.
    #[schemars(length(min = 1, max = 15), regex(pattern = r"^[A-Za-z][A-Za-z0-9_.-]*$"))]
    pub name: String,
    /// VLAN tags allowed on it; when empty, only untagged interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4094), inner(range(min = 1, max = 4094)))]
    pub vlans: Vec<u16>,
    /// Also allow untagged interfaces when `vlans` is set.
    #[serde(default)]
    pub allow_untagged: bool,
}

/// Privileges beyond the default unprivileged container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPrivileges {
    /// Privileged containers (`unprivileged: false`): root in one is root on the node.
    #[serde(default)]
    pub privileged: bool,
    /// Pods on the clusters' virtual nodes: anyone who may create a Pod in the tenant's
    /// namespaces (a CI bot, every Deployment) then makes containers there, within the tenant's
    /// limits and quota, on its nodes.
    #[serde(default)]
    pub pods: bool,
    /// Features beyond `nesting` (`keyctl`, `fuse`).
    #[serde(default)]
    pub extra_features: bool,
    /// Bind mounts of host paths (`LxcContainer.spec.bindMounts`). The operator must also sign
    /// in as `root@pam` (Proxmox's rule).
    #[serde(default)]
    pub bind_mounts: bool,
    /// With `bindMounts`: the host directories bind mounts must lie in (a path equal to or
    /// below one, compared by whole components: `/srv/a` admits `/srv/a/x`, not `/srv/ab`);
    /// any path when empty. The check is lexical: keep the tenant's own writes out of what
    /// another of its bind mounts names (a symlink it plants under a prefix is followed on the
    /// node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 2, max = 4096), regex(pattern = crate::crd::mounts::ABSOLUTE_PATH_PATTERN)))]
    pub bind_mount_paths: Vec<String>,
    /// Device passthrough (`LxcContainer.spec.devices`); also needs the operator signed in as
    /// `root@pam`.
    #[serde(default)]
    pub devices: bool,
    /// With `devices`: the device nodes (or directories of them, e.g. `/dev/dri`) the tenant
    /// may pass through, compared by whole components; any device when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 6, max = 4096), regex(pattern = crate::crd::mounts::DEVICE_PATH_PATTERN)))]
    pub device_paths: Vec<String>,
    /// High availability (`LxcContainer.spec.highAvailability`): HA resources and rules are
    /// cluster-wide Proxmox configuration (the operator's token needs `Sys.Console` on `/`).
    /// Node affinity must name the tenant's nodes.
    #[serde(default)]
    pub high_availability: bool,
}

/// Upper bounds; a field left out is not limited.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuota {
    /// Containers (`LxcContainer`s with `management: Full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub containers: Option<u32>,
    /// CPU cores, summed over `resources.cores` (1 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub cores: Option<u32>,
    /// Memory, summed over `resources.memory` (512Mi when unset), e.g. `64Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteQuantity>,
    /// Disk, summed over the root filesystem (8Gi when unset) and mount points, e.g. `500Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteQuantity>,
}

/// What the tenant uses and which namespaces it covers now.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxTenantStatus {
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready` (the spec is usable; `False` names what is wrong, e.g. a namespace
    /// claimed by two tenants).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Namespaces matched now, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Usage against the quota, summed over all its namespaces and clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TenantUsage>,
}

/// Usage counted like [`TenantQuota`], as `used/limit` strings when limited (`3/10`), or the
/// plain count.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantUsage {
    /// Containers.
    pub containers: String,
    /// CPU cores.
    pub cores: String,
    /// Memory (MiB).
    pub memory_mib: String,
    /// Disk (GiB).
    pub disk_gib: String,
}
