//! Pods on Proxmox benchmark (issue 18): N Pods created at once on a cluster with virtual
//! nodes, through a real control plane (the operator binds them: they ask for
//! `schedulerName: proxmox-lxc`; the ServiceAccount token volume is mounted as anywhere), against `pve-sim` with 20 ms latency and the task
//! durations of tests/bench/sim-bench.yaml.
//!
//! ```sh
//! cargo bench --bench pods -- 100       # 100 Pods at once → all Running
//! ```
//!
//! Figures: create → `Running` per Pod (p50/p99), the same minus the simulator's task time for
//! that Pod's container (`vzcreate` + `vzstart`: what is left is queueing for task slots, the
//! image pull, the config update and the operator's own time), the limit (every task packed
//! into the task slots) and the ratio to it, image pulls, and Proxmox requests per Pod. Results
//! go to `tests/bench/results/pods-N.{json,md}`.

#[path = "../common/mod.rs"]
mod common;

#[path = "harness.rs"]
mod harness;

use common::*;
use futures::StreamExt;
use harness::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIM_CONFIG: &str = "tests/bench/sim-bench.yaml";
const IMAGE: &str = "nginx:1.27";

/// When each Pod was created and first seen Running.
#[derive(Default)]
struct Track {
    created: HashMap<String, Instant>,
    running: HashMap<String, Instant>,
}

async fn watch_pods(api: Api<Pod>, track: Arc<Mutex<Track>>) {
    let mut s = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = s.next().await {
        let pods: Vec<Pod> = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => vec![p],
            _ => continue,
        };
        for p in pods {
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if running {
                let name = p.metadata.name.clone().unwrap_or_default();
                track.lock().unwrap().running.entry(name).or_insert_with(Instant::now);
            }
        }
    }
}

fn task_ms() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(repo().join(SIM_CONFIG)).unwrap();
    let cfg = proxmox_lxc_operator::sim::SimConfig::from_yaml(&text).unwrap();
    ["vzcreate", "vzstart", "ociregistrypull", "default"]
        .iter()
        .map(|t| (t.to_string(), cfg.task_duration_ms(t)))
        .collect()
}

async fn pods(n: usize) -> Res<()> {
    let load_before = loadavg();
    eprintln!("== pods {n} (load {load_before})");
    let cp = ControlPlane::shared();
    let ns = cp.namespace("bench-pods");
    let cfg = repo().join(SIM_CONFIG);
    let sim = Sim::start(&["--config", cfg.to_str().unwrap(), "--seed", "1"]);
    let http = SimHttp::new(&sim.url);
    let slots: u32 = env_or("BENCH_SLOTS", 2);
    let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pve-credentials"},
         "stringData": {"tokenId": SIM_TOKEN_ID, "tokenSecret": SIM_TOKEN_SECRET}},
        {"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "ProxmoxCluster",
         "metadata": serde_json::from_str::<Value>(&cluster_metadata(&ns))?,
         "spec": {"endpoints": [sim.url], "credentialsRef": {"name": "pve-credentials"}, "tls": {"fingerprint": sim.fingerprint},
                  "resyncInterval": "15s", "limits": {"maxConcurrentTasksPerNode": slots, "requestsPerSecond": 200},
                  "virtualNodes": {"namespaces": "All"}}}]});
    let out = cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&manifest.to_string()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kubelet = format!("127.0.0.1:{}", free_port());
    let op = Operator::start_with(
        cp,
        &ns,
        &[
            "--virtual-nodes",
            "--kubelet-addr",
            &kubelet,
            "--node-renew-interval",
            "2s",
        ],
    );
    wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(120));
    wait_for("the virtual Nodes", Duration::from_secs(60), || {
        let nodes = cp.kubectl_ok(&["get", "nodes", "-l", &format!("pve.lxc.dev/cluster={ns}"), "-o", "name"]);
        (nodes.lines().count() == 3).then_some(())
    });
    let client = kube_client(cp).await?;
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let track = Arc::new(Mutex::new(Track::default()));
    tokio::spawn(watch_pods(api.clone(), track.clone()));
    http.post("/_sim/stats/reset", json!({})).await;
    let names: Vec<String> = (0..n).map(|i| format!("p-{i:04}")).collect();
    let t0 = Instant::now();
    let results: Vec<Res<()>> = futures::stream::iter(names.clone())
        .map(|name| {
            let (api, track) = (api.clone(), track.clone());
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": {"schedulerName": "proxmox-lxc",
                             "containers": [{"name": "app", "image": IMAGE,
                                             "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}}))?;
                api.create(&PostParams::default(), &pod).await?;
                track.lock().unwrap().created.insert(name, Instant::now());
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect::<Res<Vec<()>>>()?;
    let deadline = Instant::now() + Duration::from_secs(env_or("BENCH_DEADLINE_S", 600));
    let pid = op.pid().expect("operator running");
    // the operator's memory while the Pods start (sampled every second) and once all run
    let mut peak_rss = 0.0f64;
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    loop {
        let r = track.lock().unwrap().running.len();
        if last_sample.elapsed() >= Duration::from_secs(1) {
            peak_rss = peak_rss.max(rss(pid).0);
            last_sample = Instant::now();
        }
        if r >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let total_s = t0.elapsed().as_secs_f64();
    // settled: 10 s after the last Pod ran (status writes, the consoles attached)
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss_settled, hwm) = rss(pid);
    let (anon, file) = rss_parts(pid);
    eprintln!("  operator RSS: peak {peak_rss:.1} MiB while starting, {rss_settled:.1} MiB settled (anon {anon:.1}, file {file:.1}), VmHWM {hwm:.1} MiB");
    let stats = http.stats().await;
    let tasks = http.get("/_sim/tasks").await;
    let tm = task_ms();
    // the simulator's task time per vmid, and every task packed into the slots (the limit)
    let (mut per_vmid, mut types, mut all_tasks_s) =
        (HashMap::<String, f64>::new(), BTreeMap::<String, u64>::new(), 0.0);
    for t in tasks.as_array().cloned().unwrap_or_default() {
        let typ = t["type"].as_str().unwrap_or("default");
        let ms = tm.get(typ).copied().unwrap_or(tm["default"]) as f64;
        *per_vmid.entry(t["id"].as_str().unwrap_or("").to_string()).or_default() += ms;
        *types.entry(typ.to_string()).or_default() += 1;
        all_tasks_s += ms / 1000.0;
    }
    let limit_s = all_tasks_s / (3.0 * slots as f64);
    let children = cp.kubectl_ok(&["get", "lxc", "-n", &ns, "-o", "json"]);
    let vmid_of: HashMap<String, String> = serde_json::from_str::<Value>(&children)?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("pod-")
                    .to_string(),
                c["status"]["vmid"].to_string(),
            )
        })
        .collect();
    let (mut start, mut over) = (Vec::new(), Vec::new());
    {
        let t = track.lock().unwrap();
        for name in &names {
            if let (Some(c), Some(r)) = (t.created.get(name), t.running.get(name)) {
                let ms = r.duration_since(*c).as_secs_f64() * 1000.0;
                start.push(ms);
                let raw = vmid_of.get(name).and_then(|v| per_vmid.get(v)).copied().unwrap_or(0.0);
                over.push(ms - raw);
            }
        }
    }
    start.sort_by(f64::total_cmp);
    over.sort_by(f64::total_cmp);
    let running = start.len();
    let requests = stats["total"].as_u64().unwrap_or(0) as f64;
    let inventory = stats["requests"]["GET /cluster/resources"].as_u64().unwrap_or(0) as f64;
    let per_pod = (requests - inventory) / n as f64;
    let ratio = total_s / limit_s;
    eprintln!(
        "  {running}/{n} Running in {total_s:.1}s (limit {limit_s:.1}s, ×{ratio:.2}); start p50 {:.0} ms p99 {:.0} ms; minus task time p50 {:.0} ms p99 {:.0} ms; {per_pod:.1} requests per Pod",
        pct(&start, 50.0),
        pct(&start, 99.0),
        pct(&over, 50.0),
        pct(&over, 99.0)
    );
    let v = json!({
        "scenario": "pods", "n": n, "running": running, "all_running_s": r1(total_s), "limit_s": r1(limit_s),
        "ratio_to_limit": (ratio * 100.0).round() / 100.0, "slots": 3 * slots, "sim_latency_ms": 20,
        "task_ms_at_clock_1": tm, "sim_tasks_by_type": types,
        "pod_start_ms": {"p50": r1(pct(&start, 50.0)), "p99": r1(pct(&start, 99.0))},
        "pod_start_minus_task_time_ms": {"p50": r1(pct(&over, 50.0)), "p99": r1(pct(&over, 99.0))},
        "proxmox_requests": requests, "inventory_reads": inventory,
        "proxmox_requests_per_pod": r1(per_pod), "proxmox_requests_by_endpoint": stats["requests"],
        "operator_rss_mib": {"peak_while_starting": r1(peak_rss), "settled": r1(rss_settled), "anon": r1(anon), "file": r1(file), "hwm": r1(hwm)},
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let md = format!(
        "{n} Pods (`{IMAGE}`, `schedulerName: proxmox-lxc`) created at once (16 in flight) on 3 virtual nodes, \
         {} task slots (3 nodes × {slots}), 20 ms latency per request.\n\n\
         | figure | value |\n|---|---|\n\
         | Pods Running | {running}/{n} |\n\
         | all Running after | {total_s:.1} s |\n\
         | limit (every task packed into the slots) | {limit_s:.1} s (×{ratio:.2}) |\n\
         | Pod start p50 / p99 | {:.0} ms / {:.0} ms |\n\
         | Pod start minus its container's task time p50 / p99 | **{:.0} ms / {:.0} ms** |\n\
         | Proxmox requests per Pod (without inventory reads) | **{per_pod:.1}** |\n\
         | operator RSS: peak while starting / settled (anon + file) / VmHWM | {peak_rss:.1} MiB / {rss_settled:.1} MiB ({anon:.1} + {file:.1}) / {hwm:.1} MiB |\n\
         | tasks | {} |\n\n\
         The start of a Pod includes waiting for a task slot behind the others (the burst) and for the \
         image pull of its node; the figure minus its own task time is that wait plus the operator's time.\n",
        3 * slots,
        pct(&start, 50.0),
        pct(&start, 99.0),
        pct(&over, 50.0),
        pct(&over, 99.0),
        serde_json::to_string(&types)?,
    );
    write_result(&format!("pods-{n}"), &v, &md);
    drop(op);
    drop(sim);
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .find_map(|a| a.parse::<usize>().ok());
    let Some(n) = n else {
        eprintln!("usage: cargo bench --bench pods -- N");
        return Ok(());
    };
    eprintln!("machine: {}", machine());
    pods(n).await
}
