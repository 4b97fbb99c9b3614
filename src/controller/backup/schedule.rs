//! The `LxcBackupSchedule` controller.
//!
//! Each pass: the latest slot at or before now (schedule clock, see [`ScheduleClock`](super::ScheduleClock)) that is
//! newer than `status.lastScheduleTime` (or than the schedule's creation) is run — so slots
//! missed while the operator was down run once, not once per slot. Running a slot creates one
//! `LxcBackup` per matching `LxcContainer` (same namespace, same `ProxmoxCluster`), named
//! `<schedule>-<container>-<yyyymmddhhmm[ss]>` (shortened with a hash to 63 characters),
//! owned by the schedule and labelled with both names; creating is idempotent by name. Then
//! retention prunes the schedule's Completed backups per container (Proxmox semantics; the
//! newest is never pruned) by deleting the `LxcBackup` objects, whose finalizer deletes the
//! archives; of Failed backups the newest [`KEEP_FAILED`] per container are kept. The pass
//! requeues itself for the next slot.

use super::calendar::{self, Schedule};
use super::{prune, ANNOTATION_SCHEDULED_AT, LABEL_CONTAINER, LABEL_SCHEDULE};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::Context;
use crate::controller::error::KubeOp;
use crate::controller::kernel::{Managed, Reason, StatusCache, WakeRoutes};
use crate::controller::run::ControllerFuture;
use crate::controller::status::apply_status;
use crate::controller::Error;
use crate::crd::lxc_backup::{BackupPhase, LxcBackup, LxcBackupSpec};
use crate::crd::lxc_backup_schedule::{LxcBackupSchedule, LxcBackupScheduleStatus};
use crate::crd::lxc_container::{LxcContainer, Management};
use crate::crd::{DeletionPolicy, LocalObjectRef, CONDITION_READY};
use futures::StreamExt;
use jiff::{Timestamp, Zoned};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::{watcher, Controller};
use kube::{Api, Client, Resource, ResourceExt};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Failed backups kept per container and schedule (newest first); older ones are deleted.
pub const KEEP_FAILED: usize = 3;

/// The `LxcBackupSchedule` controller of one namespace (or all), and its cache.
pub fn controller(
    client: &Client,
    namespace: Option<&str>,
    ctx: Arc<Context>,
) -> (ControllerFuture, kube::runtime::reflector::Store<LxcBackupSchedule>) {
    let (schedules, backups): (Api<LxcBackupSchedule>, Api<LxcBackup>) = match namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let ctl = Controller::new(schedules, watcher::Config::default());
    let store = ctl.store();
    let run = ctl
        .owns(backups, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().debounce(Duration::from_millis(200)))
        .graceful_shutdown_on(ctx.shutdown.triggered())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    (Box::pin(run), store)
}

impl Managed for LxcBackupSchedule {
    type Status = LxcBackupScheduleStatus;
    const KIND: &'static str = "LxcBackupSchedule";

    fn status_of(&self) -> Option<&LxcBackupScheduleStatus> {
        self.status.as_ref()
    }
    fn conditions(
        s: &mut LxcBackupScheduleStatus,
    ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        &mut s.conditions
    }
    fn observed_generation(s: &mut LxcBackupScheduleStatus) -> &mut Option<i64> {
        &mut s.observed_generation
    }
    fn cache(ctx: &Context) -> &StatusCache<LxcBackupScheduleStatus> {
        &ctx.status.schedules
    }
    fn wakes(ctx: &Context) -> &WakeRoutes<LxcBackupSchedule> {
        &ctx.wakes.schedules
    }
}

/// Reconciles one `LxcBackupSchedule` (a failed pass shows `Synced=False` naming it).
pub async fn reconcile(obj: Arc<LxcBackupSchedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcBackupSchedule>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

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

/// The name of the backup of `container` made by `schedule` for `slot`:
/// `<schedule>-<container>-<yyyymmddhhmm>` (`…ss` for sub-minute schedules), at most 63
/// characters (the front is shortened and a hash of it added when needed).
pub fn backup_name(schedule: &str, container: &str, slot: &Zoned, seconds: bool) -> String {
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

/// The time a backup counts as made at: its slot, else its completion, else its creation.
fn backup_time(b: &LxcBackup) -> Option<Timestamp> {
    b.annotations()
        .get(ANNOTATION_SCHEDULED_AT)
        .and_then(|s| s.parse().ok())
        .or_else(|| b.status.as_ref().and_then(|s| s.completed_at.as_ref()).map(|t| t.0))
        .or_else(|| b.creation_timestamp().map(|t| t.0))
}

async fn reconcile_inner(obj: &LxcBackupSchedule, ctx: &Context) -> Result<Action, Error> {
    if obj.metadata.deletion_timestamp.is_some() {
        // the backups are owned by the schedule: the garbage collector deletes them
        return Ok(Action::await_change());
    }
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<LxcBackupSchedule> = Api::namespaced(ctx.kube.clone(), &ns);
    let backups_api: Api<LxcBackup> = Api::namespaced(ctx.kube.clone(), &ns);
    // the newest status known: ours while the watch cache has not seen our last write
    let uid = obj.uid().unwrap_or_default();
    let written = ctx.status.schedules.current(&uid, obj.status.as_ref());
    let mut status = written.clone().unwrap_or_default();
    let gen = obj.metadata.generation;
    let now_wall = Time(Timestamp::now());
    let clock = ctx.settings.schedule_clock;
    let now = clock.now();
    let parsed = calendar::time_zone(obj.spec.time_zone.as_deref()).and_then(|tz| {
        Schedule::parse(&obj.spec.schedule)
            .map(|s| (tz, s))
            .map_err(|e| e.to_string())
    });
    let (tz, sched) = match parsed {
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
    // the slot due now, if any (missed slots collapse into the latest one)
    let anchor = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| obj.creation_timestamp().map(|t| clock.at(t.0)))
        .unwrap_or(now);
    let due = sched.last_at_or_before(now, &tz).filter(|s| s.timestamp() > anchor);
    if let (Some(slot), false) = (&due, obj.spec.suspend) {
        let made = run_slot(obj, ctx, &backups_api, slot, sched.has_seconds()).await?;
        status.last_schedule_time = Some(Time(slot.timestamp()));
        ctx.event(
            obj,
            false,
            Reason::Scheduled.as_str(),
            format!("slot {slot}: {} backup(s) created: {}", made.len(), made.join(", ")),
        )
        .await;
    }
    let next = sched.next_after(now, &tz);
    status.next_schedule_time = next.as_ref().map(|z| Time(z.timestamp()));
    // what exists now
    let sel = format!("{LABEL_SCHEDULE}={}", label_value(&name));
    let list: Vec<LxcBackup> = backups_api
        .list(&ListParams::default().labels(&sel))
        .await?
        .items
        .into_iter()
        .filter(|b| b.metadata.deletion_timestamp.is_none())
        .collect();
    let pruned = retention(obj, &backups_api, &list, &tz).await?;
    if !pruned.is_empty() {
        ctx.event(
            obj,
            false,
            Reason::Pruned.as_str(),
            format!("retention deleted {}", pruned.join(", ")),
        )
        .await;
    }
    let live: Vec<&LxcBackup> = list.iter().filter(|b| !pruned.contains(&b.name_any())).collect();
    let mut active: Vec<String> = live
        .iter()
        .filter(|b| {
            !matches!(
                b.status.as_ref().and_then(|s| s.phase),
                Some(BackupPhase::Completed | BackupPhase::Failed)
            )
        })
        .map(|b| b.name_any())
        .collect();
    active.sort();
    status.active = active.into_iter().map(|name| LocalObjectRef { name }).collect();
    // the newest slot whose backups all completed
    let mut slots: BTreeMap<Timestamp, Vec<Option<BackupPhase>>> = BTreeMap::new();
    for b in &live {
        if let Some(t) = b
            .annotations()
            .get(ANNOTATION_SCHEDULED_AT)
            .and_then(|s| s.parse::<Timestamp>().ok())
        {
            slots
                .entry(t)
                .or_default()
                .push(b.status.as_ref().and_then(|s| s.phase));
        }
    }
    if let Some(t) = slots
        .iter()
        .rev()
        .find(|(_, ps)| ps.iter().all(|p| *p == Some(BackupPhase::Completed)))
        .map(|(t, _)| *t)
    {
        if status.last_successful_time.as_ref().is_none_or(|l| l.0 < t) {
            status.last_successful_time = Some(Time(t));
        }
    }
    let cond = match (&next, obj.spec.suspend) {
        (_, true) => CondSpec::yes(
            CONDITION_READY,
            Reason::Suspended,
            "suspended: no new backups are made (retention still applies)",
        ),
        (Some(n), false) => CondSpec::yes(CONDITION_READY, Reason::Scheduled, format!("next run at {n}")),
        (None, false) => CondSpec::no(
            CONDITION_READY,
            Reason::NoNextRun,
            format!("schedule {:?} has no run in the next 8 years", obj.spec.schedule),
        ),
    };
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

async fn save(
    api: &Api<LxcBackupSchedule>,
    obj: &LxcBackupSchedule,
    ctx: &Context,
    written: &Option<LxcBackupScheduleStatus>,
    status: &LxcBackupScheduleStatus,
) -> Result<(), Error> {
    if written.as_ref() != Some(status) {
        apply_status(api, obj, status).await.op("write status")?;
        ctx.metrics.kube_write("LxcBackupSchedule");
        ctx.status.schedules.record(&obj.uid().unwrap_or_default(), status);
    }
    Ok(())
}

/// Creates the slot's backups (existing ones count as made); returns their names.
async fn run_slot(
    obj: &LxcBackupSchedule,
    ctx: &Context,
    api: &Api<LxcBackup>,
    slot: &Zoned,
    seconds: bool,
) -> Result<Vec<String>, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let cluster = ctx.clusters.referenced(obj.spec.cluster_ref.as_ref()).name;
    let containers: Api<LxcContainer> = Api::namespaced(ctx.kube.clone(), &ns);
    let list = containers
        .list(&ListParams::default().labels(&selector_string(&obj.spec.selector)))
        .await?;
    let owner = obj.controller_owner_ref(&());
    let mut made = Vec::new();
    for ct in list.items.iter().filter(|c| c.metadata.deletion_timestamp.is_none()) {
        // observed containers are never backed up: ObserveOnly is read-only
        if ctx.clusters.of_container(ct).name != cluster || ct.spec.management != Management::Full {
            continue;
        }
        if obj.spec.pool.is_some() && pool_of(ctx, ct) != obj.spec.pool {
            continue;
        }
        let bname = backup_name(&name, &ct.name_any(), slot, seconds);
        let backup = LxcBackup {
            metadata: ObjectMeta {
                name: Some(bname.clone()),
                namespace: Some(ns.clone()),
                labels: Some(
                    [
                        (LABEL_SCHEDULE.to_string(), label_value(&name)),
                        (LABEL_CONTAINER.to_string(), label_value(&ct.name_any())),
                    ]
                    .into(),
                ),
                annotations: Some([(ANNOTATION_SCHEDULED_AT.to_string(), slot.timestamp().to_string())].into()),
                owner_references: owner.clone().map(|o| vec![o]),
                ..Default::default()
            },
            spec: LxcBackupSpec {
                container_ref: LocalObjectRef { name: ct.name_any() },
                storage: Some(obj.spec.storage.clone()),
                mode: obj.spec.mode,
                compress: obj.spec.compress,
                notes: Some(format!("{{{{guestname}}}} by LxcBackupSchedule {ns}/{name}")),
                deletion_policy: DeletionPolicy::Delete,
                options: obj.spec.options.clone(),
            },
            status: None,
        };
        match api.create(&PostParams::default(), &backup).await {
            Ok(_) => ctx.metrics.kube_write("LxcBackup"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        made.push(bname);
    }
    Ok(made)
}

/// The Proxmox pool a container is in: its `spec.pool`, else its tenant's pool.
fn pool_of(ctx: &Context, ct: &LxcContainer) -> Option<String> {
    if ct.spec.pool.is_some() {
        return ct.spec.pool.clone();
    }
    let ns = ct.namespace().unwrap_or_default();
    let labels = ctx.tenancy.labels(&ns);
    crate::controller::tenancy::policy::tenant_of(&ns, labels.as_ref(), &ctx.tenancy.tenants())
        .ok()
        .flatten()
        .and_then(|t| t.spec.pool.clone())
}

/// Applies retention per container; returns the names of the backups deleted.
async fn retention(
    obj: &LxcBackupSchedule,
    api: &Api<LxcBackup>,
    list: &[LxcBackup],
    tz: &jiff::tz::TimeZone,
) -> Result<Vec<String>, Error> {
    let mut by_container: BTreeMap<String, Vec<&LxcBackup>> = BTreeMap::new();
    for b in list {
        by_container
            .entry(b.spec.container_ref.name.clone())
            .or_default()
            .push(b);
    }
    let mut gone = Vec::new();
    for backups in by_container.values() {
        if let Some(policy) = &obj.spec.retention {
            let completed: Vec<(String, Timestamp)> = backups
                .iter()
                .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Completed))
                // protected backups are never pruned and do not count (Proxmox's rule)
                .filter(|b| !b.spec.options.protected)
                .filter_map(|b| Some((b.name_any(), backup_time(b)?)))
                .collect();
            gone.extend(prune::to_remove(&completed, policy, tz));
        }
        let mut failed: Vec<(Timestamp, String)> = backups
            .iter()
            .filter(|b| b.status.as_ref().and_then(|s| s.phase) == Some(BackupPhase::Failed))
            .filter_map(|b| Some((backup_time(b)?, b.name_any())))
            .collect();
        failed.sort_by(|a, b| b.cmp(a));
        gone.extend(failed.into_iter().skip(KEEP_FAILED).map(|(_, n)| n));
    }
    for n in &gone {
        match api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn slot(s: &str) -> Zoned {
        s.parse::<Timestamp>().unwrap().to_zoned(jiff::tz::TimeZone::UTC)
    }

    #[test]
    fn backup_names_carry_schedule_container_and_slot_and_fit_63_characters() {
        assert_eq!(
            backup_name("nightly", "web", &slot("2026-03-02T02:00:00Z"), false),
            "nightly-web-202603020200"
        );
        assert_eq!(
            backup_name("fast", "web", &slot("2026-03-02T02:00:05Z"), true),
            "fast-web-20260302020005"
        );
        let long = backup_name(&"s".repeat(40), &"c-".repeat(20), &slot("2026-03-02T02:00:00Z"), false);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-202603020200"), "{long}");
        assert!(!long.contains("--"), "{long}");
        let other = backup_name(&"s".repeat(40), &"c-".repeat(21), &slot("2026-03-02T02:00:00Z"), false);
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
}
