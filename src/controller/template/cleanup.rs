//! Deleting an `LxcTemplate`: refused while linked clones depend on any build; `Retain`
//! removes our tag and leaves the templates; `Delete` destroys them, one task per pass.

use super::pass::{
    check_task, cluster_key, config, describe_clones, linked_clones, release, start_task, P, PHASE_DELETING,
};
use crate::controller::conditions::CondSpec;
use crate::controller::container::desired::identity_tag;
use crate::controller::kernel::Reason;
use crate::controller::{jitter, Error};
use crate::crd::{DeletionPolicy, CONDITION_READY};
use crate::pve::{self, ErrorClass, LxcConfig};
use kube::runtime::controller::Action;
use std::time::Duration;

/// Deletion: refused while linked clones depend on any build; `Retain` removes our tag and
/// leaves the templates; `Delete` destroys them (one task per pass), then the finalizer goes.
pub(super) async fn cleanup(p: &mut P<'_>) -> Result<Action, Error> {
    let obj = p.obj;
    if !p.has_finalizer() {
        return Ok(Action::await_change());
    }
    let mut targets: Vec<(u32, String)> = p.status.previous.iter().map(|x| (x.vmid, x.node.clone())).collect();
    if let (Some(v), Some(n)) = (p.status.vmid, p.status.node.clone()) {
        targets.push((v, n));
    }
    if targets.is_empty() && p.status.pending_task.is_none() {
        release(p);
        p.remove_finalizer().await?;
        return Ok(Action::await_change());
    }
    let handle = match p.ctx.clusters.usable(&cluster_key(obj, p.ctx)) {
        Ok((h, _)) => h,
        Err(why) => {
            return p
                .not_ready(
                    Reason::ClusterNotReady,
                    format!("cannot clean up: {why}"),
                    Action::requeue(jitter(Duration::from_secs(10))),
                )
                .await
        }
    };
    if let Some(action) = check_task(p, &handle).await? {
        return Ok(action);
    }
    let identity = identity_tag(&p.uid);
    // what still exists and is ours
    let mut ours: Vec<(u32, String, LxcConfig)> = Vec::new();
    for (vmid, node) in targets {
        match config(&handle, &node, vmid).await? {
            None => {}
            Some(cfg) if !cfg.tag_list().contains(&identity) => {
                p.event(
                    Reason::LeftUntouched,
                    format!("CT {vmid} on {node} does not carry our tag; it is not deleted"),
                )
                .await;
            }
            Some(cfg) => ours.push((vmid, node, cfg)),
        }
    }
    if obj.spec.deletion_policy == DeletionPolicy::Retain {
        for (vmid, node, cfg) in &ours {
            let update = crate::controller::container::desired::without_identity_tag(cfg, &identity);
            handle.client.lxc_update_config(node, *vmid, &update).await?;
            p.event(
                Reason::Retained,
                format!("template CT {vmid} stays in Proxmox on {node} (deletionPolicy Retain); our tag was removed"),
            )
            .await;
        }
        release(p);
        p.remove_finalizer().await?;
        return Ok(Action::await_change());
    }
    // refused while linked clones depend on it
    let mut users: Vec<u32> = Vec::new();
    for (vmid, node, cfg) in &ours {
        users.extend(linked_clones(&handle, node, *vmid, cfg).await?);
    }
    if !users.is_empty() {
        users.sort();
        users.dedup();
        let who = describe_clones(p, &users).await;
        let msg = format!("deletion waits: linked clones depend on this template: {who}; delete them (or make them full clones) first");
        let was = p.cond_of(CONDITION_READY);
        p.cond(CondSpec::no(CONDITION_READY, Reason::InUse, msg.clone()));
        p.save().await?;
        if was != Some(("InUse".into(), msg.clone())) {
            p.event(Reason::InUse, msg).await;
        }
        return Ok(Action::requeue(jitter(Duration::from_secs(10))));
    }
    let Some((vmid, node, cfg)) = ours.into_iter().next() else {
        release(p);
        p.remove_finalizer().await?;
        return Ok(Action::await_change());
    };
    p.status.phase = Some(PHASE_DELETING.into());
    if let Some(lock) = &cfg.lock {
        return p
            .not_ready(
                Reason::Locked,
                format!("CT {vmid} is locked ({lock}); deletion waits"),
                Action::requeue(jitter(p.ctx.settings.lock_retry)),
            )
            .await;
    }
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Deleting,
        format!("deleting template CT {vmid} on {node}"),
    ));
    p.event(Reason::Deleting, format!("destroying template CT {vmid} on {node}"))
        .await;
    let client = handle.client.clone();
    let n = node.clone();
    let params = pve::DeleteParams::purge_referenced_only();
    match start_task(p, &handle, &node, "delete", async move {
        client.lxc_delete(&n, vmid, &params).await
    })
    .await?
    {
        Ok(a) => Ok(a),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(Action::requeue(Duration::from_millis(200))),
        Err(e) => Err(e.into()),
    }
}
