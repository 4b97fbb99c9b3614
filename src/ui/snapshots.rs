//! The Snapshots section of a container's page, as in the Proxmox GUI's snapshot tab: the
//! container's `LxcSnapshot`s, and take, roll back and delete. Each is one change to an object
//! made with the user's client: a new `LxcSnapshot`, a new `spec.rollback.request`, a delete.

use super::actions::FIELD_MANAGER;
use super::model;
use super::pages::{api, checked, list, resource, split, text};
use super::{AppState, UiError, User};
use crate::crd::LxcSnapshot;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde::Deserialize;
use serde_json::{json, Value};

/// One snapshot as the section shows it.
pub struct SnapshotView {
    /// The `LxcSnapshot`'s name.
    pub name: String,
    /// Its phase.
    pub phase: String,
    /// When it was taken.
    pub created: String,
    /// Its description.
    pub description: String,
    /// The last rollback to it (request and when), or empty.
    pub last_rollback: String,
    /// Health badge.
    pub health: model::Badge,
}

impl SnapshotView {
    /// The view of one `LxcSnapshot`.
    pub fn of(obj: &Value) -> SnapshotView {
        let (name, health) = (text(&obj["metadata"]["name"]), model::badge(obj));
        let (spec, status) = (&obj["spec"], &obj["status"]);
        let rb = &status["rollback"];
        SnapshotView {
            name,
            phase: text(&status["phase"]),
            created: text(&status["createdAt"]),
            description: text(&spec["description"]),
            last_rollback: match rb["request"].as_str() {
                Some(r) => format!("{r} ({})", text(&rb["completedAt"])),
                None => String::new(),
            },
            health,
        }
    }

    /// Whether it can be rolled back to (it exists in Proxmox).
    pub fn ready(&self) -> bool {
        self.phase == "Ready"
    }
}

/// The `LxcSnapshot`s of container `name` in `ns`, newest first, or why they cannot be listed.
pub async fn of_container(client: &kube::Client, ns: &str, name: &str) -> (Vec<SnapshotView>, String) {
    let items = list(client, &resource::<LxcSnapshot>(), ns).await.map(|items| {
        let mut v: Vec<SnapshotView> = items
            .iter()
            .filter(|s| s["spec"]["containerRef"]["name"] == name)
            .map(SnapshotView::of)
            .collect();
        v.sort_by(|a, b| b.created.cmp(&a.created));
        v
    });
    let (v, error, _) = split(items.map_err(UiError::from));
    (v, error)
}

/// The take-a-snapshot form.
#[derive(Deserialize)]
pub struct TakeForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// A description stored with the snapshot (optional, one line).
    #[serde(default)]
    pub description: String,
}

/// The roll-back and delete forms.
#[derive(Deserialize)]
pub struct SnapshotForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// `yes` when the user ticked the confirmation.
    #[serde(default)]
    pub confirm: String,
}

async fn done(
    state: &AppState,
    user: &User,
    ns: &str,
    name: &str,
    result: Result<String, UiError>,
) -> Result<Response, UiError> {
    match result {
        Ok(text) => {
            user.0.flash(false, text);
            Ok(Redirect::to(&format!("/ui/containers/{ns}/{name}#h-snapshots")).into_response())
        }
        Err(e) => {
            user.0.flash(true, e.message());
            super::detail::container_page(state, user, ns, name, e.status()).await
        }
    }
}

fn confirmed(f: &SnapshotForm, what: &str) -> Result<(), UiError> {
    if f.confirm == "yes" {
        Ok(())
    } else {
        Err(UiError::Refused(
            StatusCode::BAD_REQUEST,
            format!("Tick the box to confirm the {what}: nothing was changed."),
        ))
    }
}

/// `POST /ui/containers/{ns}/{name}/snapshots`: takes a snapshot (a new `LxcSnapshot`).
pub async fn take(
    State(state): State<AppState>,
    user: User,
    Path((ns, name)): Path<(String, String)>,
    Form(f): Form<TakeForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &name)?;
    let ar = resource::<LxcSnapshot>();
    let prefix: String = name.chars().take(40).collect();
    let mut spec = json!({"containerRef": {"name": name}});
    let description = f.description.trim().replace(['\n', '\r'], " ");
    if !description.is_empty() {
        spec["description"] = json!(description);
    }
    let obj: Result<DynamicObject, _> = serde_json::from_value(json!({
        "apiVersion": ar.api_version, "kind": ar.kind,
        "metadata": {"generateName": format!("{}-ui-", prefix.trim_end_matches(['-', '.'])), "namespace": ns},
        "spec": spec}));
    let result = match obj {
        Ok(obj) => api(&user.0.client, &ar, &ns)
            .create(
                &PostParams {
                    dry_run: false,
                    field_manager: Some(FIELD_MANAGER.into()),
                },
                &obj,
            )
            .await
            .map(|s| {
                format!(
                    "Snapshot requested: LxcSnapshot {} of {ns}/{name}; it is Ready once Proxmox has taken it.",
                    s.metadata.name.unwrap_or_default()
                )
            })
            .map_err(UiError::from),
        Err(e) => Err(UiError::Refused(StatusCode::BAD_REQUEST, e.to_string())),
    };
    done(&state, &user, &ns, &name, result).await
}

/// `POST /ui/containers/{ns}/{name}/snapshots/{snapshot}/rollback`: asks for one rollback (a new
/// `spec.rollback.request`).
pub async fn rollback(
    State(state): State<AppState>,
    user: User,
    Path((ns, name, snapshot)): Path<(String, String, String)>,
    Form(f): Form<SnapshotForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &name)?;
    checked(&ns, &snapshot)?;
    let result = async {
        confirmed(&f, "rollback")?;
        let request = format!("ui-{}", jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"));
        api(&user.0.client, &resource::<LxcSnapshot>(), &ns)
            .patch(
                &snapshot,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                },
                &Patch::Merge(json!({"spec": {"rollback": {"request": request}}})),
            )
            .await?;
        Ok(format!(
            "Rollback of {ns}/{name} to snapshot {snapshot} requested ({request}): the operator stops the container, rolls it back and starts it again if it should run."
        ))
    }
    .await;
    done(&state, &user, &ns, &name, result).await
}

/// `POST /ui/containers/{ns}/{name}/snapshots/{snapshot}/delete`: deletes the `LxcSnapshot` (and
/// so the Proxmox snapshot, unless its `deletionPolicy` keeps it).
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path((ns, name, snapshot)): Path<(String, String, String)>,
    Form(f): Form<SnapshotForm>,
) -> Result<Response, UiError> {
    user.check_csrf(&f.csrf)?;
    checked(&ns, &name)?;
    checked(&ns, &snapshot)?;
    let result = async {
        confirmed(&f, "deletion")?;
        api(&user.0.client, &resource::<LxcSnapshot>(), &ns)
            .delete(&snapshot, &DeleteParams::default())
            .await?;
        Ok(format!("Deletion of snapshot {snapshot} of {ns}/{name} requested."))
    }
    .await;
    done(&state, &user, &ns, &name, result).await
}
