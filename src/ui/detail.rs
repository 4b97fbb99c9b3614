//! One container's page: its state, conditions and actions (kept live by
//! [`super::live::detail_events`]), usage, Service, backups, Events and YAML; and the delete
//! confirmation.

use super::access::{self, Access};
use super::model::{self, ContainerRow, Row};
use super::pages::{api, checked, list, render, resource, split, text, to_json, Chrome};
use super::{AppState, UiError, User};
use crate::crd::{LxcBackup, LxcContainer};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kube::api::{Api, ApiResource, ListParams};
use serde_json::Value;

/// The part of a container's page that follows the object: heading and health, actions,
/// summary and conditions (rendered the same on the page and in its live stream).
pub struct Detail {
    /// The container's row (state, health, placement).
    pub row: ContainerRow,
    /// Spec summary.
    pub spec: Vec<(String, String)>,
    /// Conditions.
    pub conditions: Vec<model::ConditionView>,
    /// The session's CSRF token (the actions' forms).
    pub csrf: String,
    /// What the user may do here.
    pub access: Access,
    /// Why some actions are not offered (empty when all are).
    pub missing: String,
    /// Whether the container exists in Proxmox (a vmid is known): only then can it be
    /// started, stopped or backed up.
    pub in_proxmox: bool,
}

impl Detail {
    /// The live part of `obj`'s page for a user with `access`.
    pub fn of(obj: &Value, csrf: &str, access: Access) -> Detail {
        let row = ContainerRow::of(obj, jiff::Timestamp::now());
        let in_proxmox = obj["status"]["vmid"].is_u64();
        let missing = access.missing(&row.namespace);
        Detail {
            // the wanted state, cluster and node show with the observed ones above
            spec: model::spec_summary(obj)
                .into_iter()
                .filter(|(k, _)| !["Desired state", "Cluster", "Node"].contains(&k.as_str()))
                .collect(),
            conditions: model::conditions(obj),
            csrf: csrf.to_string(),
            access,
            missing,
            in_proxmox,
            row,
        }
    }
}

/// The live part of a container's page, alone (the live stream's HTML).
#[derive(Template)]
#[template(path = "detail_live.html")]
pub struct DetailFragment<'a> {
    /// What it shows.
    pub live: &'a Detail,
}

#[derive(Template)]
#[template(path = "container.html")]
struct ContainerPage {
    service: Option<ServiceView>,
    chrome: Chrome,
    live: Detail,
    events_url: String,
    backups: Vec<Row>,
    backups_error: String,
    snapshots: Vec<super::snapshots::SnapshotView>,
    snapshots_error: String,
    archives: Vec<(String, String, String, String)>,
    events: Vec<(String, String, String, String, String)>,
    events_error: String,
    yaml: String,
    usage: Option<model::UsageChart>,
    day: bool,
}

/// The span of a container page's usage charts (`?range=1h`, the default, or `24h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Range {
    /// The last hour, one sample a minute.
    #[default]
    #[serde(rename = "1h")]
    Hour,
    /// The last day, one sample (a mean) per quarter hour.
    #[serde(rename = "24h")]
    Day,
}

/// Query of a container's page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageQuery {
    /// The charts' span.
    #[serde(default)]
    pub range: Range,
}

/// `GET /ui/containers/{ns}/{name}?range=`: one container.
pub async fn container(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
) -> Result<Response, UiError> {
    container_page_in(&state, &user, &ns, &name, StatusCode::OK, q.range).await
}

/// The Events of the object with `uid`, newest first: type, reason, message, count, last seen.
async fn events_of(
    client: &kube::Client,
    ns: &str,
    uid: &str,
) -> Result<Vec<(String, String, String, String, String)>, kube::Error> {
    let l = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
        .await?;
    let mut evs: Vec<_> = l
        .items
        .into_iter()
        .map(|e| {
            let last = e
                .last_timestamp
                .map(|t| t.0)
                .or_else(|| e.event_time.map(|t| t.0))
                .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_default();
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
                e.count.map(|c| c.to_string()).unwrap_or_default(),
                last,
            )
        })
        .collect();
    evs.sort_by(|a, b| b.4.cmp(&a.4));
    Ok(evs)
}

/// The page of container `ns/name`, answered with `status` (an action's outcome shows in the
/// session's message).
pub async fn container_page(
    state: &AppState,
    user: &User,
    ns: &str,
    name: &str,
    status: StatusCode,
) -> Result<Response, UiError> {
    container_page_in(state, user, ns, name, status, Range::Hour).await
}

/// [`container_page`] with the charts over `range`.
pub async fn container_page_in(
    state: &AppState,
    user: &User,
    ns: &str,
    name: &str,
    status: StatusCode,
    range: Range,
) -> Result<Response, UiError> {
    checked(ns, name)?;
    let client = &user.0.client;
    let ar = resource::<LxcContainer>();
    let objects = api(client, &ar, ns);
    let (obj, access) = futures::join!(objects.get(name), access::access(&user.0, ns));
    let obj = to_json(&obj?, &ar);
    let backups = list(client, &resource::<LxcBackup>(), ns).await.map(|items| {
        items
            .iter()
            .filter(|b| b["spec"]["containerRef"]["name"] == name)
            .map(model::backup_row)
            .collect()
    });
    let (backups, backups_error, _) = split(backups.map_err(UiError::from));
    let listed: Vec<String> = backups.iter().map(|b: &Row| b.cells[5].clone()).collect();
    // archives of status.backups that no LxcBackup above already lists
    let archives = obj["status"]["backups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|b| !listed.contains(&text(&b["volid"])))
                .map(|b| {
                    (
                        text(&b["volid"]),
                        text(&b["createdAt"]),
                        model::bytes(b["sizeBytes"].as_u64()),
                        text(&b["notes"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let (snapshots, snapshots_error) = super::snapshots::of_container(client, ns, name).await;
    let uid = text(&obj["metadata"]["uid"]);
    let (events, events_error, _) = split(events_of(client, ns, &uid).await.map_err(UiError::from));
    let service = match obj["spec"]["ports"].as_array() {
        Some(p) if !p.is_empty() => Some(service_of(client, ns, name).await),
        _ => None,
    };
    render(
        status,
        &ContainerPage {
            chrome: Chrome::new(&format!("{ns}/{name}"), user, ns).at("containers"),
            service,
            live: Detail::of(&obj, &user.0.csrf, access),
            events_url: format!("/ui/containers/{ns}/{name}/events"),
            backups,
            backups_error,
            snapshots,
            snapshots_error,
            archives,
            events,
            events_error,
            yaml: model::yaml(&obj),
            // the samples of this object (by its uid, which the user just read), not of a vmid
            usage: state.options().samples.as_ref().and_then(|s| {
                model::usage_chart(&match range {
                    Range::Hour => s.series(&uid),
                    Range::Day => s.day_series(&uid),
                })
            }),
            day: range == Range::Day,
        },
    )
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDelete {
    chrome: Chrome,
    namespace: String,
    name: String,
    typed: String,
    error: String,
}

/// `GET /ui/containers/{ns}/{name}/delete`: asks for confirmation.
pub async fn confirm_delete(user: User, Path((ns, name)): Path<(String, String)>) -> Result<Response, UiError> {
    confirm_delete_page(&user, &ns, &name, "", StatusCode::OK, String::new())
}

/// The delete confirmation of `ns/name`, with what was `typed` and `error` when a try failed.
pub fn confirm_delete_page(
    user: &User,
    ns: &str,
    name: &str,
    typed: &str,
    status: StatusCode,
    error: String,
) -> Result<Response, UiError> {
    checked(ns, name)?;
    render(
        status,
        &ConfirmDelete {
            chrome: Chrome::new("Delete", user, ns).at("containers"),
            namespace: ns.to_string(),
            name: name.to_string(),
            typed: typed.to_string(),
            error,
        },
    )
}

/// The Service the operator keeps for a container's `spec.ports`, and its endpoints.
#[derive(Default)]
struct ServiceView {
    /// `NAME.NAMESPACE.svc` and the cluster IP, or why it cannot be read.
    line: String,
    /// Ports, e.g. `http 80/TCP`.
    ports: Vec<String>,
    /// Endpoint addresses with their readiness.
    endpoints: Vec<(String, bool)>,
}

async fn service_of(client: &kube::Client, ns: &str, name: &str) -> ServiceView {
    use k8s_openapi::api::core::v1::Service;
    let svc = match Api::<Service>::namespaced(client.clone(), ns).get(name).await {
        Ok(s) => s,
        Err(e) => {
            return ServiceView {
                line: UiError::from(e).message(),
                ..Default::default()
            }
        }
    };
    let spec = svc.spec.unwrap_or_default();
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}",
                p.name.clone().unwrap_or_default(),
                p.port,
                p.protocol.clone().unwrap_or_default()
            )
        })
        .collect();
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let mut endpoints = Vec::new();
    for version in ["v1", "v1beta1"] {
        let gvk = kube::api::GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "endpointslices");
        match api(client, &ar, ns).list(&lp).await {
            Ok(list) => {
                for slice in list.items {
                    for ep in slice.data["endpoints"].as_array().into_iter().flatten() {
                        let ready = ep["conditions"]["ready"] != false;
                        for addr in ep["addresses"].as_array().into_iter().flatten() {
                            endpoints.push((text(addr), ready));
                        }
                    }
                }
                break;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(_) => break,
        }
    }
    ServiceView {
        line: format!(
            "{name}.{ns}.svc, cluster IP {}",
            spec.cluster_ip.unwrap_or_else(|| "none".into())
        ),
        ports,
        endpoints,
    }
}
