//! What the observer reads from Proxmox, in memory: the guests (containers and VMs), nodes and
//! storages of a cluster as one snapshot, and what changed between two.

use crate::crd::proxmox_cluster::{NodeStatus, StorageStatus};
use crate::crd::IDENTITY_TAG_PREFIX;
use crate::pve::{self, ClusterResource};
use std::collections::HashMap;
use std::time::Instant;

/// One container or VM as the inventory shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guest {
    /// vmid.
    pub vmid: u32,
    /// Node it is on.
    pub node: String,
    /// `running`, `stopped`, ... (the usual ones shared, not one string per guest)
    pub status: std::borrow::Cow<'static, str>,
    /// Host name.
    pub name: Option<String>,
    /// Tags, normalized.
    pub tags: Vec<String>,
    /// Lock, while one is held.
    pub lock: Option<String>,
    /// Whether it is a template.
    pub template: bool,
    /// `lxc` or `qemu`.
    pub kind: &'static str,
    /// Memory limit, bytes.
    pub maxmem: Option<u64>,
    /// Root disk size, bytes.
    pub maxdisk: Option<u64>,
    /// CPU limit (cores).
    pub maxcpu: Option<f64>,
    /// CPU usage.
    pub cpu: Option<f64>,
    /// Memory in use.
    pub mem: Option<u64>,
    /// Disk in use.
    pub disk: Option<u64>,
    /// Bytes received.
    pub netin: Option<u64>,
    /// Bytes sent.
    pub netout: Option<u64>,
    /// Seconds up.
    pub uptime: Option<u64>,
    /// The HA state when Proxmox's HA stack manages it (`started`, `migrate`, `fence`, ...).
    pub hastate: Option<String>,
}

/// A guest's status as a shared string when it is one Proxmox uses (pure).
pub fn shared_status(s: &str) -> std::borrow::Cow<'static, str> {
    match s {
        "running" => "running".into(),
        "stopped" => "stopped".into(),
        "paused" => "paused".into(),
        "unknown" => "unknown".into(),
        other => other.to_string().into(),
    }
}

impl Guest {
    fn from_resource(r: &ClusterResource) -> Option<Guest> {
        Some(Guest {
            vmid: r.vmid?,
            node: r.node.clone()?,
            status: shared_status(r.status.as_deref().unwrap_or_default()),
            name: r.name.clone(),
            tags: r.tags.as_deref().map(pve::props::parse_tags).unwrap_or_default(),
            lock: r.lock.clone().filter(|l| !l.is_empty()),
            template: r.template.unwrap_or(false),
            kind: if r.resource_type == "qemu" { "qemu" } else { "lxc" },
            maxmem: r.maxmem,
            maxdisk: r.maxdisk,
            maxcpu: r.maxcpu,
            cpu: r.cpu,
            mem: r.mem,
            disk: r.disk,
            netin: r.netin,
            netout: r.netout,
            uptime: r.uptime,
            hastate: r.hastate.clone().filter(|h| !h.is_empty()),
        })
    }

    /// What a reconcile cares about, without the usage figures that move all the time.
    pub fn identity(&self) -> impl PartialEq + '_ {
        (
            &self.node,
            &self.status,
            &self.name,
            &self.tags,
            &self.lock,
            &self.hastate,
            self.template,
            self.maxmem,
            self.maxdisk,
            self.maxcpu.map(f64::to_bits),
        )
    }

    /// Whether the guest carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// The inventory of one cluster at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When it was read.
    pub taken_at: Instant,
    /// Containers and VMs by vmid.
    pub guests: Guests,
    /// Nodes.
    pub nodes: Vec<NodeStatus>,
    /// Storages per node.
    pub storages: Vec<StorageStatus>,
}

/// A [`Snapshot`] being built one resource at a time. It deserializes straight from the
/// `/cluster/resources` answer (each resource decoded, kept as a [`Guest`], node or storage,
/// and dropped), so a 10,000-guest inventory is never held twice (a `Vec<ClusterResource>`
/// next to the snapshot built from it: ~10 MiB more at every read, the operator's peak).
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    guests: Vec<Guest>,
    nodes: Vec<NodeStatus>,
    storages: Vec<StorageStatus>,
}

impl SnapshotBuilder {
    /// Adds one resource (containers, VMs, nodes and storages; other types are skipped).
    pub fn add(&mut self, r: &ClusterResource) {
        match r.resource_type.as_str() {
            "lxc" | "qemu" => {
                if let Some(g) = Guest::from_resource(r) {
                    self.guests.push(g);
                }
            }
            "node" => self.nodes.push(NodeStatus {
                name: r.node.clone().unwrap_or_default(),
                online: r.status.as_deref() == Some("online"),
                cpu: r.cpu,
                memory_used: r.mem,
                memory_total: r.maxmem,
                cpus: r.maxcpu.map(|c| c.round() as u32),
                uptime_seconds: r.uptime,
                bridges: Vec::new(),
            }),
            "storage" => self.storages.push(StorageStatus {
                node: r.node.clone().unwrap_or_default(),
                name: r.storage.clone().unwrap_or_default(),
                type_: r.plugintype.clone(),
                content: r
                    .content
                    .as_deref()
                    .map(|c| {
                        c.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
                shared: r.shared.unwrap_or(false),
                used_bytes: r.disk,
                total_bytes: r.maxdisk,
            }),
            _ => {}
        }
    }

    /// The snapshot, read at `taken_at`.
    pub fn finish(self, taken_at: Instant) -> Snapshot {
        let SnapshotBuilder {
            guests,
            mut nodes,
            mut storages,
        } = self;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        storages.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
        Snapshot {
            taken_at,
            guests: Guests::from_vec(guests),
            nodes,
            storages,
        }
    }
}

/// The guests of a [`Snapshot`] by vmid: a vector sorted by vmid, searched by halving. 10,000
/// guests take exactly their bytes (~4 MiB); a hash map kept up to half of its table empty
/// and held two tables at once while it grew during each read, which was the operator's
/// largest peak while adopting 10,000 containers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Guests(Vec<Guest>);

impl Guests {
    /// Sorts `v` by vmid (in place: a stable sort's scratch copy of 10,000 guests was ~3 MiB
    /// of the operator's peak); of two entries with one vmid, which Proxmox never lists, one is
    /// kept.
    fn from_vec(mut v: Vec<Guest>) -> Guests {
        if !v.is_sorted_by_key(|g| g.vmid) {
            v.sort_unstable_by_key(|g| g.vmid);
        }
        v.dedup_by_key(|g| g.vmid);
        v.shrink_to_fit();
        Guests(v)
    }

    /// The guest `vmid`.
    pub fn get(&self, vmid: &u32) -> Option<&Guest> {
        self.0.binary_search_by_key(vmid, |g| g.vmid).ok().map(|i| &self.0[i])
    }

    /// Whether guest `vmid` is listed.
    pub fn contains_key(&self, vmid: &u32) -> bool {
        self.get(vmid).is_some()
    }

    /// The vmids, ascending.
    pub fn keys(&self) -> impl Iterator<Item = &u32> {
        self.0.iter().map(|g| &g.vmid)
    }

    /// The guests, by ascending vmid.
    pub fn values(&self) -> std::slice::Iter<'_, Guest> {
        self.0.iter()
    }

    /// How many are listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drops them all.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl FromIterator<(u32, Guest)> for Guests {
    fn from_iter<I: IntoIterator<Item = (u32, Guest)>>(it: I) -> Guests {
        Guests::from_vec(it.into_iter().map(|(vmid, g)| Guest { vmid, ..g }).collect())
    }
}

impl std::ops::Index<&u32> for Guests {
    type Output = Guest;
    fn index(&self, vmid: &u32) -> &Guest {
        self.get(vmid).expect("a listed vmid")
    }
}

impl<'de> serde::Deserialize<'de> for SnapshotBuilder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Resources;
        impl<'de> serde::de::Visitor<'de> for Resources {
            type Value = SnapshotBuilder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of cluster resources")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SnapshotBuilder, A::Error> {
                let mut b = SnapshotBuilder::default();
                while let Some(r) = seq.next_element::<ClusterResource>()? {
                    b.add(&r);
                }
                Ok(b)
            }
        }
        d.deserialize_seq(Resources)
    }
}

impl Snapshot {
    /// Builds a snapshot from a `/cluster/resources` answer.
    pub fn from_resources(list: &[ClusterResource], taken_at: Instant) -> Snapshot {
        let mut b = SnapshotBuilder::default();
        for r in list {
            b.add(r);
        }
        b.finish(taken_at)
    }

    /// Whether `node` is known and online.
    pub fn node_online(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.name == node && n.online)
    }

    /// Whether `storage` exists on `node` with content `content`.
    pub fn node_has_storage(&self, node: &str, storage: &str, content: &str) -> bool {
        self.storages
            .iter()
            .any(|s| s.node == node && s.name == storage && s.content.iter().any(|c| c == content))
    }

    /// Puts each node's bridges (as last read from its network configuration) into `nodes`.
    pub fn set_bridges(&mut self, bridges: &HashMap<String, Vec<String>>) {
        for n in &mut self.nodes {
            n.bridges = bridges.get(&n.name).cloned().unwrap_or_default();
        }
    }

    /// The nodes and storages of `nodes` only (no guests): what placement may choose from
    /// for a tenant limited to them.
    pub fn placement_only_on(&self, nodes: &[String]) -> Snapshot {
        Snapshot {
            taken_at: self.taken_at,
            guests: Guests::default(),
            nodes: self.nodes.iter().filter(|n| nodes.contains(&n.name)).cloned().collect(),
            storages: self
                .storages
                .iter()
                .filter(|s| nodes.contains(&s.node))
                .cloned()
                .collect(),
        }
    }

    /// Online nodes that have `storage` (content `rootdir`), most free memory first, after
    /// subtracting `reserved` bytes per node.
    pub fn placement_candidates(&self, storage: &str, reserved: &HashMap<String, u64>) -> Vec<String> {
        let mut c: Vec<(u64, &str)> = self
            .nodes
            .iter()
            .filter(|n| n.online && self.node_has_storage(&n.name, storage, "rootdir"))
            .map(|n| {
                let free = n.memory_total.unwrap_or(0).saturating_sub(n.memory_used.unwrap_or(0));
                (
                    free.saturating_sub(reserved.get(&n.name).copied().unwrap_or(0)),
                    n.name.as_str(),
                )
            })
            .collect();
        c.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        c.into_iter().map(|(_, n)| n.to_string()).collect()
    }
}

/// vmids whose observed state differs between two snapshots (appeared, vanished or changed).
pub fn changed_guests(old: &Snapshot, new: &Snapshot) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for g in new.guests.values() {
        match old.guests.get(&g.vmid) {
            Some(o) if o.identity() == g.identity() => {}
            _ => out.push(g.vmid),
        }
    }
    out.extend(old.guests.keys().filter(|v| !new.guests.contains_key(v)));
    out.sort_unstable();
    out
}

/// The uid in a guest's identity tag (`k8s-<uid>`), lower-case as Proxmox stores tags.
pub fn identity_uid(tags: &[String]) -> Option<&str> {
    tags.iter().find_map(|t| t.strip_prefix(IDENTITY_TAG_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> Vec<ClusterResource> {
        serde_json::from_value(v).unwrap()
    }

    fn sample(mem: u64, status: &str) -> Vec<ClusterResource> {
        res(sample_json(mem, status))
    }

    fn sample_json(mem: u64, status: &str) -> serde_json::Value {
        serde_json::json!([
            {"id": "node/pve1", "type": "node", "node": "pve1", "status": "online", "mem": 1_000, "maxmem": 10_000},
            {"id": "node/pve2", "type": "node", "node": "pve2", "status": "online", "mem": 1_000, "maxmem": 20_000},
            {"id": "node/pve3", "type": "node", "node": "pve3", "status": "offline", "mem": 0, "maxmem": 90_000},
            {"id": "storage/pve1/local-lvm", "type": "storage", "node": "pve1", "storage": "local-lvm", "content": "rootdir,images", "plugintype": "lvmthin"},
            {"id": "storage/pve2/local-lvm", "type": "storage", "node": "pve2", "storage": "local-lvm", "content": "rootdir,images", "plugintype": "lvmthin"},
            {"id": "storage/pve3/local-lvm", "type": "storage", "node": "pve3", "storage": "local-lvm", "content": "rootdir,images", "plugintype": "lvmthin"},
            {"id": "lxc/100", "type": "lxc", "vmid": 100, "node": "pve1", "status": status, "name": "web", "tags": "k8s-abc;web", "maxmem": 536870912, "mem": mem},
            {"id": "sdn/pve1/localnetwork", "type": "sdn", "node": "pve1", "sdn": "localnetwork", "status": "ok"}
        ])
    }

    #[test]
    fn guests_are_found_by_vmid_in_any_order_and_a_repeated_vmid_is_listed_once() {
        let g = |vmid: u32, node: &str| Guest {
            vmid,
            node: node.into(),
            ..Default::default()
        };
        let guests: Guests = [
            (300, g(300, "a")),
            (100, g(100, "a")),
            (200, g(200, "a")),
            (100, g(100, "b")),
        ]
        .into_iter()
        .collect();
        assert_eq!(guests.keys().copied().collect::<Vec<_>>(), vec![100, 200, 300]);
        assert!(guests.get(&100).is_some_and(|g| g.node == "a" || g.node == "b"));
        assert!(guests.contains_key(&300) && !guests.contains_key(&250));
        assert_eq!((guests.len(), guests[&200].vmid), (3, 200));
    }

    #[test]
    fn usage_changes_alone_trigger_nothing() {
        let a = Snapshot::from_resources(&sample(1, "running"), Instant::now());
        let b = Snapshot::from_resources(&sample(2, "running"), Instant::now());
        assert!(changed_guests(&a, &b).is_empty());
    }

    #[test]
    fn a_state_change_or_a_vanished_container_triggers_it() {
        let a = Snapshot::from_resources(&sample(1, "running"), Instant::now());
        let b = Snapshot::from_resources(&sample(1, "stopped"), Instant::now());
        assert_eq!(changed_guests(&a, &b), vec![100]);
        let mut c = b.clone();
        c.guests.clear();
        assert_eq!(changed_guests(&b, &c), vec![100]);
    }

    #[test]
    fn placement_prefers_online_nodes_with_the_storage_and_free_memory() {
        let s = Snapshot::from_resources(&sample(1, "running"), Instant::now());
        assert_eq!(
            s.placement_candidates("local-lvm", &HashMap::new()),
            vec!["pve2", "pve1"]
        );
        let reserved = HashMap::from([("pve2".to_string(), 15_000u64)]);
        assert_eq!(s.placement_candidates("local-lvm", &reserved), vec!["pve1", "pve2"]);
        assert!(s.placement_candidates("nfs", &HashMap::new()).is_empty());
    }

    #[test]
    fn tags_are_normalized_and_our_tag_is_found() {
        let s = Snapshot::from_resources(&sample(1, "running"), Instant::now());
        assert!(s.guests[&100].has_tag("k8s-abc"));
    }

    #[test]
    fn an_inventory_read_one_resource_at_a_time_is_the_same_snapshot() {
        let at = Instant::now();
        let streamed = serde_json::from_value::<SnapshotBuilder>(sample_json(1, "running"))
            .unwrap()
            .finish(at);
        let whole = Snapshot::from_resources(&sample(1, "running"), at);
        assert_eq!((whole.guests.len(), whole.nodes.len(), whole.storages.len()), (1, 3, 3));
        assert_eq!(streamed.guests, whole.guests);
        assert_eq!(streamed.nodes, whole.nodes);
        assert_eq!(streamed.storages, whole.storages);
    }
}
