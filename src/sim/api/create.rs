//! `POST /nodes/{node}/lxc`: create and restore.

use super::*;

pub(super) fn create(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
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
            return Err(ApiError::e500(format!(
                "unable to restore CT {vmid} - protection mode enabled"
            )));
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
    check_root_only(caller, &params, &[])?;
    // pve-container 6.1.4: enabling HA at create or restore needs Sys.Console on /
    let ha_managed = p.flag("ha-managed");
    if ha_managed
        && caller
            .privs
            .as_ref()
            .is_some_and(|v| !v.iter().any(|x| x == "Sys.Console"))
    {
        return Err(ApiError::status(403, "Permission check failed (/, Sys.Console)\n"));
    }
    // disks
    let mut disks: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in params.clone() {
        if k == "rootfs" || k.starts_with("mp") {
            let v = if v.split(',').next().is_some_and(|f| f.parse::<f64>().is_ok()) {
                format!("{storage}:{v}")
            } else {
                v
            };
            params.remove(&k);
            disks.insert(k, v);
        } else if k.starts_with("unused") {
            params.remove(&k);
        }
    }
    if !disks.is_empty() && !disks.contains_key("rootfs") {
        return Err(ApiError::e500(
            "mount points configured, but 'rootfs' not set - aborting",
        ));
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
                    m.insert(
                        "volume".into(),
                        format!("{storage}:{}", c.disk_size(k) as f64 / (1u64 << 30) as f64),
                    );
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
            return Err(ApiError::param(
                k,
                format!("unable to parse volume '{vol}' - use STORAGE:SIZE_IN_GiB to allocate a new volume"),
            ));
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
    // create from an OCI image: restore_oci_archive maps its config (after the given params)
    let oci = oci_image_of(&archive)
        .filter(|_| !restore)
        .map(|img| apply_oci_config(&mut conf, img));
    // the config file exists at once, locked
    let mut ct = if same_exists {
        st.cts.remove(&vmid).unwrap_or_else(|| Ct::new(vmid, &node))
    } else {
        Ct::new(vmid, &node)
    };
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
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        typ,
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                if restore {
                    ctx.log(format!("recovering backed-up configuration from '{arch_name}'"));
                } else if oci.is_none() {
                    ctx.log(format!("extracting archive '{arch_name}'"));
                }
                for line in oci.iter().flat_map(|r| r.iter().flatten()) {
                    ctx.log(line.clone());
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
                    if let Some(Err(e)) = &oci {
                        return fail(st, e.clone());
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
                    if ha_managed {
                        let state = if start { "started" } else { "stopped" };
                        st.ha.resources.insert(
                            format!("ct:{vmid}"),
                            HaResource {
                                state: state.into(),
                                max_restart: 1,
                                max_relocate: 1,
                                failback: true,
                                comment: None,
                            },
                        );
                    }
                    Ok(())
                })
            })
        },
    );
    Ok(json!(upid))
}
