//! The observe scenario: N ObserveOnly objects adopting N stopped containers created directly
//! in the simulator: memory, steady state, pickup.

use super::*;

/// Creates `n` stopped containers directly in the simulator (vmid 100000+i, round robin over
/// the nodes), with latency off and a fast clock while it runs.
pub async fn populate(http: &SimHttp, n: usize, clock: f64) -> Res<()> {
    let t0 = Instant::now();
    http.post("/_sim/faults", json!({"latency": {"fixed_ms": 0}})).await;
    http.post("/_sim/clock?speed=1000", json!({})).await;
    let results: Vec<Res<Value>> = futures::stream::iter(0..n)
        .map(|i| {
            let http = http.clone();
            async move {
                let node = format!("pve{}", i % 3 + 1);
                let form = [
                    ("vmid", (100000 + i).to_string()),
                    ("ostemplate", OS_TEMPLATE.to_string()),
                    ("hostname", format!("obs{i}")),
                    ("rootfs", "local-lvm:1".to_string()),
                    ("memory", "256".to_string()),
                ];
                http.api_post(&format!("/nodes/{node}/lxc"), &form).await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    if !errors.is_empty() {
        return Err(format!("{} creates failed, first: {}", errors.len(), errors[0]).into());
    }
    loop {
        let cts = http.get("/_sim/containers").await;
        let list = cts.get("data").unwrap_or(&cts).as_array().cloned().unwrap_or_default();
        if list.len() >= n && list.iter().all(|c| c["lock"].is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    http.post("/_sim/faults", json!({"latency": {"fixed_ms": 20}})).await;
    http.post(&format!("/_sim/clock?speed={clock}"), json!({})).await;
    eprintln!(
        "  simulator populated with {n} containers in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

pub async fn observe(n: usize) -> Res<()> {
    let clock: f64 = env_or("BENCH_CLOCK_SPEED", 1.0);
    let load_before = loadavg();
    eprintln!(
        "== observe {n}: memory, steady state and pickup with {n} ObserveOnly LxcContainers (load {load_before})"
    );
    let e = Env::start("bench-observe", clock, Some(n)).await?;
    let (rss_idle, _) = rss(e.pid());
    dump_smaps(e.pid(), "observe-idle");
    let objs: Vec<Value> = (0..n)
        .map(|i| {
            container_obj(
                &format!("obs-{i:05}"),
                json!({"vmid": 100000 + i, "management": "ObserveOnly", "state": "Stopped"}),
            )
        })
        .collect();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    e.create_many(objs, 32).await?;
    let created_s = t0.elapsed().as_secs_f64();
    eprintln!("  {n} objects created in {created_s:.1}s");
    let ok = e.wait_all_ready(n, Duration::from_secs(1800), &mut samples, t0).await;
    let all_ready_s = t0.elapsed().as_secs_f64();
    let reasons = e.track.lock().unwrap().reasons.clone();
    let ready_n = e.ready_count();
    eprintln!("  {}/{n} Ready after {all_ready_s:.1}s", e.ready_count());
    let (_, hwm_load) = rss(e.pid());
    let steady_secs: u64 = env_or("BENCH_STEADY_SECS", 60);
    let steady = if steady_secs > 0 {
        e.steady(steady_secs).await
    } else {
        Value::Null
    };
    let (rss_steady, _) = rss(e.pid());
    let (anon_steady, file_steady) = rss_parts(e.pid());
    dump_smaps(e.pid(), "observe-steady");
    // pickup: one new resource while n exist → its first Proxmox request
    let samples_n: usize = env_or("BENCH_PICKUP_SAMPLES", 20);
    let (mut first, mut create_call) = (Vec::new(), Vec::new());
    for i in 0..samples_n {
        let name = format!("pick-{i:03}");
        let before = e.http.stats().await;
        let (base_other, base_create) = (
            non_inventory(&before),
            before["requests"]["POST /nodes/{node}/lxc"].as_u64().unwrap_or(0),
        );
        let t = Instant::now();
        let api = e.api.clone();
        let obj: DynamicObject = serde_json::from_value(container_obj(&name, json!({})))?;
        let create = tokio::spawn(async move { api.create(&PostParams::default(), &obj).await });
        let mut got_first = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let s = e.http.stats().await;
            if got_first.is_none() && non_inventory(&s) > base_other {
                got_first = Some(t.elapsed().as_secs_f64() * 1000.0);
            }
            if s["requests"]["POST /nodes/{node}/lxc"].as_u64().unwrap_or(0) > base_create {
                create_call.push(t.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        create.await??;
        first.extend(got_first);
        // let it settle (Ready) so its traffic does not count for the next one
        let deadline = Instant::now() + Duration::from_secs(60);
        while !e.track.lock().unwrap().ready.contains_key(&name) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    first.sort_by(f64::total_cmp);
    create_call.sort_by(f64::total_cmp);
    let (_, hwm) = rss(e.pid());
    let (rss_end, _) = rss(e.pid());
    eprintln!(
        "  pickup p50 {:.0} ms p99 {:.0} ms; RSS steady {rss_steady:.1} MiB, peak {hwm:.1} MiB",
        pct(&first, 50.0),
        pct(&first, 99.0)
    );
    let v = json!({
        "scenario": "observe", "n": n, "management": "ObserveOnly", "all_ready": ok, "ready": ready_n,
        "create_calls_s": r1(created_s), "all_ready_s": r1(all_ready_s), "ready_false_reasons_seen": reasons,
        "memory_mib": {"before_objects_vmrss": r1(rss_idle), "peak_vmhwm_while_loading": r1(hwm_load), "steady_vmrss": r1(rss_steady),
                        "peak_vmhwm": r1(hwm), "after_pickup_vmrss": r1(rss_end),
                        "steady_rss_anon": r1(anon_steady), "steady_rss_file": r1(file_steady)},
        "memory_target_mib": 64, "memory_target_met": hwm <= 64.0 && rss_steady <= 64.0,
        "steady_state": steady,
        "pickup_ms": {"samples": first.len(), "first_proxmox_request": {"p50": r1(pct(&first, 50.0)), "p99": r1(pct(&first, 99.0)), "max": r1(first.last().copied().unwrap_or(f64::NAN))},
                       "create_call": {"p50": r1(pct(&create_call, 50.0)), "p99": r1(pct(&create_call, 99.0))},
                       "note": "from the create call sent to the first non-inventory request counted by /_sim/stats (after its 20 ms latency), polled every 5 ms"},
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let st = &v["steady_state"];
    let md = format!(
        "{n} `management: ObserveOnly` LxcContainers adopting {n} stopped containers created directly in the simulator.\n\n\
         | figure | value | target |\n|---|---|---|\n\
         | {n} objects created (kube client, 32 in flight) | {created_s:.1} s | |\n\
         | all Ready (Observed) | {all_ready_s:.1} s ({ready_n} Ready) | |\n\
         | operator RSS before the objects | {rss_idle:.1} MiB | |\n\
         | operator RSS steady | **{rss_steady:.1} MiB** | ≤ 64 MiB |\n\
         | of which anonymous (heap, stacks) / file-backed (the binary's pages) | {anon_steady:.1} / {file_steady:.1} MiB | |\n\
         | operator peak RSS (VmHWM) | **{hwm:.1} MiB** | ≤ 64 MiB |\n\
         | steady state: inventory reads per resync ({}) | {} | ≤ 1 |\n\
         | steady state: drift reads per resync (10 containers in turn) | {} | flat |\n\
         | steady state: Kubernetes writes /min | {} | 0 |\n\
         | pickup: create → first Proxmox request, p50 / p99 ({} samples) | {:.0} ms / **{:.0} ms** | |\n\
         | pickup: create → create call (`POST /nodes/{{node}}/lxc`), p50 / p99 | {:.0} ms / {:.0} ms | |\n",
        e.resync, st["inventory_reads_per_resync"], st["drift_reads_per_resync"], st["kubernetes_writes_per_min"],
        first.len(), pct(&first, 50.0), pct(&first, 99.0), pct(&create_call, 50.0), pct(&create_call, 99.0),
    );
    write_result(&format!("observe-{n}"), &v, &md);
    Ok(())
}
