//! The overhead scenario: apply → Running minus the simulator's task time, a few at a time.

use super::*;

pub async fn overhead(n: usize) -> Res<()> {
    let clock: f64 = env_or("BENCH_CLOCK_SPEED", 1.0);
    let load_before = loadavg();
    let conc: usize = env_or("BENCH_OVERHEAD_CONCURRENCY", 2);
    eprintln!("== overhead {n} (clock ×{clock}, {conc} at a time, load {load_before})");
    // the production defaults (task poll interval 1 s, ...), unless BENCH_OPERATOR_ARGS says more
    let opts = EnvOpts {
        operator_defaults: true,
        ..Default::default()
    };
    let e = Env::start_with("bench-overhead", clock, opts).await?;
    // Instants (when the bench saw apply and Ready) as Unix ms, to set beside the simulator's
    let (i0, w0) = (Instant::now(), std::time::SystemTime::now());
    let unix_ms = |i: Instant| {
        let w = w0.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (w + i.duration_since(i0)).as_secs_f64() * 1000.0
    };
    let flags = operator_args().join(" ");
    let tm = task_ms();
    let names: Vec<String> = (0..n).map(|i| format!("oh-{i:04}")).collect();
    // `conc` ≤ task slots per node: no container ever waits for a slot, wherever it lands
    let e_ref = &e;
    futures::stream::iter(names.clone())
        .for_each_concurrent(conc, |name| async move {
            e_ref
                .create_many(vec![container_obj(&name, json!({}))], 1)
                .await
                .expect("create");
            let deadline = Instant::now() + Duration::from_secs(120);
            while !e_ref.track.lock().unwrap().ready.contains_key(&name) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    let tasks = e.http.get("/_sim/tasks").await;
    let mut task_time: HashMap<String, f64> = HashMap::new();
    let mut task_types: BTreeMap<String, u64> = BTreeMap::new();
    // per vmid: (first start, last end, first look that saw the last one ended), Unix ms
    let mut marks: HashMap<String, (f64, f64, f64)> = HashMap::new();
    for t in tasks.as_array().cloned().unwrap_or_default() {
        let id = t["id"].as_str().unwrap_or("").to_string();
        let typ = t["type"].as_str().unwrap_or("default");
        *task_time.entry(id.clone()).or_default() += task_work_ms(&t, &tm) / clock;
        *task_types.entry(typ.to_string()).or_default() += 1;
        let ms = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
        let m = marks.entry(id).or_insert((f64::INFINITY, f64::NAN, f64::NAN));
        m.0 = m.0.min(ms("started_ms"));
        (m.1, m.2) = (ms("ended_ms"), ms("seen_ended_ms"));
    }
    let (mut over, mut raw) = (Vec::new(), Vec::new());
    // the overhead in three parts: apply → task start, task end → seen, seen → Ready
    let (mut before, mut late, mut after) = (Vec::new(), Vec::new(), Vec::new());
    {
        let t = e.track.lock().unwrap();
        for name in &names {
            if let (Some(a), Some(r), Some(v)) = (t.applied.get(name), t.ready.get(name), t.vmid.get(name)) {
                let total = r.duration_since(*a).as_secs_f64() * 1000.0;
                raw.push(total);
                over.push(total - task_time.get(&v.to_string()).copied().unwrap_or(0.0));
                if let Some(&(s, end, seen)) = marks.get(&v.to_string()) {
                    before.push(s - unix_ms(*a));
                    late.push(seen - end);
                    after.push(unix_ms(*r) - seen);
                }
            }
        }
    }
    for v in [&mut over, &mut raw, &mut before, &mut late, &mut after] {
        v.sort_by(f64::total_cmp);
    }
    let (p50, p95, p99) = (pct(&over, 50.0), pct(&over, 95.0), pct(&over, 99.0));
    eprintln!(
        "  overhead p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms over {} containers",
        over.len()
    );
    let split = |v: &Vec<f64>| json!({"p50": r1(pct(v, 50.0)), "p99": r1(pct(v, 99.0)), "mean": r1(v.iter().sum::<f64>() / v.len().max(1) as f64)});
    let (before_j, late_j, after_j) = (split(&before), split(&late), split(&after));
    eprintln!(
        "  parts p50: apply→task start {} ms, task end→seen {} ms, seen→Ready {} ms",
        before_j["p50"], late_j["p50"], after_j["p50"]
    );
    let v = json!({
        "scenario": "overhead", "n": n, "measured": over.len(), "concurrency": conc, "clock_speed": clock, "task_ms_at_clock_1": tm,
        "sim_latency_ms": 20, "sim_task_jitter": sim_task_jitter(), "operator_flags": if flags.is_empty() { "defaults".to_string() } else { flags.clone() }, "sim_tasks_by_type": task_types,
        "overhead_ms": {"p50": r1(p50), "p95": r1(p95), "p99": r1(p99), "min": r1(over.first().copied().unwrap_or(f64::NAN)), "max": r1(over.last().copied().unwrap_or(f64::NAN))},
        "apply_to_ready_ms": {"p50": r1(pct(&raw, 50.0)), "p99": r1(pct(&raw, 99.0))},
        "parts_ms": {"apply_to_task_start": before_j, "task_end_to_seen": late_j, "seen_to_ready": after_j},
        "target": {"p50_ms": 300, "p99_ms": 1000}, "target_met": p50 <= 300.0 && p99 <= 1000.0,
        "machine": machine(), "load_before": load_before, "load_after": loadavg(),
    });
    let md = format!(
        "Apply → `Ready=True` minus the simulator's task time for that container (the tasks it ran for that vmid, as long as each actually took: {} — vzcreate {} ms, vzstart {} ms ±{:.0} % at clock ×{clock}), \
         {} containers, {conc} at a time (never waiting for a task slot), 20 ms latency per request, operator flags: {}.\n\n\
         | figure | value | target |\n|---|---|---|\n| overhead p50 | **{p50:.0} ms** | ≤ 300 ms |\n| overhead p95 | {p95:.0} ms | |\n| overhead p99 | **{p99:.0} ms** | ≤ 1 s |\n| apply→Ready p50 (raw) | {:.0} ms | |\n\n\
         Where it goes (p50 / mean / p99, ms): apply → the task's start {} / {} / {}; the task's end → the first status read that saw it {} / {} / {}; that read → `Ready=True` seen {} / {} / {}.\n",
        serde_json::to_string(&task_types).unwrap(), tm["vzcreate"], tm["vzstart"], sim_task_jitter() * 100.0, over.len(),
        if flags.is_empty() { "the defaults (task poll interval 1 s)".to_string() } else { format!("defaults + `{flags}`") }, pct(&raw, 50.0),
        before_j["p50"], before_j["mean"], before_j["p99"], late_j["p50"], late_j["mean"], late_j["p99"], after_j["p50"], after_j["mean"], after_j["p99"]
    );
    write_result(&format!("overhead-{n}"), &v, &md);
    Ok(())
}
