//! The read-only pages. Each one lists or gets objects with the signed-in user's client; a
//! refusal by the apiserver (RBAC) is shown on the page as a sentence, with its status code.

use super::access;
use super::model::{self, ClusterView, ContainerRow, Row};
use super::session::{Flash, Session};
use super::{UiError, User};
use crate::crd::{LxcBackup, LxcBackupSchedule, LxcContainer, LxcSnapshotSchedule, LxcTemplate, ProxmoxCluster};
use askama::Template;
use axum::extract::Query;
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
    /// Who is signed in.
    pub principal: String,
    /// The navigation entry of this page (`aria-current`): `clusters`, `containers`,
    /// `templates`, `pods`, `backups`, `new`, or empty.
    pub section: &'static str,
    /// The outcome of the last action (shown once).
    pub flash: Option<Flash>,
    /// Whether to offer "New container" (false once an access review said the user may not
    /// create containers in the namespace).
    pub can_create: bool,
}

impl Chrome {
    /// The frame of a signed-in user's page (takes the session's one-time message).
    pub fn new(title: &str, user: &User, ns: &str) -> Chrome {
        Chrome::of_session(title, &user.0, ns)
    }

    fn of_session(title: &str, s: &Session, ns: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            ns: ns.to_string(),
            csrf: s.csrf.clone(),
            signed_in: true,
            principal: s.principal.clone(),
            section: "",
            flash: s.take_flash(),
            can_create: s
                .cached_access(ns, std::time::Duration::from_secs(600))
                .is_none_or(|a| a.create),
        }
    }

    /// The same frame with navigation entry `section` marked current.
    pub fn at(mut self, section: &'static str) -> Chrome {
        self.section = section;
        self
    }

    fn anonymous(title: &str) -> Chrome {
        Chrome {
            title: title.to_string(),
            ns: String::new(),
            csrf: String::new(),
            signed_in: false,
            principal: String::new(),
            section: "",
            flash: None,
            can_create: false,
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

/// A list, or (empty and) the sentence and status of why it could not be read.
pub fn split<T>(r: Result<Vec<T>, UiError>) -> (Vec<T>, String, StatusCode) {
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

/// A page telling what went wrong, with `status`, in the page layout: with the navigation when
/// the request came from a signed-in user ([`super::current_session`]).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let title = match status.as_u16() {
        403 => "Not allowed",
        404 => "Not found",
        400 | 422 => "Not accepted",
        401 => "Signed out",
        _ => "Something went wrong",
    };
    let chrome = match super::current_session() {
        Some(s) => Chrome::of_session(title, &s, &s.namespace),
        None => Chrome::anonymous(title),
    };
    let page = ErrorPage {
        chrome,
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
            chrome: Chrome::new("Clusters", &user, &ns).at("clusters"),
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
    /// Whether the user may start and stop it (the button shows only then).
    pub can_patch: bool,
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
    can_patch: bool,
    missing: String,
}

/// `GET /ui/containers?ns=&q=`: the containers table (rows kept live by `/ui/events`).
pub async fn containers(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    let q = f.q.clone().unwrap_or_default();
    containers_page(&user, &ns, &q, StatusCode::OK).await
}

/// The containers table of `ns` filtered by `q`, answered with `status` (or the apiserver's
/// when it refuses the list).
pub async fn containers_page(user: &User, ns: &str, q: &str, status: StatusCode) -> Result<Response, UiError> {
    let now = jiff::Timestamp::now();
    let ar = resource::<LxcContainer>();
    let (items, access) = futures::join!(list(&user.0.client, &ar, ns), access::access(&user.0, ns));
    let all_refused = ns.is_empty() && matches!(&items, Err(kube::Error::Api(e)) if e.code == 403);
    let (rows, mut error, list_status) = split(items.map_err(UiError::from).map(|items| {
        items
            .iter()
            .map(|o| ContainerRow::of(o, now))
            .filter(|r| r.matches(q))
            .collect()
    }));
    if all_refused {
        error = "Your account may not list containers in all namespaces: enter your namespace above (for a ServiceAccount token, the namespace of the ServiceAccount).".into();
    }
    let events_url = format!(
        "/ui/events?ns={}&q={}",
        ns,
        percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
    );
    let status = if status.is_success() { list_status } else { status };
    render(
        status,
        &ContainersPage {
            chrome: Chrome::new("Containers", user, ns).at("containers"),
            csrf: user.0.csrf.clone(),
            q: q.to_string(),
            rows,
            error,
            events_url,
            can_patch: access.patch,
            missing: if all_refused { String::new() } else { access.missing(ns) },
        },
    )
}

/// Refuses a namespace or name that cannot be one (before it goes into a URL).
pub fn checked(ns: &str, name: &str) -> Result<(), UiError> {
    if valid_name(ns) && valid_name(name) {
        Ok(())
    } else {
        Err(UiError::Refused(StatusCode::BAD_REQUEST, "not an object name".into()))
    }
}

/// A JSON value as text (strings without quotes, null as nothing).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        o => o.to_string(),
    }
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
    /// Whether rows offer "Restore" (backups, when the user may create containers).
    pub restore: bool,
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
            restore: false,
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
            chrome: Chrome::new("Templates", &user, &ns).at("templates"),
            action: "/ui/templates",
            error: String::new(),
            tables: vec![t],
        },
    )
}

/// `GET /ui/schedules`: backup schedules (last, next and last successful runs), the backups
/// (failures stand out by their badge; completed ones can be restored into a new container, also
/// when their container is gone), and the snapshot schedules.
pub async fn schedules(user: User, Query(f): Query<Filter>) -> Result<Response, UiError> {
    let ns = f.namespace(&user)?;
    schedules_page(&user, &ns, StatusCode::OK).await
}

/// The backups page of `ns`, answered with `status` (or the apiserver's when it refuses).
pub async fn schedules_page(user: &User, ns: &str, status: StatusCode) -> Result<Response, UiError> {
    let (s, list_status) = table(
        user,
        resource::<LxcBackupSchedule>(),
        ns,
        "Backup schedules",
        model::SCHEDULE_COLUMNS,
        model::schedule_row,
    )
    .await;
    let (snapshot_schedules, _) = table(
        user,
        resource::<LxcSnapshotSchedule>(),
        ns,
        "Snapshot schedules",
        model::SCHEDULE_COLUMNS,
        model::schedule_row,
    )
    .await;
    let (mut b, _) = table(
        user,
        resource::<LxcBackup>(),
        ns,
        "Backups",
        model::BACKUP_COLUMNS,
        model::backup_row,
    )
    .await;
    b.rows.sort_by(|x, y| y.cells[2].cmp(&x.cells[2]));
    b.restore = access::access(&user.0, ns).await.create;
    let status = if status.is_success() { list_status } else { status };
    render(
        status,
        &TablesPage {
            chrome: Chrome::new("Backups", user, ns).at("backups"),
            action: "/ui/schedules",
            error: String::new(),
            tables: vec![s, b, snapshot_schedules],
        },
    )
}
