//! Live pages: server-sent event streams fed by watches on `LxcContainer`s that the UI makes
//! with the user's own client (so RBAC applies to the stream as to the list).
//!
//! - `GET /ui/events`: the containers table. Each event `row` carries `{"id": …, "html": …}`:
//!   the table row's id and its new HTML, empty when the row goes away.
//! - `GET /ui/containers/{ns}/{name}/events`: one container's page. Each event `detail`
//!   carries the new HTML of the page's live part (state, health, actions, conditions); `gone`
//!   tells that the object was deleted.
//!
//! Both end with the session, a refusal ends them with `failed` (a sentence), and a session
//! holds at most [`super::session::MAX_STREAMS_PER_SESSION`] of them at once.

use super::access::{self, Access};
use super::detail::{Detail, DetailFragment};
use super::model::ContainerRow;
use super::pages::{api, checked, resource, Filter, RowFragment};
use super::session::{Session, StreamSlot};
use super::{AppState, UiError, User};
use crate::crd::LxcContainer;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{watcher, WatchStreamExt};
use std::convert::Infallible;
use std::sync::Arc;

/// The SSE message for one container (its row's new HTML, or empty when it no longer shows).
pub fn row_event(obj: &DynamicObject, q: &str, csrf: &str, can_patch: bool, deleted: bool) -> Option<Event> {
    let json = super::pages::to_json(obj, &resource::<LxcContainer>());
    let row = ContainerRow::of(&json, jiff::Timestamp::now());
    let html = if deleted || !row.matches(q) {
        String::new()
    } else {
        RowFragment {
            row: &row,
            csrf,
            can_patch,
        }
        .render()
        .ok()?
    };
    Event::default()
        .event("row")
        .json_data(serde_json::json!({"id": row.id, "html": html}))
        .ok()
}

/// The SSE message for a container's page: the HTML of its live part, or `gone`.
pub fn detail_event(obj: &DynamicObject, csrf: &str, access: Access, deleted: bool) -> Option<Event> {
    if deleted {
        return Some(Event::default().event("gone").data("deleted"));
    }
    let json = super::pages::to_json(obj, &resource::<LxcContainer>());
    let live = Detail::of(&json, csrf, access);
    let html = DetailFragment { live: &live }.render().ok()?;
    Event::default()
        .event("detail")
        .json_data(serde_json::json!({ "html": html }))
        .ok()
}

/// Whether a watch error is the apiserver refusing the user (401 or 403): retrying won't help.
pub fn refused(e: &watcher::Error) -> bool {
    refusal(e).is_some()
}

fn refusal(e: &watcher::Error) -> Option<&kube::core::Status> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(r))
        | watcher::Error::WatchStartFailed(kube::Error::Api(r))
        | watcher::Error::WatchFailed(kube::Error::Api(r)) => (r.code == 401 || r.code == 403).then_some(r.as_ref()),
        watcher::Error::WatchError(s) => (s.code == 401 || s.code == 403).then_some(s.as_ref()),
        _ => None,
    }
}

/// Why a stream stopped, in plain words (the apiserver's message, never a debug dump).
pub fn stopped_because(e: &watcher::Error) -> String {
    match refusal(e) {
        Some(r) if r.code == 401 => {
            "Live updates stopped: Kubernetes no longer accepts your token (401); sign in again.".into()
        }
        Some(r) => format!(
            "Live updates stopped: Kubernetes refused this for your account (403 Forbidden): {}",
            r.message
        ),
        None => "Live updates stopped: the watch failed.".into(),
    }
}

type Watch = BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>;

/// The SSE stream of watch `w`: `render` turns an object (and whether it was deleted) into an
/// event; `synced` after the first list; `failed` and the end on a refusal. It ends with the
/// session (sign-out or expiry) and holds `slot` while open.
fn sse<F>(state: AppState, session: Arc<Session>, slot: StreamSlot, w: Watch, render: F) -> Response
where
    F: Fn(&DynamicObject, bool) -> Option<Event> + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let stream = futures::stream::unfold((w, false), move |(mut w, failed)| {
        let render = render.clone();
        async move {
            if failed {
                return None;
            }
            loop {
                match w.next().await? {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        if let Some(e) = render(&o, false) {
                            return Some((e, (w, false)));
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        if let Some(e) = render(&o, true) {
                            return Some((e, (w, false)));
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        return Some((Event::default().event("synced").data("ok"), (w, false)))
                    }
                    Ok(watcher::Event::Init) => {}
                    // a refusal ends the stream; anything else is retried with a backoff
                    Err(e) if refused(&e) => {
                        let msg = stopped_because(&e);
                        return Some((Event::default().event("failed").data(msg), (w, true)));
                    }
                    Err(e) => tracing::debug!(error = %e, "web UI: watch failed; retrying"),
                }
            }
        }
    });
    let id = session.id.clone();
    let ends = tokio::time::sleep_until(session.expires.into());
    let stream = stream
        .take_while(move |_| std::future::ready(state.sessions().contains(&id)))
        .take_until(ends)
        .map(move |e| {
            let _held = &slot;
            Ok::<_, Infallible>(e)
        });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

fn slot(session: &Arc<Session>) -> Result<StreamSlot, UiError> {
    session.open_stream().ok_or_else(|| {
        UiError::Refused(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "This session already has {} live pages open: close some tabs of this UI.",
                super::session::MAX_STREAMS_PER_SESSION
            ),
        )
    })
}

/// `GET /ui/events?ns=&q=`: the containers table's live updates.
pub async fn events(State(state): State<AppState>, user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let q = f.q.clone().unwrap_or_default();
    let session = user.0.clone();
    let slot = slot(&session)?;
    let can_patch = access::access(&session, &ns).await.patch;
    let api = api(&session.client, &resource::<LxcContainer>(), &ns);
    let w = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let csrf = session.csrf.clone();
    Ok(sse(state, session, slot, w, move |o, deleted| {
        row_event(o, &q, &csrf, can_patch, deleted)
    }))
}

/// `GET /ui/containers/{ns}/{name}/events`: a container page's live updates.
pub async fn detail_events(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let session = user.0.clone();
    let slot = slot(&session)?;
    let access = access::access(&session, &ns).await;
    let api = api(&session.client, &resource::<LxcContainer>(), &ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let w = watcher(api, config).default_backoff().boxed();
    let csrf = session.csrf.clone();
    Ok(sse(state, session, slot, w, move |o, deleted| {
        detail_event(o, &csrf, access, deleted)
    }))
}
