//! A Pod's status as a kubelet would write it, read from its child `LxcContainer` (pure).

use super::console::RunEnd;
use super::translate::Refusal;
use crate::crd::lxc_container::ContainerPhase;
use crate::crd::LxcContainer;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The child's condition reasons that mean its image could not be pulled.
const PULL_FAILED: &[&str] = &["PullFailed", "ImageNotFound", "DownloadFailed"];
/// ... that its settings could not be made (a missing Secret or ConfigMap key).
const CONFIG_FAILED: &[&str] = &["EnvSourceNotFound", "PasswordSecretNotFound"];
/// ... that it could not start.
const START_FAILED: &[&str] = &["StartFailed"];
/// ... that mean it is still being made: not an error.
const IN_PROGRESS: &[&str] = &[
    "Pending",
    "Creating",
    "TaskRunning",
    "WaitingForTaskSlot",
    "Queued",
    "Downloading",
    "Pulling",
    "Starting",
    "Started",
    "Locked",
    "ClusterNotReady",
    "WaitingForTemplate",
    "InSync",
    "Ready",
    "Running",
    "Updated",
    "Restarting",
];

/// The message of every terminated state: Proxmox does not tell why a container stopped.
pub const NO_EXIT_CODE: &str =
    "the container's process ended; Proxmox reports no exit code, so 0 is shown for every stop";

/// The reason of an ended app's Pod and container state when its exit status is not known (no
/// wrapper, see [`super::exitcode`]): the Pod counts as `Succeeded` (a Job completes) because
/// nothing tells a failure apart, and says so instead of `Completed`.
pub const EXIT_CODE_UNKNOWN: &str = "ExitCodeUnknown";

/// What the Pod's container is doing, from its child (or its absence) and how its console said
/// its last run ended.
fn container_state(
    pod: &Pod,
    child: Option<&LxcContainer>,
    end: Option<RunEnd>,
    now: &Time,
) -> (ContainerState, bool, Option<&'static str>) {
    let waiting = |reason: &str, message: Option<String>| ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    };
    let Some(status) = child.and_then(|c| c.status.as_ref()) else {
        return (waiting("ContainerCreating", None), false, None);
    };
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    match status.phase {
        Some(ContainerPhase::Running) => {
            let started = ready
                .filter(|c| c.status == "True")
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            return (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(started),
                    }),
                    ..Default::default()
                },
                true,
                None,
            );
        }
        Some(ContainerPhase::Stopped) => {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                .unwrap_or("Always");
            if policy == "Always" {
                let state = match ready.filter(|c| c.reason == "RestartBackOff") {
                    Some(c) => waiting("CrashLoopBackOff", Some(c.message.clone())),
                    None => waiting(
                        "ContainerStopped",
                        Some(format!("{NO_EXIT_CODE}; it is started again (restartPolicy Always)")),
                    ),
                };
                return (state, false, None);
            }
            let finished = ready
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            // the wrapper's exit status (a kubelet's reasons), else the honest unknown
            let (code, reason, message, phase) = match end {
                Some(RunEnd::Exited(0)) => (0, "Completed", None, "Succeeded"),
                Some(RunEnd::Exited(c)) => (c, "Error", None, "Failed"),
                _ => (0, EXIT_CODE_UNKNOWN, Some(NO_EXIT_CODE.to_string()), "Succeeded"),
            };
            return (
                ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: code,
                        reason: Some(reason.into()),
                        message,
                        finished_at: Some(finished),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                false,
                Some(phase),
            );
        }
        _ => {}
    }
    let Some(cond) = ready else {
        return (waiting("ContainerCreating", None), false, None);
    };
    let reason = cond.reason.as_str();
    let message = Some(cond.message.clone()).filter(|m| !m.is_empty());
    let before = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    let state = if PULL_FAILED.contains(&reason) {
        // the first failure is ErrImagePull; while the container controller retries, the back-off
        let again = matches!(before.as_deref(), Some("ErrImagePull" | "ImagePullBackOff"));
        waiting(if again { "ImagePullBackOff" } else { "ErrImagePull" }, message)
    } else if CONFIG_FAILED.contains(&reason) {
        waiting("CreateContainerConfigError", message)
    } else if START_FAILED.contains(&reason) {
        waiting("RunContainerError", message)
    } else if IN_PROGRESS.contains(&reason) {
        waiting("ContainerCreating", message)
    } else {
        waiting("CreateContainerError", message)
    };
    (state, false, None)
}

/// The waiting state of a Pod that cannot run as it is: what a kubelet shows for a Pod whose
/// container it cannot make (`CreateContainerConfigError`, or `InvalidImageName`), with our
/// reason first in the message. The Pod stays `Pending`: a `Failed` Pod would be replaced by its
/// controller at once, and the replacement would fail the same way, in a loop.
fn refused_state(r: &Refusal) -> ContainerState {
    let reason = if r.reason == "InvalidImageName" {
        "InvalidImageName"
    } else {
        "CreateContainerConfigError"
    };
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(format!("{}: {}", r.reason, r.message)),
        }),
        ..Default::default()
    }
}

/// `(type, status)` → a Pod condition whose transition time is kept while its status stays.
fn condition(pod: &Pod, type_: &str, status: bool, now: &Time) -> PodCondition {
    let status = if status { "True" } else { "False" }.to_string();
    let since = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    PodCondition {
        type_: type_.into(),
        status,
        last_transition_time: Some(since),
        ..Default::default()
    }
}

/// The status of a Pod whose child is `child` (none yet), or that is refused.
pub fn pod_status(pod: &Pod, child: Option<&LxcContainer>, refusal: Option<&Refusal>, now: &Time) -> PodStatus {
    pod_status_with_end(pod, child, refusal, None, now)
}

/// [`pod_status`], knowing how the console said the container's last run ended (`end`).
pub fn pod_status_with_end(
    pod: &Pod,
    child: Option<&LxcContainer>,
    refusal: Option<&Refusal>,
    end: Option<RunEnd>,
    now: &Time,
) -> PodStatus {
    let old = pod.status.clone().unwrap_or_default();
    let c = pod.spec.as_ref().and_then(|s| s.containers.first());
    let (state, ready, terminal) = match refusal {
        Some(r) => (refused_state(r), false, None),
        None => container_state(pod, child, end, now),
    };
    let cstatus = child.and_then(|c| c.status.as_ref());
    let running_once =
        ready || old.phase.as_deref() == Some("Running") || cstatus.and_then(|s| s.restart_count).unwrap_or(0) > 0;
    let phase = match terminal {
        Some(p) => p,
        None if running_once => "Running",
        None => "Pending",
    };
    let pod_ip = cstatus
        .and_then(|s| {
            s.ip_addresses
                .iter()
                .find(|a| !a.contains(':'))
                .or(s.ip_addresses.first())
        })
        .map(|a| a.split('/').next().unwrap_or(a).to_string());
    let container_id = cstatus.and_then(|s| {
        Some(format!(
            "proxmox://{}/{}/{}",
            s.cluster.clone()?,
            s.node.clone()?,
            s.vmid?
        ))
    });
    let last_state = old
        .container_statuses
        .as_ref()
        .and_then(|c| c.first())
        .and_then(|c| c.last_state.clone());
    let ended = state
        .terminated
        .as_ref()
        .is_some_and(|t| t.reason.as_deref() == Some(EXIT_CODE_UNKNOWN));
    let container = ContainerStatus {
        last_state,
        name: c.map(|c| c.name.clone()).unwrap_or_default(),
        image: c.and_then(|c| c.image.clone()).unwrap_or_default(),
        image_id: cstatus.and_then(|s| s.image.clone()).unwrap_or_default(),
        container_id,
        ready,
        started: Some(ready),
        restart_count: cstatus.and_then(|s| s.restart_count).unwrap_or(0) as i32,
        state: Some(state),
        ..Default::default()
    };

    PodStatus {
        phase: Some(phase.into()),
        reason: ended.then(|| EXIT_CODE_UNKNOWN.to_string()),
        message: ended.then(|| NO_EXIT_CODE.to_string()),
        conditions: Some(vec![
            condition(pod, "PodScheduled", true, now),
            condition(pod, "Initialized", true, now),
            condition(pod, "ContainersReady", ready, now),
            condition(pod, "Ready", ready, now),
        ]),
        container_statuses: Some(vec![container]),
        pod_ips: pod_ip.clone().map(|ip| vec![PodIP { ip }]),
        pod_ip,
        start_time: old.start_time.or_else(|| Some(now.clone())),
        // set by the apiserver at create; kept so that comparing statuses sees only our changes
        qos_class: old.qos_class,
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
