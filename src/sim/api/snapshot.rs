//! Snapshots: list, create, delete, rollback.

use super::*;

pub(super) fn snapshot_list(st: &State, p: &Params) -> ApiResult {
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
    let mut cur =
        json!({"name": "current", "description": "You are here!", "running": ct.running as u8, "digest": ct.digest()});
    if let Some(pa) = ct.conf.get("parent") {
        cur["parent"] = json!(pa);
    }
    out.push(cur);
    Ok(Value::Array(out))
}

pub(super) fn snapshot_create(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzsnapshot",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                locked_task(&ctx, vmid, "snapshot", |st| {
                    let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                    let mut conf = ct.conf.clone();
                    let parent = conf.remove("parent");
                    ct.snapshots.insert(
                        name.clone(),
                        Snapshot {
                            conf,
                            snaptime: now_epoch(),
                            description,
                            parent,
                        },
                    );
                    ct.conf.insert("parent".into(), name);
                    Ok(())
                })
                .await
            })
        },
    );
    Ok(json!(upid))
}

pub(super) fn snapshot_delete(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzdelsnapshot",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                locked_task(&ctx, vmid, "snapshot-delete", |st| {
                    let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
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
                .await
            })
        },
    );
    Ok(json!(upid))
}

pub(super) fn snapshot_rollback(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let name = p.req("snapname");
    let ct = st.ct_on(&node, vmid)?;
    if !ct.snapshots.contains_key(&name) {
        return Err(ApiError::e500(format!("snapshot '{name}' does not exist")));
    }
    ct.check_lock()?;
    let start = p.flag("start");
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzrollback",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.with(|st| do_stop(st, vmid));
                locked_task(&ctx, vmid, "rollback", |st| {
                    let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
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
                .await
            })
        },
    );
    Ok(json!(upid))
}

pub(super) fn snapshot_index(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let s = p.req("snapname");
    if !ct.snapshots.contains_key(&s) {
        return Err(ApiError::e500(format!("snapshot '{s}' does not exist")));
    }
    Ok(json!([{"subdir":"rollback"},{"subdir":"config"}]))
}

pub(super) fn snapshot_config(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let s = p.req("snapname");
    let snap = ct
        .snapshots
        .get(&s)
        .ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?;
    let mut m = State::typed_conf(&snap.conf);
    m.insert("snaptime".into(), json!(snap.snaptime));
    if let Some(pa) = &snap.parent {
        m.insert("parent".into(), json!(pa));
    }
    m.insert("digest".into(), json!(ct.digest()));
    Ok(Value::Object(m))
}
