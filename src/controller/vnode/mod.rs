//! Virtual nodes: one Kubernetes Node per online Proxmox node of a `ProxmoxCluster` with
//! `spec.virtualNodes`, and the Pods bound to them run as LXC application containers.
//!
//! The shape is virtual-kubelet's, inside the operator (leader only, like every controller):
//! - [`node`]: the Node and its `kube-node-lease` Lease, renewed while Proxmox answers; Nodes
//!   of a cluster that goes (or turns virtual nodes off) are deleted.
//! - [`pod`]: a Pod bound to one of our Nodes becomes a child `LxcContainer` (owned by the Pod),
//!   so placement, tasks, retries, IPs and cleanup are the container controller's; the Pod's
//!   status is read back from it ([`status`]), the translation is [`translate`].
//! - [`admit`]: which namespaces a cluster's virtual nodes serve (an explicit grant).
//! - [`bind`]: Pods with our scheduler name are bound to a Node by the operator.
//! - [`kubelet`]: the kubelet endpoint the apiserver calls; [`logs`] answers `kubectl logs`,
//!   [`attach`] `kubectl attach`; [`console`] keeps what the Pods' applications print, as
//!   [`lines`].

pub mod admit;
pub mod attach;
pub mod bind;
pub mod console;
pub mod exitcode;
pub mod kubelet;
pub mod limits;
pub mod lines;
pub mod logs;
pub mod node;
pub mod pod;
pub mod pod_context;
pub mod status;
pub mod translate;

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

/// Label on every Node the operator runs.
pub const VIRTUAL_NODE_LABEL: &str = "pve.lxc.dev/virtual-node";
/// Label naming the Node's `ProxmoxCluster`.
pub const CLUSTER_LABEL: &str = "pve.lxc.dev/cluster";
/// Label naming the Node's Proxmox node.
pub const PVE_NODE_LABEL: &str = "pve.lxc.dev/node";
/// The taint of our Nodes: only Pods that tolerate it are placed there by a scheduler.
pub const TAINT_KEY: &str = "pve.lxc.dev/virtual-node";
/// Label on a Pod's child `LxcContainer`: the Pod's uid.
pub const POD_UID_LABEL: &str = "pve.lxc.dev/pod-uid";
/// Proxmox tag on a Pod's container (its resources are not subtracted from allocatable).
pub const POD_TAG: &str = "kube-pod";
/// The `kube-node-lease` namespace, where Node heartbeats live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How the virtual nodes run (the operator's `--virtual-nodes` flags).
#[derive(Clone, Debug)]
pub struct VnodeSettings {
    /// `leaseDurationSeconds` of the Node Leases.
    pub lease_duration: Duration,
    /// How often Leases are renewed and Nodes compared with Proxmox.
    pub renew_interval: Duration,
    /// The Node status is written at least this often even when nothing changed.
    pub status_interval: Duration,
    /// The address the apiserver dials for `kubectl logs` (the operator pod's IP).
    pub address: String,
    /// The port of the kubelet endpoint.
    pub kubelet_port: u16,
    /// Pods with this `spec.schedulerName` are bound by the operator.
    pub scheduler_name: String,
    /// Bytes of application output kept per Pod container and run (`--pod-log-bytes`).
    pub pod_log_bytes: usize,
}

impl Default for VnodeSettings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(40),
            renew_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
            address: "127.0.0.1".into(),
            kubelet_port: 10250,
            scheduler_name: "proxmox-lxc".into(),
            pod_log_bytes: 1 << 20,
        }
    }
}

/// One virtual node: which cluster and Proxmox node a Kubernetes Node name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vnode {
    /// The `ProxmoxCluster`.
    pub cluster: String,
    /// The Proxmox node.
    pub pve_node: String,
    /// Whether it is Ready now.
    pub ready: bool,
    /// The cluster's virtual-node settings.
    pub spec: crate::crd::proxmox_cluster::VirtualNodes,
}

/// The virtual nodes the node loop published last, by Node name (read by the Pod controller
/// and the binder).
#[derive(Default)]
pub struct VnodeIndex {
    nodes: RwLock<HashMap<String, Vnode>>,
}

impl VnodeIndex {
    /// The virtual node called `name`.
    pub fn get(&self, name: &str) -> Option<Vnode> {
        crate::controller::kernel::recover(self.nodes.read(), "the virtual node index")
            .get(name)
            .cloned()
    }

    /// Every virtual node, by name.
    pub fn all(&self) -> Vec<(String, Vnode)> {
        let mut v: Vec<(String, Vnode)> =
            crate::controller::kernel::recover(self.nodes.read(), "the virtual node index")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Replaces the index; returns the names that were not in it before.
    pub fn replace(&self, now: HashMap<String, Vnode>) -> Vec<String> {
        let mut guard = crate::controller::kernel::recover(self.nodes.write(), "the virtual node index");
        let added = now.keys().filter(|k| !guard.contains_key(*k)).cloned().collect();
        *guard = now;
        added
    }
}

/// The Kubernetes Node name of Proxmox node `pve_node` of cluster `cluster`: the prefix (default
/// `<cluster>-`) and the node name, lowercased.
pub fn node_name(cluster: &str, prefix: Option<&str>, pve_node: &str) -> String {
    let prefix = prefix.map(str::to_string).unwrap_or_else(|| format!("{cluster}-"));
    format!("{prefix}{pve_node}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_default_to_the_cluster_prefix_and_are_lowercase() {
        assert_eq!(node_name("prod", None, "PVE1"), "prod-pve1");
        assert_eq!(node_name("prod", Some("pve-"), "pve2"), "pve-pve2");
    }

    #[test]
    fn the_index_reports_only_new_nodes() {
        let idx = VnodeIndex::default();
        let v = Vnode {
            cluster: "c".into(),
            pve_node: "pve1".into(),
            ready: true,
            spec: Default::default(),
        };
        let first: HashMap<_, _> = [("c-pve1".to_string(), v.clone())].into();
        assert_eq!(idx.replace(first.clone()), vec!["c-pve1".to_string()]);
        assert!(idx.replace(first).is_empty());
        assert_eq!(idx.get("c-pve1"), Some(v));
    }
}
