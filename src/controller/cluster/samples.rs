//! A bounded in-memory ring of usage samples per container, fed by the observer's inventory
//! reads (no extra Proxmox request), for the web UI's usage charts. Kept only when the UI is on.
//!
//! Samples are keyed by the object uid in the guest's identity tag, so a page shows the usage
//! of the container it is about, whatever a status field says. At most one sample per
//! `window / SLOTS` per container, and only the last `window`: memory stays bounded (about 1.5
//! KiB per container). A second ring keeps the last [`DAY`] at one sample per [`DAY_STEP`], the
//! mean of the samples of that step (another 3 KiB per container), for the 24 h charts.

use super::inventory::{identity_uid, Snapshot};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Samples kept per container.
pub const SLOTS: usize = 60;

/// What the day ring spans (seconds).
pub const DAY: i64 = 24 * 3600;

/// One day-ring sample per this many seconds (96 a day).
pub const DAY_STEP: i64 = 15 * 60;

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
    day: Mutex<HashMap<String, VecDeque<Sample>>>,
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
            day: Mutex::default(),
        }
    }

    /// Records the usage of every container of ours in `snap`, taken at `now`.
    pub fn record(&self, now: i64, snap: &Snapshot) {
        let step = self.window / SLOTS as i64;
        let mut map = crate::controller::kernel::recover(self.inner.lock(), "the usage samples");
        for g in snap.guests.values().filter(|g| g.kind == "lxc") {
            let Some(uid) = identity_uid(&g.tags) else {
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
        let mut day = crate::controller::kernel::recover(self.day.lock(), "the usage samples");
        for (uid, ring) in map.iter() {
            let d = day.entry(uid.clone()).or_default();
            let since = d.back().map_or(i64::MIN, |s| s.at);
            if now.saturating_sub(since) < DAY_STEP {
                continue;
            }
            // the mean of the step's samples (the fine ring holds them: its window is longer)
            let step: Vec<&Sample> = ring.iter().filter(|s| s.at > since && now - s.at < DAY_STEP).collect();
            let Some(last) = step.last() else { continue };
            let n = step.len() as f64;
            d.push_back(Sample {
                at: last.at,
                cpu: step.iter().map(|s| s.cpu).sum::<f64>() / n,
                mem: (step.iter().map(|s| s.mem as f64).sum::<f64>() / n) as u64,
                maxmem: last.maxmem,
            });
            while d.front().is_some_and(|s| now - s.at > DAY) {
                d.pop_front();
            }
        }
        day.retain(|_, r| r.back().is_some_and(|s| now - s.at <= DAY));
    }

    /// The day ring of the container whose object has `uid`, oldest first: one sample per
    /// [`DAY_STEP`] for the last [`DAY`], and the newest samples of the hour ring after it.
    pub fn day_series(&self, uid: &str) -> Vec<Sample> {
        let mut out: Vec<Sample> = {
            let day = crate::controller::kernel::recover(self.day.lock(), "the usage samples");
            day.get(&uid.to_ascii_lowercase())
                .map(|r| r.iter().copied().collect())
                .unwrap_or_default()
        };
        let after = out.last().map_or(i64::MIN, |s| s.at);
        out.extend(self.series(uid).into_iter().filter(|s| s.at > after));
        out
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

    #[test]
    fn the_day_ring_keeps_a_mean_per_quarter_hour_for_one_day_and_stays_bounded() {
        let s = Samples::new(3600);
        // an inventory every 30 s for 30 hours, CPU 0.2 and 0.4 in alternate minutes
        for t in 0..(30 * 120) {
            s.record(t * 30, &snap(if t / 2 % 2 == 0 { 0.2 } else { 0.4 }));
        }
        let day = s.day_series("uid-a");
        let quarter: Vec<&Sample> = day.iter().filter(|x| day.last().unwrap().at - x.at >= 3600).collect();
        assert!(quarter.len() <= (DAY / DAY_STEP) as usize, "{}", quarter.len());
        assert!(day.len() <= (DAY / DAY_STEP) as usize + SLOTS, "{}", day.len());
        assert!(day.last().unwrap().at - day[0].at <= DAY + DAY_STEP);
        assert!(
            day.last().unwrap().at - day[0].at >= DAY - 2 * DAY_STEP,
            "a day is kept"
        );
        assert!(day.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
        assert!(quarter.iter().all(|x| (x.cpu - 0.3).abs() < 0.02), "means: {quarter:?}");
    }
}
