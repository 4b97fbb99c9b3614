//! What a create pass does next (pure): the facts gathered about a container to be made, and
//! [`decide`], which picks ONE [`CreateStep`] from them. The pass (`create`) gathers, asks
//! [`decide`] and acts; a step that ends the pass (the create task, a wait, a refusal) ends it,
//! one that does not (a check, a read, the image pull once it is there) fills in its fact so
//! the next [`decide`] moves on. The rules are the `if`s below, in order, each with a row in
//! `create_tests.rs`.

use super::decide::{clone_node, Origin, Unplaced};
use super::identity::Ownership;

/// What the container is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// `POST /lxc`: an OS template, a pulled image (volid filled in once pulled) or a backup
    /// archive (`restore`).
    Create {
        /// The template's or archive's volid (empty for an image until it is pulled).
        ostemplate: String,
        /// A restore from an archive.
        restore: bool,
    },
    /// A clone of another container.
    Clone {
        /// The source's node.
        src_node: String,
        /// The source's vmid.
        src_vmid: u32,
        /// A full clone (not linked).
        full: bool,
    },
}

impl How {
    /// The task's operation name.
    pub fn operation(&self) -> &'static str {
        match self {
            How::Create { restore: true, .. } => "restore",
            How::Create { .. } => "create",
            How::Clone { .. } => "clone",
        }
    }
}

/// The source, resolved with its ownership proven in Proxmox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What to call.
    pub how: How,
    /// Where it comes from, for placement.
    pub origin: Origin,
}

/// What a create pass knows. Filled by `create::gather`, then by the steps that do not end the
/// pass.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFacts {
    /// The spec was checked against the inventory.
    pub prechecked: bool,
    /// A QEMU virtual machine holds the vmid: whose-it-is verdict.
    pub held_by_vm: Option<Ownership>,
    /// The source, once resolved.
    pub source: Option<Resolved>,
    /// Every value `spec.app` reads is there (or there is no `spec.app`).
    pub app_ready: bool,
    /// `spec.node`, when it is in maintenance.
    pub node_in_maintenance: Option<String>,
    /// Where placement put the container, once placed.
    pub placed: Option<Result<String, Unplaced>>,
    /// The source is an OCI image.
    pub from_image: bool,
    /// The pulled image's volid, once it is in storage on the node.
    pub pulled: Option<String>,
    /// The clone source's disks on storage that is not shared, once read (only for a clone to
    /// another node).
    pub clone_local_disks: Option<Vec<String>>,
    /// The tenant's nodes (empty: any).
    pub tenant_nodes: Vec<String>,
    /// The temporary snapshot a clone is made from, once prepared (`Some(None)`: from the
    /// source directly).
    pub clone_from: Option<Option<String>>,
}

/// One thing a create pass does next.
#[derive(Debug, Clone, PartialEq)]
pub enum CreateStep {
    /// Check the spec against the inventory (a typo is refused here, not by Proxmox). Goes on.
    Precheck,
    /// A QEMU virtual machine holds the vmid: allocate another, or stop with a condition.
    Foreign(Ownership),
    /// Resolve the source (reads of LxcBackup, LxcTemplate, archive notes). Goes on.
    ResolveSource,
    /// Read every value `spec.app` needs before anything is made. Goes on.
    ReadApp,
    /// `spec.node` is in maintenance: wait until it ends.
    WaitMaintenance(String),
    /// Pick the node. Goes on.
    Place,
    /// No node fits: wait.
    NoNode(Unplaced),
    /// Pull the image on the node (a task), or wait for its pull. Goes on once it is there.
    PullImage {
        /// The node.
        node: String,
    },
    /// Read the clone source's config: where its disks are. Goes on.
    ReadCloneSource,
    /// A linked clone onto another node of a source with disks on local storage.
    CloneNotPossible {
        /// The storages.
        storages: String,
    },
    /// The node (a clone's source's) is not one of the tenant's.
    OutsideTenantNodes(String),
    /// Take the temporary snapshot a clone of a running source is made from (a task), or name
    /// the one to clone from. Goes on.
    PrepareClone,
    /// Start the create, restore or clone (the task, with the write-ahead marker).
    Start {
        /// Where the container is made.
        node: String,
        /// The node whose task slot it takes (a clone's source's).
        slot_node: String,
    },
}

/// The next step for the container to be made (the rules in the module documentation, in order).
pub fn decide(f: &CreateFacts) -> CreateStep {
    use CreateStep::*;
    if !f.prechecked {
        return Precheck;
    }
    if let Some(v) = &f.held_by_vm {
        return Foreign(v.clone());
    }
    let Some(source) = &f.source else {
        return ResolveSource;
    };
    if !f.app_ready {
        return ReadApp;
    }
    if let Some(n) = &f.node_in_maintenance {
        return WaitMaintenance(n.clone());
    }
    let placed = match &f.placed {
        None => return Place,
        Some(Err(u)) => return NoNode(u.clone()),
        Some(Ok(n)) => n.clone(),
    };
    if f.from_image && f.pulled.is_none() && matches!(source.how, How::Create { .. }) {
        return PullImage { node: placed };
    }
    let node = match &source.how {
        How::Clone { src_node, full, .. } if placed != *src_node => match &f.clone_local_disks {
            None => return ReadCloneSource,
            Some(local) => match clone_node(&placed, src_node, *full, local) {
                Ok(n) => n,
                Err(storages) => return CloneNotPossible { storages },
            },
        },
        _ => placed,
    };
    if !f.tenant_nodes.is_empty() && !f.tenant_nodes.contains(&node) {
        return OutsideTenantNodes(node);
    }
    match &source.how {
        How::Clone { .. } if f.clone_from.is_none() => PrepareClone,
        How::Clone { src_node, .. } => Start {
            slot_node: src_node.clone(),
            node,
        },
        How::Create { .. } => Start {
            slot_node: node.clone(),
            node,
        },
    }
}
