//! LxcTemplate end to end: a real kube-apiserver, the Proxmox simulator, and the operator
//! binary. Each test has its own namespace, simulator and operator process.

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

const T: Duration = Duration::from_secs(90);

fn template_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcTemplate\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn container_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn status_u64(e: &Env, kind: &str, name: &str, field: &str) -> u64 {
    get_json(e.cp, &e.ns, kind, name).unwrap()["status"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("{kind}/{name} has no status.{field}"))
}

/// Reasons of the Events about `name`.
fn event_reasons(e: &Env, name: &str) -> Vec<String> {
    let out = e.cp.kubectl_ok(&[
        "get",
        "events",
        "-n",
        &e.ns,
        "--field-selector",
        &format!("involvedObject.name={name}"),
        "-o",
        "json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits until `kind/name` has a Ready condition with `reason`; returns its message.
fn wait_reason(e: &Env, kind: &str, name: &str, reason: &str) -> String {
    wait_for(&format!("{kind}/{name} Ready reason {reason}"), T, || {
        let o = get_json(e.cp, &e.ns, kind, name)?;
        condition(&o, "Ready").filter(|c| c.1 == reason).map(|c| c.2)
    })
}

fn tags(ct: &Value) -> Vec<String> {
    ct["config"]["tags"]
        .as_str()
        .unwrap_or("")
        .split(';')
        .map(str::to_string)
        .collect()
}

#[test]
fn an_appliance_template_is_downloaded_built_and_converted_and_a_second_one_reuses_the_image() {
    let e = env("tmpl-build");
    let spec = "  image: {appliance: alpine-3.20-default}\n  resources: {cores: 1, memory: 256Mi}\n  rootfs: {storage: local-lvm, size: 2Gi}\n";
    apply(
        e.cp,
        &e.ns,
        &template_yaml("alpine", &format!("{spec}  tags: [base]\n")),
    );
    let obj = wait_ready(e.cp, &e.ns, "lxct", "alpine", T);
    let st = &obj["status"];
    assert_eq!(st["phase"], "Ready");
    assert_eq!(
        st["osTemplate"],
        "local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz"
    );
    let vmid = st["vmid"].as_u64().unwrap();
    let node = st["node"].as_str().unwrap().to_string();
    let ct = e.sim.container(vmid).expect("template in the simulator");
    assert_eq!(ct["template"], true);
    assert_eq!(ct["node"], node.as_str());
    assert_eq!(ct["config"]["cores"], "1");
    assert_eq!(ct["config"]["memory"], "256");
    assert!(
        ct["config"]["rootfs"]
            .as_str()
            .unwrap()
            .contains(&format!("base-{vmid}-disk")),
        "{}",
        ct["config"]["rootfs"]
    );
    let uid = obj["metadata"]["uid"].as_str().unwrap();
    assert!(
        tags(&ct).contains(&format!("k8s-{uid}")) && tags(&ct).contains(&"base".to_string()),
        "{:?}",
        tags(&ct)
    );
    let reasons = event_reasons(&e, "alpine");
    for r in ["Downloading", "Building", "Ready"] {
        assert!(reasons.iter().any(|x| x == r), "no {r} event: {reasons:?}");
    }
    assert_eq!(e.sim.count("POST /nodes/{node}/aplinfo"), 1);

    // the same image on the same node again: no second download
    apply(
        e.cp,
        &e.ns,
        &template_yaml("alpine-2", &format!("{spec}  node: {node}\n  tags: [base, second]\n")),
    );
    let obj2 = wait_ready(e.cp, &e.ns, "lxct", "alpine-2", T);
    assert_eq!(obj2["status"]["osTemplate"], st["osTemplate"]);
    assert_ne!(obj2["status"]["vmid"], st["vmid"]);
    assert_eq!(
        e.sim.count("POST /nodes/{node}/aplinfo"),
        1,
        "the image was downloaded twice"
    );

    // an image from a URL goes through download-url with its checksum
    apply(
        e.cp,
        &e.ns,
        &template_yaml("custom", "  image:\n    url: {url: \"https://images.example.org/custom-1.0_amd64.tar.zst\", checksum: \"sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\"}\n  rootfs: {storage: local-lvm, size: 2Gi}\n"),
    );
    let obj3 = wait_ready(e.cp, &e.ns, "lxct", "custom", T);
    // stored under its checksum: nobody can plant a file of that name for it
    assert_eq!(
        obj3["status"]["osTemplate"],
        "local:vztmpl/0f1e2d3c4b5a6978-custom-1.0_amd64.tar.zst"
    );
    assert_eq!(e.sim.count("POST /nodes/{node}/storage/{storage}/download-url"), 1);
}

#[test]
fn linked_and_full_clones_run_with_their_own_cores_memory_network_and_disk_size() {
    let e = env("tmpl-clone");
    // the containers come first: they wait for the template
    apply(
        e.cp,
        &e.ns,
        &container_yaml("linked", "  source: {template: {name: base}}\n  resources: {cores: 2, memory: 1Gi}\n  rootfs: {storage: local-lvm, size: 4Gi}\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.0.0.7/24, gateway: 10.0.0.1}}\n"),
    );
    apply(
        e.cp,
        &e.ns,
        &container_yaml("full", "  source: {template: {name: base, full: true}}\n  resources: {cores: 3, memory: 768Mi}\n  rootfs: {storage: local-lvm, size: 6Gi}\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.0.0.8/24}}\n"),
    );
    // a full clone onto another node than the template's (local storage: cloned, then moved)
    apply(
        e.cp,
        &e.ns,
        &container_yaml(
            "elsewhere",
            "  node: pve2\n  source: {template: {name: base, full: true}}\n  rootfs: {storage: local-lvm, size: 3Gi}\n",
        ),
    );
    // a linked clone cannot leave the template's node when its storage is not shared
    apply(
        e.cp,
        &e.ns,
        &container_yaml("linked-elsewhere", "  node: pve3\n  source: {template: {name: base}}\n"),
    );
    wait_reason(&e, "lxc", "linked", "SourceNotFound");
    apply(e.cp, &e.ns, &template_yaml("base", "  node: pve1\n  image: {appliance: debian-12-standard}\n  resources: {cores: 1, memory: 256Mi}\n  rootfs: {storage: local-lvm, size: 2Gi}\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {dhcp: true}}\n"));
    let t = wait_ready(e.cp, &e.ns, "lxct", "base", T);
    let tvmid = t["status"]["vmid"].as_u64().unwrap();
    // debian-12-standard is already in `local` on every node of the simulator: nothing downloaded
    assert_eq!(e.sim.count("POST /nodes/{node}/aplinfo"), 0);
    for (name, cores, memory, disk, ip, linked) in [
        ("linked", "2", "1024", "4G", "10.0.0.7/24", true),
        ("full", "3", "768", "6G", "10.0.0.8/24", false),
    ] {
        let o = wait_ready(e.cp, &e.ns, "lxc", name, T);
        assert_eq!(o["status"]["phase"], "Running", "{name}");
        let ct = e.sim.container(o["status"]["vmid"].as_u64().unwrap()).unwrap();
        let cfg = &ct["config"];
        assert_eq!(ct["status"], "running", "{name}");
        assert_eq!(cfg["cores"], cores, "{name}");
        assert_eq!(cfg["memory"], memory, "{name}");
        let rootfs = cfg["rootfs"].as_str().unwrap();
        assert!(rootfs.contains(&format!("size={disk}")), "{name}: {rootfs}");
        assert_eq!(
            rootfs.contains(&format!("base-{tvmid}-disk")),
            linked,
            "{name}: {rootfs}"
        );
        assert!(
            cfg["net0"].as_str().unwrap().contains(&format!("ip={ip}")),
            "{name}: {}",
            cfg["net0"]
        );
        assert_eq!(cfg["hostname"], name);
    }
    let o = wait_ready(e.cp, &e.ns, "lxc", "elsewhere", T);
    assert_eq!(o["status"]["node"], "pve2");
    let ct = e.sim.container(o["status"]["vmid"].as_u64().unwrap()).unwrap();
    assert_eq!(ct["node"], "pve2");
    assert!(ct["config"]["rootfs"].as_str().unwrap().contains("size=3G"));
    let msg = wait_reason(&e, "lxc", "linked-elsewhere", "CloneNotPossible");
    assert!(msg.contains("pve1") && msg.contains("local-lvm"), "{msg}");
}

#[test]
fn an_edited_template_is_rebuilt_and_deletion_waits_until_no_linked_clone_uses_any_build() {
    let e = env("tmpl-life");
    let spec = "  image: {appliance: debian-12-standard}\n  rootfs: {storage: local-lvm, size: 2Gi}\n";
    apply(e.cp, &e.ns, &template_yaml("base", spec));
    wait_ready(e.cp, &e.ns, "lxct", "base", T);
    let old = status_u64(&e, "lxct", "base", "vmid");
    apply(
        e.cp,
        &e.ns,
        &container_yaml(
            "web",
            "  source: {template: {name: base}}\n  rootfs: {storage: local-lvm, size: 2Gi}\n",
        ),
    );
    wait_ready(e.cp, &e.ns, "lxc", "web", T);
    let web = status_u64(&e, "lxc", "web", "vmid");

    // an edit builds a new template; the old one stays for the linked clone
    apply(
        e.cp,
        &e.ns,
        &template_yaml("base", &format!("{spec}  tags: [edited]\n  resources: {{cores: 2}}\n")),
    );
    let obj = wait_for("a new build", T, || {
        let o = get_json(e.cp, &e.ns, "lxct", "base")?;
        let v = o["status"]["vmid"].as_u64()?;
        (v != old && condition(&o, "Ready")?.0 == "True").then_some(o)
    });
    let new = obj["status"]["vmid"].as_u64().unwrap();
    assert_eq!(
        obj["status"]["previous"][0]["vmid"].as_u64(),
        Some(old),
        "{}",
        obj["status"]
    );
    assert!(condition(&obj, "Ready").unwrap().2.contains(&format!("CT {old}")));
    assert_eq!(e.sim.container(new).unwrap()["config"]["cores"], "2");
    assert!(
        e.sim.container(old).is_some(),
        "the old build was deleted while a linked clone uses it"
    );

    // deletion is refused and explained while the clone exists
    e.cp.kubectl_ok(&["delete", "lxct", "base", "-n", &e.ns, "--wait=false"]);
    let msg = wait_reason(&e, "lxct", "base", "InUse");
    assert!(msg.contains(&format!("CT {web} (LxcContainer web)")), "{msg}");
    assert!(event_reasons(&e, "base").iter().any(|r| r == "InUse"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(get_json(e.cp, &e.ns, "lxct", "base").is_some());
    assert!(e.sim.container(old).is_some() && e.sim.container(new).is_some());

    // once the clone is gone, both builds and the object go
    e.cp.kubectl_ok(&["delete", "lxc", "web", "-n", &e.ns, "--wait=false"]);
    wait_for("the template object to go", T, || {
        get_json(e.cp, &e.ns, "lxct", "base").is_none().then_some(())
    });
    assert!(e.sim.container(old).is_none(), "old build left behind");
    assert!(e.sim.container(new).is_none(), "new build left behind");
    assert!(e.sim.container(web).is_none());
}

#[test]
fn a_missing_image_volid_or_an_unknown_appliance_gives_ready_false_naming_it() {
    let e = env("tmpl-bad");
    apply(
        e.cp,
        &e.ns,
        &template_yaml("novol", "  image: {volid: \"local:vztmpl/nope-1.0_amd64.tar.zst\"}\n"),
    );
    apply(
        e.cp,
        &e.ns,
        &template_yaml("noappl", "  image: {appliance: no-such-appliance}\n"),
    );
    let msg = wait_reason(&e, "lxct", "novol", "ImageNotFound");
    assert!(msg.contains("local:vztmpl/nope-1.0_amd64.tar.zst"), "{msg}");
    let msg = wait_reason(&e, "lxct", "noappl", "ApplianceNotFound");
    assert!(msg.contains("no-such-appliance"), "{msg}");
    let o = get_json(e.cp, &e.ns, "lxct", "noappl").unwrap();
    assert_eq!(condition(&o, "Ready").unwrap().0, "False");
    assert!(event_reasons(&e, "noappl").iter().any(|r| r == "ApplianceNotFound"));
    assert!(e.sim.containers().is_empty());
    // nothing to clean up: deletion is immediate
    e.cp.kubectl_ok(&["delete", "lxct", "novol", "noappl", "-n", &e.ns, "--timeout=30s"]);
}

#[test]
fn a_template_vmid_held_on_another_node_is_a_conflict_not_a_create_loop() {
    let e = env("tmpl-vmid");
    let os = "  source: {osTemplate: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}\n";
    apply(
        e.cp,
        &e.ns,
        &container_yaml("holder", &format!("{os}  node: pve2\n  vmid: 777\n")),
    );
    wait_ready(e.cp, &e.ns, "lxc", "holder", T);
    let creates = e.sim.count("POST /nodes/{node}/lxc");
    let spec = "  node: pve1\n  vmid: 777\n  image: {volid: \"local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\"}\n  imageStorage: local\n";
    apply(e.cp, &e.ns, &template_yaml("base", spec));
    let (_, _, message) = wait_for("Ready=False reason=VmidConflict", T, || {
        condition(&get_json(e.cp, &e.ns, "lxct", "base")?, "Ready")
            .filter(|(s, r, _)| s == "False" && r == "VmidConflict")
    });
    assert!(message.contains("pve2"), "{message}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        e.sim.count("POST /nodes/{node}/lxc"),
        creates,
        "no create is even tried, let alone in a loop"
    );
}
