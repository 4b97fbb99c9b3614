//! The snapshot controller's decisions as pure functions.

use crate::controller::cluster::Snapshot as Inventory;
use crate::controller::error::InvalidSpec;
use crate::controller::kernel::Reason;
use crate::crd::lxc_snapshot::{LxcSnapshot, RollbackRequest, RollbackStatus, SnapshotPhase, SNAPSHOT_NAME_PATTERN};
use kube::ResourceExt;
use sha2::Digest;

/// The first word of the mark in a snapshot's description.
const MARK: &str = "pve.lxc.dev snapshot=";

/// The task a pass starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Take the snapshot.
    Snapshot,
    /// Roll the container back to it.
    Rollback,
    /// Delete it.
    Delete,
}

impl Want {
    /// The operation recorded in `status.pendingTask`.
    pub fn operation(self) -> &'static str {
        match self {
            Want::Snapshot => "snapshot",
            Want::Rollback => "rollback",
            Want::Delete => "delete",
        }
    }
}

/// `k8s-<name>` made a Proxmox snapshot name: dots become dashes, and a name too long keeps
/// its start plus a short hash of the whole (so two long names never collide).
pub fn derived_name(object: &str) -> String {
    let clean: String = object
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let full = format!("k8s-{clean}");
    if full.len() <= 40 {
        return full;
    }
    let hash = hex::encode(sha2::Sha256::digest(object.as_bytes()));
    format!("{}-{}", &full[..31], &hash[..8])
}

/// The snapshot's name: the one recorded (it cannot change once taken), else the spec's, else
/// derived from the object's name.
pub fn snapshot_name(obj: &LxcSnapshot, recorded: Option<&str>) -> Result<String, InvalidSpec> {
    let wanted = obj
        .spec
        .snapshot_name
        .clone()
        .unwrap_or_else(|| derived_name(&obj.name_any()));
    let re = regex::Regex::new(SNAPSHOT_NAME_PATTERN).expect("valid pattern");
    if !re.is_match(&wanted) || wanted == "current" || wanted == "vzdump" {
        return Err(InvalidSpec {
            field: "snapshotName".into(),
            message: format!("{wanted:?} is not a Proxmox snapshot name (a letter, then 1-39 letters, digits, - or _; not current or vzdump)"),
        });
    }
    match recorded {
        Some(r) if r != wanted => Err(InvalidSpec {
            field: "snapshotName".into(),
            message: format!("snapshotName cannot change once the snapshot exists: it is {r}"),
        }),
        _ => Ok(wanted),
    }
}

/// The description written with the snapshot: our mark first, then the user's.
pub fn description(uid: &str, user: Option<&str>) -> String {
    match user.filter(|u| !u.is_empty()) {
        Some(u) => format!("{MARK}{uid}\n{u}"),
        None => format!("{MARK}{uid}"),
    }
}

/// Whether a snapshot's description carries the mark of `uid`.
pub fn marked(description: Option<&str>, uid: &str) -> bool {
    description
        .and_then(|d| d.lines().next())
        .and_then(|l| l.strip_prefix(MARK))
        .is_some_and(|u| u.trim() == uid)
}

/// The node of CT `vmid` when the inventory shows it with the identity tag of container `uid`.
pub fn located(inv: &Inventory, vmid: u32, container_uid: &str) -> Result<String, (Reason, String)> {
    let tag = crate::controller::container::desired::identity_tag(container_uid);
    match inv.guests.get(&vmid) {
        None => Err((
            Reason::WaitingForContainer,
            format!("CT {vmid} is not in Proxmox (yet)"),
        )),
        Some(g) if !g.tags.contains(&tag) => Err((
            Reason::NotOwned,
            format!("CT {vmid} does not carry the identity tag of its LxcContainer"),
        )),
        Some(g) => Ok(g.node.clone()),
    }
}

/// What became of the container a snapshot was taken of (`taken_of`: its uid and vmid then),
/// given the `LxcContainer` of that name now (`now`: its uid and vmid; `None` when it does not
/// exist): `None` while it is the same one.
pub fn container_changed(
    name: &str,
    snapshot: &str,
    taken_of: Option<(&str, u32)>,
    now: Option<(&str, Option<u32>)>,
) -> Option<(Reason, String)> {
    let (uid, vmid) = taken_of?;
    match now {
        None => Some((
            Reason::ContainerNotFound,
            format!("LxcContainer {name} was deleted; snapshot {snapshot} of CT {vmid} went with it"),
        )),
        Some((u, _)) if u == uid => None,
        Some((_, new)) => {
            let new = new.map(|v| format!(" (CT {v} now)")).unwrap_or_default();
            Some((
                Reason::ContainerRecreated,
                format!("LxcContainer {name} was re-created{new}: snapshot {snapshot} was taken of CT {vmid}, which is gone; delete this LxcSnapshot, or take a new one"),
            ))
        }
    }
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Take the snapshot.
    Take,
    /// It exists with our mark (taken by an earlier pass): record it.
    Adopt,
    /// A snapshot of that name exists that we did not take.
    Taken,
    /// It was taken, and is gone from Proxmox.
    Gone,
    /// Roll back for this request.
    Rollback(String),
    /// Nothing: in sync.
    Nothing,
}

/// Decides from the phase, whether Proxmox has the snapshot (`Some(marked)`), and the rollback
/// asked for against the last one recorded.
pub fn next(
    phase: Option<SnapshotPhase>,
    exists: Option<bool>,
    asked: Option<&RollbackRequest>,
    done: Option<&RollbackStatus>,
) -> Next {
    match (phase, exists) {
        (_, Some(false)) => Next::Taken,
        (Some(SnapshotPhase::Ready), None) => Next::Gone,
        (_, None) => Next::Take,
        (Some(SnapshotPhase::Ready), Some(true)) => match asked {
            Some(r) if done.is_none_or(|d| d.request != r.request) => Next::Rollback(r.request.clone()),
            _ => Next::Nothing,
        },
        (_, Some(true)) => Next::Adopt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(r: &str) -> RollbackRequest {
        RollbackRequest {
            request: r.into(),
            start: None,
        }
    }

    fn done(r: &str) -> RollbackStatus {
        RollbackStatus {
            request: r.into(),
            completed_at: None,
            snapshot_name: "s".into(),
        }
    }

    #[test]
    fn a_rollback_request_is_carried_out_once_whatever_is_re_applied() {
        let ready = Some(SnapshotPhase::Ready);
        assert_eq!(
            next(ready, Some(true), Some(&asked("a")), None),
            Next::Rollback("a".into())
        );
        assert_eq!(
            next(ready, Some(true), Some(&asked("a")), Some(&done("a"))),
            Next::Nothing
        );
        assert_eq!(
            next(ready, Some(true), Some(&asked("b")), Some(&done("a"))),
            Next::Rollback("b".into())
        );
        assert_eq!(next(ready, Some(true), None, Some(&done("a"))), Next::Nothing);
        // never before the snapshot is there
        assert_eq!(next(None, None, Some(&asked("a")), None), Next::Take);
    }

    #[test]
    fn a_snapshot_we_did_not_take_is_never_adopted_and_a_lost_one_is_reported() {
        assert_eq!(next(None, Some(false), None, None), Next::Taken);
        assert_eq!(next(Some(SnapshotPhase::Creating), Some(true), None, None), Next::Adopt);
        assert_eq!(next(Some(SnapshotPhase::Ready), None, None, None), Next::Gone);
    }

    #[test]
    fn a_snapshot_says_when_its_container_was_deleted_or_re_created() {
        let taken = Some(("uid-1", 101));
        assert_eq!(container_changed("hello", "s", taken, Some(("uid-1", Some(101)))), None);
        assert_eq!(container_changed("hello", "s", None, None), None, "not taken yet");
        let (r, m) = container_changed("hello", "s", taken, None).unwrap();
        assert_eq!(r, Reason::ContainerNotFound);
        assert_eq!(m, "LxcContainer hello was deleted; snapshot s of CT 101 went with it");
        let (r, m) = container_changed("hello", "s", taken, Some(("uid-2", Some(118)))).unwrap();
        assert_eq!(r, Reason::ContainerRecreated);
        assert!(
            m.starts_with("LxcContainer hello was re-created (CT 118 now): snapshot s was taken of CT 101"),
            "{m}"
        );
    }

    #[test]
    fn derived_names_are_valid_proxmox_names_and_long_ones_do_not_collide() {
        assert_eq!(derived_name("before.upgrade"), "k8s-before-upgrade");
        let a = derived_name(&format!("{}-a", "x".repeat(60)));
        let b = derived_name(&format!("{}-b", "x".repeat(60)));
        assert!(a.len() <= 40 && b.len() <= 40 && a != b, "{a} {b}");
        let re = regex::Regex::new(SNAPSHOT_NAME_PATTERN).unwrap();
        assert!(re.is_match(&a));
    }

    #[test]
    fn only_our_mark_on_the_first_line_makes_a_snapshot_ours() {
        let d = description("uid-1", Some("before the upgrade"));
        assert!(marked(Some(&d), "uid-1"));
        assert!(!marked(Some(&d), "uid-2"));
        assert!(!marked(Some("made by hand\npve.lxc.dev snapshot=uid-1"), "uid-1"));
        assert!(!marked(None, "uid-1"));
    }
}
