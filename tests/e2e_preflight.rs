//! Token preflight end to end: the `ProxmoxCluster` reads its token's privileges
//! (`GET /access/permissions`) and lists in status what is missing for what the objects using
//! it do, before anything fails.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

/// Everything the operator's role has (README), except `VM.Backup`.
const NO_BACKUP: &str = "[Sys.Audit, VM.Audit, VM.Allocate, VM.Clone, VM.Migrate, VM.PowerMgmt, VM.Config.CPU, \
    VM.Config.Memory, VM.Config.Disk, VM.Config.Network, VM.Config.Options, VM.Snapshot, Datastore.Audit, \
    Datastore.AllocateSpace, Datastore.AllocateTemplate, SDN.Use, Pool.Audit, Sys.AccessNetwork]";

fn missing(pc: &Value) -> Vec<(String, String, String)> {
    pc["status"]["missingPrivileges"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
                    (s("feature"), s("privilege"), s("path"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_token_without_vm_backup_shows_the_missing_privilege_before_any_backup_runs() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("preflight");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sim.yaml");
    std::fs::write(
        &config,
        format!("tokens:\n  - id: \"ops@pve!operator\"\n    secret: s3cret\n    privileges: {NO_BACKUP}\n"),
    )
    .unwrap();
    let sim = Sim::start(&["--config", config.to_str().unwrap(), "--clock-speed", "5"]);
    connect_cluster_as(
        cp,
        &ns,
        &sim,
        "1s",
        r#"{"tokenId":"ops@pve!operator","tokenSecret":"s3cret"}"#,
    );
    let _op = Operator::start(cp, &ns);
    wait_ready(cp, &ns, "proxmoxcluster", &ns, T);
    // nothing uses the cluster yet: nothing is missing
    wait_for("PrivilegesGranted", T, || {
        let pc = get_json(cp, &ns, "proxmoxcluster", &ns)?;
        condition(&pc, "PrivilegesMissing").filter(|c| c.0 == "False" && c.1 == "PrivilegesGranted")
    });
    // a container (allowed) and a schedule over it whose first slot is far away
    cp.apply(
        &ns,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: web\n  labels: {backup: nightly}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n",
    );
    cp.apply(
        &ns,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcBackupSchedule\nmetadata:\n  name: nightly\nspec:\n  schedule: \"0 2 1 1 *\"\n  selector: {matchLabels: {backup: nightly}}\n  storage: local\n",
    );
    let pc = wait_for("PrivilegesMissing", T, || {
        let pc = get_json(cp, &ns, "proxmoxcluster", &ns)?;
        condition(&pc, "PrivilegesMissing")
            .filter(|c| c.0 == "True")
            .map(|_| pc)
    });
    let (_, reason, message) = condition(&pc, "PrivilegesMissing").unwrap();
    assert_eq!(reason, "PrivilegesMissing");
    assert!(message.contains("VM.Backup on /vms (for backups)"), "{message}");
    assert_eq!(
        missing(&pc),
        vec![("backups".to_string(), "VM.Backup".to_string(), "/vms".to_string())],
        "only what the token lacks: {}",
        pc["status"]
    );
    // the cluster stays Ready, and `kubectl get pvec` shows it
    assert_eq!(condition(&pc, "Ready").map(|c| c.0), Some("True".to_string()));
    let table = cp.kubectl_ok(&["get", "pvec", &ns]);
    assert!(
        table.contains("PRIVILEGES") && table.contains("PrivilegesMissing"),
        "{table}"
    );
    // the container is made (its privileges are there); no backup ran
    wait_ready(cp, &ns, "lxc", "web", T);
    assert_eq!(sim.count("POST /nodes/{node}/vzdump"), 0);
    // the schedule goes: nothing is missing any more
    cp.kubectl_ok(&["delete", "-n", &ns, "lxcbs", "nightly"]);
    wait_for("PrivilegesGranted again", T, || {
        let pc = get_json(cp, &ns, "proxmoxcluster", &ns)?;
        condition(&pc, "PrivilegesMissing")
            .filter(|c| c.0 == "False")
            .filter(|_| missing(&pc).is_empty())
    });
    cp.kubectl_ok(&["delete", "-n", &ns, "lxc", "web", "--wait=true", "--timeout=60s"]);
}
