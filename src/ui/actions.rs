//! The POSTs: sign-in and sign-out, and the actions, each one change to a Kubernetes object
//! made with the user's client (start/stop, back up now, delete, create). Every action checks
//! the session's CSRF token first.

use super::pages::{self, api, checked, resource, valid_name};
use super::session::{self, COOKIE};
use super::{access, signin, AppState, UiError, User};
use crate::crd::{LxcBackup, LxcContainer};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
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
/// authenticated user may create), finds who it is and where their lists start
/// ([`super::signin`]), and starts a session.
pub async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, UiError> {
    let token = form.token.trim();
    let namespace = form.namespace.trim().to_string();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return pages::login_page(StatusCode::BAD_REQUEST, "Paste a bearer token (one line).", &namespace);
    }
    if !namespace.is_empty() && !valid_name(&namespace) {
        return pages::login_page(StatusCode::BAD_REQUEST, "That is not a namespace name.", &namespace);
    }
    let client = state.client_for(token)?;
    match access::allowed(&client, "pve.lxc.dev", "lxccontainers", "list", &namespace).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 401 => {
            return pages::login_page(
                StatusCode::UNAUTHORIZED,
                "Kubernetes does not accept this token: it may have expired (tokens from `kubectl create token` last an hour by default) or belong to another cluster.",
                &namespace,
            );
        }
        Err(e) => return Err(e.into()),
    }
    let identity = signin::identify(&client, token).await;
    let (namespace, why) = if namespace.is_empty() {
        let ns = signin::default_namespace(&client, &identity).await;
        let why = match (&identity.sa_namespace, ns.as_str()) {
            (_, "") => "all namespaces".to_string(),
            (Some(own), ns) if own == ns => format!("namespace {ns}, your ServiceAccount's"),
            (_, ns) => format!("namespace {ns}, one you may list containers in"),
        };
        (ns, why)
    } else {
        (namespace.clone(), format!("namespace {namespace}"))
    };
    // the principal bounds the sessions one user may hold; a token the apiserver names no user
    // for counts as its own principal
    let principal = if identity.user.is_empty() {
        use sha2::Digest;
        format!("token:{}", &hex::encode(sha2::Sha256::digest(token.as_bytes()))[..16])
    } else {
        identity.user.clone()
    };
    let s = match state
        .sessions()
        .create_at(client, namespace.clone(), principal, std::time::Instant::now())
    {
        Ok(s) => s,
        Err(full) => {
            tracing::warn!(user = %identity.user, "web UI: sign-in refused, {full}");
            return pages::login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Sign-in refused: {full}."),
                "",
            );
        }
    };
    let who = if identity.user.is_empty() {
        "unnamed token"
    } else {
        identity.user.as_str()
    };
    tracing::info!(user = %who, namespace = %namespace, "web UI: a user signed in");
    s.flash(false, format!("Signed in as {who}; showing {why}."));
    let cookie = session::set_cookie(
        Some(&s.id),
        secure(&state, &headers),
        state.options().lifetimes.absolute,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/ui/containers")).into_response())
}

/// Whether the session cookie is marked `Secure`: when the listener is told so, and whenever
/// the request reached the proxy in front over https (`X-Forwarded-Proto` or `Forwarded`).
pub fn secure(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let https = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("https"))
    };
    state.options().secure_cookies || https("x-forwarded-proto") || https("forwarded")
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
    headers: axum::http::HeaderMap,
    user: User,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    state.sessions().remove(&user.0.id);
    tracing::info!(user = %user.0.principal, "web UI: a user signed out");
    let cookie = session::set_cookie(None, secure(&state, &headers), Default::default());
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

/// Where an action's form was: the containers table or the container's page.
enum Back {
    /// The containers table (a row's button).
    List,
    /// The container's page.
    Detail,
}

/// After an action: on success, the confirmation goes to the next page and the browser is sent
/// to where the form was; on failure, that page is shown again at once with the message (and
/// the apiserver's status code).
async fn outcome(
    state: &AppState,
    user: &User,
    (ns, name): (&str, &str),
    back: Back,
    result: Result<String, UiError>,
) -> Result<Response, UiError> {
    match result {
        Ok(done) => {
            user.0.flash(false, done);
            let to = match back {
                Back::List => format!("/ui/containers?ns={ns}"),
                Back::Detail => detail(ns, name),
            };
            Ok(Redirect::to(&to).into_response())
        }
        Err(e) => {
            user.0.flash(true, e.message());
            match back {
                Back::List => pages::containers_page(user, ns, "", e.status()).await,
                Back::Detail => super::detail::container_page(state, user, ns, name, e.status()).await,
            }
        }
    }
}

/// `POST /ui/containers/{ns}/{name}/state`: merge-patches `spec.state`.
pub async fn set_state(
    State(state): State<AppState>,
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
    let result = api(&user.0.client, &ar, &ns)
        .patch(
            &name,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"state": form.state}})),
        )
        .await
        .map(|_| {
            let verb = if form.state == "Running" { "Start" } else { "Stop" };
            format!("{verb} requested for {ns}/{name}: the operator carries it out now, and the state shows here when Proxmox reports it.")
        })
        .map_err(UiError::from);
    let back = if form.back == "list" { Back::List } else { Back::Detail };
    outcome(&state, &user, (&ns, &name), back, result).await
}

/// `POST /ui/containers/{ns}/{name}/backup`: creates an `LxcBackup` of the container.
pub async fn back_up(
    State(state): State<AppState>,
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
    let result = api(&user.0.client, &ar, &ns)
        .create(&post_params(false), &obj)
        .await
        .map(|b| {
            format!(
                "Backup requested: LxcBackup {} of {ns}/{name}; it is listed under Backups below.",
                b.metadata.name.unwrap_or_default()
            )
        })
        .map_err(UiError::from);
    outcome(&state, &user, (&ns, &name), Back::Detail, result).await
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
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<RestoreForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &name)?;
    let result = restore_from(&user, &ns, &name, &f).await;
    match result {
        Ok(done) => {
            user.0.flash(false, done);
            Ok(Redirect::to(&detail(&ns, f.new_name.trim())).into_response())
        }
        Err(e) => outcome(&state, &user, (&ns, &name), Back::Detail, Err(e)).await,
    }
}

async fn restore_from(user: &User, ns: &str, name: &str, f: &RestoreForm) -> Result<String, UiError> {
    let new_name = f.new_name.trim();
    if !valid_name(new_name) {
        return Err(UiError::Refused(
            StatusCode::BAD_REQUEST,
            "Name the new container (lowercase letters, digits and '-')".into(),
        ));
    }
    let ar = resource::<LxcContainer>();
    let api = api(&user.0.client, &ar, ns);
    let original = pages::to_json(&api.get(name).await?, &ar);
    let (source, what) = match (f.backup.trim(), f.volid.trim()) {
        (b, _) if !b.is_empty() => (json!({"name": b}), format!("LxcBackup {b}")),
        (_, v) if !v.is_empty() => (json!({"volid": v}), format!("archive {v}")),
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
    Ok(format!(
        "Restore requested: {ns}/{new_name} is being created from {what}."
    ))
}

/// The restore form of the backups page: the new container's name.
#[derive(Deserialize)]
pub struct RestoreBackupForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// Name of the new container.
    #[serde(default)]
    pub new_name: String,
}

/// `POST /ui/backups/{ns}/{backup}/restore`: a new `LxcContainer` from `LxcBackup` `backup`, in
/// the cluster the backup was taken in; its container need not exist any more.
pub async fn restore_backup(
    user: User,
    Path((ns, backup)): Path<(String, String)>,
    Form(f): Form<RestoreBackupForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &backup)?;
    let new_name = f.new_name.trim().to_string();
    let result = async {
        if !valid_name(&new_name) {
            return Err(UiError::Refused(
                StatusCode::BAD_REQUEST,
                "Name the new container (lowercase letters, digits and '-')".into(),
            ));
        }
        let bar = resource::<LxcBackup>();
        let b = pages::to_json(&api(&user.0.client, &bar, &ns).get(&backup).await?, &bar);
        let mut spec = json!({"source": {"backup": {"name": backup}}, "state": "Running"});
        if let Some(cluster) = b["status"]["cluster"].as_str().filter(|c| !c.is_empty()) {
            spec["clusterRef"] = json!({ "name": cluster });
        }
        let ar = resource::<LxcContainer>();
        let obj = object(&ar, json!({"name": new_name, "namespace": ns}), spec)?;
        api(&user.0.client, &ar, &ns).create(&post_params(false), &obj).await?;
        Ok(format!(
            "Restore requested: {ns}/{new_name} is being created from LxcBackup {backup}."
        ))
    }
    .await;
    match result {
        Ok(done) => {
            user.0.flash(false, done);
            Ok(Redirect::to(&detail(&ns, &new_name)).into_response())
        }
        Err(e) => {
            user.0.flash(true, e.message());
            pages::schedules_page(&user, &ns, e.status()).await
        }
    }
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

/// `POST /ui/containers/{ns}/{name}/delete`: deletes the `LxcContainer` (confirmed by its
/// name); a wrong name or a refusal shows the form again with the message.
pub async fn delete(
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(form): Form<DeleteForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&form.csrf)?;
    checked(&ns, &name)?;
    let typed = form.confirm.trim();
    if typed != name {
        let error = format!("The name typed ({typed:?}) is not {name:?}: nothing was deleted. Type it again.");
        return super::detail::confirm_delete_page(&user, &ns, &name, typed, StatusCode::BAD_REQUEST, error);
    }
    match api(&user.0.client, &resource::<LxcContainer>(), &ns)
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => {
            user.0.flash(
                false,
                format!("Deletion of {ns}/{name} requested: its row goes once the operator has removed what its deletionPolicy says."),
            );
            Ok(Redirect::to(&format!("/ui/containers?ns={ns}")).into_response())
        }
        Err(e) => {
            let e = UiError::from(e);
            super::detail::confirm_delete_page(&user, &ns, &name, typed, e.status(), e.message())
        }
    }
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
