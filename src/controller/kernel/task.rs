//! The task engine shared by every kind: start a Proxmox task (task slot first, the
//! write-ahead marker when asked, the call, the UPID recorded), and poll the task recorded in
//! status (its slot kept while it runs, freed when it ends, the failure text with the log tail).

use super::pass::{Managed, Pass};
use super::slots::{node_key, TaskSlots};
use crate::controller::cluster::ClusterHandle;
use crate::controller::Error;
use crate::crd::PendingTask;
use crate::pve::{self, ErrorClass, TaskResult, Upid};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

/// The `upid` recorded before a task-starting call returns: if the operator dies in between, the
/// next pass knows a call may have been made, and the identity rules decide what exists.
pub const UNKNOWN_UPID: &str = "unknown";

/// How a status records the task in flight.
pub trait TaskRecord {
    /// The task in flight, if any.
    fn pending(&self) -> Option<PendingTask>;
    /// Records `task` as in flight (`None`: none is).
    fn set_pending(&mut self, task: Option<PendingTask>);
}

/// What a task-starting call answers: a task, or (vzdump of a guest not on the node) none.
pub trait IntoTask {
    /// The task started, if any.
    fn into_task(self) -> Option<Upid>;
}

impl IntoTask for Upid {
    fn into_task(self) -> Option<Upid> {
        Some(self)
    }
}

impl IntoTask for pve::VzdumpResult {
    fn into_task(self) -> Option<Upid> {
        match self {
            pve::VzdumpResult::Task(u) => Some(u),
            pve::VzdumpResult::NothingToDo => None,
        }
    }
}

/// What a started task gave.
#[derive(Debug)]
pub enum Started {
    /// The task runs (its UPID is recorded in status).
    Task(Upid),
    /// The call started no task (the slot is freed; the marker, if any, cleared).
    NoTask,
    /// No task slot was free on the node: the object waits in the queue (woken when one frees).
    NoSlot,
    /// Proxmox refused the call (the slot is freed; the marker, if any, cleared).
    Refused(pve::Error),
}

/// How a recorded task stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Polled {
    /// Still running (its slot is held).
    Running,
    /// Ended well (with the number of warnings, if any).
    Done(Option<u32>),
    /// Failed: Proxmox's exit status and the last lines of the task log.
    Failed {
        /// The exit status text.
        text: String,
        /// The last lines of the log.
        tail: Vec<String>,
    },
    /// No task to poll: a marker whose call never answered, or a task Proxmox does not know.
    /// What exists in Proxmox decides what happened.
    Unknown,
}

/// `operation task failed: text (tail | tail)`.
pub fn failure_message(operation: &str, text: &str, tail: &[String]) -> String {
    if tail.is_empty() {
        format!("{operation} task failed: {text}")
    } else {
        format!("{operation} task failed: {text} ({})", tail.join(" | "))
    }
}

/// The first look at a fresh task (most tasks are short).
const FIRST_POLL: Duration = Duration::from_millis(200);
/// How often a task is looked at around the time it is expected to end, at least.
const NEAR_END_POLL: Duration = Duration::from_millis(100);
/// ... and at most.
const NEAR_END_POLL_MAX: Duration = Duration::from_secs(1);
/// The longest wait for a task's expected end without a look (a task much shorter than its
/// kind's average is seen at most this late).
const BLIND_MAX: Duration = Duration::from_secs(10);

/// When to look at a task again: soon after it started (most tasks are short), then less
/// often, up to the task poll interval: 200 ms for the first second, then a quarter of the
/// task's age. A poll costs one request, so a burst of young tasks costs a few more, and
/// steady state (no task) none at all.
pub fn poll_interval(started: Option<&Time>, now: jiff::Timestamp, max: Duration) -> Duration {
    let age = started
        .map(|s| now.duration_since(s.0).as_secs_f64().max(0.0))
        .unwrap_or(0.0);
    backoff(Duration::from_secs_f64(age), 4, max)
}

/// A fraction `1/div` of the task's age, between the first poll and `max`.
fn backoff(age: Duration, div: u32, max: Duration) -> Duration {
    (age / div).clamp(FIRST_POLL.min(max), max)
}

/// How a task is looked at around its expected end (pure): its first look at `first` of its
/// kind's expected time, then every `1/div` of that time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Looks {
    /// The first look, as a fraction of the expected time.
    pub first: f64,
    /// Near the end, a look every `1/div` of the expected time.
    pub div: u32,
}

impl Looks {
    /// In a burst (objects wait for a task slot): first at 95 % of the expected time, then
    /// every tenth. Every look is a request many tasks pay, and a late look costs the slot's
    /// next holder only that delay: ~1.4 looks per task, ~10 % of its time late (issue 26's
    /// requests per Pod).
    pub const BURST: Looks = Looks { first: 0.95, div: 10 };
    /// Alone (no object waits for a slot: a `kubectl apply` and someone waiting): first at
    /// 90 %, then every twentieth. Simulated against tasks of ±20 % (the benchmark's 3 s
    /// create): 2.8 looks, 116 ms late at the median, 620 ms at p99, against 1.5 looks and
    /// 275 / 910 ms with [`Looks::BURST`]; a look more per task, when Proxmox is not busy with
    /// ours.
    pub const ALONE: Looks = Looks { first: 0.9, div: 20 };

    /// [`Looks::BURST`] while objects wait for a task slot, else [`Looks::ALONE`].
    pub fn for_load(queued: bool) -> Looks {
        if queued {
            Looks::BURST
        } else {
            Looks::ALONE
        }
    }

    /// How tasks are looked at now: [`Looks::for_load`] of whether any object waits in `slots`.
    pub fn now(slots: &TaskSlots) -> Looks {
        Looks::for_load(slots.waiting() > 0)
    }

    /// When a task of a kind expected to take `expected` is first looked at. What a first look
    /// that finds the task ended teaches is only an upper bound ([`learned`]), so the
    /// expectation creeps down until a first look comes too early, and a later look lifts it.
    pub fn first_look(self, expected: Duration) -> Duration {
        expected.mul_f64(self.first)
    }
}

/// What a task that was found ended `took` after its start teaches about its kind (pure): a
/// find at the first look ([`Looks::first_look`], plus the pass's own delay: less than 1/20 of
/// the time past it) says only that it took at most that, so the expectation is taken 5 %
/// lower; a later look, or a kind not known yet, counts what it saw. Simulated against tasks of
/// ±20 % (the benchmark's) with [`Looks::BURST`], this sees a task in ~1.4 looks, ~10 % of its
/// time late; the first look at 9/10 without the lowering settled where that look was almost
/// always too early (~1.9 looks, ~7 % late), a first look at the expected time with 2 % lowering
/// took ~1.15 looks but ~16 % late (slots freed that much later: a burst of 100 Pods ×1.11 of
/// its limit).
pub fn learned(expected: Option<Duration>, took: Duration, looks: Looks) -> Duration {
    match expected {
        Some(e) if took < looks.first_look(e) + e / 20 => e.mul_f64(0.95).min(took),
        _ => took,
    }
}

/// [`poll_interval`] from the task's age, knowing (when `expected` is given) how long a task of
/// its kind took last. Proxmox tells nobody when a task ends, so each look is a request: a task
/// is first looked at when it is nearly done ([`Looks::first_look`]; at most 10 s without a
/// look), then every `1/div` of that time (100 ms to 1 s) until 1½ times it, then with the
/// back-off bounded by `max` (the task poll interval). A task of its kind's usual time is seen
/// in one look most of the time, one a little slower in two. A kind not seen yet (the first
/// task of its kind since the operator started) backs off by an eighth of its age.
pub fn poll_after(age: Duration, expected: Option<Duration>, max: Duration, looks: Looks) -> Duration {
    let Some(e) = expected else { return backoff(age, 8, max) };
    let (from, to) = (looks.first_look(e), e.mul_f64(1.5));
    if age >= to {
        backoff(age, 4, max)
    } else if age >= from {
        (e / looks.div.max(1)).clamp(NEAR_END_POLL, NEAR_END_POLL_MAX)
    } else {
        (from - age).clamp(Duration::from_millis(10), BLIND_MAX)
    }
}

/// When to look at the pass's task again: [`poll_after`] with the task's age to the millisecond
/// (from its task slot; else from status, in whole seconds), what its kind took last time, and
/// whether any object waits for a task slot ([`Looks::for_load`]).
pub fn next_poll<K>(p: &Pass<'_, K>) -> Duration
where
    K: Managed,
    K::Status: TaskRecord,
{
    let max = p.ctx.settings.task_poll;
    let Some(pt) = p.status.pending() else {
        return FIRST_POLL.min(max);
    };
    let age = p.ctx.slots.held_for(&p.uid).unwrap_or_else(|| {
        let started = pt.started_at.as_ref().map(|t| t.0);
        started
            .and_then(|s| jiff::Timestamp::now().duration_since(s).try_into().ok())
            .unwrap_or_default()
    });
    let node = pt
        .upid
        .parse::<Upid>()
        .map(|u| u.node().to_string())
        .unwrap_or_default();
    let looks = Looks::now(&p.ctx.slots);
    poll_after(age, p.ctx.task_times.expected(&pt.operation, &node), max, looks)
}

/// Starts `call` on `node` as `operation` for the pass's object: takes a task slot (or queues
/// the object), records the write-ahead marker first when `write_ahead` (a crash after the call
/// then leaves the status saying what may have been started), makes the call and records its
/// UPID. The status is saved on every path.
pub async fn start<K>(
    p: &mut Pass<'_, K>,
    handle: &ClusterHandle,
    node: &str,
    operation: &str,
    write_ahead: bool,
    call: impl std::future::Future<Output = pve::Result<impl IntoTask>>,
) -> Result<Started, Error>
where
    K: Managed,
    K::Status: TaskRecord,
{
    let waker = p.waker();
    let key = node_key(&handle.key, node);
    let namespace = kube::ResourceExt::namespace(p.obj).unwrap_or_default();
    if !p
        .ctx
        .slots
        .try_take(&handle.client, &key, node, &p.uid, &namespace, K::KIND, waker)
    {
        return Ok(Started::NoSlot);
    }
    let now = p.now.clone();
    let task = |upid: &str| PendingTask {
        upid: upid.into(),
        operation: operation.into(),
        started_at: Some(now.clone()),
    };
    if write_ahead {
        p.status.set_pending(Some(task(UNKNOWN_UPID)));
        if let Err(e) = p.save().await {
            p.ctx.slots.release(&p.uid);
            return Err(e);
        }
    }
    match call.await.map(IntoTask::into_task) {
        Ok(Some(upid)) => {
            p.ctx.metrics.task_started(operation);
            // shown without the token id (readers of the object need not learn it); polling
            // puts it back from the client's own principal
            p.status.set_pending(Some(task(&upid.redacted())));
            p.save().await?;
            Ok(Started::Task(upid))
        }
        Ok(None) => {
            p.ctx.slots.release(&p.uid);
            if write_ahead {
                p.status.set_pending(None);
            }
            Ok(Started::NoTask)
        }
        Err(e) => {
            p.ctx.slots.release(&p.uid);
            if write_ahead {
                p.status.set_pending(None);
            }
            Ok(Started::Refused(e))
        }
    }
}

/// Polls the task recorded in status (`None`: there is none). The record is cleared once the
/// task has ended (or is unknown); the caller records the outcome and saves.
pub async fn poll<K>(
    p: &mut Pass<'_, K>,
    handle: &ClusterHandle,
    log_lines: u64,
) -> Result<Option<(PendingTask, Polled)>, Error>
where
    K: Managed,
    K::Status: TaskRecord,
{
    let Some(pt) = p.status.pending() else { return Ok(None) };
    let Ok(upid) = pt
        .upid
        .parse::<Upid>()
        .map(|u| u.unredacted(&handle.client.principal()))
    else {
        p.status.set_pending(None);
        p.ctx.slots.release(&p.uid);
        return Ok(Some((pt, Polled::Unknown)));
    };
    let st = match handle.client.task_status(&upid).await {
        Ok(s) => s,
        Err(e) if e.class() == ErrorClass::NotFound || matches!(e, pve::Error::InvalidParameters { .. }) => {
            p.status.set_pending(None);
            p.ctx.slots.release(&p.uid);
            return Ok(Some((pt, Polled::Unknown)));
        }
        Err(e) => return Err(e.into()),
    };
    let polled = match st.result() {
        TaskResult::Running if overran(p, &pt).is_some() => {
            let bound = overran(p, &pt).unwrap_or_default();
            // stopped, or gone meanwhile: either way it is not waited for any longer
            let _ = handle.client.stop_task(&upid).await;
            p.ctx.metrics.task_failed(&pt.operation);
            Polled::Failed {
                text: overran_text(bound),
                tail: handle.client.task_log_tail(&upid, log_lines).await.unwrap_or_default(),
            }
        }
        TaskResult::Running => {
            // keep the slot of a task started by an earlier operator process, too
            p.ctx
                .slots
                .adopt(&handle.client, &node_key(&handle.key, upid.node()), upid.node(), &p.uid);
            return Ok(Some((pt, Polled::Running)));
        }
        TaskResult::Ok | TaskResult::Warnings(_) => {
            if let Some(took) = p.ctx.slots.held_for(&p.uid) {
                let looks = Looks::now(&p.ctx.slots);
                let expected = p.ctx.task_times.expected(&pt.operation, upid.node());
                p.ctx
                    .task_times
                    .observe(&pt.operation, upid.node(), learned(expected, took, looks));
            }
            match st.result() {
                TaskResult::Warnings(n) => Polled::Done(Some(n)),
                _ => Polled::Done(None),
            }
        }
        TaskResult::Failed(text) => {
            p.ctx.metrics.task_failed(&pt.operation);
            let tail = handle.client.task_log_tail(&upid, log_lines).await.unwrap_or_default();
            Polled::Failed { text, tail }
        }
    };
    p.status.set_pending(None);
    p.ctx.slots.release(&p.uid);
    handle.refresh.notify_one();
    Ok(Some((pt, polled)))
}

/// The time bound of a task of `pt.operation` that it has run past, if any: a pull (its time
/// is the registry's, not Proxmox's) may hold its slot for `--pull-timeout` at most.
fn overran<K>(p: &Pass<'_, K>, pt: &PendingTask) -> Option<Duration>
where
    K: Managed,
    K::Status: TaskRecord,
{
    let bound = time_bound(pt.op(), p.ctx.settings.pull_timeout)?;
    let age = p.ctx.slots.held_for(&p.uid).or_else(|| {
        let started = pt.started_at.as_ref()?.0;
        jiff::Timestamp::now().duration_since(started).try_into().ok()
    })?;
    (age > bound).then_some(bound)
}

/// The longest a task of `op` may run (pure): pulls only; Proxmox's own tasks end by themselves.
pub fn time_bound(op: Option<crate::crd::Operation>, pull_timeout: Duration) -> Option<Duration> {
    (op == Some(crate::crd::Operation::Pull)).then_some(pull_timeout)
}

/// Why a task that overran its bound was stopped.
pub fn overran_text(bound: Duration) -> String {
    format!(
        "stopped after {}s, the longest a pull may take (--pull-timeout): the registry is too slow or stalled",
        bound.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pull_has_a_time_bound() {
        use crate::crd::Operation;
        let t = Duration::from_secs(900);
        assert_eq!(time_bound(Some(Operation::Pull), t), Some(t));
        assert_eq!(time_bound(Some(Operation::Create), t), None);
        assert_eq!(time_bound(None, t), None);
        assert!(overran_text(t).contains("900s"));
    }

    #[test]
    fn a_young_task_is_polled_quickly_and_an_old_one_at_the_poll_interval() {
        let now: jiff::Timestamp = "2026-12-01T00:00:10Z".parse().unwrap();
        let at = |s: &str| Time(s.parse().unwrap());
        let max = Duration::from_secs(1);
        assert_eq!(
            poll_interval(Some(&at("2026-12-01T00:00:10Z")), now, max),
            Duration::from_millis(200)
        );
        assert_eq!(
            poll_interval(Some(&at("2026-12-01T00:00:08Z")), now, max),
            Duration::from_millis(500)
        );
        assert_eq!(poll_interval(Some(&at("2026-12-01T00:00:00Z")), now, max), max);
        assert_eq!(
            poll_interval(None, now, Duration::from_millis(100)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_task_is_polled_densely_around_its_expected_end() {
        let (ms, max) = (Duration::from_millis, Duration::from_secs(1));
        let e = Some(ms(3000));
        let poll_after = |age, e, max| poll_after(age, e, max, Looks::BURST);
        // a kind not seen yet: an eighth of the age
        assert_eq!(poll_after(ms(2000), None, max), ms(250));
        assert_eq!(poll_after(ms(100), None, max), ms(200));
        // before the window: one wait until 95 % of the expected time
        assert_eq!(poll_after(ms(0), e, max), ms(2850));
        assert_eq!(poll_after(ms(2000), e, max), ms(850));
        // within it, every tenth of it; well past it, the back-off bounded by the interval
        assert_eq!(poll_after(ms(2850), e, max), ms(300));
        assert_eq!(poll_after(ms(4400), e, max), ms(300));
        assert_eq!(poll_after(ms(4500), e, max), ms(1000));
        assert_eq!(poll_after(ms(4500), e, ms(50)), ms(50));
        // a long kind is looked at every 10 s at least, and every second near its end
        assert_eq!(poll_after(ms(0), Some(ms(600_000)), max), ms(10_000));
        assert_eq!(poll_after(ms(600_000), Some(ms(600_000)), max), ms(1000));
        // a short one every 100 ms near its end
        assert_eq!(poll_after(ms(500), Some(ms(500)), max), ms(100));
    }

    #[test]
    fn a_task_found_done_at_its_first_look_lowers_its_kinds_time_and_a_later_find_raises_it() {
        let ms = Duration::from_millis;
        let e = Some(ms(3000));
        let learned = |e, took| learned(e, took, Looks::BURST);
        assert_eq!(learned(e, ms(2900)), ms(2850), "found at the first look: 5 % lower");
        assert_eq!(
            learned(e, ms(2500)),
            ms(2500),
            "found sooner (woken early): what it saw"
        );
        assert_eq!(learned(e, ms(3300)), ms(3300), "found at the second look");
        assert_eq!(learned(None, ms(3300)), ms(3300), "a kind not known yet");
        // a kind of steady 3 s settles near it, mostly seen in one look
        let t = crate::controller::kernel::task_times::TaskTimes::default();
        t.observe("create", "pve1", ms(3600));
        let mut looks = 0;
        for _ in 0..40 {
            let e = t.expected("create", "pve1").unwrap();
            let mut at = Looks::BURST.first_look(e);
            looks += 1;
            while at < ms(3000) {
                at += poll_after(at, Some(e), Duration::from_secs(1), Looks::BURST);
                looks += 1;
            }
            t.observe("create", "pve1", learned(Some(e), at + ms(20)));
        }
        let e = t.expected("create", "pve1").unwrap();
        assert!(e >= ms(2900) && e <= ms(3400), "{e:?}");
        assert!(looks <= 64, "{looks} looks for 40 tasks");
    }

    #[test]
    fn a_task_alone_is_looked_at_sooner_and_twice_as_often_near_its_end_as_one_in_a_burst() {
        let (ms, max) = (Duration::from_millis, Duration::from_secs(1));
        let (alone, burst) = (Looks::for_load(false), Looks::for_load(true));
        let e = Some(ms(3000));
        assert_eq!(poll_after(ms(0), e, max, alone), ms(2700));
        assert_eq!(poll_after(ms(0), e, max, burst), ms(2850));
        assert_eq!(poll_after(ms(2850), e, max, alone), ms(150));
        assert_eq!(poll_after(ms(2850), e, max, burst), ms(300));
        // the same back-off well past it either way, and never more often than every 100 ms
        assert_eq!(poll_after(ms(4500), e, max, alone), ms(1000));
        assert_eq!(poll_after(ms(500), Some(ms(500)), max, alone), ms(100));
        // a find at the first look lowers the kind's time by 5 % either way
        assert_eq!(learned(e, ms(2900), alone), ms(2900), "found at the second look alone");
        assert_eq!(learned(e, ms(2750), alone), ms(2750), "found at the first look alone");
        assert_eq!(learned(e, ms(2900), burst), ms(2850));
    }

    #[test]
    fn a_failure_message_carries_the_log_tail() {
        assert_eq!(failure_message("create", "boom", &[]), "create task failed: boom");
        assert_eq!(
            failure_message("create", "boom", &["a".into(), "b".into()]),
            "create task failed: boom (a | b)"
        );
    }
}
