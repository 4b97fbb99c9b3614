//! The storage an `LxcBackup` names, checked against the cluster's inventory before any
//! Proxmox call (pure): one that is not on the container's node, or cannot hold backups
//! (content `backup`), is `InvalidSpec` naming the storages that can.

use crate::controller::cluster::Snapshot;
use crate::controller::error::InvalidSpec;

/// Whether `storage` (from `spec.storage`) can take a backup of a container on `node`. An
/// inventory without storages for the node (not read yet) is not checked.
pub fn storage(snap: &Snapshot, node: &str, storage: &str) -> Result<(), InvalidSpec> {
    let on_node: Vec<_> = snap.storages.iter().filter(|s| s.node == node).collect();
    if on_node.is_empty() || snap.node_has_storage(node, storage, "backup") {
        return Ok(());
    }
    let mut able: Vec<&str> = on_node
        .iter()
        .filter(|s| s.content.iter().any(|c| c == "backup"))
        .map(|s| s.name.as_str())
        .collect();
    able.sort_unstable();
    able.dedup();
    let choices = match able.is_empty() {
        true => format!("node {node} has no storage with content backup"),
        false => format!("storages for backups on node {node}: {}", able.join(", ")),
    };
    let message = match on_node.iter().find(|s| s.name == storage) {
        Some(s) => format!(
            "storage {storage} cannot hold backups (content: {}); {choices}",
            s.content.join(", ")
        ),
        None => format!("storage {storage} is not on node {node}; {choices}"),
    };
    Err(InvalidSpec {
        field: "storage".into(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::ClusterResource;
    use std::time::Instant;

    fn inventory() -> Snapshot {
        let mut list = Vec::new();
        for (s, content) in [
            ("local", "iso,vztmpl,backup"),
            ("local-lvm", "rootdir,images"),
            ("pbs", "backup"),
        ] {
            list.push(
                serde_json::json!({"id": format!("storage/pve1/{s}"), "type": "storage", "node": "pve1",
                "storage": s, "plugintype": "dir", "content": content, "shared": 0}),
            );
        }
        let list: Vec<ClusterResource> = serde_json::from_value(serde_json::Value::Array(list)).unwrap();
        Snapshot::from_resources(&list, Instant::now())
    }

    #[test]
    fn a_backup_to_a_storage_that_cannot_hold_backups_is_refused_naming_those_that_can() {
        let snap = inventory();
        assert_eq!(storage(&snap, "pve1", "pbs"), Ok(()));
        assert_eq!(storage(&snap, "pve1", "local"), Ok(()));
        let e = storage(&snap, "pve1", "local-lvm").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.storage: storage local-lvm cannot hold backups (content: rootdir, images); storages for backups on node pve1: local, pbs"
        );
        let e = storage(&snap, "pve1", "nfs9").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.storage: storage nfs9 is not on node pve1; storages for backups on node pve1: local, pbs"
        );
        assert_eq!(
            storage(&snap, "pve2", "nfs9"),
            Ok(()),
            "nothing known of pve2: not checked"
        );
    }
}
