//! `ProxmoxCluster`: the registry of Proxmox connections, their controller and observers.

pub mod inventory;
pub mod observer;
pub mod preflight;
pub mod reconcile;
pub mod samples;

use crate::pve;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{watch, Notify};

pub use inventory::{Guest, Snapshot};

/// A `ProxmoxCluster` (cluster-scoped) by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterKey {
    /// Name.
    pub name: String,
}

impl ClusterKey {
    /// The cluster called `name`.
    pub fn named(name: impl Into<String>) -> ClusterKey {
        ClusterKey { name: name.into() }
    }
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether the cluster can be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// No answer yet.
    Connecting,
    /// The last inventory read worked.
    Connected,
    /// The last inventory read failed: condition reason and message.
    Failed {
        /// CamelCase reason, e.g. `AuthenticationFailed`, `Unreachable`.
        reason: String,
        /// What went wrong.
        message: String,
    },
}

/// One live connection to a Proxmox cluster and its latest inventory.
pub struct ClusterHandle {
    /// The cluster.
    pub key: ClusterKey,
    /// The Proxmox client.
    pub client: pve::Client,
    /// The latest inventory (`None` until the first read).
    pub snapshot: watch::Receiver<Option<Arc<Snapshot>>>,
    /// The connection state.
    pub connection: watch::Receiver<Connection>,
    /// Wakes the observer for an early inventory read.
    pub refresh: Arc<Notify>,
    /// Hash of the settings the client was built from.
    pub config_hash: u64,
    /// Who may use the cluster.
    pub tenancy: crate::crd::Tenancy,
    /// It carries the default-cluster annotation.
    pub is_default: bool,
    /// How often the inventory is read without being asked (`spec.resyncInterval`).
    pub resync: std::time::Duration,
    /// Nodes in maintenance, as the `ProxmoxCluster` says now (kept current by its reconcile
    /// and the observer).
    pub maintenance: Arc<RwLock<Vec<crate::crd::proxmox_cluster::NodeMaintenance>>>,
    /// Memory (bytes) promised to containers placed since the last inventory, per node, so a
    /// burst of creates spreads over the nodes.
    pub placements: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// vmids handed out by this process, so concurrent creates never pick the same one
    /// (Proxmox's `nextid` is not a reservation).
    pub allocated: std::sync::Mutex<std::collections::HashSet<u32>>,
    /// The node placement chose for each container (by uid) of a spread group, taken in the
    /// same step as the choice, so a burst of replicas placed at once spreads too.
    pub spread: std::sync::Mutex<HashMap<String, String>>,
    /// OS template volumes read lately, by node and storage (a burst of creates from one
    /// template reads the storage once).
    pub templates: TemplateLists,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// OS template volumes of a storage as read lately, by node and storage: a create checks its
/// template against a list read within [`TemplateLists::FRESH`] when that list has it (a
/// template deleted meanwhile is then refused by Proxmox's own create, with its own message);
/// a list without it is read again (the template may have just been downloaded).
#[derive(Default)]
pub struct TemplateLists(std::sync::Mutex<HashMap<(String, String), ListRead>>);

/// A list read and when.
type ListRead = (std::time::Instant, Arc<[String]>);

impl TemplateLists {
    /// How long a list read is used again.
    pub const FRESH: std::time::Duration = std::time::Duration::from_secs(60);

    /// The list of `storage` on `node` read within [`Self::FRESH`], when it holds `volid`.
    pub fn holding(&self, node: &str, storage: &str, volid: &str) -> Option<Arc<[String]>> {
        let m = crate::controller::kernel::recover(self.0.lock(), "the template lists");
        let (at, list) = m.get(&(node.to_string(), storage.to_string()))?;
        (at.elapsed() < Self::FRESH && list.iter().any(|v| v == volid)).then(|| list.clone())
    }

    /// Keeps `list`, just read from `storage` on `node` (dropping lists gone stale).
    pub fn keep(&self, node: &str, storage: &str, list: Arc<[String]>) {
        let mut m = crate::controller::kernel::recover(self.0.lock(), "the template lists");
        m.retain(|_, (at, _)| at.elapsed() < Self::FRESH);
        m.insert(
            (node.to_string(), storage.to_string()),
            (std::time::Instant::now(), list),
        );
    }
}

impl ClusterHandle {
    /// Whether `node` is in maintenance: `Some(move_pinned)` when it is.
    pub fn in_maintenance(&self, node: &str) -> Option<bool> {
        crate::controller::kernel::recover(self.maintenance.read(), "the maintenance list")
            .iter()
            .find(|m| m.node == node)
            .map(|m| m.move_pinned)
    }

    /// The nodes not in maintenance, among `nodes`.
    pub fn usable_nodes<'a>(&self, nodes: impl Iterator<Item = &'a str>) -> Vec<String> {
        nodes
            .filter(|n| self.in_maintenance(n).is_none())
            .map(str::to_string)
            .collect()
    }

    /// Memory (bytes) promised per node to containers placed since the last inventory.
    pub fn reserved(&self) -> HashMap<String, u64> {
        crate::controller::kernel::recover(self.placements.lock(), "the placements").clone()
    }

    /// Promises `memory` bytes on `node` to a container being placed there.
    pub fn reserve(&self, node: &str, memory: u64) {
        *self
            .placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(node.to_string())
            .or_default() += memory;
    }

    /// Records that container `uid` (of a spread group) was placed on `node`.
    pub fn place_spread(&self, uid: &str, node: &str) {
        crate::controller::kernel::recover(self.spread.lock(), "the spread placements").insert(uid.into(), node.into());
    }

    /// The spread placements recorded by [`place_spread`](Self::place_spread).
    pub fn spread_placed(&self) -> HashMap<String, String> {
        crate::controller::kernel::recover(self.spread.lock(), "the spread placements").clone()
    }

    /// Allocates a vmid for a new container: Proxmox's next free id, skipping ids that the
    /// inventory shows or that this process handed out already.
    pub async fn allocate_vmid(&self) -> Result<u32, pve::Error> {
        let mut candidate = self.client.next_id(None).await?;
        let snap = self.snapshot();
        let mut allocated = crate::controller::kernel::recover(self.allocated.lock(), "the allocated vmids");
        while allocated.contains(&candidate) || snap.as_ref().is_some_and(|s| s.guests.contains_key(&candidate)) {
            candidate += 1;
        }
        allocated.insert(candidate);
        Ok(candidate)
    }

    /// Allocates a vmid within `min..=max` (a tenant's range): the lowest that the inventory
    /// does not show, this process did not hand out, and Proxmox confirms free. `None` when
    /// the range is full.
    pub async fn allocate_vmid_in(&self, min: u32, max: u32) -> Result<Option<u32>, pve::Error> {
        let snap = self.snapshot();
        for candidate in min..=max {
            let taken = crate::controller::kernel::recover(self.allocated.lock(), "the allocated vmids")
                .contains(&candidate)
                || snap.as_ref().is_some_and(|s| s.guests.contains_key(&candidate));
            if taken {
                continue;
            }
            match self.client.next_id(Some(candidate)).await {
                Ok(_) => {
                    let mut allocated =
                        crate::controller::kernel::recover(self.allocated.lock(), "the allocated vmids");
                    // another pass may have taken it while Proxmox was asked
                    if allocated.insert(candidate) {
                        return Ok(Some(candidate));
                    }
                }
                Err(pve::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The latest inventory.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.snapshot.borrow().clone()
    }

    /// Whether the last inventory read worked.
    pub fn connected(&self) -> bool {
        *self.connection.borrow() == Connection::Connected
    }

    /// Waits (at most `timeout`) for an inventory taken after `after`.
    pub async fn fresh_snapshot(
        &self,
        after: std::time::Instant,
        timeout: std::time::Duration,
    ) -> Option<Arc<Snapshot>> {
        let mut rx = self.snapshot.clone();
        self.refresh.notify_one();
        let wait = async {
            loop {
                if let Some(s) = rx.borrow_and_update().clone() {
                    if s.taken_at >= after {
                        return Some(s);
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

impl Drop for ClusterHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every live Proxmox connection, by `ProxmoxCluster`.
#[derive(Default)]
pub struct ClusterRegistry {
    handles: RwLock<HashMap<ClusterKey, Arc<ClusterHandle>>>,
}

impl std::fmt::Debug for ClusterRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRegistry").field("keys", &self.keys()).finish()
    }
}

impl ClusterRegistry {
    /// The connection for `key`, if one is up.
    pub fn get(&self, key: &ClusterKey) -> Option<Arc<ClusterHandle>> {
        crate::controller::kernel::recover(self.handles.read(), "the cluster registry")
            .get(key)
            .cloned()
    }

    /// Installs (or replaces) the connection for its key.
    pub fn insert(&self, handle: Arc<ClusterHandle>) {
        self.handles
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle.key.clone(), handle);
    }

    /// Drops the connection for `key`, stopping its observer.
    pub fn remove(&self, key: &ClusterKey) {
        crate::controller::kernel::recover(self.handles.write(), "the cluster registry").remove(key);
    }

    /// The connection for `key` with its latest inventory when the cluster can be used now;
    /// otherwise why not, for a `ClusterNotReady` condition.
    pub fn usable(&self, key: &ClusterKey) -> Result<(Arc<ClusterHandle>, Arc<Snapshot>), String> {
        let Some(h) = self.get(key) else {
            return Err(format!(
                "ProxmoxCluster {} is not connected (missing, or its credentials are not usable)",
                key.name
            ));
        };
        let why = match &*h.connection.borrow() {
            Connection::Connected => None,
            Connection::Failed { reason, message } => Some(format!(
                "ProxmoxCluster {} is not ready ({reason}): {message}",
                key.name
            )),
            Connection::Connecting => Some(format!("ProxmoxCluster {} is connecting", key.name)),
        };
        match (why, h.snapshot()) {
            (None, Some(snap)) => Ok((h, snap)),
            (Some(why), _) => Err(why),
            (None, None) => Err(format!("ProxmoxCluster {} is connecting", key.name)),
        }
    }

    /// The cluster an object without `spec.clusterRef` uses: the connected one annotated
    /// [`DEFAULT_CLUSTER_ANNOTATION`](crate::crd::proxmox_cluster::DEFAULT_CLUSTER_ANNOTATION)
    /// (the first by name if several are), else the one named `default`.
    pub fn default_key(&self) -> ClusterKey {
        let handles = crate::controller::kernel::recover(self.handles.read(), "the cluster registry");
        handles
            .values()
            .filter(|h| h.is_default)
            .map(|h| h.key.clone())
            .min()
            .unwrap_or_else(|| ClusterKey::named("default"))
    }

    /// The cluster `cluster_ref` names, or the default one when it is unset.
    pub fn referenced(&self, cluster_ref: Option<&crate::crd::ClusterRef>) -> ClusterKey {
        match cluster_ref {
            Some(r) => ClusterKey::named(r.name.clone()),
            None => self.default_key(),
        }
    }

    /// The cluster a container uses: the one it names; without `clusterRef`, the one it was
    /// made in (in status), else the default one (so moving the default annotation moves nothing).
    pub fn of_container(&self, c: &crate::crd::LxcContainer) -> ClusterKey {
        match (&c.spec.cluster_ref, c.status.as_ref().and_then(|s| s.cluster.clone())) {
            (None, Some(name)) => ClusterKey::named(name),
            (r, _) => self.referenced(r.as_ref()),
        }
    }

    /// Every key with a connection.
    pub fn keys(&self) -> Vec<ClusterKey> {
        self.handles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod template_list_tests {
    use super::*;

    #[test]
    fn a_template_list_is_used_again_only_when_it_has_the_template() {
        let lists = TemplateLists::default();
        assert!(lists.holding("pve1", "local", "local:vztmpl/debian.tar.zst").is_none());
        lists.keep("pve1", "local", vec!["local:vztmpl/debian.tar.zst".to_string()].into());
        assert!(lists.holding("pve1", "local", "local:vztmpl/debian.tar.zst").is_some());
        // a template not in it (just downloaded?) is read again; so is another node's storage
        assert!(lists.holding("pve1", "local", "local:vztmpl/alpine.tar.xz").is_none());
        assert!(lists.holding("pve2", "local", "local:vztmpl/debian.tar.zst").is_none());
    }
}
