//! The binder: Pods with the operator's scheduler name are bound to one of our Nodes, so
//! `kubectl run` works where no scheduler should (or can) place them.

use super::pod_context::PodContext;
use super::Vnode;
use crate::controller::error::KubeOp;
use crate::controller::Error;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// A candidate Node: its name, virtual node and the memory (bytes) free on its Proxmox node.
pub type Candidate = (String, Vnode, u64);

/// The labels every Node of ours has that a `nodeSelector` may name.
fn labels(name: &str, v: &Vnode) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname", name.to_string()),
        ("kubernetes.io/os", "linux".to_string()),
        ("type", "virtual-kubelet".to_string()),
        (super::VIRTUAL_NODE_LABEL, "true".to_string()),
        (super::CLUSTER_LABEL, v.cluster.clone()),
        (super::PVE_NODE_LABEL, v.pve_node.clone()),
    ])
}

/// The Node a Pod goes to (pure): a Ready one whose labels match the Pod's `nodeSelector`,
/// with the most free memory; `Err` says why none fits.
pub fn choose(selector: &BTreeMap<String, String>, candidates: &[Candidate]) -> Result<String, String> {
    let fits: Vec<&Candidate> = candidates
        .iter()
        .filter(|(_, v, _)| v.ready)
        .filter(|(n, v, _)| {
            let l = labels(n, v);
            selector.iter().all(|(k, want)| l.get(k.as_str()) == Some(want))
        })
        .collect();
    fits.iter()
        .max_by(|a, b| a.2.cmp(&b.2).then(b.0.cmp(&a.0)))
        .map(|c| c.0.clone())
        .ok_or_else(|| {
            let ready = candidates.iter().filter(|c| c.1.ready).count();
            format!(
                "0/{} Proxmox virtual nodes are available: {} not ready, {} do not match the Pod's nodeSelector",
                candidates.len(),
                candidates.len() - ready,
                ready - fits.len()
            )
        })
}

/// Whether `ns` may have Pods on virtual node `v`: its cluster serves the namespace
/// ([`super::admit::serves`]) and the node is one of its tenant's nodes (any when the tenant
/// names none).
fn allowed(ctx: &crate::controller::Context, ns: &str, v: &Vnode) -> bool {
    let Some(h) = ctx
        .clusters
        .get(&crate::controller::cluster::ClusterKey::named(v.cluster.clone()))
    else {
        return false;
    };
    let admission = ctx.tenancy.admission(ns, &h);
    if super::admit::serves(&v.cluster, v.spec.namespaces, ns, admission.as_ref()).is_err() {
        return false;
    }
    admission
        .ok()
        .and_then(|a| a.spec().map(|t| t.nodes.clone()))
        .is_none_or(|nodes| nodes.is_empty() || nodes.contains(&v.pve_node))
}

/// Why no virtual node takes `ns`'s Pods (the first connected cluster's refusal).
fn not_served(ctx: &crate::controller::Context, ns: &str, all: &[(String, Vnode)]) -> String {
    let first = all.iter().find_map(|(_, v)| {
        let key = crate::controller::cluster::ClusterKey::named(v.cluster.clone());
        ctx.clusters.get(&key).map(|h| (v, h))
    });
    let Some((v, h)) = first else {
        return "no Proxmox virtual node is connected yet".into();
    };
    let admission = ctx.tenancy.admission(ns, &h);
    match super::admit::serves(&v.cluster, v.spec.namespaces, ns, admission.as_ref()) {
        Err(r) => format!("{}: {}", r.reason, r.message),
        Ok(()) => "TenantPolicyNode: none of the tenant's nodes is a virtual node of this cluster".into(),
    }
}

/// Binds `pod` when it asks for our scheduler; other Pods without a node are not ours.
pub async fn bind(pod: &Pod, pctx: &PodContext) -> Result<Action, Error> {
    let ctx = &pctx.ctx;
    let Some(vs) = ctx.settings.virtual_nodes.as_ref() else {
        return Ok(Action::await_change());
    };
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.scheduler_name.as_deref() != Some(vs.scheduler_name.as_str()) || pod.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let mut free: HashMap<(String, String), u64> = HashMap::new();
    let ns = pod.namespace().unwrap_or_default();
    let candidates: Vec<Candidate> = pctx
        .index
        .all()
        .into_iter()
        .filter(|(_, v)| allowed(ctx, &ns, v))
        .map(|(name, v)| {
            let key = crate::controller::cluster::ClusterKey::named(v.cluster.clone());
            let mem = *free.entry((v.cluster.clone(), v.pve_node.clone())).or_insert_with(|| {
                let Some(h) = ctx.clusters.get(&key) else { return 0 };
                let reserved = h.reserved().get(&v.pve_node).copied().unwrap_or(0);
                h.snapshot()
                    .and_then(|s| s.nodes.iter().find(|n| n.name == v.pve_node).cloned())
                    .map(|n| {
                        n.memory_total
                            .unwrap_or(0)
                            .saturating_sub(n.memory_used.unwrap_or(0))
                            .saturating_sub(reserved)
                    })
                    .unwrap_or(0)
            });
            (name, v, mem)
        })
        .collect();
    let chosen = match candidates.is_empty() {
        // there are virtual nodes, but none may take this namespace's Pods: say why
        true => Err(not_served(ctx, &ns, &pctx.index.all())),
        false => choose(&spec.node_selector.clone().unwrap_or_default(), &candidates),
    };
    let node = match chosen {
        Ok(n) => n,
        Err(why) => {
            ctx.event(pod, true, "FailedScheduling", why).await;
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    };
    // promised until the next inventory shows it, so a burst of Pods spreads over the nodes
    if let Some(v) = pctx.index.get(&node) {
        if let Some(h) = ctx
            .clusters
            .get(&crate::controller::cluster::ClusterKey::named(v.cluster.clone()))
        {
            let memory = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map_or(512, super::translate::memory_mib);
            h.reserve(&v.pve_node, memory << 20);
        }
    }
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name_any()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let pods: Api<Pod> = Api::namespaced(ctx.kube.clone(), &pod.namespace().unwrap_or_default());
    match pods
        .create_subresource::<Binding, serde_json::Value>("binding", &pod.name_any(), &PostParams::default(), &binding)
        .await
    {
        // bound already (by us before, or by a scheduler)
        Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::await_change()),
        r => {
            r.op("bind the Pod")?;
        }
    }
    ctx.metrics.kube_write("Pod");
    ctx.event(
        pod,
        false,
        "Scheduled",
        format!(
            "Successfully assigned {}/{} to {node}",
            pod.namespace().unwrap_or_default(),
            pod.name_any()
        ),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vnode(node: &str, ready: bool) -> Vnode {
        Vnode {
            cluster: "c".into(),
            pve_node: node.into(),
            ready,
            spec: Default::default(),
        }
    }

    #[test]
    fn a_pod_goes_to_the_ready_node_with_the_most_free_memory() {
        let c = vec![
            ("c-pve1".to_string(), vnode("pve1", true), 10),
            ("c-pve2".to_string(), vnode("pve2", true), 30),
            ("c-pve3".to_string(), vnode("pve3", false), 99),
        ];
        assert_eq!(choose(&BTreeMap::new(), &c), Ok("c-pve2".to_string()));
    }

    #[test]
    fn a_node_selector_limits_the_choice_and_says_why_nothing_fits() {
        let c = vec![
            ("c-pve1".to_string(), vnode("pve1", true), 10),
            ("c-pve2".to_string(), vnode("pve2", true), 30),
        ];
        let sel = BTreeMap::from([(super::super::PVE_NODE_LABEL.to_string(), "pve1".to_string())]);
        assert_eq!(choose(&sel, &c), Ok("c-pve1".to_string()));
        let none = BTreeMap::from([("disk".to_string(), "ssd".to_string())]);
        let err = choose(&none, &c).unwrap_err();
        assert!(err.contains("0/2") && err.contains("2 do not match"), "{err}");
    }
}
