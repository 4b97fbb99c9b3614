//! The pass every schedule kind runs, generic over [`ScheduleKind`].
//!
//! Each pass: the slot due now (see [`due_slot`](super::due_slot): missed slots collapse into
//! the latest one) is run, unless suspended: one object per matching `LxcContainer` (same
//! namespace, same `ProxmoxCluster`, `management: Full`), named by
//! [`item_name`](super::item_name), owned by the schedule and labelled with both names;
//! creating is idempotent by name. Then retention ([`removals`](super::removals)) deletes the
//! objects it does not keep among those the schedule owns (their own controllers then delete
//! what they made in Proxmox). The pass requeues itself for the next slot.

use super::{Item, Outcome, ScheduleClock, ANNOTATION_SCHEDULED_AT, KEEP_FAILED, LABEL_CONTAINER, LABEL_SCHEDULE};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::Context;
use crate::controller::error::KubeOp;
use crate::controller::kernel::wiring::ControllerFuture;
use crate::controller::kernel::{Managed, Reason};
use crate::controller::status::apply_status;
use crate::controller::Error;
use crate::crd::lxc_container::{LxcContainer, Management};
use crate::crd::schedule::{ScheduleCommon, ScheduleStatus};
use crate::crd::{LocalObjectRef, CONDITION_READY};
use futures::StreamExt;
use jiff::{Timestamp, Zoned};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::Controller;
use kube::{Api, Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// How one item stands, as its kind reads it.
pub struct ItemState {
    /// The container it is of.
    pub container: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it completed.
    pub completed_at: Option<Timestamp>,
    /// Never pruned.
    pub protected: bool,
}

/// A schedule kind: the common part of its spec, and the kind of object each slot makes per container.
pub trait ScheduleKind: Managed<Status = ScheduleStatus> {
    /// What a slot makes per container (`LxcBackup`, `LxcSnapshot`).
    type Item: Managed;
    /// What one item is called in events and conditions (`backup`, `snapshot`).
    const ITEM: &'static str;
    /// What every schedule kind's spec says.
    fn common(&self) -> &ScheduleCommon;
    /// Whether the schedule covers `ct` beyond the selector and the cluster (default: yes).
    fn covers(&self, _ctx: &Context, _ct: &LxcContainer) -> bool {
        true
    }
    /// The item of `ct`, with the metadata the pass made (name, labels, owner, slot).
    fn item(&self, ct: &LxcContainer, meta: ObjectMeta) -> Self::Item;
    /// How `item` stands.
    fn state(item: &Self::Item) -> ItemState;
}

/// The controller of schedule kind `K` in one namespace (or all), and its cache.
pub fn controller<K: ScheduleKind>(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, kube::runtime::reflector::Store<K>) {
    let (schedules, items): (Api<K>, Api<K::Item>) = match namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let ctl = Controller::new(schedules, crate::controller::kernel::wiring::cache_watch_config());
    let store = ctl.store();
    let run = ctl
        .owns(items, crate::controller::kernel::wiring::cache_watch_config())
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_millis(200)))
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|_| async {});
    (Box::pin(run), store)
}

/// Reconciles one schedule (a failed pass shows `Synced=False` naming it).
pub async fn reconcile<K: ScheduleKind>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&*obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy<K: ScheduleKind>(obj: Arc<K>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

/// What the pass reads of one item of kind `K`.
fn item_of<K: ScheduleKind>(o: &K::Item) -> Item {
    let st = K::state(o);
    let slot = o
        .annotations()
        .get(ANNOTATION_SCHEDULED_AT)
        .and_then(|s| s.parse::<Timestamp>().ok());
    Item {
        name: o.name_any(),
        container: st.container,
        slot,
        time: slot
            .or(st.completed_at)
            .or_else(|| o.meta().creation_timestamp.as_ref().map(|t| t.0)),
        outcome: st.outcome,
        protected: st.protected,
    }
}

async fn reconcile_inner<K: ScheduleKind>(obj: &K, ctx: &Context) -> Result<Action, Error> {
    if obj.meta().deletion_timestamp.is_some() {
        // the items are owned by the schedule: the garbage collector deletes them
        return Ok(Action::await_change());
    }
    let plan = obj.common();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &ns);
    let items_api: Api<K::Item> = Api::namespaced(ctx.kube.clone(), &ns);
    // the newest status known: ours while the watch cache has not seen our last write
    let uid = obj.uid().unwrap_or_default();
    let written = K::cache(ctx).current(&uid, obj.status_of());
    let mut status = written.clone().unwrap_or_default();
    let gen = obj.meta().generation;
    let now_wall = Time(Timestamp::now());
    let clock: ScheduleClock = ctx.settings.schedule_clock;
    let now = clock.now();
    let (tz, sched) = match super::parse(&plan.schedule, plan.time_zone.as_deref()) {
        Ok(x) => x,
        Err(msg) => {
            let was = conditions::get(&status.conditions, CONDITION_READY).map(|c| c.message.clone());
            conditions::set(
                &mut status.conditions,
                CondSpec::no(CONDITION_READY, Reason::InvalidSchedule, msg.clone()),
                gen,
                &now_wall,
            );
            status.next_schedule_time = None;
            status.observed_generation = gen;
            save(&api, obj, ctx, &written, &status).await?;
            if was.as_deref() != Some(msg.as_str()) {
                ctx.event(obj, true, Reason::InvalidSchedule.as_str(), msg).await;
            }
            return Ok(Action::await_change());
        }
    };
    let last = status.last_schedule_time.as_ref().map(|t| t.0);
    let created = obj.creation_timestamp().map(|t| clock.at(t.0));
    let due = super::due_slot(&sched, &tz, now, last, created);
    if let (Some(slot), false) = (&due, plan.suspend) {
        let made = run_slot(obj, ctx, &items_api, slot, sched.has_seconds()).await?;
        status.last_schedule_time = Some(Time(slot.timestamp()));
        let msg = format!(
            "slot {slot}: {} {}(s) created: {}",
            made.len(),
            K::ITEM,
            made.join(", ")
        );
        ctx.event(obj, false, Reason::Scheduled.as_str(), msg).await;
    }
    let next = sched.next_after(now, &tz);
    status.next_schedule_time = next.as_ref().map(|z| Time(z.timestamp()));
    // what exists now: the live items this schedule owns
    let sel = format!("{LABEL_SCHEDULE}={}", super::label_value(&name));
    let items: Vec<Item> = items_api
        .list(&ListParams::default().labels(&sel))
        .await?
        .items
        .iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .filter(|o| o.owner_references().iter().any(|r| r.uid == uid))
        .map(item_of::<K>)
        .collect();
    let gone = super::removals(&items, plan.retention.as_ref(), &tz, KEEP_FAILED);
    for n in &gone {
        match items_api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !gone.is_empty() {
        let msg = format!("retention deleted {}", gone.join(", "));
        ctx.event(obj, false, Reason::Pruned.as_str(), msg).await;
    }
    let live: Vec<&Item> = items.iter().filter(|i| !gone.contains(&i.name)).collect();
    status.active = super::active(live.iter().copied())
        .into_iter()
        .map(|name| LocalObjectRef { name })
        .collect();
    if let Some(t) = super::last_successful(live.iter().copied()) {
        if status.last_successful_time.as_ref().is_none_or(|l| l.0 < t) {
            status.last_successful_time = Some(Time(t));
        }
    }
    let cond = super::readiness(next.as_ref(), plan.suspend, &plan.schedule, K::ITEM);
    conditions::set(&mut status.conditions, cond, gen, &now_wall);
    status.observed_generation = gen;
    save(&api, obj, ctx, &written, &status).await?;
    Ok(match next {
        Some(n) => {
            Action::requeue((clock.until(n.timestamp()) + Duration::from_millis(20)).min(Duration::from_secs(300)))
        }
        None => Action::await_change(),
    })
}

async fn save<K: ScheduleKind>(
    api: &Api<K>,
    obj: &K,
    ctx: &Context,
    written: &Option<ScheduleStatus>,
    status: &ScheduleStatus,
) -> Result<(), Error> {
    if written.as_ref() != Some(status) {
        apply_status(api, obj, status).await.op("write status")?;
        ctx.metrics.kube_write(K::KIND);
        K::cache(ctx).record(&obj.uid().unwrap_or_default(), status);
    }
    Ok(())
}

/// Creates the slot's items (existing ones count as made); returns their names.
async fn run_slot<K: ScheduleKind>(
    obj: &K,
    ctx: &Context,
    api: &Api<K::Item>,
    slot: &Zoned,
    seconds: bool,
) -> Result<Vec<String>, Error> {
    let plan = obj.common();
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let cluster = ctx.clusters.referenced(plan.cluster_ref.as_ref()).name;
    let containers: Api<LxcContainer> = Api::namespaced(ctx.kube.clone(), &ns);
    let list = containers
        .list(&ListParams::default().labels(&super::selector_string(&plan.selector)))
        .await?;
    let owner = obj.controller_owner_ref(&());
    let mut made = Vec::new();
    for ct in list.items.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        // observed containers are never touched: ObserveOnly is read-only
        if ctx.clusters.of_container(ct).name != cluster || ct.spec.management != Management::Full {
            continue;
        }
        if !obj.covers(ctx, ct) {
            continue;
        }
        let iname = super::item_name(&name, &ct.name_any(), slot, seconds);
        let meta = ObjectMeta {
            name: Some(iname.clone()),
            namespace: Some(ns.clone()),
            labels: Some(
                [
                    (LABEL_SCHEDULE.to_string(), super::label_value(&name)),
                    (LABEL_CONTAINER.to_string(), super::label_value(&ct.name_any())),
                ]
                .into(),
            ),
            annotations: Some([(ANNOTATION_SCHEDULED_AT.to_string(), slot.timestamp().to_string())].into()),
            owner_references: owner.clone().map(|o| vec![o]),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &obj.item(ct, meta)).await {
            Ok(_) => ctx.metrics.kube_write(<K::Item as Managed>::KIND),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        made.push(iname);
    }
    Ok(made)
}
