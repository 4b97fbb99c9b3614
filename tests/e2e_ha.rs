//! High availability end to end: `spec.highAvailability` becomes a Proxmox HA resource (and a
//! node-affinity rule); power changes go through HA, relocations by HA are followed and never
//! undone, and removing the field or the object removes what the operator made.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn container(name: &str, state: &str, ha: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  node: pve1\n  state: {state}\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{ha}"
    )
}

fn ha_resource(sim: &Sim, vmid: u64) -> Value {
    sim.call("GET", &format!("/cluster/ha/resources/ct:{vmid}"), &[])["data"].clone()
}

fn phase_and_node(cp: &ControlPlane, ns: &str, name: &str) -> Option<(String, String)> {
    let o = get_json(cp, ns, "lxc", name)?;
    Some((
        o["status"]["phase"].as_str()?.to_string(),
        o["status"]["node"].as_str()?.to_string(),
    ))
}

fn power_calls(sim: &Sim) -> u64 {
    ["start", "stop", "shutdown"]
        .iter()
        .map(|a| sim.count(&format!("POST /nodes/{{node}}/lxc/{{vmid}}/status/{a}")))
        .sum()
}

#[test]
fn an_ha_managed_container_is_stopped_through_ha_and_a_relocation_is_followed_without_a_migration_back() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ha");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let _op = Operator::start(cp, &ns);
    let ha = "  highAvailability:\n    maxRestart: 2\n";
    cp.apply(&ns, &container("web", "Running", ha));
    let o = wait_ready(cp, &ns, "lxc", "web", T);
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    let r = wait_for("the HA resource", T, || {
        let r = ha_resource(&sim, vmid);
        (r["state"] == "started").then_some(r)
    });
    assert_eq!(r["max_restart"], 2, "{r}");
    assert!(
        r["comment"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pve.lxc.dev {ns}/web uid=")),
        "{r}"
    );
    wait_for("status.highAvailability", T, || {
        let o = get_json(cp, &ns, "lxc", "web")?;
        (o["status"]["highAvailability"]["resource"] == format!("ct:{vmid}")
            && o["status"]["highAvailability"]["state"] == "started")
            .then_some(())
    });
    // stopping: asked of HA (its resource state), carried out by HA's own task
    let before = power_calls(&sim);
    cp.apply(&ns, &container("web", "Stopped", ha));
    wait_for("stopped by HA", T, || {
        (phase_and_node(cp, &ns, "web")?.0 == "Stopped").then_some(())
    });
    assert_eq!(ha_resource(&sim, vmid)["state"], "stopped");
    assert_eq!(
        power_calls(&sim),
        before,
        "the operator made no start/stop call of its own"
    );
    let tasks = sim.call("GET", &format!("/nodes/pve1/tasks?vmid={vmid}&limit=100"), &[]);
    assert!(
        tasks["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["type"] == "vzstop" && t["user"] == "root@pam"),
        "HA's LRM stopped it: {tasks}"
    );
    cp.apply(&ns, &container("web", "Running", ha));
    wait_for("started again by HA", T, || {
        (phase_and_node(cp, &ns, "web")? == ("Running".into(), "pve1".into())).then_some(())
    });
    // HA relocates it: followed, never moved back to spec.node
    let migrations = sim.count("POST /nodes/{node}/lxc/{vmid}/migrate");
    sim.call(
        "POST",
        &format!("/cluster/ha/resources/ct:{vmid}/relocate"),
        &[("node", "pve3")],
    );
    wait_for("the relocation followed", T, || {
        (phase_and_node(cp, &ns, "web")? == ("Running".into(), "pve3".into())).then_some(())
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sim.container(vmid).unwrap()["node"], "pve3", "still where HA put it");
    assert_eq!(
        sim.count("POST /nodes/{node}/lxc/{vmid}/migrate"),
        migrations,
        "no migration back"
    );
    let o = wait_ready(cp, &ns, "lxc", "web", T);
    assert_eq!(o["status"]["node"], "pve3");
    // removing the field removes the HA resource; the container keeps running, and spec.node
    // applies again
    cp.kubectl_ok(&[
        "patch",
        "lxc",
        "web",
        "-n",
        &ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/highAvailability"}]"#,
    ]);
    wait_for("the HA resource removed", T, || {
        let o = get_json(cp, &ns, "lxc", "web")?;
        (ha_resource(&sim, vmid).is_null() && o["status"]["highAvailability"].is_null()).then_some(())
    });
    wait_for("back on spec.node, running", T, || {
        let c = sim.container(vmid)?;
        (c["node"] == "pve1" && c["status"] == "running").then_some(())
    });
    wait_ready(cp, &ns, "lxc", "web", T);
}

#[test]
fn node_affinity_becomes_an_ha_rule_that_moves_the_container_and_deleting_removes_it_all() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ha-rule");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let _op = Operator::start(cp, &ns);
    let affinity =
        |nodes: &str| format!("  highAvailability:\n    nodeAffinity:\n      strict: true\n      nodes: {nodes}\n");
    cp.apply(
        &ns,
        &container("db", "Running", &affinity("[{name: pve2, priority: 2}, {name: pve3}]")),
    );
    let vmid = wait_ready(cp, &ns, "lxc", "db", T)["status"]["vmid"].as_u64().unwrap();
    let rule_path = format!("/cluster/ha/rules/k8s-ct{vmid}");
    let rule = wait_for("the node-affinity rule", T, || {
        let r = sim.call("GET", &rule_path, &[])["data"].clone();
        (!r.is_null()).then_some(r)
    });
    assert_eq!(
        (&rule["nodes"], &rule["strict"]),
        (&Value::from("pve2:2,pve3:0"), &Value::from(1)),
        "{rule}"
    );
    let migrations = sim.count("POST /nodes/{node}/lxc/{vmid}/migrate");
    wait_for("HA moved it to its highest-priority node", T, || {
        (phase_and_node(cp, &ns, "db")? == ("Running".into(), "pve2".into())).then_some(())
    });
    cp.apply(
        &ns,
        &container("db", "Running", &affinity("[{name: pve3, priority: 5}]")),
    );
    wait_for("the rule updated and followed", T, || {
        let r = sim.call("GET", &rule_path, &[])["data"].clone();
        (r["nodes"] == "pve3:5" && phase_and_node(cp, &ns, "db")?.1 == "pve3").then_some(())
    });
    assert_eq!(
        sim.count("POST /nodes/{node}/lxc/{vmid}/migrate"),
        migrations,
        "HA moved it, the operator did not"
    );
    assert_eq!(
        get_json(cp, &ns, "lxc", "db").unwrap()["status"]["highAvailability"]["rule"],
        format!("k8s-ct{vmid}")
    );
    // a node that is not in the cluster is refused before anything reaches Proxmox
    cp.apply(&ns, &container("db", "Running", &affinity("[{name: pve9}]")));
    wait_for("the bad node refused", T, || {
        let o = get_json(cp, &ns, "lxc", "db")?;
        let (_, reason, msg) = condition(&o, "Synced")?;
        (reason == "InvalidSpec" && msg.contains("pve9")).then_some(())
    });
    assert_eq!(sim.call("GET", &rule_path, &[])["data"]["nodes"], "pve3:5");
    // deleting the object takes it out of HA first, then destroys it
    cp.kubectl_ok(&["delete", "-n", &ns, "lxc", "db", "--wait=true", "--timeout=60s"]);
    assert!(sim.container(vmid).is_none());
    let left = sim.call("GET", "/cluster/ha/resources", &[]);
    assert_eq!(left["data"].as_array().map(Vec::len), Some(0), "{left}");
    let rules = sim.call("GET", "/cluster/ha/rules", &[]);
    assert_eq!(rules["data"].as_array().map(Vec::len), Some(0), "{rules}");
}

#[test]
fn a_node_in_maintenance_is_emptied_of_ha_managed_containers_by_asking_ha() {
    let cp = ControlPlane::shared();
    let ns = cp.namespace("ha-drain");
    let sim = Sim::start(&["--clock-speed", "5"]);
    connect_cluster(cp, &ns, &sim, "1s");
    let _op = Operator::start(cp, &ns);
    let manifest = "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: app\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n  highAvailability: {}\n";
    cp.apply(&ns, manifest);
    let o = wait_ready(cp, &ns, "lxc", "app", T);
    let (vmid, node) = (
        o["status"]["vmid"].as_u64().unwrap(),
        o["status"]["node"].as_str().unwrap().to_string(),
    );
    wait_for("HA-managed", T, || {
        (ha_resource(&sim, vmid)["state"] == "started").then_some(())
    });
    let migrations = sim.count("POST /nodes/{node}/lxc/{vmid}/migrate");
    cp.kubectl_ok(&[
        "patch",
        "proxmoxcluster",
        &ns,
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"maintenance":[{{"node":"{node}"}}]}}}}"#),
    ]);
    wait_for("moved off the node by HA", T, || {
        let (phase, now) = phase_and_node(cp, &ns, "app")?;
        (phase == "Running" && now != node).then_some(())
    });
    assert_eq!(
        sim.count("POST /nodes/{node}/lxc/{vmid}/migrate"),
        migrations,
        "asked through HA, not with a migrate call"
    );
    assert!(sim.count("POST /cluster/ha/resources/{sid}/migrate") >= 1);
    wait_ready(cp, &ns, "lxc", "app", T);
}
