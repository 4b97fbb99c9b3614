//! The tenant's policy for templates: admission to the cluster, the limits of a container
//! (node, vmid range, storages, network, privileges), the image and its storage, the pool and
//! the quota (a template's disks count against it).

use super::build;
use super::footprint::{footprint, judged_spec};
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::context::Context;
use crate::controller::tenancy::policy::{self, Admission, Refusal};
use crate::crd::LxcTemplate;
use kube::ResourceExt;

/// Admits the template to its cluster and checks it against the tenant's limits (those of a
/// container, plus the image storage) and quota; the tenant's pool, nodes and vmid range go
/// into `plan`.
pub(super) fn admit(
    obj: &LxcTemplate,
    ctx: &Context,
    handle: &ClusterHandle,
    plan: &mut build::TemplatePlan,
) -> Result<(), Refusal> {
    let admission = ctx.tenancy.admission(&obj.namespace().unwrap_or_default(), handle)?;
    let Some(t) = admission.spec() else {
        return Ok(());
    };
    let rootfs = plan
        .settings
        .rootfs
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| crate::controller::container::tenancy::DEFAULT_ROOTFS_STORAGE.into());
    let judged = judged_spec(obj);
    policy::check_container(t, &judged, &rootfs)?;
    match &obj.spec.image.oci {
        Some(reference) => policy::check_image(t, reference, &plan.image_storage)?,
        None => policy::check_image_storage(t, &plan.image_storage)?,
    }
    if let Admission::Tenant(tenant) = &admission {
        let uid = obj.uid().unwrap_or_default();
        ctx.tenancy.admit_quota(tenant, &uid, footprint(obj))?;
    }
    if let Some(pool) = &t.pool {
        plan.pool = Some(pool.clone());
    }
    plan.allowed_nodes = t.nodes.clone();
    plan.vmid_range = t.vmid_range;
    Ok(())
}

/// What placement may choose from for a template: the tenant's nodes only, when it has a list.
pub(super) fn placement_view<'a>(snap: &'a Snapshot, allowed_nodes: &[String]) -> std::borrow::Cow<'a, Snapshot> {
    if allowed_nodes.is_empty() {
        std::borrow::Cow::Borrowed(snap)
    } else {
        std::borrow::Cow::Owned(snap.placement_only_on(allowed_nodes))
    }
}
