//! `LxcSnapshot`: one Proxmox snapshot of one container, and explicit, recorded rollbacks to it.

use super::common::*;
use super::lxc_container::PendingTask;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Proxmox snapshot names (`pve-configid`, at most 40 characters).
pub const SNAPSHOT_NAME_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_-]{1,39}$";

/// One snapshot of one `LxcContainer` (disk and config, Proxmox `vzsnapshot`). Deleting the
/// object deletes the snapshot (`deletionPolicy: Retain` keeps it). Setting
/// `spec.rollback.request` to a new value rolls the container back to it once.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcSnapshot",
    namespaced,
    doc = "One Proxmox snapshot of one LxcContainer; rollbacks to it are explicit requests, each carried out once and recorded in status.",
    shortname = "lxcsnap",
    category = "proxmox",
    status = "LxcSnapshotStatus",
    printcolumn = r#"{"name":"Container","type":"string","jsonPath":".spec.containerRef.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Snapshot","type":"string","jsonPath":".status.snapshotName"}"#,
    printcolumn = r#"{"name":"Rolled back","type":"date","jsonPath":".status.rollback.completedAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcSnapshotSpec {
    /// The `LxcContainer` (same namespace, `management: Full`) to snapshot.
    pub container_ref: LocalObjectRef,
    /// The snapshot's name in Proxmox; `k8s-<metadata.name>` (shortened to 40 characters)
    /// when omitted. It cannot change once the snapshot exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40), regex(pattern = SNAPSHOT_NAME_PATTERN))]
    pub snapshot_name: Option<String>,
    /// A description stored with the snapshot (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = SINGLE_LINE_PATTERN))]
    pub description: Option<String>,
    /// What happens to the Proxmox snapshot when this object is deleted: `Delete` (default) or
    /// `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// A rollback to this snapshot, carried out once per `request` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRequest>,
}

/// An explicit rollback request. Safe under GitOps: re-applying the same manifest (the same
/// `request`) never rolls back again; a new value asks for one more rollback.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRequest {
    /// Any value not carried out yet, e.g. a date or a ticket id (`2026-12-02-incident-42`).
    #[schemars(length(min = 1, max = 128), regex(pattern = SINGLE_LINE_PATTERN))]
    pub request: String,
    /// Start the container after the rollback; by default it runs again when its
    /// `spec.state` is `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<bool>,
}

/// Where a snapshot is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SnapshotPhase {
    /// Not taken yet (waiting for its container, a task slot, ...).
    Pending,
    /// The `vzsnapshot` task runs.
    Creating,
    /// The snapshot exists.
    Ready,
    /// It could not be taken (the message says why); not retried.
    Failed,
}

/// What happened to the snapshot, and the last rollback to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcSnapshotStatus {
    /// The phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SnapshotPhase>,
    /// The `ProxmoxCluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The container's node when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The container's vmid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// The snapshot's name in Proxmox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_name: Option<String>,
    /// The uid of the `LxcContainer` it was taken of (one re-created under the same name is
    /// another container, without this snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_uid: Option<String>,
    /// When the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// The Proxmox task in flight (snapshot, rollback or delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_task: Option<PendingTask>,
    /// The last rollback carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`, `Synced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// A rollback carried out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStatus {
    /// The `spec.rollback.request` it carried out.
    pub request: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The snapshot rolled back to.
    pub snapshot_name: String,
}
