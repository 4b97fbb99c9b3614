//! The scalar keys a spec manages in a container's Proxmox config, typed (pure).
//!
//! [`ManagedConfig`] is built once from the spec ([`super::settings::validate`]); `None` (or an
//! empty list) is a key the spec leaves alone. Its encoding to Proxmox's parameters lives in one
//! place ([`ManagedConfig::to_params`], and the create call's typed fields in
//! [`ManagedConfig::create_params`]), and so does its comparison with the container's config
//! ([`ManagedConfig::drift`]): each value Proxmox holds is read as its field's type, and a value
//! that does not read as that type is drift said as such ([`Drift::unreadable`]), never taken
//! as absent.

use crate::crd::lxc_container::ConsoleMode;
use crate::pve::props::{self, Features, Startup};
use crate::pve::{LxcConfig, LxcCreateParams};
use serde_json::Value;
use std::collections::BTreeMap;

/// The scalar config keys the spec manages, as typed values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManagedConfig {
    /// `hostname` (always managed: `metadata.name` when the spec has none).
    pub hostname: String,
    /// `description`, trailing whitespace removed (Proxmox drops it).
    pub description: Option<String>,
    /// `cores`.
    pub cores: Option<u32>,
    /// `cpulimit` (finite, 0..8192).
    pub cpulimit: Option<f64>,
    /// `cpuunits`.
    pub cpuunits: Option<u32>,
    /// `memory`, MiB.
    pub memory_mib: Option<u64>,
    /// `swap`, MiB.
    pub swap_mib: Option<u64>,
    /// `features` (only when at least one feature is set).
    pub features: Option<Features>,
    /// `onboot`.
    pub onboot: Option<bool>,
    /// `startup` (only when at least one of order, up, down is set).
    pub startup: Option<Startup>,
    /// `protection`.
    pub protection: Option<bool>,
    /// `nameserver`: the servers, in order (empty: not managed).
    pub nameservers: Vec<String>,
    /// `searchdomain`.
    pub searchdomain: Option<String>,
    /// `cmode`.
    pub cmode: Option<ConsoleMode>,
    /// `tty` (0..6).
    pub tty: Option<u8>,
    /// `timezone`.
    pub timezone: Option<String>,
    /// `entrypoint` (from `spec.app`).
    pub entrypoint: Option<String>,
    /// `env` (from `spec.app`, merged with the container's own variables).
    pub env: Option<String>,
}

/// How a text value compares with Proxmox's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextRule {
    /// Byte for byte.
    Exact,
    /// ASCII case ignored (host and domain names).
    NoCase,
    /// Proxmox's trailing whitespace ignored (`description`).
    TrimEnd,
}

/// One managed value, typed.
#[derive(Debug, Clone, PartialEq)]
enum Want<'a> {
    Text(&'a str, TextRule),
    Words(&'a [String]),
    Int(u64),
    Float(f64),
    Flag(bool),
    Features(&'a Features),
    Startup(&'a Startup),
    Cmode(ConsoleMode),
}

/// One managed key whose value in Proxmox is not the spec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Proxmox config key.
    pub key: &'static str,
    /// Proxmox's value as it stands (its text), `None` when the key is absent.
    pub from: Option<String>,
    /// What Proxmox's value should have been when it does not read as the key's type (e.g.
    /// `a whole number`): it is reported as unreadable, and replaced like any other drift.
    pub unreadable: Option<&'static str>,
    /// The spec's value, encoded.
    pub to: String,
}

impl ManagedConfig {
    /// The managed keys with their typed values, in key order (the order of `to_params`).
    fn fields(&self) -> Vec<(&'static str, Want<'_>)> {
        fn text(v: &Option<String>, rule: TextRule) -> Option<Want<'_>> {
            v.as_deref().map(|s| Want::Text(s, rule))
        }
        let int = |v: Option<u64>| v.map(Want::Int);
        let words = (!self.nameservers.is_empty()).then_some(Want::Words(&self.nameservers));
        let fields = [
            ("cmode", self.cmode.map(Want::Cmode)),
            ("cores", int(self.cores.map(u64::from))),
            ("cpulimit", self.cpulimit.map(Want::Float)),
            ("cpuunits", int(self.cpuunits.map(u64::from))),
            ("description", text(&self.description, TextRule::TrimEnd)),
            ("entrypoint", text(&self.entrypoint, TextRule::Exact)),
            ("env", text(&self.env, TextRule::Exact)),
            ("features", self.features.as_ref().map(Want::Features)),
            ("hostname", Some(Want::Text(&self.hostname, TextRule::NoCase))),
            ("memory", int(self.memory_mib)),
            ("nameserver", words),
            ("onboot", self.onboot.map(Want::Flag)),
            ("protection", self.protection.map(Want::Flag)),
            ("searchdomain", text(&self.searchdomain, TextRule::NoCase)),
            ("startup", self.startup.as_ref().map(Want::Startup)),
            ("swap", int(self.swap_mib)),
            ("timezone", text(&self.timezone, TextRule::Exact)),
            ("tty", int(self.tty.map(u64::from))),
        ];
        fields.into_iter().filter_map(|(k, w)| Some((k, w?))).collect()
    }

    /// The managed keys as Proxmox's config parameters (`PUT …/config` `set`), e.g.
    /// `memory → "1024"`, `onboot → "1"`, `cpulimit → "1.5"`.
    pub fn to_params(&self) -> BTreeMap<String, String> {
        self.fields()
            .into_iter()
            .map(|(k, w)| (k.to_string(), w.encode()))
            .collect()
    }

    /// The managed keys whose values in `cfg` differ from the spec's (or do not read as their
    /// type), in key order.
    pub fn drift(&self, cfg: &LxcConfig) -> Vec<Drift> {
        self.fields()
            .into_iter()
            .filter_map(|(key, want)| {
                let have = cfg.raw.get(key).filter(|v| !v.is_null());
                let (same, unreadable) = match have.map(|h| want.same_as(h)) {
                    None => (false, None),
                    Some(Ok(same)) => (same, None),
                    Some(Err(expected)) => (false, Some(expected)),
                };
                (!same).then(|| Drift {
                    key,
                    from: have.map(text_of),
                    unreadable,
                    to: want.encode(),
                })
            })
            .collect()
    }

    /// The create call (`POST /nodes/{node}/lxc`) with the managed keys it takes set, from
    /// `ostemplate` at `vmid` (the console, `entrypoint` and `env` are set by the first update).
    pub fn create_params(&self, vmid: u32, ostemplate: &str) -> LxcCreateParams {
        LxcCreateParams {
            vmid,
            ostemplate: ostemplate.to_string(),
            hostname: Some(self.hostname.clone()),
            memory: self.memory_mib,
            swap: self.swap_mib,
            cores: self.cores,
            cpulimit: self.cpulimit,
            cpuunits: self.cpuunits,
            features: self.features.as_ref().map(|f| Want::Features(f).encode()),
            description: self.description.clone(),
            onboot: self.onboot,
            startup: self.startup.as_ref().map(Startup::encode),
            nameserver: (!self.nameservers.is_empty()).then(|| self.nameservers.join(" ")),
            searchdomain: self.searchdomain.clone(),
            protection: self.protection,
            timezone: self.timezone.clone(),
            ..Default::default()
        }
    }
}

impl Want<'_> {
    /// The value as Proxmox's API takes it.
    fn encode(&self) -> String {
        match self {
            Want::Text(s, _) => s.to_string(),
            Want::Words(w) => w.join(" "),
            Want::Int(n) => n.to_string(),
            Want::Float(f) => fmt_f64(*f),
            Want::Flag(b) => if *b { "1" } else { "0" }.to_string(),
            // checked when the config was built: the spec's features always encode
            Want::Features(f) => f.encode().unwrap_or_default(),
            Want::Startup(s) => s.encode(),
            Want::Cmode(m) => cmode_name(*m).to_string(),
        }
    }

    /// Whether Proxmox's value `have` is this one, or what it should have been when it does not
    /// read as this value's type.
    fn same_as(&self, have: &Value) -> Result<bool, &'static str> {
        Ok(match self {
            Want::Text(want, rule) => {
                let have = read_text(have).ok_or("text")?;
                match rule {
                    TextRule::Exact => have == *want,
                    TextRule::NoCase => have.eq_ignore_ascii_case(want),
                    TextRule::TrimEnd => have.trim_end() == *want,
                }
            }
            Want::Words(want) => read_text(have)
                .ok_or("a list of addresses")?
                .split_whitespace()
                .eq(want.iter().map(String::as_str)),
            Want::Int(want) => read_int(have).ok_or("a whole number")? == *want,
            Want::Float(want) => read_float(have).ok_or("a number")? == *want,
            Want::Flag(want) => read_flag(have).ok_or("0 or 1")? == *want,
            Want::Features(want) => {
                let have = read_text(have).ok_or("a features list")?;
                Features::parse(&have).map_err(|_| "a features list")? == **want
            }
            Want::Startup(want) => {
                let have = read_text(have).ok_or("order=N,up=N,down=N")?;
                Startup::parse(&have).map_err(|_| "order=N,up=N,down=N")? == **want
            }
            Want::Cmode(want) => {
                let have = read_text(have).ok_or("tty, console or shell")?;
                let mode = [ConsoleMode::Tty, ConsoleMode::Console, ConsoleMode::Shell]
                    .into_iter()
                    .find(|m| cmode_name(*m) == have)
                    .ok_or("tty, console or shell")?;
                mode == *want
            }
        })
    }
}

/// Proxmox's name of a console mode.
fn cmode_name(m: ConsoleMode) -> &'static str {
    match m {
        ConsoleMode::Tty => "tty",
        ConsoleMode::Console => "console",
        ConsoleMode::Shell => "shell",
    }
}

/// A value as text: strings as they are, numbers and booleans as Proxmox prints them; lists,
/// objects and null are not text.
fn read_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

/// The text of Proxmox's value, as a change reports it.
fn text_of(v: &Value) -> String {
    read_text(v).unwrap_or_else(|| v.to_string())
}

/// A whole non-negative number, sent as a number or as its digits.
fn read_int(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A finite number (Proxmox never sends NaN or infinities: a string saying so is unreadable).
fn read_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// A flag: a boolean, 0 or 1, or Proxmox's words for them (`on`, `yes`, `true`, ...).
fn read_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => props::parse_bool(s),
        _ => None,
    }
}

/// Formats a float the way Proxmox prints it (`1.5`, `2`).
pub fn fmt_f64(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
#[path = "managed_tests.rs"]
mod tests;
