//! Error classification and response decoding against the example bodies in
//! `tests/fixtures/pve/` (copied from the shared PVE API notes; provenance in INDEX.json).

use std::path::PathBuf;

use proxmox_lxc_operator::pve::*;
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pve")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The status and reason phrase recorded for a fixture in INDEX.json (`... -> 500 CT is locked (disk)`).
fn status_line(name: &str) -> (u16, String) {
    let index: Value = serde_json::from_slice(&fixture("INDEX.json")).unwrap();
    let entry = index["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == name)
        .unwrap_or_else(|| panic!("{name} not in INDEX.json"));
    let http = entry["http"].as_str().unwrap();
    let after = http.split("-> ").nth(1).unwrap();
    let (status, reason) = after.split_once(' ').unwrap();
    (status.parse().unwrap(), reason.to_string())
}

/// Builds the error exactly as the client does for a recorded response.
fn error_for(name: &str) -> Error {
    let (status, reason) = status_line(name);
    let body = fixture(name);
    let v: Value = serde_json::from_slice(&body).unwrap();
    // The 401 fixture describes an HTTP response with an empty body.
    let body = if v.get("_describes").is_some() {
        Vec::new()
    } else {
        body
    };
    Error::from_response("POST", "/nodes/pve/lxc", status, Some(&reason), &body)
}

fn data<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let v: Value = serde_json::from_slice(&fixture(name)).unwrap();
    serde_json::from_value(v["data"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_missing_ticket_is_unauthorized_with_the_reason_phrase_as_message() {
    let e = error_for("error.401.no_ticket.http.json");
    assert!(
        matches!(&e, Error::Unauthorized { message, .. } if message == "No ticket"),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(!e.is_retryable());
}

#[test]
fn a_permission_failure_is_forbidden_and_names_the_privilege() {
    let e = error_for("error.403.permission.constructed.json");
    match &e {
        Error::Forbidden {
            permission,
            acl_path,
            message,
            ..
        } => {
            assert_eq!(permission.as_deref(), Some("VM.Allocate"));
            assert_eq!(acl_path.as_deref(), Some("/vms/100"));
            assert_eq!(message, "Permission check failed (/vms/100, VM.Allocate)");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::Auth);
}

#[test]
fn parameter_errors_keep_the_per_parameter_map_on_pve9() {
    let e = error_for("error.400.param_verification.pve9.constructed.json");
    match &e {
        Error::InvalidParameters { errors, message, .. } => {
            assert_eq!(message, "Parameter verification failed.");
            assert_eq!(errors["memory"], "type check ('integer') failed - got 'lots'");
            assert!(errors["net0"].contains("net0.ip: invalid format"));
            assert!(errors.contains_key("foo"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::InvalidSpec);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("memory: type check"));
}

#[test]
fn parameter_errors_without_a_body_message_use_the_reason_phrase_on_pve7() {
    let e = error_for("error.400.param_verification.pve7.json");
    match &e {
        Error::InvalidParameters { errors, message, .. } => {
            assert_eq!(message, "Parameter verification failed.");
            assert_eq!(errors["password"], "value must be at least 5 characters long");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_taken_vmid_from_nextid_is_already_exists() {
    let body = fixture("cluster_nextid.taken.400.json");
    let e = Error::from_response(
        "GET",
        "/cluster/nextid",
        400,
        Some("Parameter verification failed."),
        &body,
    );
    assert!(matches!(&e, Error::AlreadyExists { vmid: Some(200), .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Conflict);
}

#[test]
fn an_existing_ct_is_already_exists_with_its_vmid() {
    let e = error_for("error.500.ct_already_exists.json");
    assert!(
        matches!(&e, Error::AlreadyExists { vmid: Some(100), message, .. } if message == "CT 100 already exists on node 'pve'"),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Conflict);
    let race = Error::from_response(
        "POST",
        "/nodes/pve/lxc",
        500,
        Some("unable to create CT 102 - CT 102 already exists on node 'pve'"),
        b"",
    );
    assert!(matches!(race, Error::AlreadyExists { vmid: Some(102), .. }));
}

#[test]
fn a_pve7_lock_error_is_read_from_the_reason_phrase_alone() {
    let e = error_for("error.500.ct_locked.pve7-capture.json");
    assert!(matches!(&e, Error::Locked { reason, .. } if reason == "disk"), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Locked);
    assert!(e.is_retryable());
}

#[test]
fn a_backup_lock_is_locked_with_reason_backup() {
    let e = error_for("error.500.ct_locked_backup.constructed.json");
    assert!(
        matches!(&e, Error::Locked { reason, message, .. } if reason == "backup" && message == "CT is locked (backup)")
    );
}

#[test]
fn a_config_lock_timeout_is_transient_and_retryable() {
    let e = error_for("error.500.cant_lock_file.constructed.json");
    assert!(
        matches!(&e, Error::LockTimeout { message, .. } if message.contains("pve-config-100.lock")),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.is_retryable());
}

#[test]
fn a_missing_config_file_is_not_found() {
    let e = error_for("error.500.config_missing.constructed.json");
    assert!(matches!(&e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::NotFound);
    assert!(!e.is_retryable());
}

#[test]
fn a_digest_mismatch_is_a_retryable_conflict() {
    let e = error_for("error.500.digest_mismatch.constructed.json");
    assert!(matches!(&e, Error::DigestMismatch { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Conflict);
    assert!(e.is_retryable());
}

#[test]
fn already_running_is_a_wrong_state_conflict() {
    let e = error_for("error.500.already_running.constructed.json");
    assert!(
        matches!(&e, Error::WrongState { message, .. } if message == "CT 100 already running"),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Conflict);
}

#[test]
fn an_unknown_path_is_not_implemented_and_permanent() {
    let e = error_for("error.501.not_implemented.constructed.json");
    assert!(matches!(&e, Error::NotImplemented { .. }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(!e.is_retryable());
}

#[test]
fn other_server_errors_are_transient_and_keep_status_and_text() {
    let e = Error::from_response("GET", "/nodes/pve2/lxc", 595, Some("Connection refused"), b"");
    assert!(matches!(&e, Error::Server { status: 595, message, .. } if message == "Connection refused"));
    assert_eq!(e.class(), ErrorClass::Transient);
    assert!(e.is_retryable());
}

#[test]
fn a_failed_start_task_locked_by_backup_is_classified_locked() {
    let st: TaskStatus = data("task_status.stopped_error_locked.constructed.json");
    let TaskResult::Failed(exitstatus) = st.result() else {
        panic!("{st:?}")
    };
    let e = Error::TaskFailed {
        upid: st.upid.clone().unwrap(),
        exitstatus,
        log_tail: vec![],
    };
    assert_eq!(e.class(), ErrorClass::Locked);
    assert_eq!(st.tokenid.as_deref(), Some("operator"));
}

#[test]
fn task_statuses_decode_to_typed_results() {
    let ok: TaskStatus = data("task_status.stopped_ok.json");
    assert_eq!(ok.result(), TaskResult::Ok);
    let err: TaskStatus = data("task_status.stopped_error.json");
    assert_eq!(err.result(), TaskResult::Failed("interrupted by signal".into()));
    let running: TaskStatus = data("task_status.running.token.json");
    assert_eq!(running.result(), TaskResult::Running);
    let upid: Upid = running.upid.unwrap().parse().unwrap();
    assert_eq!(upid.id(), "200");
}

#[test]
fn task_creating_responses_decode_to_upids() {
    for f in [
        "lxc_create.upid.json",
        "lxc_clone.upid.token.json",
        "vzdump.upid.constructed.json",
    ] {
        let u: Upid = data(f);
        assert!(u.to_string().starts_with("UPID:"), "{f}");
    }
    let clone: Upid = data("lxc_clone.upid.token.json");
    assert_eq!(
        (clone.task_type(), clone.id(), clone.user()),
        ("vzclone", "200", "root@pam!api_token")
    );
}

#[test]
fn lxc_lists_accept_string_and_integer_vmids() {
    let old: Vec<LxcStatus> = data("lxc_list.pve7-gomock.json");
    assert_eq!(old.iter().map(|c| c.vmid).collect::<Vec<_>>(), vec![106, 105, 101]);
    assert!(old[2].template);
    let new: Vec<LxcStatus> = data("lxc_list.pve9.constructed.json");
    assert_eq!(new[1].lock.as_deref(), Some("backup"));
    assert_eq!(new[0].tags.as_deref(), Some("prod;web"));
    assert!(new[0].is_running());
}

#[test]
fn lxc_configs_decode_typed_keys_and_property_strings() {
    let c: LxcConfig = data("lxc_config.pve9.constructed.json");
    assert_eq!(c.hostname.as_deref(), Some("web01"));
    assert_eq!(c.memory, Some(1024));
    assert_eq!(c.unprivileged, Some(true));
    assert_eq!(c.digest.as_deref(), Some("3f0c4b1e9a2d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"));
    let nets = c.networks().unwrap();
    assert_eq!(nets[&0].ip.as_deref(), Some("192.0.2.10/24"));
    assert_eq!(nets[&0].tag, Some(20));
    let mps = c.mount_points().unwrap();
    assert_eq!(mps[&0].mp.as_deref(), Some("/srv/data"));
    assert_eq!(mps[&0].size, Some(32 << 30));
    assert_eq!(c.rootfs_parsed().unwrap().unwrap().size_mib(), Some(8192));
    let f = c.features_parsed().unwrap().unwrap();
    assert_eq!((f.keyctl, f.nesting), (Some(true), Some(true)));
    assert_eq!(c.startup_parsed().unwrap().unwrap().up, Some(30));
    assert_eq!(c.tag_list(), vec!["prod", "web"]);
    assert!(c.raw.contains_key("nameserver"));
    // Re-encoding the parsed property strings gives Proxmox's text back.
    assert_eq!(nets[&0].encode().unwrap(), c.raw["net0"].as_str().unwrap());
    assert_eq!(mps[&0].encode_mp().unwrap(), c.raw["mp0"].as_str().unwrap());

    let old: LxcConfig = data("lxc_config.pve7-gomock.json");
    assert!(old.raw["lxc"].is_array());
    assert_eq!(old.mount_points().unwrap()[&0].volume, "/mnt/foo/bar");
    assert_eq!(
        old.features_parsed().unwrap().unwrap().encode().unwrap(),
        "fuse=1,mknod=1,nesting=1"
    );
}

#[test]
fn status_snapshots_nodes_storage_and_resources_decode() {
    let st: LxcStatus = data("lxc_status_current.running.constructed.json");
    assert_eq!(st.maxmem, Some(1073741824));
    let stopped: LxcStatus = data("lxc_status_current.stopped.gomock.json");
    assert!(!stopped.is_running() && stopped.template);

    let snaps: Vec<Snapshot> = data("lxc_snapshot_list.gomock.json");
    assert_eq!(snaps[2].name, "current");
    assert_eq!(snaps[2].running, Some(true));
    assert_eq!(snaps[1].parent.as_deref(), Some("snapshot1"));

    for f in ["nodes_list.pve9-capture.json", "nodes_list.pve8-gomock.json"] {
        let nodes: Vec<NodeInfo> = data(f);
        assert!(nodes[0].ssl_fingerprint.as_deref().unwrap().len() == 95, "{f}");
        parse_fingerprint(nodes[0].ssl_fingerprint.as_deref().unwrap()).unwrap();
    }

    let storages: Vec<StorageInfo> = data("node_storage_list.pve9-capture.json");
    assert!(storages[0].has_content("vztmpl") && !storages[0].has_content("rootdir"));
    assert_eq!(storages[2].storage_type.as_deref(), Some("lvmthin"));

    let backups: Vec<StorageVolume> = data("storage_content.backup.constructed.json");
    assert_eq!(backups[0].vmid, Some(100));
    assert_eq!(backups[1].protected, Some(true));
    let _: Vec<StorageVolume> = data("storage_content.vztmpl.constructed.json");
    let mixed: Vec<StorageVolume> = data("storage_content.vztmpl_iso_snippets.capture.json");
    assert_eq!(mixed.len(), 3);

    let res: Vec<ClusterResource> = data("cluster_resources.pve8-capture.json");
    let ct = res.iter().find(|r| r.id == "lxc/103").unwrap();
    assert_eq!(
        (ct.vmid, ct.resource_type.as_str(), ct.template),
        (Some(103), "lxc", Some(false))
    );
    let st = res.iter().find(|r| r.resource_type == "storage").unwrap();
    assert_eq!(st.plugintype.as_deref(), Some("lvmthin"));
    assert_eq!(st.shared, Some(false));

    let log: Vec<TaskLogLine> = data("task_log.constructed.json");
    assert_eq!(log.last().unwrap().t, "TASK OK");
    let _: () = data("lxc_template.null.json");
}

#[test]
fn both_interface_shapes_and_null_decode() {
    let v = serde_json::json!([
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
        {"name": "eth0", "hardware-address": "bc:24:11:5e:7a:01", "ip-addresses": [
            {"ip-address": "192.0.2.10", "ip-address-type": "ipv4", "prefix": 24},
            {"ip-address": "2001:db8::10", "ip-address-type": "ipv6", "prefix": 64}
        ]}
    ]);
    let ifs: Vec<Interface> = serde_json::from_value(v).unwrap();
    assert_eq!(ifs[0].inet, vec!["127.0.0.1/8"]);
    assert_eq!(ifs[1].hwaddr.as_deref(), Some("bc:24:11:5e:7a:01"));
    assert_eq!(ifs[1].inet, vec!["192.0.2.10/24"]);
    assert_eq!(ifs[1].inet6, vec!["2001:db8::10/64"]);
    let none: Option<Vec<Interface>> = serde_json::from_value(Value::Null).unwrap();
    assert!(none.is_none());
}
