//! Live rows: `GET /ui/events` is a server-sent events stream fed by a watch on `LxcContainer`s
//! that the UI makes with the user's own client (so RBAC applies to the stream as to the list).
//! Each event `row` carries `{"id": …, "html": …}`: the table row's id and its new HTML, empty
//! when the row goes away. The stream ends with the session.

use super::model::ContainerRow;
use super::pages::{api, resource, Filter, RowFragment};
use super::{AppState, UiError, User};
use crate::crd::LxcContainer;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::{watcher, WatchStreamExt};
use std::convert::Infallible;

/// The SSE message for one container (its row's new HTML, or empty when it no longer shows).
pub fn row_event(obj: &DynamicObject, q: &str, csrf: &str, deleted: bool) -> Option<Event> {
    let json = super::pages::to_json(obj, &resource::<LxcContainer>());
    let row = ContainerRow::of(&json, jiff::Timestamp::now());
    let html = if deleted || !row.matches(q) {
        String::new()
    } else {
        RowFragment { row: &row, csrf }.render().ok()?
    };
    Event::default()
        .event("row")
        .json_data(serde_json::json!({"id": row.id, "html": html}))
        .ok()
}

/// Whether a watch error is the apiserver refusing the user (401 or 403): retrying won't help.
pub fn refused(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(r))
        | watcher::Error::WatchStartFailed(kube::Error::Api(r))
        | watcher::Error::WatchFailed(kube::Error::Api(r)) => r.code == 401 || r.code == 403,
        watcher::Error::WatchError(s) => s.code == 401 || s.code == 403,
        _ => false,
    }
}

/// `GET /ui/events?ns=&q=`: the containers table's live updates.
pub async fn events(State(state): State<AppState>, user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let q = f.q.clone().unwrap_or_default();
    let session = user.0.clone();
    let api = api(&session.client, &resource::<LxcContainer>(), &ns);
    let w = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let csrf = session.csrf.clone();
    let stream = futures::stream::unfold((w, false), move |(mut w, failed)| {
        let (q, csrf) = (q.clone(), csrf.clone());
        async move {
            if failed {
                return None;
            }
            loop {
                match w.next().await? {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        if let Some(e) = row_event(&o, &q, &csrf, false) {
                            return Some((e, (w, false)));
                        }
                    }
                    Ok(watcher::Event::Delete(o)) => {
                        if let Some(e) = row_event(&o, &q, &csrf, true) {
                            return Some((e, (w, false)));
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        return Some((Event::default().event("synced").data("ok"), (w, false)))
                    }
                    Ok(watcher::Event::Init) => {}
                    // a refusal ends the stream; anything else is retried with a backoff
                    Err(e) if refused(&e) => {
                        let msg = format!("live updates stopped: {e}");
                        return Some((Event::default().event("failed").data(msg), (w, true)));
                    }
                    Err(e) => tracing::debug!(error = %e, "web UI: watch failed; retrying"),
                }
            }
        }
    });
    let (sessions, id) = (state.clone(), session.id.clone());
    let ends = tokio::time::sleep_until(session.expires.into());
    let stream = stream
        .take_while(move |_| std::future::ready(sessions.sessions().contains(&id)))
        .take_until(ends)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}
