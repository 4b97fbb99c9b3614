//! Checks a container's spec against what the operator already knows about its cluster (the
//! inventory in [`Snapshot`]: nodes, their CPUs, memory and bridges, storages and their content
//! types) before anything is created, so a typo is refused at once with the valid choices
//! instead of failing late in Proxmox, retried as if Proxmox were down.
//!
//! gather ([`gather`]: the OS template volumes of the storage named, one read) -> decide
//! ([`check`]: pure, table-tested) -> act (`run`: `Ready=False InvalidSpec`, a slow
//! exponential back-off, no Proxmox call).

use super::desired::{Desired, InvalidSpec, Source};
use super::pass::P;
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::error::KubeOp;
use crate::controller::kernel::Reason;
use crate::controller::{jitter, Error};
use crate::crd::lxc_backup::LxcBackup;
use crate::crd::lxc_container::{ContainerPhase, LxcContainerSpec};
use crate::crd::lxc_template::LxcTemplate;
use crate::crd::proxmox_cluster::{NodeStatus, ProxmoxCluster};
use crate::crd::CONDITION_READY;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the checks know besides the spec.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    /// The `ProxmoxCluster`'s name (named in the messages).
    pub cluster: &'a str,
    /// The OS template volumes (`storage:vztmpl/...`) listed on the storage the spec's
    /// `source.osTemplate` names; `None` when not read (not an OS template, or the read failed).
    pub templates: Option<Arc<[String]>>,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidSpec {
    InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// `a, b, c`, or `none` for an empty list.
fn choices<S: AsRef<str>>(list: impl IntoIterator<Item = S>) -> String {
    let v: Vec<String> = list.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The nodes a storage or bridge must be on: the spec's node, else every online node (any of
/// them may be chosen).
fn candidate_nodes<'a>(snap: &'a Snapshot, node: Option<&str>) -> Vec<&'a NodeStatus> {
    match node {
        Some(n) => snap.nodes.iter().filter(|x| x.name == n).collect(),
        None => snap.nodes.iter().filter(|x| x.online).collect(),
    }
}

/// Checks that `storage` exists (on `node` when set, else on some online node) and can hold
/// `content`; the message lists the storages that can.
fn check_storage(
    snap: &Snapshot,
    cluster: &str,
    node: Option<&str>,
    field: &str,
    storage: &str,
    content: &str,
) -> Result<(), InvalidSpec> {
    let nodes: Vec<&str> = candidate_nodes(snap, node).iter().map(|n| n.name.as_str()).collect();
    let on_nodes = |s: &&crate::crd::proxmox_cluster::StorageStatus| nodes.contains(&s.node.as_str());
    let with_content = |s: &&crate::crd::proxmox_cluster::StorageStatus| s.content.iter().any(|c| c == content);
    let mut valid: Vec<&str> = snap
        .storages
        .iter()
        .filter(on_nodes)
        .filter(with_content)
        .map(|s| s.name.as_str())
        .collect();
    valid.sort_unstable();
    valid.dedup();
    if valid.contains(&storage) {
        return Ok(());
    }
    let where_ = node.map(|n| format!(" on node {n}")).unwrap_or_default();
    let found = snap.storages.iter().filter(on_nodes).find(|s| s.name == storage);
    let message = match found {
        Some(s) => format!(
            "storage {storage}{where_} cannot hold {content} (its content types: {}); storages that can: {}",
            choices(&s.content),
            choices(&valid)
        ),
        None => format!(
            "storage {storage} does not exist{where_} in ProxmoxCluster {cluster}; storages that can hold {content}: {}",
            choices(&valid)
        ),
    };
    Err(invalid(field, message))
}

/// Checks the node, the storages, the bridges, the OS template and the capacity the spec
/// asks for against the inventory. Inventory that is not known (no bridges read, no template
/// list) is not checked: the checks only refuse what is certainly wrong.
pub fn check(
    spec: &LxcContainerSpec,
    desired: &Desired,
    snap: &Snapshot,
    known: &Known<'_>,
) -> Result<(), InvalidSpec> {
    let cluster = known.cluster;
    let node = spec.node.as_deref();
    if let Some(n) = node {
        if !snap.nodes.iter().any(|x| x.name == n) {
            let names = choices(snap.nodes.iter().map(|x| x.name.as_str()));
            return Err(invalid(
                "node",
                format!("node {n} is not in ProxmoxCluster {cluster}: {names}"),
            ));
        }
    }
    if !candidate_nodes(snap, node).iter().any(|n| n.online) {
        // an offline node's inventory may be incomplete: the create waits for it (NodeUnavailable,
        // NoNodeAvailable), and the spec is judged once a node is back
        return Ok(());
    }
    if let Some((storage, _)) = &desired.rootfs {
        check_storage(snap, cluster, node, "rootfs.storage", storage, "rootdir")?;
    }
    for (i, mp) in spec.mount_points.iter().enumerate() {
        check_storage(
            snap,
            cluster,
            node,
            &format!("mountPoints[{i}].storage"),
            &mp.storage,
            "rootdir",
        )?;
    }
    match &desired.source {
        Source::OsTemplate(volid) => {
            let storage = volid.split_once(':').map(|x| x.0).unwrap_or_default();
            check_storage(snap, cluster, node, "source.osTemplate", storage, "vztmpl")?;
            if let Some(list) = known.templates.as_ref().filter(|l| !l.contains(volid)) {
                let message = format!(
                    "volume {volid} does not exist; OS templates on storage {storage}: {}",
                    choices(list.iter())
                );
                return Err(invalid("source.osTemplate", message));
            }
        }
        Source::Image { storage, .. } => {
            check_storage(snap, cluster, node, "source.image.storage", storage, "vztmpl")?;
        }
        Source::BackupVolid(volid) => {
            let storage = volid.split_once(':').map(|x| x.0).unwrap_or_default();
            check_storage(snap, cluster, node, "source.backup.volid", storage, "backup")?;
        }
        _ => {}
    }
    check_bridges(spec, snap, node)?;
    check_capacity(desired, snap, node)
}

/// Every `network[].bridge` must exist on the node (or, with no node set, on some online
/// node); nodes whose bridges were not read are not checked.
fn check_bridges(spec: &LxcContainerSpec, snap: &Snapshot, node: Option<&str>) -> Result<(), InvalidSpec> {
    let nodes: Vec<&NodeStatus> = candidate_nodes(snap, node)
        .into_iter()
        .filter(|n| !n.bridges.is_empty())
        .collect();
    if nodes.is_empty() {
        return Ok(());
    }
    let mut valid: Vec<&str> = nodes
        .iter()
        .flat_map(|n| n.bridges.iter().map(String::as_str))
        .collect();
    valid.sort_unstable();
    valid.dedup();
    for (i, nic) in spec.network.iter().enumerate() {
        if !valid.contains(&nic.bridge.as_str()) {
            let where_ = node
                .map(|n| format!("node {n}"))
                .unwrap_or_else(|| "any online node".into());
            let message = format!(
                "bridge {} does not exist on {where_}; bridges: {}",
                nic.bridge,
                choices(&valid)
            );
            return Err(invalid(format!("network[{i}].bridge"), message));
        }
    }
    Ok(())
}

/// Cores and memory must fit the node (or, with no node set, the largest online node): a
/// container larger than its node can never run as asked.
fn check_capacity(desired: &Desired, snap: &Snapshot, node: Option<&str>) -> Result<(), InvalidSpec> {
    let nodes = candidate_nodes(snap, node);
    let what = |n: Option<&str>| {
        n.map(|n| format!("node {n}"))
            .unwrap_or_else(|| "the largest online node".into())
    };
    let cpus = nodes.iter().filter_map(|n| n.cpus).max();
    if let (Some(cores), Some(max)) = (desired.config.cores, cpus) {
        if cores > max {
            let message = format!("{cores} cores do not fit {}, which has {max} CPUs", what(node));
            return Err(invalid("resources.cores", message));
        }
    }
    let memory = nodes.iter().filter_map(|n| n.memory_total).max();
    if let (Some(mib), Some(total)) = (desired.config.memory_mib, memory) {
        if mib.saturating_mul(1 << 20) > total {
            let message = format!(
                "{mib} MiB of memory does not fit {}, which has {} MiB",
                what(node),
                total >> 20
            );
            return Err(invalid("resources.memory", message));
        }
    }
    Ok(())
}

/// The objects in the namespace that the spec's source names (`LxcTemplate`, `LxcBackup`) must
/// exist: a missing one is named with its kind and namespace (`exists(kind, name)` says whether
/// it does). Not yet Ready is a wait, not this.
pub fn check_references(
    desired: &Desired,
    namespace: &str,
    exists: impl Fn(&str, &str) -> bool,
) -> Result<(), InvalidSpec> {
    let (field, kind, name) = match &desired.source {
        Source::Template { name, .. } => ("source.template.name", "LxcTemplate", name),
        Source::BackupName(name) => ("source.backup.name", "LxcBackup", name),
        _ => return Ok(()),
    };
    if exists(kind, name) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("{kind} {name} does not exist in namespace {namespace}"),
    ))
}

/// The first retry of a spec the inventory refuses, and the longest wait between retries.
pub const RETRY_MIN: Duration = Duration::from_secs(30);
/// See [`RETRY_MIN`].
pub const RETRY_MAX: Duration = Duration::from_secs(600);

/// When to look again at a spec refused since `refused_for`: as long again as it has been
/// refused (so the waits double: 30 s, 30 s, 1 min, 2 min, ...), between [`RETRY_MIN`] and
/// [`RETRY_MAX`]. The inventory may change (a node joins, a bridge is added); the spec's own
/// change wakes the object at once anyway.
pub fn retry_after(refused_for: Duration) -> Duration {
    refused_for.clamp(RETRY_MIN, RETRY_MAX)
}

/// How long `Ready` has been False (zero when it is not): the clock of the back-off of a
/// create that keeps failing (the object has not been ready since before its first try).
pub fn not_ready_for(conditions: &[Condition]) -> Duration {
    conditions
        .iter()
        .find(|c| c.type_ == CONDITION_READY && c.status == "False")
        .and_then(|c| {
            jiff::Timestamp::now()
                .duration_since(c.last_transition_time.0)
                .try_into()
                .ok()
        })
        .unwrap_or_default()
}

/// When to try a create again whose task ended with `exitstatus`: a failure that names
/// something the spec asks for that cannot be had (a volume or storage that does not exist, a
/// storage that cannot hold the content: class InvalidSpec) waits as long as the container has
/// not been Ready ([`retry_after`]: 30 s doubling to 10 min); any other failure (a lock, a
/// passing fault) is tried again after 5 s.
pub fn create_retry(exitstatus: &str, conditions: &[Condition]) -> Duration {
    let failure = crate::pve::Error::TaskFailed {
        upid: String::new(),
        exitstatus: exitstatus.to_string(),
        log_tail: Vec::new(),
    };
    if failure.class() == crate::pve::ErrorClass::InvalidSpec {
        retry_after(not_ready_for(conditions))
    } else {
        Duration::from_secs(5)
    }
}

/// The first retry of a spec whose `LxcTemplate` or `LxcBackup` does not exist, and the longest
/// wait: shorter than [`RETRY_MIN`]/[`RETRY_MAX`], as applying a container and its template
/// together (in any order) is common and costs no Proxmox call.
pub const REFERENCE_RETRY_MIN: Duration = Duration::from_secs(5);
/// See [`REFERENCE_RETRY_MIN`].
pub const REFERENCE_RETRY_MAX: Duration = Duration::from_secs(120);

/// When to look again for a missing reference (5 s, 5 s, 10 s, 20 s, ... up to 2 min).
pub fn reference_retry_after(missing_for: Duration) -> Duration {
    missing_for.clamp(REFERENCE_RETRY_MIN, REFERENCE_RETRY_MAX)
}

/// Reads the OS template volumes of the storage `source.osTemplate` names, on the spec's node
/// or the first online node that has that storage (a list read lately that has the template
/// is used again: [`TemplateLists`](crate::controller::cluster::TemplateLists)); `None` when
/// there is nothing to read or the read failed (then the check is left to Proxmox).
pub async fn gather(
    handle: &ClusterHandle,
    snap: &Snapshot,
    spec: &LxcContainerSpec,
    desired: &Desired,
) -> Option<Arc<[String]>> {
    let Source::OsTemplate(volid) = &desired.source else {
        return None;
    };
    let storage = volid.split_once(':')?.0;
    let node = candidate_nodes(snap, spec.node.as_deref())
        .into_iter()
        .filter(|n| n.online)
        .find(|n| snap.node_has_storage(&n.name, storage, "vztmpl"))?;
    if let Some(list) = handle.templates.holding(&node.name, storage, volid) {
        return Some(list);
    }
    let list = handle
        .client
        .storage_content(&node.name, storage, Some("vztmpl"), None)
        .await
        .ok()?;
    let list: Arc<[String]> = list.into_iter().map(|v| v.volid).collect();
    handle.templates.keep(&node.name, storage, list.clone());
    Some(list)
}

/// Runs the checks before a create: `Some(action)` when the spec is refused (`Ready=False`,
/// `Synced=False`, `Stalled=True`, reason `InvalidSpec`, looked at again after
/// [`retry_after`]).
pub(super) async fn run(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
) -> Result<Option<Action>, Error> {
    let ns = p.obj.namespace().unwrap_or_default();
    let (template, backup) = match &desired.source {
        Source::Template { name, .. } => {
            let api: Api<LxcTemplate> = Api::namespaced(p.ctx.kube.clone(), &ns);
            (
                api.get_opt(name).await.op("read LxcTemplate")?.map(|_| name.clone()),
                None,
            )
        }
        Source::BackupName(name) => {
            let api: Api<LxcBackup> = Api::namespaced(p.ctx.kube.clone(), &ns);
            (
                None,
                api.get_opt(name).await.op("read LxcBackup")?.map(|_| name.clone()),
            )
        }
        _ => (None, None),
    };
    let exists = |kind: &str, name: &str| match kind {
        "LxcTemplate" => template.as_deref() == Some(name),
        _ => backup.as_deref() == Some(name),
    };
    if let Err(e) = check_references(desired, &ns, exists) {
        let since = refused_for(&p.uid, &e.to_string());
        let retry = Action::requeue(jitter(reference_retry_after(since)));
        return p
            .not_ready(Reason::SourceNotFound, e.to_string(), retry)
            .await
            .map(Some);
    }
    let templates = gather(handle, snap, &p.obj.spec, desired).await;
    let known = Known {
        cluster: &handle.key.name,
        templates,
    };
    let Err(e) = check(&p.obj.spec, desired, snap, &known) else {
        accepted(&p.uid);
        return Ok(None);
    };
    let since = refused_for(&p.uid, &e.to_string());
    p.invalid(e).await?;
    Ok(Some(Action::requeue(jitter(retry_after(since)))))
}

/// Since when each object (by uid) has been refused with which message: the back-off's clock.
/// (The conditions cannot be: `Stalled` is cleared at the start of every pass, and `Ready`
/// may have been False for long before.) Entries of objects gone stale go after a day.
static REFUSED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, (String, Instant)>>> =
    std::sync::LazyLock::new(Default::default);

/// How long the object has been refused with `message` (zero the first time).
fn refused_for(uid: &str, message: &str) -> Duration {
    let mut m = crate::controller::kernel::recover(REFUSED.lock(), "the refused specs");
    m.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(24 * 3600));
    let e = m
        .entry(uid.to_string())
        .or_insert_with(|| (message.to_string(), Instant::now()));
    if e.0 != message {
        *e = (message.to_string(), Instant::now());
    }
    e.1.elapsed()
}

/// The object passed the checks: its back-off starts afresh next time.
fn accepted(uid: &str) {
    crate::controller::kernel::recover(REFUSED.lock(), "the refused specs").remove(uid);
}

/// Whether the container was never made in Proxmox: no task in flight, never seen there
/// (the create is recorded as a task before it starts, and a made container is Running or
/// Stopped at once).
fn never_created(p: &P<'_>) -> bool {
    p.status.pending_task.is_none()
        && p.status.node.is_none()
        && matches!(
            p.status.phase,
            None | Some(ContainerPhase::Pending | ContainerPhase::Failed)
        )
}

/// Deletion found no container: says so when it was never made (a spec refused before its
/// create), so the user sees why the deletion finished at once.
pub(super) async fn say_never_created(p: &mut P<'_>, vmid: u32) {
    if never_created(p) {
        let msg = format!("CT {vmid} was never created in Proxmox; nothing to delete there");
        p.event(Reason::NotFound, msg).await;
    }
}

/// Deletion while the object's `ProxmoxCluster` is not usable: when that `ProxmoxCluster` does
/// not exist at all, nothing in Proxmox can be reached or touched, so the finalizer must not
/// wait for it; an Event says what was left. `true` when the caller should finish the deletion.
pub(super) async fn release_without_cluster(p: &mut P<'_>, cluster: &str, vmid: u32) -> Result<bool, Error> {
    let api: Api<ProxmoxCluster> = Api::all(p.ctx.kube.clone());
    if api.get_opt(cluster).await.op("read ProxmoxCluster")?.is_some() {
        return Ok(false);
    }
    let msg = if never_created(p) {
        format!("ProxmoxCluster {cluster} does not exist and CT {vmid} was never created there; nothing to delete")
    } else {
        format!(
            "ProxmoxCluster {cluster} does not exist: CT {vmid}, if it is still there, was left untouched in Proxmox"
        )
    };
    p.event(Reason::LeftUntouched, msg).await;
    Ok(true)
}

#[cfg(test)]
#[path = "precheck_tests.rs"]
mod tests;
