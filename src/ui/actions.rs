//! The POSTs: sign-in and sign-out, and the actions, each one change to a Kubernetes object
//! made with the user's client (start/stop, back up now, delete, create). Every action checks
//! the session's CSRF token first.

use super::pages::{self, api, checked, render, resource, valid_name, Chrome, Filter};
use super::session::{self, COOKIE};
use super::{AppState, UiError, User};
use crate::crd::{LxcBackup, LxcContainer, LxcTemplate};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// Field manager of the UI's writes (shows in `managedFields` who changed what).
pub const FIELD_MANAGER: &str = "proxmox-lxc-operator-ui";

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    /// Bearer token.
    pub token: String,
    /// Namespace lists start in (optional).
    #[serde(default)]
    pub namespace: String,
}

/// `POST /ui/login`: checks the token with the apiserver (a SelfSubjectAccessReview, which any
/// authenticated user may create) and starts a session.
pub async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Result<Response, UiError> {
    let token = form.token.trim();
    let namespace = form.namespace.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return pages::login_page(StatusCode::BAD_REQUEST, "Paste a bearer token (one line).", &namespace);
    }
    if !namespace.is_empty() && !valid_name(&namespace) {
        return pages::login_page(StatusCode::BAD_REQUEST, "That is not a namespace name.", &namespace);
    }
    let client = state.client_for(token)?;
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("pve.lxc.dev".into()),
                resource: Some("lxccontainers".into()),
                verb: Some("list".into()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 401 => {
            return pages::login_page(
                StatusCode::UNAUTHORIZED,
                "Kubernetes does not accept this token.",
                &namespace,
            );
        }
        Err(e) => return Err(e.into()),
    }
    let s = state.sessions().create_at(client, namespace, std::time::Instant::now());
    tracing::info!("web UI: a user signed in");
    let cookie = session::set_cookie(
        Some(&s.id),
        state.options().secure_cookies,
        state.options().lifetimes.absolute,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/ui/containers")).into_response())
}

/// A form with only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// `POST /ui/logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    user: User,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    state.sessions().remove(&user.0.id);
    let cookie = session::set_cookie(None, state.options().secure_cookies, Default::default());
    debug_assert!(cookie.starts_with(COOKIE));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response())
}

fn detail(ns: &str, name: &str) -> String {
    format!("/ui/containers/{ns}/{name}")
}

/// The start/stop form.
#[derive(Deserialize)]
pub struct StateForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// `Running` or `Stopped`.
    pub state: String,
    /// Where to go after: `list` (the table) or the container's page.
    #[serde(default)]
    pub back: String,
}

/// `POST /ui/containers/{ns}/{name}/state`: merge-patches `spec.state`.
pub async fn set_state(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<StateForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    checked(&ns, &name)?;
    if form.state != "Running" && form.state != "Stopped" {
        return Err(UiError::Refused(
            StatusCode::BAD_REQUEST,
            "state must be Running or Stopped".into(),
        ));
    }
    let ar = resource::<LxcContainer>();
    api(&user.0.client, &ar, &ns)
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"state": form.state}})),
        )
        .await?;
    let to = if form.back == "list" {
        format!("/ui/containers?ns={ns}")
    } else {
        detail(&ns, &name)
    };
    Ok(Redirect::to(&to).into_response())
}

/// `POST /ui/containers/{ns}/{name}/backup`: creates an `LxcBackup` of the container.
pub async fn back_up(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    checked(&ns, &name)?;
    let ar = resource::<LxcBackup>();
    let prefix: String = name.chars().take(40).collect();
    let obj = object(
        &ar,
        json!({"generateName": format!("{}-ui-", prefix.trim_end_matches(['-', '.'])), "namespace": ns}),
        json!({"containerRef": {"name": name}}),
    )?;
    api(&user.0.client, &ar, &ns).create(&post_params(false), &obj).await?;
    Ok(Redirect::to(&detail(&ns, &name)).into_response())
}

/// The restore form: a new container from one of this container's backups.
#[derive(Deserialize)]
pub struct RestoreForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Name of the `LxcBackup` to restore (or empty, with `volid`).
    #[serde(default)]
    pub backup: String,
    /// Volume id of a backup archive in Proxmox storage.
    #[serde(default)]
    pub volid: String,
    /// Name of the new container.
    #[serde(default)]
    pub new_name: String,
}

/// `POST /ui/containers/{ns}/{name}/restore`: creates a new `LxcContainer` from a backup of
/// this one (`spec.source.backup`), in the same cluster.
pub async fn restore(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<RestoreForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    let new_name = f.new_name.trim();
    checked(&ns, &name)?;
    checked(&ns, new_name)?;
    let ar = resource::<LxcContainer>();
    let api = api(&user.0.client, &ar, &ns);
    let original = pages::to_json(&api.get(&name).await?, &ar);
    let source = match (f.backup.trim(), f.volid.trim()) {
        (b, _) if !b.is_empty() => json!({"name": b}),
        (_, v) if !v.is_empty() => json!({"volid": v}),
        _ => {
            return Err(UiError::Refused(
                StatusCode::BAD_REQUEST,
                "Choose a backup to restore".into(),
            ))
        }
    };
    let mut spec = json!({"source": {"backup": source}, "state": "Running"});
    if original["spec"]["clusterRef"].is_object() {
        spec["clusterRef"] = original["spec"]["clusterRef"].clone();
    }
    let obj = object(&ar, json!({"name": new_name, "namespace": ns}), spec)?;
    api.create(&post_params(false), &obj).await?;
    Ok(Redirect::to(&detail(&ns, new_name)).into_response())
}

/// The delete confirmation.
#[derive(Deserialize)]
pub struct DeleteForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// The container's name, typed again.
    #[serde(default)]
    pub confirm: String,
}

/// `POST /ui/containers/{ns}/{name}/delete`: deletes the `LxcContainer` (confirmed by its name).
pub async fn delete(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    checked(&ns, &name)?;
    if form.confirm.trim() != name {
        return Err(UiError::Refused(
            StatusCode::BAD_REQUEST,
            "The name typed does not match: nothing was deleted".into(),
        ));
    }
    api(&user.0.client, &resource::<LxcContainer>(), &ns)
        .delete(&name, &DeleteParams::default())
        .await?;
    Ok(Redirect::to(&format!("/ui/containers?ns={ns}")).into_response())
}

/// An object of kind `ar` with `metadata` and `spec`.
fn object(ar: &kube::api::ApiResource, metadata: Value, spec: Value) -> Result<DynamicObject, UiError> {
    serde_json::from_value(json!({"apiVersion": ar.api_version, "kind": ar.kind, "metadata": metadata, "spec": spec}))
        .map_err(|e| UiError::Refused(StatusCode::BAD_REQUEST, e.to_string()))
}

fn post_params(dry_run: bool) -> PostParams {
    PostParams {
        dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    }
}

/// One field of the creation form.
pub struct Field {
    /// Form name.
    pub name: &'static str,
    /// Label.
    pub label: &'static str,
    /// Hint after the label.
    pub hint: &'static str,
    /// Value (as typed).
    pub value: String,
    /// Choices (a `<select>` when not empty).
    pub options: Vec<String>,
    /// The apiserver's complaint about this field.
    pub error: String,
    /// The field's path in the object, to find the apiserver's complaint about it.
    pub path: &'static str,
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    chrome: Chrome,
    error: String,
    notice: String,
    fields: Vec<Field>,
}

/// The creation form.
#[derive(Debug, Default, Deserialize)]
pub struct NewForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// `check` (dry run only) or `create`.
    #[serde(default)]
    pub mode: String,
    /// Namespace.
    #[serde(default)]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// `ProxmoxCluster` name.
    #[serde(default)]
    pub cluster: String,
    /// `LxcTemplate` name (empty: use `os_template`).
    #[serde(default)]
    pub template: String,
    /// Proxmox OS template volume.
    #[serde(default)]
    pub os_template: String,
    /// Cores.
    #[serde(default)]
    pub cores: String,
    /// Memory (a quantity like `512Mi`).
    #[serde(default)]
    pub memory: String,
    /// `Running` or `Stopped`.
    #[serde(default)]
    pub state: String,
}

fn fields(f: &NewForm, templates: Vec<String>) -> Vec<Field> {
    let field = |name, label, hint, value: &str, path| Field {
        name,
        label,
        hint,
        value: value.to_string(),
        options: Vec::new(),
        error: String::new(),
        path,
    };
    let mut template = field(
        "template",
        "LxcTemplate",
        "or an OS template below",
        &f.template,
        "spec.source",
    );
    if !templates.is_empty() {
        template.options = std::iter::once(String::new()).chain(templates).collect();
    }
    let mut state = field("state", "State", "", &f.state, "spec.state");
    state.options = vec!["Running".into(), "Stopped".into()];
    vec![
        field("namespace", "Namespace", "", &f.namespace, "metadata.namespace"),
        field("name", "Name", "a DNS label", &f.name, "metadata.name"),
        field(
            "cluster",
            "ProxmoxCluster",
            "empty: the default",
            &f.cluster,
            "spec.clusterRef",
        ),
        template,
        field(
            "os_template",
            "OS template",
            "e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            &f.os_template,
            "spec.source.osTemplate",
        ),
        field("cores", "Cores", "", &f.cores, "spec.resources.cores"),
        field("memory", "Memory", "e.g. 512Mi", &f.memory, "spec.resources.memory"),
        state,
    ]
}

/// The object the form describes. Values are passed as typed (a number where one is expected
/// when it reads as one) so the apiserver's schema, not the UI, judges them.
pub fn new_object(f: &NewForm) -> Value {
    let mut spec = json!({"state": if f.state.is_empty() { "Running" } else { f.state.as_str() }});
    if !f.cluster.trim().is_empty() {
        spec["clusterRef"] = json!({"name": f.cluster.trim()});
    }
    spec["source"] = if !f.template.trim().is_empty() {
        json!({"template": {"name": f.template.trim()}})
    } else {
        json!({"osTemplate": f.os_template.trim()})
    };
    let mut resources = serde_json::Map::new();
    if !f.cores.trim().is_empty() {
        let cores = f.cores.trim();
        resources.insert(
            "cores".into(),
            cores.parse::<i64>().map(Value::from).unwrap_or_else(|_| cores.into()),
        );
    }
    if !f.memory.trim().is_empty() {
        resources.insert("memory".into(), f.memory.trim().into());
    }
    if !resources.is_empty() {
        spec["resources"] = Value::Object(resources);
    }
    let ar = resource::<LxcContainer>();
    json!({"apiVersion": ar.api_version, "kind": ar.kind,
           "metadata": {"name": f.name.trim(), "namespace": f.namespace.trim()}, "spec": spec})
}

async fn template_names(user: &User, ns: &str) -> Vec<String> {
    if ns.is_empty() {
        return Vec::new();
    }
    pages::list(&user.0.client, &resource::<LxcTemplate>(), ns)
        .await
        .map(|items| {
            items
                .iter()
                .filter_map(|t| t["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn new_page(
    user: &User,
    f: &NewForm,
    status: StatusCode,
    error: String,
    notice: String,
) -> Result<Response, UiError> {
    let ns = f.namespace.trim();
    let mut fields = fields(f, template_names(user, ns).await);
    for field in &mut fields {
        if !error.is_empty() && error.contains(field.path) {
            field.error = error.clone();
        }
    }
    render(
        status,
        &NewPage {
            chrome: Chrome::new("New container", user, ns),
            error,
            notice,
            fields,
        },
    )
}

/// `GET /ui/new?ns=`: the creation form.
pub async fn new_form(user: User, Query(q): Query<Filter>) -> Result<Response, UiError> {
    let f = NewForm {
        namespace: q.namespace(&user)?,
        state: "Running".into(),
        ..Default::default()
    };
    new_page(&user, &f, StatusCode::OK, String::new(), String::new()).await
}

/// `POST /ui/new`: a server-side dry run (`dryRun=All`), then, when it passes and the user asked
/// to create, the creation; the apiserver's complaint is shown next to the form (and the field
/// it names).
pub async fn create(user: User, Form(f): Form<NewForm>) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    let ns = f.namespace.trim().to_string();
    if !valid_name(&ns) {
        let error = "Namespace: give the namespace to create the container in (metadata.namespace)".to_string();
        return new_page(&user, &f, StatusCode::UNPROCESSABLE_ENTITY, error, String::new()).await;
    }
    let obj: DynamicObject =
        serde_json::from_value(new_object(&f)).map_err(|e| UiError::Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    let api = api(&user.0.client, &resource::<LxcContainer>(), &ns);
    let outcome = match api.create(&post_params(true), &obj).await {
        Ok(_) if f.mode == "create" => api.create(&post_params(false), &obj).await.map(Some),
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(Some(_)) => Ok(Redirect::to(&detail(&ns, f.name.trim())).into_response()),
        Ok(None) => {
            let notice = "The apiserver accepts this container (dry run): nothing was created yet.".to_string();
            new_page(&user, &f, StatusCode::OK, String::new(), notice).await
        }
        Err(e) => {
            let e = UiError::from(e);
            new_page(&user, &f, e.status(), e.message(), String::new()).await
        }
    }
}
