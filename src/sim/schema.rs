//! The trimmed official PVE 9.1 API schema (`schema-lxc.json`), path routing, and
//! parameter validation with Proxmox's own error texts (pve-common `JSONSchema.pm`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value};

use super::propstr;

/// The schema file, trimmed by `src/sim/trim_schema.py` to the endpoints served.
const SCHEMA_JSON: &str = include_str!("schema-lxc.json");

/// Maximum index (exclusive) of the `name[n]` option families (pve-container `LXC/Config.pm`).
fn indexed_max(prefix: &str) -> Option<usize> {
    match prefix {
        "net" => Some(32),
        "mp" | "unused" | "dev" => Some(256),
        _ => None,
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Param(String),
}

/// One method of one schema path.
#[derive(Debug, Clone)]
pub(crate) struct MethodInfo {
    /// `proxyto` of the schema (`node` for node-bound calls).
    pub proxyto: Option<String>,
    /// `allowtoken` (0 = needs a ticket).
    pub allowtoken: bool,
    /// The `parameters` object (properties, additionalProperties).
    pub params: Value,
}

/// One schema path with its methods.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Path template as in the schema, e.g. `/nodes/{node}/lxc/{vmid}/config`.
    pub template: String,
    segs: Vec<Seg>,
    /// Methods by upper-case name.
    pub methods: HashMap<String, MethodInfo>,
}

/// The loaded schema.
#[derive(Debug)]
pub(crate) struct Schema {
    routes: Vec<Route>,
}

/// The shared parsed schema.
pub(crate) fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(Schema::load)
}

impl Schema {
    fn load() -> Schema {
        let v: Value = serde_json::from_str(SCHEMA_JSON).expect("embedded schema is JSON");
        let mut routes = Vec::new();
        for ep in v["endpoints"].as_array().expect("endpoints") {
            let template = ep["path"].as_str().unwrap_or_default().to_string();
            let segs = template
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with('{') && s.ends_with('}') {
                        Seg::Param(s[1..s.len() - 1].to_string())
                    } else {
                        Seg::Lit(s.to_string())
                    }
                })
                .collect();
            let mut methods = HashMap::new();
            if let Some(info) = ep["info"].as_object() {
                for (m, i) in info {
                    methods.insert(
                        m.clone(),
                        MethodInfo {
                            proxyto: i["proxyto"].as_str().map(str::to_string),
                            allowtoken: i["allowtoken"].as_i64().unwrap_or(1) != 0,
                            params: i["parameters"].clone(),
                        },
                    );
                }
            }
            routes.push(Route {
                template,
                segs,
                methods,
            });
        }
        Schema { routes }
    }

    /// Find the route for decoded path segments; returns the route and the path parameters.
    /// Literal segments win over parameters; a trailing `{volume}` absorbs the rest of the path.
    pub(crate) fn find(&self, segs: &[String]) -> Option<(&Route, BTreeMap<String, String>)> {
        let mut best: Option<(usize, &Route, BTreeMap<String, String>)> = None;
        for r in &self.routes {
            let n = r.segs.len();
            let absorbs = matches!(r.segs.last(), Some(Seg::Param(p)) if p == "volume");
            if !(segs.len() == n || (absorbs && segs.len() > n)) {
                continue;
            }
            let mut params = BTreeMap::new();
            let mut lits = 0;
            let mut ok = true;
            for (i, s) in r.segs.iter().enumerate() {
                match s {
                    Seg::Lit(l) => {
                        if &segs[i] != l {
                            ok = false;
                            break;
                        }
                        lits += 1;
                    }
                    Seg::Param(p) => {
                        let v = if i == n - 1 {
                            segs[i..].join("/")
                        } else {
                            segs[i].clone()
                        };
                        params.insert(p.clone(), v);
                    }
                }
            }
            if ok && best.as_ref().is_none_or(|b| lits > b.0) {
                best = Some((lits, r, params));
            }
        }
        best.map(|(_, r, p)| (r, p))
    }

    /// The property schema of a config key (`net3` resolves to `net[n]`) in a method's parameters.
    pub(crate) fn property<'a>(params: &'a Value, key: &str) -> Option<&'a Value> {
        let props = params.get("properties")?.as_object()?;
        lookup_prop(props, key)
    }

    /// Parameters of `PUT /nodes/{node}/lxc/{vmid}/config`, the catalogue of config keys.
    pub(crate) fn config_params(&self) -> &Value {
        &self
            .routes
            .iter()
            .find(|r| r.template == "/nodes/{node}/lxc/{vmid}/config")
            .and_then(|r| r.methods.get("PUT"))
            .expect("config PUT in schema")
            .params
    }
}

fn lookup_prop<'a>(props: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(p) = props.get(key) {
        return Some(p);
    }
    let idx = key.find(|c: char| c.is_ascii_digit())?;
    let (prefix, num) = key.split_at(idx);
    if num.len() > 1 && num.starts_with('0') {
        return None;
    }
    let n: usize = num.parse().ok()?;
    if n < indexed_max(prefix)? {
        props.get(&format!("{prefix}[n]"))
    } else {
        None
    }
}

/// Errors by parameter path, as in Proxmox's `errors` object.
pub(crate) type ParamErrors = BTreeMap<String, String>;

fn add_error(errors: &mut ParamErrors, path: &str, msg: String) {
    let path = if path.is_empty() { "_root" } else { path };
    errors
        .entry(path.to_string())
        .and_modify(|e| {
            e.push_str("\\n");
            e.push_str(&msg);
        })
        .or_insert(msg);
}

/// Validate request parameters against a method's `parameters` schema.
pub(crate) fn validate(params_schema: &Value, values: &BTreeMap<String, Value>) -> Result<(), ParamErrors> {
    let mut errors = ParamErrors::new();
    let empty = Map::new();
    let props = params_schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (k, s) in props {
        if k.ends_with("[n]") {
            continue;
        }
        check_prop(values.get(k), s, k, &mut errors);
    }
    for (k, v) in values {
        match lookup_prop(props, k) {
            Some(s) => {
                if !props.contains_key(k) {
                    // indexed key (`net3`): not covered by the loop above
                    check_prop(Some(v), s, k, &mut errors);
                }
                if let Some(req) = s.get("requires").and_then(Value::as_str) {
                    if values.get(req).is_none_or(Value::is_null) && !v.is_null() {
                        add_error(&mut errors, req, format!("missing property required by '{k}'"));
                    }
                }
            }
            None => {
                let additional = params_schema.get("additionalProperties");
                if additional.is_none_or(|a| a == &Value::from(0) || a == &Value::Bool(false)) {
                    add_error(
                        &mut errors,
                        k,
                        "property is not defined in schema and the schema does not allow additional properties".into(),
                    );
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty() && s != "0",
        Some(_) => true,
    }
}

/// Perl's view of a JSON scalar as text (`true` -> "1").
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

fn num_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn num_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn is_number(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").unwrap())
        .is_match(s)
}

pub(crate) fn is_integer(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^[+-]?\d+$").unwrap()).is_match(s)
}

/// Compile (and cache) a Perl pattern from the schema, anchored like `m/^$pattern$/`.
pub(crate) fn perl_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    c.entry(pattern.to_string())
        .or_insert_with(|| {
            // octal escapes as in Perl (`\0` in the `env` pattern)
            regex::RegexBuilder::new(&format!("^(?:{})$", pattern.replace("(?^:", "(?:")))
                .octal(true)
                .build()
                .ok()
        })
        .clone()
}

/// `check_prop` of JSONSchema.pm for one value.
pub(crate) fn check_prop(value: Option<&Value>, schema: &Value, path: &str, errors: &mut ParamErrors) {
    let value = match value {
        None | Some(Value::Null) => {
            if !truthy(schema.get("optional")) {
                add_error(errors, path, "property is missing and it is not optional".into());
            }
            return;
        }
        Some(v) => v,
    };
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("string");
    let text = match value {
        Value::Array(_) | Value::Object(_) => {
            if (ty == "array" && value.is_array()) || (ty == "object" && value.is_object()) {
                return;
            }
            let got = if value.is_array() { "ARRAY" } else { "HASH" };
            add_error(errors, path, format!("type check ('{ty}') failed - got {got}"));
            return;
        }
        Value::Bool(b) => {
            if ty == "boolean" {
                return;
            }
            if ty == "string" {
                if *b {
                    "1".to_string()
                } else {
                    "0".to_string()
                }
            } else {
                add_error(
                    errors,
                    path,
                    format!("type check ('{ty}') failed - got JSON::PP::Boolean"),
                );
                return;
            }
        }
        v => scalar_text(v).unwrap_or_default(),
    };
    let type_ok = match ty {
        "boolean" => text == "1" || text == "0",
        "integer" => is_integer(&text),
        "number" => is_number(&text),
        "array" | "object" => false,
        _ => true,
    };
    if !type_ok {
        if ty == "array" || ty == "object" {
            add_error(errors, path, format!("type check ('{ty}') failed"));
        } else {
            add_error(errors, path, format!("type check ('{ty}') failed - got '{text}'"));
        }
        return;
    }
    match schema.get("format") {
        Some(Value::Object(fmt)) => {
            if let Err(e) = propstr::parse_checked(fmt, &text, path) {
                add_error(errors, path, format!("invalid format - {e}"));
                return;
            }
        }
        Some(Value::String(f)) => {
            if let Err(e) = check_format(f, &text) {
                add_error(errors, path, format!("invalid format - {e}"));
                return;
            }
        }
        _ => {}
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        if let Some(re) = perl_regex(p) {
            if !re.is_match(&text) {
                add_error(errors, path, "value does not match the regex pattern".into());
                return;
            }
        }
    }
    let len = text.chars().count();
    if let Some(max) = schema.get("maxLength").and_then(num_of) {
        if len as f64 > max {
            add_error(
                errors,
                path,
                format!("value may only be {} characters long", num_text(&schema["maxLength"])),
            );
            return;
        }
    }
    if let Some(min) = schema.get("minLength").and_then(num_of) {
        if (len as f64) < min {
            add_error(
                errors,
                path,
                format!(
                    "value must be at least {} characters long",
                    num_text(&schema["minLength"])
                ),
            );
            return;
        }
    }
    if is_number(&text) {
        let x: f64 = text.parse().unwrap_or(0.0);
        if let Some(max) = schema.get("maximum").and_then(num_of) {
            if x > max {
                add_error(
                    errors,
                    path,
                    format!("value must have a maximum value of {}", num_text(&schema["maximum"])),
                );
                return;
            }
        }
        if let Some(min) = schema.get("minimum").and_then(num_of) {
            if x < min {
                add_error(
                    errors,
                    path,
                    format!("value must have a minimum value of {}", num_text(&schema["minimum"])),
                );
                return;
            }
        }
    }
    if let Some(Value::Array(ea)) = schema.get("enum") {
        let found = ea.iter().any(|e| scalar_text(e).as_deref() == Some(text.as_str()));
        if !found {
            let list: Vec<String> = ea.iter().filter_map(scalar_text).collect();
            add_error(
                errors,
                path,
                format!(
                    "value '{text}' does not have a value in the enumeration '{}'",
                    list.join(", ")
                ),
            );
        }
    }
}

fn re(pat: &str) -> Regex {
    perl_regex(pat).expect("valid builtin regex")
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<std::net::Ipv4Addr>().is_ok()
}
fn is_ipv6(s: &str) -> bool {
    s.parse::<std::net::Ipv6Addr>().is_ok()
}
fn is_cidr(s: &str, v6: bool) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    if bits.is_empty() || !bits.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let Ok(bits) = bits.parse::<u32>() else { return false };
    if !bits_ok(bits, v6) {
        return false;
    }
    if v6 {
        is_ipv6(ip)
    } else {
        is_ipv4(ip)
    }
}
fn bits_ok(bits: u32, v6: bool) -> bool {
    bits > 7 && bits <= if v6 { 128 } else { 32 }
}

/// Check a named format (`check_format` in JSONSchema.pm); the error text ends with `\n`.
#[allow(clippy::collapsible_match)]
pub(crate) fn check_format(format: &str, value: &str) -> Result<(), String> {
    if let Some(base) = format.strip_suffix("-list") {
        if is_known_format(base) {
            for v in propstr::split_list(value) {
                check_format(base, &v)?;
            }
            return Ok(());
        }
    }
    if let Some(base) = format.strip_suffix("-opt") {
        if value.is_empty() {
            return Ok(());
        }
        return check_format(base, value);
    }
    let bad = |m: &str| Err(format!("{m}\n"));
    match format {
        "pve-vmid" => {
            if !re(r"[1-9][0-9]{2,8}").is_match(value) {
                return bad("value does not look like a valid VM ID");
            }
        }
        "pve-node" => {
            if !re(r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)").is_match(value) {
                return bad("value does not look like a valid node name");
            }
        }
        "pve-storage-id" => {
            if value.chars().count() < 2 {
                return bad(&format!("storage ID '{value}' cannot be shorter than 2 characters"));
            }
            if !re(r"(?i)[a-z][a-z0-9\-_.]*[a-z0-9]").is_match(value) {
                return bad(&format!("storage ID '{value}' contains illegal characters"));
            }
        }
        "pve-configid" => {
            if !re(r"(?i)[a-z][a-z0-9_-]+").is_match(value) {
                return bad(&format!("invalid configuration ID '{value}'"));
            }
        }
        "pve-poolid" => {
            if !re(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+){0,2}").is_match(value) {
                return bad(&format!("invalid pool ID '{value}'"));
            }
        }
        "mac-addr" => {
            if !re(r"(?i)[a-f0-9][02468ace](?::[a-f0-9]{2}){5}").is_match(value) {
                return bad("value does not look like a valid unicast MAC address");
            }
        }
        "ipv4" => {
            if !is_ipv4(value) {
                return bad("value does not look like a valid IPv4 address");
            }
        }
        "ipv6" => {
            if !is_ipv6(value) {
                return bad("value does not look like a valid IPv6 address");
            }
        }
        "ip" => {
            if !is_ipv4(value) && !is_ipv6(value) {
                return bad("value does not look like a valid IP address");
            }
        }
        "CIDRv4" => {
            if !is_cidr(value, false) {
                return bad("value does not look like a valid IPv4 CIDR network");
            }
        }
        "CIDRv6" => {
            if !is_cidr(value, true) {
                return bad("value does not look like a valid IPv6 CIDR network");
            }
        }
        "CIDR" => {
            if !is_cidr(value, false) && !is_cidr(value, true) {
                return bad("value does not look like a valid CIDR network");
            }
        }
        "pve-ipv4-config" => {
            if !(value == "dhcp" || value == "manual" || is_cidr(value, false)) {
                return bad("value does not look like a valid ipv4 network configuration");
            }
        }
        "pve-ipv6-config" => {
            if !(value == "auto" || value == "dhcp" || value == "manual" || is_cidr(value, true)) {
                return bad("value does not look like a valid ipv6 network configuration");
            }
        }
        "dns-name" => {
            let n = "([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)";
            if !re(&format!(r"({n}\.)*{n}")).is_match(value) {
                return bad("value does not look like a valid DNS name");
            }
        }
        "address" => {
            if !(is_ipv4(value) || is_ipv6(value) || check_format("dns-name", value).is_ok()) {
                return bad(&format!("value does not look like a valid address: {value}"));
            }
        }
        "lxc-ip-with-ll-iface" => {
            let ip = value.split_once('%').map(|(a, _)| a).unwrap_or(value);
            if !is_ipv4(ip) && !is_ipv6(ip) {
                return bad(&format!("unable to parse IP address '{value}'"));
            }
        }
        "disk-size" => {
            if propstr::parse_size(value).is_none() {
                return bad(&format!("value does not look like a valid disk size: {value}"));
            }
        }
        "pve-startup-order" => {
            if value.is_empty()
                || !value
                    .split(',')
                    .all(|p| p.trim().is_empty() || re(r"(order=)?\d+|up=\d+|down=\d+").is_match(p))
            {
                return bad("unable to parse startup options");
            }
        }
        "pve-tag" => {
            if !re(r"(?i)[a-z0-9_][a-z0-9_\-+.]*").is_match(value) {
                return bad("invalid characters in tag");
            }
        }
        "pve-ct-timezone" => {
            if value != "host" && value != "UTC" && !re(r"[A-Za-z_]+(/[A-Za-z0-9_+\-]+){0,2}").is_match(value) {
                return bad(&format!("invalid time zone '{value}'"));
            }
        }
        "pve-volume-id" => {
            if !re(r"([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)").is_match(value) && !value.starts_with('/') {
                return bad(&format!("unable to parse volume ID '{value}'"));
            }
        }
        "pve-lxc-mp-string" => {
            if value.contains("/../") || value.ends_with("/..") || value.starts_with("../") {
                return bad("invalid character in path");
            }
        }
        "pve-storage-content" => {
            let ok = ["images", "rootdir", "vztmpl", "backup", "iso", "snippets", "import"];
            if !ok.contains(&value) {
                return bad(&format!("invalid content type '{value}'"));
            }
        }
        "pve-userid" => {
            if !re(r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+").is_match(value) {
                return bad(&format!("value '{value}' does not look like a valid user name"));
            }
        }
        "pve-task-status-type" => {
            if !["ok", "error", "warning", "unknown"].contains(&value) {
                return bad(&format!("invalid status '{value}'"));
            }
        }
        // pve-ha-manager PVE/HA/Tools.pm
        "pve-ha-resource-id" => {
            if !re(r"[a-z]+:\S+").is_match(value) {
                return bad("value does not look like a valid ha resource id");
            }
        }
        "pve-ha-resource-or-vm-id" => {
            if !re(r"[a-z]+:\S+|\d+").is_match(value) {
                return bad("value does not look like a valid ha resource id");
            }
        }
        "pve-ha-node" => {
            if !re(r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(:\d+)?").is_match(value) {
                return bad("value does not look like a valid ha node");
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_known_format(f: &str) -> bool {
    matches!(
        f,
        "pve-vmid"
            | "pve-node"
            | "pve-storage-id"
            | "pve-configid"
            | "pve-poolid"
            | "ipv4"
            | "ipv6"
            | "ip"
            | "dns-name"
            | "lxc-ip-with-ll-iface"
            | "pve-tag"
            | "pve-storage-content"
            | "pve-task-status-type"
            | "pve-iface"
            | "pve-priv"
            | "email-or-username"
            | "pve-day-of-week"
            | "storage-pair"
            | "pve-bridge-id"
            | "pve-ha-resource-id"
            | "pve-ha-node"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, Value> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    #[test]
    fn finds_literal_routes_before_parameters() {
        let segs: Vec<String> = "nodes/pve1/lxc/100/status/current"
            .split('/')
            .map(String::from)
            .collect();
        let (r, p) = schema().find(&segs).unwrap();
        assert_eq!(r.template, "/nodes/{node}/lxc/{vmid}/status/current");
        assert_eq!(p["vmid"], "100");
    }

    #[test]
    fn reports_proxmox_texts_for_bad_create_parameters() {
        let s = schema();
        let segs: Vec<String> = "nodes/pve1/lxc".split('/').map(String::from).collect();
        let (r, _) = s.find(&segs).unwrap();
        let m = &r.methods["POST"];
        let e = validate(
            &m.params,
            &params(&[
                ("node", "pve1"),
                ("vmid", "99"),
                ("ostemplate", "local:vztmpl/x.tar.zst"),
                ("memory", "lots"),
                ("foo", "1"),
                ("onboot", "true"),
                ("net0", "name=eth0,ip=10.0.0.1"),
                ("net40", "name=eth0"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e["vmid"], "invalid format - value does not look like a valid VM ID\n");
        assert_eq!(e["memory"], "type check ('integer') failed - got 'lots'");
        assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
        assert_eq!(
            e["foo"],
            "property is not defined in schema and the schema does not allow additional properties"
        );
        assert_eq!(
            e["net0"],
            "invalid format - format error\nnet0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n"
        );
        assert!(e.contains_key("net40"));
    }
}
