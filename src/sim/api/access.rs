//! `GET /access/permissions`: the effective privileges of the caller (or of a user or token it
//! may inspect), consistent with the simulator's own checks.
//!
//! The simulator grants privileges flat (a user or token has a list, or all of them, and the
//! list applies on every path, as a role on `/` with propagation would), so the answer is one
//! entry per asked path with every granted privilege and `propagate` 1.

use super::{ApiError, ApiResult, Caller, Params, State};
use serde_json::{Map, Value};

/// The privileges of Proxmox VE 9's built-in `Administrator` role: what a caller without a
/// privilege list (`privileges: None`) holds.
pub(crate) const ALL_PRIVILEGES: &[&str] = &[
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Group.Allocate",
    "Mapping.Audit",
    "Mapping.Modify",
    "Mapping.Use",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "Realm.Allocate",
    "Realm.AllocateUser",
    "SDN.Allocate",
    "SDN.Audit",
    "SDN.Use",
    "Sys.AccessNetwork",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Incoming",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.FileRead",
    "VM.GuestAgent.FileSystemMgmt",
    "VM.GuestAgent.FileWrite",
    "VM.GuestAgent.Unrestricted",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Replicate",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
];

/// The privileges held by `userid` (a user or a token), `None` when it is unknown.
fn privileges_of(st: &State, userid: &str) -> Option<Option<Vec<String>>> {
    if userid.contains('!') {
        st.cfg
            .tokens
            .iter()
            .find(|t| t.id == userid)
            .map(|t| t.privileges.clone())
    } else {
        st.cfg
            .users
            .iter()
            .find(|u| u.userid == userid)
            .map(|u| u.privileges.clone())
    }
}

/// `GET /access/permissions`. Each caller may dump its own privileges and those of its own
/// tokens; anyone else's need `Sys.Audit` on `/access` (as the schema's `permissions` says).
pub(super) fn permissions(st: &State, p: &Params, c: &Caller) -> ApiResult {
    let userid = p.str("userid").unwrap_or_else(|| c.user.clone());
    let own = userid == c.user || userid.split_once('!').is_some_and(|(user, _)| user == c.user);
    let audit = c.privs.as_ref().is_none_or(|v| v.iter().any(|x| x == "Sys.Audit"));
    if !own && !audit {
        return Err(ApiError::status(403, "Permission check failed (/access, Sys.Audit)\n"));
    }
    let privs = if userid == c.user {
        c.privs.clone()
    } else {
        privileges_of(st, &userid).ok_or_else(|| ApiError::e500(format!("no such user ('{userid}')")))?
    };
    let granted: Map<String, Value> = match privs {
        None => ALL_PRIVILEGES.iter().map(|x| (x.to_string(), Value::from(1))).collect(),
        Some(list) => list.into_iter().map(|x| (x, Value::from(1))).collect(),
    };
    let path = p.str("path").unwrap_or_else(|| "/".into());
    let mut out = Map::new();
    out.insert(path, Value::Object(granted));
    Ok(Value::Object(out))
}
