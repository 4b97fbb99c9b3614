//! The create decision, one row per rule (DESIGN.md §3 before anything is made, and the order
//! the pass applies them in).

use super::super::create_step::*;
use super::super::decide::{Origin, Unplaced};
use super::super::identity::Ownership;
use crate::controller::kernel::Reason;

fn template() -> Resolved {
    Resolved {
        how: How::Create {
            ostemplate: "local:vztmpl/debian-12.tar.zst".into(),
            restore: false,
        },
        origin: Origin::Create,
    }
}

fn clone(full: bool) -> Resolved {
    Resolved {
        how: How::Clone {
            src_node: "pve2".into(),
            src_vmid: 900,
            full,
        },
        origin: Origin::Clone("pve2".into()),
    }
}

/// Checked, resolved (an OS template), placed on pve1: the create starts there.
fn ready() -> CreateFacts {
    CreateFacts {
        prechecked: true,
        held_by_vm: None,
        source: Some(template()),
        app_ready: true,
        node_in_maintenance: None,
        placed: Some(Ok("pve1".into())),
        from_image: false,
        pulled: None,
        clone_local_disks: None,
        tenant_nodes: vec![],
        clone_from: None,
    }
}

fn no_node() -> Unplaced {
    Unplaced {
        reason: Reason::NodeUnavailable,
        message: "no node fits".into(),
    }
}

fn start(node: &str, slot_node: &str) -> CreateStep {
    CreateStep::Start {
        node: node.into(),
        slot_node: slot_node.into(),
    }
}

#[test]
fn the_spec_the_vmid_the_source_and_the_app_values_are_checked_before_placement() {
    use CreateStep::*;
    type Row = (&'static str, Box<dyn Fn(&mut CreateFacts)>, CreateStep);
    let rows: Vec<Row> = vec![
        (
            "input: the spec is checked against the inventory before any create",
            Box::new(|f| f.prechecked = false),
            Precheck,
        ),
        (
            "identity: a QEMU VM at the user's vmid is left untouched",
            Box::new(|f| f.held_by_vm = Some(Ownership::Conflict)),
            Foreign(Ownership::Conflict),
        ),
        (
            "identity: a QEMU VM at a vmid we picked makes us pick another",
            Box::new(|f| f.held_by_vm = Some(Ownership::Reallocate)),
            Foreign(Ownership::Reallocate),
        ),
        (
            "the source is resolved (ownership proven in Proxmox) before placement",
            Box::new(|f| f.source = None),
            ResolveSource,
        ),
        (
            "secrets: spec.app's values are read before anything is made",
            Box::new(|f| f.app_ready = false),
            ReadApp,
        ),
        (
            "a spec.node in maintenance waits for its end",
            Box::new(|f| f.node_in_maintenance = Some("pve1".into())),
            WaitMaintenance("pve1".into()),
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = ready();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn placement_and_the_image_pull_come_before_the_create() {
    use CreateStep::*;
    type Row = (&'static str, Box<dyn Fn(&mut CreateFacts)>, CreateStep);
    let rows: Vec<Row> = vec![
        ("placement comes after the checks", Box::new(|f| f.placed = None), Place),
        (
            "no node that fits waits",
            Box::new(|f| f.placed = Some(Err(no_node()))),
            NoNode(no_node()),
        ),
        (
            "an image is pulled on the node placement picked",
            Box::new(|f| f.from_image = true),
            PullImage { node: "pve1".into() },
        ),
        (
            "a pulled image is created from",
            Box::new(|f| {
                f.from_image = true;
                f.pulled = Some("local:vztmpl/nginx.tar".into());
            }),
            start("pve1", "pve1"),
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = ready();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn a_clone_lands_where_its_disks_allow_on_a_tenant_node_from_its_snapshot() {
    use CreateStep::*;
    type Row = (&'static str, Box<dyn Fn(&mut CreateFacts)>, CreateStep);
    let rows: Vec<Row> = vec![
        (
            "a clone onto another node reads where the source's disks are",
            Box::new(|f| f.source = Some(clone(true))),
            ReadCloneSource,
        ),
        (
            "a clone whose disks are all shared goes straight to the node",
            Box::new(|f| {
                f.source = Some(clone(false));
                f.clone_local_disks = Some(vec![]);
            }),
            PrepareClone,
        ),
        (
            "a linked clone of a source on local storage onto another node is impossible",
            Box::new(|f| {
                f.source = Some(clone(false));
                f.clone_local_disks = Some(vec!["local-lvm".into()]);
            }),
            CloneNotPossible {
                storages: "local-lvm".into(),
            },
        ),
        (
            "a full clone of a source on local storage is made next to it",
            Box::new(|f| {
                f.source = Some(clone(true));
                f.clone_local_disks = Some(vec!["local-lvm".into()]);
                f.clone_from = Some(None);
            }),
            start("pve2", "pve2"),
        ),
        (
            "tenancy: a clone next to its source must still be on a tenant's node",
            Box::new(|f| {
                f.source = Some(clone(true));
                f.clone_local_disks = Some(vec!["local-lvm".into()]);
                f.tenant_nodes = vec!["pve1".into()];
            }),
            OutsideTenantNodes("pve2".into()),
        ),
        (
            "tenancy: a node of the tenant's is fine",
            Box::new(|f| f.tenant_nodes = vec!["pve1".into()]),
            start("pve1", "pve1"),
        ),
        (
            "a clone takes the temporary snapshot of a running source first",
            Box::new(|f| {
                f.source = Some(clone(true));
                f.placed = Some(Ok("pve2".into()));
            }),
            PrepareClone,
        ),
        (
            "a clone takes the task slot of its source's node",
            Box::new(|f| {
                f.source = Some(clone(true));
                f.clone_local_disks = Some(vec![]);
                f.clone_from = Some(Some("k8s-clone".into()));
            }),
            start("pve1", "pve2"),
        ),
        (
            "identity: the create starts (vmid recorded, marker first)",
            Box::new(|_| {}),
            start("pve1", "pve1"),
        ),
    ];
    for (rule, edit, want) in rows {
        let mut f = ready();
        edit(&mut f);
        assert_eq!(decide(&f), want, "{rule}");
    }
}

#[test]
fn a_restore_and_a_create_name_their_operation() {
    let restore = How::Create {
        ostemplate: "local:backup/vzdump-lxc-100.tar.zst".into(),
        restore: true,
    };
    assert_eq!(restore.operation(), "restore");
    assert_eq!(template().how.operation(), "create");
    assert_eq!(clone(true).how.operation(), "clone");
}
