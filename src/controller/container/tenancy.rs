//! The tenant's policy in the container pass: admission to the cluster, the spec's limits, the
//! quota, and ownership of what the spec names (clone sources, archives, guests to observe).

use super::desired::Desired;
use super::pass::P;
use crate::controller::cluster::{ClusterHandle, Guest, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::context::Context;
use crate::controller::tenancy::actual;
use crate::controller::tenancy::ownership;
use crate::controller::tenancy::policy::{self, Admission, Refusal};
use crate::controller::Error;
use crate::crd::lxc_container::LxcContainer;
use crate::crd::ProxmoxTenant;
use crate::crd::{CONDITION_READY, CONDITION_STALLED};
use kube::runtime::controller::Action;
use kube::ResourceExt;

/// The storage a root disk goes to when the spec names none.
pub const DEFAULT_ROOTFS_STORAGE: &str = "local";

/// Admits the container to its cluster and checks its spec against the tenant's limits; the
/// tenant's pool and forced firewall go into `desired`.
pub(super) fn admit(
    obj: &LxcContainer,
    ctx: &Context,
    handle: &ClusterHandle,
    desired: &mut Desired,
) -> Result<Admission, Refusal> {
    let ns = obj.namespace().unwrap_or_default();
    let admission = ctx.tenancy.admission(&ns, handle)?;
    let Some(t) = admission.spec() else {
        return Ok(admission);
    };
    desired.open_tenancy = false;
    desired.allowed_nodes = t.nodes.clone();
    let rootfs = desired
        .rootfs
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| DEFAULT_ROOTFS_STORAGE.into());
    // observed containers are read only: their spec's resources are not the tenant's to limit
    if obj.spec.management == crate::crd::lxc_container::Management::Full {
        policy::check_container(t, &obj.spec, &rootfs)?;
        if let Admission::Tenant(tenant) = &admission {
            quota(obj, ctx, handle, tenant)?;
        }
    }
    if let Some(pool) = &t.pool {
        desired.pool = Some(pool.clone());
    }
    let net = t.network.clone().unwrap_or_default();
    // a tenant without `network` gets the default: forced on
    if t.network.is_none() || net.force_firewall {
        for n in desired.nets.values_mut() {
            n.firewall = Some(true);
        }
        desired.firewall_forced = Some(net.ip_filter);
    }
    Ok(admission)
}

/// Admits the container's footprint against its tenant's quota on every pass (a resize, a
/// switch from `ObserveOnly`, a clone of a larger source all grow it): the spec's footprint,
/// or what Proxmox reports for the guest when that is more. A refused growth leaves the
/// container counted at what Proxmox has.
fn quota(obj: &LxcContainer, ctx: &Context, handle: &ClusterHandle, tenant: &ProxmoxTenant) -> Result<(), Refusal> {
    if tenant.spec.quota.is_none() {
        return Ok(());
    }
    let uid = obj.uid().unwrap_or_default();
    let guest = obj
        .status
        .as_ref()
        .and_then(|s| s.vmid)
        .zip(handle.snapshot())
        .and_then(|(v, snap)| snap.guests.get(&v).cloned());
    let spec = policy::footprint(&obj.spec);
    let Some(g) = guest else {
        return ctx.tenancy.admit_quota(tenant, &uid, spec);
    };
    let want = actual::actual_footprint(spec, g.maxmem, g.maxdisk);
    ctx.tenancy.admit_quota(tenant, &uid, want).inspect_err(|_| {
        // what it holds now: the spec's cores (applied before), Proxmox's memory and disk
        let cores = ctx
            .tenancy
            .admitted_of(tenant, &uid)
            .map(|f| f.cores)
            .unwrap_or_else(|| {
                g.maxcpu
                    .filter(|c| c.is_finite() && *c > 0.0)
                    .map_or(1, |c| c.ceil() as u64)
            });
        let have = policy::Footprint {
            containers: 1,
            cores,
            memory_mib: 0,
            disk_gib: 0,
        };
        ctx.tenancy
            .record(tenant, &uid, actual::actual_footprint(have, g.maxmem, g.maxdisk));
    })
}

/// Counts the container against its tenant's quota when its vmid is taken (already admitted
/// by [`admit`] in the same pass; kept so the reservation precedes the vmid's record).
pub(super) fn admit_quota(p: &P<'_>, admission: &Admission) -> Result<(), Refusal> {
    let Admission::Tenant(t) = admission else {
        return Ok(());
    };
    p.ctx.tenancy.admit_quota(t, &p.uid, policy::footprint(&p.obj.spec))
}

/// `Ready=False` (and `Stalled`) with the refusal's reason; nothing was done in Proxmox.
pub(super) async fn refuse(p: &mut P<'_>, r: Refusal) -> Result<Action, Error> {
    // waiting for the tenancy caches: not stalled, and looked at again soon (the reason table)
    let pending = r.reason == policy::PENDING;
    if !pending {
        p.cond(CondSpec::yes(CONDITION_STALLED, r.reason, r.message.clone()));
    }
    p.status
        .phase
        .get_or_insert(crate::crd::lxc_container::ContainerPhase::Pending);
    p.cond(CondSpec::no(CONDITION_READY, r.reason, r.message));
    p.observed();
    p.save().await?;
    Ok(p.retry(r.reason))
}

/// The condition type a tenant's container carries while its config in Proxmox is outside the
/// tenant's limits (narrowed since it was made, or changed by a rollback or by hand).
pub const CONDITION_OUTSIDE_POLICY: &str = "OutsideTenantPolicy";

/// Judges a tenant's container by its config as Proxmox will have it after this pass's update:
/// what a clone source or archive brought (interfaces, features, bind mounts, devices, raw
/// keys, a hookscript) counts, not only the spec. About to be started (first start included),
/// it is held: `Some(action)` ends the pass, refused. Otherwise a container outside the limits
/// (narrowed since, or a rollback) carries [`CONDITION_OUTSIDE_POLICY`] naming the limit.
pub(super) async fn hold_start(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    cfg: &crate::pve::LxcConfig,
    plan: &super::plan::Plan,
) -> Result<Option<Action>, Error> {
    let admission = match p.ctx.tenancy.admission(&p.obj.namespace().unwrap_or_default(), handle) {
        Ok(a) => a,
        Err(r) => return refuse(p, r).await.map(Some),
    };
    let Some(t) = admission.spec() else {
        p.uncond(CONDITION_OUTSIDE_POLICY);
        return Ok(None);
    };
    let (set, delete) = plan.config_update();
    let verdict = actual::check_config(t, &actual::effective(cfg, &set, &delete));
    match verdict {
        Ok(()) => {
            p.uncond(CONDITION_OUTSIDE_POLICY);
            Ok(None)
        }
        Err(r) if plan.power == Some(super::plan::PowerAction::Start) => {
            let r = Refusal::new(r.reason, format!("not started: {}", r.message));
            refuse(p, r).await.map(Some)
        }
        Err(r) => {
            p.cond(CondSpec::yes(CONDITION_OUTSIDE_POLICY, r.reason, r.message));
            Ok(None)
        }
    }
}

/// Ends the pass (`EnvSourceNotFound`, naming the Secret and how to mark it) when `app.env[i]`
/// names a Secret not meant for it; no value of it is used.
pub(super) async fn unmarked_secret(
    p: &mut P<'_>,
    secret: Option<&k8s_openapi::api::core::v1::Secret>,
    i: usize,
) -> Result<Option<Action>, Error> {
    let Some(s) = secret else {
        return Ok(None);
    };
    match crate::controller::tenancy::secrets::app_env_consent(&p.ctx.kube, p.obj, s).await {
        Ok(()) => Ok(None),
        Err(m) => {
            let msg = format!("app.env[{i}]: {m}");
            let wait = p.retry(crate::controller::kernel::Reason::EnvSourceNotFound);
            p.not_ready(crate::controller::kernel::Reason::EnvSourceNotFound, msg, wait)
                .await
                .map(Some)
        }
    }
}

/// Hands `vmid` back once its container is gone from Proxmox, so a tenant's `vmidRange` does
/// not run dry after as many creates as it holds (a later allocation still skips what the
/// inventory shows and asks Proxmox whether the vmid is free).
pub(super) fn release_vmid(handle: &ClusterHandle, vmid: u32) {
    crate::controller::kernel::recover(handle.allocated.lock(), "the allocated vmids").remove(&vmid);
}

/// Whether the namespace may clone (or observe) `g`.
pub(super) fn may_use(p: &P<'_>, g: &Guest, admission: &Admission, what: &str) -> Result<(), Refusal> {
    let owner = p.ctx.tenancy.owner_of(&g.tags);
    ownership::may_use_guest(
        &p.obj.namespace().unwrap_or_default(),
        g.vmid,
        g.kind,
        &owner,
        admission,
        what,
    )
}

/// Whether this container's namespace (this very one, by uid) may restore archive `volid`.
pub(super) fn may_restore(p: &P<'_>, volid: &str, notes: Option<&str>, admission: &Admission) -> Result<(), Refusal> {
    let ns = p.obj.namespace().unwrap_or_default();
    let uid = p.ctx.tenancy.namespace_uid(&ns);
    ownership::may_restore(&ns, uid.as_deref(), volid, notes, admission)
}

/// The notes of archive `volid` as Proxmox lists them (first line), looked up on the nodes
/// that see its storage; `None` when it is not listed anywhere.
pub(super) async fn archive_notes(
    handle: &ClusterHandle,
    snap: &Snapshot,
    volid: &str,
) -> Result<Option<Option<String>>, Error> {
    let storage = volid.split_once(':').map(|x| x.0).unwrap_or_default();
    let nodes: Vec<String> = snap
        .storages
        .iter()
        .filter(|s| s.name == storage && snap.node_online(&s.node))
        .map(|s| s.node.clone())
        .collect();
    for node in nodes {
        let list = handle
            .client
            .storage_content(&node, storage, Some("backup"), None)
            .await?;
        if let Some(v) = list.into_iter().find(|v| v.volid == volid) {
            return Ok(Some(v.notes));
        }
    }
    Ok(None)
}

/// The spread group of the container (`label=value` of its `spec.spreadBy` label) and how many
/// other containers of the group each node holds now; `None` without `spreadBy` (or without
/// that label on the object). A sibling not created yet counts on the node placement chose for
/// it (recorded in the same step as the choice), so replicas placed at once spread too.
pub(super) fn spread_siblings(
    p: &P<'_>,
    handle: &ClusterHandle,
) -> Option<(String, std::collections::HashMap<String, i64>)> {
    use crate::crd::lxc_container::ContainerPhase;
    let key = p.obj.spec.spread_by.as_ref()?;
    let value = p.obj.labels().get(key)?.clone();
    let ns = p.obj.namespace();
    let placed = handle.spread_placed();
    let mut count = std::collections::HashMap::new();
    for c in p.ctx.tenancy.all_containers() {
        let uid = c.uid().unwrap_or_default();
        let same = c.namespace() == ns
            && uid != p.uid
            && c.metadata.deletion_timestamp.is_none()
            && c.labels().get(key) == Some(&value);
        if !same {
            continue;
        }
        // the status this process wrote last beats a watch cache that lags behind it
        let status = p.ctx.status.containers.current(&uid, c.status.as_ref());
        let exists = status.as_ref().is_some_and(|s| {
            matches!(
                s.phase,
                Some(ContainerPhase::Running | ContainerPhase::Stopped | ContainerPhase::Deleting)
            )
        });
        let node = match (exists, placed.get(&uid)) {
            (false, Some(n)) => Some(n.clone()),
            _ => status.and_then(|s| s.node),
        };
        if let Some(node) = node {
            *count.entry(node).or_insert(0) += 1;
        }
    }
    Some((format!("{key}={value}"), count))
}

/// The nodes placement may choose from: the tenant's (all when `tenant_nodes` is empty) that
/// are not in maintenance; `None` when nothing limits it.
pub(super) fn placeable(handle: &ClusterHandle, snap: &Snapshot, tenant_nodes: &[String]) -> Option<Vec<String>> {
    let all: Vec<&str> = if tenant_nodes.is_empty() {
        snap.nodes.iter().map(|n| n.name.as_str()).collect()
    } else {
        tenant_nodes.iter().map(String::as_str).collect()
    };
    let usable = handle.usable_nodes(all.iter().copied());
    (!tenant_nodes.is_empty() || usable.len() != all.len()).then_some(usable)
}

/// The node the container should be on, given node maintenance, and what to report:
/// `spec.node` normally (never a node in maintenance); a node out of maintenance for a
/// container on one, unless it is pinned there without `movePinned` (then it stays, reported).
pub(super) fn wanted_node(
    p: &P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    current: &str,
) -> (Option<String>, Option<String>) {
    let evacuate = || {
        let nodes = placeable(handle, snap, &desired.allowed_nodes)
            .unwrap_or_else(|| snap.nodes.iter().map(|n| n.name.clone()).collect());
        let limited = snap.placement_only_on(&nodes);
        let storage = desired
            .rootfs
            .as_ref()
            .map(|r| r.0.as_str())
            .unwrap_or(DEFAULT_ROOTFS_STORAGE);
        match super::decide::placement(
            None,
            &super::decide::Origin::Create,
            &limited,
            storage,
            &handle.reserved(),
        ) {
            Ok(n) => (Some(n), None),
            Err(u) => (
                None,
                Some(format!("node {current} is in maintenance, but {}", u.message)),
            ),
        }
    };
    match (p.obj.spec.node.as_deref(), handle.in_maintenance(current)) {
        (Some(n), Some(true)) if n == current => evacuate(),
        (Some(n), Some(false)) if n == current => (
            Some(n.to_string()),
            Some(format!("pinned to node {n}, which is in maintenance: it stays (set movePinned in the ProxmoxCluster's maintenance entry to move it)")),
        ),
        (Some(n), _) if handle.in_maintenance(n).is_some() => (None, None),
        (Some(n), _) => (Some(n.to_string()), None),
        (None, Some(_)) => evacuate(),
        (None, None) => (None, None),
    }
}
