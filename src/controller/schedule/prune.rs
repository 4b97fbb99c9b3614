//! Retention with Proxmox's prune semantics (pve-storage `prune_mark_backup_group`, the same as
//! Proxmox Backup Server): backups sorted newest first; `keep-last` keeps the newest N; then
//! each of `keep-hourly`, `-daily`, `-weekly` (ISO week), `-monthly`, `-yearly` walks the list
//! and keeps the newest backup of each period not yet covered by a kept backup, until it has
//! kept N; every backup not kept is removed. Without any positive option everything is kept.
//! Periods are read in the schedule's time zone (Proxmox uses the node's local time).

use crate::crd::schedule::Retention;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::HashSet;

/// The period key of a backup time (for keep-last, every backup is its own period).
type PeriodOf = fn(&jiff::Zoned) -> String;

/// Which of `backups` (id, time) to remove under `policy`. The newest backup is never removed.
pub fn to_remove<I: Clone + Eq + std::hash::Hash>(
    backups: &[(I, Timestamp)],
    policy: &Retention,
    tz: &TimeZone,
) -> Vec<I> {
    let opts: [(Option<u32>, PeriodOf); 6] = [
        (policy.keep_last, |z| z.timestamp().as_nanosecond().to_string()),
        (policy.keep_hourly, |z| z.strftime("%Y-%m-%d %H").to_string()),
        (policy.keep_daily, |z| z.strftime("%Y-%m-%d").to_string()),
        (policy.keep_weekly, |z| z.strftime("%G-%V").to_string()),
        (policy.keep_monthly, |z| z.strftime("%Y-%m").to_string()),
        (policy.keep_yearly, |z| z.strftime("%Y").to_string()),
    ];
    if opts.iter().all(|(n, _)| n.unwrap_or(0) == 0) || backups.is_empty() {
        return Vec::new();
    }
    let mut list: Vec<(I, jiff::Zoned)> = backups
        .iter()
        .map(|(i, t)| (i.clone(), t.to_zoned(tz.clone())))
        .collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.1.timestamp()));
    // None = unmarked, Some(true) = keep, Some(false) = remove
    let mut mark: Vec<Option<bool>> = vec![None; list.len()];
    for (keep, id_of) in opts {
        let Some(keep) = keep.filter(|n| *n > 0) else { continue };
        let already: HashSet<String> = list
            .iter()
            .zip(&mark)
            .filter(|(_, m)| **m == Some(true))
            .map(|((_, z), _)| id_of(z))
            .collect();
        let mut newly: HashSet<String> = HashSet::new();
        for (i, (_, z)) in list.iter().enumerate() {
            let id = id_of(z);
            if mark[i].is_some() || already.contains(&id) {
                continue;
            }
            if !newly.contains(&id) {
                if newly.len() >= keep as usize {
                    break;
                }
                newly.insert(id);
                mark[i] = Some(true);
            } else {
                mark[i] = Some(false);
            }
        }
    }
    list.into_iter()
        .zip(mark)
        .enumerate()
        .filter(|(i, (_, m))| *i != 0 && *m != Some(true))
        .map(|(_, ((id, _), _))| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn keep(backups: &[&str], policy: Retention) -> Vec<String> {
        let list: Vec<(String, Timestamp)> = backups.iter().map(|s| (s.to_string(), at(s))).collect();
        let gone = to_remove(&list, &policy, &TimeZone::UTC);
        let mut kept: Vec<String> = backups
            .iter()
            .map(|s| s.to_string())
            .filter(|s| !gone.contains(s))
            .collect();
        kept.sort();
        kept
    }

    const HALF_HOURLY: [&str; 6] = [
        "2026-03-02T00:30:00Z",
        "2026-03-02T01:00:00Z",
        "2026-03-02T01:30:00Z",
        "2026-03-02T02:00:00Z",
        "2026-03-02T02:30:00Z",
        "2026-03-02T03:00:00Z",
    ];

    #[test]
    fn keep_last_keeps_the_newest_n() {
        assert_eq!(
            keep(
                &HALF_HOURLY,
                Retention {
                    keep_last: Some(2),
                    ..Default::default()
                }
            ),
            vec!["2026-03-02T02:30:00Z", "2026-03-02T03:00:00Z"]
        );
    }

    #[test]
    fn keep_hourly_keeps_the_newest_of_each_hour_not_covered_yet() {
        // newest (03:00) by keep-last; its hour is covered; then the newest of 02h and 01h
        assert_eq!(
            keep(
                &HALF_HOURLY,
                Retention {
                    keep_last: Some(1),
                    keep_hourly: Some(2),
                    ..Default::default()
                }
            ),
            vec!["2026-03-02T01:30:00Z", "2026-03-02T02:30:00Z", "2026-03-02T03:00:00Z"]
        );
        assert_eq!(
            keep(
                &HALF_HOURLY,
                Retention {
                    keep_hourly: Some(2),
                    ..Default::default()
                }
            ),
            vec!["2026-03-02T02:30:00Z", "2026-03-02T03:00:00Z"]
        );
    }

    #[test]
    fn the_proxmox_documentation_example() {
        // pve-docs "Backup Retention" simulation idea: daily backups for 3 weeks, keep-daily 3,
        // keep-weekly 2 → the 3 newest days plus the newest of each of the 2 weeks before
        let days: Vec<String> = (1..=21).map(|d| format!("2026-03-{d:02}T02:00:00Z")).collect();
        let refs: Vec<&str> = days.iter().map(String::as_str).collect();
        // 2026-03-21 is a Saturday: ISO weeks: 16..22 (w12, partial to 21), 9..15 (w11), 2..8 (w10)
        assert_eq!(
            keep(
                &refs,
                Retention {
                    keep_daily: Some(3),
                    keep_weekly: Some(2),
                    ..Default::default()
                }
            ),
            vec![
                "2026-03-08T02:00:00Z",
                "2026-03-15T02:00:00Z",
                "2026-03-19T02:00:00Z",
                "2026-03-20T02:00:00Z",
                "2026-03-21T02:00:00Z"
            ]
        );
    }

    #[test]
    fn monthly_and_yearly_buckets() {
        let list = [
            "2024-12-31T23:00:00Z",
            "2025-06-15T00:00:00Z",
            "2025-12-01T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-20T00:00:00Z",
        ];
        assert_eq!(
            keep(
                &list,
                Retention {
                    keep_monthly: Some(2),
                    ..Default::default()
                }
            ),
            vec!["2025-12-01T00:00:00Z", "2026-01-20T00:00:00Z"]
        );
        assert_eq!(
            keep(
                &list,
                Retention {
                    keep_yearly: Some(3),
                    ..Default::default()
                }
            ),
            vec!["2024-12-31T23:00:00Z", "2025-12-01T00:00:00Z", "2026-01-20T00:00:00Z"]
        );
    }

    #[test]
    fn without_options_everything_is_kept_and_the_newest_always_is() {
        assert!(to_remove(
            &[("a", at("2026-01-01T00:00:00Z"))],
            &Retention::default(),
            &TimeZone::UTC
        )
        .is_empty());
        let one = [("a", at("2026-01-01T00:00:00Z")), ("b", at("2026-01-02T00:00:00Z"))];
        assert_eq!(
            to_remove(
                &one,
                &Retention {
                    keep_last: Some(1),
                    ..Default::default()
                },
                &TimeZone::UTC
            ),
            vec!["a"]
        );
    }

    #[test]
    fn periods_are_read_in_the_time_zone() {
        // 23:30 UTC and 00:30 UTC are the same day in New York
        let list = [("a", at("2026-03-02T23:30:00Z")), ("b", at("2026-03-03T00:30:00Z"))];
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            to_remove(
                &list,
                &Retention {
                    keep_daily: Some(5),
                    ..Default::default()
                },
                &ny
            ),
            vec!["a"]
        );
        assert!(to_remove(
            &list,
            &Retention {
                keep_daily: Some(5),
                ..Default::default()
            },
            &TimeZone::UTC
        )
        .is_empty());
    }
}
