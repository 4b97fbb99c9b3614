//! `ProxmoxCluster`: a connection to one Proxmox VE cluster.

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How to reach and authenticate to one Proxmox VE cluster.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "ProxmoxCluster",
    doc = "A connection to one Proxmox VE cluster (cluster-scoped, owned by the platform admin): endpoints, credentials (a Secret in the operator's namespace), TLS, limits and tenancy; status holds the inventory of nodes and storages.",
    shortname = "pvec",
    category = "proxmox",
    status = "ProxmoxClusterStatus",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Tenancy","type":"string","jsonPath":".spec.tenancy"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.nodesOnline"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Privileges","type":"string","jsonPath":".status.conditions[?(@.type==\"PrivilegesMissing\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxClusterSpec {
    /// API endpoints such as `https://pve1.example:8006`, tried in order (failover on connect and
    /// TLS errors). `https` only; no user info (`user:password@`): credentials come from the Secret.
    #[schemars(
        length(min = 1, max = 16),
        inner(length(max = 2048), regex(pattern = r"^https://[^\s/?#,@]+(:[0-9]{1,5})?/?$"))
    )]
    pub endpoints: Vec<String>,
    /// Secret in the operator's own namespace (the chart's release namespace) with `tokenId` +
    /// `tokenSecret` (API token `user@realm!name`), or `username` + `password` (ticket auth).
    /// Tenants never name it: only whoever may create `ProxmoxCluster`s (the admin) does.
    pub credentials_ref: LocalObjectRef,
    /// How the server's certificate is checked. Verified against system roots when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Client-side limits protecting Proxmox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// How often the inventory (`/cluster/resources`) is read, e.g. `60s`, `5m`. Default `60s`.
    /// Whole seconds, minutes or hours; the operator keeps it within 1s..24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = RESYNC_PATTERN))]
    pub resync_interval: Option<String>,
    /// Which namespaces may use this cluster: `Open` (default, the single-team setup) lets every
    /// namespace use it, with the limits of a `ProxmoxTenant` that matches the namespace if one
    /// does; `Restricted` only namespaces matched by a `ProxmoxTenant` naming this cluster.
    #[serde(default)]
    pub tenancy: Tenancy,
    /// Proxmox nodes in maintenance: no new container is placed there, and the operator's
    /// containers on them are migrated to other nodes (running ones with a restart migration,
    /// as Proxmox requires), within the task limits. Containers pinned there with `spec.node`
    /// are reported and stay, unless `movePinned`. Remove the entry to end the maintenance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub maintenance: Vec<NodeMaintenance>,
    /// Run Kubernetes Pods on this cluster: one Kubernetes Node per online Proxmox node (tainted
    /// `pve.lxc.dev/virtual-node=true:NoSchedule`), and every Pod bound to one of them becomes an
    /// LXC application container there. Needs the operator's `--virtual-nodes` flag (the chart's
    /// `virtualNodes.enabled`). Pods of namespaces the cluster's tenancy does not allow fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_nodes: Option<VirtualNodes>,
}

/// How the Pods on a cluster's virtual nodes are run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNodes {
    /// Prefix of the Node names: a Node is called `<prefix><proxmox node>` (lowercased).
    /// Default: the cluster's name and a dash, e.g. `prod-pve1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[-a-z0-9])?$"))]
    pub name_prefix: Option<String>,
    /// Storage of the Pods' root filesystems (content `rootdir`). Default `local-lvm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: Option<String>,
    /// File-based storage (content `vztmpl`) the Pods' images are pulled into. Default `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub image_storage: Option<String>,
    /// Bridge of the Pods' network interface (`eth0`, DHCP from the host). Default `vmbr0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15), regex(pattern = BRIDGE_PATTERN))]
    pub bridge: Option<String>,
    /// Pods a Node accepts (its `pods` capacity). Default 110, as a kubelet's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_pods: Option<u32>,
    /// Which namespaces' Pods run: `Tenants` (default) only those of a `ProxmoxTenant` that
    /// allows it (`spec.privileges.pods`), since whoever may create a Pod there then makes
    /// containers on Proxmox; `All` also every namespace no tenant covers, where the cluster's
    /// `tenancy: Open` lets them use it (the single-team setup, said explicitly). Other Pods
    /// stay Pending with the reason.
    #[serde(default)]
    pub namespaces: VirtualNodeNamespaces,
}

/// Which namespaces a cluster's virtual nodes serve.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum VirtualNodeNamespaces {
    /// Only namespaces of a `ProxmoxTenant` whose `privileges.pods` is true.
    #[default]
    Tenants,
    /// Also every namespace without a tenant, where the cluster is `Open`.
    All,
}

/// One node in maintenance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeMaintenance {
    /// The node.
    #[schemars(length(max = 63), regex(pattern = NODE_PATTERN))]
    pub node: String,
    /// Also move containers whose `spec.node` names it (they go back when maintenance ends).
    #[serde(default)]
    pub move_pinned: bool,
}

/// How far a node's maintenance has come.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// The node.
    pub node: String,
    /// The operator's containers still on it (templates are not moved).
    pub containers_left: u32,
}

/// Annotation that makes a `ProxmoxCluster` the one used by objects without `spec.clusterRef`
/// (like `storageclass.kubernetes.io/is-default-class`); without it, the one named `default`.
pub const DEFAULT_CLUSTER_ANNOTATION: &str = "pve.lxc.dev/is-default-cluster";

/// Who may use a `ProxmoxCluster`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Tenancy {
    /// Every namespace (a matching `ProxmoxTenant` still applies its limits).
    #[default]
    Open,
    /// Only namespaces matched by a `ProxmoxTenant` that names this cluster.
    Restricted,
}

/// Shortest inventory interval the operator uses, whatever `resyncInterval` says.
pub const MIN_RESYNC: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest inventory interval the operator uses.
pub const MAX_RESYNC: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Highest `limits.requestsPerSecond` (the schema's maximum, and the operator's clamp).
pub const MAX_REQUESTS_PER_SECOND: u32 = 1000;

impl ProxmoxClusterSpec {
    /// A parsed `resyncInterval` kept within [`MIN_RESYNC`]..=[`MAX_RESYNC`] (objects stored
    /// before the schema had bounds, or written around it, cannot make the observer spin).
    pub fn bounded_resync(d: std::time::Duration) -> std::time::Duration {
        d.clamp(MIN_RESYNC, MAX_RESYNC)
    }
}

impl Limits {
    /// `requestsPerSecond` (default 20) kept within 1..=[`MAX_REQUESTS_PER_SECOND`].
    pub fn bounded_requests_per_second(&self) -> u32 {
        self.requests_per_second.unwrap_or(20).clamp(1, MAX_REQUESTS_PER_SECOND)
    }
}

impl TlsSpec {
    /// The pinned fingerprints, `fingerprint` and `fingerprints` together, comma-separated
    /// (the form `pve::TlsMode::Fingerprint` takes); `None` when neither is set.
    pub fn pinned_fingerprints(&self) -> Option<String> {
        let all: Vec<&str> = self
            .fingerprint
            .iter()
            .chain(self.fingerprints.iter())
            .map(String::as_str)
            .collect();
        (!all.is_empty()).then(|| all.join(","))
    }
}

/// TLS verification: at most one of `caSecretRef`, pinned fingerprints (`fingerprint` and/or
/// `fingerprints`) or `insecureSkipVerify`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("not" = {"anyOf": [
    {"required": ["caSecretRef", "fingerprint"]},
    {"required": ["caSecretRef", "fingerprints"]},
    {"required": ["caSecretRef", "insecureSkipVerify"]},
    {"required": ["fingerprint", "insecureSkipVerify"]},
    {"required": ["fingerprints", "insecureSkipVerify"]}
]}))]
pub struct TlsSpec {
    /// A CA certificate (PEM) in a Secret of the operator's namespace, trusted in addition to the
    /// system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// SHA-256 fingerprint of the server's leaf certificate (`AB:CD:...`), as Proxmox shows it;
    /// pins the certificate instead of checking a CA (Proxmox's default self-signed setup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 95), regex(pattern = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$"))]
    pub fingerprint: Option<String>,
    /// More pinned fingerprints: one per node when each Proxmox node has its own certificate
    /// (the default), so failover to another endpoint keeps pinning. Any listed certificate
    /// is accepted at any endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(max = 95), regex(pattern = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$"))
    )]
    pub fingerprints: Vec<String>,
    /// Skip verification entirely. Explicit opt-in, surfaced as a condition (`InsecureTLS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// Client-side limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Tasks (create, start, clone, ...) started at once per node. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent_tasks_per_node: Option<u32>,
    /// API requests per second to this cluster. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub requests_per_second: Option<u32>,
}

/// Observed state of the Proxmox cluster: version and inventory.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxClusterStatus {
    /// Proxmox VE version, e.g. `9.1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Online nodes out of all, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_online: Option<String>,
    /// When the inventory was last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Nodes of the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeStatus>,
    /// Storages per node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub storages: Vec<StorageStatus>,
    /// Nodes in maintenance and the operator's containers still on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance: Vec<MaintenanceStatus>,
    /// Privileges the token lacks for what the objects using this cluster do (read with
    /// `GET /access/permissions` on connect, when those objects change, and every few minutes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_privileges: Vec<MissingPrivilege>,
}

/// One privilege the token lacks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MissingPrivilege {
    /// What needs it: `inventory`, `containers`, `clones`, `ociImages`, `templates`,
    /// `backups`, `snapshots`.
    pub feature: String,
    /// The Proxmox privilege, e.g. `VM.Backup`.
    pub privilege: String,
    /// The ACL path it is needed on, e.g. `/vms` or `/storage/local`.
    pub path: String,
}

/// Condition type on a `ProxmoxCluster`: True when the token lacks privileges that the objects
/// using the cluster need (`status.missingPrivileges` lists them). It does not make the cluster
/// not Ready.
pub const CONDITION_PRIVILEGES_MISSING: &str = "PrivilegesMissing";

/// One Proxmox node as last seen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node name.
    pub name: String,
    /// Whether the node is online.
    pub online: bool,
    /// CPU usage as a fraction of its CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used: Option<u64>,
    /// Memory in total, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_total: Option<u64>,
    /// CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Seconds since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// Bridges a container's `network[].bridge` may name on this node (Linux and OVS bridges,
    /// from the node's network configuration), e.g. `vmbr0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<String>,
}

/// One storage on one node as last seen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// Node name.
    pub node: String,
    /// Storage id.
    pub name: String,
    /// Storage type, e.g. `dir`, `lvmthin`, `nfs`, `pbs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Content types, e.g. `rootdir`, `vztmpl`, `backup`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<String>,
    /// Whether all nodes share it.
    #[serde(default)]
    pub shared: bool,
    /// Bytes used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Bytes in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
}
