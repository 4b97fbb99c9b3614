//! Converging an existing container: whose it is (`identity::ownership`), then the plan
//! (migrate, config update, resize, power) with at most one task, then the in-sync status
//! (usage, IPs, firewall, the Service, backups).

use super::decide;
use super::desired::{Desired, InvalidSpec};
use super::identity::{self, Evidence, Ownership};
use super::locate::Located;
use super::plan::{plan, Observed, PowerAction};
use super::reconcile::{start_task, CONDITION_PENDING_RESTART, P};
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::Reason;
use crate::controller::tenancy::ownership::{user_notes, ArchiveMark};
use crate::controller::{jitter, Error};
use crate::crd::app::AppExitPolicy;
use crate::crd::lxc_container::*;
use crate::crd::{Operation, CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::time::Duration;

/// How often a bind mount or device Proxmox refused for want of `root@pam` is tried again (the
/// credentials may change without the spec changing).
pub(super) const ROOT_RETRY: Duration = Duration::from_secs(120);

/// Acts on a verdict that the container at our vmid is not (or no longer) ours: wait, pick
/// another vmid, or stop with a condition that says what happened and how to resolve it.
pub(super) async fn foreign(
    p: &mut P<'_>,
    verdict: Ownership,
    vmid: u32,
    node: &str,
    desired: &Desired,
    what: &str,
) -> Result<Action, Error> {
    let tag = &desired.identity_tag;
    let (reason, msg) = match verdict {
        Ownership::Ours | Ownership::Claim => return Ok(Action::requeue(Duration::from_millis(100))),
        Ownership::WaitLocked(lock) => {
            let msg = format!("CT {vmid} is locked ({lock}); waiting before deciding whose it is");
            let wait = p.retry(Reason::Locked);
            return p.not_synced(Reason::Locked, msg, wait).await;
        }
        Ownership::Reallocate => {
            // an id we picked ourselves was taken by someone else before our create: pick another
            tracing::info!(object = %p.obj.name_any(), vmid, what, "allocated vmid is taken by a guest that is not ours; allocating another");
            p.status.vmid = None;
            p.status.phase = Some(ContainerPhase::Pending);
            p.status.node = None;
            p.uncond(CONDITION_STALLED);
            p.save().await?;
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
        Ownership::TagLost => (
            Reason::IdentityTagMissing,
            format!(
                "CT {vmid} on {node} was created by this object but no longer carries the tag {tag} (removed in Proxmox?); nothing is changed, and no second container is created: add the tag back in Proxmox to resume, or delete this object (the container is then left untouched)"
            ),
        ),
        Ownership::Conflict => {
            p.status.phase = Some(ContainerPhase::Failed);
            (
                Reason::VmidConflict,
                format!(
                    "CT {vmid} exists on {node} but is not managed by this object ({what}); it is left untouched — choose another vmid, or adopt it with management: ObserveOnly"
                ),
            )
        }
    };
    p.cond(CondSpec::no(CONDITION_SYNCED, reason, msg.clone()));
    p.cond(CondSpec::yes(CONDITION_STALLED, reason, msg.clone()));
    let wait = p.retry(reason);
    p.not_ready(reason, msg, wait).await
}

/// Converges the container found at our vmid.
pub(super) async fn converge(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    vmid: u32,
    found: Located,
) -> Result<Action, Error> {
    let Located {
        node,
        config: cfg,
        current,
    } = found;
    let verdict = identity::ownership(&Evidence::gather(p, snap, vmid, &cfg).await?);
    let ours = match verdict {
        Ownership::Ours => true,
        Ownership::Claim => false,
        other => {
            let what = format!("it lacks the tag {}", desired.identity_tag);
            return foreign(p, other, vmid, &node, desired, &what).await;
        }
    };
    if p.status.node.as_deref() != Some(node.as_str()) {
        if p.status.node.is_some() && !matches!(p.status.phase, Some(ContainerPhase::Creating)) {
            p.event(Reason::Moved, format!("CT {vmid} is now on node {node}")).await;
        }
        p.status.node = Some(node.clone());
    }
    if let Some(lock) = &cfg.lock {
        p.cond(CondSpec::no(
            CONDITION_SYNCED,
            Reason::Locked,
            format!("CT is locked ({lock}); waiting"),
        ));
        p.save().await?;
        return Ok(p.retry(Reason::Locked));
    }
    // the HA resource and rule first: while HA manages the container it decides power and place
    let ha = match super::ha::sync(p, handle, snap, vmid).await {
        Ok(v) => v,
        Err(halt) => return halt.into(),
    };
    let by_ha = ha == super::ha::HaView::Managed;
    // an image update (rolled out or refused), then spec.app with its values read now
    let running = current.status == "running";
    let mut prepared = match super::app::prepare(p, handle, &node, vmid, &cfg, running, desired).await {
        Ok(d) => d,
        Err(halt) => return halt.into(),
    };
    // only the bind mounts and devices the operator set are removed when they leave the spec
    prepared.host.managed = p.status.host_mounts.iter().cloned().collect();
    let desired = &prepared;
    let observed = Observed {
        node: node.clone(),
        status: current.status.clone(),
        config: cfg,
    };
    let (wanted, report) = super::tenancy::wanted_node(p, handle, snap, desired, &node);
    if let Some(m) = report {
        p.event(Reason::NodeInMaintenance, m).await;
    }
    let mut plan = match plan(desired, wanted.as_deref(), &observed) {
        Ok(pl) => pl,
        Err(e) => return p.invalid(e).await,
    };
    let drift = p.status.observed_generation == p.generation()
        && matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped));
    let stays = p
        .obj
        .spec
        .app
        .as_ref()
        .is_some_and(|a| a.on_exit == AppExitPolicy::Stay);
    if drift && stays && plan.power == Some(PowerAction::Start) {
        // its process ended by itself and spec.app.onExit says it stays stopped
        plan.power = None;
    }
    if drift && !by_ha && plan.power == Some(PowerAction::Start) {
        let since = p
            .status
            .restarted_at
            .as_ref()
            .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok());
        let restarts = if since.is_some_and(|d: Duration| d >= Duration::from_secs(600)) {
            p.status.restart_count = Some(0);
            0
        } else {
            p.status.restart_count.unwrap_or(0)
        };
        if let Some(wait) = decide::restart_back_off(restarts, since) {
            p.status.phase = Some(ContainerPhase::Stopped);
            p.status.state = Some(current.status.clone());
            let msg = format!(
                "CT {vmid} stopped by itself {restarts} times; back-off {}s before it is started again",
                wait.as_secs().max(1)
            );
            return p.not_ready(Reason::RestartBackOff, msg, Action::requeue(wait)).await;
        }
    }
    if by_ha {
        if let Some(action) = super::ha::steer_move(p, handle, &mut plan, vmid, &node).await? {
            return Ok(action);
        }
    }
    if let Some(target) = &plan.migrate_to {
        if !snap.node_online(target) {
            return p
                .not_ready(
                    Reason::NodeUnavailable,
                    format!("cannot move to node {target}: it is not online"),
                    p.retry(Reason::NodeUnavailable),
                )
                .await;
        }
        let params = pve::MigrateParams {
            target: target.clone(),
            restart: observed.running().then_some(true),
            ..Default::default()
        };
        p.event(Reason::Migrating, format!("moving CT {vmid} from {node} to {target}"))
            .await;
        let client = handle.client.clone();
        let (n, t) = (node.clone(), params);
        return match start_task(p, handle, &node, Operation::Migrate, async move {
            client.lxc_migrate(&n, vmid, &t).await
        })
        .await
        {
            Err(Error::Pve(e)) if matches!(e.class(), ErrorClass::Conflict | ErrorClass::Permanent) => {
                p.not_ready(
                    Reason::MigrationRefused,
                    format!("Proxmox refused to move CT {vmid} to {target}: {}", e.message()),
                    p.retry(Reason::MigrationRefused),
                )
                .await
            }
            other => other,
        };
    }
    let mut restart_keys: Vec<String> = Vec::new();
    if !plan.changes.is_empty() {
        let (set, delete) = plan.config_update();
        let update = pve::ConfigUpdate {
            set,
            delete,
            digest: observed.config.digest.clone(),
        };
        match handle.client.lxc_update_config(&node, vmid, &update).await {
            Ok(()) => {}
            Err(e) if e.class() == ErrorClass::InvalidSpec => {
                return p
                    .invalid(InvalidSpec {
                        field: "(config)".into(),
                        message: format!("Proxmox refused the update: {e}"),
                    })
                    .await
            }
            Err(e) => match super::host_mounts::root_required(&e) {
                Some(msg) => {
                    return p
                        .not_ready(Reason::RootRequired, msg, Action::requeue(jitter(ROOT_RETRY)))
                        .await
                }
                None => return Err(e.into()),
            },
        }
        p.status.host_mounts = plan.host_keys.iter().cloned().collect();
        let what = plan.describe_changes();
        if drift && ours {
            p.event(
                Reason::DriftCorrected,
                format!("put back values changed in Proxmox: {what}"),
            )
            .await;
        } else {
            p.event(Reason::Updated, format!("updated CT {vmid}: {what}")).await;
        }
        if observed.running() {
            restart_keys = awaiting_restart(handle, &node, vmid).await;
        }
        handle.refresh.notify_one();
    } else {
        p.status.host_mounts = plan.host_keys.iter().cloned().collect();
        if observed.running() && p.is_true(CONDITION_PENDING_RESTART) {
            restart_keys = awaiting_restart(handle, &node, vmid).await;
        }
    }
    if let Some(action) = super::restart::honour(p, handle, &node, vmid, observed.running(), by_ha).await? {
        return Ok(action);
    }
    if super::app::restart_now(&p.obj.spec, &restart_keys) {
        p.event(
            Reason::Restarting,
            format!("restarting CT {vmid} to apply spec.app (restartPolicy OnChange)"),
        )
        .await;
        let (client, n) = (handle.client.clone(), node.clone());
        return start_task(p, handle, &node, Operation::Reboot, async move {
            client.lxc_reboot(&n, vmid, Some(60)).await
        })
        .await;
    }
    if restart_keys.is_empty() {
        p.uncond(CONDITION_PENDING_RESTART);
    } else {
        p.cond(CondSpec::yes(
            CONDITION_PENDING_RESTART,
            Reason::RestartRequired,
            format!("Proxmox applies these after a restart: {}", restart_keys.join(", ")),
        ));
    }
    if let Some((disk, gib)) = plan.resizes.first().cloned() {
        let client = handle.client.clone();
        let n = node.clone();
        p.event(Reason::Resizing, format!("growing {disk} of CT {vmid} to {gib}Gi"))
            .await;
        return start_task(p, handle, &node, Operation::Resize, async move {
            client.lxc_resize(&n, vmid, &disk, &format!("{gib}G")).await
        })
        .await;
    }
    if let Some(action) = super::tenancy::hold_start(p, handle, &observed.config, &plan).await? {
        return Ok(action);
    }
    if let Some(action) = plan.power.filter(|_| by_ha) {
        return super::ha::wait_for_power(p, vmid, action, &current.status).await;
    }
    if let Some(action) = plan.power {
        let client = handle.client.clone();
        let n = node.clone();
        return match action {
            PowerAction::Start => {
                if drift {
                    p.status.restart_count = Some(p.status.restart_count.unwrap_or(0) + 1);
                    p.status.restarted_at = Some(Time(jiff::Timestamp::now()));
                    p.event(
                        Reason::Starting,
                        format!("CT {vmid} was stopped outside Kubernetes; starting it (spec.state is Running)"),
                    )
                    .await;
                } else {
                    p.event(Reason::Starting, format!("starting CT {vmid}")).await;
                }
                start_task(p, handle, &node, Operation::Start, async move {
                    client.lxc_start(&n, vmid).await
                })
                .await
            }
            PowerAction::Shutdown => {
                p.event(Reason::Stopping, format!("stopping CT {vmid}")).await;
                start_task(p, handle, &node, Operation::Shutdown, async move {
                    client.lxc_shutdown(&n, vmid, Some(60), Some(true)).await
                })
                .await
            }
        };
    }
    // in sync
    let running = observed.running();
    p.status.state = Some(current.status.clone());
    p.status.phase = Some(if running {
        ContainerPhase::Running
    } else {
        ContainerPhase::Stopped
    });
    let fresh_usage = usage(
        current.cpu,
        current.mem,
        current.disk,
        current.uptime,
        current.netin,
        current.netout,
    );
    if let Some(g) = snap.guests.get(&vmid) {
        p.ctx
            .metrics
            .container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), g);
    }
    // MACs from the config; IPs from the running container (polled until known)
    p.status.mac = observed
        .config
        .networks()
        .unwrap_or_default()
        .values()
        .filter_map(|n| Some((n.name.clone(), n.hwaddr.clone()?)))
        .collect();
    let mut requeue = if p.ctx.settings.drift_check_interval.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(jitter(p.ctx.settings.drift_check_interval))
    };
    // the reads for the status go out together
    let want_ips = running
        && !observed.config.networks().unwrap_or_default().is_empty()
        && (p.status.ip_addresses.is_empty() || p.status.observed_generation != p.generation());
    let (ifaces, backups) = tokio::join!(
        async {
            match want_ips {
                true => Some(handle.client.lxc_interfaces(&node, vmid).await.unwrap_or_default()),
                false => None,
            }
        },
        backup_archives(handle, snap, &node, vmid, p, desired.open_tenancy)
    );
    if let Some(ifaces) = ifaces {
        p.status.ip_addresses = addresses(&ifaces);
        if p.status.ip_addresses.is_empty() {
            requeue = Action::requeue(jitter(Duration::from_secs(3)));
        }
    }
    let last_ipv4 = p
        .status
        .ip_addresses
        .iter()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
        .cloned();
    if !running {
        p.status.ip_addresses.clear();
    }
    let forced = desired.firewall_forced;
    if let Some(fw) = p
        .obj
        .spec
        .firewall
        .clone()
        .or_else(|| forced.map(|_| Default::default()))
    {
        super::firewall::warn_unapplied(p).await;
        match super::firewall::sync(&handle.client, &node, vmid, &fw, forced).await {
            Ok(Some(note)) => p.event(Reason::FirewallUpdated, note).await,
            Ok(None) => {}
            Err(Error::Invalid(e)) => return p.invalid(e).await,
            Err(e) => return Err(e),
        }
    }
    // the endpoint keeps the last known address while stopped, marked not ready
    let static_ipv4 = desired.nets.values().find_map(|n| {
        n.ip.as_deref()
            .filter(|ip| ip.contains('/'))
            .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
    });
    let primary = if running {
        last_ipv4.clone()
    } else {
        last_ipv4.clone().or(static_ipv4)
    };
    // someone else's Service of that name is never taken over: reported, the container stays Ready
    let service_refused = match super::service::sync(&p.ctx.kube, p.obj, primary.as_deref(), running).await {
        Ok(wrote) => {
            if wrote {
                p.ctx.metrics.kube_write("Service");
            }
            None
        }
        Err(Error::Invalid(e)) if e.field == "ports" => Some(e.message),
        Err(e) => return Err(e),
    };
    p.status.backups = backups;
    let (reason, msg) = if running {
        (Reason::Running, format!("CT {vmid} runs on {node}"))
    } else {
        (Reason::Stopped, format!("CT {vmid} is stopped on {node}, as requested"))
    };
    let became_ready = !p.is_true(CONDITION_READY);
    p.cond(CondSpec::yes(CONDITION_READY, reason, msg));
    match service_refused {
        Some(m) => p.cond(CondSpec::no(CONDITION_SYNCED, Reason::ServiceNotOwned, m)),
        None => p.cond(CondSpec::yes(
            CONDITION_SYNCED,
            Reason::InSync,
            "Proxmox matches the spec",
        )),
    }
    p.uncond(CONDITION_STALLED);
    p.observed();
    // usage figures alone make no write (they change every second; 0 writes in steady state):
    // they go out with any other change (live figures: metrics and the UI's samples)
    p.status.rootfs = super::rootfs::root_volume(observed.config.rootfs.as_deref());
    if p.status.usage.is_none() || p.changed() {
        p.status.usage = Some(fresh_usage);
    }
    p.save().await?;
    if became_ready {
        p.event(
            Reason::Ready,
            format!("CT {vmid} is {}", if running { "running" } else { "stopped" }),
        )
        .await;
    }
    Ok(requeue)
}

/// The config keys Proxmox applies only after a restart (empty when it cannot tell).
async fn awaiting_restart(handle: &ClusterHandle, node: &str, vmid: u32) -> Vec<String> {
    let pending = handle.client.lxc_pending(node, vmid).await.unwrap_or_default();
    pending
        .into_iter()
        .filter(|e| e.pending.is_some() || e.delete.is_some())
        .map(|e| e.key)
        .collect()
}

/// Usage for status, from what Proxmox reports (CPU rounded to 0.1 %).
pub(super) fn usage(
    cpu: Option<f64>,
    mem: Option<u64>,
    disk: Option<u64>,
    uptime: Option<u64>,
    netin: Option<u64>,
    netout: Option<u64>,
) -> Usage {
    Usage {
        cpu: cpu.map(|c| (c * 1000.0).round() / 1000.0),
        memory_bytes: mem,
        disk_bytes: disk,
        uptime_seconds: uptime,
        net_in_bytes: netin,
        net_out_bytes: netout,
    }
}

/// The container's addresses without prefix: IPv4 first, then IPv6 (no loopback, no link-local).
pub fn addresses(ifaces: &[pve::Interface]) -> Vec<String> {
    let strip = |a: &String| a.split('/').next().unwrap_or(a).to_string();
    let up = ifaces.iter().filter(|i| i.name != "lo");
    let v4 = up.clone().flat_map(|i| i.inet.iter().map(strip));
    let v6 = up
        .flat_map(|i| i.inet6.iter().map(strip))
        .filter(|a| !a.to_ascii_lowercase().starts_with("fe80"));
    v4.chain(v6).collect()
}

/// How many archives `status.backups` lists.
pub const MAX_LISTED_BACKUPS: usize = 10;

/// Backup archives of this container on the backup storages `node` can see (shared ones once),
/// newest first, bounded: those the mark in their notes ties to it, and (without a tenant,
/// `open`) archives made outside the operator since this object exists. Archives of the vmid's
/// earlier owners are never listed. Storages that cannot be read are skipped.
async fn backup_archives(
    handle: &ClusterHandle,
    snap: &Snapshot,
    node: &str,
    vmid: u32,
    p: &P<'_>,
    open: bool,
) -> Vec<BackupArchive> {
    let uid = p.uid.as_str();
    let since = p.obj.creation_timestamp().map(|t| t.0.as_second()).unwrap_or(i64::MAX);
    let ours = |notes: Option<&str>, ctime: Option<i64>| match ArchiveMark::parse(notes) {
        Some(m) => m.container_uid == uid,
        None => open && ctime.is_some_and(|c| c >= since),
    };
    let storages: Vec<String> = snap
        .storages
        .iter()
        .filter(|s| s.node == node && s.content.iter().any(|c| c == "backup"))
        .map(|s| s.name.clone())
        .collect();
    let mut found: Vec<(i64, BackupArchive)> = Vec::new();
    let lists = futures::future::join_all(
        storages
            .iter()
            .map(|storage| handle.client.storage_content(node, storage, Some("backup"), Some(vmid))),
    )
    .await;
    for v in lists
        .into_iter()
        .flatten()
        .flatten()
        .filter(|v| v.vmid.is_none_or(|id| id == vmid))
        .filter(|v| ours(v.notes.as_deref(), v.ctime))
    {
        let created = v.ctime.and_then(|t| jiff::Timestamp::from_second(t).ok()).map(Time);
        found.push((
            v.ctime.unwrap_or(0),
            BackupArchive {
                volid: v.volid,
                size_bytes: v.size,
                created_at: created,
                notes: v.notes.as_deref().and_then(user_notes),
            },
        ));
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.volid.cmp(&b.1.volid)));
    found.dedup_by(|a, b| a.1.volid == b.1.volid);
    found.into_iter().take(MAX_LISTED_BACKUPS).map(|(_, a)| a).collect()
}
