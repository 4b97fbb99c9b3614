//! Deleting an `LxcBackup` whose archive is protected in Proxmox (which refuses to delete a
//! protected archive): the protection this object asked for (`spec.protected`) is lifted
//! first, as the CRD promises ("deleting this object still does"); a protection someone else
//! set is respected: the archive stays and the object goes, so neither it nor its namespace
//! nor its `ProxmoxCluster` waits forever.

use crate::controller::cluster::ClusterHandle;
use crate::controller::kernel::{Pass, Reason};
use crate::controller::Error;
use crate::crd::lxc_backup::LxcBackup;
use crate::pve;
use kube::runtime::controller::Action;

/// Proxmox's refusal to delete a protected archive.
pub(super) fn refused(e: &pve::Error) -> bool {
    e.message().contains("unable to delete protected backup")
}

/// Lifts the protection of archive `volid` when this object asked for it.
pub(super) async fn lift(
    p: &Pass<'_, LxcBackup>,
    handle: &ClusterHandle,
    node: &str,
    storage: &str,
    volid: &str,
) -> Result<(), Error> {
    if p.obj.spec.options.protected {
        handle.client.set_volume_protected(node, storage, volid, false).await?;
    }
    Ok(())
}

/// The archive is protected by someone else: it stays in storage, the object goes.
pub(super) async fn left(p: &Pass<'_, LxcBackup>, volid: &str) -> Result<Action, Error> {
    p.event(
        Reason::LeftUntouched,
        format!("archive {volid} is protected in Proxmox (not by this LxcBackup): it stays in storage; lift its protection in Proxmox to delete it"),
    )
    .await;
    p.remove_finalizer().await?;
    p.ctx.forget(&p.uid);
    Ok(Action::await_change())
}
