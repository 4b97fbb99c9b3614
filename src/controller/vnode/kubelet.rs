//! The kubelet endpoint's server: TLS, the connection bounds, and the routes of one request to
//! [`super::logs`] (`containerLogs`) and [`super::attach`] (`attach`); `exec`, `port-forward`
//! and `run` answer 501 with what to do instead.

use super::attach;
use super::lines::parse_query;
use super::logs::{logs, text, Body, Caller, LogState};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;

/// Serves one request; `client_cert` says whether the caller showed a client certificate the
/// client CA signed (the kube-apiserver).
async fn handle(state: LogState, req: Request<hyper::body::Incoming>, client_cert: bool) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method().as_str(), parts.as_slice()) {
        ("GET", ["healthz"]) => text(StatusCode::OK, "ok"),
        ("GET", ["containerLogs", ns, pod, container]) => {
            let now = jiff::Timestamp::now().as_second();
            let q = match parse_query(req.uri().query().unwrap_or(""), now) {
                Ok(q) => q,
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            };
            let authorization = req
                .headers()
                .get(hyper::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let caller = Caller {
                client_cert,
                authorization,
            };
            logs(state, ns, pod, container, q, caller).await
        }
        ("GET", ["attach", ns, pod, container]) if attach::wants_websocket(&req) => {
            let caller = Caller {
                client_cert,
                authorization: req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            };
            attach::attach(state, req, (ns, pod, container), caller).await
        }
        (_, [op, ..]) if matches!(*op, "exec" | "attach" | "portForward" | "run") => {
            // a Status object: kubectl shows its message (a plain body reaches it empty)
            let status = serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": unsupported(op),
                "reason": "NotImplemented",
                "code": 501,
            });
            let mut r = text(StatusCode::NOT_IMPLEMENTED, status.to_string());
            r.headers_mut().insert(
                "content-type",
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// What `exec`, `attach`, `port-forward` and `run` answer.
fn unsupported(op: &str) -> String {
    let what = match op {
        "exec" | "run" => {
            "Proxmox has no API to run a command in a container; `kubectl logs` shows what the application prints"
        }
        "attach" => {
            "the console is attached over a websocket only (kubectl 1.30 or later), not SPDY; `kubectl logs -f` follows what the application prints"
        }
        _ => "Proxmox offers no port forwarding into a container; reach the Pod IP directly or through a Service",
    };
    format!("{op} is not supported on Proxmox virtual nodes: {what}")
}

/// The TLS settings of the endpoint: a fresh self-signed certificate for `names`; with
/// `client_ca`, only clients with a certificate it signed (the kube-apiserver's kubelet client
/// certificate) are served.
pub fn tls_config(names: Vec<String>, client_ca: Option<&[u8]>) -> Result<rustls::ServerConfig, String> {
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
                let c: rustls::pki_types::CertificateDer = c.map_err(|e| format!("client CA: {e}"))?;
                roots.add(c).map_err(|e| format!("client CA: {e}"))?;
            }
            // optional at the handshake: a caller without one may still show a bearer token
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut tls = builder.with_single_cert(vec![cert], key).map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Serves the endpoint on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, tls: rustls::ServerConfig, state: LogState) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // past the bound a connection is closed at once: the ones served keep their share
        let Some(permit) = state.limits.connection() else {
            tracing::debug!("kubelet endpoint: too many connections, one closed");
            drop(tcp);
            continue;
        };
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let limits = state.limits.clone();
            let Ok(Ok(tls)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await else {
                return;
            };
            // the verifier checked it: any certificate shown is one the client CA signed
            let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move {
                    let timeout = state.limits.request_timeout;
                    let answer = match tokio::time::timeout(timeout, handle(state, req, client_cert)).await {
                        Ok(r) => r,
                        Err(_) => text(StatusCode::GATEWAY_TIMEOUT, "the request took too long; try again"),
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                // `kubectl attach` upgrades to a websocket
                .with_upgrades()
                .await;
        });
    }
}
