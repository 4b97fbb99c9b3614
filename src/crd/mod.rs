//! Kubernetes API types of group `pve.lxc.dev`, version `v1alpha1`: one file per kind.

pub mod app;
pub mod bounds;
pub mod common;
pub mod docs;
pub mod firewall;
pub mod ha;
pub mod lxc_backup;
pub mod lxc_backup_schedule;
pub mod lxc_container;
pub mod lxc_snapshot;
pub mod lxc_snapshot_schedule;
pub mod lxc_template;
pub mod mounts;
pub mod proxmox_cluster;
pub mod proxmox_tenant;
pub mod schedule;

pub use common::*;
pub use lxc_backup::{LxcBackup, LxcBackupSpec, LxcBackupStatus};
pub use lxc_backup_schedule::{LxcBackupSchedule, LxcBackupScheduleSpec, LxcBackupScheduleStatus};
pub use lxc_container::{LxcContainer, LxcContainerSpec, LxcContainerStatus};
pub use lxc_snapshot::{LxcSnapshot, LxcSnapshotSpec, LxcSnapshotStatus};
pub use lxc_snapshot_schedule::{LxcSnapshotSchedule, LxcSnapshotScheduleSpec, LxcSnapshotScheduleStatus};
pub use lxc_template::{LxcTemplate, LxcTemplateSpec, LxcTemplateStatus};
pub use proxmox_cluster::{ProxmoxCluster, ProxmoxClusterSpec, ProxmoxClusterStatus, Tenancy};
pub use proxmox_tenant::{ProxmoxTenant, ProxmoxTenantSpec, ProxmoxTenantStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD of the API, in a stable order, each with the file name it has under `crds/`.
pub fn all_crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("proxmoxcluster.yaml", ProxmoxCluster::crd()),
        ("proxmoxtenant.yaml", ProxmoxTenant::crd()),
        ("lxccontainer.yaml", LxcContainer::crd()),
        ("lxctemplate.yaml", LxcTemplate::crd()),
        ("lxcbackupschedule.yaml", LxcBackupSchedule::crd()),
        ("lxcbackup.yaml", LxcBackup::crd()),
        ("lxcsnapshot.yaml", LxcSnapshot::crd()),
        ("lxcsnapshotschedule.yaml", LxcSnapshotSchedule::crd()),
    ]
}

/// Renders one CRD as a YAML document (starting with `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("---\n{}", serde_saphyr::to_string(crd)?))
}

/// Renders every CRD as one multi-document YAML stream: the concatenation of the files in `crds/`.
pub fn all_crds_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::new();
    for (_, crd) in all_crds() {
        out.push_str(&crd_yaml(&crd)?);
    }
    Ok(out)
}
