//! The per-cluster observer: one `GET /cluster/resources` per `resyncInterval` gives every
//! container's node, state, lock, tags and usage, plus nodes and storages. It keeps that
//! snapshot in memory, writes the inventory into `ProxmoxCluster.status` when it changed, and
//! triggers a reconcile of exactly the containers whose observed state changed.

use super::inventory::{changed_guests, Snapshot, SnapshotBuilder};
use super::{ClusterHandle, ClusterKey, Connection};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::kernel::Reason;
use crate::controller::settings::FIELD_MANAGER;
use crate::crd::proxmox_cluster::{MissingPrivilege, CONDITION_PRIVILEGES_MISSING};
use crate::crd::proxmox_cluster::{ProxmoxCluster, ProxmoxClusterStatus};
use crate::crd::CONDITION_READY;
use crate::pve::{self, ErrorClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::Api;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};

/// What an observer needs.
pub struct ObserverParams {
    /// Which cluster.
    pub key: ClusterKey,
    /// Its client.
    pub client: pve::Client,
    /// Kubernetes client, for the status.
    pub kube: kube::Client,
    /// Inventory interval.
    pub resync: Duration,
    /// Usage figures in status are refreshed at least this often.
    pub status_refresh: Duration,
    /// Whether TLS verification is off (reported in the Ready condition).
    pub insecure_tls: bool,
    /// Where to send the vmids that changed.
    pub triggers: mpsc::UnboundedSender<(ClusterKey, u32)>,
    /// Hash of the settings the client was built from.
    pub config_hash: u64,
    /// Who may use the cluster.
    pub tenancy: crate::crd::Tenancy,
    /// It carries the default-cluster annotation.
    pub is_default: bool,
    /// Nodes in maintenance (shared with the handle; the observer refreshes it from the
    /// object it reads every resync).
    pub maintenance: Arc<std::sync::RwLock<Vec<crate::crd::proxmox_cluster::NodeMaintenance>>>,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where each inventory's usage figures go for the UI's charts (when it is on).
    pub samples: Option<Arc<super::samples::Samples>>,
    /// How many of our containers get a full pass after each inventory read (round-robin), to
    /// find drift the inventory cannot show (firewall rules and options, `netN`).
    pub drift_per_resync: usize,
    /// What the objects using the cluster do there now (for the token preflight).
    pub usage: Arc<dyn Fn() -> super::preflight::Usage + Send + Sync>,
    /// The token's privileges are read again at least this often (and whenever what the
    /// objects using the cluster need changes).
    pub privileges_recheck: Duration,
}

/// The token preflight's last read: when, for which needs, and what was missing.
struct PrivilegeRead {
    at: Instant,
    needs: Vec<super::preflight::Need>,
    missing: Vec<MissingPrivilege>,
}

/// Reads the token's privileges again when what is needed changed or the last read got old;
/// a failed read keeps the last answer (and is not retried before the next recheck).
async fn preflight(p: &ObserverParams, last: &mut Option<PrivilegeRead>) {
    let needs = super::preflight::required(&(p.usage)());
    let due = last
        .as_ref()
        .is_none_or(|r| r.needs != needs || r.at.elapsed() >= p.privileges_recheck);
    if !due {
        return;
    }
    match p.client.permissions().await {
        Ok(granted) => {
            let missing = super::preflight::missing(&needs, &granted);
            *last = Some(PrivilegeRead {
                at: Instant::now(),
                needs,
                missing,
            });
        }
        Err(e) => {
            tracing::warn!(cluster = %p.key, error = %e, "could not read the token's privileges");
            if let Some(r) = last {
                r.at = Instant::now();
                r.needs = needs;
            }
        }
    }
}

/// The bridges of each node, read from the nodes' network configuration (one
/// `GET /nodes/{node}/network` per online node) on connect, when a node appears, and then at
/// the privileges' recheck interval: they change seldom, and the resync stays one request.
struct BridgeRead {
    at: Option<Instant>,
    by_node: HashMap<String, Vec<String>>,
}

impl BridgeRead {
    /// Reads again when due; a node that cannot be read keeps what was read before (none at
    /// first: unknown, which the spec checks take as "do not check").
    async fn refresh(&mut self, p: &ObserverParams, snap: &Snapshot) {
        let online: Vec<&str> = snap
            .nodes
            .iter()
            .filter(|n| n.online)
            .map(|n| n.name.as_str())
            .collect();
        let due = self.at.is_none_or(|at| at.elapsed() >= p.privileges_recheck)
            || online.iter().any(|n| !self.by_node.contains_key(*n));
        if !due {
            return;
        }
        self.at = Some(Instant::now());
        for node in online {
            match p.client.node_bridges(node).await {
                Ok(b) => {
                    self.by_node.insert(node.to_string(), b);
                }
                Err(e) => {
                    tracing::debug!(cluster = %p.key, node, error = %e, "could not read the node's bridges");
                    self.by_node.entry(node.to_string()).or_default();
                }
            }
        }
    }
}

/// Whether an inventory read sends a drift batch: the first one, then one per `resync` (a read
/// asked for sooner, e.g. after each task end, sends only the guests that changed). Per read,
/// a burst of 100 Pods (a read after every task) sent each container a drift pass every few
/// seconds: 20 of its 68 Proxmox requests.
pub fn drift_due(last: Option<Instant>, now: Instant, resync: Duration) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= resync)
}

/// Where the drift passes stand: the last vmid sent, and when the last batch went out.
#[derive(Default)]
struct DriftCursor {
    cursor: Option<u32>,
    at: Option<Instant>,
}

impl DriftCursor {
    /// The unchanged containers the inventory read at `now` sends for a drift pass: the next
    /// [`drift_batch`] when [`drift_due`], else none.
    fn next(&mut self, ours: &[u32], now: Instant, p: &ObserverParams, changed: &[u32]) -> Vec<u32> {
        if !drift_due(self.at, now, p.resync) {
            return Vec::new();
        }
        self.at = Some(now);
        let (batch, cursor) = drift_batch(ours, self.cursor, p.drift_per_resync, changed);
        self.cursor = cursor;
        batch
    }
}

/// The next `k` vmids after `cursor` (wrapping around) among `ours` (sorted), skipping those in
/// `skip` (passed already this resync), and the new cursor: a flat drift budget per resync that
/// visits every container in turn (N containers take N / k resyncs).
pub fn drift_batch(ours: &[u32], cursor: Option<u32>, k: usize, skip: &[u32]) -> (Vec<u32>, Option<u32>) {
    if k == 0 || ours.is_empty() {
        return (Vec::new(), cursor);
    }
    let start = cursor.map(|c| ours.partition_point(|v| *v <= c)).unwrap_or(0);
    let mut out = Vec::new();
    let mut last = cursor;
    for i in 0..ours.len() {
        if out.len() == k {
            break;
        }
        let v = ours[(start + i) % ours.len()];
        last = Some(v);
        if !skip.contains(&v) {
            out.push(v);
        }
    }
    (out, last)
}

/// How many of the operator's containers (tagged, not templates) each node in maintenance
/// still holds.
pub fn maintenance_progress(
    snap: &Snapshot,
    nodes: &[crate::crd::proxmox_cluster::NodeMaintenance],
) -> Vec<crate::crd::proxmox_cluster::MaintenanceStatus> {
    nodes
        .iter()
        .map(|m| crate::crd::proxmox_cluster::MaintenanceStatus {
            node: m.node.clone(),
            containers_left: snap
                .guests
                .values()
                .filter(|g| g.node == m.node && g.kind == "lxc" && !g.template)
                .filter(|g| g.tags.iter().any(|t| t.starts_with(crate::crd::IDENTITY_TAG_PREFIX)))
                .count() as u32,
        })
        .collect()
}

/// Starts the observer of one cluster and returns its handle.
pub fn spawn(p: ObserverParams) -> Arc<ClusterHandle> {
    let (snap_tx, snap_rx) = watch::channel(None);
    let (conn_tx, conn_rx) = watch::channel(Connection::Connecting);
    let refresh = Arc::new(Notify::new());
    let key = p.key.clone();
    let client = p.client.clone();
    let (config_hash, tenancy, is_default, resync) = (p.config_hash, p.tenancy, p.is_default, p.resync);
    let maintenance = p.maintenance.clone();
    let r = refresh.clone();
    let placements: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let pl = placements.clone();
    let task = tokio::spawn(async move { run(p, snap_tx, conn_tx, r, pl).await });
    Arc::new(ClusterHandle {
        key,
        client,
        snapshot: snap_rx,
        connection: conn_rx,
        refresh,
        config_hash,
        tenancy,
        is_default,
        resync,
        maintenance,
        placements,
        allocated: Mutex::default(),
        spread: Mutex::default(),
        templates: Default::default(),
        task,
    })
}

fn failure_reason(e: &pve::Error) -> Reason {
    match e {
        // every endpoint failed: the last one's failure names the reason
        pve::Error::Endpoints { failures, .. } => failures.last().map(failure_reason).unwrap_or(Reason::Unreachable),
        pve::Error::Unauthorized { .. } => Reason::AuthenticationFailed,
        pve::Error::Forbidden { .. } => Reason::PermissionDenied,
        pve::Error::TlsFingerprintMismatch { .. } | pve::Error::TlsUnknownCa { .. } | pve::Error::Tls { .. } => {
            Reason::TLSVerificationFailed
        }
        pve::Error::Connect { .. } | pve::Error::Timeout { .. } | pve::Error::Transport { .. } => Reason::Unreachable,
        _ if e.class() == ErrorClass::Auth => Reason::AuthenticationFailed,
        _ => Reason::ProxmoxError,
    }
}

async fn run(
    p: ObserverParams,
    snap_tx: watch::Sender<Option<Arc<Snapshot>>>,
    conn_tx: watch::Sender<Connection>,
    refresh: Arc<Notify>,
    placements: Arc<Mutex<HashMap<String, u64>>>,
) {
    let api: Api<ProxmoxCluster> = Api::all(p.kube.clone());
    let mut written: Option<ProxmoxClusterStatus> =
        api.get_opt(&p.key.name).await.ok().flatten().and_then(|c| c.status);
    let mut last_write = Instant::now();
    let mut version: Option<String> = None;
    let mut prev: Option<Arc<Snapshot>> = None;
    let mut drift = DriftCursor::default();
    let mut privileges: Option<PrivilegeRead> = None;
    let mut bridges = BridgeRead {
        at: None,
        by_node: HashMap::new(),
    };
    loop {
        let started = Instant::now();
        if version.is_none() {
            version = p.client.version().await.ok().and_then(|v| v.version);
        }
        let result = p.client.cluster_resources_as::<SnapshotBuilder>(None).await;
        let (conn, snap) = match result {
            Ok(built) => {
                let mut snap = built.finish(started);
                bridges.refresh(&p, &snap).await;
                snap.set_bridges(&bridges.by_node);
                let snap = Arc::new(snap);
                if let Some(old) = &prev {
                    let changed = changed_guests(old, &snap);
                    for vmid in &changed {
                        let _ = p.triggers.send((p.key.clone(), *vmid));
                    }
                    // and (once per resync) a bounded share of the unchanged ones, in turn
                    let mut ours: Vec<u32> = snap
                        .guests
                        .values()
                        .filter(|g| g.kind == "lxc" && !g.template)
                        .filter(|g| g.tags.iter().any(|t| t.starts_with(crate::crd::IDENTITY_TAG_PREFIX)))
                        .map(|g| g.vmid)
                        .collect();
                    ours.sort_unstable();
                    for vmid in drift.next(&ours, started, &p, &changed) {
                        let _ = p.triggers.send((p.key.clone(), vmid));
                    }
                } else {
                    for vmid in snap.guests.keys() {
                        let _ = p.triggers.send((p.key.clone(), *vmid));
                    }
                }
                (Connection::Connected, Some(snap))
            }
            Err(e) => {
                tracing::warn!(cluster = %p.key, error = %e, "inventory read failed");
                version = None;
                (
                    Connection::Failed {
                        reason: failure_reason(&e).into(),
                        message: e.to_string(),
                    },
                    None,
                )
            }
        };
        if let Some(s) = &snap {
            if let Some(samples) = &p.samples {
                samples.record(jiff::Timestamp::now().as_second(), s);
            }
            prev = Some(s.clone());
            crate::controller::kernel::recover(placements.lock(), "the placements").clear();
            snap_tx.send_replace(Some(s.clone()));
        }
        conn_tx.send_if_modified(|c| {
            if *c != conn {
                *c = conn.clone();
                true
            } else {
                false
            }
        });
        // status: written when something other than usage changed, or when usage got old
        let mut status = written.clone().unwrap_or_default();
        if let Some(s) = &snap {
            status.nodes = s.nodes.clone();
            status.storages = s.storages.clone();
            status.nodes_online = Some(format!(
                "{}/{}",
                s.nodes.iter().filter(|n| n.online).count(),
                s.nodes.len()
            ));
            status.version = version.clone().or(status.version);
        }
        let now = Time(jiff::Timestamp::now());
        if conn == Connection::Connected {
            preflight(&p, &mut privileges).await;
        }
        if let Some(r) = &privileges {
            status.missing_privileges = r.missing.clone();
            let message = super::preflight::summary(&r.missing);
            let cond = if r.missing.is_empty() {
                CondSpec::no(CONDITION_PRIVILEGES_MISSING, Reason::PrivilegesGranted, message)
            } else {
                CondSpec::yes(CONDITION_PRIVILEGES_MISSING, Reason::PrivilegesMissing, message)
            };
            conditions::set(&mut status.conditions, cond, status.observed_generation, &now);
        }
        let ready = match &conn {
            Connection::Connected if p.insecure_tls => CondSpec::yes(
                CONDITION_READY,
                Reason::InsecureTLS,
                "connected; TLS verification is OFF (insecureSkipVerify)",
            ),
            Connection::Connected => CondSpec::yes(
                CONDITION_READY,
                Reason::Connected,
                format!("connected to {}", p.client.active_endpoint()),
            ),
            Connection::Failed { reason, message } => CondSpec::no(CONDITION_READY, reason.clone(), message.clone()),
            Connection::Connecting => CondSpec::no(CONDITION_READY, Reason::Connecting, "connecting"),
        };
        let object = api.get_opt(&p.key.name).await.ok().flatten();
        let generation = object.as_ref().and_then(|c| c.metadata.generation);
        if let Some(o) = &object {
            *crate::controller::kernel::recover(p.maintenance.write(), "the maintenance list") =
                o.spec.maintenance.clone();
        }
        if let Some(s) = &snap {
            status.maintenance = maintenance_progress(
                s,
                &crate::controller::kernel::recover(p.maintenance.read(), "the maintenance list"),
            );
        }
        conditions::set(
            &mut status.conditions,
            ready,
            generation.or(status.observed_generation),
            &now,
        );
        status.observed_generation = generation.or(status.observed_generation);
        let significant = |s: &ProxmoxClusterStatus| {
            let mut s = s.clone();
            s.last_sync_time = None;
            for n in &mut s.nodes {
                n.cpu = None;
                n.memory_used = None;
                n.uptime_seconds = None;
            }
            for st in &mut s.storages {
                st.used_bytes = None;
            }
            s
        };
        let changed = written.as_ref().map(significant) != Some(significant(&status));
        if changed || last_write.elapsed() >= p.status_refresh {
            status.last_sync_time = Some(now);
            let patch = serde_json::json!({
                "apiVersion": "pve.lxc.dev/v1alpha1",
                "kind": "ProxmoxCluster",
                "status": status,
            });
            match api
                .patch_status(
                    &p.key.name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => {
                    p.metrics.kube_write("ProxmoxCluster");
                    written = Some(status);
                    last_write = Instant::now();
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tracing::info!(cluster = %p.key, "ProxmoxCluster is gone; observer stops");
                    conn_tx.send_replace(Connection::Failed {
                        reason: Reason::ClusterDeleted.into(),
                        message: format!("ProxmoxCluster {} was deleted", p.key),
                    });
                    return;
                }
                Err(e) => tracing::warn!(cluster = %p.key, error = %e, "could not write ProxmoxCluster status"),
            }
        }
        let jitter = p.resync.mul_f64(rand::random::<f64>() * 0.1);
        let wait = if snap.is_some() {
            p.resync + jitter
        } else {
            p.resync.min(Duration::from_secs(10)) + jitter
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = refresh.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_reads_visit_every_container_in_turn_within_a_flat_budget() {
        let ours = [101, 102, 103, 104, 105];
        let (b, c) = drift_batch(&ours, None, 2, &[]);
        assert_eq!((b, c), (vec![101, 102], Some(102)));
        let (b, c) = drift_batch(&ours, c, 2, &[104]);
        assert_eq!(
            (b, c),
            (vec![103, 105], Some(105)),
            "one passed already this resync is skipped"
        );
        let (b, c) = drift_batch(&ours, c, 2, &[]);
        assert_eq!((b, c), (vec![101, 102], Some(102)), "wraps around");
        // a cursor on a vmid that is gone goes on after it
        assert_eq!(drift_batch(&[101, 200], Some(150), 1, &[]).0, vec![200]);
        assert!(drift_batch(&ours, None, 0, &[]).0.is_empty(), "budget 0: none");
        assert_eq!(
            drift_batch(&ours, None, 10, &[]).0.len(),
            5,
            "never more than there are"
        );
    }

    #[test]
    fn an_inventory_read_asked_for_between_resyncs_sends_no_drift_batch() {
        let (t0, resync) = (Instant::now(), Duration::from_secs(15));
        assert!(drift_due(None, t0, resync), "the first read");
        assert!(
            !drift_due(Some(t0), t0 + Duration::from_secs(2), resync),
            "a task ended: changed guests only"
        );
        assert!(drift_due(Some(t0), t0 + resync, resync), "the next resync");
    }
}
