//! What a simulated task's body works with: its context (log, duration, injected failure) and
//! the end of a task.

use super::api_error::now_epoch;
use super::config::SimConfig;
use super::state::{Sim, State};
use rand::Rng;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed task body.
pub(crate) type TaskBody = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// What a task body can do.
#[derive(Clone)]
pub(crate) struct TaskCtx {
    pub sim: Arc<Sim>,
    pub upid: String,
    pub typ: String,
    /// Whether fault injection decided this task fails at its commit point.
    pub inject_fail: bool,
}

impl TaskCtx {
    /// Run with the state locked.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.sim.lock())
    }
    /// Append a log line.
    pub(crate) fn log(&self, line: impl Into<String>) {
        let line = line.into();
        self.with(|st| {
            if let Some(t) = st.tasks.get_mut(&self.upid) {
                t.log.push(line);
            }
        });
    }
    /// Sleep for the configured duration of a task type (with the configured jitter, scaled
    /// by the clock speed); the task records what it drew (`work_ms`, at clock speed 1).
    pub(crate) async fn work(&self, typ: &str) {
        let d = self.with(|st| {
            let ms = st.cfg.task_duration_ms(typ);
            let ms = if st.cfg.task_jitter > 0.0 {
                let u = st.task_rng.random_range(-1.0..=1.0);
                SimConfig::jittered_ms(ms, st.cfg.task_jitter, u)
            } else {
                ms
            };
            if let Some(t) = st.tasks.get_mut(&self.upid) {
                t.work_ms += ms;
            }
            scaled(&st.cfg, ms)
        });
        tokio::time::sleep(d).await;
    }
    /// The injected failure, if any, at the commit point.
    pub(crate) fn injected(&self) -> Result<(), String> {
        if self.inject_fail {
            Err("simulated task failure".into())
        } else {
            Ok(())
        }
    }
}

pub(crate) fn scaled(cfg: &SimConfig, ms: u64) -> Duration {
    let speed = if cfg.clock_speed > 0.0 { cfg.clock_speed } else { 1.0 };
    Duration::from_secs_f64(ms as f64 / 1000.0 / speed)
}

/// Mark a task stopped with its exit status and final log line.
pub(crate) fn finish_task(st: &mut State, upid: &str, node: &str, res: Result<(), String>) {
    let Some(t) = st.tasks.get_mut(upid) else { return };
    if t.exitstatus.is_some() {
        return;
    }
    match res {
        Ok(()) => {
            t.log.push("TASK OK".into());
            t.exitstatus = Some("OK".into());
        }
        Err(e) => {
            let e = e.trim_end_matches('\n').to_string();
            t.log.push(format!("TASK ERROR: {e}"));
            t.exitstatus = Some(e);
            st.stats.bump("tasks_failed");
        }
    }
    t.endtime = Some(now_epoch());
    t.times.ended_ms = Some(crate::sim::api_error::now_ms());
    t.abort = None;
    if let Some(r) = st.running_tasks.get_mut(node) {
        *r = r.saturating_sub(1);
    }
}
