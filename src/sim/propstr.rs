//! Property strings, sizes, tags and UPIDs, implemented independently of `crate::pve`
//! (so a bug in the client cannot be cancelled out by the same bug here).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::schema::{check_prop, ParamErrors};

/// `parse_boolean` of JSONSchema.pm.
pub(crate) fn parse_boolean(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn default_key(fmt: &Map<String, Value>) -> Option<&str> {
    fmt.iter()
        .find(|(_, s)| s.get("default_key").and_then(Value::as_i64) == Some(1))
        .map(|(k, _)| k.as_str())
}

fn is_bool(fmt: &Map<String, Value>, k: &str) -> bool {
    fmt.get(k).and_then(|s| s.get("type")).and_then(Value::as_str) == Some("boolean")
}

/// Split a property string into key/value pairs (structure only, no value checks).
pub(crate) fn parse_raw(fmt: &Map<String, Value>, data: &str) -> Result<BTreeMap<String, String>, String> {
    let mut res = BTreeMap::new();
    let dk = default_key(fmt);
    let mut default_used = false;
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        if let Some((k, v)) = part.split_once('=').filter(|(k, v)| !k.is_empty() && !v.is_empty()) {
            if res.contains_key(k) {
                return Err(format!("duplicate key in comma-separated list property: {k}\n"));
            }
            if !fmt.contains_key(k) {
                return Err(format!("invalid key in comma-separated list property: {k}\n"));
            }
            let v = if is_bool(fmt, k) {
                parse_boolean(v)
                    .map(|b| if b { "1" } else { "0" }.to_string())
                    .unwrap_or(v.to_string())
            } else {
                v.to_string()
            };
            res.insert(k.to_string(), v);
        } else if !part.contains('=') {
            let Some(dk) = dk else {
                return Err("value without key, but schema does not define a default key\n".into());
            };
            if default_used || res.contains_key(dk) {
                return Err(format!("duplicate key in comma-separated list property: {dk}\n"));
            }
            default_used = true;
            res.insert(dk.to_string(), part.to_string());
        } else {
            return Err("missing key in comma-separated list property\n".into());
        }
    }
    Ok(res)
}

/// `parse_property_string` with the sub-key checks; errors read like Proxmox's
/// (`format error\nnet0.ip: invalid format - ...\n`).
pub(crate) fn parse_checked(
    fmt: &Map<String, Value>,
    data: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, String> {
    let res = parse_raw(fmt, data)?;
    let mut errors = ParamErrors::new();
    for (k, s) in fmt {
        let sub = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        check_prop(
            res.get(k).map(|v| Value::String(v.clone())).as_ref(),
            s,
            &sub,
            &mut errors,
        );
    }
    if errors.is_empty() {
        Ok(res)
    } else {
        let mut msg = "format error\n".to_string();
        for (k, v) in errors {
            msg.push_str(&format!("{k}: {v}\n"));
        }
        Err(msg)
    }
}

/// `print_property_string`: default key first (without `key=`), then required keys,
/// then the rest alphabetically.
pub(crate) fn print(fmt: &Map<String, Value>, data: &BTreeMap<String, String>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut done = BTreeSet::new();
    if let Some(dk) = default_key(fmt) {
        if let Some(v) = data.get(dk) {
            out.push(v.clone());
            done.insert(dk.to_string());
        }
    }
    let required = |k: &str| {
        fmt.get(k)
            .is_some_and(|s| s.get("optional").and_then(Value::as_i64).unwrap_or(0) == 0)
    };
    for (k, v) in data.iter().filter(|(k, _)| required(k) && !done.contains(*k)) {
        out.push(format!("{k}={v}"));
    }
    for (k, v) in data {
        if done.contains(k) || required(k) {
            continue;
        }
        out.push(format!("{k}={v}"));
    }
    out.join(",")
}

/// `split_list` of ParseUtils.pm.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    if s.contains('\0') {
        return s.split('\0').map(str::to_string).collect();
    }
    s.replace([',', ';'], " ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `parse_size`: `8G` / `512M` / `1.5T` / plain bytes.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let mul: u64 = match unit {
        "" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    Some((n * mul as f64) as u64)
}

/// `format_size`: the largest unit that divides the size exactly.
pub(crate) fn format_size(size: u64) -> String {
    let units = ["", "K", "M", "G", "T"];
    let mut v = size;
    let mut u = 0;
    while u < 4 && v > 0 && v.is_multiple_of(1024) {
        v /= 1024;
        u += 1;
    }
    format!("{v}{}", units[u])
}

/// Normalize tags like PVE: split on `;`, `,` and spaces, lower-case, de-duplicate, sort, join with `;`.
pub(crate) fn normalize_tags(s: &str) -> String {
    let set: BTreeSet<String> = split_list(s).into_iter().map(|t| t.to_lowercase()).collect();
    set.into_iter().collect::<Vec<_>>().join(";")
}

/// A parsed task id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upid {
    pub node: String,
    pub pid: u32,
    pub pstart: u32,
    pub starttime: u32,
    pub typ: String,
    pub id: String,
    pub user: String,
}

impl std::fmt::Display for Upid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UPID:{}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node, self.pid, self.pstart, self.starttime, self.typ, self.id, self.user
        )
    }
}

impl Upid {
    /// Decode with the regex of pve-common `UPID.pm`.
    pub(crate) fn parse(s: &str) -> Option<Upid> {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        let re = RE.get_or_init(|| {
            regex::Regex::new(
                r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$",
            )
            .unwrap()
        });
        let c = re.captures(s)?;
        Some(Upid {
            node: c[1].to_string(),
            pid: u32::from_str_radix(&c[3], 16).ok()?,
            pstart: u32::from_str_radix(&c[4], 16).ok()?,
            starttime: u32::from_str_radix(&c[5], 16).ok()?,
            typ: c[6].to_string(),
            id: c[7].to_string(),
            user: c[8].to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip_like_pve() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(format_size(8 << 30), "8G");
        assert_eq!(format_size(1536 << 20), "1536M");
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn tags_are_lowercased_deduplicated_sorted() {
        assert_eq!(normalize_tags("Web, prod;web  k8s-1"), "k8s-1;prod;web");
    }

    #[test]
    fn upid_formats_and_parses() {
        let u = Upid {
            node: "pve1".into(),
            pid: 0x1234,
            pstart: 0xabcd,
            starttime: 0x6650A1B2,
            typ: "vzcreate".into(),
            id: "100".into(),
            user: "root@pam!op".into(),
        };
        let s = u.to_string();
        assert_eq!(s, "UPID:pve1:00001234:0000ABCD:6650A1B2:vzcreate:100:root@pam!op:");
        assert_eq!(Upid::parse(&s), Some(u));
    }
}
