//! `spec.ports` → a Kubernetes Service without selector (same name as the container, owned by
//! it) and an EndpointSlice whose endpoint is the container's primary IPv4, ready only while
//! the container runs. Pods reach the container as `NAME.NAMESPACE.svc`.
//!
//! EndpointSlices are `discovery.k8s.io/v1` from Kubernetes 1.21; on older servers the
//! operator falls back to `v1beta1` and says so in the log.
//!
//! A Service or EndpointSlice of that name that the container does not control (no controller
//! ownerReference with its uid: made by a user, or by another object) is never written, adopted
//! or deleted: the pass fails with a reason naming it (finding 19 of the security review: a
//! forced apply would take it over, and garbage collection would delete it with the container).

use crate::controller::context::FIELD_MANAGER;
use crate::controller::error::{Error, InvalidSpec, KubeOp};
use crate::crd::lxc_container::{LxcContainer, PortProtocol};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::OnceCell;

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

static SLICE_VERSION: OnceCell<&'static str> = OnceCell::const_new();

async fn slice_version(client: &kube::Client) -> &'static str {
    SLICE_VERSION
        .get_or_init(|| async {
            match client.list_api_group_resources("discovery.k8s.io/v1").await {
                Ok(l) if l.resources.iter().any(|r| r.name == "endpointslices") => "v1",
                _ => {
                    tracing::warn!("the apiserver does not serve discovery.k8s.io/v1 EndpointSlices; using v1beta1");
                    "v1beta1"
                }
            }
        })
        .await
}

fn slice_api(client: &kube::Client, ns: &str, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("discovery.k8s.io", version, "EndpointSlice"),
        "endpointslices",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn protocol(p: PortProtocol) -> &'static str {
    match p {
        PortProtocol::Tcp => "TCP",
        PortProtocol::Udp => "UDP",
        PortProtocol::Sctp => "SCTP",
    }
}

/// The Service and EndpointSlice for `obj`, given its primary IPv4 and whether it runs (pure).
pub fn manifests(
    obj: &LxcContainer,
    ipv4: Option<&str>,
    running: bool,
    slice_version: &str,
) -> (serde_json::Value, serde_json::Value) {
    let name = obj.name_any();
    let owner = obj
        .controller_owner_ref(&())
        .map(|o| serde_json::to_value(o).unwrap())
        .into_iter()
        .collect::<Vec<_>>();
    let ports: Vec<_> = obj
        .spec
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.port, "targetPort": p.port, "protocol": protocol(p.protocol)}))
        .collect();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "ownerReferences": owner, "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
        "spec": {"type": "ClusterIP", "ports": ports},
    });
    let endpoints: Vec<_> = ipv4
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": running}}))
        .into_iter()
        .collect();
    let slice_ports: Vec<_> = obj
        .spec
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "port": p.port, "protocol": protocol(p.protocol)}))
        .collect();
    let slice = json!({
        "apiVersion": format!("discovery.k8s.io/{slice_version}"), "kind": "EndpointSlice",
        "metadata": {"name": name, "ownerReferences": owner, "labels": {SERVICE_NAME_LABEL: name, "endpointslice.kubernetes.io/managed-by": "proxmox-lxc-operator.pve.lxc.dev"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": slice_ports,
    });
    (service, slice)
}

/// Whether `meta` names `obj` as its controller (an ownerReference with `controller: true` and
/// the object's uid): only then is the Service or EndpointSlice the container's to write.
pub fn controlled_by(meta: &kube::api::ObjectMeta, obj: &LxcContainer) -> bool {
    let Some(uid) = obj.uid() else { return false };
    meta.owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|o| o.uid == uid && o.controller == Some(true)))
}

/// The refusal to write a `kind` of the container's name that the container does not control.
fn not_ours(kind: &str, obj: &LxcContainer) -> Error {
    Error::Invalid(InvalidSpec {
        field: "ports".into(),
        message: format!(
            "a {kind} named {} already exists and is not controlled by this LxcContainer: it is left untouched (rename the container or delete the {kind})",
            obj.name_any()
        ),
    })
}

/// Publishes (or withdraws, when `spec.ports` is empty) the container's Service and
/// EndpointSlice. Writes only when they differ from what exists, and never writes one that the
/// container does not control ([`controlled_by`]): that fails the pass with
/// [`Error::Invalid`] naming it.
pub async fn sync(client: &kube::Client, obj: &LxcContainer, ipv4: Option<&str>, running: bool) -> Result<bool, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let version = slice_version(client).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    let slices = slice_api(client, &ns, version);
    if obj.spec.ports.is_empty() {
        return remove(client, obj).await.op("remove Service");
    }
    let (svc, slice) = manifests(obj, ipv4, running, version);
    let mut wrote = false;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let existing = services.get_opt(&name).await.op("read Service")?;
    if existing.as_ref().is_some_and(|s| !controlled_by(&s.metadata, obj)) {
        return Err(not_ours("Service", obj));
    }
    // the slice is checked before anything is written: both are ours, or nothing changes
    let existing_slice = slices.get_opt(&name).await.op("read EndpointSlice")?;
    if existing_slice
        .as_ref()
        .is_some_and(|s| !controlled_by(&s.metadata, obj))
    {
        return Err(not_ours("EndpointSlice", obj));
    }
    let svc_same = existing.as_ref().is_some_and(|s| {
        let have = serde_json::to_value(s.spec.as_ref().and_then(|sp| sp.ports.clone()).unwrap_or_default()).unwrap();
        let have: Vec<_> = have.as_array().unwrap().iter().map(|p| json!({"name": p["name"], "port": p["port"], "targetPort": p["targetPort"], "protocol": p["protocol"]})).collect();
        serde_json::Value::Array(have) == svc["spec"]["ports"]
    });
    if !svc_same {
        services
            .patch(&name, &pp, &Patch::Apply(&svc))
            .await
            .op("apply Service")?;
        wrote = true;
    }
    let slice_same = existing_slice.as_ref().is_some_and(|s| {
        s.data.get("endpoints").unwrap_or(&json!([])) == &slice["endpoints"]
            && s.data.get("ports") == Some(&slice["ports"])
    });
    if !slice_same {
        slices
            .patch(&name, &pp, &Patch::Apply(&slice))
            .await
            .op("apply EndpointSlice")?;
        wrote = true;
    }
    Ok(wrote)
}

/// Deletes the Service and EndpointSlice of `obj` if they exist (404 = done).
pub async fn remove(client: &kube::Client, obj: &LxcContainer) -> Result<bool, kube::Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let version = slice_version(client).await;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    let mut wrote = false;
    if let Some(s) = services.get_opt(&name).await? {
        // only ours: a Service of the same name made by someone else is left alone
        if controlled_by(&s.metadata, obj) {
            match services.delete(&name, &DeleteParams::default()).await {
                Ok(_) => wrote = true,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    let slices = slice_api(client, &ns, version);
    if let Some(s) = slices.get_opt(&name).await? {
        if controlled_by(&s.metadata, obj) {
            match slices.delete(&name, &DeleteParams::default()).await {
                Ok(_) => wrote = true,
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::lxc_container::{LxcContainerSpec, ServicePort};

    #[test]
    fn the_endpoint_is_ready_only_while_the_container_runs() {
        let mut obj = LxcContainer::new(
            "web",
            LxcContainerSpec {
                ports: vec![ServicePort {
                    name: "http".into(),
                    port: 80,
                    protocol: PortProtocol::Tcp,
                }],
                ..Default::default()
            },
        );
        obj.metadata.namespace = Some("ns".into());
        obj.metadata.uid = Some("u1".into());
        let (svc, slice) = manifests(&obj, Some("10.0.0.5"), true, "v1");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        assert!(
            svc["spec"].get("selector").is_none(),
            "a Service for a container has no selector"
        );
        assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "10.0.0.5");
        assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        let (_, stopped) = manifests(&obj, Some("10.0.0.5"), false, "v1beta1");
        assert_eq!(stopped["endpoints"][0]["conditions"]["ready"], false);
        assert_eq!(stopped["apiVersion"], "discovery.k8s.io/v1beta1");
        let (_, unknown) = manifests(&obj, None, true, "v1");
        assert_eq!(unknown["endpoints"], json!([]));
    }

    #[test]
    fn only_a_controller_reference_with_the_containers_uid_makes_a_service_ours() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut obj = LxcContainer::new("web", LxcContainerSpec::default());
        obj.metadata.uid = Some("u1".into());
        let meta = |refs: Vec<(&str, Option<bool>)>| kube::api::ObjectMeta {
            owner_references: Some(
                refs.into_iter()
                    .map(|(uid, controller)| OwnerReference {
                        uid: uid.into(),
                        controller,
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        };
        assert!(controlled_by(&meta(vec![("u1", Some(true))]), &obj));
        assert!(
            !controlled_by(&kube::api::ObjectMeta::default(), &obj),
            "made by a user"
        );
        assert!(
            !controlled_by(&meta(vec![("u2", Some(true))]), &obj),
            "another object's"
        );
        assert!(
            !controlled_by(&meta(vec![("u1", None)]), &obj),
            "an owner, not the controller"
        );
        let e = not_ours("Service", &obj);
        assert!(matches!(&e, Error::Invalid(i) if i.field == "ports" && i.message.contains("Service named web")));
    }
}
