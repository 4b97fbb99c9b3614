//! What the signed-in user may do, asked of the apiserver (SelfSubjectAccessReviews made with
//! the user's own client): pages offer only the actions RBAC allows and say why the others are
//! missing. The apiserver still decides each request; this only spares the user a refusal.

use super::session::Session;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};
use kube::api::{Api, PostParams};
use std::time::Duration;

/// How long an access review is reused for the same namespace (a page view makes none then).
pub const CACHE_FOR: Duration = Duration::from_secs(20);

/// The actions a user may take in one namespace (all namespaces when it is empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// `patch` `lxccontainers`: start and stop.
    pub patch: bool,
    /// `create` `lxcbackups`: back up now.
    pub back_up: bool,
    /// `delete` `lxccontainers`.
    pub delete: bool,
    /// `create` `lxccontainers`: new containers, restores.
    pub create: bool,
    /// `create` `lxcsnapshots`: take a snapshot.
    pub snapshot: bool,
    /// `patch` `lxcsnapshots`: roll back to one.
    pub rollback: bool,
    /// `delete` `lxcsnapshots`.
    pub delete_snapshot: bool,
    /// `create` `lxccontainers/console`: open a container's console.
    pub console: bool,
}

impl Access {
    /// Everything allowed.
    pub const ALL: Access = Access {
        patch: true,
        back_up: true,
        delete: true,
        create: true,
        snapshot: true,
        rollback: true,
        delete_snapshot: true,
        console: true,
    };

    /// A sentence naming what the user may not do in `ns`, empty when they may do everything.
    pub fn missing(&self, ns: &str) -> String {
        let missing: Vec<&str> = [
            (self.patch, "start or stop (patch lxccontainers)"),
            (self.back_up, "back up (create lxcbackups)"),
            (self.create, "create or restore (create lxccontainers)"),
            (self.delete, "delete (delete lxccontainers)"),
            (self.snapshot, "take snapshots (create lxcsnapshots)"),
            (self.rollback, "roll back (patch lxcsnapshots)"),
            (self.delete_snapshot, "delete snapshots (delete lxcsnapshots)"),
            (self.console, "open the console (create lxccontainers/console)"),
        ]
        .into_iter()
        .filter(|(allowed, _)| !allowed)
        .map(|(_, what)| what)
        .collect();
        if missing.is_empty() {
            return String::new();
        }
        let scope = if ns.is_empty() {
            "across all namespaces".to_string()
        } else {
            format!("in namespace {ns}")
        };
        if *self == Access::default() {
            return format!(
                "You may only view {scope}: starting, stopping, backing up, creating, restoring, deleting, snapshots and the console need patch lxccontainers, create lxcbackups, create and delete lxccontainers, create, patch and delete lxcsnapshots, and create lxccontainers/console."
            );
        }
        format!(
            "Your account may not {} {scope}, so those actions are not offered.",
            missing.join(", ")
        )
    }
}

/// Whether the apiserver allows the user of `client` to `verb` `resource` (of `pve.lxc.dev`
/// unless `group` says otherwise) in `ns` (cluster-wide when empty); `Err` when it could not
/// answer, e.g. `401` for a token it does not accept.
pub async fn allowed(
    client: &kube::Client,
    group: &str,
    resource: &str,
    verb: &str,
    ns: &str,
) -> Result<bool, kube::Error> {
    allowed_on(client, group, resource, "", verb, ns).await
}

/// Like [`allowed`], for a `subresource` of `resource` (none when empty), e.g. `create`
/// `lxccontainers/console`.
pub async fn allowed_on(
    client: &kube::Client,
    group: &str,
    resource: &str,
    subresource: &str,
    verb: &str,
    ns: &str,
) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.to_string()),
                namespace: (!ns.is_empty()).then(|| ns.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// What the session's user may do in `ns` (reviews cached for [`CACHE_FOR`]); an unanswered
/// review counts as not allowed.
pub async fn access(session: &Session, ns: &str) -> Access {
    if let Some(a) = session.cached_access(ns, CACHE_FOR) {
        return a;
    }
    let c = &session.client;
    let g = "pve.lxc.dev";
    let (patch, back_up, delete, create) = futures::join!(
        allowed(c, g, "lxccontainers", "patch", ns),
        allowed(c, g, "lxcbackups", "create", ns),
        allowed(c, g, "lxccontainers", "delete", ns),
        allowed(c, g, "lxccontainers", "create", ns),
    );
    let (snapshot, rollback, delete_snapshot, console) = futures::join!(
        allowed(c, g, "lxcsnapshots", "create", ns),
        allowed(c, g, "lxcsnapshots", "patch", ns),
        allowed(c, g, "lxcsnapshots", "delete", ns),
        allowed_on(c, g, "lxccontainers", "console", "create", ns),
    );
    let a = Access {
        patch: patch.unwrap_or(false),
        back_up: back_up.unwrap_or(false),
        delete: delete.unwrap_or(false),
        create: create.unwrap_or(false),
        snapshot: snapshot.unwrap_or(false),
        rollback: rollback.unwrap_or(false),
        delete_snapshot: delete_snapshot.unwrap_or(false),
        console: console.unwrap_or(false),
    };
    session.cache_access(ns, a);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_rights_are_named_with_the_verbs_to_ask_for() {
        assert_eq!(Access::ALL.missing("apps"), "");
        let viewer = Access::default();
        let text = viewer.missing("apps");
        assert!(
            text.contains("patch lxccontainers") && text.contains("create lxcbackups"),
            "{text}"
        );
        assert!(text.contains("in namespace apps"), "{text}");
        let no_delete = Access {
            delete: false,
            ..Access::ALL
        };
        assert_eq!(
            no_delete.missing(""),
            "Your account may not delete (delete lxccontainers) across all namespaces, so those actions are not offered."
        );
    }
}
