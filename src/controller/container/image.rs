//! Containers from OCI images (Proxmox VE 9.1 application containers): the reference rule, the
//! operator's file name for a pulled image, and the pull itself — once per node and storage
//! however many containers want the image (concurrent creates share one pull through the same
//! [`Claims`](crate::controller::kernel::Claims) appliance downloads use).

use super::pass::{next_poll, P};
use crate::controller::cluster::ClusterHandle;
use crate::controller::conditions::CondSpec;
use crate::controller::kernel::task::{self, Started};
use crate::controller::kernel::{Halt, Reason, Step};
use crate::controller::InvalidSpec;
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::{ContainerPhase, OCI_REFERENCE_PATTERN, OCI_REFERENCE_RULE};
use crate::crd::{Operation, CONDITION_READY, CONDITION_SYNCED};
use crate::pve::{self, ErrorClass};
use kube::runtime::controller::Action;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::time::Duration;

/// The operation name of the pull task in `status.pendingTask`.
pub const PULL_OPERATION: Operation = Operation::Pull;

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

pub use crate::controller::oci::canonical_reference;

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
    format!("{}/{node}/{volid}", super::pass::cluster_key(p.obj, p.ctx))
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

/// How long an image seen in its storage is taken as there without listing the storage again.
const SEEN_PULLED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// The pulled image's volume id when it is in `storage` on `node`; otherwise starts its pull
/// (or waits for the one another container started) and halts the pass.
pub(super) async fn ensure_pulled(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    node: &str,
    storage: &str,
    reference: &str,
) -> Step<String> {
    let volid = volid(storage, reference);
    let key = claim_key(p, node, &volid);
    // seen there lately (by this or another container): the storage is not listed again on
    // every pass of every container that waits for a task slot (a file removed meanwhile makes
    // the create fail, and the next pass past this window pulls it again)
    if p.ctx.downloads.done_within(&key, SEEN_PULLED_FOR) {
        return Ok(volid);
    }
    // one pull at a time: a claim kept after a failed pull of another image (or node) goes
    // first; claimed before the listing (waiters of another's pull do not list the storage)
    p.ctx.downloads.forget(&p.uid);
    let claimed = p.ctx.downloads.claim(&key, &p.uid);
    if claimed && crate::controller::guest::present(handle, node, storage, &volid).await? {
        p.ctx.downloads.release(&key);
        p.ctx.downloads.seen_done(&key);
        return Ok(volid);
    }
    p.status.node = Some(node.to_string());
    let exists = exists(p);
    if !exists {
        p.status.phase = Some(ContainerPhase::Pending);
    }
    if !claimed {
        let msg = format!(
            "waiting for the pull of {reference} to {storage} on node {node} that another container started (or retries after a failure, once a minute)"
        );
        let wait = p.retry(Reason::Pulling);
        return Err(Halt::end(if exists {
            p.not_synced(Reason::Pulling, msg, wait).await
        } else {
            p.not_ready(Reason::Pulling, msg, wait).await
        }));
    }
    let msg = format!("pulling {reference} to {storage} on node {node}");
    if !exists {
        p.cond(CondSpec::no(CONDITION_READY, Reason::Pulling, msg.clone()));
    }
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::TaskRunning, msg.clone()));
    let params = pve::OciPullParams {
        reference: reference.to_string(),
        filename: Some(file_name(reference)),
    };
    let (client, n, s) = (handle.client.clone(), node.to_string(), storage.to_string());
    let call = async move { client.oci_registry_pull(&n, &s, &params).await };
    match task::start(p, handle, node, PULL_OPERATION.as_str(), false, call).await? {
        Started::Task(_) | Started::NoTask => {
            p.event(Reason::Pulling, msg).await;
            Err(Halt::Done(next_poll(p)))
        }
        Started::NoSlot => {
            p.ctx.downloads.release(&key);
            let msg = format!("waiting for a task slot on node {node}");
            let wait = p.retry(Reason::WaitingForTaskSlot);
            Err(Halt::end(p.not_ready(Reason::WaitingForTaskSlot, msg, wait).await))
        }
        // a file that appeared meanwhile (another operator, a pull whose answer was lost)
        Started::Refused(e) if e.message().contains("refusing to override existing file") => {
            p.ctx.downloads.release(&key);
            Err(Halt::Done(p.retry(Reason::Pulling)))
        }
        Started::Refused(e) if e.class() == ErrorClass::Transient && !is_proxmox_refusal(&e) => {
            p.ctx.downloads.release(&key);
            Err(e.into())
        }
        Started::Refused(e) => {
            let msg = format!(
                "Proxmox refused to pull {reference} to {storage} on node {node}: {}",
                e.message()
            );
            Err(Halt::end(pull_failed(p, msg).await))
        }
    }
}

/// Whether a 5xx is Proxmox's own refusal (a `die` in the API handler: no skopeo, storage not
/// file based, no `vztmpl` content) rather than trouble reaching it.
fn is_proxmox_refusal(e: &pve::Error) -> bool {
    matches!(e, pve::Error::Server { .. })
}

/// A pull that failed or was refused: `Ready=False` with reason `PullFailed` and Proxmox's text;
/// nothing was created, the pull is tried again after a minute. The claim is kept until then, so
/// the other containers that want the image wait instead of each pulling it again: one failing
/// pull per node, storage and minute however many containers want the image.
pub(super) async fn pull_failed(p: &mut P<'_>, msg: String) -> Result<Action, Error> {
    if exists(p) {
        // an image update: the container keeps running the image it has
        let was = p.cond_of(CONDITION_SYNCED).map(|c| c.0);
        let a = p
            .not_synced(Reason::PullFailed, msg.clone(), Action::requeue(jitter(PULL_RETRY)))
            .await?;
        if was.as_deref() != Some(Reason::PullFailed.as_str()) {
            p.event(Reason::PullFailed, msg).await;
        }
        return Ok(a);
    }
    p.status.phase = Some(ContainerPhase::Pending);
    p.cond(CondSpec::no(CONDITION_SYNCED, Reason::PullFailed, msg.clone()));
    p.not_ready(Reason::PullFailed, msg, Action::requeue(jitter(PULL_RETRY)))
        .await
}

/// Whether the container exists already (a pull for an image update, not for its create).
fn exists(p: &P<'_>) -> bool {
    matches!(p.status.phase, Some(ContainerPhase::Running | ContainerPhase::Stopped))
}

/// The pull recorded in status ended (well, or unknown): its claim is given up, so the next
/// pass finds the file (or pulls again).
pub(super) fn pull_ended(p: &P<'_>) {
    p.ctx.downloads.forget(&p.uid);
}

/// Why `updateStrategy: Recreate` cannot roll out a new image to the container with `cfg`
/// (pure): destroying it would destroy its mount points and detached volumes with it, and
/// protection forbids it. `None` when it can. Bind mounts hold no volume (Proxmox destroys
/// none for them) and are made again from the spec: they do not block.
pub fn recreate_blocker(cfg: &pve::LxcConfig) -> Option<String> {
    let host_path = |v: &serde_json::Value| {
        v.as_str().is_some_and(|s| {
            s.split(',')
                .next()
                .unwrap_or_default()
                .trim_start_matches("volume=")
                .starts_with('/')
        })
    };
    let volumes: Vec<&str> = cfg
        .raw
        .iter()
        .filter(|(k, v)| {
            ["mp", "unused"].iter().any(|p| {
                k.strip_prefix(p)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }) && !(k.starts_with("mp") && host_path(v))
        })
        .map(|(k, _)| k.as_str())
        .collect();
    if !volumes.is_empty() {
        return Some(format!(
            "it has volumes besides its root filesystem ({}), and Proxmox destroys every volume of a container it destroys; move their data and remove them, or create a new LxcContainer",
            volumes.join(", ")
        ));
    }
    let protected = cfg
        .raw
        .get("protection")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_u64() == Some(1) || v.as_str() == Some("1"));
    protected.then(|| "protection is on in Proxmox; set spec.protection to false first".to_string())
}

/// The operation name of the destroy that an image update by `Recreate` starts with.
pub const RECREATE_OPERATION: Operation = Operation::Recreate;

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

    fn cfg(v: serde_json::Value) -> pve::LxcConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn recreate_is_blocked_by_volumes_besides_the_root_filesystem_and_protection() {
        let plain = cfg(serde_json::json!({"rootfs": "local-lvm:vm-100-disk-0,size=2G", "net0": "name=eth0"}));
        assert_eq!(recreate_blocker(&plain), None);
        let mp =
            cfg(serde_json::json!({"mp0": "local-lvm:vm-100-disk-1,mp=/data", "unused0": "local-lvm:vm-100-disk-2"}));
        let why = recreate_blocker(&mp).unwrap();
        assert!(why.contains("mp0, unused0"), "{why}");
        let bind = cfg(serde_json::json!({"mp0": "/srv/media,mp=/media", "dev0": "/dev/dri/renderD128"}));
        assert_eq!(recreate_blocker(&bind), None, "a bind mount is not a volume");
        let protected = cfg(serde_json::json!({"protection": 1}));
        assert!(recreate_blocker(&protected).unwrap().contains("protection"));
    }

    #[test]
    fn a_recreated_container_keeps_the_macs_it_had_unless_the_spec_sets_one() {
        let spec = crate::crd::lxc_container::LxcContainerSpec {
            source: crate::crd::lxc_container::ContainerSource {
                image: Some(crate::crd::lxc_container::ImageSource {
                    reference: "nginx:1".into(),
                    storage: "local".into(),
                }),
                ..Default::default()
            },
            network: ["eth0", "eth1"]
                .iter()
                .map(|n| crate::crd::lxc_container::NetworkInterface {
                    name: n.to_string(),
                    bridge: "vmbr0".into(),
                    mac: (*n == "eth1").then(|| "02:00:00:00:00:01".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let d = super::super::desired::validate(&spec, "web", "uid").unwrap();
        let macs = [
            ("eth0".to_string(), "bc:24:11:aa:bb:cc".to_string()),
            ("eth1".to_string(), "bc:24:11:00:00:00".to_string()),
        ]
        .into();
        let kept = super::super::desired::with_kept_macs(&d, &macs);
        assert_eq!(kept.nets[&0].hwaddr.as_deref(), Some("BC:24:11:AA:BB:CC"));
        assert_eq!(kept.nets[&1].hwaddr.as_deref(), Some("02:00:00:00:00:01"));
    }

    #[test]
    fn short_docker_hub_names_are_canonical_like_skopeo_reads_them() {
        assert_eq!(canonical_reference("nginx:1"), "docker.io/library/nginx:1");
        assert_eq!(canonical_reference("team/app:1"), "docker.io/team/app:1");
        assert_eq!(canonical_reference("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(canonical_reference("ghcr.io/x/y:2"), "ghcr.io/x/y:2");
    }
}
