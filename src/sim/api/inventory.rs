//! The cluster's storage configuration (`GET /storage`, `GET /storage/{storage}`, pve-storage
//! PVE/API2/Storage/Config.pm) and a node's network configuration (`GET /nodes/{node}/network`,
//! pve-manager PVE/API2/Network.pm): what an inventory client (Ansible's
//! `proxmox_storage_info`, the operator's cluster observer) reads.

use super::*;
use crate::sim::config::StorageConfig;

/// Privileges that make a storage visible in `GET /storage` (Config.pm `index`: "Only list
/// entries where you have 'Datastore.Audit' or 'Datastore.AllocateSpace' permissions").
const STORAGE_LIST_PRIVS: [&str; 2] = ["Datastore.Audit", "Datastore.AllocateSpace"];

/// The digest of `storage.cfg` (Config.pm puts the file's SHA-1 in every entry).
fn storage_digest(st: &State) -> String {
    let mut h = Sha1::new();
    for s in st.storages.values() {
        h.update(serde_json::to_vec(s).unwrap_or_default());
    }
    format!("{:x}", h.finalize())
}

/// One storage's section of `storage.cfg` as `$api_storage_config` returns it: the type's own
/// keys, `content` and `nodes` encoded as comma lists, `shared` only where the section sets it
/// (a network storage is shared by its plugin, not by a config key).
fn storage_section(s: &StorageConfig, digest: &str) -> Value {
    let mut content = s.content.clone();
    content.sort();
    let mut m = json!({"storage": s.id, "type": s.kind, "content": content.join(","), "digest": digest});
    let o = m.as_object_mut().expect("object");
    match s.kind.as_str() {
        "dir" => {
            let path = if s.id == "local" {
                "/var/lib/vz".to_string()
            } else {
                format!("/mnt/{}", s.id)
            };
            o.insert("path".into(), json!(path));
            if s.shared {
                o.insert("shared".into(), json!(1));
            }
        }
        "lvmthin" => {
            o.insert("vgname".into(), json!("pve"));
            o.insert("thinpool".into(), json!("data"));
        }
        "lvm" => {
            o.insert("vgname".into(), json!(s.id));
            if s.shared {
                o.insert("shared".into(), json!(1));
            }
        }
        "zfspool" => {
            o.insert("pool".into(), json!(format!("rpool/{}", s.id)));
            o.insert("sparse".into(), json!(1));
        }
        "nfs" | "cifs" | "cephfs" => {
            o.insert("path".into(), json!(format!("/mnt/pve/{}", s.id)));
            o.insert("server".into(), json!("192.0.2.20"));
            if s.kind == "nfs" {
                o.insert("export".into(), json!(format!("/export/{}", s.id)));
            } else if s.kind == "cifs" {
                o.insert("share".into(), json!(s.id));
            }
        }
        "pbs" => {
            o.insert("server".into(), json!("192.0.2.21"));
            o.insert("datastore".into(), json!(s.id));
            o.insert("username".into(), json!("backup@pbs"));
        }
        "rbd" => {
            o.insert("pool".into(), json!(s.id));
            o.insert("krbd".into(), json!(0));
        }
        _ => {}
    }
    if !s.nodes.is_empty() {
        o.insert("nodes".into(), json!(s.nodes.join(",")));
    }
    m
}

/// `GET /storage[?type=...]`: every storage section the caller may see.
pub(super) fn storage_config_list(st: &State, p: &Params, c: &Caller) -> ApiResult {
    let visible = c
        .privs
        .as_ref()
        .is_none_or(|v| v.iter().any(|x| STORAGE_LIST_PRIVS.contains(&x.as_str())));
    if !visible {
        return Ok(json!([]));
    }
    let ty = p.str("type");
    let digest = storage_digest(st);
    let list = st
        .storages
        .values()
        .filter(|s| ty.as_ref().is_none_or(|t| t == &s.kind))
        .map(|s| storage_section(s, &digest))
        .collect();
    Ok(Value::Array(list))
}

/// `GET /storage/{storage}`: one section; an unknown id is Proxmox's 500
/// "storage '<id>' does not exist" (PVE::Storage::storage_config).
pub(super) fn storage_config_get(st: &State, p: &Params) -> ApiResult {
    let sid = p.req("storage");
    let s = st
        .storages
        .get(&sid)
        .ok_or_else(|| ApiError::e500(format!("storage '{sid}' does not exist")))?;
    Ok(storage_section(s, &storage_digest(st)))
}

/// Whether an interface of `kind` passes the `type` filter of `GET /nodes/{node}/network`
/// (Network.pm: `any_bridge` and `any_local_bridge` = Linux and OVS bridges).
fn type_matches(filter: Option<&str>, kind: &str) -> bool {
    match filter {
        None | Some("include_sdn") => true,
        Some("any_bridge") | Some("any_local_bridge") => kind == "bridge" || kind == "OVSBridge",
        Some(f) => f == kind,
    }
}

/// `GET /nodes/{node}/network[?type=...]`: the node's interfaces as ifupdown2 reads
/// `/etc/network/interfaces` (the loopback is not listed): one physical port `eno1` and the
/// configured bridges, the first one bridging `eno1`.
pub(super) fn node_network(st: &State, p: &Params) -> ApiResult {
    let filter = p.str("type");
    let mut out = vec![json!({
        "iface": "eno1", "type": "eth", "method": "manual", "method6": "manual",
        "families": ["inet"], "active": 1, "exists": 1, "priority": 3,
    })];
    for (i, b) in st.cfg.bridges.iter().enumerate() {
        out.push(json!({
            "iface": b.name, "type": "bridge", "method": "manual", "method6": "manual",
            "families": ["inet"], "active": 1, "autostart": 1,
            "bridge_ports": if i == 0 { "eno1" } else { "" }, "bridge_stp": "off", "bridge_fd": "0",
            "priority": 4 + i,
        }));
    }
    out.retain(|i| type_matches(filter.as_deref(), i["type"].as_str().unwrap_or_default()));
    Ok(Value::Array(out))
}
