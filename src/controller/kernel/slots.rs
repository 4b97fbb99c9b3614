//! Capacity shared between objects, owned by services instead of ad-hoc maps:
//!
//! - [`TaskSlots`]: at most `maxConcurrentTasksPerNode` Proxmox tasks per node. An object takes
//!   a [`SlotGuard`] before it starts a task and keeps it (inside the service) until the task
//!   has ended; an object that finds no free slot waits in a queue per node and is woken when a
//!   guard drops. The queue serves namespaces in turn (the namespace served longest ago first,
//!   then its oldest waiter), so one tenant's many tasks (or slow pulls) do not delay another
//!   tenant's one by more than one task. A pass never blocks on a slot.
//! - [`NodeQueue`]: one holder per node at a time (one `vzdump` per Proxmox node), handed to
//!   waiting namespaces in turn (one namespace's many backups do not starve another's one).
//! - [`Claims`]: one object does a shared piece of work (an image download) for all.
//!
//! Every service forgets an object on [`TaskSlots::forget`] (its cleanup) and on `retain`
//! (the periodic prune of objects deleted without a cleanup pass, e.g. a finalizer removed by
//! hand): a vanished object never keeps a slot, a queue place or a claim.

use crate::metrics::Metrics;
use crate::pve;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Asks for a pass of one object (sends it to its controller's queue).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

struct Waiter {
    uid: String,
    key: String,
    namespace: String,
    /// Arrival order (within a namespace, the oldest goes first).
    seq: u64,
    /// When it was woken for a freed slot: a waiter that does not come back within
    /// [`WAKE_GRACE`] (its object went away, or its pass decided otherwise) stops holding up
    /// the others until it asks again.
    woken: Option<Instant>,
    kind: &'static str,
    wake: Waker,
}

/// How long a woken waiter keeps its turn before the next one may go.
const WAKE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Default)]
struct SlotsInner {
    held: HashMap<String, SlotGuard>,
    waiting: VecDeque<Waiter>,
    /// Per node key, the turn at which each namespace last took a slot there.
    served: HashMap<String, HashMap<String, u64>>,
    turn: u64,
    seq: u64,
}

impl SlotsInner {
    /// The uids waiting for `key` in the order they go: the namespace served longest ago (or
    /// never) first, within it the oldest. Waiters woken more than [`WAKE_GRACE`] ago that did
    /// not come back are left out.
    fn order(&self, key: &str) -> Vec<&Waiter> {
        let served = self.served.get(key);
        let turn = |ns: &str| served.and_then(|m| m.get(ns)).copied().unwrap_or(0);
        let mut v: Vec<&Waiter> = self
            .waiting
            .iter()
            .filter(|w| w.key == key && w.woken.is_none_or(|t| t.elapsed() < WAKE_GRACE))
            .collect();
        v.sort_by_key(|w| (turn(&w.namespace), w.seq));
        v
    }

    /// Wakes the first waiter of `key` that was not woken yet (marking it woken).
    fn wake_next(&mut self, key: &str) -> Option<Waker> {
        let uid = self.order(key).into_iter().find(|w| w.woken.is_none())?.uid.clone();
        let w = self.waiting.iter_mut().find(|w| w.uid == uid)?;
        w.woken = Some(Instant::now());
        Some(w.wake.clone())
    }
}

/// A task slot on one node. Dropping it frees the slot and wakes the first object waiting for
/// that node.
pub struct SlotGuard {
    permit: Option<OwnedSemaphorePermit>,
    key: String,
    slots: Weak<Mutex<SlotsInner>>,
    /// When it was taken: just before the task-starting call (the task's age, to the
    /// millisecond; status times are whole seconds).
    since: Instant,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        drop(self.permit.take());
        let Some(inner) = self.slots.upgrade() else { return };
        let next = {
            let mut g = super::recover(inner.lock(), "the task slots");
            g.wake_next(&self.key)
        };
        if let Some(wake) = next {
            wake();
        }
    }
}

/// The task-slot service (see the module docs).
#[derive(Clone)]
pub struct TaskSlots {
    inner: Arc<Mutex<SlotsInner>>,
    metrics: Arc<Metrics>,
}

/// The queue key of a node of a cluster.
pub fn node_key(cluster: &impl std::fmt::Display, node: &str) -> String {
    format!("{cluster}|{node}")
}

impl TaskSlots {
    /// An empty service reporting its queue depth to `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            inner: Arc::default(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotsInner> {
        super::recover(self.inner.lock(), "the task slots")
    }

    fn report_depth(&self, g: &SlotsInner, kind: &'static str) {
        self.metrics
            .set_queue_depth(kind, g.waiting.iter().filter(|w| w.kind == kind).count());
    }

    /// Takes a slot on `node` for object `uid` of `namespace` (true), or queues it (keeping its
    /// place) and returns false; `wake` is called when its turn comes. A free slot goes to
    /// `uid` only when fewer waiters go before it (the namespace served longest ago first, then
    /// the oldest) than slots are free. An object that holds a slot already keeps it.
    #[allow(clippy::too_many_arguments)]
    pub fn try_take(
        &self,
        client: &pve::Client,
        key: &str,
        node: &str,
        uid: &str,
        namespace: &str,
        kind: &'static str,
        wake: Waker,
    ) -> bool {
        let mut g = self.lock();
        if g.held.contains_key(uid) {
            return true;
        }
        let passed_on = self.enqueue(&mut g, key, uid, namespace, kind, wake);
        if let Some(next) = passed_on {
            // called without the lock held (a waker may come back at once)
            drop(g);
            next();
            g = self.lock();
        }
        let ahead = g.order(key).iter().take_while(|w| w.uid != uid).count();
        let permit = (ahead < client.available_task_slots(node))
            .then(|| client.try_acquire_task_slot(node))
            .flatten();
        let Some(permit) = permit else {
            self.report_depth(&g, kind);
            return false;
        };
        g.waiting.retain(|w| w.uid != uid);
        g.turn += 1;
        let turn = g.turn;
        g.served
            .entry(key.to_string())
            .or_default()
            .insert(namespace.to_string(), turn);
        let guard = SlotGuard {
            permit: Some(permit),
            key: key.to_string(),
            slots: Arc::downgrade(&self.inner),
            since: Instant::now(),
        };
        g.held.insert(uid.to_string(), guard);
        self.report_depth(&g, kind);
        true
    }

    /// Puts `uid` in the queue of `key`, or keeps its place there (a waiter for another node
    /// goes to the back of this one's); it is active again (not woken-and-gone). A waiter woken
    /// for a slot of another node that now asks for this one passes its turn there on: the
    /// waker of the next waiter of that node is returned, to be called once the lock is let go
    /// (else that freed slot would stay idle until the safety-net look).
    fn enqueue(
        &self,
        g: &mut SlotsInner,
        key: &str,
        uid: &str,
        namespace: &str,
        kind: &'static str,
        wake: Waker,
    ) -> Option<Waker> {
        if let Some(w) = g.waiting.iter_mut().find(|w| w.uid == uid && w.key == key) {
            w.woken = None;
            w.wake = wake;
            return None;
        }
        let moved_from = g
            .waiting
            .iter()
            .find(|w| w.uid == uid && w.woken.is_some())
            .map(|w| w.key.clone());
        g.waiting.retain(|w| w.uid != uid);
        g.seq += 1;
        let seq = g.seq;
        g.waiting.push_back(Waiter {
            uid: uid.into(),
            key: key.into(),
            namespace: namespace.into(),
            seq,
            woken: None,
            kind,
            wake,
        });
        moved_from.and_then(|k| g.wake_next(&k))
    }

    /// Takes a slot for a task found running (started by an earlier operator process), if one
    /// is free; never queues.
    pub fn adopt(&self, client: &pve::Client, key: &str, node: &str, uid: &str) {
        let mut g = self.lock();
        if g.held.contains_key(uid) {
            return;
        }
        if let Some(permit) = client.try_acquire_task_slot(node) {
            let guard = SlotGuard {
                permit: Some(permit),
                key: key.to_string(),
                slots: Arc::downgrade(&self.inner),
                since: Instant::now(),
            };
            g.held.insert(uid.to_string(), guard);
        }
    }

    /// How long `uid` has held its slot (`None`: it holds none).
    pub fn held_for(&self, uid: &str) -> Option<std::time::Duration> {
        self.lock().held.get(uid).map(|g| g.since.elapsed())
    }

    /// Whether `uid` holds a slot.
    pub fn holds(&self, uid: &str) -> bool {
        self.lock().held.contains_key(uid)
    }

    /// Frees the slot of `uid`, if it holds one (waking the next waiter of its node).
    pub fn release(&self, uid: &str) {
        let guard = self.lock().held.remove(uid);
        drop(guard);
    }

    /// Forgets `uid` entirely: its slot and its place in the queue.
    pub fn forget(&self, uid: &str) {
        let (guard, next) = {
            let mut g = self.lock();
            let kinds: Vec<&'static str> = g.waiting.iter().filter(|w| w.uid == uid).map(|w| w.kind).collect();
            let woken_for: Vec<String> = g
                .waiting
                .iter()
                .filter(|w| w.uid == uid && w.woken.is_some())
                .map(|w| w.key.clone())
                .collect();
            g.waiting.retain(|w| w.uid != uid);
            for k in kinds {
                self.report_depth(&g, k);
            }
            // a waiter woken for a freed slot that goes away passes its turn on
            let next: Vec<Waker> = woken_for.iter().filter_map(|k| g.wake_next(k)).collect();
            (g.held.remove(uid), next)
        };
        drop(guard);
        for wake in next {
            wake();
        }
    }

    /// Forgets every object for which `live` is false.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        let gone: Vec<String> = {
            let g = self.lock();
            g.held
                .keys()
                .chain(g.waiting.iter().map(|w| &w.uid))
                .filter(|u| !live(u))
                .cloned()
                .collect()
        };
        for uid in gone {
            self.forget(&uid);
        }
    }

    /// The placement load of each of `nodes` of `cluster`: objects waiting for a slot there
    /// minus its free slots (lower is better).
    pub fn load<'a>(
        &self,
        client: &pve::Client,
        cluster: &impl std::fmt::Display,
        nodes: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, i64> {
        let mut waiting: HashMap<String, i64> = HashMap::new();
        for w in &self.lock().waiting {
            *waiting.entry(w.key.clone()).or_default() += 1;
        }
        nodes
            .map(|n| {
                let queued = waiting.get(&node_key(cluster, n)).copied().unwrap_or(0);
                (n.to_string(), queued - client.available_task_slots(n) as i64)
            })
            .collect()
    }

    /// How many objects wait for a slot.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

// ------------------------------------------------------------------ one holder per node, fair

struct QueueWaiter {
    uid: String,
    namespace: String,
    order: (i64, String),
    wake: Waker,
}

#[derive(Default)]
struct NodeState {
    /// (uid, namespace/name) of the holder.
    holder: Option<(String, String)>,
    waiting: Vec<QueueWaiter>,
    /// The turn at which each namespace was last served (absent: never).
    served: HashMap<String, u64>,
    turn: u64,
}

impl NodeState {
    /// The waiter that goes next: of the namespace served longest ago, its oldest.
    fn next(&self) -> Option<&QueueWaiter> {
        self.waiting.iter().min_by(|a, b| {
            let sa = self.served.get(&a.namespace).copied().unwrap_or(0);
            let sb = self.served.get(&b.namespace).copied().unwrap_or(0);
            sa.cmp(&sb).then_with(|| a.order.cmp(&b.order))
        })
    }
}

/// One holder per node at a time, namespaces served in turn (see the module docs).
#[derive(Default)]
pub struct NodeQueue {
    nodes: Mutex<HashMap<String, NodeState>>,
}

impl NodeQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, NodeState>> {
        super::recover(self.nodes.lock(), "the vzdump queue")
    }

    /// Takes node `key` for `uid` when it is free and `uid` goes next; otherwise queues it and
    /// returns who holds the node or goes before it (`namespace/name`).
    pub fn take_or_wait(
        &self,
        key: &str,
        uid: &str,
        namespace: &str,
        order: (i64, String),
        wake: Waker,
    ) -> Result<(), String> {
        let mut nodes = self.lock();
        let q = nodes.entry(key.to_string()).or_default();
        if q.holder.as_ref().is_some_and(|h| h.0 == uid) {
            return Ok(());
        }
        match q.waiting.iter_mut().find(|w| w.uid == uid) {
            Some(w) => w.wake = wake,
            None => q.waiting.push(QueueWaiter {
                uid: uid.into(),
                namespace: namespace.into(),
                order,
                wake,
            }),
        }
        if let Some((_, name)) = &q.holder {
            return Err(name.clone());
        }
        let next = q.next().expect("just queued");
        if next.uid != uid {
            return Err(next.order.1.clone());
        }
        let name = next.order.1.clone();
        q.waiting.retain(|w| w.uid != uid);
        q.turn += 1;
        let turn = q.turn;
        q.served.insert(namespace.to_string(), turn);
        q.holder = Some((uid.to_string(), name));
        Ok(())
    }

    /// Records that `uid` holds node `key` (a task found running after a restart), if free.
    pub fn claim(&self, key: &str, uid: &str, name: &str) {
        let mut nodes = self.lock();
        let q = nodes.entry(key.to_string()).or_default();
        if q.holder.is_none() {
            q.holder = Some((uid.to_string(), name.to_string()));
        }
    }

    /// Whether `uid` holds node `key`.
    pub fn holds(&self, key: &str, uid: &str) -> bool {
        self.lock()
            .get(key)
            .and_then(|q| q.holder.as_ref())
            .is_some_and(|h| h.0 == uid)
    }

    /// Frees what `uid` holds and leaves its places in the queues; waiters of a freed node
    /// are woken (the one that goes next takes it).
    pub fn forget(&self, uid: &str) {
        let mut wake = Vec::new();
        {
            let mut nodes = self.lock();
            for q in nodes.values_mut() {
                q.waiting.retain(|w| w.uid != uid);
                if q.holder.as_ref().is_some_and(|h| h.0 == uid) {
                    q.holder = None;
                    wake.extend(q.waiting.iter().map(|w| w.wake.clone()));
                }
            }
        }
        for w in wake {
            w();
        }
    }

    /// Leaves the waiting lists (keeps a node it holds).
    pub fn leave_waiting(&self, uid: &str) {
        for q in self.lock().values_mut() {
            q.waiting.retain(|w| w.uid != uid);
        }
    }

    /// Forgets every object for which `live` is false.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        let gone: Vec<String> = {
            let nodes = self.lock();
            nodes
                .values()
                .flat_map(|q| {
                    q.holder
                        .iter()
                        .map(|h| h.0.clone())
                        .chain(q.waiting.iter().map(|w| w.uid.clone()))
                })
                .filter(|u| !live(u))
                .collect()
        };
        for uid in gone {
            self.forget(&uid);
        }
    }
}

// ------------------------------------------------------------------ claims

/// Shared work claimed by one object: `key` → the uid doing it; and the work known done (an
/// image seen in its storage), for a while.
#[derive(Default)]
pub struct Claims {
    map: Mutex<HashMap<String, String>>,
    done: Mutex<HashMap<String, Instant>>,
}

impl Claims {
    /// `key`'s work was seen done now (an image listed in its storage).
    pub fn seen_done(&self, key: &str) {
        super::recover(self.done.lock(), "the download claims").insert(key.to_string(), Instant::now());
    }

    /// Whether `key`'s work was seen done less than `within` ago (another look can wait).
    pub fn done_within(&self, key: &str, within: std::time::Duration) -> bool {
        let mut m = super::recover(self.done.lock(), "the download claims");
        m.retain(|_, at| at.elapsed() < within);
        m.contains_key(key)
    }

    /// Claims `key` for `uid`: `true` when it is (now) `uid`'s, `false` when another has it.
    pub fn claim(&self, key: &str, uid: &str) -> bool {
        let mut m = super::recover(self.map.lock(), "the download claims");
        match m.get(key) {
            Some(other) if other != uid => false,
            _ => {
                m.insert(key.to_string(), uid.to_string());
                true
            }
        }
    }

    /// Gives up `key`.
    pub fn release(&self, key: &str) {
        super::recover(self.map.lock(), "the download claims").remove(key);
    }

    /// Gives up every claim of `uid`.
    pub fn forget(&self, uid: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| v != uid);
    }

    /// Forgets the claims of every object for which `live` is false.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, v| live(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> (Arc<AtomicUsize>, Waker) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            n,
            Arc::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }),
        )
    }

    fn client(limit: u32) -> pve::Client {
        let mut cfg = pve::ClientConfig::new(
            ["https://127.0.0.1:1"],
            pve::Auth::Token {
                token_id: "u@pam!t".into(),
                secret: "s".into(),
            },
        );
        cfg.limits.max_concurrent_tasks_per_node = limit;
        pve::Client::new(cfg).unwrap()
    }

    #[test]
    fn a_dropped_slot_wakes_the_first_waiter_of_its_node() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(1);
        let (_, wa) = counter();
        let (nb, wb) = counter();
        let (nc, wc) = counter();
        assert!(slots.try_take(&c, "k|pve1", "pve1", "a", "ns", "LxcContainer", wa));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "b", "ns", "LxcContainer", wb));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "c", "ns", "LxcContainer", wc));
        slots.release("a");
        assert_eq!((nb.load(Ordering::SeqCst), nc.load(Ordering::SeqCst)), (1, 0));
        let (_, wb) = counter();
        assert!(slots.try_take(&c, "k|pve1", "pve1", "b", "ns", "LxcContainer", wb));
        assert_eq!(slots.waiting(), 1);
    }

    #[test]
    fn a_woken_waiter_that_asks_for_another_node_or_goes_away_passes_its_turn_on() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(1);
        let (_, w) = counter();
        let (nb, wb) = counter();
        let (nc, wc) = counter();
        let (nd, wd) = counter();
        assert!(slots.try_take(&c, "k|pve1", "pve1", "a", "ns", "LxcContainer", w.clone()));
        assert!(slots.try_take(&c, "k|pve2", "pve2", "x", "ns", "LxcContainer", w.clone()));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "b", "ns", "LxcContainer", wb));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "c", "ns", "LxcContainer", wc));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "d", "ns", "LxcContainer", wd));
        slots.release("a");
        assert_eq!(nb.load(Ordering::SeqCst), 1, "b's turn on pve1");
        // b's pass placed it on pve2 instead (full): pve1's free slot goes to c, not idle
        assert!(!slots.try_take(&c, "k|pve2", "pve2", "b", "ns", "LxcContainer", w.clone()));
        assert_eq!(nc.load(Ordering::SeqCst), 1, "b passed its turn on pve1 to c");
        // c goes away before its pass: d is woken
        slots.forget("c");
        assert_eq!(nd.load(Ordering::SeqCst), 1, "c passed its turn on to d");
        assert!(slots.try_take(&c, "k|pve1", "pve1", "d", "ns", "LxcContainer", w));
    }

    #[test]
    fn one_tenants_slow_pulls_do_not_delay_another_tenants_creates() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(2);
        let k = "k|pve1";
        let (_, w) = counter();
        // team-a's pulls hold both slots of the node (a registry that trickles) and ten more
        // of its pulls wait
        assert!(slots.try_take(&c, k, "pve1", "pull0", "team-a", "LxcContainer", w.clone()));
        assert!(slots.try_take(&c, k, "pve1", "pull1", "team-a", "LxcContainer", w.clone()));
        for i in 2..12 {
            assert!(!slots.try_take(&c, k, "pve1", &format!("pull{i}"), "team-a", "LxcContainer", w.clone()));
        }
        // then team-b asks for one create
        let (nb, wb) = counter();
        assert!(!slots.try_take(&c, k, "pve1", "create", "team-b", "LxcContainer", wb.clone()));
        // one of team-a's pulls ends: team-b's create is woken, not team-a's next pull
        slots.release("pull0");
        assert_eq!(nb.load(Ordering::SeqCst), 1, "team-b is woken first");
        assert!(
            !slots.try_take(&c, k, "pve1", "pull2", "team-a", "LxcContainer", w.clone()),
            "team-a's next pull cannot take team-b's turn"
        );
        assert!(slots.try_take(&c, k, "pve1", "create", "team-b", "LxcContainer", wb));
        // the next freed slot goes back to team-a, its oldest waiter first
        slots.release("pull1");
        assert!(!slots.try_take(&c, k, "pve1", "pull3", "team-a", "LxcContainer", w.clone()));
        assert!(slots.try_take(&c, k, "pve1", "pull2", "team-a", "LxcContainer", w));
    }

    #[test]
    fn a_woken_waiter_that_does_not_come_back_stops_holding_up_the_queue() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(1);
        let k = "k|pve1";
        let (_, w) = counter();
        assert!(slots.try_take(&c, k, "pve1", "a", "team-a", "LxcContainer", w.clone()));
        assert!(!slots.try_take(&c, k, "pve1", "gone", "team-b", "LxcContainer", w.clone()));
        assert!(!slots.try_take(&c, k, "pve1", "c", "team-c", "LxcContainer", w.clone()));
        slots.release("a");
        // `gone` was woken and keeps its turn for a while
        assert!(!slots.try_take(&c, k, "pve1", "c", "team-c", "LxcContainer", w.clone()));
        // … but not for good
        for waiter in slots.inner.lock().unwrap().waiting.iter_mut() {
            if waiter.uid == "gone" {
                waiter.woken = Instant::now().checked_sub(WAKE_GRACE * 2);
            }
        }
        assert!(slots.try_take(&c, k, "pve1", "c", "team-c", "LxcContainer", w));
    }

    #[test]
    fn free_slots_are_not_left_idle_behind_waiters_of_other_nodes() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(1);
        let (_, w) = counter();
        assert!(slots.try_take(&c, "k|pve1", "pve1", "a", "team-a", "LxcContainer", w.clone()));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "b", "team-a", "LxcContainer", w.clone()));
        assert!(slots.try_take(&c, "k|pve2", "pve2", "c", "team-b", "LxcContainer", w));
    }

    #[test]
    fn a_vanished_object_frees_its_slot_and_its_place_in_the_queue() {
        let slots = TaskSlots::new(Arc::default());
        let c = client(1);
        let (_, w) = counter();
        assert!(slots.try_take(&c, "k|pve1", "pve1", "gone", "ns", "LxcContainer", w.clone()));
        assert!(!slots.try_take(&c, "k|pve1", "pve1", "ghost", "ns", "LxcContainer", w.clone()));
        slots.retain(&|uid| uid != "gone" && uid != "ghost");
        assert!(!slots.holds("gone"));
        assert_eq!(slots.waiting(), 0);
        assert!(slots.try_take(&c, "k|pve1", "pve1", "next", "ns", "LxcContainer", w));
    }

    #[test]
    fn the_node_queue_serves_namespaces_in_turn() {
        let q = NodeQueue::default();
        let (_, w) = counter();
        // team-a queued five backups before team-b's one
        for i in 0..5 {
            let _ = q.take_or_wait("n", &format!("a{i}"), "team-a", (i, format!("team-a/b{i}")), w.clone());
        }
        let _ = q.take_or_wait("n", "b0", "team-b", (10, "team-b/b0".into()), w.clone());
        assert!(q.holds("n", "a0"));
        q.forget("a0");
        // team-b has not been served: its backup goes before team-a's second one
        assert_eq!(
            q.take_or_wait("n", "a1", "team-a", (1, "team-a/b1".into()), w.clone()),
            Err("team-b/b0".into())
        );
        assert!(q
            .take_or_wait("n", "b0", "team-b", (10, "team-b/b0".into()), w.clone())
            .is_ok());
        q.forget("b0");
        assert!(q.take_or_wait("n", "a1", "team-a", (1, "team-a/b1".into()), w).is_ok());
    }

    #[test]
    fn within_a_namespace_the_oldest_backup_goes_first() {
        let q = NodeQueue::default();
        let (_, w) = counter();
        assert!(q.take_or_wait("n", "ua", "ns", (1, "ns/a".into()), w.clone()).is_ok());
        assert_eq!(
            q.take_or_wait("n", "uc", "ns", (3, "ns/c".into()), w.clone()),
            Err("ns/a".into())
        );
        assert_eq!(
            q.take_or_wait("n", "ub", "ns", (2, "ns/b".into()), w.clone()),
            Err("ns/a".into())
        );
        q.forget("ua");
        assert_eq!(
            q.take_or_wait("n", "uc", "ns", (3, "ns/c".into()), w.clone()),
            Err("ns/b".into())
        );
        assert!(q.take_or_wait("n", "ub", "ns", (2, "ns/b".into()), w.clone()).is_ok());
        assert!(
            q.take_or_wait("n", "ub", "ns", (2, "ns/b".into()), w).is_ok(),
            "the holder keeps the node"
        );
    }

    #[test]
    fn a_lock_poisoned_by_a_panic_wedges_nothing_and_fails_the_liveness_probe() {
        let slots = TaskSlots::new(Arc::default());
        let inner = slots.inner.clone();
        let _ = std::thread::spawn(move || {
            let _g = inner.lock().unwrap();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(slots.inner.is_poisoned());
        assert_eq!(slots.waiting(), 0, "the service still answers");
        assert!(
            crate::http::broken().is_some_and(|w| w.contains("task slots")),
            "{:?}",
            crate::http::broken()
        );
    }

    #[test]
    fn a_claim_is_given_up_when_its_object_vanishes() {
        let c = Claims::default();
        assert!(c.claim("img", "a"));
        assert!(!c.claim("img", "b"));
        c.retain(&|u| u != "a");
        assert!(c.claim("img", "b"));
    }
}
