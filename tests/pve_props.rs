//! Property tests for property strings: encode→decode round-trips, and no value can
//! smuggle an extra key into the encoded string.

use std::collections::BTreeSet;

#[path = "common/seed.rs"]
mod seed;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use proxmox_lxc_operator::pve::props::{encode_tags, format_size, parse_size, parse_tags};
use proxmox_lxc_operator::pve::{Error, Features, MountPoint, NetConfig, Startup};

/// Values Proxmox could legitimately hold in a scalar slot.
fn safe() -> BoxedStrategy<String> {
    "[A-Za-z0-9_./:+-]{1,16}".boxed()
}

/// Arbitrary text, biased towards the characters that could break a property string.
fn hostile() -> BoxedStrategy<String> {
    prop_oneof!["[a-z0-9]{0,4}[,=;\n\r\t][a-z0-9=,;]{0,8}", ".{1,12}", safe(),].boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn net(value: BoxedStrategy<String>) -> impl Strategy<Value = NetConfig> {
    (
        value.clone(),
        opt(value.clone()),
        opt(any::<bool>()),
        opt(value.clone()),
        opt(value.clone()),
        opt(any::<bool>()),
        opt(value.clone()),
        opt(value.clone()),
        opt(value.clone()),
        opt(any::<bool>()),
        (
            opt(64u16..=65535),
            opt((0u32..100_000).prop_map(|n| f64::from(n) / 10.0)),
            opt(1u16..=4094),
        ),
        (proptest::collection::vec(1u16..=4094, 0..4), opt(value)),
    )
        .prop_map(
            |(
                name,
                bridge,
                firewall,
                gw,
                gw6,
                host_managed,
                hwaddr,
                ip,
                ip6,
                link_down,
                (mtu, rate, tag),
                (trunks, net_type),
            )| NetConfig {
                name,
                bridge,
                firewall,
                gw,
                gw6,
                host_managed,
                hwaddr,
                ip,
                ip6,
                link_down,
                mtu,
                rate,
                tag,
                trunks,
                net_type,
                extra: Default::default(),
            },
        )
}

fn mount(value: BoxedStrategy<String>, with_mp: bool) -> impl Strategy<Value = MountPoint> {
    (
        value.clone(),
        if with_mp {
            opt(value.clone())
                .prop_map(|o| Some(o.unwrap_or_else(|| "/data".into())))
                .boxed()
        } else {
            Just(None).boxed()
        },
        opt(any::<bool>()),
        if with_mp {
            opt(any::<bool>()).boxed()
        } else {
            Just(None).boxed()
        },
        if with_mp {
            opt(any::<bool>()).boxed()
        } else {
            Just(None).boxed()
        },
        proptest::collection::vec(value, 0..3),
        (
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
            opt(any::<bool>()),
        ),
        opt((0u64..1 << 20).prop_map(|n| n * 1024)),
    )
        .prop_map(
            |(volume, mp, acl, backup, keepattrs, mountoptions, (quota, replicate, ro, shared), size)| MountPoint {
                volume,
                mp,
                acl,
                backup,
                keepattrs,
                mountoptions,
                quota,
                replicate,
                ro,
                shared,
                size,
                extra: Default::default(),
            },
        )
}

fn features(value: BoxedStrategy<String>) -> impl Strategy<Value = Features> {
    (
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        proptest::collection::vec(value, 0..3),
        opt(any::<bool>()),
    )
        .prop_map(|(force_rw_sys, fuse, keyctl, mknod, mount, nesting)| Features {
            force_rw_sys,
            fuse,
            keyctl,
            mknod,
            mount,
            nesting,
            extra: Default::default(),
        })
}

/// The keys of an encoded property string (the default key counts as `volume`).
fn keys(s: &str) -> BTreeSet<String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, _)| k.to_string())
                .unwrap_or_else(|| "volume".into())
        })
        .collect()
}

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

fn only_known(s: &str, known: &[&str]) -> bool {
    keys(s).iter().all(|k| known.contains(&k.as_str())) && !s.contains('\n') && !s.contains('\r')
}

proptest! {
    // the run's seed (PLO_TEST_SEED); failures saved in tests/proptest-regressions/ run first
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: seed::proptest_seed("pve_props"),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/proptest-regressions/pve_props.txt"
        )))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn net_round_trips(n in net(safe())) {
        let s = n.encode().unwrap();
        prop_assert_eq!(NetConfig::parse(&s).unwrap(), n);
        prop_assert!(only_known(&s, NET_KEYS));
        prop_assert!(s.starts_with("name="));
    }

    #[test]
    fn rootfs_round_trips(m in mount(safe(), false)) {
        let s = m.encode_rootfs().unwrap();
        prop_assert_eq!(MountPoint::parse_rootfs(&s).unwrap(), m);
    }

    #[test]
    fn mp_round_trips(m in mount(safe(), true)) {
        let s = m.encode_mp().unwrap();
        prop_assert_eq!(MountPoint::parse_mp(&s).unwrap(), m);
        prop_assert!(only_known(&s, MP_KEYS));
    }

    #[test]
    fn features_round_trip(f in features(safe())) {
        let s = f.encode().unwrap();
        prop_assert_eq!(Features::parse(&s).unwrap(), f);
    }

    #[test]
    fn startup_round_trips(order in opt(0u32..10_000), up in opt(0u32..10_000), down in opt(0u32..10_000)) {
        let st = Startup { order, up, down };
        prop_assert_eq!(Startup::parse(&st.encode()).unwrap(), st);
    }

    #[test]
    fn tags_round_trip_sorted_and_deduplicated(tags in proptest::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9_+.-]{0,10}", 0..6)) {
        let s = encode_tags(&tags).unwrap();
        let parsed = parse_tags(&s);
        let mut expected: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
        expected.sort();
        expected.dedup();
        prop_assert_eq!(&parsed, &expected);
        prop_assert_eq!(encode_tags(&parsed).unwrap(), s);
    }

    #[test]
    fn sizes_round_trip_through_proxmox_notation(bytes in 0u64..(1u64 << 50)) {
        prop_assert_eq!(parse_size(&format_size(bytes)).unwrap(), bytes);
    }

    #[test]
    fn no_injected_key_gets_through_net(n in net(hostile())) {
        match n.encode() {
            Ok(s) => {
                prop_assert!(only_known(&s, NET_KEYS), "{}", s);
                prop_assert_eq!(NetConfig::parse(&s).unwrap(), n);
            }
            Err(Error::InvalidProperty { field, .. }) => prop_assert!(field.starts_with("net.")),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn no_injected_key_gets_through_mp(m in mount(hostile(), true)) {
        match m.encode_mp() {
            Ok(s) => {
                prop_assert!(only_known(&s, MP_KEYS), "{}", s);
                prop_assert_eq!(MountPoint::parse_mp(&s).unwrap(), m);
            }
            Err(Error::InvalidProperty { field, .. }) => prop_assert!(field.starts_with("mp.")),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn no_injected_key_gets_through_rootfs_or_features(m in mount(hostile(), false), f in features(hostile())) {
        if let Ok(s) = m.encode_rootfs() {
            prop_assert!(only_known(&s, MP_KEYS), "{}", s);
            prop_assert_eq!(MountPoint::parse_rootfs(&s).unwrap(), m);
        }
        if let Ok(s) = f.encode() {
            prop_assert!(only_known(&s, FEATURE_KEYS), "{}", s);
            prop_assert_eq!(Features::parse(&s).unwrap(), f);
        }
    }

    #[test]
    fn a_value_with_a_separator_or_newline_is_always_rejected(
        prefix in "[a-z0-9]{0,5}", bad in "[,=;\n\r\u{0}]", suffix in "[a-z0-9]{0,5}"
    ) {
        let v = format!("{prefix}{bad}{suffix}");
        let n = NetConfig { name: "eth0".into(), ip: Some(v.clone()), ..Default::default() };
        let is_ip_field = matches!(n.encode(), Err(Error::InvalidProperty { ref field, .. }) if field == "net.ip");
        prop_assert!(is_ip_field);
        let m = MountPoint { volume: "local:1".into(), mp: Some(v.clone()), ..Default::default() };
        prop_assert!(m.encode_mp().is_err());
        prop_assert!(encode_tags([v.as_str()]).is_err());
    }
}
