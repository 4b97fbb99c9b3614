//! Template conversion, clone, migrate and resize.

use super::*;

pub(super) fn make_template(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    ct.check_lock()?;
    if !ct.snapshots.is_empty() {
        return Err(ApiError::e500(
            "unable to create template, because CT contains snapshots",
        ));
    }
    if ct.is_template() {
        return Err(ApiError::e500("you can't convert a template to a template"));
    }
    if ct.running {
        return Err(ApiError::e500(
            "you can't convert a CT to template if the CT is running",
        ));
    }
    sim.spawn_task(
        st,
        &node.clone(),
        "vztemplate",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.work("vztemplate").await;
                ctx.with(|st| -> Result<(), String> {
                    ctx.injected()?;
                    let vols = st.cts.get(&vmid).map(|c| c.volumes()).unwrap_or_default();
                    for (k, v) in vols {
                        if k.starts_with("unused") {
                            continue;
                        }
                        let newv = v
                            .replace(&format!("vm-{vmid}-disk"), &format!("base-{vmid}-disk"))
                            .replace(&format!("subvol-{vmid}-disk"), &format!("basevol-{vmid}-disk"));
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
        },
    );
    Ok(Value::Null)
}

pub(super) fn clone(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
        Some(s) => src
            .snapshots
            .get(s)
            .map(|x| x.conf.clone())
            .ok_or_else(|| ApiError::e500(format!("snapshot '{s}' does not exist")))?,
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
            let sid = storage
                .clone()
                .unwrap_or_else(|| vol.split(':').next().unwrap_or_default().to_string());
            if !st.storages.get(&sid).is_some_and(|s| s.shared) {
                shared_vm = false;
            }
            if full {
                if src.running && snapname.is_none() {
                    return Err(ApiError::e500(
                        "Full clone of a running container is only possible from a snapshot",
                    ));
                }
            } else if !vol.contains("base-") {
                return Err(ApiError::e500(format!(
                    "Linked clone feature for '{vol}' is not available"
                )));
            }
            disks.push((k.clone(), v.clone(), vol, sid));
        } else if k.starts_with("net") {
            let fmt = fmt_of(k);
            let mut m = fmt.and_then(|f| propstr::parse_raw(f, v).ok()).unwrap_or_default();
            m.insert("hwaddr".into(), st.random_mac());
            newconf.insert(
                k.clone(),
                fmt.map(|f| propstr::print(f, &m)).unwrap_or_else(|| v.clone()),
            );
        } else {
            newconf.insert(k.clone(), v.clone());
        }
    }
    if let Some(t) = &target {
        if !shared_vm {
            return Err(ApiError::e500(format!(
                "can't clone CT to node '{t}' (CT uses local storage)"
            )));
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
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzclone",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
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
                            let n = k
                                .strip_prefix("mp")
                                .map(|x| x.parse::<u32>().unwrap_or(0) + 1)
                                .unwrap_or(0);
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
                                oci: None,
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
        },
    );
    Ok(json!(upid))
}

pub(super) fn migrate(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
    if ha_managed(st, vmid) {
        return ha_migrate(sim, st, &node, vmid, &target, caller);
    }
    ct.check_lock()?;
    let online = p.flag("online");
    let restart = p.flag("restart");
    if ct.running && !online && !restart {
        return Err(ApiError::e500(
            "can't migrate running container without --online or --restart",
        ));
    }
    if !st.nodes[&target].online {
        return Err(ApiError::e500(format!("target node '{target}' is not online")));
    }
    for (_, v) in ct.volumes() {
        let sid = v.split(':').next().unwrap_or_default();
        st.storage_on_node(sid, &target).map_err(ApiError::e500)?;
    }
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzmigrate",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody { Box::pin(migrate_body(ctx, vmid, node, target, online, restart)) },
    );
    Ok(json!(upid))
}

/// The `vzmigrate` task: stop (restart migration), move the local volumes and the config to
/// `target`, start again. Also what the HA stack runs to relocate a container.
pub(super) async fn migrate_body(
    ctx: TaskCtx,
    vmid: u32,
    node: String,
    target: String,
    online: bool,
    restart: bool,
) -> Result<(), String> {
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
}

pub(super) fn resize(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let disk = p.req("disk");
    let size_s = p.req("size");
    let ct = st.ct_on(&node, vmid)?.clone();
    ct.check_lock()?;
    if let Some(d) = p.str("digest") {
        if d != ct.digest() {
            return Err(ApiError::e500(
                "detected modified configuration - file changed by other user? Try again.",
            ));
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
            return Err(ApiError::e500(format!(
                "unable to resize '{volid}' - not enough free space on storage '{sid}'"
            )));
        }
    }
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "resize",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                locked_task(&ctx, vmid, "disk", |st| {
                    let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
                    let v = ct.conf.get(&disk).cloned().unwrap_or_default();
                    ct.conf.insert(disk.clone(), with_volume(&disk, &v, &volid, newsize));
                    let key = st.vol_key(&sid, &node);
                    if let Some(vol) = st
                        .volumes
                        .get_mut(&key)
                        .and_then(|l| l.iter_mut().find(|x| x.volid == volid))
                    {
                        vol.size = newsize;
                    }
                    Ok(())
                })
                .await
            })
        },
    );
    Ok(json!(upid))
}
