//! Events as standard tools read them: core/v1 Events with `firstTimestamp`, `lastTimestamp`
//! and `count` (what `kubectl get events --sort-by=.lastTimestamp` sorts on and `kubectl
//! describe` shows as "x3 over 2m"), besides `eventTime` and the reporting fields. A repeat of
//! the same event on the same object within [`AGGREGATE_FOR`] updates the one Event (its count
//! and last timestamp) instead of creating another, as a kubelet's recorder does.
//!
//! (kube-runtime's recorder writes `events.k8s.io/v1` Events, whose API refuses the deprecated
//! timestamp fields: `--sort-by=.lastTimestamp` left those unsorted.)

use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::Api;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// How long a published Event takes repeats (then a new one starts).
pub const AGGREGATE_FOR: std::time::Duration = std::time::Duration::from_secs(6 * 60);

/// What makes two events the same: the object, type, reason and action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>, Option<String>),
    type_: &'static str,
    reason: String,
    action: String,
}

/// One published Event: its name, count and when it was last seen.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    namespace: String,
    count: i32,
    last: jiff::Timestamp,
}

/// Publishes Events, folding repeats into one (see the module docs).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    seen: Arc<Mutex<HashMap<Key, Seen>>>,
}

/// The count and timestamps of a repeat, as a merge patch (pure).
pub fn repeat_patch(count: i32, now: jiff::Timestamp) -> serde_json::Value {
    serde_json::json!({
        "count": count,
        "lastTimestamp": Time(now),
        "series": {"count": count, "lastObservedTime": MicroTime(now)},
    })
}

impl Recorder {
    /// A recorder reporting as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            seen: Arc::default(),
        }
    }

    fn instance(&self) -> String {
        self.reporter
            .instance
            .clone()
            .unwrap_or_else(|| self.reporter.controller.clone())
    }

    /// A new Event about `regarding` (pure but for its name, which carries the time).
    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: jiff::Timestamp) -> CoreEvent {
        let name = regarding.name.as_deref().unwrap_or(&self.reporter.controller);
        CoreEvent {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: regarding.namespace.clone(),
                ..Default::default()
            },
            involved_object: regarding.clone(),
            reason: Some(ev.reason.clone()),
            message: ev.note.clone(),
            type_: Some(type_name(ev.type_).into()),
            action: Some(ev.action.clone()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some(self.reporter.controller.clone()),
            reporting_instance: Some(self.instance()),
            source: Some(EventSource {
                component: Some(self.reporter.controller.clone()),
                host: None,
            }),
            related: ev.secondary.clone(),
            series: None,
        }
    }

    /// Publishes `ev` about `regarding`: a new Event, or the count and last timestamp of the
    /// same one published within [`AGGREGATE_FOR`] (a new one when that one is gone).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = jiff::Timestamp::now();
        let key = Key {
            regarding: (
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
                regarding.kind.clone(),
            ),
            type_: type_name(ev.type_),
            reason: ev.reason.clone(),
            action: ev.action.clone(),
        };
        // the lock is held for the bookkeeping only, never across a request: passes publish
        // concurrently (a race between two repeats of one event at worst makes a second Event)
        let repeat = {
            let mut seen = self.seen.lock().await;
            seen.retain(|_, s| now.duration_since(s.last).as_secs() < AGGREGATE_FOR.as_secs() as i64);
            seen.get_mut(&key).map(|s| {
                s.count += 1;
                s.last = now;
                s.clone()
            })
        };
        if let Some(s) = repeat {
            let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &s.namespace);
            let patch = Patch::Merge(repeat_patch(s.count, now));
            match api.patch(&s.name, &PatchParams::default(), &patch).await {
                Ok(_) => return Ok(()),
                // gone (deleted, or expired by the apiserver's TTL): a new one below
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.new_event(ev, regarding, now);
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &namespace);
        let made = api.create(&PostParams::default(), &event).await?;
        let seen = Seen {
            name: made.metadata.name.unwrap_or_default(),
            namespace,
            count: 1,
            last: now,
        };
        self.seen.lock().await.insert(key, seen);
        Ok(())
    }
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeat_moves_the_last_timestamp_and_counts() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let p = repeat_patch(3, now);
        assert_eq!(p["count"], 3);
        assert_eq!(p["lastTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(p["series"]["count"], 3);
        assert!(p["series"]["lastObservedTime"]
            .as_str()
            .unwrap()
            .starts_with("2027-01-15T08:00:00"));
    }
}
