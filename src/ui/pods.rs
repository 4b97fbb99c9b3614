//! Pods on virtual nodes: the list (the namespace's Pods that run as containers) and a log
//! viewer. Both read through the signed-in user's token: the log comes from the apiserver's
//! `pods/log`, which calls the operator's kubelet endpoint (so the user needs `pods/log` there).

use super::pages::{list, render, resource, valid_name, Chrome, Filter};

use super::{UiError, User};
use crate::crd::LxcContainer;
use askama::Template;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use serde::Deserialize;
use serde_json::Value;

/// Columns of the Pods table.
pub const POD_COLUMNS: &[&str] = &["Node", "Status", "Ready", "Restarts", "IP"];

/// One Pod's row, read as `kubectl get pods -o wide` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The columns of [`POD_COLUMNS`].
    pub cells: Vec<String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The row of a Pod (pure): STATUS is the Pod's reason, else its container's waiting or
/// terminated reason, else its phase; `Terminating` while it is deleted.
pub fn pod_row(pod: &Value) -> PodRow {
    let st = &pod["status"];
    let c = &st["containerStatuses"][0];
    let status = if !pod["metadata"]["deletionTimestamp"].is_null() {
        "Terminating".to_string()
    } else {
        [
            &st["reason"],
            &c["state"]["waiting"]["reason"],
            &c["state"]["terminated"]["reason"],
            &st["phase"],
        ]
        .into_iter()
        .map(s)
        .find(|v| !v.is_empty())
        .unwrap_or_default()
    };
    let total = pod["spec"]["containers"].as_array().map_or(0, |a| a.len());
    let ready = st["containerStatuses"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|c| c["ready"] == true).count());
    PodRow {
        namespace: s(&pod["metadata"]["namespace"]),
        name: s(&pod["metadata"]["name"]),
        cells: vec![
            s(&pod["spec"]["nodeName"]),
            status,
            format!("{ready}/{total}"),
            c["restartCount"].as_u64().unwrap_or(0).to_string(),
            s(&st["podIP"]),
        ],
    }
}

#[derive(Template)]
#[template(path = "pods.html")]
struct PodsPage {
    chrome: Chrome,
    columns: &'static [&'static str],
    rows: Vec<PodRow>,
    error: String,
}

/// `GET /ui/pods`: the Pods that run as containers on virtual nodes (those with a child
/// `LxcContainer`).
pub async fn pods(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let client = &user.0.client;
    let listed = async {
        let children = list(client, &resource::<LxcContainer>(), &ns).await?;
        let uids: std::collections::HashSet<String> = children
            .iter()
            .filter_map(|c| c["metadata"]["labels"][crate::controller::vnode::POD_UID_LABEL].as_str())
            .map(str::to_string)
            .collect();
        let pods = list(client, &resource::<Pod>(), &ns).await?;
        Ok::<_, kube::Error>(
            pods.iter()
                .filter(|p| p["metadata"]["uid"].as_str().is_some_and(|u| uids.contains(u)))
                .map(pod_row)
                .collect::<Vec<_>>(),
        )
    };
    let (rows, error, status) = match listed.await {
        Ok(rows) => (rows, String::new(), StatusCode::OK),
        Err(e) => {
            let e = UiError::from(e);
            (Vec::new(), e.message(), e.status())
        }
    };
    render(
        status,
        &PodsPage {
            chrome: Chrome::new("Pods", &user, &ns).at("pods"),
            columns: POD_COLUMNS,
            rows,
            error,
        },
    )
}

/// Query of the log page.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Lines from the end (default 200, at most 5000).
    pub tail: Option<i64>,
}

#[derive(Template)]
#[template(path = "pod_log.html")]
struct LogPage {
    chrome: Chrome,
    namespace: String,
    name: String,
    tail: i64,
    log: String,
    error: String,
}

/// `GET /ui/pods/{ns}/{name}/log`: the Pod's log, as `kubectl logs --tail` shows it.
pub async fn pod_log(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, UiError> {
    if !valid_name(&ns) || !valid_name(&name) {
        return Err(UiError::Refused(StatusCode::BAD_REQUEST, "not an object name".into()));
    }
    let tail = q.tail.unwrap_or(200).clamp(1, 5000);
    let pods: Api<Pod> = Api::namespaced(user.0.client.clone(), &ns);
    let params = LogParams {
        tail_lines: Some(tail),
        ..Default::default()
    };
    let (log, error, status) = match pods.logs(&name, &params).await {
        Ok(l) => (l, String::new(), StatusCode::OK),
        Err(e) => {
            let e = UiError::from(e);
            (String::new(), e.message(), e.status())
        }
    };
    render(
        status,
        &LogPage {
            chrome: Chrome::new(&format!("Log of {name}"), &user, &ns),
            namespace: ns.clone(),
            name,
            tail,
            log,
            error,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_row_reads_like_kubectl_get_pods_wide() {
        let p = json!({"metadata": {"namespace": "apps", "name": "web"},
            "spec": {"nodeName": "prod-pve1", "containers": [{"name": "web"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "containerStatuses": [{"ready": true, "restartCount": 2, "state": {"running": {}}}]}});
        assert_eq!(pod_row(&p).cells, ["prod-pve1", "Running", "1/1", "2", "10.0.0.7"]);
        let waiting = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"ready": false, "state": {"waiting": {"reason": "ErrImagePull"}}}]}});
        assert_eq!(pod_row(&waiting).cells[1], "ErrImagePull");
        let failed = json!({"metadata": {"name": "y", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Running"}});
        assert_eq!(pod_row(&failed).cells[1], "Terminating");
    }
}
