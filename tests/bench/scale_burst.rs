//! The create-burst scenario: N containers at once, all Ready against the task-slot limit, then
//! steady state and memory at N; and its chart.

use super::*;

/// Containers Ready over time against the limit line, as plain SVG.
fn burst_svg(n: usize, ready_s: &[f64], ideal_s: f64, total_s: f64, slots: u32, clock: f64) -> String {
    let (w, h, ml, mr, mt, mb) = (760.0, 420.0, 70.0, 20.0, 40.0, 50.0);
    let xmax = total_s.max(ideal_s) * 1.05;
    let ymax = n as f64 * 1.05;
    let x = |t: f64| ml + t / xmax * (w - ml - mr);
    let y = |c: f64| h - mb - c / ymax * (h - mt - mb);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="14">Create burst: {n} LxcContainers on 3 nodes, {slots} task slots per node (clock ×{clock})</text>
"#,
        w / 2.0
    );
    // axes and grid
    for i in 0..=5 {
        let c = ymax / 1.05 * i as f64 / 5.0;
        s += &format!(
            r##"<line x1="{ml}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{c:.0}</text>
"##,
            w - mr,
            ml - 6.0,
            y(c) + 4.0,
            y = y(c)
        );
        let t = xmax / 1.05 * i as f64 / 5.0;
        s += &format!(
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{mt}" y2="{}" stroke="#eee"/><text x="{xx:.1}" y="{}" text-anchor="middle">{t:.0}</text>
"##,
            h - mb,
            h - mb + 16.0,
            xx = x(t)
        );
    }
    s += &format!(
        r##"<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{}" stroke="black"/><line x1="{ml}" x2="{}" y1="{}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">seconds since the first create</text>
<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">containers Ready</text>
"##,
        h - mb,
        w - mr,
        h - mb,
        h - mb,
        (ml + w - mr) / 2.0,
        h - 10.0,
        (mt + h - mb) / 2.0,
        (mt + h - mb) / 2.0
    );
    // limit line: the task slots kept busy all the time
    s += &format!(
        r##"<polyline fill="none" stroke="#c33" stroke-dasharray="6 4" stroke-width="2" points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>
"##,
        x(0.0),
        y(0.0),
        x(ideal_s),
        y(n as f64),
        x(xmax / 1.05),
        y(n as f64)
    );
    // measured staircase
    let mut pts = format!("{:.1},{:.1}", x(0.0), y(0.0));
    for (i, t) in ready_s.iter().enumerate() {
        pts += &format!(" {:.1},{:.1} {:.1},{:.1}", x(*t), y(i as f64), x(*t), y(i as f64 + 1.0));
    }
    s += &format!(
        r##"<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{pts}"/>
<rect x="{}" y="{}" width="250" height="42" fill="white" stroke="#ccc"/>
<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#1f5fbf" stroke-width="2"/><text x="{}" y="{}">measured: all Ready at {total_s:.1} s</text>
<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#c33" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="{}">limit: {ideal_s:.1} s (ratio {:.2}×)</text>
</svg>
"##,
        w - mr - 260.0,
        h - mb - 56.0,
        w - mr - 252.0,
        w - mr - 222.0,
        h - mb - 42.0,
        h - mb - 42.0,
        w - mr - 216.0,
        h - mb - 38.0,
        w - mr - 252.0,
        w - mr - 222.0,
        h - mb - 24.0,
        h - mb - 24.0,
        w - mr - 216.0,
        h - mb - 20.0,
        total_s / ideal_s
    );
    s
}

pub async fn create_burst(n: usize) -> Res<()> {
    let clock: f64 = env_or("BENCH_CLOCK_SPEED", if n > 200 { 2.0 } else { 1.0 });
    let load_before = loadavg();
    eprintln!("== create-burst {n} (clock ×{clock}, load {load_before})");
    let e = Env::start("bench-burst", clock, None).await?;
    let tm = task_ms();
    let capacity = 3.0 * e.slots as f64;
    e.http.post("/_sim/stats/reset", json!({})).await;
    let objs: Vec<Value> = (0..n)
        .map(|i| container_obj(&format!("ct-{i:05}"), json!({})))
        .collect();
    let t0 = Instant::now();
    let mut samples = Vec::new();
    e.create_many(objs, 16).await?;
    let created_s = t0.elapsed().as_secs_f64();
    let ok = e
        .wait_all_ready(
            n,
            Duration::from_secs_f64(
                n as f64 * (tm["vzcreate"] + tm["vzstart"]) as f64 / 1000.0 / clock / capacity * 4.0 + 180.0,
            ),
            &mut samples,
            t0,
        )
        .await;
    let (ready_s, total_s, lock_shown, reasons) = {
        let t = e.track.lock().unwrap();
        let mut r: Vec<f64> = t.ready.values().map(|i| i.duration_since(t0).as_secs_f64()).collect();
        r.sort_by(f64::total_cmp);
        let total = r.last().copied().unwrap_or(f64::NAN);
        (r, total, t.lock_shown.len(), t.reasons.clone())
    };
    let stats = e.http.stats().await;
    let metrics = e.op.metrics();
    let (_, hwm_burst) = rss(e.pid());
    // the limit: every task the simulator ran for these containers, packed perfectly into
    // the task slots (3 nodes × slots), i.e. Σ task durations / slots
    let (task_s, task_types) = sim_task_time(&e.http, &tm, clock).await;
    let mut ideal_s = task_s / capacity;
    if !ok {
        // unfinished: the limit of the whole burst (one vzcreate per container) is the fair one
        ideal_s = ideal_s.max(n as f64 * tm["vzcreate"] as f64 / 1000.0 / clock / capacity);
    }
    let ratio = total_s / ideal_s;
    eprintln!(
        "  {}/{n} Ready in {total_s:.1}s; limit {ideal_s:.1}s; ratio {ratio:.2}",
        ready_s.len()
    );
    let failed_statuses: u64 = stats["statuses"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.starts_with('2'))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let steady_secs: u64 = env_or("BENCH_STEADY_SECS", 60);
    let steady = if ok && steady_secs > 0 {
        e.steady(steady_secs).await
    } else {
        Value::Null
    };
    let (rss_steady, hwm) = rss(e.pid());
    let svg = burst_svg(n, &ready_s, ideal_s, total_s, e.slots, clock);
    std::fs::create_dir_all(out_dir())?;
    std::fs::write(out_dir().join(format!("create-burst-{n}.svg")), svg)?;
    let v = json!({
        "scenario": "create-burst", "n": n, "nodes": 3, "max_concurrent_tasks_per_node": e.slots, "clock_speed": clock,
        "task_ms_at_clock_1": tm, "sim_tasks_by_type": task_types, "sim_task_time_s": r1(task_s), "sim_latency_ms": 20, "all_ready": ok, "ready": ready_s.len(),
        "create_calls_s": r1(created_s), "all_ready_s": r1(total_s), "limit_s": r1(ideal_s), "ratio": (ratio * 100.0).round() / 100.0,
        "target_ratio": 1.2, "target_met": ok && ratio <= 1.2 && lock_shown == 0,
        "ready_false_reasons_seen": reasons, "objects_that_showed_a_lock_error": lock_shown,
        "sim_max_concurrent_tasks": stats["max_concurrent_tasks"], "sim_tasks_started": stats["tasks_started"], "sim_tasks_failed": stats["tasks_failed"],
        "sim_non_2xx_answers": failed_statuses, "sim_requests_total": stats["total"],
        "operator_proxmox_requests": metric_sum(&metrics, "plo_proxmox_requests_total"),
        "operator_kubernetes_writes": metric_sum(&metrics, "plo_kubernetes_writes_total"),
        "steady_state": steady,
        "memory_mib": {"peak_vmhwm_during_burst": r1(hwm_burst), "peak_vmhwm": r1(hwm), "steady_vmrss": r1(rss_steady),
                        "max_sampled_vmrss": r1(samples.iter().map(|s| s.1).fold(0.0, f64::max))},
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let st = &v["steady_state"];
    let md = format!(
        "| figure | value | target |\n|---|---|---|\n\
         | all {n} Ready | {total_s:.1} s ({} Ready) | |\n\
         | limit: Σ simulated task time ({task_s:.0} s: {}) / (3 nodes × {} slots) | {ideal_s:.1} s | |\n\
         | ratio | **{ratio:.2}×** | ≤ 1.2× |\n\
         | objects that showed a lock error / failed tasks | {lock_shown} / {} | 0 |\n\
         | Ready=False reasons seen (objects) | {} | |\n\
         | steady state: inventory reads per resync ({}) | {} | ≤ 1 |\n\
         | steady state: drift reads per resync (10 containers in turn) | {} | flat |\n\
         | steady state: Kubernetes writes /min | {} | 0 |\n\
         | operator RSS steady / peak (VmHWM) | {rss_steady:.1} MiB / {hwm:.1} MiB | ≤ 64 MiB at 10,000 |\n\n\
         Chart: [create-burst-{n}.svg](create-burst-{n}.svg)\n",
        ready_s.len(),
        serde_json::to_string(&task_types).unwrap(),
        e.slots,
        stats["tasks_failed"],
        serde_json::to_string(&reasons).unwrap(),
        e.resync,
        st["inventory_reads_per_resync"],
        st["drift_reads_per_resync"],
        st["kubernetes_writes_per_min"],
    );
    write_result(&format!("create-burst-{n}"), &v, &md);
    drop(e);
    Ok(())
}

/// Σ of the durations of every task the simulator ran (seconds at `clock`), and counts by type.
async fn sim_task_time(http: &SimHttp, tm: &BTreeMap<String, u64>, clock: f64) -> (f64, BTreeMap<String, u64>) {
    let tasks = http.get("/_sim/tasks").await;
    let mut total = 0.0;
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    for t in tasks.as_array().cloned().unwrap_or_default() {
        let typ = t["type"].as_str().unwrap_or("default");
        total += task_work_ms(&t, tm) / 1000.0 / clock;
        *types.entry(typ.to_string()).or_default() += 1;
    }
    (total, types)
}
