//! The read-only pages. Each one lists or gets objects with the signed-in user's client; a
//! refusal by the apiserver (RBAC) is shown on the page as a sentence, with its status code.

use super::model::{self, ClusterView, ContainerRow, Row};
use super::{AppState, UiError, User};
use crate::crd::{LxcBackup, LxcBackupSchedule, LxcContainer, LxcSnapshotSchedule, LxcTemplate, ProxmoxCluster};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::Resource;
use serde::Deserialize;
use serde_json::Value;

/// What every page's frame needs: title, namespace of the lists, the CSRF token for its forms.
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// Namespace the lists show (empty: all).
    pub ns: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Whether a user is signed in (shows the navigation).
    pub signed_in: bool,
}

impl Chrome {
    /// The frame of a signed-in user's page.
    pub fn new(title: &str, user: &User, ns: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            ns: ns.to_string(),
            csrf: user.0.csrf.clone(),
            signed_in: true,
        }
    }

    fn anonymous(title: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            ns: String::new(),
            csrf: String::new(),
            signed_in: false,
        }
    }
}

/// Renders a template as an HTML answer with `status`.
pub fn render<T: Template>(status: StatusCode, t: &T) -> Result<Response, UiError> {
    Ok((status, Html(t.render()?)).into_response())
}

/// Query string of the list pages: `ns` (empty: all namespaces; absent: the sign-in one) and
/// `q` (free-text filter).
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    /// Namespace.
    pub ns: Option<String>,
    /// Free-text filter.
    pub q: Option<String>,
}

/// Whether `s` can be a namespace or object name (a DNS label or subdomain).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl Filter {
    /// The namespace to list in.
    pub fn namespace(&self, user: &User) -> Result<String, UiError> {
        let ns = self.ns.clone().unwrap_or_else(|| user.0.namespace.clone());
        let ns = ns.trim().to_string();
        if ns.is_empty() || valid_name(&ns) {
            Ok(ns)
        } else {
            Err(UiError::Refused(
                StatusCode::BAD_REQUEST,
                format!("{ns:?} is not a namespace name"),
            ))
        }
    }
}

/// The API resource of one of our kinds.
pub fn resource<K: Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

/// The dynamic API of `ar` in `ns` (all namespaces when empty).
pub fn api(client: &kube::Client, ar: &ApiResource, ns: &str) -> Api<DynamicObject> {
    if ns.is_empty() {
        Api::all_with(client.clone(), ar)
    } else {
        Api::namespaced_with(client.clone(), ns, ar)
    }
}

/// An object as JSON, with its kind set (list items may lack it).
pub fn to_json(obj: &DynamicObject, ar: &ApiResource) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    v["kind"] = Value::String(ar.kind.clone());
    v
}

/// The objects of `ar` in `ns`, sorted by namespace and name.
pub async fn list(client: &kube::Client, ar: &ApiResource, ns: &str) -> Result<Vec<Value>, kube::Error> {
    let list = api(client, ar, ns).list(&ListParams::default()).await?;
    let mut items: Vec<Value> = list.items.iter().map(|o| to_json(o, ar)).collect();
    items.sort_by_key(|v| {
        (
            v["metadata"]["namespace"].to_string(),
            v["metadata"]["name"].to_string(),
        )
    });
    Ok(items)
}

fn split<T>(r: Result<Vec<T>, UiError>) -> (Vec<T>, String, StatusCode) {
    match r {
        Ok(v) => (v, String::new(), StatusCode::OK),
        Err(e) => (Vec::new(), e.message(), e.status()),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

/// A page telling what went wrong, with `status`.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        chrome: Chrome::anonymous(status.canonical_reason().unwrap_or("Error")),
        message: message.to_string(),
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    error: String,
    namespace: String,
}

/// The sign-in page, with `error` when a sign-in failed.
pub fn login_page(status: StatusCode, error: &str, namespace: &str) -> Result<Response, UiError> {
    render(
        status,
        &LoginPage {
            chrome: Chrome::anonymous("Sign in"),
            error: error.to_string(),
            namespace: namespace.to_string(),
        },
    )
}

/// `GET /ui/login`.
pub async fn login_form() -> Result<Response, UiError> {
    login_page(StatusCode::OK, "", "")
}

#[derive(Template)]
#[template(path = "clusters.html")]
struct ClustersPage {
    chrome: Chrome,
    clusters: Vec<ClusterView>,
    error: String,
    tenants: Vec<Row>,
}

/// `ProxmoxTenant` (cluster-scoped, where the API serves it): read by name, so the UI works
/// with and without the kind.
fn tenant_resource() -> ApiResource {
    let gvk = kube::api::GroupVersionKind::gvk("pve.lxc.dev", "v1alpha1", "ProxmoxTenant");
    ApiResource::from_gvk_with_plural(&gvk, "proxmoxtenants")
}

/// The tenants the user may list (none when the kind does not exist or they may not).
async fn tenants(client: &kube::Client) -> Vec<Row> {
    let ar = tenant_resource();
    match list(client, &ar, "").await {
        Ok(items) => items.iter().map(model::tenant_row).collect(),
        Err(_) => Vec::new(),
    }
}

/// `GET /ui`: the Proxmox clusters (listed across namespaces, so cluster-scoped or not; in the
/// user's namespace when they may not list them all).
pub async fn clusters(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let ar = resource::<ProxmoxCluster>();
    let client = &user.0.client;
    // ProxmoxClusters are cluster-scoped and the platform admin's: tenant roles cannot read
    // them, which is not an error of the page
    let (clusters, error, status) = match list(client, &ar, "").await {
        Err(kube::Error::Api(e)) if e.code == 403 => (
            Vec::new(),
            "ProxmoxClusters are cluster-scoped (the platform admin's) and your account may not read them; your containers' pages show the cluster each one uses".to_string(),
            StatusCode::OK,
        ),
        other => split(
            other
                .map_err(UiError::from)
                .map(|v| v.iter().map(ClusterView::of).collect()),
        ),
    };
    render(
        status,
        &ClustersPage {
            chrome: Chrome::new("Clusters", &user, &ns),
            clusters,
            error,
            tenants: tenants(client).await,
        },
    )
}

/// The containers table's rows.
#[derive(Template)]
#[template(path = "row.html")]
pub struct RowFragment<'a> {
    /// The row.
    pub row: &'a ContainerRow,
    /// CSRF token of the row's action.
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "containers.html")]
struct ContainersPage {
    chrome: Chrome,
    csrf: String,
    q: String,
    rows: Vec<ContainerRow>,
    error: String,
    events_url: String,
}

/// `GET /ui/containers?ns=&q=`: the containers table (rows kept live by `/ui/events`).
pub async fn containers(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let q = f.q.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let items = list(&user.0.client, &resource::<LxcContainer>(), &ns).await;
    let (rows, error, status) = split(items.map_err(UiError::from).map(|items| {
        items
            .iter()
            .map(|o| ContainerRow::of(o, now))
            .filter(|r| r.matches(&q))
            .collect()
    }));
    let events_url = format!(
        "/ui/events?ns={}&q={}",
        ns,
        percent_encoding::utf8_percent_encode(&q, percent_encoding::NON_ALPHANUMERIC)
    );
    render(
        status,
        &ContainersPage {
            chrome: Chrome::new("Containers", &user, &ns),
            csrf: user.0.csrf.clone(),
            q,
            rows,
            error,
            events_url,
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

#[derive(Template)]
#[template(path = "container.html")]
struct ContainerPage {
    service: Option<ServiceView>,
    chrome: Chrome,
    row: ContainerRow,
    spec: Vec<(String, String)>,
    conditions: Vec<model::ConditionView>,
    backups: Vec<Row>,
    backups_error: String,
    archives: Vec<(String, String, String, String)>,
    events: Vec<(String, String, String, String, String)>,
    events_error: String,
    yaml: String,
    usage: Option<model::UsageChart>,
}

/// Refuses a namespace or name that cannot be one (before it goes into a URL).
pub fn checked(ns: &str, name: &str) -> Result<(), UiError> {
    if valid_name(ns) && valid_name(name) {
        Ok(())
    } else {
        Err(UiError::Refused(StatusCode::BAD_REQUEST, "not an object name".into()))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

/// `GET /ui/containers/{ns}/{name}`: one container.
pub async fn container(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    let client = &user.0.client;
    let ar = resource::<LxcContainer>();
    let obj = to_json(&api(client, &ar, &ns).get(&name).await?, &ar);
    let backups = list(client, &resource::<LxcBackup>(), &ns).await.map(|items| {
        items
            .iter()
            .filter(|b| b["spec"]["containerRef"]["name"] == name.as_str())
            .map(model::backup_row)
            .collect()
    });
    let (backups, backups_error, _) = split(backups.map_err(UiError::from));
    let archives = obj["status"]["backups"]
        .as_array()
        .map(|a| {
            a.iter()
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
    let uid = text(&obj["metadata"]["uid"]);
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
        .await
        .map(|l| {
            let mut evs: Vec<_> = l
                .items
                .into_iter()
                .map(|e| {
                    let last = e
                        .last_timestamp
                        .map(|t| t.0.to_string())
                        .or_else(|| e.event_time.map(|t| t.0.to_string()))
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
            evs
        });
    let (events, events_error, _) = split(events.map_err(UiError::from));
    let service = match obj["spec"]["ports"].as_array() {
        Some(p) if !p.is_empty() => Some(service_of(client, &ns, &name).await),
        _ => None,
    };
    let title = format!("{ns}/{name}");
    render(
        StatusCode::OK,
        &ContainerPage {
            chrome: Chrome::new(&title, &user, &ns),
            service,
            row: ContainerRow::of(&obj, jiff::Timestamp::now()),
            spec: model::spec_summary(&obj),
            conditions: model::conditions(&obj),
            backups,
            backups_error,
            archives,
            events,
            events_error,
            yaml: model::yaml(&obj),
            // the samples of this object (by its uid, which the user just read), not of a vmid
            usage: state
                .options()
                .samples
                .as_ref()
                .and_then(|s| model::usage_chart(&s.series(&text(&obj["metadata"]["uid"])))),
        },
    )
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct ConfirmDelete {
    chrome: Chrome,
    namespace: String,
    name: String,
}

/// `GET /ui/containers/{ns}/{name}/delete`: asks for confirmation.
pub async fn confirm_delete(user: User, Path((ns, name)): Path<(String, String)>) -> Result<Response, UiError> {
    checked(&ns, &name)?;
    render(
        StatusCode::OK,
        &ConfirmDelete {
            chrome: Chrome::new("Delete", &user, &ns),
            namespace: ns,
            name,
        },
    )
}

/// One table of the templates or backups page.
pub struct Table {
    /// Heading.
    pub caption: &'static str,
    /// Column names between Name and Health.
    pub columns: &'static [&'static str],
    /// Rows.
    pub rows: Vec<Row>,
    /// Why the rows could not be listed.
    pub error: String,
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablesPage {
    chrome: Chrome,
    action: &'static str,
    error: String,
    tables: Vec<Table>,
}

async fn table(
    user: &User,
    ar: ApiResource,
    ns: &str,
    caption: &'static str,
    columns: &'static [&'static str],
    row: fn(&Value) -> Row,
) -> (Table, StatusCode) {
    let (rows, error, status) = split(
        list(&user.0.client, &ar, ns)
            .await
            .map_err(UiError::from)
            .map(|items| items.iter().map(row).collect()),
    );
    (
        Table {
            caption,
            columns,
            rows,
            error,
        },
        status,
    )
}

/// `GET /ui/templates`: the `LxcTemplate`s.
pub async fn templates(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let (t, status) = table(
        &user,
        resource::<LxcTemplate>(),
        &ns,
        "LxcTemplates",
        model::TEMPLATE_COLUMNS,
        model::template_row,
    )
    .await;
    render(
        status,
        &TablesPage {
            chrome: Chrome::new("Templates", &user, &ns),
            action: "/ui/templates",
            error: String::new(),
            tables: vec![t],
        },
    )
}

/// `GET /ui/schedules`: backup schedules (last, next and last successful runs), the backups
/// (failures stand out by their badge), and the snapshot schedules.
pub async fn schedules(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let (s, status) = table(
        &user,
        resource::<LxcBackupSchedule>(),
        &ns,
        "Backup schedules",
        model::SCHEDULE_COLUMNS,
        model::schedule_row,
    )
    .await;
    let (snapshot_schedules, _) = table(
        &user,
        resource::<LxcSnapshotSchedule>(),
        &ns,
        "Snapshot schedules",
        model::SCHEDULE_COLUMNS,
        model::schedule_row,
    )
    .await;
    let (mut b, _) = table(
        &user,
        resource::<LxcBackup>(),
        &ns,
        "Backups",
        model::BACKUP_COLUMNS,
        model::backup_row,
    )
    .await;
    b.rows.sort_by(|x, y| y.cells[2].cmp(&x.cells[2]));
    render(
        status,
        &TablesPage {
            chrome: Chrome::new("Backups", &user, &ns),
            action: "/ui/schedules",
            error: String::new(),
            tables: vec![s, b, snapshot_schedules],
        },
    )
}
