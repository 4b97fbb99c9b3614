//! Finding a container in Proxmox: config and power state, read together.

use crate::controller::cluster::ClusterHandle;
use crate::controller::Error;
use crate::crd::lxc_container::{ContainerPhase, LxcContainerStatus};
use crate::pve::{self, ErrorClass, LxcConfig};
use std::time::{Duration, Instant};

/// Where a container was found, with its config and power state (read together: one round
/// trip instead of two on every pass).
pub struct Located {
    /// The node it is on.
    pub node: String,
    /// Its config.
    pub config: LxcConfig,
    /// Its power state and usage.
    pub current: pve::LxcStatus,
}

/// Reads config and status of `vmid` on `node` concurrently; `None` when it is not there. A
/// container not made yet (`expect_absent`) is looked for with its config alone: one request
/// instead of two on every pass while it waits for a task slot or its image.
async fn read_on(handle: &ClusterHandle, node: &str, vmid: u32, expect_absent: bool) -> Result<Option<Located>, Error> {
    if expect_absent {
        return match handle.client.lxc_config(node, vmid).await {
            Ok(config) => Ok(Some(Located {
                node: node.to_string(),
                config,
                current: handle.client.lxc_status(node, vmid).await?,
            })),
            Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    let (cfg, st) = tokio::join!(
        handle.client.lxc_config(node, vmid),
        handle.client.lxc_status(node, vmid)
    );
    match cfg {
        Ok(config) => Ok(Some(Located {
            node: node.to_string(),
            config,
            current: st?,
        })),
        Err(e) if e.class() == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finds the container: on the node the inventory says, else the node in status, else the
/// spec's node. `None` when Proxmox has no config for it on any of them.
pub async fn locate(
    handle: &ClusterHandle,
    vmid: u32,
    status: &LxcContainerStatus,
    spec_node: Option<&str>,
) -> Result<Option<Located>, Error> {
    let snap = handle.snapshot();
    let mut nodes: Vec<String> = Vec::new();
    let listed_guest = snap
        .as_ref()
        .and_then(|s| s.guests.get(&vmid))
        .filter(|g| g.kind != "qemu")
        .map(|g| g.node.clone());
    nodes.extend(listed_guest.clone());
    nodes.extend(status.node.clone());
    nodes.extend(spec_node.map(str::to_string));
    let mut seen = std::collections::HashSet::new();
    // a node the inventory does not list holds nothing (a typo in spec.node): not asked
    let listed = |n: &String| snap.as_ref().is_none_or(|s| s.nodes.iter().any(|x| &x.name == n));
    // moved behind our back since the last inventory? ask for a fresh one once — only for a
    // container known to have existed (a new one is simply not there yet)
    let existed = matches!(
        status.phase,
        Some(ContainerPhase::Running | ContainerPhase::Stopped | ContainerPhase::Deleting)
    );
    // nothing made yet: no task recorded that may have made it, and the inventory lists none
    let not_made = !existed && status.pending_task.is_none() && listed_guest.is_none();
    for node in nodes.into_iter().filter(|n| seen.insert(n.clone())).filter(listed) {
        if let Some(found) = read_on(handle, &node, vmid, not_made).await? {
            return Ok(Some(found));
        }
    }
    if !existed {
        return Ok(None);
    }
    if let Some(s) = handle.fresh_snapshot(Instant::now(), Duration::from_secs(10)).await {
        if let Some(g) = s.guests.get(&vmid).filter(|g| g.kind != "qemu") {
            if status.node.as_deref() != Some(g.node.as_str()) {
                return read_on(handle, &g.node, vmid, false).await;
            }
        }
    }
    Ok(None)
}
