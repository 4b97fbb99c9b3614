//! `LxcBackup`: one backup of one container, made by a schedule or by hand.

use super::common::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One `vzdump` backup of one `LxcContainer`. Restore from it with
/// `LxcContainer.spec.source.backup.name`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcBackup",
    namespaced,
    doc = "One vzdump backup of one LxcContainer, made by a schedule or on demand; status holds the archive volid, size and times.",
    shortname = "lxcb",
    category = "proxmox",
    status = "LxcBackupStatus",
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.containerRef.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Size","type":"string","jsonPath":".status.size"}"#,
    printcolumn = r#"{"name":"Completed","type":"date","jsonPath":".status.completedAt"}"#,
    printcolumn = r#"{"name":"Volid","type":"string","priority":1,"jsonPath":".status.volid"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcBackupSpec {
    /// The `LxcContainer` (same namespace) to back up.
    pub container_ref: LocalObjectRef,
    /// Target storage (content `backup`). When omitted, a storage with content `backup` on the
    /// container's node: a shared one first, then `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: Option<String>,
    /// Backup mode: `snapshot` (default; live, no downtime where the storage supports it),
    /// `suspend` or `stop` (the container is suspended or stopped while copying).
    #[serde(default)]
    pub mode: BackupMode,
    /// Archive compression: `zstd` (default), `gzip`, `lzo` or `none`.
    #[serde(default)]
    pub compress: Compression,
    /// Notes stored with the archive (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = SINGLE_LINE_PATTERN))]
    pub notes: Option<String>,
    /// What happens to the archive when this object is deleted: `Delete` (default) or `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Proxmox options of the `vzdump`.
    #[serde(flatten)]
    pub options: BackupOptions,
}

/// The `vzdump` options Proxmox VE 9 users expect, shared by `LxcBackup` and
/// `LxcBackupSchedule`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupOptions {
    /// Mark the archive protected in Proxmox: neither Proxmox's pruning nor a schedule's
    /// retention removes it (deleting this object still does, unless `deletionPolicy: Retain`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Fleecing: the container's writes during the backup go to a fleecing image on this
    /// storage, so a slow backup target does not slow the container down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub fleecing_storage: Option<String>,
    /// Change detection for Proxmox Backup Server targets (`Metadata` is the fastest for
    /// containers with many unchanged files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pbs_change_detection_mode: Option<PbsChangeDetection>,
}

/// How a PBS backup finds what changed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PbsChangeDetection {
    /// Read every file (the classic archive format).
    Legacy,
    /// Read every file, split data and metadata archives.
    Data,
    /// Reuse unchanged files by their metadata from the previous snapshot.
    Metadata,
}

impl BackupOptions {
    /// The Proxmox `pbs-change-detection-mode` value.
    pub fn pbs_mode(&self) -> Option<&'static str> {
        self.pbs_change_detection_mode.map(|m| match m {
            PbsChangeDetection::Legacy => "legacy",
            PbsChangeDetection::Data => "data",
            PbsChangeDetection::Metadata => "metadata",
        })
    }

    /// The Proxmox `fleecing` property string.
    pub fn fleecing(&self) -> Option<String> {
        self.fleecing_storage.as_ref().map(|s| format!("enabled=1,storage={s}"))
    }
}

/// `vzdump` mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// Live snapshot (no downtime where the storage supports it).
    #[default]
    Snapshot,
    /// Suspend the container while copying.
    Suspend,
    /// Stop the container while copying.
    Stop,
}

/// Archive compression.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard.
    #[default]
    Zstd,
    /// gzip.
    Gzip,
    /// LZO.
    Lzo,
    /// No compression.
    None,
}

/// Phase of a backup.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackupPhase {
    /// Waiting for its turn (one vzdump per node at a time).
    Pending,
    /// vzdump is running.
    Running,
    /// The archive exists.
    Completed,
    /// vzdump failed (see conditions for the task's error text).
    Failed,
}

/// Observed state of a backup.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcBackupStatus {
    /// Phase: Pending, Running, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupPhase>,
    /// Archive volume id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volid: Option<String>,
    /// Archive size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Archive size in binary units, e.g. `375.4Mi` (the `Size` column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// vmid of the container backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Node the backup ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The `ProxmoxCluster` the backup was made in; deletion uses it even when
    /// the container is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The storage the archive is written to (the spec's, or the one chosen when it names none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// When vzdump started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When vzdump finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The vzdump task's UPID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upid: Option<String>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}
