//! The `LxcContainer` pass: resolve (cluster, snapshot) → validate → the task in flight →
//! create (`create`) or converge (`converge`), or delete and observe (`lifecycle`); at most one
//! Proxmox task started per pass. What every step uses is in [`super::pass`].

use super::desired::{validate, InvalidSpec};
use super::locate::locate_for;
use super::pass::{cluster_key, P};
use super::task::check_pending_task;
use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::controller::context::Context;
use crate::controller::kernel::{Halt, Pass, Reason, Step};
use crate::controller::tenancy::policy::Admission;
use crate::controller::Error;
use crate::crd::lxc_container::*;
use crate::crd::CONDITION_STALLED;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;

pub use super::pass::{CONDITION_PENDING_RESTART, UNKNOWN_UPID};

/// Reconciles one `LxcContainer`.
pub async fn reconcile(obj: Arc<LxcContainer>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcContainer>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

async fn reconcile_inner(obj: &LxcContainer, ctx: &Context) -> Result<Action, Error> {
    let mut p = Pass::new(obj, ctx);
    if obj.metadata.deletion_timestamp.is_some() {
        return super::lifecycle::cleanup(&mut p).await;
    }
    if obj.spec.management == Management::Full {
        // the finalizer patch triggers no new pass (generation unchanged): go on
        p.add_finalizer().await?;
    }
    let key = cluster_key(obj, ctx);
    if let Some(e) = immutable_change(&obj.spec, &p.status, &key) {
        return p.invalid(e).await;
    }
    if p.status.cluster.is_none() && p.status.vmid.is_some() {
        p.status.cluster = Some(key.name.clone());
    }
    let (handle, snap) = match ctx.clusters.usable(&key) {
        Ok(u) => u,
        Err(why) => {
            p.status.phase.get_or_insert(ContainerPhase::Pending);
            return p
                .not_ready(Reason::ClusterNotReady, why, p.retry(Reason::ClusterNotReady))
                .await;
        }
    };
    let mut desired = match validate(&obj.spec, &obj.name_any(), &p.uid) {
        Ok(d) => d,
        Err(e) => return p.invalid(e).await,
    };
    // the tenant's policy: nothing reaches Proxmox when the spec is outside it
    let admission = match super::tenancy::admit(obj, ctx, &handle, &mut desired) {
        Ok(a) => a,
        Err(r) => return super::tenancy::refuse(&mut p, r).await,
    };
    // a valid spec can make progress again (set anew below if it cannot)
    p.uncond(CONDITION_STALLED);
    if obj.spec.management == Management::ObserveOnly {
        // its guest only: the inventory read is not held through the pass's writes
        let guest = obj.spec.vmid.and_then(|v| snap.guests.get(&v).cloned());
        drop(snap);
        return super::lifecycle::observe_only(&mut p, &handle, guest, &admission).await;
    }
    // a task in flight: check it, and do nothing else until it has ended. The inventory read
    // at the start is let go first and the latest taken after: a task that ended asks for a
    // new read, and a held one (~5 MiB at 10,000 guests) would live on beside it
    drop(snap);
    if let Some(action) = check_pending_task(&mut p, &handle).await? {
        return Ok(action);
    }
    let Some(snap) = handle.snapshot() else {
        let why = format!("ProxmoxCluster {} is connecting", key.name);
        return p
            .not_ready(Reason::ClusterNotReady, why, p.retry(Reason::ClusterNotReady))
            .await;
    };
    // a temporary snapshot of a clone source goes once the clone from it has ended
    if let Some(action) = super::clone_snapshot::tidy_pass(&mut p, &handle, &snap, false).await? {
        return Ok(action);
    }
    let vmid = match p.status.vmid {
        Some(v) => v,
        None => match allocate(&mut p, &handle, &admission, &key).await {
            Ok(v) => v,
            Err(halt) => return halt.into(),
        },
    };
    create_or_converge(&mut p, &handle, &snap, &desired, vmid, &admission).await
}

/// What a managed container cannot change once it was placed (pure): its cluster (checked
/// before anything else: the other cluster may not even exist) and its vmid.
fn immutable_change(spec: &LxcContainerSpec, status: &LxcContainerStatus, key: &ClusterKey) -> Option<InvalidSpec> {
    if spec.management != Management::Full {
        return None;
    }
    let invalid = |field: &str, message: String| {
        Some(InvalidSpec {
            field: field.into(),
            message,
        })
    };
    match (&status.cluster, status.vmid, spec.vmid) {
        (Some(c), _, _) if *c != key.name => invalid(
            "clusterRef",
            format!("clusterRef is immutable: this container lives in ProxmoxCluster {c}"),
        ),
        (_, Some(have), Some(want)) if have != want => {
            invalid("vmid", format!("vmid is immutable: this container is {have}"))
        }
        _ => None,
    }
}

/// Creates the container when Proxmox does not have it (again, with the same vmid, when it was
/// there before), converges it otherwise.
async fn create_or_converge(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &crate::controller::cluster::Snapshot,
    desired: &super::desired::Desired,
    vmid: u32,
    admission: &Admission,
) -> Result<Action, Error> {
    let from_image = matches!(desired.source, super::desired::Source::Image { .. });
    match locate_for(
        handle,
        vmid,
        &p.status,
        p.obj.spec.node.as_deref(),
        Some(&p.uid),
        from_image,
    )
    .await?
    {
        None => {
            if matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped)) {
                p.event(
                    Reason::Recreating,
                    format!("CT {vmid} is gone from Proxmox; creating it again with the same vmid"),
                )
                .await;
            }
            super::create::create(p, handle, snap, desired, vmid, admission).await
        }
        Some(found) => super::converge::converge(p, handle, snap, desired, vmid, found).await,
    }
}

/// Takes the vmid for a new container (the user's, or a free one, within the tenant's range)
/// and records it in status before anything is created with it. The quota is counted when the
/// vmid is taken: the check and the admission are one step.
async fn allocate(p: &mut P<'_>, handle: &ClusterHandle, admission: &Admission, key: &ClusterKey) -> Step<u32> {
    if let Err(r) = super::tenancy::admit_quota(p, admission) {
        return Err(Halt::end(super::tenancy::refuse(p, r).await));
    }
    let range = admission.spec().and_then(|t| t.vmid_range);
    let v = match (p.obj.spec.vmid, range) {
        (Some(v), _) => v,
        (None, None) => handle.allocate_vmid().await?,
        (None, Some(r)) => match handle.allocate_vmid_in(r.min, r.max).await? {
            Some(v) => v,
            None => {
                let msg = format!("every vmid of the tenant's range {}-{} is taken", r.min, r.max);
                let r = crate::controller::tenancy::policy::Refusal::new(Reason::TenantPolicyVmidRange, msg);
                return Err(Halt::end(super::tenancy::refuse(p, r).await));
            }
        },
    };
    // the vmid is recorded before anything is created with it
    p.status.vmid = Some(v);
    p.status.cluster = Some(key.name.clone());
    p.status.phase = Some(ContainerPhase::Pending);
    p.save().await?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managed_container_keeps_its_cluster_and_vmid_and_an_observed_one_is_not_judged() {
        let spec = |j: serde_json::Value| serde_json::from_value::<LxcContainerSpec>(j).unwrap();
        let full = spec(serde_json::json!({"vmid": 200, "source": {"osTemplate": "local:vztmpl/d.tar.zst"}}));
        let observed = spec(
            serde_json::json!({"vmid": 200, "management": "ObserveOnly", "source": {"osTemplate": "local:vztmpl/d.tar.zst"}}),
        );
        let placed = |cluster: &str, vmid| LxcContainerStatus {
            cluster: Some(cluster.into()),
            vmid: Some(vmid),
            ..Default::default()
        };
        let key = ClusterKey::named("a");
        assert!(immutable_change(&full, &placed("a", 200), &key).is_none());
        assert!(immutable_change(&full, &LxcContainerStatus::default(), &key).is_none());
        let e = immutable_change(&full, &placed("b", 200), &key).unwrap();
        assert_eq!(e.field, "clusterRef");
        assert!(e.message.contains("ProxmoxCluster b"), "{}", e.message);
        let e = immutable_change(&full, &placed("a", 201), &key).unwrap();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("vmid", "vmid is immutable: this container is 201")
        );
        assert!(immutable_change(&observed, &placed("b", 201), &key).is_none());
    }
}
