//! `LxcSnapshotSchedule`: when to snapshot which containers, and how many snapshots to keep.

use super::common::*;
use super::schedule::{ScheduleCommon, ScheduleStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A snapshot schedule over the `LxcContainer`s that match a label selector: each slot
/// creates one `LxcSnapshot` per container; retention deletes old ones (and so their
/// Proxmox snapshots).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcSnapshotSchedule",
    namespaced,
    doc = "When to snapshot which LxcContainers (label selector), and how many snapshots to keep.",
    shortname = "lxcss",
    category = "proxmox",
    status = "LxcSnapshotScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcSnapshotScheduleSpec {
    /// Which containers, when, and how many snapshots to keep.
    #[serde(flatten)]
    pub common: ScheduleCommon,
    /// A description stored with each snapshot (one line); by default it names the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024), regex(pattern = SINGLE_LINE_PATTERN))]
    pub description: Option<String>,
}

/// Observed state of a snapshot schedule.
pub type LxcSnapshotScheduleStatus = ScheduleStatus;
