//! Per-container firewall options and rules.

use super::*;

/// `GET …/lxc/{vmid}/firewall/options`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct FirewallOptions {
    /// Firewall enabled.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Allow DHCP.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub dhcp: Option<bool>,
    /// Default IP filter.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub ipfilter: Option<bool>,
    /// MAC filter.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub macfilter: Option<bool>,
    /// Allow NDP.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub ndp: Option<bool>,
    /// Allow router advertisements.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub radv: Option<bool>,
    /// Log level in.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log_level_in: Option<String>,
    /// Log level out.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log_level_out: Option<String>,
    /// `ACCEPT`, `REJECT` or `DROP`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub policy_in: Option<String>,
    /// `ACCEPT`, `REJECT` or `DROP`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub policy_out: Option<String>,
    /// Digest of the firewall config.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// Changes for `PUT …/firewall/options`; unset fields are left alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirewallOptionsUpdate {
    /// Firewall enabled.
    pub enable: Option<bool>,
    /// Allow DHCP.
    pub dhcp: Option<bool>,
    /// Default IP filter.
    pub ipfilter: Option<bool>,
    /// MAC filter.
    pub macfilter: Option<bool>,
    /// Allow NDP.
    pub ndp: Option<bool>,
    /// Allow router advertisements.
    pub radv: Option<bool>,
    /// Log level in.
    pub log_level_in: Option<String>,
    /// Log level out.
    pub log_level_out: Option<String>,
    /// Policy in.
    pub policy_in: Option<String>,
    /// Policy out.
    pub policy_out: Option<String>,
    /// Keys to reset to default.
    pub delete: Vec<String>,
    /// Only apply if the digest still matches.
    pub digest: Option<String>,
}

/// A firewall rule as listed by `GET …/firewall/rules`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct FirewallRule {
    /// Position (0-based).
    #[serde(default, deserialize_with = "de::u32_lenient")]
    pub pos: u32,
    /// `in`, `out`, `forward` or `group`.
    #[serde(default, rename = "type")]
    pub rule_type: String,
    /// `ACCEPT`, `DROP`, `REJECT` or a security group name.
    #[serde(default)]
    pub action: String,
    /// Enabled flag.
    #[serde(default, deserialize_with = "de::opt_bool")]
    pub enable: Option<bool>,
    /// Source address/alias/ipset.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub source: Option<String>,
    /// Destination address/alias/ipset.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub dest: Option<String>,
    /// Protocol.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub proto: Option<String>,
    /// Destination port(s).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub dport: Option<String>,
    /// Source port(s).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub sport: Option<String>,
    /// Interface (`net0`).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub iface: Option<String>,
    /// Macro name.
    #[serde(default, rename = "macro", deserialize_with = "de::opt_string")]
    pub macro_name: Option<String>,
    /// Comment.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub comment: Option<String>,
    /// Log level.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub log: Option<String>,
    /// ICMP type.
    #[serde(default, rename = "icmp-type", deserialize_with = "de::opt_string")]
    pub icmp_type: Option<String>,
    /// IP version (4/6).
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub ipversion: Option<u64>,
    /// Digest.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub digest: Option<String>,
}

/// Parameters to create (`POST …/firewall/rules`) or update (`PUT …/rules/{pos}`) a rule.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirewallRuleParams {
    /// `in`, `out`, `forward` or `group` (required on create).
    pub rule_type: Option<String>,
    /// Action (required on create).
    pub action: Option<String>,
    /// Enabled flag.
    pub enable: Option<bool>,
    /// Source.
    pub source: Option<String>,
    /// Destination.
    pub dest: Option<String>,
    /// Protocol.
    pub proto: Option<String>,
    /// Destination port(s).
    pub dport: Option<String>,
    /// Source port(s).
    pub sport: Option<String>,
    /// Interface.
    pub iface: Option<String>,
    /// Macro.
    pub macro_name: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Log level.
    pub log: Option<String>,
    /// ICMP type.
    pub icmp_type: Option<String>,
    /// Create: insert at this position. Update: not used (see `moveto`).
    pub pos: Option<u32>,
    /// Update only: move the rule to this position.
    pub moveto: Option<u32>,
    /// Update only: keys to clear.
    pub delete: Vec<String>,
    /// Only apply if the digest still matches.
    pub digest: Option<String>,
}
