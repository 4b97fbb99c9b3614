//! Networking end to end: IPs in status, firewall rules kept exactly as the spec says, and
//! ports published as a Service + EndpointSlice that follow the container.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn ct(name: &str, extra: &str) -> String {
    format!("apiVersion: pve.lxc.dev/v1alpha1\nkind: LxcContainer\nmetadata:\n  name: {name}\nspec:\n  source:\n    osTemplate: local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst\n{extra}")
}

fn setup(prefix: &str) -> (&'static ControlPlane, String, Sim, Operator) {
    let Env { cp, ns, sim, op } = env(prefix);
    (cp, ns, sim, op)
}

fn node_of(sim: &Sim, vmid: u64) -> String {
    sim.container(vmid).unwrap()["node"].as_str().unwrap().to_string()
}

#[test]
fn static_and_dhcp_containers_report_their_ips_and_an_address_change_reaches_proxmox() {
    let (cp, ns, sim, _op) = setup("ips");
    apply(cp, &ns, &ct("fixed", "  network:\n    - {name: eth0, bridge: vmbr0, vlan: 20, ipv4: {address: 10.0.0.5/24, gateway: 10.0.0.1}}\n"));
    apply(
        cp,
        &ns,
        &ct(
            "dynamic",
            "  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {dhcp: true}}\n",
        ),
    );
    let fixed = wait_ready(cp, &ns, "lxc", "fixed", T);
    assert_eq!(fixed["status"]["ipAddresses"][0], "10.0.0.5");
    assert!(
        fixed["status"]["mac"]["eth0"].as_str().is_some_and(|m| m.len() == 17),
        "MAC in status: {}",
        fixed["status"]
    );
    let dynamic = wait_for("a DHCP address in status", T, || {
        let o = get_json(cp, &ns, "lxc", "dynamic")?;
        o["status"]["ipAddresses"][0]
            .as_str()
            .filter(|a| a.contains('.'))
            .map(|_| o.clone())
    });
    let dhcp_ip = dynamic["status"]["ipAddresses"][0].as_str().unwrap().to_string();
    assert_ne!(dhcp_ip, "10.0.0.5");
    let vmid = fixed["status"]["vmid"].as_u64().unwrap();
    apply(cp, &ns, &ct("fixed", "  network:\n    - {name: eth0, bridge: vmbr0, vlan: 20, ipv4: {address: 10.0.0.7/24, gateway: 10.0.0.1}}\n"));
    wait_for("new address in Proxmox", T, || {
        sim.container(vmid)?["config"]["net0"]
            .as_str()?
            .contains("ip=10.0.0.7/24")
            .then_some(())
    });
    wait_for("new address in status", T, || {
        (get_json(cp, &ns, "lxc", "fixed")?["status"]["ipAddresses"][0] == "10.0.0.7").then_some(())
    });
    let net0 = sim.container(vmid).unwrap()["config"]["net0"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(net0.contains("tag=20"), "{net0}");
}

fn rules(sim: &Sim, vmid: u64) -> Vec<(String, String)> {
    let node = node_of(sim, vmid);
    let v = sim.call("GET", &format!("/nodes/{node}/lxc/{vmid}/firewall/rules"), &[]);
    let mut list: Vec<serde_json::Value> = v["data"].as_array().cloned().unwrap_or_default();
    list.sort_by_key(|r| r["pos"].as_u64());
    list.iter()
        .map(|r| {
            (
                r["dport"].as_str().unwrap_or("").to_string(),
                r["comment"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fw_spec(rules: &[(&str, &str)]) -> String {
    let mut s = String::from("  firewall:\n    enabled: true\n    policyIn: DROP\n    rules:\n");
    for (port, comment) in rules {
        s.push_str(&format!(
            "      - {{action: ACCEPT, direction: in, protocol: tcp, port: \"{port}\", comment: {comment}}}\n"
        ));
    }
    s
}

#[test]
fn firewall_rules_in_proxmox_are_exactly_the_spec_in_order() {
    let (cp, ns, sim, _op) = setup("fw");
    apply(cp, &ns, &ct("guarded", &fw_spec(&[("22", "ssh"), ("80", "web")])));
    let o = wait_ready(cp, &ns, "lxc", "guarded", T);
    let vmid = o["status"]["vmid"].as_u64().unwrap();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    wait_for("two rules", T, || {
        (rules(&sim, vmid) == pairs(&[("22", "ssh"), ("80", "web")])).then_some(())
    });
    let node = node_of(&sim, vmid);
    let opts = sim.call("GET", &format!("/nodes/{node}/lxc/{vmid}/firewall/options"), &[]);
    assert_eq!(opts["data"]["enable"].as_u64(), Some(1), "{opts}");
    assert_eq!(opts["data"]["policy_in"], "DROP");
    // add, reorder
    apply(
        cp,
        &ns,
        &ct("guarded", &fw_spec(&[("443", "tls"), ("22", "ssh"), ("80", "web")])),
    );
    wait_for("three rules, tls first", T, || {
        (rules(&sim, vmid) == pairs(&[("443", "tls"), ("22", "ssh"), ("80", "web")])).then_some(())
    });
    // rules added by hand: a plain one is removed, one marked [unmanaged] stays
    for (port, comment) in [("3306", "by hand"), ("5432", "[unmanaged] dba access")] {
        sim.call(
            "POST",
            &format!("/nodes/{node}/lxc/{vmid}/firewall/rules"),
            &[
                ("type", "in"),
                ("action", "ACCEPT"),
                ("proto", "tcp"),
                ("dport", port),
                ("comment", comment),
                ("enable", "1"),
            ],
        );
    }
    // remove one in the spec: the next pass also cleans up
    apply(cp, &ns, &ct("guarded", &fw_spec(&[("443", "tls"), ("22", "ssh")])));
    wait_for("spec rules then the unmanaged one", T, || {
        (rules(&sim, vmid) == pairs(&[("443", "tls"), ("22", "ssh"), ("5432", "[unmanaged] dba access")])).then_some(())
    });
    let events = cp.kubectl_ok(&["get", "events", "-n", &ns, "-o", "json"]);
    assert!(
        events.contains("not in the spec"),
        "an Event says a hand-made rule was removed: {events}"
    );
}

fn slice(cp: &ControlPlane, ns: &str, name: &str) -> Option<serde_json::Value> {
    get_json(cp, ns, "endpointslices.discovery.k8s.io", name)
}

#[test]
fn ports_are_published_as_a_service_whose_endpoint_follows_the_container() {
    let (cp, ns, sim, _op) = setup("svc");
    let spec = |ip: &str, state: &str| {
        ct("api", &format!("  state: {state}\n  network:\n    - {{name: eth0, bridge: vmbr0, ipv4: {{address: {ip}/24}}}}\n  ports:\n    - {{name: http, port: 8080}}\n"))
    };
    apply(cp, &ns, &spec("10.1.0.5", "Running"));
    wait_ready(cp, &ns, "lxc", "api", T);
    let svc = wait_for("service", T, || get_json(cp, &ns, "service", "api"));
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert!(svc["spec"].get("selector").is_none());
    let s = wait_for("slice with the IP", T, || {
        slice(cp, &ns, "api").filter(|s| s["endpoints"][0]["addresses"][0] == "10.1.0.5")
    });
    assert_eq!(s["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(s["metadata"]["labels"]["kubernetes.io/service-name"], "api");
    apply(cp, &ns, &spec("10.1.0.9", "Running"));
    wait_for("slice follows the IP change", T, || {
        slice(cp, &ns, "api")
            .filter(|s| s["endpoints"][0]["addresses"][0] == "10.1.0.9")
            .map(|_| ())
    });
    apply(cp, &ns, &spec("10.1.0.9", "Stopped"));
    wait_for("endpoint not ready when stopped", T, || {
        slice(cp, &ns, "api")
            .filter(|s| s["endpoints"][0]["conditions"]["ready"] == false)
            .map(|_| ())
    });
    // no ports: the Service goes away; deleting the container removes what is left
    apply(
        cp,
        &ns,
        &ct(
            "api",
            "  state: Stopped\n  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.1.0.9/24}}\n",
        ),
    );
    wait_for("service removed", T, || {
        get_json(cp, &ns, "service", "api").is_none().then_some(())
    });
    assert!(slice(cp, &ns, "api").is_none());
    drop(sim);
}

#[test]
fn ports_never_take_over_a_service_the_operator_did_not_create() {
    let (cp, ns, sim, _op) = setup("svcown");
    // a user's own Service `web` (with a selector: it fronts pods), made before the container
    apply(
        cp,
        &ns,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {team: a}\nspec:\n  selector: {app: web}\n  ports:\n    - {name: http, port: 80, targetPort: 8080}\n",
    );
    let before = get_json(cp, &ns, "service", "web").unwrap();
    apply(
        cp,
        &ns,
        &ct(
            "web",
            "  network:\n    - {name: eth0, bridge: vmbr0, ipv4: {address: 10.1.0.7/24}}\n  ports:\n    - {name: http, port: 8080}\n",
        ),
    );
    let obj = wait_for("the container saying why it publishes nothing", T, || {
        get_json(cp, &ns, "lxc", "web")
            .filter(|o| condition(o, "Synced").is_some_and(|c| c.0 == "False" && c.2.contains("Service named web")))
    });
    let (_, reason, message) = condition(&obj, "Synced").unwrap();
    assert_eq!(reason, "ServiceNotOwned", "{message}");
    assert_eq!(
        condition(&obj, "Ready").map(|c| c.0).as_deref(),
        Some("True"),
        "the container itself is fine"
    );
    assert!(message.contains("not controlled by this LxcContainer"), "{message}");
    assert!(
        obj["status"]["vmid"].as_u64().is_some(),
        "the container itself was created"
    );
    std::thread::sleep(Duration::from_secs(3));
    let after = get_json(cp, &ns, "service", "web").unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"],
        "the user's Service was written to: {after}"
    );
    assert!(
        after["metadata"]["ownerReferences"].is_null(),
        "no ownerReference added"
    );
    assert_eq!(after["spec"]["selector"], before["spec"]["selector"]);
    assert!(
        slice(cp, &ns, "web").is_none(),
        "no EndpointSlice (with a tenant-chosen IP) for a Service that is not ours"
    );
    // deleting the container leaves the user's Service alone as well
    cp.kubectl_ok(&["delete", "lxc", "-n", &ns, "web", "--timeout=60s"]);
    let kept = get_json(cp, &ns, "service", "web").expect("the user's Service survives the container");
    assert_eq!(
        kept["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    drop(sim);
}

#[test]
fn injection_attempts_are_refused_before_anything_reaches_proxmox() {
    let (cp, ns, sim, _op) = setup("inject");
    sim.call("POST", "/_sim/stats/reset", &[]);
    for bad in [
        ct("a", "  network:\n    - {name: eth0, bridge: \"vmbr0,firewall=0\"}\n"),
        ct("b", "  firewall:\n    enabled: true\n    rules:\n      - {action: ACCEPT, direction: in, comment: \"line\\nbreak\"}\n"),
        ct("c", "  tags: [\"ok;bad=1\"]\n"),
        ct("d", "  hostname: \"web,memory=99999\"\n"),
        ct("e", "  mountPoints:\n    - {name: mp0, storage: local-lvm, size: 1Gi, path: \"/data,backup=0\"}\n  rootfs: {storage: local-lvm, size: 4Gi}\n"),
    ] {
        let out = cp.kubectl_stdin(&["apply", "--validate=false", "-n", &ns, "-f", "-"], Some(&bad));
        assert!(!out.status.success(), "accepted: {bad}");
    }
    std::thread::sleep(Duration::from_secs(3));
    let stats = sim.stats();
    let non_inventory: u64 = stats["requests"]
        .as_object()
        .unwrap()
        .iter()
        // the inventory, and the token preflight's read on connect
        .filter(|(k, _)| {
            !k.contains("/cluster/resources") && !k.contains("/version") && !k.contains("/access/permissions")
        })
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(non_inventory, 0, "{stats}");
    assert!(sim.containers().is_empty());
}

#[test]
fn a_port_opened_by_hand_in_proxmox_is_closed_within_a_few_resyncs_without_any_spec_change() {
    let (cp, ns, sim, _op) = setup("fwdrift");
    apply(cp, &ns, &ct("guarded", &fw_spec(&[("22", "ssh")])));
    let vmid = wait_ready(cp, &ns, "lxc", "guarded", T)["status"]["vmid"]
        .as_u64()
        .unwrap();
    let node = node_of(&sim, vmid);
    let spec = vec![("22".to_string(), "ssh".to_string())];
    wait_for("the spec's rule", T, || (rules(&sim, vmid) == spec).then_some(()));
    // someone opens a port in the Proxmox GUI; the inventory does not show firewall rules
    sim.call(
        "POST",
        &format!("/nodes/{node}/lxc/{vmid}/firewall/rules"),
        &[
            ("type", "in"),
            ("action", "ACCEPT"),
            ("proto", "tcp"),
            ("dport", "3306"),
            ("enable", "1"),
        ],
    );
    assert_ne!(rules(&sim, vmid), spec);
    let opened = std::time::Instant::now();
    // resync 2s, one container: its drift pass comes at the next inventory read
    wait_for("the port closed again", Duration::from_secs(20), || {
        (rules(&sim, vmid) == spec).then_some(())
    });
    eprintln!("closed {:?} after it was opened", opened.elapsed());
}
