//! `/cluster/ha/...`: HA resources, HA rules (PVE 9 replaced groups with them), the HA status,
//! arm/disarm, and the HA side of power, migrate and destroy requests.
//!
//! Follows pve-ha-manager 5.x `PVE/API2/HA/{Resources,Rules,Status}.pm` and `PVE/HA/Config.pm`
//! (texts quoted from there); the CRM that carries requests out is in [`super::ha_crm`].

use super::*;

/// One HA resource's configuration (`/etc/pve/ha/resources.cfg`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HaResource {
    /// `started`, `stopped`, `enabled` (= started), `disabled` or `ignored`.
    pub state: String,
    pub max_restart: u64,
    pub max_relocate: u64,
    pub failback: bool,
    pub comment: Option<String>,
}

/// One HA rule (`/etc/pve/ha/rules.cfg`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HaRule {
    /// `node-affinity` or `resource-affinity`.
    pub typ: String,
    pub resources: Vec<String>,
    /// Nodes with their priority (node-affinity).
    pub nodes: Vec<(String, u64)>,
    pub strict: bool,
    /// `positive` or `negative` (resource-affinity).
    pub affinity: Option<String>,
    pub disable: bool,
    pub comment: Option<String>,
    /// Creation order (`order` in the listing).
    pub order: u64,
}

/// The HA stack's state: configuration, queued CRM commands, what the CRM is doing.
#[derive(Debug, Default)]
pub(crate) struct HaState {
    pub resources: BTreeMap<String, HaResource>,
    pub rules: BTreeMap<String, HaRule>,
    /// Bumped on every configuration change (the digest of both files).
    pub generation: u64,
    /// Queued `migrate`/`relocate` requests: sid → target node.
    pub commands: BTreeMap<String, String>,
    /// `disarm-ha` resource mode while disarmed.
    pub disarmed: Option<String>,
    /// vmids with an HA-started task in flight, and what it does (`migrate`, `start`, `stop`).
    pub busy: BTreeMap<u32, String>,
    /// Resources the CRM has processed at least once (others show as `queued`).
    pub seen: BTreeSet<String>,
}

impl HaState {
    /// The resource of CT `vmid`, if HA manages it.
    pub(crate) fn of_ct(&self, vmid: u32) -> Option<&HaResource> {
        self.resources.get(&format!("ct:{vmid}"))
    }

    fn digest(&self) -> String {
        let h = Sha1::digest(format!("ha-{}", self.generation).as_bytes());
        h.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn changed(&mut self) {
        self.generation += 1;
    }

    /// Removes `sid` (and, with `purge`, from every rule; a rule left without resources goes).
    pub(crate) fn remove_resource(&mut self, sid: &str, purge: bool) {
        self.resources.remove(sid);
        self.commands.remove(sid);
        self.seen.remove(sid);
        if purge {
            for r in self.rules.values_mut() {
                r.resources.retain(|s| s != sid);
            }
            self.rules.retain(|_, r| !r.resources.is_empty());
        }
        self.changed();
    }
}

/// `parse_sid` of PVE/HA/Config.pm: `ct:100`, or a bare vmid looked up in the cluster.
fn parse_sid(st: &State, sid: &str) -> ApiResult<(String, String, String)> {
    if sid.chars().all(|c| c.is_ascii_digit()) && !sid.is_empty() {
        let vmid: u32 = sid.parse().unwrap_or(0);
        let typ = if st.cts.contains_key(&vmid) {
            "ct"
        } else if st.qemus.contains_key(&vmid) {
            "vm"
        } else {
            return Err(ApiError::e500(format!(
                "unable to detect SID from VMID - VM/CT {sid} does not exist"
            )));
        };
        return Ok((format!("{typ}:{sid}"), typ.into(), sid.into()));
    }
    match sid.split_once(':') {
        Some((t, n)) if !t.is_empty() && !n.is_empty() && !n.contains(char::is_whitespace) => {
            Ok((sid.to_string(), t.to_string(), n.to_string()))
        }
        _ => Err(ApiError::e500(format!("unable to parse service id '{sid}'"))),
    }
}

fn resource_json(sid: &str, r: &HaResource, digest: &str) -> Value {
    let (typ, _) = sid.split_once(':').unwrap_or(("ct", ""));
    let mut v = json!({
        "sid": sid, "type": typ, "state": r.state, "max_restart": r.max_restart,
        "max_relocate": r.max_relocate, "failback": r.failback as u8, "digest": digest,
    });
    if let Some(c) = &r.comment {
        v["comment"] = json!(c);
    }
    v
}

pub(super) fn ha_resource_list(st: &State, p: &Params) -> ApiResult {
    let d = st.ha.digest();
    let want = p.str("type");
    Ok(Value::Array(
        st.ha
            .resources
            .iter()
            .filter(|(sid, _)| want.as_deref().is_none_or(|t| sid.starts_with(&format!("{t}:"))))
            .map(|(sid, r)| resource_json(sid, r, &d))
            .collect(),
    ))
}

pub(super) fn ha_resource_get(st: &State, p: &Params) -> ApiResult {
    let (sid, _, _) = parse_sid(st, &p.req("sid"))?;
    let r = st
        .ha
        .resources
        .get(&sid)
        .ok_or_else(|| ApiError::e500(format!("no such resource '{sid}'")))?;
    Ok(resource_json(&sid, r, &st.ha.digest()))
}

/// `check_service_state`: a resource in error state takes only `disabled`.
fn check_state_value(state: &str) -> ApiResult<()> {
    match state {
        "started" | "stopped" | "enabled" | "disabled" | "ignored" => Ok(()),
        _ => Err(ApiError::param("state", format!("value '{state}' does not have a value in the enumeration 'started, stopped, enabled, disabled, ignored'"))),
    }
}

pub(super) fn ha_resource_create(st: &mut State, p: &Params) -> ApiResult {
    let (sid, typ, name) = parse_sid(st, &p.req("sid"))?;
    if let Some(t) = p.str("type") {
        if t != typ {
            return Err(ApiError::e500("types does not match"));
        }
    }
    if p.str("group").is_some() {
        return Err(ApiError::e500(
            "invalid parameter 'group': ha groups have been migrated to rules",
        ));
    }
    let vmid: u32 = name
        .parse()
        .map_err(|_| ApiError::e500(format!("invalid VMID '{name}'")))?;
    let exists = match typ.as_str() {
        "ct" => st.cts.contains_key(&vmid),
        "vm" => st.qemus.contains_key(&vmid),
        _ => return Err(ApiError::e500(format!("unknown resource type '{typ}'"))),
    };
    if !exists {
        return Err(ApiError::e500(format!("resource '{sid}' does not exist in cluster")));
    }
    if st.ha.resources.contains_key(&sid) {
        return Err(ApiError::e500(format!("resource ID '{sid}' already defined")));
    }
    let state = p.str("state").unwrap_or_else(|| "started".into());
    check_state_value(&state)?;
    st.ha.resources.insert(
        sid,
        HaResource {
            state,
            max_restart: p.u64("max_restart").unwrap_or(1),
            max_relocate: p.u64("max_relocate").unwrap_or(1),
            failback: p.bool("failback").unwrap_or(true),
            comment: p.str("comment"),
        },
    );
    st.ha.changed();
    Ok(Value::Null)
}

/// `assert_if_modified` of PVE::Tools.
fn check_digest(st: &State, p: &Params) -> ApiResult<()> {
    match p.str("digest") {
        Some(d) if d != st.ha.digest() => Err(ApiError::e500(
            "detected modified configuration - file changed by other user? Try again.",
        )),
        _ => Ok(()),
    }
}

pub(super) fn ha_resource_update(st: &mut State, p: &Params) -> ApiResult {
    let (sid, _, _) = parse_sid(st, &p.req("sid"))?;
    if p.str("group").is_some() {
        return Err(ApiError::e500(
            "invalid parameter 'group': ha groups have been migrated to rules",
        ));
    }
    check_digest(st, p)?;
    let Some(r) = st.ha.resources.get_mut(&sid) else {
        return Err(ApiError::e500(format!("no such resource '{sid}'")));
    };
    for k in p.str("delete").map(|d| propstr::split_list(&d)).unwrap_or_default() {
        match k.as_str() {
            "comment" => r.comment = None,
            "max_restart" => r.max_restart = 1,
            "max_relocate" => r.max_relocate = 1,
            "failback" => r.failback = true,
            "state" => r.state = "started".into(),
            other => return Err(ApiError::param("delete", format!("invalid option '{other}'"))),
        }
    }
    if let Some(s) = p.str("state") {
        r.state = s;
    }
    if let Some(v) = p.u64("max_restart") {
        r.max_restart = v;
    }
    if let Some(v) = p.u64("max_relocate") {
        r.max_relocate = v;
    }
    if let Some(v) = p.bool("failback") {
        r.failback = v;
    }
    if let Some(c) = p.str("comment") {
        r.comment = Some(c);
    }
    st.ha.changed();
    Ok(Value::Null)
}

pub(super) fn ha_resource_delete(st: &mut State, p: &Params) -> ApiResult {
    let (sid, _, _) = parse_sid(st, &p.req("sid"))?;
    if !st.ha.resources.contains_key(&sid) {
        return Err(ApiError::e500(format!(
            "cannot delete service '{sid}', not HA managed!"
        )));
    }
    st.ha.remove_resource(&sid, p.bool("purge").unwrap_or(true));
    Ok(Value::Null)
}

/// `migrate` and `relocate` (a container always relocates: LXC has no live migration).
pub(super) fn ha_resource_move(st: &mut State, p: &Params) -> ApiResult {
    let (sid, _, _) = parse_sid(st, &p.req("sid"))?;
    let node = p.node();
    if st.ha.resources.get(&sid).is_none_or(|r| r.state == "ignored") {
        return Err(ApiError::e500(format!("resource '{sid}' is not HA managed")));
    }
    if !st.nodes.contains_key(&node) {
        return Err(ApiError::e500(format!("no such cluster node '{node}'")));
    }
    st.ha.commands.insert(sid.clone(), node.clone());
    Ok(json!({"sid": sid, "requested-node": node}))
}

fn rule_json(id: &str, r: &HaRule, digest: &str) -> Value {
    let mut v =
        json!({"rule": id, "type": r.typ, "resources": r.resources.join(","), "order": r.order, "digest": digest});
    if r.typ == "node-affinity" {
        let nodes: Vec<String> = r.nodes.iter().map(|(n, p)| format!("{n}:{p}")).collect();
        v["nodes"] = json!(nodes.join(","));
        v["strict"] = json!(r.strict as u8);
    }
    if let Some(a) = &r.affinity {
        v["affinity"] = json!(a);
    }
    if r.disable {
        v["disable"] = json!(1);
    }
    if let Some(c) = &r.comment {
        v["comment"] = json!(c);
    }
    v
}

pub(super) fn ha_rule_list(st: &State, p: &Params) -> ApiResult {
    let d = st.ha.digest();
    let (typ, res) = (p.str("type"), p.str("resource"));
    let mut rules: Vec<(&String, &HaRule)> = st
        .ha
        .rules
        .iter()
        .filter(|(_, r)| typ.as_deref().is_none_or(|t| r.typ == t))
        .filter(|(_, r)| res.as_deref().is_none_or(|s| r.resources.iter().any(|x| x == s)))
        .collect();
    rules.sort_by_key(|(_, r)| r.order);
    Ok(Value::Array(
        rules.into_iter().map(|(id, r)| rule_json(id, r, &d)).collect(),
    ))
}

pub(super) fn ha_rule_get(st: &State, p: &Params) -> ApiResult {
    let id = p.req("rule");
    let r = st
        .ha
        .rules
        .get(&id)
        .ok_or_else(|| ApiError::e500(format!("no such ha rule '{id}'")))?;
    Ok(rule_json(&id, r, &st.ha.digest()))
}

/// The checks of `check_resources`/`check_nodes` in PVE/API2/HA/Rules.pm.
fn rule_resources(st: &State, list: &str) -> ApiResult<Vec<String>> {
    let res: BTreeSet<String> = propstr::split_list(list).into_iter().collect();
    if res.is_empty() {
        return Err(ApiError::e500("no resources were specified"));
    }
    let unmanaged: Vec<String> = res
        .iter()
        .filter(|s| !st.ha.resources.contains_key(*s))
        .cloned()
        .collect();
    if !unmanaged.is_empty() {
        return Err(ApiError::e500(format!(
            "cannot use unmanaged resource(s) {}.",
            unmanaged.join(", ")
        )));
    }
    Ok(res.into_iter().collect())
}

fn rule_nodes(st: &State, list: &str) -> ApiResult<Vec<(String, u64)>> {
    let mut nodes = Vec::new();
    for n in propstr::split_list(list) {
        let (name, pri) = match n.split_once(':') {
            Some((a, b)) => (a.to_string(), b.parse().unwrap_or(0)),
            None => (n.clone(), 0),
        };
        if !nodes.iter().any(|(x, _): &(String, u64)| *x == name) {
            nodes.push((name, pri));
        }
    }
    if nodes.is_empty() {
        return Err(ApiError::e500("no nodes were specified"));
    }
    let missing: Vec<String> = nodes
        .iter()
        .filter(|(n, _)| !st.nodes.contains_key(n))
        .map(|(n, _)| n.clone())
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::e500(format!(
            "cannot use non-existent node(s) {}.",
            missing.join(", ")
        )));
    }
    Ok(nodes)
}

pub(super) fn ha_rule_create(st: &mut State, p: &Params) -> ApiResult {
    let id = p.req("rule");
    let typ = p.req("type");
    let resources = rule_resources(st, &p.req("resources"))?;
    let nodes = match typ.as_str() {
        "node-affinity" => rule_nodes(st, &p.str("nodes").unwrap_or_default())?,
        _ => Vec::new(),
    };
    if st.ha.rules.contains_key(&id) {
        return Err(ApiError::e500(format!("HA rule '{id}' already defined")));
    }
    let order = st.ha.rules.values().map(|r| r.order).max().unwrap_or(0) + 1;
    st.ha.rules.insert(
        id,
        HaRule {
            typ,
            resources,
            nodes,
            strict: p.flag("strict"),
            affinity: p.str("affinity"),
            disable: p.flag("disable"),
            comment: p.str("comment"),
            order,
        },
    );
    st.ha.changed();
    Ok(Value::Null)
}

pub(super) fn ha_rule_update(st: &mut State, p: &Params) -> ApiResult {
    let id = p.req("rule");
    check_digest(st, p)?;
    let resources = p.str("resources").map(|r| rule_resources(st, &r)).transpose()?;
    let nodes = p.str("nodes").map(|n| rule_nodes(st, &n)).transpose()?;
    let Some(r) = st.ha.rules.get_mut(&id) else {
        return Err(ApiError::e500(format!("HA rule '{id}' does not exist")));
    };
    if let Some(t) = p.str("type") {
        if t != r.typ {
            return Err(ApiError::e500("types does not match"));
        }
    }
    for k in p.str("delete").map(|d| propstr::split_list(&d)).unwrap_or_default() {
        match k.as_str() {
            "comment" => r.comment = None,
            "strict" => r.strict = false,
            "disable" => r.disable = false,
            other => return Err(ApiError::param("delete", format!("invalid option '{other}'"))),
        }
    }
    if let Some(v) = resources {
        r.resources = v;
    }
    if let Some(v) = nodes {
        r.nodes = v;
    }
    if let Some(v) = p.bool("strict") {
        r.strict = v;
    }
    if let Some(v) = p.bool("disable") {
        r.disable = v;
    }
    if let Some(v) = p.str("affinity") {
        r.affinity = Some(v);
    }
    if let Some(v) = p.str("comment") {
        r.comment = Some(v);
    }
    st.ha.changed();
    Ok(Value::Null)
}

pub(super) fn ha_rule_delete(st: &mut State, p: &Params) -> ApiResult {
    let id = p.req("rule");
    if st.ha.rules.remove(&id).is_none() {
        return Err(ApiError::e500(format!("no such ha rule '{id}'")));
    }
    st.ha.changed();
    Ok(Value::Null)
}

pub(super) fn ha_status_current(st: &State) -> ApiResult {
    let master = st.nodes.iter().find(|(_, n)| n.online).map(|(n, _)| n.clone());
    let me = st.nodes.keys().next().cloned().unwrap_or_default();
    let mut out = vec![json!({"id": "quorum", "type": "quorum", "node": me, "status": "OK", "quorate": 1})];
    if let Some(m) = &master {
        out.push(
            json!({"id": "master", "type": "master", "node": m, "status": format!("{m} (active, {})", now_epoch())}),
        );
    }
    let (armed, status) = match &st.ha.disarmed {
        Some(mode) => (
            "disarmed".to_string(),
            format!("disarmed, resource mode: {mode} (watchdog released)"),
        ),
        None => ("armed".to_string(), "armed (watchdog active)".to_string()),
    };
    let mut f = json!({"id": "fencing", "type": "fencing", "node": master.clone().unwrap_or(me), "status": status, "armed-state": armed});
    if let Some(mode) = &st.ha.disarmed {
        f["resource-mode"] = json!(mode);
    }
    out.push(f);
    for (n, ns) in &st.nodes {
        let s = if ns.online { "active" } else { "old timestamp - dead?" };
        out.push(json!({"id": format!("lrm:{n}"), "type": "lrm", "node": n, "status": format!("{n} ({s})")}));
    }
    for (sid, r) in &st.ha.resources {
        let node = ct_of(sid).and_then(|v| st.cts.get(&v)).map(|c| c.node.clone());
        let state = super::ha_crm::verbose_state(st, sid);
        let mut v = json!({
            "id": format!("service:{sid}"), "type": "service", "sid": sid, "state": state,
            "request_state": r.state, "max_restart": r.max_restart, "max_relocate": r.max_relocate,
            "failback": r.failback as u8,
            "status": format!("{sid} ({}, {state})", node.clone().unwrap_or_else(|| "---".into())),
        });
        if let Some(n) = node {
            v["node"] = json!(n);
            v["crm_state"] = json!(state);
        }
        if let Some(c) = &r.comment {
            v["comment"] = json!(c);
        }
        out.push(v);
    }
    Ok(Value::Array(out))
}

pub(super) fn ha_disarm(st: &mut State, p: &Params) -> ApiResult {
    st.ha.disarmed = Some(p.req("resource-mode"));
    Ok(Value::Null)
}

pub(super) fn ha_arm(st: &mut State) -> ApiResult {
    st.ha.disarmed = None;
    Ok(Value::Null)
}

/// The vmid of a `ct:N` resource id.
pub(crate) fn ct_of(sid: &str) -> Option<u32> {
    sid.strip_prefix("ct:").and_then(|v| v.parse().ok())
}

/// Whether requests on CT `vmid` go through HA (`vm_is_ha_managed`: configured and not ignored
/// while disarmed with `ignore`).
pub(super) fn ha_managed(st: &State, vmid: u32) -> bool {
    st.ha.of_ct(vmid).is_some() && st.ha.disarmed.as_deref() != Some("ignore")
}

/// The HA form of a power request on an HA-managed CT: a `hastart`/`hastop` task that asks the
/// HA stack for the state (`ha-manager set --state started`, `crm-command stop`).
pub(super) fn ha_power(
    sim: &Arc<Sim>,
    st: &mut State,
    node: &str,
    vmid: u32,
    action: &str,
    caller: &Caller,
) -> ApiResult {
    let (typ, state, line) = match action {
        "start" => ("hastart", "started", format!("Requesting HA start for CT {vmid}")),
        _ => ("hastop", "stopped", format!("Requesting HA stop for CT {vmid}")),
    };
    let upid = sim.spawn_task(st, node, typ, &vmid.to_string(), &caller.user, move |ctx| -> TaskBody {
        Box::pin(async move {
            ctx.log(line);
            ctx.with(|st| {
                if let Some(r) = st.ha.resources.get_mut(&format!("ct:{vmid}")) {
                    r.state = state.into();
                    st.ha.changed();
                }
            });
            Ok(())
        })
    });
    Ok(json!(upid))
}

/// The HA form of `migrate` on an HA-managed CT: a `hamigrate` task that queues the request.
pub(super) fn ha_migrate(
    sim: &Arc<Sim>,
    st: &mut State,
    node: &str,
    vmid: u32,
    target: &str,
    caller: &Caller,
) -> ApiResult {
    let target = target.to_string();
    let upid = sim.spawn_task(
        st,
        node,
        "hamigrate",
        &vmid.to_string(),
        &caller.user,
        move |ctx| -> TaskBody {
            Box::pin(async move {
                ctx.log(format!("Requesting HA migration for CT {vmid} to node {target}"));
                ctx.with(|st| st.ha.commands.insert(format!("ct:{vmid}"), target));
                Ok(())
            })
        },
    );
    Ok(json!(upid))
}
