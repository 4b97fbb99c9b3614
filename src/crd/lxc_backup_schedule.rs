//! `LxcBackupSchedule`: when to back up which containers, where, and how many to keep.

use super::common::*;
use super::lxc_backup::{BackupMode, Compression};
pub use super::schedule::{Retention, ScheduleCommon, ScheduleStatus};
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
    /// Which containers, when, and how many backups to keep.
    #[serde(flatten)]
    pub common: ScheduleCommon,
    /// Target storage (content `backup`).
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: String,
    /// Backup mode: `snapshot` (default), `suspend` or `stop`.
    #[serde(default)]
    pub mode: BackupMode,
    /// Archive compression: `zstd` (default), `gzip`, `lzo` or `none`.
    #[serde(default)]
    pub compress: Compression,
    /// Only containers in this Proxmox pool (their `spec.pool`, or their tenant's pool), in
    /// addition to the selector (an empty selector then means: every container of the pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = POOL_PATTERN))]
    pub pool: Option<String>,
    /// Proxmox options of each `vzdump` (a protected backup is never removed by retention).
    #[serde(flatten)]
    pub options: super::lxc_backup::BackupOptions,
}

/// Observed state of a schedule.
pub type LxcBackupScheduleStatus = ScheduleStatus;
