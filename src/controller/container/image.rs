//! Containers from OCI images (Proxmox VE 9.1 application containers): the reference rule, the
//! operator's file name for a pulled image, and the pull itself — once per node and storage
//! however many containers want the image (concurrent creates share one pull through the same
//! [`Claims`](crate::controller::kernel::Claims) appliance downloads use).

use super::desired::InvalidSpec;
use super::reconcile::{next_poll, P, SLOT_RETRY};
use crate::controller::cluster::ClusterHandle;
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::task::{self, Started};
use crate::controller::kernel::Reason;
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::{ContainerPhase, OCI_REFERENCE_PATTERN, OCI_REFERENCE_RULE};
use crate::crd::{CONDITION_READY, CONDITION_STALLED, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass};
use kube::runtime::controller::Action;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::time::Duration;

/// The operation name of the pull task in `status.pendingTask`.
pub const PULL_OPERATION: &str = "pull";

/// How soon a container whose pull failed tries again.
const PULL_RETRY: Duration = Duration::from_secs(60);

static REFERENCE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(OCI_REFERENCE_PATTERN).expect("the reference pattern compiles"));

/// Checks `reference` against Proxmox's rule; the error says what is wrong and the rule.
pub fn check_reference(field: &str, reference: &str) -> Result<(), InvalidSpec> {
    if REFERENCE.is_match(reference) && reference.len() <= 255 {
        return Ok(());
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let what = if reference.contains('@') {
        "a digest cannot be pulled"
    } else if !last.contains(':') {
        "it has no tag"
    } else {
        "it is not a valid reference"
    };
    Err(InvalidSpec {
        field: field.into(),
        message: format!("{reference:?}: {what}. {OCI_REFERENCE_RULE}"),
    })
}

/// The reference as skopeo's `docker://` transport reads it: `nginx:1` is
/// `docker.io/library/nginx:1`.
pub fn canonical_reference(reference: &str) -> String {
    let (name, tag) = match reference.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (reference, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let explicit_host = parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    let host = if explicit_host { parts.remove(0) } else { "docker.io" };
    if host == "docker.io" && parts.len() == 1 {
        parts.insert(0, "library");
    }
    let repo = format!("{host}/{}", parts.join("/"));
    match tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    }
}

/// The file name (without `.tar`) the operator pulls `reference` under: the reference's last
/// path part as Proxmox normalizes it (`[^a-zA-Z0-9_.-]` → `_`), then `-` and 10 hex digits of
/// the SHA-256 of the canonical reference. Proxmox alone would keep only the last path part, so
/// `a/nginx:1` and `b/nginx:1` would collide; `nginx:1` and `docker.io/library/nginx:1` are the
/// same image and share a file.
pub fn file_name(reference: &str) -> String {
    let canonical = canonical_reference(reference);
    let last = canonical.rsplit('/').next().unwrap_or(&canonical);
    let base: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let digest = Sha256::digest(canonical.as_bytes());
    format!("{base}-{}", &hex::encode(digest)[..10])
}

/// The `vztmpl` volume id of `reference` pulled into `storage`.
pub fn volid(storage: &str, reference: &str) -> String {
    format!("{storage}:vztmpl/{}.tar", file_name(reference))
}

/// The key of a pull in the shared claims: one per cluster, node and volume.
fn claim_key(p: &P<'_>, node: &str, volid: &str) -> String {
    format!("{}/{node}/{volid}", super::reconcile::cluster_key(p.obj))
}

/// The node a container being created from an image stays on while its image is pulled there
/// (a pass that picked another node would pull it twice).
pub(super) fn pinned_node<'a>(p: &'a P<'_>, online: impl Fn(&str) -> bool) -> Option<&'a str> {
    let waiting = matches!(
        p.status.phase,
        None | Some(ContainerPhase::Pending | ContainerPhase::Creating)
    );
    p.status.node.as_deref().filter(|n| waiting && online(n))
}

/// The pulled image's volume id when it is in `storage` on `node`; otherwise starts its pull
/// (or waits for the one another container started) and returns the action that ends the pass.
pub(super) async fn ensure_pulled(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    node: &str,
    storage: &str,
    reference: &str,
) -> Result<Result<String, Action>, Error> {
    let volid = volid(storage, reference);
    if present(handle, node, storage, &volid).await? {
        return Ok(Ok(volid));
    }
    p.status.node = Some(node.to_string());
    p.status.phase = Some(ContainerPhase::Pending);
    let key = claim_key(p, node, &volid);
    if !p.ctx.downloads.claim(&key, &p.uid) {
        let msg =
            format!("waiting for the pull of {reference} to {storage} on node {node} started for another container");
        return Ok(Err(p
            .not_ready(Reason::Pulling, msg, Action::requeue(jitter(Duration::from_secs(2))))
            .await?));
    }
    let msg = format!("pulling {reference} to {storage} on node {node}");
    p.cond(CondSpec::no(CONDITION_READY, Reason::Pulling, msg.clone()));
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskRunning, msg.clone()));
    let params = pve::OciPullParams {
        reference: reference.to_string(),
        filename: Some(file_name(reference)),
    };
    let (client, n, s) = (handle.client.clone(), node.to_string(), storage.to_string());
    let call = async move { client.oci_registry_pull(&n, &s, &params).await };
    match task::start(p, handle, node, PULL_OPERATION, false, call).await? {
        Started::Task(_) | Started::NoTask => {
            p.event(Reason::Pulling, msg).await;
            Ok(Err(next_poll(p)))
        }
        Started::NoSlot => {
            p.ctx.downloads.release(&key);
            let msg = format!("waiting for a task slot on node {node}");
            Ok(Err(p
                .not_ready(Reason::WaitingForTaskSlot, msg, Action::requeue(jitter(SLOT_RETRY)))
                .await?))
        }
        // a file that appeared meanwhile (another operator, a pull whose answer was lost)
        Started::Refused(e) if e.message().contains("refusing to override existing file") => {
            p.ctx.downloads.release(&key);
            Ok(Err(Action::requeue(jitter(Duration::from_secs(2)))))
        }
        Started::Refused(e) if e.class() == ErrorClass::Transient && !is_proxmox_refusal(&e) => {
            p.ctx.downloads.release(&key);
            Err(e.into())
        }
        Started::Refused(e) => {
            p.ctx.downloads.release(&key);
            let msg = format!(
                "Proxmox refused to pull {reference} to {storage} on node {node}: {}",
                e.message()
            );
            Ok(Err(pull_failed(p, msg).await?))
        }
    }
}

/// Whether a 5xx is Proxmox's own refusal (a `die` in the API handler: no skopeo, storage not
/// file based, no `vztmpl` content) rather than trouble reaching it.
fn is_proxmox_refusal(e: &pve::Error) -> bool {
    matches!(e, pve::Error::Server { .. })
}

/// A pull that failed or was refused: `Ready=False` with reason `PullFailed` and Proxmox's text;
/// nothing was created, the pull is tried again after a minute.
pub(super) async fn pull_failed(p: &mut P<'_>, msg: String) -> Result<Action, Error> {
    p.ctx.downloads.forget(&p.uid);
    p.status.phase = Some(ContainerPhase::Pending);
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::PullFailed, msg.clone()));
    p.not_ready(Reason::PullFailed, msg, Action::requeue(jitter(PULL_RETRY)))
        .await
}

/// The pull recorded in status ended (well, or unknown): its claim is given up, so the next
/// pass finds the file (or pulls again).
pub(super) fn pull_ended(p: &P<'_>) {
    p.ctx.downloads.forget(&p.uid);
}

/// Refuses a new `source.image.reference` for an existing container (`updateStrategy:
/// Refuse`): `Synced=False`, `Stalled=True` with reason `ImageUpdateRefused`; the container
/// keeps running `running`. `None` when the reference is the one the container runs.
pub(super) async fn refuse_update(p: &mut P<'_>, running: &str, wanted: &str) -> Result<Option<Action>, Error> {
    if canonical_reference(running) == canonical_reference(wanted) {
        return Ok(None);
    }
    let msg = format!(
        "the container runs {running}; changing spec.source.image.reference to {wanted} is refused by updateStrategy Refuse (nothing was changed): set the reference back, or create a new LxcContainer from {wanted}"
    );
    let was = p.cond_of(CONDITION_SYNCED);
    p.cond(CondSpec::yes(
        CONDITION_STALLED,
        Reason::ImageUpdateRefused,
        msg.clone(),
    ));
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::ImageUpdateRefused, msg.clone()));
    p.save().await?;
    if was != Some((Reason::ImageUpdateRefused.as_str().into(), msg.clone())) {
        p.event(Reason::ImageUpdateRefused, msg).await;
    }
    Ok(Some(Action::requeue(jitter(Duration::from_secs(300)))))
}

/// Whether `volid` is listed in `storage` on `node` (a storage missing there counts as absent).
async fn present(handle: &ClusterHandle, node: &str, storage: &str, volid: &str) -> Result<bool, Error> {
    match handle.client.storage_content(node, storage, Some("vztmpl"), None).await {
        Ok(list) => Ok(list.iter().any(|v| v.volid == volid)),
        Err(e)
            if matches!(
                e.class(),
                ErrorClass::NotFound | ErrorClass::InvalidSpec | ErrorClass::Permanent
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_a_tag_and_digests_are_refused_with_proxmoxs_rule() {
        for ok in [
            "docker.io/library/nginx:1.27",
            "nginx:1",
            "localhost:5000/team/app:v1",
            "ghcr.io/example/web-app:2.1.0",
        ] {
            check_reference("source.image.reference", ok).unwrap();
        }
        let e = check_reference("r", "docker.io/library/nginx").unwrap_err();
        assert!(
            e.message.contains("it has no tag") && e.message.contains("a tag is required"),
            "{e}"
        );
        let e = check_reference("r", "nginx@sha256:abcd").unwrap_err();
        assert!(e.message.contains("a digest cannot be pulled"), "{e}");
        let e = check_reference("r", "Nginx:1").unwrap_err();
        assert!(e.message.contains("not a valid reference"), "{e}");
        assert!(
            check_reference("r", "localhost:5000/app").is_err(),
            "a port is not a tag"
        );
    }

    #[test]
    fn file_names_of_repositories_with_the_same_last_path_part_differ() {
        let (a, b) = (file_name("docker.io/a/nginx:1"), file_name("docker.io/b/nginx:1"));
        assert_ne!(a, b);
        assert!(a.starts_with("nginx_1-") && a.len() == "nginx_1-".len() + 10, "{a}");
        assert_eq!(file_name("nginx:1.27"), file_name("docker.io/library/nginx:1.27"));
        assert_ne!(file_name("nginx:1.27"), file_name("nginx:1.28"));
        assert!(file_name("ghcr.io/x/y:v1")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        assert_eq!(
            volid("local", "nginx:1.27"),
            format!("local:vztmpl/{}.tar", file_name("nginx:1.27"))
        );
    }

    #[test]
    fn short_docker_hub_names_are_canonical_like_skopeo_reads_them() {
        assert_eq!(canonical_reference("nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(canonical_reference("team/app:1"), "docker.io/team/app:1");
        assert_eq!(canonical_reference("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(canonical_reference("ghcr.io/x/y:2"), "ghcr.io/x/y:2");
    }
}
