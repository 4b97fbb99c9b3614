//! Snapshot-then-clone: Proxmox makes a full clone of a running container only from a
//! snapshot, so the create takes a temporary snapshot of the source (`k8s-clone-<uid>`, with
//! the container's mark in its description), clones from it, then deletes it. Each step is
//! its own task pass, and the snapshot is recorded in `status.cloneSnapshot` before it is
//! taken, so a restart mid-way neither leaks it nor clones twice: once the clone from it has
//! been started (`used`) and no task runs, it is deleted, whether the clone succeeded or failed,
//! and it is deleted too when the object goes. [`step`] and [`tidy`] are the pure decisions.

use super::pass::{next_poll, start_task, P};
use crate::controller::cluster::{ClusterHandle, Snapshot as Inventory};
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::task::{self, Started};
use crate::controller::kernel::Reason;
use crate::controller::snapshot::decide::{description, marked};
use crate::controller::Error;
use crate::crd::lxc_container::{CloneSnapshot, ContainerPhase};
use crate::crd::{Operation, CONDITION_READY};
use kube::runtime::controller::Action;

/// The operation recorded while the temporary snapshot is taken.
pub const TAKE_OPERATION: Operation = Operation::CloneSnapshot;
/// The operation recorded while the temporary snapshot is deleted.
pub const DELETE_OPERATION: Operation = Operation::CloneSnapshotDelete;

/// The temporary snapshot's name for container `uid`: `k8s-clone-` and the uid's first 12
/// hex digits (a Proxmox snapshot name has at most 40 characters).
pub fn temp_name(uid: &str) -> String {
    let hex: String = uid.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
    format!("k8s-clone-{hex}")
}

/// How a clone is made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Straight from the source (a linked clone, or a stopped source).
    Direct,
    /// Take the temporary snapshot of this name first.
    Take(String),
    /// Clone from the temporary snapshot of this name.
    From(String),
}

/// The clone step: from the recorded temporary snapshot when it exists (`ours`: listed with
/// our mark), taking it (again) when it was recorded but is not there, taking a new one for a
/// full clone of a running source, else straight.
pub fn step(full: bool, source_running: bool, recorded: Option<&CloneSnapshot>, ours: bool, uid: &str) -> Step {
    match recorded {
        Some(r) if ours => Step::From(r.name.clone()),
        Some(r) => Step::Take(r.name.clone()),
        None if full && source_running => Step::Take(temp_name(uid)),
        None => Step::Direct,
    }
}

/// What to do with a recorded temporary snapshot when no task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tidy {
    /// Keep it (the clone from it is still to be made), or there is none.
    Keep,
    /// Delete it from Proxmox.
    Delete,
    /// It is gone (or not ours: never deleted): forget it.
    Forget,
}

/// The tidy decision: a snapshot is kept until the clone from it has been started (`used`)
/// unless the object is being deleted; then it is deleted when Proxmox lists it with our mark
/// (`present`: `Some(ours)`), else forgotten.
pub fn tidy(recorded: Option<&CloneSnapshot>, deleting: bool, present: Option<bool>) -> Tidy {
    match recorded {
        None => Tidy::Keep,
        Some(r) if !r.used && !deleting => Tidy::Keep,
        Some(_) if present == Some(true) => Tidy::Delete,
        Some(_) => Tidy::Forget,
    }
}

/// Whether Proxmox lists snapshot `name` of CT `vmid` on `node`, and with our mark.
async fn present(p: &P<'_>, handle: &ClusterHandle, node: &str, vmid: u32, name: &str) -> Result<Option<bool>, Error> {
    let list = handle.client.lxc_snapshots(node, vmid).await?;
    Ok(list
        .iter()
        .find(|s| s.name == name)
        .map(|s| marked(s.description.as_deref(), &p.uid)))
}

/// Deletes or forgets the recorded temporary snapshot when it is no longer needed (see
/// [`tidy`]); `Some(action)` ends the pass (a delete task started, or a failed create that
/// waits for a change).
pub(super) async fn tidy_pass(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    inv: &Inventory,
    deleting: bool,
) -> Result<Option<Action>, Error> {
    let Some(r) = p.status.clone_snapshot.clone() else {
        return Ok(None);
    };
    if tidy(Some(&r), deleting, None) == Tidy::Keep {
        return Ok(None);
    }
    // the source may have moved since: look where it is now
    let node = inv.guests.get(&r.vmid).map(|g| g.node.clone());
    let here = match &node {
        Some(n) => present(p, handle, n, r.vmid, &r.name).await?,
        None => None,
    };
    match (tidy(Some(&r), deleting, here), node) {
        (Tidy::Delete, Some(node)) => {
            let (client, name, vmid) = (handle.client.clone(), r.name.clone(), r.vmid);
            let n = node.clone();
            let call = async move { client.lxc_snapshot_delete(&n, vmid, &name, None).await };
            start_task(p, handle, &node, DELETE_OPERATION, call).await.map(Some)
        }
        _ => {
            p.status.clone_snapshot = None;
            p.event(
                Reason::Completed,
                format!("temporary snapshot {} of CT {} is gone", r.name, r.vmid),
            )
            .await;
            p.save().await?;
            // a create Proxmox refused is not tried again until the spec changes
            let failed = !deleting && p.status.phase == Some(ContainerPhase::Failed);
            Ok(failed.then(Action::await_change))
        }
    }
}

/// What the create does for a clone.
pub(super) enum Prepared {
    /// Clone straight from the source.
    Direct,
    /// Clone from this snapshot (recorded as used).
    From(String),
    /// The pass ends here (the snapshot task started, or waits for a slot).
    Done(Action),
}

/// Prepares the clone of CT `src_vmid` on `src_node`: takes the temporary snapshot when one is
/// needed (one task pass), or says which snapshot to clone from.
pub(super) async fn prepare(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    inv: &Inventory,
    src_node: &str,
    src_vmid: u32,
    full: bool,
) -> Result<Prepared, Error> {
    let running = inv.guests.get(&src_vmid).is_some_and(|g| g.status == "running");
    let recorded = p.status.clone_snapshot.clone();
    let ours = match &recorded {
        Some(r) => present(p, handle, src_node, src_vmid, &r.name).await? == Some(true),
        None => false,
    };
    match step(full, running, recorded.as_deref(), ours, &p.uid) {
        Step::Direct => Ok(Prepared::Direct),
        Step::From(name) => {
            if let Some(r) = p.status.clone_snapshot.as_mut() {
                // saved with the clone's marker, before the call
                r.used = true;
            }
            Ok(Prepared::From(name))
        }
        Step::Take(name) => {
            // recorded before the task: a restart finds it, whatever happens next
            p.status.clone_snapshot = Some(Box::new(CloneSnapshot {
                node: src_node.to_string(),
                vmid: src_vmid,
                name: name.clone(),
                used: false,
            }));
            p.status.phase = Some(ContainerPhase::Pending);
            p.cond(CondSpec::no(
                CONDITION_READY,
                Reason::Creating,
                format!("taking the temporary snapshot {name} of running CT {src_vmid} to clone it"),
            ));
            let text = description(&p.uid, Some("temporary, for a clone; deleted once it is made"));
            let (client, node, n) = (handle.client.clone(), src_node.to_string(), name.clone());
            let call = async move { client.lxc_snapshot_create(&node, src_vmid, &n, Some(&text)).await };
            match task::start(p, handle, src_node, TAKE_OPERATION.as_str(), true, call).await? {
                Started::Task(_) | Started::NoTask => {
                    let msg = format!("temporary snapshot {name} of CT {src_vmid} started, for the clone");
                    p.event(Reason::Started, msg).await;
                    Ok(Prepared::Done(next_poll(p)))
                }
                Started::NoSlot => {
                    let msg = format!("waiting for a task slot on node {src_node}");
                    let action = p
                        .not_ready(Reason::WaitingForTaskSlot, msg, p.retry(Reason::WaitingForTaskSlot))
                        .await?;
                    Ok(Prepared::Done(action))
                }
                Started::Refused(e) => {
                    p.cond(CondSpec::no(CONDITION_READY, Reason::CreateFailed, e.to_string()));
                    p.save().await?;
                    Err(e.into())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(used: bool) -> CloneSnapshot {
        CloneSnapshot {
            node: "pve1".into(),
            vmid: 100,
            name: "k8s-clone-abc".into(),
            used,
        }
    }

    #[test]
    fn temporary_snapshot_names_are_marked_as_ours_and_fit_proxmox() {
        let n = temp_name("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
        assert_eq!(n, "k8s-clone-1b4e28ba2fa1");
        assert!(regex::Regex::new(crate::crd::lxc_snapshot::SNAPSHOT_NAME_PATTERN)
            .unwrap()
            .is_match(&n));
    }

    #[test]
    fn a_full_clone_of_a_running_source_goes_through_a_snapshot() {
        let uid = "1b4e28ba-2fa1";
        let take = Step::Take("k8s-clone-1b4e28ba2fa1".into());
        let from = Step::From("k8s-clone-abc".into());
        let again = Step::Take("k8s-clone-abc".into());
        // (full, running, recorded, ours, step)
        let cases = [
            (true, true, None, false, take),
            (true, false, None, false, Step::Direct),
            (false, true, None, false, Step::Direct),
            (false, false, None, false, Step::Direct),
            // taken: the clone is made from it, even if the source stopped since
            (true, true, Some(rec(false)), true, from.clone()),
            (true, false, Some(rec(false)), true, from),
            // recorded but not there (its task failed, or it was removed): taken again
            (true, true, Some(rec(false)), false, again),
        ];
        for (full, running, recorded, ours, want) in cases {
            assert_eq!(
                step(full, running, recorded.as_ref(), ours, uid),
                want,
                "full {full} running {running} recorded {recorded:?} ours {ours}"
            );
        }
    }

    #[test]
    fn the_temporary_snapshot_goes_once_the_clone_was_started_or_the_object_is_deleted() {
        // (recorded, deleting, present, tidy)
        let cases = [
            (None, false, None, Tidy::Keep),
            (None, true, None, Tidy::Keep),
            // not used yet: the clone is still to be made from it
            (Some(rec(false)), false, Some(true), Tidy::Keep),
            // the clone from it ended (well or not): deleted
            (Some(rec(true)), false, Some(true), Tidy::Delete),
            // the object goes mid-way: deleted, used or not
            (Some(rec(false)), true, Some(true), Tidy::Delete),
            // gone already: forgotten
            (Some(rec(true)), false, None, Tidy::Forget),
            (Some(rec(false)), true, None, Tidy::Forget),
            // a snapshot of that name without our mark is never deleted
            (Some(rec(true)), false, Some(false), Tidy::Forget),
        ];
        for (recorded, deleting, present, want) in cases {
            assert_eq!(
                tidy(recorded.as_ref(), deleting, present),
                want,
                "{recorded:?} deleting {deleting} present {present:?}"
            );
        }
    }
}
