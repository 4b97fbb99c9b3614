//! HA resources and rules (`/cluster/ha/resources`, `/cluster/ha/rules`, pve-ha-manager 5.x).

use super::*;

/// One HA resource as `GET /cluster/ha/resources/{sid}` returns it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HaResource {
    /// `ct:100`.
    #[serde(default)]
    pub sid: String,
    /// Requested state: `started`, `stopped`, `enabled`, `disabled` or `ignored`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub state: Option<String>,
    /// Restart tries on the same node after a failed start (default 1).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub max_restart: Option<u32>,
    /// Relocation tries after the restarts are used up (default 1).
    #[serde(default, deserialize_with = "de::opt_u32")]
    pub max_relocate: Option<u32>,
    /// Move back to a node of higher priority when it comes online (default true).
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub failback: Option<bool>,
    /// The comment.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub comment: Option<String>,
    /// Digest of the HA configuration, for updates.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// The settings of an HA resource, for create and update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaResourceParams {
    /// `started`, `stopped`, `disabled` or `ignored`.
    pub state: Option<String>,
    /// See [`HaResource::max_restart`].
    pub max_restart: Option<u32>,
    /// See [`HaResource::max_relocate`].
    pub max_relocate: Option<u32>,
    /// See [`HaResource::failback`].
    pub failback: Option<bool>,
    /// The comment.
    pub comment: Option<String>,
}

/// One HA rule as `GET /cluster/ha/rules/{rule}` returns it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct HaRule {
    /// The rule id.
    #[serde(default)]
    pub rule: String,
    /// `node-affinity` or `resource-affinity`.
    #[serde(default, rename = "type")]
    pub rule_type: String,
    /// Comma-separated resource ids (`ct:100,ct:101`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub resources: Option<String>,
    /// Node-affinity: `node[:priority],...`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub nodes: Option<String>,
    /// Node-affinity: the resources may run only on these nodes.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub strict: Option<bool>,
    /// Resource-affinity: `positive` or `negative`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub affinity: Option<String>,
    /// Whether the rule is disabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub disable: Option<bool>,
    /// The comment.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub comment: Option<String>,
    /// Digest of the rules, for updates.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// A node-affinity rule to create or update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaNodeAffinityParams {
    /// Comma-separated resource ids.
    pub resources: String,
    /// `node[:priority],...`.
    pub nodes: String,
    /// Only these nodes.
    pub strict: bool,
    /// The comment.
    pub comment: Option<String>,
}
