//! The operator's HTTP listener: `/healthz` (alive), `/readyz` (caches synced) and `/metrics`
//! (behind a bearer token with `--metrics-auth`: [`crate::metrics_auth`]).

use crate::metrics::Metrics;
use crate::metrics_auth::{MetricsAuth, Verdict};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Readiness shared between the controllers and the listener.
#[derive(Default)]
pub struct Health {
    /// Set once every watch cache has synced.
    pub ready: AtomicBool,
}

/// How long a client may take to send a request's headers (also bounds an idle keep-alive
/// connection), and how long one connection may live at most. A scraper that opens a
/// connection and sends nothing cannot hold it, or the task serving it, forever.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Header read timeout (from the connection becoming ready for a request).
    pub header_read: std::time::Duration,
    /// Upper bound of one connection's life.
    pub connection: std::time::Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: std::time::Duration::from_secs(10),
            connection: std::time::Duration::from_secs(60),
        }
    }
}

/// Serves the health and metrics endpoints on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, health: Arc<Health>, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "health and metrics listener up");
    serve_listener(listener, health, metrics, Timeouts::default()).await
}

/// [`serve`] on a bound listener with the given timeouts; `/metrics` is authenticated when the
/// process asked for it ([`crate::metrics_auth::require`]).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    timeouts: Timeouts,
) -> std::io::Result<()> {
    serve_listener_with(listener, health, metrics, timeouts, crate::metrics_auth::required()).await
}

/// [`serve_listener`] with an explicit `/metrics` authenticator (`None`: open).
pub async fn serve_listener_with(
    listener: tokio::net::TcpListener,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    timeouts: Timeouts,
    auth: Option<Arc<MetricsAuth>>,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let health = health.clone();
        let metrics = metrics.clone();
        let auth = auth.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let health = health.clone();
                let metrics = metrics.clone();
                let auth = auth.clone();
                async move {
                    let path = req.uri().path();
                    if path == "/metrics" {
                        if let Some(auth) = auth {
                            let header = req
                                .headers()
                                .get(hyper::header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok());
                            if let Some(refused) = refuse(auth.check(header).await) {
                                return Ok::<_, std::convert::Infallible>(refused);
                            }
                        }
                    }
                    Ok(route(path, &health, &metrics))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(timeouts.header_read)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(timeouts.connection, conn).await;
        });
    }
}

/// Set once when the process finds itself broken (a lock poisoned by a panic while it was
/// held): `/healthz` fails from then on, so Kubernetes restarts the pod instead of leaving a
/// process that may act on half-updated state.
static BROKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records that the process is broken: `/healthz` fails from then on; the first reason is kept.
pub fn report_broken(what: impl Into<String>) {
    let what = what.into();
    tracing::error!(reason = %what, "the process is broken; /healthz fails from now on");
    let _ = BROKEN.set(what);
}

/// Why the process is broken, if it is.
pub fn broken() -> Option<&'static str> {
    BROKEN.get().map(String::as_str)
}

/// The answer of `/healthz`: OK, or 500 naming why the process is broken.
fn liveness(broken: Option<&str>) -> (StatusCode, String) {
    match broken {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(why) => (StatusCode::INTERNAL_SERVER_ERROR, format!("broken: {why}\n")),
    }
}

/// The answer to a `/metrics` request whose credentials are not good enough (`None`: serve it).
fn refuse(verdict: Result<Verdict, crate::metrics_auth::Error>) -> Option<Response<Full<Bytes>>> {
    let (code, body) = match verdict {
        Ok(Verdict::Allowed) => return None,
        Ok(Verdict::Unauthenticated(why)) => (StatusCode::UNAUTHORIZED, format!("unauthorized: {why}\n")),
        Ok(Verdict::Forbidden(why)) => (StatusCode::FORBIDDEN, format!("forbidden: {why}\n")),
        Err(e) => {
            tracing::warn!(error = %e, "could not check the credentials of a /metrics request");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "could not check the credentials\n".to_string(),
            )
        }
    };
    let mut r = Response::builder()
        .status(code)
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    if code == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
    }
    Some(r)
}

fn route(path: &str, health: &Health, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (code, ctype, body) = match path {
        "/healthz" => {
            let (code, body) = liveness(broken());
            (code, "text/plain", body)
        }
        "/readyz" if health.ready.load(Ordering::Relaxed) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "caches not synced yet\n".to_string(),
        ),
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", metrics.render()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".to_string()),
    };
    Response::builder()
        .status(code)
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncReadExt;

    #[test]
    fn a_broken_process_fails_its_liveness_probe() {
        assert_eq!(liveness(None).0, StatusCode::OK);
        let (code, body) = liveness(Some("lock of the task slots poisoned"));
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("task slots"));
    }

    #[tokio::test]
    async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let timeouts = Timeouts {
            header_read: Duration::from_millis(300),
            connection: Duration::from_secs(30),
        };
        tokio::spawn(serve_listener(listener, Arc::new(Health::default()), metrics, timeouts));
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("closed by the server");
        assert!(matches!(n, Ok(0) | Err(_)), "the server closes the connection: {n:?}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
