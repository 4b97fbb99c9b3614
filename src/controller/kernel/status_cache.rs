//! The status this process wrote last, per object: what a pass starts from while the watch
//! cache has not seen the write yet.

use std::collections::HashMap;
use std::sync::Mutex;

/// The status this process wrote last, by object uid: newer than a watch cache that has not
/// seen the write yet. A pass starts from it, so a lagging cache can never make the operator
/// redo a step it recorded (a create, a build, a vzdump).
pub struct StatusCache<S> {
    map: Mutex<HashMap<String, S>>,
}

impl<S> Default for StatusCache<S> {
    fn default() -> Self {
        Self { map: Mutex::default() }
    }
}

impl<S: Clone + PartialEq> StatusCache<S> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, S>> {
        super::recover(self.map.lock(), "a status cache")
    }

    /// The status to start from: ours while the cache differs from it; the cache's once it has
    /// caught up (our copy is then dropped: it costs memory).
    pub fn current(&self, uid: &str, cached: Option<&S>) -> Option<S> {
        let mut m = self.lock();
        match (m.get(uid), cached) {
            (Some(mine), Some(c)) if mine != c => Some(mine.clone()),
            (Some(mine), None) => Some(mine.clone()),
            (Some(_), c) => {
                m.remove(uid);
                c.cloned()
            }
            (None, c) => c.cloned(),
        }
    }

    /// Records what was written for `uid`.
    pub fn record(&self, uid: &str, s: &S) {
        self.lock().insert(uid.to_string(), s.clone());
    }

    /// Forgets `uid`.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Drops the copy of `uid` once the cache shows it (`cached`, already in the cache): what
    /// [`current`](Self::current) does on the next pass, done as the watch delivers it, so the
    /// copies of objects that see no pass for a while (every one after a start-up or a burst)
    /// do not pile up.
    pub fn caught_up(&self, uid: &str, cached: Option<&S>) {
        let mut m = self.lock();
        if cached.is_some() && m.get(uid) == cached {
            m.remove(uid);
        }
    }

    /// Forgets every object for which `live` is false.
    pub fn retain(&self, live: &dyn Fn(&str) -> bool) {
        self.lock().retain(|uid, _| live(uid));
    }

    /// How many statuses are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
