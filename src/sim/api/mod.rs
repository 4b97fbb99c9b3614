//! The API handlers: one function per served endpoint, with Proxmox's semantics and texts.
//!
//! [`handle`] looks the request up in [`ROUTES`] (method + schema path template); each
//! submodule holds the handlers of one resource.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};

use super::propstr::{self, Upid};
use super::schema::{scalar_text, schema, Schema};
use super::state::{
    finish_task, now_epoch, vztmpl_volume, ApiError, ApiResult, Ct, Sim, Snapshot, State, TaskBody, TaskCtx, Volume,
};

mod access;
mod cluster;
mod config;
pub(crate) mod console;
mod copy;
mod create;
mod destroy;
mod firewall;
mod ha;
pub(crate) mod ha_crm;
mod inventory;
mod oci;
mod power;
mod seed;
mod snapshot;
mod storage;
mod vzdump;

use access::*;
use cluster::*;
use config::*;
use copy::*;
use create::*;
use destroy::*;
use firewall::*;
use ha::*;
use inventory::*;
use oci::*;
use power::*;

pub(crate) use console::Consoles;
pub(crate) use ha::HaState;
pub(crate) use oci::entrypoint_exit;
pub(crate) use seed::{copy_containers, CopiesRequest};
use snapshot::*;
use storage::*;
use vzdump::*;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// `user@realm` or `user@realm!token` (as in UPIDs).
    pub user: String,
    /// Granted privileges; `None` = all.
    pub privs: Option<Vec<String>>,
}

/// Validated request parameters (path + query + body).
pub(crate) struct Params(pub BTreeMap<String, Value>);

impl Params {
    pub(super) fn str(&self, k: &str) -> Option<String> {
        self.0.get(k).and_then(scalar_text)
    }
    pub(super) fn req(&self, k: &str) -> String {
        self.str(k).unwrap_or_default()
    }
    pub(super) fn bool(&self, k: &str) -> Option<bool> {
        self.str(k).map(|v| v == "1")
    }
    pub(super) fn flag(&self, k: &str) -> bool {
        self.bool(k).unwrap_or(false)
    }
    pub(super) fn u64(&self, k: &str) -> Option<u64> {
        self.str(k).and_then(|v| v.parse().ok())
    }
    pub(super) fn vmid(&self) -> u32 {
        self.u64("vmid").unwrap_or(0) as u32
    }
    pub(super) fn node(&self) -> String {
        self.req("node")
    }
}

/// The privilege and ACL path a request needs (simplified from the schema's `permissions`).
pub(crate) fn required_privilege(
    method: &str,
    template: &str,
    p: &BTreeMap<String, Value>,
) -> Option<(String, &'static str)> {
    let g = |k: &str| p.get(k).and_then(scalar_text).unwrap_or_default();
    let vms = || format!("/vms/{}", g("vmid"));
    let priv_ = match (method, template) {
        (_, "/version")
        | (_, "/access/ticket")
        | (_, "/access/permissions")
        | (_, "/cluster/nextid")
        | (_, "/cluster/resources") => return None,
        (_, t) if t.starts_with("/nodes/{node}/tasks") => return None,
        ("GET", "/nodes") | ("GET", "/cluster/status") | ("GET", "/cluster/tasks") => return None,
        // Network.pm index: `user => 'all'`; Config.pm index filters per storage instead
        ("GET", "/nodes/{node}/network") | ("GET", "/storage") => return None,
        ("GET", "/storage/{storage}") => (format!("/storage/{}", g("storage")), "Datastore.Allocate"),
        ("GET", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/firewall") => (vms(), "VM.Audit"),
        (_, t) if t.starts_with("/nodes/{node}/lxc/{vmid}/firewall") => (vms(), "VM.Config.Network"),
        ("GET", "/nodes/{node}/lxc") => return None,
        ("POST", "/nodes/{node}/lxc") => (vms(), "VM.Allocate"),
        ("DELETE", "/nodes/{node}/lxc/{vmid}") => (vms(), "VM.Allocate"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/config") => (vms(), "VM.Config.Options"),
        ("PUT", "/nodes/{node}/lxc/{vmid}/resize") => (vms(), "VM.Config.Disk"),
        ("POST", t) if t.starts_with("/nodes/{node}/lxc/{vmid}/status/") => (vms(), "VM.PowerMgmt"),
        (_, t) if t.starts_with("/nodes/{node}/lxc/{vmid}/snapshot") && method != "GET" => (vms(), "VM.Snapshot"),
        ("POST", "/nodes/{node}/lxc/{vmid}/clone") => (vms(), "VM.Clone"),
        ("POST", "/nodes/{node}/lxc/{vmid}/migrate") => (vms(), "VM.Migrate"),
        ("POST", "/nodes/{node}/lxc/{vmid}/template") => (vms(), "VM.Allocate"),
        ("POST", "/nodes/{node}/lxc/{vmid}/termproxy") | ("GET", "/nodes/{node}/lxc/{vmid}/vncwebsocket") => {
            (vms(), "VM.Console")
        }
        ("GET", t) if t.starts_with("/nodes/{node}/lxc/{vmid}") => (vms(), "VM.Audit"),
        ("POST", "/nodes/{node}/vzdump") => ("/vms".to_string(), "VM.Backup"),
        ("GET", t) if t.starts_with("/nodes/{node}/storage/{storage}") => {
            (format!("/storage/{}", g("storage")), "Datastore.Audit")
        }
        ("DELETE" | "PUT", t) if t.starts_with("/nodes/{node}/storage/{storage}") => {
            (format!("/storage/{}", g("storage")), "Datastore.Allocate")
        }
        ("POST", "/nodes/{node}/storage/{storage}/download-url") => {
            (format!("/storage/{}", g("storage")), "Datastore.AllocateTemplate")
        }
        // and Sys.AccessNetwork on /nodes/{node}, checked by the handler
        ("POST", "/nodes/{node}/storage/{storage}/oci-registry-pull") => {
            (format!("/storage/{}", g("storage")), "Datastore.AllocateTemplate")
        }
        ("GET", "/nodes/{node}/query-oci-repo-tags") => (format!("/nodes/{}", g("node")), "Sys.AccessNetwork"),
        ("POST", "/nodes/{node}/aplinfo") => (format!("/storage/{}", g("storage")), "Datastore.AllocateTemplate"),
        ("GET", t) if t.starts_with("/nodes") => (format!("/nodes/{}", g("node")), "Sys.Audit"),
        ("POST", "/pools") => ("/pool".to_string(), "Pool.Allocate"),
        ("GET", "/pools") => return None,
        // PVE/API2/HA/*.pm: reading needs Sys.Audit on /, every change Sys.Console on /
        ("GET", t) if t.starts_with("/cluster/ha") => ("/".to_string(), "Sys.Audit"),
        (_, t) if t.starts_with("/cluster/ha") => ("/".to_string(), "Sys.Console"),
        _ => return None,
    };
    Some(priv_)
}

/// A handler's reply: the `data` value and, for the list calls that have one, `total`.
type Reply = ApiResult<(Value, Option<u64>)>;

/// A handler: the simulator, its locked state, the request's parameters and the caller.
type Handler = fn(&Arc<Sim>, &mut State, &Params, &Caller) -> Reply;

/// A reply without `total`.
fn data(r: ApiResult) -> Reply {
    r.map(|v| (v, None))
}

/// Every served endpoint: method, schema path template, handler.
const ROUTES: &[(&str, &str, Handler)] = &[
    ("GET", "/version", |_, st, _, _| data(Ok(version(st)))),
    ("GET", "/access/ticket", |_, _, _, _| data(Ok(Value::Null))),
    ("GET", "/access/permissions", |_, st, p, c| data(permissions(st, p, c))),
    ("GET", "/cluster/resources", |_, st, p, _| {
        data(Ok(cluster_resources(st, p.str("type").as_deref())))
    }),
    ("GET", "/cluster/nextid", |_, st, p, _| data(nextid(st, p))),
    ("GET", "/cluster/status", |_, st, _, _| data(Ok(cluster_status(st)))),
    ("GET", "/cluster/tasks", |_, st, p, _| {
        data(Ok(task_list(st, None, p).0))
    }),
    ("GET", "/nodes", |_, st, _, _| data(Ok(nodes(st)))),
    ("GET", "/nodes/{node}/status", |_, st, p, _| {
        data(Ok(node_status(st, &p.node())))
    }),
    ("GET", "/nodes/{node}/version", |_, st, _, _| data(Ok(version(st)))),
    ("GET", "/nodes/{node}/lxc", |_, st, p, _| data(Ok(lxc_list(st, p)))),
    ("POST", "/nodes/{node}/lxc", |s, st, p, c| data(create(s, st, p, c))),
    ("GET", "/nodes/{node}/lxc/{vmid}", |_, st, p, _| data(ct_index(st, p))),
    ("DELETE", "/nodes/{node}/lxc/{vmid}", |s, st, p, c| {
        data(destroy(s, st, p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/config", |_, st, p, _| {
        data(get_config(st, p))
    }),
    ("PUT", "/nodes/{node}/lxc/{vmid}/config", |_, st, p, c| {
        data(put_config(st, p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/pending", |_, st, p, _| {
        data(pending(st, p))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/status", |_, st, p, _| {
        data(status_index(st, p))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/status/current", |_, st, p, _| {
        data(status_current(st, p))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/start", |s, st, p, c| {
        data(power(s, st, "start", p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/stop", |s, st, p, c| {
        data(power(s, st, "stop", p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown", |s, st, p, c| {
        data(power(s, st, "shutdown", p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/reboot", |s, st, p, c| {
        data(power(s, st, "reboot", p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/suspend", |s, st, p, c| {
        data(power(s, st, "suspend", p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/status/resume", |s, st, p, c| {
        data(power(s, st, "resume", p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot", |_, st, p, _| {
        data(snapshot_list(st, p))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/snapshot", |s, st, p, c| {
        data(snapshot_create(s, st, p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}", |_, st, p, _| {
        data(snapshot_index(st, p))
    }),
    (
        "GET",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/config",
        |_, st, p, _| data(snapshot_config(st, p)),
    ),
    (
        "DELETE",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}",
        |s, st, p, c| data(snapshot_delete(s, st, p, c)),
    ),
    (
        "POST",
        "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback",
        |s, st, p, c| data(snapshot_rollback(s, st, p, c)),
    ),
    ("GET", "/nodes/{node}/lxc/{vmid}/firewall/rules", |_, st, p, _| {
        data(fw_rule_list(st, p))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}", |_, st, p, _| {
        data(fw_rule_get(st, p))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/firewall/rules", |_, st, p, _| {
        data(fw_rule_create(st, p))
    }),
    ("PUT", "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}", |_, st, p, _| {
        data(fw_rule_update(st, p))
    }),
    (
        "DELETE",
        "/nodes/{node}/lxc/{vmid}/firewall/rules/{pos}",
        |_, st, p, _| data(fw_rule_delete(st, p)),
    ),
    ("GET", "/nodes/{node}/lxc/{vmid}/firewall/options", |_, st, p, _| {
        data(fw_options_get(st, p))
    }),
    ("PUT", "/nodes/{node}/lxc/{vmid}/firewall/options", |_, st, p, _| {
        data(fw_options_put(st, p))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/migrate", |s, st, p, c| {
        data(migrate(s, st, p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/template", |s, st, p, c| {
        data(make_template(s, st, p, c))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/clone", |s, st, p, c| {
        data(clone(s, st, p, c))
    }),
    ("PUT", "/nodes/{node}/lxc/{vmid}/resize", |s, st, p, c| {
        data(resize(s, st, p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/interfaces", |_, st, p, _| {
        data(interfaces(st, p))
    }),
    ("POST", "/nodes/{node}/lxc/{vmid}/termproxy", |s, st, p, c| {
        data(console::termproxy(s, st, p, c))
    }),
    ("GET", "/nodes/{node}/lxc/{vmid}/vncwebsocket", |_, st, p, c| {
        data(console::vncwebsocket(st, p, c))
    }),
    ("POST", "/nodes/{node}/vzdump", |s, st, p, c| data(vzdump(s, st, p, c))),
    ("GET", "/nodes/{node}/tasks", |_, st, p, _| {
        let (v, total) = task_list(st, Some(&p.node()), p);
        Ok((v, Some(total)))
    }),
    ("GET", "/nodes/{node}/tasks/{upid}", |_, st, p, _| {
        data(task_index(st, p))
    }),
    ("DELETE", "/nodes/{node}/tasks/{upid}", |_, st, p, _| {
        data(task_stop(st, p))
    }),
    ("GET", "/nodes/{node}/tasks/{upid}/status", |_, st, p, _| {
        data(task_status(st, p))
    }),
    ("GET", "/nodes/{node}/tasks/{upid}/log", |_, st, p, _| task_log(st, p)),
    ("GET", "/nodes/{node}/storage", |_, st, p, _| data(storage_list(st, p))),
    ("GET", "/nodes/{node}/network", |_, st, p, _| data(node_network(st, p))),
    ("GET", "/storage", |_, st, p, c| data(storage_config_list(st, p, c))),
    ("GET", "/storage/{storage}", |_, st, p, _| {
        data(storage_config_get(st, p))
    }),
    ("GET", "/nodes/{node}/storage/{storage}/status", |_, st, p, _| {
        data(storage_status(st, p))
    }),
    ("GET", "/nodes/{node}/storage/{storage}/content", |_, st, p, _| {
        data(storage_content(st, p))
    }),
    (
        "GET",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        |_, st, p, _| data(volume_info(st, p)),
    ),
    (
        "DELETE",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        |s, st, p, c| data(delete_volume(s, st, p, c)),
    ),
    (
        "PUT",
        "/nodes/{node}/storage/{storage}/content/{volume}",
        |_, st, p, _| data(update_volume(st, p)),
    ),
    ("POST", "/nodes/{node}/storage/{storage}/download-url", |s, st, p, c| {
        data(download_url(s, st, p, c))
    }),
    (
        "POST",
        "/nodes/{node}/storage/{storage}/oci-registry-pull",
        |s, st, p, c| data(oci_pull(s, st, p, c)),
    ),
    ("GET", "/nodes/{node}/query-oci-repo-tags", |_, st, p, c| {
        data(query_tags(st, p, c))
    }),
    ("GET", "/nodes/{node}/aplinfo", |_, st, _, _| data(Ok(aplinfo(st)))),
    ("POST", "/nodes/{node}/aplinfo", |s, st, p, c| {
        data(apl_download(s, st, p, c))
    }),
    ("GET", "/pools", |_, st, p, _| data(Ok(pool_list(st, p)))),
    ("POST", "/pools", |_, st, p, _| data(pool_create(st, p))),
    ("GET", "/cluster/ha/resources", |_, st, p, _| {
        data(ha_resource_list(st, p))
    }),
    ("POST", "/cluster/ha/resources", |_, st, p, _| {
        data(ha_resource_create(st, p))
    }),
    ("GET", "/cluster/ha/resources/{sid}", |_, st, p, _| {
        data(ha_resource_get(st, p))
    }),
    ("PUT", "/cluster/ha/resources/{sid}", |_, st, p, _| {
        data(ha_resource_update(st, p))
    }),
    ("DELETE", "/cluster/ha/resources/{sid}", |_, st, p, _| {
        data(ha_resource_delete(st, p))
    }),
    ("POST", "/cluster/ha/resources/{sid}/migrate", |_, st, p, _| {
        data(ha_resource_move(st, p))
    }),
    ("POST", "/cluster/ha/resources/{sid}/relocate", |_, st, p, _| {
        data(ha_resource_move(st, p))
    }),
    ("GET", "/cluster/ha/rules", |_, st, p, _| data(ha_rule_list(st, p))),
    ("POST", "/cluster/ha/rules", |_, st, p, _| data(ha_rule_create(st, p))),
    ("GET", "/cluster/ha/rules/{rule}", |_, st, p, _| {
        data(ha_rule_get(st, p))
    }),
    ("PUT", "/cluster/ha/rules/{rule}", |_, st, p, _| {
        data(ha_rule_update(st, p))
    }),
    ("DELETE", "/cluster/ha/rules/{rule}", |_, st, p, _| {
        data(ha_rule_delete(st, p))
    }),
    ("GET", "/cluster/ha/status/current", |_, st, _, _| {
        data(ha_status_current(st))
    }),
    ("POST", "/cluster/ha/status/disarm-ha", |_, st, p, _| {
        data(ha_disarm(st, p))
    }),
    ("POST", "/cluster/ha/status/arm-ha", |_, st, _, _| data(ha_arm(st))),
];

/// Dispatch one validated request.
pub(crate) fn handle(sim: &Arc<Sim>, method: &str, template: &str, p: Params, caller: &Caller) -> Reply {
    let Some((_, _, handler)) = ROUTES.iter().find(|(m, t, _)| *m == method && *t == template) else {
        return Err(ApiError::status(
            501,
            format!("Method '{method} {template}' not implemented"),
        ));
    };
    let mut st = sim.lock();
    handler(sim, &mut st, &p, caller)
}

/// The task-body skeleton most tasks share: set `lock` on CT `vmid`, do the task's work
/// (its simulated duration), clear the lock, fail if fault injection says so, then `commit`.
/// A CT that vanished meanwhile fails the task with "CT vanished".
pub(super) async fn locked_task(
    ctx: &TaskCtx,
    vmid: u32,
    lock: &str,
    commit: impl FnOnce(&mut State) -> Result<(), String>,
) -> Result<(), String> {
    ctx.with(|st| {
        if let Some(ct) = st.cts.get_mut(&vmid) {
            ct.conf.insert("lock".into(), lock.into());
        }
    });
    ctx.work(&ctx.typ.clone()).await;
    ctx.with(|st| -> Result<(), String> {
        let ct = st.cts.get_mut(&vmid).ok_or("CT vanished")?;
        ct.conf.remove("lock");
        ctx.injected()?;
        commit(st)
    })
}
