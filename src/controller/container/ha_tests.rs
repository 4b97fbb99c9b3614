use super::*;
use crate::crd::ha::{HaNode, HaNodeAffinity};

fn ha(mode: HaMode, nodes: &[(&str, Option<u32>)], strict: bool) -> HighAvailability {
    HighAvailability {
        mode,
        max_restart: Some(2),
        node_affinity: (!nodes.is_empty()).then(|| HaNodeAffinity {
            nodes: nodes
                .iter()
                .map(|(n, p)| HaNode {
                    name: n.to_string(),
                    priority: *p,
                })
                .collect(),
            strict,
        }),
        ..Default::default()
    }
}

#[test]
fn the_ha_state_follows_spec_state_unless_ha_is_told_to_ignore_the_container() {
    let m = "pve.lxc.dev ns/web uid=u1";
    let run = wanted_resource(&ha(HaMode::Managed, &[], false), PowerState::Running, m);
    assert_eq!(run.state.as_deref(), Some("started"));
    assert_eq!(
        (run.max_restart, run.max_relocate, run.failback),
        (Some(2), Some(1), Some(true))
    );
    let stop = wanted_resource(&ha(HaMode::Managed, &[], false), PowerState::Stopped, m);
    assert_eq!(stop.state.as_deref(), Some("stopped"));
    let ign = wanted_resource(&ha(HaMode::Ignored, &[], false), PowerState::Running, m);
    assert_eq!(ign.state.as_deref(), Some("ignored"));
}

#[test]
fn a_resource_matches_when_only_proxmox_defaults_or_old_names_differ() {
    let m = "pve.lxc.dev ns/web uid=u1";
    let want = wanted_resource(&ha(HaMode::Managed, &[], false), PowerState::Running, m);
    let mut have = HaResource {
        sid: "ct:100".into(),
        state: Some("enabled".into()),
        max_restart: Some(2),
        max_relocate: None,
        failback: None,
        comment: Some(m.into()),
        digest: Some("d".into()),
    };
    assert!(resource_matches(&want, &have));
    have.state = Some("stopped".into());
    assert!(!resource_matches(&want, &have), "a state changed by hand is put back");
    have.state = Some("started".into());
    have.max_restart = Some(5);
    assert!(!resource_matches(&want, &have));
}

#[test]
fn node_affinity_becomes_one_rule_that_is_ours_only_with_our_mark() {
    let m = "pve.lxc.dev ns/web uid=u1";
    let want = wanted_rule(&ha(HaMode::Managed, &[("pve1", Some(2)), ("pve2", None)], true), 100, m).unwrap();
    assert_eq!(
        (want.resources.as_str(), want.nodes.as_str(), want.strict),
        ("ct:100", "pve1:2,pve2:0", true)
    );
    assert_eq!(rule_id(100), "k8s-ct100");
    let rule = |nodes: &str, comment: &str| HaRule {
        rule: "k8s-ct100".into(),
        rule_type: "node-affinity".into(),
        resources: Some("ct:100".into()),
        nodes: Some(nodes.into()),
        strict: Some(true),
        comment: Some(comment.into()),
        ..Default::default()
    };
    // the same nodes in another order, or without the 0 priority, match
    assert_eq!(
        rule_step(Some(want.clone()), Some(&rule("pve2,pve1:2", m)), m),
        RuleStep::Keep
    );
    assert_eq!(
        rule_step(Some(want.clone()), Some(&rule("pve1:2", m)), m),
        RuleStep::Update(want.clone())
    );
    assert_eq!(rule_step(Some(want.clone()), None, m), RuleStep::Create(want.clone()));
    assert_eq!(
        rule_step(Some(want.clone()), Some(&rule("pve1:2,pve2", "an admin's rule")), m),
        RuleStep::Foreign
    );
    assert_eq!(rule_step(None, Some(&rule("pve1", m)), m), RuleStep::Delete);
    assert_eq!(
        rule_step(None, Some(&rule("pve1", "an admin's rule")), m),
        RuleStep::Keep,
        "a rule not ours is never deleted"
    );
    assert!(wanted_rule(&ha(HaMode::Managed, &[], false), 100, m).is_none());
}

#[test]
fn an_ha_resource_an_admin_made_on_the_container_is_never_taken_over() {
    let m = "pve.lxc.dev ns/web uid=u1";
    let have = |comment: Option<&str>| HaResource {
        sid: "ct:100".into(),
        comment: comment.map(str::to_string),
        ..Default::default()
    };
    assert!(resource_is_foreign(&have(None), m, false), "made by hand, no comment");
    assert!(resource_is_foreign(&have(Some("keep on pve1 (ops)")), m, false));
    assert!(
        resource_is_foreign(&have(Some("pve.lxc.dev ns/web uid=u2")), m, false),
        "an earlier object's"
    );
    assert!(!resource_is_foreign(&have(Some(m)), m, false), "ours");
    assert!(
        !resource_is_foreign(&have(None), m, true),
        "one the operator already manages for it"
    );
}
