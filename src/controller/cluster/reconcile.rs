//! The `ProxmoxCluster` controller: reads credentials and TLS settings, builds the Proxmox
//! client and keeps one observer per cluster running with the current settings. The Secret is
//! read again every `credentials_recheck`, so a rotated token is picked up without a restart
//! (and without the operator needing to list or watch Secrets).

use super::{observer, ClusterHandle, ClusterKey};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::context::{Context, FIELD_MANAGER};
use crate::controller::error::KubeOp;
use crate::controller::kernel::Reason;
use crate::controller::status::{add_finalizer, remove_finalizer};
use crate::controller::Error;
use crate::crd::proxmox_cluster::{ProxmoxCluster, ProxmoxClusterStatus};
use crate::crd::FINALIZER;
use crate::crd::{SecretKeyRef, CONDITION_READY};
use crate::pve;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The token's privileges are read again at least this often (and whenever what the objects
/// using the cluster need changes).
pub const PRIVILEGES_RECHECK: Duration = Duration::from_secs(300);

/// Parses `60s`, `5m`, `1h30m`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        total += unit.checked_mul(u32::try_from(n).ok()?)?;
        rest = &rest[len..];
    }
    Some(total)
}

/// What the client is built from, resolved from the spec and Secrets.
struct Resolved {
    config: pve::ClientConfig,
    insecure: bool,
    resync: Duration,
    hash: u64,
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok().map(|s| s.trim().to_string());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.trim().to_string())
}

async fn resolve(pc: &ProxmoxCluster, ctx: &Context) -> Result<Resolved, (Reason, String)> {
    // only the operator's own namespace: a ProxmoxCluster cannot make the operator read (and
    // send to its endpoint) a Secret of any other namespace
    let ns = ctx.settings.operator_namespace.clone();
    let secrets: Api<Secret> = Api::namespaced(ctx.kube.clone(), &ns);
    let cred_name = &pc.spec.credentials_ref.name;
    let secret = match secrets.get_opt(cred_name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err((
                Reason::CredentialsNotFound,
                format!("Secret {cred_name} not found in namespace {ns}"),
            ))
        }
        Err(e) => return Err((Reason::CredentialsNotReadable, format!("Secret {cred_name}: {e}"))),
    };
    let auth = match (
        secret_value(&secret, "tokenId"),
        secret_value(&secret, "tokenSecret"),
        secret_value(&secret, "username"),
        secret_value(&secret, "password"),
    ) {
        (Some(id), Some(sec), _, _) => pve::Auth::Token {
            token_id: id,
            secret: sec,
        },
        (_, _, Some(u), Some(p)) => pve::Auth::Password {
            username: u,
            password: p,
        },
        _ => {
            return Err((
                Reason::InvalidCredentials,
                format!("Secret {cred_name} must hold tokenId and tokenSecret, or username and password"),
            ))
        }
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // a ProxmoxCluster deleted and created again (same spec, new uid) gets a new connection
    pc.uid().hash(&mut hasher);
    (pc.spec.tenancy as u8, is_default(pc)).hash(&mut hasher);
    format!("{auth:?}").hash(&mut hasher); // redacted Debug: identity of the credentials only
    secret.metadata.resource_version.hash(&mut hasher);
    let tls = pc.spec.tls.clone().unwrap_or_default();
    let mut insecure = false;
    let tls_mode = if tls.insecure_skip_verify == Some(true) {
        insecure = true;
        pve::TlsMode::Insecure
    } else if let Some(fp) = tls.pinned_fingerprints() {
        pve::TlsMode::Fingerprint(fp)
    } else if let Some(SecretKeyRef { name, key }) = &tls.ca_secret_ref {
        let s = match secrets.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err((
                    Reason::CASecretNotFound,
                    format!("Secret {name} not found in namespace {ns}"),
                ))
            }
            Err(e) => return Err((Reason::CASecretNotReadable, format!("Secret {name}: {e}"))),
        };
        let pem = secret_value(&s, key)
            .ok_or_else(|| (Reason::CASecretNotFound, format!("Secret {name} has no key {key}")))?;
        pem.hash(&mut hasher);
        pve::TlsMode::Verify {
            extra_ca_pem: Some(pem),
        }
    } else {
        pve::TlsMode::Verify { extra_ca_pem: None }
    };
    let resync = match &pc.spec.resync_interval {
        Some(s) => parse_duration(s).filter(|d| !d.is_zero()).ok_or_else(|| {
            (
                Reason::InvalidSpec,
                format!("spec.resyncInterval: {s:?} is not a duration like 60s"),
            )
        })?,
        None => ctx.settings.default_resync,
    };
    let resync = crate::crd::proxmox_cluster::ProxmoxClusterSpec::bounded_resync(resync);
    let mut config = pve::ClientConfig::new(pc.spec.endpoints.clone(), auth);
    config.tls = tls_mode;
    let metrics = ctx.metrics.clone();
    config.on_request = Some(pve::RequestHook(Arc::new(move |m, p, s, d| {
        metrics.observe_proxmox_path(m, p, s, d)
    })));
    let limits = pc.spec.limits.clone().unwrap_or_default();
    config.limits.max_concurrent_tasks_per_node = limits.max_concurrent_tasks_per_node.unwrap_or(2);
    config.limits.requests_per_second = f64::from(limits.bounded_requests_per_second());
    (
        &pc.spec.endpoints,
        format!("{:?}", pc.spec.tls),
        format!("{:?}", pc.spec.limits),
        resync,
    )
        .hash(&mut hasher);
    Ok(Resolved {
        config,
        insecure,
        resync,
        hash: hasher.finish(),
    })
}

/// Brings the handle's maintenance list up to date with the spec, and sends the operator's
/// containers on nodes that entered or left maintenance for a pass (they move off, or back).
fn maintain(h: &ClusterHandle, pc: &ProxmoxCluster, triggers: &mpsc::UnboundedSender<(ClusterKey, u32)>) {
    let now = pc.spec.maintenance.clone();
    let before = std::mem::replace(
        &mut *crate::controller::kernel::recover(h.maintenance.write(), "the maintenance list"),
        now.clone(),
    );
    if before == now {
        return;
    }
    // every guest: pinned containers moved away come back when their node's maintenance ends
    if let Some(snap) = h.snapshot() {
        for g in snap.guests.values() {
            let _ = triggers.send((h.key.clone(), g.vmid));
        }
    }
}

/// Whether `pc` carries the default-cluster annotation.
fn is_default(pc: &ProxmoxCluster) -> bool {
    pc.annotations()
        .get(crate::crd::proxmox_cluster::DEFAULT_CLUSTER_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// Reconciles one `ProxmoxCluster`: keeps its finalizer (its containers, templates and backups
/// are cleaned up through it first), its connection and observer (rebuilt when the settings
/// change, the object is created anew, or the observer ended), and its status on failures.
pub async fn reconcile(
    pc: Arc<ProxmoxCluster>,
    ctx: Arc<Context>,
    triggers: mpsc::UnboundedSender<(ClusterKey, u32)>,
) -> Result<Action, Error> {
    let key = ClusterKey::named(pc.name_any());
    let api: Api<ProxmoxCluster> = Api::all(ctx.kube.clone());
    if pc.metadata.deletion_timestamp.is_some() {
        return finalize(&pc, &ctx, &api, &key).await;
    }
    if add_finalizer(&api, &*pc, FINALIZER).await.op("add finalizer")? {
        ctx.metrics.kube_write("ProxmoxCluster");
    }
    let recheck = Action::requeue(ctx.settings.credentials_recheck);
    match resolve(&pc, &ctx).await {
        Ok(r) => {
            // an observer that ended (it never should) is started again
            if let Some(h) = ctx
                .clusters
                .get(&key)
                .filter(|h| h.config_hash == r.hash && !h.task.is_finished())
            {
                maintain(&h, &pc, &triggers);
                return Ok(recheck);
            }
            let client = match pve::Client::new(r.config) {
                Ok(c) => c,
                Err(e) => {
                    ctx.clusters.remove(&key);
                    write_failure(&pc, &ctx, Reason::InvalidSpec, &e.to_string()).await?;
                    return Ok(recheck);
                }
            };
            tracing::info!(cluster = %key, "connecting to Proxmox");
            let handle = observer::spawn(observer::ObserverParams {
                key: key.clone(),
                client,
                kube: ctx.kube.clone(),
                resync: r.resync,
                status_refresh: ctx.settings.cluster_status_refresh.max(r.resync * 10),
                insecure_tls: r.insecure,
                triggers,
                config_hash: r.hash,
                tenancy: pc.spec.tenancy,
                is_default: is_default(&pc),
                maintenance: Arc::new(std::sync::RwLock::new(pc.spec.maintenance.clone())),
                metrics: ctx.metrics.clone(),
                samples: ctx.settings.samples.clone(),
                drift_per_resync: ctx.settings.drift_per_resync,
                usage: {
                    // weak: the observer lives in the context's registry
                    let (weak, key) = (Arc::downgrade(&ctx), key.clone());
                    Arc::new(move || {
                        weak.upgrade()
                            .map(|c| super::preflight::usage_of(&c, &key))
                            .unwrap_or_default()
                    })
                },
                privileges_recheck: PRIVILEGES_RECHECK.max(r.resync),
            });
            ctx.clusters.insert(handle);
            Ok(recheck)
        }
        Err((reason, message)) => {
            ctx.clusters.remove(&key);
            write_failure(&pc, &ctx, reason, &message).await?;
            Ok(recheck)
        }
    }
}

/// The objects that still need the cluster for their cleanup, in every namespace: containers
/// and templates that use it and backups made through it, with our finalizer.
fn dependents(ctx: &Context, key: &ClusterKey) -> Vec<String> {
    let ours = |m: &kube::api::ObjectMeta| m.finalizers.as_ref().is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    let uses = |recorded: Option<&str>, r: Option<&crate::crd::ClusterRef>| {
        recorded
            .map(str::to_string)
            .unwrap_or_else(|| ctx.clusters.referenced(r).name)
            == key.name
    };
    let mut out = Vec::new();
    let views = &ctx.tenancy;
    for c in views.all_containers() {
        if ours(&c.metadata)
            && uses(
                c.status.as_ref().and_then(|s| s.cluster.as_deref()),
                c.spec.cluster_ref.as_ref(),
            )
        {
            out.push(format!(
                "LxcContainer {}/{}",
                c.namespace().unwrap_or_default(),
                c.name_any()
            ));
        }
    }
    for t in views.all_templates() {
        if ours(&t.metadata) && uses(None, t.spec.cluster_ref.as_ref()) {
            out.push(format!(
                "LxcTemplate {}/{}",
                t.namespace().unwrap_or_default(),
                t.name_any()
            ));
        }
    }
    for b in views.all_backups() {
        if ours(&b.metadata) && b.status.as_ref().and_then(|s| s.cluster.as_deref()) == Some(key.name.as_str()) {
            out.push(format!(
                "LxcBackup {}/{}",
                b.namespace().unwrap_or_default(),
                b.name_any()
            ));
        }
    }
    out.sort();
    out
}

/// Deletion: the connection stays until every object that needs it for its own cleanup is
/// gone (so deleting a namespace, or the cluster together with its containers, cleans up in
/// order); then the observer stops and the finalizer goes.
async fn finalize(
    pc: &ProxmoxCluster,
    ctx: &Context,
    api: &Api<ProxmoxCluster>,
    key: &ClusterKey,
) -> Result<Action, Error> {
    if !pc.finalizers().iter().any(|f| f == FINALIZER) {
        ctx.clusters.remove(key);
        return Ok(Action::await_change());
    }
    let waiting = dependents(ctx, key);
    if !waiting.is_empty() {
        let shown: Vec<&str> = waiting.iter().take(5).map(String::as_str).collect();
        let more = if waiting.len() > 5 {
            format!(" and {} more", waiting.len() - 5)
        } else {
            String::new()
        };
        let msg = format!(
            "deletion waits until these are cleaned up through it: {}{more}",
            shown.join(", ")
        );
        write_failure(pc, ctx, Reason::Deleting, &msg).await?;
        return Ok(Action::requeue(Duration::from_secs(3)));
    }
    if ctx.settings.virtual_nodes.is_some() {
        crate::controller::vnode::node::remove_cluster_nodes(ctx, &key.name)
            .await
            .op("delete the cluster's virtual Nodes")?;
    }
    ctx.clusters.remove(key);
    remove_finalizer(api, pc, FINALIZER).await.op("remove finalizer")?;
    Ok(Action::await_change())
}

async fn write_failure(pc: &ProxmoxCluster, ctx: &Context, reason: Reason, message: &str) -> Result<(), Error> {
    let mut status: ProxmoxClusterStatus = pc.status.clone().unwrap_or_default();
    let before = status.clone();
    let now = Time(jiff::Timestamp::now());
    conditions::set(
        &mut status.conditions,
        CondSpec::no(CONDITION_READY, reason, message),
        pc.metadata.generation,
        &now,
    );
    status.observed_generation = pc.metadata.generation;
    if status == before {
        return Ok(());
    }
    let api: Api<ProxmoxCluster> = Api::all(ctx.kube.clone());
    let patch = serde_json::json!({"apiVersion": "pve.lxc.dev/v1alpha1", "kind": "ProxmoxCluster", "status": status});
    api.patch_status(
        &pc.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics.kube_write("ProxmoxCluster");
    ctx.event(pc, reason.is_warning(), reason.as_str(), message.to_string())
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_like_kubernetes_ones() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("5"), None);
    }
}
