//! The clock schedules run on: the wall clock, or a faster one for tests and demos.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// The clock schedules run on (in [`Settings`](crate::controller::Settings)). In production it
/// is the wall clock. For tests and demos it can run faster (`--schedule-clock-speed`):
/// schedule time = origin + (wall time − origin) × speed, so an hourly schedule at speed 360
/// fires every 10 s. Only schedule slots, `lastScheduleTime`, `nextScheduleTime` and retention
/// periods use it; Proxmox and the other controllers keep the wall clock.
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
