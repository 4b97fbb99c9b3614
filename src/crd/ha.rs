//! High availability of an `LxcContainer`: a Proxmox HA resource (`ct:<vmid>`) with its
//! restart and relocation policy, and node affinity as a Proxmox HA rule (PVE 9 replaced HA
//! groups with rules).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Proxmox node names.
const NODE_PATTERN: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$";

/// `spec.highAvailability`: Proxmox's HA stack keeps the container in `spec.state`, restarts it
/// when it fails and recovers it on another node when its node fails. While HA manages it, the
/// operator changes its power state only through HA (as Proxmox requires) and follows where HA
/// moves it, never moving it back: `spec.node` is then only where it is created. Removing the
/// field removes the HA resource (and its rule); the container stays as it is.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HighAvailability {
    /// `Managed` (default): HA keeps the container started (`spec.state: Running`) or stopped.
    /// `Ignored`: HA leaves it alone for now (Proxmox state `ignored`, e.g. for maintenance by
    /// hand); the operator then starts and stops it itself.
    #[serde(default)]
    pub mode: HaMode,
    /// Restarts on the same node after a failed start before HA relocates it (Proxmox
    /// `max_restart`, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_restart: Option<u32>,
    /// Relocations to another node after the restarts are used up (Proxmox `max_relocate`,
    /// default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_relocate: Option<u32>,
    /// Move back to a node of higher priority in `nodeAffinity` when it comes online again
    /// (Proxmox `failback`, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<bool>,
    /// The nodes the container should run on: a Proxmox HA rule of type `node-affinity`
    /// (`k8s-ct<vmid>`), made and kept by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<HaNodeAffinity>,
}

/// Whether HA manages the container now.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum HaMode {
    /// HA keeps the container in `spec.state`.
    #[default]
    Managed,
    /// HA leaves it alone (Proxmox `ignored`).
    Ignored,
}

/// Node affinity of an HA-managed container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HaNodeAffinity {
    /// The nodes, with priorities: HA runs the container on an online node of the highest
    /// priority present.
    #[schemars(length(min = 1, max = 64))]
    pub nodes: Vec<HaNode>,
    /// Only these nodes: when none of them is online the container does not run (Proxmox
    /// `strict`). Otherwise HA may use any node when none of them is online.
    #[serde(default)]
    pub strict: bool,
}

/// One node of a node affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HaNode {
    /// The Proxmox node.
    #[schemars(length(min = 1, max = 63), regex(pattern = NODE_PATTERN))]
    pub name: String,
    /// Higher runs first; nodes of equal priority share the load (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub priority: Option<u32>,
}

/// `status.highAvailability`: the HA resource the operator manages for this container.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HighAvailabilityStatus {
    /// The HA resource id, `ct:<vmid>`.
    pub resource: String,
    /// The state HA reports (inventory `hastate`: `started`, `stopped`, `starting`,
    /// `migrate`, `fence`, `recovery`, `error`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The node-affinity rule the operator keeps for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}
