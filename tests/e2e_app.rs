//! Application containers from OCI images end to end (Proxmox VE 9.1): a real kube-apiserver,
//! the Proxmox simulator (its fixture registry) and the operator binary. Each test has its own
//! namespace, simulator and operator process.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn apply(e: &Env, manifest: &str) {
    let out = e.cp.kubectl_stdin(&["apply", "-n", &e.ns, "-f", "-"], Some(manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `kubectl apply`'s error text for a manifest the apiserver refuses.
fn apply_refused(e: &Env, manifest: &str) -> String {
    let out = e.cp.kubectl_stdin(&["apply", "-n", &e.ns, "-f", "-"], Some(manifest));
    assert!(!out.status.success(), "the apiserver accepted {manifest}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn app_yaml(name: &str, reference: &str, extra: &str) -> String {
    format!(
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    image: {{reference: \"{reference}\"}}\n  rootfs: {{storage: local-lvm, size: 2Gi}}\n  network:\n    - {{name: eth0, bridge: vmbr0, ipv4: {{dhcp: true}}}}\n{extra}"
    )
}

fn obj(e: &Env, name: &str) -> Value {
    get_json(e.cp, &e.ns, "lxc", name).unwrap_or(Value::Null)
}

/// The container's config as Proxmox returns it (`env` included: the simulator's token is root).
fn pve_config(e: &Env, node: &str, vmid: u64) -> Value {
    e.sim.call("GET", &format!("/nodes/{node}/lxc/{vmid}/config"), &[])["data"].clone()
}

/// The `ociregistrypull` tasks the simulator ran, as their node names.
fn pulls(e: &Env) -> Vec<String> {
    let tasks = e.sim.call("GET", "/_sim/tasks", &[]);
    tasks
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|t| t["type"] == "ociregistrypull")
        .map(|t| t["node"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn wait_condition(e: &Env, name: &str, type_: &str, reason: &str) -> (String, String, String) {
    wait_for(&format!("{name}: {type_} with reason {reason}"), T, || {
        condition(&obj(e, name), type_).filter(|c| c.1 == reason)
    })
}

#[test]
fn an_image_runs_with_command_args_and_env_from_a_secret_and_a_configmap_and_gets_a_dhcp_ip() {
    let e = env("app-run");
    apply(
        &e,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, labels: {pve.lxc.dev/app-env: \"true\"}}\nstringData: {password: s3cret-pw}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {greeting: hello world}\n",
    );
    apply(
        &e,
        &app_yaml(
            "web",
            "docker.io/library/nginx:1.27",
            "  timezone: Europe/Berlin\n  console: {ttys: 1}\n  ports:\n    - {name: http, port: 80}\n  app:\n    command: [nginx]\n    args: [-g, 'daemon off;']\n    env:\n      - {name: MODE, value: prod}\n      - {name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}\n      - {name: GREETING, valueFrom: {configMapKeyRef: {name: settings, key: greeting}}}\n      - {name: NGINX_VERSION, value: custom}\n",
        ),
    );
    let o = wait_ready(e.cp, &e.ns, "lxc", "web", T);
    assert_eq!(o["status"]["phase"], "Running");
    assert_eq!(o["status"]["image"], "docker.io/library/nginx:1.27");
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    let node = o["status"]["node"].as_str().unwrap().to_string();
    let ip = wait_for("a DHCP address in status", T, || {
        obj(&e, "web")["status"]["ipAddresses"][0].as_str().map(str::to_string)
    });
    assert!(ip.starts_with("10.10.0."), "{ip}");
    let cfg = pve_config(&e, &node, vmid);
    assert_eq!(cfg["entrypoint"], "nginx -g 'daemon off;'", "{cfg}");
    let env: Vec<&str> = cfg["env"].as_str().unwrap().split('\0').collect();
    for want in [
        "MODE=prod",
        "DB_PASSWORD=s3cret-pw",
        "GREETING=hello world",
        "NGINX_VERSION=custom",
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert!(
        env.iter().any(|v| v.starts_with("PATH=/usr/local/sbin")),
        "the image's other variables stay: {env:?}"
    );
    assert!(cfg["net0"].as_str().unwrap().contains("host-managed=1"), "{cfg}");
    assert_eq!(cfg["timezone"], "Europe/Berlin", "{cfg}");
    assert_eq!(cfg["tty"].to_string().trim_matches('"'), "1", "{cfg}");
    assert_eq!(cfg["cmode"], "console", "Proxmox's for an app container, not managed");
    let ct = e.sim.container(vmid).unwrap();
    assert_eq!(ct["status"], "running");
    assert!(
        condition(&o, "PendingRestart").is_none_or(|c| c.0 != "True"),
        "set before the first start: nothing waits for a restart"
    );
    let slice = wait_for("the EndpointSlice with the DHCP address", T, || {
        get_json(e.cp, &e.ns, "endpointslices.discovery.k8s.io", "web")
            .filter(|s| s["endpoints"][0]["addresses"][0] == ip.as_str())
    });
    assert_eq!(slice["ports"][0]["port"], 80);
    // the Secret's value is nowhere but in Proxmox
    let events = e.cp.kubectl_ok(&["get", "events", "-n", &e.ns, "-o", "json"]);
    let status = obj(&e, "web")["status"].to_string();
    for (what, text) in [("Events", events), ("status", status), ("operator log", e.op.log())] {
        assert!(!text.contains("s3cret-pw"), "the Secret's value is in the {what}");
    }
}

#[test]
fn ten_containers_from_one_image_cause_exactly_one_pull_per_node_and_storage() {
    let e = env("app-ten");
    let manifest: Vec<String> = (0..10).map(|i| app_yaml(&format!("w{i}"), "nginx:1.28", "")).collect();
    apply(&e, &manifest.join("---\n"));
    let mut nodes = std::collections::BTreeSet::new();
    for i in 0..10 {
        let o = wait_ready(e.cp, &e.ns, "lxc", &format!("w{i}"), T);
        nodes.insert(o["status"]["node"].as_str().unwrap().to_string());
    }
    let mut pulled = pulls(&e);
    pulled.sort();
    let want: Vec<String> = nodes.iter().cloned().collect();
    assert_eq!(pulled, want, "one pull per node the containers run on");
    // the other containers used the pulled file: ten creates, each from it
    let cts = e.sim.containers();
    assert_eq!(cts.len(), 10);
    let storage = e.sim.call("GET", "/_sim/storage", &[]).to_string();
    assert_eq!(
        storage.matches("vztmpl/nginx_1.28-").count(),
        nodes.len(),
        "one file per node: {storage}"
    );
}

#[test]
fn a_bad_reference_a_bad_env_and_a_failed_pull_each_name_the_problem_and_leave_nothing_in_proxmox() {
    let e = env("app-bad");
    // refused by the schema, with Proxmox's rule
    let err = apply_refused(&e, &app_yaml("notag", "docker.io/library/nginx", ""));
    assert!(err.contains("spec.source.image.reference"), "{err}");
    let err = apply_refused(&e, &app_yaml("digest", "nginx@sha256:0123456789abcdef", ""));
    assert!(err.contains("spec.source.image.reference"), "{err}");
    let err = apply_refused(
        &e,
        &app_yaml(
            "badenv",
            "nginx:1.27",
            "  app:\n    env:\n      - {name: MY-VAR, value: x}\n",
        ),
    );
    assert!(err.contains("spec.app.env") && err.contains("MY-VAR"), "{err}");
    // a value from a Secret that Proxmox would refuse: named, not echoed, nothing created
    apply(
        &e,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: multi}\ntype: pve.lxc.dev/app-env\nstringData: {cert: \"line1\\nline2-secret\"}\n",
    );
    apply(
        &e,
        &app_yaml(
            "envval",
            "nginx:1.27",
            "  app:\n    env:\n      - {name: CERT, valueFrom: {secretKeyRef: {name: multi, key: cert}}}\n",
        ),
    );
    let c = wait_condition(&e, "envval", "Ready", "InvalidSpec");
    assert!(
        c.2.contains("app.env[0]") && c.2.contains("CERT") && c.2.contains("line break"),
        "{c:?}"
    );
    assert!(!c.2.contains("line2-secret"));
    // a tag the registry does not have: the pull task fails with skopeo's text
    apply(&e, &app_yaml("unknown", "nginx:9.99", ""));
    let c = wait_condition(&e, "unknown", "Ready", "PullFailed");
    assert!(c.2.contains("manifest unknown"), "{c:?}");
    assert_eq!(obj(&e, "unknown")["status"]["phase"], "Pending");
    // another container that wants it waits for the retry instead of pulling it again
    let failed_pulls = pulls(&e).len();
    let node = obj(&e, "unknown")["status"]["node"].as_str().unwrap().to_string();
    apply(&e, &app_yaml("unknown2", "nginx:9.99", &format!("  node: {node}\n")));
    let c = wait_condition(&e, "unknown2", "Ready", "Pulling");
    assert!(c.2.contains("another container"), "{c:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        pulls(&e).len(),
        failed_pulls,
        "no second pull of a failing image within the minute"
    );
    // no skopeo on the node: Proxmox refuses the pull
    e.sim.post_json("/_sim/oci", &serde_json::json!({"skopeo": false}));
    apply(&e, &app_yaml("noskopeo", "ghcr.io/example/web-app:2.1.0", ""));
    let c = wait_condition(&e, "noskopeo", "Ready", "PullFailed");
    assert!(
        c.2.contains("Install 'skopeo' to pull OCI images from registries."),
        "{c:?}"
    );
    // nothing half-made: no container, no image file
    assert!(e.sim.containers().is_empty(), "{:?}", e.sim.containers());
    let storage = e.sim.call("GET", "/_sim/storage", &[]).to_string();
    assert!(!storage.contains(".tar\""), "no pulled file: {storage}");
    assert!(!e.op.log().contains("line2-secret"));
}

#[test]
fn a_new_image_tag_recreates_the_container_with_its_vmid_mac_ip_and_app_settings() {
    let e = env("app-tag");
    let web = |tag: &str| {
        format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: web\nspec:\n  source:\n    image: {{reference: \"docker.io/library/nginx:{tag}\"}}\n  rootfs: {{storage: local-lvm, size: 2Gi}}\n  network:\n    - {{name: eth0, bridge: vmbr0, ipv4: {{address: 10.10.0.50/24, gateway: 10.10.0.1}}}}\n  app:\n    env:\n      - {{name: MODE, value: one}}\n"
        )
    };
    apply(&e, &web("1.27"));
    let o = wait_ready(e.cp, &e.ns, "lxc", "web", T);
    let (vmid, mac) = (o["status"]["vmid"].clone(), o["status"]["mac"].clone());
    let node = o["status"]["node"].as_str().unwrap().to_string();
    assert!(mac["eth0"].is_string(), "{mac}");
    apply(&e, &web("1.28"));
    let o = wait_for("running nginx:1.28, in sync", T, || {
        let o = obj(&e, "web");
        let done = o["status"]["image"] == "docker.io/library/nginx:1.28"
            && condition(&o, "Ready").is_some_and(|c| c.0 == "True")
            && condition(&o, "Synced").is_some_and(|c| c.1 == "InSync");
        done.then_some(o)
    });
    assert_eq!(o["status"]["vmid"], vmid, "same vmid");
    assert_eq!(o["status"]["mac"], mac, "same MAC");
    assert_eq!(o["status"]["node"], node.as_str());
    assert_eq!(o["status"]["ipAddresses"][0], "10.10.0.50");
    let cfg = pve_config(&e, &node, vmid.as_u64().unwrap());
    let env = cfg["env"].as_str().unwrap();
    assert!(
        env.contains("NGINX_VERSION=1.28.0") && env.contains("MODE=one"),
        "{env:?}"
    );
    let hw = mac["eth0"].as_str().unwrap().to_ascii_uppercase();
    assert!(
        cfg["net0"].as_str().unwrap().to_ascii_uppercase().contains(&hw),
        "{cfg}"
    );
    assert_eq!(e.sim.container(vmid.as_u64().unwrap()).unwrap()["status"], "running");
    assert_eq!(pulls(&e), vec![node.clone(), node], "each tag pulled once, on its node");
}

#[test]
fn a_new_image_tag_is_refused_with_strategy_refuse_or_mount_points_and_nothing_changes() {
    let e = env("app-refuse");
    apply(
        &e,
        &app_yaml("strict", "docker.io/library/nginx:1.27", "  updateStrategy: Refuse\n"),
    );
    let data = "  mountPoints:\n    - {name: mp0, storage: local-lvm, size: 1Gi, path: /data}\n";
    apply(&e, &app_yaml("data", "docker.io/library/nginx:1.27", data));
    let before: Vec<Value> = ["strict", "data"]
        .iter()
        .map(|n| wait_ready(e.cp, &e.ns, "lxc", n, T))
        .collect();
    apply(
        &e,
        &app_yaml("strict", "docker.io/library/nginx:1.28", "  updateStrategy: Refuse\n"),
    );
    apply(&e, &app_yaml("data", "docker.io/library/nginx:1.28", data));
    let c = wait_condition(&e, "strict", "Synced", "ImageUpdateRefused");
    assert!(
        c.2.contains("runs docker.io/library/nginx:1.27") && c.2.contains("updateStrategy is Refuse"),
        "{c:?}"
    );
    let c = wait_condition(&e, "data", "Synced", "ImageUpdateRefused");
    assert!(c.2.contains("mp0") && c.2.contains("destroys every volume"), "{c:?}");
    for (name, was) in ["strict", "data"].iter().zip(&before) {
        let o = obj(&e, name);
        assert_eq!(o["status"]["vmid"], was["status"]["vmid"]);
        assert_eq!(o["status"]["mac"], was["status"]["mac"]);
        assert_eq!(o["status"]["image"], "docker.io/library/nginx:1.27");
        assert_eq!(condition(&o, "Stalled").unwrap().0, "True");
        assert_eq!(condition(&o, "Ready").unwrap().0, "True", "it still runs");
        let vmid = o["status"]["vmid"].as_u64().unwrap();
        assert_eq!(e.sim.container(vmid).unwrap()["status"], "running");
    }
    assert!(
        !e.sim
            .call("GET", "/_sim/storage", &[])
            .to_string()
            .contains("nginx_1.28"),
        "the new tag was not pulled"
    );
    // back to the running tag: in sync again
    apply(
        &e,
        &app_yaml("strict", "docker.io/library/nginx:1.27", "  updateStrategy: Refuse\n"),
    );
    wait_condition(&e, "strict", "Synced", "InSync");
}

#[test]
fn a_changed_env_waits_for_a_restart_by_default_and_restarts_the_container_with_on_change() {
    let e = env("app-env");
    let with = |value: &str, policy: &str| {
        app_yaml(
            "web",
            "nginx:1.27",
            &format!("  app:\n    restartPolicy: {policy}\n    env:\n      - {{name: MODE, value: {value}}}\n"),
        )
    };
    apply(&e, &with("one", "Never"));
    let o = wait_ready(e.cp, &e.ns, "lxc", "web", T);
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    let node = o["status"]["node"].as_str().unwrap().to_string();
    apply(&e, &with("two", "Never"));
    let c = wait_condition(&e, "web", "PendingRestart", "RestartRequired");
    assert_eq!(c.0, "True");
    assert!(c.2.contains("env"), "{c:?}");
    assert!(!c.2.contains("two"), "values are not repeated: {c:?}");
    apply(&e, &with("three", "OnChange"));
    wait_for("MODE=three applied by a restart", T, || {
        let pending = e.sim.call("GET", &format!("/nodes/{node}/lxc/{vmid}/pending"), &[]);
        let applied = pending["data"].as_array()?.iter().any(|p| {
            p["key"] == "env"
                && p["value"].as_str().is_some_and(|v| v.contains("MODE=three"))
                && p.get("pending").is_none()
        });
        applied.then_some(())
    });
    wait_for("PendingRestart cleared", T, || {
        condition(&obj(&e, "web"), "PendingRestart")
            .is_none_or(|c| c.0 != "True")
            .then_some(())
    });
    let events = e.cp.kubectl_ok(&["get", "events", "-n", &e.ns, "-o", "json"]);
    assert!(
        events.contains("restartPolicy OnChange"),
        "an Event says why it restarted"
    );
}

#[test]
fn a_template_from_an_oci_image_gives_linked_clones_that_run_with_their_own_env() {
    let e = env("app-tmpl");
    apply(
        &e,
        "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcTemplate\nmetadata:\n  name: nginx\nspec:\n  image: {oci: \"docker.io/library/nginx:1.27\"}\n  rootfs: {storage: local-lvm, size: 2Gi}\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {dhcp: true}}\n",
    );
    let clone = |name: &str, mode: &str| {
        format!(
            "apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source: {{template: {{name: nginx}}}}\n  network:\n    - {{name: eth0, bridge: vmbr0, ipv4: {{dhcp: true}}}}\n  app:\n    env:\n      - {{name: MODE, value: {mode}}}\n"
        )
    };
    apply(&e, &clone("a", "first"));
    apply(&e, &clone("b", "second"));
    let t = wait_ready(e.cp, &e.ns, "lxct", "nginx", T);
    let os_template = t["status"]["osTemplate"].as_str().unwrap_or_default().to_string();
    assert!(os_template.starts_with("local:vztmpl/nginx_1.27-"), "{os_template}");
    for (name, mode) in [("a", "first"), ("b", "second")] {
        let o = wait_ready(e.cp, &e.ns, "lxc", name, T);
        let (vmid, node) = (
            o["status"]["vmid"].as_u64().unwrap(),
            o["status"]["node"].as_str().unwrap(),
        );
        let cfg = pve_config(&e, node, vmid);
        assert_eq!(
            cfg["entrypoint"], "/docker-entrypoint.sh nginx -g 'daemon off;'",
            "the image's"
        );
        let env = cfg["env"].as_str().unwrap();
        assert!(
            env.contains(&format!("MODE={mode}")) && env.contains("NGINX_VERSION=1.27.5"),
            "{env:?}"
        );
        assert_eq!(e.sim.container(vmid).unwrap()["status"], "running");
    }
    assert_eq!(pulls(&e).len(), 1, "one pull for the template");
}
