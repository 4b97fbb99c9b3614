//! The bounds of the kubelet endpoint's work ([`super::logs`]): connections at once, timeouts
//! for a request's headers and its answer, and `kubectl logs -f` streams at once per Pod.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The bounds of the endpoint's work: connections at once, the time a caller has to send its
/// request and the time to answer it (a stream, once started, runs until the run ends or the
/// caller goes), and `follow` streams at once per Pod. Every log read is bounded already: the
/// console ring by `--pod-log-bytes`, the task logs by their last 1,000 lines each.
#[derive(Debug)]
pub struct Limits {
    connections: Arc<tokio::sync::Semaphore>,
    /// How long a connection may take to finish its TLS handshake and send a request's headers.
    pub header_timeout: Duration,
    /// How long a request may take to be answered (the start of a stream).
    pub request_timeout: Duration,
    /// `follow` streams at once per Pod.
    pub follows_per_pod: usize,
    follows: std::sync::Mutex<HashMap<String, usize>>,
}

/// Connections served at once by default (more are closed at once).
pub const MAX_CONNECTIONS: usize = 128;
/// `kubectl logs -f` streams at once per Pod by default.
pub const MAX_FOLLOWS_PER_POD: usize = 4;

impl Default for Limits {
    fn default() -> Self {
        Limits::new(
            MAX_CONNECTIONS,
            MAX_FOLLOWS_PER_POD,
            Duration::from_secs(10),
            Duration::from_secs(30),
        )
    }
}

impl Limits {
    /// Bounds of `connections` at once, `follows_per_pod` streams per Pod and the two timeouts.
    pub fn new(
        connections: usize,
        follows_per_pod: usize,
        header_timeout: Duration,
        request_timeout: Duration,
    ) -> Limits {
        Limits {
            connections: Arc::new(tokio::sync::Semaphore::new(connections)),
            header_timeout,
            request_timeout,
            follows_per_pod,
            follows: Default::default(),
        }
    }

    /// A `follow` stream of Pod `uid` may start: its slot, freed when the guard goes; `None`
    /// when the Pod has as many as allowed.
    pub fn follow(self: &Arc<Self>, uid: &str) -> Option<FollowSlot> {
        let mut m = crate::controller::kernel::recover(self.follows.lock(), "the follow slots");
        let n = m.entry(uid.to_string()).or_insert(0);
        if *n >= self.follows_per_pod {
            return None;
        }
        *n += 1;
        Some(FollowSlot {
            limits: self.clone(),
            uid: uid.to_string(),
        })
    }

    /// A connection may be served: its permit, freed when it goes; `None` past the bound.
    pub fn connection(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    #[cfg(test)]
    fn following(&self, uid: &str) -> usize {
        crate::controller::kernel::recover(self.follows.lock(), "the follow slots")
            .get(uid)
            .copied()
            .unwrap_or(0)
    }
}

/// One `follow` stream's slot (see [`Limits::follow`]).
#[derive(Debug)]
pub struct FollowSlot {
    limits: Arc<Limits>,
    uid: String,
}

impl Drop for FollowSlot {
    fn drop(&mut self) {
        let mut m = crate::controller::kernel::recover(self.limits.follows.lock(), "the follow slots");
        if let Some(n) = m.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_has_a_bounded_number_of_follow_streams_and_a_closed_one_frees_its_slot() {
        let limits = Arc::new(Limits::new(8, 2, Duration::from_secs(1), Duration::from_secs(1)));
        let a = limits.follow("pod-a").unwrap();
        let b = limits.follow("pod-a").unwrap();
        assert!(limits.follow("pod-a").is_none(), "a third stream of the same Pod");
        // other Pods are not starved by one
        let _c = limits.follow("pod-b").unwrap();
        drop(a);
        let _d = limits.follow("pod-a").expect("the closed stream's slot");
        drop(b);
        assert_eq!(limits.following("pod-a"), 1);
        let conns: Vec<_> = (0..8).map(|_| limits.connection().unwrap()).collect();
        assert!(limits.connection().is_none(), "a ninth connection");
        drop(conns);
        assert!(limits.connection().is_some());
    }
}
