//! The simulator answers like Proxmox VE (fixtures copied from ../shared/pve-api/examples/).

mod sim_util;

use proxmox_lxc_operator::sim::{start, FaultConfig, FaultKind, FaultRule, SimConfig, TokenConfig};
use serde_json::{json, Value};
use sim_util::{client, enc, fast_sim, fixture, keys};

const TMPL: &str = "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst";

fn assert_error_like(r: &sim_util::Resp, fixture_name: &str, replace: &[(&str, &str)]) {
    let mut want = serde_json::to_string(&fixture(fixture_name)).unwrap();
    for (a, b) in replace {
        want = want.replace(a, b);
    }
    let want: Value = serde_json::from_str(&want).unwrap();
    assert_eq!(r.body, want, "{fixture_name}: {}", r.text);
    let first = want["message"].as_str().unwrap().lines().next().unwrap().to_string();
    assert_eq!(r.reason, first, "reason phrase = first line of the message");
}

#[tokio::test]
async fn error_responses_match_proxmox_texts_and_reason_phrases() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[]).await;

    let r = c
        .post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
        .await;
    assert_eq!(r.status, 500);
    assert_error_like(&r, "error.500.ct_already_exists.json", &[("'pve'", "'pve1'")]);

    let r = c.get("/nodes/pve1/lxc/999/config").await;
    assert_eq!(r.status, 500);
    assert_error_like(
        &r,
        "error.500.config_missing.constructed.json",
        &[("nodes/pve/", "nodes/pve1/")],
    );

    c.ok_task(c.post("/nodes/pve1/lxc/100/status/start", &[]).await).await;
    let r = c.post("/nodes/pve1/lxc/100/status/start", &[]).await;
    assert_error_like(&r, "error.500.already_running.constructed.json", &[]);

    let r = c
        .put(
            "/nodes/pve1/lxc/100/config",
            &[
                ("memory", "1024"),
                ("digest", "0000000000000000000000000000000000000000"),
            ],
        )
        .await;
    assert_error_like(&r, "error.500.digest_mismatch.constructed.json", &[]);

    sim.set_lock(100, Some("backup"));
    let r = c.put("/nodes/pve1/lxc/100/config", &[("memory", "1024")]).await;
    assert_eq!(r.status, 500);
    assert_error_like(&r, "error.500.ct_locked_backup.constructed.json", &[]);
    sim.set_lock(100, None);

    let r = c.get("/nodes/pve1/lxc/100/bogus").await;
    assert_eq!(r.status, 501);
    assert_error_like(
        &r,
        "error.501.not_implemented.constructed.json",
        &[("/nodes/pve/", "/nodes/pve1/")],
    );

    let r = c.get("/cluster/nextid?vmid=100").await;
    assert_eq!(r.status, 400);
    assert_error_like(&r, "cluster_nextid.taken.400.json", &[("200", "100")]);

    // 401: empty body, reason "No ticket" / "Authentication failed!"
    let mut anon = client(&sim);
    anon.auth = None;
    let r = anon.get("/nodes").await;
    let f = fixture("error.401.no_ticket.http.json");
    assert_eq!(r.status, 401);
    assert_eq!(r.reason, f["reason"]);
    assert_eq!(r.text, "");
    anon.auth = Some("PVEAPIToken=root@pam!sim=wrong".into());
    let r = anon.get("/nodes").await;
    assert_eq!(
        (r.status, r.reason.as_str(), r.text.as_str()),
        (401, "Authentication failed!", "")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn token_without_privilege_gets_permission_check_failed() {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: "auditor@pve!ro".into(),
        secret: "s3cret".into(),
        privileges: Some(vec!["VM.Audit".into(), "Sys.Audit".into()]),
    });
    let sim = start(cfg).await.unwrap();
    let mut c = client(&sim);
    c.auth = Some("PVEAPIToken=auditor@pve!ro=s3cret".into());
    let r = c
        .post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
        .await;
    assert_eq!(r.status, 403);
    assert_error_like(&r, "error.403.permission.constructed.json", &[]);
    assert_eq!(c.get("/nodes").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn parameter_validation_follows_the_schema_with_proxmox_messages() {
    let sim = fast_sim().await;
    let c = client(&sim);
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "100"),
                ("ostemplate", TMPL),
                ("foo", "1"),
                ("memory", "lots"),
                ("onboot", "true"),
                ("ostype", "windows"),
                ("net0", "name=eth0,ip=192.0.2.1"),
                ("net1", "name=eth1,foo=1"),
                ("password", "abc"),
                ("cores", "0"),
            ],
        )
        .await;
    assert_eq!((r.status, r.reason.as_str()), (400, "Parameter verification failed."));
    let f = fixture("error.400.param_verification.pve9.constructed.json");
    assert_eq!(keys(&r.body), keys(&f));
    assert_eq!(r.body["message"], f["message"]);
    let e = &r.body["errors"];
    assert_eq!(e["foo"], f["errors"]["foo"]);
    assert_eq!(e["memory"], f["errors"]["memory"]);
    assert_eq!(e["onboot"], "type check ('boolean') failed - got 'true'");
    assert_eq!(
        e["ostype"],
        "value 'windows' does not have a value in the enumeration 'debian, devuan, ubuntu, centos, fedora, opensuse, archlinux, alpine, gentoo, nixos, unmanaged'"
    );
    assert!(
        e["net0"]
            .as_str()
            .unwrap()
            .starts_with("invalid format - format error\nnet0.ip: invalid format - "),
        "{e}"
    );
    assert_eq!(
        e["net1"],
        "invalid format - invalid key in comma-separated list property: foo\n"
    );
    assert_eq!(
        e["password"],
        fixture("error.400.param_verification.pve7.json")["errors"]["password"]
    );
    assert_eq!(e["cores"], "value must have a minimum value of 1");

    let r = c.post("/nodes/pve1/lxc", &[("vmid", "99")]).await;
    assert_eq!(
        r.body["errors"]["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    assert_eq!(
        r.body["errors"]["ostemplate"],
        "property is missing and it is not optional"
    );
    let r = c.get("/cluster/nextid?vmid=1000000000").await;
    assert_eq!(r.status, 400, "{}", r.text);
    // JSON bodies may use real booleans
    let r = c
        .http
        .post(format!("{}/api2/json/nodes/pve1/lxc", sim.base_url()))
        .header("Authorization", sim.token_header())
        .json(&json!({"vmid": 101, "ostemplate": TMPL, "onboot": true, "rootfs": "local-lvm:2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn container_lifecycle_matches_example_shapes() {
    let sim = fast_sim().await;
    let c = client(&sim);
    let r = c.get("/cluster/nextid").await;
    assert_eq!(r.body, fixture("cluster_nextid.json"), "nextid is a string on the wire");
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "100"),
                ("ostemplate", TMPL),
                ("hostname", "web01"),
                ("rootfs", "local-lvm:8"),
                ("memory", "1024"),
                ("cores", "2"),
                (
                    "net0",
                    "name=eth0,bridge=vmbr0,ip=192.0.2.10/24,gw=192.0.2.1,firewall=1,tag=20",
                ),
                ("tags", "Web;prod,web"),
                ("description", "Web front end\nmanaged by operator"),
                ("features", "nesting=1,keyctl=1"),
            ],
        )
        .await;
    let upid = r.data().as_str().unwrap_or_else(|| panic!("{}", r.text)).to_string();
    let want = fixture("lxc_create.upid.json");
    let re = regex::Regex::new(r"^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzcreate:100:root@pam!sim:$").unwrap();
    assert!(re.is_match(&upid), "{upid} (fixture {want})");
    // while the worker runs the config is locked
    let during = c.get("/nodes/pve1/lxc/100/config").await;
    assert_eq!(during.data()["lock"], "create");
    let running = c.get(&format!("/nodes/pve1/tasks/{}/status", enc(&upid))).await;
    if running.data()["status"] == "running" {
        assert_eq!(
            keys(running.data()),
            keys(&fixture("task_status.running.token.json")["data"])
        );
    }
    let done = c.wait(&upid).await;
    assert_eq!(
        keys(&done),
        keys(&fixture("task_status.stopped_error_locked.constructed.json")["data"])
    );
    assert_eq!(
        (
            done["user"].as_str(),
            done["tokenid"].as_str(),
            done["exitstatus"].as_str()
        ),
        (Some("root@pam"), Some("sim"), Some("OK"))
    );
    let log = c.get(&format!("/nodes/pve1/tasks/{}/log", enc(&upid))).await;
    assert_eq!(keys(&log.body), vec!["data", "total"]);
    assert_eq!(log.data().as_array().unwrap().last().unwrap()["t"], "TASK OK");

    let conf = c.get("/nodes/pve1/lxc/100/config").await;
    let cf = conf.data();
    let want = &fixture("lxc_config.pve9.constructed.json")["data"];
    for k in [
        "arch",
        "cores",
        "memory",
        "swap",
        "hostname",
        "ostype",
        "unprivileged",
        "features",
        "rootfs",
        "net0",
        "tags",
        "description",
        "digest",
    ] {
        assert!(cf.get(k).is_some(), "missing {k} in {cf}");
        assert_eq!(cf[k].is_number(), want[k].is_number(), "type of {k}");
    }
    assert_eq!(cf["rootfs"], "local-lvm:vm-100-disk-0,size=8G");
    assert_eq!(cf["tags"], "prod;web");
    assert_eq!(cf["features"], "keyctl=1,nesting=1");
    assert_eq!(cf["description"], "Web front end\nmanaged by operator\n");
    let net0 = cf["net0"].as_str().unwrap();
    assert!(regex::Regex::new(r"^name=eth0,bridge=vmbr0,firewall=1,gw=192\.0\.2\.1,hwaddr=BC:24:11:[0-9A-F:]{8},ip=192\.0\.2\.10/24,tag=20,type=veth$").unwrap().is_match(net0), "{net0}");
    let digest = cf["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 40);

    // config update with digest, delete=, "no options specified"
    assert_eq!(
        c.put("/nodes/pve1/lxc/100/config", &[("onboot", "1"), ("digest", &digest)])
            .await
            .status,
        200
    );
    let r = c.put("/nodes/pve1/lxc/100/config", &[("digest", &digest)]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "no options specified"));
    assert_eq!(
        c.put("/nodes/pve1/lxc/100/config", &[("delete", "onboot")])
            .await
            .status,
        200
    );
    let r = c
        .put("/nodes/pve1/lxc/100/config", &[("delete", "cores"), ("cores", "4")])
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["errors"]["delete"],
        "you can't use '-cores' and -delete cores' at the same time"
    );

    // start -> status current moves -> interfaces
    c.ok_task(c.post("/nodes/pve1/lxc/100/status/start", &[]).await).await;
    let cur = c.get("/nodes/pve1/lxc/100/status/current").await;
    let want = &fixture("lxc_status_current.running.constructed.json")["data"];
    assert_eq!(keys(cur.data()), keys(want));
    let list = c.get("/nodes/pve1/lxc").await;
    assert_eq!(
        keys(&list.data()[0]),
        keys(&fixture("lxc_list.pve9.constructed.json")["data"][0])
    );
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let cur2 = c.get("/nodes/pve1/lxc/100/status/current").await;
    assert!(
        cur2.data()["uptime"].as_u64() > cur.data()["uptime"].as_u64(),
        "uptime moves (clock x50)"
    );
    assert!(cur2.data()["netin"].as_u64() > cur.data()["netin"].as_u64());
    let ifs = c.get("/nodes/pve1/lxc/100/interfaces").await;
    assert_eq!(ifs.data()[1]["inet"], "192.0.2.10/24");
    assert_eq!(ifs.data()[1]["name"], "eth0");

    // a restart-only key on a running CT goes to pending
    assert_eq!(
        c.put(
            "/nodes/pve1/lxc/100/config",
            &[("nameserver", "192.0.2.53"), ("memory", "2048")]
        )
        .await
        .status,
        200
    );
    let p = c.get("/nodes/pve1/lxc/100/pending").await;
    let ns = p
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "nameserver")
        .unwrap()
        .clone();
    assert_eq!(ns, json!({"key": "nameserver", "pending": "192.0.2.53"}));
    let cur_conf = c.get("/nodes/pve1/lxc/100/config?current=1").await;
    assert!(cur_conf.data().get("nameserver").is_none());
    assert_eq!(cur_conf.data()["memory"], 2048, "memory is hot-plugged");

    // resources
    let res = c.get("/cluster/resources?type=vm").await;
    let e = &res.data()[0];
    for k in [
        "id", "type", "vmid", "name", "node", "status", "template", "cpu", "maxcpu", "mem", "maxmem", "disk",
        "maxdisk", "netin", "netout", "uptime", "tags",
    ] {
        assert!(e.get(k).is_some(), "resources lacks {k}: {e}");
    }
    assert_eq!(e["id"], "lxc/100");

    // delete while running, then stop + delete
    let r = c.delete("/nodes/pve1/lxc/100", &[]).await;
    assert_eq!(r.reason, "unable to destroy CT 100 - container is running");
    c.ok_task(c.post("/nodes/pve1/lxc/100/status/stop", &[]).await).await;
    assert_eq!(c.get("/nodes/pve1/lxc/100/interfaces").await.data(), &Value::Null);
    assert_eq!(
        sim.container(100).unwrap().config.get("nameserver").map(String::as_str),
        Some("192.0.2.53"),
        "pending applied at stop/start"
    );
    c.put("/nodes/pve1/lxc/100/config", &[("protection", "1")]).await;
    let r = c.delete("/nodes/pve1/lxc/100", &[]).await;
    assert_eq!(r.reason, "can't remove CT 100 - protection mode enabled");
    c.put("/nodes/pve1/lxc/100/config", &[("delete", "protection")]).await;
    c.ok_task(c.delete("/nodes/pve1/lxc/100", &[("purge", "1")]).await)
        .await;
    assert!(sim.container(100).is_none());
    assert!(sim.volumes("pve1", "local-lvm").is_empty(), "disks removed");
    sim.shutdown().await;
}

#[tokio::test]
async fn locked_container_refuses_config_update_and_start_task_fails() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[]).await;
    sim.set_lock(100, Some("backup"));
    let r = c.put("/nodes/pve1/lxc/100/config", &[("memory", "1024")]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "CT is locked (backup)"));
    let r = c.delete("/nodes/pve1/lxc/100", &[]).await;
    assert_eq!((r.status, r.reason.as_str()), (500, "CT is locked (backup)"));
    let s = c.task(c.post("/nodes/pve1/lxc/100/status/start", &[]).await).await;
    let want = &fixture("task_status.stopped_error_locked.constructed.json")["data"];
    assert_eq!(s["exitstatus"], want["exitstatus"]);
    assert_eq!(s["type"], "vzstart");
    assert_eq!(sim.container(100).unwrap().status, "stopped");
    sim.shutdown().await;
}

#[tokio::test]
async fn clone_is_linked_from_templates_and_full_otherwise() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 9000, &[("hostname", "tmpl")]).await;
    let r = c
        .post("/nodes/pve1/lxc/9000/clone", &[("newid", "101"), ("full", "0")])
        .await;
    assert_eq!(
        r.reason,
        "Linked clone feature for 'local-lvm:vm-9000-disk-0' is not available"
    );
    let r = c.post("/nodes/pve1/lxc/9000/template", &[]).await;
    assert_eq!(r.body, fixture("lxc_template.null.json"));
    for _ in 0..100 {
        if sim.container(9000).unwrap().config.contains_key("template") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let conf = c.get("/nodes/pve1/lxc/9000/config").await;
    assert_eq!(conf.data()["template"], 1);
    assert_eq!(conf.data()["rootfs"], "local-lvm:base-9000-disk-0,size=8G");
    let r = c
        .post(
            "/nodes/pve1/lxc/9000/clone",
            &[("newid", "101"), ("hostname", "linked"), ("storage", "local-lvm")],
        )
        .await;
    assert_eq!(r.reason, "parameter 'storage' not allowed for linked clones");
    let r = c
        .post(
            "/nodes/pve1/lxc/9000/clone",
            &[("newid", "101"), ("hostname", "linked")],
        )
        .await;
    let upid = r.data().as_str().unwrap().to_string();
    assert!(upid.contains(":vzclone:9000:"), "id is the source vmid: {upid}");
    assert_eq!(sim.container(9000).unwrap().lock.as_deref(), Some("disk"));
    assert_eq!(sim.container(101).unwrap().lock.as_deref(), Some("create"));
    assert_eq!(c.wait(&upid).await["exitstatus"], "OK");
    let conf = c.get("/nodes/pve1/lxc/101/config").await;
    assert_eq!(
        conf.data()["rootfs"],
        "local-lvm:base-9000-disk-0/vm-101-disk-0,size=8G"
    );
    assert_eq!(conf.data()["hostname"], "linked");
    assert!(conf.data().get("template").is_none());
    let r = c
        .post("/nodes/pve1/lxc/9000/clone", &[("newid", "102"), ("target", "pve2")])
        .await;
    assert_eq!(r.reason, "can't clone CT to node 'pve2' (CT uses local storage)");
    // full clone of a normal container
    c.ok_task(
        c.post("/nodes/pve1/lxc/101/clone", &[("newid", "103"), ("storage", "local")])
            .await,
    )
    .await;
    assert_eq!(
        c.get("/nodes/pve1/lxc/103/config").await.data()["rootfs"],
        "local:103/vm-103-disk-0.raw,size=8G"
    );
    // the template cannot go while a linked clone uses it
    let s = c.task(c.delete("/nodes/pve1/lxc/9000", &[]).await).await;
    assert_eq!(
        s["exitstatus"],
        "base volume 'local-lvm:base-9000-disk-0' is still in use by linked cloned"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn migrate_moves_container_and_disks_with_restart() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[("start", "1")]).await;
    assert_eq!(sim.container(100).unwrap().status, "running");
    let r = c.post("/nodes/pve1/lxc/100/migrate", &[("target", "pve2")]).await;
    assert_eq!(
        r.reason,
        "can't migrate running container without --online or --restart"
    );
    let r = c.post("/nodes/pve1/lxc/100/migrate", &[("target", "pve1")]).await;
    assert_eq!(r.body["errors"]["target"], "target is local node.");
    let upid = c
        .post("/nodes/pve1/lxc/100/migrate", &[("target", "pve2"), ("restart", "1")])
        .await
        .data()
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(sim.container(100).unwrap().lock.as_deref(), Some("migrate"));
    assert_eq!(c.wait(&upid).await["exitstatus"], "OK");
    let ct = sim.container(100).unwrap();
    assert_eq!(
        (ct.node.as_str(), ct.status.as_str(), ct.lock),
        ("pve2", "running", None)
    );
    assert_eq!(sim.volumes("pve2", "local-lvm"), vec!["local-lvm:vm-100-disk-0"]);
    assert!(sim.volumes("pve1", "local-lvm").is_empty());
    assert_eq!(c.get("/nodes/pve1/lxc/100/config").await.status, 500);
    assert_eq!(c.get("/nodes/pve2/lxc/100/config").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn vzdump_runs_one_at_a_time_per_node_and_backups_restore() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[("hostname", "web01")]).await;
    c.create_ct("pve1", 101, &[]).await;
    c.create_ct("pve2", 200, &[]).await;
    let r = c
        .post("/nodes/pve1/vzdump", &[("vmid", "200"), ("storage", "local")])
        .await;
    assert_eq!(r.data(), "OK", "no local guest => no task");
    let a = c
        .post(
            "/nodes/pve1/vzdump",
            &[
                ("vmid", "100"),
                ("storage", "nfs-backup"),
                ("compress", "zstd"),
                ("notes-template", "{{guestname}} on {{node}}"),
            ],
        )
        .await;
    let b = c
        .post(
            "/nodes/pve1/vzdump",
            &[("vmid", "100,101"), ("storage", "local"), ("compress", "zstd")],
        )
        .await;
    let ua = a.data().as_str().unwrap().to_string();
    let ub = b.data().as_str().unwrap().to_string();
    assert!(ua.contains(":vzdump:100:"), "{ua}");
    assert!(ub.contains(":vzdump::"), "several guests => empty id: {ub}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(sim.container(100).unwrap().lock.as_deref(), Some("backup"));
    let r = c.put("/nodes/pve1/lxc/100/config", &[("memory", "1024")]).await;
    assert_eq!(r.reason, "CT is locked (backup)");
    assert_eq!(c.wait(&ua).await["exitstatus"], "OK");
    assert_eq!(c.wait(&ub).await["exitstatus"], "OK");
    assert_eq!(sim.stats()["vzdump_overlaps"], 1);
    let log = c.get(&format!("/nodes/pve1/tasks/{}/log", enc(&ub))).await;
    assert!(log.text.contains("trying to get global lock"), "{}", log.text);
    let content = c
        .get("/nodes/pve3/storage/nfs-backup/content?content=backup&vmid=100")
        .await;
    let e = &content.data()[0];
    assert_eq!(
        keys(e),
        keys(&fixture("storage_content.backup.constructed.json")["data"][0])
    );
    assert_eq!(e["notes"], "web01 on pve1");
    let volid = e["volid"].as_str().unwrap().to_string();
    assert!(
        regex::Regex::new(r"^nfs-backup:backup/vzdump-lxc-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$")
            .unwrap()
            .is_match(&volid),
        "{volid}"
    );
    let tmpl = c.get("/nodes/pve1/storage/local/content?content=vztmpl").await;
    assert_eq!(
        keys(&tmpl.data()[0]),
        keys(&fixture("storage_content.vztmpl.constructed.json")["data"][0])
    );
    // restore into a new CT on another node from the shared storage
    c.ok_task(
        c.post(
            "/nodes/pve3/lxc",
            &[
                ("vmid", "300"),
                ("ostemplate", &volid),
                ("restore", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await,
    )
    .await;
    let conf = c.get("/nodes/pve3/lxc/300/config").await;
    assert_eq!(conf.data()["hostname"], "web01");
    assert_eq!(conf.data()["rootfs"], "local-lvm:vm-300-disk-0,size=8G");
    sim.shutdown().await;
}

#[tokio::test]
async fn storage_capacity_goes_down_as_disks_are_created() {
    let sim = fast_sim().await;
    let c = client(&sim);
    let before = c.get("/nodes/pve1/storage?content=rootdir").await;
    assert_eq!(
        keys(&before.data()[0]),
        keys(&fixture("node_storage_list.pve9-capture.json")["data"][0])
    );
    let avail = |r: &sim_util::Resp| {
        r.data()
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["storage"] == "local-lvm")
            .unwrap()["avail"]
            .as_u64()
            .unwrap()
    };
    c.create_ct("pve1", 100, &[]).await;
    let after = c.get("/nodes/pve1/storage?content=rootdir").await;
    assert_eq!(avail(&before) - avail(&after), 8 << 30);
    c.ok_task(
        c.put("/nodes/pve1/lxc/100/resize", &[("disk", "rootfs"), ("size", "+2G")])
            .await,
    )
    .await;
    let r = c
        .put("/nodes/pve1/lxc/100/resize", &[("disk", "rootfs"), ("size", "4G")])
        .await;
    assert_eq!(r.reason, "unable to shrink disk size");
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[("vmid", "101"), ("ostemplate", TMPL), ("rootfs", "local-lvm:5000")],
        )
        .await;
    let s = c.task(r).await;
    assert!(
        s["exitstatus"]
            .as_str()
            .unwrap()
            .starts_with("unable to create CT 101 - unable to allocate"),
        "{s}"
    );
    assert!(sim.container(101).is_none(), "failed create removes the config");
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[("vmid", "102"), ("ostemplate", TMPL), ("rootfs", "nfs-backup:4")],
        )
        .await;
    assert_eq!(
        r.body["errors"]["storage"],
        "storage 'nfs-backup' does not support container directories"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn ticket_login_sets_cookie_and_requires_csrf_on_writes() {
    let sim = fast_sim().await;
    let (user, pass) = sim.user_credentials().unwrap();
    let mut c = client(&sim);
    c.auth = None;
    let r = c
        .post("/access/ticket", &[("username", &user), ("password", "wrong")])
        .await;
    assert_eq!((r.status, r.reason.as_str()), (401, "authentication failure"));
    let r = c
        .post("/access/ticket", &[("username", &user), ("password", &pass)])
        .await;
    assert_eq!(keys(r.data()), keys(&fixture("access_ticket.constructed.json")["data"]));
    let ticket = r.data()["ticket"].as_str().unwrap().to_string();
    assert!(
        regex::Regex::new(r"^PVE:root@pam:[0-9A-F]{8}::[A-Za-z0-9+/=]+$")
            .unwrap()
            .is_match(&ticket),
        "{ticket}"
    );
    c.cookie = Some(enc(&ticket));
    assert_eq!(c.get("/nodes").await.status, 200);
    let r = c
        .post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
        .await;
    assert_eq!(r.status, 401, "write without CSRF token");
    c.csrf = Some(r#"x"#.into());
    assert_eq!(
        c.post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
            .await
            .status,
        401
    );
    c.csrf = Some(
        c.post("/access/ticket", &[("username", &user), ("password", &pass)])
            .await
            .data()["CSRFPreventionToken"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let s = c
        .task(
            c.post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
                .await,
        )
        .await;
    assert_eq!((s["user"].as_str(), s.get("tokenid")), (Some("root@pam"), None));
    sim.shutdown().await;
}

fn rule(endpoint: &str, rate: f64, kind: FaultKind) -> FaultRule {
    FaultRule {
        endpoint: endpoint.into(),
        rate,
        kind,
        message: None,
        status: None,
    }
}

async fn fault_run(seed: u64) -> (Vec<u16>, Value) {
    let mut cfg = SimConfig::fast();
    cfg.seed = Some(seed);
    cfg.faults.rules = vec![
        rule("GET /nodes/{node}/lxc", 0.3, FaultKind::Error),
        rule("GET /nodes/{node}/lxc", 0.2, FaultKind::LockTimeout),
    ];
    let sim = start(cfg).await.unwrap();
    let c = client(&sim);
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let r = c.get("/nodes/pve1/lxc").await;
        if r.status == 500 {
            assert!(
                r.reason == "simulated failure"
                    || r.reason == "can't lock file '/run/lock/lxc/pve-config-100.lock' - got timeout",
                "{}",
                r.reason
            );
        }
        statuses.push(r.status);
    }
    let stats = sim.stats();
    sim.shutdown().await;
    (statuses, stats)
}

#[tokio::test]
async fn configured_error_rate_produces_errors_counted_in_stats_and_seed_replays_them() {
    let (a, stats) = fault_run(7).await;
    let errors = a.iter().filter(|s| **s == 500).count() as u64;
    assert!((12..=40).contains(&errors), "about 44% of 60 requests fail: {errors}");
    assert_eq!(stats["statuses"]["500"], errors);
    assert_eq!(stats["faults_injected"], errors);
    assert_eq!(stats["requests"]["GET /nodes/{node}/lxc"], 60);
    assert_eq!(stats["total"], 60);
    let (b, _) = fault_run(7).await;
    assert_eq!(a, b, "same seed, same faults");
    let (c, _) = fault_run(8).await;
    assert_ne!(a, c);
}

#[tokio::test]
async fn reset_fault_drops_connection_and_task_failure_rate_fails_tasks() {
    let sim = fast_sim().await;
    let c = client(&sim);
    sim.set_faults(FaultConfig {
        rules: vec![rule("*", 1.0, FaultKind::Reset)],
        ..Default::default()
    });
    let r = c
        .http
        .get(format!("{}/api2/json/nodes", sim.base_url()))
        .header("Authorization", sim.token_header())
        .send()
        .await;
    assert!(r.is_err(), "connection dropped");
    // runtime admin API replaces the faults
    let admin = c
        .http
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({"task_failure_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);
    let s = c
        .task(
            c.post("/nodes/pve1/lxc", &[("vmid", "100"), ("ostemplate", TMPL)])
                .await,
        )
        .await;
    assert_eq!(s["exitstatus"], "simulated task failure");
    assert!(sim.container(100).is_none());
    let stats: Value = c
        .http
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tasks_failed"], 1);
    assert_eq!(stats["statuses"]["reset"], 1);
    c.http
        .post(format!("{}/_sim/stats/reset", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.stats()["total"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn offline_node_is_reported_and_unreachable() {
    let sim = fast_sim().await;
    let c = client(&sim);
    let nodes = c.get("/nodes").await;
    assert_eq!(
        keys(&nodes.data()[0]),
        keys(&fixture("nodes_list.pve9-capture.json")["data"][0])
    );
    assert_eq!(nodes.data()[0]["ssl_fingerprint"], sim.fingerprint());
    let r = c
        .http
        .post(format!("{}/_sim/nodes/pve3/offline", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let nodes = c.get("/nodes").await;
    assert_eq!(nodes.data()[2]["status"], "offline");
    let r = c.get("/nodes/pve3/lxc").await;
    assert_eq!(r.status, 595);
    let r = c.get("/nodes/nosuch/lxc").await;
    assert_eq!(r.reason, "unable to get IP for node 'nosuch' - node offline?");
    sim.set_node_online("pve3", true);
    assert_eq!(c.get("/nodes/pve3/lxc").await.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn snapshots_firewall_and_appliance_download() {
    let sim = fast_sim().await;
    let c = client(&sim);
    c.create_ct("pve1", 100, &[]).await;
    c.ok_task(
        c.post(
            "/nodes/pve1/lxc/100/snapshot",
            &[("snapname", "s1"), ("description", "first")],
        )
        .await,
    )
    .await;
    c.ok_task(c.post("/nodes/pve1/lxc/100/snapshot", &[("snapname", "s2")]).await)
        .await;
    let l = c.get("/nodes/pve1/lxc/100/snapshot").await;
    let f = fixture("lxc_snapshot_list.gomock.json");
    assert_eq!(keys(&l.data()[2]), keys(&f["data"][2]));
    assert_eq!(l.data()[1]["parent"], "s1");
    assert_eq!(l.data()[2]["description"], "You are here!");
    let r = c.post("/nodes/pve1/lxc/100/template", &[]).await;
    assert_eq!(r.reason, "unable to create template, because CT contains snapshots");
    // firewall rules keep their order by pos
    for (port, pos) in [("22", None), ("80", None), ("443", Some("1"))] {
        let mut form = vec![
            ("type", "in"),
            ("action", "ACCEPT"),
            ("proto", "tcp"),
            ("dport", port),
            ("enable", "1"),
        ];
        if let Some(p) = pos {
            form.push(("pos", p));
        }
        assert_eq!(c.post("/nodes/pve1/lxc/100/firewall/rules", &form).await.status, 200);
    }
    let rules = c.get("/nodes/pve1/lxc/100/firewall/rules").await;
    let ports: Vec<&str> = rules
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dport"].as_str().unwrap())
        .collect();
    assert_eq!(ports, vec!["80", "443", "22"]);
    assert_eq!(rules.data()[2]["pos"], 2);
    assert_eq!(
        c.put(
            "/nodes/pve1/lxc/100/firewall/options",
            &[("enable", "1"), ("policy_in", "DROP")]
        )
        .await
        .status,
        200
    );
    let o = c.get("/nodes/pve1/lxc/100/firewall/options").await;
    assert_eq!(
        (o.data()["enable"].as_i64(), o.data()["policy_in"].as_str()),
        (Some(1), Some("DROP"))
    );
    // appliance index + download
    let apl = c.get("/nodes/pve2/aplinfo").await;
    assert!(apl
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["template"] == "alpine-3.20-default_20240908_amd64.tar.xz"));
    c.ok_task(
        c.post(
            "/nodes/pve2/aplinfo",
            &[
                ("storage", "local"),
                ("template", "alpine-3.20-default_20240908_amd64.tar.xz"),
            ],
        )
        .await,
    )
    .await;
    assert!(sim
        .volumes("pve2", "local")
        .contains(&"local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz".to_string()));
    assert!(!sim
        .volumes("pve1", "local")
        .contains(&"local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz".to_string()));
    sim.shutdown().await;
}
