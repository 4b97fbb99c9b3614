use super::*;
use crate::crd::proxmox_cluster::StorageStatus;
use crate::crd::ProxmoxClusterSpec;

fn cluster() -> ProxmoxCluster {
    let mut pc = ProxmoxCluster::new("prod", ProxmoxClusterSpec::default());
    pc.metadata.uid = Some("u-1".into());
    pc
}

fn snapshot(guests: Vec<crate::controller::cluster::Guest>) -> Snapshot {
    Snapshot {
        taken_at: Instant::now(),
        guests: guests.into_iter().map(|g| (g.vmid, g)).collect(),
        nodes: vec![],
        storages: vec![StorageStatus {
            node: "pve1".into(),
            name: "local-lvm".into(),
            total_bytes: Some(100 << 30),
            ..Default::default()
        }],
    }
}

fn pve1(online: bool) -> PveNode {
    PveNode {
        name: "pve1".into(),
        online,
        cpus: Some(8),
        memory_total: Some(32 << 30),
        ..Default::default()
    }
}

fn build(node: &PveNode, snap: &Snapshot, connected: bool) -> DesiredNode {
    desired_node(&NodeInputs {
        cluster: &cluster(),
        spec: &VirtualNodes::default(),
        node,
        snapshot: snap,
        connected,
        settings: &VnodeSettings::default(),
    })
}

fn ready(d: &DesiredNode) -> (String, String) {
    let c = d
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    (c.status.clone(), c.reason.clone().unwrap())
}

#[test]
fn allocatable_is_what_guests_other_than_pods_leave() {
    let g = |vmid, tags: &[&str]| crate::controller::cluster::Guest {
        vmid,
        node: "pve1".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        maxmem: Some(4 << 30),
        maxcpu: Some(2.0),
        ..Default::default()
    };
    let d = build(&pve1(true), &snapshot(vec![g(100, &[]), g(101, &[POD_TAG])]), true);
    let st = &d.status;
    assert_eq!(st.capacity.as_ref().unwrap()["cpu"].0, "8");
    assert_eq!(st.capacity.as_ref().unwrap()["memory"].0, (32u64 << 30).to_string());
    assert_eq!(
        st.capacity.as_ref().unwrap()["ephemeral-storage"].0,
        (100u64 << 30).to_string()
    );
    assert_eq!(st.allocatable.as_ref().unwrap()["cpu"].0, "6000m");
    assert_eq!(st.allocatable.as_ref().unwrap()["memory"].0, (28u64 << 30).to_string());
    assert_eq!(st.capacity.as_ref().unwrap()["pods"].0, "110");
}

#[test]
fn ready_follows_the_proxmox_node_and_the_connection() {
    let snap = snapshot(vec![]);
    assert_eq!(
        ready(&build(&pve1(true), &snap, true)),
        ("True".into(), "ProxmoxNodeOnline".into())
    );
    assert_eq!(
        ready(&build(&pve1(false), &snap, true)),
        ("False".into(), "ProxmoxNodeOffline".into())
    );
    assert_eq!(
        ready(&build(&pve1(true), &snap, false)),
        ("False".into(), "ProxmoxUnreachable".into())
    );
}

#[test]
fn the_node_is_tainted_labelled_and_owned_by_its_cluster() {
    let d = build(&pve1(true), &snapshot(vec![]), true);
    assert_eq!(d.node.name_any(), "prod-pve1");
    let spec = d.node.spec.as_ref().unwrap();
    assert_eq!(spec.provider_id.as_deref(), Some("proxmox://u-1/pve1"));
    assert_eq!(spec.taints.as_ref().unwrap()[0].key, TAINT_KEY);
    assert_eq!(d.node.labels()[CLUSTER_LABEL], "prod");
    assert_eq!(d.node.owner_references()[0].uid, "u-1");
    // only the address: a Hostname would be dialled first by the apiserver and not resolve
    let addrs = d.status.addresses.as_ref().unwrap();
    assert_eq!(addrs.len(), 1);
    assert_eq!(addrs[0].type_, "InternalIP");
}

#[test]
fn a_conditions_transition_time_stays_while_its_status_does() {
    let d = build(&pve1(true), &snapshot(vec![]), true);
    let t0 = Time(jiff::Timestamp::from_second(1_000).unwrap());
    let t1 = Time(jiff::Timestamp::from_second(2_000).unwrap());
    let first = with_times(d.status.clone(), None, &t0);
    let again = with_times(d.status.clone(), Some(&first), &t1);
    let c = &again.conditions.as_ref().unwrap()[0];
    assert_eq!(c.last_transition_time, Some(t0.clone()));
    assert_eq!(c.last_heartbeat_time, Some(t1.clone()));
    let off = build(&pve1(false), &snapshot(vec![]), true);
    let changed = with_times(off.status, Some(&again), &t1);
    assert_eq!(changed.conditions.as_ref().unwrap()[0].last_transition_time, Some(t1));
}
