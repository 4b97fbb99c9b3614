//! The HTTP core: endpoints and failover, authentication, rate limiting, GET retries,
//! envelope unwrapping and error mapping. Typed operations live in `api.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::auth::Auth;
use super::endpoint::{normalize_endpoint, read_limited, Body, ReadError, DEFAULT_MAX_RESPONSE_BYTES};
use super::error::{Error, Result};
use super::tls::{self, TlsMode};

/// Request-rate and task-concurrency limits (from `ProxmoxCluster.spec.limits`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Sustained API requests per second for the whole cluster; `0` or less = unlimited.
    pub requests_per_second: f64,
    /// Token-bucket size: requests that may be sent at once after an idle period (≥ 1).
    pub burst: u32,
    /// Concurrent task-starting calls per node handed out by
    /// [`Client::acquire_task_slot`]; `0` = unlimited.
    pub max_concurrent_tasks_per_node: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: 20.0,
            burst: 10,
            max_concurrent_tasks_per_node: 4,
        }
    }
}

/// Retry policy for idempotent (GET) requests. Other methods are never retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time (with jitter).
    pub initial_backoff: Duration,
    /// Upper bound for one backoff.
    pub max_backoff: Duration,
    /// No retry is started after this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Called after every HTTP exchange with `(method, path, status, elapsed)`; status 0 means
/// no response (connect or transport error). For metrics.
#[derive(Clone)]
pub struct RequestHook(pub Arc<RequestHookFn>);

/// The function inside a [`RequestHook`].
pub type RequestHookFn = dyn Fn(&str, &str, u16, Duration) + Send + Sync;

impl std::fmt::Debug for RequestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestHook")
    }
}

/// Everything needed to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API endpoints tried in order: `https://host:8006`, `host:8006`, `host` or a full
    /// base `https://host:8006/api2/json`. The first one that accepts a connection is
    /// remembered and used until it fails.
    pub endpoints: Vec<String>,
    /// Credentials.
    pub auth: Auth,
    /// Certificate checking.
    pub tls: TlsMode,
    /// Rate and concurrency limits.
    pub limits: Limits,
    /// GET retry policy.
    pub retry: RetryPolicy,
    /// TCP+TLS connect timeout per endpoint.
    pub connect_timeout: Duration,
    /// Timeout of a whole request (connect to last body byte).
    pub request_timeout: Duration,
    /// A login ticket older than this is renewed before use (tickets live 2 h).
    pub ticket_renew_after: Duration,
    /// Observer of every request (metrics); none by default.
    pub on_request: Option<RequestHook>,
    /// Largest response body accepted, bytes; a bigger one fails with
    /// [`Error::ResponseTooLarge`] instead of exhausting memory. Default 64 MiB.
    pub max_response_bytes: u64,
}

impl ClientConfig {
    /// A configuration with default TLS (verify), limits, retries and timeouts.
    pub fn new<I, S>(endpoints: I, auth: Auth) -> ClientConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            auth,
            tls: TlsMode::default(),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            ticket_renew_after: Duration::from_secs(90 * 60),
            on_request: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

struct Ticket {
    ticket: String,
    csrf: String,
    obtained: Instant,
}

struct AuthState {
    auth: Auth,
    ticket: Option<Arc<Ticket>>,
    generation: u64,
}

struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().expect("rate limiter poisoned");
                let now = Instant::now();
                let elapsed = now.duration_since(s.1).as_secs_f64();
                s.0 = (s.0 + elapsed * self.rate).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

pub(crate) struct RawResponse {
    pub status: u16,
    pub reason: Option<String>,
    pub body: Body,
}

struct Inner {
    http: reqwest::Client,
    endpoints: Vec<String>,
    active: AtomicUsize,
    auth: RwLock<AuthState>,
    login_lock: tokio::sync::Mutex<()>,
    bucket: Option<TokenBucket>,
    max_tasks_per_node: u32,
    task_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    retry: RetryPolicy,
    ticket_renew_after: Duration,
    on_request: Option<RequestHook>,
    max_response_bytes: u64,
    /// The TLS settings and connect timeout, for the console's websocket.
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
}

/// An async Proxmox VE API client. Cheap to clone (an `Arc` inside); share it freely.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// The user the client acts as (`user@realm` or `user@realm!token`).
    pub fn principal(&self) -> String {
        self.inner
            .auth
            .read()
            .map(|a| a.auth.principal().to_string())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let principal = self
            .inner
            .auth
            .read()
            .map(|a| a.auth.principal().to_string())
            .unwrap_or_default();
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .field("principal", &principal)
            .finish_non_exhaustive()
    }
}

/// Characters escaped in a path segment: everything but `A-Za-z0-9-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment (node names, storage ids, UPIDs, volume ids...).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn error_chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn sensitive(v: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(v).map_err(|_| Error::Config {
        message: "credential contains characters not allowed in an HTTP header".to_string(),
    })?;
    h.set_sensitive(true);
    Ok(h)
}

impl Client {
    /// Builds a client. Fails on unusable configuration (no endpoints, bad URL, bad CA PEM,
    /// bad fingerprint, malformed credentials); does not contact the server.
    pub fn new(config: ClientConfig) -> Result<Client> {
        if config.endpoints.is_empty() {
            return Err(Error::Config {
                message: "no endpoints".to_string(),
            });
        }
        config.auth.validate()?;
        let endpoints = config
            .endpoints
            .iter()
            .map(|e| normalize_endpoint(e))
            .collect::<Result<Vec<_>>>()?;
        let tls = tls::client_config(&config.tls)?;
        let ws_tls = Arc::new(tls.clone());
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // pveproxy closes idle keep-alive connections after 5 s.
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("proxmox-lxc-operator/", env!("CARGO_PKG_VERSION")))
            .http1_only()
            .build()
            .map_err(|e| Error::Config {
                message: format!("HTTP client: {}", error_chain_text(&e)),
            })?;
        let bucket =
            (config.limits.requests_per_second > 0.0 && config.limits.requests_per_second.is_finite()).then(|| {
                let burst = f64::from(config.limits.burst.max(1));
                TokenBucket {
                    rate: config.limits.requests_per_second,
                    burst,
                    state: Mutex::new((burst, Instant::now())),
                }
            });
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoints,
                active: AtomicUsize::new(0),
                auth: RwLock::new(AuthState {
                    auth: config.auth,
                    ticket: None,
                    generation: 0,
                }),
                login_lock: tokio::sync::Mutex::new(()),
                bucket,
                max_tasks_per_node: config.limits.max_concurrent_tasks_per_node,
                task_slots: Mutex::new(HashMap::new()),
                retry: config.retry,
                ticket_renew_after: config.ticket_renew_after,
                on_request: config.on_request.clone(),
                max_response_bytes: config.max_response_bytes,
                tls: ws_tls,
                connect_timeout: config.connect_timeout,
            }),
        })
    }

    /// Replaces the credentials (secret rotation). A cached ticket is dropped; the next
    /// request uses the new credentials.
    pub fn set_auth(&self, auth: Auth) -> Result<()> {
        auth.validate()?;
        let mut st = self.inner.auth.write().expect("auth lock poisoned");
        st.auth = auth;
        st.ticket = None;
        st.generation += 1;
        tracing::info!(principal = st.auth.principal(), "Proxmox credentials replaced");
        Ok(())
    }

    /// The normalized endpoint base URLs, in configured order.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    /// The endpoint currently used first (the last one that accepted a connection).
    pub fn active_endpoint(&self) -> &str {
        &self.inner.endpoints[self.inner.active.load(Ordering::Relaxed) % self.inner.endpoints.len()]
    }

    fn node_semaphore(&self, node: &str) -> Arc<Semaphore> {
        let mut m = self.inner.task_slots.lock().expect("task slot map poisoned");
        m.entry(node.to_string())
            .or_insert_with(|| {
                let n = match self.inner.max_tasks_per_node {
                    0 => Semaphore::MAX_PERMITS,
                    n => n as usize,
                };
                Arc::new(Semaphore::new(n))
            })
            .clone()
    }

    /// Waits for one of the node's task slots (`limits.max_concurrent_tasks_per_node`).
    ///
    /// The task-starting methods do **not** take a slot themselves: the caller takes one
    /// before starting a task and keeps the permit until the task is seen finished (e.g.
    /// across [`Client::wait_task`]), then drops it.
    pub async fn acquire_task_slot(&self, node: &str) -> OwnedSemaphorePermit {
        self.node_semaphore(node)
            .acquire_owned()
            .await
            .expect("task semaphores are never closed")
    }

    /// Like [`Client::acquire_task_slot`] but returns `None` instead of waiting.
    pub fn try_acquire_task_slot(&self, node: &str) -> Option<OwnedSemaphorePermit> {
        self.node_semaphore(node).try_acquire_owned().ok()
    }

    /// Free task slots on a node right now.
    pub fn available_task_slots(&self, node: &str) -> usize {
        self.node_semaphore(node).available_permits()
    }

    async fn rate_limit(&self) {
        if let Some(b) = &self.inner.bucket {
            b.acquire().await;
        }
    }

    /// One HTTP exchange with endpoint failover on connect and TLS errors (nothing sent yet).
    pub(crate) async fn send_raw(
        &self,
        method: &Method,
        path: &str,
        params: &[(String, String)],
        headers: HeaderMap,
    ) -> Result<RawResponse> {
        self.rate_limit().await;
        let n = self.inner.endpoints.len();
        let start = self.inner.active.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let base = &self.inner.endpoints[idx];
            let url = format!("{base}{path}");
            let mut req = self.inner.http.request(method.clone(), &url).headers(headers.clone());
            req = if *method == Method::GET || *method == Method::DELETE {
                req.query(params)
            } else {
                req.form(params)
            };
            let t0 = Instant::now();
            let result = req.send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    if let Some(h) = &self.inner.on_request {
                        (h.0)(method.as_str(), path, 0, t0.elapsed());
                    }
                    let err = map_transport_error(&e, method, path, base);
                    // Nothing was sent yet: another endpoint (another node, with its own
                    // certificate) may work.
                    let before_request = matches!(
                        err,
                        Error::Connect { .. }
                            | Error::Tls { .. }
                            | Error::TlsFingerprintMismatch { .. }
                            | Error::TlsUnknownCa { .. }
                    );
                    if before_request {
                        tracing::warn!(endpoint = %base, method = %method, path, error = %err, "Proxmox endpoint not usable, trying next");
                        failures.push(err);
                        continue;
                    }
                    return Err(err);
                }
            };
            if idx != start {
                self.inner.active.store(idx, Ordering::Relaxed);
                tracing::info!(endpoint = %base, "switched to Proxmox endpoint");
            }
            let status = resp.status().as_u16();
            let reason = resp
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .or_else(|| resp.status().canonical_reason().map(str::to_string));
            let body = match read_limited(resp, self.inner.max_response_bytes, method, path, base).await {
                Ok(b) => b,
                Err(ReadError::TooLarge(e)) => return Err(e),
                Err(ReadError::Transport(e)) => return Err(map_transport_error(&e, method, path, base)),
            };
            if let Some(h) = &self.inner.on_request {
                (h.0)(method.as_str(), path, status, t0.elapsed());
            }
            tracing::debug!(
                method = %method,
                path,
                endpoint = %base,
                status,
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "Proxmox API call"
            );
            return Ok(RawResponse { status, reason, body });
        }
        if failures.len() == 1 {
            return Err(failures.remove(0));
        }
        let message = failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        if failures.iter().all(|f| matches!(f, Error::Connect { .. })) {
            // all unreachable: still a Connect error (the last endpoint), naming every one
            if let Some(Error::Connect { endpoint, .. }) = failures.pop() {
                return Err(Error::Connect {
                    method: method.to_string(),
                    path: path.to_string(),
                    endpoint,
                    message,
                });
            }
        }
        Err(Error::Endpoints {
            method: method.to_string(),
            path: path.to_string(),
            failures,
            message,
        })
    }

    async fn ensure_ticket(&self, generation_seen_bad: Option<u64>) -> Result<Arc<Ticket>> {
        let fresh = |st: &AuthState| -> Option<Arc<Ticket>> {
            let t = st.ticket.as_ref()?;
            if Some(st.generation) == generation_seen_bad {
                return None;
            }
            (t.obtained.elapsed() < self.inner.ticket_renew_after).then(|| t.clone())
        };
        if let Some(t) = fresh(&self.inner.auth.read().expect("auth lock poisoned")) {
            return Ok(t);
        }
        let _guard = self.inner.login_lock.lock().await;
        let (username, password, generation) = {
            let st = self.inner.auth.read().expect("auth lock poisoned");
            if let Some(t) = fresh(&st) {
                return Ok(t);
            }
            match &st.auth {
                Auth::Password { username, password } => (username.clone(), password.clone(), st.generation),
                Auth::Token { .. } => {
                    return Err(Error::Config {
                        message: "ticket requested with token auth".to_string(),
                    })
                }
            }
        };
        let path = "/access/ticket";
        let params = vec![
            ("username".to_string(), username.clone()),
            ("password".to_string(), password),
        ];
        let raw = self.send_raw(&Method::POST, path, &params, HeaderMap::new()).await?;
        let body = raw.body.bytes();
        if !(200..300).contains(&raw.status) {
            return Err(Error::from_response(
                "POST",
                path,
                raw.status,
                raw.reason.as_deref(),
                &body,
            ));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| Error::Decode {
            method: "POST".into(),
            path: path.into(),
            message: e.to_string(),
        })?;
        let data = &v["data"];
        let (Some(ticket), Some(csrf)) = (data["ticket"].as_str(), data["CSRFPreventionToken"].as_str()) else {
            return Err(Error::Decode {
                method: "POST".into(),
                path: path.into(),
                message: "login response without ticket or CSRFPreventionToken".into(),
            });
        };
        let t = Arc::new(Ticket {
            ticket: ticket.to_string(),
            csrf: csrf.to_string(),
            obtained: Instant::now(),
        });
        let mut st = self.inner.auth.write().expect("auth lock poisoned");
        if st.generation == generation {
            st.ticket = Some(t.clone());
            st.generation += 1;
        }
        tracing::debug!(user = %username, "obtained Proxmox login ticket");
        Ok(t)
    }

    /// The active endpoint, the TLS settings and the connect timeout (the console's websocket).
    pub(crate) fn console_transport(&self) -> (String, Arc<rustls::ClientConfig>, Duration) {
        (
            self.active_endpoint().to_string(),
            self.inner.tls.clone(),
            self.inner.connect_timeout,
        )
    }

    pub(crate) async fn auth_headers(&self, method: &Method, bad_generation: Option<u64>) -> Result<(HeaderMap, u64)> {
        let (auth, generation) = {
            let st = self.inner.auth.read().expect("auth lock poisoned");
            (st.auth.clone(), st.generation)
        };
        let mut h = HeaderMap::new();
        match auth {
            Auth::Token { token_id, secret } => {
                h.insert(AUTHORIZATION, sensitive(&format!("PVEAPIToken={token_id}={secret}"))?);
                Ok((h, generation))
            }
            Auth::Password { .. } => {
                let t = self.ensure_ticket(bad_generation).await?;
                let generation = self.inner.auth.read().expect("auth lock poisoned").generation;
                h.insert(
                    COOKIE,
                    sensitive(&format!("PVEAuthCookie={}", encode_segment(&t.ticket)))?,
                );
                if *method != Method::GET {
                    h.insert("CSRFPreventionToken", sensitive(&t.csrf)?);
                }
                Ok((h, generation))
            }
        }
    }

    /// One attempt including authentication (and one re-login on 401 with ticket auth).
    async fn execute_once(&self, method: &Method, path: &str, params: &[(String, String)]) -> Result<Body> {
        let (headers, generation) = self.auth_headers(method, None).await?;
        let mut raw = self.send_raw(method, path, params, headers).await?;
        let is_ticket = matches!(
            self.inner.auth.read().expect("auth lock poisoned").auth,
            Auth::Password { .. }
        );
        if raw.status == 401 && is_ticket {
            // A 401 means nothing was executed: log in again and resend once.
            tracing::info!(method = %method, path, "Proxmox ticket rejected, logging in again");
            let (headers, _) = self.auth_headers(method, Some(generation)).await?;
            raw = self.send_raw(method, path, params, headers).await?;
        }
        let m = method.as_str();
        if !(200..300).contains(&raw.status) {
            return Err(Error::from_response(
                m,
                path,
                raw.status,
                raw.reason.as_deref(),
                &raw.body.bytes(),
            ));
        }
        Ok(raw.body)
    }

    /// Sends a request and returns the whole JSON envelope. GET requests are retried on
    /// retryable errors with jittered exponential backoff; other methods are sent once.
    pub(crate) async fn request_envelope(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value> {
        let m = method.as_str().to_string();
        let body = self.request_body(method, path, params).await?;
        if body.is_blank() {
            return Ok(Value::Null);
        }
        let body = body.bytes();
        serde_json::from_slice(&body).map_err(|e| Error::Decode {
            method: m,
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Sends a request (GETs retried, see [`Client::request_envelope`]) and returns the body of
    /// its successful answer.
    async fn request_body(&self, method: Method, path: &str, params: &[(String, String)]) -> Result<Body> {
        let retry = &self.inner.retry;
        let attempts = if method == Method::GET {
            retry.max_attempts.max(1)
        } else {
            1
        };
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.execute_once(&method, path, params).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if attempt >= attempts || !e.is_retryable() {
                        return Err(e);
                    }
                    let exp = retry
                        .initial_backoff
                        .saturating_mul(1u32 << (attempt - 1).min(16))
                        .min(retry.max_backoff);
                    let jittered = exp.mul_f64(rand::rng().random_range(0.5..=1.0));
                    if started.elapsed() + jittered > retry.max_elapsed {
                        return Err(e);
                    }
                    tracing::debug!(method = %method, path, attempt, error = %e, backoff_ms = jittered.as_millis() as u64, "retrying GET");
                    tokio::time::sleep(jittered).await;
                }
            }
        }
    }

    /// Sends a request and deserializes the envelope's `data`.
    pub(crate) async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<T> {
        /// `{"data": …}` decoded straight into `T`: no intermediate JSON tree (the inventory of
        /// a 10,000-guest cluster is megabytes of JSON; a `Value` of it is several times that).
        #[derive(serde::Deserialize)]
        struct Envelope<T> {
            /// missing or null: `None` (serde's rule for `Option` fields)
            data: Option<T>,
        }
        let m = method.as_str().to_string();
        let body = self.request_body(method, path, params).await?;
        let decode_err = |e: serde_json::Error| Error::Decode {
            method: m.clone(),
            path: path.to_string(),
            message: e.to_string(),
        };
        // decoded as it is read, each chunk freed once decoded (see `Body`)
        let data = if body.is_blank() {
            None
        } else {
            let reader = std::io::BufReader::with_capacity(16 * 1024, body.reader());
            serde_json::from_reader::<_, Envelope<T>>(reader)
                .map_err(decode_err)?
                .data
        };
        match data {
            Some(d) => Ok(d),
            // no data (or null): whatever `T` makes of null (`()`, `None`), else a decode error
            None => serde_json::from_value(Value::Null).map_err(decode_err),
        }
    }

    /// Escape hatch for endpoints without a typed method: sends `params` (query for
    /// GET/DELETE, form body otherwise) to `path` (below `/api2/json`, already
    /// percent-encoded, see [`encode_segment`]) and returns the unwrapped `data`.
    pub async fn raw_request(&self, method: Method, path: &str, params: &[(String, String)]) -> Result<Value> {
        self.request(method, path, params).await
    }
}

fn map_transport_error(e: &reqwest::Error, method: &Method, path: &str, endpoint: &str) -> Error {
    if let Some(t) = tls::tls_error(e, endpoint) {
        return t;
    }
    let message = error_chain_text(e);
    let method = method.to_string();
    let path = path.to_string();
    if e.is_connect() {
        Error::Connect {
            method,
            path,
            endpoint: endpoint.to_string(),
            message,
        }
    } else if e.is_timeout() {
        Error::Timeout { method, path, message }
    } else {
        Error::Transport { method, path, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(
            encode_segment("UPID:pve:0001:0002:0003:vzstart:100:root@pam!tok:"),
            "UPID%3Apve%3A0001%3A0002%3A0003%3Avzstart%3A100%3Aroot%40pam%21tok%3A"
        );
        assert_eq!(encode_segment("local:vztmpl/a b.tar"), "local%3Avztmpl%2Fa%20b.tar");
    }

    #[tokio::test(start_paused = true)]
    async fn the_token_bucket_spaces_requests_after_the_burst() {
        let b = TokenBucket {
            rate: 10.0,
            burst: 2.0,
            state: Mutex::new((2.0, Instant::now())),
        };
        let t0 = Instant::now();
        for _ in 0..6 {
            b.acquire().await;
        }
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(390) && el < Duration::from_millis(500),
            "{el:?}"
        );
    }
}
