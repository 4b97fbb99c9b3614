//! Config helpers (normalisation, new-volume syntax), config GET/PUT/pending and interfaces.

use super::*;

pub(super) fn config_keys_of(p: &Params) -> BTreeMap<String, String> {
    let cp = schema().config_params();
    let skip = [
        "node",
        "vmid",
        "ostemplate",
        "restore",
        "force",
        "unique",
        "storage",
        "password",
        "ssh-public-keys",
        "pool",
        "start",
        "ha-managed",
        "bwlimit",
        "ignore-unpack-errors",
        "debug",
        "delete",
        "revert",
        "digest",
    ];
    p.0.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && Schema::property(cp, k).is_some())
        .map(|(k, v)| (k.clone(), scalar_text(v).unwrap_or_default()))
        .collect()
}

pub(super) fn fmt_of(key: &str) -> Option<&'static Map<String, Value>> {
    Schema::property(schema().config_params(), key)
        .and_then(|p| p.get("format"))
        .and_then(Value::as_object)
}

/// Normalize a config value as PVE stores it (MACs generated, tags sorted, ...).
pub(super) fn normalize(st: &mut State, key: &str, val: &str) -> String {
    if key == "tags" {
        return propstr::normalize_tags(val);
    }
    if key.starts_with("net") {
        if let Some(fmt) = fmt_of(key) {
            if let Ok(mut m) = propstr::parse_raw(fmt, val) {
                if !m.contains_key("hwaddr") {
                    m.insert("hwaddr".into(), st.random_mac());
                }
                m.insert("type".into(), "veth".into());
                return propstr::print(fmt, &m);
            }
        }
    }
    if key == "features" {
        if let Some(fmt) = fmt_of(key) {
            if let Ok(m) = propstr::parse_raw(fmt, val) {
                return propstr::print(fmt, &m);
            }
        }
    }
    val.to_string()
}

/// `STORAGE:SIZE_GiB` new-volume syntax.
pub(super) fn new_volume(spec: &str) -> Option<(String, f64)> {
    let (s, n) = spec.split_once(':')?;
    if s.is_empty() || s.contains(char::is_whitespace) {
        return None;
    }
    let ok = !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit() || c == '.')
        && n.matches('.').count() <= 1
        && !n.starts_with('.')
        && !n.ends_with('.');
    if !ok {
        return None;
    }
    Some((s.to_string(), n.parse().ok()?))
}

pub(super) fn mp_volume(val: &str) -> String {
    let first = val.split(',').next().unwrap_or_default();
    first.strip_prefix("volume=").unwrap_or(first).to_string()
}

/// Replace the volume of a rootfs/mp value and set its size.
pub(super) fn with_volume(key: &str, val: &str, volid: &str, size: u64) -> String {
    let Some(fmt) = fmt_of(key) else {
        return format!("{volid},size={}", propstr::format_size(size));
    };
    let mut m = propstr::parse_raw(fmt, val).unwrap_or_default();
    m.insert("volume".into(), volid.into());
    m.insert("size".into(), propstr::format_size(size));
    propstr::print(fmt, &m)
}

pub(super) fn ostype_of(template: &str) -> &'static str {
    let name = template.rsplit('/').next().unwrap_or(template);
    for os in [
        "debian",
        "ubuntu",
        "alpine",
        "centos",
        "fedora",
        "archlinux",
        "opensuse",
        "devuan",
        "gentoo",
        "nixos",
    ] {
        if name.starts_with(os) {
            return os;
        }
    }
    if name.starts_with("rockylinux") || name.starts_with("almalinux") {
        return "centos";
    }
    "unmanaged"
}

pub(super) fn check_storage_rootdir(st: &State, sid: &str, node: &str) -> ApiResult<()> {
    match st.storage_on_node(sid, node) {
        Ok(s) if s.content.iter().any(|c| c == "rootdir") => Ok(()),
        Ok(_) => Err(ApiError::param(
            "storage",
            format!("storage '{sid}' does not support container directories"),
        )),
        Err(e) => Err(ApiError::e500(e)),
    }
}

pub(super) fn get_config(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    if let Some(s) = p.str("snapshot") {
        let snap = ct
            .snapshots
            .get(&s)
            .ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?;
        let mut m = State::typed_conf(&snap.conf);
        m.insert("digest".into(), json!(ct.digest()));
        return Ok(Value::Object(m));
    }
    let mut conf = ct.conf.clone();
    if !p.flag("current") {
        for (k, v) in &ct.pending {
            conf.insert(k.clone(), v.clone());
        }
        for k in &ct.pending_delete {
            conf.remove(k);
        }
    }
    let mut m = State::typed_conf(&conf);
    m.insert("digest".into(), json!(ct.digest()));
    Ok(Value::Object(m))
}

pub(super) const FASTPLUG: &[&str] = &[
    "description",
    "onboot",
    "startup",
    "protection",
    "hostname",
    "hookscript",
    "cores",
    "tags",
    "lock",
];

pub(super) fn hotpluggable(key: &str, ct: &Ct, deleting: bool) -> bool {
    if FASTPLUG.contains(&key)
        || ["cpulimit", "cpuunits", "swap"].contains(&key)
        || key.starts_with("net")
        || key.starts_with("unused")
    {
        return true;
    }
    if deleting {
        return false;
    }
    key == "memory" || ((key.starts_with("mp") || key.starts_with("dev")) && !ct.conf.contains_key(key))
}

/// The root-only part of `check_ct_modify_config_perm` (pve-container `src/PVE/LXC.pm`): only
/// `root@pam` itself (not a token of it) may set a bind or device mount point (deleting one
/// needs `VM.Config.Disk` only) or set or delete a `devN`.
pub(super) fn check_root_only(caller: &Caller, set: &BTreeMap<String, String>, delete: &[String]) -> ApiResult<()> {
    if caller.user == "root@pam" {
        return Ok(());
    }
    let refuse = |what: String| Err(ApiError::status(403, format!("Permission check failed ({what})\n")));
    for (k, v) in set {
        if k.starts_with("mp") && k[2..].parse::<u32>().is_ok() {
            let vol = mp_volume(v);
            if vol.starts_with('/') {
                let typ = if vol.starts_with("/dev/") { "device" } else { "bind" };
                return refuse(format!("mount point type {typ} is only allowed for root@pam"));
            }
        }
    }
    for k in set.keys().chain(delete) {
        if k.starts_with("dev") && k[3..].parse::<u32>().is_ok() {
            return refuse("configuring device passthrough is only allowed for root@pam".into());
        }
    }
    Ok(())
}

pub(super) fn put_config(st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    st.ct_on(&node, vmid)?;
    let mut rest: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &p.0 {
        if !["node", "vmid", "digest"].contains(&k.as_str()) {
            rest.insert(k.clone(), scalar_text(v).unwrap_or_default());
        }
    }
    if rest.is_empty() {
        return Err(ApiError::e500("no options specified"));
    }
    let delete = propstr::split_list(&rest.remove("delete").unwrap_or_default());
    let revert = propstr::split_list(&rest.remove("revert").unwrap_or_default());
    let ct = st.ct_on(&node, vmid)?;
    ct.check_lock()?;
    if let Some(d) = p.str("digest") {
        if d != ct.digest() {
            return Err(ApiError::e500(
                "detected modified configuration - file changed by other user? Try again.",
            ));
        }
    }
    let cp = schema().config_params();
    for o in &revert {
        if Schema::property(cp, o).is_none() {
            return Err(ApiError::param("revert", format!("unknown option '{o}'")));
        }
        if rest.contains_key(o) {
            return Err(ApiError::param(
                "revert",
                format!("you can't use '-{o}' and '-revert {o}' at the same time"),
            ));
        }
    }
    for o in &delete {
        if Schema::property(cp, o).is_none() {
            return Err(ApiError::param("delete", format!("unknown option '{o}'")));
        }
        if rest.contains_key(o) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{o}' and -delete {o}' at the same time"),
            ));
        }
        if revert.contains(o) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-delete {o}' and '-revert {o}' at the same time"),
            ));
        }
    }
    for k in rest.keys().chain(delete.iter()) {
        if k == "unprivileged" {
            return Err(ApiError::param(k, format!("unable to modify read-only option: '{k}'")));
        }
        if (k == "features" || k == "hookscript") && caller.user != "root@pam" {
            let feat_only_nesting = k == "features"
                && rest
                    .get("features")
                    .is_none_or(|f| f.split(',').all(|x| x.is_empty() || x.starts_with("nesting=")));
            if !feat_only_nesting {
                return Err(ApiError::status(
                    403,
                    "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)\n"
                        .to_string(),
                ));
            }
        }
        if k == "template" || k == "lock" {
            return Err(ApiError::param(k, format!("unable to modify read-only option: '{k}'")));
        }
    }
    check_root_only(caller, &rest, &delete)?;
    let running = ct.running;
    // normalize values and allocate new volumes
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &rest {
        check_host_managed(k, v)?;
        let mut v = normalize(st, k, v);
        if k == "rootfs" || k.starts_with("mp") {
            let vol = mp_volume(&v);
            if let Some((sid, gib)) = new_volume(&vol) {
                if k == "rootfs" {
                    return Err(ApiError::e500(
                        "cannot change rootfs volume with the config API, use move_volume",
                    ));
                }
                check_storage_rootdir(st, &sid, &node)?;
                let size = (gib * (1u64 << 30) as f64) as u64;
                let volid = st.alloc_disk(&sid, &node, vmid, size).map_err(ApiError::e500)?;
                v = with_volume(k, &v, &volid, size);
            }
        }
        set.insert(k.clone(), v);
    }
    let ct = st.ct_on_mut(&node, vmid)?;
    for o in &revert {
        ct.pending.remove(o);
        ct.pending_delete.remove(o);
    }
    for o in &delete {
        if running && !hotpluggable(o, ct, true) {
            ct.pending.remove(o);
            ct.pending_delete.insert(o.clone());
        } else {
            // a deleted mount point becomes unusedN
            if let Some(old) = ct.conf.remove(o) {
                // a bind or device mount point holds no volume: it is only unmounted
                if o.starts_with("mp") && !mp_volume(&old).starts_with('/') {
                    let vol = mp_volume(&old);
                    let n = (0..256)
                        .find(|i| !ct.conf.contains_key(&format!("unused{i}")))
                        .unwrap_or(0);
                    ct.conf.insert(format!("unused{n}"), vol);
                }
            }
            ct.pending.remove(o);
            ct.pending_delete.remove(o);
        }
    }
    for (k, v) in set {
        if running && !hotpluggable(&k, ct, false) {
            ct.pending_delete.remove(&k);
            ct.pending.insert(k, v);
        } else {
            ct.pending.remove(&k);
            ct.pending_delete.remove(&k);
            ct.conf.insert(k, v);
        }
    }
    if running {
        assign_leases(st, vmid);
    }
    Ok(Value::Null)
}

pub(super) fn pending(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let cur = State::typed_conf(&ct.conf);
    let pend = State::typed_conf(&ct.pending);
    let keys: BTreeSet<&String> = cur.keys().chain(pend.keys()).chain(ct.pending_delete.iter()).collect();
    let mut out = Vec::new();
    for k in keys {
        let mut m = json!({"key": k});
        if let Some(v) = cur.get(k) {
            m["value"] = v.clone();
        }
        if let Some(v) = pend.get(k) {
            m["pending"] = v.clone();
        }
        if ct.pending_delete.contains(k) {
            m["delete"] = json!(1);
        }
        out.push(m);
    }
    out.push(json!({"key": "digest", "value": ct.digest()}));
    Ok(Value::Array(out))
}

pub(super) fn interfaces(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    if !ct.running {
        return Ok(Value::Null);
    }
    let mut out = vec![json!({"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"})];
    for (k, v) in &ct.conf {
        if !k.starts_with("net") {
            continue;
        }
        let Some(fmt) = fmt_of(k) else { continue };
        let m = propstr::parse_raw(fmt, v).unwrap_or_default();
        if m.get("link_down").map(String::as_str) == Some("1") {
            continue;
        }
        let hw = m.get("hwaddr").cloned().unwrap_or_default().to_lowercase();
        let mut e = json!({"name": m.get("name").cloned().unwrap_or_default(), "hwaddr": hw});
        match m.get("ip").map(String::as_str) {
            Some("dhcp") => {
                if let Some(ip) = ct.leases.get(k) {
                    e["inet"] = json!(ip);
                }
            }
            Some("manual") | None => {}
            Some(cidr) => e["inet"] = json!(cidr),
        }
        let b: Vec<u8> = hw.split(':').filter_map(|x| u8::from_str_radix(x, 16).ok()).collect();
        if b.len() == 6 {
            let ll = format!(
                "fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}/64",
                b[0] ^ 2,
                b[1],
                b[2],
                b[3],
                b[4],
                b[5]
            );
            e["inet6"] = match m.get("ip6").map(String::as_str) {
                Some(c) if c.contains(':') => json!(c),
                _ => json!(ll),
            };
        }
        out.push(e);
    }
    Ok(Value::Array(out))
}

pub(super) fn ct_index(st: &State, p: &Params) -> ApiResult {
    st.ct_on(&p.node(), p.vmid())?;
    Ok(json!([
        {"subdir":"config"},{"subdir":"status"},{"subdir":"snapshot"},{"subdir":"firewall"},{"subdir":"interfaces"},
        {"subdir":"pending"},{"subdir":"clone"},{"subdir":"migrate"},{"subdir":"resize"},{"subdir":"template"}
    ]))
}
