//! Fuzzing by proptest at volume (cargo-fuzz needs nightly; this runs on stable): arbitrary and
//! near-valid input for the property-string parsers/encoders and the Proxmox response decoders.
//!
//! Properties: nothing panics; whatever a parser accepts encodes, and decode → encode → decode
//! gives the same value and the same string (a fixed point after one round).
//!
//! CI runs `FUZZ_DEFAULT_CASES` (256) cases per target in seconds; by hand:
//! `PROPTEST_CASES=1000000 cargo test --release --test proptest_fuzz` (see tests/bench/README.md).
//! Every run derives its seed from `PLO_TEST_SEED` (tests/common/seed.rs; printed with a
//! failure): `PLO_TEST_SEED=N cargo test --test proptest_fuzz` runs the same cases again. A
//! failure is saved in `tests/proptest-regressions/proptest_fuzz.txt` (commit it): those cases
//! run first on every run; a failing input worth naming also becomes a test in the `regressions`
//! module at the end.

#[path = "common/seed.rs"]
mod seed;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use proxmox_lxc_operator::pve::props::{encode_tags, format_size, parse_size, parse_tags};
use proxmox_lxc_operator::pve::{
    ClusterResource, Features, Interface, LxcConfig, MountPoint, NetConfig, Startup, TaskStatus, Upid,
};
use serde_json::Value;

const FUZZ_DEFAULT_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FUZZ_DEFAULT_CASES);
    Config {
        cases,
        rng_seed: seed::proptest_seed("proptest_fuzz"),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/proptest_fuzz.txt"
        )))),
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

/// The first cases a runner with this binary's config generates, as text.
fn first_cases(n: usize) -> Vec<String> {
    let mut runner = TestRunner::new(config());
    let strategy = any_text(NET_KEYS);
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

#[test]
fn the_same_test_seed_generates_the_same_cases() {
    let (a, b) = (first_cases(16), first_cases(16));
    assert_eq!(a, b, "two runners with one PLO_TEST_SEED drew different cases");
    assert_eq!(
        seed::derive(12345, "proptest_fuzz"),
        seed::derive(12345, "proptest_fuzz")
    );
    assert_ne!(
        seed::derive(12345, "proptest_fuzz"),
        seed::derive(12346, "proptest_fuzz")
    );
    assert_ne!(seed::derive(12345, "proptest_fuzz"), seed::derive(12345, "pve_props"));
    // a fingerprint of the cases: two runs with the same PLO_TEST_SEED print the same one
    let fingerprint = seed::derive(a.len() as u64, &a.concat());
    eprintln!("first 16 cases: fingerprint {fingerprint:016x}, first {:?}", a[0]);
}

// ------------------------------------------------------------------------- input generators

const NET_KEYS: &[&str] = &[
    "name",
    "bridge",
    "firewall",
    "gw",
    "gw6",
    "host-managed",
    "hwaddr",
    "ip",
    "ip6",
    "link_down",
    "mtu",
    "rate",
    "tag",
    "trunks",
    "type",
];
const MP_KEYS: &[&str] = &[
    "volume",
    "mp",
    "acl",
    "backup",
    "keepattrs",
    "mountoptions",
    "quota",
    "replicate",
    "ro",
    "shared",
    "size",
];
const FEATURE_KEYS: &[&str] = &["force_rw_sys", "fuse", "keyctl", "mknod", "mount", "nesting"];
const STARTUP_KEYS: &[&str] = &["order", "up", "down"];

/// A value as it may appear in a property string, biased towards edge cases.
fn prop_value() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[A-Za-z0-9_./:+-]{1,12}",
        2 => prop_oneof![Just("1"), Just("0"), Just("on"), Just("off"), Just("yes"), Just("TRUE"), Just("2"), Just("")].prop_map(String::from),
        2 => "[0-9]{1,22}(\\.[0-9]{0,4})?[KMGTkmgt]?",
        1 => "(-|\\+)?(NaN|inf|infinity|1e308|1e-9|0x1f|-0)",
        2 => "[0-9]{1,5}(;[0-9]{0,5}){0,4}",
        2 => "[a-z]{1,4}(;[a-z]{1,4}){0,3}",
        1 => "[ \\t]?[a-z0-9=,;\"'\\\\]{0,6}[ \\t]?",
        1 => any::<String>(),
    ]
    .boxed()
}

/// `key=value,...` strings made of the parser's own keys (and some unknown ones), with an
/// optional bare default value first; sometimes broken.
fn prop_string(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    let key = prop_oneof![4 => proptest::sample::select(keys).prop_map(String::from), 1 => "[a-z][a-z0-9_-]{0,6}", 1 => "[A-Z0-9 =]{0,3}"];
    let pair = (key, prop_value(), 0..10u8).prop_map(|(k, v, r)| match r {
        0 => k,               // key without `=`
        1 => format!("={v}"), // value without key
        _ => format!("{k}={v}"),
    });
    (
        proptest::option::of(prop_value()),
        proptest::collection::vec(pair, 0..8),
        0..6u8,
    )
        .prop_map(|(first, pairs, sep)| {
            let mut parts: Vec<String> = first.into_iter().collect();
            parts.extend(pairs);
            let joined = parts.join(",");
            match sep {
                0 => format!("{joined},"),
                1 => format!(",{joined}"),
                2 => joined.replace(',', ",,"),
                _ => joined,
            }
        })
        .boxed()
}

/// Text for the "no panic" checks: arbitrary strings and JSON with arbitrary floats.
fn junk() -> BoxedStrategy<String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec((any::<f64>(), "[a-z]{1,8}"), 0..6).prop_map(|v| {
            let m: serde_json::Map<String, Value> = v
                .into_iter()
                .filter_map(|(f, k)| Some((k, Value::Number(serde_json::Number::from_f64(f)?))))
                .collect();
            Value::Object(m).to_string()
        }),
        "[\\[\\]{}:,\"0-9a-z.eE+-]{0,40}",
    ]
    .boxed()
}

fn any_text(keys: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![3 => prop_string(keys), 1 => any::<String>(), 1 => "[a-z=,;: 0-9]{0,30}"].boxed()
}

/// Arbitrary JSON, with object keys drawn from `keys` most of the time.
fn json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // floats exactly representable by serde_json's text parser (≤ 10 digits, |exp| ≤ 15):
        // its default parser is not correctly rounded for all f64, which is serde_json's own
        // limit (feature `float_roundtrip`), not the decoders'
        (any::<i32>(), -15..15i32).prop_map(
            |(m, e)| serde_json::Number::from_f64(format!("{m}e{e}").parse().unwrap())
                .map(Value::Number)
                .unwrap_or(Value::Null)
        ),
        prop_value().prop_map(Value::from),
        "-?[0-9]{1,21}(\\.[0-9]{1,3})?".prop_map(Value::from),
    ];
    let key = prop_oneof![4 => proptest::sample::select(keys).prop_map(String::from), 1 => "[a-z0-9_-]{1,8}"];
    leaf.prop_recursive(2, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON object whose values are mostly plausible, for the typed decoders.
fn json_object(keys: &'static [&'static str], prop_keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    let val = prop_oneof![3 => json(prop_keys), 3 => prop_string(prop_keys).prop_map(Value::from)];
    let key = prop_oneof![5 => proptest::sample::select(keys).prop_map(String::from), 1 => "(net|mp|unused)[0-9]{1,3}", 1 => "[a-z0-9_-]{1,8}"];
    proptest::collection::btree_map(key, val, 0..16)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

const LXC_CONFIG_KEYS: &[&str] = &[
    "hostname",
    "ostype",
    "arch",
    "cores",
    "cpulimit",
    "cpuunits",
    "memory",
    "swap",
    "unprivileged",
    "onboot",
    "protection",
    "template",
    "lock",
    "tags",
    "description",
    "rootfs",
    "features",
    "startup",
    "nameserver",
    "searchdomain",
    "digest",
    "net0",
    "net1",
    "mp0",
    "unused0",
];
const CLUSTER_RESOURCE_KEYS: &[&str] = &[
    "id",
    "type",
    "vmid",
    "node",
    "status",
    "name",
    "tags",
    "lock",
    "template",
    "pool",
    "hastate",
    "cpu",
    "maxcpu",
    "mem",
    "maxmem",
    "disk",
    "maxdisk",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "uptime",
    "storage",
    "content",
    "shared",
    "plugintype",
];
const TASK_STATUS_KEYS: &[&str] = &[
    "upid",
    "node",
    "pid",
    "pstart",
    "starttime",
    "type",
    "id",
    "user",
    "tokenid",
    "status",
    "exitstatus",
];
const INTERFACE_KEYS: &[&str] = &[
    "name",
    "hwaddr",
    "hardware-address",
    "inet",
    "inet6",
    "ip-addresses",
    "ip-address",
    "ip-address-type",
    "prefix",
];

// ------------------------------------------------------------------------- checks

/// decode → encode → decode: same value, same string.
fn stable<T: PartialEq + std::fmt::Debug, E: std::fmt::Debug, F: std::fmt::Debug>(
    input: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    encode: impl Fn(&T) -> Result<String, F>,
) -> Result<(), TestCaseError> {
    let Ok(v) = parse(input) else { return Ok(()) };
    let Ok(s) = encode(&v) else { return Ok(()) };
    let v2 = parse(&s).map_err(|e| {
        TestCaseError::fail(format!(
            "{input:?} parsed to {v:?}, encoded to {s:?}, which does not parse: {e:?}"
        ))
    })?;
    prop_assert_eq!(&v2, &v, "input {:?} encoded to {:?}", input, s);
    let s2 = encode(&v2).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    prop_assert_eq!(s2, s);
    Ok(())
}

fn nan_free_net(n: &NetConfig) -> bool {
    n.rate.is_none_or(|r| r.is_finite())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn net_config(s in any_text(NET_KEYS)) {
        if let Ok(n) = NetConfig::parse(&s) {
            if nan_free_net(&n) {
                stable(&s, NetConfig::parse, NetConfig::encode)?;
            } else {
                prop_assert!(n.encode().is_err(), "a non-finite rate must not encode: {:?}", s);
            }
        }
    }

    #[test]
    fn rootfs(s in any_text(MP_KEYS)) {
        stable(&s, MountPoint::parse_rootfs, MountPoint::encode_rootfs)?;
        if let Ok(m) = MountPoint::parse_rootfs(&s) { let _ = m.size_mib(); }
    }

    #[test]
    fn mount_point(s in any_text(MP_KEYS)) {
        stable(&s, MountPoint::parse_mp, MountPoint::encode_mp)?;
    }

    #[test]
    fn features(s in any_text(FEATURE_KEYS)) {
        stable(&s, Features::parse, Features::encode)?;
    }

    #[test]
    fn startup(s in any_text(STARTUP_KEYS)) {
        stable(&s, Startup::parse, |v: &Startup| Ok::<_, ()>(v.encode()))?;
    }

    #[test]
    fn tags(s in prop_oneof![any::<String>(), "[a-zA-Z0-9_+.;, -]{0,40}"]) {
        let t = parse_tags(&s);
        if let Ok(enc) = encode_tags(&t) {
            let t2 = parse_tags(&enc);
            prop_assert_eq!(&t2, &t);
            prop_assert_eq!(encode_tags(&t2).unwrap(), enc);
        }
    }

    #[test]
    fn sizes(s in prop_oneof![any::<String>(), "[ ]?[0-9.]{0,24}[KMGTkmgtB]?[ ]?"], b in any::<u64>()) {
        if let Ok(v) = parse_size(&s) {
            prop_assert_eq!(parse_size(&format_size(v)).ok(), Some(v), "{:?}", s);
        }
        prop_assert_eq!(parse_size(&format_size(b)).ok(), Some(b));
    }

    #[test]
    fn upid(s in prop_oneof![
        any::<String>(),
        "UPID:[a-z0-9-]{0,6}:[0-9A-Fa-f]{7,9}:[0-9A-Fa-f]{7,10}:[0-9A-Fa-f]{7,9}:[a-z]{0,8}:[0-9a-z]{0,4}:[a-z@!.]{0,12}:?",
    ]) {
        if let Ok(u) = s.parse::<Upid>() {
            let again: Upid = u.to_string().parse().map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            prop_assert_eq!(&again, &u);
            let _ = (u.node(), u.id(), u.user());
            let via_json: Upid = serde_json::from_value(serde_json::to_value(&u).unwrap()).unwrap();
            prop_assert_eq!(via_json, u);
        }
    }

    #[test]
    fn lxc_config(v in prop_oneof![3 => json_object(LXC_CONFIG_KEYS, NET_KEYS), 1 => json(LXC_CONFIG_KEYS)], junk in junk()) {
        let _ = serde_json::from_str::<LxcConfig>(&junk);
        let text = v.to_string();
        if let Ok(c) = serde_json::from_str::<LxcConfig>(&text) {
            // the typed view is a function of the raw map
            prop_assert_eq!(&LxcConfig::from_raw(c.raw.clone()), &c);
            let again: LxcConfig = serde_json::from_str(&serde_json::to_string(&c.raw).unwrap()).unwrap();
            prop_assert_eq!(&again, &c);
            // every accessor copes with whatever is inside
            if let Ok(nets) = c.networks() {
                for n in nets.values().filter(|n| nan_free_net(n)) {
                    if let Ok(s) = n.encode() { prop_assert_eq!(&NetConfig::parse(&s).unwrap(), n); }
                }
            }
            let _ = (c.mount_points(), c.unused_volumes(), c.rootfs_parsed(), c.features_parsed(), c.startup_parsed(), c.tag_list());
        }
    }

    #[test]
    fn cluster_resources(v in proptest::collection::vec(prop_oneof![3 => json_object(CLUSTER_RESOURCE_KEYS, CLUSTER_RESOURCE_KEYS), 1 => json(CLUSTER_RESOURCE_KEYS)], 0..6), junk in junk()) {
        let _ = serde_json::from_str::<Vec<ClusterResource>>(&junk);
        let text = Value::Array(v.clone()).to_string();
        let a = serde_json::from_str::<Vec<ClusterResource>>(&text);
        let b = serde_json::from_value::<Vec<ClusterResource>>(Value::Array(v));
        prop_assert_eq!(a.is_ok(), b.is_ok());
        if let (Ok(a), Ok(b)) = (a, b) { prop_assert_eq!(a, b); }
    }

    #[test]
    fn task_status(v in prop_oneof![3 => json_object(TASK_STATUS_KEYS, TASK_STATUS_KEYS), 1 => json(TASK_STATUS_KEYS)], junk in junk()) {
        let _ = serde_json::from_str::<TaskStatus>(&junk);
        if let Ok(t) = serde_json::from_str::<TaskStatus>(&v.to_string()) {
            let _ = t.result();
            prop_assert_eq!(serde_json::from_value::<TaskStatus>(v).ok(), Some(t));
        }
    }

    #[test]
    fn interfaces(v in proptest::collection::vec(prop_oneof![3 => json_object(INTERFACE_KEYS, INTERFACE_KEYS), 1 => json(INTERFACE_KEYS)], 0..4), junk in junk()) {
        let _ = serde_json::from_str::<Vec<Interface>>(&junk);
        if let Ok(list) = serde_json::from_str::<Vec<Interface>>(&Value::Array(v.clone()).to_string()) {
            for (i, iface) in list.iter().enumerate() {
                // the decoder is deterministic and does not depend on the text form
                let again: Interface = serde_json::from_value(v[i].clone()).unwrap();
                prop_assert_eq!(&again, iface);
            }
        }
    }
}

/// Inputs found by the fuzz targets, kept as plain tests.
mod regressions {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn known_inputs_do_not_panic() {
        for s in [
            "",
            ",",
            "=",
            "name=",
            "name=eth0,,",
            "volume=,mp=/a",
            "order=",
            "size=1.5.5G",
            "size=99999999999999999999T",
            "trunks=;;",
            "rate=NaN",
        ] {
            let _ = NetConfig::parse(s);
            let _ = MountPoint::parse_rootfs(s);
            let _ = MountPoint::parse_mp(s);
            let _ = Features::parse(s);
            let _ = Startup::parse(s);
            let _ = parse_size(s);
        }
    }
}
