//! The identity rules of DESIGN.md §3 as table tests, one per rule, plus every case the
//! reliability suite found.

use super::*;
use ContainerPhase::*;

const OURS: &str = "k8s-uid-web";
const OTHER: &str = "k8s-uid-other";
const PHASES: [Option<ContainerPhase>; 7] = [
    None,
    Some(Pending),
    Some(Creating),
    Some(Running),
    Some(Stopped),
    Some(Failed),
    Some(Deleting),
];

/// A container at vmid 150, as we see it.
fn ev(tags: &[&str], lock: Option<&str>, phase: Option<ContainerPhase>, user_vmid: bool, parent: Parent) -> Evidence {
    Evidence {
        vmid: 150,
        own_tag: OURS.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        lock: lock.map(str::to_string),
        phase,
        user_vmid,
        parent,
    }
}

fn guest(vmid: u32, tags: &[&str]) -> Parent {
    Parent::Guest {
        vmid,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn template(vmid: Option<u32>, uid: Option<&str>) -> Parent {
    Parent::Template {
        vmid,
        uid: uid.map(str::to_string),
    }
}

#[test]
fn a_container_with_our_tag_is_ours_whatever_the_phase_the_lock_or_other_tags() {
    for phase in PHASES {
        assert_eq!(
            ownership(&ev(&[OURS], None, phase, false, Parent::None)),
            Ownership::Ours
        );
        assert_eq!(
            ownership(&ev(&["web", OURS, OTHER], Some("backup"), phase, true, Parent::None)),
            Ownership::Ours
        );
    }
}

#[test]
fn a_container_with_another_objects_tag_is_never_claimed_whatever_our_status_says() {
    for phase in PHASES {
        for parent in [Parent::None, guest(120, &[]), template(Some(130), Some("tpl"))] {
            let e = ev(&[OTHER], None, phase, false, parent.clone());
            assert_eq!(ownership(&e), Ownership::Reallocate, "{phase:?} {parent:?}");
            let e = ev(&[OTHER], None, phase, true, parent);
            assert_eq!(ownership(&e), Ownership::Conflict, "{phase:?}");
        }
    }
}

#[test]
fn a_fresh_clone_is_not_taken_for_another_objects_by_the_tags_it_inherits_from_its_source() {
    // Proxmox copies the source's tags: a clone of a container of ours carries its identity tag
    let e = ev(
        &["web", OTHER],
        None,
        Some(Creating),
        false,
        guest(120, &["web", OTHER]),
    );
    assert_eq!(ownership(&e), Ownership::Claim);
    // a clone of an LxcTemplate carries the template's identity tag
    let e = ev(
        &["k8s-uid-tpl"],
        None,
        Some(Creating),
        true,
        template(Some(130), Some("uid-tpl")),
    );
    assert_eq!(ownership(&e), Ownership::Claim);
    // but a tag the source does not carry is another object's
    let e = ev(&[OTHER], None, Some(Creating), false, guest(120, &["web"]));
    assert_eq!(ownership(&e), Ownership::Reallocate);
    let e = ev(
        &[OTHER],
        None,
        Some(Creating),
        true,
        template(Some(130), Some("uid-tpl")),
    );
    assert_eq!(ownership(&e), Ownership::Conflict);
    // tags that are not identity tags say nothing
    let e = ev(&["web", "prod"], None, Some(Creating), false, guest(120, &[]));
    assert_eq!(ownership(&e), Ownership::Claim);
}

#[test]
fn the_clone_source_itself_is_never_taken_for_the_clone_whatever_our_status_says() {
    // a status naming the source's vmid is a forgery or a mistake
    for phase in PHASES {
        let e = ev(
            &["k8s-uid-tpl"],
            None,
            phase,
            false,
            template(Some(150), Some("uid-tpl")),
        );
        assert_eq!(ownership(&e), Ownership::Reallocate, "{phase:?}");
        // also a template container that lost its tag
        let e = ev(&[], None, phase, true, template(Some(150), Some("uid-tpl")));
        assert_eq!(ownership(&e), Ownership::Conflict, "{phase:?}");
        let e = ev(&[], None, phase, true, guest(150, &[]));
        assert_eq!(ownership(&e), Ownership::Conflict, "{phase:?}");
    }
}

#[test]
fn a_template_that_no_longer_exists_lets_nothing_be_inherited() {
    let e = ev(&["k8s-uid-tpl"], None, Some(Creating), false, template(None, None));
    assert_eq!(ownership(&e), Ownership::Reallocate);
}

#[test]
fn a_locked_container_without_our_tag_is_never_judged() {
    // while Proxmox creates a container, its config has the lock and no tags yet
    for phase in PHASES {
        for user_vmid in [false, true] {
            assert_eq!(
                ownership(&ev(&[], Some("create"), phase, user_vmid, Parent::None)),
                Ownership::WaitLocked("create".into()),
                "{phase:?}"
            );
        }
    }
}

#[test]
fn a_container_proxmox_still_creates_after_a_crash_mid_create_is_waited_for_not_left() {
    // the case the deletion path got wrong: deleted while locked `create`, without a tag
    let e = ev(&[], Some("create"), Some(Creating), false, Parent::None);
    let verdict = ownership(&e);
    assert_eq!(verdict, Ownership::WaitLocked("create".into()));
    assert!(!verdict.is_ours(), "not deleted yet");
}

#[test]
fn a_clone_we_started_is_claimed_before_its_tag_is_set() {
    for user_vmid in [false, true] {
        for parent in [guest(120, &[]), template(Some(130), Some("uid-tpl"))] {
            let e = ev(&[], None, Some(Creating), user_vmid, parent);
            assert_eq!(ownership(&e), Ownership::Claim);
            assert!(ownership(&e).is_ours());
        }
    }
    // not once it was made: then an untagged one lost its tag
    let e = ev(&[], None, Some(Running), false, guest(120, &[]));
    assert_eq!(ownership(&e), Ownership::TagLost);
}

#[test]
fn a_vmid_we_picked_held_by_a_foreign_container_is_picked_again_also_after_a_crash_or_failed_create() {
    for phase in [None, Some(Pending), Some(Creating), Some(Failed)] {
        assert_eq!(
            ownership(&ev(&[], None, phase, false, Parent::None)),
            Ownership::Reallocate,
            "{phase:?}"
        );
    }
}

#[test]
fn a_user_vmid_held_by_a_foreign_container_is_a_conflict_and_left_untouched() {
    for phase in [None, Some(Pending), Some(Creating), Some(Failed)] {
        let verdict = ownership(&ev(&["web"], None, phase, true, Parent::None));
        assert_eq!(verdict, Ownership::Conflict, "{phase:?}");
        assert!(!verdict.is_ours());
    }
}

#[test]
fn a_container_of_ours_whose_tag_was_removed_is_never_replaced_by_a_second_one() {
    for phase in [Some(Running), Some(Stopped), Some(Deleting)] {
        for user_vmid in [false, true] {
            let verdict = ownership(&ev(&[], None, phase, user_vmid, Parent::None));
            assert_eq!(verdict, Ownership::TagLost);
            assert!(!verdict.is_ours(), "never changed or deleted");
        }
    }
}

#[test]
fn only_ours_and_claimed_containers_may_be_changed_or_deleted() {
    let all = [
        Ownership::Ours,
        Ownership::Claim,
        Ownership::WaitLocked("create".into()),
        Ownership::Reallocate,
        Ownership::TagLost,
        Ownership::Conflict,
    ];
    let ours: Vec<bool> = all.iter().map(Ownership::is_ours).collect();
    assert_eq!(ours, [true, true, false, false, false, false]);
}

#[test]
fn a_vmid_held_by_a_qemu_vm_is_never_created_over() {
    assert_eq!(held_by_vm(Some("qemu"), true), Some(Ownership::Conflict));
    assert_eq!(held_by_vm(Some("qemu"), false), Some(Ownership::Reallocate));
    assert_eq!(held_by_vm(Some("lxc"), true), None);
    assert_eq!(held_by_vm(None, true), None);
}
