//! The container firewall: `spec.firewall` → Proxmox firewall options and rules, kept in sync.
//!
//! Rules are managed as an ordered list placed first. A rule whose comment starts with
//! [`UNMANAGED_MARKER`] was added by hand on purpose and is left alone (it stays after the
//! managed ones); any other rule not in the spec is removed, with an Event.

use crate::controller::InvalidSpec;
use crate::crd::lxc_container::{Direction, Firewall, FirewallLogLevel, FirewallPolicy, LxcContainerSpec};
use crate::pve::{self, FirewallOptions, FirewallOptionsUpdate, FirewallRule, FirewallRuleParams};

/// Comment prefix of hand-made rules the operator leaves alone.
pub const UNMANAGED_MARKER: &str = "[unmanaged]";

/// A rule in comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `in` or `out`.
    pub direction: String,
    /// `ACCEPT`, `DROP`, `REJECT`.
    pub action: String,
    /// Protocol.
    pub proto: Option<String>,
    /// Destination ports.
    pub dport: Option<String>,
    /// Source ports.
    pub sport: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Destination.
    pub dest: Option<String>,
    /// Interface.
    pub iface: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Enabled.
    pub enable: bool,
}

fn policy(p: FirewallPolicy) -> &'static str {
    match p {
        FirewallPolicy::Accept => "ACCEPT",
        FirewallPolicy::Drop => "DROP",
        FirewallPolicy::Reject => "REJECT",
    }
}

fn log_level(l: FirewallLogLevel) -> &'static str {
    match l {
        FirewallLogLevel::Emerg => "emerg",
        FirewallLogLevel::Alert => "alert",
        FirewallLogLevel::Crit => "crit",
        FirewallLogLevel::Err => "err",
        FirewallLogLevel::Warning => "warning",
        FirewallLogLevel::Notice => "notice",
        FirewallLogLevel::Info => "info",
        FirewallLogLevel::Debug => "debug",
        FirewallLogLevel::Nolog => "nolog",
    }
}

fn clean(field: String, v: &Option<String>, allowed: impl Fn(char) -> bool) -> Result<Option<String>, InvalidSpec> {
    match v {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.chars().all(&allowed) => Ok(Some(s.clone())),
        Some(s) => Err(InvalidSpec {
            field,
            message: format!("{s:?} contains characters Proxmox does not accept here"),
        }),
    }
}

/// Checks the spec's rules and turns them into comparable form (pure).
pub fn desired_rules(fw: &Firewall) -> Result<Vec<Rule>, InvalidSpec> {
    let mut out = Vec::new();
    for (i, r) in fw.rules.iter().enumerate() {
        let f = |k: &str| format!("firewall.rules[{i}].{k}");
        let port_chars = |c: char| c.is_ascii_digit() || matches!(c, ',' | ':' | '-');
        let addr_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '_' | '-' | '+');
        if let Some(c) = &r.comment {
            if c.chars().any(char::is_control) {
                return Err(InvalidSpec {
                    field: f("comment"),
                    message: "one line only (no line breaks or control characters)".into(),
                });
            }
            if c.starts_with(UNMANAGED_MARKER) {
                return Err(InvalidSpec {
                    field: f("comment"),
                    message: format!("{UNMANAGED_MARKER} marks hand-made rules; do not use it in the spec"),
                });
            }
        }
        if (r.port.is_some() || r.source_port.is_some())
            && !matches!(r.protocol.as_deref(), Some("tcp" | "udp" | "sctp" | "udplite"))
        {
            return Err(InvalidSpec {
                field: f("protocol"),
                message: "ports need protocol tcp, udp, udplite or sctp".into(),
            });
        }
        for (k, v) in [("port", &r.port), ("sourcePort", &r.source_port)] {
            if let Some(p) = v {
                for part in p.split(',') {
                    let ok = part.split([':', '-']).all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                    if !ok {
                        return Err(InvalidSpec {
                            field: f(k),
                            message: format!("{p:?} is not a port list like 22, 80,443 or 1000:2000"),
                        });
                    }
                }
            }
        }
        out.push(Rule {
            direction: match r.direction {
                Direction::In => "in".into(),
                Direction::Out => "out".into(),
            },
            action: policy(r.action).into(),
            proto: clean(f("protocol"), &r.protocol, |c| c.is_ascii_alphanumeric() || c == '-')?,
            dport: clean(f("port"), &r.port, port_chars)?,
            sport: clean(f("sourcePort"), &r.source_port, port_chars)?,
            source: clean(f("source"), &r.source, addr_chars)?,
            dest: clean(f("dest"), &r.dest, addr_chars)?,
            iface: clean(f("iface"), &r.iface, |c| c.is_ascii_alphanumeric())?,
            comment: r.comment.clone().filter(|c| !c.is_empty()),
            enable: r.enabled,
        });
    }
    Ok(out)
}

/// The comparable form of a rule Proxmox lists.
pub fn observed_rule(r: &FirewallRule) -> Rule {
    let s = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    Rule {
        direction: r.rule_type.clone(),
        action: r.action.clone(),
        proto: s(&r.proto),
        dport: s(&r.dport),
        sport: s(&r.sport),
        source: s(&r.source),
        dest: s(&r.dest),
        iface: s(&r.iface),
        comment: s(&r.comment),
        enable: r.enable.unwrap_or(false),
    }
}

fn unmanaged(r: &FirewallRule) -> bool {
    r.comment.as_deref().is_some_and(|c| c.starts_with(UNMANAGED_MARKER))
}

/// What to change in the rules: the positions to delete (highest first) and the rules to
/// create at positions 0.. in order. Empty when the managed rules already match (pure).
pub fn plan_rules(desired: &[Rule], observed: &[FirewallRule]) -> (Vec<u32>, Vec<Rule>) {
    let mut sorted: Vec<&FirewallRule> = observed.iter().collect();
    sorted.sort_by_key(|r| r.pos);
    let managed: Vec<&FirewallRule> = sorted.iter().copied().filter(|r| !unmanaged(r)).collect();
    let in_order = managed.iter().map(|r| observed_rule(r)).collect::<Vec<_>>() == desired;
    // managed rules must also come before the unmanaged ones
    let first_unmanaged = sorted.iter().position(|r| unmanaged(r)).unwrap_or(sorted.len());
    let placed_first = managed.len() <= first_unmanaged;
    if in_order && placed_first {
        return (Vec::new(), Vec::new());
    }
    let mut delete: Vec<u32> = managed.iter().map(|r| r.pos).collect();
    delete.sort_unstable_by(|a, b| b.cmp(a));
    (delete, desired.to_vec())
}

/// The options update that makes `observed` match `fw`, if any (pure).
///
/// `forced` is the tenant's forced firewall (`Some(ip_filter)`): enabled whatever the spec says,
/// with Proxmox's MAC filter on (the container cannot send with another MAC) and the IP filter
/// as the tenant asks.
pub fn plan_options(fw: &Firewall, observed: &FirewallOptions, forced: Option<bool>) -> Option<FirewallOptionsUpdate> {
    let mut u = FirewallOptionsUpdate::default();
    let mut changed = false;
    let enabled = fw.enabled || forced.is_some();
    if observed.enable.unwrap_or(false) != enabled {
        u.enable = Some(enabled);
        changed = true;
    }
    if let Some(ip_filter) = forced {
        // unset means Proxmox's default: MAC filter on, IP filter off; set explicitly anyway
        if observed.macfilter != Some(true) {
            u.macfilter = Some(true);
            changed = true;
        }
        if observed.ipfilter.unwrap_or(false) != ip_filter {
            u.ipfilter = Some(ip_filter);
            changed = true;
        }
    }
    let pairs = [
        (fw.policy_in.map(policy), &observed.policy_in, &mut u.policy_in),
        (fw.policy_out.map(policy), &observed.policy_out, &mut u.policy_out),
        (fw.log_level.map(log_level), &observed.log_level_in, &mut u.log_level_in),
    ];
    for (want, have, slot) in pairs {
        if let Some(w) = want {
            if have.as_deref() != Some(w) {
                *slot = Some(w.to_string());
                changed = true;
            }
        }
    }
    if let Some(l) = fw.log_level.map(log_level) {
        if observed.log_level_out.as_deref() != Some(l) {
            u.log_level_out = Some(l.to_string());
            changed = true;
        }
    }
    changed.then_some(u)
}

/// Brings the container's firewall in line with `fw`. Returns a note for an Event when
/// something changed (`None` when it already matched).
pub async fn sync(
    client: &pve::Client,
    node: &str,
    vmid: u32,
    fw: &Firewall,
    forced: Option<bool>,
) -> Result<Option<String>, crate::controller::Error> {
    let desired = match desired_rules(fw) {
        Ok(d) => d,
        Err(e) => return Err(crate::controller::Error::Invalid(e)),
    };
    let mut notes = Vec::new();
    let options = client.lxc_firewall_options(node, vmid).await?;
    if let Some(u) = plan_options(fw, &options, forced) {
        client.lxc_set_firewall_options(node, vmid, &u).await?;
        notes.push("firewall options updated".to_string());
    }
    let observed = client.lxc_firewall_rules(node, vmid).await?;
    let (delete, create) = plan_rules(&desired, &observed);
    if !delete.is_empty() || !create.is_empty() {
        let unknown = observed
            .iter()
            .filter(|r| !unmanaged(r) && !desired.contains(&observed_rule(r)))
            .count();
        // highest position first, each with the digest of the rule set it was planned on: a
        // rule set changed in between (a rule added by hand) makes Proxmox refuse the delete
        // instead of removing another rule
        let mut digest = observed.first().and_then(|r| r.digest.clone());
        for (i, pos) in delete.iter().enumerate() {
            client
                .lxc_firewall_rule_delete(node, vmid, *pos, digest.as_deref())
                .await?;
            if i + 1 < delete.len() {
                digest = client
                    .lxc_firewall_rules(node, vmid)
                    .await?
                    .first()
                    .and_then(|r| r.digest.clone());
            }
        }
        for (i, r) in create.iter().enumerate() {
            let params = FirewallRuleParams {
                rule_type: Some(r.direction.clone()),
                action: Some(r.action.clone()),
                enable: Some(r.enable),
                source: r.source.clone(),
                dest: r.dest.clone(),
                proto: r.proto.clone(),
                dport: r.dport.clone(),
                sport: r.sport.clone(),
                iface: r.iface.clone(),
                comment: r.comment.clone(),
                pos: Some(i as u32),
                ..Default::default()
            };
            client.lxc_firewall_rule_create(node, vmid, &params).await?;
        }
        let n = create.len();
        let mut note = format!("firewall rules rewritten ({n} rule{})", if n == 1 { "" } else { "s" });
        if unknown > 0 {
            note.push_str(&format!("; removed {unknown} rule(s) not in the spec (mark hand-made rules with a comment starting {UNMANAGED_MARKER} to keep them)"));
        }
        notes.push(note);
    }
    Ok((!notes.is_empty()).then(|| notes.join("; ")))
}

/// Why Proxmox applies none of `spec.firewall` (pure): rules or an enabled firewall while no
/// interface has `firewall: true` (Proxmox filters only the interfaces marked so: the classic
/// gotcha), or rules while the firewall is off.
pub fn unapplied(spec: &LxcContainerSpec) -> Option<String> {
    let fw = spec.firewall.as_ref()?;
    let rules = fw.rules.len();
    let what = match rules {
        1 => "1 rule".to_string(),
        n => format!("{n} rules"),
    };
    if (fw.enabled || rules > 0) && !spec.network.iter().any(|n| n.firewall == Some(true)) {
        return Some(format!(
            "spec.firewall: {what} set, but no interface has `firewall: true` (spec.network[].firewall), so Proxmox applies none of them"
        ));
    }
    (!fw.enabled && rules > 0)
        .then(|| format!("spec.firewall: {what} set, but `enabled` is false, so Proxmox applies none of them"))
}

/// A Warning Event when [`unapplied`] finds the firewall cannot apply, once per generation.
pub(super) async fn warn_unapplied(p: &super::pass::P<'_>) {
    if p.status.observed_generation == p.generation() {
        return;
    }
    if let Some(m) = unapplied(&p.obj.spec) {
        p.event(crate::controller::kernel::Reason::FirewallNotApplied, m).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::lxc_container::FirewallRule as SpecRule;

    fn spec_rule(port: &str, comment: &str) -> SpecRule {
        SpecRule {
            action: FirewallPolicy::Accept,
            direction: Direction::In,
            protocol: Some("tcp".into()),
            port: Some(port.into()),
            source_port: None,
            source: None,
            dest: None,
            iface: None,
            comment: Some(comment.into()),
            enabled: true,
        }
    }

    fn pve_rule(pos: u32, port: &str, comment: &str) -> FirewallRule {
        FirewallRule {
            pos,
            rule_type: "in".into(),
            action: "ACCEPT".into(),
            enable: Some(true),
            proto: Some("tcp".into()),
            dport: Some(port.into()),
            comment: Some(comment.into()),
            ..Default::default()
        }
    }

    fn fw(rules: Vec<SpecRule>) -> Firewall {
        Firewall {
            enabled: true,
            rules,
            ..Default::default()
        }
    }

    #[test]
    fn matching_rules_need_nothing() {
        let d = desired_rules(&fw(vec![spec_rule("22", "ssh"), spec_rule("80", "web")])).unwrap();
        let (del, create) = plan_rules(&d, &[pve_rule(0, "22", "ssh"), pve_rule(1, "80", "web")]);
        assert!(del.is_empty() && create.is_empty());
    }

    #[test]
    fn reordered_or_extra_rules_are_rewritten_and_hand_marked_ones_kept() {
        let d = desired_rules(&fw(vec![spec_rule("22", "ssh"), spec_rule("80", "web")])).unwrap();
        let (del, create) = plan_rules(&d, &[pve_rule(0, "80", "web"), pve_rule(1, "22", "ssh")]);
        assert_eq!(del, vec![1, 0]);
        assert_eq!(create.len(), 2);
        let (del, _) = plan_rules(
            &d,
            &[
                pve_rule(0, "22", "ssh"),
                pve_rule(1, "80", "web"),
                pve_rule(2, "3306", "by hand"),
            ],
        );
        assert_eq!(del, vec![2, 1, 0]);
        let (del, create) = plan_rules(
            &d,
            &[
                pve_rule(0, "22", "ssh"),
                pve_rule(1, "80", "web"),
                pve_rule(2, "3306", "[unmanaged] dba"),
            ],
        );
        assert!(del.is_empty() && create.is_empty());
    }

    #[test]
    fn a_comment_with_a_newline_or_ports_without_protocol_are_refused() {
        let e = desired_rules(&fw(vec![spec_rule("22", "a\nb")])).unwrap_err();
        assert_eq!(e.field, "firewall.rules[0].comment");
        let mut r = spec_rule("22", "x");
        r.protocol = None;
        assert_eq!(
            desired_rules(&fw(vec![r])).unwrap_err().field,
            "firewall.rules[0].protocol"
        );
        let mut r = spec_rule("22", "x");
        r.source = Some("10.0.0.0/8,1.2.3.4".into());
        assert_eq!(
            desired_rules(&fw(vec![r])).unwrap_err().field,
            "firewall.rules[0].source"
        );
    }

    #[test]
    fn options_are_updated_only_when_they_differ() {
        let f = Firewall {
            enabled: true,
            policy_in: Some(FirewallPolicy::Drop),
            ..Default::default()
        };
        let same = FirewallOptions {
            enable: Some(true),
            policy_in: Some("DROP".into()),
            ..Default::default()
        };
        assert!(plan_options(&f, &same, None).is_none());
        let off = FirewallOptions::default();
        let u = plan_options(&f, &off, None).unwrap();
        assert_eq!(u.enable, Some(true));
        assert_eq!(u.policy_in.as_deref(), Some("DROP"));
    }

    #[test]
    fn firewall_rules_without_a_firewalled_interface_are_reported_as_not_applied() {
        let spec = |enabled: bool, rules: usize, iface_fw: Option<bool>| {
            let mut s: LxcContainerSpec = serde_json::from_value(serde_json::json!({
                "source": {"osTemplate": "local:vztmpl/debian.tar.zst"},
                "network": [{"name": "eth0", "bridge": "vmbr0"}],
            }))
            .unwrap();
            s.network[0].firewall = iface_fw;
            s.firewall = Some(Box::new(Firewall {
                enabled,
                rules: (0..rules)
                    .map(|_| {
                        serde_json::from_value(serde_json::json!({"direction": "in", "action": "ACCEPT"})).unwrap()
                    })
                    .collect(),
                ..Default::default()
            }));
            s
        };
        let none = unapplied(&spec(true, 1, None)).unwrap();
        assert!(
            none.contains("1 rule set, but no interface has `firewall: true`"),
            "{none}"
        );
        assert!(unapplied(&spec(true, 2, Some(false))).unwrap().contains("2 rules"));
        assert!(unapplied(&spec(false, 1, Some(true)))
            .unwrap()
            .contains("`enabled` is false"));
        assert_eq!(unapplied(&spec(true, 1, Some(true))), None);
        assert_eq!(unapplied(&spec(false, 0, None)), None);
    }
}
