//! The root volume recorded in `status.rootfs`: volume id, storage and size, read from the
//! `rootfs` property Proxmox reports (pure).

use crate::crd::{human_size, RootVolume};
use crate::pve::props::MountPoint;

/// The root volume of a config's `rootfs` property; `None` when absent or unreadable.
pub fn root_volume(rootfs: Option<&str>) -> Option<RootVolume> {
    let mp = MountPoint::parse_rootfs(rootfs?).ok()?;
    let storage = mp.volume.split_once(':').map(|(s, _)| s.to_string())?;
    Some(RootVolume {
        volume: mp.volume,
        storage,
        size: mp.size.map(human_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_volume_names_its_storage_and_size() {
        let v = root_volume(Some("local-lvm:vm-101-disk-0,size=8G")).unwrap();
        assert_eq!(v.volume, "local-lvm:vm-101-disk-0");
        assert_eq!(v.storage, "local-lvm");
        assert_eq!(v.size.as_deref(), Some("8Gi"));
        let v = root_volume(Some("nfs:101/vm-101-disk-0.raw,size=512M,mountoptions=noatime")).unwrap();
        assert_eq!((v.storage.as_str(), v.size.as_deref()), ("nfs", Some("512Mi")));
        assert_eq!(root_volume(Some("local:vm-101-disk-0")).unwrap().size, None);
        assert_eq!(root_volume(None), None);
        assert_eq!(
            root_volume(Some("/var/lib/host-path")),
            None,
            "a host path has no storage"
        );
    }
}
