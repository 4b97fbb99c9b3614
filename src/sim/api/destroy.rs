//! `DELETE /nodes/{node}/lxc/{vmid}`.

use super::*;

pub(super) fn destroy(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    if ct.conf.get("protection").map(String::as_str) == Some("1") {
        return Err(ApiError::e500(format!(
            "can't remove CT {vmid} - protection mode enabled"
        )));
    }
    ct.check_lock()?;
    let purge = p.flag("purge");
    let ha = st.ha.of_ct(vmid).is_some();
    if ha && !purge {
        return Err(ApiError::e500(format!(
            "unable to remove CT {vmid} - used in HA resources and purge parameter not set."
        )));
    }
    let force = p.flag("force");
    if ct.running && !force {
        return Err(ApiError::e500(format!(
            "unable to destroy CT {vmid} - container is running"
        )));
    }
    // Without it Proxmox removes only the volumes the config references (rootfs, mpN,
    // unusedN); with it, every `vm-<vmid>-disk-*` on every enabled storage as well.
    let unreferenced = p.flag("destroy-unreferenced-disks");
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "vzdestroy",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.with(|st| -> Result<(), String> {
                    let ct = st
                        .cts
                        .get_mut(&vmid)
                        .ok_or_else(|| format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"))?;
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
                let removed = ctx.with(|st| -> Result<Vec<String>, String> {
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
                            let used = st.cts.values().any(|c| {
                                c.vmid != vmid && c.volumes().iter().any(|(_, cv)| cv.contains(&format!("{base}/")))
                            });
                            if used {
                                unlock(st);
                                return Err(format!("base volume '{v}' is still in use by linked cloned"));
                            }
                        }
                    }
                    for (_, v) in &vols {
                        st.remove_volume(&node, v);
                    }
                    st.cts.remove(&vmid);
                    let removed = if unreferenced {
                        st.destroy_unreferenced_disks(&node, vmid)
                    } else {
                        Vec::new()
                    };
                    Ok(removed)
                })?;
                for v in removed {
                    ctx.log(format!("Destroying unreferenced disk '{v}'"));
                }
                if purge {
                    ctx.log(format!("purging CT {vmid} from related configurations.."));
                    let was_ha = ctx.with(|st| {
                        let sid = format!("ct:{vmid}");
                        let had = st.ha.resources.contains_key(&sid);
                        if had {
                            st.ha.remove_resource(&sid, true);
                        }
                        had
                    });
                    if was_ha {
                        ctx.log(format!("NOTE: removed CT {vmid} from HA resource configuration."));
                    }
                }
                Ok(())
            })
        },
    );
    Ok(json!(upid))
}
