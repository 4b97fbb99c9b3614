//! The client against a local TLS server (hyper + tokio-rustls + rcgen on 127.0.0.1:0):
//! TLS pinning/verification, token header, ticket login + CSRF, failover, retries,
//! reason-phrase errors, tasks, limits, and that no credential is ever printed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use proxmox_lxc_operator::pve::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::TcpListener;

const TOKEN_ID: &str = "operator@pve!k8s";
const TOKEN_SECRET: &str = "0b5c3f9e-1d2a-4c8b-9e7f-6a5d4c3b2a10";
const PASSWORD: &str = "Sup3r-Secret-Pa55word";
const TICKET: &str = "PVE:root@pam:6650A1B2::Zm9vYmFy+/SIGNATURE=";
const CSRF: &str = "6650A1B2:Q1NSRi1zZWNyZXQtdG9rZW4";

/// A CA and a leaf certificate for 127.0.0.1/localhost signed by it.
struct TestPki {
    ca_pem: String,
    leaf_der: Vec<u8>,
    leaf_key_der: Vec<u8>,
}

fn pki() -> TestPki {
    pki_named("pve test CA")
}

fn pki_named(ca_name: &str) -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    TestPki {
        ca_pem: ca.as_ref().pem(),
        leaf_der: leaf.der().to_vec(),
        leaf_key_der: leaf_key.serialize_der(),
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Percent-decoded path.
    path: String,
    /// Path as sent.
    raw_path: String,
    query: BTreeMap<String, String>,
    form: BTreeMap<String, String>,
    headers: hyper::HeaderMap,
}

impl Seen {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

/// Status, optional custom reason phrase, body.
type Reply = (u16, Option<String>, String);
type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    pki: Arc<TestPki>,
}

impl Server {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
    fn fingerprint(&self) -> String {
        cert_fingerprint(&self.pki.leaf_der)
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }
}

fn ok(data: serde_json::Value) -> Reply {
    (200, None, serde_json::json!({ "data": data }).to_string())
}

fn err(status: u16, reason: &str, body: &str) -> Reply {
    (status, Some(reason.to_string()), body.to_string())
}

async fn serve_on(listener: TcpListener, pki: Arc<TestPki>, handler: Handler) -> Server {
    let addr = listener.local_addr().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(pki.leaf_der.clone())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(pki.leaf_key_der.clone().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    let seen = seen.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let parse = |s: &[u8]| -> BTreeMap<String, String> {
                            url::form_urlencoded::parse(s).into_owned().collect()
                        };
                        let s = Seen {
                            method: parts.method.to_string(),
                            path: percent_encoding::percent_decode_str(parts.uri.path())
                                .decode_utf8()
                                .unwrap()
                                .into_owned(),
                            raw_path: parts.uri.path().to_string(),
                            query: parse(parts.uri.query().unwrap_or("").as_bytes()),
                            form: parse(&body),
                            headers: parts.headers,
                        };
                        let (status, reason, body) = handler(&s);
                        seen.lock().unwrap().push(s);
                        let mut resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/json;charset=UTF-8")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        if let Some(r) = reason {
                            resp.extensions_mut()
                                .insert(hyper::ext::ReasonPhrase::try_from(r).unwrap());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Server { addr, seen, pki }
}

async fn serve(pki: Arc<TestPki>, handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, pki, Arc::new(handler)).await
}

fn version_handler(s: &Seen) -> Reply {
    match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api2/json/version") => ok(serde_json::json!({"version": "9.1.1", "release": "9.1", "repoid": "abc"})),
        _ => err(501, "not implemented", r#"{"data":null}"#),
    }
}

fn token() -> Auth {
    Auth::Token {
        token_id: TOKEN_ID.into(),
        secret: TOKEN_SECRET.into(),
    }
}

fn password() -> Auth {
    Auth::Password {
        username: "root@pam".into(),
        password: PASSWORD.into(),
    }
}

fn config(endpoints: Vec<String>, auth: Auth, tls: TlsMode) -> ClientConfig {
    let mut c = ClientConfig::new(endpoints, auth);
    c.tls = tls;
    c.connect_timeout = Duration::from_secs(2);
    c.request_timeout = Duration::from_secs(5);
    c.retry.initial_backoff = Duration::from_millis(20);
    c.retry.max_backoff = Duration::from_millis(100);
    c.limits.requests_per_second = 0.0;
    c
}

fn pinned(server: &Server, auth: Auth) -> Client {
    Client::new(config(
        vec![server.url()],
        auth,
        TlsMode::Fingerprint(server.fingerprint()),
    ))
    .unwrap()
}

/// A 127.0.0.1 address nobody listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn fingerprint_pinning_accepts_the_right_certificate_in_either_notation() {
    let pki = Arc::new(pki());
    let server = serve(pki, version_handler).await;
    let v = pinned(&server, token()).version().await.unwrap();
    assert_eq!(v.version.as_deref(), Some("9.1.1"));
    let plain = server.fingerprint().replace(':', "").to_lowercase();
    let c = Client::new(config(vec![server.url()], token(), TlsMode::Fingerprint(plain))).unwrap();
    c.version().await.unwrap();
}

#[tokio::test]
async fn wrong_fingerprint_is_rejected_with_both_fingerprints_in_the_error() {
    let server = serve(Arc::new(pki()), version_handler).await;
    let other = cert_fingerprint(&pki().leaf_der);
    let c = Client::new(config(vec![server.url()], token(), TlsMode::Fingerprint(other.clone()))).unwrap();
    let e = c.version().await.unwrap_err();
    match &e {
        Error::TlsFingerprintMismatch { expected, actual, .. } => {
            assert_eq!(expected, &other);
            assert_eq!(actual, &server.fingerprint());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(e.to_string().contains(&server.fingerprint()));
    assert_eq!(server.seen().len(), 0, "nothing may be sent to an untrusted server");
}

#[tokio::test]
async fn verify_mode_trusts_the_extra_ca_and_rejects_an_unknown_ca_as_such() {
    let pki = Arc::new(pki());
    let server = serve(pki.clone(), version_handler).await;
    let good = Client::new(config(
        vec![server.url()],
        token(),
        TlsMode::Verify {
            extra_ca_pem: Some(pki.ca_pem.clone()),
        },
    ))
    .unwrap();
    good.version().await.unwrap();

    let bad = Client::new(config(
        vec![server.url()],
        token(),
        TlsMode::Verify {
            extra_ca_pem: Some(pki_named("some other CA").ca_pem),
        },
    ))
    .unwrap();
    let e = bad.version().await.unwrap_err();
    assert!(matches!(e, Error::TlsUnknownCa { .. }), "{e:?}");
}

#[tokio::test]
async fn the_token_header_is_exactly_what_proxmox_expects() {
    let server = serve(Arc::new(pki()), version_handler).await;
    let c = pinned(&server, token());
    c.version().await.unwrap();
    let s = &server.seen()[0];
    assert_eq!(
        s.header("authorization").as_deref(),
        Some("PVEAPIToken=operator@pve!k8s=0b5c3f9e-1d2a-4c8b-9e7f-6a5d4c3b2a10")
    );
    assert!(s.header("cookie").is_none());
    assert!(s.header("csrfpreventiontoken").is_none());
}

/// A server that hands out `TICKET-<n>` and accepts only the newest ticket.
fn ticket_server(current: Arc<AtomicUsize>) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |s: &Seen| {
        if s.method == "POST" && s.path == "/api2/json/access/ticket" {
            if s.form.get("username").map(String::as_str) != Some("root@pam")
                || s.form.get("password").map(String::as_str) != Some(PASSWORD)
            {
                return err(
                    401,
                    "authentication failure",
                    r#"{"data":null,"message":"authentication failure\n"}"#,
                );
            }
            let n = current.fetch_add(1, Ordering::SeqCst) + 1;
            return ok(serde_json::json!({
                "username": "root@pam",
                "ticket": format!("{TICKET}{n}"),
                "CSRFPreventionToken": CSRF,
            }));
        }
        let want = format!("{TICKET}{}", current.load(Ordering::SeqCst));
        let cookie_ok = s
            .header("cookie")
            .and_then(|c| c.strip_prefix("PVEAuthCookie=").map(str::to_string))
            .map(|v| {
                percent_encoding::percent_decode_str(&v)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            })
            .is_some_and(|t| t == want);
        if !cookie_ok {
            return err(401, "No ticket", "");
        }
        if s.method != "GET" && s.header("csrfpreventiontoken").as_deref() != Some(CSRF) {
            return err(401, "Permission denied - invalid csrf token", r#"{"data":null}"#);
        }
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/api2/json/version") => ok(serde_json::json!({"version": "9.1.1"})),
            ("POST", "/api2/json/nodes/pve/lxc/100/status/start") => ok(serde_json::json!(
                "UPID:pve:0002A1B3:0136F0E2:6650A1B2:vzstart:100:root@pam:"
            )),
            _ => err(501, "not implemented", r#"{"data":null}"#),
        }
    }
}

#[tokio::test]
async fn ticket_login_sends_the_cookie_and_the_csrf_token_on_writes() {
    let current = Arc::new(AtomicUsize::new(0));
    let server = serve(Arc::new(pki()), ticket_server(current.clone())).await;
    let c = pinned(&server, password());
    c.version().await.unwrap();
    let upid = c.lxc_start("pve", 100).await.unwrap();
    assert_eq!(upid.task_type(), "vzstart");
    assert_eq!(
        server.count("POST", "/api2/json/access/ticket"),
        1,
        "one login for both calls"
    );
    let get = server.seen().into_iter().find(|s| s.method == "GET").unwrap();
    assert!(get.header("csrfpreventiontoken").is_none(), "no CSRF token on GET");
    assert!(get.header("authorization").is_none());
}

#[tokio::test]
async fn a_rejected_ticket_triggers_one_new_login_and_the_call_succeeds() {
    let current = Arc::new(AtomicUsize::new(0));
    let server = serve(Arc::new(pki()), ticket_server(current.clone())).await;
    let c = pinned(&server, password());
    c.version().await.unwrap();
    // The server forgets the ticket (e.g. expired): next call gets 401, logs in, retries.
    current.fetch_add(1, Ordering::SeqCst);
    c.lxc_start("pve", 100).await.unwrap();
    assert_eq!(server.count("POST", "/api2/json/access/ticket"), 2);
    assert_eq!(server.count("POST", "/api2/json/nodes/pve/lxc/100/status/start"), 2);
}

#[tokio::test]
async fn a_wrong_password_is_unauthorized_and_set_auth_replaces_it() {
    let current = Arc::new(AtomicUsize::new(0));
    let server = serve(Arc::new(pki()), ticket_server(current)).await;
    let c = pinned(
        &server,
        Auth::Password {
            username: "root@pam".into(),
            password: "wrong-password".into(),
        },
    );
    let e = c.version().await.unwrap_err();
    assert!(
        matches!(&e, Error::Unauthorized { message, .. } if message == "authentication failure"),
        "{e:?}"
    );
    c.set_auth(password()).unwrap();
    c.version().await.unwrap();
}

#[tokio::test]
async fn failover_skips_a_dead_endpoint_and_remembers_the_live_one() {
    let server = serve(Arc::new(pki()), version_handler).await;
    let dead = format!("https://{}", dead_addr().await);
    let c = Client::new(config(
        vec![dead, server.url()],
        token(),
        TlsMode::Fingerprint(server.fingerprint()),
    ))
    .unwrap();
    c.version().await.unwrap();
    assert!(c.active_endpoint().starts_with(&server.url()));
    c.version().await.unwrap();
    assert_eq!(server.count("GET", "/api2/json/version"), 2);
}

#[tokio::test]
async fn all_endpoints_dead_is_a_retryable_connect_error() {
    let c = Client::new(config(
        vec![
            format!("https://{}", dead_addr().await),
            format!("https://{}", dead_addr().await),
        ],
        token(),
        TlsMode::Insecure,
    ))
    .unwrap();
    let e = c.lxc_start("pve", 100).await.unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert_eq!(e.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn get_is_retried_on_500_but_post_is_not() {
    let gets = Arc::new(AtomicUsize::new(0));
    let g = gets.clone();
    let server = serve(Arc::new(pki()), move |s: &Seen| match s.method.as_str() {
        "GET" if g.fetch_add(1, Ordering::SeqCst) < 2 => err(500, "proxy loop detected", r#"{"data":null}"#),
        "GET" => ok(serde_json::json!([])),
        _ => err(
            500,
            "got unexpected error",
            r#"{"data":null,"message":"got unexpected error\n"}"#,
        ),
    })
    .await;
    let c = pinned(&server, token());
    let nodes = c.nodes().await.unwrap();
    assert!(nodes.is_empty());
    assert_eq!(gets.load(Ordering::SeqCst), 3, "two 500s then success");

    let e = c.lxc_start("pve", 100).await.unwrap_err();
    assert!(
        matches!(&e, Error::Server { status: 500, message, .. } if message == "got unexpected error"),
        "{e:?}"
    );
    assert_eq!(server.count("POST", "/api2/json/nodes/pve/lxc/100/status/start"), 1);
}

#[tokio::test]
async fn get_is_retried_after_a_connect_error_until_the_server_is_up() {
    let pki = Arc::new(pki());
    let addr = dead_addr().await;
    let fp = cert_fingerprint(&pki.leaf_der);
    let mut cfg = config(vec![format!("https://{addr}")], token(), TlsMode::Fingerprint(fp));
    cfg.retry.initial_backoff = Duration::from_millis(300);
    cfg.retry.max_backoff = Duration::from_millis(400);
    let c = Client::new(cfg).unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = serve_on(listener, pki, Arc::new(version_handler)).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(server);
    });
    c.version().await.unwrap();
}

#[tokio::test]
async fn a_custom_reason_phrase_is_the_message_when_the_body_has_none() {
    let server = serve(Arc::new(pki()), |_: &Seen| {
        err(500, "CT is locked (disk)", r#"{"data":null}"#)
    })
    .await;
    let c = pinned(&server, token());
    let e = c
        .lxc_update_config(
            "pve",
            100,
            &ConfigUpdate {
                delete: vec!["mp0".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Locked { reason, method, path, .. }
        if reason == "disk" && method == "PUT" && path == "/nodes/pve/lxc/100/config"),
        "{e:?}"
    );
}

#[tokio::test]
async fn parameter_errors_arrive_with_their_map_over_http() {
    let body = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pve/error.400.param_verification.pve9.constructed.json"),
    )
    .unwrap();
    let server = serve(Arc::new(pki()), move |_: &Seen| {
        err(400, "Parameter verification failed.", &body)
    })
    .await;
    let c = pinned(&server, token());
    let e = c
        .lxc_create(
            "pve",
            &LxcCreateParams {
                vmid: 100,
                ostemplate: "local:vztmpl/x.tar.zst".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    match e {
        Error::InvalidParameters { errors, .. } => assert!(errors.contains_key("memory")),
        other => panic!("{other:?}"),
    }
}

/// A small PVE: tasks, nextid, vzdump, interfaces, create.
fn pve_handler(s: &Seen) -> Reply {
    let upid = "UPID:pve:0002A1B3:0136F0E2:6650A1B2:vzstart:100:operator@pve!k8s:";
    let failed = "UPID:pve:0002A1B4:0136F0E2:6650A1B2:vzstart:101:operator@pve!k8s:";
    let task_path = |u: &str| format!("/api2/json/nodes/pve/tasks/{}/", u);
    match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api2/json/cluster/nextid") => ok(serde_json::json!("100")),
        ("POST", "/api2/json/nodes/pve/vzdump") => ok(serde_json::json!("OK")),
        ("POST", "/api2/json/nodes/pve/lxc") => ok(serde_json::json!(
            "UPID:pve:0002A1B3:0136F0E2:6650A1B2:vzrestore:100:operator@pve!k8s:"
        )),
        ("GET", "/api2/json/nodes/pve/lxc/100/interfaces") => ok(serde_json::Value::Null),
        ("GET", p) if p == format!("{}status", task_path(upid)) => {
            ok(serde_json::json!({"status": "stopped", "exitstatus": "WARNINGS: 2", "upid": upid}))
        }
        ("GET", p) if p == format!("{}status", task_path(failed)) => {
            ok(serde_json::json!({"status": "stopped", "exitstatus": "CT is locked (backup)", "upid": failed}))
        }
        ("GET", p) if p == format!("{}log", task_path(failed)) => {
            let start: usize = s.query.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
            let limit: usize = s.query.get("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
            let all: Vec<serde_json::Value> = (1..=30)
                .map(|n| serde_json::json!({"n": n, "t": if n == 30 { "TASK ERROR: CT is locked (backup)".to_string() } else { format!("line {n}") }}))
                .collect();
            let page: Vec<_> = all.iter().skip(start).take(limit).cloned().collect();
            (200, None, serde_json::json!({"data": page, "total": 30}).to_string())
        }
        _ => err(501, "not implemented", r#"{"data":null}"#),
    }
}

#[tokio::test]
async fn wait_task_returns_warnings_and_a_failed_task_carries_its_log_tail() {
    let server = serve(Arc::new(pki()), pve_handler).await;
    let c = pinned(&server, token());
    let ok_task: Upid = "UPID:pve:0002A1B3:0136F0E2:6650A1B2:vzstart:100:operator@pve!k8s:"
        .parse()
        .unwrap();
    let r = c
        .wait_task(&ok_task, Duration::from_millis(10), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r, TaskResult::Warnings(2));
    // The UPID travels percent-encoded in the path.
    assert!(
        server.seen()[0].raw_path.contains("UPID%3Apve%3A0002A1B3"),
        "{}",
        server.seen()[0].raw_path
    );

    let bad: Upid = "UPID:pve:0002A1B4:0136F0E2:6650A1B2:vzstart:101:operator@pve!k8s:"
        .parse()
        .unwrap();
    let e = c
        .wait_task(&bad, Duration::from_millis(10), Duration::from_secs(2))
        .await
        .unwrap_err();
    match &e {
        Error::TaskFailed {
            exitstatus, log_tail, ..
        } => {
            assert_eq!(exitstatus, "CT is locked (backup)");
            assert_eq!(log_tail.len(), 20);
            assert_eq!(log_tail.last().unwrap(), "TASK ERROR: CT is locked (backup)");
            assert_eq!(log_tail[0], "line 11");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.class(), ErrorClass::Locked);
}

#[tokio::test]
async fn quirky_responses_are_typed_nextid_string_vzdump_ok_and_null_interfaces() {
    let server = serve(Arc::new(pki()), pve_handler).await;
    let c = pinned(&server, token());
    assert_eq!(c.next_id(None).await.unwrap(), 100);
    assert_eq!(
        c.vzdump(
            "pve",
            &VzdumpParams {
                vmid: vec![100, 101],
                ..Default::default()
            }
        )
        .await
        .unwrap(),
        VzdumpResult::NothingToDo
    );
    assert!(c.lxc_interfaces("pve", 100).await.unwrap().is_empty());
    let dump = server.seen().into_iter().find(|s| s.path.ends_with("/vzdump")).unwrap();
    assert_eq!(dump.form["vmid"], "100,101");
}

#[tokio::test]
async fn create_sends_a_form_body_with_booleans_as_0_and_1() {
    let server = serve(Arc::new(pki()), pve_handler).await;
    let c = pinned(&server, token());
    let net = NetConfig {
        name: "eth0".into(),
        bridge: Some("vmbr0".into()),
        firewall: Some(true),
        ip: Some("dhcp".into()),
        ..Default::default()
    };
    let params = LxcCreateParams {
        vmid: 100,
        ostemplate: "local:backup/vzdump-lxc-100-2024_05_24-16_18_26.tar.zst".into(),
        storage: Some("local-lvm".into()),
        networks: [(0, net.encode().unwrap())].into(),
        restore: true,
        force: Some(true),
        unique: Some(false),
        unprivileged: Some(true),
        password: Some(PASSWORD.into()),
        ..Default::default()
    };
    let upid = c.lxc_create("pve", &params).await.unwrap();
    assert_eq!(upid.task_type(), "vzrestore");
    let s = server
        .seen()
        .into_iter()
        .find(|s| s.path == "/api2/json/nodes/pve/lxc")
        .unwrap();
    assert_eq!(
        s.header("content-type").as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(s.form["restore"], "1");
    assert_eq!(s.form["force"], "1");
    assert_eq!(s.form["unique"], "0");
    assert_eq!(s.form["unprivileged"], "1");
    assert_eq!(s.form["net0"], "name=eth0,bridge=vmbr0,firewall=1,ip=dhcp");
    assert_eq!(s.form["vmid"], "100");
    assert!(s.query.is_empty());
    assert!(!format!("{params:?}").contains(PASSWORD));
}

#[tokio::test]
async fn the_request_rate_limit_spaces_calls() {
    let server = serve(Arc::new(pki()), version_handler).await;
    let mut cfg = config(vec![server.url()], token(), TlsMode::Fingerprint(server.fingerprint()));
    cfg.limits.requests_per_second = 20.0;
    cfg.limits.burst = 1;
    let c = Client::new(cfg).unwrap();
    let t0 = std::time::Instant::now();
    for _ in 0..5 {
        c.version().await.unwrap();
    }
    assert!(t0.elapsed() >= Duration::from_millis(190), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn task_slots_limit_concurrency_per_node() {
    let mut cfg = config(vec!["127.0.0.1:1".into()], token(), TlsMode::Insecure);
    cfg.limits.max_concurrent_tasks_per_node = 2;
    let c = Client::new(cfg).unwrap();
    let a = c.acquire_task_slot("pve1").await;
    let _b = c.clone().acquire_task_slot("pve1").await;
    assert!(c.try_acquire_task_slot("pve1").is_none());
    assert!(c.try_acquire_task_slot("pve2").is_some());
    drop(a);
    assert_eq!(c.available_task_slots("pve1"), 1);
}

/// A `MakeWriter` that appends everything to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_credential_appears_in_any_log_line_or_debug_output() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // global, not thread-local: with a thread-local default, callsites first hit by other tests
    // (running in parallel without a subscriber) can cache "never" and drop our events
    tracing::subscriber::set_global_default(subscriber).expect("the only test that installs a subscriber");

    let current = Arc::new(AtomicUsize::new(0));
    let ticket_srv = serve(Arc::new(pki()), ticket_server(current.clone())).await;
    let token_srv = serve(Arc::new(pki()), |s: &Seen| match s.path.as_str() {
        "/api2/json/version" => ok(serde_json::json!({"version": "9.1.1"})),
        _ => err(401, "Authentication failed!", ""),
    })
    .await;

    let mut debug_output = Vec::new();
    // Ticket auth: login, GET, POST, a forced re-login, an error.
    let c = pinned(&ticket_srv, password());
    c.version().await.unwrap();
    c.lxc_start("pve", 100).await.unwrap();
    current.fetch_add(1, Ordering::SeqCst);
    c.version().await.unwrap();
    debug_output.push(format!("{:?}", c.lxc_stop("pve", 100).await.unwrap_err()));
    debug_output.push(format!("{c:?}"));
    // Token auth, including a 401.
    let t = pinned(&token_srv, token());
    t.version().await.unwrap();
    let e = t.nodes().await.unwrap_err();
    debug_output.push(format!("{e:?} {e}"));
    debug_output.push(format!("{t:?}"));
    // Config, credentials and create parameters.
    let cfg = config(vec![token_srv.url()], token(), TlsMode::Insecure);
    debug_output.push(format!("{cfg:?}"));
    debug_output.push(format!("{:?} {} {:?} {}", token(), token(), password(), password()));
    debug_output.push(format!(
        "{:?}",
        LxcCreateParams {
            vmid: 1,
            password: Some(PASSWORD.into()),
            ..Default::default()
        }
    ));

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("Proxmox API call"), "the client did log: {logs}");
    let all = format!("{logs}\n{}", debug_output.join("\n"));
    for secret in [TOKEN_SECRET, PASSWORD, TICKET, CSRF, "PVEAPIToken=", "PVEAuthCookie="] {
        assert!(!all.contains(secret), "{secret} leaked:\n{all}");
    }
}

#[tokio::test]
async fn a_ticket_older_than_the_renewal_age_is_renewed_before_use() {
    let current = Arc::new(AtomicUsize::new(0));
    let server = serve(Arc::new(pki()), ticket_server(current.clone())).await;
    let mut cfg = config(
        vec![server.url()],
        password(),
        TlsMode::Fingerprint(server.fingerprint()),
    );
    cfg.ticket_renew_after = Duration::from_millis(50);
    let c = Client::new(cfg).unwrap();
    c.version().await.unwrap();
    c.version().await.unwrap();
    assert_eq!(server.count("POST", "/api2/json/access/ticket"), 1);
    tokio::time::sleep(Duration::from_millis(80)).await;
    c.version().await.unwrap();
    assert_eq!(
        server.count("POST", "/api2/json/access/ticket"),
        2,
        "renewed proactively"
    );
    assert_eq!(server.count("GET", "/api2/json/version"), 3, "no 401 round trip needed");
}
