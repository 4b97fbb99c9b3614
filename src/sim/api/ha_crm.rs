//! The simulated HA stack's manager (CRM + LRMs in one): every round it brings each HA resource
//! towards its requested state, carries out queued migrate/relocate requests, keeps node
//! affinity rules, and recovers resources of nodes that went offline (fence, then start on
//! another node). Its tasks run as `root@pam`, as the LRM's do.

use super::*;
use std::sync::Weak;
use std::time::Duration;

/// How often the manager works through the resources (scaled by the clock speed; Proxmox's CRM
/// runs a round about every 10 s).
pub(crate) const ROUND_MS: u64 = 1000;

/// Runs rounds until the simulator is gone or `stop` turns true.
pub(crate) async fn run(sim: Weak<Sim>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let pause = match sim.upgrade() {
            Some(s) => {
                let st = s.lock();
                super::super::task_ctx::scaled(&st.cfg, ROUND_MS)
            }
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(pause.max(Duration::from_millis(20))) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match sim.upgrade() {
            Some(s) => round(&s),
            None => return,
        }
    }
}

/// `get_verbose_service_state` of PVE/HA/Tools.pm, from what the simulator knows.
pub(crate) fn verbose_state(st: &State, sid: &str) -> String {
    let Some(r) = st.ha.resources.get(sid) else {
        return "deleting".into();
    };
    if r.state == "ignored" {
        return "ignored".into();
    }
    let Some(ct) = ct_of(sid).and_then(|v| st.cts.get(&v)) else {
        return "not found".into();
    };
    if !st.ha.seen.contains(sid) {
        return "queued".into();
    }
    if !st.nodes.get(&ct.node).is_some_and(|n| n.online) {
        return "fence".into();
    }
    if let Some(op) = st.ha.busy.get(&ct.vmid) {
        if op == "migrate" {
            return "migrate".into();
        }
    }
    let wants_running = matches!(r.state.as_str(), "started" | "enabled");
    match (wants_running, ct.running, r.state.as_str()) {
        (true, true, _) => "started",
        (true, false, _) => "starting",
        (false, true, _) => "stopping",
        (false, false, "disabled") => "disabled",
        (false, false, _) => "stopped",
    }
    .into()
}

/// The online nodes a resource may run on, best first: those of its enabled node-affinity
/// rule with the highest priority (only those when the rule is strict), else every online node.
fn allowed_nodes(st: &State, sid: &str) -> (Vec<String>, bool) {
    let online = |n: &String| st.nodes.get(n).is_some_and(|s| s.online);
    let rule = st
        .ha
        .rules
        .values()
        .filter(|r| r.typ == "node-affinity" && !r.disable)
        .find(|r| r.resources.iter().any(|s| s == sid));
    let all: Vec<String> = st.nodes.keys().filter(|n| online(n)).cloned().collect();
    let Some(rule) = rule else { return (all, false) };
    let mut ranked: Vec<(String, u64)> = rule.nodes.iter().filter(|(n, _)| online(n)).cloned().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top = ranked.first().map(|(_, p)| *p);
    let best: Vec<String> = ranked
        .iter()
        .filter(|(_, p)| Some(*p) == top)
        .map(|(n, _)| n.clone())
        .collect();
    if rule.strict || !best.is_empty() {
        (best, rule.strict)
    } else {
        (all, false)
    }
}

/// Starts an HA task (`vzstart`, `vzstop`, `vzmigrate`) for CT `vmid`, marking it busy until
/// the task ends.
fn spawn(sim: &Arc<Sim>, st: &mut State, vmid: u32, node: &str, op: &str, target: Option<String>) {
    st.ha.busy.insert(vmid, op.to_string());
    let typ = match op {
        "start" => "vzstart",
        "stop" => "vzstop",
        _ => "vzmigrate",
    };
    let (op, node_s) = (op.to_string(), node.to_string());
    sim.spawn_task(st, node, typ, &vmid.to_string(), "root@pam", move |ctx| -> TaskBody {
        Box::pin(async move {
            let res = match op.as_str() {
                "migrate" => {
                    let target = target.unwrap_or_default();
                    migrate_body(ctx.clone(), vmid, node_s, target, false, true).await
                }
                _ => {
                    ctx.work(&ctx.typ.clone()).await;
                    ctx.with(|st| {
                        if op == "start" {
                            do_start(st, vmid)
                        } else {
                            do_stop(st, vmid)
                        }
                    });
                    Ok(())
                }
            };
            ctx.with(|st| st.ha.busy.remove(&vmid));
            res
        })
    });
}

/// One manager round.
pub(crate) fn round(sim: &Arc<Sim>) {
    let mut st = sim.lock();
    if st.ha.resources.is_empty() || st.ha.disarmed.is_some() {
        return;
    }
    let sids: Vec<String> = st.ha.resources.keys().cloned().collect();
    for sid in sids {
        let first = st.ha.seen.insert(sid.clone());
        let Some(vmid) = ct_of(&sid) else { continue };
        let Some(res) = st.ha.resources.get(&sid).cloned() else {
            continue;
        };
        let Some(ct) = st.cts.get(&vmid) else { continue };
        if res.state == "ignored" || st.ha.busy.contains_key(&vmid) || ct.lock().is_some() || first {
            continue;
        }
        let (node, running) = (ct.node.clone(), ct.running);
        let wants_running = matches!(res.state.as_str(), "started" | "enabled");
        let (allowed, strict) = allowed_nodes(&st, &sid);
        if !st.nodes.get(&node).is_some_and(|n| n.online) {
            // fenced: its config is stolen to a node that may run it, then it is started there
            if let Some(target) = allowed.first().cloned() {
                recover(&mut st, vmid, &node, &target);
            }
            continue;
        }
        if let Some(target) = st.ha.commands.remove(&sid) {
            if target != node && st.nodes.get(&target).is_some_and(|n| n.online) {
                spawn(sim, &mut st, vmid, &node, "migrate", Some(target));
                continue;
            }
        }
        let misplaced = !allowed.is_empty() && !allowed.contains(&node) && (strict || res.failback);
        if misplaced {
            let target = allowed[0].clone();
            spawn(sim, &mut st, vmid, &node, "migrate", Some(target));
            continue;
        }
        match (wants_running, running) {
            (true, false) => spawn(sim, &mut st, vmid, &node, "start", None),
            (false, true) => spawn(sim, &mut st, vmid, &node, "stop", None),
            _ => {}
        }
    }
}

/// Recovery after fencing: the container (stopped) now belongs to `target`, with its local
/// volumes (as if they were replicated).
fn recover(st: &mut State, vmid: u32, from: &str, target: &str) {
    let vols = st.cts.get(&vmid).map(|c| c.volumes()).unwrap_or_default();
    for (_, v) in vols {
        let sid = v.split(':').next().unwrap_or_default().to_string();
        if st.storages.get(&sid).is_some_and(|s| s.shared) {
            continue;
        }
        if let Some(vol) = st.remove_volume(from, &v) {
            st.volumes.entry((target.to_string(), sid)).or_default().push(vol);
        }
    }
    if let Some(ct) = st.cts.get_mut(&vmid) {
        ct.running = false;
        ct.started = None;
        ct.pid = 0;
        ct.node = target.to_string();
    }
}
