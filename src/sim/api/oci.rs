//! OCI ("application container") support of PVE 9.1: `oci-registry-pull` (pve-storage
//! `API2/Storage/Status.pm`), `query-oci-repo-tags` (pve-manager `API2/Nodes.pm`), the image
//! config mapping of create-from-OCI (pve-container `LXC/Create.pm` `restore_oci_archive`) and
//! the admin "the entrypoint exited". Texts are Proxmox's; see ../shared/pve-api/pve9-oci.md.

use super::super::oci_registry::{self, OciImage};
use super::*;

/// Storage types that have a `path` (`$scfg->{path}` defined), i.e. file based storages.
const FILE_BASED: &[&str] = &["dir", "nfs", "cifs", "cephfs", "btrfs", "glusterfs"];

/// `PVE::Storage::get_vztmpl_dir`: `<path>/template/cache`.
fn vztmpl_dir(sid: &str) -> String {
    if sid == "local" {
        "/var/lib/vz/template/cache".into()
    } else {
        format!("/mnt/pve/{sid}/template/cache")
    }
}

/// `PVE::Storage::normalize_content_filename`: drop everything up to the last `/` or `\`,
/// replace `[^a-zA-Z0-9_.-]` by `_`.
pub(super) fn normalize_content_filename(name: &str) -> String {
    let name = name.strip_suffix('\n').unwrap_or(name);
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    last.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The second privilege both OCI endpoints need (`Sys.AccessNetwork` on `/nodes/{node}`).
fn check_access_network(p: &Params, caller: &Caller) -> ApiResult<()> {
    match &caller.privs {
        Some(privs) if !privs.iter().any(|x| x == "Sys.AccessNetwork") => Err(ApiError::status(
            403,
            format!("Permission check failed (/nodes/{}, Sys.AccessNetwork)\n", p.node()),
        )),
        _ => Ok(()),
    }
}

/// `POST /nodes/{node}/storage/{storage}/oci-registry-pull`.
pub(super) fn oci_pull(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    check_access_network(p, caller)?;
    if !st.oci.skopeo {
        return Err(ApiError::e500("Install 'skopeo' to pull OCI images from registries."));
    }
    let node = p.node();
    let sid = p.req("storage");
    let scfg = st.storage_on_node(&sid, &node).map_err(ApiError::e500)?.clone();
    if !FILE_BASED.contains(&scfg.kind.as_str()) {
        return Err(ApiError::e500(format!(
            "can't upload to storage type '{}', not a file based storage!",
            scfg.kind
        )));
    }
    if !scfg.content.iter().any(|c| c == "vztmpl") {
        return Err(ApiError::e500(format!(
            "storage '{sid}' is not configured for content-type 'vztmpl'"
        )));
    }
    let reference = p.req("reference");
    let filename = normalize_content_filename(&p.str("filename").unwrap_or_else(|| reference.clone())) + ".tar";
    let volid = format!("{sid}:vztmpl/{filename}");
    if st.find_volume(&node, &volid).is_some() {
        return Err(ApiError::e500(format!(
            "refusing to override existing file '{filename}'"
        )));
    }
    let tmp = format!("{}/{filename}.tmp.{}", vztmpl_dir(&sid), st.next_pid());
    let upid = sim.spawn_task(
        st,
        &node.clone(),
        "ociregistrypull",
        &filename,
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.work("ociregistrypull").await;
                let found = ctx.with(|st| oci_registry::resolve(&st.oci, &reference));
                let img = match found {
                    Ok(img) => img,
                    Err(line) => {
                        ctx.log(line);
                        return Err(format!(
                            "command 'skopeo copy docker://{reference} oci-archive:{tmp}' failed: exit code 1"
                        ));
                    }
                };
                ctx.log("Getting image source signatures");
                ctx.log(format!(
                    "Copying blob sha256:{}",
                    sha1_hex(&format!("{}:{}", img.repo, img.tag))
                ));
                ctx.log("Copying config sha256:0000000000000000000000000000000000000000000000000000000000000000");
                ctx.log("Writing manifest to image destination");
                ctx.with(|st| -> Result<(), String> {
                    ctx.injected()?;
                    let key = st.vol_key(&sid, &node);
                    let mut v = vztmpl_volume(&volid, img.size);
                    v.oci = Some(format!("{}:{}", img.repo, img.tag));
                    let list = st.volumes.entry(key).or_default();
                    // rename(2) replaces a file that appeared meanwhile
                    list.retain(|x| x.volid != volid);
                    list.push(v);
                    Ok(())
                })
            })
        },
    );
    Ok(json!(upid))
}

fn sha1_hex(s: &str) -> String {
    let d = Sha1::digest(s.as_bytes());
    let h: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("{h}{}", &h[..24])
}

/// `GET /nodes/{node}/query-oci-repo-tags`.
pub(super) fn query_tags(st: &State, p: &Params, caller: &Caller) -> ApiResult {
    check_access_network(p, caller)?;
    if !st.oci.skopeo {
        return Err(ApiError::e500("Install 'skopeo' to list tags from OCI registries."));
    }
    let reference = p.req("reference");
    // skopeo's stderr goes to the daemon's log, not into the API answer
    oci_registry::list_tags(&st.oci, &reference)
        .map(|tags| json!(tags))
        .map_err(|_| {
            ApiError::e500(format!(
                "command 'skopeo list-tags docker://{reference}' failed: exit code 1"
            ))
        })
}

/// The image a create's `ostemplate` is an `oci-archive` of (`archive_is_oci_format`: the
/// file ends in `.tar` and holds `oci-layout`, `index.json`, `blobs/`).
pub(super) fn oci_image_of(archive: &Volume) -> Option<&'static OciImage> {
    if !archive.volid.ends_with(".tar") {
        return None;
    }
    archive.oci.as_deref().and_then(oci_registry::image)
}

/// `restore_oci_archive`'s changes to the new container's config, and the lines it prints.
/// Entrypoint and env replace what the create call passed (the "TODO: what about this being
/// set through the API to override it?" quirk). `User`, `WorkingDir` and `StopSignal` become raw
/// `lxc.init.*`/`lxc.signal.halt` keys, which the simulator does not model.
pub(super) fn apply_oci_config(conf: &mut BTreeMap<String, String>, img: &OciImage) -> Result<Vec<String>, String> {
    // Create.pm's check is /[\x00-\x08\x10-\x1F\x7F]/ (sic: \x10, not \x0a)
    let ctrl = |s: &str| {
        s.chars()
            .any(|c| matches!(c, '\x00'..='\x08' | '\x10'..='\x1f' | '\x7f'))
    };
    for (key, vals) in [("Entrypoint", img.entrypoint), ("Cmd", img.cmd), ("Env", img.env)] {
        if vals.iter().any(|v| ctrl(v)) {
            return Err(format!(
                "OCI config array-value for '{key}' contains forbidden control characters!"
            ));
        }
    }
    let mut out = vec!["Detected OCI archive".to_string()];
    let init: Vec<&str> = img.entrypoint.iter().chain(img.cmd.iter()).copied().collect();
    if !init.is_empty() && init[0] != "/sbin/init" {
        conf.insert("entrypoint".into(), cmd2string(&init));
        conf.insert("cmode".into(), "console".into());
        let nets: Vec<String> = conf.keys().filter(|k| is_net_key(k)).cloned().collect();
        for k in nets {
            let Some(fmt) = fmt_of(&k) else { continue };
            let mut m = propstr::parse_raw(fmt, &conf[&k]).unwrap_or_default();
            if !m.contains_key("host-managed") {
                out.push(format!("Auto-Enabling host-managed network for network device {k}."));
                m.insert("host-managed".into(), "1".into());
                conf.insert(k, propstr::print(fmt, &m));
            }
        }
    }
    if !img.env.is_empty() {
        conf.insert("env".into(), img.env.join("\0"));
    }
    Ok(out)
}

/// `update_pct_config`: a host-managed interface (not `link_down=1`) cannot use SLAAC.
pub(super) fn check_host_managed(key: &str, value: &str) -> ApiResult<()> {
    let Some(fmt) = fmt_of(key).filter(|_| is_net_key(key)) else {
        return Ok(());
    };
    let m = propstr::parse_raw(fmt, value).unwrap_or_default();
    let on = |k: &str| {
        m.get(k)
            .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
    };
    if !on("link_down") && on("host-managed") && m.get("ip6").map(String::as_str) == Some("auto") {
        return Err(ApiError::e500(format!(
            "{key}: SLAAC is not supported for host-managed network configuration."
        )));
    }
    Ok(())
}

fn is_net_key(k: &str) -> bool {
    k.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `PVE::Tools::cmd2string`: arguments joined by spaces, each quoted by
/// `String::ShellQuote::shell_quote` (called per argument, so any `=` forces quoting).
fn cmd2string(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            let safe = |c: char| c.is_alphanumeric() || "_!%+,-./:=@^".contains(c);
            if a.is_empty() {
                "''".to_string()
            } else if !a.contains('=') && a.chars().all(safe) {
                a.to_string()
            } else {
                let q = format!("'{}'", a.replace('\'', "'\\''"));
                let q = q.strip_prefix("''").unwrap_or(&q);
                q.strip_suffix("''").unwrap_or(q).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Admin: CT `vmid`'s init process (its entrypoint) exits. LXC then stops the container; the
/// API shows `status: stopped` and nothing else (no exit code, no task).
pub(crate) fn entrypoint_exit(st: &mut State, vmid: u32, code: i32) -> Result<(), String> {
    match st.cts.get(&vmid) {
        None => Err("no such container".into()),
        Some(ct) if !ct.running => Err(format!("CT {vmid} is not running")),
        Some(_) => {
            super::console::app_exit(st, vmid, code);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_only_the_last_path_part_like_proxmox() {
        assert_eq!(normalize_content_filename("docker.io/library/nginx:1.27"), "nginx_1.27");
        assert_eq!(
            normalize_content_filename("a/nginx:1"),
            normalize_content_filename("b/nginx:1")
        );
        assert_eq!(normalize_content_filename("my image@v1"), "my_image_v1");
    }

    #[test]
    fn commands_are_shell_quoted_like_cmd2string() {
        assert_eq!(
            cmd2string(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
            "/docker-entrypoint.sh nginx -g 'daemon off;'"
        );
        assert_eq!(
            cmd2string(&["echo", "it's", "a=b", "'x"]),
            "echo 'it'\\''s' 'a=b' \\''x'"
        );
    }
}
