//! The simulator's OCI ("application container") surface of PVE 9.1: pulling images into a
//! storage, listing tags, creating application containers from them, and their entrypoint
//! exiting (facts: ../shared/pve-api/pve9-oci.md).

mod sim_util;

use proxmox_lxc_operator::sim::{start, SimConfig, SimHandle, TokenConfig};
use serde_json::{json, Value};
use sim_util::{client, enc, fast_sim, Client};

async fn admin(c: &Client, path: &str, body: Value) -> (u16, Value) {
    let r = c
        .http
        .post(format!("{}/_sim/{path}", c.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn pull(c: &Client, storage: &str, form: &[(&str, &str)]) -> sim_util::Resp {
    c.post(&format!("/nodes/pve1/storage/{storage}/oci-registry-pull"), form)
        .await
}

async fn task_log(c: &Client, upid: &str) -> Vec<String> {
    let r = c.get(&format!("/nodes/pve1/tasks/{}/log?limit=500", enc(upid))).await;
    r.data()
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["t"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn setup() -> (SimHandle, Client) {
    let sim = fast_sim().await;
    let c = client(&sim);
    (sim, c)
}

#[tokio::test]
async fn a_pull_runs_an_ociregistrypull_task_that_leaves_a_vztmpl_volume_named_by_the_last_path_part() {
    let (_sim, c) = setup().await;
    let r = pull(&c, "local", &[("reference", "docker.io/library/nginx:1.27")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let upid = r.data().as_str().unwrap().to_string();
    assert!(upid.contains(":ociregistrypull:nginx_1.27.tar:"), "{upid}");
    let s = c.wait(&upid).await;
    assert_eq!(s["exitstatus"], "OK", "{s}");
    let content = c.get("/nodes/pve1/storage/local/content?content=vztmpl").await;
    let vol = content
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volid"] == "local:vztmpl/nginx_1.27.tar")
        .cloned()
        .unwrap_or_else(|| panic!("not listed: {}", content.text));
    assert_eq!(vol["format"], "tar");
    assert_eq!(vol["content"], "vztmpl");
}

#[tokio::test]
async fn a_custom_filename_is_normalized_and_gets_tar_appended() {
    let (_sim, c) = setup().await;
    let r = pull(
        &c,
        "local",
        &[
            ("reference", "docker.io/library/nginx:1.28"),
            ("filename", "web/nginx 1.28"),
        ],
    )
    .await;
    c.ok_task(r).await;
    let content = c.get("/nodes/pve1/storage/local/content").await;
    assert!(content.text.contains("local:vztmpl/nginx_1.28.tar"), "{}", content.text);
}

#[tokio::test]
async fn two_repositories_with_the_same_last_path_part_collide_on_the_file_name() {
    let (_sim, c) = setup().await;
    c.ok_task(pull(&c, "local", &[("reference", "docker.io/a/nginx:1")]).await)
        .await;
    let r = pull(&c, "local", &[("reference", "docker.io/b/nginx:1")]).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["message"], "refusing to override existing file 'nginx_1.tar'\n");
    // a file name of one's own avoids it
    let r = pull(
        &c,
        "local",
        &[("reference", "docker.io/b/nginx:1"), ("filename", "b-nginx_1")],
    )
    .await;
    c.ok_task(r).await;
}

#[tokio::test]
async fn references_without_a_tag_or_with_a_digest_are_refused_by_the_schema() {
    let (_sim, c) = setup().await;
    for bad in [
        "docker.io/library/nginx",
        "docker.io/library/nginx@sha256:abcd",
        "Nginx:1",
    ] {
        let r = pull(&c, "local", &[("reference", bad)]).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert_eq!(
            r.body["errors"]["reference"], "value does not match the regex pattern",
            "{bad}"
        );
    }
}

#[tokio::test]
async fn each_pull_failure_gives_proxmoxs_text() {
    let (_sim, c) = setup().await;
    // unknown tag: the task fails with run_command's text, skopeo's error is in the log
    let r = pull(&c, "local", &[("reference", "docker.io/library/nginx:9.99")]).await;
    let upid = r.data().as_str().unwrap().to_string();
    let s = c.wait(&upid).await;
    let exit = s["exitstatus"].as_str().unwrap();
    assert!(
        exit.starts_with("command 'skopeo copy docker://docker.io/library/nginx:9.99 oci-archive:/var/lib/vz/template/cache/nginx_9.99.tar.tmp.")
            && exit.ends_with("' failed: exit code 1"),
        "{exit}"
    );
    assert!(task_log(&c, &upid).await.iter().any(|l| l.contains("manifest unknown")));
    // unknown image
    let r = pull(&c, "local", &[("reference", "docker.io/nobody/nothing:1")]).await;
    let upid = r.data().as_str().unwrap().to_string();
    assert_ne!(c.wait(&upid).await["exitstatus"], "OK");
    assert!(task_log(&c, &upid)
        .await
        .iter()
        .any(|l| l.contains("requested access to the resource is denied")));
    // unreachable registry
    let (st, _) = admin(&c, "oci", json!({"unreachable": ["docker.io"]})).await;
    assert_eq!(st, 200);
    let r = pull(&c, "local", &[("reference", "docker.io/library/nginx:1.27")]).await;
    let upid = r.data().as_str().unwrap().to_string();
    assert!(c.wait(&upid).await["exitstatus"]
        .as_str()
        .unwrap()
        .ends_with("failed: exit code 1"));
    assert!(task_log(&c, &upid)
        .await
        .iter()
        .any(|l| l.contains("pinging container registry docker.io")));
    let content = c.get("/nodes/pve1/storage/local/content?content=vztmpl").await;
    assert!(
        !content.text.contains("nginx_1.27.tar"),
        "a failed pull leaves no volume"
    );
    // no skopeo on the node
    admin(&c, "oci", json!({"skopeo": false})).await;
    let r = pull(&c, "local", &[("reference", "docker.io/library/nginx:1.27")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body["message"],
        "Install 'skopeo' to pull OCI images from registries.\n"
    );
    let r = c
        .call(
            "GET",
            "/nodes/pve1/query-oci-repo-tags",
            &[("reference", "docker.io/library/nginx")],
        )
        .await;
    assert_eq!(
        r.body["message"],
        "Install 'skopeo' to list tags from OCI registries.\n"
    );
    admin(&c, "oci", json!({})).await;
    // storage not file based, or without vztmpl content
    let r = pull(&c, "local-lvm", &[("reference", "docker.io/library/nginx:1.27")]).await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body["message"],
        "can't upload to storage type 'lvmthin', not a file based storage!\n"
    );
    let r = pull(&c, "nfs-backup", &[("reference", "docker.io/library/nginx:1.27")]).await;
    assert_eq!(
        r.body["message"],
        "storage 'nfs-backup' is not configured for content-type 'vztmpl'\n"
    );
}

#[tokio::test]
async fn tags_of_a_repository_are_listed_and_an_unknown_one_fails() {
    let (_sim, c) = setup().await;
    let r = c
        .call(
            "GET",
            "/nodes/pve1/query-oci-repo-tags",
            &[("reference", "docker.io/library/nginx")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!(["1.27", "1.28"]));
    let r = c
        .call(
            "GET",
            "/nodes/pve1/query-oci-repo-tags",
            &[("reference", "docker.io/library/nginx:1.27")],
        )
        .await;
    assert_eq!(r.status, 400, "a tag is not part of the repository reference");
    let r = c
        .call(
            "GET",
            "/nodes/pve1/query-oci-repo-tags",
            &[("reference", "docker.io/nobody/nothing")],
        )
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.body["message"],
        "command 'skopeo list-tags docker://docker.io/nobody/nothing' failed: exit code 1\n"
    );
}

async fn create_from_nginx(c: &Client, vmid: &str, extra: &[(&str, &str)]) -> String {
    c.ok_task(pull(c, "local", &[("reference", "docker.io/library/nginx:1.27")]).await)
        .await;
    let mut form = vec![
        ("vmid", vmid),
        ("ostemplate", "local:vztmpl/nginx_1.27.tar"),
        ("rootfs", "local-lvm:2"),
        ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
    ];
    form.extend_from_slice(extra);
    let r = c.post("/nodes/pve1/lxc", &form).await;
    let upid = r.data().as_str().unwrap_or_else(|| panic!("{}", r.text)).to_string();
    let s = c.wait(&upid).await;
    assert_eq!(s["exitstatus"], "OK", "{s}");
    upid
}

#[tokio::test]
async fn a_container_created_from_a_pulled_image_gets_entrypoint_env_console_and_host_managed_network() {
    let (_sim, c) = setup().await;
    let upid = create_from_nginx(&c, "200", &[]).await;
    let log = task_log(&c, &upid).await;
    assert!(log.iter().any(|l| l == "Detected OCI archive"), "{log:?}");
    assert!(log
        .iter()
        .any(|l| l == "Auto-Enabling host-managed network for network device net0."));
    let conf = c.get("/nodes/pve1/lxc/200/config").await;
    let conf = conf.data();
    assert_eq!(conf["entrypoint"], "/docker-entrypoint.sh nginx -g 'daemon off;'");
    assert_eq!(
        conf["env"],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\0NGINX_VERSION=1.27.5\0NJS_VERSION=0.8.10\0PKG_RELEASE=1~bookworm"
    );
    assert_eq!(conf["cmode"], "console");
    assert!(
        conf["net0"].as_str().unwrap().contains("host-managed=1"),
        "{}",
        conf["net0"]
    );
}

#[tokio::test]
async fn entrypoint_and_env_given_at_create_are_overwritten_by_the_images_and_can_be_set_after() {
    let (_sim, c) = setup().await;
    create_from_nginx(
        &c,
        "201",
        &[
            ("entrypoint", "/bin/sh -c true"),
            ("env", "FOO=bar"),
            ("net1", "name=eth1,bridge=vmbr0,ip=dhcp,host-managed=0"),
        ],
    )
    .await;
    let conf = c.get("/nodes/pve1/lxc/201/config").await;
    assert_eq!(
        conf.data()["entrypoint"],
        "/docker-entrypoint.sh nginx -g 'daemon off;'"
    );
    assert!(conf.data()["env"].as_str().unwrap().starts_with("PATH="));
    assert!(
        !conf.data()["net1"].as_str().unwrap().contains("host-managed=1"),
        "an explicit value is kept"
    );
    let r = c
        .put(
            "/nodes/pve1/lxc/201/config",
            &[("entrypoint", "nginx -g 'daemon off;'"), ("env", "FOO=bar\0B_2=x y")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let conf = c.get("/nodes/pve1/lxc/201/config").await;
    assert_eq!(conf.data()["entrypoint"], "nginx -g 'daemon off;'");
    assert_eq!(conf.data()["env"], "FOO=bar\0B_2=x y");
}

#[tokio::test]
async fn env_names_outside_w_and_values_with_control_characters_are_refused_with_proxmoxs_text() {
    let (_sim, c) = setup().await;
    c.create_ct("pve1", 100, &[]).await;
    for bad in ["MY-VAR=1", "my.var=1", "A=1\0B", "A=line\nbreak", "=x"] {
        let r = c.put("/nodes/pve1/lxc/100/config", &[("env", bad)]).await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text);
        assert_eq!(
            r.body["errors"]["env"], "value does not match the regex pattern",
            "{bad:?}"
        );
    }
    let r = c
        .put("/nodes/pve1/lxc/100/config", &[("entrypoint", "/bin/app\n--x")])
        .await;
    assert_eq!(r.body["errors"]["entrypoint"], "value does not match the regex pattern");
    let r = c
        .post(
            "/nodes/pve1/lxc",
            &[
                ("vmid", "101"),
                ("ostemplate", "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"),
                ("env", "A-B=1"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"]["env"], "value does not match the regex pattern");
    let r = c
        .put("/nodes/pve1/lxc/100/config", &[("env", "A=tab\there\0B_1=")])
        .await;
    assert_eq!(r.status, 200, "tabs are allowed: {}", r.text);
}

#[tokio::test]
async fn the_exit_endpoint_stops_an_application_container_without_an_exit_code() {
    let (_sim, c) = setup().await;
    create_from_nginx(&c, "202", &[("start", "1")]).await;
    let s = c.get("/nodes/pve1/lxc/202/status/current").await;
    assert_eq!(s.data()["status"], "running");
    let (st, _) = admin(&c, "containers/202/exit", json!({})).await;
    assert_eq!(st, 200);
    let s = c.get("/nodes/pve1/lxc/202/status/current").await;
    assert_eq!(s.data()["status"], "stopped");
    let (st, _) = admin(&c, "containers/202/exit", json!({})).await;
    assert_eq!(st, 400, "a stopped container has no process to exit");
    let (st, _) = admin(&c, "containers/999/exit", json!({})).await;
    assert_eq!(st, 404);
    c.ok_task(c.post("/nodes/pve1/lxc/202/status/start", &[]).await).await;
    let s = c.get("/nodes/pve1/lxc/202/status/current").await;
    assert_eq!(s.data()["status"], "running", "it can be started again");
}

#[tokio::test]
async fn a_host_managed_interface_cannot_use_slaac() {
    let (_sim, c) = setup().await;
    c.create_ct("pve1", 100, &[]).await;
    let r = c
        .put(
            "/nodes/pve1/lxc/100/config",
            &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp,ip6=auto,host-managed=1")],
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "net0: SLAAC is not supported for host-managed network configuration.\n"
    );
    let r = c
        .put(
            "/nodes/pve1/lxc/100/config",
            &[("net0", "name=eth0,bridge=vmbr0,ip=dhcp,ip6=dhcp,host-managed=1")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn the_fixture_registry_lists_its_images_with_their_configs() {
    let (_sim, c) = setup().await;
    let v: Value = c
        .http
        .get(format!("{}/_sim/oci", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["skopeo"], true);
    let images = v["images"].as_array().unwrap();
    let nginx = images
        .iter()
        .find(|i| i["reference"] == "docker.io/library/nginx:1.27")
        .unwrap();
    assert_eq!(nginx["ExposedPorts"], json!(["80/tcp"]));
    assert_eq!(nginx["Cmd"], json!(["nginx", "-g", "daemon off;"]));
    assert!(
        images.iter().any(|i| i["exits"] == true),
        "an app whose entrypoint exits"
    );
    assert!(images.iter().any(|i| i["reference"] == "docker.io/library/alpine:3.20"));
}

#[tokio::test]
async fn pulling_needs_sys_access_network_on_the_node_besides_allocate_template() {
    let mut cfg = SimConfig::fast();
    cfg.tokens.push(TokenConfig {
        id: "ops@pve!tmpl".into(),
        secret: "s3cret".into(),
        privileges: Some(vec!["Datastore.AllocateTemplate".into(), "Datastore.Audit".into()]),
    });
    let sim = start(cfg).await.unwrap();
    let mut c = client(&sim);
    c.auth = Some("PVEAPIToken=ops@pve!tmpl=s3cret".into());
    let r = pull(&c, "local", &[("reference", "docker.io/library/nginx:1.27")]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.body["message"],
        "Permission check failed (/nodes/pve1, Sys.AccessNetwork)\n"
    );
    let r = c
        .call("GET", "/nodes/pve1/query-oci-repo-tags", &[("reference", "nginx")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[tokio::test]
async fn the_operators_client_pulls_lists_tags_and_sets_a_nul_separated_env() {
    use proxmox_lxc_operator::pve::{self, Auth, ClientConfig, TlsMode};
    use std::time::Duration;
    let (sim, c) = setup().await;
    let t = &sim.tokens()[0];
    let mut cfg = ClientConfig::new(
        vec![sim.base_url()],
        Auth::Token {
            token_id: t.id.clone(),
            secret: t.secret.clone(),
        },
    );
    cfg.tls = TlsMode::Fingerprint(sim.fingerprint().to_string());
    let client = pve::Client::new(cfg).unwrap();
    let tags = client
        .query_oci_repo_tags("pve1", "docker.io/library/nginx")
        .await
        .unwrap();
    assert_eq!(tags, vec!["1.27", "1.28"]);
    let params = pve::OciPullParams {
        reference: "docker.io/a/nginx:1".into(),
        filename: Some("nginx_1-0123456789".into()),
    };
    let upid = client.oci_registry_pull("pve1", "local", &params).await.unwrap();
    assert_eq!(upid.task_type(), "ociregistrypull");
    client
        .wait_task(&upid, Duration::from_millis(10), Duration::from_secs(20))
        .await
        .unwrap();
    let vols = client
        .storage_content("pve1", "local", Some("vztmpl"), None)
        .await
        .unwrap();
    assert!(vols.iter().any(|v| v.volid == "local:vztmpl/nginx_1-0123456789.tar"));
    c.create_ct("pve1", 100, &[]).await;
    let update = pve::ConfigUpdate {
        set: [
            ("env".to_string(), "A=1\0B_2=x y".to_string()),
            ("entrypoint".to_string(), "nginx -g 'daemon off;'".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    assert!(!format!("{update:?}").contains("x y"), "Debug redacts env");
    client.lxc_update_config("pve1", 100, &update).await.unwrap();
    let conf = client.lxc_config("pve1", 100).await.unwrap();
    assert_eq!(conf.raw["env"], "A=1\0B_2=x y");
    assert_eq!(conf.raw["entrypoint"], "nginx -g 'daemon off;'");
}
