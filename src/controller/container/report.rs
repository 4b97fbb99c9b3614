//! What status says when the container matches its spec: phase and state, usage, MACs and
//! IPs, the firewall rules, the published Service, the backup archives, `Ready`/`Synced`. The
//! last step of a converge pass ([`super::converge_step::ConvergeStep::InSync`]).

use super::converge_step::Target;
use super::pass::P;
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::Reason;
use crate::controller::tenancy::ownership::{user_notes, ArchiveMark};
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::*;
use crate::crd::{CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Reports the container in sync: status from what Proxmox reports (the reads go out
/// together), the firewall and the Service made to match, then `Ready=True`.
pub(super) async fn in_sync(p: &mut P<'_>, t: &Target<'_>) -> Result<Action, Error> {
    let (snap, vmid, current) = (t.snap, t.vmid, &t.current);
    let running = t.observed.running();
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
            .container(&p.obj.namespace().unwrap_or_default(), &p.obj.name_any(), sample(g));
    }
    // MACs from the config; IPs from the running container (polled until known)
    p.status.mac = t
        .observed
        .config
        .networks()
        .unwrap_or_default()
        .values()
        .filter_map(|n| Some((n.name.clone(), n.hwaddr.clone()?)))
        .collect();
    let (requeue, last_ipv4, backups) = addresses_and_backups(p, t).await;
    if let Some(fw) = p
        .obj
        .spec
        .firewall
        .clone()
        .or_else(|| t.desired.firewall_forced.map(|_| Default::default()))
    {
        let forced = t.desired.firewall_forced;
        super::firewall::warn_unapplied(p).await;
        match super::firewall::sync(&t.handle.client, &t.observed.node, vmid, &fw, forced).await {
            Ok(Some(note)) => p.event(Reason::FirewallUpdated, note).await,
            Ok(None) => {}
            Err(Error::Invalid(e)) => return p.invalid(e).await,
            Err(e) => return Err(e),
        }
    }
    let service_refused = service(p, t, last_ipv4).await?;
    if let Some(backups) = backups {
        p.status.backups = backups;
    }
    report_ready(p, t, service_refused, fresh_usage).await?;
    Ok(requeue)
}

/// The container's IPs (read while it runs and they are not known, or the spec changed) and
/// backup archives (when [`backups_due`]), read together; the pass's requeue (soon while a
/// running container shows no IP yet), its last known IPv4 address, and the archives (`None`:
/// not listed this pass, `status.backups` stays).
async fn addresses_and_backups(p: &mut P<'_>, t: &Target<'_>) -> (Action, Option<String>, Option<Vec<BackupArchive>>) {
    let (handle, vmid, node) = (t.handle, t.vmid, &t.observed.node);
    let running = t.observed.running();
    let mut requeue = if p.ctx.settings.drift_check_interval.is_zero() {
        Action::await_change()
    } else {
        Action::requeue(jitter(p.ctx.settings.drift_check_interval))
    };
    let want_ips = running
        && !t.observed.config.networks().unwrap_or_default().is_empty()
        && (p.status.ip_addresses.is_empty() || p.status.observed_generation != p.generation());
    let age = p
        .obj
        .creation_timestamp()
        .and_then(|t| jiff::Timestamp::now().duration_since(t.0).try_into().ok());
    let list = BACKUPS_LISTED.due(&p.uid, p.generation(), age, Instant::now());
    let (ifaces, backups) = tokio::join!(
        async {
            match want_ips {
                true => Some(handle.client.lxc_interfaces(node, vmid).await.unwrap_or_default()),
                false => None,
            }
        },
        async {
            match list {
                Some(_) => Some(backup_archives(handle, t.snap, node, vmid, p, t.desired.open_tenancy).await),
                None => None,
            }
        }
    );
    if let (Some(epoch), Some(_)) = (list, &backups) {
        BACKUPS_LISTED.listed(&p.uid, Listed::new(epoch, Instant::now(), p.generation()));
    }
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
    if super::locate::behind(t.snap, &p.uid, node, vmid, &t.current.status) {
        // the inventory's next read may show nothing new to wake it for: look again then
        requeue = Action::requeue(jitter(Duration::from_secs(2)));
    }
    (requeue, last_ipv4, backups)
}

/// The published Service made to match; `Some(message)` when someone else's Service of that
/// name is in the way (never taken over: reported, the container stays Ready).
async fn service(p: &mut P<'_>, t: &Target<'_>, last_ipv4: Option<String>) -> Result<Option<String>, Error> {
    let running = t.observed.running();
    // the endpoint keeps the last known address while stopped, marked not ready
    let static_ipv4 = t.desired.nets.values().find_map(|n| {
        n.ip.as_deref()
            .filter(|ip| ip.contains('/'))
            .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
    });
    let primary = if running { last_ipv4 } else { last_ipv4.or(static_ipv4) };
    match super::service::sync(&p.ctx.kube, p.obj, primary.as_deref(), running).await {
        Ok(wrote) => {
            if wrote {
                p.ctx.metrics.kube_write("Service");
            }
            Ok(None)
        }
        Err(Error::Invalid(e)) if e.field == "ports" => Ok(Some(e.message)),
        Err(e) => Err(e),
    }
}

/// `Ready=True`, `Synced` (False only for a Service in the way), usage when due, the write, and
/// the `Ready` event when it became ready.
async fn report_ready(
    p: &mut P<'_>,
    t: &Target<'_>,
    service_refused: Option<String>,
    fresh_usage: Usage,
) -> Result<(), Error> {
    let (vmid, node, running) = (t.vmid, &t.observed.node, t.observed.running());
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
    p.status.rootfs = super::rootfs::root_volume(t.observed.config.rootfs.as_deref());
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
    Ok(())
}

/// What the per-container metrics show of guest `g`.
pub(super) fn sample(g: &crate::controller::cluster::Guest) -> crate::metrics::ContainerSample {
    crate::metrics::ContainerSample {
        node: g.node.clone(),
        vmid: g.vmid,
        up: g.status == "running",
        cpu: g.cpu.unwrap_or(0.0),
        memory: g.mem.unwrap_or(0),
        disk: g.disk.unwrap_or(0),
        net_in: g.netin.unwrap_or(0),
        net_out: g.netout.unwrap_or(0),
    }
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

/// How often an in-sync container's backup storages are listed again when nothing the operator
/// knows of changed an archive (a `vzdump` run by hand, an archive deleted in Proxmox).
pub const BACKUP_REFRESH: Duration = Duration::from_secs(600);

/// Archive changes the operator made (an `LxcBackup` wrote or deleted one), process-wide.
static BACKUP_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Tells the container passes that an archive was written or deleted: each lists its backup
/// storages again at its next pass. Called by the `LxcBackup` controller.
pub fn backups_changed() {
    BACKUP_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Tells the container pass of `uid` that its container is locked by a backup (the operator's
/// or one run by hand): its next in-sync pass lists the backup storages again.
pub fn backup_lock_seen(uid: &str) {
    let forced = Listed {
        epoch: u64::MAX,
        at: Instant::now(),
        generation: None,
    };
    crate::controller::kernel::recover(BACKUPS_LISTED.0.lock(), "the backup listings").insert(uid.to_string(), forced);
}

/// When a container's backup storages were last listed in this process, and the archive epoch
/// then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// [`backups_changed`]'s count at the listing.
    pub epoch: u64,
    /// When.
    pub at: Instant,
    /// The object's generation then.
    pub generation: Option<i64>,
}

impl Listed {
    /// A listing at `at` of the object at `generation`, with the archive epoch `epoch`.
    pub fn new(epoch: u64, at: Instant, generation: Option<i64>) -> Listed {
        Listed { epoch, at, generation }
    }
}

/// Whether a pass lists the backup storages (pure): its first pass in this process (unless the
/// object is younger than [`BACKUP_REFRESH`]: it has no archives yet, and a backup of it locks
/// it, see [`backup_lock_seen`]), a spec change since the last listing, an archive change the
/// operator made since, or [`BACKUP_REFRESH`] gone by. Listing on every pass was ~11 of a Pod's
/// 70 Proxmox requests.
pub fn backups_due(
    last: Option<Listed>,
    epoch: u64,
    generation: Option<i64>,
    age: Option<Duration>,
    now: Instant,
) -> bool {
    match last {
        None => age.is_none_or(|a| a >= BACKUP_REFRESH),
        Some(l) => {
            l.generation != generation || l.epoch != epoch || now.saturating_duration_since(l.at) >= BACKUP_REFRESH
        }
    }
}

/// The last listing per object uid (entries older than [`BACKUP_REFRESH`] are due anyway, and
/// are dropped as the map grows).
struct ListedByUid(LazyLock<Mutex<HashMap<String, Listed>>>);

static BACKUPS_LISTED: ListedByUid = ListedByUid(LazyLock::new(Default::default));

impl ListedByUid {
    /// `Some(epoch)` when the pass of the object `uid` (at `generation`, `age` old) lists its
    /// backup storages now. A young object's first pass is recorded as a listing of nothing.
    fn due(&self, uid: &str, generation: Option<i64>, age: Option<Duration>, now: Instant) -> Option<u64> {
        let epoch = BACKUP_EPOCH.load(Ordering::Relaxed);
        let last = crate::controller::kernel::recover(self.0.lock(), "the backup listings")
            .get(uid)
            .copied();
        if backups_due(last, epoch, generation, age, now) {
            return Some(epoch);
        }
        if last.is_none() {
            self.listed(uid, Listed::new(epoch, now, generation));
        }
        None
    }

    /// Records a listing.
    fn listed(&self, uid: &str, l: Listed) {
        let mut m = crate::controller::kernel::recover(self.0.lock(), "the backup listings");
        if m.len() >= 1024 && m.len().is_power_of_two() {
            m.retain(|_, e| l.at.saturating_duration_since(e.at) < BACKUP_REFRESH);
        }
        m.insert(uid.to_string(), l);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_in_sync_does_not_list_backup_storages_again_until_a_backup_changes() {
        let t0 = Instant::now();
        let g = Some(1);
        let last = Some(Listed::new(3, t0, g));
        let later = t0 + Duration::from_secs(30);
        let old = Some(BACKUP_REFRESH);
        assert!(backups_due(None, 3, g, old, t0), "the first pass of the process lists");
        assert!(
            !backups_due(last, 3, g, old, later),
            "nothing changed: not listed again"
        );
        assert!(
            backups_due(last, 4, g, old, later),
            "an LxcBackup wrote or deleted an archive"
        );
        assert!(
            backups_due(last, 3, Some(2), old, later),
            "a spec change lists (a vzdump made by hand shows)"
        );
        assert!(
            backups_due(last, 3, g, old, t0 + BACKUP_REFRESH),
            "archives made or deleted in Proxmox show within the refresh"
        );
        let forced = Some(Listed::new(u64::MAX, t0, None));
        assert!(backups_due(forced, 3, g, old, later), "a backup lock was seen");
    }

    #[test]
    fn a_new_container_lists_no_backup_storages_before_it_could_have_an_archive() {
        let t0 = Instant::now();
        assert!(!backups_due(None, 0, Some(1), Some(Duration::from_secs(20)), t0));
        assert!(backups_due(None, 0, Some(1), None, t0), "age unknown: listed");
    }
}
