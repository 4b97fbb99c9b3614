use super::*;
use crate::crd::LxcContainerStatus;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

fn t(s: i64) -> Time {
    Time(jiff::Timestamp::from_second(s).unwrap())
}

fn pod(policy: &str) -> Pod {
    Pod {
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("nginx:1.27".into()),
                ..Default::default()
            }],
            restart_policy: Some(policy.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn child(phase: Option<ContainerPhase>, reason: &str, ready: bool) -> LxcContainer {
    let mut c = LxcContainer::new("pod-web", Default::default());
    c.status = Some(LxcContainerStatus {
        vmid: Some(120),
        cluster: Some("prod".into()),
        node: Some("pve1".into()),
        phase,
        ip_addresses: vec!["10.0.0.7/24".into(), "fd00::7/64".into()],
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: format!("{reason} happened"),
            last_transition_time: t(100),
            observed_generation: None,
        }],
        ..Default::default()
    });
    c
}

fn waiting(s: &PodStatus) -> Option<String> {
    s.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

#[test]
fn a_running_child_makes_a_running_ready_pod_with_its_ipv4_address() {
    let s = pod_status(
        &pod("Always"),
        Some(&child(Some(ContainerPhase::Running), "Running", true)),
        None,
        &t(200),
    );
    assert_eq!(s.phase.as_deref(), Some("Running"));
    assert_eq!(s.pod_ip.as_deref(), Some("10.0.0.7"));
    let c = &s.container_statuses.as_ref().unwrap()[0];
    assert!(c.ready);
    assert_eq!(c.container_id.as_deref(), Some("proxmox://prod/pve1/120"));
    assert_eq!(
        c.state.as_ref().unwrap().running.as_ref().unwrap().started_at,
        Some(t(100))
    );
    let ready = s
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
}

#[test]
fn no_child_yet_is_container_creating_and_pending() {
    let s = pod_status(&pod("Always"), None, None, &t(1));
    assert_eq!(s.phase.as_deref(), Some("Pending"));
    assert_eq!(waiting(&s).as_deref(), Some("ContainerCreating"));
}

#[test]
fn a_failed_pull_is_err_image_pull_then_image_pull_back_off() {
    let c = child(Some(ContainerPhase::Pending), "PullFailed", false);
    let mut p = pod("Always");
    let first = pod_status(&p, Some(&c), None, &t(1));
    assert_eq!(waiting(&first).as_deref(), Some("ErrImagePull"));
    p.status = Some(first);
    let again = pod_status(&p, Some(&c), None, &t(2));
    assert_eq!(waiting(&again).as_deref(), Some("ImagePullBackOff"));
}

#[test]
fn other_failures_map_to_the_kubelets_reasons() {
    let case = |reason| {
        let s = pod_status(
            &pod("Always"),
            Some(&child(Some(ContainerPhase::Pending), reason, false)),
            None,
            &t(1),
        );
        waiting(&s).unwrap()
    };
    assert_eq!(case("EnvSourceNotFound"), "CreateContainerConfigError");
    assert_eq!(case("StartFailed"), "RunContainerError");
    assert_eq!(case("TenantPolicyNode"), "CreateContainerError");
    assert_eq!(case("Pulling"), "ContainerCreating");
}

#[test]
fn a_stopped_app_with_restart_policy_never_succeeded_and_says_there_is_no_exit_code() {
    let s = pod_status(
        &pod("Never"),
        Some(&child(Some(ContainerPhase::Stopped), "Stopped", false)),
        None,
        &t(5),
    );
    assert_eq!(s.phase.as_deref(), Some("Succeeded"));
    let term = s.container_statuses.as_ref().unwrap()[0]
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .unwrap();
    assert_eq!(term.exit_code, 0);
    assert!(term.message.unwrap().contains("no exit code"));
    // shown for what it is, in `kubectl get pods` (the container's reason) and the Pod's status
    assert_eq!(term.reason.as_deref(), Some("ExitCodeUnknown"));
    assert_eq!(s.reason.as_deref(), Some("ExitCodeUnknown"));
    assert!(s.message.unwrap().contains("no exit code"));
}

#[test]
fn a_stopped_app_whose_wrapper_printed_its_exit_status_is_failed_or_succeeded_with_it() {
    use super::super::console::RunEnd;
    let stopped = child(Some(ContainerPhase::Stopped), "Stopped", false);
    for (end, phase, code, reason) in [
        (RunEnd::Exited(3), "Failed", 3, "Error"),
        (RunEnd::Exited(0), "Succeeded", 0, "Completed"),
        (RunEnd::Unknown, "Succeeded", 0, "ExitCodeUnknown"),
    ] {
        for policy in ["Never", "OnFailure"] {
            let s = pod_status_with_end(&pod(policy), Some(&stopped), None, Some(end), &t(5));
            assert_eq!(s.phase.as_deref(), Some(phase), "{end:?}");
            let term = s.container_statuses.as_ref().unwrap()[0]
                .state
                .clone()
                .unwrap()
                .terminated
                .unwrap();
            assert_eq!((term.exit_code, term.reason.as_deref()), (code, Some(reason)));
            // the Pod's own reason is only for what cannot be known
            assert_eq!(s.reason.is_some(), reason == "ExitCodeUnknown", "{end:?}");
        }
    }
}

#[test]
fn a_pod_it_cannot_run_stays_pending_says_why_and_its_status_is_stable() {
    let r = Refusal {
        reason: "VolumesUnsupported",
        message: "spec.volumes[config]: volumes are not mounted".into(),
    };
    let mut p = pod("Always");
    let s = pod_status(&p, None, Some(&r), &t(1));
    assert_eq!(
        s.phase.as_deref(),
        Some("Pending"),
        "never Failed: a controller would replace it in a loop"
    );
    assert_eq!(waiting(&s).as_deref(), Some("CreateContainerConfigError"));
    let state = s.container_statuses.as_ref().unwrap()[0].state.clone().unwrap();
    let message = state.waiting.unwrap().message.unwrap();
    assert!(
        message.starts_with("VolumesUnsupported: spec.volumes[config]"),
        "{message}"
    );
    assert!(
        s.reason.is_none() && s.message.is_none(),
        "a kubelet sets no Pod reason while Pending"
    );
    p.status = Some(s.clone());
    // a later pass computes the same status: nothing to write
    assert_eq!(pod_status(&p, None, Some(&r), &t(9)), s);
    let bad_image = Refusal {
        reason: "InvalidImageName",
        message: "by tag only".into(),
    };
    let s = pod_status(&pod("Always"), None, Some(&bad_image), &t(1));
    assert_eq!(waiting(&s).as_deref(), Some("InvalidImageName"));
}

#[test]
fn a_container_waiting_out_its_restart_back_off_is_crash_loop_back_off() {
    let c = child(Some(ContainerPhase::Stopped), "RestartBackOff", false);
    let s = pod_status(&pod("Always"), Some(&c), None, &t(5));
    assert_eq!(waiting(&s).as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(s.phase.as_deref(), Some("Pending"), "never ran in this made-up history");
}
