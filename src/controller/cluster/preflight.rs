//! Token preflight: which Proxmox privileges the objects that use a cluster need, and which of
//! them the token lacks (read with `GET /access/permissions`), so the cluster's status says so
//! before anything fails. [`required`] and [`missing`] are pure; [`usage_of`] reads the caches.

use crate::crd::proxmox_cluster::MissingPrivilege;
use crate::pve::Permissions;
use std::collections::BTreeSet;

/// What the objects that use one cluster do there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// `LxcContainer`s (managed, not `ObserveOnly`) or `LxcTemplate`s exist.
    pub containers: bool,
    /// Some container is cloned (`source.template` or `source.clone`).
    pub clones: bool,
    /// Storages disks are allocated on (root disks and mount points).
    pub disk_storages: BTreeSet<String>,
    /// Storages OCI images are pulled into (`source.image`).
    pub image_storages: BTreeSet<String>,
    /// Storages templates download images into (`LxcTemplate` with an appliance or a URL).
    pub template_storages: BTreeSet<String>,
    /// Backups are made (`LxcBackupSchedule`s or `LxcBackup`s exist).
    pub backups: bool,
    /// Storages backups are written to (when the objects name one).
    pub backup_storages: BTreeSet<String>,
    /// `LxcSnapshot`s or `LxcSnapshotSchedule`s exist, or a container is cloned from
    /// another (`source.clone`: a running source is cloned from a temporary snapshot).
    pub snapshots: bool,
    /// Some container has `spec.highAvailability` (HA resources and rules).
    pub high_availability: bool,
    /// Some container is privileged (`unprivileged: false`).
    pub privileged: bool,
    /// Containers may be moved: some has `spec.node`, or a node is in maintenance.
    pub migrations: bool,
    /// Bridges interfaces are attached to (Proxmox 8+ checks `SDN.Use` on them).
    pub bridges: BTreeSet<String>,
    /// Pods run here on virtual nodes: `kubectl logs` reads their consoles (`termproxy`).
    pub pod_logs: bool,
}

/// One privilege a feature needs, on one ACL path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// The feature, as shown in status (`containers`, `backups`, ...).
    pub feature: &'static str,
    /// The Proxmox privilege.
    pub privilege: &'static str,
    /// The ACL path.
    pub path: String,
}

fn need(out: &mut Vec<Need>, feature: &'static str, path: &str, privileges: &[&'static str]) {
    for p in privileges {
        out.push(Need {
            feature,
            privilege: p,
            path: path.to_string(),
        });
    }
}

fn on_storages(out: &mut Vec<Need>, feature: &'static str, storages: &BTreeSet<String>, privileges: &[&'static str]) {
    for s in storages {
        need(out, feature, &format!("/storage/{s}"), privileges);
    }
}

/// The privileges `usage` needs, in a stable order (the README's token role lists them all).
pub fn required(usage: &Usage) -> Vec<Need> {
    let mut out = Vec::new();
    need(&mut out, "inventory", "/", &["Sys.Audit"]);
    if usage.containers {
        need(
            &mut out,
            "containers",
            "/vms",
            &[
                "VM.Allocate",
                "VM.Audit",
                "VM.PowerMgmt",
                "VM.Config.CPU",
                "VM.Config.Memory",
                "VM.Config.Disk",
                "VM.Config.Network",
                "VM.Config.Options",
            ],
        );
        on_storages(
            &mut out,
            "containers",
            &usage.disk_storages,
            &["Datastore.AllocateSpace"],
        );
    }
    if usage.clones {
        need(&mut out, "clones", "/vms", &["VM.Clone"]);
    }
    on_storages(
        &mut out,
        "ociImages",
        &usage.image_storages,
        &["Datastore.AllocateTemplate"],
    );
    if !usage.image_storages.is_empty() {
        need(&mut out, "ociImages", "/nodes", &["Sys.AccessNetwork"]);
    }
    on_storages(
        &mut out,
        "templates",
        &usage.template_storages,
        &["Datastore.AllocateTemplate"],
    );
    if usage.backups {
        need(&mut out, "backups", "/vms", &["VM.Backup"]);
    }
    on_storages(
        &mut out,
        "backups",
        &usage.backup_storages,
        &["Datastore.AllocateSpace", "Datastore.Audit"],
    );
    if usage.snapshots {
        need(&mut out, "snapshots", "/vms", &["VM.Snapshot"]);
    }
    if usage.privileged {
        // pve-container 6.0.6 (PVE 9): creating or restoring a privileged container
        need(&mut out, "privileged", "/", &["Sys.Modify"]);
    }
    if usage.migrations {
        need(&mut out, "migrations", "/vms", &["VM.Migrate"]);
    }
    for b in &usage.bridges {
        // plain Linux bridges are the `localnetwork` zone's vnets
        need(
            &mut out,
            "network",
            &format!("/sdn/zones/localnetwork/{b}"),
            &["SDN.Use"],
        );
    }
    if usage.pod_logs {
        // pve-container API2/LXC.pm termproxy and vncwebsocket: VM.Console on /vms/{vmid}
        need(&mut out, "podLogs", "/vms", &["VM.Console"]);
    }
    if usage.high_availability {
        // PVE/API2/HA/*.pm: changes need Sys.Console on /, reads Sys.Audit (the inventory's)
        need(&mut out, "highAvailability", "/", &["Sys.Console"]);
    }
    out
}

/// The needs that `granted` does not cover.
pub fn missing(needs: &[Need], granted: &Permissions) -> Vec<MissingPrivilege> {
    needs
        .iter()
        .filter(|n| !granted.allows(&n.path, n.privilege))
        .map(|n| MissingPrivilege {
            feature: n.feature.to_string(),
            privilege: n.privilege.to_string(),
            path: n.path.clone(),
        })
        .collect()
}

/// One line for the condition: what is missing, feature by feature.
pub fn summary(missing: &[MissingPrivilege]) -> String {
    if missing.is_empty() {
        return "the token holds every privilege the objects using this cluster need".into();
    }
    let list: Vec<String> = missing
        .iter()
        .map(|m| format!("{} on {} (for {})", m.privilege, m.path, m.feature))
        .collect();
    format!("the token lacks {}", list.join(", "))
}

/// What the cached objects that use cluster `key` need there.
pub fn usage_of(ctx: &crate::controller::context::Context, key: &super::ClusterKey) -> Usage {
    use crate::crd::lxc_container::Management;
    use kube::ResourceExt;
    let views = &ctx.tenancy;
    let mut u = Usage::default();
    let containers = views.all_containers();
    let by_name: std::collections::HashMap<(Option<String>, String), super::ClusterKey> = containers
        .iter()
        .map(|c| ((c.namespace(), c.name_any()), ctx.clusters.of_container(c)))
        .collect();
    let cluster_of = |ns: Option<String>, name: &str| {
        by_name
            .get(&(ns, name.to_string()))
            .cloned()
            .unwrap_or_else(|| ctx.clusters.default_key())
    };
    for c in containers
        .iter()
        .filter(|c| by_name.get(&(c.namespace(), c.name_any())) == Some(key))
    {
        if c.spec.management == Management::ObserveOnly {
            continue;
        }
        u.containers = true;
        u.pod_logs |=
            ctx.settings.virtual_nodes.is_some() && c.labels().contains_key(crate::controller::vnode::POD_UID_LABEL);
        u.high_availability |= c.spec.high_availability.is_some();
        u.privileged |= !c.spec.unprivileged;
        u.migrations |= c.spec.node.is_some();
        u.bridges.extend(c.spec.network.iter().map(|n| n.bridge.clone()));
        let s = &c.spec.source;
        u.clones |= s.template.is_some() || s.clone.is_some();
        // a full clone of a running source goes through a temporary snapshot
        u.snapshots |= s.clone.is_some();
        if let Some(i) = &s.image {
            u.image_storages.insert(i.storage.clone());
        }
        u.disk_storages.extend(c.spec.rootfs.iter().map(|r| r.storage.clone()));
        u.disk_storages
            .extend(c.spec.mount_points.iter().map(|m| m.storage.clone()));
    }
    u.migrations |= ctx
        .clusters
        .get(key)
        .is_some_and(|h| !crate::controller::kernel::recover(h.maintenance.read(), "the maintenance list").is_empty());
    for t in views.all_templates() {
        if ctx.clusters.referenced(t.spec.cluster_ref.as_ref()) != *key {
            continue;
        }
        u.containers = true;
        u.disk_storages.extend(t.spec.rootfs.iter().map(|r| r.storage.clone()));
        if t.spec.image.volid.is_none() {
            u.template_storages
                .insert(t.spec.image_storage.clone().unwrap_or_else(|| "local".into()));
        }
    }
    for b in views.all_backups() {
        let cluster = match b.status.as_ref().and_then(|s| s.cluster.clone()) {
            Some(c) => super::ClusterKey::named(c),
            None => cluster_of(b.namespace(), &b.spec.container_ref.name),
        };
        if cluster == *key {
            u.backups = true;
            u.backup_storages.extend(b.spec.storage.clone());
        }
    }
    for s in views.all_schedules() {
        if ctx.clusters.referenced(s.spec.common.cluster_ref.as_ref()) == *key {
            u.backups = true;
            u.backup_storages.insert(s.spec.storage.clone());
        }
    }
    for s in views.all_snapshots() {
        let cluster = match s.status.as_ref().and_then(|s| s.cluster.clone()) {
            Some(c) => super::ClusterKey::named(c),
            None => cluster_of(s.namespace(), &s.spec.container_ref.name),
        };
        u.snapshots |= cluster == *key;
    }
    for s in views.all_snapshot_schedules() {
        u.snapshots |= ctx.clusters.referenced(s.spec.common.cluster_ref.as_ref()) == *key;
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(privs: &[&str]) -> Permissions {
        let map = privs.iter().map(|p| (p.to_string(), true)).collect();
        Permissions([("/".to_string(), map)].into_iter().collect())
    }

    fn missing_of(usage: &Usage, privs: &[&str]) -> Vec<(String, String, String)> {
        missing(&required(usage), &granted(privs))
            .into_iter()
            .map(|m| (m.feature, m.privilege, m.path))
            .collect()
    }

    const CONTAINER_PRIVS: &[&str] = &[
        "Sys.Audit",
        "VM.Allocate",
        "VM.Audit",
        "VM.PowerMgmt",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Disk",
        "VM.Config.Network",
        "VM.Config.Options",
        "Datastore.AllocateSpace",
        "Datastore.Audit",
    ];

    #[test]
    fn each_feature_in_use_needs_its_own_privileges() {
        let t = |f: fn(&mut Usage)| {
            let mut u = Usage::default();
            f(&mut u);
            missing_of(&u, CONTAINER_PRIVS)
        };
        let row = |feature: &str, privilege: &str, path: &str| (feature.into(), privilege.into(), path.into());
        assert_eq!(t(|_| {}), vec![]);
        assert_eq!(t(|u| u.containers = true), vec![]);
        assert_eq!(t(|u| u.backups = true), vec![row("backups", "VM.Backup", "/vms")]);
        assert_eq!(t(|u| u.snapshots = true), vec![row("snapshots", "VM.Snapshot", "/vms")]);
        assert_eq!(t(|u| u.clones = true), vec![row("clones", "VM.Clone", "/vms")]);
        assert_eq!(t(|u| u.pod_logs = true), vec![row("podLogs", "VM.Console", "/vms")]);
        assert_eq!(
            t(|u| u.high_availability = true),
            vec![row("highAvailability", "Sys.Console", "/")]
        );
        assert_eq!(t(|u| u.privileged = true), vec![row("privileged", "Sys.Modify", "/")]);
        assert_eq!(
            t(|u| u.migrations = true),
            vec![row("migrations", "VM.Migrate", "/vms")]
        );
        assert_eq!(
            t(|u| {
                u.bridges.insert("vmbr1".into());
            }),
            vec![row("network", "SDN.Use", "/sdn/zones/localnetwork/vmbr1")]
        );
        assert_eq!(
            t(|u| {
                u.image_storages.insert("local".into());
            }),
            vec![
                row("ociImages", "Datastore.AllocateTemplate", "/storage/local"),
                row("ociImages", "Sys.AccessNetwork", "/nodes"),
            ]
        );
        assert_eq!(
            t(|u| {
                u.template_storages.insert("local".into());
            }),
            vec![row("templates", "Datastore.AllocateTemplate", "/storage/local")]
        );
    }

    #[test]
    fn nothing_is_missing_for_a_token_with_every_privilege() {
        let u = Usage {
            containers: true,
            clones: true,
            disk_storages: ["local-lvm".to_string()].into(),
            image_storages: ["local".to_string()].into(),
            template_storages: ["local".to_string()].into(),
            backups: true,
            backup_storages: ["pbs".to_string()].into(),
            snapshots: true,
            high_availability: true,
            privileged: true,
            migrations: true,
            bridges: ["vmbr0".to_string()].into(),
            pod_logs: true,
        };
        let mut all: Vec<&str> = CONTAINER_PRIVS.to_vec();
        all.extend([
            "VM.Console",
            "Sys.Console",
            "Sys.Modify",
            "VM.Migrate",
            "SDN.Use",
            "VM.Clone",
            "VM.Backup",
            "VM.Snapshot",
            "Datastore.AllocateTemplate",
            "Sys.AccessNetwork",
        ]);
        assert_eq!(missing_of(&u, &all), vec![]);
        assert!(summary(&[]).contains("every privilege"));
    }

    #[test]
    fn privileges_granted_on_the_storage_alone_count_for_it() {
        let u = Usage {
            backups: true,
            backup_storages: ["pbs".to_string()].into(),
            ..Usage::default()
        };
        let mut p = granted(&["Sys.Audit", "VM.Backup"]);
        p.0.insert(
            "/storage/pbs".into(),
            [
                ("Datastore.AllocateSpace".to_string(), false),
                ("Datastore.Audit".to_string(), false),
            ]
            .into(),
        );
        assert_eq!(missing(&required(&u), &p), vec![]);
        let m = missing(&required(&u), &granted(&["Sys.Audit"]));
        assert_eq!(
            summary(&m),
            "the token lacks VM.Backup on /vms (for backups), Datastore.AllocateSpace on /storage/pbs (for backups), \
             Datastore.Audit on /storage/pbs (for backups)"
        );
    }
}
