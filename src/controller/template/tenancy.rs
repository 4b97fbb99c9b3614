//! The tenant's policy for templates: admission to the cluster, the limits of a container, the
//! image storage, the pool and the vmid range.

use super::build;
use crate::controller::cluster::ClusterHandle;
use crate::controller::context::Context;
use crate::controller::tenancy::policy::{self, Refusal};
use crate::crd::LxcTemplate;
use kube::ResourceExt;

/// Admits the template to its cluster and checks it against the tenant's limits (those of a
/// container, plus the image storage); the tenant's pool and vmid range go into `plan`.
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
        .desired
        .rootfs
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| crate::controller::container::tenancy::DEFAULT_ROOTFS_STORAGE.into());
    policy::check_container(t, &build::container_spec(&obj.spec), &rootfs)?;
    match &obj.spec.image.oci {
        Some(reference) => policy::check_image(t, reference, &plan.image_storage)?,
        None => policy::check_image_storage(t, &plan.image_storage)?,
    }
    if let Some(pool) = &t.pool {
        plan.desired.pool = Some(pool.clone());
    }
    plan.vmid_range = t.vmid_range;
    Ok(())
}
