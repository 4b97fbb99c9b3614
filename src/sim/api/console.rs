//! `POST …/lxc/{vmid}/termproxy` and `GET …/lxc/{vmid}/vncwebsocket`: a container's console,
//! and the fixture application whose output it carries.
//!
//! What is modelled, and where it comes from:
//! - `termproxy` (pve-container `API2/LXC.pm`): needs `VM.Console` on `/vms/{vmid}`; starts a
//!   `vncproxy` task running `termproxy` on a free port of 5900-5999 (it waits 10 s for its one
//!   client); answers `{user, ticket, port, upid}`. The ticket is a VNC ticket
//!   `PVEVNC:<hex epoch>::<signature>` signed over `<plain>:<user>:/vms/<vmid>`, valid from 20 s
//!   before to 40 s after its time (pve-access-control `verify_vnc_ticket`); a wrong one fails
//!   with "permission denied - invalid vnc ticket".
//! - `vncwebsocket` (pveproxy): the same privilege, the `vncticket` checked for the caller, then
//!   the websocket is joined to the termproxy's port.
//! - The framing is termproxy's (proxmox/pve-xtermjs `README` and `termproxy/src/main.rs`, and
//!   the client side in pve-xtermjs `src/www/main.js`): the client first sends
//!   `<user>:<ticket>\n`, termproxy checks it (path and `VM.Console`) and answers `OK`; then
//!   client messages are `0:<byte length>:<data>` (input), `1:<cols>:<rows>:` (resize) and `2`
//!   (ping, keeps the connection), anything else is ignored; the server sends the terminal's
//!   raw bytes, unframed.
//! - With `cmode: console` the console is `/dev/console`, the entrypoint's stdout/stderr; it
//!   is live only (nothing printed before one attaches is replayed), and it ends when the
//!   container stops. Input is echoed, as a terminal does.
//!
//! The application: the fixture image `ghcr.io/example/counter` (entrypoint `/app/counter`)
//! prints `counter pid <pid>: line <n>` every `COUNTER_INTERVAL_MS` (its env, default 1000)
//! and, with `COUNTER_LINES=N` (N > 0), exits after line N with status `COUNTER_EXIT_CODE`
//! (default 0): the container then stops. [`run`] is that program for every container running
//! it. Any app can be ended by the admin API (`POST /_sim/containers/{vmid}/exit?code=N`).
//!
//! An entrypoint `<shell> -c SCRIPT NAME APP...` (LXC splits `lxc.init.cmd` at blanks, a
//! quoted word kept whole) runs APP under a shell: the app is what follows, and when it ends
//! the shell goes on with the rest of SCRIPT. The simulator runs no script; it models one
//! thing a wrapper does after its command: the last `printf "FORMAT" "$c"` of SCRIPT is
//! printed on the console, `%d` being the app's exit status, before the container stops.

use std::sync::Weak;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::Response;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// The entrypoint of the fixture application that prints numbered lines.
pub(crate) const COUNTER_ENTRYPOINT: &str = "/app/counter";
/// How long a termproxy waits for its client.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long termproxy waits for the `user:ticket` line.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle limit of a console connection without any client message (termproxy's README).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the fixture application is looked at.
const APP_TICK: Duration = Duration::from_millis(100);

/// Consoles and application output of the simulated node(s).
#[derive(Default)]
pub(crate) struct Consoles {
    /// Listening or connected termproxies by port.
    proxies: BTreeMap<u16, Proxy>,
    /// The running fixture applications by vmid.
    apps: BTreeMap<u32, App>,
    /// The last terminal size a client set, by vmid (`cols`, `rows`).
    pub sizes: BTreeMap<u32, (u16, u16)>,
    /// Signing key of the VNC tickets.
    key: [u8; 32],
}

struct Proxy {
    vmid: u32,
    opened: Instant,
    connected: bool,
}

/// One run of the fixture application.
struct App {
    started: Instant,
    pid: u32,
    printed: u64,
    out: broadcast::Sender<Bytes>,
}

impl Consoles {
    fn key(&mut self) -> [u8; 32] {
        if self.key == [0; 32] {
            use rand::RngCore;
            rand::rng().fill_bytes(&mut self.key);
        }
        self.key
    }
}

fn sign(key: &[u8; 32], data: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key);
    h.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// A VNC ticket for `user` on `path`, made at epoch `at`.
fn vnc_ticket(key: &[u8; 32], user: &str, path: &str, at: u64) -> String {
    let plain = format!("PVEVNC:{at:08X}");
    format!("{plain}::{}", sign(key, &format!("{plain}:{user}:{path}")))
}

/// Whether `ticket` is a VNC ticket for `user` on `path` (age -20..40 s, like Proxmox).
fn vnc_ticket_ok(key: &[u8; 32], ticket: &str, user: &str, path: &str) -> bool {
    let Some((plain, sig)) = ticket.split_once("::") else {
        return false;
    };
    if sign(key, &format!("{plain}:{user}:{path}")) != sig {
        return false;
    }
    let Some(ts) = plain
        .strip_prefix("PVEVNC:")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
    else {
        return false;
    };
    let age = now_epoch() as i64 - ts as i64;
    age > -20 && age < 40
}

/// `POST /nodes/{node}/lxc/{vmid}/termproxy`.
pub(super) fn termproxy(sim: &Arc<Sim>, st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let node = p.node();
    let vmid = p.vmid();
    st.ct_on(&node, vmid)?;
    let now = Instant::now();
    st.consoles
        .proxies
        .retain(|_, x| x.connected || now.duration_since(x.opened) < ACCEPT_TIMEOUT);
    let port = (5900..=5999u16)
        .find(|port| !st.consoles.proxies.contains_key(port))
        .ok_or_else(|| ApiError::e500("unable to find free port (5900-5999)"))?;
    st.consoles.proxies.insert(
        port,
        Proxy {
            vmid,
            opened: now,
            connected: false,
        },
    );
    let key = st.consoles.key();
    let ticket = vnc_ticket(&key, &caller.user, &format!("/vms/{vmid}"), now_epoch());
    let upid = sim.spawn_task(st, &node, "vncproxy", &vmid.to_string(), &caller.user, move |ctx| {
        Box::pin(async move { proxy_task(ctx, port).await })
    });
    Ok(json!({ "user": caller.user, "ticket": ticket, "port": port, "upid": upid }))
}

/// The `vncproxy` task: as long as its termproxy listens (10 s) or its client is connected.
async fn proxy_task(ctx: TaskCtx, port: u16) -> Result<(), String> {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let state = ctx.with(|st| {
            st.consoles
                .proxies
                .get(&port)
                .map(|x| (x.connected, x.opened.elapsed()))
        });
        match state {
            None => return Ok(()),
            Some((false, waited)) if waited >= ACCEPT_TIMEOUT => {
                ctx.with(|st| st.consoles.proxies.remove(&port));
                return Err("failed waiting for client: timed out".into());
            }
            _ => {}
        }
    }
}

/// `GET /nodes/{node}/lxc/{vmid}/vncwebsocket` without an upgrade: the ticket checked, the port.
pub(super) fn vncwebsocket(st: &mut State, p: &Params, caller: &Caller) -> ApiResult {
    let vmid = p.vmid();
    st.ct_on(&p.node(), vmid)?;
    let key = st.consoles.key();
    if !vnc_ticket_ok(&key, &p.req("vncticket"), &caller.user, &format!("/vms/{vmid}")) {
        return Err(ApiError::e500("permission denied - invalid vnc ticket"));
    }
    Ok(json!({ "port": p.req("port") }))
}

/// Whether a request asks for a websocket on `vncwebsocket`.
pub(crate) fn wants_upgrade(path: &str, headers: &hyper::HeaderMap) -> bool {
    path.ends_with("/vncwebsocket")
        && headers
            .get(hyper::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// After `vncwebsocket` answered `reply` (the ticket checked): the websocket joined to the
/// termproxy of `port`, or `reply` if it failed or no termproxy waits there for `vmid`.
pub(crate) fn upgrade(
    sim: &Arc<Sim>,
    headers: &hyper::HeaderMap,
    query: &str,
    path: &str,
    on_upgrade: hyper::upgrade::OnUpgrade,
    reply: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    if reply.status() != 200 {
        return reply;
    }
    let vmid: u32 = path
        .trim_end_matches("/vncwebsocket")
        .rsplit('/')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let port: u16 = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "port")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    {
        let mut st = sim.lock();
        match st.consoles.proxies.get_mut(&port) {
            Some(x) if x.vmid == vmid && !x.connected => x.connected = true,
            _ => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"")));
                *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                return r;
            }
        }
    }
    let Some(key) = headers.get("sec-websocket-key") else {
        sim.lock().consoles.proxies.remove(&port);
        let mut r = Response::new(Full::new(Bytes::from_static(b"")));
        *r.status_mut() = hyper::StatusCode::BAD_REQUEST;
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let sim2 = sim.clone();
    tokio::spawn(async move {
        if let Ok(up) = on_upgrade.await {
            let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(up),
                Role::Server,
                None,
            )
            .await;
            session(&sim2, ws, vmid).await;
        }
        sim2.lock().consoles.proxies.remove(&port);
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    // pveproxy answers with the protocol the client offered (`binary`)
    if let Some(proto) = headers.get("sec-websocket-protocol") {
        h.insert("sec-websocket-protocol", proto.clone());
    }
    r
}

/// One client message of termproxy's protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientMsg {
    /// `0:LEN:DATA`: input for the terminal.
    Input(Vec<u8>),
    /// `1:COLS:ROWS:`.
    Resize(u16, u16),
    /// `2`.
    Ping,
}

/// Parses the messages in `buf` (termproxy reads a byte stream: a message may span frames);
/// what is incomplete stays in `buf`. Unknown bytes are skipped, as termproxy does.
pub(crate) fn parse_client(buf: &mut Vec<u8>) -> Vec<ClientMsg> {
    let mut out = Vec::new();
    while let Some(&t) = buf.first() {
        match t {
            b'0' | b'1' => {
                let s = &buf[..];
                let fields: Vec<usize> = s
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == b':')
                    .map(|(i, _)| i)
                    .collect();
                let num = |a: usize, b: usize| std::str::from_utf8(&s[a..b]).ok().and_then(|x| x.parse::<usize>().ok());
                if t == b'0' {
                    if fields.len() < 2 {
                        break;
                    }
                    let Some(len) = num(fields[0] + 1, fields[1]) else {
                        buf.drain(..1);
                        continue;
                    };
                    let start = fields[1] + 1;
                    if s.len() < start + len {
                        break;
                    }
                    out.push(ClientMsg::Input(s[start..start + len].to_vec()));
                    buf.drain(..start + len);
                } else {
                    if fields.len() < 3 {
                        break;
                    }
                    if let (Some(c), Some(r)) = (num(fields[0] + 1, fields[1]), num(fields[1] + 1, fields[2])) {
                        out.push(ClientMsg::Resize(c as u16, r as u16));
                    }
                    buf.drain(..fields[2] + 1);
                }
            }
            b'2' => {
                out.push(ClientMsg::Ping);
                buf.drain(..1);
            }
            _ => {
                buf.drain(..1);
            }
        }
    }
    out
}

type Ws = tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// termproxy's part: the ticket line, `OK`, then the console until the container stops.
async fn session(sim: &Arc<Sim>, mut ws: Ws, vmid: u32) {
    let mut buf: Vec<u8> = Vec::new();
    let authed = tokio::time::timeout(AUTH_TIMEOUT, async {
        while let Some(Ok(m)) = ws.next().await {
            buf.extend_from_slice(&m.into_data());
            if let Some(nl) = buf.iter().position(|c| *c == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                return Some(String::from_utf8_lossy(&line[..nl]).into_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let ok = authed
        .as_deref()
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(user, ticket)| {
            let mut st = sim.lock();
            let key = st.consoles.key();
            vnc_ticket_ok(&key, ticket, user, &format!("/vms/{vmid}"))
        });
    if !ok {
        let _ = ws.close(None).await;
        return;
    }
    // lxc-console attaches to the running container's console; a stopped one has none
    let run = sim.lock().cts.get(&vmid).filter(|c| c.running).and_then(|c| c.started);
    if ws.send(Message::binary(Bytes::from_static(b"OK"))).await.is_err() || run.is_none() {
        let _ = ws.close(None).await;
        return;
    }
    let mut out: Option<broadcast::Receiver<Bytes>> = None;
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let mut idle = Box::pin(tokio::time::sleep(IDLE_TIMEOUT));
    loop {
        tokio::select! {
            m = ws.next() => {
                let Some(Ok(m)) = m else { return };
                if m.is_close() {
                    return;
                }
                idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                buf.extend_from_slice(&m.into_data());
                for msg in parse_client(&mut buf) {
                    match msg {
                        ClientMsg::Input(data) => {
                            if ws.send(Message::binary(data)).await.is_err() {
                                return;
                            }
                        }
                        ClientMsg::Resize(c, r) => {
                            sim.lock().consoles.sizes.insert(vmid, (c, r));
                        }
                        ClientMsg::Ping => {}
                    }
                }
            }
            o = async { out.as_mut().expect("guarded").recv().await }, if out.is_some() => match o {
                Ok(bytes) => {
                    if ws.send(Message::binary(bytes)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => out = None,
            },
            _ = check.tick() => {
                let same_run = {
                    let st = sim.lock();
                    let same = st.cts.get(&vmid).filter(|c| c.running).and_then(|c| c.started) == run;
                    if same && out.is_none() {
                        out = st.consoles.apps.get(&vmid).filter(|a| Some(a.started) == run).map(|a| a.out.subscribe());
                    }
                    same
                };
                if !same_run {
                    // what the app printed before it exited is on the console still
                    while let Some(Ok(bytes)) = out.as_mut().map(|o| o.try_recv()) {
                        if ws.send(Message::binary(bytes)).await.is_err() {
                            return;
                        }
                    }
                    // the container stopped: lxc-console ends, so does the connection
                    let _ = ws.close(None).await;
                    return;
                }
            }
            _ = &mut idle => {
                let _ = ws.close(None).await;
                return;
            }
        }
    }
}

/// The fixture application's settings from the container's `env` (NUL-separated `K=V`).
fn counter_settings(conf: &BTreeMap<String, String>) -> (u64, u64) {
    let env = conf.get("env").cloned().unwrap_or_default();
    // the last one counts, as in an environment built from the image's and then the user's
    let get = |k: &str| {
        env.split('\0')
            .filter_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
            .next_back()
            .and_then(|v| v.parse::<u64>().ok())
    };
    (
        get("COUNTER_INTERVAL_MS").unwrap_or(1000).max(10),
        get("COUNTER_LINES").unwrap_or(0),
    )
}

/// The fixture application's exit status from the container's `env` (`COUNTER_EXIT_CODE`).
fn counter_exit_code(conf: &BTreeMap<String, String>) -> i32 {
    let env = conf.get("env").cloned().unwrap_or_default();
    env.split('\0')
        .filter_map(|kv| kv.strip_prefix("COUNTER_EXIT_CODE="))
        .next_back()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// LXC's split of `lxc.init.cmd`: words at blanks; a quote runs to the same quote (no escapes);
/// quotes around a whole word are dropped.
pub(crate) fn split_init_cmd(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for ch in cmd.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                continue;
            }
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None => {}
        }
        in_word = true;
        word.push(ch);
    }
    if in_word && quote.is_none() {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| {
            let q = w.chars().next().filter(|c| *c == '\'' || *c == '"');
            match q {
                Some(q) if w.len() >= 2 && w.ends_with(q) => w[1..w.len() - 1].to_string(),
                _ => w,
            }
        })
        .collect()
}

/// Shells an entrypoint may start with.
const SHELLS: &[&str] = &["sh", "ash", "dash", "bash", "ksh", "mksh", "zsh"];

/// The app of CT `ct`'s entrypoint, and the script of the shell it runs under, if any.
fn app_of(conf: &BTreeMap<String, String>) -> (Vec<String>, Option<String>) {
    let argv = split_init_cmd(conf.get("entrypoint").map(String::as_str).unwrap_or("/sbin/init"));
    let shell = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a));
    if shell.is_some_and(|s| SHELLS.contains(&s)) && argv.get(1).map(String::as_str) == Some("-c") && argv.len() > 4 {
        return (argv[4..].to_vec(), Some(argv[2].clone()));
    }
    (argv, None)
}

/// Whether CT `ct` runs an application on its console (an OCI image's entrypoint).
fn runs_app(ct: &Ct) -> bool {
    ct.conf.get("cmode").map(String::as_str) == Some("console")
}

/// Whether CT `ct` runs the fixture application.
fn runs_counter(ct: &Ct) -> bool {
    runs_app(ct) && app_of(&ct.conf).0.first().map(String::as_str) == Some(COUNTER_ENTRYPOINT)
}

/// What a wrapper `script` prints after its command ended with `code`: its last
/// `printf "FORMAT" "$c"`, `%d` the status, `\NNN`, `\n`, `\\` as printf reads them; a terminal
/// turns `\n` into `\r\n`.
pub(crate) fn wrapper_epilogue(script: &str, code: i32) -> Vec<u8> {
    let Some(fmt) = script
        .rfind("printf \"")
        .map(|i| &script[i + 8..])
        .and_then(|rest| rest.split_once('"'))
        .map(|(fmt, _)| fmt.replace("%d", &code.to_string()))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut b = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            continue;
        }
        match chars.peek().copied() {
            Some('n') => {
                chars.next();
                out.extend_from_slice(b"\r\n");
            }
            Some('\\') => {
                chars.next();
                out.push(b'\\');
            }
            Some(d) if d.is_digit(8) => {
                let mut v = 0u32;
                for _ in 0..3 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(n) => {
                            v = v * 8 + n;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            _ => out.push(b'\\'),
        }
    }
    out
}

/// The app of CT `vmid` ends with status `code`: a wrapper's last words are printed on the
/// console, then the container stops (its console ends).
pub(crate) fn app_exit(st: &mut State, vmid: u32, code: i32) {
    let script = st.cts.get(&vmid).and_then(|c| app_of(&c.conf).1);
    if let (Some(script), Some(app)) = (script, st.consoles.apps.get(&vmid)) {
        let _ = app.out.send(Bytes::from(wrapper_epilogue(&script, code)));
    }
    st.consoles.apps.remove(&vmid);
    power::do_stop(st, vmid);
}

/// A running app: vmid, start, init pid, the counter's (interval, lines) and, for the counter,
/// its exit status.
type RunningApp = (u32, Instant, u32, (u64, u64), Option<i32>);

/// One step of every fixture application: print the lines that are due; an app that printed
/// its last line exits (its container stops); a stopped container's app is gone.
pub(crate) fn step(st: &mut State) {
    let now = Instant::now();
    // every app gets a console; only the counter prints on its own
    let running: Vec<RunningApp> = st
        .cts
        .values()
        .filter(|c| c.running && runs_app(c))
        .filter_map(|c| {
            let counter = runs_counter(c);
            let settings = if counter {
                counter_settings(&c.conf)
            } else {
                (u64::MAX, 0)
            };
            Some((
                c.vmid,
                c.started?,
                c.pid,
                settings,
                counter.then(|| counter_exit_code(&c.conf)),
            ))
        })
        .collect();
    st.consoles
        .apps
        .retain(|vmid, a| running.iter().any(|(v, s, _, _, _)| v == vmid && *s == a.started));
    let mut exited = Vec::new();
    for (vmid, started, pid, (interval, lines), code) in running {
        let Some(code) = code else {
            st.consoles.apps.entry(vmid).or_insert_with(|| App {
                started,
                pid,
                printed: 0,
                out: broadcast::channel(1024).0,
            });
            continue;
        };
        let app = st.consoles.apps.entry(vmid).or_insert_with(|| App {
            started,
            pid,
            printed: 0,
            out: broadcast::channel(1024).0,
        });
        let due =
            (now.duration_since(started).as_millis() as u64 / interval).min(if lines > 0 { lines } else { u64::MAX });
        while app.printed < due {
            app.printed += 1;
            // a terminal turns "\n" into "\r\n"
            let _ = app.out.send(Bytes::from(format!(
                "counter pid {}: line {}\r\n",
                app.pid, app.printed
            )));
        }
        if lines > 0 && app.printed >= lines {
            exited.push((vmid, code));
        }
    }
    for (vmid, code) in exited {
        app_exit(st, vmid, code);
    }
}

/// Runs the fixture applications until the simulator stops.
pub(crate) async fn run(sim: Weak<Sim>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(APP_TICK) => {}
            _ = stop.changed() => return,
        }
        let Some(s) = sim.upgrade() else { return };
        step(&mut s.lock());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_are_parsed_like_termproxy_across_frames() {
        let mut buf = b"0:5:hel".to_vec();
        assert!(parse_client(&mut buf).is_empty());
        buf.extend_from_slice(b"lo1:80:24:2x0:2:\xc3\xa9");
        assert_eq!(
            parse_client(&mut buf),
            vec![
                ClientMsg::Input(b"hello".to_vec()),
                ClientMsg::Resize(80, 24),
                ClientMsg::Ping,
                ClientMsg::Input("é".as_bytes().to_vec()),
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_vnc_ticket_is_bound_to_its_user_and_path() {
        let key = [7u8; 32];
        let t = vnc_ticket(&key, "op@pve!k", "/vms/100", now_epoch());
        assert!(vnc_ticket_ok(&key, &t, "op@pve!k", "/vms/100"));
        assert!(!vnc_ticket_ok(&key, &t, "op@pve!k", "/vms/101"));
        assert!(!vnc_ticket_ok(&key, &t, "other@pve", "/vms/100"));
        let old = vnc_ticket(&key, "op@pve!k", "/vms/100", now_epoch() - 60);
        assert!(!vnc_ticket_ok(&key, &old, "op@pve!k", "/vms/100"));
    }

    #[test]
    fn an_entrypoint_is_split_like_lxc_and_a_shell_wrapper_prints_its_last_words() {
        assert_eq!(
            split_init_cmd("/docker-entrypoint.sh nginx -g 'daemon off;'"),
            ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
        );
        let wrapped = crate::controller::container::app::entrypoint(
            &crate::controller::vnode::exitcode::wrap("/bin/sh", &["/app/counter".into()], &[]),
            &[],
        )
        .unwrap();
        let conf: BTreeMap<String, String> = [("entrypoint".to_string(), wrapped)].into();
        let (app, script) = app_of(&conf);
        assert_eq!(app, ["/app/counter"]);
        let said = wrapper_epilogue(&script.unwrap(), 3);
        let (clean, code) = crate::controller::vnode::exitcode::MarkerScanner::default().scan(&said);
        assert_eq!((clean.as_slice(), code), (&b""[..], Some(3)));
        let plain: BTreeMap<String, String> = [("entrypoint".to_string(), "/app/counter".to_string())].into();
        assert_eq!(app_of(&plain), (vec!["/app/counter".to_string()], None));
    }

    #[test]
    fn the_counter_reads_its_interval_and_line_count_from_the_env() {
        let conf: BTreeMap<String, String> = [(
            "env".to_string(),
            "COUNTER_INTERVAL_MS=1000\0COUNTER_INTERVAL_MS=250\0COUNTER_LINES=3".to_string(),
        )]
        .into();
        assert_eq!(counter_settings(&conf), (250, 3));
        assert_eq!(counter_settings(&BTreeMap::new()), (1000, 0));
    }
}
