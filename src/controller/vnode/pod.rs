//! The Pod controller: a Pod bound to one of our Nodes runs as a child `LxcContainer` (owned by
//! the Pod); its status is read back from the child; deletion stops and destroys the child, then
//! deletes the Pod with a UID precondition (a new Pod of the same name is never deleted).

use super::console::RunEnd;
use super::pod_context::PodContext;
use super::status::{pod_status, pod_status_with_end};
use super::translate::{child_name, translate, Refusal};
use super::POD_UID_LABEL;
use crate::controller::cluster::ClusterKey;
use crate::controller::context::FIELD_MANAGER;
use crate::controller::error::KubeOp;
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::{Context, Error};
use crate::crd::lxc_container::ContainerPhase;
use crate::crd::LxcContainer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// The Pod controller of one namespace (or all), woken for every Pod on a Node that appears in
/// `added` (Nodes registered after their Pods were bound).
pub fn controller(
    client: &kube::Client,
    namespace: Option<&str>,
    pctx: Arc<PodContext>,
    mut added: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> (ControllerFuture, Store<Pod>) {
    let pods: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let children: Api<LxcContainer> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .modify(|p: &mut Pod| p.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let store = reader.clone();
    tokio::spawn(async move {
        while let Some(node) = added.recv().await {
            for p in store.state() {
                if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.as_str()) {
                    let _ = tx.send(ObjectRef::from_obj(&*p));
                }
            }
        }
    });
    let shutdown = pctx.ctx.shutdown.triggered();
    let run = Controller::for_stream(stream, reader.clone())
        .owns(children, watcher::Config::default().labels(POD_UID_LABEL))
        .reconcile_on(crate::controller::kernel::wiring::tokio_stream_from(rx))
        .graceful_shutdown_on(shutdown)
        .run(
            |pod, pctx: Arc<PodContext>| async move {
                let name = pod.name_any();
                let metrics = pctx.ctx.metrics.clone();
                crate::controller::instrumented("Pod", &name, &metrics, reconcile(pod, pctx)).await
            },
            |pod: Arc<Pod>, err: &Error, _| {
                tracing::warn!(pod = %pod.name_any(), error = %err, "Pod pass failed");
                Action::requeue(crate::controller::jitter(Duration::from_secs(5)))
            },
            pctx,
        )
        .for_each(|_| async {});
    (Box::pin(run), reader)
}

/// One pass over a Pod.
pub async fn reconcile(pod: Arc<Pod>, pctx: Arc<PodContext>) -> Result<Action, Error> {
    let ctx = &pctx.ctx;
    let spec = pod.spec.clone().unwrap_or_default();
    let Some(node) = spec.node_name.as_deref() else {
        return super::bind::bind(&pod, &pctx).await;
    };
    let Some(vnode) = pctx.index.get(node) else {
        // another kubelet's Pod
        return Ok(Action::await_change());
    };
    let ns = pod.namespace().unwrap_or_default();
    let uid = pod.uid().unwrap_or_default();
    let children: Api<LxcContainer> = Api::namespaced(ctx.kube.clone(), &ns);
    let child_name = child_name(&pod.name_any());
    let child = children.get_opt(&child_name).await.op("get the Pod's LxcContainer")?;
    let ours = |c: &LxcContainer| c.labels().get(POD_UID_LABEL) == Some(&uid);
    if pod.metadata.deletion_timestamp.is_some() {
        return delete(&pod, &pctx, &children, child.as_ref().filter(|c| ours(c))).await;
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Failed" | "Succeeded")) {
        // a terminal Pod stays as it is (as a kubelet leaves it), whatever is learnt later
        return Ok(Action::await_change());
    }
    let now = Time(jiff::Timestamp::now());
    let Some(handle) = ctx.clusters.get(&ClusterKey::named(vnode.cluster.clone())) else {
        // the cluster's connection is not up yet
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    // a new Pod only: a grant taken back stops new Pods, it does not destroy running ones
    if child.as_ref().is_none_or(|c| !ours(c)) {
        let admission = ctx.tenancy.admission(&ns, &handle);
        if let Err(r) = super::admit::serves(&vnode.cluster, vnode.spec.namespaces, &ns, admission.as_ref()) {
            return refuse(&pod, ctx, &r, &now).await;
        }
    }
    let translation = match translate(&pod, &vnode) {
        Ok(t) => t,
        Err(r) => return refuse(&pod, ctx, &r, &now).await,
    };
    let child = match child {
        Some(c) if !ours(&c) => {
            if c.labels().contains_key(POD_UID_LABEL) && c.metadata.deletion_timestamp.is_some() {
                // the container of an earlier Pod of the same name is still being removed
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            let r = Refusal {
                reason: "NameTaken",
                message: format!(
                    "an LxcContainer {child_name} that is not this Pod's exists in {ns}: rename or delete it"
                ),
            };
            return refuse(&pod, ctx, &r, &now).await;
        }
        Some(c) if c.spec == translation.spec => Some(c),
        existing => {
            let created = existing.is_none();
            let applied = apply_child(&pod, &children, &child_name, &translation.spec).await?;
            ctx.metrics.kube_write("LxcContainer");
            if created {
                ctx.event(
                    &*pod,
                    false,
                    "Created",
                    format!("created LxcContainer {child_name} on Proxmox node {}", vnode.pve_node),
                )
                .await;
                if !translation.ignored.is_empty() {
                    ctx.event(
                        &*pod,
                        true,
                        "NotMapped",
                        format!(
                            "not applied (no Proxmox counterpart): {}",
                            translation.ignored.join(", ")
                        ),
                    )
                    .await;
                }
            }
            Some(applied)
        }
    };
    report(&pod, &pctx, child.as_ref(), &now).await
}

/// Writes the status of a Pod whose child is `child`, knowing how its console said the last
/// run ended (looked at again soon while that is being read).
async fn report(pod: &Pod, pctx: &PodContext, child: Option<&LxcContainer>, now: &Time) -> Result<Action, Error> {
    let end = match run_end(pod, pctx, child) {
        Ok(end) => end,
        Err(again) => return Ok(again),
    };
    let status = pod_status_with_end(pod, child, None, end, now);
    write_status(pod, &pctx.ctx, status).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// How long an ended app's console may still be read before its exit status counts as unknown.
const CONSOLE_GRACE: Duration = Duration::from_secs(15);

/// How the console said the last run of the Pod's container ended; `Err` (look again soon)
/// while an app that will not be restarted has stopped but its console is still being read.
fn run_end(pod: &Pod, pctx: &PodContext, child: Option<&LxcContainer>) -> Result<Option<RunEnd>, Action> {
    let (Some(logs), Some(child)) = (&pctx.logs, child) else {
        return Ok(None);
    };
    let Some(status) = child.status.as_ref() else {
        return Ok(None);
    };
    let end = logs.run_end(&pod.uid().unwrap_or_default(), status.vmid.unwrap_or(0));
    let always = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
        == "Always";
    if end != Some(RunEnd::Attached) || always || status.phase != Some(ContainerPhase::Stopped) {
        return Ok(end);
    }
    let stopped_at = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.last_transition_time.0);
    let lately = stopped_at.is_some_and(|t| jiff::Timestamp::now().duration_since(t).unsigned_abs() < CONSOLE_GRACE);
    if lately {
        Err(Action::requeue(Duration::from_secs(1)))
    } else {
        Ok(Some(RunEnd::Unknown))
    }
}

/// Creates or updates the child by server-side apply.
async fn apply_child(
    pod: &Pod,
    children: &Api<LxcContainer>,
    name: &str,
    spec: &crate::crd::LxcContainerSpec,
) -> Result<LxcContainer, Error> {
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.name_any(),
        uid: pod.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let obj = serde_json::json!({
        "apiVersion": "pve.lxc.dev/v1alpha1",
        "kind": "LxcContainer",
        "metadata": {
            "name": name,
            "labels": {
                POD_UID_LABEL: pod.uid().unwrap_or_default(),
                "app.kubernetes.io/managed-by": FIELD_MANAGER,
            },
            "ownerReferences": [owner],
        },
        "spec": spec,
    });
    children
        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&obj))
        .await
        .op("apply the Pod's LxcContainer")
}

/// Writes the Pod's status when it changed, with an Event for the transitions a kubelet
/// reports.
async fn write_status(pod: &Pod, ctx: &Context, status: k8s_openapi::api::core::v1::PodStatus) -> Result<(), Error> {
    let old = pod.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let state = |s: &k8s_openapi::api::core::v1::PodStatus| {
        s.container_statuses
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.state.clone())
            .unwrap_or_default()
    };
    let (was, now) = (state(&old), state(&status));
    let waiting = |s: &k8s_openapi::api::core::v1::ContainerState| s.waiting.as_ref().and_then(|w| w.reason.clone());
    let message = |s: &k8s_openapi::api::core::v1::ContainerState| s.waiting.as_ref().and_then(|w| w.message.clone());
    // a config error is told again when its message changes (another thing is wrong now)
    let config_error = waiting(&now).as_deref() == Some("CreateContainerConfigError");
    let told = waiting(&now) == waiting(&was) && (!config_error || message(&now) == message(&was));
    if now.running.is_some() && was.running.is_none() {
        ctx.event(pod, false, "Started", "started the container".into()).await;
    } else if let Some(reason) = waiting(&now).filter(|_| !told) {
        let message = message(&now).unwrap_or_default();
        match reason.as_str() {
            "ErrImagePull" => ctx.event(pod, true, "Failed", format!("ErrImagePull: {message}")).await,
            "ImagePullBackOff" => {
                ctx.event(pod, false, "BackOff", format!("back-off pulling image: {message}"))
                    .await
            }
            "CreateContainerError" | "CreateContainerConfigError" | "RunContainerError" | "InvalidImageName" => {
                ctx.event(pod, true, "Failed", format!("{reason}: {message}")).await
            }
            _ => {}
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.kube.clone(), &pod.namespace().unwrap_or_default());
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .op("write the Pod's status")?;
    ctx.metrics.kube_write("Pod");
    Ok(())
}

/// A Pod that cannot run as it is: it stays `Pending` with the container's waiting reason and
/// message, as a kubelet leaves a Pod it cannot make a container for (never `Failed`: its
/// controller would replace it at once, in a loop). The Event comes from [`write_status`], once
/// per change; a later pass writes nothing. Looked at again slowly (a Pod's spec barely changes;
/// a clashing `LxcContainer` may go away).
async fn refuse(pod: &Pod, ctx: &Context, r: &Refusal, now: &Time) -> Result<Action, Error> {
    let status = pod_status(pod, None, Some(r), now);
    write_status(pod, ctx, status).await?;
    // a clashing object may go, a grant may come: looked at again sooner
    let again = if matches!(r.reason, "NameTaken" | "NamespaceNotServed") {
        30
    } else {
        300
    };
    Ok(Action::requeue(crate::controller::jitter(Duration::from_secs(again))))
}

/// Deletion: the child goes first (its cleanup shuts the container down and destroys it), then
/// the Pod, with a UID precondition.
async fn delete(
    pod: &Pod,
    pctx: &PodContext,
    children: &Api<LxcContainer>,
    child: Option<&LxcContainer>,
) -> Result<Action, Error> {
    let ctx = &pctx.ctx;
    if let Some(c) = child {
        if c.metadata.deletion_timestamp.is_none() {
            ctx.event(pod, false, "Killing", "stopping the container".into()).await;
            match children.delete(&c.name_any(), &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                r => {
                    r.op("delete the Pod's LxcContainer")?;
                }
            }
        }
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.kube.clone(), &pod.namespace().unwrap_or_default());
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods.delete(&pod.name_any(), &dp).await {
        // gone already, or a new Pod of the same name: not ours to delete
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        r => {
            r.op("delete the Pod")?;
        }
    }
    Ok(Action::await_change())
}

/// Deletes the child containers whose Pod is gone (no garbage collector runs on every
/// apiserver, and the operator may have been down when the Pod went).
pub async fn remove_orphans(ctx: &Context, pods: &Store<Pod>, namespace: Option<&str>) -> Result<usize, Error> {
    let children: Api<LxcContainer> = match namespace {
        Some(ns) => Api::namespaced(ctx.kube.clone(), ns),
        None => Api::all(ctx.kube.clone()),
    };
    let list = children
        .list(&ListParams::default().labels(POD_UID_LABEL))
        .await
        .op("list the Pods' LxcContainers")?;
    let live: std::collections::HashSet<String> = pods.state().iter().filter_map(|p| p.uid()).collect();
    let mut removed = 0;
    for c in list.items {
        let owner = c.labels().get(POD_UID_LABEL).cloned().unwrap_or_default();
        if live.contains(&owner) || c.meta().deletion_timestamp.is_some() {
            continue;
        }
        tracing::info!(container = %c.name_any(), pod_uid = %owner, "deleting the LxcContainer of a Pod that is gone");
        let api: Api<LxcContainer> = Api::namespaced(ctx.kube.clone(), &c.namespace().unwrap_or_default());
        match api.delete(&c.name_any(), &DeleteParams::default()).await {
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            r => {
                r.op("delete an orphaned LxcContainer")?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
