//! The `ProxmoxTenant` controller: keeps each tenant's status (the namespaces it covers now,
//! usage against its quota, and `Ready=False` naming a namespace another tenant claims too).
//! The policy itself is applied by the other controllers on every pass.

use super::policy::{self, Footprint};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::kernel::Reason;
use crate::controller::Error;
use crate::crd::proxmox_tenant::{ProxmoxTenant, ProxmoxTenantStatus, TenantQuota, TenantUsage};
use crate::crd::CONDITION_READY;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// How often usage in status is brought up to date.
const REFRESH: Duration = Duration::from_secs(15);

/// The tenant controller, and the namespace cache (labels for `namespaceSelector`) it starts.
pub fn controller(client: &Client, ctx: Arc<Context>) -> (ControllerFuture, Store<ProxmoxTenant>) {
    let (ns_reader, ns_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let namespaces = watcher(
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(crate::controller::kernel::wiring::slim_for_cache)
    .reflect(ns_writer)
    .for_each(|_| async {});
    tokio::spawn(namespaces);
    let ctl = Controller::new(Api::<ProxmoxTenant>::all(client.clone()), watcher::Config::default());
    ctx.tenancy.set_cluster_scoped(ctl.store(), ns_reader);
    let store = ctl.store();
    let run = ctl
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(
            |t, ctx: Arc<Context>| async move {
                let name = t.name_any();
                crate::controller::instrumented("ProxmoxTenant", &name, &ctx.metrics, reconcile(t, ctx.clone())).await
            },
            |t: Arc<ProxmoxTenant>, err, _| {
                tracing::warn!(tenant = %t.name_any(), error = %err, "ProxmoxTenant reconcile failed");
                Action::requeue(crate::controller::jitter(Duration::from_secs(10)))
            },
            ctx,
        )
        .for_each(|_| async {});
    (Box::pin(run), store)
}

/// `used/limit` when limited, else `used`.
fn of(used: u64, limit: Option<u64>) -> String {
    match limit {
        Some(l) => format!("{used}/{l}"),
        None => used.to_string(),
    }
}

/// The usage figures of status.
pub fn usage_text(u: Footprint, q: Option<&TenantQuota>) -> TenantUsage {
    let q = q.cloned().unwrap_or_default();
    let mib = |b: &Option<crate::crd::ByteQuantity>| b.as_ref().and_then(|b| b.to_bytes().ok());
    TenantUsage {
        containers: of(u.containers, q.containers.map(u64::from)),
        cores: of(u.cores, q.cores.map(u64::from)),
        memory_mib: of(u.memory_mib, mib(&q.memory).map(|b| b >> 20)),
        disk_gib: of(u.disk_gib, mib(&q.disk).map(|b| b >> 30)),
    }
}

async fn reconcile(t: Arc<ProxmoxTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let views = &ctx.tenancy;
    let tenants = views.tenants();
    let mut namespaces = Vec::new();
    let mut contested = Vec::new();
    for (ns, labels) in views.namespaces() {
        if !policy::covers(&t.spec, &ns, Some(&labels)) {
            continue;
        }
        namespaces.push(ns.clone());
        if let Err(r) = policy::tenant_of(&ns, Some(&labels), &tenants) {
            contested.push(r.message);
        }
    }
    namespaces.sort();
    let mut status = t.status.clone().unwrap_or_default();
    let before = status.clone();
    status.namespaces = namespaces;
    status.usage = Some(usage_text(views.usage_of(&t), t.spec.quota.as_ref()));
    let cond = match contested.first() {
        Some(m) => CondSpec::no(CONDITION_READY, Reason::TenantPolicyAmbiguous, m.clone()),
        None => CondSpec::yes(
            CONDITION_READY,
            Reason::Ready,
            format!("covers {} namespaces", status.namespaces.len()),
        ),
    };
    conditions::set(
        &mut status.conditions,
        cond,
        t.metadata.generation,
        &Time(jiff::Timestamp::now()),
    );
    status.observed_generation = t.metadata.generation;
    if status != before {
        write(&ctx, &t, &status).await?;
    }
    Ok(Action::requeue(REFRESH))
}

async fn write(ctx: &Context, t: &ProxmoxTenant, status: &ProxmoxTenantStatus) -> Result<(), Error> {
    let api: Api<ProxmoxTenant> = Api::all(ctx.kube.clone());
    let patch = serde_json::json!({"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "ProxmoxTenant", "status": status});
    api.patch_status(
        &t.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.kube_write("ProxmoxTenant");
    Ok(())
}
