//! The benchmark table of README.md and tests/bench/README.md, generated from the result files in
//! tests/bench/results/ (`cargo bench --bench scale -- table` rewrites both; a test in
//! tests/crds_generated.rs fails when either drifts from the files). Only std and serde_json: the
//! test includes this file without the rest of the harness.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;

/// The line that opens the generated table.
pub const BEGIN: &str = "<!-- BEGIN bench table: generated from tests/bench/results/ by `cargo bench --bench scale -- table`; do not edit -->";
/// The line that closes it.
pub const END: &str = "<!-- END bench table -->";

/// The documents holding the table, with the path from each to the results directory.
pub const DOCS: [(&str, &str); 2] = [
    ("README.md", "tests/bench/results/"),
    ("tests/bench/README.md", "results/"),
];

/// The result files the table shows, in order.
const FILES: [&str; 6] = [
    "create-burst-100",
    "create-burst-1000",
    "overhead-30",
    "observe-10000",
    "full-10000",
    "namespaces-50",
];

/// One row: what, the figure, the target, whether it is met, the result file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub what: String,
    pub figure: String,
    pub target: String,
    pub met: Option<bool>,
    pub file: String,
}

fn num(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
        None => "—".into(),
    }
}

/// Milliseconds, whole.
fn ms(v: &Value) -> String {
    v.as_f64().map_or("—".into(), |x| format!("{x:.0}"))
}

/// A count with thousands separated (`10,000`).
fn count(v: &Value) -> String {
    let digits = v.as_u64().map_or("—".into(), |n| n.to_string());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn steady_row(file: &str, what: String, st: &Value) -> Row {
    let writes = st["kubernetes_writes_per_min"].as_f64();
    // older result files count only the inventory reads, as `proxmox_requests_per_resync`
    let inventory = st
        .get("inventory_reads_per_resync")
        .unwrap_or(&st["proxmox_requests_per_resync"]);
    let drift = match st["drift_reads_per_resync"].as_f64() {
        Some(_) => format!(" + {} drift reads (budget)", num(&st["drift_reads_per_resync"])),
        None => String::new(),
    };
    Row {
        what,
        figure: format!(
            "{} inventory read per resync{drift}, {} Kubernetes writes /min",
            num(inventory),
            num(&st["kubernetes_writes_per_min"])
        ),
        target: "≤ 1 inventory read per resync, 0 writes".into(),
        met: inventory.as_f64().zip(writes).map(|(i, w)| i <= 1.0 && w == 0.0),
        file: file.into(),
    }
}

/// The memory row of a result file: its `memory_target_mib` (DESIGN.md §5: 64 MiB at 10,000
/// ObserveOnly, 96 MiB at 10,000 Full), met when both the steady RSS and the peak are within it.
fn memory_row(file: &str, what: String, m: &Value, target: f64) -> Row {
    let (steady, peak) = (m["steady_vmrss"].as_f64(), m["peak_vmhwm"].as_f64());
    Row {
        what,
        figure: format!(
            "{} MiB steady, {} MiB peak",
            num(&m["steady_vmrss"]),
            num(&m["peak_vmhwm"])
        ),
        target: format!("≤ {target} MiB"),
        met: steady.zip(peak).map(|(s, p)| s <= target && p <= target),
        file: file.into(),
    }
}

/// The memory target a result file was measured against (64 MiB in files written before it was
/// recorded per scenario).
fn mem_target(v: &Value) -> f64 {
    v["memory_target_mib"].as_f64().unwrap_or(64.0)
}

/// The rows of one result file (by its name without extension).
pub fn rows_of(file: &str, v: &Value) -> Vec<Row> {
    let n = count(&v["n"]);
    let st = &v["steady_state"];
    match v["scenario"].as_str().unwrap_or_default() {
        "create-burst" => vec![
            Row {
                what: format!("{n} containers created at once, all Ready vs the task-slot limit"),
                figure: format!(
                    "{} s vs {} s: {}×",
                    num(&v["all_ready_s"]),
                    num(&v["limit_s"]),
                    v["ratio"]
                ),
                target: "≤ 1.2×, no lock error shown".into(),
                met: v["target_met"].as_bool(),
                file: file.into(),
            },
            steady_row(file, format!("steady state, {n} Ready"), st),
        ],
        "overhead" => vec![Row {
            what: format!(
                "apply → Running overhead over the task time ({}, operator flags: {})",
                if v["sim_task_jitter"].as_f64().unwrap_or(0.0) > 0.0 {
                    format!("tasks ±{:.0} %", v["sim_task_jitter"].as_f64().unwrap_or(0.0) * 100.0)
                } else {
                    "fixed task durations".into()
                },
                v["operator_flags"].as_str().unwrap_or("--task-poll-interval 200ms")
            ),
            figure: format!(
                "p50 {} ms, p99 {} ms",
                ms(&v["overhead_ms"]["p50"]),
                ms(&v["overhead_ms"]["p99"])
            ),
            target: "p50 ≤ 300 ms, p99 ≤ 1 s".into(),
            met: v["target_met"].as_bool(),
            file: file.into(),
        }],
        "observe" => vec![
            memory_row(
                file,
                format!("memory, {n} ObserveOnly"),
                &v["memory_mib"],
                mem_target(v),
            ),
            steady_row(file, format!("steady state, {n} ObserveOnly"), st),
        ],
        "full" => vec![
            memory_row(file, format!("memory, {n} Full"), &v["memory_mib"], mem_target(v)),
            steady_row(file, format!("steady state, {n} Full"), st),
            Row {
                what: format!("spec change (cores) → Proxmox while {n} Full exist"),
                figure: format!(
                    "p50 {} ms, p99 {} ms",
                    ms(&v["spec_change_ms"]["p50"]),
                    ms(&v["spec_change_ms"]["p99"])
                ),
                target: "—".into(),
                met: None,
                file: file.into(),
            },
        ],
        "namespaces" => vec![steady_row(
            file,
            format!(
                "steady state, {n} namespaces × {} on one ProxmoxCluster",
                num(&v["containers_per_namespace"])
            ),
            st,
        )],
        _ => vec![],
    }
}

/// Every row of the result files found in `results`.
pub fn rows(results: &Path) -> Vec<Row> {
    FILES
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(results.join(format!("{f}.json"))).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            Some(rows_of(f, &v))
        })
        .flatten()
        .collect()
}

/// The table as Markdown, the result files linked through `prefix`.
pub fn render(rows: &[Row], prefix: &str) -> String {
    let mut s = String::from("| benchmark | measured | target | met? | file |\n|---|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "**yes**",
            Some(false) => "**no**",
            None => "—",
        };
        s += &format!(
            "| {} | {} | {} | {met} | [{f}]({prefix}{f}.md) |\n",
            r.what,
            r.figure,
            r.target,
            f = r.file
        );
    }
    s
}

/// `doc` with the text between its [`BEGIN`] and [`END`] lines replaced by `table`.
pub fn splice(doc: &str, table: &str) -> Result<String, String> {
    let b = doc.find(BEGIN).ok_or("no BEGIN bench table line")?;
    let e = doc[b..].find(END).ok_or("no END bench table line after BEGIN")? + b;
    Ok(format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]))
}

/// What each document should be, by its path.
pub fn expected(repo: &Path) -> Result<Vec<(String, String)>, String> {
    let rows = rows(&repo.join("tests/bench/results"));
    DOCS.iter()
        .map(|(doc, prefix)| {
            let text = std::fs::read_to_string(repo.join(doc)).map_err(|e| format!("{doc}: {e}"))?;
            splice(&text, &render(&rows, prefix))
                .map(|t| (doc.to_string(), t))
                .map_err(|e| format!("{doc}: {e}"))
        })
        .collect()
}

/// Rewrites the table in both documents.
pub fn write_readmes(repo: &Path) -> Result<(), String> {
    for (doc, text) in expected(repo)? {
        std::fs::write(repo.join(&doc), text).map_err(|e| format!("{doc}: {e}"))?;
        eprintln!("wrote the bench table of {doc}");
    }
    Ok(())
}
