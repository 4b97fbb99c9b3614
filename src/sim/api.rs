//! The API handlers: one function per served endpoint, with Proxmox's semantics and texts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::propstr::{self, Upid};
use super::schema::{scalar_text, schema, Schema};
use super::state::{finish_task, now_epoch, vztmpl_volume, ApiError, ApiResult, Ct, Sim, Snapshot, State, TaskBody, Volume};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `user@realm` or `user@realm!token` (as in UPIDs).
    pub user: String,
    /// Granted privileges; `None` = all.
    pub privs: Option<Vec<String>>,
}

/// Validated request parameters (path + query + body).
pub(crate) struct Params(pub BTreeMap<String, Value>);

impl Params {
    fn str(&self, k: &str) -> Option<String> {
        self.0.get(k).and_then(scalar_text)
    }
    fn req(&self, k: &str) -> String {
        self.str(k).unwrap_or_default()
    }
    fn bool(&self, k: &str) -> Option<bool> {
        self.str(k).map(|v| v == "1")
    }
    fn flag(&self, k: &str) -> bool {
        self.bool(k).unwrap_or(false)
    }
    fn u64(&self, k: &str) -> Option<u64> {
        self.str(k).and_then(|v| v.parse().ok())
    }
    fn vmid(&self) -> u32 {
        self.u64("vmid").unwrap_or(0) as u32
    }
    fn node(&self) -> String {
        self.req("node")
    }
}

/// The privilege and ACL path a request needs (simplified from the schema's `permissions`).
pub(crate) fn required_privilege(method: &str, template: &str, p: &BTreeMap<String, Value>) -> Option<(String, &'static str)> {
    let g = |k: &str| p.get(k).and_then(scalar_text).unwrap_or_default();
    let vms = || format!("/vms/{}", g("vmid"));
    let priv_ = match (method, template) {
        (_, "/version") | (_, "/access/ticket") | (_, "/cluster/nextid") | (_, "/cluster/resources") => return None,
        (_, t) if t.starts_with("/nodes/{node}/tasks") => return None,
        ("GET", "/nodes") | ("GET", "/cluster/status") | ("GET", "/cluster/tasks") => return None,
        ("GET", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/firewall") => (vms(), "VM.Audit"),
        (_, t) if t.starts_with("/nodes/{node}/lxc/{vmid}/firewall") => (vms(), "VM.Config.Network"),
        ("GET", "/nodes/{node}/lxc") => return None,
        ("POST", "/nodes/{node}/lxc") => (vms(), "VM.Allocate"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => (vms(), "VM.Allocate"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => (vms(), "VM.Config.Options"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => (vms(), "VM.Config.Disk"),
        ("POST", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/status/") => (vms(), "VM.PowerMgmt"),
        (_, t) if t.starts_with("/nodes/{node}/lxc/{vmid}/snapshot") && method != "GET" => (vms(), "VM.Snapshot"),
        ("POST", "/nodes/{node}/lxc/{vmid}/clone") => (vms(), "VM.Clone"),
        ("POST", "/nodes/{node}/lxc/{vmid}/migrate") => (vms(), "VM.Migrate"),
        ("POST", "/nodes/{node}/lxc/{vmid}/template") => (vms(), "VM.Allocate"),
        ("GET", t) if t.starts_with("/nodes/{node}/lxc/{vmid}") => (vms(), "VM.Audit"),
        ("POST", "/nodes/{node}/vzdump") => ("/vms".to_string(), "VM.Backup"),
        ("GET", t) if t.starts_with("/nodes/{node}/storage/{storage}") => (format!("/storage/{}", g("storage")), "Datastore.Audit"),
        ("DELETE", t) if t.starts_with("/nodes/{node}/storage/{storage}") => (format!("/storage/{}", g("storage")), "Datastore.Allocate"),
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => (format!("/storage/{}", g("storage")), "Datastore.AllocateTemplate"),
        ("POST", "/nodes/{node}/aplinfo") => (format!("/storage/{}", g("storage")), "Datastore.AllocateTemplate"),
        ("GET", t) if t.starts_with("/nodes") => (format!("/nodes/{}", g("node")), "Sys.Audit"),
        ("POST", "/pools") => ("/pool".to_string(), "Pool.Allocate"),
        ("GET", "/pools") => return None,
        _ => return None,
    };
    Some(priv_)
}

/// Dispatch one validated request.
pub(crate) fn handle(sim: &Arc<Sim>, method: &str, template: &str, p: Params, caller: &Caller) -> ApiResult<(Value, Option<u64>)> {
    let mut st = sim.lock();
    let st = &mut *st;
    let r = match (method, template) {
        ("GET", "/version") => Ok(json!({"version": st.cfg.version, "release": st.cfg.version.rsplit_once('.').map(|x| x.0).unwrap_or("9.1"), "repoid": "5e1f0c3a"})),
        ("GET", "/access/ticket") => Ok(Value::Null),
        ("GET", "/cluster/resources") => Ok(cluster_resources(st, p.str("type").as_deref())),
        ("GET", "/cluster/nextid") => nextid(st, &p),
        ("GET", "/cluster/status") => Ok(cluster_status(st)),
        ("GET", "/cluster/tasks") => Ok(task_list(st, None, &p).0),
        ("GET", "/nodes") => Ok(nodes(st)),
        ("GET", "/nodes/{node}/status") => Ok(node_status(st, &p.node())),
        ("GET", "/nodes/{node}/version") => Ok(json!({"version": st.cfg.version, "release": st.cfg.version.rsplit_once('.').map(|x| x.0).unwrap_or("9.1"), "repoid": "5e1f0c3a"})),
        ("GET", "/nodes/{node}/lxc") => {
            let node = p.node();
            Ok(Value::Array(st.cts.values().filter(|c| c.node == node).map(|c| Value::Object(st.ct_status(c))).collect()))
        }
        ("POST", "/nodes/{node}/lxc") => create(sim, st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}") => {
            st.ct_on(&p.node(), p.vmid())?;
            Ok(json!([{"subdir":"config"},{"subdir":"status"},{"subdir":"snapshot"},{"subdir":"firewall"},{"subdir":"interfaces"},{"subdir":"pending"},{"subdir":"clone"},{"subdir":"migrate"},{"subdir":"resize"},{"subdir":"template"}]))
        }
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => destroy(sim, st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/config") => get_config(st, &p),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => put_config(st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/pending") => pending(st, &p),
        ("GET", "/nodes/{node}/lxc/{vmid}/status") => {
            st.ct_on(&p.node(), p.vmid())?;
            Ok(json!([{"subdir":"current"},{"subdir":"start"},{"subdir":"stop"},{"subdir":"shutdown"},{"subdir":"reboot"},{"subdir":"suspend"},{"subdir":"resume"}]))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/status/current") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            let mut m = st.ct_status(ct);
            m.insert("ha".into(), json!({"managed": 0}));
            Ok(Value::Object(m))
        }
        ("POST", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/status/") => power(sim, st, t.rsplit('/').next().unwrap_or(""), &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot") => snapshot_list(st, &p),
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot") => snapshot_create(sim, st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            let s = p.req("snapname");
            if !ct.snapshots.contains_key(&s) {
                return Err(ApiError::e500(format!("snapshot '{s}' does not exist")));
            }
            Ok(json!([{"subdir":"rollback"},{"subdir":"config"}]))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            let s = p.req("snapname");
            let snap = ct.snapshots.get(&s).ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?;
            let mut m = State::typed_conf(&snap.conf);
            m.insert("snaptime".into(), json!(snap.snaptime));
            if let Some(pa) = &snap.parent {
                m.insert("parent".into(), json!(pa));
            }
            m.insert("digest".into(), json!(ct.digest()));
            Ok(Value::Object(m))
        }
        ("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}") => snapshot_delete(sim, st, &p, caller),
        ("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback") => snapshot_rollback(sim, st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/firewall/rules") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            Ok(Value::Array(ct.fw_rules.iter().enumerate().map(|(i, r)| rule_json(i, r)).collect()))
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            let pos = p.u64("pos").unwrap_or(0) as usize;
            ct.fw_rules.get(pos).map(|r| rule_json(pos, r)).ok_or_else(|| ApiError::param("pos", "no rule at position"))
        }
        ("POST", "/nodes/{node}/lxc/{vmid}/firewall/rules") => fw_rule_create(st, &p),
        ("PUT", "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}") => fw_rule_update(st, &p),
        ("DELETE", "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}") => {
            let ct = st.ct_on_mut(&p.node(), p.vmid())?;
            check_fw_digest(ct, &p)?;
            let pos = p.u64("pos").unwrap_or(0) as usize;
            if pos >= ct.fw_rules.len() {
                return Err(ApiError::e500("no rule at position"));
            }
            ct.fw_rules.remove(pos);
            Ok(Value::Null)
        }
        ("GET", "/nodes/{node}/lxc/{vmid}/firewall/options") => {
            let ct = st.ct_on(&p.node(), p.vmid())?;
            let mut m = Map::new();
            for (k, v) in &ct.fw_options {
                m.insert(k.clone(), v.parse::<i64>().map(Value::from).unwrap_or(json!(v)));
            }
            m.insert("digest".into(), json!(fw_options_digest(ct)));
            Ok(Value::Object(m))
        }
        ("PUT", "/nodes/{node}/lxc/{vmid}/firewall/options") => {
            let ct = st.ct_on_mut(&p.node(), p.vmid())?;
            if let Some(d) = p.str("digest") {
                if d != fw_options_digest(ct) {
                    return Err(ApiError::e500("detected modified configuration - file changed by other user? Try again."));
                }
            }
            for k in propstr::split_list(&p.str("delete").unwrap_or_default()) {
                ct.fw_options.remove(&k);
            }
            for (k, v) in &p.0 {
                if ["node", "vmid", "digest", "delete"].contains(&k.as_str()) {
                    continue;
                }
                ct.fw_options.insert(k.clone(), scalar_text(v).unwrap_or_default());
            }
            Ok(Value::Null)
        }
        ("POST", "/nodes/{node}/lxc/{vmid}/migrate") => migrate(sim, st, &p, caller),
        ("POST", "/nodes/{node}/lxc/{vmid}/template") => make_template(sim, st, &p, caller),
        ("POST", "/nodes/{node}/lxc/{vmid}/clone") => clone(sim, st, &p, caller),
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => resize(sim, st, &p, caller),
        ("GET", "/nodes/{node}/lxc/{vmid}/interfaces") => interfaces(st, &p),
        ("POST", "/nodes/{node}/vzdump") => vzdump(sim, st, &p, caller),
        ("GET", "/nodes/{node}/tasks") => {
            let (v, total) = task_list(st, Some(&p.node()), &p);
            return Ok((v, Some(total)));
        }
        ("GET", "/nodes/{node}/tasks/{upid}") => {
            task(st, &p)?;
            Ok(json!([{"name":"log"},{"name":"status"}]))
        }
        ("DELETE", "/nodes/{node}/tasks/{upid}") => {
            let t = task(st, &p)?;
            let upid = t.upid_str.clone();
            let node = t.upid.node.clone();
            let (typ, id) = (t.upid.typ.clone(), t.upid.id.clone());
            if let Some(a) = st.tasks.get_mut(&upid).and_then(|t| t.abort.take()) {
                a.abort();
                abort_cleanup(st, &typ, &id);
                finish_task(st, &upid, &node, Err("interrupted by signal".into()));
            }
            Ok(Value::Null)
        }
        ("GET", "/nodes/{node}/tasks/{upid}/status") => Ok(task(st, &p)?.status_json()),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => {
            let t = task(st, &p)?;
            let start = p.u64("start").unwrap_or(0) as usize;
            let limit = p.u64("limit").unwrap_or(50) as usize;
            let lines: Vec<Value> = t.log.iter().enumerate().skip(start).take(limit).map(|(i, l)| json!({"n": i + 1, "t": l})).collect();
            return Ok((Value::Array(lines), Some(t.log.len() as u64)));
        }
        ("GET", "/nodes/{node}/storage") => storage_list(st, &p),
        ("GET", "/nodes/{node}/storage/{storage}/status") => {
            let (node, sid) = (p.node(), p.req("storage"));
            let s = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
            Ok(storage_json(st, &s, &node))
        }
        ("GET", "/nodes/{node}/storage/{storage}/content") => storage_content(st, &p),
        ("GET", "/nodes/{node}/storage/{storage}/content/{volume}") => {
            let node = p.node();
            let vol = volume_param(&p);
            let v = st.find_volume(&node, &vol).ok_or_else(|| ApiError::e500(format!("volume '{vol}' does not exist")))?;
            let mut m = json!({"path": format!("/var/lib/vz/{}", v.volid.split_once(':').map(|x| x.1).unwrap_or("")), "size": v.size, "used": v.size, "format": v.format});
            if let Some(n) = &v.notes {
                m["notes"] = json!(n);
            }
            m["protected"] = json!(v.protected as u8);
            Ok(m)
        }
        ("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}") => delete_volume(sim, st, &p, caller),
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => download_url(sim, st, &p, caller),
        ("GET", "/nodes/{node}/aplinfo") => Ok(aplinfo(st)),
        ("POST", "/nodes/{node}/aplinfo") => apl_download(sim, st, &p, caller),
        ("GET", "/pools") => {
            let filter = p.str("poolid");
            Ok(Value::Array(
                st.pools
                    .iter()
                    .filter(|(k, _)| filter.as_ref().is_none_or(|f| f == *k))
                    .map(|(k, c)| {
                        let mut m = json!({"poolid": k});
                        if !c.is_empty() {
                            m["comment"] = json!(c);
                        }
                        if filter.is_some() {
                            m["members"] = Value::Array(
                                st.cts.values().filter(|ct| ct.pool.as_deref() == Some(k)).map(|ct| Value::Object(resource_lxc(st, ct))).collect(),
                            );
                        }
                        m
                    })
                    .collect(),
            ))
        }
        ("POST", "/pools") => {
            let id = p.req("poolid");
            if st.pools.contains_key(&id) {
                return Err(ApiError::e500(format!("pool '{id}' already exists")));
            }
            st.pools.insert(id, p.str("comment").unwrap_or_default());
            Ok(Value::Null)
        }
        _ => Err(ApiError::status(501, format!("Method '{method} {template}' not implemented"))),
    };
    r.map(|v| (v, None))
}

fn volume_param(p: &Params) -> String {
    let v = p.req("volume");
    if v.contains(':') {
        v
    } else {
        format!("{}:{}", p.req("storage"), v)
    }
}

fn task<'a>(st: &'a State, p: &Params) -> ApiResult<&'a super::state::Task> {
    let u = p.req("upid");
    if Upid::parse(&u).is_none() {
        return Err(ApiError::param("upid", "unable to parse worker upid"));
    }
    st.tasks.get(&u).ok_or_else(|| ApiError::param("upid", "no such task"))
}

fn abort_cleanup(st: &mut State, typ: &str, id: &str) {
    let Ok(vmid) = id.parse::<u32>() else { return };
    if let Some(ct) = st.cts.get_mut(&vmid) {
        if matches!(typ, "vzcreate" | "vzrestore") && ct.lock() == Some("create") {
            st.cts.remove(&vmid);
        } else {
            ct.conf.remove("lock");
        }
    }
}

// ---------------------------------------------------------------- cluster / nodes

fn resource_lxc(st: &State, ct: &Ct) -> Map<String, Value> {
    let s = st.ct_status(ct);
    let mut m = Map::new();
    m.insert("id".into(), json!(format!("lxc/{}", ct.vmid)));
    m.insert("type".into(), json!("lxc"));
    m.insert("vmid".into(), json!(ct.vmid));
    m.insert("name".into(), s["name"].clone());
    m.insert("node".into(), json!(ct.node));
    m.insert("status".into(), s["status"].clone());
    m.insert("template".into(), json!(ct.is_template() as u8));
    for k in ["cpu", "mem", "maxmem", "disk", "maxdisk", "netin", "netout", "diskread", "diskwrite", "uptime"] {
        m.insert(k.into(), s[k].clone());
    }
    m.insert("maxcpu".into(), s["cpus"].clone());
    if let Some(t) = ct.conf.get("tags") {
        m.insert("tags".into(), json!(t));
    }
    if let Some(l) = ct.lock() {
        m.insert("lock".into(), json!(l));
    }
    if let Some(pool) = &ct.pool {
        m.insert("pool".into(), json!(pool));
    }
    m
}

fn node_json(st: &State, name: &str) -> Value {
    let n = &st.nodes[name];
    if !n.online {
        return json!({"node": name, "status": "offline", "id": format!("node/{name}"), "type": "node", "level": ""});
    }
    let used_mem: u64 = st.cts.values().filter(|c| c.node == name && c.running).map(|c| st.ct_status(c)["mem"].as_u64().unwrap_or(0)).sum();
    let running = st.cts.values().filter(|c| c.node == name && c.running).count() as f64;
    json!({
        "node": name, "status": "online", "id": format!("node/{name}"), "type": "node", "level": "",
        "cpu": 0.01 + running * 0.003, "maxcpu": n.cpus, "mem": (2u64 << 30) + used_mem, "maxmem": n.memory,
        "disk": st.storage_used("local", name), "maxdisk": st.storages.get("local").map(|s| s.capacity_bytes).unwrap_or(100 << 30),
        "uptime": (n.boot.elapsed().as_secs_f64() * st.cfg.clock_speed) as u64 + 86400,
        "ssl_fingerprint": st.fingerprint,
    })
}

fn nodes(st: &State) -> Value {
    Value::Array(st.nodes.keys().map(|n| node_json(st, n)).collect())
}

fn node_status(st: &State, node: &str) -> Value {
    let n = node_json(st, node);
    json!({
        "cpu": n["cpu"], "uptime": n["uptime"], "pveversion": format!("pve-manager/{}/5e1f0c3a", st.cfg.version),
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 x86_64",
        "memory": {"total": n["maxmem"], "used": n["mem"], "free": n["maxmem"].as_u64().unwrap_or(0).saturating_sub(n["mem"].as_u64().unwrap_or(0))},
        "cpuinfo": {"cpus": n["maxcpu"], "sockets": 1, "cores": n["maxcpu"], "model": "pve-sim virtual CPU"},
        "rootfs": {"total": n["maxdisk"], "used": n["disk"]},
        "loadavg": ["0.10", "0.08", "0.05"],
    })
}

fn storage_json(st: &State, s: &super::config::StorageConfig, node: &str) -> Value {
    let used = st.storage_used(&s.id, node);
    let mut content = s.content.clone();
    content.sort();
    json!({
        "storage": s.id, "type": s.kind, "content": content.join(","), "shared": s.shared as u8,
        "active": 1, "enabled": 1, "total": s.capacity_bytes, "used": used,
        "avail": s.capacity_bytes.saturating_sub(used),
        "used_fraction": if s.capacity_bytes > 0 { used as f64 / s.capacity_bytes as f64 } else { 0.0 },
    })
}

fn cluster_resources(st: &State, ty: Option<&str>) -> Value {
    let mut out = Vec::new();
    if ty.is_none() || ty == Some("vm") {
        for ct in st.cts.values() {
            out.push(Value::Object(resource_lxc(st, ct)));
        }
    }
    if ty.is_none() || ty == Some("node") {
        for n in st.nodes.keys() {
            let mut v = node_json(st, n);
            if let Some(o) = v.as_object_mut() {
                o.remove("ssl_fingerprint");
            }
            out.push(v);
        }
    }
    if ty.is_none() || ty == Some("storage") {
        for n in st.nodes.keys() {
            for s in st.storages.values() {
                if st.storage_on_node(&s.id, n).is_err() {
                    continue;
                }
                let mut content = s.content.clone();
                content.sort();
                let online = st.nodes[n].online;
                out.push(json!({
                    "id": format!("storage/{n}/{}", s.id), "type": "storage", "storage": s.id, "node": n,
                    "status": if online { "available" } else { "unknown" }, "plugintype": s.kind,
                    "shared": s.shared as u8, "content": content.join(","),
                    "disk": st.storage_used(&s.id, n), "maxdisk": s.capacity_bytes,
                }));
            }
        }
    }
    if ty.is_none() {
        for p in st.pools.keys() {
            out.push(json!({"id": format!("/pool/{p}"), "type": "pool", "pool": p}));
        }
    }
    Value::Array(out)
}

fn cluster_status(st: &State) -> Value {
    let mut v = vec![json!({"type": "cluster", "id": "cluster", "name": st.cfg.cluster_name, "nodes": st.nodes.len(), "quorate": 1, "version": 3})];
    for (i, (n, s)) in st.nodes.iter().enumerate() {
        v.push(json!({"type": "node", "id": format!("node/{n}"), "name": n, "nodeid": i + 1, "online": s.online as u8, "local": (i == 0) as u8, "ip": format!("192.0.2.{}", 11 + i), "level": ""}));
    }
    Value::Array(v)
}

fn nextid(st: &State, p: &Params) -> ApiResult {
    if let Some(v) = p.u64("vmid") {
        if st.cts.contains_key(&(v as u32)) {
            return Err(ApiError::param("vmid", format!("VM {v} already exists")));
        }
        return Ok(json!(v.to_string()));
    }
    for id in 100u32..1_000_000 {
        if !st.cts.contains_key(&id) {
            return Ok(json!(id.to_string()));
        }
    }
    Err(ApiError::e500("unable to get any free VMID in range [100, 999999]"))
}

fn task_list(st: &State, node: Option<&str>, p: &Params) -> (Value, u64) {
    let start = p.u64("start").unwrap_or(0) as usize;
    let limit = p.u64("limit").unwrap_or(50) as usize;
    let typefilter = p.str("typefilter");
    let vmid = p.str("vmid");
    let userfilter = p.str("userfilter");
    let source = p.str("source").unwrap_or_else(|| "archive".into());
    let errors = p.flag("errors");
    let statusfilter: Vec<String> = p.str("statusfilter").map(|s| propstr::split_list(&s)).unwrap_or_default();
    let list: Vec<Value> = st
        .task_order
        .iter()
        .rev()
        .filter_map(|u| st.tasks.get(u))
        .filter(|t| node.is_none_or(|n| t.upid.node == n))
        .filter(|t| typefilter.as_ref().is_none_or(|f| &t.upid.typ == f))
        .filter(|t| vmid.as_ref().is_none_or(|v| &t.upid.id == v))
        .filter(|t| userfilter.as_ref().is_none_or(|f| t.upid.user.contains(f.as_str())))
        .filter(|t| match source.as_str() {
            "active" => t.exitstatus.is_none(),
            "archive" => node.is_none() || t.exitstatus.is_some() || true,
            _ => true,
        })
        .filter(|t| !errors || t.exitstatus.as_ref().is_some_and(|e| e != "OK"))
        .filter(|t| {
            statusfilter.is_empty()
                || statusfilter.iter().any(|f| match (f.as_str(), t.exitstatus.as_deref()) {
                    ("ok", Some("OK")) => true,
                    ("warning", Some(e)) => e.starts_with("WARNINGS"),
                    ("error", Some(e)) => e != "OK" && !e.starts_with("WARNINGS"),
                    ("unknown", None) => true,
                    _ => false,
                })
        })
        .map(|t| {
            let u = &t.upid;
            let mut m = json!({"upid": t.upid_str, "node": u.node, "pid": u.pid, "pstart": u.pstart, "starttime": u.starttime, "type": u.typ, "id": u.id, "user": u.user});
            if let Some(e) = &t.exitstatus {
                m["status"] = json!(e);
                m["endtime"] = json!(t.endtime.unwrap_or(u.starttime as u64));
            }
            m
        })
        .collect();
    let total = list.len() as u64;
    (Value::Array(list.into_iter().skip(start).take(limit).collect()), total)
}

// ---------------------------------------------------------------- config helpers

fn config_keys_of(p: &Params) -> BTreeMap<String, String> {
    let cp = schema().config_params();
    let skip = [
        "node", "vmid", "ostemplate", "restore", "force", "unique", "storage", "password", "ssh-public-keys", "pool", "start", "ha-managed",
        "bwlimit", "ignore-unpack-errors", "debug", "delete", "revert", "digest",
    ];
    p.0.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()) && Schema::property(cp, k).is_some())
        .map(|(k, v)| (k.clone(), scalar_text(v).unwrap_or_default()))
        .collect()
}

fn fmt_of(key: &str) -> Option<&'static Map<String, Value>> {
    Schema::property(schema().config_params(), key).and_then(|p| p.get("format")).and_then(Value::as_object)
}

/// Normalize a config value as PVE stores it (MACs generated, tags sorted, ...).
fn normalize(st: &mut State, key: &str, val: &str) -> String {
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
fn new_volume(spec: &str) -> Option<(String, f64)> {
    let (s, n) = spec.split_once(':')?;
    if s.is_empty() || s.contains(char::is_whitespace) {
        return None;
    }
    let ok = !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.') && n.matches('.').count() <= 1 && !n.starts_with('.') && !n.ends_with('.');
    if !ok {
        return None;
    }
    Some((s.to_string(), n.parse().ok()?))
}

fn mp_volume(val: &str) -> String {
    let first = val.split(',').next().unwrap_or_default();
    first.strip_prefix("volume=").unwrap_or(first).to_string()
}

/// Replace the volume of a rootfs/mp value and set its size.
fn with_volume(key: &str, val: &str, volid: &str, size: u64) -> String {
    let Some(fmt) = fmt_of(key) else { return format!("{volid},size={}", propstr::format_size(size)) };
    let mut m = propstr::parse_raw(fmt, val).unwrap_or_default();
    m.insert("volume".into(), volid.into());
    m.insert("size".into(), propstr::format_size(size));
    propstr::print(fmt, &m)
}

fn ostype_of(template: &str) -> &'static str {
    let name = template.rsplit('/').next().unwrap_or(template);
    for os in ["debian", "ubuntu", "alpine", "centos", "fedora", "archlinux", "opensuse", "devuan", "gentoo", "nixos"] {
        if name.starts_with(os) {
            return os;
        }
    }
    if name.starts_with("rockylinux") || name.starts_with("almalinux") {
        return "centos";
    }
    "unmanaged"
}

fn check_storage_rootdir(st: &State, sid: &str, node: &str) -> ApiResult<()> {
    match st.storage_on_node(sid, node) {
        Ok(s) if s.content.iter().any(|c| c == "rootdir") => Ok(()),
        Ok(_) => Err(ApiError::param("storage", format!("storage '{sid}' does not support container directories"))),
        Err(e) => Err(ApiError::e500(e)),
    }
}

// ---------------------------------------------------------------- create / restore

fn create(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let restore = p.flag("restore");
    let force = p.flag("force");
    let ostemplate = p.req("ostemplate");
    let storage = p.str("storage").unwrap_or_else(|| "local".into());
    let same_exists = st.cts.contains_key(&vmid);
    if !(same_exists && restore && force) {
        st.check_vmid_unused(vmid)?;
    } else {
        let ct = st.ct_on(&node, vmid)?;
        if ct.running {
            return Err(ApiError::e500("can't overwrite running container"));
        }
        if ct.conf.get("protection").map(String::as_str) == Some("1") {
            return Err(ApiError::e500(format!("unable to restore CT {vmid} - protection mode enabled")));
        }
    }
    let pool = p.str("pool");
    if let Some(pool) = &pool {
        if !st.pools.contains_key(pool) {
            return Err(ApiError::e500(format!("pool '{pool}' does not exist")));
        }
    }
    let archive = st.find_volume(&node, &ostemplate).cloned();
    let archive = match archive {
        Some(v) if (restore && v.content == "backup") || (!restore && v.content == "vztmpl") => v,
        _ => return Err(ApiError::e500(format!("volume '{ostemplate}' does not exist"))),
    };
    let mut params = config_keys_of(p);
    // disks
    let mut disks: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in params.clone() {
        if k == "rootfs" || k.starts_with("mp") {
            let v = if v.split(',').next().is_some_and(|f| f.parse::<f64>().is_ok()) { format!("{storage}:{v}") } else { v };
            params.remove(&k);
            disks.insert(k, v);
        } else if k.starts_with("unused") {
            params.remove(&k);
        }
    }
    if !disks.is_empty() && !disks.contains_key("rootfs") {
        return Err(ApiError::e500("mount points configured, but 'rootfs' not set - aborting"));
    }
    let backup_conf = archive.backup_conf.clone().unwrap_or_default();
    if !disks.contains_key("rootfs") {
        let size_gib = if restore {
            let mut c = Ct::new(vmid, &node);
            c.conf = backup_conf.clone();
            (c.disk_size("rootfs") as f64 / (1u64 << 30) as f64).max(0.001)
        } else {
            4.0
        };
        disks.insert("rootfs".into(), format!("{storage}:{size_gib}"));
        if restore {
            for (k, v) in &backup_conf {
                if k.starts_with("mp") && v.contains("backup=1") {
                    let mut c = Ct::new(vmid, &node);
                    c.conf = backup_conf.clone();
                    let fmt = fmt_of(k);
                    let mut m = fmt.and_then(|f| propstr::parse_raw(f, v).ok()).unwrap_or_default();
                    m.insert("volume".into(), format!("{storage}:{}", c.disk_size(k) as f64 / (1u64 << 30) as f64));
                    m.remove("size");
                    disks.insert(k.clone(), fmt.map(|f| propstr::print(f, &m)).unwrap_or_default());
                }
            }
        }
    }
    for (k, v) in &disks {
        let vol = mp_volume(v);
        if let Some((sid, _)) = new_volume(&vol) {
            check_storage_rootdir(st, &sid, &node)?;
        } else if vol.starts_with('/') {
            if caller.user != "root@pam" {
                return Err(ApiError::e500("Only root can pass arbitrary filesystem paths."));
            }
        } else {
            return Err(ApiError::param(k, format!("unable to parse volume '{vol}' - use STORAGE:SIZE_IN_GiB to allocate a new volume")));
        }
    }
    // config
    let mut conf: BTreeMap<String, String> = BTreeMap::new();
    if restore {
        for (k, v) in &backup_conf {
            if k == "lock" || k == "parent" || k == "rootfs" || k.starts_with("mp") || k.starts_with("unused") {
                continue;
            }
            conf.insert(k.clone(), v.clone());
        }
        if p.flag("unique") {
            for (k, v) in conf.clone() {
                if k.starts_with("net") {
                    if let Some(fmt) = fmt_of(&k) {
                        let mut m = propstr::parse_raw(fmt, &v).unwrap_or_default();
                        m.remove("hwaddr");
                        let printed = propstr::print(fmt, &m);
                        let n = normalize(st, &k, &printed);
                        conf.insert(k, n);
                    }
                }
            }
        }
    } else {
        conf.insert("arch".into(), "amd64".into());
        conf.insert("ostype".into(), ostype_of(&ostemplate).into());
        conf.insert("memory".into(), "512".into());
        conf.insert("swap".into(), "512".into());
        if p.bool("unprivileged").unwrap_or(true) {
            conf.insert("unprivileged".into(), "1".into());
        }
    }
    for (k, v) in &params {
        let n = normalize(st, k, v);
        conf.insert(k.clone(), n);
    }
    if conf.get("unprivileged").map(String::as_str) == Some("0") {
        conf.remove("unprivileged");
    }
    conf.remove("template");
    // the config file exists at once, locked
    let mut ct = if same_exists { st.cts.remove(&vmid).unwrap_or_else(|| Ct::new(vmid, &node)) } else { Ct::new(vmid, &node) };
    let old_volumes: Vec<String> = ct.volumes().into_iter().map(|(_, v)| v).collect();
    ct.conf = BTreeMap::from([("lock".to_string(), "create".to_string())]);
    ct.pending.clear();
    ct.pending_delete.clear();
    ct.snapshots.clear();
    ct.pool = pool.clone();
    st.cts.insert(vmid, ct);
    let start = p.flag("start");
    let typ = if restore { "vzrestore" } else { "vzcreate" };
    let arch_name = ostemplate.clone();
    let upid = sim.spawn_task(st, &node.clone(), typ, &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            if restore {
                ctx.log(format!("recovering backed-up configuration from '{arch_name}'"));
            } else {
                ctx.log(format!("extracting archive '{arch_name}'"));
            }
            ctx.work(&ctx.typ.clone()).await;
            ctx.with(|st| {
                let fail = |st: &mut State, e: String| {
                    if !same_exists {
                        st.cts.remove(&vmid);
                    } else if let Some(ct) = st.cts.get_mut(&vmid) {
                        ct.conf.remove("lock");
                    }
                    Err(e)
                };
                if let Err(e) = ctx.injected() {
                    return fail(st, e);
                }
                for v in &old_volumes {
                    st.remove_volume(&node, v);
                }
                let mut final_conf = conf;
                let mut allocated = Vec::new();
                for (k, v) in &disks {
                    let vol = mp_volume(v);
                    if let Some((sid, gib)) = new_volume(&vol) {
                        let size = (gib * (1u64 << 30) as f64) as u64;
                        match st.alloc_disk(&sid, &node, vmid, size) {
                            Ok(volid) => {
                                final_conf.insert(k.clone(), with_volume(k, v, &volid, size));
                                allocated.push(volid);
                            }
                            Err(e) => {
                                for a in &allocated {
                                    st.remove_volume(&node, a);
                                }
                                let what = if restore { "restore" } else { "create" };
                                return fail(st, format!("unable to {what} CT {vmid} - {e}"));
                            }
                        }
                    } else {
                        final_conf.insert(k.clone(), v.clone());
                    }
                }
                let pid = st.next_pid();
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf = final_conf;
                    if start {
                        ct.running = true;
                        ct.started = Some(Instant::now());
                        ct.pid = pid;
                    }
                }
                if start {
                    assign_leases(st, vmid);
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- config get/put/pending

fn get_config(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    if let Some(s) = p.str("snapshot") {
        let snap = ct.snapshots.get(&s).ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?;
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

const FASTPLUG: &[&str] = &["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"];

fn hotpluggable(key: &str, ct: &Ct, deleting: bool) -> bool {
    if FASTPLUG.contains(&key) || ["cpulimit", "cpuunits", "swap"].contains(&key) || key.starts_with("net") || key.starts_with("unused") {
        return true;
    }
    if deleting {
        return false;
    }
    key == "memory" || ((key.starts_with("mp") || key.starts_with("dev")) && !ct.conf.contains_key(key))
}

fn put_config(st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
            return Err(ApiError::e500("detected modified configuration - file changed by other user? Try again."));
        }
    }
    let cp = schema().config_params();
    for o in &revert {
        if Schema::property(cp, o).is_none() {
            return Err(ApiError::param("revert", format!("unknown option '{o}'")));
        }
        if rest.contains_key(o) {
            return Err(ApiError::param("revert", format!("you can't use '-{o}' and '-revert {o}' at the same time")));
        }
    }
    for o in &delete {
        if Schema::property(cp, o).is_none() {
            return Err(ApiError::param("delete", format!("unknown option '{o}'")));
        }
        if rest.contains_key(o) {
            return Err(ApiError::param("delete", format!("you can't use '-{o}' and -delete {o}' at the same time")));
        }
        if revert.contains(o) {
            return Err(ApiError::param("delete", format!("you can't use '-delete {o}' and '-revert {o}' at the same time")));
        }
    }
    for k in rest.keys().chain(delete.iter()) {
        if k == "unprivileged" {
            return Err(ApiError::param(k, format!("unable to modify read-only option: '{k}'")));
        }
        if (k == "features" || k.starts_with("dev") || k == "hookscript") && caller.user != "root@pam" {
            let feat_only_nesting = k == "features"
                && rest.get("features").is_none_or(|f| f.split(',').all(|x| x.is_empty() || x.starts_with("nesting=")));
            if !feat_only_nesting {
                return Err(ApiError::status(403, format!("Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)")));
            }
        }
        if k == "template" || k == "lock" {
            return Err(ApiError::param(k, format!("unable to modify read-only option: '{k}'")));
        }
    }
    let running = ct.running;
    // normalize values and allocate new volumes
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &rest {
        let mut v = normalize(st, k, v);
        if k == "rootfs" || k.starts_with("mp") {
            let vol = mp_volume(&v);
            if let Some((sid, gib)) = new_volume(&vol) {
                if k == "rootfs" {
                    return Err(ApiError::e500("cannot change rootfs volume with the config API, use move_volume"));
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
                if o.starts_with("mp") {
                    let vol = mp_volume(&old);
                    let n = (0..256).find(|i| !ct.conf.contains_key(&format!("unused{i}"))).unwrap_or(0);
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

fn pending(st: &State, p: &Params) -> ApiResult {
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

// ---------------------------------------------------------------- power

fn apply_pending(ct: &mut Ct) {
    for k in std::mem::take(&mut ct.pending_delete) {
        ct.conf.remove(&k);
    }
    for (k, v) in std::mem::take(&mut ct.pending) {
        ct.conf.insert(k, v);
    }
}

fn assign_leases(st: &mut State, vmid: u32) {
    let Some(ct) = st.cts.get(&vmid) else { return };
    let nets: Vec<(String, String)> = ct.conf.iter().filter(|(k, _)| k.starts_with("net")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let have: BTreeSet<String> = ct.leases.keys().cloned().collect();
    for (k, v) in nets {
        let Some(fmt) = fmt_of(&k) else { continue };
        let m = propstr::parse_raw(fmt, &v).unwrap_or_default();
        if m.get("ip").map(String::as_str) == Some("dhcp") && !have.contains(&k) {
            if let Some(ip) = st.dhcp_lease(m.get("bridge").map(String::as_str).unwrap_or("vmbr0")) {
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.leases.insert(k, ip);
                }
            }
        }
    }
}

fn do_start(st: &mut State, vmid: u32) {
    let pid = st.next_pid();
    if let Some(ct) = st.cts.get_mut(&vmid) {
        apply_pending(ct);
        ct.running = true;
        ct.started = Some(Instant::now());
        ct.pid = pid;
    }
    assign_leases(st, vmid);
}

fn do_stop(st: &mut State, vmid: u32) {
    let speed = st.cfg.clock_speed;
    if let Some(ct) = st.cts.get_mut(&vmid) {
        let up = ct.uptime(speed);
        ct.net_total.0 += up * 1500;
        ct.net_total.1 += up * 900;
        ct.running = false;
        ct.started = None;
        ct.pid = 0;
        apply_pending(ct);
    }
}

fn power(sim: &Arc<Sim>, st: &mut State, action: &str, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    if p.flag("skiplock") && caller.user != "root@pam" {
        return Err(ApiError::param("skiplock", "Only root may use this option."));
    }
    let skiplock = p.flag("skiplock");
    let typ = match action {
        "start" => {
            if ct.running {
                return Err(ApiError::e500(format!("CT {vmid} already running")));
            }
            "vzstart"
        }
        "stop" | "shutdown" | "suspend" => {
            if !ct.running {
                return Err(ApiError::e500(format!("CT {vmid} not running")));
            }
            match action {
                "stop" => "vzstop",
                "shutdown" => "vzshutdown",
                _ => "vzsuspend",
            }
        }
        "resume" => "vzresume",
        "reboot" => {
            if !ct.running {
                return Err(ApiError::e500(format!("VM {vmid} not running")));
            }
            "vzreboot"
        }
        _ => return Err(ApiError::status(501, format!("Method 'POST /nodes/{node}/lxc/{vmid}/status/{action}' not implemented"))),
    };
    let action = action.to_string();
    let upid = sim.spawn_task(st, &node.clone(), typ, &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get(&vmid).ok_or_else(|| format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"))?;
                if action == "start" && ct.is_template() {
                    return Err("you can't start a CT if it's a template".into());
                }
                if !skiplock && action != "reboot" && action != "resume" {
                    if let Some(l) = ct.lock() {
                        if !(l == "mounted" && (action == "start" || action == "stop")) {
                            return Err(format!("CT is locked ({l})"));
                        }
                    }
                }
                Ok(())
            })?;
            ctx.work(&ctx.typ.clone()).await;
            ctx.with(|st| -> Result<(), String> {
                ctx.injected()?;
                match action.as_str() {
                    "start" => {
                        if st.cts.get(&vmid).is_some_and(|c| c.running) {
                            return Err(format!("CT {vmid} already running"));
                        }
                        do_start(st, vmid)
                    }
                    "stop" | "shutdown" => do_stop(st, vmid),
                    "reboot" => {
                        do_stop(st, vmid);
                        do_start(st, vmid);
                    }
                    _ => {}
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- destroy

fn destroy(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    if ct.conf.get("protection").map(String::as_str) == Some("1") {
        return Err(ApiError::e500(format!("can't remove CT {vmid} - protection mode enabled")));
    }
    ct.check_lock()?;
    let force = p.flag("force");
    if ct.running && !force {
        return Err(ApiError::e500(format!("unable to destroy CT {vmid} - container is running")));
    }
    let purge = p.flag("purge");
    let upid = sim.spawn_task(st, &node.clone(), "vzdestroy", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get_mut(&vmid).ok_or_else(|| format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"))?;
                if let Some(l) = ct.lock() {
                    return Err(format!("CT is locked ({l})"));
                }
                if ct.running {
                    if !force {
                        return Err(format!("unable to destroy CT {vmid} - container is running"));
                    }
                    ct.running = false;
                    ct.started = None;
                }
                ct.conf.insert("lock".into(), "destroyed".into());
                Ok(())
            })?;
            if force {
                ctx.log(format!("forced to stop CT {vmid} before destroying!"));
            }
            ctx.work("vzdestroy").await;
            ctx.with(|st| -> Result<(), String> {
                let unlock = |st: &mut State| {
                    if let Some(ct) = st.cts.get_mut(&vmid) {
                        ct.conf.remove("lock");
                    }
                };
                if let Err(e) = ctx.injected() {
                    unlock(st);
                    return Err(e);
                }
                let vols = st.cts.get(&vmid).map(|c| c.volumes()).unwrap_or_default();
                for (_, v) in &vols {
                    if v.contains("base-") {
                        let base = v.split(':').nth(1).unwrap_or_default().to_string();
                        let used = st.cts.values().any(|c| c.vmid != vmid && c.volumes().iter().any(|(_, cv)| cv.contains(&format!("{base}/"))));
                        if used {
                            unlock(st);
                            return Err(format!("base volume '{v}' is still in use by linked cloned"));
                        }
                    }
                }
                for (_, v) in &vols {
                    st.remove_volume(&node, v);
                }
                for snap in st.cts.get(&vmid).map(|c| c.snapshots.values().cloned().collect::<Vec<_>>()).unwrap_or_default() {
                    let _ = snap;
                }
                st.cts.remove(&vmid);
                Ok(())
            })?;
            // (template branch) logged outside `ctx.with`: `log` takes the state lock again,
            // which deadlocked the whole simulator on every purge; same fix as on branch sim
            if purge {
                ctx.log(format!("purging CT {vmid} from related configurations.."));
            }
            Ok(())
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- template / clone / migrate / resize

fn make_template(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    ct.check_lock()?;
    if !ct.snapshots.is_empty() {
        return Err(ApiError::e500("unable to create template, because CT contains snapshots"));
    }
    if ct.is_template() {
        return Err(ApiError::e500("you can't convert a template to a template"));
    }
    if ct.running {
        return Err(ApiError::e500("you can't convert a CT to template if the CT is running"));
    }
    sim.spawn_task(st, &node.clone(), "vztemplate", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.work("vztemplate").await;
            ctx.with(|st| -> Result<(), String> {
                ctx.injected()?;
                let vols = st.cts.get(&vmid).map(|c| c.volumes()).unwrap_or_default();
                for (k, v) in vols {
                    if k.starts_with("unused") {
                        continue;
                    }
                    let newv = v.replace(&format!("vm-{vmid}-disk"), &format!("base-{vmid}-disk")).replace(&format!("subvol-{vmid}-disk"), &format!("basevol-{vmid}-disk"));
                    if let Some(mut vol) = st.remove_volume(&node, &v) {
                        vol.volid = newv.clone();
                        let key = st.vol_key(v.split(':').next().unwrap_or_default(), &node);
                        st.volumes.entry(key).or_default().push(vol);
                    }
                    if let Some(ct) = st.cts.get_mut(&vmid) {
                        if let Some(val) = ct.conf.get(&k).cloned() {
                            ct.conf.insert(k.clone(), val.replacen(&v, &newv, 1));
                        }
                    }
                }
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf.insert("template".into(), "1".into());
                }
                Ok(())
            })
        })
    });
    Ok(Value::Null)
}

fn clone(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let newid = p.u64("newid").unwrap_or(0) as u32;
    let mut target = p.str("target").filter(|t| t != &node && t != "localhost");
    if let Some(t) = &target {
        if !st.nodes.contains_key(t) {
            return Err(ApiError::e500(format!("no such cluster node '{t}'")));
        }
    }
    let storage = p.str("storage");
    if let Some(s) = &storage {
        st.storage_on_node(s, &node).map_err(ApiError::e500)?;
        if let Some(t) = &target {
            st.storage_on_node(s, t).map_err(ApiError::e500)?;
            if !st.storages[s].shared {
                return Err(ApiError::e500(format!("can't clone to non-shared storage '{s}'")));
            }
        }
    }
    let src = st.ct_on(&node, vmid)?.clone();
    src.check_lock()?;
    st.check_vmid_unused(newid)?;
    let full = p.bool("full").unwrap_or(!src.is_template());
    if storage.is_some() && !full {
        return Err(ApiError::e500("parameter 'storage' not allowed for linked clones"));
    }
    let snapname = p.str("snapname");
    let src_conf = match &snapname {
        Some(s) => src.snapshots.get(s).map(|x| x.conf.clone()).ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?,
        None => src.conf.clone(),
    };
    let mut newconf = BTreeMap::new();
    let mut disks = Vec::new();
    let mut shared_vm = true;
    for (k, v) in &src_conf {
        if k.starts_with("unused") || ["lock", "template", "parent", "snaptime"].contains(&k.as_str()) {
            continue;
        }
        if k == "rootfs" || k.starts_with("mp") {
            let vol = mp_volume(v);
            if !vol.contains(':') {
                return Err(ApiError::e500(format!("unable to clone mountpoint '{k}' (type bind)")));
            }
            let sid = storage.clone().unwrap_or_else(|| vol.split(':').next().unwrap_or_default().to_string());
            if !st.storages.get(&sid).is_some_and(|s| s.shared) {
                shared_vm = false;
            }
            if full {
                if src.running && snapname.is_none() {
                    return Err(ApiError::e500("Full clone of a running container is only possible from a snapshot"));
                }
            } else if !vol.contains("base-") {
                return Err(ApiError::e500(format!("Linked clone feature for '{vol}' is not available")));
            }
            disks.push((k.clone(), v.clone(), vol, sid));
        } else if k.starts_with("net") {
            let fmt = fmt_of(k);
            let mut m = fmt.and_then(|f| propstr::parse_raw(f, v).ok()).unwrap_or_default();
            m.insert("hwaddr".into(), st.random_mac());
            newconf.insert(k.clone(), fmt.map(|f| propstr::print(f, &m)).unwrap_or_else(|| v.clone()));
        } else {
            newconf.insert(k.clone(), v.clone());
        }
    }
    if let Some(t) = &target {
        if !shared_vm {
            return Err(ApiError::e500(format!("can't clone CT to node '{t}' (CT uses local storage)")));
        }
    }
    if let Some(h) = p.str("hostname") {
        newconf.insert("hostname".into(), h);
    }
    if let Some(d) = p.str("description") {
        newconf.insert("description".into(), d);
    }
    let pool = p.str("pool");
    if let Some(pl) = &pool {
        if !st.pools.contains_key(pl) {
            return Err(ApiError::e500(format!("pool '{pl}' does not exist")));
        }
    }
    let dest_node = target.take().unwrap_or_else(|| node.clone());
    if let Some(s) = st.cts.get_mut(&vmid) {
        s.conf.insert("lock".into(), "disk".into());
    }
    let mut newct = Ct::new(newid, &dest_node);
    newct.conf.insert("lock".into(), "create".into());
    newct.pool = pool;
    st.cts.insert(newid, newct);
    let upid = sim.spawn_task(st, &node.clone(), "vzclone", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.work("vzclone").await;
            ctx.with(|st| -> Result<(), String> {
                let fail = |st: &mut State, e: String| {
                    st.cts.remove(&newid);
                    if let Some(s) = st.cts.get_mut(&vmid) {
                        s.conf.remove("lock");
                    }
                    Err(format!("clone failed: {e}"))
                };
                if let Err(e) = ctx.injected() {
                    return fail(st, e);
                }
                let mut conf = newconf;
                let mut allocated = Vec::new();
                for (k, v, vol, sid) in &disks {
                    let src_size = {
                        let mut c = Ct::new(vmid, &node);
                        c.conf.insert(k.clone(), v.clone());
                        c.disk_size(k)
                    };
                    if full {
                        match st.alloc_disk(sid, &dest_node, newid, src_size) {
                            Ok(volid) => {
                                conf.insert(k.clone(), with_volume(k, v, &volid, src_size));
                                allocated.push(volid);
                            }
                            Err(e) => {
                                for a in &allocated {
                                    st.remove_volume(&dest_node, a);
                                }
                                return fail(st, e);
                            }
                        }
                    } else {
                        let base = vol.split_once(':').map(|x| x.1).unwrap_or_default();
                        let base_name = base.rsplit('/').next().unwrap_or(base);
                        let n = k.strip_prefix("mp").map(|x| x.parse::<u32>().unwrap_or(0) + 1).unwrap_or(0);
                        let volid = format!("{sid}:{base_name}/vm-{newid}-disk-{n}");
                        let key = st.vol_key(sid, &dest_node);
                        st.volumes.entry(key).or_default().push(Volume {
                            volid: volid.clone(),
                            content: "rootdir".into(),
                            format: "raw".into(),
                            size: src_size / 20,
                            ctime: now_epoch(),
                            vmid: Some(newid),
                            notes: None,
                            protected: false,
                            backup_conf: None,
                        });
                        conf.insert(k.clone(), with_volume(k, v, &volid, src_size));
                    }
                }
                if let Some(c) = st.cts.get_mut(&newid) {
                    c.conf = conf;
                }
                if let Some(s) = st.cts.get_mut(&vmid) {
                    s.conf.remove("lock");
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

fn migrate(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let target = p.req("target");
    if target == node {
        return Err(ApiError::param("target", "target is local node."));
    }
    if !st.nodes.contains_key(&target) {
        return Err(ApiError::e500(format!("no such cluster node '{target}'")));
    }
    let ct = st.ct_on(&node, vmid)?.clone();
    ct.check_lock()?;
    let online = p.flag("online");
    let restart = p.flag("restart");
    if ct.running && !online && !restart {
        return Err(ApiError::e500("can't migrate running container without --online or --restart"));
    }
    if !st.nodes[&target].online {
        return Err(ApiError::e500(format!("target node '{target}' is not online")));
    }
    for (_, v) in ct.volumes() {
        let sid = v.split(':').next().unwrap_or_default();
        st.storage_on_node(sid, &target).map_err(ApiError::e500)?;
    }
    let upid = sim.spawn_task(st, &node.clone(), "vzmigrate", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            let was_running = ctx.with(|st| -> Result<bool, String> {
                let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                if let Some(l) = ct.lock() {
                    return Err(format!("CT is locked ({l})"));
                }
                if ct.running && online && !restart {
                    return Err("lxc live migration is currently not implemented".into());
                }
                ct.conf.insert("lock".into(), "migrate".into());
                Ok(ct.running)
            })?;
            ctx.log(format!("starting migration of CT {vmid} to node '{target}'"));
            if was_running {
                ctx.log(format!("shutdown CT {vmid}"));
                ctx.with(|st| do_stop(st, vmid));
            }
            ctx.work("vzmigrate").await;
            ctx.with(|st| -> Result<(), String> {
                if let Err(e) = ctx.injected() {
                    if let Some(ct) = st.cts.get_mut(&vmid) {
                        ct.conf.remove("lock");
                    }
                    if was_running {
                        do_start(st, vmid);
                    }
                    return Err(e);
                }
                let vols = st.cts.get(&vmid).map(|c| c.volumes()).unwrap_or_default();
                for (_, v) in vols {
                    let sid = v.split(':').next().unwrap_or_default().to_string();
                    if st.storages.get(&sid).is_some_and(|s| s.shared) {
                        continue;
                    }
                    if let Some(vol) = st.remove_volume(&node, &v) {
                        st.volumes.entry((target.clone(), sid)).or_default().push(vol);
                    }
                }
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.node = target.clone();
                    ct.conf.remove("lock");
                }
                if was_running {
                    do_start(st, vmid);
                }
                Ok(())
            })?;
            ctx.log("migration finished successfully");
            Ok(())
        })
    });
    Ok(json!(upid))
}

fn resize(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let disk = p.req("disk");
    let size_s = p.req("size");
    let ct = st.ct_on(&node, vmid)?.clone();
    ct.check_lock()?;
    if let Some(d) = p.str("digest") {
        if d != ct.digest() {
            return Err(ApiError::e500("detected modified configuration - file changed by other user? Try again."));
        }
    }
    let Some(val) = ct.conf.get(&disk).cloned() else {
        return Err(ApiError::e500(format!("disk '{disk}' does not exist")));
    };
    let (rel, num) = match size_s.strip_prefix('+') {
        Some(n) => (true, n),
        None => (false, size_s.as_str()),
    };
    let req = propstr::parse_size(num).ok_or_else(|| ApiError::e500("invalid size string"))?;
    let cur = ct.disk_size(&disk);
    let newsize = if rel { cur + req } else { req };
    if newsize < cur {
        return Err(ApiError::e500("unable to shrink disk size"));
    }
    if newsize == cur {
        return Err(ApiError::e500("disk is already at specified size"));
    }
    let volid = mp_volume(&val);
    let sid = volid.split(':').next().unwrap_or_default().to_string();
    if let Ok(s) = st.storage_on_node(&sid, &node) {
        let used = st.storage_used(&sid, &node);
        if used + (newsize - cur) > s.capacity_bytes {
            return Err(ApiError::e500(format!("unable to resize '{volid}' - not enough free space on storage '{sid}'")));
        }
    }
    let upid = sim.spawn_task(st, &node.clone(), "resize", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| {
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf.insert("lock".into(), "disk".into());
                }
            });
            ctx.work("resize").await;
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                ct.conf.remove("lock");
                ctx.injected()?;
                let v = ct.conf.get(&disk).cloned().unwrap_or_default();
                ct.conf.insert(disk.clone(), with_volume(&disk, &v, &volid, newsize));
                let key = st.vol_key(&sid, &node);
                if let Some(vol) = st.volumes.get_mut(&key).and_then(|l| l.iter_mut().find(|x| x.volid == volid)) {
                    vol.size = newsize;
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- interfaces

fn interfaces(st: &State, p: &Params) -> ApiResult {
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
            let ll = format!("fe80::{:02x}{:02x}:{:02x}ff:fe{:02x}:{:02x}{:02x}/64", b[0] ^ 2, b[1], b[2], b[3], b[4], b[5]);
            e["inet6"] = match m.get("ip6").map(String::as_str) {
                Some(c) if c.contains(':') => json!(c),
                _ => json!(ll),
            };
        }
        out.push(e);
    }
    Ok(Value::Array(out))
}

// ---------------------------------------------------------------- snapshots

fn snapshot_list(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let mut out: Vec<Value> = ct
        .snapshots
        .iter()
        .map(|(n, s)| {
            let mut m = json!({"name": n, "snaptime": s.snaptime, "description": s.description});
            if let Some(pa) = &s.parent {
                m["parent"] = json!(pa);
            }
            m
        })
        .collect();
    let mut cur = json!({"name": "current", "description": "You are here!", "running": ct.running as u8, "digest": ct.digest()});
    if let Some(pa) = ct.conf.get("parent") {
        cur["parent"] = json!(pa);
    }
    out.push(cur);
    Ok(Value::Array(out))
}

fn snapshot_create(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let name = p.req("snapname");
    let ct = st.ct_on(&node, vmid)?;
    if name == "current" || name == "vzdump" {
        return Err(ApiError::e500(format!("snapshot name '{name}' is reserved")));
    }
    ct.check_lock()?;
    if ct.snapshots.contains_key(&name) {
        return Err(ApiError::e500(format!("snapshot name '{name}' already used")));
    }
    let description = p.str("description").unwrap_or_default();
    let upid = sim.spawn_task(st, &node.clone(), "vzsnapshot", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| {
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf.insert("lock".into(), "snapshot".into());
                }
            });
            ctx.work("vzsnapshot").await;
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                ct.conf.remove("lock");
                ctx.injected()?;
                let mut conf = ct.conf.clone();
                let parent = conf.remove("parent");
                ct.snapshots.insert(name.clone(), Snapshot { conf, snaptime: now_epoch(), description, parent });
                ct.conf.insert("parent".into(), name);
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

fn snapshot_delete(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let name = p.req("snapname");
    let ct = st.ct_on(&node, vmid)?;
    if !ct.snapshots.contains_key(&name) {
        return Err(ApiError::e500(format!("snapshot '{name}' does not exist")));
    }
    if !p.flag("force") {
        ct.check_lock()?;
    }
    let upid = sim.spawn_task(st, &node.clone(), "vzdelsnapshot", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| {
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf.insert("lock".into(), "snapshot-delete".into());
                }
            });
            ctx.work("vzdelsnapshot").await;
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                ct.conf.remove("lock");
                ctx.injected()?;
                let removed = ct.snapshots.remove(&name);
                let parent = removed.and_then(|s| s.parent);
                for s in ct.snapshots.values_mut() {
                    if s.parent.as_deref() == Some(name.as_str()) {
                        s.parent = parent.clone();
                    }
                }
                if ct.conf.get("parent") == Some(&name) {
                    match &parent {
                        Some(pa) => ct.conf.insert("parent".into(), pa.clone()),
                        None => ct.conf.remove("parent"),
                    };
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

fn snapshot_rollback(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let name = p.req("snapname");
    let ct = st.ct_on(&node, vmid)?;
    if !ct.snapshots.contains_key(&name) {
        return Err(ApiError::e500(format!("snapshot '{name}' does not exist")));
    }
    ct.check_lock()?;
    let start = p.flag("start");
    let upid = sim.spawn_task(st, &node.clone(), "vzrollback", &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| {
                do_stop(st, vmid);
                if let Some(ct) = st.cts.get_mut(&vmid) {
                    ct.conf.insert("lock".into(), "rollback".into());
                }
            });
            ctx.work("vzrollback").await;
            ctx.with(|st| -> Result<(), String> {
                let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                ct.conf.remove("lock");
                ctx.injected()?;
                let snap = ct.snapshots.get(&name).cloned().ok_or("snapshot vanished")?;
                ct.conf = snap.conf;
                ct.conf.insert("parent".into(), name);
                ct.pending.clear();
                ct.pending_delete.clear();
                if start {
                    do_start(st, vmid);
                }
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- firewall

fn rule_json(pos: usize, r: &Map<String, Value>) -> Value {
    let mut m = r.clone();
    m.insert("pos".into(), json!(pos));
    Value::Object(m)
}

fn fw_rules_digest(ct: &Ct) -> String {
    hex::encode(Sha1::digest(serde_json::to_string(&ct.fw_rules).unwrap_or_default().as_bytes()))
}

fn fw_options_digest(ct: &Ct) -> String {
    hex::encode(Sha1::digest(format!("{:?}", ct.fw_options).as_bytes()))
}

fn check_fw_digest(ct: &Ct, p: &Params) -> ApiResult<()> {
    if let Some(d) = p.str("digest") {
        if d != fw_rules_digest(ct) {
            return Err(ApiError::e500("detected modified configuration - file changed by other user? Try again."));
        }
    }
    Ok(())
}

fn rule_fields(p: &Params, into: &mut Map<String, Value>) {
    for (k, v) in &p.0 {
        if ["node", "vmid", "pos", "digest", "delete", "moveto"].contains(&k.as_str()) {
            continue;
        }
        let t = scalar_text(v).unwrap_or_default();
        let val = if k == "enable" { t.parse::<i64>().map(Value::from).unwrap_or(json!(t)) } else { json!(t) };
        into.insert(k.clone(), val);
    }
}

fn fw_rule_create(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    check_fw_digest(ct, p)?;
    let mut r = Map::new();
    rule_fields(p, &mut r);
    r.entry("enable").or_insert(json!(0));
    let pos = p.u64("pos").map(|x| x as usize).unwrap_or(0).min(ct.fw_rules.len());
    ct.fw_rules.insert(pos, r);
    Ok(Value::Null)
}

fn fw_rule_update(st: &mut State, p: &Params) -> ApiResult {
    let ct = st.ct_on_mut(&p.node(), p.vmid())?;
    check_fw_digest(ct, p)?;
    let pos = p.u64("pos").unwrap_or(0) as usize;
    if pos >= ct.fw_rules.len() {
        return Err(ApiError::e500("no rule at position"));
    }
    if let Some(to) = p.u64("moveto") {
        let r = ct.fw_rules.remove(pos);
        let to = (to as usize).min(ct.fw_rules.len());
        ct.fw_rules.insert(to, r);
        return Ok(Value::Null);
    }
    let r = &mut ct.fw_rules[pos];
    for k in propstr::split_list(&p.str("delete").unwrap_or_default()) {
        r.remove(&k);
    }
    rule_fields(p, r);
    Ok(Value::Null)
}

// ---------------------------------------------------------------- backups

fn vzdump(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let storage = p.str("storage").unwrap_or_else(|| "local".into());
    let scfg = st.storage_on_node(&storage, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.iter().any(|c| c == "backup") {
        return Err(ApiError::e500(format!("storage '{storage}' does not support backups")));
    }
    let selected: Vec<u32> = if p.flag("all") {
        let exclude: BTreeSet<String> = propstr::split_list(&p.str("exclude").unwrap_or_default()).into_iter().collect();
        st.cts.keys().filter(|v| !exclude.contains(&v.to_string())).copied().collect()
    } else if let Some(pool) = p.str("pool") {
        st.cts.values().filter(|c| c.pool.as_deref() == Some(pool.as_str())).map(|c| c.vmid).collect()
    } else if let Some(list) = p.str("vmid") {
        propstr::split_list(&list).iter().filter_map(|v| v.parse().ok()).collect()
    } else {
        return Err(ApiError::param("vmid", "property is missing and it is not optional"));
    };
    let local: Vec<u32> = selected.into_iter().filter(|v| st.cts.get(v).is_some_and(|c| c.node == node && !c.is_template())).collect();
    if local.is_empty() {
        return Ok(json!("OK"));
    }
    let compress = p.str("compress").unwrap_or_else(|| "0".into());
    let ext = match compress.as_str() {
        "1" | "lzo" => "tar.lzo",
        "gzip" => "tar.gz",
        "zstd" => "tar.zst",
        _ => "tar",
    };
    let notes_tmpl = p.str("notes-template");
    let protected = p.flag("protected");
    let mode = p.str("mode").unwrap_or_else(|| "snapshot".into());
    let id = if local.len() == 1 { local[0].to_string() } else { String::new() };
    let sem = st.vzdump_locks.entry(node.clone()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1))).clone();
    let active = st.vzdump_active.entry(node.clone()).or_default();
    if *active > 0 {
        st.stats.bump("vzdump_overlaps");
    }
    *active += 1;
    let cluster = st.cfg.cluster_name.clone();
    let upid = sim.spawn_task(st, &node.clone(), "vzdump", &id, &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            let vlist = local.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
            ctx.log(format!("INFO: starting new backup job: vzdump {vlist} --mode {mode} --storage {storage} --compress {compress} --node {node}"));
            let permit = match sem.try_acquire() {
                Ok(p) => p,
                Err(_) => {
                    ctx.log("INFO: trying to get global lock - waiting...");
                    let p = sem.acquire().await.map_err(|e| e.to_string())?;
                    ctx.log("INFO: got global lock");
                    p
                }
            };
            let mut errors = 0;
            for vmid in &local {
                let vmid = *vmid;
                let pre = ctx.with(|st| -> Result<String, String> {
                    let ct = st.cts.get_mut(&vmid).filter(|c| c.node == node).ok_or(format!("CT {vmid} not found on node"))?;
                    if let Some(l) = ct.lock() {
                        return Err(format!("CT is locked ({l})"));
                    }
                    ct.conf.insert("lock".into(), "backup".into());
                    Ok(ct.name())
                });
                let name = match pre {
                    Ok(n) => n,
                    Err(e) => {
                        ctx.log(format!("ERROR: Backup of VM {vmid} failed - {e}"));
                        errors += 1;
                        continue;
                    }
                };
                ctx.log(format!("INFO: Starting Backup of VM {vmid} (lxc)"));
                ctx.log(format!("INFO: CT Name: {name}"));
                ctx.log(format!("INFO: backup mode: {mode}"));
                ctx.work("vzdump").await;
                let res = ctx.with(|st| -> Result<String, String> {
                    let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                    ct.conf.remove("lock");
                    ctx.injected()?;
                    let conf = ct.conf.clone();
                    let size = (ct.disk_size("rootfs") as f64 * 0.08) as u64 + 50_000_000 + vmid as u64;
                    let ts = jiff::Timestamp::now();
                    let stamp = ts.strftime("%Y_%m_%d-%H_%M_%S").to_string();
                    let mut volid = format!("{storage}:backup/vzdump-lxc-{vmid}-{stamp}.{ext}");
                    let key = st.vol_key(&storage, &node);
                    let mut bump = 1;
                    while st.volumes.get(&key).is_some_and(|l| l.iter().any(|v| v.volid == volid)) {
                        let ts2 = ts + jiff::SignedDuration::from_secs(bump);
                        volid = format!("{storage}:backup/vzdump-lxc-{vmid}-{}.{ext}", ts2.strftime("%Y_%m_%d-%H_%M_%S"));
                        bump += 1;
                    }
                    let scfg = st.storages[&storage].clone();
                    if st.storage_used(&storage, &node) + size > scfg.capacity_bytes {
                        return Err(format!("vzdump archive: not enough space on storage '{storage}'"));
                    }
                    let notes = notes_tmpl.as_ref().map(|t| {
                        t.replace("{{cluster}}", &cluster).replace("{{guestname}}", &name).replace("{{node}}", &node).replace("{{vmid}}", &vmid.to_string())
                    });
                    st.volumes.entry(key).or_default().push(Volume {
                        volid: volid.clone(),
                        content: "backup".into(),
                        format: ext.into(),
                        size,
                        ctime: ts.as_second() as u64,
                        vmid: Some(vmid),
                        notes,
                        protected,
                        backup_conf: Some(conf),
                    });
                    Ok(volid)
                });
                match res {
                    Ok(volid) => {
                        let file = volid.split_once("backup/").map(|x| x.1).unwrap_or_default();
                        ctx.log(format!("INFO: creating vzdump archive '/mnt/pve/{storage}/dump/{file}'"));
                        ctx.log(format!("INFO: Finished Backup of VM {vmid} (00:00:0{})", 1));
                    }
                    Err(e) => {
                        ctx.log(format!("ERROR: Backup of VM {vmid} failed - {e}"));
                        errors += 1;
                    }
                }
            }
            drop(permit);
            ctx.with(|st| {
                if let Some(a) = st.vzdump_active.get_mut(&node) {
                    *a = a.saturating_sub(1);
                }
            });
            if errors > 0 {
                ctx.log("INFO: Backup job finished with errors");
                Err("job errors".into())
            } else {
                ctx.log("INFO: Backup job finished successfully");
                Ok(())
            }
        })
    });
    Ok(json!(upid))
}

// ---------------------------------------------------------------- storage

fn storage_list(st: &State, p: &Params) -> ApiResult {
    let node = p.node();
    let content: Vec<String> = p.str("content").map(|c| propstr::split_list(&c)).unwrap_or_default();
    let only = p.str("storage");
    let list = st
        .storages
        .values()
        .filter(|s| st.storage_on_node(&s.id, &node).is_ok())
        .filter(|s| only.as_ref().is_none_or(|o| o == &s.id))
        .filter(|s| content.is_empty() || content.iter().any(|c| s.content.contains(c)))
        .map(|s| storage_json(st, s, &node))
        .collect();
    Ok(Value::Array(list))
}

fn storage_content(st: &State, p: &Params) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    st.storage_on_node(&sid, &node).map_err(ApiError::e500)?;
    let content = p.str("content");
    let vmid = p.u64("vmid").map(|v| v as u32);
    let key = st.vol_key(&sid, &node);
    let list = st
        .volumes
        .get(&key)
        .map(|l| {
            l.iter()
                .filter(|v| content.as_ref().is_none_or(|c| c == &v.content || (c == "images" && v.content == "rootdir" && false)))
                .filter(|v| vmid.is_none_or(|id| v.vmid == Some(id)))
                .map(|v| {
                    let mut m = json!({"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime});
                    if let Some(id) = v.vmid {
                        m["vmid"] = json!(id);
                    }
                    if v.content == "backup" {
                        m["subtype"] = json!("lxc");
                    }
                    if let Some(n) = &v.notes {
                        m["notes"] = json!(n.lines().next().unwrap_or_default());
                    }
                    if v.protected {
                        m["protected"] = json!(1);
                    }
                    m
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Value::Array(list))
}

fn delete_volume(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let volid = volume_param(p);
    let v = st.find_volume(&node, &volid).cloned().ok_or_else(|| ApiError::e500(format!("volume '{volid}' does not exist")))?;
    if v.protected {
        return Err(ApiError::e500(format!("unable to delete protected backup '{volid}'")));
    }
    if v.content == "rootdir" {
        if let Some(owner) = v.vmid.and_then(|id| st.cts.get(&id)) {
            if owner.volumes().iter().any(|(_, x)| x == &volid) {
                return Err(ApiError::e500(format!("volume '{volid}' is in use by CT {}", owner.vmid)));
            }
        }
    }
    let upid = sim.spawn_task(st, &node.clone(), "imgdel", &volid.replace([':', '/'], "_"), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.with(|st| -> Result<(), String> {
                ctx.injected()?;
                st.remove_volume(&node, &volid);
                Ok(())
            })
        })
    });
    Ok(json!(upid))
}

fn download_url(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    let content = p.req("content");
    let scfg = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.contains(&content) {
        return Err(ApiError::e500(format!("storage '{sid}' is not configured for content-type '{content}'")));
    }
    let filename = p.req("filename");
    let sub = if content == "vztmpl" { "vztmpl" } else { content.as_str() };
    let volid = format!("{sid}:{sub}/{filename}");
    let size = 100_000_000 + (filename.len() as u64) * 1000;
    let url = p.req("url");
    let id = filename.replace([':', '/'], "_");
    let upid = sim.spawn_task(st, &node.clone(), "download", &id, &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.log(format!("downloading {url} to /var/lib/vz/template/cache/{filename}"));
            ctx.work("download").await;
            ctx.with(|st| -> Result<(), String> {
                ctx.injected()?;
                let key = st.vol_key(&sid, &node);
                let mut v = vztmpl_volume(&volid, size);
                v.content = content.clone();
                let list = st.volumes.entry(key).or_default();
                list.retain(|x| x.volid != volid);
                list.push(v);
                Ok(())
            })?;
            ctx.log("download of file finished");
            Ok(())
        })
    });
    Ok(json!(upid))
}

fn aplinfo(st: &State) -> Value {
    Value::Array(
        st.cfg
            .appliances
            .iter()
            .map(|a| {
                json!({
                    "template": a.template, "package": a.package, "os": a.os, "version": a.version, "headline": a.headline,
                    "section": "system", "type": "lxc", "architecture": "amd64",
                    "location": format!("http://download.proxmox.com/images/system/{}", a.template),
                    "source": format!("http://download.proxmox.com/images/system/{}", a.template),
                    "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
                    "maintainer": "Proxmox Support Team <support@proxmox.com>",
                    "description": a.headline,
                    "sha512sum": hex::encode(sha2::Sha512::digest(a.template.as_bytes())),
                })
            })
            .collect(),
    )
}

fn apl_download(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    let template = p.req("template");
    let Some(a) = st.cfg.appliances.iter().find(|a| a.template == template).cloned() else {
        return Err(ApiError::e500(format!("no such template '{template}'")));
    };
    let scfg = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.iter().any(|c| c == "vztmpl") {
        return Err(ApiError::e500(format!("storage '{sid}' does not support templates")));
    }
    let volid = format!("{sid}:vztmpl/{template}");
    let upid = sim.spawn_task(st, &node.clone(), "download", &template.clone(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.log(format!("starting template download from: {}", format_args!("http://download.proxmox.com/images/system/{template}")));
            ctx.work("download").await;
            ctx.with(|st| -> Result<(), String> {
                ctx.injected()?;
                let key = st.vol_key(&sid, &node);
                let list = st.volumes.entry(key).or_default();
                if !list.iter().any(|v| v.volid == volid) {
                    list.push(vztmpl_volume(&volid, a.size_bytes));
                }
                Ok(())
            })?;
            ctx.log(format!("download of '{template}' to '{volid}' finished"));
            Ok(())
        })
    });
    Ok(json!(upid))
}
