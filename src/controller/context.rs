//! What every reconcile shares: the Kubernetes client, the Proxmox connections, settings,
//! events and metrics.

use super::cluster::ClusterRegistry;
use crate::metrics::Metrics;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use kube::runtime::reflector::ObjectRef;
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

/// Sends an `LxcContainer` to its controller for a pass.
pub type WakeSender = tokio::sync::mpsc::UnboundedSender<ObjectRef<crate::crd::LxcContainer>>;

/// Set once, when the process is asked to stop (SIGTERM/SIGINT): every controller shuts down
/// gracefully on it, and `run` knows that a controller that ended was asked to.
#[derive(Clone)]
pub struct Shutdown(tokio::sync::watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(false).0)
    }
}

impl Shutdown {
    /// Asks everything to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Whether [`Shutdown::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`Shutdown::trigger`] was called (for `Controller::graceful_shutdown_on`).
    pub fn triggered(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
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
    /// Objects whose last pass found no free task slot, first come first: (uid, node, object).
    pub waiting_for_slot: Mutex<std::collections::VecDeque<(String, String, ObjectRef<crate::crd::LxcContainer>)>>,
    /// Where to send the objects to reconcile when a task slot frees up: one sender per
    /// controller, by the namespace it watches (`None`: all), set by `run`.
    pub slot_wakeups: Mutex<Vec<(Option<String>, WakeSender)>>,
    /// When each container's full config was last read, by object uid.
    pub last_full_read: Mutex<HashMap<String, Instant>>,
    /// The container status this process wrote last, by object uid (newer than a lagging cache).
    pub last_status: Mutex<HashMap<String, crate::crd::LxcContainerStatus>>,
    /// Image downloads in flight (`cluster/node/volid`) and the uid of the object that started
    /// each, so that templates sharing an image download it once.
    pub downloads: Mutex<HashMap<String, String>>,
    /// When to stop.
    pub shutdown: Shutdown,
}

impl Context {
    /// Builds the context.
    pub fn new(kube: kube::Client, clusters: Arc<ClusterRegistry>, settings: Settings, metrics: Arc<Metrics>, shutdown: Shutdown) -> Self {
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
            slot_wakeups: Mutex::default(),
            last_full_read: Mutex::default(),
            last_status: Mutex::default(),
            downloads: Mutex::default(),
            shutdown,
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

    /// Records that object `uid` waits for a task slot on `node` (keeping its place in the
    /// queue), or with `None` that it no longer does. Feeds the `plo_queue_depth` gauge.
    pub fn slot_waiting(&self, uid: &str, waiting: Option<(&str, ObjectRef<crate::crd::LxcContainer>)>) {
        let mut q = self.waiting_for_slot.lock().unwrap();
        let pos = q.iter().position(|(u, _, _)| u == uid);
        match (pos, waiting) {
            (Some(i), Some((node, _))) if q[i].1 == node => return,
            (Some(i), w) => {
                q.remove(i);
                if let Some((node, r)) = w {
                    q.push_back((uid.to_string(), node.to_string(), r));
                }
            }
            (None, Some((node, r))) => q.push_back((uid.to_string(), node.to_string(), r)),
            (None, None) => return,
        }
        self.metrics.set_queue_depth("LxcContainer", q.len());
    }

    /// Asks for a pass of the first waiting object of each node: a slot may be free now.
    pub fn wake_slot_waiters(&self) {
        let firsts: Vec<ObjectRef<crate::crd::LxcContainer>> = {
            let q = self.waiting_for_slot.lock().unwrap();
            let mut seen = std::collections::HashSet::new();
            q.iter().filter(|(_, node, _)| seen.insert(node.clone())).map(|(_, _, r)| r.clone()).collect()
        };
        let senders = self.slot_wakeups.lock().unwrap();
        for r in firsts {
            if let Some((_, tx)) = senders.iter().find(|(scope, _)| scope.is_none() || *scope == r.namespace) {
                let _ = tx.send(r);
            }
        }
    }

    /// Releases the task slot of object `uid`, if it holds one.
    pub fn release_slot(&self, uid: &str) {
        let released = self.task_slots.lock().unwrap().remove(uid).is_some();
        if released {
            self.wake_slot_waiters();
        }
    }
}
