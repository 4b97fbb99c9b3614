//! `LxcBackupSchedule`: when to back up which containers, where, and how many to keep.

use super::common::*;
use super::lxc_backup::{BackupMode, Compression};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A backup schedule over the `LxcContainer`s that match a label selector (the Velero model):
/// each slot creates one `LxcBackup` per container; retention prunes old ones.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcBackupSchedule",
    namespaced,
    doc = "When to back up which LxcContainers (label selector), where, and how many backups to keep.",
    shortname = "lxcbs",
    category = "proxmox",
    status = "LxcBackupScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcBackupScheduleSpec {
    /// The `ProxmoxCluster` (same namespace); `default` when omitted.
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
    /// Which `LxcContainer`s of this namespace to back up.
    pub selector: LabelSelector,
    /// Target storage (content `backup`).
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: String,
    /// Backup mode.
    #[serde(default)]
    pub mode: BackupMode,
    /// Compression.
    #[serde(default)]
    pub compress: Compression,
    /// How many backups to keep, with Proxmox's prune semantics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Pause the schedule (running backups finish).
    #[serde(default)]
    pub suspend: bool,
    /// Only containers in this Proxmox pool (their `spec.pool`, or their tenant's pool), in
    /// addition to the selector (an empty selector then means: every container of the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = POOL_PATTERN))]
    pub pool: Option<String>,
    /// Proxmox options of each `vzdump` (a protected backup is never removed by retention).
    #[serde(flatten)]
    pub options: super::lxc_backup::BackupOptions,
}

/// Retention, as Proxmox's `prune-backups`. Only completed backups count; the newest is never pruned.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the last N backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_last: Option<u32>,
    /// Keep the last backup of each of the last N hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_hourly: Option<u32>,
    /// Keep the last backup of each of the last N days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_daily: Option<u32>,
    /// Keep the last backup of each of the last N weeks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_weekly: Option<u32>,
    /// Keep the last backup of each of the last N months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_monthly: Option<u32>,
    /// Keep the last backup of each of the last N years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub keep_yearly: Option<u32>,
}

/// Observed state of a schedule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcBackupScheduleStatus {
    /// When the last slot ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next slot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The newest slot whose backups all completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// Backups of this schedule not finished yet.
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
