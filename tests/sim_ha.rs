//! The simulator's HA stack (`/cluster/ha/...`): resources, rules, status, arm/disarm, and what
//! HA does to power, migrate and destroy requests — with pve-ha-manager's texts.

mod sim_util;
use proxmox_lxc_operator::sim::{start, SimConfig, TokenConfig};
use serde_json::Value;
use sim_util::{client, enc, fast_sim, Client};
use std::time::{Duration, Instant};

/// Waits until the CT's `/cluster/resources` entry satisfies `ok`; returns it.
async fn until(c: &Client, vmid: u32, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.call("GET", "/cluster/resources", &[("type", "vm")]).await;
        let entry = r
            .data()
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["vmid"] == vmid)
            .cloned()
            .unwrap_or(Value::Null);
        if ok(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "CT {vmid} never {what}: {entry}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_ha_resource_is_started_by_the_ha_stack_and_power_requests_go_through_it() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[]).await;
    let r = c
        .post(
            "/cluster/ha/resources",
            &[("sid", "ct:100"), ("max_restart", "2"), ("comment", "web")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // state defaults to started: the manager starts it, with its own task
    let e = until(&c, 100, "started by HA", |e| e["status"] == "running").await;
    assert_eq!(e["hastate"], "started", "{e}");
    let tasks = c.call("GET", "/nodes/pve1/tasks", &[("vmid", "100")]).await;
    assert!(
        tasks
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "vzstart" && t["user"] == "root@pam"),
        "{}",
        tasks.text
    );
    let r = c.get("/cluster/ha/resources/ct:100").await;
    assert_eq!(
        (&r.data()["state"], &r.data()["max_restart"], &r.data()["comment"]),
        (&Value::from("started"), &Value::from(2), &Value::from("web"))
    );
    let status = c.get("/nodes/pve1/lxc/100/status/current").await;
    assert_eq!(status.data()["ha"]["managed"], 1, "{}", status.text);
    // a stop request becomes a request to HA: an `hastop` task, then the manager stops it
    let r = c.post("/nodes/pve1/lxc/100/status/stop", &[]).await;
    assert!(r.data().as_str().unwrap().contains(":hastop:100:"), "{}", r.text);
    c.ok_task(r).await;
    assert_eq!(c.get("/cluster/ha/resources/ct:100").await.data()["state"], "stopped");
    let e = until(&c, 100, "stopped by HA", |e| e["status"] == "stopped").await;
    assert_eq!(e["hastate"], "stopped");
    // pve-ha-manager's refusals
    let r = c.post("/cluster/ha/resources", &[("sid", "ct:100")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "resource ID 'ct:100' already defined")
    );
    let r = c.post("/cluster/ha/resources", &[("sid", "ct:999")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (500, "resource 'ct:999' does not exist in cluster")
    );
    let r = c.post("/cluster/ha/resources", &[("sid", "999")]).await;
    assert_eq!(r.reason, "unable to detect SID from VMID - VM/CT 999 does not exist");
    let r = c.post("/cluster/ha/resources", &[("sid", "ct 1")]).await;
    assert_eq!(r.status, 400, "the schema's format: {}", r.text);
    let r = c
        .post("/cluster/ha/resources", &[("sid", "ct:100"), ("group", "g1")])
        .await;
    assert_eq!(
        r.reason,
        "invalid parameter 'group': ha groups have been migrated to rules"
    );
    let r = c.get("/cluster/ha/resources/ct:101").await;
    assert_eq!((r.status, r.reason.as_str()), (500, "no such resource 'ct:101'"));
    let r = c.delete("/cluster/ha/resources/ct:101", &[]).await;
    assert_eq!(r.reason, "cannot delete service 'ct:101', not HA managed!");
    // a stale digest is refused
    let r = c
        .put(
            "/cluster/ha/resources/ct:100",
            &[("digest", "0000"), ("max_relocate", "3")],
        )
        .await;
    assert_eq!(
        r.reason,
        "detected modified configuration - file changed by other user? Try again."
    );
    // destroying needs purge; with it, the resource goes too
    let r = c.delete("/nodes/pve1/lxc/100", &[]).await;
    assert_eq!(
        r.reason,
        "unable to remove CT 100 - used in HA resources and purge parameter not set."
    );
    c.ok_task(c.delete("/nodes/pve1/lxc/100", &[("purge", "1")]).await)
        .await;
    let list = c.get("/cluster/ha/resources").await;
    assert_eq!(list.data().as_array().unwrap().len(), 0, "{}", list.text);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_relocation_moves_a_running_container_and_a_strict_node_affinity_rule_is_kept() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[("start", "1")]).await;
    c.post("/cluster/ha/resources", &[("sid", "100")]).await; // the vmid shortcut
    until(&c, 100, "HA-managed", |e| e["hastate"] == "started").await;
    let r = c
        .post("/cluster/ha/resources/ct:100/relocate", &[("node", "pve3")])
        .await;
    assert_eq!(r.data()["requested-node"], "pve3", "{}", r.text);
    let e = until(&c, 100, "relocated", |e| {
        e["node"] == "pve3" && e["status"] == "running"
    })
    .await;
    assert_eq!(e["hastate"], "started");
    // a plain migrate request on an HA-managed CT is handed to HA (`hamigrate`)
    let r = c
        .post("/nodes/pve3/lxc/100/migrate", &[("target", "pve2"), ("restart", "1")])
        .await;
    assert!(r.data().as_str().unwrap().contains(":hamigrate:100:"), "{}", r.text);
    until(&c, 100, "migrated by HA", |e| {
        e["node"] == "pve2" && e["status"] == "running"
    })
    .await;
    // rules: checked like pve-ha-manager, listed, and kept by the manager
    let r = c
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "r1"),
                ("type", "node-affinity"),
                ("resources", "ct:101"),
                ("nodes", "pve1"),
            ],
        )
        .await;
    assert_eq!(r.reason, "cannot use unmanaged resource(s) ct:101.");
    let r = c
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "r1"),
                ("type", "node-affinity"),
                ("resources", "ct:100"),
                ("nodes", "pve9"),
            ],
        )
        .await;
    assert_eq!(r.reason, "cannot use non-existent node(s) pve9.");
    let r = c
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "r1"),
                ("type", "node-affinity"),
                ("resources", "ct:100"),
                ("nodes", "pve1:2,pve3:1"),
                ("strict", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rule = c.get("/cluster/ha/rules/r1").await;
    assert_eq!(
        (&rule.data()["nodes"], &rule.data()["strict"]),
        (&Value::from("pve1:2,pve3:1"), &Value::from(1))
    );
    until(&c, 100, "moved to its highest-priority node", |e| e["node"] == "pve1").await;
    let r = c
        .post(
            "/cluster/ha/rules",
            &[
                ("rule", "r1"),
                ("type", "node-affinity"),
                ("resources", "ct:100"),
                ("nodes", "pve2"),
            ],
        )
        .await;
    assert_eq!(r.reason, "HA rule 'r1' already defined");
    // removing the resource (purge) removes it from the rule, and the rule once it is empty
    c.delete("/cluster/ha/resources/ct:100", &[]).await;
    let r = c.get("/cluster/ha/rules").await;
    assert_eq!(r.data().as_array().unwrap().len(), 0, "{}", r.text);
    let e = until(&c, 100, "no longer HA-managed", |e| e.get("hastate").is_none()).await;
    assert_eq!(e["status"], "running", "removing the resource leaves the CT as it is");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_node_going_offline_has_its_ha_containers_recovered_on_another_node() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve2", 100, &[("start", "1")]).await;
    c.create_ct("pve2", 101, &[("start", "1")]).await;
    c.post("/cluster/ha/resources", &[("sid", "ct:100")]).await;
    until(&c, 100, "HA-managed", |e| e["hastate"] == "started").await;
    assert!(sim.set_node_online("pve2", false));
    let e = until(&c, 100, "recovered", |e| {
        e["node"] != "pve2" && e["status"] == "running"
    })
    .await;
    assert_eq!(e["hastate"], "started", "{e}");
    let other = until(&c, 101, "listed", |e| !e.is_null()).await;
    assert_eq!(
        other["node"], "pve2",
        "a container HA does not manage stays with its node"
    );
    let status = c.get("/cluster/ha/status/current").await;
    let svc = status
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "service:ct:100")
        .cloned()
        .unwrap();
    assert_eq!(
        (&svc["state"], &svc["request_state"]),
        (&Value::from("started"), &Value::from("started"))
    );
    assert!(status
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "quorum" && s["quorate"] == 1));
    // disarmed with freeze, the manager changes nothing
    c.post("/cluster/ha/status/disarm-ha", &[("resource-mode", "freeze")])
        .await;
    let fencing = c.get("/cluster/ha/status/current").await;
    assert!(
        fencing
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "fencing" && s["armed-state"] == "disarmed"),
        "{}",
        fencing.text
    );
    let node = e["node"].as_str().unwrap().to_string();
    c.ok_task(c.post(&format!("/nodes/{node}/lxc/100/status/stop"), &[]).await)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = until(&c, 100, "listed", |e| !e.is_null()).await;
    assert_eq!(e["status"], "running", "frozen: the stop request waits");
    c.post("/cluster/ha/status/arm-ha", &[]).await;
    until(&c, 100, "stopped once armed again", |e| e["status"] == "stopped").await;
    sim.shutdown().await;
}

#[tokio::test]
async fn ha_requests_need_sys_console_and_reads_need_sys_audit() {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: "ops@pve!vm".into(),
        secret: "s3cret".into(),
        privileges: Some(vec!["VM.Audit".into(), "VM.PowerMgmt".into(), "Sys.Audit".into()]),
    });
    let sim = start(cfg).await.unwrap();
    let admin = client(&sim);
    admin.create_ct("pve1", 100, &[]).await;
    let mut c = client(&sim);
    c.auth = Some("PVEAPIToken=ops@pve!vm=s3cret".into());
    let r = c.post("/cluster/ha/resources", &[("sid", "ct:100")]).await;
    assert_eq!(
        (r.status, r.reason.as_str()),
        (403, "Permission check failed (/, Sys.Console)")
    );
    let r = c.get("/cluster/ha/resources").await;
    assert_eq!(r.status, 200, "Sys.Audit reads: {}", r.text);
    let r = c.get(&format!("/cluster/ha/resources/{}", enc("ct:100"))).await;
    assert_eq!(r.reason, "no such resource 'ct:100'");
    sim.shutdown().await;
}
