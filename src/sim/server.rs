//! HTTPS front end: TLS, routing, Proxmox envelope and errors, auth, faults, statistics,
//! and the `/_sim/` admin API.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use rand::Rng;
use regex::Regex;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::api::{self, Caller, Params};
use super::config::{FaultConfig, FaultKind};
use super::schema::{schema, validate};
use super::state::{now_epoch, ApiError, Sim, State};

/// Secrets and identity used to sign tickets.
pub(crate) struct Front {
    pub sim: Arc<Sim>,
    pub ticket_key: [u8; 32],
}

/// Outcome of handling one request.
pub(crate) enum Outcome {
    Reply(Response<Full<Bytes>>),
    /// Drop the connection without an answer.
    Reset,
}

#[derive(Debug)]
pub(crate) struct ResetError;
impl std::fmt::Display for ResetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("simulated connection reset")
    }
}
impl std::error::Error for ResetError {}

fn base_response(status: u16) -> hyper::http::response::Builder {
    let expires = httpdate_now();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("Server", "pve-api-daemon/3.0")
        .header("Cache-Control", "max-age=0")
        .header("Pragma", "no-cache")
        .header("Expires", expires)
}

fn httpdate_now() -> String {
    jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn set_reason(resp: &mut Response<Full<Bytes>>, msg: &str) {
    let first = msg.lines().next().unwrap_or("").trim_end();
    if first.is_empty() {
        return;
    }
    if let Ok(r) = hyper::ext::ReasonPhrase::try_from(first.to_string()) {
        resp.extensions_mut().insert(r);
    }
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut b = base_response(status).header("Content-Type", "application/json;charset=UTF-8");
    if status >= 400 {
        b = b.header("Connection", "close");
    }
    b.body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())))
        .expect("valid response")
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let mut body = json!({"data": null, "message": e.message});
    if let Some(errs) = &e.errors {
        body["errors"] = json!(errs);
    }
    let mut r = json_response(e.status, &body);
    set_reason(&mut r, &e.message);
    r
}

fn status_401(reason: &str) -> Response<Full<Bytes>> {
    let mut r = base_response(401)
        .header("Connection", "close")
        .body(Full::new(Bytes::new()))
        .expect("valid response");
    set_reason(&mut r, reason);
    r
}

fn admin_json(status: u16, v: &Value) -> Response<Full<Bytes>> {
    json_response(status, v)
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn form_decode(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes()).into_owned().collect()
}

impl Front {
    fn sign(&self, data: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.ticket_key);
        h.update(data.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    }

    /// Make a ticket `PVE:<user>:<hex epoch>::<signature>`.
    pub(crate) fn make_ticket(&self, user: &str) -> (String, String) {
        let ts = format!("{:08X}", now_epoch());
        let data = format!("PVE:{user}:{ts}");
        let ticket = format!("{data}::{}", self.sign(&data));
        let csrf = format!("{ts}:{}", self.sign(&format!("csrf:{ts}:{user}")).trim_end_matches('='));
        (ticket, csrf)
    }

    fn verify_ticket(&self, ticket: &str) -> Option<String> {
        let (data, sig) = ticket.split_once("::")?;
        if self.sign(data) != sig {
            return None;
        }
        let mut it = data.split(':');
        if it.next()? != "PVE" {
            return None;
        }
        let user = it.next()?.to_string();
        let ts = u64::from_str_radix(it.next()?, 16).ok()?;
        if now_epoch().saturating_sub(ts) > 7200 {
            return None;
        }
        Some(user)
    }

    fn verify_csrf(&self, token: &str, user: &str) -> bool {
        let Some((ts, sig)) = token.split_once(':') else {
            return false;
        };
        self.sign(&format!("csrf:{ts}:{user}")).trim_end_matches('=') == sig
    }

    /// Handle one HTTP request.
    pub(crate) async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, ResetError> {
        match self.handle_inner(req).await {
            Outcome::Reply(r) => Ok(r),
            Outcome::Reset => Err(ResetError),
        }
    }

    async fn handle_inner(&self, mut req: Request<Incoming>) -> Outcome {
        let ws = api::console::wants_upgrade(req.uri().path(), req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let body = match Limited::new(body, 512 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return Outcome::Reply(error_response(&ApiError::status(413, "request too large"))),
        };
        if let Some(rest) = path.strip_prefix("/_sim/") {
            return Outcome::Reply(self.admin(&method, rest, &query, &body));
        }
        let Some(api_path) = path.strip_prefix("/api2/json") else {
            return Outcome::Reply(error_response(&ApiError::status(
                501,
                format!("Method '{method} {path}' not implemented"),
            )));
        };
        let api_path = if api_path.is_empty() { "/" } else { api_path };
        let segs: Vec<String> = api_path.split('/').filter(|s| !s.is_empty()).map(pct_decode).collect();
        let found = schema().find(&segs);
        let stat_key = match &found {
            Some((r, _)) => format!("{method} {}", r.template),
            None => format!("{method} (unknown)"),
        };
        let (fixed, jitter) = {
            let st = self.sim.lock();
            (st.faults.latency.fixed_ms, st.faults.latency.jitter_ms)
        };
        if fixed > 0 || jitter > 0 {
            let extra = if jitter > 0 {
                self.sim.lock().rng.random_range(0..=jitter)
            } else {
                0
            };
            tokio::time::sleep(Duration::from_millis(fixed + extra)).await;
        }
        let out = match (
            ws,
            self.api(&method, api_path, &query, &parts.headers, &body, found).await,
        ) {
            (Some(up), Outcome::Reply(r)) => Outcome::Reply(api::console::upgrade(
                &self.sim,
                &parts.headers,
                &query,
                api_path,
                up,
                r,
            )),
            (_, out) => out,
        };
        let mut st = self.sim.lock();
        st.stats.total += 1;
        *st.stats.requests.entry(stat_key).or_default() += 1;
        let status_key = match &out {
            Outcome::Reply(r) => r.status().as_u16().to_string(),
            Outcome::Reset => "reset".to_string(),
        };
        *st.stats.statuses.entry(status_key).or_default() += 1;
        out
    }

    #[allow(clippy::too_many_arguments)]
    async fn api(
        &self,
        method: &str,
        api_path: &str,
        query: &str,
        headers: &hyper::HeaderMap,
        body: &Bytes,
        found: Option<(&super::schema::Route, BTreeMap<String, String>)>,
    ) -> Outcome {
        let reply = |e: ApiError| Outcome::Reply(error_response(&e));
        let not_impl = || ApiError::status(501, format!("Method '{method} {api_path}' not implemented"));
        let Some((route, path_params)) = found else {
            return reply(not_impl());
        };
        let Some(info) = route.methods.get(method) else {
            return reply(not_impl());
        };
        let template = route.template.clone();
        // parameters: body, then query merged over it, then path params
        let mut params: BTreeMap<String, Value> = BTreeMap::new();
        if !body.is_empty() {
            if method == "GET" || method == "DELETE" {
                return reply(ApiError::status(501, "Unexpected content for method"));
            }
            let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
            if ct.starts_with("application/json") {
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(m)) => params.extend(m),
                    _ => return reply(ApiError::status(400, "unable to parse JSON body")),
                }
            } else {
                for (k, v) in form_decode(&String::from_utf8_lossy(body)) {
                    params.insert(k, Value::String(v));
                }
            }
        }
        for (k, v) in form_decode(query) {
            params.insert(k, Value::String(v));
        }
        for (k, v) in &path_params {
            if let Some(old) = params.get(k) {
                if super::schema::scalar_text(old).as_deref() != Some(v.as_str()) {
                    return reply(ApiError::param(
                        k,
                        "duplicate parameter (already defined in URI) with conflicting values!",
                    ));
                }
            }
            params.insert(k.clone(), Value::String(v.clone()));
        }
        // authentication
        let is_ticket_call = template == "/access/ticket";
        let caller = if is_ticket_call {
            Caller {
                user: String::new(),
                privs: None,
            }
        } else {
            match self.authenticate(method, headers).await {
                Ok(c) => c,
                Err(reason) => {
                    self.sim.lock().stats.bump("auth_failures");
                    let delay = self.sim.lock().cfg.auth_failure_delay_ms;
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    return Outcome::Reply(status_401(&reason));
                }
            }
        };
        // fault injection
        if let Some((kind, msg, status)) = self.draw_fault(method, &template) {
            self.sim.lock().stats.bump("faults_injected");
            match kind {
                FaultKind::Reset => return Outcome::Reset,
                FaultKind::Timeout => {
                    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
                    return Outcome::Reset;
                }
                FaultKind::LockTimeout => {
                    let vmid = path_params.get("vmid").cloned().unwrap_or_else(|| "100".into());
                    return reply(ApiError::e500(format!(
                        "can't lock file '/run/lock/lxc/pve-config-{vmid}.lock' - got timeout"
                    )));
                }
                FaultKind::Error => {
                    let mut e = ApiError::e500(msg.unwrap_or_else(|| "simulated failure".into()));
                    e.status = status.unwrap_or(500);
                    return reply(e);
                }
            }
        }
        if let Err(errors) = validate(&info.params, &params) {
            return reply(ApiError::params(errors));
        }
        if is_ticket_call && method == "POST" {
            return self.ticket(&params).await;
        }
        if caller.user.contains('!') && !info.allowtoken {
            return reply(ApiError::status(
                403,
                format!("URI '{api_path}' not available with API token, need proper ticket.\n"),
            ));
        }
        if let Some(privs) = &caller.privs {
            if let Some((path, p)) = api::required_privilege(method, &template, &params) {
                if !privs.iter().any(|x| x == p) {
                    return reply(ApiError::status(
                        403,
                        format!("Permission check failed ({path}, {p})\n"),
                    ));
                }
            }
        }
        // node checks (proxying to another node)
        if let Some(node) = path_params.get("node") {
            let st = self.sim.lock();
            match st.nodes.get(node) {
                None => {
                    return reply(ApiError::e500(format!(
                        "unable to get IP for node '{node}' - node offline?"
                    )))
                }
                Some(n) if !n.online && info.proxyto.as_deref() == Some("node") => {
                    return reply(ApiError::status(595, "No route to host"));
                }
                _ => {}
            }
        }
        match api::handle(&self.sim, method, &template, Params(params), &caller) {
            Ok((data, total)) => {
                let mut body = json!({ "data": data });
                if let Some(t) = total {
                    body["total"] = json!(t);
                }
                Outcome::Reply(json_response(200, &body))
            }
            Err(e) => reply(e),
        }
    }

    fn draw_fault(&self, method: &str, template: &str) -> Option<(FaultKind, Option<String>, Option<u16>)> {
        let mut st = self.sim.lock();
        let rules = st.faults.rules.clone();
        let key = format!("{method} {template}");
        for r in rules {
            let m = r.endpoint == "*" || r.endpoint == key || r.endpoint == template;
            if m && r.rate > 0.0 && st.rng.random::<f64>() < r.rate {
                return Some((r.kind, r.message.clone(), r.status));
            }
        }
        None
    }

    async fn authenticate(&self, method: &str, headers: &hyper::HeaderMap) -> Result<Caller, String> {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let cookie = headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let mut ticket = None;
        for c in cookie.split(';') {
            if let Some(v) = c.trim().strip_prefix("PVEAuthCookie=") {
                ticket = Some(pct_decode(v.trim_matches('"')));
            }
        }
        if ticket.is_none() {
            if let Some(v) = auth.trim().strip_prefix("PVEAuthCookie=") {
                ticket = Some(pct_decode(v));
            }
        }
        let st = self.sim.lock();
        if let Some(t) = ticket {
            let user = self.verify_ticket(&t).ok_or("Authentication failed!")?;
            let u = st
                .cfg
                .users
                .iter()
                .find(|u| u.userid == user)
                .ok_or("Authentication failed!")?;
            if method != "GET" {
                let csrf = headers
                    .get("csrfpreventiontoken")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !self.verify_csrf(csrf, &user) {
                    return Err("Permission denied - invalid csrf token".into());
                }
            }
            return Ok(Caller {
                user,
                privs: u.privileges.clone(),
            });
        }
        static TOKEN_RE: OnceLock<Regex> = OnceLock::new();
        let re = TOKEN_RE.get_or_init(|| Regex::new(r"(?:^|\s)PVEAPIToken(?:=| )([^;]*)").unwrap());
        if let Some(c) = re.captures(auth) {
            let raw = pct_decode(c[1].trim());
            let (id, secret) = raw.rsplit_once('=').ok_or("Authentication failed!")?;
            let t = st
                .cfg
                .tokens
                .iter()
                .find(|t| t.id == id && t.secret == secret)
                .ok_or("Authentication failed!")?;
            return Ok(Caller {
                user: t.id.clone(),
                privs: t.privileges.clone(),
            });
        }
        Err("No ticket".into())
    }

    async fn ticket(&self, params: &BTreeMap<String, Value>) -> Outcome {
        let g = |k: &str| params.get(k).and_then(super::schema::scalar_text).unwrap_or_default();
        let mut username = g("username");
        let password = g("password");
        if !username.contains('@') {
            let realm = g("realm");
            if !realm.is_empty() {
                username = format!("{username}@{realm}");
            }
        }
        let (ok, cluster) = {
            let st = self.sim.lock();
            let by_password = st
                .cfg
                .users
                .iter()
                .any(|u| u.userid == username && !u.password.is_empty() && u.password == password);
            let by_ticket = self.verify_ticket(&password).as_deref() == Some(username.as_str());
            (by_password || by_ticket, st.cfg.cluster_name.clone())
        };
        if !ok {
            let delay = self.sim.lock().cfg.auth_failure_delay_ms;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            self.sim.lock().stats.bump("auth_failures");
            return Outcome::Reply(error_response(&ApiError::status(401, "authentication failure\n")));
        }
        let (ticket, csrf) = self.make_ticket(&username);
        let all =
            |names: &[&str]| Value::Object(names.iter().map(|n| (n.to_string(), json!(1))).collect::<Map<_, _>>());
        let body = json!({"data": {
            "username": username, "ticket": ticket, "CSRFPreventionToken": csrf, "clustername": cluster,
            "cap": {
                "vms": all(&["VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.Disk", "VM.Config.Network", "VM.Config.Options", "VM.Migrate", "VM.PowerMgmt", "VM.Snapshot"]),
                "storage": all(&["Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit"]),
                "nodes": all(&["Sys.Audit", "Sys.Modify"]),
                "access": {}, "dc": {}, "sdn": {}, "mapping": {},
            }
        }});
        Outcome::Reply(json_response(200, &body))
    }

    // ------------------------------------------------------------ admin API

    fn admin(&self, method: &str, rest: &str, query: &str, body: &Bytes) -> Response<Full<Bytes>> {
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let bad = |m: String| admin_json(400, &json!({"error": m}));
        let mut st = self.sim.lock();
        match (method, segs.as_slice()) {
            ("GET", ["stats"]) => admin_json(200, &st.stats.to_json()),
            ("POST", ["stats", "reset"]) => {
                st.stats = Default::default();
                admin_json(200, &json!({"ok": true}))
            }
            ("GET", ["containers"]) => admin_json(200, &containers_json(&st)),
            ("GET", ["containers", id]) => match id.parse::<u32>().ok().and_then(|v| st.cts.get(&v)) {
                Some(ct) => admin_json(200, &container_json(&st, ct)),
                None => admin_json(404, &json!({"error": "no such container"})),
            },
            ("POST", ["containers", id, "lock"]) => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let lock = v.get("lock").and_then(Value::as_str).map(str::to_string);
                match id.parse::<u32>().ok().and_then(|v| st.cts.get_mut(&v)) {
                    Some(ct) => {
                        match lock {
                            Some(l) => ct.conf.insert("lock".into(), l),
                            None => ct.conf.remove("lock"),
                        };
                        admin_json(200, &json!({"ok": true}))
                    }
                    None => admin_json(404, &json!({"error": "no such container"})),
                }
            }
            ("POST", ["containers", id, "copies"]) => {
                let req = match serde_json::from_slice::<api::CopiesRequest>(body) {
                    Ok(r) => r,
                    Err(e) => return bad(format!("invalid copies: {e}")),
                };
                match api::copy_containers(&mut st, id.parse().unwrap_or(0), &req) {
                    Ok(n) => admin_json(200, &json!({"made": n})),
                    Err(e) => bad(e),
                }
            }
            ("POST", ["containers", id, "exit"]) => match api::entrypoint_exit(
                &mut st,
                id.parse().unwrap_or(0),
                form_decode(query)
                    .into_iter()
                    .find(|(k, _)| k == "code")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0),
            ) {
                Ok(()) => admin_json(200, &json!({"ok": true})),
                Err(e) if e == "no such container" => admin_json(404, &json!({"error": e})),
                Err(e) => bad(e),
            },
            ("GET", ["oci"]) => {
                let mut v = serde_json::to_value(&st.oci).unwrap_or_default();
                v["images"] = super::oci_registry::images_json();
                admin_json(200, &v)
            }
            ("POST", ["oci"]) => match serde_json::from_slice(body) {
                Ok(sw) => {
                    st.oci = sw;
                    admin_json(200, &json!({"ok": true}))
                }
                Err(e) => bad(format!("invalid OCI switches: {e}")),
            },
            ("GET", ["tasks"]) => {
                let list: Vec<Value> = st
                    .task_order
                    .iter()
                    .filter_map(|u| st.tasks.get(u))
                    .map(|t| {
                        let mut v = t.status_json();
                        v["log"] = json!(t.log);
                        v["work_ms"] = json!(t.work_ms);
                        v["started_ms"] = json!(t.times.started_ms);
                        v["ended_ms"] = json!(t.times.ended_ms);
                        v["seen_ended_ms"] = json!(t.times.seen_ended_ms);
                        v
                    })
                    .collect();
                admin_json(200, &Value::Array(list))
            }
            ("GET", ["storage"]) => {
                let mut m = Map::new();
                for ((node, sid), vols) in &st.volumes {
                    let key = if node.is_empty() {
                        sid.clone()
                    } else {
                        format!("{node}/{sid}")
                    };
                    m.insert(key, vols.iter().map(|v| json!({"volid": v.volid, "content": v.content, "size": v.size, "vmid": v.vmid, "notes": v.notes})).collect());
                }
                admin_json(200, &Value::Object(m))
            }
            ("POST", ["storage", sid, "disks"]) => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let node = v.get("node").and_then(Value::as_str).unwrap_or_default().to_string();
                let vmid = v.get("vmid").and_then(Value::as_u64).unwrap_or(0) as u32;
                let size = v.get("size").and_then(Value::as_u64).unwrap_or(1 << 30);
                match st.plant_disk(sid, &node, vmid, size) {
                    Ok(volid) => admin_json(200, &json!({"volid": volid})),
                    Err(e) => bad(e),
                }
            }
            ("GET", ["qemu"]) => admin_json(200, &st.qemus.values().map(|q| q.resource_json()).collect()),
            ("POST", ["qemu"]) => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let vmid = v.get("vmid").and_then(Value::as_u64).unwrap_or(0) as u32;
                let node = v.get("node").and_then(Value::as_str).unwrap_or_default().to_string();
                let name = v
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or(format!("vm{vmid}"));
                match st.add_qemu(vmid, &node, &name) {
                    Ok(()) => admin_json(200, &json!({"ok": true})),
                    Err(e) => bad(e),
                }
            }
            ("GET", ["faults"]) => admin_json(200, &serde_json::to_value(&st.faults).unwrap_or_default()),
            ("POST", ["faults"]) => match serde_json::from_slice::<FaultConfig>(body) {
                Ok(f) => {
                    apply_faults(&mut st, f);
                    admin_json(200, &json!({"ok": true}))
                }
                Err(e) => bad(format!("invalid fault config: {e}")),
            },
            ("POST", ["clock"]) => {
                let q: BTreeMap<String, String> = form_decode(query).into_iter().collect();
                match q.get("speed").and_then(|s| s.parse::<f64>().ok()).filter(|s| *s > 0.0) {
                    Some(s) => {
                        st.cfg.clock_speed = s;
                        admin_json(200, &json!({"ok": true}))
                    }
                    None => bad("need ?speed=<factor>".into()),
                }
            }
            ("POST", ["nodes", node, action @ ("offline" | "online")]) => match st.nodes.get_mut(*node) {
                Some(n) => {
                    n.online = *action == "online";
                    let node = node.to_string();
                    st.faults.offline_nodes.retain(|x| x != &node);
                    if *action == "offline" {
                        st.faults.offline_nodes.push(node);
                    }
                    admin_json(200, &json!({"ok": true}))
                }
                None => admin_json(404, &json!({"error": "no such node"})),
            },
            _ => admin_json(
                404,
                &json!({"error": format!("unknown admin call {method} /_sim/{rest}")}),
            ),
        }
    }
}

/// Replace the fault configuration (and node online flags from `offline_nodes`).
pub(crate) fn apply_faults(st: &mut State, f: FaultConfig) {
    for (name, n) in st.nodes.iter_mut() {
        n.online = !f.offline_nodes.contains(name);
    }
    st.faults = f;
}

pub(crate) fn container_json(st: &State, ct: &super::state::Ct) -> Value {
    json!({
        "vmid": ct.vmid, "node": ct.node,
        "status": if ct.running { "running" } else { "stopped" },
        "lock": ct.lock(), "template": ct.is_template(),
        "config": ct.conf, "pending": ct.pending, "pending_delete": ct.pending_delete,
        "snapshots": ct.snapshots.keys().collect::<Vec<_>>(), "pool": ct.pool, "dhcp_leases": ct.leases,
        "digest": ct.digest(), "firewall_rules": ct.fw_rules, "firewall_options": ct.fw_options,
        "uptime": ct.uptime(st.cfg.clock_speed),
    })
}

fn containers_json(st: &State) -> Value {
    Value::Array(st.cts.values().map(|c| container_json(st, c)).collect())
}

/// How long a client may take to send a request's headers (from the connection being ready).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve connections until `shutdown` flips.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    front: Arc<Front>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let front = front.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                _ => return,
            };
            let svc = hyper::service::service_fn(move |req| {
                let f = front.clone();
                async move { f.handle(req).await }
            });
            // Bounded like pveproxy: a connection that sends no (complete) request header
            // within 30 s, idle keep-alive included, is closed.
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .with_upgrades();
            tokio::select! {
                _ = conn => {},
                _ = sd.changed() => {},
            }
        });
    }
}
