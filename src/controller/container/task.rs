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
use kube::runtime::controller::Action;

/// Checks the task in `status.pendingTask`. `Some(action)` while it runs or just failed; `None`
/// once it has ended well (or is unknown: the identity rules decide what exists) or when there
/// is none.
pub(super) async fn check_pending_task(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Option<Action>, Error> {
    let polled = task::poll(p, handle, 3).await?;
    if polled.as_ref().is_some_and(|(_, r)| !matches!(r, Polled::Running)) {
        super::locate::task_ended(&p.uid);
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
