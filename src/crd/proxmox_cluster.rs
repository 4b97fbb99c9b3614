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
    namespaced,
    doc = "A connection to one Proxmox VE cluster: endpoints, credentials (Secret), TLS and limits; status holds the inventory of nodes and storages.",
    shortname = "pvec",
    category = "proxmox",
    status = "ProxmoxClusterStatus",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.version"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.nodesOnline"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProxmoxClusterSpec {
    /// API endpoints such as `https://pve1.example:8006`, tried in order (failover on connect errors).
    #[schemars(
        length(min = 1, max = 16),
        inner(length(max = 2048), regex(pattern = r"^https://[^\s/?#,]+(:[0-9]{1,5})?/?$"))
    )]
    pub endpoints: Vec<String>,
    /// Secret (same namespace) with `tokenId` + `tokenSecret` (API token `user@realm!name`), or
    /// `username` + `password` (ticket auth).
    pub credentials_ref: LocalObjectRef,
    /// How the server's certificate is checked. Verified against system roots when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Client-side limits protecting Proxmox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// How often the inventory (`/cluster/resources`) is read, e.g. `60s`, `5m`. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub resync_interval: Option<String>,
}

/// TLS verification: at most one of `caSecretRef`, `fingerprint` or `insecureSkipVerify`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("not" = {"anyOf": [
    {"required": ["caSecretRef", "fingerprint"]},
    {"required": ["caSecretRef", "insecureSkipVerify"]},
    {"required": ["fingerprint", "insecureSkipVerify"]}
]}))]
pub struct TlsSpec {
    /// A CA certificate (PEM) in a Secret, trusted in addition to the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// SHA-256 fingerprint of the server's leaf certificate (`AB:CD:...`), as Proxmox shows it;
    /// pins the certificate instead of checking a CA (Proxmox's default self-signed setup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$"))]
    pub fingerprint: Option<String>,
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
    #[schemars(range(min = 1, max = 10_000))]
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
}

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
    /// Seconds since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
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
