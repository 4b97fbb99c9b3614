//! Storage listing, content, volume delete, download-url and the appliance index.

use super::*;

pub(super) fn storage_list(st: &State, p: &Params) -> ApiResult {
    let node = p.node();
    let content: Vec<String> = p.str("content").map(|c| propstr::split_list(&c)).unwrap_or_default();
    let only = p.str("storage");
    let list = st
        .storages
        .values()
        .filter(|s| st.storage_on_node(&s.id, &node).is_ok())
        .filter(|s| only.as_ref().is_none_or(|o| o == &s.id))
        .filter(|s| content.is_empty() || content.iter().any(|c| s.content.contains(c)))
        .map(|s| storage_json(st, s, &node))
        .collect();
    Ok(Value::Array(list))
}

pub(super) fn storage_content(st: &State, p: &Params) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    st.storage_on_node(&sid, &node).map_err(ApiError::e500)?;
    let content = p.str("content");
    let vmid = p.u64("vmid").map(|v| v as u32);
    let key = st.vol_key(&sid, &node);
    let list = st
        .volumes
        .get(&key)
        .map(|l| {
            l.iter()
                .filter(|v| content.as_ref().is_none_or(|c| c == &v.content))
                .filter(|v| vmid.is_none_or(|id| v.vmid == Some(id)))
                .map(|v| {
                    let mut m = json!({"volid": v.volid, "content": v.content, "format": v.format, "size": v.size, "ctime": v.ctime});
                    if let Some(id) = v.vmid {
                        m["vmid"] = json!(id);
                    }
                    if v.content == "backup" {
                        m["subtype"] = json!("lxc");
                    }
                    if let Some(n) = &v.notes {
                        m["notes"] = json!(n.lines().next().unwrap_or_default());
                    }
                    if v.protected {
                        m["protected"] = json!(1);
                    }
                    m
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Value::Array(list))
}

pub(super) fn delete_volume(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let volid = volume_param(p);
    let v = st
        .find_volume(&node, &volid)
        .cloned()
        .ok_or_else(|| ApiError::e500(format!("volume '{volid}' does not exist")))?;
    if v.protected {
        return Err(ApiError::e500(format!("unable to delete protected backup '{volid}'")));
    }
    if v.content == "rootdir" {
        if let Some(owner) = v.vmid.and_then(|id| st.cts.get(&id)) {
            if owner.volumes().iter().any(|(_, x)| x == &volid) {
                return Err(ApiError::e500(format!(
                    "volume '{volid}' is in use by CT {}",
                    owner.vmid
                )));
            }
        }
    }
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "imgdel",
        &volid.replace([':', '/'], "_"),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.with(|st| -> Result<(), String> {
                    ctx.injected()?;
                    st.remove_volume(&node, &volid);
                    Ok(())
                })
            })
        },
    );
    Ok(json!(upid))
}

/// `PUT .../content/{volume}` (pve-storage `updateattributes`): sets the volume's notes and
/// protection; synchronous, returns null.
pub(super) fn update_volume(st: &mut State, p: &Params) -> ApiResult {
    let node = p.node();
    let volid = volume_param(p);
    let sid = volid.split(':').next().unwrap_or_default().to_string();
    let key = st.vol_key(&sid, &node);
    let v = st
        .volumes
        .get_mut(&key)
        .and_then(|l| l.iter_mut().find(|v| v.volid == volid))
        .ok_or_else(|| ApiError::e500(format!("volume '{volid}' does not exist")))?;
    if let Some(notes) = p.str("notes") {
        v.notes = (!notes.is_empty()).then_some(notes);
    }
    if let Some(protected) = p.bool("protected") {
        v.protected = protected;
    }
    Ok(Value::Null)
}

pub(super) fn download_url(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    let content = p.req("content");
    let scfg = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.contains(&content) {
        return Err(ApiError::e500(format!(
            "storage '{sid}' is not configured for content-type '{content}'"
        )));
    }
    let filename = p.req("filename");
    let sub = if content == "vztmpl" {
        "vztmpl"
    } else {
        content.as_str()
    };
    let volid = format!("{sid}:{sub}/{filename}");
    let size = 100_000_000 + (filename.len() as u64) * 1000;
    let url = p.req("url");
    let id = filename.replace([':', '/'], "_");
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "download",
        &id,
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.log(format!("downloading {url} to /var/lib/vz/template/cache/{filename}"));
                ctx.work("download").await;
                ctx.with(|st| -> Result<(), String> {
                    ctx.injected()?;
                    let key = st.vol_key(&sid, &node);
                    let mut v = vztmpl_volume(&volid, size);
                    v.content = content.clone();
                    let list = st.volumes.entry(key).or_default();
                    list.retain(|x| x.volid != volid);
                    list.push(v);
                    Ok(())
                })?;
                ctx.log("download of file finished");
                Ok(())
            })
        },
    );
    Ok(json!(upid))
}

pub(super) fn aplinfo(st: &State) -> Value {
    Value::Array(
        st.cfg
            .appliances
            .iter()
            .map(|a| {
                json!({
                    "template": a.template, "package": a.package, "os": a.os, "version": a.version, "headline": a.headline,
                    "section": "system", "type": "lxc", "architecture": "amd64",
                    "location": format!("http://download.proxmox.com/images/system/{}", a.template),
                    "source": format!("http://download.proxmox.com/images/system/{}", a.template),
                    "infopage": "https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions",
                    "maintainer": "Proxmox Support Team <support@proxmox.com>",
                    "description": a.headline,
                    "sha512sum": hex::encode(sha2::Sha512::digest(a.template.as_bytes())),
                })
            })
            .collect(),
    )
}

pub(super) fn apl_download(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let sid = p.req("storage");
    let template = p.req("template");
    let Some(a) = st.cfg.appliances.iter().find(|a| a.template == template).cloned() else {
        return Err(ApiError::e500(format!("no such template '{template}'")));
    };
    let scfg = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    if !scfg.content.iter().any(|c| c == "vztmpl") {
        return Err(ApiError::e500(format!("storage '{sid}' does not support templates")));
    }
    let volid = format!("{sid}:vztmpl/{template}");
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "download",
        &template.clone(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.log(format!(
                    "starting template download from: {}",
                    format_args!("http://download.proxmox.com/images/system/{template}")
                ));
                ctx.work("download").await;
                ctx.with(|st| -> Result<(), String> {
                    ctx.injected()?;
                    let key = st.vol_key(&sid, &node);
                    let list = st.volumes.entry(key).or_default();
                    if !list.iter().any(|v| v.volid == volid) {
                        list.push(vztmpl_volume(&volid, a.size_bytes));
                    }
                    Ok(())
                })?;
                ctx.log(format!("download of '{template}' to '{volid}' finished"));
                Ok(())
            })
        },
    );
    Ok(json!(upid))
}

pub(super) fn volume_param(p: &Params) -> String {
    let v = p.req("volume");
    if v.contains(':') {
        v
    } else {
        format!("{}:{}", p.req("storage"), v)
    }
}

pub(super) fn storage_status(st: &State, p: &Params) -> ApiResult {
    let (node, sid) = (p.node(), p.req("storage"));
    let s = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    Ok(storage_json(st, &s, &node))
}

pub(super) fn volume_info(st: &State, p: &Params) -> ApiResult {
    let node = p.node();
    let vol = volume_param(p);
    let v = st
        .find_volume(&node, &vol)
        .ok_or_else(|| ApiError::e500(format!("volume '{vol}' does not exist")))?;
    let path = format!("/var/lib/vz/{}", v.volid.split_once(':').map(|x| x.1).unwrap_or(""));
    let mut m = json!({"path": path, "size": v.size, "used": v.size, "format": v.format});
    if let Some(n) = &v.notes {
        m["notes"] = json!(n);
    }
    m["protected"] = json!(v.protected as u8);
    Ok(m)
}
