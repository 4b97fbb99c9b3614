//! `POST …/status/{start,stop,shutdown,reboot,suspend,resume}` and the power helpers.

use super::*;

pub(super) fn apply_pending(ct: &mut Ct) {
    for k in std::mem::take(&mut ct.pending_delete) {
        ct.conf.remove(&k);
    }
    for (k, v) in std::mem::take(&mut ct.pending) {
        ct.conf.insert(k, v);
    }
}

pub(super) fn assign_leases(st: &mut State, vmid: u32) {
    let Some(ct) = st.cts.get(&vmid) else { return };
    let nets: Vec<(String, String)> = ct
        .conf
        .iter()
        .filter(|(k, _)| k.starts_with("net"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
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

pub(super) fn do_start(st: &mut State, vmid: u32) {
    let pid = st.next_pid();
    if let Some(ct) = st.cts.get_mut(&vmid) {
        apply_pending(ct);
        ct.running = true;
        ct.started = Some(Instant::now());
        ct.pid = pid;
    }
    assign_leases(st, vmid);
}

pub(super) fn do_stop(st: &mut State, vmid: u32) {
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

pub(super) fn power(sim: &Arc<Sim>, st: &mut State, action: &str, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    let ct = st.ct_on(&node, vmid)?;
    if p.flag("skiplock") && caller.user != "root@pam" {
        return Err(ApiError::param("skiplock", "Only root may use this option."));
    }
    let skiplock = p.flag("skiplock");
    if ha_managed(st, vmid) && matches!(action, "start" | "stop" | "shutdown") {
        if action != "start" && !ct.running {
            return Err(ApiError::e500(format!("CT {vmid} not running")));
        }
        return ha_power(sim, st, &node, vmid, action, caller);
    }
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
        _ => {
            return Err(ApiError::status(
                501,
                format!("Method 'POST /nodes/{node}/lxc/{vmid}/status/{action}' not implemented"),
            ))
        }
    };
    let action = action.to_string();
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        typ,
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.with(|st| -> Result<(), String> {
                    let ct = st
                        .cts
                        .get(&vmid)
                        .ok_or_else(|| format!("Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"))?;
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
        },
    );
    Ok(json!(upid))
}

pub(super) fn status_index(st: &State, p: &Params) -> ApiResult {
    st.ct_on(&p.node(), p.vmid())?;
    Ok(json!([
        {"subdir":"current"},{"subdir":"start"},{"subdir":"stop"},{"subdir":"shutdown"},
        {"subdir":"reboot"},{"subdir":"suspend"},{"subdir":"resume"}
    ]))
}

pub(super) fn status_current(st: &State, p: &Params) -> ApiResult {
    let ct = st.ct_on(&p.node(), p.vmid())?;
    let mut m = st.ct_status(ct);
    let ha = match st.ha.of_ct(ct.vmid) {
        Some(r) => json!({"managed": 1, "state": r.state}),
        None => json!({"managed": 0}),
    };
    m.insert("ha".into(), ha);
    Ok(Value::Object(m))
}
