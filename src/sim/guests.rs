//! What the simulator knows beside containers: QEMU guests (they share the vmid space and
//! show up in `/cluster/resources`) and container disks no config references (detached
//! volumes, another cluster's guest on shared storage).

use serde_json::{json, Value};

use super::state::State;

/// A QEMU VM as far as an LXC client can see it: it holds a vmid and is listed in the
/// inventory. Nothing else about it is simulated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QemuGuest {
    pub vmid: u32,
    pub node: String,
    pub name: String,
    pub running: bool,
}

impl QemuGuest {
    /// The `/cluster/resources` entry (`type: qemu`).
    pub(crate) fn resource_json(&self) -> Value {
        json!({
            "id": format!("qemu/{}", self.vmid), "type": "qemu", "vmid": self.vmid, "name": self.name,
            "node": self.node, "status": if self.running { "running" } else { "stopped" }, "template": 0,
            "cpu": 0.0, "maxcpu": 1, "mem": 0, "maxmem": 1u64 << 30, "disk": 0, "maxdisk": 8u64 << 30,
            "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0, "uptime": 0,
        })
    }
}

impl State {
    /// Add a QEMU VM at `vmid` on `node` (admin helper). Fails when the vmid is taken.
    pub(crate) fn add_qemu(&mut self, vmid: u32, node: &str, name: &str) -> Result<(), String> {
        if !self.nodes.contains_key(node) {
            return Err(format!("no such node '{node}'"));
        }
        if self.cts.contains_key(&vmid) || self.qemus.contains_key(&vmid) {
            return Err(format!("vmid {vmid} is already in use"));
        }
        let guest = QemuGuest {
            vmid,
            node: node.to_string(),
            name: name.to_string(),
            running: false,
        };
        self.qemus.insert(vmid, guest);
        Ok(())
    }

    /// Place a container disk `vm-<vmid>-disk-N` on a storage without any config
    /// referencing it (admin helper), as a detached disk or another cluster's guest would.
    pub(crate) fn plant_disk(&mut self, storage: &str, node: &str, vmid: u32, size: u64) -> Result<String, String> {
        self.alloc_disk(storage, node, vmid, size)
    }

    /// `destroy-unreferenced-disks=1` of a destroy: every container disk owned by `vmid`
    /// (by its name) on every storage enabled on `node`, referenced by the config or not.
    /// Returns the removed volids.
    pub(crate) fn destroy_unreferenced_disks(&mut self, node: &str, vmid: u32) -> Vec<String> {
        let sids: Vec<String> = self
            .storages
            .keys()
            .filter(|s| self.storage_on_node(s, node).is_ok())
            .cloned()
            .collect();
        let mut removed = Vec::new();
        for sid in sids {
            let key = self.vol_key(&sid, node);
            if let Some(list) = self.volumes.get_mut(&key) {
                list.retain(|v| {
                    let owned = v.content == "rootdir" && v.vmid == Some(vmid);
                    if owned {
                        removed.push(v.volid.clone());
                    }
                    !owned
                });
            }
        }
        removed
    }
}
