//! What a template is judged and counted as (pure): the container settings it carries, the
//! container spec the tenant's limits judge, and what it counts against the tenant's quota. The
//! tenancy caches read this, so it imports nothing of the template controller.

use crate::controller::tenancy::policy;
use crate::crd::lxc_container::{LxcContainerSpec, PowerState};
use crate::crd::{LxcTemplate, LxcTemplateSpec};

/// A template's settings as an `LxcContainerSpec` without a source, for the tenant's policy,
/// which judges a template like a container ([`judged_spec`] sets the source).
pub fn container_spec(spec: &LxcTemplateSpec) -> LxcContainerSpec {
    LxcContainerSpec {
        description: spec.description.clone(),
        tags: spec.tags.clone(),
        unprivileged: spec.unprivileged,
        resources: spec.resources.clone(),
        rootfs: spec.rootfs.clone().map(Box::new),
        network: spec.network.clone(),
        features: spec.features.clone(),
        state: PowerState::Stopped,
        ..Default::default()
    }
}

/// The container spec the tenant's limits judge for a template: its settings, and the node,
/// vmid and existing image volume it names (which a container's check looks at too).
pub fn judged_spec(obj: &LxcTemplate) -> LxcContainerSpec {
    let mut cs = container_spec(&obj.spec);
    cs.node = obj.spec.node.clone();
    cs.vmid = obj.spec.vmid;
    cs.source.os_template = obj.spec.image.volid.clone();
    cs
}

/// What a template counts against its tenant's quota: the disks of its current build and of
/// every earlier build kept for linked clones (counted at the current size).
pub fn footprint(obj: &LxcTemplate) -> policy::Footprint {
    let one = policy::template_footprint(&judged_spec(obj));
    let builds = 1 + obj.status.as_ref().map_or(0, |s| s.previous.len() as u64);
    policy::Footprint {
        disk_gib: one.disk_gib * builds,
        ..one
    }
}
