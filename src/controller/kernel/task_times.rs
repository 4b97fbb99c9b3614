//! How long Proxmox tasks took, by kind and node: when to look at a running one again.

use std::time::Duration;

/// How long tasks took, by kind and node (`operation@node`, and `operation@` for any node: a
/// node's first task of a kind goes by the others'): a moving average of what this process saw
/// (start call → the poll that found the task ended).
#[derive(Default)]
pub struct TaskTimes {
    map: std::sync::Mutex<std::collections::HashMap<String, Duration>>,
}

impl TaskTimes {
    fn key(operation: &str, node: &str) -> String {
        format!("{operation}@{node}")
    }

    /// How long a task of `operation` on `node` is expected to take, once one was seen (on
    /// that node, else on any).
    pub fn expected(&self, operation: &str, node: &str) -> Option<Duration> {
        let m = super::recover(self.map.lock(), "the task times");
        m.get(&Self::key(operation, node))
            .or_else(|| m.get(&Self::key(operation, "")))
            .copied()
    }

    /// Records that a task of `operation` on `node` took `took` (weight ½ against the past).
    pub fn observe(&self, operation: &str, node: &str, took: Duration) {
        let mut m = super::recover(self.map.lock(), "the task times");
        for key in [Self::key(operation, node), Self::key(operation, "")] {
            let e = m.entry(key).or_insert(took);
            *e = (*e + took) / 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_times_average_what_was_seen_per_kind_and_node() {
        let t = TaskTimes::default();
        assert_eq!(t.expected("create", "pve1"), None);
        t.observe("create", "pve1", Duration::from_millis(3000));
        t.observe("create", "pve1", Duration::from_millis(2000));
        assert_eq!(t.expected("create", "pve1"), Some(Duration::from_millis(2500)));
        // another node's first one goes by what was seen anywhere
        assert_eq!(t.expected("create", "pve2"), Some(Duration::from_millis(2500)));
        assert_eq!(t.expected("start", "pve1"), None);
    }
}
