//! The tenant policy as pure functions: which tenant a namespace belongs to, whether it may use
//! a cluster, and whether a container's spec stays within the tenant's limits. Nothing here
//! talks to Kubernetes or Proxmox; a refusal names the limit and the field.

use crate::controller::kernel::Reason;
use crate::crd::lxc_container::LxcContainerSpec;
use crate::crd::lxc_container::Management;
use crate::crd::proxmox_tenant::{ProxmoxTenant, ProxmoxTenantSpec, TenantPrivileges, TenantQuota};
use crate::crd::Tenancy;
use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The reason of a refusal that waits for the tenancy caches (fail closed).
pub const PENDING: Reason = Reason::TenantPolicyPending;

/// What a namespace may do on one cluster.
#[derive(Clone, Debug)]
pub enum Admission {
    /// An `Open` cluster and no tenant for the namespace: no limits beyond ownership (the
    /// single-team setup).
    Open,
    /// The limits of this tenant apply.
    Tenant(Arc<ProxmoxTenant>),
}

impl Admission {
    /// The tenant's spec, if a tenant applies.
    pub fn spec(&self) -> Option<&ProxmoxTenantSpec> {
        match self {
            Admission::Open => None,
            Admission::Tenant(t) => Some(&t.spec),
        }
    }

    /// The tenant's name, if a tenant applies.
    pub fn tenant_name(&self) -> Option<String> {
        match self {
            Admission::Open => None,
            Admission::Tenant(t) => Some(t.name_any()),
        }
    }
}

/// Why something was refused: a condition reason and a message naming the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `TenantPolicy…` or `NotOwned`.
    pub reason: Reason,
    /// What was refused and which limit says so.
    pub message: String,
}

impl Refusal {
    /// A refusal.
    pub fn new(reason: Reason, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

/// Whether `tenant` covers `namespace` (with its labels, when known).
pub fn covers(tenant: &ProxmoxTenantSpec, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
    if tenant.namespaces.iter().any(|n| n == namespace) {
        return true;
    }
    let (Some(sel), Some(labels)) = (&tenant.namespace_selector, labels) else {
        return false;
    };
    // an empty selector would match every namespace: treated as matching none
    if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    {
        return false;
    }
    match Selector::try_from(sel.clone()) {
        Ok(s) => s.matches(labels),
        // an unusable selector matches nothing (the tenant's status says why)
        Err(_) => false,
    }
}

/// The tenant of `namespace`: `Ok(None)` when no tenant covers it, `Err` when two do.
pub fn tenant_of(
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    tenants: &[Arc<ProxmoxTenant>],
) -> Result<Option<Arc<ProxmoxTenant>>, Refusal> {
    let mut matched: Vec<&Arc<ProxmoxTenant>> = tenants
        .iter()
        .filter(|t| t.metadata.deletion_timestamp.is_none() && covers(&t.spec, namespace, labels))
        .collect();
    matched.sort_by_key(|t| t.name_any());
    match matched.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        [a, b, ..] => Err(Refusal::new(
            Reason::TenantPolicyAmbiguous,
            format!(
                "namespace {namespace} is claimed by ProxmoxTenants {} and {}; an administrator must leave it in one",
                a.name_any(),
                b.name_any()
            ),
        )),
    }
}

/// Whether `namespace` may use cluster `cluster` (with `tenancy`): the tenant covering the
/// namespace must list the cluster; a namespace without a tenant may use `Open` clusters only.
///
/// Fails closed: while a namespace's labels are unknown and a tenant selects namespaces by
/// label, which tenant covers it cannot be told, so nothing is admitted (`TenantPolicyPending`).
pub fn admit(
    cluster: &str,
    tenancy: Tenancy,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    tenants: &[Arc<ProxmoxTenant>],
) -> Result<Admission, Refusal> {
    let by_name = tenants.iter().any(|t| t.spec.namespaces.iter().any(|n| n == namespace));
    if labels.is_none() && !by_name && tenants.iter().any(|t| t.spec.namespace_selector.is_some()) {
        return Err(Refusal::new(
            PENDING,
            format!("the labels of namespace {namespace} are not known yet and a ProxmoxTenant selects namespaces by label: nothing is done until it is known which tenant's limits apply"),
        ));
    }
    match (tenant_of(namespace, labels, tenants)?, tenancy) {
        (Some(t), _) if t.spec.clusters.iter().any(|c| c == cluster) => Ok(Admission::Tenant(t)),
        (Some(t), _) => Err(Refusal::new(
            Reason::TenantPolicyClusterNotAllowed,
            format!(
                "namespace {namespace} belongs to ProxmoxTenant {}, which may not use ProxmoxCluster {cluster} (spec.clusters: {})",
                t.name_any(),
                t.spec.clusters.join(", ")
            ),
        )),
        (None, Tenancy::Open) => Ok(Admission::Open),
        (None, Tenancy::Restricted) => Err(Refusal::new(
            Reason::TenantPolicyClusterNotAllowed,
            format!(
                "ProxmoxCluster {cluster} is Restricted and no ProxmoxTenant admits namespace {namespace}{}",
                if labels.is_none() { " (its labels are not known yet)" } else { "" }
            ),
        )),
    }
}

fn in_list(list: &[String], v: &str) -> bool {
    list.is_empty() || list.iter().any(|x| x == v)
}

fn listed(list: &[String]) -> String {
    list.join(", ")
}

/// Whether `addr` (`10.0.0.5/24` or a bare address) lies inside one of `ranges` (CIDRs).
pub fn address_allowed(addr: &str, ranges: &[String]) -> bool {
    if ranges.is_empty() {
        return true;
    }
    let ip = addr.split('/').next().unwrap_or_default();
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    ranges.iter().any(|r| cidr_contains(r, ip))
}

fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().ok()),
        None => (cidr, None),
    };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(a)) => {
            let len = len.unwrap_or(32).min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(a)) => {
            let len = len.unwrap_or(128).min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// Checks a container's spec against the tenant's limits (placement, storages, network,
/// privileges). `rootfs_storage` is the storage the root disk goes to (the default when the
/// spec names none). Quotas are checked apart ([`quota_check`]).
pub fn check_container(t: &ProxmoxTenantSpec, spec: &LxcContainerSpec, rootfs_storage: &str) -> Result<(), Refusal> {
    match (&t.pool, &spec.pool) {
        (Some(pool), Some(want)) if pool != want => {
            return Err(Refusal::new(
                Reason::TenantPolicyPool,
                format!("spec.pool {want} is not the tenant's pool {pool} (leave it out: containers go to {pool})"),
            ));
        }
        // a pool carries ACLs and backup jobs: without one of its own the tenant may not pick
        // another team's or the admin's
        (None, Some(want)) => {
            return Err(Refusal::new(
                Reason::TenantPolicyPool,
                format!("spec.pool {want}: the tenant has no pool of its own and may not choose one (leave it out)"),
            ));
        }
        _ => {}
    }
    if let (Some(range), Some(v)) = (&t.vmid_range, spec.vmid) {
        if !range.contains(v) {
            return Err(Refusal::new(
                Reason::TenantPolicyVmidRange,
                format!(
                    "spec.vmid {v} is outside the tenant's vmid range {}-{}",
                    range.min, range.max
                ),
            ));
        }
    }
    if let Some(n) = &spec.node {
        if !in_list(&t.nodes, n) {
            return Err(Refusal::new(
                Reason::TenantPolicyNode,
                format!("spec.node {n} is not one of the tenant's nodes ({})", listed(&t.nodes)),
            ));
        }
    }
    let storages = t.storages.clone().unwrap_or_default();
    let disk_storages = std::iter::once(("rootfs.storage".to_string(), rootfs_storage.to_string())).chain(
        spec.mount_points
            .iter()
            .map(|m| (format!("mountPoints[{}].storage", m.name), m.storage.clone())),
    );
    for (field, s) in disk_storages {
        if !in_list(&storages.rootfs, &s) {
            return Err(Refusal::new(
                Reason::TenantPolicyStorage,
                format!(
                    "spec.{field} {s} is not one of the tenant's storages for disks ({})",
                    listed(&storages.rootfs)
                ),
            ));
        }
    }
    check_network(t, spec)?;
    if let Some(volid) = &spec.source.os_template {
        check_os_template(t, volid, "spec.source.osTemplate")?;
    }
    if let Some(image) = &spec.source.image {
        check_image(t, &image.reference, &image.storage)?;
    }
    let privileges = t.privileges.clone().unwrap_or_default();
    if !spec.unprivileged && !privileges.privileged {
        return Err(Refusal::new(
            Reason::TenantPolicyPrivileged,
            "spec.unprivileged: false asks for a privileged container (root in it is root on the Proxmox node); the tenant may not run them",
        ));
    }
    if let Some(f) = &spec.features {
        let extra: Vec<&str> = [("keyctl", f.keyctl), ("fuse", f.fuse)]
            .into_iter()
            .filter(|(_, on)| *on == Some(true))
            .map(|(n, _)| n)
            .collect();
        if !extra.is_empty() && !privileges.extra_features {
            return Err(Refusal::new(
                Reason::TenantPolicyFeatures,
                format!(
                    "spec.features {} go beyond nesting; the tenant may not use them",
                    extra.join(", ")
                ),
            ));
        }
    }
    check_host_mounts(&privileges, spec)?;
    check_high_availability(t, &privileges, spec)
}

/// High availability: only with the tenant's `privileges.highAvailability`, and node affinity
/// only on the tenant's nodes.
fn check_high_availability(
    t: &ProxmoxTenantSpec,
    privileges: &TenantPrivileges,
    spec: &LxcContainerSpec,
) -> Result<(), Refusal> {
    let Some(ha) = &spec.high_availability else {
        return Ok(());
    };
    if !privileges.high_availability {
        return Err(Refusal::new(
            Reason::TenantPolicyHighAvailability,
            "spec.highAvailability makes the container a Proxmox HA resource; the tenant may not (its privileges.highAvailability is off)",
        ));
    }
    // without a strict affinity HA recovers the container onto any node when the listed ones
    // are down, and the operator then follows it there
    if !t.nodes.is_empty() && !ha.node_affinity.as_ref().is_some_and(|a| a.strict) {
        return Err(Refusal::new(
            Reason::TenantPolicyHighAvailability,
            format!(
                "spec.highAvailability needs a nodeAffinity with strict: true on the tenant's nodes ({}): otherwise HA may recover the container onto any node",
                listed(&t.nodes)
            ),
        ));
    }
    let nodes = ha.node_affinity.iter().flat_map(|a| a.nodes.iter());
    if let Some((i, n)) = nodes.enumerate().find(|(_, n)| !in_list(&t.nodes, &n.name)) {
        return Err(Refusal::new(
            Reason::TenantPolicyHighAvailability,
            format!(
                "spec.highAvailability.nodeAffinity.nodes[{i}] {} is not one of the tenant's nodes ({})",
                n.name,
                listed(&t.nodes)
            ),
        ));
    }
    Ok(())
}

/// Whether `path` is one of `prefixes` or below one, by whole components (`/srv/a` admits
/// `/srv/a/x`, not `/srv/ab`); any path when `prefixes` is empty.
pub fn path_allowed(path: &str, prefixes: &[String]) -> bool {
    prefixes.is_empty()
        || prefixes.iter().any(|p| {
            let p = p.trim_end_matches('/');
            path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Bind mounts and devices: only with the tenant's `privileges.bindMounts` / `.devices`, and
/// inside its `bindMountPaths` / `devicePaths`.
fn check_host_mounts(privileges: &TenantPrivileges, spec: &LxcContainerSpec) -> Result<(), Refusal> {
    let gates = [
        (
            Reason::TenantPolicyBindMounts,
            "bindMounts",
            "hostPath",
            privileges.bind_mounts,
            &privileges.bind_mount_paths,
            spec.bind_mounts
                .iter()
                .map(|b| b.host_path.as_str())
                .collect::<Vec<_>>(),
            "binds a host directory into the container",
        ),
        (
            Reason::TenantPolicyDevices,
            "devices",
            "path",
            privileges.devices,
            &privileges.device_paths,
            spec.devices.iter().map(|d| d.path.as_str()).collect(),
            "passes a host device into the container",
        ),
    ];
    for (reason, field, sub, allowed, prefixes, paths, what) in gates {
        let Some(first) = paths.first() else { continue };
        if !allowed {
            return Err(Refusal::new(
                reason,
                format!("spec.{field}[0] ({first}) {what}; the tenant may not (its privileges.{field} is off)"),
            ));
        }
        if let Some((i, p)) = paths.iter().enumerate().find(|(_, p)| !path_allowed(p, prefixes)) {
            return Err(Refusal::new(
                reason,
                format!(
                    "spec.{field}[{i}].{sub} {p} is outside the tenant's allowed paths ({})",
                    listed(prefixes)
                ),
            ));
        }
    }
    Ok(())
}

/// The registry of an image reference, as skopeo reads it (`nginx:1` is from `docker.io`).
pub fn registry_of(reference: &str) -> String {
    let canonical = crate::controller::oci::canonical_reference(reference);
    canonical.split('/').next().unwrap_or_default().to_string()
}

/// Whether the tenant may pull `reference` into `storage`.
pub fn check_image(t: &ProxmoxTenantSpec, reference: &str, storage: &str) -> Result<(), Refusal> {
    let registry = registry_of(reference);
    if !t.image_registries.iter().any(|r| r.eq_ignore_ascii_case(&registry)) {
        return Err(Refusal::new(
            Reason::TenantPolicyImageRegistry,
            format!(
                "image {reference} is from registry {registry}, which is not one of the tenant's image registries ({})",
                if t.image_registries.is_empty() {
                    "none".to_string()
                } else {
                    t.image_registries.join(", ")
                }
            ),
        ));
    }
    check_image_storage(t, storage)
}

/// Whether `name` (a `vztmpl` file name) has the shape of an image the operator pulled
/// (`<name>-<10 hex digits>.tar`, see `container::image::file_name`).
fn is_pulled_image_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tar") else {
        return false;
    };
    stem.rsplit_once('-')
        .is_some_and(|(base, h)| !base.is_empty() && h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the tenant may name the existing `vztmpl` volume `volid` (`field` says where): only
/// on one of its template storages, and never a file the operator pulled from a registry
/// (whose name anyone can compute from the image reference): those are reached through
/// `spec.source.image` / `image.oci`, where the tenant's registry list applies.
pub fn check_os_template(t: &ProxmoxTenantSpec, volid: &str, field: &str) -> Result<(), Refusal> {
    let (storage, path) = volid.split_once(':').unwrap_or(("", volid));
    let file = path.rsplit('/').next().unwrap_or(path);
    if is_pulled_image_name(file) {
        return Err(Refusal::new(
            Reason::TenantPolicyImageRegistry,
            format!(
                "{field} {volid} names an image pulled from a registry; name the image in spec.source.image (or image.oci) instead, where the tenant's image registries apply"
            ),
        ));
    }
    check_image_storage(t, storage).map_err(|r| Refusal::new(r.reason, format!("{field} {volid}: {}", r.message)))
}

/// Whether the tenant may put downloaded templates and images on `storage`.
pub fn check_image_storage(t: &ProxmoxTenantSpec, storage: &str) -> Result<(), Refusal> {
    let allowed = t.storages.as_ref().map(|s| s.templates.clone()).unwrap_or_default();
    if !in_list(&allowed, storage) {
        return Err(Refusal::new(
            Reason::TenantPolicyStorage,
            format!(
                "image storage {storage} is not one of the tenant's template storages ({})",
                listed(&allowed)
            ),
        ));
    }
    Ok(())
}

fn check_network(t: &ProxmoxTenantSpec, spec: &LxcContainerSpec) -> Result<(), Refusal> {
    let net = t.network.clone().unwrap_or_default();
    for (i, n) in spec.network.iter().enumerate() {
        let field = format!("spec.network[{i}]");
        if !net.bridges.is_empty() {
            let Some(b) = net.bridges.iter().find(|b| b.name == n.bridge) else {
                let names: Vec<String> = net.bridges.iter().map(|b| b.name.clone()).collect();
                return Err(Refusal::new(
                    Reason::TenantPolicyNetwork,
                    format!(
                        "{field}.bridge {} is not one of the tenant's bridges ({})",
                        n.bridge,
                        names.join(", ")
                    ),
                ));
            };
            let ok = match n.vlan {
                Some(v) => b.vlans.contains(&v),
                None => b.vlans.is_empty() || b.allow_untagged,
            };
            if !ok {
                let what = n.vlan.map(|v| format!("VLAN {v}")).unwrap_or_else(|| "untagged".into());
                let allowed: Vec<String> = b.vlans.iter().map(u16::to_string).collect();
                return Err(Refusal::new(
                    Reason::TenantPolicyNetwork,
                    format!(
                        "{field}: {what} on bridge {} is not allowed for the tenant (VLANs: {})",
                        b.name,
                        if allowed.is_empty() {
                            "none".into()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
        }
        if n.mac.is_some() && !net.allow_static_mac {
            return Err(Refusal::new(
                Reason::TenantPolicyMacAddress,
                format!(
                    "{field}.mac: the tenant may not choose MAC addresses (Proxmox assigns one when it is left out)"
                ),
            ));
        }
        let statics = [
            n.ipv4.as_ref().and_then(|c| c.address.clone()),
            n.ipv6.as_ref().and_then(|c| c.address.clone()),
        ];
        for a in statics.into_iter().flatten() {
            if !address_allowed(&a, &net.address_ranges) {
                return Err(Refusal::new(
                    Reason::TenantPolicyAddress,
                    format!(
                        "{field}: address {a} is outside the tenant's address ranges ({})",
                        listed(&net.address_ranges)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// What one container counts against a quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Containers (1 for a managed one).
    pub containers: u64,
    /// CPU cores.
    pub cores: u64,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Disk, GiB.
    pub disk_gib: u64,
}

impl Footprint {
    /// Whether `self` is no larger than `other` in every dimension.
    pub fn within(&self, other: &Footprint) -> bool {
        self.containers <= other.containers
            && self.cores <= other.cores
            && self.memory_mib <= other.memory_mib
            && self.disk_gib <= other.disk_gib
    }
}

impl std::ops::AddAssign for Footprint {
    fn add_assign(&mut self, o: Footprint) {
        self.containers += o.containers;
        self.cores += o.cores;
        self.memory_mib += o.memory_mib;
        self.disk_gib += o.disk_gib;
    }
}

/// What `spec` counts against a quota: `Management: Full` containers only (observed ones
/// belong to someone else); unset values count as Proxmox's defaults (1 core, 512 MiB, 8 GiB).
pub fn footprint(spec: &LxcContainerSpec) -> Footprint {
    if spec.management != Management::Full {
        return Footprint::default();
    }
    let r = spec.resources.clone().unwrap_or_default();
    let gib = |q: &crate::crd::ByteQuantity| q.to_bytes().map(|b| b.div_ceil(1 << 30)).unwrap_or(0);
    Footprint {
        containers: 1,
        cores: u64::from(r.cores.unwrap_or(1)),
        memory_mib: r.memory.as_ref().and_then(|m| m.to_mib().ok()).unwrap_or(512),
        disk_gib: spec.rootfs.as_ref().map(|f| gib(&f.size)).unwrap_or(8)
            + spec.mount_points.iter().map(|m| gib(&m.size)).sum::<u64>(),
    }
}

/// What a template counts against a quota: its disks only (it never runs, so it holds no
/// cores or memory, and it is not a container of the `containers` count).
pub fn template_footprint(spec: &LxcContainerSpec) -> Footprint {
    let mut full = spec.clone();
    full.management = Management::Full;
    Footprint {
        disk_gib: footprint(&full).disk_gib,
        ..Footprint::default()
    }
}

/// Whether `others` (the tenant's other containers) plus `this` stay within `quota`.
pub fn quota_check(quota: &TenantQuota, others: Footprint, this: Footprint) -> Result<(), Refusal> {
    let mut total = others;
    total += this;
    let mib = |q: &Option<crate::crd::ByteQuantity>| q.as_ref().and_then(|q| q.to_bytes().ok()).map(|b| b >> 20);
    let limits = [
        ("containers", total.containers, quota.containers.map(u64::from), ""),
        ("cores", total.cores, quota.cores.map(u64::from), ""),
        ("memory", total.memory_mib, mib(&quota.memory), " MiB"),
        ("disk", total.disk_gib << 10, mib(&quota.disk), " MiB"),
    ];
    for (what, used, limit, unit) in limits {
        if let Some(limit) = limit {
            if used > limit {
                return Err(Refusal::new(
                    Reason::TenantPolicyQuotaExceeded,
                    format!("the tenant's quota for {what} would be exceeded: {used}{unit} asked in all, {limit}{unit} allowed"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
