//! Reliability suite (issue 10): randomized runs of creates, spec updates, state changes and
//! deletes, with injected Proxmox faults (500s, lock timeouts, connection resets, slow tasks,
//! task failures, a node offline and back, our tag removed by hand and put back, a QEMU VM
//! taking the next free vmid), operator SIGKILL + restart at random points and
//! Kubernetes-side conflicts (concurrent applies, stale replaces). After each run, with the
//! faults lifted, the invariants are checked against the simulator:
//!
//! - no duplicated container (one per resource, by the `k8s-<uid>` tag);
//! - no orphaned container (every tagged container belongs to an existing resource);
//! - no container without our tag touched (hand-made ones compared before/after);
//! - every surviving resource Ready, at its generation, with cores/memory/state applied.
//!
//! One control plane for the suite; one simulator + one operator per run; several runs in
//! parallel. Knobs (env): `PLO_SOAK_RUNS` (default 20), `PLO_SEED` (replay one run; the
//! operator's timing is not deterministic, so a replay repeats the same actions and faults
//! but not necessarily the same interleaving), `PLO_SEED_BASE` (default: derived from the run's
//! `PLO_TEST_SEED`, tests/common/seed.rs), `PLO_PARALLEL` (default 4).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const CLOCK: &str = "20";
const MAX_ALIVE: usize = 5;
const CONVERGE: Duration = Duration::from_secs(150);

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

struct Run {
    seed: u64,
    cp: &'static ControlPlane,
    ns: String,
    sim: Sim,
    op: Operator,
    rng: StdRng,
    alive: Vec<String>,
    deleted: Vec<String>,
    next: usize,
    /// vmid → (node, status, config) of the hand-made containers, as they were at the start.
    manual: BTreeMap<u64, Value>,
    offline: BTreeSet<String>,
    faults: Value,
    trace: Vec<String>,
    kills: usize,
    /// Objects whose container lost its tag by hand (name → vmid), put back before the check.
    untagged: BTreeMap<String, u64>,
}

fn manifest(name: &str, cores: u32, mem: u32, state: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  resources: {{cores: {cores}, memory: {mem}Mi}}\n  rootfs: {{storage: local-lvm, size: 1Gi}}\n  state: {state}\n"
    )
}

fn manual_view(c: &Value) -> Value {
    json!({"node": c["node"], "status": c["status"], "config": c["config"], "lock": c["lock"]})
}

impl Run {
    fn start(seed: u64) -> Run {
        let cp = ControlPlane::shared();
        let ns = cp.namespace("rel");
        let sim = Sim::start(&["--clock-speed", CLOCK, "--seed", &seed.to_string()]);
        let mut rng = StdRng::seed_from_u64(seed);
        // hand-made containers (no tag of ours), one running, some stopped
        let n_manual = rng.random_range(1..=2u64);
        for i in 0..n_manual {
            let vmid = 9000 + i;
            let node = format!("pve{}", rng.random_range(1..=3));
            sim.call(
                "POST",
                &format!("/nodes/{node}/lxc"),
                &[
                    ("vmid", &vmid.to_string()),
                    ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
                    ("hostname", &format!("manual{i}")),
                    ("cores", "1"),
                    ("memory", "300"),
                    ("tags", "handmade"),
                ],
            );
            wait_for("hand-made container", Duration::from_secs(30), || {
                sim.container(vmid).filter(|c| c["lock"].is_null()).map(|_| ())
            });
            if i == 0 {
                sim.call("POST", &format!("/nodes/{node}/lxc/{vmid}/status/start"), &[]);
                wait_for("hand-made container running", Duration::from_secs(30), || {
                    sim.container(vmid)
                        .filter(|c| c["status"] == "running" && c["lock"].is_null())
                        .map(|_| ())
                });
            }
        }
        let manual = sim
            .containers()
            .iter()
            .map(|c| (c["vmid"].as_u64().unwrap(), manual_view(c)))
            .collect();
        connect_cluster(cp, &ns, &sim, "2s");
        let op = Operator::start(cp, &ns);
        wait_ready(cp, &ns, "proxmoxcluster", &ns, Duration::from_secs(60));
        Run {
            seed,
            cp,
            ns,
            sim,
            op,
            rng,
            alive: vec![],
            deleted: vec![],
            next: 0,
            manual,
            offline: BTreeSet::new(),
            faults: json!({}),
            trace: vec![],
            kills: 0,
            untagged: BTreeMap::new(),
        }
    }

    fn note(&mut self, s: String) {
        self.trace.push(s);
    }

    fn kubectl(&self, args: &[&str], input: Option<&str>) -> (bool, String) {
        let mut a = vec!["-n", &self.ns];
        a.extend_from_slice(args);
        let out = self.cp.kubectl_stdin(&a, input);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn random_spec(&mut self) -> (u32, u32, &'static str) {
        let cores = self.rng.random_range(1..=4);
        let mem = [256, 384, 512, 768, 1024][self.rng.random_range(0..5)];
        let state = if self.rng.random_bool(0.75) {
            "Running"
        } else {
            "Stopped"
        };
        (cores, mem, state)
    }

    fn pick(&mut self) -> Option<String> {
        (!self.alive.is_empty()).then(|| self.alive[self.rng.random_range(0..self.alive.len())].clone())
    }

    fn apply(&mut self, name: &str, cores: u32, mem: u32, state: &str) {
        let (ok, err) = self.kubectl(&["apply", "-f", "-"], Some(&manifest(name, cores, mem, state)));
        self.note(format!(
            "apply {name} cores={cores} mem={mem}Mi {state} -> {}",
            if ok { "ok".into() } else { err.trim().to_string() }
        ));
    }

    fn create(&mut self) {
        let name = format!("ct-{}", self.next);
        self.next += 1;
        let (c, m, s) = self.random_spec();
        self.apply(&name, c, m, s);
        self.alive.push(name);
    }

    fn update(&mut self) {
        let Some(name) = self.pick() else { return };
        let (c, m, s) = self.random_spec();
        let cur = get_json(self.cp, &self.ns, "lxc", &name)
            .map(|o| o["spec"]["state"].as_str().unwrap_or("Running").to_string())
            .unwrap_or_else(|| s.to_string());
        self.apply(&name, c, m, &cur);
    }

    fn set_state(&mut self) {
        let Some(name) = self.pick() else { return };
        let Some(o) = get_json(self.cp, &self.ns, "lxc", &name) else {
            return;
        };
        let state = if o["spec"]["state"] == "Stopped" {
            "Running"
        } else {
            "Stopped"
        };
        let patch = json!({"spec": {"state": state}}).to_string();
        let (ok, err) = self.kubectl(&["patch", "lxc", &name, "--type=merge", "-p", &patch], None);
        self.note(format!(
            "patch {name} state={state} -> {}",
            if ok { "ok".into() } else { err.trim().to_string() }
        ));
    }

    fn delete(&mut self) {
        if self.alive.len() < 2 {
            return;
        }
        let i = self.rng.random_range(0..self.alive.len());
        let name = self.alive.remove(i);
        self.untagged.remove(&name);
        let (ok, err) = self.kubectl(&["delete", "lxc", &name, "--wait=false"], None);
        self.note(format!(
            "delete {name} -> {}",
            if ok { "ok".into() } else { err.trim().to_string() }
        ));
        self.deleted.push(name);
    }

    /// Two writers at once: a `kubectl apply` and a `kubectl replace` of a stale copy (which
    /// gets a 409 Conflict when the apply lands first), plus a second apply racing them.
    fn conflict(&mut self) {
        let Some(name) = self.pick() else { return };
        let Some(mut stale) = get_json(self.cp, &self.ns, "lxc", &name) else {
            return;
        };
        let (c1, m1, s1) = self.random_spec();
        let (c2, m2, _) = self.random_spec();
        stale["spec"]["resources"]["memory"] = json!(format!("{m2}Mi"));
        stale["spec"]["resources"]["cores"] = json!(c2);
        let stale = stale.to_string();
        let (cp, ns) = (self.cp, self.ns.clone());
        let (c3, m3, s3) = self.random_spec();
        let results = std::thread::scope(|s| {
            let a = s.spawn(|| cp.kubectl_stdin(&["-n", &ns, "apply", "-f", "-"], Some(&manifest(&name, c1, m1, s1))));
            let b = s.spawn(|| cp.kubectl_stdin(&["-n", &ns, "replace", "-f", "-"], Some(&stale)));
            let c = s.spawn(|| cp.kubectl_stdin(&["-n", &ns, "apply", "-f", "-"], Some(&manifest(&name, c3, m3, s3))));
            [a.join().unwrap(), b.join().unwrap(), c.join().unwrap()]
        });
        let r: Vec<String> = results
            .iter()
            .map(|o| {
                if o.status.success() {
                    "ok".to_string()
                } else {
                    String::from_utf8_lossy(&o.stderr).trim().chars().take(80).collect()
                }
            })
            .collect();
        self.note(format!(
            "conflict on {name}: apply {c1}/{m1}/{s1}, stale replace {c2}/{m2}, apply {c3}/{m3}/{s3} -> {r:?}"
        ));
    }

    fn post_faults(&mut self) {
        let mut f = self.faults.clone();
        f["offline_nodes"] = json!(self.offline.iter().collect::<Vec<_>>());
        self.sim.post_json("/_sim/faults", &f);
    }

    fn inject(&mut self) {
        let mut rules = vec![];
        let mut f = json!({});
        let n = self.rng.random_range(1..=3);
        for _ in 0..n {
            match self.rng.random_range(0..7) {
                0 => rules.push(json!({"endpoint": "*", "rate": self.rng.random_range(0.05..0.25), "kind": "error", "status": 500})),
                1 => rules.push(json!({"endpoint": "PUT /nodes/{node}/lxc/{vmid}/config", "rate": self.rng.random_range(0.2..0.6), "kind": "lock_timeout"})),
                2 => rules.push(json!({"endpoint": "POST /nodes/{node}/lxc/{vmid}/status/start", "rate": self.rng.random_range(0.2..0.6), "kind": "lock_timeout"})),
                3 => rules.push(json!({"endpoint": "*", "rate": self.rng.random_range(0.03..0.15), "kind": "reset"})),
                4 => rules.push(json!({"endpoint": "POST /nodes/{node}/lxc", "rate": self.rng.random_range(0.2..0.6), "kind": "error", "status": 500, "message": "create failed (simulated)"})),
                5 => f["task_failure_rate"] = json!(self.rng.random_range(0.1..0.4)),
                _ => {
                    // slow tasks and jittery answers
                    self.sim.call("POST", "/_sim/clock?speed=2", &[]);
                    f["latency"] = json!({"fixed_ms": 0, "jitter_ms": 150});
                }
            }
        }
        f["rules"] = json!(rules);
        self.faults = f;
        self.note(format!("faults {}", self.faults));
        self.post_faults();
    }

    fn clear_faults(&mut self) {
        self.faults = json!({});
        self.sim.call("POST", &format!("/_sim/clock?speed={CLOCK}"), &[]);
        self.post_faults();
        self.note("faults cleared".into());
    }

    fn toggle_node(&mut self) {
        let node = format!("pve{}", self.rng.random_range(1..=3));
        if !self.offline.remove(&node) {
            self.offline.insert(node.clone());
        }
        let action = if self.offline.contains(&node) {
            "offline"
        } else {
            "online"
        };
        self.sim.call("POST", &format!("/_sim/nodes/{node}/{action}"), &[]);
        self.note(format!("node {node} {action}"));
    }

    /// Someone removes our tag from a container in the Proxmox GUI (put back before the check,
    /// as the condition asks the user to): no second container may appear meanwhile.
    fn untag(&mut self) {
        let Some(name) = self.pick() else { return };
        // only once it is known to exist as ours (between a create and its first pass, a
        // container without our tag cannot be told from someone else's)
        let Some(vmid) = get_json(self.cp, &self.ns, "lxc", &name)
            .filter(|o| o["status"]["phase"] == "Running" || o["status"]["phase"] == "Stopped")
            .and_then(|o| o["status"]["vmid"].as_u64())
        else {
            return;
        };
        let Some(ct) = self.sim.container(vmid) else { return };
        let node = ct["node"].as_str().unwrap_or_default().to_string();
        let r = self.sim.call(
            "PUT",
            &format!("/nodes/{node}/lxc/{vmid}/config"),
            &[("delete", "tags")],
        );
        self.note(format!("tags of CT {vmid} ({name}) removed by hand -> {r}"));
        self.untagged.insert(name, vmid);
    }

    /// Puts our tag back on the containers that lost it (the user's fix).
    fn retag(&mut self) {
        for (name, vmid) in std::mem::take(&mut self.untagged) {
            let Some(uid) = get_json(self.cp, &self.ns, "lxc", &name)
                .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            else {
                continue;
            };
            let Some(ct) = self.sim.container(vmid) else { continue };
            let node = ct["node"].as_str().unwrap_or_default().to_string();
            let tag = format!("k8s-{uid}");
            self.sim
                .call("PUT", &format!("/nodes/{node}/lxc/{vmid}/config"), &[("tags", &tag)]);
            self.note(format!("tag of CT {vmid} ({name}) put back"));
        }
    }

    /// A QEMU VM appears at the next free vmid (a race with the operator's allocation).
    fn qemu(&mut self) {
        let next = self.sim.call("GET", "/cluster/nextid", &[]);
        let Some(vmid) = next["data"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| next["data"].as_u64())
        else {
            return;
        };
        let node = format!("pve{}", self.rng.random_range(1..=3));
        let r = self.sim.post_json("/_sim/qemu", &json!({"vmid": vmid, "node": node}));
        self.note(format!("QEMU VM {vmid} on {node} -> {r}"));
    }

    fn kill(&mut self) {
        self.op.kill();
        self.kills += 1;
        let pause = self.rng.random_range(0..1500);
        self.note(format!("operator SIGKILL, restart after {pause} ms"));
        std::thread::sleep(Duration::from_millis(pause));
        self.op.restart();
    }

    fn step(&mut self) {
        let r = self.rng.random_range(0..100);
        match r {
            0..=19 if self.alive.len() < MAX_ALIVE => self.create(),
            0..=37 => self.update(),
            38..=49 => self.set_state(),
            50..=57 => self.delete(),
            58..=65 => self.conflict(),
            66..=77 => self.inject(),
            78..=82 => self.clear_faults(),
            83..=87 => self.toggle_node(),
            88..=89 => self.untag(),
            90..=91 => self.qemu(),
            _ => self.kill(),
        }
        let pause = self.rng.random_range(0..700);
        std::thread::sleep(Duration::from_millis(pause));
    }

    /// What is wrong now, or `None` when every invariant holds.
    fn violations(&self) -> Option<String> {
        let out = self.cp.kubectl(&["get", "-n", &self.ns, "lxc", "-o", "json"]);
        if !out.status.success() {
            return Some("kubectl get failed".into());
        }
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let cts = self.sim.containers();
        let mut problems = vec![];
        // hand-made containers untouched (checked first: a safety property)
        for (vmid, before) in &self.manual {
            match cts.iter().find(|c| c["vmid"].as_u64() == Some(*vmid)) {
                Some(c) if &manual_view(c) == before => {}
                Some(c) => problems.push(format!(
                    "SAFETY: hand-made CT {vmid} changed: before {before}, now {}",
                    manual_view(c)
                )),
                None => problems.push(format!("SAFETY: hand-made CT {vmid} is gone")),
            }
        }
        let mut by_uid: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for c in &cts {
            for t in c["config"]["tags"].as_str().unwrap_or("").split([';', ',', ' ']) {
                if let Some(uid) = t.strip_prefix("k8s-") {
                    by_uid.entry(uid.to_string()).or_default().push(c);
                }
            }
        }
        for (uid, list) in &by_uid {
            if list.len() > 1 {
                problems.push(format!(
                    "SAFETY: {} containers carry k8s-{uid}: vmids {:?}",
                    list.len(),
                    list.iter().map(|c| &c["vmid"]).collect::<Vec<_>>()
                ));
            }
        }
        let names: BTreeSet<&str> = items.iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
        for d in &self.deleted {
            if names.contains(d.as_str()) {
                problems.push(format!("{d} not deleted yet"));
            }
        }
        let mut uids = BTreeSet::new();
        for o in &items {
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            let uid = o["metadata"]["uid"].as_str().unwrap_or("").to_string();
            uids.insert(uid.clone());
            if !self.alive.iter().any(|a| a == name) {
                continue;
            }
            let ready = condition(o, "Ready");
            let gen_ok = o["status"]["observedGeneration"] == o["metadata"]["generation"];
            if !(ready.as_ref().is_some_and(|c| c.0 == "True") && gen_ok) {
                problems.push(format!(
                    "{name} not Ready at its generation: {ready:?}, observed {} of {}",
                    o["status"]["observedGeneration"], o["metadata"]["generation"]
                ));
            }
            let spec = &o["spec"];
            let cores = spec["resources"]["cores"].as_u64().unwrap_or(0).to_string();
            let mem = spec["resources"]["memory"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches("Mi")
                .to_string();
            let state = if spec["state"] == "Stopped" {
                "stopped"
            } else {
                "running"
            };
            match by_uid.get(&uid).map(|v| v.as_slice()) {
                Some([c]) => {
                    let cfg = &c["config"];
                    if cfg["cores"].as_str() != Some(cores.as_str())
                        || cfg["memory"].as_str() != Some(mem.as_str())
                        || c["status"] != state
                    {
                        problems.push(format!(
                            "{name}: want cores {cores} memory {mem} {state}, CT {} has cores {} memory {} {}",
                            c["vmid"], cfg["cores"], cfg["memory"], c["status"]
                        ));
                    }
                }
                Some(_) => {}
                None => problems.push(format!("{name}: no container carries k8s-{uid}")),
            }
        }
        for (uid, list) in &by_uid {
            if !uids.contains(uid) {
                problems.push(format!(
                    "orphan: CT {:?} carries k8s-{uid} of no existing resource",
                    list.iter().map(|c| &c["vmid"]).collect::<Vec<_>>()
                ));
            }
        }
        (!problems.is_empty()).then(|| problems.join("\n  "))
    }

    fn run(mut self) -> Result<String, String> {
        let t0 = Instant::now();
        for _ in 0..self.rng.random_range(2..=3) {
            self.create();
        }
        let steps = self.rng.random_range(6..=14);
        for _ in 0..steps {
            self.step();
        }
        // lift every fault (nodes back online first: a tag is put back through its node), then
        // the user's fix of removed tags, and let it converge
        self.offline.clear();
        self.clear_faults();
        self.retag();
        if !self.op.is_running() {
            self.op.restart();
        }
        let deadline = Instant::now() + CONVERGE;
        let mut last;
        loop {
            last = self.violations();
            match &last {
                None => break,
                Some(v) if v.contains("SAFETY") => break,
                Some(_) if Instant::now() > deadline => break,
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        let stats = self.sim.stats();
        match last {
            None => Ok(format!(
                "seed {} ok in {:.1}s: {steps} steps, {} alive, {} deleted, {} kills, {} faults injected, {} tasks failed",
                self.seed, t0.elapsed().as_secs_f64(), self.alive.len(), self.deleted.len(), self.kills, stats["faults_injected"], stats["tasks_failed"]
            )),
            Some(v) => {
                let log = self.op.log();
                let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                let objs = self.cp.kubectl(&["get", "-n", &self.ns, "lxc", "-o", "wide"]);
                Err(format!(
                    "seed {} FAILED (replay: PLO_SEED={} cargo test --test reliability):\n  {v}\nactions:\n  {}\nobjects:\n{}\noperator log (last 40 lines of {}):\n{}",
                    self.seed, self.seed, self.trace.join("\n  "), String::from_utf8_lossy(&objs.stdout), self.op.log_path().display(), tail.join("\n")
                ))
            }
        }
    }
}

#[test]
fn randomized_runs_keep_the_invariants() {
    let seeds: Vec<u64> = match std::env::var("PLO_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => {
            // the run's seed (PLO_TEST_SEED, printed by tests/scripts/test.sh) unless named
            let base = env_or("PLO_SEED_BASE", seed::seed_for("reliability"));
            let runs: u64 = env_or("PLO_SOAK_RUNS", 20);
            eprintln!("reliability: {runs} runs from PLO_SEED_BASE={base} (one run: PLO_SEED=N)");
            (0..runs)
                .map(|i| seed::splitmix(base.wrapping_add(i)) % 1_000_000_000_000)
                .collect()
        }
    };
    let parallel: usize = env_or("PLO_PARALLEL", 4);
    ControlPlane::shared();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let done = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..parallel.min(seeds.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&seed) = seeds.get(i) else { break };
                let r = std::panic::catch_unwind(|| Run::start(seed).run()).unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("seed {seed} PANICKED (replay: PLO_SEED={seed}): {msg}"))
                });
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                match r {
                    Ok(line) => eprintln!("[{n}/{}] {line}", seeds.len()),
                    Err(e) => {
                        eprintln!("[{n}/{}] {e}", seeds.len());
                        failures.lock().unwrap().push(e);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "reliability: {} runs, {} failed, {:.0}s",
        seeds.len(),
        failures.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
}
