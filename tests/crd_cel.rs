//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated with a real CEL implementation
//! (cel-python, in the project's venv from tests/scripts/python-venv.sh): the 1.20 test apiserver
//! ignores them, newer clusters enforce them. Every rule in `crds/*.yaml` must have cases here that
//! it admits and cases it refuses; a new rule without cases fails the test.
//!
//! Evaluation follows the apiserver: a rule is checked at its schema node with `self` bound to the
//! value there; a transition rule (one that names `oldSelf`) is checked only on update and only
//! when the old and the new object both have a value at that node.

mod common;

use common::repo;
use serde_json::{json, Value};
use std::process::{Command, Stdio};

/// One CEL rule found in a CRD: the kind, the field path of its schema node, the rule, the message.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    kind: String,
    path: String,
    rule: String,
    message: String,
}

fn collect(schema: &Value, path: &str, kind: &str, out: &mut Vec<Rule>) {
    for v in schema["x-kubernetes-validations"].as_array().into_iter().flatten() {
        out.push(Rule {
            kind: kind.into(),
            path: path.into(),
            rule: v["rule"].as_str().unwrap().into(),
            message: v["message"].as_str().unwrap_or("").into(),
        });
    }
    if let Some(props) = schema["properties"].as_object() {
        for (name, sub) in props {
            collect(
                sub,
                &if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                },
                kind,
                out,
            );
        }
    }
    for key in ["items", "additionalProperties"] {
        if schema[key].is_object() {
            collect(&schema[key], &format!("{path}[*]"), kind, out);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            collect(sub, path, kind, out);
        }
    }
}

/// Every rule of every CRD in `crds/`.
fn rules() -> Vec<Rule> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let crd: Value = serde_saphyr::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            collect(&v["schema"]["openAPIV3Schema"], "", &kind, &mut out);
        }
    }
    out
}

/// An object change: the old object (`None` on create) and the new one.
struct Case {
    what: &'static str,
    old: Option<Value>,
    new: Value,
    admitted: bool,
}

fn case(what: &'static str, old: Option<Value>, new: Value, admitted: bool) -> Case {
    Case {
        what,
        old,
        new,
        admitted,
    }
}

/// A rule's key: (kind, field path, rule text).
type Key = (&'static str, &'static str, &'static str);

/// The cases of each rule, by (kind, path, rule).
fn cases() -> Vec<(Key, Vec<Case>)> {
    let c = |spec: Value| json!({"spec": spec});
    let os = json!({"osTemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"});
    let range = |min: u32, max: u32| json!({"min": min, "max": max});
    let tenant = |k: &str, v: Value| c(json!({"clusters": ["pve"], k: v}));
    let ranges = |k: &'static str, list: bool| {
        let wrap = move |r: Value| if list { json!([r]) } else { r };
        vec![
            case("a range", None, tenant(k, wrap(range(100, 199))), true),
            case("a single vmid", None, tenant(k, wrap(range(150, 150))), true),
            case("min above max", None, tenant(k, wrap(range(200, 100))), false),
        ]
    };
    let one_of_source = "(has(self.osTemplate) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.clone) ? 1 : 0) + (has(self.backup) ? 1 : 0) + (has(self.image) ? 1 : 0) == 1";
    let nic = |ip: &str, v: Value| c(json!({"source": os, "network": [{"name": "eth0", "bridge": "vmbr0", ip: v}]}));
    let image = |r: &str| c(json!({"source": {"image": {"reference": r, "storage": "local"}}}));
    let res = |k: &str, v: Value| c(json!({"source": os, "resources": {k: v}}));
    let binary = |k: &'static str| {
        vec![
            case("binary units", None, res(k, json!("1Gi")), true),
            case("MiB", None, res(k, json!("512Mi")), true),
            case("zero", None, res(k, json!("0")), true),
            case("a plain number of bytes", None, res(k, json!(1_073_741_824u64)), true),
            case("decimal gigabytes", None, res(k, json!("1G")), false),
            case("decimal megabytes", None, res(k, json!("512M")), false),
        ]
    };
    // LxcContainer and LxcTemplate share NetworkInterface and Resources, so their rules too
    let shared = |kind: &'static str| -> Vec<(Key, Vec<Case>)> {
        vec![
            (
                (kind, "spec.network[*].ipv4", "has(self.dhcp) != has(self.address)"),
                vec![
                    case("dhcp", None, nic("ipv4", json!({"dhcp": true})), true),
                    case(
                        "an address",
                        None,
                        nic("ipv4", json!({"address": "10.0.0.7/24", "gateway": "10.0.0.1"})),
                        true,
                    ),
                    case(
                        "dhcp and an address",
                        None,
                        nic("ipv4", json!({"dhcp": true, "address": "10.0.0.7/24"})),
                        false,
                    ),
                    case(
                        "only a gateway",
                        None,
                        nic("ipv4", json!({"gateway": "10.0.0.1"})),
                        false,
                    ),
                ],
            ),
            (
                (
                    kind,
                    "spec.network[*].ipv6",
                    "(has(self.auto) ? 1 : 0) + (has(self.dhcp) ? 1 : 0) + (has(self.address) ? 1 : 0) == 1",
                ),
                vec![
                    case("SLAAC", None, nic("ipv6", json!({"auto": true})), true),
                    case("an address", None, nic("ipv6", json!({"address": "fd00::5/64"})), true),
                    case(
                        "SLAAC and DHCPv6",
                        None,
                        nic("ipv6", json!({"auto": true, "dhcp": true})),
                        false,
                    ),
                    case("nothing", None, nic("ipv6", json!({})), false),
                ],
            ),
            (
                (kind, "spec.resources.memory", "!string(self).matches('[kMGTPE]$')"),
                binary("memory"),
            ),
            (
                (kind, "spec.resources.swap", "!string(self).matches('[kMGTPE]$')"),
                binary("swap"),
            ),
        ]
    };
    let mut all = vec![
        (
            ("LxcContainer", "spec.source", one_of_source),
            vec![
                case("an OS template", None, c(json!({"source": os})), true),
                case("an image", None, image("nginx:1.27"), true),
                case(
                    "an OS template and a template",
                    None,
                    c(json!({"source": {"osTemplate": os["osTemplate"], "template": {"name": "base"}}})),
                    false,
                ),
                case("nothing", None, c(json!({"source": {}})), false),
            ],
        ),
        (
            ("LxcContainer", "spec.source.backup", "has(self.name) != has(self.volid)"),
            vec![
                case("an LxcBackup", None, c(json!({"source": {"backup": {"name": "nightly"}}})), true),
                case(
                    "an archive",
                    None,
                    c(json!({"source": {"backup": {"volid": "nfs:backup/vzdump-lxc-100-2026_11_27-02_00_00.tar.zst"}}})),
                    true,
                ),
                case(
                    "both",
                    None,
                    c(json!({"source": {"backup": {"name": "nightly", "volid": "nfs:backup/vzdump-lxc-100-2026_11_27-02_00_00.tar.zst"}}})),
                    false,
                ),
                case("neither", None, c(json!({"source": {"backup": {}}})), false),
            ],
        ),
        (
            (
                "LxcContainer",
                "spec.source.image.reference",
                "!self.contains('@') && self.matches(':[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')",
            ),
            vec![
                case("a tag", None, image("docker.io/library/nginx:1.27"), true),
                case("a registry port and a tag", None, image("registry:5000/team/app:v2"), true),
                case("no tag", None, image("nginx"), false),
                case("a registry port, no tag", None, image("registry:5000/team/app"), false),
                case("a digest", None, image("nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"), false),
            ],
        ),
        (
            ("ProxmoxTenant", "spec.vmidRange", "self.min <= self.max"),
            ranges("vmidRange", false),
        ),
        (
            ("ProxmoxTenant", "spec.sharedVmids[*]", "self.min <= self.max"),
            ranges("sharedVmids", true),
        ),
        (
            (
                "LxcContainer",
                "spec.source",
                "self == oldSelf || (has(self.image) && has(oldSelf.image) && self.image.storage == oldSelf.image.storage)",
            ),
            vec![
                case("create", None, c(json!({"source": os})), true),
                case(
                    "a new image tag (an image update)",
                    Some(c(json!({"source": {"image": {"reference": "nginx:1.27", "storage": "local"}}}))),
                    c(json!({"source": {"image": {"reference": "nginx:1.28", "storage": "local"}}})),
                    true,
                ),
                case(
                    "an image moved to another storage",
                    Some(c(json!({"source": {"image": {"reference": "nginx:1.27", "storage": "local"}}}))),
                    c(json!({"source": {"image": {"reference": "nginx:1.27", "storage": "nfs"}}})),
                    false,
                ),
                case(
                    "an image replaced by an OS template",
                    Some(c(json!({"source": {"image": {"reference": "nginx:1.27", "storage": "local"}}}))),
                    c(json!({"source": os})),
                    false,
                ),
                case(
                    "unchanged source, other fields edited",
                    Some(c(json!({"source": os, "hostname": "a"}))),
                    c(json!({"source": os, "hostname": "b"})),
                    true,
                ),
                case(
                    "another OS template",
                    Some(c(json!({"source": os}))),
                    c(json!({"source": {"osTemplate": "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"}})),
                    false,
                ),
                case(
                    "switched to a clone",
                    Some(c(json!({"source": os}))),
                    c(json!({"source": {"clone": {"vmid": 9000, "full": true}}})),
                    false,
                ),
                case(
                    "unchanged nested template source",
                    Some(c(
                        json!({"source": {"template": {"name": "debian-base", "full": false}}}),
                    )),
                    c(json!({"source": {"template": {"name": "debian-base", "full": false}}})),
                    true,
                ),
                case(
                    "linked clone made full",
                    Some(c(
                        json!({"source": {"template": {"name": "debian-base", "full": false}}}),
                    )),
                    c(json!({"source": {"template": {"name": "debian-base", "full": true}}})),
                    false,
                ),
            ],
        ),
        (
            ("LxcContainer", "spec.unprivileged", "self == oldSelf"),
            vec![
                case(
                    "create privileged",
                    None,
                    c(json!({"source": os, "unprivileged": false})),
                    true,
                ),
                case(
                    "unchanged",
                    Some(c(json!({"source": os, "unprivileged": true}))),
                    c(json!({"source": os, "unprivileged": true})),
                    true,
                ),
                case(
                    "made privileged",
                    Some(c(json!({"source": os, "unprivileged": true}))),
                    c(json!({"source": os, "unprivileged": false})),
                    false,
                ),
                case(
                    "made unprivileged",
                    Some(c(json!({"source": os, "unprivileged": false}))),
                    c(json!({"source": os, "unprivileged": true})),
                    false,
                ),
            ],
        ),
        (
            ("LxcContainer", "spec.clusterRef", "self == oldSelf"),
            vec![
                case(
                    "create with a clusterRef",
                    None,
                    c(json!({"source": os, "clusterRef": {"name": "a"}})),
                    true,
                ),
                case(
                    "unchanged",
                    Some(c(json!({"source": os, "clusterRef": {"name": "a"}}))),
                    c(json!({"source": os, "clusterRef": {"name": "a"}})),
                    true,
                ),
                case(
                    "another cluster",
                    Some(c(json!({"source": os, "clusterRef": {"name": "a"}}))),
                    c(json!({"source": os, "clusterRef": {"name": "b"}})),
                    false,
                ),
                // set later or removed: no transition rule sees it; the operator compares the
                // cluster recorded in status.cluster
                case(
                    "set later",
                    Some(c(json!({"source": os}))),
                    c(json!({"source": os, "clusterRef": {"name": "b"}})),
                    true,
                ),
            ],
        ),
        (
            ("LxcContainer", "spec.vmid", "self == oldSelf"),
            vec![
                case("create with a vmid", None, c(json!({"source": os, "vmid": 1234})), true),
                case(
                    "unchanged",
                    Some(c(json!({"source": os, "vmid": 1234}))),
                    c(json!({"source": os, "vmid": 1234})),
                    true,
                ),
                case(
                    "another vmid",
                    Some(c(json!({"source": os, "vmid": 1234}))),
                    c(json!({"source": os, "vmid": 1235})),
                    false,
                ),
                // Both are outside what a transition rule sees (no old or no new value): the
                // operator itself refuses a vmid that differs from status.vmid.
                case(
                    "set later (allocated before)",
                    Some(c(json!({"source": os}))),
                    c(json!({"source": os, "vmid": 1234})),
                    true,
                ),
                case(
                    "removed",
                    Some(c(json!({"source": os, "vmid": 1234}))),
                    c(json!({"source": os})),
                    true,
                ),
            ],
        ),
    ];
    all.extend(shared("LxcContainer"));
    all.extend(shared("LxcTemplate"));
    all
}

/// The value at a dotted path; `name[*]` is the first item of list `name` (cases give one).
fn at<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(obj, |v, k| match k.strip_suffix("[*]") {
            Some(list) => v.get(list)?.get(0),
            None => v.get(k),
        })
        .filter(|v| !v.is_null())
}

const CEL_PY: &str = r#"
import json, sys
import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
env = celpy.Environment()
out = []
for req in json.load(sys.stdin):
    try:
        prog = env.program(env.compile(req["rule"]))
        act = {"self": json_to_cel(req["self"])}
        if "oldSelf" in req:
            act["oldSelf"] = json_to_cel(req["oldSelf"])
        r = prog.evaluate(act)
        out.append(bool(r) if isinstance(r, celtypes.BoolType) else "not a bool: %r" % (r,))
    except Exception as e:
        out.append("error: %s: %s" % (type(e).__name__, e))
print(json.dumps(out))
"#;

/// Evaluates each `(rule, self, oldSelf)` with cel-python: `true`/`false`, or the error text.
fn evaluate(reqs: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let python = common::venv_python();
    let mut child = Command::new(python)
        .arg("-c")
        .arg(CEL_PY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::from(reqs.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cel-python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_cel_rule_in_the_crds_has_cases_that_it_admits_and_refuses() {
    let found = rules();
    assert!(!found.is_empty(), "no CEL rules found: the collector is broken");
    let table = cases();
    for r in &found {
        let cases = table
            .iter()
            .find(|((k, p, rule), _)| *k == r.kind && *p == r.path && *rule == r.rule);
        let cases = cases
            .unwrap_or_else(|| {
                panic!(
                    "the CEL rule {:?} at {}.{} has no cases in tests/crd_cel.rs: add what it must admit and refuse",
                    r.rule, r.kind, r.path
                )
            })
            .1
            .as_slice();
        assert!(
            cases.iter().any(|c| c.admitted) && cases.iter().any(|c| !c.admitted),
            "{}.{}: cases must admit and refuse",
            r.kind,
            r.path
        );
        assert!(
            !r.message.is_empty(),
            "{}.{}: the rule has no message (users would see the CEL text)",
            r.kind,
            r.path
        );
    }
    for ((k, p, rule), _) in &table {
        assert!(
            found.iter().any(|r| r.kind == *k && r.path == *p && r.rule == *rule),
            "cases for a rule the CRDs no longer have: {k}.{p} {rule:?}"
        );
    }
}

#[test]
fn the_crds_cel_rules_admit_and_refuse_what_their_cases_say() {
    let found = rules();
    let table = cases();
    let mut reqs = Vec::new();
    let mut expect = Vec::new();
    let mut not_evaluated = 0;
    for r in &found {
        let Some((_, cases)) = table
            .iter()
            .find(|((k, p, rule), _)| *k == r.kind && *p == r.path && *rule == r.rule)
        else {
            continue;
        };
        let transition = r.rule.contains("oldSelf");
        for c in cases {
            let new = at(&c.new, &r.path);
            let old = c.old.as_ref().and_then(|o| at(o, &r.path));
            match (new, old, transition) {
                (Some(new), Some(old), true) => reqs.push(json!({"rule": r.rule, "self": new, "oldSelf": old})),
                (Some(new), _, false) => reqs.push(json!({"rule": r.rule, "self": new})),
                _ => {
                    // The apiserver does not evaluate this rule for this change: it is admitted.
                    assert!(
                        c.admitted,
                        "{}.{} {:?}: `{}` expects a refusal the apiserver would never make",
                        r.kind, r.path, r.rule, c.what
                    );
                    not_evaluated += 1;
                    continue;
                }
            }
            expect.push((r, c));
        }
    }
    let results = evaluate(&reqs);
    assert_eq!(results.len(), expect.len());
    for ((r, c), got) in expect.iter().zip(&results) {
        assert_eq!(
            got,
            &json!(c.admitted),
            "{}.{} rule {:?} ({:?}), case `{}`: cel-python says {got}",
            r.kind,
            r.path,
            r.rule,
            r.message,
            c.what
        );
    }
    eprintln!(
        "{} CEL rules, {} evaluations with cel-python, {} changes the apiserver would not evaluate",
        found.len(),
        results.len(),
        not_evaluated
    );
}

#[test]
fn the_cel_evaluator_refuses_a_broken_rule_and_a_wrong_type() {
    let got = evaluate(&[
        json!({"rule": "self ==", "self": 1}),
        json!({"rule": "self.size() > 0", "self": 5}),
        json!({"rule": "self == oldSelf", "self": {"a": 1}, "oldSelf": {"a": 1}}),
    ]);
    assert!(got[0].as_str().is_some_and(|e| e.starts_with("error")), "{got:?}");
    assert!(got[1].as_str().is_some_and(|e| e.starts_with("error")), "{got:?}");
    assert_eq!(got[2], json!(true));
}

/// The messages users read when a rule refuses: plain words naming what to write instead.
const MESSAGES: &[(&str, &str, &str)] = &[
    ("LxcContainer", "spec.network[*].ipv4", "set either `dhcp` or `address`"),
    (
        "LxcContainer",
        "spec.network[*].ipv6",
        "set exactly one of `auto`, `dhcp` or `address`",
    ),
    (
        "LxcContainer",
        "spec.source",
        "set exactly one of `osTemplate`, `template`, `clone`, `backup` or `image`",
    ),
    (
        "LxcContainer",
        "spec.source.backup",
        "set either `name` (an LxcBackup) or `volid` (an archive)",
    ),
    (
        "LxcContainer",
        "spec.source.image.reference",
        "a tag is required, e.g. `docker.io/library/nginx:1.27` (digests are refused)",
    ),
    (
        "LxcContainer",
        "spec.resources.memory",
        "memory takes binary units: 1Gi, 512Mi (Proxmox counts in MiB)",
    ),
    (
        "LxcContainer",
        "spec.resources.swap",
        "swap takes binary units: 1Gi, 512Mi (Proxmox counts in MiB)",
    ),
];

#[test]
fn conflicting_or_malformed_fields_are_refused_with_a_message_saying_what_to_write() {
    let found = rules();
    for (kind, path, message) in MESSAGES {
        assert!(
            found
                .iter()
                .any(|r| r.kind == *kind && r.path == *path && r.message == *message),
            "{kind}.{path}: no rule with the message {message:?}; found {:?}",
            found
                .iter()
                .filter(|r| r.path == *path)
                .map(|r| &r.message)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn duplicate_nic_names_are_refused_at_admission() {
    let cp = common::ControlPlane::shared();
    let ns = cp.namespace("dupnic");
    let nic = |ip: &str| json!({"name": "eth0", "bridge": "vmbr0", "ipv4": {"address": ip}});
    let obj = |name: &str, network: Value| {
        json!({
            "apiVersion": "pve.lxc.dev/v1alpha1", "kind": "LxcContainer",
            "metadata": {"name": name},
            "spec": {
                "source": {"osTemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"},
                "network": network,
            }
        })
        .to_string()
    };
    let create = |o: String| cp.kubectl_stdin(&["create", "--validate=false", "-n", &ns, "-f", "-"], Some(&o));
    let twice = create(obj("twice", json!([nic("10.0.0.5/24"), nic("10.0.0.6/24")])));
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(!twice.status.success(), "two NICs named eth0 were admitted");
    assert!(
        err.contains("spec.network[1]") && err.contains("Duplicate value"),
        "the refusal names the list entry: {err}"
    );
    let mut second = nic("10.0.0.6/24");
    second["name"] = json!("eth1");
    let ok = create(obj("distinct", json!([nic("10.0.0.5/24"), second])));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
}
