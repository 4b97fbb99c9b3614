//! `POST /nodes/{node}/vzdump`.

use super::*;

pub(super) fn vzdump(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let storage = p.str("storage").unwrap_or_else(|| "local".into());
    let scfg = st.storage_on_node(&storage, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.iter().any(|c| c == "backup") {
        return Err(ApiError::e500(format!("storage '{storage}' does not support backups")));
    }
    let selected: Vec<u32> = if p.flag("all") {
        let exclude: BTreeSet<String> = propstr::split_list(&p.str("exclude").unwrap_or_default())
            .into_iter()
            .collect();
        st.cts
            .keys()
            .filter(|v| !exclude.contains(&v.to_string()))
            .copied()
            .collect()
    } else if let Some(pool) = p.str("pool") {
        st.cts
            .values()
            .filter(|c| c.pool.as_deref() == Some(pool.as_str()))
            .map(|c| c.vmid)
            .collect()
    } else if let Some(list) = p.str("vmid") {
        propstr::split_list(&list)
            .iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    } else {
        return Err(ApiError::param("vmid", "property is missing and it is not optional"));
    };
    let local: Vec<u32> = selected
        .into_iter()
        .filter(|v| st.cts.get(v).is_some_and(|c| c.node == node && !c.is_template()))
        .collect();
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
    let id = if local.len() == 1 {
        local[0].to_string()
    } else {
        String::new()
    };
    let sem = st
        .vzdump_locks
        .entry(node.clone())
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
        .clone();
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
                        unescape_notes(t).replace("{{cluster}}", &cluster).replace("{{guestname}}", &name).replace("{{node}}", &node).replace("{{vmid}}", &vmid.to_string())
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
                        oci: None,
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

/// Proxmox's `notes-template` escapes (PVE::VZDump `generate_notes`): backslash-n is a line
/// break and a doubled backslash one backslash; done before the `{{var}}` substitution.
pub(crate) fn unescape_notes(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
