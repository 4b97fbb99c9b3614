//! Finding a container in Proxmox: config and power state, read together.

use crate::controller::cluster::{ClusterHandle, Guest, Snapshot};
use crate::controller::kernel::Reason;
use crate::controller::Error;
use crate::crd::lxc_container::{ContainerPhase, LxcContainerStatus};
use crate::crd::{Operation, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass, LxcConfig};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Where a container was found, with its config and power state (read together: one round
/// trip instead of two on every pass).
pub struct Located {
    /// The node it is on.
    pub node: String,
    /// Its config.
    pub config: LxcConfig,
    /// Its power state and usage.
    pub current: pve::LxcStatus,
}

/// When this process last saw a task of each object (by uid) end, and what the task did: its
/// container's power state may have changed since the inventory was read.
static TASK_ENDS: LazyLock<Mutex<HashMap<String, TaskEnd>>> = LazyLock::new(Default::default);

/// When a task ended, and what it did when it ended well.
type TaskEnd = (Instant, Option<Operation>);

/// Records that the task `op` of the object `uid` ended (well or not) now.
pub fn task_ended(uid: &str, op: Option<Operation>) {
    let now = Instant::now();
    let mut m = crate::controller::kernel::recover(TASK_ENDS.lock(), "the task ends");
    if m.len() >= 1024 && m.len().is_power_of_two() {
        // an end older than any inventory we would use no longer matters
        m.retain(|_, (at, _)| now.saturating_duration_since(*at) < INVENTORY_FRESH);
    }
    m.insert(uid.to_string(), (now, op));
}

/// When this process last saw a task of the object `uid` end, and which.
fn last_task(uid: &str) -> Option<TaskEnd> {
    crate::controller::kernel::recover(TASK_ENDS.lock(), "the task ends")
        .get(uid)
        .copied()
}

/// When this process last saw a task of the object `uid` end.
fn last_task_end(uid: &str) -> Option<Instant> {
    last_task(uid).map(|(at, _)| at)
}

/// The oldest inventory a pass takes a container's power state from.
pub const INVENTORY_FRESH: Duration = Duration::from_secs(60);

/// Whether a pass takes the container's power state and usage from the inventory (pure)
/// instead of `GET …/status/current`: the inventory lists it on `node`, unlocked, it was read
/// less than [`INVENTORY_FRESH`] ago (a change since is found by the next read, which sends the
/// container a pass), and after the last task of the object this process saw end (a start or
/// stop that ended since is not in it yet). One status read less on most passes.
pub fn power_from_inventory(
    g: Option<&Guest>,
    node: &str,
    taken_at: Instant,
    task_end: Option<Instant>,
    now: Instant,
) -> bool {
    g.is_some_and(|g| g.node == node && g.kind == "lxc" && g.lock.is_none())
        && now.saturating_duration_since(taken_at) < INVENTORY_FRESH
        && task_end.is_none_or(|end| taken_at > end)
}

/// Whether a container not made yet (no task recorded that may have made it, never seen) is
/// taken as absent without a config read (pure): a fresh inventory does not list its vmid. A
/// Pod's container waiting for a create slot passes several times (woken, the safety net);
/// each pass read its config only to be told it is not there. A container someone else made
/// with the vmid since the inventory read makes the create fail, and the next pass finds it.
/// An inventory read before the end of the object's last task (a create, clone or restore
/// that made it) is not enough: it is looked for.
pub fn absent_by_inventory(
    not_made: bool,
    in_inventory: bool,
    taken_at: Option<Instant>,
    task_end: Option<Instant>,
    now: Instant,
) -> bool {
    not_made
        && !in_inventory
        && taken_at
            .is_some_and(|t| now.saturating_duration_since(t) < INVENTORY_FRESH && task_end.is_none_or(|end| t > end))
}

/// How long a config this process read is used again instead of another read, at least (see
/// [`config_reusable`]).
pub const CONFIG_REUSE: Duration = Duration::from_secs(10);
/// ... and at most.
pub const CONFIG_REUSE_MAX: Duration = Duration::from_secs(30);

/// How long a config read is used again on a cluster whose inventory is read every `resync`
/// (pure): half of it, between [`CONFIG_REUSE`] and [`CONFIG_REUSE_MAX`]. A container gets a
/// drift pass at most once per `resync`, so a drift pass never takes the config an earlier one
/// read, and a change the inventory cannot show (a network key set by hand) is found at most
/// one drift pass later. A container waiting for a task slot (`waiting`: the passes a Pod's
/// container makes until its start, woken and by the safety net) uses it up to
/// [`INVENTORY_FRESH`]: what it waits for is a task, and the pass after any task reads anew.
pub fn config_reuse(resync: Duration, waiting: bool) -> Duration {
    if waiting {
        return INVENTORY_FRESH;
    }
    (resync / 2).clamp(CONFIG_REUSE, CONFIG_REUSE_MAX)
}

/// How long a config read is kept for later passes (pure): as long as the longest reuse a
/// coming pass may make of it ([`INVENTORY_FRESH`]) while the object waits for a task slot or
/// one of its tasks ended lately (a Pod's container between its create and its start), else
/// the reuse of a drift pass ([`config_reuse`]). 10,000 containers adopted at once each have
/// a config read: kept a minute, that was ~5 MiB of the operator's peak.
pub fn config_kept(resync: Duration, waiting: bool, task_lately: bool) -> Duration {
    config_reuse(resync, waiting || task_lately)
}

/// A config read by a pass, and what the inventory showed of the container then.
#[derive(Clone)]
struct ReadConfig {
    node: String,
    vmid: u32,
    config: LxcConfig,
    /// The inventory entry the config goes with (`status` as the pass saw it).
    seen: Guest,
    at: Instant,
    /// How long it is kept ([`config_kept`]).
    keep: Duration,
}

/// The last config read per object uid (entries older than their [`config_kept`] are dropped
/// as new ones come, at most once a second). Boxed: the table keeps its size after a burst
/// (10,000 containers adopted at once), and with the entries inline that was ~6 MiB.
static CONFIGS: LazyLock<Mutex<ReadConfigs>> = LazyLock::new(Default::default);

#[derive(Default)]
struct ReadConfigs {
    by_uid: HashMap<String, Box<ReadConfig>>,
    pruned: Option<Instant>,
}

/// The operator is about to write the config of the object `uid`'s container: it is read again.
pub fn config_written(uid: &str) {
    crate::controller::kernel::recover(CONFIGS.lock(), "the read configs")
        .by_uid
        .remove(uid);
}

/// Whether a pass may use the config read at `read_at` again instead of reading it (pure):
/// read less than `reuse` ([`config_reuse`]) ago, no task of the object ended and nothing was written
/// since (written: the entry is gone), and the inventory's entry is the one the config went
/// with (a config changed in Proxmox shows there as another name, tags, lock, memory, cores
/// or disk; a power change as another status). Passes of a Pod's container waiting for its
/// start slot, and the one the inventory sends after a start the pass saw itself, read
/// nothing again.
pub fn config_reusable(
    seen: &Guest,
    now_listed: &Guest,
    read_at: Instant,
    task_end: Option<Instant>,
    now: Instant,
    reuse: Duration,
) -> bool {
    now.saturating_duration_since(read_at) < reuse
        && task_end.is_none_or(|end| end < read_at)
        && seen.identity() == now_listed.identity()
}

/// The config of the object `uid`'s container read lately on `node`, when still good: read
/// after the object's last task ended, and a fresh inventory shows the container as that read
/// saw it (an inventory read that began before the task's end but already shows its result, as
/// the read that sends the pass after a create often is, is as good).
fn reusable(uid: Option<&str>, snap: Option<&Snapshot>, node: &str, vmid: u32, reuse: Duration) -> Option<Located> {
    let (uid, snap) = (uid?, snap?);
    let g = snap.guests.get(&vmid)?;
    let end = last_task_end(uid);
    let c = crate::controller::kernel::recover(CONFIGS.lock(), "the read configs")
        .by_uid
        .get(uid)
        .cloned()?;
    let fits = c.node == node && c.vmid == vmid && g.node == node && g.kind == "lxc" && g.lock.is_none();
    let fresh = Instant::now().saturating_duration_since(snap.taken_at) < INVENTORY_FRESH;
    (fits && fresh && config_reusable(&c.seen, g, c.at, end, Instant::now(), reuse)).then(|| Located {
        node: node.to_string(),
        config: c.config,
        current: status_of(g),
    })
}

/// Records the config a pass of `uid` read, with the inventory entry it goes with (its
/// status as read). A container the inventory does not list yet (made by the task that just
/// ended) gets the entry its status read shows, so the pass the next inventory read sends
/// (the new container listed) reads nothing again when that entry is the same.
fn remember(uid: Option<&str>, snap: Option<&Snapshot>, found: &Located, vmid: u32, at: Instant, keep: Duration) {
    let Some(uid) = uid else {
        return;
    };
    let mut seen = match snap.and_then(|s| s.guests.get(&vmid)) {
        Some(g) => g.clone(),
        None => listed_as(&found.node, &found.current),
    };
    seen.status = crate::controller::cluster::inventory::shared_status(&found.current.status);
    seen.lock = found.config.lock.clone().filter(|l| !l.is_empty());
    let mut m = crate::controller::kernel::recover(CONFIGS.lock(), "the read configs");
    if m.pruned
        .is_none_or(|p| at.saturating_duration_since(p) >= Duration::from_secs(1))
    {
        m.by_uid.retain(|_, c| at.saturating_duration_since(c.at) < c.keep);
        crate::controller::kernel::shrink_when_sparse(&mut m.by_uid);
        m.pruned = Some(at);
    }
    m.by_uid.insert(
        uid.to_string(),
        Box::new(ReadConfig {
            node: found.node.clone(),
            vmid,
            config: found.config.clone(),
            seen,
            at,
            keep,
        }),
    );
}

/// The inventory entry `status/current` of a container on `node` stands for (pure): the fields
/// [`Guest::identity`] compares, as `/cluster/resources` lists them (an HA-managed container
/// lists its HA state, which `status/current` does not name the same way: such an entry never
/// matches, and the config is read again).
pub fn listed_as(node: &str, st: &pve::LxcStatus) -> Guest {
    let managed = st
        .ha
        .as_ref()
        .and_then(|h| h.get("managed"))
        .and_then(|m| m.as_u64())
        .is_some_and(|m| m != 0);
    Guest {
        vmid: st.vmid,
        node: node.to_string(),
        status: crate::controller::cluster::inventory::shared_status(&st.status),
        name: st.name.clone(),
        tags: st.tags.as_deref().map(pve::props::parse_tags).unwrap_or_default(),
        lock: st.lock.clone().filter(|l| !l.is_empty()),
        template: st.template,
        kind: "lxc",
        maxmem: st.maxmem,
        maxdisk: st.maxdisk,
        maxcpu: st.cpus,
        hastate: managed.then(|| "unknown".to_string()),
        ..Default::default()
    }
}

/// The inventory's view of a container as `status/current` would show it.
fn status_of(g: &Guest) -> pve::LxcStatus {
    pve::LxcStatus {
        vmid: g.vmid,
        status: g.status.to_string(),
        name: g.name.clone(),
        tags: (!g.tags.is_empty()).then(|| g.tags.join(";")),
        lock: g.lock.clone(),
        template: g.template,
        pid: None,
        uptime: g.uptime,
        cpu: g.cpu,
        cpus: g.maxcpu,
        mem: g.mem,
        maxmem: g.maxmem,
        swap: None,
        maxswap: None,
        disk: g.disk,
        maxdisk: g.maxdisk,
        diskread: None,
        diskwrite: None,
        netin: g.netin,
        netout: g.netout,
        ha: None,
    }
}

/// The inventory entry of `vmid` when a pass of `uid` may take the power state from it.
fn inventory_status(snap: Option<&Snapshot>, uid: Option<&str>, node: &str, vmid: u32) -> Option<pve::LxcStatus> {
    let (snap, uid) = (snap?, uid?);
    let end = last_task_end(uid);
    let g = snap.guests.get(&vmid)?;
    power_from_inventory(Some(g), node, snap.taken_at, end, Instant::now()).then(|| status_of(g))
}

/// Whether the inventory has not caught up with what a pass saw of the container (pure): it
/// lists the container unlocked on `node` but was read before the object's last task ended, or
/// shows another power state than the pass read (`seen_status`). The inventory wakes a
/// container when its entry changes from one read to the next, so a change right after such a
/// pass (an app that exits just after its start) would not wake it: the pass looks again soon.
pub fn inventory_behind(
    g: Option<&Guest>,
    node: &str,
    taken_at: Instant,
    task_end: Option<Instant>,
    seen_status: &str,
) -> bool {
    g.is_some_and(|g| {
        g.node == node && g.lock.is_none() && (task_end.is_some_and(|end| taken_at <= end) || g.status != seen_status)
    })
}

/// [`inventory_behind`] for the container `vmid` of the object `uid`, as this process saw it.
pub fn behind(snap: &Snapshot, uid: &str, node: &str, vmid: u32, seen_status: &str) -> bool {
    let end = last_task_end(uid);
    inventory_behind(snap.guests.get(&vmid), node, snap.taken_at, end, seen_status)
}

/// Where a pass takes the container's power state from.
enum Power {
    /// The inventory's entry ([`power_from_inventory`]).
    Listed(Box<pve::LxcStatus>),
    /// Its own create of it just ended, and created it stopped: stopped, as its config says.
    MadeStopped,
    /// `GET …/status/current`.
    Read,
}

/// The inventory entry of a container this process just created stopped, from its config
/// (pure): what `/cluster/resources` lists for it (`maxcpu` is `cpulimit`, else `cores`).
pub fn made_stopped(node: &str, vmid: u32, c: &LxcConfig) -> Guest {
    let disk = c
        .rootfs
        .as_deref()
        .and_then(|r| pve::props::MountPoint::parse_rootfs(r).ok());
    Guest {
        vmid,
        node: node.to_string(),
        status: "stopped".into(),
        name: c.hostname.clone(),
        tags: c.tags.as_deref().map(pve::props::parse_tags).unwrap_or_default(),
        lock: c.lock.clone().filter(|l| !l.is_empty()),
        template: c.template.unwrap_or(false),
        kind: "lxc",
        maxmem: c.memory.map(|m| m << 20),
        maxdisk: disk.and_then(|d| d.size),
        maxcpu: c.cpulimit.filter(|l| *l > 0.0).or(c.cores.map(f64::from)),
        ..Default::default()
    }
}

/// Reads config and status of `vmid` on `node` concurrently; `None` when it is not there. A
/// container not made yet (`expect_absent`) is looked for with its config alone: one request
/// instead of two on every pass while it waits for a task slot or its image; so is one whose
/// power state the inventory shows or that this process just created stopped (`power`).
async fn read_on(
    handle: &ClusterHandle,
    node: &str,
    vmid: u32,
    expect_absent: bool,
    power: Power,
) -> Result<Option<Located>, Error> {
    if let Power::Listed(_) | Power::MadeStopped = power {
        return match handle.client.lxc_config(node, vmid).await {
            Ok(config) => Ok(Some(Located {
                node: node.to_string(),
                current: match power {
                    Power::Listed(current) => *current,
                    _ => status_of(&made_stopped(node, vmid, &config)),
                },
                config,
            })),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    if expect_absent {
        return match handle.client.lxc_config(node, vmid).await {
            Ok(config) => Ok(Some(Located {
                node: node.to_string(),
                config,
                current: handle.client.lxc_status(node, vmid).await?,
            })),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let (cfg, st) = tokio::join!(
        handle.client.lxc_config(node, vmid),
        handle.client.lxc_status(node, vmid)
    );
    match cfg {
        Ok(config) => Ok(Some(Located {
            node: node.to_string(),
            config,
            current: st?,
        })),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finds the container: on the node the inventory says, else the node in status, else the
/// spec's node. `None` when Proxmox has no config for it on any of them.
pub async fn locate(
    handle: &ClusterHandle,
    vmid: u32,
    status: &LxcContainerStatus,
    spec_node: Option<&str>,
) -> Result<Option<Located>, Error> {
    locate_for(handle, vmid, status, spec_node, None, false).await
}

/// [`locate`] for a pass of the object `uid` (`Some`): its power state comes from the inventory
/// where [`power_from_inventory`] allows, and is known without a read right after this
/// process created it stopped (a container from an image, `from_image`: its first start comes
/// after its config update).
pub async fn locate_for(
    handle: &ClusterHandle,
    vmid: u32,
    status: &LxcContainerStatus,
    spec_node: Option<&str>,
    uid: Option<&str>,
    from_image: bool,
) -> Result<Option<Located>, Error> {
    let snap = handle.snapshot();
    let mut nodes: Vec<String> = Vec::new();
    let listed_guest = snap
        .as_ref()
        .and_then(|s| s.guests.get(&vmid))
        .filter(|g| g.kind != "qemu")
        .map(|g| g.node.clone());
    nodes.extend(listed_guest.clone());
    nodes.extend(status.node.clone());
    nodes.extend(spec_node.map(str::to_string));
    let mut seen = std::collections::HashSet::new();
    // a node the inventory does not list holds nothing (a typo in spec.node): not asked
    let listed = |n: &String| snap.as_ref().is_none_or(|s| s.nodes.iter().any(|x| &x.name == n));
    // moved behind our back since the last inventory? ask for a fresh one once — only for a
    // container known to have existed (a new one is simply not there yet)
    let existed = matches!(
        status.phase,
        Some(ContainerPhase::Running | ContainerPhase::Stopped | ContainerPhase::Deleting)
    );
    // nothing made yet: no task recorded that may have made it, and the inventory lists none
    let not_made = !existed && status.pending_task.is_none() && listed_guest.is_none();
    let taken_at = snap.as_ref().map(|s| s.taken_at);
    let in_inventory = snap.as_ref().is_some_and(|s| s.guests.contains_key(&vmid));
    let last = uid.and_then(last_task);
    let task_end = last.map(|(at, _)| at);
    // the pass after this process's own create of a container made stopped
    let made_by_create = from_image
        && status.phase == Some(ContainerPhase::Creating)
        && last.is_some_and(|(_, op)| op == Some(Operation::Create));
    if uid.is_some() && absent_by_inventory(not_made, in_inventory, taken_at, task_end, Instant::now()) {
        return Ok(None);
    }
    let waiting = crate::controller::conditions::get(&status.conditions, CONDITION_SYNCED)
        .is_some_and(|c| c.reason == Reason::WaitingForTaskSlot.as_str());
    let reuse = config_reuse(handle.resync, waiting);
    for node in nodes.into_iter().filter(|n| seen.insert(n.clone())).filter(listed) {
        if let Some(found) = reusable(uid, snap.as_deref(), &node, vmid, reuse) {
            return Ok(Some(found));
        }
        let power = match inventory_status(snap.as_deref(), uid, &node, vmid) {
            Some(listed) => Power::Listed(Box::new(listed)),
            None if made_by_create => Power::MadeStopped,
            None => Power::Read,
        };
        let at = Instant::now();
        if let Some(found) = read_on(handle, &node, vmid, not_made, power).await? {
            let keep = config_kept(handle.resync, waiting, task_end.is_some());
            remember(uid, snap.as_deref(), &found, vmid, at, keep);
            return Ok(Some(found));
        }
    }
    if !existed {
        return Ok(None);
    }
    if let Some(s) = handle.fresh_snapshot(Instant::now(), Duration::from_secs(10)).await {
        if let Some(g) = s.guests.get(&vmid).filter(|g| g.kind != "qemu") {
            if status.node.as_deref() != Some(g.node.as_str()) {
                return read_on(handle, &g.node, vmid, false, Power::Read).await;
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(node: &str, lock: Option<&str>) -> Guest {
        Guest {
            vmid: 100,
            node: node.into(),
            status: "running".into(),
            kind: "lxc",
            lock: lock.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_takes_the_power_state_from_a_fresh_inventory_read_after_its_last_task() {
        let t0 = Instant::now();
        let (g, later) = (guest("pve1", None), t0 + Duration::from_secs(5));
        assert!(
            power_from_inventory(Some(&g), "pve1", t0, None, later),
            "no task seen: a fresh inventory stands in"
        );
        let ended_before = Some(t0 - Duration::from_secs(1));
        assert!(power_from_inventory(Some(&g), "pve1", t0, ended_before, later));
    }

    #[test]
    fn a_pass_right_after_its_start_task_ended_reads_the_power_state_from_proxmox() {
        let t0 = Instant::now();
        let g = guest("pve1", None);
        let ended_after = Some(t0 + Duration::from_millis(1));
        assert!(!power_from_inventory(
            Some(&g),
            "pve1",
            t0,
            ended_after,
            t0 + Duration::from_secs(1)
        ));
    }

    #[test]
    fn a_pass_that_saw_more_than_the_inventory_looks_again_so_an_exit_right_after_a_start_is_not_missed() {
        let t0 = Instant::now();
        let g = guest("pve1", None);
        let started_after = Some(t0 + Duration::from_millis(1));
        assert!(
            inventory_behind(Some(&g), "pve1", t0, started_after, "running"),
            "read before the start ended: the next read may show the same entry"
        );
        let mut stopped = g.clone();
        stopped.status = "stopped".into();
        assert!(
            inventory_behind(Some(&stopped), "pve1", t0, None, "running"),
            "the inventory still shows the exit before the restart"
        );
        let ended_before = Some(t0 - Duration::from_secs(1));
        assert!(
            !inventory_behind(Some(&g), "pve1", t0, ended_before, "running"),
            "caught up"
        );
        assert!(
            !inventory_behind(None, "pve1", t0, started_after, "running"),
            "not listed"
        );
        let locked = guest("pve1", Some("backup"));
        assert!(
            !inventory_behind(Some(&locked), "pve1", t0, started_after, "running"),
            "locked: the lock's end is a change the inventory shows"
        );
    }

    #[test]
    fn a_container_waiting_for_its_create_slot_is_not_looked_for_while_a_fresh_inventory_lacks_it() {
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(5);
        assert!(
            absent_by_inventory(true, false, Some(t0), None, soon),
            "not made, not listed: no read"
        );
        assert!(
            !absent_by_inventory(true, true, Some(t0), None, soon),
            "listed: looked for"
        );
        assert!(
            !absent_by_inventory(false, false, Some(t0), None, soon),
            "a task may have made it: looked for"
        );
        assert!(
            !absent_by_inventory(true, false, Some(t0), None, t0 + INVENTORY_FRESH),
            "stale inventory: looked for"
        );
        assert!(
            !absent_by_inventory(true, false, None, None, soon),
            "no inventory: looked for"
        );
    }

    #[test]
    fn a_container_whose_create_just_ended_is_looked_for_though_the_inventory_was_read_before() {
        let t0 = Instant::now();
        let ended = Some(t0 + Duration::from_secs(1));
        assert!(!absent_by_inventory(
            true,
            false,
            Some(t0),
            ended,
            t0 + Duration::from_secs(2)
        ));
        assert!(absent_by_inventory(
            true,
            false,
            Some(t0),
            Some(t0 - Duration::from_secs(1)),
            t0
        ));
    }

    #[test]
    fn a_config_read_lately_is_used_again_while_the_inventory_shows_the_same_container() {
        let t0 = Instant::now();
        let (seen, soon, r) = (guest("pve1", None), t0 + Duration::from_secs(3), CONFIG_REUSE);
        assert!(config_reusable(&seen, &seen.clone(), t0, None, soon, r));
        assert!(config_reusable(
            &seen,
            &seen.clone(),
            t0,
            Some(t0 - Duration::from_secs(1)),
            soon,
            r
        ));
    }

    #[test]
    fn a_config_changed_in_proxmox_a_task_end_or_time_makes_the_pass_read_it_again() {
        let t0 = Instant::now();
        let (seen, soon, r) = (guest("pve1", None), t0 + Duration::from_secs(3), CONFIG_REUSE);
        let mut memory = seen.clone();
        memory.maxmem = Some(1 << 30);
        assert!(
            !config_reusable(&seen, &memory, t0, None, soon, r),
            "memory changed by hand"
        );
        let mut stopped = seen.clone();
        stopped.status = "stopped".into();
        assert!(!config_reusable(&seen, &stopped, t0, None, soon, r), "stopped by hand");
        assert!(
            !config_reusable(&seen, &seen.clone(), t0, Some(t0 + Duration::from_secs(1)), soon, r),
            "a task ended since"
        );
        assert!(
            !config_reusable(&seen, &seen.clone(), t0, None, t0 + r, r),
            "read too long ago"
        );
    }

    #[test]
    fn a_config_is_kept_a_minute_only_for_a_container_waiting_for_a_slot_or_just_after_its_task() {
        let resync = Duration::from_secs(15);
        for (waiting, task_lately, kept) in [
            (false, false, 10), // adopted or in sync: what a drift pass may reuse
            (true, false, 60),  // waiting for a task slot
            (false, true, 60),  // a Pod's container between its create and its start
            (true, true, 60),
        ] {
            assert_eq!(config_kept(resync, waiting, task_lately), Duration::from_secs(kept));
        }
        assert_eq!(config_kept(Duration::from_secs(300), false, false), CONFIG_REUSE_MAX);
    }

    #[test]
    fn a_config_is_used_again_for_at_most_half_the_resync_interval_so_drift_passes_read_their_own() {
        let s = Duration::from_secs;
        assert_eq!(config_reuse(s(60), false), s(30), "the default resync");
        assert_eq!(config_reuse(s(30), false), s(15));
        assert_eq!(config_reuse(s(5), false), CONFIG_REUSE, "never below the floor");
        assert_eq!(config_reuse(s(3600), false), CONFIG_REUSE_MAX, "nor above the cap");
        assert_eq!(
            config_reuse(s(15), true),
            INVENTORY_FRESH,
            "waiting for a task slot: the pass after the task reads anew"
        );
    }

    /// A stopped container `web` of 512 MiB, 2 cores and 8 GiB, as the simulator's
    /// `/cluster/resources` lists it.
    fn listed_web() -> Guest {
        Guest {
            vmid: 100,
            node: "pve1".into(),
            status: "stopped".into(),
            name: Some("web".into()),
            tags: vec!["k8s-abc".into(), "web".into()],
            kind: "lxc",
            maxmem: Some(536870912),
            maxdisk: Some(8589934592),
            maxcpu: Some(2.0),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_the_inventory_does_not_list_yet_is_remembered_as_its_status_read_shows_it() {
        let st: pve::LxcStatus = serde_json::from_value(serde_json::json!({
            "vmid": 100, "status": "stopped", "name": "web", "tags": "k8s-abc;web",
            "maxmem": 536870912, "maxdisk": 8589934592u64, "cpus": 2, "ha": {"managed": 0}
        }))
        .unwrap();
        let listed = listed_web();
        let seen = listed_as("pve1", &st);
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(config_reusable(
            &seen,
            &listed,
            Instant::now(),
            None,
            soon,
            CONFIG_REUSE
        ));
        let mut ha: pve::LxcStatus = st.clone();
        ha.ha = Some(serde_json::json!({"managed": 1, "state": "started"}));
        let mut listed_ha = listed.clone();
        listed_ha.hastate = Some("started".into());
        assert!(
            !config_reusable(
                &listed_as("pve1", &ha),
                &listed_ha,
                Instant::now(),
                None,
                soon,
                CONFIG_REUSE
            ),
            "an HA-managed one is read again"
        );
    }

    #[test]
    fn a_container_just_created_stopped_is_listed_as_its_config_says_so_no_status_is_read() {
        let c: LxcConfig = serde_json::from_value(serde_json::json!({
            "hostname": "web", "tags": "k8s-abc;web", "memory": 512, "cores": 2,
            "rootfs": "local-lvm:vm-100-disk-0,size=8G", "digest": "x"
        }))
        .unwrap();
        let listed = listed_web();
        let g = made_stopped("pve1", 100, &c);
        assert!(g.identity() == listed.identity(), "{g:?}");
        let mut limited = c.clone();
        limited.cpulimit = Some(1.5);
        assert_eq!(made_stopped("pve1", 100, &limited).maxcpu, Some(1.5), "cpulimit first");
    }

    #[test]
    fn a_stale_inventory_another_node_a_lock_or_no_entry_is_never_taken_for_the_power_state() {
        let t0 = Instant::now();
        let g = guest("pve1", None);
        assert!(
            !power_from_inventory(Some(&g), "pve1", t0, None, t0 + INVENTORY_FRESH),
            "stale"
        );
        assert!(
            !power_from_inventory(Some(&g), "pve2", t0, None, t0),
            "listed on another node"
        );
        assert!(
            !power_from_inventory(Some(&guest("pve1", Some("backup"))), "pve1", t0, None, t0),
            "locked"
        );
        assert!(!power_from_inventory(None, "pve1", t0, None, t0), "not listed");
    }
}
