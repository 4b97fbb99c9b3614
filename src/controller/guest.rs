//! What the kinds that make containers share about one in Proxmox (the container and template
//! kinds both use these; neither imports the other for them).

use crate::controller::cluster::ClusterHandle;
use crate::controller::Error;
use crate::pve::{self, ErrorClass};

/// The storages holding a container's disks (rootfs and volume mount points).
pub fn disk_storages(cfg: &pve::LxcConfig) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut vols: Vec<String> = cfg
        .rootfs_parsed()
        .ok()
        .flatten()
        .map(|m| m.volume)
        .into_iter()
        .collect();
    vols.extend(cfg.mount_points().unwrap_or_default().into_values().map(|m| m.volume));
    for v in vols {
        if let Some((s, _)) = v.split_once(':') {
            if !out.iter().any(|x| x == s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// Whether `volid` is listed in `storage` on `node` (a storage missing there counts as absent).
pub(crate) async fn present(handle: &ClusterHandle, node: &str, storage: &str, volid: &str) -> Result<bool, Error> {
    match handle.client.storage_content(node, storage, Some("vztmpl"), None).await {
        Ok(list) => Ok(list.iter().any(|v| v.volid == volid)),
        Err(e)
            if matches!(
                e.class(),
                ErrorClass::NotFound | ErrorClass::InvalidSpec | ErrorClass::Permanent
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
