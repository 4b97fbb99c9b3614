//! The Node loop: one Kubernetes Node per online Proxmox node of each cluster with
//! `spec.virtualNodes`, its status from the inventory, and its `kube-node-lease` Lease renewed
//! while Proxmox answers (as a kubelet renews it while it runs).

use super::{node_name, Vnode, VnodeIndex, VnodeSettings, CLUSTER_LABEL, LEASE_NAMESPACE, POD_TAG, PVE_NODE_LABEL};
use super::{TAINT_KEY, VIRTUAL_NODE_LABEL};
use crate::controller::cluster::Snapshot;
use crate::controller::Context;
use crate::crd::proxmox_cluster::{NodeStatus as PveNode, ProxmoxCluster, VirtualNodes};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

/// What the Node of one Proxmox node should be.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredNode {
    /// Name, labels, owner and taint (written at create).
    pub node: Node,
    /// Status without heartbeat and transition times.
    pub status: NodeStatus,
    /// Whether it is Ready.
    pub ready: bool,
}

/// The inputs of [`desired_node`].
pub struct NodeInputs<'a> {
    /// The cluster.
    pub cluster: &'a ProxmoxCluster,
    /// Its virtual-node settings.
    pub spec: &'a VirtualNodes,
    /// The Proxmox node.
    pub node: &'a PveNode,
    /// The cluster's inventory.
    pub snapshot: &'a Snapshot,
    /// Whether the last inventory read worked.
    pub connected: bool,
    /// The operator's settings.
    pub settings: &'a VnodeSettings,
}

/// CPU (millicores) and memory (bytes) that guests other than Pods hold on `node`: a Pod
/// scheduled onto the Node gets what they leave.
pub fn held_by_other_guests(snapshot: &Snapshot, node: &str) -> (u64, u64) {
    snapshot
        .guests
        .values()
        .filter(|g| g.node == node && !g.template && !g.has_tag(POD_TAG))
        .fold((0, 0), |(cpu, mem), g| {
            (
                cpu + (g.maxcpu.unwrap_or(0.0) * 1000.0) as u64,
                mem + g.maxmem.unwrap_or(0),
            )
        })
}

/// The Node a Proxmox node is shown as (pure).
pub fn desired_node(i: &NodeInputs<'_>) -> DesiredNode {
    let cluster = i.cluster.name_any();
    let name = node_name(&cluster, i.spec.name_prefix.as_deref(), &i.node.name);
    let labels: BTreeMap<String, String> = [
        ("type", "virtual-kubelet".to_string()),
        ("kubernetes.io/role", "agent".to_string()),
        ("kubernetes.io/hostname", name.clone()),
        ("kubernetes.io/os", "linux".to_string()),
        ("kubernetes.io/arch", "amd64".to_string()),
        (
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "true".to_string(),
        ),
        (VIRTUAL_NODE_LABEL, "true".to_string()),
        (CLUSTER_LABEL, cluster.clone()),
        (PVE_NODE_LABEL, i.node.name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let owner = OwnerReference {
        api_version: "pve.lxc.dev/v1alpha1".into(),
        kind: "ProxmoxCluster".into(),
        name: cluster.clone(),
        uid: i.cluster.uid().unwrap_or_default(),
        ..Default::default()
    };
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!(
                "proxmox://{}/{}",
                i.cluster.uid().unwrap_or_default(),
                i.node.name
            )),
            taints: Some(vec![Taint {
                key: TAINT_KEY.into(),
                value: Some("true".into()),
                effect: "NoSchedule".into(),
                time_added: None,
            }]),
            ..Default::default()
        }),
        status: None,
    };
    let cpus = u64::from(i.node.cpus.unwrap_or(1));
    let memory = i.node.memory_total.unwrap_or(0);
    let storage = i.spec.storage.as_deref().unwrap_or("local-lvm");
    let disk = i
        .snapshot
        .storages
        .iter()
        .find(|s| s.node == i.node.name && s.name == storage)
        .and_then(|s| s.total_bytes);
    let pods = i.spec.max_pods.unwrap_or(110);
    let (held_cpu, held_mem) = held_by_other_guests(i.snapshot, &i.node.name);
    let q = |s: String| Quantity(s);
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), q(cpus.to_string())),
        ("memory".to_string(), q(memory.to_string())),
        ("pods".to_string(), q(pods.to_string())),
    ]);
    if let Some(d) = disk {
        capacity.insert("ephemeral-storage".into(), q(d.to_string()));
    }
    let mut allocatable = capacity.clone();
    allocatable.insert("cpu".into(), q(format!("{}m", (cpus * 1000).saturating_sub(held_cpu))));
    allocatable.insert("memory".into(), q(memory.saturating_sub(held_mem).to_string()));
    let (ready, reason, message) = match (i.connected, i.node.online) {
        (false, _) => (
            "False",
            "ProxmoxUnreachable",
            format!("the Proxmox API of cluster {cluster} does not answer"),
        ),
        (true, false) => (
            "False",
            "ProxmoxNodeOffline",
            format!("Proxmox node {} is offline", i.node.name),
        ),
        (true, true) => (
            "True",
            "ProxmoxNodeOnline",
            format!("Proxmox node {} is online", i.node.name),
        ),
    };
    let cond = |type_: &str, status: &str, reason: &str, message: String| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_heartbeat_time: None,
        last_transition_time: None,
    };
    let pressure = |type_: &str, reason: &str| cond(type_, "False", reason, "the operator does not measure it".into());
    let status = NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(vec![
            cond("Ready", ready, reason, message),
            pressure("MemoryPressure", "NoMemoryPressure"),
            pressure("DiskPressure", "NoDiskPressure"),
            pressure("PIDPressure", "NoPIDPressure"),
            cond(
                "NetworkUnavailable",
                "False",
                "ProxmoxBridge",
                "Pods use the Proxmox bridge".into(),
            ),
        ]),
        // only the address: the apiserver prefers Hostname, which would not resolve
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".into(),
            address: i.settings.address.clone(),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(i.settings.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            operating_system: "linux".into(),
            kubelet_version: format!("v1.33.0-pve-lxc-operator-{}", env!("CARGO_PKG_VERSION")),
            container_runtime_version: format!(
                "proxmox-lxc://{}",
                i.cluster
                    .status
                    .as_ref()
                    .and_then(|s| s.version.clone())
                    .unwrap_or_else(|| "unknown".into())
            ),
            os_image: "Proxmox VE".into(),
            machine_id: i.node.name.clone(),
            system_uuid: i.node.name.clone(),
            boot_id: String::new(),
            kernel_version: String::new(),
            kube_proxy_version: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    };
    DesiredNode {
        node,
        status,
        ready: ready == "True",
    }
}

/// `desired`'s conditions with times: the transition time is kept from `existing` while a
/// condition's status stays, the heartbeat is `now`.
pub fn with_times(mut desired: NodeStatus, existing: Option<&NodeStatus>, now: &Time) -> NodeStatus {
    let old = existing.and_then(|s| s.conditions.as_ref());
    for c in desired.conditions.iter_mut().flatten() {
        let prev = old.and_then(|o| o.iter().find(|p| p.type_ == c.type_));
        c.last_transition_time = match prev {
            Some(p) if p.status == c.status => p.last_transition_time.clone().or_else(|| Some(now.clone())),
            _ => Some(now.clone()),
        };
        c.last_heartbeat_time = Some(now.clone());
    }
    desired
}

/// What the loop remembers between passes.
#[derive(Default)]
struct Memory {
    /// Per Node: the status last written (without times) and when.
    written: HashMap<String, (NodeStatus, Instant)>,
}

/// Runs the Node loop until the process stops.
pub async fn run(
    ctx: Arc<Context>,
    clusters: Store<ProxmoxCluster>,
    index: Arc<VnodeIndex>,
    added: Vec<tokio::sync::mpsc::UnboundedSender<String>>,
) {
    let Some(vs) = ctx.settings.virtual_nodes.clone() else {
        return;
    };
    let mut memory = Memory::default();
    let mut tick = tokio::time::interval(vs.renew_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match pass(&ctx, &vs, &clusters, &mut memory).await {
            Ok(now) => {
                for name in index.replace(now) {
                    for tx in &added {
                        let _ = tx.send(name.clone());
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "virtual nodes: pass failed"),
        }
    }
}

/// One pass: every Node created, updated, renewed or deleted as the clusters say.
async fn pass(
    ctx: &Context,
    vs: &VnodeSettings,
    clusters: &Store<ProxmoxCluster>,
    memory: &mut Memory,
) -> Result<HashMap<String, Vnode>, kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    let mine: HashMap<String, Arc<ProxmoxCluster>> =
        clusters.state().into_iter().map(|pc| (pc.name_any(), pc)).collect();
    let mut desired: HashMap<String, (DesiredNode, Vnode, bool)> = HashMap::new();
    // clusters with no inventory yet: their Nodes are kept as they are
    let mut held: HashSet<String> = HashSet::new();
    for (name, pc) in &mine {
        let Some(spec) = pc.spec.virtual_nodes.as_ref() else {
            continue;
        };
        if pc.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let key = crate::controller::cluster::ClusterKey::named(name.clone());
        let Some((h, snap)) = ctx.clusters.get(&key).and_then(|h| h.snapshot().map(|s| (h, s))) else {
            held.insert(name.clone());
            continue;
        };
        for n in &snap.nodes {
            let d = desired_node(&NodeInputs {
                cluster: pc,
                spec,
                node: n,
                snapshot: &snap,
                connected: h.connected(),
                settings: vs,
            });
            let vnode = Vnode {
                cluster: name.clone(),
                pve_node: n.name.clone(),
                ready: d.ready,
                spec: spec.clone(),
            };
            desired.insert(d.node.name_any(), (d, vnode, h.connected()));
        }
    }
    let existing = nodes
        .list(&ListParams::default().labels(&format!("{VIRTUAL_NODE_LABEL}=true")))
        .await?;
    let mut index = HashMap::new();
    let mut present = HashSet::new();
    for e in &existing.items {
        let name = e.name_any();
        let cluster = e.labels().get(CLUSTER_LABEL).cloned().unwrap_or_default();
        // another operator instance's cluster (its --cluster-selector): not ours to touch
        let Some(pc) = mine.get(&cluster) else { continue };
        present.insert(name.clone());
        if held.contains(&cluster) {
            if let (Some(spec), Some(pve)) = (pc.spec.virtual_nodes.clone(), e.labels().get(PVE_NODE_LABEL)) {
                index.insert(
                    name,
                    Vnode {
                        cluster,
                        pve_node: pve.clone(),
                        ready: false,
                        spec,
                    },
                );
            }
            continue;
        }
        if !desired.contains_key(&name) {
            tracing::info!(node = %name, cluster = %cluster, "virtual nodes: deleting a Node its cluster no longer has");
            // one failing call does not stop the other Nodes' work (their Leases above all)
            match delete_node(ctx, &name).await {
                Ok(()) => {
                    memory.written.remove(&name);
                }
                Err(e) => tracing::warn!(node = %name, error = %e, "virtual nodes: deleting a Node failed"),
            }
        }
    }
    // a Node of that name that is not ours (a real kubelet's): never taken over or written
    let foreign: HashSet<String> = existing_names(&nodes, &desired, &present).await;
    let now = Time(jiff::Timestamp::now());
    for (name, (d, vnode, connected)) in desired {
        if foreign.contains(&name) {
            tracing::warn!(node = %name, cluster = %vnode.cluster, "virtual nodes: a Node of this name exists and is not a virtual node of ours; set spec.virtualNodes.namePrefix on the ProxmoxCluster to another prefix");
            continue;
        }
        let current = existing.items.iter().find(|n| n.name_any() == name).cloned();
        let created = !present.contains(&name);
        match sync_node(ctx, vs, memory, &d, current, created, connected, &now).await {
            Ok(()) => {
                index.insert(name, vnode);
            }
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "virtual nodes: updating a Node or its Lease failed");
                if !created {
                    index.insert(name, vnode);
                }
            }
        }
    }
    Ok(index)
}

/// The names among `desired` that exist as Nodes without our label (not ours), read one by
/// one only for the Nodes we do not have yet (rare: at registration).
async fn existing_names(
    nodes: &Api<Node>,
    desired: &HashMap<String, (DesiredNode, Vnode, bool)>,
    present: &HashSet<String>,
) -> HashSet<String> {
    let mut out = HashSet::new();
    for name in desired.keys().filter(|n| !present.contains(*n)) {
        if let Ok(Some(_)) = nodes.get_opt(name).await {
            out.insert(name.clone());
        }
    }
    out
}

/// One Node: created when new, its status written when it changed (or is due), its Lease
/// renewed while Proxmox answers.
#[allow(clippy::too_many_arguments)]
async fn sync_node(
    ctx: &Context,
    vs: &VnodeSettings,
    memory: &mut Memory,
    d: &DesiredNode,
    mut current: Option<Node>,
    create: bool,
    connected: bool,
    now: &Time,
) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    let name = d.node.name_any();
    if create {
        tracing::info!(node = %name, "virtual nodes: registering a Node");
        current = Some(nodes.create(&PostParams::default(), &d.node).await?);
        memory.written.remove(&name);
    }
    // the heartbeat first, and on its own: a failed status write does not stop it
    let lease = match current.as_ref().and_then(|n| n.uid()) {
        Some(uid) if connected => renew_lease(ctx, vs, &name, &uid).await,
        _ => Ok(()),
    };
    let stale = memory
        .written
        .get(&name)
        .is_none_or(|(s, at)| *s != d.status || at.elapsed() >= vs.status_interval);
    if stale {
        let status = with_times(d.status.clone(), current.as_ref().and_then(|n| n.status.as_ref()), now);
        nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await?;
        memory.written.insert(name.clone(), (d.status.clone(), Instant::now()));
    }
    lease
}

/// Renews (or creates) the Node's Lease.
async fn renew_lease(ctx: &Context, vs: &VnodeSettings, node: &str, uid: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(ctx.kube.clone(), LEASE_NAMESPACE);
    let spec = LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(vs.lease_duration.as_secs() as i32),
        renew_time: Some(MicroTime(jiff::Timestamp::now())),
        ..Default::default()
    };
    let patch = Patch::Merge(serde_json::json!({ "spec": spec }));
    match leases.patch(node, &PatchParams::default(), &patch).await {
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: node.to_string(),
                        uid: uid.to_string(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

/// Deletes a Node and its Lease (404 counts as done: there is no garbage collector on every
/// apiserver, so the Lease is not left to one).
async fn delete_node(ctx: &Context, name: &str) -> Result<(), kube::Error> {
    let gone = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        r => r,
    };
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    gone(nodes.delete(name, &DeleteParams::default()).await.map(|_| ()))?;
    let leases: Api<Lease> = Api::namespaced(ctx.kube.clone(), LEASE_NAMESPACE);
    gone(leases.delete(name, &DeleteParams::default()).await.map(|_| ()))
}

/// Deletes every Node (and Lease) of `cluster`: its `ProxmoxCluster` is going.
pub async fn remove_cluster_nodes(ctx: &Context, cluster: &str) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(ctx.kube.clone());
    let list = nodes
        .list(&ListParams::default().labels(&format!("{VIRTUAL_NODE_LABEL}=true,{CLUSTER_LABEL}={cluster}")))
        .await?;
    for n in list.items {
        delete_node(ctx, &n.name_any()).await?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
