//! One pass over one object, for every kind: the status it starts from (never older than what
//! this process wrote), conditions, the single status write, Events, and the wrapper that
//! turns a failed pass into `Synced=False` with the error's reason.

use super::reason::Reason;
use super::slots::Waker;
use super::status_cache::StatusCache;
use super::wake::WakeRoutes;
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::Context;
use crate::controller::error::{Class, InvalidSpec, KubeOp};
use crate::controller::status::{add_finalizer, apply_status, remove_finalizer};
use crate::controller::Error;
use crate::crd::{CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED, FINALIZER};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::sync::Arc;

/// A kind the kernel runs passes for.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The status type.
    type Status: Clone + PartialEq + Default + Serialize + Debug + Send + Sync + 'static;
    /// The kind's name (metrics, logs).
    const KIND: &'static str;
    /// The status as cached.
    fn status_of(&self) -> Option<&Self::Status>;
    /// The conditions of a status.
    fn conditions(s: &mut Self::Status) -> &mut Vec<Condition>;
    /// `observedGeneration` of a status.
    fn observed_generation(s: &mut Self::Status) -> &mut Option<i64>;
    /// `lastSyncTime`, for kinds that have it (not compared when deciding whether to write).
    fn sync_time(_s: &mut Self::Status) -> Option<&mut Option<Time>> {
        None
    }
    /// What an invalid spec does to the kind's phase.
    fn on_invalid(_s: &mut Self::Status) {}
    /// Whether `Ready` is about the thing in Proxmox, which a refused change leaves untouched:
    /// an invalid spec then keeps a `Ready=True` as it is and says what was refused in `Synced`
    /// and `Stalled` only (a running container stays `Ready`, so alerts on `Ready` do not page
    /// for a bad edit).
    fn ready_is_about_the_guest() -> bool {
        false
    }
    /// Whether a pass that failed with `class` also makes the object not ready.
    fn failure_unreadies(class: Class) -> bool {
        !class.is_blip()
    }
    /// The statuses this process wrote last for the kind.
    fn cache(ctx: &Context) -> &StatusCache<Self::Status>;
    /// Where to send objects of the kind for a pass.
    fn wakes(ctx: &Context) -> &WakeRoutes<Self>;
}

/// Now in whole seconds, as the apiserver stores times: a status read back equals the one written.
pub fn now() -> Time {
    let t = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// One pass over one object.
pub struct Pass<'a, K: Managed> {
    /// The object as cached.
    pub obj: &'a K,
    /// The operator's shared context.
    pub ctx: &'a Context,
    /// The object's API.
    pub api: Api<K>,
    /// The status being built (starts from the newest known one).
    pub status: K::Status,
    written: Option<K::Status>,
    /// The pass's time.
    pub now: Time,
    /// The object's uid.
    pub uid: String,
}

impl<'a, K: Managed> Pass<'a, K> {
    /// Starts a pass from the newest status known: ours when the cache lags behind it.
    pub fn new(obj: &'a K, ctx: &'a Context) -> Self {
        let uid = obj.uid().unwrap_or_default();
        let current = K::cache(ctx).current(&uid, obj.status_of());
        Self {
            obj,
            ctx,
            api: Api::namespaced(ctx.kube.clone(), &obj.namespace().unwrap_or_default()),
            status: current.clone().unwrap_or_default(),
            written: current,
            now: now(),
            uid,
        }
    }

    /// The object's generation.
    pub fn generation(&self) -> Option<i64> {
        self.obj.meta().generation
    }

    /// Sets a condition (keeping its transition time when it does not flip).
    pub fn cond(&mut self, c: CondSpec) {
        let g = self.generation();
        conditions::set(K::conditions(&mut self.status), c, g, &self.now);
    }

    /// Removes a condition.
    pub fn uncond(&mut self, type_: &str) {
        conditions::remove(K::conditions(&mut self.status), type_);
    }

    /// Whether a condition is true.
    pub fn is_true(&mut self, type_: &str) -> bool {
        conditions::is_true(K::conditions(&mut self.status), type_)
    }

    /// The reason and message of a condition.
    pub fn cond_of(&mut self, type_: &str) -> Option<(String, String)> {
        conditions::get(K::conditions(&mut self.status), type_).map(|c| (c.reason.clone(), c.message.clone()))
    }

    /// Records the generation the status describes.
    pub fn observed(&mut self) {
        *K::observed_generation(&mut self.status) = self.generation();
    }

    /// Whether the status differs from the last one written (ignoring `lastSyncTime`).
    pub fn changed(&self) -> bool {
        let mut cmp = self.status.clone();
        if let Some(t) = K::sync_time(&mut cmp) {
            *t = self
                .written
                .clone()
                .as_mut()
                .and_then(|w| K::sync_time(w).and_then(|t| t.clone()));
        }
        self.written.as_ref() != Some(&cmp)
    }

    /// Writes the status when it differs from the last one written (ignoring `lastSyncTime`).
    pub async fn save(&mut self) -> Result<(), Error> {
        if !self.changed() {
            return Ok(());
        }
        if let Some(t) = K::sync_time(&mut self.status) {
            *t = Some(self.now.clone());
        }
        apply_status(&self.api, self.obj, &self.status)
            .await
            .op("write status")?;
        self.ctx.metrics.kube_write(K::KIND);
        K::cache(self.ctx).record(&self.uid, &self.status);
        self.written = Some(self.status.clone());
        Ok(())
    }

    /// Publishes an Event (a warning when the reason is one).
    pub async fn event(&self, reason: Reason, note: String) {
        self.ctx
            .event(self.obj, reason.is_warning(), reason.as_str(), note)
            .await;
    }

    /// The action of a pass that stops on `reason`: a look again after the reason's wait
    /// ([`Reason::retry_after`], with jitter), or none until the object changes.
    pub fn retry(&self, reason: Reason) -> Action {
        match reason.retry_after(&self.ctx.settings) {
            Some(d) => Action::requeue(crate::controller::jitter(d)),
            None => Action::await_change(),
        }
    }

    /// `Ready=False` with a reason (an Event when the reason is new and publishes one); the
    /// status is saved and the pass ends with `action`.
    pub async fn not_ready(&mut self, reason: Reason, message: String, action: Action) -> Result<Action, Error> {
        let was = self.cond_of(CONDITION_READY).map(|c| c.0);
        self.cond(CondSpec::no(CONDITION_READY, reason, message.clone()));
        self.save().await?;
        if reason.emits_event() && was.as_deref() != Some(reason.as_str()) {
            self.event(reason, message).await;
        }
        Ok(action)
    }

    /// A step stops the pass: [`Pass::not_ready`] with the reason's wait ([`Pass::retry`]), as a
    /// halt (`return Err(p.stop(reason, msg).await)`).
    pub async fn stop(&mut self, reason: Reason, message: String) -> super::Halt {
        let wait = self.retry(reason);
        super::Halt::end(self.not_ready(reason, message, wait).await)
    }

    /// `Synced=False` with a reason (the object may still be ready); saves; ends with `action`.
    pub async fn not_synced(&mut self, reason: Reason, message: String, action: Action) -> Result<Action, Error> {
        self.cond(CondSpec::no(CONDITION_SYNCED, reason, message));
        self.save().await?;
        Ok(action)
    }

    /// The spec cannot be applied: `Synced=False`, `Stalled=True` with reason `InvalidSpec`
    /// naming the field, and `Ready=False` too unless the kind's `Ready` is about the guest and
    /// it is `True` ([`Managed::ready_is_about_the_guest`]); an Event when new; no retry until
    /// the spec changes.
    pub async fn invalid(&mut self, e: InvalidSpec) -> Result<Action, Error> {
        let msg = e.to_string();
        let was = self.cond_of(CONDITION_SYNCED);
        match self.cond_of(CONDITION_READY) {
            // still true of the guest at this generation (the observed one, for Argo CD & co.)
            Some((reason, message)) if K::ready_is_about_the_guest() && self.is_true(CONDITION_READY) => {
                self.cond(CondSpec::yes(CONDITION_READY, reason, message))
            }
            _ => self.cond(CondSpec::no(CONDITION_READY, Reason::InvalidSpec, msg.clone())),
        }
        self.cond(CondSpec::no(CONDITION_SYNCED, Reason::InvalidSpec, msg.clone()));
        self.cond(CondSpec::yes(CONDITION_STALLED, Reason::InvalidSpec, msg.clone()));
        K::on_invalid(&mut self.status);
        self.observed();
        self.save().await?;
        if was != Some(("InvalidSpec".into(), msg.clone())) {
            self.event(Reason::InvalidSpec, msg).await;
        }
        Ok(Action::await_change())
    }

    /// A waker that sends this object to its controller.
    pub fn waker(&self) -> Waker {
        K::wakes(self.ctx).waker(self.obj)
    }

    /// Adds our finalizer (a no-op when present).
    pub async fn add_finalizer(&self) -> Result<(), Error> {
        if add_finalizer(&self.api, self.obj, FINALIZER)
            .await
            .op("add finalizer")?
        {
            self.ctx.metrics.kube_write(K::KIND);
        }
        Ok(())
    }

    /// Removes our finalizer (a no-op when absent).
    pub async fn remove_finalizer(&self) -> Result<(), Error> {
        remove_finalizer(&self.api, self.obj, FINALIZER)
            .await
            .op("remove finalizer")
    }

    /// Whether the object carries our finalizer.
    pub fn has_finalizer(&self) -> bool {
        self.obj.finalizers().iter().any(|f| f == FINALIZER)
    }
}

/// Runs one reconcile of a `kind` object: a panic becomes [`Error::Panic`] (one bad object
/// cannot stop its controller), and the outcome and duration go to the metrics and the debug log.
pub async fn instrumented<T>(
    kind: &'static str,
    name: &str,
    metrics: &crate::metrics::Metrics,
    pass: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("reconcile", kind, object = name);
    let res = Error::catch_panic(pass).instrument(span).await;
    let class = res.as_ref().map(|_| "ok").unwrap_or_else(|e| e.class().as_str());
    metrics.reconcile(kind, class, started.elapsed());
    tracing::debug!(
        kind,
        object = name,
        outcome = class,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconcile pass"
    );
    res
}

/// Runs one pass of a `K` object (a panic becomes an error; outcome and duration go to the
/// metrics and the debug log) and reports a failed pass on the object: `Synced=False` with the
/// error class as reason and the error as message, and `Ready=False` too unless the class is a
/// blip (see [`Managed::failure_unreadies`]). So `kubectl get` never shows a failing object as fine.
pub async fn run<K: Managed>(
    obj: &K,
    ctx: &Context,
    pass: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let res = crate::controller::instrumented(K::KIND, &obj.name_any(), &ctx.metrics, pass).await;
    if let Err(e) = &res {
        if !e.object_gone() {
            if let Err(w) = report_failure(obj, ctx, e).await {
                tracing::debug!(object = %obj.name_any(), error = %w, "could not report the failed pass");
            }
        }
    }
    res
}

async fn report_failure<K: Managed>(obj: &K, ctx: &Context, e: &Error) -> Result<(), Error> {
    let mut p = Pass::new(obj, ctx);
    let class = e.class();
    let msg = e.to_string();
    p.cond(CondSpec::no(CONDITION_SYNCED, class.reason(), msg.clone()));
    // Proxmox refused a parameter: the guest is untouched, and nothing but a change helps
    let refused = class == Class::InvalidSpec && K::ready_is_about_the_guest();
    if refused {
        p.cond(CondSpec::yes(CONDITION_STALLED, class.reason(), msg.clone()));
    }
    if refused && p.is_true(CONDITION_READY) {
        if let Some((reason, message)) = p.cond_of(CONDITION_READY) {
            p.cond(CondSpec::yes(CONDITION_READY, reason, message));
        }
    } else if K::failure_unreadies(class) {
        p.cond(CondSpec::no(CONDITION_READY, class.reason(), msg));
    }
    p.save().await
}

/// Logs a failed pass and picks its requeue: the one policy of every kind.
pub fn error_policy<K: Managed, C>(obj: Arc<K>, err: &Error, ctx: Arc<C>) -> Action
where
    C: AsRef<Context>,
{
    tracing::warn!(kind = K::KIND, object = %obj.name_any(), namespace = ?obj.namespace(), class = err.class().as_str(), error = %err, "reconcile failed");
    crate::controller::error::requeue_after_error(err, &(*ctx).as_ref().settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_this_process_wrote_beats_a_lagging_cache() {
        let c: StatusCache<u32> = StatusCache::default();
        assert_eq!(c.current("a", Some(&1)), Some(1));
        c.record("a", &2);
        assert_eq!(
            c.current("a", Some(&1)),
            Some(2),
            "the cache has not seen our write yet"
        );
        assert_eq!(c.current("a", None), Some(2));
        assert_eq!(c.current("a", Some(&2)), Some(2), "caught up");
        assert!(c.is_empty(), "our copy is dropped once the cache caught up");
    }

    #[test]
    fn the_copy_goes_as_soon_as_the_watch_shows_it() {
        let c: StatusCache<u32> = StatusCache::default();
        c.record("a", &2);
        c.caught_up("a", Some(&1));
        c.caught_up("a", None);
        assert_eq!(c.len(), 1, "kept while the cache lags");
        c.caught_up("a", Some(&2));
        assert!(c.is_empty());
    }
}
