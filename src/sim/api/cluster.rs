//! Cluster-wide and node reads: `/version`, `/cluster/*`, `/nodes`, tasks, pools.

use super::*;

pub(super) fn resource_lxc(st: &State, ct: &Ct) -> Map<String, Value> {
    let s = st.ct_status(ct);
    let mut m = Map::new();
    m.insert("id".into(), json!(format!("lxc/{}", ct.vmid)));
    m.insert("type".into(), json!("lxc"));
    m.insert("vmid".into(), json!(ct.vmid));
    m.insert("name".into(), s["name"].clone());
    m.insert("node".into(), json!(ct.node));
    m.insert("status".into(), s["status"].clone());
    m.insert("template".into(), json!(ct.is_template() as u8));
    for k in [
        "cpu",
        "mem",
        "maxmem",
        "disk",
        "maxdisk",
        "netin",
        "netout",
        "diskread",
        "diskwrite",
        "uptime",
    ] {
        m.insert(k.into(), s[k].clone());
    }
    m.insert("maxcpu".into(), s["cpus"].clone());
    if let Some(t) = ct.conf.get("tags") {
        m.insert("tags".into(), json!(t));
    }
    if let Some(l) = ct.lock() {
        m.insert("lock".into(), json!(l));
    }
    let sid = format!("ct:{}", ct.vmid);
    if st.ha.resources.contains_key(&sid) {
        m.insert("hastate".into(), json!(super::ha_crm::verbose_state(st, &sid)));
    }
    if let Some(pool) = &ct.pool {
        m.insert("pool".into(), json!(pool));
    }
    m
}

pub(super) fn node_json(st: &State, name: &str) -> Value {
    let n = &st.nodes[name];
    if !n.online {
        return json!({"node": name, "status": "offline", "id": format!("node/{name}"), "type": "node", "level": ""});
    }
    let used_mem: u64 = st
        .cts
        .values()
        .filter(|c| c.node == name && c.running)
        .map(|c| st.ct_status(c)["mem"].as_u64().unwrap_or(0))
        .sum();
    let running = st.cts.values().filter(|c| c.node == name && c.running).count() as f64;
    json!({
        "node": name, "status": "online", "id": format!("node/{name}"), "type": "node", "level": "",
        "cpu": 0.01 + running * 0.003, "maxcpu": n.cpus, "mem": (2u64 << 30) + used_mem, "maxmem": n.memory,
        "disk": st.storage_used("local", name), "maxdisk": st.storages.get("local").map(|s| s.capacity_bytes).unwrap_or(100 << 30),
        "uptime": (n.boot.elapsed().as_secs_f64() * st.cfg.clock_speed) as u64 + 86400,
        "ssl_fingerprint": st.fingerprint,
    })
}

pub(super) fn nodes(st: &State) -> Value {
    Value::Array(st.nodes.keys().map(|n| node_json(st, n)).collect())
}

pub(super) fn node_status(st: &State, node: &str) -> Value {
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

pub(super) fn storage_json(st: &State, s: &crate::sim::config::StorageConfig, node: &str) -> Value {
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

pub(super) fn cluster_resources(st: &State, ty: Option<&str>) -> Value {
    let mut out = Vec::new();
    if ty.is_none() || ty == Some("vm") {
        for ct in st.cts.values() {
            out.push(Value::Object(resource_lxc(st, ct)));
        }
        for vm in st.qemus.values() {
            out.push(vm.resource_json());
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

pub(super) fn cluster_status(st: &State) -> Value {
    let mut v = vec![
        json!({"type": "cluster", "id": "cluster", "name": st.cfg.cluster_name, "nodes": st.nodes.len(), "quorate": 1, "version": 3}),
    ];
    for (i, (n, s)) in st.nodes.iter().enumerate() {
        v.push(json!({"type": "node", "id": format!("node/{n}"), "name": n, "nodeid": i + 1, "online": s.online as u8, "local": (i == 0) as u8, "ip": format!("192.0.2.{}", 11 + i), "level": ""}));
    }
    Value::Array(v)
}

pub(super) fn nextid(st: &State, p: &Params) -> ApiResult {
    if let Some(v) = p.u64("vmid") {
        if st.cts.contains_key(&(v as u32)) || st.qemus.contains_key(&(v as u32)) {
            return Err(ApiError::param("vmid", format!("VM {v} already exists")));
        }
        return Ok(json!(v.to_string()));
    }
    for id in 100u32..1_000_000 {
        if !st.cts.contains_key(&id) && !st.qemus.contains_key(&id) {
            return Ok(json!(id.to_string()));
        }
    }
    Err(ApiError::e500("unable to get any free VMID in range [100, 999999]"))
}

pub(super) fn task_list(st: &State, node: Option<&str>, p: &Params) -> (Value, u64) {
    let start = p.u64("start").unwrap_or(0) as usize;
    let limit = p.u64("limit").unwrap_or(50) as usize;
    let typefilter = p.str("typefilter");
    let vmid = p.str("vmid");
    let userfilter = p.str("userfilter");
    let source = p.str("source").unwrap_or_else(|| "archive".into());
    let errors = p.flag("errors");
    let statusfilter: Vec<String> = p
        .str("statusfilter")
        .map(|s| propstr::split_list(&s))
        .unwrap_or_default();
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
            "archive" => true,
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

pub(super) fn version(st: &State) -> Value {
    let release = st.cfg.version.rsplit_once('.').map(|x| x.0).unwrap_or("9.1");
    json!({"version": st.cfg.version, "release": release, "repoid": "5e1f0c3a"})
}

pub(super) fn lxc_list(st: &State, p: &Params) -> Value {
    let node = p.node();
    Value::Array(
        st.cts
            .values()
            .filter(|c| c.node == node)
            .map(|c| Value::Object(st.ct_status(c)))
            .collect(),
    )
}

pub(super) fn task<'a>(st: &'a State, p: &Params) -> ApiResult<&'a crate::sim::state::Task> {
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

/// A task's status; the first read that finds it ended is marked (for `/_sim/tasks`).
pub(super) fn task_status(st: &mut State, p: &Params) -> ApiResult {
    task(st, p)?;
    let t = st.tasks.get_mut(&p.req("upid")).expect("found above");
    if t.exitstatus.is_some() && t.times.seen_ended_ms.is_none() {
        t.times.seen_ended_ms = Some(crate::sim::api_error::now_ms());
    }
    Ok(t.status_json())
}

pub(super) fn task_index(st: &State, p: &Params) -> ApiResult {
    task(st, p)?;
    Ok(json!([{"name":"log"},{"name":"status"}]))
}

pub(super) fn task_stop(st: &mut State, p: &Params) -> ApiResult {
    let t = task(st, p)?;
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

pub(super) fn task_log(st: &State, p: &Params) -> ApiResult<(Value, Option<u64>)> {
    let t = task(st, p)?;
    let start = p.u64("start").unwrap_or(0) as usize;
    let limit = p.u64("limit").unwrap_or(50) as usize;
    let lines: Vec<Value> = t
        .log
        .iter()
        .enumerate()
        .skip(start)
        .take(limit)
        .map(|(i, l)| json!({"n": i + 1, "t": l}))
        .collect();
    Ok((Value::Array(lines), Some(t.log.len() as u64)))
}

pub(super) fn pool_list(st: &State, p: &Params) -> Value {
    let filter = p.str("poolid");
    Value::Array(
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
                        st.cts
                            .values()
                            .filter(|ct| ct.pool.as_deref() == Some(k))
                            .map(|ct| Value::Object(resource_lxc(st, ct)))
                            .collect(),
                    );
                }
                m
            })
            .collect(),
    )
}

pub(super) fn pool_create(st: &mut State, p: &Params) -> ApiResult {
    let id = p.req("poolid");
    if st.pools.contains_key(&id) {
        return Err(ApiError::e500(format!("pool '{id}' already exists")));
    }
    st.pools.insert(id, p.str("comment").unwrap_or_default());
    Ok(Value::Null)
}
