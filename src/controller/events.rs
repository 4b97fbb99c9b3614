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

/// One published Event: when it was first and last seen and how often. Its name and namespace
/// follow from the object it is about and `first` ([`Recorder::event_name`]), so an entry
/// holds no string: 10,000 objects each with an Event of the last minutes cost ~0.5 MiB.
#[derive(Clone, Copy, Debug)]
struct Seen {
    first: jiff::Timestamp,
    last: jiff::Timestamp,
    count: i32,
}

/// The Events published within [`AGGREGATE_FOR`], by [`event_key`].
#[derive(Debug, Default)]
struct Published {
    seen: HashMap<u64, Seen>,
    pruned: Option<jiff::Timestamp>,
}

impl Published {
    /// The entry of `key` when it is recent enough to take a repeat; entries too old are
    /// dropped now and then (at most once a minute: each publish scanning 10,000 entries
    /// would cost more than it frees), and the table shrinks when mostly empty.
    fn repeat(&mut self, key: u64, now: jiff::Timestamp) -> Option<Seen> {
        let fresh = |s: &Seen| now.duration_since(s.last).as_secs() < AGGREGATE_FOR.as_secs() as i64;
        if self.pruned.is_none_or(|p| now.duration_since(p).as_secs() >= 60) {
            self.seen.retain(|_, s| fresh(s));
            crate::controller::kernel::shrink_when_sparse(&mut self.seen);
            self.pruned = Some(now);
        }
        let s = self.seen.get_mut(&key).filter(|s| fresh(s))?;
        s.count += 1;
        s.last = now;
        Some(*s)
    }
}

/// What makes two events the same (pure): the object (namespace, name, uid, kind), type,
/// reason and action, hashed (a collision of 64-bit hashes folding two different events into
/// one count is far less likely than the apiserver losing an Event).
fn event_key(ev: &Event, regarding: &ObjectReference) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&regarding.namespace, &regarding.name, &regarding.uid, &regarding.kind).hash(&mut h);
    (type_name(ev.type_), &ev.reason, &ev.action).hash(&mut h);
    h.finish()
}

/// Publishes Events, folding repeats into one (see the module docs).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    seen: Arc<Mutex<Published>>,
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

    /// The name of the Event about `regarding` first published at `first` (pure).
    fn event_name(&self, regarding: &ObjectReference, first: jiff::Timestamp) -> String {
        let name = regarding.name.as_deref().unwrap_or(&self.reporter.controller);
        format!("{name}.{:x}", first.as_nanosecond())
    }

    /// A new Event about `regarding` (pure but for its name, which carries the time).
    fn new_event(&self, ev: &Event, regarding: &ObjectReference, now: jiff::Timestamp) -> CoreEvent {
        CoreEvent {
            metadata: ObjectMeta {
                name: Some(self.event_name(regarding, now)),
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
        let key = event_key(ev, regarding);
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        // the lock is held for the bookkeeping only, never across a request: passes publish
        // concurrently (a race between two repeats of one event at worst makes a second Event)
        let repeat = self.seen.lock().await.repeat(key, now);
        if let Some(s) = repeat {
            let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = Patch::Merge(repeat_patch(s.count, now));
            match api
                .patch(&self.event_name(regarding, s.first), &PatchParams::default(), &patch)
                .await
            {
                Ok(_) => return Ok(()),
                // gone (deleted, or expired by the apiserver's TTL): a new one below
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.new_event(ev, regarding, now);
        let api: Api<CoreEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        let seen = Seen {
            first: now,
            last: now,
            count: 1,
        };
        self.seen.lock().await.seen.insert(key, seen);
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
    fn a_repeat_within_the_window_counts_and_one_after_it_or_of_another_reason_starts_anew() {
        let t0 = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        let mut p = Published::default();
        let ready = event_key(&event("Ready"), &regarding("web"));
        assert_ne!(ready, event_key(&event("Failed"), &regarding("web")));
        assert_ne!(ready, event_key(&event("Ready"), &regarding("db")));
        assert!(p.repeat(ready, t0).is_none(), "nothing published yet");
        p.seen.insert(
            ready,
            Seen {
                first: t0,
                last: t0,
                count: 1,
            },
        );
        let s = p.repeat(ready, at(60)).unwrap();
        assert_eq!((s.first, s.last, s.count), (t0, at(60), 2));
        let late = at(60) + jiff::SignedDuration::from_secs(AGGREGATE_FOR.as_secs() as i64);
        assert!(
            p.repeat(ready, late).is_none(),
            "a repeat after the window is a new Event"
        );
        assert!(p.seen.is_empty(), "old entries are dropped");
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: None,
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("apps".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            kind: Some("LxcContainer".into()),
            ..Default::default()
        }
    }

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
