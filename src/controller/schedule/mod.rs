//! What the schedule kinds (`LxcBackupSchedule`, `LxcSnapshotSchedule`) share: the schedule
//! clock, the calendar, the slot due now (missed slots collapse into one), names and labels of
//! the objects a slot makes, and retention over (container, time) items with Proxmox's prune
//! semantics. [`pass`] is the one reconcile both kinds run, through [`ScheduleKind`].
//!
//! - [`calendar`] and [`prune`]: the pure parts of time.
//! - this module: the pure decisions of a pass, with table tests.

pub mod calendar;
pub mod clock;
pub mod pass;
pub mod prune;

use crate::controller::conditions::CondSpec;
use crate::controller::kernel::Reason;
use crate::crd::schedule::Retention;
use crate::crd::CONDITION_READY;
use calendar::Schedule;
pub use clock::ScheduleClock;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::Digest;
use std::collections::BTreeMap;

pub use pass::ScheduleKind;

/// Label on every object a schedule creates: the schedule's name.
pub const LABEL_SCHEDULE: &str = "pve.lxc.dev/schedule";
/// Label on every object a schedule creates: the container's name.
pub const LABEL_CONTAINER: &str = "pve.lxc.dev/container";
/// Annotation on every object a schedule creates: the slot (RFC 3339) it was made for.
/// Retention reads the objects' times from it.
pub const ANNOTATION_SCHEDULED_AT: &str = "pve.lxc.dev/scheduled-at";
/// Failed objects kept per container and schedule (newest first); older ones are deleted.
pub const KEEP_FAILED: usize = 3;

/// A label value for an object name (names longer than 63 characters are shortened with a hash).
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let prefix = name[..54].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{}", short_hash(name))
}

fn short_hash(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))[..8].to_string()
}

/// The name of the object a schedule makes for `container` at `slot`:
/// `<schedule>-<container>-<yyyymmddhhmm>` (`…ss` for sub-minute schedules), at most 63
/// characters (the front is shortened and a hash of it added when needed). The same inputs
/// give the same name: creating it is idempotent.
pub fn item_name(schedule: &str, container: &str, slot: &Zoned, seconds: bool) -> String {
    let stamp = slot
        .strftime(if seconds { "%Y%m%d%H%M%S" } else { "%Y%m%d%H%M" })
        .to_string();
    let base = format!("{schedule}-{container}");
    if base.len() + 1 + stamp.len() <= 63 {
        return format!("{base}-{stamp}");
    }
    let keep = 63 - stamp.len() - 1 - 8 - 1;
    let prefix = base[..keep].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("{prefix}-{}-{stamp}", short_hash(&base))
}

/// A label selector as the string the list API takes.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        parts.push(format!("{k}={v}"));
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The schedule and its time zone, or why they cannot be read.
pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<(TimeZone, Schedule), String> {
    let tz = calendar::time_zone(time_zone)?;
    let sched = Schedule::parse(schedule).map_err(|e| e.to_string())?;
    Ok((tz, sched))
}

/// The slot to run now, if any: the latest slot at or before `now` that is newer than the last
/// one run (`last`), else than the schedule's creation (`created`, schedule time). Slots missed
/// while the operator was down collapse into this one: they run once, not once each.
pub fn due_slot(
    sched: &Schedule,
    tz: &TimeZone,
    now: Timestamp,
    last: Option<Timestamp>,
    created: Option<Timestamp>,
) -> Option<Zoned> {
    let anchor = last.or(created).unwrap_or(now);
    sched.last_at_or_before(now, tz).filter(|s| s.timestamp() > anchor)
}

/// How one object a schedule made has ended (or not yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not done yet.
    Pending,
    /// Done (a completed backup, a ready snapshot).
    Done,
    /// Failed for good.
    Failed,
}

/// What the shared pass reads of one object a schedule made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The object's name.
    pub name: String,
    /// The container it is of.
    pub container: String,
    /// The slot it was made for (its annotation), if any.
    pub slot: Option<Timestamp>,
    /// The time it counts as made at: its slot, else when it completed, else its creation.
    pub time: Option<Timestamp>,
    /// How it ended.
    pub outcome: Outcome,
    /// Never removed by retention and not counted (Proxmox's rule for protected backups).
    pub protected: bool,
}

/// The names retention removes: per container, the `Done` items `policy` does not keep
/// (Proxmox prune semantics, periods read in `tz`; protected ones never), and the `Failed`
/// ones beyond the newest `keep_failed`.
pub fn removals(items: &[Item], policy: Option<&Retention>, tz: &TimeZone, keep_failed: usize) -> Vec<String> {
    let mut by_container: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for i in items {
        by_container.entry(i.container.as_str()).or_default().push(i);
    }
    let mut gone = Vec::new();
    for list in by_container.values() {
        if let Some(policy) = policy {
            let done: Vec<(String, Timestamp)> = list
                .iter()
                .filter(|i| i.outcome == Outcome::Done && !i.protected)
                .filter_map(|i| Some((i.name.clone(), i.time?)))
                .collect();
            gone.extend(prune::to_remove(&done, policy, tz));
        }
        let mut failed: Vec<(Timestamp, String)> = list
            .iter()
            .filter(|i| i.outcome == Outcome::Failed)
            .filter_map(|i| Some((i.time?, i.name.clone())))
            .collect();
        failed.sort_by(|a, b| b.cmp(a));
        gone.extend(failed.into_iter().skip(keep_failed).map(|(_, n)| n));
    }
    gone
}

/// The names of the items not finished yet, sorted.
pub fn active<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<String> {
    let mut names: Vec<String> = items
        .into_iter()
        .filter(|i| i.outcome == Outcome::Pending)
        .map(|i| i.name.clone())
        .collect();
    names.sort();
    names
}

/// The newest slot whose items all are `Done`.
pub fn last_successful<'a>(items: impl IntoIterator<Item = &'a Item>) -> Option<Timestamp> {
    let mut slots: BTreeMap<Timestamp, bool> = BTreeMap::new();
    for i in items {
        if let Some(t) = i.slot {
            *slots.entry(t).or_insert(true) &= i.outcome == Outcome::Done;
        }
    }
    slots.iter().rev().find(|(_, all)| **all).map(|(t, _)| *t)
}

/// The `Ready` condition of a schedule that could be read; `items` names what it makes
/// (`backup`, `snapshot`).
pub fn readiness(next: Option<&Zoned>, suspend: bool, schedule: &str, items: &str) -> CondSpec {
    match (next, suspend) {
        (_, true) => CondSpec::yes(
            CONDITION_READY,
            Reason::Suspended,
            format!("suspended: no new {items}s are made (retention still applies)"),
        ),
        (Some(n), false) => CondSpec::yes(CONDITION_READY, Reason::Scheduled, format!("next run at {n}")),
        (None, false) => CondSpec::no(
            CONDITION_READY,
            Reason::NoNextRun,
            format!("schedule {schedule:?} has no run in the next 8 years"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn slot(s: &str) -> Zoned {
        s.parse::<Timestamp>().unwrap().to_zoned(TimeZone::UTC)
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn item(name: &str, container: &str, time: &str, outcome: Outcome) -> Item {
        Item {
            name: name.into(),
            container: container.into(),
            slot: Some(at(time)),
            time: Some(at(time)),
            outcome,
            protected: false,
        }
    }

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

    #[test]
    fn item_names_carry_schedule_container_and_slot_and_fit_63_characters() {
        assert_eq!(
            item_name("nightly", "web", &slot("2026-03-02T02:00:00Z"), false),
            "nightly-web-202603020200"
        );
        assert_eq!(
            item_name("fast", "web", &slot("2026-03-02T02:00:05Z"), true),
            "fast-web-20260302020005"
        );
        let long = item_name(&"s".repeat(40), &"c-".repeat(20), &slot("2026-03-02T02:00:00Z"), false);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-202603020200"), "{long}");
        assert!(!long.contains("--"), "{long}");
        let other = item_name(&"s".repeat(40), &"c-".repeat(21), &slot("2026-03-02T02:00:00Z"), false);
        assert_ne!(long, other, "different containers get different names");
    }

    #[test]
    fn long_label_values_are_shortened_with_a_hash() {
        assert_eq!(label_value("web"), "web");
        let v = label_value(&"a".repeat(100));
        assert!(v.len() <= 63 && v.starts_with("aaaa"), "{v}");
    }

    #[test]
    fn selectors_become_list_selectors() {
        let sel = LabelSelector {
            match_labels: Some([("backup".to_string(), "nightly".to_string())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["web".into(), "db".into()]),
                },
                LabelSelectorRequirement {
                    key: "skip".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(selector_string(&sel), "backup=nightly,tier in (web,db),!skip");
        assert_eq!(selector_string(&LabelSelector::default()), "");
    }

    #[test]
    fn the_due_slot_is_the_latest_one_newer_than_the_last_run_and_missed_slots_collapse() {
        let (tz, sched) = parse("hourly", None).unwrap();
        let now = at("2026-03-02T05:30:00Z");
        // (last run, created, due)
        let cases: [(Option<&str>, Option<&str>, Option<&str>); 5] = [
            // never ran, made before the 05:00 slot: it runs
            (None, Some("2026-03-02T04:10:00Z"), Some("2026-03-02T05:00:00Z")),
            // made after the latest slot: nothing before the next one
            (None, Some("2026-03-02T05:10:00Z"), None),
            // the 05:00 slot ran already
            (Some("2026-03-02T05:00:00Z"), None, None),
            // down from 01:00 to now: 02..05 missed, one run for 05:00
            (Some("2026-03-02T01:00:00Z"), None, Some("2026-03-02T05:00:00Z")),
            // nothing known: nothing runs until the next slot
            (None, None, None),
        ];
        for (last, created, due) in cases {
            let got = due_slot(&sched, &tz, now, last.map(at), created.map(at)).map(|z| z.timestamp());
            assert_eq!(got, due.map(at), "last {last:?} created {created:?}");
        }
        assert!(parse("never o'clock", None).is_err());
        assert!(parse("hourly", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn retention_prunes_done_items_per_container_keeps_protected_and_the_newest_failed() {
        let keep_last_1 = Retention {
            keep_last: Some(1),
            ..Default::default()
        };
        let mut items = vec![
            item("a1", "a", "2026-03-02T01:00:00Z", Outcome::Done),
            item("a2", "a", "2026-03-02T02:00:00Z", Outcome::Done),
            item("a3", "a", "2026-03-02T03:00:00Z", Outcome::Pending),
            item("b1", "b", "2026-03-02T01:00:00Z", Outcome::Done),
            item("b2", "b", "2026-03-02T02:00:00Z", Outcome::Done),
        ];
        let mut p = item("b0", "b", "2026-03-02T00:00:00Z", Outcome::Done);
        p.protected = true;
        items.push(p);
        for n in 1..=5 {
            items.push(item(
                &format!("f{n}"),
                "a",
                &format!("2026-03-01T0{n}:00:00Z"),
                Outcome::Failed,
            ));
        }
        // (policy, failed kept, removed)
        let cases: [(Option<&Retention>, usize, &[&str]); 3] = [
            (Some(&keep_last_1), 3, &["a1", "b1", "f2", "f1"]),
            (None, 3, &["f2", "f1"]),
            (Some(&keep_last_1), 5, &["a1", "b1"]),
        ];
        for (policy, keep_failed, want) in cases {
            let mut got = removals(&items, policy, &TimeZone::UTC, keep_failed);
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{policy:?} {keep_failed}");
        }
    }

    #[test]
    fn active_items_and_the_last_successful_slot() {
        let items = [
            item("a1", "a", "2026-03-02T01:00:00Z", Outcome::Done),
            item("b1", "b", "2026-03-02T01:00:00Z", Outcome::Done),
            item("a2", "a", "2026-03-02T02:00:00Z", Outcome::Done),
            item("b2", "b", "2026-03-02T02:00:00Z", Outcome::Failed),
            item("a3", "a", "2026-03-02T03:00:00Z", Outcome::Pending),
        ];
        assert_eq!(active(&items), vec!["a3"]);
        assert_eq!(last_successful(&items), Some(at("2026-03-02T01:00:00Z")));
        assert_eq!(last_successful(&items[..0]), None);
    }

    #[test]
    fn readiness_says_suspended_next_run_or_no_run() {
        let next = slot("2026-03-02T02:00:00Z");
        let cases = [
            (Some(&next), true, true, "Suspended"),
            (Some(&next), false, true, "Scheduled"),
            (None, false, false, "NoNextRun"),
        ];
        for (n, suspend, status, reason) in cases {
            let c = readiness(n, suspend, "hourly", "snapshot");
            assert_eq!((c.status, c.reason.as_str()), (status, reason), "{n:?} {suspend}");
        }
        assert!(readiness(None, true, "x", "snapshot")
            .message
            .contains("no new snapshots"));
    }
}
