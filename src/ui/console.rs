//! A container's console in the browser: `GET /ui/containers/{ns}/{name}/console` is the page
//! (xterm.js, vendored under `src/ui/assets/xterm/`), `GET …/console/ws` the websocket that the
//! operator joins to Proxmox's `termproxy` + `vncwebsocket` ([`crate::pve::Console`]).
//!
//! Who may: a user whom a SelfSubjectAccessReview (made with their own token) grants `create`
//! on `lxccontainers/console` in the namespace, and who can `get` the `LxcContainer` (its
//! status names the cluster, node and vmid; the browser names only the object). The page
//! offers the console only then, and the websocket asks again, fresh, before it opens one.
//! The websocket also checks `Origin` (this host only: a cross-site page cannot open it with
//! the user's cookie) and, as its first message, the session's CSRF token.
//!
//! Proxmox sees the operator's own API token (which needs `VM.Console`): the operator lends
//! its reach, so it logs each session (`web UI: console opened` / `closed`, with the user,
//! the container, the start and the duration) and bounds them: [`MAX_PER_SESSION`] per
//! session, [`MAX_PER_USER`] per user, closed after [`IDLE_TIMEOUT`] without input and when the
//! UI session ends.
//!
//! The browser's messages are JSON text: `{"csrf": "…"}` first, then `{"in": "…"}` (input)
//! and `{"cols": C, "rows": R}` (resize); the server sends the terminal's bytes as binary
//! messages and, before it closes, a text message saying why.

use super::pages::{api, checked, render, resource, to_json, Chrome};
use super::session::{constant_time_eq, Session};
use super::{AppState, UiError, User};
use crate::controller::cluster::ClusterKey;
use crate::crd::LxcContainer;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

/// The vendored xterm.js release (`src/ui/assets/xterm/README.md`).
pub const XTERM_VERSION: &str = "6.0.0";

/// Consoles one UI session may hold open at once.
pub const MAX_PER_SESSION: usize = 2;

/// Consoles one user (principal) may hold open at once, over all their sessions.
pub const MAX_PER_USER: usize = 4;

/// A console without input from the browser for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// How long the browser has to send its CSRF token after the websocket opened.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest browser message taken (a paste larger than this is refused, not cut).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Where a container's console is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `ProxmoxCluster`.
    pub cluster: String,
    /// The Proxmox node.
    pub node: String,
    /// The vmid.
    pub vmid: u32,
}

/// Where `obj` (an `LxcContainer` as JSON) is in Proxmox, as its status says (pure).
pub fn placement(obj: &Value) -> Result<Target, String> {
    let s = &obj["status"];
    let (Some(cluster), Some(node), Some(vmid)) = (s["cluster"].as_str(), s["node"].as_str(), s["vmid"].as_u64())
    else {
        return Err("It is not in Proxmox yet: the operator has not created it.".into());
    };
    Ok(Target {
        cluster: cluster.to_string(),
        node: node.to_string(),
        vmid: u32::try_from(vmid).map_err(|_| format!("vmid {vmid} is out of range"))?,
    })
}

/// Where `obj`'s (an `LxcContainer` as JSON) console is, or why it has none (pure).
pub fn target(obj: &Value) -> Result<Target, String> {
    let t = placement(obj)?;
    let state = obj["status"]["state"].as_str();
    if state != Some("running") {
        return Err(format!(
            "It is {}: a console needs a running container.",
            state.unwrap_or("not running")
        ));
    }
    Ok(t)
}

/// A message from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromBrowser {
    /// The session's CSRF token (the first message).
    Csrf(String),
    /// Keys typed or pasted.
    Input(String),
    /// The terminal's size.
    Resize(u16, u16),
}

/// Reads one browser message (pure); `None` for anything else (ignored).
pub fn parse(text: &str) -> Option<FromBrowser> {
    let v: Value = serde_json::from_str(text).ok()?;
    if let Some(t) = v["csrf"].as_str() {
        return Some(FromBrowser::Csrf(t.to_string()));
    }
    if let Some(t) = v["in"].as_str() {
        return Some(FromBrowser::Input(t.to_string()));
    }
    let size = |k: &str| {
        v[k].as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| (1..=1000).contains(n))
    };
    Some(FromBrowser::Resize(size("cols")?, size("rows")?))
}

/// Whether a websocket request's `Origin` is this UI's own host (a browser always sends one;
/// none, or another host, is refused).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host),
        _ => false,
    }
}

/// The consoles open now, by session and by user.
#[derive(Debug, Default)]
pub struct Open {
    counts: Mutex<(HashMap<String, usize>, HashMap<String, usize>)>,
}

/// Why one more console is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// The session holds [`MAX_PER_SESSION`].
    #[error("this session already has {max} consoles open: close one first")]
    Session {
        /// The limit.
        max: usize,
    },
    /// The user holds [`MAX_PER_USER`].
    #[error("{user} already has {max} consoles open: close one first")]
    User {
        /// The user.
        user: String,
        /// The limit.
        max: usize,
    },
}

/// One open console; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    open: Arc<Open>,
    session: String,
    user: String,
}

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, usize>, HashMap<String, usize>)> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more console of `session` of `user`, within the limits.
    pub fn take(self: &Arc<Self>, session: &str, user: &str) -> Result<Slot, Limit> {
        let mut c = self.lock();
        if c.0.get(session).copied().unwrap_or(0) >= MAX_PER_SESSION {
            return Err(Limit::Session { max: MAX_PER_SESSION });
        }
        if c.1.get(user).copied().unwrap_or(0) >= MAX_PER_USER {
            return Err(Limit::User {
                user: user.to_string(),
                max: MAX_PER_USER,
            });
        }
        *c.0.entry(session.to_string()).or_default() += 1;
        *c.1.entry(user.to_string()).or_default() += 1;
        Ok(Slot {
            open: self.clone(),
            session: session.to_string(),
            user: user.to_string(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.open.lock();
        let (sessions, users) = &mut *c;
        for (map, key) in [(sessions, &self.session), (users, &self.user)] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    chrome: Chrome,
    namespace: String,
    name: String,
    error: String,
    xterm: &'static str,
}

/// Whether the session's user may open consoles in `ns` (asked fresh, not cached).
async fn may_open(session: &Session, ns: &str) -> Result<(), UiError> {
    let ok = super::access::allowed_on(&session.client, "pve.lxc.dev", "lxccontainers", "console", "create", ns)
        .await
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    Err(UiError::Refused(
        StatusCode::FORBIDDEN,
        format!("Your account may not open consoles in namespace {ns}: that needs create on lxccontainers/console."),
    ))
}

/// The container's console target, read with the user's own token.
async fn target_of(session: &Session, ns: &str, name: &str) -> Result<Target, UiError> {
    let obj = api(&session.client, &resource::<LxcContainer>(), ns).get(name).await?;
    target(&to_json(&obj, &resource::<LxcContainer>())).map_err(|why| UiError::Refused(StatusCode::CONFLICT, why))
}

/// `GET /ui/containers/{ns}/{name}/console`: the console page.
pub async fn page(user: User, Path((ns, name)): Path<(String, String)>) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let found = async {
        may_open(&user.0, &ns).await?;
        target_of(&user.0, &ns, &name).await
    };
    let (error, status) = match found.await {
        Ok(_) => (String::new(), StatusCode::OK),
        Err(e) => (e.message(), e.status()),
    };
    render(
        status,
        &ConsolePage {
            chrome: Chrome::new(&format!("Console of {name}"), &user, &ns),
            namespace: ns,
            name,
            error,
            xterm: XTERM_VERSION,
        },
    )
}

/// `GET /ui/containers/{ns}/{name}/console/ws`: the websocket of the console page.
pub async fn websocket(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
    mut req: axum::extract::Request,
) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    if !same_origin(req.headers()) {
        return Err(UiError::Refused(
            StatusCode::FORBIDDEN,
            "cross-site console refused".into(),
        ));
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .filter(|_| {
            req.headers()
                .get(header::UPGRADE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        })
        .ok_or_else(|| UiError::Refused(StatusCode::BAD_REQUEST, "not a websocket request".into()))?;
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let session = user.0.clone();
    may_open(&session, &ns).await?;
    let target = target_of(&session, &ns, &name).await?;
    let slot = state
        .consoles()
        .take(&session.id, &session.principal)
        .map_err(|e| UiError::Refused(StatusCode::TOO_MANY_REQUESTS, format!("Console refused: {e}.")))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(up) = on_upgrade.await else { return };
        let ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(hyper_util::rt::TokioIo::new(up), Role::Server, None)
                .await;
        let who = Who {
            user: session.principal.clone(),
            container: format!("{ns}/{name}"),
        };
        run(state, session, ws, target, who).await;
        drop(slot);
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    Ok(r)
}

type BrowserWs = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Whose console a session is (for the audit log).
struct Who {
    user: String,
    container: String,
}

/// Says `why` to the browser and closes.
async fn close_with(ws: &mut BrowserWs, why: &str) {
    let _ = ws
        .send(Message::text(serde_json::json!({ "closed": why }).to_string()))
        .await;
    let _ = ws.close(None).await;
}

/// The first message must be the session's CSRF token.
async fn authenticate(ws: &mut BrowserWs, csrf: &str) -> bool {
    let first = tokio::time::timeout(AUTH_TIMEOUT, ws.next()).await;
    let Ok(Some(Ok(Message::Text(t)))) = first else {
        return false;
    };
    matches!(parse(t.as_str()), Some(FromBrowser::Csrf(c)) if constant_time_eq(&c, csrf))
}

/// One console session: the CSRF token, Proxmox's console, then bytes both ways until one
/// side closes, the idle timeout, or the UI session's end. Logged at its start and end.
async fn run(state: AppState, session: Arc<Session>, mut ws: BrowserWs, t: Target, who: Who) {
    if !authenticate(&mut ws, &session.csrf).await {
        close_with(
            &mut ws,
            "refused: this page is stale (CSRF token missing or wrong); reload it",
        )
        .await;
        return;
    }
    let handle = state.clusters().and_then(|r| r.get(&ClusterKey::named(&t.cluster)));
    let Some(handle) = handle else {
        let why = format!("ProxmoxCluster {} is not connected to this operator replica", t.cluster);
        close_with(&mut ws, &why).await;
        return;
    };
    let mut console = match handle.client.console(&t.node, t.vmid).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(user = %who.user, container = %who.container, error = %e, "web UI: console could not be opened");
            close_with(&mut ws, &format!("Proxmox refused the console: {e}")).await;
            return;
        }
    };
    let started = Instant::now();
    let start = jiff::Timestamp::now();
    tracing::info!(user = %who.user, container = %who.container, cluster = %t.cluster, node = %t.node, vmid = t.vmid, start = %start, "web UI: console opened");
    let why = pump(&state, &session, &mut ws, &mut console).await;
    close_with(&mut ws, why).await;
    console.close().await;
    tracing::info!(user = %who.user, container = %who.container, vmid = t.vmid, start = %start, end = %jiff::Timestamp::now(), seconds = started.elapsed().as_secs(), reason = why, "web UI: console closed");
}

/// Moves bytes both ways; returns why it stopped.
async fn pump(
    state: &AppState,
    session: &Session,
    ws: &mut BrowserWs,
    console: &mut crate::pve::Console,
) -> &'static str {
    let ends = tokio::time::sleep_until(session.expires.into());
    tokio::pin!(ends);
    let mut alive = tokio::time::interval(Duration::from_secs(5));
    let idle = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(idle);
    loop {
        tokio::select! {
            m = ws.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return "the browser closed it",
                    Some(Ok(_)) => continue,
                };
                if text.len() > MAX_MESSAGE {
                    return "a message was larger than 64 KiB";
                }
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                let sent = match parse(text.as_str()) {
                    Some(FromBrowser::Input(s)) => console.send_input(s.as_bytes()).await,
                    Some(FromBrowser::Resize(c, r)) => console.resize(c, r).await,
                    _ => Ok(()),
                };
                if sent.is_err() {
                    return "the connection to Proxmox broke";
                }
            }
            out = console.next_output() => match out {
                Ok(Some(bytes)) => {
                    if ws.send(Message::binary(bytes)).await.is_err() {
                        return "the browser went away";
                    }
                }
                Ok(None) => return "the container's console ended (it stopped)",
                Err(_) => return "the connection to Proxmox broke",
            },
            _ = alive.tick() => {
                if !state.sessions().contains(&session.id) {
                    return "the UI session ended";
                }
            }
            _ = &mut idle => return "no input for 15 minutes",
            _ = &mut ends => return "the UI session ended",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_console_needs_a_running_container_known_to_proxmox() {
        let running = json!({"status": {"cluster": "pve", "node": "pve1", "vmid": 101, "state": "running"}});
        assert_eq!(
            target(&running),
            Ok(Target {
                cluster: "pve".into(),
                node: "pve1".into(),
                vmid: 101
            })
        );
        let stopped = json!({"status": {"cluster": "pve", "node": "pve1", "vmid": 101, "state": "stopped"}});
        assert!(target(&stopped).unwrap_err().contains("It is stopped"));
        assert!(target(&json!({"status": {}}))
            .unwrap_err()
            .contains("not in Proxmox yet"));
    }

    #[test]
    fn browser_messages_are_read_and_anything_else_is_ignored() {
        assert_eq!(parse(r#"{"csrf":"abc"}"#), Some(FromBrowser::Csrf("abc".into())));
        assert_eq!(parse(r#"{"in":"ls\r"}"#), Some(FromBrowser::Input("ls\r".into())));
        assert_eq!(parse(r#"{"cols":120,"rows":40}"#), Some(FromBrowser::Resize(120, 40)));
        assert_eq!(parse(r#"{"cols":0,"rows":40}"#), None);
        assert_eq!(parse(r#"{"cols":70000,"rows":40}"#), None);
        assert_eq!(parse("0:2:ls"), None);
    }

    #[test]
    fn a_cross_site_page_cannot_open_a_console_with_the_users_cookie() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("ui.example:8080"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(same_origin(&headers(Some("http://ui.example:8080"))));
        assert!(same_origin(&headers(Some("https://ui.example:8080"))));
        assert!(!same_origin(&headers(Some("https://evil.example"))));
        assert!(!same_origin(&headers(Some("null"))));
        assert!(!same_origin(&headers(None)));
    }

    #[test]
    fn one_user_cannot_hold_more_consoles_than_the_limits() {
        let open = Arc::new(Open::default());
        let a: Vec<Slot> = (0..MAX_PER_SESSION)
            .map(|_| open.take("s1", "alice").unwrap())
            .collect();
        assert_eq!(
            open.take("s1", "alice").unwrap_err(),
            Limit::Session { max: MAX_PER_SESSION }
        );
        let b: Vec<Slot> = (0..MAX_PER_USER - MAX_PER_SESSION)
            .map(|_| open.take("s2", "alice").unwrap())
            .collect();
        assert!(matches!(open.take("s3", "alice"), Err(Limit::User { .. })));
        // another user is not held back by alice's consoles
        let bob = open.take("s4", "bob").unwrap();
        drop(a);
        let again = open.take("s1", "alice").unwrap();
        drop((b, bob, again));
        assert!(open.lock().0.is_empty() && open.lock().1.is_empty());
    }
}
