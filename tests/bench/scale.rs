//! Scale benchmark of the operator (issue 10, DESIGN.md §5): the real operator binary against a
//! real kube-apiserver (tests/scripts/control-plane.sh) and `pve-sim` with 20 ms latency and
//! realistic task durations (tests/bench/sim-bench.yaml).
//!
//! ```sh
//! cargo bench --bench scale -- create-burst 100      # burst + steady state + memory at N
//! cargo bench --bench scale -- overhead 30           # apply-to-Running overhead, no queueing
//! cargo bench --bench scale -- observe 10000         # memory + steady + pickup at N ObserveOnly
//! cargo bench --bench scale -- full 10000            # N Full containers adopted: steady, memory, spec change
//! cargo bench --bench scale -- namespaces 50         # 50 tenants' namespaces on one ProxmoxCluster
//! cargo bench --bench scale -- all                   # the whole set
//! cargo bench --bench scale -- table                 # README tables from tests/bench/results/
//! ```
//!
//! Several scenarios may follow each other: `create-burst 100 overhead 20`. Knobs (env):
//! `BENCH_SLOTS` (maxConcurrentTasksPerNode, default 2), `BENCH_CLOCK_SPEED` (task clock
//! speed-up; default 1, or 2 for bursts above 200), `BENCH_STEADY_SECS` (default 60),
//! `BENCH_RESYNC` (default `15s`), `BENCH_PICKUP_SAMPLES` (default 20), `BENCH_RPS`
//! (requestsPerSecond, default 200), `BENCH_OPERATOR_ARGS` (extra operator flags, e.g.
//! `--task-poll-interval 200ms`; the overhead scenario runs the operator with its defaults),
//! `BENCH_OUT` (results directory, default tests/bench/results). `cargo bench` builds the operator and the simulator in release
//! mode; `cargo test --release --bench scale -- ...` runs the same thing.
//!
//! Every scenario writes `NAME-N.json` and `NAME-N.md` (and `create-burst-N.svg`) with the
//! machine noted (nproc, CPU model, load average before and after).

#[path = "../common/mod.rs"]
mod common;

#[path = "harness.rs"]
mod harness;
use harness::*;

#[path = "scale_burst.rs"]
mod scale_burst;
#[path = "scale_full.rs"]
mod scale_full;
#[path = "scale_observe.rs"]
mod scale_observe;
#[path = "scale_overhead.rs"]
mod scale_overhead;
#[path = "table.rs"]
mod table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};

const SIM_CONFIG: &str = "tests/bench/sim-bench.yaml";
const OS_TEMPLATE: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

// ---------------------------------------------------------------------------- environment

/// What the harness saw of each `LxcContainer` through a watch.
#[derive(Default)]
struct Track {
    applied: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
    vmid: HashMap<String, u64>,
    /// Ready=False reasons seen, by reason, counted once per object.
    reasons: BTreeMap<String, u64>,
    seen_reason: HashSet<(String, String)>,
    /// Objects that showed a lock error to the user (condition message).
    lock_shown: HashSet<String>,
}

struct Env {
    /// Kept alive for the scenario (killed on drop).
    _sim: Sim,
    http: SimHttp,
    op: Operator,
    api: Api<DynamicObject>,
    track: Arc<Mutex<Track>>,
    slots: u32,
    resync: String,
}

/// How a scenario's environment differs from the default one.
#[derive(Default)]
struct EnvOpts {
    /// Populate the simulator with this many stopped containers first (see `populate`).
    prepare: Option<usize>,
    /// Run the operator with its production defaults instead of the tests' short timings.
    operator_defaults: bool,
    /// `requestsPerSecond` of the cluster (default `BENCH_RPS`, else 200).
    rps: Option<u32>,
    /// More namespaces the operator watches (and the harness tracks), besides its own.
    namespaces: Vec<String>,
}

fn lxc_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("pve.lxc.dev", "v1alpha1", "LxcContainer"),
        "lxccontainers",
    )
}

/// The operator's extra flags from `BENCH_OPERATOR_ARGS` (whitespace-separated).
fn operator_args() -> Vec<String> {
    std::env::var("BENCH_OPERATOR_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Env {
    /// A namespace, a simulator (already populated by `prepare`, if given), the ProxmoxCluster
    /// and the operator; waits until the cluster is Ready and starts the watch.
    async fn start(prefix: &str, clock: f64, prepare: Option<usize>) -> Res<Env> {
        Self::start_with(
            prefix,
            clock,
            EnvOpts {
                prepare,
                ..Default::default()
            },
        )
        .await
    }

    /// [`Env::start`] with options.
    async fn start_with(prefix: &str, clock: f64, o: EnvOpts) -> Res<Env> {
        let cp = ControlPlane::shared();
        let ns = cp.namespace(prefix);
        let cfg = repo().join(SIM_CONFIG);
        let clock_s = clock.to_string();
        let sim = Sim::start(&[
            "--config",
            cfg.to_str().unwrap(),
            "--clock-speed",
            &clock_s,
            "--seed",
            "1",
        ]);
        let http = SimHttp::new(&sim.url);
        if let Some(n) = o.prepare {
            scale_observe::populate(&http, n, clock).await?;
        }
        let slots: u32 = env_or("BENCH_SLOTS", 2);
        let rps: u32 = o.rps.unwrap_or_else(|| env_or("BENCH_RPS", 200));
        let resync: String = env_or("BENCH_RESYNC", "15s".to_string());
        let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pve-credentials"},
             "stringData": {"tokenId": SIM_TOKEN_ID, "tokenSecret": SIM_TOKEN_SECRET}},
            {"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "ProxmoxCluster",
             "metadata": serde_json::from_str::<serde_json::Value>(&cluster_metadata(&ns))?,
             "spec": {"endpoints": [sim.url], "credentialsRef": {"name": "pve-credentials"}, "tls": {"fingerprint": sim.fingerprint},
                      "resyncInterval": resync, "limits": {"maxConcurrentTasksPerNode": slots, "requestsPerSecond": rps}}}]});
        let out = cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&manifest.to_string()));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let watched = std::iter::once(ns.clone())
            .chain(o.namespaces.iter().cloned())
            .collect::<Vec<_>>()
            .join(",");
        let extra = operator_args();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let op = if o.operator_defaults {
            Operator::start_with_defaults(cp, &watched, &extra)
        } else {
            Operator::start_with(cp, &watched, &extra)
        };
        wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(120));
        let client = kube_client(cp).await?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &lxc_resource());
        let track = Arc::new(Mutex::new(Track::default()));
        tokio::spawn(watch(api.clone(), track.clone()));
        for other in &o.namespaces {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), other, &lxc_resource());
            tokio::spawn(watch(api, track.clone()));
        }
        Ok(Env {
            _sim: sim,
            http,
            op,
            api,
            track,
            slots,
            resync,
        })
    }

    fn pid(&self) -> u32 {
        self.op.pid().expect("operator running")
    }

    /// Creates the objects with `concurrency` requests in flight, recording when each create returned.
    async fn create_many(&self, objs: Vec<Value>, concurrency: usize) -> Res<()> {
        self.create_many_in(&self.api, objs, concurrency).await.map(|_| ())
    }

    /// [`Env::create_many`] through `api` (another namespace); returns the objects' uids by name.
    async fn create_many_in(
        &self,
        api: &Api<DynamicObject>,
        objs: Vec<Value>,
        concurrency: usize,
    ) -> Res<HashMap<String, String>> {
        let results: Vec<Res<(String, String)>> = futures::stream::iter(objs)
            .map(|o| {
                let api = api.clone();
                let track = self.track.clone();
                async move {
                    let name = o["metadata"]["name"].as_str().unwrap().to_string();
                    let obj: DynamicObject = serde_json::from_value(o)?;
                    let mut tries = 0;
                    let made = loop {
                        match api.create(&PostParams::default(), &obj).await {
                            Ok(made) => break made,
                            Err(e) if tries < 5 => {
                                tries += 1;
                                eprintln!("create {name}: {e}; retrying");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    };
                    track.lock().unwrap().applied.insert(name.clone(), Instant::now());
                    Ok((name, made.metadata.uid.unwrap_or_default()))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    fn ready_count(&self) -> usize {
        self.track.lock().unwrap().ready.len()
    }

    /// Waits until `n` objects are Ready, sampling the operator's RSS every second.
    async fn wait_all_ready(
        &self,
        n: usize,
        timeout: Duration,
        rss_samples: &mut Vec<(f64, f64)>,
        t0: Instant,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let stall: u64 = env_or("BENCH_STALL_SECS", 180);
        let (mut last_print, mut last_change, mut last_r) = (Instant::now(), Instant::now(), 0);
        loop {
            let r = self.ready_count();
            rss_samples.push((t0.elapsed().as_secs_f64(), rss(self.pid()).0));
            if r >= n {
                return true;
            }
            if r != last_r {
                (last_r, last_change) = (r, Instant::now());
            }
            if Instant::now() > deadline || last_change.elapsed() > Duration::from_secs(stall) {
                eprintln!(
                    "  giving up: {r}/{n} Ready, no progress for {:.0}s",
                    last_change.elapsed().as_secs_f64()
                );
                return false;
            }
            if last_print.elapsed() > Duration::from_secs(15) {
                eprintln!(
                    "  … {r}/{n} Ready after {:.0}s (load {})",
                    t0.elapsed().as_secs_f64(),
                    loadavg()
                );
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Steady state: Proxmox requests and Kubernetes writes over `secs` with nothing changing.
    async fn steady(&self, secs: u64) -> Value {
        // let one resync pass after the last change
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.http.post("/_sim/stats/reset", json!({})).await;
        let m0 = self.op.metrics();
        let w0 = metric_sum(&m0, "plo_kubernetes_writes_total");
        let rec0 = metric_sum(&m0, "plo_reconcile_total");
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let stats = self.http.stats().await;
        let m1 = self.op.metrics();
        let writes = metric_sum(&m1, "plo_kubernetes_writes_total") - w0;
        let reconciles = metric_sum(&m1, "plo_reconcile_total") - rec0;
        let total = stats["total"].as_u64().unwrap_or(0) as f64;
        // the inventory read, and the drift reads of the containers whose turn it is (a flat
        // budget per resync: what the inventory cannot show, such as firewall rules)
        let inventory = stats["requests"]["GET /cluster/resources"].as_u64().unwrap_or(0) as f64;
        let drift = total - inventory;
        let resync_s = parse_secs(&self.resync);
        let resyncs = secs as f64 / resync_s;
        let per_min = 60.0 / secs as f64;
        json!({
            "window_s": secs, "resync_interval": self.resync,
            "proxmox_requests": total, "proxmox_requests_per_min": r1(total * per_min),
            "proxmox_requests_per_resync": r1(inventory / resyncs),
            "inventory_reads_per_resync": r1(inventory / resyncs),
            "drift_reads_per_resync": r1(drift / resyncs),
            "proxmox_requests_by_endpoint": stats["requests"],
            "kubernetes_writes": writes, "kubernetes_writes_per_min": r1(writes * per_min),
            "reconciles": reconciles,
            "target_met": inventory / resyncs <= 1.0 + 1e-9 && writes == 0.0,
        })
    }
}

async fn watch(api: Api<DynamicObject>, track: Arc<Mutex<Track>>) {
    let stream = watcher(api, watcher::Config::default()).boxed();
    let mut stream = stream;
    loop {
        match stream.try_next().await {
            Ok(Some(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                let name = o.metadata.name.clone().unwrap_or_default();
                let status = &o.data["status"];
                let mut t = track.lock().unwrap();
                if let Some(v) = status["vmid"].as_u64() {
                    t.vmid.insert(name.clone(), v);
                }
                let ready = status["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                    .cloned();
                if let Some(c) = ready {
                    if c["status"] == "True" {
                        t.ready.entry(name).or_insert_with(Instant::now);
                    } else {
                        let reason = c["reason"].as_str().unwrap_or("").to_string();
                        let msg = c["message"].as_str().unwrap_or("").to_ascii_lowercase();
                        if msg.contains("lock") || reason.contains("Lock") {
                            t.lock_shown.insert(name.clone());
                        }
                        if t.seen_reason.insert((name, reason.clone())) {
                            *t.reasons.entry(reason).or_default() += 1;
                        }
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                eprintln!("watch error: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn container_obj(name: &str, extra: Value) -> Value {
    let mut spec = json!({"source": {"osTemplate": OS_TEMPLATE}, "resources": {"cores": 1, "memory": "256Mi"},
                          "rootfs": {"storage": "local-lvm", "size": "2Gi"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "LxcContainer", "metadata": {"name": name}, "spec": spec})
}

/// The bench configuration of the simulator.
fn sim_config() -> proxmox_lxc_operator::sim::SimConfig {
    let text = std::fs::read_to_string(repo().join(SIM_CONFIG)).unwrap();
    proxmox_lxc_operator::sim::SimConfig::from_yaml(&text).unwrap()
}

/// The jitter of the simulator's task durations (a fraction: 0.2 = ±20 %).
fn sim_task_jitter() -> f64 {
    sim_config().task_jitter
}

/// What one task of `/_sim/tasks` took at clock speed 1 (ms): what it drew (`work_ms`, jitter
/// included), else its type's configured duration.
fn task_work_ms(task: &Value, tm: &BTreeMap<String, u64>) -> f64 {
    match task["work_ms"].as_u64().filter(|ms| *ms > 0) {
        Some(ms) => ms as f64,
        None => {
            let typ = task["type"].as_str().unwrap_or("default");
            tm.get(typ).copied().unwrap_or(tm["default"]) as f64
        }
    }
}

/// Durations of the simulator's tasks at clock speed 1 (ms), from the bench configuration.
fn task_ms() -> BTreeMap<String, u64> {
    let cfg = sim_config();
    ["vzcreate", "vzstart", "vzstop", "vzdestroy", "default"]
        .iter()
        .map(|t| (t.to_string(), cfg.task_duration_ms(t)))
        .collect()
}

#[tokio::main]
async fn main() -> Res<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let mut plan: Vec<(String, usize)> = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let n = it.peek().and_then(|s| s.replace([',', '_'], "").parse::<usize>().ok());
        if n.is_some() {
            it.next();
        }
        match a.as_str() {
            "all" => plan.extend(
                [
                    ("create-burst", 100),
                    ("overhead", 30),
                    ("create-burst", 1000),
                    ("observe", 10000),
                    ("full", 10000),
                    ("namespaces", 50),
                ]
                .map(|(s, n)| (s.to_string(), n)),
            ),
            "create-burst" => plan.push((a.clone(), n.unwrap_or(100))),
            "overhead" => plan.push((a.clone(), n.unwrap_or(30))),
            "observe" | "full" => plan.push((a.clone(), n.unwrap_or(1000))),
            "namespaces" => plan.push((a.clone(), n.unwrap_or(50))),
            "table" => plan.push((a.clone(), 0)),
            other => {
                eprintln!("unknown scenario {other}; use create-burst N, overhead N, observe N, full N, namespaces N, table or all");
                std::process::exit(2);
            }
        }
    }
    if plan.is_empty() {
        eprintln!("usage: cargo bench --bench scale -- (create-burst N | overhead N | observe N | full N | namespaces N | table | all)...");
        return Ok(());
    }
    if plan.iter().all(|(s, _)| s == "table") {
        // no control plane, no build of anything else: rewrite the README tables and stop
        return table::write_readmes(repo()).map_err(Into::into);
    }
    eprintln!("machine: {}", machine());
    for (s, n) in plan {
        match s.as_str() {
            "create-burst" => scale_burst::create_burst(n).await?,
            "overhead" => scale_overhead::overhead(n).await?,
            "full" => scale_full::full(n).await?,
            "namespaces" => scale_full::namespaces(n).await?,
            "table" => table::write_readmes(repo())?,
            _ => scale_observe::observe(n).await?,
        }
    }
    Ok(())
}
