//! The simulator's state: nodes, storages and volumes, containers, tasks, statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::config::{FaultConfig, SimConfig, StorageConfig};
use super::propstr::{self, Upid};
use super::schema::{schema, Schema};

pub(crate) use super::api_error::*;

/// A stored volume (disk image, template, backup archive).
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub volid: String,
    pub content: String,
    pub format: String,
    pub size: u64,
    pub ctime: u64,
    pub vmid: Option<u32>,
    pub notes: Option<String>,
    pub protected: bool,
    /// For backups: the container config at backup time.
    pub backup_conf: Option<BTreeMap<String, String>>,
    /// For `oci-archive` templates pulled with `oci-registry-pull`: the canonical image
    /// (`docker.io/library/nginx:1.27`), see `oci_registry`.
    pub oci: Option<String>,
}

/// A snapshot of a container.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub conf: BTreeMap<String, String>,
    pub snaptime: u64,
    pub description: String,
    pub parent: Option<String>,
}

/// One container.
#[derive(Debug, Clone)]
pub(crate) struct Ct {
    pub vmid: u32,
    pub node: String,
    pub conf: BTreeMap<String, String>,
    pub pending: BTreeMap<String, String>,
    pub pending_delete: BTreeSet<String>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub running: bool,
    pub started: Option<Instant>,
    pub pid: u32,
    pub pool: Option<String>,
    pub fw_options: BTreeMap<String, String>,
    pub fw_rules: Vec<Map<String, Value>>,
    /// DHCP leases by `netN`.
    pub leases: BTreeMap<String, String>,
    /// Accumulated counters from earlier runs.
    pub net_total: (u64, u64),
}

impl Ct {
    pub(crate) fn new(vmid: u32, node: &str) -> Ct {
        Ct {
            vmid,
            node: node.to_string(),
            conf: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_delete: BTreeSet::new(),
            snapshots: BTreeMap::new(),
            running: false,
            started: None,
            pid: 0,
            pool: None,
            fw_options: BTreeMap::new(),
            fw_rules: Vec::new(),
            leases: BTreeMap::new(),
            net_total: (0, 0),
        }
    }

    pub(crate) fn lock(&self) -> Option<&str> {
        self.conf.get("lock").map(String::as_str)
    }

    /// `check_lock` of AbstractConfig.
    pub(crate) fn check_lock(&self) -> ApiResult<()> {
        match self.lock() {
            Some(l) => Err(ApiError::e500(format!("CT is locked ({l})"))),
            None => Ok(()),
        }
    }

    pub(crate) fn is_template(&self) -> bool {
        self.conf.get("template").map(String::as_str) == Some("1")
    }

    /// The raw `.conf` text (description as `#` lines, sorted keys, pending and snapshot sections).
    pub(crate) fn raw_conf(&self) -> String {
        fn section(out: &mut String, conf: &BTreeMap<String, String>) {
            if let Some(d) = conf.get("description") {
                for l in d.trim_end_matches('\n').split('\n') {
                    out.push('#');
                    out.push_str(l);
                    out.push('\n');
                }
            }
            for (k, v) in conf {
                if k != "description" {
                    out.push_str(&format!("{k}: {v}\n"));
                }
            }
        }
        let mut out = String::new();
        section(&mut out, &self.conf);
        if !self.pending.is_empty() || !self.pending_delete.is_empty() {
            out.push_str("\n[pve:pending]\n");
            section(&mut out, &self.pending);
            if !self.pending_delete.is_empty() {
                out.push_str(&format!(
                    "delete: {}\n",
                    self.pending_delete.iter().cloned().collect::<Vec<_>>().join(",")
                ));
            }
        }
        for (name, s) in &self.snapshots {
            out.push_str(&format!("\n[{name}]\n"));
            let mut c = s.conf.clone();
            c.insert("snaptime".into(), s.snaptime.to_string());
            if let Some(p) = &s.parent {
                c.insert("parent".into(), p.clone());
            }
            section(&mut out, &c);
        }
        out
    }

    /// SHA-1 hex of the raw config.
    pub(crate) fn digest(&self) -> String {
        hex::encode(Sha1::digest(self.raw_conf().as_bytes()))
    }

    /// Volumes referenced by `rootfs` / `mpN` / `unusedN` of the current config.
    pub(crate) fn volumes(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (k, val) in &self.conf {
            if k == "rootfs" || k.starts_with("mp") || k.starts_with("unused") {
                let vol = val.split(',').next().unwrap_or_default();
                let vol = vol.strip_prefix("volume=").unwrap_or(vol);
                if vol.contains(':') {
                    v.push((k.clone(), vol.to_string()));
                }
            }
        }
        v
    }

    /// Size of a mount point (`size=` of rootfs/mpN) in bytes.
    pub(crate) fn disk_size(&self, key: &str) -> u64 {
        self.conf
            .get(key)
            .and_then(|v| v.split(',').find_map(|p| p.strip_prefix("size=")))
            .and_then(propstr::parse_size)
            .unwrap_or(0)
    }

    pub(crate) fn name(&self) -> String {
        self.conf
            .get("hostname")
            .cloned()
            .unwrap_or_else(|| format!("CT{}", self.vmid))
    }

    pub(crate) fn uptime(&self, speed: f64) -> u64 {
        match (self.running, self.started) {
            (true, Some(t)) => (t.elapsed().as_secs_f64() * speed) as u64,
            _ => 0,
        }
    }
}

/// A task.
#[derive(Debug)]
pub(crate) struct Task {
    pub upid: Upid,
    pub upid_str: String,
    pub exitstatus: Option<String>,
    pub log: Vec<String>,
    pub endtime: Option<u64>,
    pub abort: Option<tokio::task::AbortHandle>,
    /// What the task's work took (ms at clock speed 1, jitter included): `/_sim/tasks` shows it.
    pub work_ms: u64,
    /// When the task started, ended and was first seen ended by a status read (Unix ms, wall
    /// clock): `/_sim/tasks` shows them, so a benchmark can tell how late a client saw the end.
    pub times: TaskTimes,
}

/// Wall-clock marks of a task (Unix ms), for `/_sim/tasks` only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TaskTimes {
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
    pub seen_ended_ms: Option<u64>,
}

impl Task {
    pub(crate) fn status_json(&self) -> Value {
        let u = &self.upid;
        let (user, tokenid) = match u.user.split_once('!') {
            Some((a, b)) => (a.to_string(), Some(b.to_string())),
            None => (u.user.clone(), None),
        };
        let mut m = json!({
            "upid": self.upid_str, "node": u.node, "pid": u.pid, "pstart": u.pstart,
            "starttime": u.starttime, "type": u.typ, "id": u.id, "user": user,
            "status": if self.exitstatus.is_some() { "stopped" } else { "running" },
        });
        if let Some(t) = tokenid {
            m["tokenid"] = json!(t);
        }
        if let Some(e) = &self.exitstatus {
            m["exitstatus"] = json!(e);
        }
        m
    }
}

/// Request statistics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub total: u64,
    pub requests: BTreeMap<String, u64>,
    pub statuses: BTreeMap<String, u64>,
    pub counters: BTreeMap<String, u64>,
    pub max_concurrent_tasks: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn bump(&mut self, counter: &str) {
        *self.counters.entry(counter.to_string()).or_default() += 1;
    }
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "total": self.total,
            "requests": self.requests,
            "statuses": self.statuses,
            "max_concurrent_tasks": self.max_concurrent_tasks,
        });
        for c in [
            "vzdump_overlaps",
            "faults_injected",
            "tasks_started",
            "tasks_failed",
            "auth_failures",
        ] {
            v[c] = json!(self.counters.get(c).copied().unwrap_or(0));
        }
        for (k, c) in &self.counters {
            v[k] = json!(c);
        }
        v
    }
}

/// Node runtime state.
#[derive(Debug)]
pub(crate) struct NodeState {
    pub online: bool,
    pub cpus: u32,
    pub memory: u64,
    pub boot: Instant,
}

/// Everything mutable, behind one mutex (never held across an await).
pub(crate) struct State {
    pub cfg: SimConfig,
    pub nodes: BTreeMap<String, NodeState>,
    pub storages: BTreeMap<String, StorageConfig>,
    /// Volumes by (node, storage); shared storages use node "".
    pub volumes: BTreeMap<(String, String), Vec<Volume>>,
    pub cts: BTreeMap<u32, Ct>,
    pub tasks: BTreeMap<String, Task>,
    pub task_order: Vec<String>,
    pub running_tasks: BTreeMap<String, u64>,
    pub pools: BTreeMap<String, String>,
    pub rng: StdRng,
    /// The draws of the task durations' jitter: a generator of their own, so the n-th task
    /// draws the same whatever else drew before it.
    pub task_rng: StdRng,
    pub next_pid: u32,
    pub dhcp_next: BTreeMap<String, u32>,
    pub stats: Stats,
    pub faults: FaultConfig,
    pub vzdump_locks: BTreeMap<String, Arc<tokio::sync::Semaphore>>,
    pub vzdump_active: BTreeMap<String, u64>,
    pub started: Instant,
    pub fingerprint: String,
    /// QEMU VMs: they hold vmids and show up in the inventory (see `guests.rs`).
    pub qemus: BTreeMap<u32, super::guests::QemuGuest>,
    /// The simulated skopeo's switches (see `oci_registry`).
    pub oci: super::oci_registry::OciSwitches,
    /// The HA stack: resources, rules, the manager's work (see `api::ha`).
    pub ha: super::api::HaState,
    /// Consoles (termproxy) and the fixture application's output (see `api::console`).
    pub consoles: super::api::Consoles,
}

impl State {
    pub(crate) fn new(cfg: SimConfig) -> State {
        let rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        let task_rng = match cfg.seed {
            Some(s) => StdRng::seed_from_u64(s ^ 0x7a5c_0000_0000_0001),
            None => StdRng::from_os_rng(),
        };
        let mut nodes = BTreeMap::new();
        for n in &cfg.nodes {
            nodes.insert(
                n.name.clone(),
                NodeState {
                    online: !n.offline && !cfg.faults.offline_nodes.contains(&n.name),
                    cpus: n.cpus,
                    memory: n.memory_bytes,
                    boot: Instant::now(),
                },
            );
        }
        let storages = cfg.storages.iter().map(|s| (s.id.clone(), s.clone())).collect();
        let mut st = State {
            faults: cfg.faults.clone(),
            nodes,
            storages,
            volumes: BTreeMap::new(),
            cts: BTreeMap::new(),
            tasks: BTreeMap::new(),
            task_order: Vec::new(),
            running_tasks: BTreeMap::new(),
            pools: cfg.pools.iter().map(|p| (p.clone(), String::new())).collect(),
            rng,
            task_rng,
            next_pid: 0x1000,
            dhcp_next: BTreeMap::new(),
            stats: Stats::default(),
            vzdump_locks: BTreeMap::new(),
            vzdump_active: BTreeMap::new(),
            started: Instant::now(),
            fingerprint: String::new(),
            qemus: BTreeMap::new(),
            oci: Default::default(),
            ha: Default::default(),
            consoles: Default::default(),
            cfg,
        };
        let node_names: Vec<String> = st.nodes.keys().cloned().collect();
        for volid in st.cfg.preloaded_templates.clone() {
            let Some((sid, name)) = volid.split_once(':') else {
                continue;
            };
            let file = name.trim_start_matches("vztmpl/");
            let size = st
                .cfg
                .appliances
                .iter()
                .find(|a| a.template == file)
                .map(|a| a.size_bytes)
                .unwrap_or(120 << 20);
            for n in &node_names {
                if st.storage_on_node(sid, n).is_ok() {
                    let key = st.vol_key(sid, n);
                    let list = st.volumes.entry(key).or_default();
                    if !list.iter().any(|v| v.volid == volid) {
                        list.push(vztmpl_volume(&volid, size));
                    }
                }
            }
        }
        st
    }

    /// Key into `volumes` for a storage as seen from a node.
    pub(crate) fn vol_key(&self, storage: &str, node: &str) -> (String, String) {
        let shared = self.storages.get(storage).is_some_and(|s| s.shared);
        (
            if shared { String::new() } else { node.to_string() },
            storage.to_string(),
        )
    }

    /// The storage if it exists and is available on the node.
    pub(crate) fn storage_on_node(&self, storage: &str, node: &str) -> Result<&StorageConfig, String> {
        match self.storages.get(storage) {
            Some(s) if s.nodes.is_empty() || s.nodes.iter().any(|n| n == node) => Ok(s),
            Some(_) => Err(format!("storage '{storage}' is not available on node '{node}'")),
            None => Err(format!("storage '{storage}' does not exist")),
        }
    }

    pub(crate) fn storage_used(&self, storage: &str, node: &str) -> u64 {
        let base = self.storages.get(storage).map(|s| s.used_bytes).unwrap_or(0);
        let key = self.vol_key(storage, node);
        base + self
            .volumes
            .get(&key)
            .map(|l| l.iter().map(|v| v.size).sum::<u64>())
            .unwrap_or(0)
    }

    pub(crate) fn find_volume(&self, node: &str, volid: &str) -> Option<&Volume> {
        let sid = volid.split(':').next()?;
        self.volumes
            .get(&self.vol_key(sid, node))?
            .iter()
            .find(|v| v.volid == volid)
    }

    pub(crate) fn remove_volume(&mut self, node: &str, volid: &str) -> Option<Volume> {
        let sid = volid.split(':').next()?;
        let key = self.vol_key(sid, node);
        let list = self.volumes.get_mut(&key)?;
        let i = list.iter().position(|v| v.volid == volid)?;
        Some(list.remove(i))
    }

    /// Allocate a container disk (`alloc_disk`), returning the volid.
    pub(crate) fn alloc_disk(&mut self, storage: &str, node: &str, vmid: u32, size: u64) -> Result<String, String> {
        let scfg = self.storage_on_node(storage, node)?.clone();
        if !scfg.content.iter().any(|c| c == "rootdir") {
            return Err(format!("storage '{storage}' does not support container directories"));
        }
        let used = self.storage_used(storage, node);
        if used + size > scfg.capacity_bytes {
            return Err(format!(
                "unable to allocate {} on storage '{storage}' - not enough free space ({} available)",
                propstr::format_size(size),
                propstr::format_size(scfg.capacity_bytes.saturating_sub(used))
            ));
        }
        let key = self.vol_key(storage, node);
        let existing: BTreeSet<String> = self
            .volumes
            .get(&key)
            .map(|l| l.iter().map(|v| v.volid.clone()).collect())
            .unwrap_or_default();
        let mut n = 0;
        let volid = loop {
            let name = match scfg.kind.as_str() {
                "lvmthin" | "lvm" | "rbd" | "iscsi" => format!("vm-{vmid}-disk-{n}"),
                "zfspool" => format!("subvol-{vmid}-disk-{n}"),
                _ => format!("{vmid}/vm-{vmid}-disk-{n}.raw"),
            };
            let v = format!("{storage}:{name}");
            let in_use = existing.iter().any(|e| {
                e == &v
                    || e.ends_with(&format!("/{}", name.rsplit('/').next().unwrap_or("")))
                        && e.contains(&format!("vm-{vmid}-disk-{n}"))
            });
            if !in_use {
                break v;
            }
            n += 1;
        };
        let format = if scfg.kind == "zfspool" { "subvol" } else { "raw" };
        self.volumes.entry(key).or_default().push(Volume {
            volid: volid.clone(),
            content: "rootdir".into(),
            format: format.into(),
            size,
            ctime: now_epoch(),
            vmid: Some(vmid),
            notes: None,
            protected: false,
            backup_conf: None,
            oci: None,
        });
        Ok(volid)
    }

    pub(crate) fn random_mac(&mut self) -> String {
        let b: [u8; 3] = self.rng.random();
        format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
    }

    pub(crate) fn next_pid(&mut self) -> u32 {
        self.next_pid += 1 + self.rng.random_range(0..64);
        self.next_pid
    }

    /// Hand out a DHCP address on a bridge (stable per container and interface).
    pub(crate) fn dhcp_lease(&mut self, bridge: &str) -> Option<String> {
        let b = self.cfg.bridges.iter().find(|b| b.name == bridge)?.clone();
        let (net, bits) = b.dhcp_cidr.split_once('/')?;
        let base: std::net::Ipv4Addr = net.parse().ok()?;
        let bits: u32 = bits.parse().ok()?;
        let size = 1u32.checked_shl(32 - bits).unwrap_or(0);
        let next = self.dhcp_next.entry(bridge.to_string()).or_insert(100);
        if *next + 1 >= size {
            return None;
        }
        let ip = std::net::Ipv4Addr::from(u32::from(base) + *next);
        *next += 1;
        Some(format!("{ip}/{bits}"))
    }

    /// Node of a container, or the PVE error for a missing config file on `node`.
    pub(crate) fn ct_on(&self, node: &str, vmid: u32) -> ApiResult<&Ct> {
        match self.cts.get(&vmid) {
            Some(ct) if ct.node == node => Ok(ct),
            _ => Err(ApiError::e500(format!(
                "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
            ))),
        }
    }

    pub(crate) fn ct_on_mut(&mut self, node: &str, vmid: u32) -> ApiResult<&mut Ct> {
        match self.cts.get_mut(&vmid) {
            Some(ct) if ct.node == node => Ok(ct),
            _ => Err(ApiError::e500(format!(
                "Configuration file 'nodes/{node}/lxc/{vmid}.conf' does not exist"
            ))),
        }
    }

    /// `check_vmid_unused` of pve-cluster.
    pub(crate) fn check_vmid_unused(&self, vmid: u32) -> ApiResult<()> {
        if let Some(vm) = self.qemus.get(&vmid) {
            return Err(ApiError::e500(format!(
                "VM {vmid} already exists on node '{}'",
                vm.node
            )));
        }
        match self.cts.get(&vmid) {
            Some(ct) => Err(ApiError::e500(format!(
                "CT {vmid} already exists on node '{}'",
                ct.node
            ))),
            None => Ok(()),
        }
    }

    /// Typed config view (numbers/booleans as JSON numbers), as `GET .../config` returns it.
    pub(crate) fn typed_conf(conf: &BTreeMap<String, String>) -> Map<String, Value> {
        let params = schema().config_params();
        let mut m = Map::new();
        for (k, v) in conf {
            let ty = Schema::property(params, k)
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str);
            let val = match ty {
                Some("integer") | Some("boolean") => v.parse::<i64>().map(Value::from).unwrap_or(json!(v)),
                Some("number") => v
                    .parse::<f64>()
                    .ok()
                    .and_then(|f| {
                        if f.fract() == 0.0 {
                            Some(json!(f as i64))
                        } else {
                            serde_json::Number::from_f64(f).map(Value::Number)
                        }
                    })
                    .unwrap_or(json!(v)),
                _ => {
                    if k == "description" {
                        let mut d = v.trim_end_matches('\n').to_string();
                        d.push('\n');
                        json!(d)
                    } else if k == "snaptime" {
                        v.parse::<u64>().map(Value::from).unwrap_or(json!(v))
                    } else {
                        json!(v)
                    }
                }
            };
            m.insert(k.clone(), val);
        }
        m
    }

    /// Pseudo-random but smooth usage figures for a running container.
    pub(crate) fn ct_status(&self, ct: &Ct) -> Map<String, Value> {
        let speed = self.cfg.clock_speed;
        let node_cpus = self.nodes.get(&ct.node).map(|n| n.cpus).unwrap_or(1);
        let cpus: f64 = ct
            .conf
            .get("cores")
            .and_then(|c| c.parse().ok())
            .or_else(|| {
                ct.conf
                    .get("cpulimit")
                    .and_then(|c| c.parse::<f64>().ok())
                    .filter(|c| *c > 0.0)
            })
            .unwrap_or(node_cpus as f64);
        let maxmem = ct.conf.get("memory").and_then(|m| m.parse::<u64>().ok()).unwrap_or(512) << 20;
        let maxswap = ct.conf.get("swap").and_then(|m| m.parse::<u64>().ok()).unwrap_or(512) << 20;
        let maxdisk = ct.disk_size("rootfs");
        let uptime = ct.uptime(speed);
        let running = ct.running && self.nodes.get(&ct.node).is_some_and(|n| n.online);
        let status = if !self.nodes.get(&ct.node).is_some_and(|n| n.online) {
            "unknown"
        } else if ct.running {
            "running"
        } else {
            "stopped"
        };
        let wave = ((uptime as f64 / 7.0) + ct.vmid as f64).sin().abs();
        let (cpu, mem, disk, netin, netout, diskread, diskwrite) = if running {
            (
                (0.01 + 0.05 * wave) / cpus.max(1.0),
                ((maxmem as f64) * (0.15 + 0.1 * wave)) as u64,
                ((maxdisk as f64) * 0.12) as u64 + uptime * 4096,
                ct.net_total.0 + uptime * 1500 + 4096,
                ct.net_total.1 + uptime * 900 + 2048,
                20_000_000 + uptime * 8192,
                5_000_000 + uptime * 16384,
            )
        } else {
            (0.0, 0, 0, 0, 0, 0, 0)
        };
        let mut m = Map::new();
        m.insert("vmid".into(), json!(ct.vmid));
        m.insert("name".into(), json!(ct.name()));
        m.insert("status".into(), json!(status));
        m.insert("type".into(), json!("lxc"));
        if running {
            m.insert("pid".into(), json!(ct.pid));
        }
        m.insert("uptime".into(), json!(uptime));
        m.insert("cpu".into(), json!(cpu));
        m.insert(
            "cpus".into(),
            if cpus.fract() == 0.0 {
                json!(cpus as u64)
            } else {
                json!(cpus)
            },
        );
        m.insert("mem".into(), json!(mem));
        m.insert("maxmem".into(), json!(maxmem));
        m.insert("swap".into(), json!(0));
        m.insert("maxswap".into(), json!(maxswap));
        m.insert("disk".into(), json!(disk));
        m.insert("maxdisk".into(), json!(maxdisk));
        m.insert("diskread".into(), json!(diskread));
        m.insert("diskwrite".into(), json!(diskwrite));
        m.insert("netin".into(), json!(netin));
        m.insert("netout".into(), json!(netout));
        for p in ["cpusome", "cpufull", "iosome", "iofull", "memorysome", "memoryfull"] {
            m.insert(format!("pressure{p}"), json!(0));
        }
        if let Some(t) = ct.conf.get("tags") {
            m.insert("tags".into(), json!(t));
        }
        if let Some(l) = ct.lock() {
            m.insert("lock".into(), json!(l));
        }
        if ct.is_template() {
            m.insert("template".into(), json!(1));
        }
        m
    }
}

pub(crate) fn vztmpl_volume(volid: &str, size: u64) -> Volume {
    let format = if volid.ends_with(".tar.zst") {
        "tzst"
    } else if volid.ends_with(".tar.xz") {
        "txz"
    } else if volid.ends_with(".tar.gz") {
        "tgz"
    } else if volid.ends_with(".tar.bz2") {
        "tbz2"
    } else {
        "tar"
    };
    Volume {
        volid: volid.to_string(),
        content: "vztmpl".into(),
        format: format.into(),
        size,
        ctime: now_epoch(),
        vmid: None,
        notes: None,
        protected: false,
        backup_conf: None,
        oci: None,
    }
}

/// Shared simulator core: state plus task machinery.
pub(crate) struct Sim {
    pub state: Mutex<State>,
}

pub(crate) use super::task_ctx::*;

impl Sim {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a task: registers it (status running) and spawns the body. Returns the UPID.
    pub(crate) fn spawn_task(
        self: &Arc<Self>,
        st: &mut State,
        node: &str,
        typ: &str,
        id: &str,
        user: &str,
        body: impl FnOnce(TaskCtx) -> TaskBody,
    ) -> String {
        let pid = st.next_pid();
        let pstart = (st.started.elapsed().as_millis() / 10) as u32 + 0x0100_0000;
        let upid = Upid {
            node: node.into(),
            pid,
            pstart,
            starttime: now_epoch() as u32,
            typ: typ.into(),
            id: id.into(),
            user: user.into(),
        };
        let upid_str = upid.to_string();
        let rate = st.faults.task_failure_rate;
        let inject_fail = rate > 0.0 && st.rng.random::<f64>() < rate;
        st.stats.bump("tasks_started");
        let running = st.running_tasks.entry(node.to_string()).or_default();
        *running += 1;
        let r = *running;
        let mx = st.stats.max_concurrent_tasks.entry(node.to_string()).or_default();
        *mx = (*mx).max(r);
        st.tasks.insert(
            upid_str.clone(),
            Task {
                upid,
                upid_str: upid_str.clone(),
                exitstatus: None,
                log: Vec::new(),
                endtime: None,
                abort: None,
                work_ms: 0,
                times: TaskTimes {
                    started_ms: super::api_error::now_ms(),
                    ..Default::default()
                },
            },
        );
        st.task_order.push(upid_str.clone());
        let ctx = TaskCtx {
            sim: self.clone(),
            upid: upid_str.clone(),
            typ: typ.into(),
            inject_fail,
        };
        let fut = body(ctx);
        let sim = self.clone();
        let u = upid_str.clone();
        let node = node.to_string();
        let handle = tokio::spawn(async move {
            let res = fut.await;
            let mut st = sim.lock();
            finish_task(&mut st, &u, &node, res);
        });
        if let Some(t) = st.tasks.get_mut(&upid_str) {
            t.abort = Some(handle.abort_handle());
        }
        upid_str
    }
}
