//! Tests of `managed`: the spec's typed config keys, their encoding, and their comparison with
//! the container's config (equal, changed, unreadable).

use super::super::desired::tests::base;
use super::super::settings::{validate, ContainerSettings};
use super::*;
use crate::crd::lxc_container::*;
use crate::crd::ByteQuantity;
use serde_json::json;

fn config_of(spec: &LxcContainerSpec) -> ManagedConfig {
    validate(&ContainerSettings::from(spec), "web").unwrap().config
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn have_config(v: serde_json::Value) -> LxcConfig {
    LxcConfig::from_raw(serde_json::from_value(v).unwrap())
}

/// A spec that sets every setting `ManagedConfig` holds.
fn everything() -> LxcContainerSpec {
    LxcContainerSpec {
        hostname: Some("Web-1".into()),
        description: Some("the web server\n\n".into()),
        resources: Some(Resources {
            cores: Some(2),
            cpu_limit: Some("1.50".into()),
            cpu_units: Some(100),
            memory: Some(ByteQuantity::new("1Gi")),
            swap: Some(ByteQuantity::new("512Mi")),
        }),
        features: Some(crate::crd::lxc_container::Features {
            nesting: Some(true),
            keyctl: Some(true),
            fuse: Some(false),
        }),
        dns: Some(Box::new(Dns {
            nameservers: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            search_domain: Some("example.org".into()),
        })),
        start_on_boot: Some(true),
        startup: Some(Box::new(crate::crd::lxc_container::Startup {
            order: Some(2),
            up_delay_seconds: Some(30),
            down_delay_seconds: None,
        })),
        console: Some(Console {
            mode: Some(ConsoleMode::Console),
            ttys: Some(0),
        }),
        timezone: Some("Europe/Berlin".into()),
        protection: Some(false),
        ..base()
    }
}

#[test]
fn every_setting_of_the_spec_becomes_one_proxmox_parameter_and_unset_ones_none() {
    let cases: Vec<(&str, LxcContainerSpec, BTreeMap<String, String>)> = vec![
        (
            "nothing set: only the host name",
            base(),
            params(&[("hostname", "web")]),
        ),
        (
            "everything set",
            everything(),
            params(&[
                ("cmode", "console"),
                ("cores", "2"),
                ("cpulimit", "1.5"),
                ("cpuunits", "100"),
                ("description", "the web server"),
                ("features", "keyctl=1,nesting=1"),
                ("hostname", "Web-1"),
                ("memory", "1024"),
                ("nameserver", "10.0.0.1 10.0.0.2"),
                ("onboot", "1"),
                ("protection", "0"),
                ("searchdomain", "example.org"),
                ("startup", "order=2,up=30"),
                ("swap", "512"),
                ("timezone", "Europe/Berlin"),
                ("tty", "0"),
            ]),
        ),
        (
            "features all off and an empty startup are not managed",
            LxcContainerSpec {
                features: Some(crate::crd::lxc_container::Features {
                    nesting: None,
                    keyctl: Some(false),
                    fuse: Some(false),
                }),
                startup: Some(Default::default()),
                dns: Some(Box::new(Dns::default())),
                console: Some(Console::default()),
                ..base()
            },
            params(&[("hostname", "web")]),
        ),
        (
            "a whole cpu limit is printed without a fraction",
            LxcContainerSpec {
                resources: Some(Resources {
                    cpu_limit: Some("2.0".into()),
                    ..Default::default()
                }),
                ..base()
            },
            params(&[("cpulimit", "2"), ("hostname", "web")]),
        ),
    ];
    for (what, spec, want) in cases {
        assert_eq!(config_of(&spec).to_params(), want, "{what}");
    }
}

#[test]
fn the_app_keys_are_parameters_too() {
    let c = ManagedConfig {
        hostname: "web".into(),
        entrypoint: Some("/usr/bin/app --serve".into()),
        env: Some("A=1\0B=2".into()),
        ..Default::default()
    };
    assert_eq!(
        c.to_params(),
        params(&[
            ("entrypoint", "/usr/bin/app --serve"),
            ("env", "A=1\0B=2"),
            ("hostname", "web")
        ])
    );
}

#[test]
fn the_create_call_carries_the_typed_values_and_leaves_unmanaged_ones_out() {
    let c = config_of(&everything()).create_params(100, "local:vztmpl/x.tar.zst");
    assert_eq!(c.hostname.as_deref(), Some("Web-1"));
    assert_eq!((c.cores, c.cpulimit, c.cpuunits), (Some(2), Some(1.5), Some(100)));
    assert_eq!((c.memory, c.swap), (Some(1024), Some(512)));
    assert_eq!(c.features.as_deref(), Some("keyctl=1,nesting=1"));
    assert_eq!(c.startup.as_deref(), Some("order=2,up=30"));
    assert_eq!(c.nameserver.as_deref(), Some("10.0.0.1 10.0.0.2"));
    assert_eq!((c.onboot, c.protection), (Some(true), Some(false)));
    let bare = config_of(&base()).create_params(100, "local:vztmpl/x.tar.zst");
    assert_eq!(
        (bare.memory, bare.cores, bare.features, bare.onboot, bare.nameserver),
        (None, None, None, None, None)
    );
}

/// The config Proxmox holds for `everything()`, as it prints it.
fn in_sync() -> serde_json::Value {
    json!({
        "cmode": "console", "cores": 2, "cpulimit": "1.5", "cpuunits": 100,
        "description": "the web server\n", "features": "nesting=1,keyctl=1", "hostname": "web-1",
        "memory": 1024, "nameserver": "10.0.0.1  10.0.0.2", "onboot": 1, "protection": false,
        "searchdomain": "EXAMPLE.org", "startup": "order=2,up=30", "swap": "512",
        "timezone": "Europe/Berlin", "tty": 0
    })
}

fn drift(change: serde_json::Value) -> Vec<Drift> {
    let mut have = in_sync();
    for (k, v) in change.as_object().unwrap() {
        if v.is_null() {
            have.as_object_mut().unwrap().remove(k);
        } else {
            have[k] = v.clone();
        }
    }
    config_of(&everything()).drift(&have_config(have))
}

fn changed(key: &'static str, from: Option<&str>, to: &str) -> Drift {
    Drift {
        key,
        from: from.map(str::to_string),
        unreadable: None,
        to: to.to_string(),
    }
}

fn unreadable(key: &'static str, from: &str, expected: &'static str, to: &str) -> Drift {
    Drift {
        unreadable: Some(expected),
        ..changed(key, Some(from), to)
    }
}

#[test]
fn each_current_value_is_read_as_its_type_and_compared_with_the_spec() {
    let cases: Vec<(&str, serde_json::Value, Vec<Drift>)> = vec![
        ("the same values, as Proxmox prints them", json!({}), vec![]),
        (
            "numbers sent as strings",
            json!({"cores": "2", "memory": "1024", "cpulimit": 1.5}),
            vec![],
        ),
        ("flags as words", json!({"onboot": "yes", "protection": "off"}), vec![]),
        (
            "features in another order",
            json!({"features": "keyctl=1,nesting=1"}),
            vec![],
        ),
        (
            "a changed number",
            json!({"memory": 2048}),
            vec![changed("memory", Some("2048"), "1024")],
        ),
        (
            "a changed limit",
            json!({"cpulimit": "2"}),
            vec![changed("cpulimit", Some("2"), "1.5")],
        ),
        (
            "a changed flag",
            json!({"onboot": 0}),
            vec![changed("onboot", Some("0"), "1")],
        ),
        (
            "a removed key",
            json!({"swap": null}),
            vec![changed("swap", None, "512")],
        ),
        (
            "an extra feature",
            json!({"features": "nesting=1,keyctl=1,mknod=1"}),
            vec![changed(
                "features",
                Some("nesting=1,keyctl=1,mknod=1"),
                "keyctl=1,nesting=1",
            )],
        ),
        (
            "another host name",
            json!({"hostname": "db"}),
            vec![changed("hostname", Some("db"), "Web-1")],
        ),
        (
            "another console",
            json!({"cmode": "tty"}),
            vec![changed("cmode", Some("tty"), "console")],
        ),
        (
            "nameservers in another order",
            json!({"nameserver": "10.0.0.2 10.0.0.1"}),
            vec![changed("nameserver", Some("10.0.0.2 10.0.0.1"), "10.0.0.1 10.0.0.2")],
        ),
        (
            "memory that is not a number",
            json!({"memory": "lots"}),
            vec![unreadable("memory", "lots", "a whole number", "1024")],
        ),
        (
            "a limit of NaN",
            json!({"cpulimit": "NaN"}),
            vec![unreadable("cpulimit", "NaN", "a number", "1.5")],
        ),
        (
            "a fractional core count",
            json!({"cores": 1.5}),
            vec![unreadable("cores", "1.5", "a whole number", "2")],
        ),
        (
            "a flag of 2",
            json!({"onboot": 2}),
            vec![unreadable("onboot", "2", "0 or 1", "1")],
        ),
        (
            "features that do not parse",
            json!({"features": "nesting=maybe"}),
            vec![unreadable(
                "features",
                "nesting=maybe",
                "a features list",
                "keyctl=1,nesting=1",
            )],
        ),
        (
            "a startup that does not parse",
            json!({"startup": "order=first"}),
            vec![unreadable(
                "startup",
                "order=first",
                "order=N,up=N,down=N",
                "order=2,up=30",
            )],
        ),
        (
            "an unknown console mode",
            json!({"cmode": "serial"}),
            vec![unreadable("cmode", "serial", "tty, console or shell", "console")],
        ),
        (
            "a time zone that is a list",
            json!({"timezone": ["UTC"]}),
            vec![unreadable("timezone", "[\"UTC\"]", "text", "Europe/Berlin")],
        ),
    ];
    for (what, change, want) in cases {
        assert_eq!(drift(change), want, "{what}");
    }
}

#[test]
fn keys_the_spec_does_not_manage_are_never_drift() {
    let c = config_of(&base());
    let have = have_config(json!({"hostname": "web", "memory": "lots", "cores": 64, "onboot": "maybe"}));
    assert_eq!(c.drift(&have), vec![]);
}
