use super::*;

fn form() -> NewForm {
    NewForm {
        namespace: "team".into(),
        name: "web01".into(),
        source: "os".into(),
        os_template: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
        cores: "2".into(),
        memory_mib: "1024".into(),
        bridge: "vmbr0".into(),
        ip: "dhcp".into(),
        state: "Running".into(),
        ..Default::default()
    }
}

fn cluster() -> Value {
    json!({"metadata": {"name": "default"}, "spec": {},
           "status": {"nodes": [{"name": "pve1", "online": true}, {"name": "pve2", "online": false}],
                      "storages": [{"node": "pve1", "name": "local", "content": ["vztmpl", "backup"]},
                                   {"node": "pve1", "name": "local-lvm", "content": ["rootdir", "images"]}]}})
}

#[test]
fn the_pickers_offer_online_nodes_and_storages_by_content() {
    let inv = Inventory::of(&[cluster()], "");
    assert_eq!(inv.cluster, "default");
    assert_eq!(inv.nodes, ["pve1"]);
    assert_eq!(inv.disk_storages, ["local-lvm"]);
    assert_eq!(inv.template_storages, ["local"]);
    assert_eq!(inv.bridges, ["vmbr0"]);
}

#[test]
fn the_form_becomes_a_spec_with_a_dhcp_nic_whole_mib_and_gib_and_a_firewall() {
    let mut f = form();
    f.storage = "local-lvm".into();
    f.disk_gib = "8".into();
    f.firewall = "on".into();
    let spec = new_spec(&f);
    assert_eq!(spec["resources"], json!({"cores": 2, "memory": "1024Mi"}));
    assert_eq!(spec["rootfs"], json!({"storage": "local-lvm", "size": "8Gi"}));
    assert_eq!(
        spec["network"][0],
        json!({"name": "eth0", "bridge": "vmbr0", "ipv4": {"dhcp": true}, "firewall": true})
    );
    assert_eq!(spec["firewall"], json!({"enabled": true}));
    let inv = Inventory::of(&[cluster()], "");
    assert_eq!(preflight(&f, &spec, &inv), Ok(()));
}

#[test]
fn memory_that_is_not_whole_mib_is_refused_by_the_operators_own_validation_at_the_memory_field() {
    let mut f = form();
    f.memory_mib = "1G".into();
    let (field, msg) = preflight(&f, &new_spec(&f), &Inventory::default()).unwrap_err();
    assert_eq!(field, "memory_mib");
    assert!(msg.starts_with("spec.resources.memory:"), "{msg}");
}

#[test]
fn a_static_address_outside_cidr_form_is_refused_at_the_address_field() {
    let mut f = form();
    f.ip = "static".into();
    f.address = "10.0.0.5".into();
    let (field, _) = preflight(&f, &new_spec(&f), &Inventory::default()).unwrap_err();
    assert_eq!(field, "address");
}

#[test]
fn a_node_or_storage_the_cluster_does_not_offer_is_refused_with_the_valid_ones() {
    let inv = Inventory::of(&[cluster()], "");
    let mut f = form();
    f.node = "pve9".into();
    let (field, msg) = preflight(&f, &new_spec(&f), &inv).unwrap_err();
    assert_eq!((field, msg.contains("(pve1)")), ("node", true), "{msg}");
    let mut f = form();
    f.storage = "local".into();
    f.disk_gib = "4".into();
    assert_eq!(preflight(&f, &new_spec(&f), &inv).unwrap_err().0, "storage");
    let mut f = form();
    f.source = "template".into();
    f.template = "nope".into();
    assert_eq!(preflight(&f, &new_spec(&f), &inv).unwrap_err().0, "template");
}

#[test]
fn a_422_with_two_causes_is_split_so_each_field_gets_only_its_own() {
    let msg = r#"LxcContainer.pve.lxc.dev "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', spec.resources.cores: Invalid value: "string": spec.resources.cores in body must be of type integer: "string"]"#;
    let c = causes(msg);
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].0, "name");
    assert!(c[0].1.ends_with("'-' or '.'"), "{}", c[0].1);
    assert_eq!(c[1].0, "cores");
    assert!(!c[1].1.contains("metadata.name"));
    assert_eq!(causes("forbidden: no"), vec![("", "forbidden: no".to_string())]);
}

#[test]
fn every_field_a_complaint_can_name_is_a_field_of_the_wizard() {
    let names: Vec<&str> = steps(&form(), &Inventory::default())
        .iter()
        .flat_map(|s| s.fields.iter().map(|f| f.name))
        .collect();
    for path in [
        "metadata.name",
        "spec.node",
        "spec.source.image.reference",
        "spec.rootfs.size",
        "spec.network.ipv4.gateway",
        "spec.network[0].bridge",
        "spec.firewall",
        "spec.resources.memory",
    ] {
        let f = field_of(path);
        assert!(names.contains(&f), "{path} -> {f:?}");
    }
}
