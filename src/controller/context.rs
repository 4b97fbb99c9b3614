//! What every reconcile shares: the Kubernetes client, the Proxmox connections, settings,
//! events and metrics.

use super::cluster::ClusterRegistry;
use crate::metrics::Metrics;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "proxmox-lxc-operator";

/// Timings of the operator; the defaults suit production, tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How often a running Proxmox task is checked.
    pub task_poll: Duration,
    /// How long to wait before retrying a locked container.
    pub lock_retry: Duration,
    /// How often a container's full config is read even when the inventory shows no change
    /// (drift in values the inventory does not show, such as `net0`). Zero disables it.
    pub drift_check_interval: Duration,
    /// Default inventory interval when a `ProxmoxCluster` does not set `resyncInterval`.
    pub default_resync: Duration,
    /// How often a `ProxmoxCluster`'s Secret is read again (credential rotation).
    pub credentials_recheck: Duration,
    /// How long the status of a `ProxmoxCluster` may keep old usage figures before it is rewritten.
    pub cluster_status_refresh: Duration,
    /// At most this many `LxcContainer` reconciles run at once (`0`: no limit). Bounds memory
    /// when thousands of objects arrive together (start-up, a bulk apply).
    pub max_concurrent_reconciles: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            task_poll: Duration::from_secs(1),
            lock_retry: Duration::from_secs(3),
            drift_check_interval: Duration::from_secs(3600),
            default_resync: Duration::from_secs(60),
            credentials_recheck: Duration::from_secs(60),
            cluster_status_refresh: Duration::from_secs(600),
            max_concurrent_reconciles: 64,
        }
    }
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub kube: kube::Client,
    /// Proxmox connections and their inventories.
    pub clusters: Arc<ClusterRegistry>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Timings.
    pub settings: Settings,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-node task slots held for tasks in flight, by object uid.
    pub task_slots: Mutex<HashMap<String, OwnedSemaphorePermit>>,
    /// Objects whose last pass found no free task slot, by uid.
    pub waiting_for_slot: Mutex<std::collections::HashSet<String>>,
    /// When each container's full config was last read, by object uid.
    pub last_full_read: Mutex<HashMap<String, Instant>>,
    /// The container status this process wrote last, by object uid (newer than a lagging cache).
    pub last_status: Mutex<HashMap<String, crate::crd::LxcContainerStatus>>,
    /// Image downloads in flight (`cluster/node/volid`) and the uid of the object that started
    /// each, so that templates sharing an image download it once.
    pub downloads: Mutex<HashMap<String, String>>,
}

impl Context {
    /// Builds the context.
    pub fn new(kube: kube::Client, clusters: Arc<ClusterRegistry>, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(kube.clone(), reporter),
            kube,
            clusters,
            settings,
            metrics,
            task_slots: Mutex::default(),
            waiting_for_slot: Mutex::default(),
            last_full_read: Mutex::default(),
            last_status: Mutex::default(),
            downloads: Mutex::default(),
        }
    }

    /// Publishes an event about `obj`; failures are logged, never fatal.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        // the recorder folds events with the same (type, reason, action) into one series that
        // keeps the first note: an action that depends on the note keeps distinct notes apart,
        // while repeats of the same note still fold
        let hash = note.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: format!("{reason}-{:08x}", hash as u32),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.name_any(), error = %e, "could not publish event");
        }
    }

    /// Keeps `permit` until the task of object `uid` has finished.
    pub fn hold_slot(&self, uid: &str, permit: OwnedSemaphorePermit) {
        self.task_slots.lock().unwrap().insert(uid.to_string(), permit);
    }

    /// Records whether object `uid` is waiting for a task slot (the `plo_queue_depth` gauge).
    pub fn slot_waiting(&self, uid: &str, waiting: bool) {
        let mut set = self.waiting_for_slot.lock().unwrap();
        let changed = if waiting { set.insert(uid.to_string()) } else { set.remove(uid) };
        if changed {
            self.metrics.set_queue_depth("LxcContainer", set.len());
        }
    }

    /// Releases the task slot of object `uid`, if it holds one.
    pub fn release_slot(&self, uid: &str) {
        self.task_slots.lock().unwrap().remove(uid);
    }
}
