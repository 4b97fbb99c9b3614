//! Whose the Proxmox container at our vmid is (DESIGN.md §3, "Identity"), decided in one place
//! for both ends of a container's life: [`Evidence::gather`] is the only step that reads (the
//! container's tags and lock come with its config; the clone source's tags from the inventory;
//! an `LxcTemplate`'s uid and vmid from the apiserver, once), and [`ownership`] is the pure rule.
//! The update path (`converge`) and the deletion path (`lifecycle::cleanup`) both match the full
//! [`Ownership`] verdict.
//!
//! The rules, in order:
//! 1. our tag (`k8s-<uid>`) makes it ours, whatever the status says;
//! 2. the clone source itself is never the clone: a status naming the source's vmid is a
//!    forgery or a mistake;
//! 3. another object's tag makes it not ours, except the tags a fresh clone inherits from its
//!    source (Proxmox copies them; our first update replaces them);
//! 4. a lock without our tag is waited out (while Proxmox creates a container, its config holds
//!    little more than the lock, so nothing can be judged yet);
//! 5. a clone we started (phase `Creating`) is claimed before its tag is set;
//! 6. a container that existed as ours (`Running`, `Stopped`, `Deleting`) and lost its tag is
//!    kept as it is, never replaced by a second one;
//! 7. otherwise someone else's: a vmid we picked is picked again, the user's is a conflict.

use super::desired::identity_tag;
use super::pass::P;
use crate::controller::cluster::Snapshot;
use crate::controller::error::KubeOp;
use crate::controller::Error;
use crate::crd::lxc_container::{ContainerPhase, ContainerSource};
use crate::crd::{LxcTemplate, IDENTITY_TAG_PREFIX};
use crate::pve::LxcConfig;
use kube::ResourceExt;

/// What the container is cloned from, as far as identity is concerned: whose tags it inherits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Parent {
    /// None: made fresh (an OS template, an archive, an image), it inherits no tag.
    #[default]
    None,
    /// A clone of the Proxmox guest `vmid`, whose tags are `tags` (as the inventory shows them).
    Guest {
        /// The source's vmid.
        vmid: u32,
        /// The source's tags.
        tags: Vec<String>,
    },
    /// A clone of an `LxcTemplate`: its container's vmid (from its status) and its uid; both
    /// `None` when the template does not exist (any more).
    Template {
        /// The template container's vmid.
        vmid: Option<u32>,
        /// The `LxcTemplate`'s uid.
        uid: Option<String>,
    },
}

impl Parent {
    /// Whether the container is cloned (a fresh clone carries no tag until our first update).
    pub fn cloning(&self) -> bool {
        !matches!(self, Parent::None)
    }

    /// The source's own vmid, if known.
    fn vmid(&self) -> Option<u32> {
        match self {
            Parent::None => None,
            Parent::Guest { vmid, .. } => Some(*vmid),
            Parent::Template { vmid, .. } => *vmid,
        }
    }

    /// The identity tags a fresh clone inherits from its source.
    fn inherited(&self) -> Vec<String> {
        match self {
            Parent::None => Vec::new(),
            Parent::Guest { tags, .. } => tags.clone(),
            Parent::Template { uid, .. } => uid.iter().map(|u| identity_tag(u)).collect(),
        }
    }
}

/// Everything the identity rules look at, gathered once per pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The vmid the container was found at (ours, from status).
    pub vmid: u32,
    /// Our identity tag.
    pub own_tag: String,
    /// The container's tags.
    pub tags: Vec<String>,
    /// Its lock, if one is held.
    pub lock: Option<String>,
    /// Our phase, as recorded in status.
    pub phase: Option<ContainerPhase>,
    /// The vmid was chosen by the user (`spec.vmid`), not by us.
    pub user_vmid: bool,
    /// What it is cloned from.
    pub parent: Parent,
}

impl Evidence {
    /// Gathers the evidence about the container found at our vmid with config `cfg`. Reads
    /// only for an untagged container cloned from an `LxcTemplate` (the template's uid and
    /// vmid); a tagged one needs nothing more.
    pub async fn gather(p: &P<'_>, snap: &Snapshot, vmid: u32, cfg: &LxcConfig) -> Result<Evidence, Error> {
        let own_tag = identity_tag(&p.uid);
        let tags = cfg.tag_list();
        let tagged = tags.contains(&own_tag);
        let parent = match &p.obj.spec.source {
            ContainerSource { clone: Some(c), .. } => Parent::Guest {
                vmid: c.vmid,
                tags: snap.guests.get(&c.vmid).map(|g| g.tags.clone()).unwrap_or_default(),
            },
            // ours whatever it was cloned from: nothing more to read
            ContainerSource { template: Some(_), .. } if tagged => Parent::Template { vmid: None, uid: None },
            ContainerSource { template: Some(t), .. } => {
                let api: kube::Api<LxcTemplate> =
                    kube::Api::namespaced(p.ctx.kube.clone(), &p.obj.namespace().unwrap_or_default());
                let t = api.get_opt(&t.name).await.op("read LxcTemplate")?;
                Parent::Template {
                    vmid: t.as_ref().and_then(|t| t.status.as_ref()).and_then(|s| s.vmid),
                    uid: t.and_then(|t| t.uid()),
                }
            }
            _ => Parent::None,
        };
        Ok(Evidence {
            vmid,
            own_tag,
            tags,
            lock: cfg.lock.clone(),
            phase: p.status.phase,
            user_vmid: p.obj.spec.vmid.is_some(),
            parent,
        })
    }

    /// It carries our identity tag.
    pub fn tagged(&self) -> bool {
        self.tags.contains(&self.own_tag)
    }

    /// It is another object's (rules 2 and 3): the clone source itself, or tagged by another
    /// object beyond what a clone inherits.
    fn tagged_by_other(&self) -> bool {
        if self.parent.vmid() == Some(self.vmid) {
            return true;
        }
        let inherited = self.parent.inherited();
        self.tags
            .iter()
            .any(|t| t.starts_with(IDENTITY_TAG_PREFIX) && *t != self.own_tag && !inherited.contains(t))
    }
}

/// Whose the container at our vmid is, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Ours: converge it (or delete it).
    Ours,
    /// A clone we started, not tagged yet: claim it (the next update sets the tag).
    Claim,
    /// Locked and not (yet) tagged: while Proxmox creates a container its config holds little
    /// more than the lock, so wait before judging (also before deleting).
    WaitLocked(String),
    /// A vmid we picked ourselves is held by someone else's container: pick another.
    Reallocate,
    /// The container existed as ours (Running/Stopped) and lost its tag, e.g. edited in the
    /// Proxmox GUI: keep every record and stop, never create a second one.
    TagLost,
    /// Someone else's container at the user's vmid: leave it untouched.
    Conflict,
}

impl Ownership {
    /// Whether the container may be changed or deleted as ours.
    pub fn is_ours(&self) -> bool {
        matches!(self, Ownership::Ours | Ownership::Claim)
    }
}

/// Decides whose the container at our vmid is (the rules in the module documentation).
pub fn ownership(e: &Evidence) -> Ownership {
    use ContainerPhase::*;
    if e.tagged() {
        return Ownership::Ours;
    }
    if e.tagged_by_other() {
        // another object's container (a forged or stale status cannot make it ours)
        return if e.user_vmid {
            Ownership::Conflict
        } else {
            Ownership::Reallocate
        };
    }
    if let Some(lock) = &e.lock {
        return Ownership::WaitLocked(lock.clone());
    }
    if e.phase == Some(Creating) && e.parent.cloning() {
        return Ownership::Claim;
    }
    if matches!(e.phase, Some(Running | Stopped | Deleting)) {
        return Ownership::TagLost;
    }
    if !e.user_vmid {
        // never ours: also after a crash or a failed create left us in Creating or Failed
        return Ownership::Reallocate;
    }
    Ownership::Conflict
}

/// What a guest of another kind at our vmid means before a create: `Some` when the create must
/// not be tried (Proxmox would answer "already exists" forever).
pub fn held_by_vm(snapshot_kind: Option<&str>, user_vmid: bool) -> Option<Ownership> {
    match snapshot_kind {
        Some("qemu") if user_vmid => Some(Ownership::Conflict),
        Some("qemu") => Some(Ownership::Reallocate),
        _ => None,
    }
}

/// Whether the guest at `vmid` carries the identity tag of the object with `uid` (a template's
/// or backup's vmid in status is only believed when Proxmox agrees).
pub fn carries_identity(snap: &Snapshot, vmid: u32, uid: &str) -> bool {
    let tag = identity_tag(uid);
    snap.guests.get(&vmid).is_some_and(|g| g.tags.contains(&tag))
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
