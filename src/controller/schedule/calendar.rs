//! Schedules: 5-field cron expressions and Proxmox calendar events, parsed into one matcher with
//! a next-run / previous-run calculator in a time zone (pure; no clock, no I/O).
//!
//! Cron: `minute hour day-of-month month day-of-week`, each field `*`, `N`, `A-B`, lists with
//! `,`, steps `*/N` or `A-B/N`; month names `jan..dec`, weekday names `sun..sat`, weekday `0`
//! and `7` both Sunday; when both day fields are restricted a day matches either (as in Vixie
//! cron); macros `@hourly @daily @midnight @weekly @monthly @yearly @annually`.
//!
//! Proxmox calendar events (pve-docs `calendar-events.adoc`):
//! `[WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]`, each component `*`, `N`,
//! lists with `,`, ranges `A..B`, repetitions `N/STEP` (also `A..B/STEP`, `*/STEP`); weekdays
//! `mon..sun` (lists and ranges); a lone number (or `*/5`) is minutes; omitted time means
//! `00:00`, omitted seconds `0`; shortcuts `minutely hourly daily weekly monthly yearly annually
//! quarterly semiannually`. Weekday and date must both match (systemd semantics).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A parsed schedule: the set of matching civil times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bit 0 = Monday .. bit 6 = Sunday.
    weekdays: u8,
    /// `None` = every year.
    years: Option<Vec<i16>>,
    /// Cron rule: when both day-of-month and day-of-week are restricted, either may match.
    day_or_weekday: bool,
}

const ALL_DAYS: u32 = 0xFFFF_FFFE;
const ALL_MONTHS: u16 = 0x1FFE;
const ALL_WEEKDAYS: u8 = 0x7F;

/// Why a schedule could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid schedule {input:?}: {message}")]
pub struct ParseError {
    /// The schedule as given.
    pub input: String,
    /// What is wrong.
    pub message: String,
}

impl Schedule {
    /// Parses a 5-field cron expression, a cron macro (`@daily`) or a Proxmox calendar event.
    pub fn parse(input: &str) -> Result<Schedule, ParseError> {
        let err = |m: String| ParseError {
            input: input.to_string(),
            message: m,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(err("empty".into()));
        }
        let tokens: Vec<&str> = text.split_whitespace().collect();
        let s = if text.starts_with('@') || tokens.len() == 5 {
            parse_cron(text)
        } else {
            parse_calendar(&tokens)
        }
        .map_err(err)?;
        if s.seconds == 0
            || s.minutes == 0
            || s.hours == 0
            || s.days & ALL_DAYS == 0
            || s.months & ALL_MONTHS == 0
            || s.weekdays == 0
            || s.years.as_ref().is_some_and(|y| y.is_empty())
        {
            return Err(ParseError {
                input: input.to_string(),
                message: "it never matches".into(),
            });
        }
        Ok(s)
    }

    /// Whether the schedule fires more often than once a minute (some slot has seconds ≠ 0).
    pub fn has_seconds(&self) -> bool {
        self.seconds != 1
    }

    fn date_matches(&self, d: Date) -> bool {
        if !self.years.as_ref().is_none_or(|ys| ys.contains(&d.year())) {
            return false;
        }
        if self.months & (1 << d.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_monday_zero_offset()) != 0;
        if self.day_or_weekday {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The civil times of day that match, in order (hour, minute, second).
    fn times(&self) -> Vec<(i8, i8, i8)> {
        let mut out = Vec::new();
        for h in (0..24i8).filter(|h| self.hours & (1 << h) != 0) {
            for m in (0..60i8).filter(|m| self.minutes & (1u64 << m) != 0) {
                for s in (0..60i8).filter(|s| self.seconds & (1u64 << s) != 0) {
                    out.push((h, m, s));
                }
            }
        }
        out
    }

    /// The first slot strictly after `after`, in `tz` (`None` if there is none within 8 years).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Zoned> {
        let start = after.to_zoned(tz.clone());
        let start_dt = start.datetime();
        let mut day = start.date();
        let times = self.times();
        for _ in 0..(366 * 8) {
            if self.date_matches(day) {
                for &(h, m, s) in &times {
                    let dt = day.at(h, m, s, 0);
                    if day == start_dt.date() && dt < start_dt.with().subsec_nanosecond(0).build().ok()? {
                        continue;
                    }
                    if let Some(z) = to_zoned(dt, tz) {
                        if z.timestamp() > after {
                            return Some(z);
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// The last slot at or before `at`, in `tz` (`None` if there is none within 8 years).
    pub fn last_at_or_before(&self, at: Timestamp, tz: &TimeZone) -> Option<Zoned> {
        let start = at.to_zoned(tz.clone());
        let start_dt = start.datetime();
        let mut day = start.date();
        let times = self.times();
        for _ in 0..(366 * 8) {
            if self.date_matches(day) {
                for &(h, m, s) in times.iter().rev() {
                    let dt = day.at(h, m, s, 0);
                    if day == start_dt.date() && dt > start_dt {
                        continue;
                    }
                    if let Some(z) = to_zoned(dt, tz) {
                        if z.timestamp() <= at {
                            return Some(z);
                        }
                    }
                }
            }
            day = day.yesterday().ok()?;
        }
        None
    }
}

/// A civil time in `tz`; times skipped by a DST change move forward (as cron daemons do).
fn to_zoned(dt: DateTime, tz: &TimeZone) -> Option<Zoned> {
    tz.to_ambiguous_zoned(dt).compatible().ok()
}

// ------------------------------------------------------------------ cron

fn parse_cron(text: &str) -> Result<Schedule, String> {
    let expanded = match text.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *".to_string(),
        "@daily" | "@midnight" => "0 0 * * *".to_string(),
        "@weekly" => "0 0 * * 0".to_string(),
        "@monthly" => "0 0 1 * *".to_string(),
        "@yearly" | "@annually" => "0 0 1 1 *".to_string(),
        s if s.starts_with('@') => return Err(format!("unknown macro {s}")),
        s => s.to_string(),
    };
    let f: Vec<&str> = expanded.split_whitespace().collect();
    if f.len() != 5 {
        return Err("a cron expression has 5 fields: minute hour day-of-month month day-of-week".into());
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DOWS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let minutes = cron_field(f[0], 0, 59, &[], "minute")?;
    let hours = cron_field(f[1], 0, 23, &[], "hour")?;
    let days = cron_field(f[2], 1, 31, &[], "day of month")?;
    let months = cron_field(f[3], 1, 12, &MONTHS, "month")?;
    let dows = cron_field(f[4], 0, 7, &DOWS, "day of week")?;
    // cron: 0 and 7 = Sunday; ours: bit 0 = Monday .. bit 6 = Sunday
    let mut weekdays = 0u8;
    for d in 0..=7u32 {
        if dows & (1 << d) != 0 {
            weekdays |= 1 << ((d + 6) % 7);
        }
    }
    let dom_star = f[2] == "*" || f[2] == "?";
    let dow_star = f[4] == "*" || f[4] == "?";
    Ok(Schedule {
        seconds: 1,
        minutes,
        hours: hours as u32,
        days: days as u32,
        months: months as u16,
        weekdays,
        years: None,
        // Vixie cron: a restricted day-of-month OR a restricted day-of-week
        day_or_weekday: !dom_star && !dow_star,
    })
    .map(|mut s| {
        if dom_star && !dow_star {
            s.days = ALL_DAYS;
        }
        if dow_star && !dom_star {
            s.weekdays = ALL_WEEKDAYS;
        }
        s
    })
}

fn cron_value(s: &str, min: u32, max: u32, names: &[&str], what: &str) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| *n == s) {
        return Ok(i as u32 + if min == 1 { 1 } else { 0 });
    }
    let v: u32 = s.parse().map_err(|_| format!("{what}: {s:?} is not a number"))?;
    if v < min || v > max {
        return Err(format!("{what}: {v} is outside {min}-{max}"));
    }
    Ok(v)
}

fn cron_field(field: &str, min: u32, max: u32, names: &[&str], what: &str) -> Result<u64, String> {
    let mut mask = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                cron_value(a, min, max, names, what)?,
                cron_value(b, min, max, names, what)?,
            )
        } else {
            let a = cron_value(range, min, max, names, what)?;
            (a, if part.contains('/') { max } else { a })
        };
        if a > b {
            return Err(format!("{what}: range {range:?} is backwards"));
        }
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

// ------------------------------------------------------------------ Proxmox calendar events

const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_calendar(tokens: &[&str]) -> Result<Schedule, String> {
    if tokens.len() == 1 {
        let shortcut = match tokens[0].to_ascii_lowercase().as_str() {
            "minutely" => Some("*-*-* *:*:00"),
            "hourly" => Some("*-*-* *:00:00"),
            "daily" => Some("*-*-* 00:00:00"),
            "weekly" => Some("mon *-*-* 00:00:00"),
            "monthly" => Some("*-*-01 00:00:00"),
            "yearly" | "annually" => Some("*-01-01 00:00:00"),
            "quarterly" => Some("*-01,04,07,10-01 00:00:00"),
            "semiannually" | "semi-annually" => Some("*-01,07-01 00:00:00"),
            _ => None,
        };
        if let Some(s) = shortcut {
            return parse_calendar(&s.split_whitespace().collect::<Vec<_>>());
        }
    }
    // an extension also read by the design document: `daily 02:00`, `weekly 03:15`, … = the
    // shortcut's days at the given time
    if tokens.len() == 2 && tokens[1].contains(':') {
        let days = match tokens[0].to_ascii_lowercase().as_str() {
            "daily" => Some("*-*-*"),
            "weekly" => Some("mon *-*-*"),
            "monthly" => Some("*-*-01"),
            "yearly" | "annually" => Some("*-01-01"),
            "quarterly" => Some("*-01,04,07,10-01"),
            "semiannually" | "semi-annually" => Some("*-01,07-01"),
            _ => None,
        };
        if let Some(d) = days {
            let mut t: Vec<&str> = d.split_whitespace().collect();
            t.push(tokens[1]);
            return parse_calendar(&t);
        }
    }
    let mut s = Schedule {
        seconds: 1,
        minutes: 1,
        hours: 1,
        days: ALL_DAYS,
        months: ALL_MONTHS,
        weekdays: ALL_WEEKDAYS,
        years: None,
        day_or_weekday: false,
    };
    let (mut seen_wd, mut seen_date, mut seen_time) = (false, false, false);
    for (i, tok) in tokens.iter().enumerate() {
        let tok = tok.to_ascii_lowercase();
        if tok.starts_with(|c: char| c.is_ascii_alphabetic()) {
            if seen_wd || i != 0 {
                return Err(format!("weekdays {tok:?} must come first, once"));
            }
            s.weekdays = weekday_spec(&tok)?;
            seen_wd = true;
        } else if tok.contains(':') || !tok.contains('-') {
            if seen_time {
                return Err(format!("more than one time {tok:?}"));
            }
            let parts: Vec<&str> = tok.split(':').collect();
            let (h, m, sec) = match parts.as_slice() {
                [m] => ("*", *m, "0"),
                [h, m] => (*h, *m, "0"),
                [h, m, sec] => (*h, *m, *sec),
                _ => return Err(format!("time {tok:?} is not HOURS:MINUTES[:SECONDS]")),
            };
            s.hours = component(h, 0, 23, "hour")? as u32;
            s.minutes = component(m, 0, 59, "minute")?;
            s.seconds = component(sec, 0, 59, "second")?;
            seen_time = true;
        } else {
            if seen_date || seen_time {
                return Err(format!("date {tok:?} must come before the time, once"));
            }
            let parts: Vec<&str> = tok.split('-').collect();
            let (y, mo, d) = match parts.as_slice() {
                [mo, d] => (None, *mo, *d),
                [y, mo, d] => (Some(*y), *mo, *d),
                _ => return Err(format!("date {tok:?} is not [YEARS-]MONTHS-DAYS")),
            };
            if let Some(y) = y.filter(|y| *y != "*") {
                s.years = Some(year_component(y)?);
            }
            s.months = component(mo, 1, 12, "month")? as u16;
            s.days = component(d, 1, 31, "day")? as u32;
            seen_date = true;
        }
    }
    if !seen_time {
        // a date or weekday without a time means midnight
        s.hours = 1;
        s.minutes = 1;
        s.seconds = 1;
    }
    Ok(s)
}

fn weekday_spec(tok: &str) -> Result<u8, String> {
    let idx = |n: &str| {
        let n3: String = n.chars().take(3).collect();
        WEEKDAY_NAMES
            .iter()
            .position(|w| *w == n3)
            .filter(|_| n.len() == 3 || WEEKDAY_FULL.contains(&n))
            .ok_or_else(|| format!("unknown weekday {n:?}"))
    };
    let mut mask = 0u8;
    for part in tok.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                if a > b {
                    return Err(format!("weekday range {part:?} is backwards"));
                }
                for d in a..=b {
                    mask |= 1 << d;
                }
            }
            None => mask |= 1 << idx(part)?,
        }
    }
    Ok(mask)
}

const WEEKDAY_FULL: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// One component (`*`, `N`, `A..B`, `N/STEP`, `A..B/STEP`, `*/STEP`, comma lists) as a bit mask.
fn component(spec: &str, min: u32, max: u32, what: &str) -> Result<u64, String> {
    let num = |s: &str| -> Result<u32, String> {
        let v: u32 = s.parse().map_err(|_| format!("{what}: {s:?} is not a number"))?;
        if v < min || v > max {
            return Err(format!("{what}: {v} is outside {min}..{max}"));
        }
        Ok(v)
    };
    let mut mask = 0u64;
    for part in spec.split(',') {
        if part.is_empty() {
            return Err(format!("{what}: empty list entry in {spec:?}"));
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: bad repetition in {part:?}"))?,
            ),
            None => (part, 0),
        };
        let (a, b) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once("..") {
            (num(a)?, num(b)?)
        } else {
            let a = num(range)?;
            (a, if step > 0 { max } else { a })
        };
        if a > b {
            return Err(format!("{what}: range {range:?} is backwards"));
        }
        let step = step.max(1);
        let mut v = a;
        while v <= b {
            mask |= 1 << v;
            v += step;
        }
    }
    Ok(mask)
}

fn year_component(spec: &str) -> Result<Vec<i16>, String> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<i16>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("year: bad repetition in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let num = |s: &str| {
            s.parse::<i16>()
                .ok()
                .filter(|y| (1970..=9999).contains(y))
                .ok_or_else(|| format!("year: {s:?} is not a year"))
        };
        let (a, b) = match range.split_once("..") {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let a = num(range)?;
                (a, if part.contains('/') { 2200.max(a) } else { a })
            }
        };
        let mut y = a;
        while y <= b {
            out.push(y);
            y += step;
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Loads an IANA time zone (`UTC` when `None` or empty).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("UTC") | Some("Etc/UTC") => Ok(TimeZone::UTC),
        Some(n) => TimeZone::get(n).map_err(|e| format!("unknown time zone {n:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(sched: &str, after: &str) -> String {
        Schedule::parse(sched)
            .unwrap()
            .next_after(utc(after), &TimeZone::UTC)
            .unwrap()
            .timestamp()
            .to_string()
    }

    fn next_tz(sched: &str, tz: &str, after: &str) -> String {
        let tz = time_zone(Some(tz)).unwrap();
        Schedule::parse(sched)
            .unwrap()
            .next_after(utc(after), &tz)
            .unwrap()
            .timestamp()
            .to_string()
    }

    #[test]
    fn cron_expressions_find_their_next_run() {
        assert_eq!(next("0 2 * * *", "2026-03-01T01:00:00Z"), "2026-03-01T02:00:00Z");
        assert_eq!(next("0 2 * * *", "2026-03-01T02:00:00Z"), "2026-03-02T02:00:00Z");
        assert_eq!(next("*/15 * * * *", "2026-03-01T01:07:10Z"), "2026-03-01T01:15:00Z");
        assert_eq!(next("30 4 1 * *", "2026-03-02T00:00:00Z"), "2026-04-01T04:30:00Z");
        // 2026-03-01 is a Sunday; mon-fri
        assert_eq!(next("0 9 * * 1-5", "2026-02-28T10:00:00Z"), "2026-03-02T09:00:00Z");
        assert_eq!(next("0 9 * * sat,sun", "2026-03-02T00:00:00Z"), "2026-03-07T09:00:00Z");
        assert_eq!(next("0 0 * * 7", "2026-03-02T00:00:00Z"), "2026-03-08T00:00:00Z");
        assert_eq!(next("0 0 1 jan *", "2026-03-02T00:00:00Z"), "2027-01-01T00:00:00Z");
        assert_eq!(next("@hourly", "2026-03-02T00:59:59Z"), "2026-03-02T01:00:00Z");
        assert_eq!(next("@weekly", "2026-03-02T00:00:00Z"), "2026-03-08T00:00:00Z");
    }

    #[test]
    fn cron_day_of_month_or_day_of_week_when_both_are_given() {
        // the 13th or any Friday: 2026-03-06 is a Friday
        assert_eq!(next("0 0 13 * 5", "2026-03-01T00:00:00Z"), "2026-03-06T00:00:00Z");
        assert_eq!(next("0 0 13 * 5", "2026-03-07T00:00:00Z"), "2026-03-13T00:00:00Z");
    }

    #[test]
    fn proxmox_calendar_events_find_their_next_run() {
        assert_eq!(next("daily", "2026-03-01T01:00:00Z"), "2026-03-02T00:00:00Z");
        assert_eq!(next("hourly", "2026-03-01T01:00:00Z"), "2026-03-01T02:00:00Z");
        assert_eq!(next("minutely", "2026-03-01T01:00:30Z"), "2026-03-01T01:01:00Z");
        assert_eq!(next("*/5", "2026-03-01T01:03:00Z"), "2026-03-01T01:05:00Z");
        assert_eq!(next("mon..fri 02:30", "2026-02-27T03:00:00Z"), "2026-03-02T02:30:00Z");
        assert_eq!(next("sat 02:30", "2026-03-01T00:00:00Z"), "2026-03-07T02:30:00Z");
        // first Saturday of the month at 15:00: April 4th 2026
        assert_eq!(next("Sat *-1..7 15:00", "2026-03-08T00:00:00Z"), "2026-04-04T15:00:00Z");
        assert_eq!(next("*-*-01 00:00", "2026-03-08T00:00:00Z"), "2026-04-01T00:00:00Z");
        assert_eq!(next("*-05", "2026-03-08T00:00:00Z"), "2026-04-05T00:00:00Z");
        assert_eq!(next("2027-10-21", "2026-03-08T00:00:00Z"), "2027-10-21T00:00:00Z");
        assert_eq!(next("mon..wed 30/10", "2026-03-02T05:41:00Z"), "2026-03-02T05:50:00Z");
        assert_eq!(next("mon..wed 30/10", "2026-03-02T05:51:00Z"), "2026-03-02T06:30:00Z");
        assert_eq!(next("fri 12..13:5/20", "2026-03-06T12:46:00Z"), "2026-03-06T13:05:00Z");
        assert_eq!(
            next("12,14,16,18,20,22:5", "2026-03-06T12:06:00Z"),
            "2026-03-06T14:05:00Z"
        );
        assert_eq!(next("12/2:5", "2026-03-06T22:06:00Z"), "2026-03-07T12:05:00Z");
        assert_eq!(
            next("mon..fri 8..17,22:0/15", "2026-03-06T17:50:00Z"),
            "2026-03-06T22:00:00Z"
        );
        assert_eq!(next("*", "2026-03-06T17:50:10Z"), "2026-03-06T17:51:00Z");
        assert_eq!(next("quarterly", "2026-03-06T17:50:10Z"), "2026-04-01T00:00:00Z");
        assert_eq!(next("weekly", "2026-03-06T17:50:10Z"), "2026-03-09T00:00:00Z");
        assert_eq!(next("monday", "2026-03-06T17:50:10Z"), "2026-03-09T00:00:00Z");
        assert_eq!(next("daily 02:00", "2026-03-06T17:50:10Z"), "2026-03-07T02:00:00Z");
        assert_eq!(next("weekly 03:15", "2026-03-06T17:50:10Z"), "2026-03-09T03:15:00Z");
    }

    #[test]
    fn seconds_in_calendar_events_give_sub_minute_slots() {
        let s = Schedule::parse("*:*:0/5").unwrap();
        assert!(s.has_seconds());
        assert!(!Schedule::parse("daily").unwrap().has_seconds());
        assert_eq!(next("*:*:0/5", "2026-03-06T17:50:11Z"), "2026-03-06T17:50:15Z");
        assert_eq!(next("*:*:0/5", "2026-03-06T17:59:59.5Z"), "2026-03-06T18:00:00Z");
    }

    #[test]
    fn time_zones_move_the_slots_and_daylight_saving_gaps_move_forward() {
        // 02:30 in Berlin is 01:30 UTC in winter
        assert_eq!(
            next_tz("daily 02:30", "Europe/Berlin", "2026-01-10T00:00:00Z"),
            "2026-01-10T01:30:00Z"
        );
        // 2026-03-29: 02:00 → 03:00 in Berlin; 02:30 does not exist and runs at 03:30 CEST = 01:30 UTC
        assert_eq!(
            next_tz("02:30", "Europe/Berlin", "2026-03-29T00:00:00Z"),
            "2026-03-29T01:30:00Z"
        );
        assert_eq!(
            next_tz("0 2 * * *", "America/New_York", "2026-07-01T00:00:00Z"),
            "2026-07-01T06:00:00Z"
        );
    }

    #[test]
    fn the_last_slot_at_or_before_a_time() {
        let s = Schedule::parse("*/5").unwrap();
        let at = |t: &str| {
            s.last_at_or_before(utc(t), &TimeZone::UTC)
                .unwrap()
                .timestamp()
                .to_string()
        };
        assert_eq!(at("2026-03-06T17:52:00Z"), "2026-03-06T17:50:00Z");
        assert_eq!(at("2026-03-06T17:50:00Z"), "2026-03-06T17:50:00Z");
        assert_eq!(at("2026-03-06T00:01:00Z"), "2026-03-06T00:00:00Z");
        let d = Schedule::parse("mon..fri 02:30").unwrap();
        assert_eq!(
            d.last_at_or_before(utc("2026-03-08T12:00:00Z"), &TimeZone::UTC)
                .unwrap()
                .timestamp()
                .to_string(),
            "2026-03-06T02:30:00Z"
        );
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        for bad in [
            "",
            "61 * * * *",
            "* * * *",
            "0 0 31 2 *x",
            "mon..xyz 02:00",
            "25:00",
            "*-13-01",
            "fri..mon",
            "@sometimes",
            "1 2 3 4 5 6",
            "*/0",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = Schedule::parse("61 * * * *").unwrap_err();
        assert!(e.to_string().contains("minute"), "{e}");
    }

    #[test]
    fn impossible_dates_have_no_next_run() {
        let s = Schedule::parse("*-02-30").unwrap();
        assert!(s.next_after(utc("2026-01-01T00:00:00Z"), &TimeZone::UTC).is_none());
    }

    #[test]
    fn time_zones_load_from_the_system_database() {
        assert!(time_zone(Some("Europe/Berlin")).is_ok());
        assert!(time_zone(None).is_ok());
        assert!(time_zone(Some("Mars/Olympus")).is_err());
    }
}
