//! The task in `status.pendingTask` of an `LxcContainer`: checked before anything else a pass
//! does (a pull that ended hands on to the create; a failed create is tried ever more slowly).

use super::pass::{next_poll, P};
use crate::controller::cluster::ClusterHandle;
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::task::{self, failure_message, Polled};
use crate::controller::kernel::Reason;
use crate::controller::Error;
use crate::crd::lxc_container::*;
use crate::crd::{Operation, CONDITION_READY, CONDITION_SYNCED};
use crate::pve::Upid;
use kube::runtime::controller::Action;
use std::time::Duration;

/// How long before the first look at a task of a kind whose time is known a pass that came
/// sooner (the inventory shows the new container, a drift pass) waits instead of reading the
/// task's status (pure): until the scheduled first look ([`task::Looks::first_look`]). One
/// read less per task.
pub fn early_by(age: Duration, expected: Option<Duration>, looks: task::Looks) -> Option<Duration> {
    let from = looks.first_look(expected?);
    (age + EARLY_SLACK < from).then(|| from - age)
}

/// A pass this close to the first look reads the task's status.
const EARLY_SLACK: Duration = Duration::from_millis(50);

/// [`early_by`] for the task in the pass's status.
fn not_due_yet(p: &P<'_>) -> Option<Duration> {
    let pt = p.status.pending_task.as_ref()?;
    let age = p.ctx.slots.held_for(&p.uid).or_else(|| {
        let started = pt.started_at.as_ref()?.0;
        jiff::Timestamp::now().duration_since(started).try_into().ok()
    })?;
    let node = pt.upid.parse::<Upid>().ok()?.node().to_string();
    let looks = task::Looks::now(&p.ctx.slots);
    early_by(age, p.ctx.task_times.expected(&pt.operation, &node), looks)
}

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs or just failed; `None`
/// once it has ended well (or is unknown: the identity rules decide what exists) or when there
/// is none.
pub(super) async fn check_pending_task(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    if let Some(wait) = not_due_yet(p) {
        return Ok(Some(Action::requeue(wait)));
    }
    let polled = task::poll(p, handle, 3).await?;
    if let Some((pt, r)) = polled.as_ref().filter(|(_, r)| !matches!(r, Polled::Running)) {
        let op = matches!(r, Polled::Done(_)).then(|| pt.op()).flatten();
        super::locate::task_ended(&p.uid, op);
    }
    match polled {
        Some((pt, Polled::Unknown | Polled::Done(_))) if pt.op() == Some(Operation::Pull) => {
            super::image::pull_ended(p);
            Ok(None)
        }
        Some((pt, Polled::Failed { text, tail })) if pt.op() == Some(Operation::Pull) => {
            let msg = failure_message(&pt.operation, &text, &tail);
            super::image::pull_failed(p, msg).await.map(Some)
        }
        None | Some((_, Polled::Unknown | Polled::Done(_))) => Ok(None),
        Some((_, Polled::Running)) => {
            p.save().await?;
            Ok(Some(next_poll(p)))
        }
        Some((pt, Polled::Failed { text, tail })) => {
            let msg = failure_message(&pt.operation, &text, &tail);
            p.event(Reason::TaskFailed, msg.clone()).await;
            p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskFailed, msg.clone()));
            let mut retry = None;
            if pt.op().is_some_and(Operation::makes_container) {
                p.status.phase = Some(ContainerPhase::Pending);
                p.cond(CondSpec::no(CONDITION_READY, Reason::CreateFailed, msg));
                // a create Proxmox refuses for what the spec names is tried ever more slowly
                retry = Some(super::precheck::create_retry(&text, &p.status.conditions));
            }
            p.save().await?;
            Ok(Some(match retry {
                Some(after) => Action::requeue(crate::controller::jitter(after)),
                None => p.retry(Reason::TaskFailed),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_before_the_first_look_at_a_task_of_a_known_kind_does_not_read_its_status() {
        let ms = Duration::from_millis;
        let early_by = |age, e| early_by(age, e, task::Looks::BURST);
        assert_eq!(
            early_by(ms(500), Some(ms(3000))),
            Some(ms(2350)),
            "waits for the first look"
        );
        assert_eq!(early_by(ms(2840), Some(ms(3000))), None, "the look is due");
        assert_eq!(early_by(ms(500), None), None, "a kind not seen yet is read");
    }
}
