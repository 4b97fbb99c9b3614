//! Who signs in, and where their lists start when they leave the namespace empty.
//!
//! The apiserver is asked first (a SelfSubjectAccessReview: `401` means the token is not
//! accepted). The user's name comes from a SelfSubjectReview where the apiserver serves one
//! (Kubernetes 1.28 and later); on older apiservers it is the token's own `sub` claim, read only
//! once the apiserver accepted the token. The namespace, when not given, is the first of:
//! all namespaces (when the user may list containers cluster-wide), the ServiceAccount's own
//! namespace (the token's `kubernetes.io` claim), the first namespace the user may list
//! containers in (when they may list namespaces). A claim only chooses what is shown first:
//! every list is still made with the user's token, so RBAC decides.

use super::access::allowed;
use base64::Engine;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use serde_json::Value;

/// At most this many namespaces are tried when looking for one the user may list in.
pub const MAX_NAMESPACES_TRIED: u32 = 50;

/// What sign-in found out about a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The Kubernetes user name (e.g. `system:serviceaccount:apps:alice`), empty when unknown.
    pub user: String,
    /// The ServiceAccount's namespace, when the token is a ServiceAccount's.
    pub sa_namespace: Option<String>,
}

/// The claims of a JWT (its middle part), without checking its signature: only for tokens the
/// apiserver has accepted. `None` when `token` is no JWT.
pub fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The identity a ServiceAccount token's claims name (bound tokens: `kubernetes.io.namespace`;
/// legacy Secret tokens: `kubernetes.io/serviceaccount/namespace`; both: `sub`).
pub fn identity_from_claims(claims: &Value) -> Identity {
    let user = claims["sub"].as_str().unwrap_or_default().to_string();
    let from_sub = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns.to_string());
    let ns = claims["kubernetes.io"]["namespace"]
        .as_str()
        .or_else(|| claims["kubernetes.io/serviceaccount/namespace"].as_str())
        .map(String::from)
        .or(from_sub)
        .filter(|ns| super::pages::valid_name(ns));
    Identity { user, sa_namespace: ns }
}

/// The identity of the user of `client` (whose token is `token`, already accepted).
pub async fn identify(client: &kube::Client, token: &str) -> Identity {
    let from_token = jwt_claims(token).map(|c| identity_from_claims(&c)).unwrap_or_default();
    let review = SelfSubjectReview::default();
    match Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
    {
        Ok(r) => {
            let user = r.status.and_then(|s| s.user_info).and_then(|u| u.username);
            match user {
                Some(user) => {
                    let sa_namespace = identity_from_claims(&serde_json::json!({ "sub": user })).sa_namespace;
                    Identity {
                        user,
                        sa_namespace: sa_namespace.or(from_token.sa_namespace),
                    }
                }
                None => from_token,
            }
        }
        // older apiservers do not serve it (404)
        Err(_) => from_token,
    }
}

/// Where lists start for a user who left the namespace empty: `""` (all) when they may list
/// containers cluster-wide; else the ServiceAccount's namespace; else the first namespace
/// they may list containers in; else `""` (the pages then say to choose one).
pub async fn default_namespace(client: &kube::Client, identity: &Identity) -> String {
    let lists = |ns: String| async move {
        allowed(client, "pve.lxc.dev", "lxccontainers", "list", &ns)
            .await
            .unwrap_or(false)
    };
    if lists(String::new()).await {
        return String::new();
    }
    if let Some(ns) = &identity.sa_namespace {
        return ns.clone();
    }
    let lp = ListParams::default().limit(MAX_NAMESPACES_TRIED);
    if let Ok(list) = Api::<Namespace>::all(client.clone()).list(&lp).await {
        for ns in list.items.into_iter().filter_map(|n| n.metadata.name) {
            if lists(ns.clone()).await {
                return ns;
            }
        }
    }
    String::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jwt(claims: &Value) -> String {
        let enc = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            enc(br#"{"alg":"RS256"}"#),
            enc(claims.to_string().as_bytes()),
            enc(b"sig")
        )
    }

    #[test]
    fn a_bound_service_account_token_names_its_namespace_and_user() {
        let claims = json!({"sub": "system:serviceaccount:apps:alice",
            "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "alice"}}});
        let id = identity_from_claims(&jwt_claims(&jwt(&claims)).unwrap());
        assert_eq!(id.user, "system:serviceaccount:apps:alice");
        assert_eq!(id.sa_namespace.as_deref(), Some("apps"));
    }

    #[test]
    fn a_legacy_secret_token_and_a_bare_subject_name_the_namespace_too() {
        let legacy = json!({"sub": "system:serviceaccount:team-b:ci",
            "kubernetes.io/serviceaccount/namespace": "team-b"});
        assert_eq!(identity_from_claims(&legacy).sa_namespace.as_deref(), Some("team-b"));
        let sub_only = json!({"sub": "system:serviceaccount:team-c:ci"});
        assert_eq!(identity_from_claims(&sub_only).sa_namespace.as_deref(), Some("team-c"));
    }

    #[test]
    fn a_token_that_is_no_jwt_or_names_no_service_account_gives_no_namespace() {
        assert_eq!(jwt_claims("abcdef0123456789"), None);
        assert_eq!(jwt_claims("a.b"), None);
        assert_eq!(jwt_claims("a.!!!.c"), None);
        let oidc = json!({"sub": "jane@example.com"});
        assert_eq!(identity_from_claims(&oidc).sa_namespace, None);
        let hostile = json!({"sub": "x", "kubernetes.io": {"namespace": "../etc"}});
        assert_eq!(
            identity_from_claims(&hostile).sa_namespace,
            None,
            "not a namespace name"
        );
    }
}
