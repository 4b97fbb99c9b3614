//! A restart on request, like `kubectl rollout restart`: the annotation
//! [`RESTART_ANNOTATION`] set to a new value (a timestamp, by convention) reboots a running
//! container once; `status.restartRequest` records the value honoured, so the same value never
//! reboots it again (not after an operator restart, nor on a later edit).
//!
//! ```sh
//! kubectl annotate lxc web pve.lxc.dev/restartedAt="$(date -u +%FT%TZ)" --overwrite
//! ```
//!
//! [`decide`] is the pure rule (table-tested below); [`honour`] acts on it from the converge
//! pass, after the config update (so a restart also applies what waits for one).

use super::pass::{start_task, P};
use crate::controller::cluster::ClusterHandle;
use crate::controller::kernel::Reason;
use crate::controller::Error;
use crate::crd::lxc_container::ContainerPhase;
use crate::crd::Operation;
use kube::runtime::controller::Action;
use kube::ResourceExt;

/// The annotation that asks for a restart: a new value reboots the container once.
pub const RESTART_ANNOTATION: &str = "pve.lxc.dev/restartedAt";

/// What a restart request asks of this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restart {
    /// No request, or the value was honoured already.
    Nothing,
    /// A new value and a running container: reboot it, recording the value first.
    Reboot(String),
    /// A new value and a stopped container: nothing to restart (its next start applies
    /// everything); the value is recorded so that it does not reboot it later.
    Record(String),
}

/// The pure rule: `requested` is the annotation's value, `honoured` the one in status,
/// `running` whether Proxmox reports the container running, `settled` whether it had reached
/// its spec before (a container still being created or started records a request it was
/// created with: there is nothing to restart yet), `by_ha` whether Proxmox's HA stack decides
/// its power (a request is then recorded, not acted on: HA would fight a reboot).
pub fn decide(requested: Option<&str>, honoured: Option<&str>, running: bool, settled: bool, by_ha: bool) -> Restart {
    let Some(value) = requested.map(str::trim).filter(|v| !v.is_empty()) else {
        return Restart::Nothing;
    };
    if honoured == Some(value) {
        return Restart::Nothing;
    }
    if running && settled && !by_ha {
        Restart::Reboot(value.to_string())
    } else {
        Restart::Record(value.to_string())
    }
}

/// Acts on a restart request for the container `vmid` on `node`: `Some(action)` when a reboot
/// was started (the pass ends there), `None` to go on. The value is recorded in status before
/// the reboot is asked for, so a failed or repeated pass never reboots twice for one value.
pub async fn honour(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    node: &str,
    vmid: u32,
    running: bool,
    by_ha: bool,
) -> Result<Option<Action>, Error> {
    let requested = p.obj.annotations().get(RESTART_ANNOTATION).cloned();
    let settled = matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped));
    match decide(
        requested.as_deref(),
        p.status.restart_request.as_deref(),
        running,
        settled,
        by_ha,
    ) {
        Restart::Nothing => Ok(None),
        Restart::Record(value) => {
            p.status.restart_request = Some(value);
            Ok(None)
        }
        Restart::Reboot(value) => {
            p.status.restart_request = Some(value.clone());
            p.save().await?;
            p.event(
                Reason::Restarting,
                format!("restarting CT {vmid} as requested ({RESTART_ANNOTATION}: {value})"),
            )
            .await;
            let (client, n) = (handle.client.clone(), node.to_string());
            start_task(p, handle, node, Operation::Reboot, async move {
                client.lxc_reboot(&n, vmid, Some(60)).await
            })
            .await
            .map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (requested, honoured, running, settled, by_ha, what to do)
    type Case = (Option<&'static str>, Option<&'static str>, bool, bool, bool, Restart);

    #[test]
    fn a_restart_request_reboots_a_running_container_once_per_value() {
        let t1 = "2026-12-06T09:00:00Z";
        let t2 = "2026-12-06T10:00:00Z";
        // (requested, honoured, running, settled, by_ha) -> what to do
        let cases: &[Case] = &[
            (None, None, true, true, false, Restart::Nothing),
            (Some(""), None, true, true, false, Restart::Nothing),
            (Some("  "), Some(t1), true, true, false, Restart::Nothing),
            (Some(t1), None, true, true, false, Restart::Reboot(t1.into())),
            (Some(t1), Some(t1), true, true, false, Restart::Nothing),
            (Some(t2), Some(t1), true, true, false, Restart::Reboot(t2.into())),
            (Some(t1), None, false, true, false, Restart::Record(t1.into())),
            (Some(t1), Some(t1), false, true, false, Restart::Nothing),
            (Some(t1), None, true, true, true, Restart::Record(t1.into())),
            (None, Some(t1), true, true, false, Restart::Nothing),
            (Some(t1), None, true, false, false, Restart::Record(t1.into())),
            (Some(" 2026 "), Some("2026"), true, true, false, Restart::Nothing),
        ];
        for (requested, honoured, running, settled, by_ha, want) in cases {
            assert_eq!(
                &decide(*requested, *honoured, *running, *settled, *by_ha),
                want,
                "requested {requested:?}, honoured {honoured:?}, running {running}, settled {settled}, by_ha {by_ha}"
            );
        }
    }
}
