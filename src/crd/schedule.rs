//! What the schedule kinds (`LxcBackupSchedule`, `LxcSnapshotSchedule`) share in their spec
//! and status.

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which containers a schedule covers, when it runs and how many of what it makes it keeps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleCommon {
    /// The `ProxmoxCluster` (cluster-scoped); when omitted, the one annotated
    /// `pve.lxc.dev/is-default-cluster: "true"`, else the one named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// When to run: a 5-field cron expression (`0 2 * * *`, `@daily`) or a Proxmox calendar
    /// event (`daily`, `mon..fri 02:30`, `sat *-1..7 15:00`, `*/5`; `daily 02:00` also works).
    /// Slots missed while the operator was down run once at start.
    #[schemars(length(min = 1, max = 128), regex(pattern = SINGLE_LINE_PATTERN))]
    pub schedule: String,
    /// IANA time zone the schedule is read in. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[A-Za-z0-9_+/-]+$"))]
    pub time_zone: Option<String>,
    /// Which `LxcContainer`s of this namespace the schedule covers (at most 64 `matchLabels`
    /// and 16 `matchExpressions` of at most 64 values).
    #[schemars(schema_with = "bounded_label_selector")]
    pub selector: LabelSelector,
    /// How many to keep per container, with Proxmox's prune semantics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Pause the schedule (what runs finishes; retention still applies).
    #[serde(default)]
    pub suspend: bool,
}

/// Retention, as Proxmox's `prune-backups`, of the backups (or snapshots) a schedule made. Only
/// completed ones count; the newest is never pruned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the last N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_last: Option<u32>,
    /// Keep the last one of each of the last N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_hourly: Option<u32>,
    /// Keep the last one of each of the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_daily: Option<u32>,
    /// Keep the last one of each of the last N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_weekly: Option<u32>,
    /// Keep the last one of each of the last N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_monthly: Option<u32>,
    /// Keep the last one of each of the last N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_yearly: Option<u32>,
}

/// Observed state of a schedule (`LxcBackupSchedule`, `LxcSnapshotSchedule`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// When the last slot ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next slot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The newest slot whose backups (or snapshots) all completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Backups (or snapshots) of this schedule not finished yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<LocalObjectRef>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}
