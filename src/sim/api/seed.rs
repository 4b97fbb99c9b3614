//! `POST /_sim/containers/{vmid}/copies`: many containers at once, each a copy of an existing
//! one (its config with a few keys set anew, disks of the same sizes, the same power state),
//! made without a task. Benchmarks seed thousands of containers this way in a second instead
//! of thousands of `vzcreate` tasks.

use super::*;
use serde::Deserialize;

/// One copy to make.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CopySpec {
    /// Its vmid (must be free).
    pub vmid: u32,
    /// The node it is on (the source's when not given).
    #[serde(default)]
    pub node: Option<String>,
    /// Config keys set on the copy (`hostname`, `tags`, ...), over the source's.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

/// The body of the call.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CopiesRequest {
    /// The copies to make.
    pub copies: Vec<CopySpec>,
}

/// The disks of a config (`rootfs`, `mpN` with a storage volume): key, storage, size in bytes.
fn disks_of(ct: &Ct) -> Vec<(String, String, u64)> {
    ct.volumes()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("unused"))
        .filter_map(|(k, vol)| {
            let (sid, _) = vol.split_once(':')?;
            Some((k.clone(), sid.to_string(), ct.disk_size(&k)))
        })
        .collect()
}

/// Makes every copy of container `src`, stopping at the first that cannot be made (what was
/// made before it stays). Returns how many were made.
pub(crate) fn copy_containers(st: &mut State, src: u32, req: &CopiesRequest) -> Result<usize, String> {
    let source = st.cts.get(&src).ok_or_else(|| format!("CT {src} does not exist"))?;
    if source.lock().is_some() {
        return Err(format!("CT {src} is locked"));
    }
    let (conf, running, src_node) = (source.conf.clone(), source.running, source.node.clone());
    let disks = disks_of(source);
    for (made, c) in req.copies.iter().enumerate() {
        let node = c.node.clone().unwrap_or_else(|| src_node.clone());
        if !st.nodes.contains_key(&node) {
            return Err(format!("copy {made}: no such node '{node}'"));
        }
        st.check_vmid_unused(c.vmid)
            .map_err(|e| format!("copy {made}: {}", e.message.trim_end()))?;
        let mut ct = Ct::new(c.vmid, &node);
        ct.conf = conf.clone();
        for (k, sid, size) in &disks {
            let volid = st.alloc_disk(sid, &node, c.vmid, *size)?;
            let val = ct.conf.get(k).cloned().unwrap_or_default();
            ct.conf.insert(k.clone(), with_volume(k, &val, &volid, *size));
        }
        ct.conf.extend(c.set.clone());
        ct.leases.clear();
        let vmid = c.vmid;
        st.cts.insert(vmid, ct);
        if running {
            do_start(st, vmid);
        }
    }
    Ok(req.copies.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;

    fn state_with_source() -> State {
        let mut st = State::new(SimConfig::fast());
        let mut ct = Ct::new(100, "pve1");
        let volid = st.alloc_disk("local-lvm", "pve1", 100, 2 << 30).unwrap();
        ct.conf.insert("hostname".into(), "src".into());
        ct.conf.insert("cores".into(), "1".into());
        ct.conf.insert("rootfs".into(), format!("{volid},size=2G"));
        st.cts.insert(100, ct);
        do_start(&mut st, 100);
        st
    }

    #[test]
    fn copies_get_their_own_disks_and_keys_and_the_source_power_state() {
        let mut st = state_with_source();
        let req: CopiesRequest = serde_json::from_value(json!({"copies": [
            {"vmid": 200, "node": "pve2", "set": {"hostname": "a", "tags": "k8s-u1"}},
            {"vmid": 201, "set": {"hostname": "b"}}]}))
        .unwrap();
        assert_eq!(copy_containers(&mut st, 100, &req), Ok(2));
        let a = &st.cts[&200];
        assert_eq!((a.node.as_str(), a.running), ("pve2", true));
        assert_eq!(a.conf["hostname"], "a");
        assert_eq!(a.conf["tags"], "k8s-u1");
        assert_eq!(a.conf["cores"], "1");
        assert!(a.conf["rootfs"].contains("vm-200-disk"), "{}", a.conf["rootfs"]);
        assert_eq!(a.disk_size("rootfs"), 2 << 30);
        assert_eq!(st.cts[&201].node, "pve1");
        assert_eq!(st.cts[&100].conf["hostname"], "src");
    }

    #[test]
    fn a_taken_vmid_or_unknown_node_stops_the_copies() {
        let mut st = state_with_source();
        let req: CopiesRequest = serde_json::from_value(json!({"copies": [{"vmid": 300}, {"vmid": 100}]})).unwrap();
        let e = copy_containers(&mut st, 100, &req).unwrap_err();
        assert!(e.starts_with("copy 1:"), "{e}");
        assert!(st.cts.contains_key(&300));
        let req: CopiesRequest = serde_json::from_value(json!({"copies": [{"vmid": 301, "node": "nope"}]})).unwrap();
        assert!(copy_containers(&mut st, 100, &req).is_err());
        assert!(copy_containers(&mut st, 999, &req).is_err());
    }
}
