//! The scenarios of containers that exist already: `full N` (N `management: Full` objects whose
//! containers are in Proxmox: adoption, steady state, memory, the time of one spec change) and
//! `namespaces N` (N tenants' namespaces on one cluster-scoped `ProxmoxCluster`).
//!
//! Creating thousands of containers through `vzcreate` would take most of an hour here, so the
//! operator creates one (the *model*), is stopped while the objects are created (their uids are
//! only known then), and the simulator is seeded with copies of the model, each carrying its
//! object's identity tag `k8s-<uid>` and host name (`POST /_sim/containers/{vmid}/copies`). The
//! operator, started again, finds every container already there and adopts it as its own.

use super::*;
use kube::api::{Patch, PatchParams};

const MODEL: &str = "full-model";

/// DESIGN.md §5: RSS at 10,000 `management: Full` containers.
const FULL_MEMORY_TARGET_MIB: f64 = 96.0;

/// The config keys of a copy: every value of the model's config that names the model (its uid
/// or its name) with the object's own instead. Disks are not among them (the simulator gives
/// each copy its own).
pub fn personalised(model: &Value, model_uid: &str, uid: &str, name: &str) -> serde_json::Map<String, Value> {
    model["config"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "rootfs" && !k.starts_with("mp") && k.as_str() != "lock")
        .filter_map(|(k, v)| {
            let v = v.as_str()?;
            (v.contains(model_uid) || v.contains(MODEL))
                .then(|| (k.clone(), json!(v.replace(model_uid, uid).replace(MODEL, name))))
        })
        .collect()
}

/// What seeding and adoption gave.
struct Adopted {
    created_s: f64,
    seeded_s: f64,
    all_ready: bool,
    adopt_s: f64,
    tasks_started: u64,
    requests: Value,
    rss_before: f64,
    hwm_adopting: f64,
    /// vmid of each object, by name.
    vmids: HashMap<String, u32>,
}

/// Creates the model through the operator, stops the operator, creates `groups` of objects
/// (each through its namespace's api, every object with a `vmid` in its spec), seeds the
/// simulator with their containers, starts the operator again and waits until all are Ready.
async fn seed_and_adopt(e: &mut Env, groups: Vec<(Api<DynamicObject>, Vec<Value>)>) -> Res<Adopted> {
    let api = e.api.clone();
    let model_uid = e.create_many_in(&api, vec![container_obj(MODEL, json!({}))], 1).await?[MODEL].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !e.track.lock().unwrap().ready.contains_key(MODEL) {
        if Instant::now() > deadline {
            return Err("the model container did not get Ready".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let model_vmid = e.track.lock().unwrap().vmid[MODEL];
    let model = e.http.get(&format!("/_sim/containers/{model_vmid}")).await;
    let rss_before = rss(e.pid()).0;
    e.op.kill();
    let t0 = Instant::now();
    let mut uids = HashMap::new();
    let mut vmids = HashMap::new();
    for (api, objs) in groups {
        for o in &objs {
            let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
            vmids.insert(name, o["spec"]["vmid"].as_u64().unwrap_or(0) as u32);
        }
        uids.extend(e.create_many_in(&api, objs, 32).await?);
    }
    let created_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut names: Vec<&String> = uids.keys().collect();
    names.sort();
    for (c, chunk) in names.chunks(1000).enumerate() {
        let copies: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let set = personalised(&model, &model_uid, &uids[*name], name);
                json!({"vmid": vmids[*name], "node": format!("pve{}", (c * 1000 + i) % 3 + 1), "set": set})
            })
            .collect();
        let r = e
            .http
            .post(
                &format!("/_sim/containers/{model_vmid}/copies"),
                json!({"copies": copies}),
            )
            .await;
        if r["made"].as_u64() != Some(chunk.len() as u64) {
            return Err(format!("seeding failed: {r}").into());
        }
    }
    let seeded_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "  {} objects created in {created_s:.1}s, their containers seeded in {seeded_s:.1}s",
        uids.len()
    );
    let tasks_before = e.http.get("/_sim/tasks").await.as_array().map_or(0, Vec::len) as u64;
    e.http.post("/_sim/stats/reset", json!({})).await;
    let t2 = Instant::now();
    e.op.restart();
    let mut samples = Vec::new();
    let n = uids.len() + 1;
    let all_ready = e.wait_all_ready(n, Duration::from_secs(1800), &mut samples, t2).await;
    let adopt_s = t2.elapsed().as_secs_f64();
    let tasks_after = e.http.get("/_sim/tasks").await.as_array().map_or(0, Vec::len) as u64;
    let requests = e.http.stats().await;
    Ok(Adopted {
        created_s,
        seeded_s,
        all_ready,
        adopt_s,
        tasks_started: tasks_after - tasks_before,
        requests,
        rss_before,
        hwm_adopting: rss(e.pid()).1,
        vmids,
    })
}

/// The time from a spec change (cores) to the simulator's config showing it, in ms.
async fn spec_change(e: &Env, name: &str, vmid: u32, cores: u32) -> Res<f64> {
    let t = Instant::now();
    let patch = json!({"spec": {"resources": {"cores": cores}}});
    e.api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let want = cores.to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let c = e.http.get(&format!("/_sim/containers/{vmid}")).await;
        if c["config"]["cores"].as_str() == Some(want.as_str()) {
            return Ok(t.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!("{name}: cores {cores} did not reach Proxmox within 60 s").into())
}

/// The figures of an adoption, as JSON.
fn adoption_json(a: &Adopted, n: usize) -> Value {
    json!({"objects_created_s": r1(a.created_s), "containers_seeded_s": r1(a.seeded_s), "all_ready": a.all_ready,
           "adoption_all_ready_s": r1(a.adopt_s), "sim_tasks_started_while_adopting": a.tasks_started,
           "proxmox_requests_while_adopting": a.requests["total"], "proxmox_requests_per_object_while_adopting": r1(a.requests["total"].as_f64().unwrap_or(0.0) / n as f64),
           "proxmox_requests_by_endpoint_while_adopting": a.requests["requests"]})
}

pub async fn full(n: usize) -> Res<()> {
    let clock: f64 = env_or("BENCH_CLOCK_SPEED", 1.0);
    let load_before = loadavg();
    eprintln!("== full {n}: {n} Full LxcContainers whose containers exist (load {load_before})");
    let opts = EnvOpts {
        rps: Some(env_or("BENCH_RPS", 1000)),
        ..Default::default()
    };
    let mut e = Env::start_with("bench-full", clock, opts).await?;
    let objs: Vec<Value> = (0..n)
        .map(|i| container_obj(&format!("full-{i:05}"), json!({"vmid": 100000 + i})))
        .collect();
    let api = e.api.clone();
    let a = seed_and_adopt(&mut e, vec![(api, objs)]).await?;
    eprintln!("  {n} adopted in {:.1}s ({} tasks started)", a.adopt_s, a.tasks_started);
    let steady_secs: u64 = env_or("BENCH_STEADY_SECS", 60);
    let steady = e.steady(steady_secs).await;
    let (rss_steady, _) = rss(e.pid());
    let (anon_steady, file_steady) = rss_parts(e.pid());
    dump_smaps(e.pid(), "full-steady");
    let samples_n: usize = env_or("BENCH_PICKUP_SAMPLES", 20);
    let mut change = Vec::new();
    for i in 0..samples_n {
        let name = format!("full-{:05}", i * n / samples_n.max(1));
        change.push(spec_change(&e, &name, a.vmids[&name], 2).await?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    change.sort_by(f64::total_cmp);
    let (rss_end, hwm) = rss(e.pid());
    eprintln!(
        "  spec change p50 {:.0} ms p99 {:.0} ms; RSS steady {rss_steady:.1} MiB, peak {hwm:.1} MiB",
        pct(&change, 50.0),
        pct(&change, 99.0)
    );
    let v = json!({
        "scenario": "full", "n": n, "management": "Full", "requests_per_second_limit": env_or("BENCH_RPS", 1000),
        "adoption": adoption_json(&a, n),
        "steady_state": steady,
        "memory_mib": {"before_objects_vmrss": r1(a.rss_before), "peak_vmhwm_while_adopting": r1(a.hwm_adopting), "steady_vmrss": r1(rss_steady),
                        "peak_vmhwm": r1(hwm), "after_spec_changes_vmrss": r1(rss_end),
                        "steady_rss_anon": r1(anon_steady), "steady_rss_file": r1(file_steady)},
        "memory_target_mib": FULL_MEMORY_TARGET_MIB,
        "memory_target_met": hwm <= FULL_MEMORY_TARGET_MIB && rss_steady <= FULL_MEMORY_TARGET_MIB,
        "spec_change_ms": {"samples": change.len(), "p50": r1(pct(&change, 50.0)), "p99": r1(pct(&change, 99.0)), "max": r1(change.last().copied().unwrap_or(f64::NAN)),
                           "note": "from the patch of spec.resources.cores sent to the simulator's config showing it (polled every 5 ms)"},
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let st = &v["steady_state"];
    let md = format!(
        "{n} `management: Full` LxcContainers (1 core, 256 MiB, Running) whose containers exist in the simulator: \
         copies of one the operator created, seeded while the operator was stopped, each with its object's identity tag; \
         the operator, started again, adopts them (requestsPerSecond {}).\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | {n} objects created (kube client, 32 in flight) / containers seeded | {:.1} s / {:.1} s | |\n\
         | operator start → all Ready (adopted) | {:.1} s | |\n\
         | Proxmox tasks started while adopting | {} | 0 |\n\
         | Proxmox requests while adopting, per object | {} | |\n\
         | steady state: inventory reads per resync ({}) | {} | ≤ 1 |\n\
         | steady state: drift reads per resync (the drift-check budget) | {} | flat |\n\
         | steady state: Kubernetes writes /min | {} | 0 |\n\
         | operator RSS before the objects / steady / peak (VmHWM) | {:.1} MiB / **{rss_steady:.1} MiB** / {hwm:.1} MiB | ≤ {FULL_MEMORY_TARGET_MIB} MiB |\n\
         | of which anonymous (heap, stacks) / file-backed (the binary's pages), steady | {anon_steady:.1} / {file_steady:.1} MiB | |\n\
         | spec change (cores) → Proxmox config, p50 / p99 ({} samples) | {:.0} ms / **{:.0} ms** | |\n",
        v["requests_per_second_limit"], a.created_s, a.seeded_s, a.adopt_s, a.tasks_started,
        v["adoption"]["proxmox_requests_per_object_while_adopting"],
        e.resync, st["inventory_reads_per_resync"], st["drift_reads_per_resync"], st["kubernetes_writes_per_min"],
        a.rss_before, change.len(), pct(&change, 50.0), pct(&change, 99.0),
    );
    write_result(&format!("full-{n}"), &v, &md);
    Ok(())
}

pub async fn namespaces(n: usize) -> Res<()> {
    let clock: f64 = env_or("BENCH_CLOCK_SPEED", 1.0);
    let per: usize = env_or("BENCH_PER_NAMESPACE", 20);
    let load_before = loadavg();
    eprintln!("== namespaces {n}: {n} namespaces × {per} Full containers on one ProxmoxCluster (load {load_before})");
    let cp = ControlPlane::shared();
    let tenants: Vec<String> = (0..n).map(|_| cp.namespace("bench-tenant")).collect();
    let opts = EnvOpts {
        rps: Some(env_or("BENCH_RPS", 1000)),
        namespaces: tenants.clone(),
        ..Default::default()
    };
    let mut e = Env::start_with("bench-ns", clock, opts).await?;
    let client = kube_client(cp).await?;
    let groups: Vec<(Api<DynamicObject>, Vec<Value>)> = tenants
        .iter()
        .enumerate()
        .map(|(t, ns)| {
            let api = Api::namespaced_with(client.clone(), ns, &lxc_resource());
            let objs = (0..per)
                .map(|i| container_obj(&format!("t{t:02}-{i:03}"), json!({"vmid": 100000 + t * per + i})))
                .collect();
            (api, objs)
        })
        .collect();
    let a = seed_and_adopt(&mut e, groups).await?;
    eprintln!(
        "  {} adopted in {:.1}s ({} tasks started)",
        n * per,
        a.adopt_s,
        a.tasks_started
    );
    let steady_secs: u64 = env_or("BENCH_STEADY_SECS", 60);
    let steady = e.steady(steady_secs).await;
    let (rss_steady, hwm) = rss(e.pid());
    let v = json!({
        "scenario": "namespaces", "n": n, "containers_per_namespace": per, "containers": n * per, "clusters": 1,
        "operator_namespaces_watched": n + 1, "requests_per_second_limit": env_or("BENCH_RPS", 1000),
        "adoption": adoption_json(&a, n * per),
        "steady_state": steady,
        "memory_mib": {"steady_vmrss": r1(rss_steady), "peak_vmhwm": r1(hwm)},
        "target_met": steady["target_met"],
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let st = &v["steady_state"];
    let md = format!(
        "{n} tenants' namespaces with {per} `management: Full` LxcContainers each ({} in all), every one on the same cluster-scoped \
         ProxmoxCluster (the default cluster, in the operator's own namespace); the operator watches {} namespaces. \
         Containers seeded as in [full-10000](full-10000.md).\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | operator start → all Ready (adopted) | {:.1} s | |\n\
         | Proxmox tasks started while adopting | {} | 0 |\n\
         | steady state: inventory reads per resync ({}) | **{}** | ≤ 1 |\n\
         | steady state: drift reads per resync (the drift-check budget) | {} | flat |\n\
         | steady state: Kubernetes writes /min | **{}** | 0 |\n\
         | operator RSS steady / peak (VmHWM) | {rss_steady:.1} MiB / {hwm:.1} MiB | |\n",
        n * per, n + 1, a.adopt_s, a.tasks_started,
        e.resync, st["inventory_reads_per_resync"], st["drift_reads_per_resync"], st["kubernetes_writes_per_min"],
    );
    write_result(&format!("namespaces-{n}"), &v, &md);
    Ok(())
}
