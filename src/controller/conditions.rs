//! Condition helpers following Kubernetes conventions: CamelCase reasons, `observedGeneration`,
//! and a `lastTransitionTime` that only moves when the status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The desired content of one condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondSpec {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// `True` (true) or `False` (false).
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl CondSpec {
    /// A condition that is `True`.
    pub fn yes(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }
    /// A condition that is `False`.
    pub fn no(type_: &'static str, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// The longest condition message written (the apiserver allows 32,768 bytes).
pub const MAX_MESSAGE: usize = 32_000;

/// `s` cut to at most `max` bytes on a character boundary, with `…` marking the cut.
pub fn cut(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// Sets `spec` in `conditions`, keeping `lastTransitionTime` when the status did not change.
pub fn set(conditions: &mut Vec<Condition>, spec: CondSpec, generation: Option<i64>, now: &Time) {
    let status = if spec.status { "True" } else { "False" }.to_string();
    let message = cut(spec.message, MAX_MESSAGE);
    match conditions.iter_mut().find(|c| c.type_ == spec.type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.clone();
            }
            c.status = status;
            c.reason = spec.reason;
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: spec.type_.to_string(),
            status,
            reason: spec.reason,
            message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// Removes the condition of type `type_`.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of type `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_is_kept_when_the_status_does_not_flip() {
        let mut c = Vec::new();
        set(&mut c, CondSpec::yes("Ready", "Running", "ok"), Some(1), &t(100));
        set(&mut c, CondSpec::yes("Ready", "Running", "still ok"), Some(2), &t(200));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, t(100));
        assert_eq!(c[0].message, "still ok");
        assert_eq!(c[0].observed_generation, Some(2));
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary_without_panicking() {
        let long = "→".repeat(20_000);
        let mut c = Vec::new();
        set(&mut c, CondSpec::no("Ready", "TaskFailed", long), Some(1), &t(1));
        assert!(c[0].message.len() <= MAX_MESSAGE);
        assert!(c[0].message.ends_with('…'));
        assert_eq!(cut("short".into(), 3), "…");
        assert_eq!(cut("ab".into(), 3), "ab");
    }

    #[test]
    fn transition_time_moves_when_the_status_flips() {
        let mut c = Vec::new();
        set(&mut c, CondSpec::yes("Ready", "Running", "ok"), Some(1), &t(100));
        set(&mut c, CondSpec::no("Ready", "InvalidSpec", "bad"), Some(1), &t(300));
        assert_eq!(c[0].last_transition_time, t(300));
        assert_eq!(c[0].status, "False");
        assert_eq!(c[0].reason, "InvalidSpec");
        assert!(!is_true(&c, "Ready"));
    }
}
