//! What the pages show, read from the objects' JSON (tolerant of fields that are absent, so the
//! UI keeps working across schema changes, e.g. a `ProxmoxCluster` without `spec.tenancy`).

use super::health::{self, Health};
use serde_json::Value;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `n` bytes as a short human size (`1.5 GiB`).
pub fn bytes(n: Option<u64>) -> String {
    let Some(n) = n else { return String::new() };
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// How long ago an RFC 3339 instant was, shortly (`5m`, `3h`, `2d`); empty when unreadable.
pub fn age(rfc3339: &str, now: jiff::Timestamp) -> String {
    let Ok(t) = rfc3339.parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let secs = now.as_second() - t.as_second();
    match secs {
        s if s < 0 => "0s".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// A health badge: status name, CSS class and message.
#[derive(Debug, Clone)]
pub struct Badge {
    /// Healthy, Progressing, Degraded or Suspended.
    pub status: &'static str,
    /// CSS class of the badge.
    pub class: &'static str,
    /// Why.
    pub message: String,
}

impl From<Health> for Badge {
    fn from(h: Health) -> Badge {
        let status = h.status.as_str();
        Badge {
            status,
            class: match h.status {
                health::HealthStatus::Healthy => "b-ok",
                health::HealthStatus::Progressing => "b-prog",
                health::HealthStatus::Degraded => "b-bad",
                health::HealthStatus::Suspended => "b-susp",
            },
            message: h.message,
        }
    }
}

/// The badge of an object.
pub fn badge(obj: &Value) -> Badge {
    health::of(obj).into()
}

/// One row of the containers table.
#[derive(Debug, Clone)]
pub struct ContainerRow {
    /// HTML id of the row (`ct-NS-NAME`, unique as names are DNS labels).
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The cluster it is (or will be) in.
    pub cluster: String,
    /// Node.
    pub node: String,
    /// Proxmox vmid.
    pub vmid: String,
    /// Observed state (`running`, `stopped`) or the phase while there is none.
    pub state: String,
    /// `spec.state`.
    pub desired: String,
    /// Addresses, comma-separated.
    pub ips: String,
    /// CPU use, percent of the host.
    pub cpu: String,
    /// Memory in use.
    pub memory: String,
    /// Health badge.
    pub health: Badge,
    /// The Ready condition's reason.
    pub reason: String,
    /// Age.
    pub age: String,
}

impl ContainerRow {
    /// The row of one `LxcContainer`.
    pub fn of(obj: &Value, now: jiff::Timestamp) -> ContainerRow {
        let (meta, spec, status) = (&obj["metadata"], &obj["spec"], &obj["status"]);
        let namespace = s(&meta["namespace"]);
        let name = s(&meta["name"]);
        let cluster = match s(&status["cluster"]) {
            c if c.is_empty() => s(&spec["clusterRef"]["name"]),
            c => c,
        };
        let state = match s(&status["state"]) {
            st if st.is_empty() => s(&status["phase"]),
            st => st,
        };
        let ips = status["ipAddresses"]
            .as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let usage = &status["usage"];
        ContainerRow {
            id: format!("ct-{namespace}-{name}"),
            cluster,
            node: match s(&status["node"]) {
                n if n.is_empty() => s(&spec["node"]),
                n => n,
            },
            vmid: match s(&status["vmid"]) {
                v if v.is_empty() => s(&spec["vmid"]),
                v => v,
            },
            state,
            desired: match s(&spec["state"]) {
                d if d.is_empty() => "Running".into(),
                d => d,
            },
            ips,
            cpu: usage["cpu"]
                .as_f64()
                .map(|c| format!("{:.1}%", c * 100.0))
                .unwrap_or_default(),
            memory: bytes(usage["memoryBytes"].as_u64()),
            health: badge(obj),
            reason: health::condition(status, "Ready")
                .map(|c| s(&c["reason"]))
                .unwrap_or_default(),
            age: age(meta["creationTimestamp"].as_str().unwrap_or(""), now),
            namespace,
            name,
        }
    }

    /// Whether the row matches a free-text filter (name, namespace, cluster, node, vmid, IPs,
    /// state, reason, health and its message: every column shown; case-insensitive).
    pub fn matches(&self, q: &str) -> bool {
        let q = q.trim().to_lowercase();
        q.is_empty()
            || [
                &self.name,
                &self.namespace,
                &self.cluster,
                &self.node,
                &self.vmid,
                &self.ips,
                &self.state,
                &self.reason,
                &self.health.status.to_string(),
                &self.health.message,
            ]
            .iter()
            .any(|f| f.to_lowercase().contains(&q))
    }

    /// Whether the container should be running.
    pub fn wants_running(&self) -> bool {
        self.desired != "Stopped"
    }
}

/// A usage bar (`<meter>`): fraction used and its label.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Used / total, 0..=1.
    pub fraction: f64,
    /// e.g. `3.1 GiB / 8.0 GiB`.
    pub label: String,
}

fn bar(used: Option<u64>, total: Option<u64>) -> Option<Bar> {
    let (used, total) = (used?, total?);
    (total > 0).then(|| Bar {
        fraction: (used as f64 / total as f64).clamp(0.0, 1.0),
        label: format!("{} / {}", bytes(Some(used)), bytes(Some(total))),
    })
}

/// One Proxmox node of a cluster.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Online or offline.
    pub online: bool,
    /// CPU use, 0..=1.
    pub cpu: Option<f64>,
    /// CPU use as text.
    pub cpu_label: String,
    /// Memory bar.
    pub memory: Option<Bar>,
}

/// One storage of a cluster.
#[derive(Debug, Clone)]
pub struct StorageView {
    /// `node/storage`.
    pub name: String,
    /// Type (`dir`, `lvmthin`, `pbs`…).
    pub type_: String,
    /// Usage bar.
    pub usage: Option<Bar>,
}

/// A `ProxmoxCluster` card.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Namespace (empty when the kind is cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Proxmox VE version.
    pub version: String,
    /// Nodes online (`3/3`).
    pub nodes_online: String,
    /// `spec.tenancy` (`Open`, `Restricted`) when the kind has it.
    pub tenancy: String,
    /// Health badge.
    pub health: Badge,
    /// Nodes.
    pub nodes: Vec<NodeView>,
    /// Storages.
    pub storages: Vec<StorageView>,
}

impl ClusterView {
    /// The card of one `ProxmoxCluster`.
    pub fn of(obj: &Value) -> ClusterView {
        let status = &obj["status"];
        let list = |k: &str| status[k].as_array().cloned().unwrap_or_default();
        ClusterView {
            namespace: s(&obj["metadata"]["namespace"]),
            name: s(&obj["metadata"]["name"]),
            version: s(&status["version"]),
            nodes_online: s(&status["nodesOnline"]),
            tenancy: s(&obj["spec"]["tenancy"]),
            health: badge(obj),
            nodes: list("nodes")
                .iter()
                .map(|n| NodeView {
                    name: s(&n["name"]),
                    online: n["online"] == true,
                    cpu: n["cpu"].as_f64().map(|c| c.clamp(0.0, 1.0)),
                    cpu_label: n["cpu"]
                        .as_f64()
                        .map(|c| format!("{:.0}%", c * 100.0))
                        .unwrap_or_default(),
                    memory: bar(n["memoryUsed"].as_u64(), n["memoryTotal"].as_u64()),
                })
                .collect(),
            storages: list("storages")
                .iter()
                .map(|st| StorageView {
                    name: format!("{}/{}", s(&st["node"]), s(&st["name"])),
                    type_: s(&st["type"]),
                    usage: bar(st["usedBytes"].as_u64(), st["totalBytes"].as_u64()),
                })
                .collect(),
        }
    }
}

/// A row of a simple object table (templates, schedules, backups): name, a few columns, health.
#[derive(Debug, Clone)]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The kind's columns, in the order of the page's header.
    pub cells: Vec<String>,
    /// Health badge.
    pub health: Badge,
}

impl Row {
    /// Whether cell `i` reads `value`.
    pub fn cell_is(&self, i: usize, value: &str) -> bool {
        self.cells.get(i).is_some_and(|c| c == value)
    }
}

fn row(obj: &Value, cells: Vec<String>) -> Row {
    Row {
        namespace: s(&obj["metadata"]["namespace"]),
        name: s(&obj["metadata"]["name"]),
        cells,
        health: badge(obj),
    }
}

/// Column names of [`template_row`].
pub const TEMPLATE_COLUMNS: &[&str] = &["Cluster", "Node", "Vmid", "Image", "Phase"];

/// An `LxcTemplate` row.
pub fn template_row(obj: &Value) -> Row {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let image = &spec["image"];
    let image = [&image["appliance"], &image["url"]["url"], &image["volid"]]
        .into_iter()
        .map(s)
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    row(
        obj,
        vec![
            s(&spec["clusterRef"]["name"]),
            match s(&status["node"]) {
                n if n.is_empty() => s(&spec["node"]),
                n => n,
            },
            s(&status["vmid"]),
            image,
            s(&status["phase"]),
        ],
    )
}

/// Column names of [`schedule_row`].
pub const SCHEDULE_COLUMNS: &[&str] = &["Schedule", "Storage", "Last run", "Last success", "Next run", "Running"];

/// An `LxcBackupSchedule` or `LxcSnapshotSchedule` row (a snapshot schedule has no storage).
pub fn schedule_row(obj: &Value) -> Row {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let mut schedule = s(&spec["schedule"]);
    if spec["suspend"] == true {
        schedule.push_str(" (suspended)");
    }
    row(
        obj,
        vec![
            schedule,
            s(&spec["storage"]),
            s(&status["lastScheduleTime"]),
            s(&status["lastSuccessfulTime"]),
            s(&status["nextScheduleTime"]),
            status["active"].as_array().map(|a| a.len()).unwrap_or(0).to_string(),
        ],
    )
}

/// A `ProxmoxTenant` row: its spec's top-level fields as `key: value` (the kind is young; the
/// UI shows what it has without knowing its schema).
pub fn tenant_row(obj: &Value) -> Row {
    let spec = obj["spec"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}: {}", s(v)))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    row(obj, vec![spec])
}

/// Column names of [`backup_row`].
pub const BACKUP_COLUMNS: &[&str] = &["Container", "Phase", "Started", "Completed", "Size", "Volume"];

/// An `LxcBackup` row.
pub fn backup_row(obj: &Value) -> Row {
    let (spec, status) = (&obj["spec"], &obj["status"]);
    row(
        obj,
        vec![
            s(&spec["containerRef"]["name"]),
            s(&status["phase"]),
            s(&status["startedAt"]),
            s(&status["completedAt"]),
            bytes(status["sizeBytes"].as_u64()),
            s(&status["volid"]),
        ],
    )
}

/// A condition as shown on a details page.
#[derive(Debug, Clone)]
pub struct ConditionView {
    /// Type.
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Reason.
    pub reason: String,
    /// Message.
    pub message: String,
    /// Last transition.
    pub since: String,
}

/// The conditions of an object's status.
pub fn conditions(obj: &Value) -> Vec<ConditionView> {
    obj["status"]["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| ConditionView {
                    type_: s(&c["type"]),
                    status: s(&c["status"]),
                    reason: s(&c["reason"]),
                    message: s(&c["message"]),
                    since: s(&c["lastTransitionTime"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `(key, value)` pairs summarising a container's spec.
pub fn spec_summary(obj: &Value) -> Vec<(String, String)> {
    let spec = &obj["spec"];
    let src = &spec["source"];
    let source = if let Some(t) = src["template"]["name"].as_str() {
        format!("template {t}")
    } else if let Some(t) = src["osTemplate"].as_str() {
        format!("osTemplate {t}")
    } else if src["clone"].is_object() {
        format!("clone of {}", s(&src["clone"]["vmid"]))
    } else if src["backup"].is_object() {
        format!("backup {}{}", s(&src["backup"]["name"]), s(&src["backup"]["volid"]))
    } else {
        String::new()
    };
    let r = &spec["resources"];
    let nets = spec["network"]
        .as_array()
        .map(|ns| {
            ns.iter()
                .map(|n| format!("{} on {}", s(&n["name"]), s(&n["bridge"])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    [
        ("Desired state", s(&spec["state"])),
        ("Cluster", s(&spec["clusterRef"]["name"])),
        ("Node", s(&spec["node"])),
        ("Source", source),
        ("Hostname", s(&spec["hostname"])),
        ("Cores", s(&r["cores"])),
        ("Memory", s(&r["memory"])),
        (
            "Root disk",
            format!("{} {}", s(&spec["rootfs"]["storage"]), s(&spec["rootfs"]["size"])),
        ),
        ("Network", nets),
        ("Description", s(&spec["description"])),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The object as YAML, without `managedFields` (noise for a reader).
pub fn yaml(obj: &Value) -> String {
    let mut obj = obj.clone();
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    serde_saphyr::to_string(&obj).unwrap_or_else(|e| format!("# cannot render as YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_container_row_reads_status_and_falls_back_to_spec() {
        let now: jiff::Timestamp = "2026-12-01T12:00:00Z".parse().unwrap();
        let obj = json!({"kind": "LxcContainer",
            "metadata": {"namespace": "apps", "name": "web", "creationTimestamp": "2026-12-01T09:00:00Z"},
            "spec": {"clusterRef": {"name": "pve"}, "node": "n1", "state": "Stopped"},
            "status": {"vmid": 101, "state": "stopped", "ipAddresses": ["10.0.0.5", "fd00::5"],
                       "usage": {"cpu": 0.125, "memoryBytes": 536870912u64},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Stopped"}]}});
        let r = ContainerRow::of(&obj, now);
        assert_eq!(
            (r.cluster.as_str(), r.node.as_str(), r.vmid.as_str()),
            ("pve", "n1", "101")
        );
        assert_eq!((r.state.as_str(), r.ips.as_str()), ("stopped", "10.0.0.5, fd00::5"));
        assert_eq!(
            (r.cpu.as_str(), r.memory.as_str(), r.age.as_str()),
            ("12.5%", "512.0 MiB", "3h")
        );
        assert_eq!(r.health.status, "Healthy");
        assert!(!r.wants_running());
        assert!(r.matches("FD00") && r.matches("apps") && !r.matches("db"));
    }

    #[test]
    fn a_cluster_card_shows_tenancy_only_when_the_kind_has_it() {
        let old = json!({"metadata": {"name": "a", "namespace": "x"}, "spec": {}, "status": {
            "nodes": [{"name": "n1", "online": true, "cpu": 0.5, "memoryUsed": 1024, "memoryTotal": 4096}],
            "storages": [{"node": "n1", "name": "local", "usedBytes": 0, "totalBytes": 0}]}});
        let c = ClusterView::of(&old);
        assert_eq!(c.tenancy, "");
        assert_eq!(c.nodes[0].memory.as_ref().unwrap().fraction, 0.25);
        assert!(c.storages[0].usage.is_none(), "no bar for an empty total");
        let new = json!({"metadata": {"name": "a"}, "spec": {"tenancy": "Restricted"}});
        assert_eq!(ClusterView::of(&new).tenancy, "Restricted");
        let tenant = json!({"kind": "ProxmoxTenant", "metadata": {"name": "team-a"},
                            "spec": {"namespaces": ["a"], "pool": "team-a"}});
        let t = tenant_row(&tenant);
        assert_eq!(
            (t.name.as_str(), t.cells[0].as_str()),
            ("team-a", "namespaces: [\"a\"]; pool: team-a")
        );
    }
}

/// The container page's usage charts: SVG polyline points (`x,y x,y …` in a 300×60 box) of CPU
/// (share of its cores) and memory (share of its limit) over the samples, and the last values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageChart {
    /// CPU polyline points.
    pub cpu_points: String,
    /// Memory polyline points.
    pub mem_points: String,
    /// The last CPU value, e.g. `12.5%`.
    pub last_cpu: String,
    /// The last memory value, e.g. `99.9 MiB of 512.0 MiB`.
    pub last_mem: String,
    /// What the x axis spans, e.g. `the last 42 min`.
    pub span: String,
    /// Lowest and highest CPU, e.g. `0.1% to 12.5%`.
    pub cpu_range: String,
    /// Lowest and highest memory, e.g. `90.0 MiB to 99.9 MiB`.
    pub mem_range: String,
    /// At most 12 evenly spread samples for screen readers: (minutes ago, CPU, memory).
    pub values: Vec<(String, String, String)>,
}

/// Draws the charts of `samples` (oldest first); `None` without samples.
pub fn usage_chart(samples: &[crate::controller::cluster::samples::Sample]) -> Option<UsageChart> {
    let (first, last) = (samples.first()?, samples.last()?);
    let span = (last.at - first.at).max(1) as f64;
    let x = |at: i64| 300.0 * (at - first.at) as f64 / span;
    let y = |share: f64| 60.0 - 58.0 * share.clamp(0.0, 1.0);
    let points = |f: &dyn Fn(&crate::controller::cluster::samples::Sample) -> f64| {
        samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", if samples.len() == 1 { 150.0 } else { x(s.at) }, y(f(s))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mem_share = |s: &crate::controller::cluster::samples::Sample| {
        if s.maxmem == 0 {
            0.0
        } else {
            s.mem as f64 / s.maxmem as f64
        }
    };
    Some(UsageChart {
        cpu_points: points(&|s| s.cpu),
        mem_points: points(&mem_share),
        last_cpu: format!("{:.1}%", last.cpu * 100.0),
        last_mem: format!("{} of {}", bytes(Some(last.mem)), bytes(Some(last.maxmem))),
        span: {
            let min = ((last.at - first.at) as f64 / 60.0).ceil() as i64;
            if min > 90 {
                format!("the last {} h", (min + 59) / 60)
            } else {
                format!("the last {min} min")
            }
        },
        cpu_range: {
            let (lo, hi) = samples
                .iter()
                .fold((f64::MAX, 0.0f64), |(lo, hi), s| (lo.min(s.cpu), hi.max(s.cpu)));
            format!("{:.1}% to {:.1}%", lo * 100.0, hi * 100.0)
        },
        mem_range: {
            let lo = samples.iter().map(|s| s.mem).min();
            let hi = samples.iter().map(|s| s.mem).max();
            format!("{} to {}", bytes(lo), bytes(hi))
        },
        values: samples
            .iter()
            .rev()
            .step_by(samples.len().div_ceil(12).max(1))
            .map(|s| {
                let ago = (last.at - s.at) / 60;
                let when = if ago == 0 {
                    "now".to_string()
                } else if ago >= 120 {
                    format!("{} h {} min ago", ago / 60, ago % 60)
                } else {
                    format!("{ago} min ago")
                };
                (when, format!("{:.1}%", s.cpu * 100.0), bytes(Some(s.mem)))
            })
            .collect(),
    })
}
