//! The operator's settings (its flags and timings) and its name as a field manager: what every
//! part of the controller reads (below the kernel: only plain types of a few kinds here).

use super::cluster::samples::Samples;
use super::schedule::clock::ScheduleClock;
use super::vnode::VnodeSettings;
use std::sync::Arc;
use std::time::Duration;

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "proxmox-lxc-operator";

/// Timings of the operator; the defaults suit production, tests shorten them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest interval between two checks of a running Proxmox task whose kind's duration
    /// is not known yet, or that runs well past it (young tasks are checked sooner; a task of a
    /// known kind is checked near the time its kind took last: see `kernel::task::poll_after`).
    pub task_poll: Duration,
    /// How long to wait before retrying a locked container.
    pub lock_retry: Duration,
    /// How often an in-sync container is passed again without any change (its config and the
    /// values the inventory does not show, such as firewall rules and `net0`, are read on every
    /// pass). Zero disables it.
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
    /// How often the state kept for objects that vanished without a cleanup pass (a finalizer
    /// removed by hand) is dropped: their task slots, queue places and claims are freed.
    pub prune_interval: Duration,
    /// The clock backup schedules run on.
    pub schedule_clock: ScheduleClock,
    /// How many of a cluster's containers get a full pass (config, firewall, interfaces) after
    /// each inventory read, in turn: what the inventory cannot show is found within
    /// `containers / drift_per_resync` resyncs, at a flat cost of about 5 requests each.
    pub drift_per_resync: usize,
    /// The operator's own namespace: where the Secrets of `ProxmoxCluster`s (credentials, CA)
    /// live, and the only namespace whose Secrets it reads for them.
    pub operator_namespace: String,
    /// Label selector of the `ProxmoxCluster`s this instance manages (all when empty), so
    /// several instances can share an apiserver, each with its own clusters.
    pub cluster_selector: Option<String>,
    /// Usage samples for the web UI's charts (kept only when the UI is on).
    pub samples: Option<Arc<Samples>>,
    /// Virtual nodes (Pods as containers), when the operator runs them (`--virtual-nodes`).
    pub virtual_nodes: Option<VnodeSettings>,
    /// The longest an image pull may hold its task slot (`--pull-timeout`): a registry that
    /// trickles is stopped there, the pull fails with `PullFailed` and is tried again later.
    pub pull_timeout: Duration,
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
            prune_interval: Duration::from_secs(60),
            schedule_clock: ScheduleClock::WALL,
            drift_per_resync: 10,
            operator_namespace: "default".into(),
            cluster_selector: None,
            samples: None,
            virtual_nodes: None,
            pull_timeout: Duration::from_secs(900),
        }
    }
}
