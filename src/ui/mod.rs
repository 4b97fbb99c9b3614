//! The management web UI (`run --ui-addr`): server-rendered pages over the `pve.lxc.dev` objects
//! and a few actions, every Kubernetes call made with the signed-in user's own bearer token, so
//! RBAC decides what each user sees and may do (the UI never lends the operator's rights).
//!
//! - [`session`]: the server-side session map, CSRF tokens, one-time messages; [`signin`]: who
//!   signs in and where their lists start.
//! - [`pages`]: the read-only views, [`detail`]: one container's page; [`actions`]: the POSTs
//!   (each one change to an object); [`access`]: which actions RBAC allows (only those are
//!   offered); [`live`]: the server-sent events that keep the table and detail pages live;
//!   [`console`]: a container's console (xterm.js over a websocket the operator joins to
//!   Proxmox's termproxy); [`tasks`]: a container's Proxmox task history.
//! - [`health`]: the badges (the Argo CD health check's mapping); [`model`]: what pages show.
//!
//! Pages are askama templates (`src/ui/templates/`), compiled in; the stylesheet and the one
//! small script (`src/ui/assets/`) are embedded too. The Content-Security-Policy allows no
//! inline script or style.

pub mod access;
pub mod actions;
pub mod console;
pub mod detail;
pub mod edit;
pub mod health;
pub mod live;
pub mod model;
pub mod pages;
pub mod pods;
pub mod session;
pub mod signin;
pub mod snapshots;
pub mod tasks;
pub mod wizard;

use axum::extract::{FromRequestParts, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use session::{Lifetimes, Session, Sessions};
use std::sync::Arc;

/// The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// How the UI listener is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Mark the session cookie `Secure` (the UI is reached over https, e.g. through an Ingress).
    pub secure_cookies: bool,
    /// Session lifetimes.
    pub lifetimes: Lifetimes,
    /// The usage samples the observers record (shared with the controllers).
    pub samples: Option<Arc<crate::controller::cluster::samples::Samples>>,
    /// The operator's Proxmox connections (the console joins them); without them, consoles
    /// cannot be opened.
    pub clusters: Option<Arc<crate::controller::cluster::ClusterRegistry>>,
}

/// What the UI could not do.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The apiserver refused or failed a call (the user's RBAC, a validation error…).
    #[error("{}", kube_message(.0))]
    Kube(#[from] kube::Error),
    /// A page could not be rendered.
    #[error("rendering: {0}")]
    Render(#[from] askama::Error),
    /// The request was refused by the UI itself (CSRF, a bad form).
    #[error("{1}")]
    Refused(StatusCode, String),
}

impl UiError {
    /// The HTTP status to answer with (the apiserver's own for its refusals).
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::Kube(kube::Error::Api(e)) => StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_GATEWAY),
            UiError::Kube(_) => StatusCode::BAD_GATEWAY,
            UiError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            UiError::Refused(code, _) => *code,
        }
    }

    /// A sentence for the user.
    pub fn message(&self) -> String {
        match self {
            UiError::Kube(kube::Error::Api(e)) if e.code == 403 => {
                format!(
                    "Kubernetes refused this for your account (403 Forbidden): {}",
                    e.message
                )
            }
            UiError::Kube(kube::Error::Api(e)) if e.code == 401 => {
                "Kubernetes no longer accepts your token (401): sign in again".to_string()
            }
            UiError::Kube(kube::Error::Api(e)) if e.code == 404 => format!("Not found: {}", e.message),
            UiError::Kube(e) => kube_message(e),
            other => other.to_string(),
        }
    }
}

/// A Kubernetes error in plain words (kube's own `Display` of an API error appends a debug
/// dump of the whole answer).
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(r) => format!("Kubernetes answered {} {}: {}", r.code, r.reason, r.message),
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            format!("The Kubernetes apiserver could not be reached: {e}")
        }
        other => format!("The Kubernetes call failed: {other}"),
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        pages::error_page(status, &self.message())
    }
}

struct Inner {
    base: kube::Config,
    sessions: Sessions,
    options: Options,
    consoles: Arc<console::Open>,
}

/// Shared state of the UI's handlers.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// State for a UI that reaches the apiserver of `base` (its URL, CA and TLS settings; its
    /// credentials are never used: each user's token replaces them).
    pub fn new(base: kube::Config, options: Options) -> AppState {
        let sessions = Sessions::new(options.lifetimes);
        AppState(Arc::new(Inner {
            base,
            sessions,
            options,
            consoles: Arc::default(),
        }))
    }

    /// A client for the apiserver that authenticates with `token` only.
    pub fn client_for(&self, token: &str) -> Result<kube::Client, kube::Error> {
        let mut config = self.0.base.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        kube::Client::try_from(config)
    }

    /// The sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    /// The listener's options.
    pub fn options(&self) -> &Options {
        &self.0.options
    }

    /// The consoles open now.
    pub fn consoles(&self) -> &Arc<console::Open> {
        &self.0.consoles
    }

    /// The operator's Proxmox connections, when the UI runs in the operator.
    pub fn clusters(&self) -> Option<&Arc<crate::controller::cluster::ClusterRegistry>> {
        self.0.options.clusters.as_ref()
    }
}

tokio::task_local! {
    /// The session of the request being answered (for pages made without the extractor, like
    /// error pages, to keep the navigation).
    static CURRENT: Option<Arc<Session>>;
}

/// The signed-in session of the request being answered, if any.
pub fn current_session() -> Option<Arc<Session>> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

fn session_of(headers: &HeaderMap, state: &AppState) -> Option<Arc<Session>> {
    headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| session::cookie_value(c, session::COOKIE))
        .and_then(|id| state.sessions().get(id))
}

async fn remember_session(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let s = session_of(req.headers(), &state);
    CURRENT.scope(s, next.run(req)).await
}

/// A signed-in user (extractor): requests without a live session are sent to the sign-in page.
pub struct User(pub Arc<Session>);

impl FromRequestParts<AppState> for User {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, Response> {
        session_of(&parts.headers, state)
            .map(User)
            .ok_or_else(|| Redirect::to("/ui/login").into_response())
    }
}

impl User {
    /// Refuses a POST whose CSRF token is not this session's.
    pub fn check_csrf(&self, token: &str) -> Result<(), UiError> {
        if session::constant_time_eq(token, &self.0.csrf) {
            Ok(())
        } else {
            Err(UiError::Refused(
                StatusCode::FORBIDDEN,
                "This form is stale or was not sent by this UI (CSRF token missing or wrong): reload the page and try again".into(),
            ))
        }
    }
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    // not `no-referrer`: with it, browsers send `Origin: null` on form posts (refused below)
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    res
}

/// Refuses a cross-site POST (its `Origin` is not this host): a second line behind the CSRF
/// token and the SameSite cookie.
async fn same_origin(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if req.method() == axum::http::Method::POST {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = req.headers().get(header::ORIGIN).and_then(|h| h.to_str().ok());
        if let (Some(origin), Some(host)) = (origin, host) {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
            if origin_host != host {
                return UiError::Refused(StatusCode::FORBIDDEN, "cross-site request refused".into()).into_response();
            }
        }
    }
    next.run(req).await
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (ctype, body): (&str, &'static [u8]) = match name.as_str() {
        "style.css" => ("text/css; charset=utf-8", include_bytes!("assets/style.css")),
        "ui.js" => ("text/javascript; charset=utf-8", include_bytes!("assets/ui.js")),
        "console.js" => ("text/javascript; charset=utf-8", include_bytes!("assets/console.js")),
        "xterm.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("assets/xterm/xterm.js"),
        ),
        "xterm.css" => ("text/css; charset=utf-8", include_bytes!("assets/xterm/xterm.css")),
        "xterm-LICENSE" => ("text/plain; charset=utf-8", include_bytes!("assets/xterm/LICENSE")),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    (
        [(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "max-age=300")],
        body,
    )
        .into_response()
}

/// The UI's routes (all under `/ui`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(pages::clusters))
        .route("/ui/login", get(pages::login_form).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/containers", get(pages::containers))
        .route("/ui/containers/{ns}/{name}", get(detail::container))
        .route("/ui/containers/{ns}/{name}/events", get(live::detail_events))
        .route(
            "/ui/containers/{ns}/{name}/edit",
            get(edit::edit_form).post(edit::apply),
        )
        .route("/ui/containers/{ns}/{name}/console", get(console::page))
        .route("/ui/containers/{ns}/{name}/console/ws", get(console::websocket))
        .route("/ui/containers/{ns}/{name}/tasks", get(tasks::tasks))
        .route("/ui/containers/{ns}/{name}/tasks/log", get(tasks::log))
        .route("/ui/containers/{ns}/{name}/state", post(actions::set_state))
        .route("/ui/containers/{ns}/{name}/backup", post(actions::back_up))
        .route("/ui/containers/{ns}/{name}/restore", post(actions::restore))
        .route(
            "/ui/containers/{ns}/{name}/delete",
            get(detail::confirm_delete).post(actions::delete),
        )
        .route("/ui/backups/{ns}/{name}/restore", post(actions::restore_backup))
        .route("/ui/containers/{ns}/{name}/snapshots", post(snapshots::take))
        .route(
            "/ui/containers/{ns}/{name}/snapshots/{snapshot}/rollback",
            post(snapshots::rollback),
        )
        .route(
            "/ui/containers/{ns}/{name}/snapshots/{snapshot}/delete",
            post(snapshots::delete),
        )
        .route("/ui/new", get(wizard::new_form).post(wizard::create))
        .route("/ui/templates", get(pages::templates))
        .route("/ui/pods", get(pods::pods))
        .route("/ui/pods/{ns}/{name}/log", get(pods::pod_log))
        .route("/ui/schedules", get(pages::schedules))
        .route("/ui/events", get(live::events))
        .route("/ui/assets/{name}", get(asset))
        .fallback(|| async { UiError::Refused(StatusCode::NOT_FOUND, "No such page".into()) })
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::middleware::from_fn_with_state(state.clone(), remember_session))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// At most this many connections are served at once (more wait to be accepted).
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a client may take to send a request's headers (also bounds an idle keep-alive
/// connection): a client that connects and sends nothing cannot hold a connection.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the UI on `listener` until the task is dropped: HTTP/1.1 with a header read timeout
/// ([`HEADER_READ_TIMEOUT`]) and at most [`MAX_CONNECTIONS`] connections.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "web UI listening");
    }
    let app = router(state);
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            // e.g. out of file descriptors: wait instead of spinning
            Err(e) => {
                tracing::warn!(error = %e, "web UI: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                use tower::ServiceExt;
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                // the console's websocket
                .with_upgrades()
                .await;
            drop(permit);
        });
    }
}

/// The state handed to a handler (for the extractor).
pub type St = State<AppState>;

#[cfg(test)]
mod tests;
