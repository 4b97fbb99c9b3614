//! The per-container firewall of an `LxcContainer` (`spec.firewall`): options and rules, as
//! Proxmox's `/nodes/{node}/lxc/{vmid}/firewall` API takes them.

use super::common::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The container's firewall.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Firewall {
    /// Enable the firewall for this container.
    #[serde(default)]
    pub enabled: bool,
    /// Policy for incoming traffic no rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_in: Option<FirewallPolicy>,
    /// Policy for outgoing traffic no rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_out: Option<FirewallPolicy>,
    /// Log level for dropped/rejected packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<FirewallLogLevel>,
    /// Rules, in order (first match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<FirewallRule>,
}

/// What a firewall policy does with unmatched packets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FirewallPolicy {
    /// Let the packet through.
    #[serde(rename = "ACCEPT")]
    Accept,
    /// Drop the packet silently.
    #[serde(rename = "DROP")]
    Drop,
    /// Reject the packet.
    #[serde(rename = "REJECT")]
    Reject,
}

/// Firewall log level (Proxmox `log_level_in/out`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FirewallLogLevel {
    /// Emergency.
    Emerg,
    /// Alert.
    Alert,
    /// Critical.
    Crit,
    /// Error.
    Err,
    /// Warning.
    Warning,
    /// Notice.
    Notice,
    /// Informational.
    Info,
    /// Debug.
    Debug,
    /// Logging disabled.
    Nolog,
}

/// Traffic direction of a firewall rule.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Incoming traffic.
    In,
    /// Outgoing traffic.
    Out,
}

/// One firewall rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    /// What to do with matching packets.
    pub action: FirewallPolicy,
    /// Traffic direction.
    pub direction: Direction,
    /// IP protocol name, e.g. `tcp`, `udp`, `icmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 9),
        regex(pattern = r"^(tcp|udp|icmp|icmpv6|ipv6-icmp|sctp|udplite|gre|esp|ah|igmp)$")
    )]
    pub protocol: Option<String>,
    /// Destination port(s): `22`, `80,443` or a range `1000:2000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        regex(pattern = r"^[0-9]{1,5}([:-][0-9]{1,5})?(,[0-9]{1,5}([:-][0-9]{1,5})?)*$")
    )]
    pub port: Option<String>,
    /// Source port(s), same syntax as `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        regex(pattern = r"^[0-9]{1,5}([:-][0-9]{1,5})?(,[0-9]{1,5}([:-][0-9]{1,5})?)*$")
    )]
    pub source_port: Option<String>,
    /// Source address, CIDR, or alias name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z0-9_.:/+-]+$"))]
    pub source: Option<String>,
    /// Destination address, CIDR, or alias name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z0-9_.:/+-]+$"))]
    pub dest: Option<String>,
    /// Only match packets on this interface (`net0`..).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5), regex(pattern = r"^net[0-9]{1,2}$"))]
    pub iface: Option<String>,
    /// Comment shown in Proxmox (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128), regex(pattern = SINGLE_LINE_PATTERN))]
    pub comment: Option<String>,
    /// Whether the rule is active.
    #[serde(default = "default_true")]
    pub enabled: bool,
}
