//! The container controller's decisions as pure functions of (object, Proxmox snapshot, what
//! this process recorded): where a new container goes, and when a container that ended by
//! itself is started again. Whose a container is: [`super::identity`].

use crate::controller::cluster::Snapshot;
use crate::controller::kernel::Reason;
use std::collections::HashMap;

/// Where a new container comes from, for placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From an OS template.
    Create,
    /// From a backup archive; `Some(node)` when the archive is on storage only that node sees.
    Restore(Option<String>),
    /// A clone of a container on `node`.
    Clone(String),
}

/// Why no node was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unplaced {
    /// Condition reason.
    pub reason: Reason,
    /// What to tell the user.
    pub message: String,
}

/// Picks the node for a new container: the user's (if online), the clone source's, the
/// archive's node for an archive not on shared storage, else an online node with `storage`
/// (content rootdir) and the most free memory after `reserved` (placements not yet in the
/// inventory).
pub fn placement(
    spec_node: Option<&str>,
    origin: &Origin,
    snap: &Snapshot,
    storage: &str,
    reserved: &HashMap<String, u64>,
) -> Result<String, Unplaced> {
    placement_with_load(spec_node, origin, snap, storage, reserved, &HashMap::new())
}

/// [`placement`], and among the nodes that fit, the least loaded first (`load`: objects
/// waiting for a task slot there minus its free slots; absent = 0), so a burst of creates
/// spreads over the nodes' task slots instead of queueing behind the one with the most memory.
pub fn placement_with_load(
    spec_node: Option<&str>,
    origin: &Origin,
    snap: &Snapshot,
    storage: &str,
    reserved: &HashMap<String, u64>,
    load: &HashMap<String, i64>,
) -> Result<String, Unplaced> {
    let offline = |n: &str, what: String| Unplaced {
        reason: Reason::NodeUnavailable,
        message: format!("{what} {n}, which is not online"),
    };
    match (spec_node, origin) {
        (Some(n), _) if !snap.node_online(n) => Err(Unplaced {
            reason: Reason::NodeUnavailable,
            message: format!("node {n} is not online in Proxmox"),
        }),
        (Some(n), _) => Ok(n.to_string()),
        (None, Origin::Clone(src)) => Ok(src.clone()),
        (None, Origin::Restore(Some(n))) if !snap.node_online(n) => {
            Err(offline(n, "the backup archive is on node".into()))
        }
        (None, Origin::Restore(Some(n))) => Ok(n.clone()),
        (None, _) => least_loaded(snap.placement_candidates(storage, reserved), load).ok_or_else(|| Unplaced {
            reason: Reason::NoNodeAvailable,
            message: format!("no online node has storage {storage} for containers (content rootdir)"),
        }),
    }
}

/// The first of `candidates` (in their order of preference) with the lowest load.
fn least_loaded(candidates: Vec<String>, load: &HashMap<String, i64>) -> Option<String> {
    spread_placement(candidates, &HashMap::new(), load)
}

/// The candidate with the fewest `siblings` (containers of the same spread group already
/// there), then the lowest load, then the first in preference order: replicas land on
/// different nodes while there are nodes without one.
pub fn spread_placement(
    candidates: Vec<String>,
    siblings: &HashMap<String, i64>,
    load: &HashMap<String, i64>,
) -> Option<String> {
    let of = |m: &HashMap<String, i64>, n: &str| m.get(n).copied().unwrap_or(0);
    candidates
        .into_iter()
        .enumerate()
        .min_by_key(|(i, n)| (of(siblings, n), of(load, n), *i))
        .map(|(_, n)| n)
}

/// [`placement_with_load`] for a container of a spread group: among the nodes that fit, one
/// with the fewest `siblings` first. `Some(n)` in the second value when every candidate
/// already holds `n` siblings (spreading was not possible: reported, not refused).
pub fn placement_spread(
    origin: &Origin,
    snap: &Snapshot,
    storage: &str,
    reserved: &HashMap<String, u64>,
    load: &HashMap<String, i64>,
    siblings: &HashMap<String, i64>,
) -> Result<(String, Option<i64>), Unplaced> {
    let candidates = snap.placement_candidates(storage, reserved);
    if !matches!(origin, Origin::Create) || candidates.is_empty() {
        return placement_with_load(None, origin, snap, storage, reserved, load).map(|n| (n, None));
    }
    let node = spread_placement(candidates, siblings, load).expect("not empty");
    let shared = siblings.get(&node).copied().unwrap_or(0);
    Ok((node, (shared > 0).then_some(shared)))
}

/// Where a clone onto `node` of a source on `src_node` is made. Proxmox's `target` works only
/// when every disk of the source is on shared storage (`local_disks` lists the others): then
/// the clone goes straight to `node`; otherwise a full clone is made next to the source (the
/// update path then migrates it) and a linked clone is impossible (`Err` lists the storages).
pub fn clone_node(node: &str, src_node: &str, full: bool, local_disks: &[String]) -> Result<String, String> {
    if node == src_node || local_disks.is_empty() {
        Ok(node.to_string())
    } else if full {
        Ok(src_node.to_string())
    } else {
        Err(local_disks.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::ClusterResource;

    #[test]
    fn replicas_of_a_spread_group_go_to_nodes_without_one_first() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m = |v: &[(&str, i64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<HashMap<_, _>>();
        // pve1 has the most memory (first), but already a replica
        let siblings = m(&[("pve1", 1)]);
        assert_eq!(
            spread_placement(c(&["pve1", "pve2", "pve3"]), &siblings, &HashMap::new()).as_deref(),
            Some("pve2")
        );
        // load breaks ties between nodes without a replica
        let load = m(&[("pve2", 3)]);
        assert_eq!(
            spread_placement(c(&["pve1", "pve2", "pve3"]), &siblings, &load).as_deref(),
            Some("pve3")
        );
        // every node has one: the least crowded, then the usual order
        let full = m(&[("pve1", 2), ("pve2", 1), ("pve3", 1)]);
        assert_eq!(
            spread_placement(c(&["pve1", "pve2", "pve3"]), &full, &HashMap::new()).as_deref(),
            Some("pve2")
        );
    }

    fn snap() -> Snapshot {
        let node = |name: &str, online: bool, used: u64| -> ClusterResource {
            serde_json::from_value(serde_json::json!({
                "id": format!("node/{name}"), "type": "node", "node": name,
                "status": if online {"online"} else {"offline"}, "maxmem": 8u64 << 30, "mem": used,
            }))
            .unwrap()
        };
        let storage = |node: &str, name: &str| -> ClusterResource {
            serde_json::from_value(serde_json::json!({
                "id": format!("storage/{node}/{name}"), "type": "storage", "node": node, "storage": name,
                "content": "rootdir,images", "status": "available", "shared": 0,
            }))
            .unwrap()
        };
        let list = vec![
            node("pve1", true, 6 << 30),
            node("pve2", true, 1 << 30),
            node("pve3", false, 0),
            storage("pve1", "local-lvm"),
            storage("pve2", "local-lvm"),
            storage("pve3", "local-lvm"),
            storage("pve1", "only1"),
        ];
        Snapshot::from_resources(&list, std::time::Instant::now())
    }

    #[test]
    fn placement_takes_the_users_node_only_when_it_is_online() {
        let s = snap();
        assert_eq!(
            placement(Some("pve1"), &Origin::Create, &s, "local-lvm", &HashMap::new()),
            Ok("pve1".into())
        );
        let e = placement(Some("pve3"), &Origin::Create, &s, "local-lvm", &HashMap::new()).unwrap_err();
        assert_eq!(e.reason, Reason::NodeUnavailable);
    }

    #[test]
    fn placement_picks_the_online_node_with_the_storage_and_the_most_free_memory() {
        let s = snap();
        assert_eq!(
            placement(None, &Origin::Create, &s, "local-lvm", &HashMap::new()),
            Ok("pve2".into())
        );
        assert_eq!(
            placement(None, &Origin::Create, &s, "only1", &HashMap::new()),
            Ok("pve1".into())
        );
        // placements not yet in the inventory count: a burst spreads over the nodes
        let reserved = HashMap::from([("pve2".to_string(), 6u64 << 30)]);
        assert_eq!(
            placement(None, &Origin::Create, &s, "local-lvm", &reserved),
            Ok("pve1".into())
        );
        let e = placement(None, &Origin::Create, &s, "nowhere", &HashMap::new()).unwrap_err();
        assert_eq!(e.reason, Reason::NoNodeAvailable);
    }

    #[test]
    fn a_burst_of_creates_spreads_over_the_nodes_task_slots() {
        let s = snap();
        // pve2 has the most free memory but its slots are taken and objects queue there
        let load = HashMap::from([("pve2".to_string(), 3i64), ("pve1".to_string(), -1)]);
        assert_eq!(
            placement_with_load(None, &Origin::Create, &s, "local-lvm", &HashMap::new(), &load),
            Ok("pve1".into())
        );
        // equal load: the most free memory wins
        assert_eq!(
            placement_with_load(None, &Origin::Create, &s, "local-lvm", &HashMap::new(), &HashMap::new()),
            Ok("pve2".into())
        );
    }

    #[test]
    fn a_clone_goes_next_to_its_source_and_a_local_archive_is_restored_on_its_node() {
        let s = snap();
        assert_eq!(
            placement(None, &Origin::Clone("pve1".into()), &s, "local-lvm", &HashMap::new()),
            Ok("pve1".into())
        );
        assert_eq!(
            placement(
                None,
                &Origin::Restore(Some("pve1".into())),
                &s,
                "local-lvm",
                &HashMap::new()
            ),
            Ok("pve1".into())
        );
        assert_eq!(
            placement(None, &Origin::Restore(None), &s, "local-lvm", &HashMap::new()),
            Ok("pve2".into())
        );
        let e = placement(
            None,
            &Origin::Restore(Some("pve3".into())),
            &s,
            "local-lvm",
            &HashMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::NodeUnavailable);
    }

    #[test]
    fn a_linked_clone_across_nodes_needs_shared_disks_and_a_full_one_is_made_next_to_its_source() {
        assert_eq!(clone_node("pve2", "pve1", false, &[]), Ok("pve2".into()));
        assert_eq!(
            clone_node("pve2", "pve1", true, &["local-lvm".into()]),
            Ok("pve1".into())
        );
        assert_eq!(
            clone_node("pve2", "pve1", false, &["local-lvm".into()]),
            Err("local-lvm".into())
        );
        assert_eq!(
            clone_node("pve1", "pve1", false, &["local-lvm".into()]),
            Ok("pve1".into())
        );
    }
}

/// How long to wait before starting again a container whose process ended by itself (pure):
/// `None` to start now. A kubelet's CrashLoopBackOff: none for the first restart, then 10 s
/// doubling up to 5 min, counted from when the exit was seen (a kubelet counts from the
/// container's finish time, so a slow notice of the exit never skips the back-off). The count
/// starting over after 10 min without a restart is the caller's (`restarts` is then 0).
pub fn restart_back_off(restarts: u32, since_exit: std::time::Duration) -> Option<std::time::Duration> {
    use std::time::Duration;
    if restarts == 0 {
        return None;
    }
    let wait = Duration::from_secs(10 * (1u64 << (restarts - 1).min(5))).min(Duration::from_secs(300));
    wait.checked_sub(since_exit).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod back_off_tests {
    use super::restart_back_off;
    use std::time::Duration;

    #[test]
    fn the_first_restart_is_at_once_then_the_wait_doubles_up_to_five_minutes() {
        let s = Duration::from_secs;
        assert_eq!(restart_back_off(0, s(0)), None);
        assert_eq!(restart_back_off(1, s(0)), Some(s(10)));
        assert_eq!(restart_back_off(1, s(4)), Some(s(6)));
        assert_eq!(restart_back_off(2, s(0)), Some(s(20)));
        assert_eq!(restart_back_off(9, s(0)), Some(s(300)));
        assert_eq!(restart_back_off(3, s(40)), None, "waited long enough");
    }

    #[test]
    fn the_wait_counts_from_the_exit_so_an_exit_noticed_late_still_backs_off() {
        // the second exit noticed 30 s after the first restart: a kubelet still waits 10 s
        assert_eq!(restart_back_off(1, Duration::ZERO), Some(Duration::from_secs(10)));
    }
}
