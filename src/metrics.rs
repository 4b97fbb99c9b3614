//! Prometheus metrics, rendered in the text exposition format on `/metrics`.
//!
//! A small registry of labelled counters, gauges and histograms; names follow Prometheus
//! conventions with the prefix `plo_` (proxmox-lxc-operator).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

type Labels = Vec<(&'static str, String)>;

const BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), f64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    /// Per-container samples by (namespace, name): one compact entry per object rather than
    /// six labelled series (at 10,000 objects the difference is tens of MiB).
    containers: BTreeMap<(String, String), ContainerSample>,
}

/// What the per-container gauges show of one container (filled by the controller from what
/// Proxmox reports; this module knows nothing of the controller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSample {
    /// The node it runs on.
    pub node: String,
    /// Its vmid.
    pub vmid: u32,
    /// Whether it runs.
    pub up: bool,
    /// CPU use (1.0 = one core).
    pub cpu: f64,
    /// Memory in use, bytes.
    pub memory: u64,
    /// Root disk in use, bytes.
    pub disk: u64,
    /// Bytes received.
    pub net_in: u64,
    /// Bytes sent.
    pub net_out: u64,
}

/// The per-container metrics, rendered from [`ContainerSample`]s.
const CONTAINER_METRICS: [&str; 6] = [
    "plo_container_up",
    "plo_container_cpu_ratio",
    "plo_container_memory_bytes",
    "plo_container_disk_bytes",
    "plo_container_network_receive_bytes_total",
    "plo_container_network_transmit_bytes_total",
];

impl ContainerSample {
    fn value(&self, metric: &str) -> f64 {
        match metric {
            "plo_container_up" => f64::from(u8::from(self.up)),
            "plo_container_cpu_ratio" => self.cpu,
            "plo_container_memory_bytes" => self.memory as f64,
            "plo_container_disk_bytes" => self.disk as f64,
            "plo_container_network_receive_bytes_total" => self.net_in as f64,
            _ => self.net_out as f64,
        }
    }
}

/// The operator's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

const HELP: &[(&str, &str, &str)] = &[
    ("plo_reconcile_total", "counter", "Reconciles by kind and result."),
    (
        "plo_reconcile_errors_total",
        "counter",
        "Failed reconciles by kind and error class.",
    ),
    (
        "plo_reconcile_duration_seconds",
        "histogram",
        "Reconcile duration by kind.",
    ),
    (
        "plo_proxmox_requests_total",
        "counter",
        "Proxmox API requests by method, endpoint and status.",
    ),
    (
        "plo_proxmox_request_duration_seconds",
        "histogram",
        "Proxmox API request latency by method and endpoint.",
    ),
    (
        "plo_tasks_started_total",
        "counter",
        "Proxmox tasks started by operation.",
    ),
    (
        "plo_tasks_failed_total",
        "counter",
        "Proxmox tasks that failed by operation.",
    ),
    (
        "plo_kubernetes_writes_total",
        "counter",
        "Writes to the Kubernetes API by kind.",
    ),
    ("plo_container_up", "gauge", "1 when the container runs."),
    (
        "plo_container_cpu_ratio",
        "gauge",
        "CPU usage of the container as a fraction of its host's CPUs.",
    ),
    ("plo_container_memory_bytes", "gauge", "Memory in use by the container."),
    (
        "plo_container_disk_bytes",
        "gauge",
        "Root disk in use by the container.",
    ),
    (
        "plo_container_network_receive_bytes_total",
        "counter",
        "Bytes received by the container.",
    ),
    (
        "plo_container_network_transmit_bytes_total",
        "counter",
        "Bytes sent by the container.",
    ),
    ("plo_queue_depth", "gauge", "Objects waiting for a task slot, by kind."),
];

impl Metrics {
    fn inc(&self, name: &'static str, labels: Labels, by: f64) {
        *self.inner.lock().unwrap().counters.entry((name, labels)).or_default() += by;
    }

    fn observe(&self, name: &'static str, labels: Labels, secs: f64) {
        let mut inner = self.inner.lock().unwrap();
        let h = inner.histograms.entry((name, labels)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Counts one reconcile of `kind` that ended with `result` (`ok` or an error class).
    pub fn reconcile(&self, kind: &'static str, result: &str, took: Duration) {
        self.inc(
            "plo_reconcile_total",
            vec![
                ("kind", kind.into()),
                ("result", if result == "ok" { "ok" } else { "error" }.into()),
            ],
            1.0,
        );
        if result != "ok" {
            self.inc(
                "plo_reconcile_errors_total",
                vec![("kind", kind.into()), ("class", result.into())],
                1.0,
            );
        }
        self.observe(
            "plo_reconcile_duration_seconds",
            vec![("kind", kind.into())],
            took.as_secs_f64(),
        );
    }

    /// Counts one Proxmox request.
    pub fn observe_proxmox(&self, method: &str, endpoint: &str, status: u16, took: Duration) {
        self.inc(
            "plo_proxmox_requests_total",
            vec![
                ("method", method.into()),
                ("endpoint", endpoint.into()),
                ("status", status.to_string()),
            ],
            1.0,
        );
        self.observe(
            "plo_proxmox_request_duration_seconds",
            vec![("method", method.into()), ("endpoint", endpoint.into())],
            took.as_secs_f64(),
        );
    }

    /// Counts one Proxmox request by its concrete path (turned into an endpoint template such
    /// as `/nodes/{node}/lxc/{vmid}/config`, so labels stay few).
    pub fn observe_proxmox_path(&self, method: &str, path: &str, status: u16, took: Duration) {
        self.observe_proxmox(method, &endpoint_template(path), status, took);
    }

    /// Counts a task started.
    pub fn task_started(&self, operation: &str) {
        self.inc("plo_tasks_started_total", vec![("operation", operation.into())], 1.0);
    }

    /// Counts a task that failed.
    pub fn task_failed(&self, operation: &str) {
        self.inc("plo_tasks_failed_total", vec![("operation", operation.into())], 1.0);
    }

    /// Counts a write to the Kubernetes API.
    pub fn kube_write(&self, kind: &'static str) {
        self.inc("plo_kubernetes_writes_total", vec![("kind", kind.into())], 1.0);
    }

    /// Sets the number of `kind` objects waiting for a task slot.
    pub fn set_queue_depth(&self, kind: &'static str, n: usize) {
        self.inner
            .lock()
            .unwrap()
            .gauges
            .insert(("plo_queue_depth", vec![("kind", kind.into())]), n as f64);
    }

    /// Changes the number of `kind` objects waiting for a task slot by `delta`.
    pub fn queue_wait(&self, kind: &'static str, delta: f64) {
        let mut inner = self.inner.lock().unwrap();
        let v = inner
            .gauges
            .entry(("plo_queue_depth", vec![("kind", kind.into())]))
            .or_default();
        *v = (*v + delta).max(0.0);
    }

    /// Sets the per-container gauges of one container (a container that moved keeps one set of
    /// series, labelled with its new node).
    pub fn container(&self, namespace: &str, name: &str, sample: ContainerSample) {
        self.inner
            .lock()
            .unwrap()
            .containers
            .insert((namespace.to_string(), name.to_string()), sample);
    }

    /// Keeps the per-container series of the objects for which `keep(namespace, name)` holds.
    pub fn retain_containers(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.inner
            .lock()
            .unwrap()
            .containers
            .retain(|(ns, name), _| keep(ns, name));
    }

    /// Forgets the per-container series of a deleted object.
    pub fn forget_container(&self, namespace: &str, name: &str) {
        self.inner
            .lock()
            .unwrap()
            .containers
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap();
        let mut out = String::new();
        for (name, typ, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {typ}");
            for ((n, labels), v) in inner.counters.iter().chain(inner.gauges.iter()) {
                if n == name {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
                }
            }
            if CONTAINER_METRICS.contains(name) {
                for ((ns, obj), c) in &inner.containers {
                    let labels: Labels = vec![
                        ("namespace", ns.clone()),
                        ("name", obj.clone()),
                        ("node", c.node.clone()),
                        ("vmid", c.vmid.to_string()),
                    ];
                    let _ = writeln!(out, "{name}{} {}", fmt_labels(&labels, None), c.value(name));
                }
            }
            for ((n, labels), h) in &inner.histograms {
                if n == name {
                    for (i, b) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            fmt_labels(labels, Some(&b.to_string())),
                            h.counts[i]
                        );
                    }
                    let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(labels, Some("+Inf")), h.count);
                    let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
                    let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
                }
            }
        }
        out
    }
}

/// `/nodes/pve1/lxc/100/config` → `/nodes/{node}/lxc/{vmid}/config`.
pub fn endpoint_template(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut out = String::new();
    for (i, s) in segs.iter().enumerate() {
        let prev = if i > 0 { segs[i - 1] } else { "" };
        let t = match prev {
            "nodes" => "{node}",
            "storage" => "{storage}",
            "tasks" => "{upid}",
            "content" => "{volume}",
            "snapshot" => "{snapname}",
            "rules" => "{pos}",
            _ if s.chars().all(|c| c.is_ascii_digit()) => "{vmid}",
            _ => s,
        };
        out.push('/');
        out.push_str(t);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
            )
        })
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_endpoint_templates() {
        assert_eq!(
            endpoint_template("/nodes/pve1/lxc/100/config"),
            "/nodes/{node}/lxc/{vmid}/config"
        );
        assert_eq!(
            endpoint_template("/nodes/pve1/tasks/UPID%3Apve1%3A1/status"),
            "/nodes/{node}/tasks/{upid}/status"
        );
        assert_eq!(endpoint_template("/cluster/resources"), "/cluster/resources");
    }

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        let m = Metrics::default();
        m.reconcile("LxcContainer", "ok", Duration::from_millis(20));
        m.reconcile("LxcContainer", "Transient", Duration::from_millis(2));
        m.observe_proxmox("GET", "/cluster/resources", 200, Duration::from_millis(5));
        let text = m.render();
        assert!(text.contains("plo_reconcile_total{kind=\"LxcContainer\",result=\"ok\"} 1"));
        assert!(text.contains("plo_reconcile_errors_total{kind=\"LxcContainer\",class=\"Transient\"} 1"));
        assert!(text.contains("plo_reconcile_duration_seconds_bucket{kind=\"LxcContainer\",le=\"+Inf\"} 2"));
        assert!(text
            .contains("plo_proxmox_requests_total{method=\"GET\",endpoint=\"/cluster/resources\",status=\"200\"} 1"));
        assert!(text.contains("# TYPE plo_container_up gauge"));
    }

    #[test]
    fn a_moved_container_keeps_one_series_and_a_deleted_one_none() {
        let m = Metrics::default();
        let mut g = ContainerSample {
            vmid: 101,
            node: "pve1".into(),
            up: true,
            memory: 1024,
            ..Default::default()
        };
        m.container("ns", "web", g.clone());
        g.node = "pve2".into();
        m.container("ns", "web", g);
        let text = m.render();
        assert!(
            text.contains("plo_container_up{namespace=\"ns\",name=\"web\",node=\"pve2\",vmid=\"101\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("plo_container_memory_bytes{namespace=\"ns\",name=\"web\",node=\"pve2\",vmid=\"101\"} 1024"),
            "{text}"
        );
        assert!(!text.contains("node=\"pve1\""), "{text}");
        m.forget_container("ns", "web");
        assert!(!m.render().contains("name=\"web\""));
    }
}
