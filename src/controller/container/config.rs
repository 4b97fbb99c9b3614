//! A container's Proxmox config as the planning code compares it: one changed key, and the
//! config as strings (shared by `plan` and `host_mounts` without either importing the other).

use crate::pve::LxcConfig;
use std::collections::BTreeMap;

/// One value that differs between spec and Proxmox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Proxmox config key.
    pub key: String,
    /// The value in Proxmox, if any.
    pub from: Option<String>,
    /// The value the spec asks for (`None` = delete the key).
    pub to: Option<String>,
}

/// The config as `key → string` (numbers and booleans as Proxmox prints them).
pub fn raw_strings(cfg: &LxcConfig) -> BTreeMap<&str, String> {
    cfg.raw
        .iter()
        .filter_map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                _ => return None,
            };
            Some((k.as_str(), s))
        })
        .collect()
}
