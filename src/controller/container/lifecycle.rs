//! The two ends of a container's life in Kubernetes: adoption (`ObserveOnly`: read status,
//! change nothing) and deletion (stop, destroy what the config references, then the finalizer;
//! `Retain` removes our tag; a container without our tag or protected in Proxmox is kept).

use super::desired::identity_tag;
use super::identity::{self, Evidence, Ownership};
use super::locate::{locate, Located};
use super::pass::{cluster_key, start_task, P};
use super::report::{addresses, sample, usage};
use super::task::check_pending_task;
use crate::controller::cluster::{ClusterHandle, Guest};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::Reason;
use crate::controller::tenancy::policy::Admission;
use crate::controller::Error;
use crate::crd::lxc_container::*;
use crate::crd::{DeletionPolicy, Operation, CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve;
use kube::runtime::controller::Action;
use kube::ResourceExt;

/// An adopted container: status from the inventory, no finalizer, no tag, no change.
pub(super) async fn observe_only(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    guest: Option<Guest>,
    admission: &Admission,
) -> Result<Action, Error> {
    let vmid = p.obj.spec.vmid.expect("validated");
    p.remove_finalizer().await?;
    // only what the namespace may see: nothing about another tenant's guest (not even where
    // it runs) reaches status
    if let Some(g) = &guest {
        if let Err(r) = super::tenancy::may_use(p, g, admission, "spec.vmid") {
            p.status.vmid = None;
            p.status.node = None;
            p.status.state = None;
            p.status.usage = None;
            p.status.ip_addresses.clear();
            return super::tenancy::refuse(p, r).await;
        }
    }
    p.status.vmid = Some(vmid);
    let Some(g) = guest else {
        p.status.phase = Some(ContainerPhase::Pending);
        p.status.ip_addresses.clear();
        let msg = format!("CT {vmid} does not exist in Proxmox");
        return p.not_ready(Reason::NotFound, msg, p.retry(Reason::NotFound)).await;
    };
    let running = g.status == "running";
    p.status.node = Some(g.node.clone());
    p.status.state = Some(g.status.to_string());
    p.status.phase = Some(if running {
        ContainerPhase::Running
    } else {
        ContainerPhase::Stopped
    });
    p.status.usage = Some(usage(g.cpu, g.mem, g.disk, g.uptime, g.netin, g.netout));
    if running && p.status.ip_addresses.is_empty() {
        p.status.ip_addresses = addresses(&handle.client.lxc_interfaces(&g.node, vmid).await.unwrap_or_default());
    } else if !running {
        p.status.ip_addresses.clear();
    }
    p.ctx
        .metrics
        .container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), sample(&g));
    let msg = format!(
        "CT {vmid} on {} is {} (observed only; nothing is changed)",
        g.node, g.status
    );
    p.cond(CondSpec::yes(CONDITION_READY, Reason::Observed, msg));
    p.uncond(CONDITION_SYNCED);
    p.uncond(CONDITION_STALLED);
    p.observed();
    p.save().await?;
    Ok(Action::await_change())
}

/// The cleanup is done: the finalizer goes, and so does what this process kept for the object.
async fn done(p: &mut P<'_>) -> Result<Action, Error> {
    p.remove_finalizer().await?;
    p.ctx.forget(&p.uid);
    p.ctx
        .metrics
        .forget_container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any());
    Ok(Action::await_change())
}

/// Removes CT `vmid` (ours, found at `found`) as `deletionPolicy` says: the tag only (`Retain`),
/// or out of HA, stopped, then destroyed (one task per pass); waits while it is locked or
/// protected in Proxmox.
async fn remove(p: &mut P<'_>, handle: &ClusterHandle, vmid: u32, found: Located) -> Result<Action, Error> {
    let Located {
        node,
        config: cfg,
        current,
    } = found;
    let own_tag = identity_tag(&p.uid);
    if let Some(lock) = &cfg.lock {
        p.status.phase = Some(ContainerPhase::Deleting);
        let msg = format!("CT is locked ({lock}); deletion waits");
        return p.not_ready(Reason::Locked, msg, p.retry(Reason::Locked)).await;
    }
    if p.obj.spec.deletion_policy == DeletionPolicy::Retain {
        let update = super::desired::without_identity_tag(&cfg, &own_tag);
        handle.client.lxc_update_config(&node, vmid, &update).await?;
        let note = format!("CT {vmid} stays in Proxmox on {node} (deletionPolicy Retain); our tag was removed");
        p.event(Reason::Retained, note).await;
        return done(p).await;
    }
    p.status.phase = Some(ContainerPhase::Deleting);
    if cfg.protection == Some(true) {
        // protection set in Proxmox is removed only when the spec explicitly says false
        if p.obj.spec.protection != Some(false) {
            let msg = format!(
                "CT {vmid} has protection enabled in Proxmox; it is not deleted until spec.protection is set to false (or deletionPolicy to Retain)"
            );
            return p.not_ready(Reason::Protected, msg, p.retry(Reason::Protected)).await;
        }
        let update = pve::ConfigUpdate {
            set: [("protection".to_string(), "0".to_string())].into(),
            digest: cfg.digest.clone(),
            ..Default::default()
        };
        handle.client.lxc_update_config(&node, vmid, &update).await?;
    }
    // out of HA first, so the HA stack does not start again what is stopped here
    if p.status.high_availability.is_some() || p.obj.spec.high_availability.is_some() {
        let mark = super::ha::mark(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), &p.uid);
        super::ha::remove(&handle.client, vmid, &mark).await?;
        if p.status.high_availability.take().is_some() {
            p.event(Reason::HaDisabled, format!("CT {vmid} is no longer an HA resource"))
                .await;
        }
    }
    let client = handle.client.clone();
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Deleting,
        format!("deleting CT {vmid}"),
    ));
    if current.is_running() {
        p.event(Reason::Stopping, format!("stopping CT {vmid} before deleting it"))
            .await;
        let n = node.clone();
        return start_task(p, handle, &node, Operation::Stop, async move {
            client.lxc_stop(&n, vmid).await
        })
        .await;
    }
    p.event(Reason::Deleting, format!("destroying CT {vmid} on {node}"))
        .await;
    let n = node.clone();
    // only what the config references: disks of other guests with this vmid on shared storage,
    // or detached ones, are not ours to destroy
    let params = pve::DeleteParams::purge_referenced_only();
    start_task(p, handle, &node, Operation::Delete, async move {
        client.lxc_delete(&n, vmid, &params).await
    })
    .await
}

/// Deletion, one step per pass.
pub(super) async fn cleanup(p: &mut P<'_>) -> Result<Action, Error> {
    let obj = p.obj;
    if !p.has_finalizer() {
        p.ctx.forget(&p.uid);
        return Ok(Action::await_change());
    }
    if super::service::remove(&p.ctx.kube, obj).await? {
        p.ctx.metrics.kube_write("Service");
    }
    let Some(vmid) = p.status.vmid.filter(|_| obj.spec.management == Management::Full) else {
        return done(p).await;
    };
    let key = cluster_key(obj, p.ctx);
    let (handle, snap) = match p.ctx.clusters.usable(&key) {
        Ok(u) => u,
        Err(why) => {
            if super::precheck::release_without_cluster(p, &key.name, vmid).await? {
                return done(p).await;
            }
            p.status.phase = Some(ContainerPhase::Deleting);
            let msg = format!("cannot clean up CT {vmid}: {why}");
            return p
                .not_ready(Reason::ClusterNotReady, msg, p.retry(Reason::ClusterNotReady))
                .await;
        }
    };
    if let Some(action) = check_pending_task(p, &handle).await? {
        return Ok(action);
    }
    // the temporary snapshot of a clone source, taken for this container, goes first
    if let Some(action) = super::clone_snapshot::tidy_pass(p, &handle, &snap, true).await? {
        return Ok(action);
    }
    let Some(Located {
        node,
        config: cfg,
        current,
    }) = locate(&handle, vmid, &p.status, obj.spec.node.as_deref()).await?
    else {
        // already gone counts as deleted; one refused before its create never existed
        super::precheck::say_never_created(p, vmid).await;
        super::tenancy::release_vmid(&handle, vmid);
        return done(p).await;
    };
    // whose it is, by the rule of the update path: a clone we started carries no tag until our
    // first update (deleted before that, it is still ours, not leaked); a container Proxmox is
    // still creating (locked, no tag yet) may be ours, so the finalizer waits for it
    match identity::ownership(&Evidence::gather(p, &snap, vmid, &cfg).await?) {
        Ownership::Ours | Ownership::Claim => {}
        Ownership::WaitLocked(lock) => {
            let msg = format!("CT {vmid} is locked ({lock}); deletion waits before deciding whose it is");
            return p.not_ready(Reason::Locked, msg, p.retry(Reason::Locked)).await;
        }
        Ownership::Reallocate | Ownership::TagLost | Ownership::Conflict => {
            p.event(
                Reason::LeftUntouched,
                format!("CT {vmid} on {node} does not carry our tag; it is not deleted"),
            )
            .await;
            return done(p).await;
        }
    }
    remove(
        p,
        &handle,
        vmid,
        Located {
            node,
            config: cfg,
            current,
        },
    )
    .await
}
