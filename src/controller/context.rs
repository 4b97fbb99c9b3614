//! What every reconcile shares: the Kubernetes client, the Proxmox connections, settings,
//! events, metrics, and the per-object services of the kernel.

use super::cluster::ClusterRegistry;
use super::events::Recorder;
use super::kernel::{Claims, NodeQueue, StatusCache, TaskSlots, WakeRoutes};
pub use super::settings::{Settings, FIELD_MANAGER};
use crate::crd::{
    LxcBackup, LxcBackupSchedule, LxcBackupScheduleStatus, LxcBackupStatus, LxcContainer, LxcContainerStatus,
    LxcSnapshot, LxcSnapshotStatus, LxcTemplate, LxcTemplateStatus,
};
use crate::metrics::Metrics;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Resource, ResourceExt};
use std::sync::Arc;

/// The longest Event note written (the apiserver drops notes over 1 KiB).
pub const MAX_EVENT_NOTE: usize = 1000;

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

/// The statuses this process wrote last, per kind (see [`StatusCache`]).
#[derive(Default)]
pub struct StatusCaches {
    /// `LxcContainer`s.
    pub containers: StatusCache<LxcContainerStatus>,
    /// `LxcTemplate`s.
    pub templates: StatusCache<LxcTemplateStatus>,
    /// `LxcBackup`s.
    pub backups: StatusCache<LxcBackupStatus>,
    /// `LxcBackupSchedule`s and `LxcSnapshotSchedule`s (one status type).
    pub schedules: StatusCache<LxcBackupScheduleStatus>,
    /// `LxcSnapshot`s.
    pub snapshots: StatusCache<LxcSnapshotStatus>,
}

/// The wake channels, per kind (see [`WakeRoutes`]).
#[derive(Default)]
pub struct Wakes {
    /// `LxcContainer`s.
    pub containers: WakeRoutes<LxcContainer>,
    /// `LxcTemplate`s.
    pub templates: WakeRoutes<LxcTemplate>,
    /// `LxcBackup`s.
    pub backups: WakeRoutes<LxcBackup>,
    /// `LxcBackupSchedule`s (none is registered: a schedule never waits for capacity).
    pub schedules: WakeRoutes<LxcBackupSchedule>,
    /// `LxcSnapshotSchedule`s (none is registered either).
    pub snapshot_schedules: WakeRoutes<crate::crd::LxcSnapshotSchedule>,
    /// `LxcSnapshot`s.
    pub snapshots: WakeRoutes<LxcSnapshot>,
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
    /// Task slots per node.
    pub slots: TaskSlots,
    /// How long tasks took (when to poll a running one).
    pub task_times: super::kernel::task_times::TaskTimes,
    /// One vzdump per node at a time, namespaces in turn.
    pub vzdump: NodeQueue,
    /// Image downloads in flight (`cluster/node/volid` → uid of the object that started it).
    pub downloads: Claims,
    /// The statuses this process wrote last.
    pub status: StatusCaches,
    /// Where to send objects for a pass.
    pub wakes: Wakes,
    /// When to stop.
    pub shutdown: Shutdown,
    /// What tenancy decisions read.
    pub tenancy: super::tenancy::Views,
}

impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}

impl Context {
    /// Builds the context.
    pub fn new(
        kube: kube::Client,
        clusters: Arc<ClusterRegistry>,
        settings: Settings,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(kube.clone(), reporter),
            kube,
            clusters,
            settings,
            slots: TaskSlots::new(metrics.clone()),
            task_times: Default::default(),
            metrics,
            vzdump: NodeQueue::default(),
            downloads: Claims::default(),
            status: StatusCaches::default(),
            wakes: Wakes::default(),
            shutdown,
            tenancy: Default::default(),
        }
    }

    /// Publishes an event about `obj`; failures are logged, never fatal. The note is cut below
    /// the apiserver's 1 KiB limit on a character boundary.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let note = super::conditions::cut(note, MAX_EVENT_NOTE);
        // the recorder folds events with the same (type, reason, action) into one series that
        // keeps the first note: an action that depends on the note keeps distinct notes apart,
        // while repeats of the same note still fold
        let hash = note.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
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

    /// Forgets everything kept for the object `uid` (its cleanup is done, or it vanished).
    pub fn forget(&self, uid: &str) {
        self.slots.forget(uid);
        self.vzdump.forget(uid);
        self.downloads.forget(uid);
        self.status.containers.forget(uid);
        self.status.templates.forget(uid);
        self.status.backups.forget(uid);
        self.status.schedules.forget(uid);
        self.status.snapshots.forget(uid);
    }

    /// Forgets what is kept for every object for which `live` is false.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        self.slots.retain(live);
        self.vzdump.retain(live);
        self.downloads.retain(live);
        self.status.containers.retain(live);
        self.status.templates.retain(live);
        self.status.backups.retain(live);
        self.status.schedules.retain(live);
        self.status.snapshots.retain(live);
        self.tenancy.retain(live);
    }
}
