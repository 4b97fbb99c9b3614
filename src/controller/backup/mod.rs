//! The `LxcBackup` and `LxcBackupSchedule` controllers.
//!
//! - [`lxc_backup`]: one `vzdump` per `LxcBackup`, queued so that at most one runs per Proxmox node
//!   at a time across every backup this process runs; finalizer deletes the archive.
//! - [`schedule`]: cron / Proxmox calendar schedules that create `LxcBackup`s for the
//!   containers matching a selector, and prune them with Proxmox's retention semantics.
//! - [`calendar`] and [`prune`]: the pure parts.

pub mod calendar;
pub mod lxc_backup;
pub mod prune;
pub mod schedule;

use super::context::Context;
use super::run::ControllerFuture;
use jiff::{SignedDuration, Timestamp};
use kube::Client;
use std::sync::Arc;
use std::time::Duration;

/// Label on every `LxcBackup` a schedule creates: the schedule's name.
pub const LABEL_SCHEDULE: &str = "pve.lxc.dev/schedule";
/// Label on every `LxcBackup` a schedule creates: the container's name.
pub const LABEL_CONTAINER: &str = "pve.lxc.dev/container";
/// Annotation on every `LxcBackup` a schedule creates: the slot (RFC 3339) it was made for.
/// Retention reads backup times from it.
pub const ANNOTATION_SCHEDULED_AT: &str = "pve.lxc.dev/scheduled-at";

/// The clock schedules run on (in [`Settings`](super::Settings)). In production it is the wall clock. For tests and demos it can
/// run faster (`--schedule-clock-speed`): schedule time = origin + (wall time − origin) × speed,
/// so an hourly schedule at speed 360 fires every 10 s. Only schedule slots, `lastScheduleTime`,
/// `nextScheduleTime` and retention periods use it; Proxmox and the other controllers keep the
/// wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScheduleClock {
    /// Speed-up factor (1 = wall clock).
    pub speed: f64,
    /// The instant where schedule time and wall time coincide.
    pub origin: Timestamp,
}

impl ScheduleClock {
    /// The wall clock.
    pub const WALL: ScheduleClock = ScheduleClock {
        speed: 1.0,
        origin: Timestamp::UNIX_EPOCH,
    };

    /// Schedule time of a wall-clock instant.
    pub fn at(&self, wall: Timestamp) -> Timestamp {
        if self.speed == 1.0 {
            return wall;
        }
        let d = wall.duration_since(self.origin).as_secs_f64() * self.speed;
        self.origin
            .checked_add(SignedDuration::from_secs_f64(d))
            .unwrap_or(wall)
    }

    /// Schedule time now.
    pub fn now(&self) -> Timestamp {
        self.at(Timestamp::now())
    }

    /// Wall-clock time until schedule time `t` (zero if it has passed).
    pub fn until(&self, t: Timestamp) -> Duration {
        let d = t.duration_since(self.now()).as_secs_f64() / self.speed;
        Duration::from_secs_f64(d.max(0.0))
    }
}

/// The backup controllers of one namespace (or all): `LxcBackup` and `LxcBackupSchedule`,
/// joined into one future, and the `LxcBackup` cache (for the prune of vanished objects).
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, kube::runtime::reflector::Store<crate::crd::LxcBackup>) {
    let (b, store) = lxc_backup::controller(client, namespace, ctx.clone());
    let (s, schedules) = schedule::controller(client, namespace, ctx.clone());
    ctx.tenancy.add_schedules(schedules);
    let run = Box::pin(async move {
        futures::future::join(b, s).await;
    });
    (run, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_clock_runs_ahead_from_its_origin() {
        let origin: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let c = ScheduleClock { speed: 360.0, origin };
        assert_eq!(
            c.at("2026-01-01T00:00:10Z".parse().unwrap()).to_string(),
            "2026-01-01T01:00:00Z"
        );
        assert_eq!(c.at(origin), origin);
        let wall = ScheduleClock { speed: 1.0, origin };
        let t: Timestamp = "2030-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(wall.at(t), t);
    }
}
