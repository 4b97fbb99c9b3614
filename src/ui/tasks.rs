//! A container's Proxmox task history: `GET /ui/containers/{ns}/{name}/tasks` (type, status,
//! start, duration, who) and `…/tasks/log?upid=` (one task's log).
//!
//! Users have no Proxmox token, so the operator reads the tasks with its own. It lends that
//! reach only as far as the user's own RBAC goes: the `LxcContainer` is read with the user's
//! token first (a user who may not `get` it gets the apiserver's refusal), and only that
//! container's tasks are shown: those of its vmid on its node (`GET /nodes/{node}/tasks?vmid=`)
//! started since the object was created (a vmid used before by someone else's container shows
//! none of that container's tasks). A log is read only for a task of that list. UPIDs are shown
//! without the API token's name (half of the operator's credential).

use super::console::placement;
use super::pages::{api, checked, render, resource, to_json, Chrome};
use super::{AppState, UiError, User};
use crate::controller::cluster::{ClusterHandle, ClusterKey};
use crate::crd::LxcContainer;
use crate::pve::{TaskStatus, Upid};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// At most this many tasks are listed (the newest).
pub const MAX_TASKS: u64 = 50;

/// At most this many lines of a task log are shown (its end).
pub const MAX_LOG_LINES: u64 = 500;

/// One task as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The UPID without the token name (the log link's key).
    pub upid: String,
    /// Task type (`vzcreate`, `vzstart`, `vzdump`, `vncproxy`…).
    pub kind: String,
    /// `running`, `OK`, `WARNINGS: n` or the error.
    pub status: String,
    /// Whether it failed (neither running, OK nor warnings).
    pub failed: bool,
    /// Start, UTC.
    pub start: String,
    /// How long it ran (so far, while running).
    pub duration: String,
    /// Who started it (`user@realm`).
    pub user: String,
}

/// `secs` in words: `42 s`, `3 min 5 s`, `2 h 1 min`.
pub fn duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The tasks of CT `vmid` started at or after `since` (epoch seconds), newest first, with their
/// real UPIDs (pure). Tasks of other guests, and unparsable UPIDs, are left out.
pub fn views(tasks: &[TaskStatus], vmid: u32, since: i64, now: i64) -> Vec<(Upid, TaskView)> {
    let mut out: Vec<(Upid, TaskView)> = tasks
        .iter()
        .filter_map(|t| Some((t.upid.as_deref()?.parse::<Upid>().ok()?, t)))
        .filter(|(u, _)| u.id() == vmid.to_string() && u.starttime() >= since)
        .map(|(u, t)| {
            let status = match (&t.status, t.endtime) {
                (Some(s), _) if !s.is_empty() && s != "running" => s.clone(),
                _ => "running".to_string(),
            };
            let failed = !(status == "running" || status == "OK" || status.starts_with("WARNINGS"));
            let end = t.endtime.filter(|_| status != "running").unwrap_or(now);
            let start = jiff::Timestamp::from_second(u.starttime())
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            let view = TaskView {
                upid: u.redacted(),
                kind: u.task_type().to_string(),
                failed,
                start,
                duration: duration(end - u.starttime()),
                user: u.user().split('!').next().unwrap_or_default().to_string(),
                status,
            };
            (u, view)
        })
        .collect();
    out.sort_by_key(|(u, _)| std::cmp::Reverse((u.starttime(), u.as_str().to_string())));
    out
}

/// When the object was created (epoch seconds; 0 when unknown, which hides nothing).
fn created(obj: &Value) -> i64 {
    obj["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// The container's tasks, read as the module says: the object with the user's token, the
/// tasks with the operator's connection (returned too, for the log).
async fn tasks_of(
    state: &AppState,
    user: &User,
    ns: &str,
    name: &str,
) -> Result<(Arc<ClusterHandle>, Vec<(Upid, TaskView)>), UiError> {
    let obj = api(&user.0.client, &resource::<LxcContainer>(), ns).get(name).await?;
    let obj = to_json(&obj, &resource::<LxcContainer>());
    let at = placement(&obj).map_err(|why| UiError::Refused(StatusCode::CONFLICT, why))?;
    let handle = state
        .clusters()
        .and_then(|r| r.get(&ClusterKey::named(&at.cluster)))
        .ok_or_else(|| {
            UiError::Refused(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "ProxmoxCluster {} is not connected to this operator replica",
                    at.cluster
                ),
            )
        })?;
    let tasks = handle
        .client
        .guest_tasks(&at.node, at.vmid, MAX_TASKS)
        .await
        .map_err(|e| UiError::Refused(StatusCode::BAD_GATEWAY, format!("Proxmox did not list the tasks: {e}")))?;
    let now = jiff::Timestamp::now().as_second();
    Ok((handle, views(&tasks, at.vmid, created(&obj), now)))
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    chrome: Chrome,
    namespace: String,
    name: String,
    tasks: Vec<TaskView>,
    error: String,
}

/// `GET /ui/containers/{ns}/{name}/tasks`: the container's Proxmox tasks.
pub async fn tasks(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let (tasks, error, status) = match tasks_of(&state, &user, &ns, &name).await {
        Ok((_, l)) => (l.into_iter().map(|(_, v)| v).collect(), String::new(), StatusCode::OK),
        Err(e) => (Vec::new(), e.message(), e.status()),
    };
    render(
        status,
        &TasksPage {
            chrome: Chrome::new(&format!("Proxmox tasks of {name}"), &user, &ns),
            namespace: ns,
            name,
            tasks,
            error,
        },
    )
}

/// Query of the log page.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// The task's UPID as the list shows it.
    pub upid: String,
}

#[derive(Template)]
#[template(path = "task_log.html")]
struct LogPage {
    chrome: Chrome,
    namespace: String,
    name: String,
    task: Option<TaskView>,
    log: String,
    error: String,
}

/// `GET /ui/containers/{ns}/{name}/tasks/log?upid=`: one task's log (its last
/// [`MAX_LOG_LINES`] lines), for a task of the container's list only.
pub async fn log(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let read = async {
        let (handle, list) = tasks_of(&state, &user, &ns, &name).await?;
        let (upid, view) = list.into_iter().find(|(_, v)| v.upid == q.upid).ok_or_else(|| {
            UiError::Refused(
                StatusCode::NOT_FOUND,
                format!("No such task among the last {MAX_TASKS} of {ns}/{name}"),
            )
        })?;
        let lines = handle
            .client
            .task_log_tail(&upid, MAX_LOG_LINES)
            .await
            .map_err(|e| UiError::Refused(StatusCode::BAD_GATEWAY, format!("Proxmox did not give the log: {e}")))?;
        Ok::<_, UiError>((view, lines.join("\n")))
    };
    let (task, log, error, status) = match read.await {
        Ok((v, l)) => (Some(v), l, String::new(), StatusCode::OK),
        Err(e) => (None, String::new(), e.message(), e.status()),
    };
    render(
        status,
        &LogPage {
            chrome: Chrome::new(&format!("Task log of {name}"), &user, &ns),
            namespace: ns,
            name,
            task,
            log,
            error,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(upid: &str, status: Option<&str>, end: Option<i64>) -> TaskStatus {
        serde_json::from_value(serde_json::json!({"upid": upid, "status": status, "endtime": end})).unwrap()
    }

    // starttimes 0x67000000 = 1728053248 and 0x67000100
    const CREATE: &str = "UPID:pve1:0000ABCD:00012345:67000000:vzcreate:101:op@pve!k8s:";
    const START: &str = "UPID:pve1:0000ABCE:00012346:67000100:vzstart:101:op@pve!k8s:";
    const OTHER: &str = "UPID:pve1:0000ABCF:00012347:67000100:vzstart:102:op@pve!k8s:";

    #[test]
    fn a_containers_tasks_show_newest_first_with_status_duration_and_no_token_name() {
        let list = [
            task(CREATE, Some("OK"), Some(0x67000000 + 75)),
            task(START, None, None),
            task(OTHER, Some("OK"), Some(0x67000100)),
        ];
        let v = views(&list, 101, 0, 0x67000100 + 3);
        assert_eq!(v.len(), 2, "only CT 101's tasks");
        assert_eq!(v[0].1.kind, "vzstart");
        assert_eq!((v[0].1.status.as_str(), v[0].1.duration.as_str()), ("running", "3 s"));
        assert_eq!((v[1].1.status.as_str(), v[1].1.duration.as_str()), ("OK", "1 min 15 s"));
        assert_eq!(v[1].1.user, "op@pve");
        assert!(!v[1].1.upid.contains("k8s"), "{}", v[1].1.upid);
        assert_eq!(v[1].0.as_str(), CREATE, "the real UPID is kept for the log");
        let failed = views(
            &[task(CREATE, Some("command 'lxc-start' failed"), Some(0x67000001))],
            101,
            0,
            0,
        );
        assert!(failed[0].1.failed);
    }

    #[test]
    fn tasks_from_before_the_object_was_created_belong_to_someone_else_and_are_not_shown() {
        let list = [
            task(CREATE, Some("OK"), Some(0x67000001)),
            task(START, Some("OK"), Some(0x67000101)),
        ];
        let v = views(&list, 101, 0x67000100, 0x67000200);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].1.kind, "vzstart");
    }

    #[test]
    fn durations_read_in_seconds_minutes_and_hours() {
        assert_eq!(duration(-3), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(61), "1 min 1 s");
        assert_eq!(duration(3 * 3600 + 120), "3 h 2 min");
    }
}
