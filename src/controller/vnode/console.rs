//! What a Pod's application printed: the operator attaches to each Pod container's console
//! (Proxmox `termproxy` + `vncwebsocket`; with `cmode: console` it is the entrypoint's
//! stdout/stderr) from its start and keeps the lines in a bounded ring per container.
//!
//! - Proxmox keeps no history of a console: what is printed while nobody is attached is gone.
//!   So [`run`] attaches as soon as a container runs, and again after each restart; lines
//!   printed between the start and the attach (well under a second here) are not seen.
//! - A run is one start of the container, told apart by its init pid; a Pod keeps its current
//!   run and the one before (`kubectl logs --previous`). Logs belong to a Pod uid and a vmid:
//!   a vmid used before by another Pod (or another container of this Pod) never shows its
//!   earlier lines.
//! - Each run's ring holds at most `--pod-log-bytes` (default 1 MiB): about 10,000 lines of
//!   100 bytes, more than `kubectl logs` readers scroll, and a bound the operator's memory can
//!   afford — at most two rings per Pod, filled only as fast as the app prints.

use super::exitcode::MarkerScanner;
use super::lines::Line;
use super::POD_UID_LABEL;
use crate::controller::cluster::{ClusterKey, ClusterRegistry};
use crate::crd::lxc_container::ContainerPhase;
use crate::crd::LxcContainer;
use futures::StreamExt;
use kube::runtime::watcher;
use kube::Api;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes a line costs beyond its text (its time, sequence number and bookkeeping).
const LINE_OVERHEAD: usize = 32;

/// The lines of one run, bounded in bytes; the oldest go first.
#[derive(Debug, Clone)]
pub struct Ring {
    cap: usize,
    bytes: usize,
    lines: VecDeque<(u64, Line)>,
    partial: Vec<u8>,
}

impl Ring {
    /// An empty ring of at most `cap` bytes.
    pub fn new(cap: usize) -> Ring {
        Ring {
            cap: cap.max(LINE_OVERHEAD + 1),
            bytes: 0,
            lines: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    /// Adds terminal output that came at `at` (epoch seconds, nanoseconds): every complete
    /// line (`\r\n` or `\n`); a line's start waits for its end. `seq` numbers the lines.
    pub fn push(&mut self, bytes: &[u8], at: (i64, u32), seq: &mut u64) {
        self.partial.extend_from_slice(bytes);
        while let Some(nl) = self.partial.iter().position(|c| *c == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=nl).collect();
            self.add(&raw[..nl], at, seq);
        }
        // a line with no end in sight is cut where the ring could not hold it anyway
        if self.partial.len() > self.cap {
            let raw = std::mem::take(&mut self.partial);
            self.add(&raw, at, seq);
        }
    }

    /// Ends the run: a last line without its newline is kept too.
    pub fn finish(&mut self, at: (i64, u32), seq: &mut u64) {
        if !self.partial.is_empty() {
            let raw = std::mem::take(&mut self.partial);
            self.add(&raw, at, seq);
        }
    }

    fn add(&mut self, raw: &[u8], at: (i64, u32), seq: &mut u64) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let mut text = String::from_utf8_lossy(raw).into_owned();
        let room = self.cap - LINE_OVERHEAD;
        if text.len() > room {
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        self.bytes += text.len() + LINE_OVERHEAD;
        *seq += 1;
        self.lines.push_back((
            *seq,
            Line {
                at: at.0,
                nanos: at.1,
                text,
            },
        ));
        while self.bytes > self.cap {
            let Some((_, old)) = self.lines.pop_front() else { break };
            self.bytes -= old.text.len() + LINE_OVERHEAD;
        }
    }

    /// The lines after sequence number `after` (all with 0), and the last sequence number.
    pub fn since_seq(&self, after: u64) -> (Vec<Line>, u64) {
        let lines = self
            .lines
            .iter()
            .filter(|(s, _)| *s > after)
            .map(|(_, l)| l.clone())
            .collect();
        (lines, self.lines.back().map(|(s, _)| *s).unwrap_or(after))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One start of a container.
#[derive(Debug, Clone)]
struct Run {
    pid: u64,
    ring: Ring,
    /// The console is attached (more lines may come).
    open: bool,
    /// Takes the exit-status marker out of the output.
    scanner: MarkerScanner,
    /// The exit status the wrapper printed last (nothing printed after it).
    exit: Option<i32>,
}

/// How the current run of a Pod's container ended, as its console told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The console is still attached (the run goes on, or its end is being read).
    Attached,
    /// The run ended with this exit status (the wrapper's marker).
    Exited(i32),
    /// The console closed without a marker: no wrapper, or it ended unseen.
    Unknown,
}

/// The runs of one Pod's container.
#[derive(Debug)]
struct Entry {
    vmid: u32,
    seq: u64,
    current: Option<Run>,
    previous: Option<Run>,
}

/// A run's lines as [`PodLogs::read`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLines {
    /// The lines.
    pub lines: Vec<Line>,
    /// The last sequence number (for reading on).
    pub seq: u64,
    /// The init pid of the run.
    pub pid: u64,
    /// The console is still attached: more lines may come.
    pub open: bool,
}

/// The rings of every Pod container, by Pod uid.
#[derive(Debug)]
pub struct PodLogs {
    cap: usize,
    entries: Mutex<HashMap<String, Entry>>,
    /// Woken on every new line and run change (for `follow`).
    pub changed: tokio::sync::Notify,
}

impl PodLogs {
    /// Rings of `cap` bytes per run.
    pub fn new(cap: usize) -> PodLogs {
        PodLogs {
            cap,
            entries: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        crate::controller::kernel::recover(self.entries.lock(), "the Pod logs")
    }

    /// The console of Pod `uid`'s container (vmid `vmid`) was attached to the run of init pid
    /// `pid`: a new run becomes current (the current one becomes the previous one); the same
    /// run attached again goes on. Another vmid than before starts the Pod's logs afresh.
    pub fn begin(&self, uid: &str, vmid: u32, pid: u64) {
        let mut m = self.lock();
        let e = m.entry(uid.to_string()).or_insert(Entry {
            vmid,
            seq: 0,
            current: None,
            previous: None,
        });
        if e.vmid != vmid {
            e.vmid = vmid;
            e.current = None;
            e.previous = None;
        }
        match &mut e.current {
            Some(r) if r.pid == pid => r.open = true,
            _ => {
                e.previous = e.current.take();
                e.current = Some(Run {
                    pid,
                    ring: Ring::new(self.cap),
                    open: true,
                    scanner: MarkerScanner::default(),
                    exit: None,
                });
            }
        }
        drop(m);
        self.changed.notify_waiters();
    }

    /// Output of run `pid` of Pod `uid`'s container at `at`.
    pub fn push(&self, uid: &str, vmid: u32, pid: u64, bytes: &[u8], at: (i64, u32)) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(uid).filter(|e| e.vmid == vmid) {
            if let Some(r) = e.current.as_mut().filter(|r| r.pid == pid) {
                let (clean, code) = r.scanner.scan(bytes);
                match code {
                    Some(c) => r.exit = Some(c),
                    // output after a marker: it was not the wrapper's last word
                    None if !clean.is_empty() => r.exit = None,
                    None => {}
                }
                r.ring.push(&clean, at, &mut e.seq);
            }
        }
        drop(m);
        self.changed.notify_waiters();
    }

    /// The console of run `pid` closed (the container stopped, or the connection broke).
    pub fn end(&self, uid: &str, vmid: u32, pid: u64, at: (i64, u32)) {
        let mut m = self.lock();
        if let Some(e) = m.get_mut(uid).filter(|e| e.vmid == vmid) {
            if let Some(r) = e.current.as_mut().filter(|r| r.pid == pid) {
                let held = r.scanner.finish();
                if !held.is_empty() {
                    r.exit = None;
                    r.ring.push(&held, at, &mut e.seq);
                }
                r.ring.finish(at, &mut e.seq);
                r.open = false;
            }
        }
        drop(m);
        self.changed.notify_waiters();
    }

    /// How the current run of Pod `uid`'s container (vmid `vmid`) ended; `None` when no run
    /// was attached.
    pub fn run_end(&self, uid: &str, vmid: u32) -> Option<RunEnd> {
        let m = self.lock();
        let r = m.get(uid).filter(|e| e.vmid == vmid)?.current.as_ref()?;
        Some(match (r.open, r.exit) {
            (true, _) => RunEnd::Attached,
            (false, Some(c)) => RunEnd::Exited(c),
            (false, None) => RunEnd::Unknown,
        })
    }

    /// Forgets Pod `uid` (its container is gone).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// The lines of Pod `uid`'s current run (or the previous one) after sequence number
    /// `after`, if its container (vmid `vmid`) has such a run.
    pub fn read(&self, uid: &str, vmid: u32, previous: bool, after: u64) -> Option<RunLines> {
        let m = self.lock();
        let e = m.get(uid).filter(|e| e.vmid == vmid)?;
        let r = if previous {
            e.previous.as_ref()?
        } else {
            e.current.as_ref()?
        };
        let (lines, seq) = r.ring.since_seq(after);
        Some(RunLines {
            lines,
            seq,
            pid: r.pid,
            open: r.open,
        })
    }

    /// Bytes held in every ring.
    pub fn bytes(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|e| e.current.iter().chain(e.previous.iter()))
            .map(|r| r.ring.bytes())
            .sum()
    }
}

fn now() -> (i64, u32) {
    let t = jiff::Timestamp::now();
    (t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

/// Where a Pod's container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    cluster: String,
    node: String,
    vmid: u32,
}

fn place(c: &LxcContainer) -> Option<(String, Place)> {
    let uid = c.metadata.labels.as_ref()?.get(POD_UID_LABEL)?.clone();
    let s = c.status.as_ref()?;
    Some((
        uid,
        Place {
            cluster: s.cluster.clone()?,
            node: s.node.clone()?,
            vmid: s.vmid?,
        },
    ))
}

/// How often a container that should run but does not (yet) is looked at (one
/// `status/current` call) to attach at its start: soon after a phase change or the end of a run
/// (an exited app is started again within seconds), rarely later.
const LOOK_SOON: Duration = Duration::from_millis(500);
const LOOK_LATER: Duration = Duration::from_secs(10);
/// How long after a change the container is looked at [`LOOK_SOON`].
const SOON_FOR: Duration = Duration::from_secs(30);
/// The longest wait before attaching again after attaching failed.
const ATTACH_RETRY_MAX: Duration = Duration::from_secs(300);

/// How long a follower waits after its `failures`-th failed attach in a row (pure): 10 s,
/// doubling up to 5 min. Proxmox hands out 100 console ports per node: with more Pods than
/// that on a node, followers retrying every 10 s (a status read and a `termproxy` each) made
/// most of the requests of 1,000 Pods.
fn attach_retry(failures: u32) -> Duration {
    LOOK_LATER
        .saturating_mul(1u32 << failures.saturating_sub(1).min(8))
        .min(ATTACH_RETRY_MAX)
}

/// The phase of the child `LxcContainer`, as the watch says it.
type Phase = tokio::sync::watch::Receiver<Option<ContainerPhase>>;

/// The init pid of CT `p` if it runs (0 if not, or unknown).
async fn running_pid(h: &crate::controller::cluster::ClusterHandle, p: &Place) -> u64 {
    match h.client.lxc_status(&p.node, p.vmid).await {
        Ok(s) if s.status == "running" => s.pid.unwrap_or(0),
        Ok(_) => 0,
        Err(e) => {
            tracing::debug!(vmid = p.vmid, error = %e, "pod logs: reading the container's status");
            0
        }
    }
}

/// Reads the console until it closes: the pid to skip next (the run's if it ended cleanly;
/// after a broken connection the same run is attached again).
async fn read_run(console: &mut crate::pve::Console, logs: &PodLogs, uid: &str, p: &Place, pid: u64) -> u64 {
    logs.begin(uid, p.vmid, pid);
    let skip = loop {
        match console.next_output().await {
            Ok(Some(bytes)) => logs.push(uid, p.vmid, pid, &bytes, now()),
            Ok(None) => break pid,
            Err(e) => {
                tracing::debug!(vmid = p.vmid, error = %e, "pod logs: console connection broke");
                break 0;
            }
        }
    };
    logs.end(uid, p.vmid, pid, now());
    skip
}

/// Follows one Pod container: while its phase says it runs (or just stopped), waits for a run,
/// attaches, reads until the console closes, and again. Nothing is asked of Proxmox while it is
/// being created or deleted.
async fn follow_container(clusters: Arc<ClusterRegistry>, logs: Arc<PodLogs>, uid: String, p: Place, mut phase: Phase) {
    let mut last_pid = 0u64;
    let mut failures = 0u32;
    let mut changed_at = tokio::time::Instant::now();
    loop {
        // a container made stopped is not looked at until it runs (it waits for its start,
        // maybe long, behind others); one whose run ended is, to attach to its restart at once
        let may_run = match *phase.borrow_and_update() {
            Some(ContainerPhase::Running) => true,
            Some(ContainerPhase::Stopped) => last_pid != 0,
            _ => false,
        };
        let h = clusters.get(&ClusterKey::named(p.cluster.clone()));
        let pid = match (&h, may_run) {
            (Some(h), true) => running_pid(h, &p).await,
            _ => 0,
        };
        if pid == 0 || pid == last_pid {
            let wait = if !may_run {
                Duration::from_secs(3600)
            } else if changed_at.elapsed() < SOON_FOR {
                LOOK_SOON
            } else {
                LOOK_LATER
            };
            match sleep_or_phase_change(wait, &mut phase).await {
                None => return,
                Some(true) => changed_at = tokio::time::Instant::now(),
                Some(false) => {}
            }
            continue;
        }
        let Some(h) = h else { continue };
        match h.client.console(&p.node, p.vmid).await {
            Ok(mut console) => {
                failures = 0;
                last_pid = read_run(&mut console, &logs, &uid, &p, pid).await;
                changed_at = tokio::time::Instant::now();
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = attach_retry(failures);
                tracing::warn!(vmid = p.vmid, error = %e, ?wait, "pod logs: cannot attach to the container's console");
                // a phase change (a restart) is tried at once
                match sleep_or_phase_change(wait, &mut phase).await {
                    None => return,
                    Some(true) => changed_at = tokio::time::Instant::now(),
                    Some(false) => {}
                }
            }
        }
    }
}

/// Sleeps `wait` or until the phase changes: `Some(true)` on a change, `Some(false)` when the
/// time ran out, `None` when the phase's sender is gone (the Pod is no longer followed).
async fn sleep_or_phase_change(wait: Duration, phase: &mut Phase) -> Option<bool> {
    tokio::select! {
        _ = tokio::time::sleep(wait) => Some(false),
        r = phase.changed() => r.is_ok().then_some(true),
    }
}

/// A followed container: where, its task, and its phase's sender.
type Followed = (
    Place,
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Sender<Option<ContainerPhase>>,
);

/// Attaches to the console of every Pod container (children `LxcContainer`s labelled with
/// their Pod's uid) in `namespaces` (all when empty), until the process ends.
pub async fn run(kube: kube::Client, clusters: Arc<ClusterRegistry>, logs: Arc<PodLogs>, namespaces: Vec<String>) {
    let apis: Vec<Api<LxcContainer>> = if namespaces.is_empty() {
        vec![Api::all(kube)]
    } else {
        namespaces.iter().map(|n| Api::namespaced(kube.clone(), n)).collect()
    };
    let cfg = watcher::Config::default().labels(POD_UID_LABEL);
    let streams = apis.into_iter().map(|api| watcher::watcher(api, cfg.clone()).boxed());
    let mut events = futures::stream::select_all(streams);
    let mut followed: HashMap<String, Followed> = HashMap::new();
    while let Some(ev) = events.next().await {
        let (c, deleted) = match ev {
            Ok(watcher::Event::Apply(c)) | Ok(watcher::Event::InitApply(c)) => (c, false),
            Ok(watcher::Event::Delete(c)) => (c, true),
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "pod logs: watching the Pod containers");
                continue;
            }
        };
        let Some((uid, p)) = place(&c) else { continue };
        let now_phase = c.status.as_ref().and_then(|s| s.phase);
        if deleted {
            if let Some((_, task, _)) = followed.remove(&uid) {
                task.abort();
            }
            logs.forget(&uid);
            continue;
        }
        if let Some((old, _, tx)) = followed.get(&uid) {
            if *old == p {
                tx.send_if_modified(|v| {
                    let changed = *v != now_phase;
                    *v = now_phase;
                    changed
                });
                continue;
            }
        }
        if let Some((_, task, _)) = followed.remove(&uid) {
            task.abort();
        }
        let (tx, rx) = tokio::sync::watch::channel(now_phase);
        let task = tokio::spawn(follow_container(
            clusters.clone(),
            logs.clone(),
            uid.clone(),
            p.clone(),
            rx,
        ));
        followed.insert(uid, (p, task, tx));
    }
}

#[cfg(test)]
mod tests {
    use super::super::lines::{parse_query, render};

    #[test]
    fn a_follower_that_cannot_attach_waits_longer_each_time_up_to_five_minutes() {
        let secs = Duration::from_secs;
        assert_eq!(attach_retry(1), secs(10));
        assert_eq!(attach_retry(2), secs(20));
        assert_eq!(attach_retry(5), secs(160));
        assert_eq!(attach_retry(6), secs(300));
        assert_eq!(attach_retry(u32::MAX), secs(300));
    }

    use super::*;

    fn at(s: i64) -> (i64, u32) {
        (s, 0)
    }

    #[test]
    fn lines_are_split_at_newlines_and_a_carriage_return_is_dropped() {
        let mut r = Ring::new(1 << 20);
        let mut seq = 0;
        r.push(b"one\r\ntw", at(1), &mut seq);
        r.push(b"o\r\nthree", at(2), &mut seq);
        let (lines, last) = r.since_seq(0);
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(last, 2);
        r.finish(at(3), &mut seq);
        assert_eq!(r.since_seq(2).0[0].text, "three");
    }

    #[test]
    fn the_ring_is_bounded_in_bytes_and_drops_the_oldest_lines() {
        let mut r = Ring::new(10 * (LINE_OVERHEAD + 8));
        let mut seq = 0;
        for i in 0..100 {
            r.push(format!("line {i:03}\n").as_bytes(), at(i), &mut seq);
        }
        let (lines, _) = r.since_seq(0);
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[0].text, "line 090");
        assert!(r.bytes() <= 10 * (LINE_OVERHEAD + 8));
        // a line longer than the ring is cut, never kept whole
        let mut small = Ring::new(LINE_OVERHEAD + 4);
        small.push(b"abcdefgh\n", at(0), &mut seq);
        assert_eq!(small.since_seq(0).0[0].text, "abcd");
    }

    #[test]
    fn a_restart_keeps_the_run_before_it_as_previous_and_a_reused_vmid_starts_afresh() {
        let logs = PodLogs::new(1 << 20);
        logs.begin("pod-a", 100, 11);
        logs.push("pod-a", 100, 11, b"first run\n", at(1));
        logs.end("pod-a", 100, 11, at(2));
        logs.begin("pod-a", 100, 22);
        logs.push("pod-a", 100, 22, b"second run\n", at(3));
        let cur = logs.read("pod-a", 100, false, 0).unwrap();
        assert_eq!(cur.lines[0].text, "second run");
        assert!(cur.open);
        let prev = logs.read("pod-a", 100, true, 0).unwrap();
        assert_eq!(prev.lines[0].text, "first run");
        assert!(!prev.open);
        // the same run attached again goes on, it is no restart
        logs.begin("pod-a", 100, 22);
        assert_eq!(logs.read("pod-a", 100, true, 0).unwrap().pid, 11);
        // another Pod on the same vmid sees nothing of pod-a's
        assert!(logs.read("pod-b", 100, false, 0).is_none());
        // pod-a's container moved to another vmid: its earlier runs are not shown for it
        logs.begin("pod-a", 200, 5);
        assert!(logs.read("pod-a", 200, true, 0).is_none());
        assert!(logs.read("pod-a", 100, false, 0).is_none());
    }

    #[test]
    fn the_exit_status_marker_is_kept_with_the_run_and_not_shown_as_output() {
        let logs = PodLogs::new(1 << 20);
        logs.begin("job", 100, 7);
        logs.push("job", 100, 7, b"working\r\ndone\r\n\x1b]7770;pve.lxc.dev/exit", at(1));
        assert_eq!(logs.run_end("job", 100), Some(RunEnd::Attached));
        logs.push("job", 100, 7, b"-code=3\x07", at(2));
        logs.end("job", 100, 7, at(3));
        assert_eq!(logs.run_end("job", 100), Some(RunEnd::Exited(3)));
        let lines = logs.read("job", 100, false, 0).unwrap().lines;
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["working", "done"]
        );
        // a run without the wrapper: nothing is known
        logs.begin("job", 100, 8);
        logs.push("job", 100, 8, b"bye\n", at(4));
        logs.end("job", 100, 8, at(5));
        assert_eq!(logs.run_end("job", 100), Some(RunEnd::Unknown));
        assert_eq!(logs.run_end("other", 100), None);
    }

    #[test]
    fn since_tail_and_limit_apply_to_the_console_lines() {
        let mut r = Ring::new(1 << 20);
        let mut seq = 0;
        for i in 0..5 {
            r.push(format!("line {i}\n").as_bytes(), at(1_000 + i * 10), &mut seq);
        }
        let lines = r.since_seq(0).0;
        assert_eq!(
            render(&lines, &parse_query("sinceSeconds=15", 1_045).unwrap()),
            "line 3\nline 4\n"
        );
        assert_eq!(render(&lines, &parse_query("tailLines=1", 0).unwrap()), "line 4\n");
        assert_eq!(render(&lines, &parse_query("limitBytes=9", 0).unwrap()), "line 0\nli");
    }
}
