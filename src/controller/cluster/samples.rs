//! A bounded in-memory ring of usage samples per container, fed by the observer's inventory
//! reads (no extra Proxmox request), for the web UI's usage charts. Kept only when the UI is on.
//!
//! Samples are keyed by the object uid in the guest's identity tag, so a page shows the usage
//! of the container it is about, whatever a status field says. At most one sample per
//! `window / SLOTS` per container, and only the last `window`: memory stays bounded (about 1.5
//! KiB per container).

use super::Snapshot;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Samples kept per container.
pub const SLOTS: usize = 60;

/// One sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When (Unix seconds).
    pub at: i64,
    /// CPU in use, as a fraction of the container's cores (0..=1).
    pub cpu: f64,
    /// Memory in use, bytes.
    pub mem: u64,
    /// Memory limit, bytes.
    pub maxmem: u64,
}

/// The ring of every container's samples.
#[derive(Default)]
pub struct Samples {
    window: i64,
    inner: Mutex<HashMap<String, VecDeque<Sample>>>,
}

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Samples")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Samples {
    /// Keeps `window_secs` of samples per container.
    pub fn new(window_secs: i64) -> Samples {
        Samples {
            window: window_secs.max(SLOTS as i64),
            inner: Mutex::default(),
        }
    }

    /// Records the usage of every container of ours in `snap`, taken at `now`.
    pub fn record(&self, now: i64, snap: &Snapshot) {
        let step = self.window / SLOTS as i64;
        let mut map = crate::controller::kernel::recover(self.inner.lock(), "the usage samples");
        for g in snap.guests.values().filter(|g| g.kind == "lxc") {
            let Some(uid) = crate::controller::tenancy::ownership::identity_uid(&g.tags) else {
                continue;
            };
            let ring = map.entry(uid.to_string()).or_default();
            if ring.back().is_some_and(|s| now - s.at < step) {
                continue;
            }
            ring.push_back(Sample {
                at: now,
                cpu: g.cpu.unwrap_or(0.0).clamp(0.0, 1.0),
                mem: g.mem.unwrap_or(0),
                maxmem: g.maxmem.unwrap_or(0),
            });
            while ring.len() > SLOTS || ring.front().is_some_and(|s| now - s.at > self.window) {
                ring.pop_front();
            }
        }
        // containers gone for a whole window are forgotten
        map.retain(|_, r| r.back().is_some_and(|s| now - s.at <= self.window));
    }

    /// The samples of the container whose object has `uid`, oldest first.
    pub fn series(&self, uid: &str) -> Vec<Sample> {
        let map = crate::controller::kernel::recover(self.inner.lock(), "the usage samples");
        map.get(&uid.to_ascii_lowercase())
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::ClusterResource;

    fn snap(cpu: f64) -> Snapshot {
        let r: ClusterResource = serde_json::from_value(serde_json::json!({
            "id": "lxc/100", "type": "lxc", "vmid": 100, "node": "pve1", "status": "running",
            "tags": "k8s-uid-a", "cpu": cpu, "mem": 100, "maxmem": 200
        }))
        .unwrap();
        let foreign: ClusterResource = serde_json::from_value(serde_json::json!({
            "id": "lxc/101", "type": "lxc", "vmid": 101, "node": "pve1", "status": "running", "cpu": 0.5
        }))
        .unwrap();
        Snapshot::from_resources(&[r, foreign], std::time::Instant::now())
    }

    #[test]
    fn the_ring_keeps_one_sample_per_slot_for_one_window_and_only_ours() {
        let s = Samples::new(3600);
        for t in 0..200 {
            // an inventory every 30 s for 100 minutes
            s.record(t * 30, &snap(0.25));
        }
        let series = s.series("UID-A");
        assert_eq!(series.len(), SLOTS, "{series:?}");
        assert!(series.windows(2).all(|w| w[1].at - w[0].at >= 60));
        assert!(series.last().unwrap().at - series[0].at <= 3600);
        assert_eq!(series[0].cpu, 0.25);
        assert_eq!(s.series("uid-b"), vec![], "untagged guests are not sampled");
        // gone for a whole window: forgotten
        let empty = Snapshot::from_resources(&[], std::time::Instant::now());
        s.record(200 * 30 + 3700, &empty);
        assert!(s.series("uid-a").is_empty());
    }
}
