//! Secrets by consent. A namespaced object that names a Secret makes the operator read it with
//! its own rights, which are wider than those of the object's author (the chart's `edit` role
//! grants no Secret read), and the value then lands where the author can read it back: an
//! `app.env` value is in the container's environment, in Proxmox's config of the guest, in
//! every vzdump archive and in every snapshot's config. So the operator reads only Secrets
//! whose owner marked them for that use (a type or a label, as root passwords are marked), or
//! that a Pod of the namespace names itself (a Pod's author may mount any Secret of its
//! namespace anyway, so the child `LxcContainer` of a Pod on a virtual node reads what the Pod
//! names and nothing else).

use crate::crd::LxcContainer;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::{Api, ResourceExt};

/// The Secret type that marks a Secret as readable by `LxcContainer.spec.app.env`.
pub const APP_ENV_TYPE: &str = "pve.lxc.dev/app-env";
/// The label (`=true`) that marks a Secret as readable by `app.env` (the type of an existing
/// Secret cannot be changed; the label can).
pub const APP_ENV_LABEL: &str = "pve.lxc.dev/app-env";

/// Whether the Secret's owner marked it for `app.env` (its type or label).
pub fn is_app_env_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(APP_ENV_TYPE)
        || s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(APP_ENV_LABEL))
            .is_some_and(|v| v == "true")
}

/// Whether `pod` names Secret `name` in an environment variable (`env[].valueFrom.secretKeyRef`
/// or `envFrom[].secretRef`) of one of its containers.
pub fn pod_names_secret(pod: &Pod, name: &str) -> bool {
    let Some(spec) = &pod.spec else {
        return false;
    };
    let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    containers.into_iter().any(|c| {
        let env = c.env.iter().flatten().any(|e| {
            e.value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .is_some_and(|r| r.name == name)
        });
        let from = c
            .env_from
            .iter()
            .flatten()
            .any(|f| f.secret_ref.as_ref().is_some_and(|r| r.name == name));
        env || from
    })
}

/// The Pod a container was made for (its controlling owner, of kind `Pod`, whose uid its
/// [`POD_UID_LABEL`](crate::controller::vnode::POD_UID_LABEL) repeats): name and uid.
fn owning_pod(obj: &LxcContainer) -> Option<(String, String)> {
    let label = obj.labels().get(crate::controller::vnode::POD_UID_LABEL)?;
    obj.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Pod" && o.api_version == "v1" && &o.uid == label)
        .map(|o| (o.name.clone(), o.uid.clone()))
}

/// Whether `obj` may read `secret` for `app.env`: marked for it, or named by the Pod `obj` was
/// made for (that Pod exists with the uid its owner reference names). `Err` names the Secret
/// and the way to mark it.
pub async fn app_env_consent(kube: &kube::Client, obj: &LxcContainer, secret: &Secret) -> Result<(), String> {
    if is_app_env_secret(secret) {
        return Ok(());
    }
    let name = secret.name_any();
    if let Some((pod, uid)) = owning_pod(obj) {
        let pods: Api<Pod> = Api::namespaced(kube.clone(), &obj.namespace().unwrap_or_default());
        // a Pod that cannot be read gives no consent
        if let Ok(Some(p)) = pods.get_opt(&pod).await {
            if p.uid().as_deref() == Some(uid.as_str()) && pod_names_secret(&p, &name) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "Secret {name} is not meant for app.env: the operator reads it with its own rights and its values end up in the container's Proxmox config, archives and snapshots, so its owner must give it type {APP_ENV_TYPE} or the label {APP_ENV_LABEL}=true"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(type_: Option<&str>, label: Option<&str>) -> Secret {
        Secret {
            type_: type_.map(str::to_string),
            metadata: kube::api::ObjectMeta {
                labels: label.map(|v| [(APP_ENV_LABEL.to_string(), v.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_a_secret_marked_by_type_or_label_is_read_for_app_env() {
        assert!(is_app_env_secret(&secret(Some(APP_ENV_TYPE), None)));
        assert!(is_app_env_secret(&secret(Some("Opaque"), Some("true"))));
        assert!(!is_app_env_secret(&secret(Some("Opaque"), Some("false"))));
        assert!(!is_app_env_secret(&secret(Some("kubernetes.io/basic-auth"), None)));
        assert!(!is_app_env_secret(&secret(None, None)));
    }

    #[test]
    fn a_pod_consents_only_to_the_secrets_its_containers_name() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "env": [
                {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
            ], "envFrom": [{"secretRef": {"name": "bulk"}}]}]}
        }))
        .unwrap();
        assert!(pod_names_secret(&pod, "db"));
        assert!(pod_names_secret(&pod, "bulk"));
        assert!(!pod_names_secret(&pod, "ci-deployer-token"));
    }
}
