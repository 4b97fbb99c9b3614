//! Creating a container, read top to bottom: `gather` what the rules need,
//! `create_step::decide` the next step (pure, table-tested in
//! `create_tests.rs`), `act` on it: the precheck, the source (ownership proven in Proxmox),
//! placement ([`decide::placement`]), the image pull, the clone node, the tenant's nodes, the
//! temporary clone snapshot, then the create, restore or clone itself. The vmid is in status
//! before the call, and the write-ahead marker goes first.

use super::clone_snapshot::Prepared;
use super::converge::foreign;
use super::create_step::{decide, CreateFacts, CreateStep, How, Resolved};
use super::decide::{self, Origin};
use super::desired::{Desired, InvalidSpec, Source};
use super::identity;
use super::pass::{next_poll, P, SLOT_RETRY};
use super::tenancy;
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::{self, CondSpec};
use crate::controller::error::KubeOp;
use crate::controller::kernel::task::{self, Started};
use crate::controller::kernel::{Halt, Reason, Step};
use crate::controller::tenancy::ownership::{self, ArchiveMark};
use crate::controller::tenancy::policy::{Admission, Refusal};
use crate::controller::{jitter, Error};
use crate::crd::lxc_backup::LxcBackup;
use crate::crd::lxc_container::*;
use crate::crd::lxc_template::LxcTemplate;
use crate::crd::CONDITION_READY;
use crate::pve::{self, ErrorClass};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::time::Duration;

/// More steps than any create pass takes: a bound against a rule that would repeat itself.
const MAX_STEPS: usize = 16;

/// What a create pass works on (the same for every step).
struct Target<'a> {
    handle: &'a ClusterHandle,
    snap: &'a Snapshot,
    desired: &'a Desired,
    vmid: u32,
    admission: &'a Admission,
}

/// Creates CT `vmid` (absent from Proxmox) as the spec says: gather, then decide and act until
/// a step ends the pass.
pub(super) async fn create(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    vmid: u32,
    admission: &Admission,
) -> Result<Action, Error> {
    let t = Target {
        handle,
        snap,
        desired,
        vmid,
        admission,
    };
    let mut facts = gather(p, &t);
    for _ in 0..MAX_STEPS {
        let step = decide(&facts);
        tracing::trace!(object = %p.obj.name_any(), ?step, "create step");
        match act(p, &t, &mut facts, step).await {
            Ok(None) => {}
            Ok(Some(action)) => return Ok(action),
            Err(halt) => return halt.into(),
        }
    }
    Err(Error::Panic(format!(
        "creating CT {vmid} did not settle in {MAX_STEPS} steps"
    )))
}

/// What the rules know before the first decision (no reads: the steps read what they need).
fn gather(p: &P<'_>, t: &Target<'_>) -> CreateFacts {
    let user_vmid = p.obj.spec.vmid.is_some();
    let kind = t.snap.guests.get(&t.vmid).map(|g| g.kind);
    CreateFacts {
        prechecked: false,
        held_by_vm: identity::held_by_vm(kind, user_vmid),
        source: None,
        app_ready: p.obj.spec.app.is_none(),
        node_in_maintenance: p.obj.spec.node.clone().filter(|n| t.handle.in_maintenance(n).is_some()),
        placed: None,
        from_image: matches!(t.desired.source, Source::Image { .. }),
        pulled: None,
        clone_local_disks: None,
        tenant_nodes: t.admission.spec().map(|s| s.nodes.clone()).unwrap_or_default(),
        clone_from: None,
    }
}

/// Carries out one step: `Some(action)` ends the pass; `None` goes on (its fact filled in).
async fn act(p: &mut P<'_>, t: &Target<'_>, f: &mut CreateFacts, step: CreateStep) -> Step<Option<Action>> {
    let end = |r: Result<Action, Error>| r.map(Some).map_err(Halt::Fail);
    let wait = |secs: u64| Action::requeue(jitter(Duration::from_secs(secs)));
    match step {
        CreateStep::Precheck => {
            // the spec against the inventory first: a typo is refused here, not by Proxmox
            if let Some(action) = super::precheck::run(p, t.handle, t.snap, t.desired).await? {
                return Ok(Some(action));
            }
            f.prechecked = true;
            Ok(None)
        }
        CreateStep::Foreign(verdict) => {
            let node = t.snap.guests.get(&t.vmid).map(|g| g.node.clone()).unwrap_or_default();
            let what = "a QEMU virtual machine holds this vmid";
            end(foreign(p, verdict, t.vmid, &node, t.desired, what).await)
        }
        CreateStep::ResolveSource => {
            f.source = Some(resolve_source(p, t.handle, t.snap, t.desired, t.admission).await?);
            Ok(None)
        }
        CreateStep::ReadApp => {
            // every value spec.app reads must be there (and acceptable) before anything is made
            super::app_values::resolve(p).await?;
            f.app_ready = true;
            Ok(None)
        }
        CreateStep::WaitMaintenance(n) => {
            let msg = format!(
                "node {n} is in maintenance (ProxmoxCluster spec.maintenance); the container is made once it ends"
            );
            end(p.not_ready(Reason::NodeUnavailable, msg, wait(30)).await)
        }
        CreateStep::Place => {
            f.placed = Some(place(p, t, f).await);
            Ok(None)
        }
        CreateStep::NoNode(u) => end(p.not_ready(u.reason, u.message, wait(15)).await),
        CreateStep::PullImage { node } => {
            let Source::Image { reference, storage } = &t.desired.source else {
                unreachable!("a pull is for an image source")
            };
            let volid = super::image::ensure_pulled(p, t.handle, &node, storage, reference).await?;
            p.status.image = Some(reference.clone());
            f.pulled = Some(volid);
            Ok(None)
        }
        CreateStep::ReadCloneSource => {
            f.clone_local_disks = Some(clone_local_disks(t, f).await?);
            Ok(None)
        }
        CreateStep::CloneNotPossible { storages } => end(clone_not_possible(p, t, f, &storages).await),
        CreateStep::OutsideTenantNodes(node) => {
            let msg = format!(
                "the container would be made on node {node} (where its source is), which is not one of the tenant's nodes ({})",
                f.tenant_nodes.join(", ")
            );
            end(tenancy::refuse(p, Refusal::new(Reason::TenantPolicyNode, msg)).await)
        }
        CreateStep::PrepareClone => {
            let Some(How::Clone {
                src_node,
                src_vmid,
                full,
            }) = f.source.as_ref().map(|s| &s.how)
            else {
                unreachable!("a clone is prepared for a clone source")
            };
            f.clone_from = match super::clone_snapshot::prepare(p, t.handle, t.snap, src_node, *src_vmid, *full).await?
            {
                Prepared::Direct => Some(None),
                Prepared::From(name) => Some(Some(name)),
                Prepared::Done(action) => return Ok(Some(action)),
            };
            Ok(None)
        }
        CreateStep::Start { node, slot_node } => start(p, t, f, &node, &slot_node).await.map(Some),
    }
}

/// Places the container: `spec.node`, or the node an image is being pulled on, or (among the
/// tenant's nodes, never one in maintenance) the one that fits best, spread groups apart.
async fn place(p: &mut P<'_>, t: &Target<'_>, f: &CreateFacts) -> Result<String, decide::Unplaced> {
    let (handle, snap) = (t.handle, t.snap);
    let origin = &f
        .source
        .as_ref()
        .expect("the source is resolved before placement")
        .origin;
    let rootfs_storage = t
        .desired
        .rootfs
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| tenancy::DEFAULT_ROOTFS_STORAGE.into());
    let load = p
        .ctx
        .slots
        .load(&handle.client, &handle.key, snap.nodes.iter().map(|n| n.name.as_str()));
    let pinned = super::image::pinned_node(p, |n| snap.node_online(n)).map(str::to_string);
    let wanted_node = p
        .obj
        .spec
        .node
        .as_deref()
        .or(pinned.as_deref().filter(|_| f.from_image));
    // a tenant limited to some nodes is placed among them only, and never on a node in maintenance
    let limited = tenancy::placeable(handle, snap, &f.tenant_nodes).map(|nodes| snap.placement_only_on(&nodes));
    let limited = limited.as_ref().unwrap_or(snap);
    let placed = match (wanted_node, tenancy::spread_siblings(p, handle)) {
        (None, Some((group, siblings))) => {
            decide::placement_spread(origin, limited, &rootfs_storage, &handle.reserved(), &load, &siblings)
                .map(|(n, shared)| (n, shared.map(|k| (group, k))))
        }
        (wanted, _) => decide::placement_with_load(wanted, origin, limited, &rootfs_storage, &handle.reserved(), &load)
            .map(|n| (n, None)),
    };
    if let (Ok((n, _)), Some(_)) = (&placed, &p.obj.spec.spread_by) {
        handle.place_spread(&p.uid, n);
    }
    let (n, shared) = placed?;
    if let Some((group, k)) = shared {
        let msg = format!(
            "every node that fits already runs a container of spread group {group}; placed on {n} with {k} of them"
        );
        p.event(Reason::SpreadNotPossible, msg).await;
    }
    Ok(n)
}

/// The clone source's disks on storage its node does not share.
async fn clone_local_disks(t: &Target<'_>, f: &CreateFacts) -> Step<Vec<String>> {
    let Some(How::Clone { src_node, src_vmid, .. }) = f.source.as_ref().map(|s| &s.how) else {
        unreachable!("the clone source is read for a clone")
    };
    let src_cfg = t.handle.client.lxc_config(src_node, *src_vmid).await?;
    let shared = |s: &String| {
        t.snap
            .storages
            .iter()
            .any(|st| st.node == *src_node && st.name == *s && st.shared)
    };
    Ok(crate::controller::guest::disk_storages(&src_cfg)
        .into_iter()
        .filter(|s| !shared(s))
        .collect())
}

/// A linked clone onto another node of a source whose disks are on local storage: reported,
/// looked at again after a minute.
async fn clone_not_possible(p: &mut P<'_>, t: &Target<'_>, f: &CreateFacts, storages: &str) -> Result<Action, Error> {
    let Some(How::Clone { src_node, src_vmid, .. }) = f.source.as_ref().map(|s| &s.how) else {
        unreachable!("only a clone can be impossible")
    };
    let what = match &t.desired.source {
        Source::Template { name, .. } => format!("LxcTemplate {name} (CT {src_vmid})"),
        _ => format!("CT {src_vmid}"),
    };
    p.status.phase = Some(ContainerPhase::Pending);
    let msg = format!(
        "a linked clone of {what} can only be made on node {src_node}: its disks are on storage {storages} that is not shared; remove spec.node, set it to {src_node}, or ask for a full clone"
    );
    p.not_ready(
        Reason::CloneNotPossible,
        msg,
        Action::requeue(jitter(Duration::from_secs(60))),
    )
    .await
}

/// Resolves the source into what to call, with ownership proven in Proxmox (the tag on a
/// clone source, the mark in an archive's notes), never by a status field; halts the pass while
/// it waits for the source, or when it is refused.
async fn resolve_source(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    admission: &Admission,
) -> Step<Resolved> {
    let create = |ostemplate: String, restore: bool, origin: Origin| Resolved {
        how: How::Create { ostemplate, restore },
        origin,
    };
    match &desired.source {
        Source::OsTemplate(t) => Ok(create(t.clone(), false, Origin::Create)),
        // the image is pulled on the node placement picks
        Source::Image { .. } => Ok(create(String::new(), false, Origin::Create)),
        Source::BackupVolid(v) => {
            let Some(notes) = tenancy::archive_notes(handle, snap, v).await? else {
                let msg = format!("archive {v} is not listed on any node that sees its storage");
                return Err(p.stop(Reason::ArchiveNotFound, msg).await);
            };
            if let Err(r) = tenancy::may_restore(p, v, notes.as_deref(), admission) {
                return Err(Halt::end(tenancy::refuse(p, r).await));
            }
            Ok(create(v.clone(), true, Origin::Restore(None)))
        }
        Source::BackupName(n) => from_backup(p, handle, snap, n, admission).await,
        Source::Clone { vmid: src, full } => match snap.guests.get(src) {
            Some(g) => {
                // the owner is looked up once (a scan of the caches), not once per check
                if let Err(r) = tenancy::may_use(p, g, admission, "source.clone.vmid") {
                    return Err(Halt::end(tenancy::refuse(p, r).await));
                }
                let how = How::Clone {
                    src_node: g.node.clone(),
                    src_vmid: *src,
                    full: *full || !g.template,
                };
                Ok(Resolved {
                    how,
                    origin: Origin::Clone(g.node.clone()),
                })
            }
            None => {
                let msg = format!("source CT {src} does not exist in Proxmox");
                Err(p.stop(Reason::SourceNotFound, msg).await)
            }
        },
        Source::Template { name, full } => from_template(p, snap, name, *full).await,
    }
}

/// The archive of an `LxcBackup`: its volid in status counts only when the archive's notes say
/// that this LxcBackup made it; an archive on storage that is not shared is restored on its node.
async fn from_backup(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    n: &str,
    admission: &Admission,
) -> Step<Resolved> {
    let ns = p.obj.namespace().unwrap_or_default();
    let backups: Api<LxcBackup> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let found = backups.get_opt(n).await.op("read LxcBackup")?.and_then(|b| {
        let uid = b.uid().unwrap_or_default();
        let s = b.status?;
        Some((s.volid?, s.node, uid))
    });
    let Some((v, bnode, backup_uid)) = found else {
        let msg = format!("LxcBackup {n} has no completed archive yet");
        return Err(p.stop(Reason::WaitingForBackup, msg).await);
    };
    let Some(notes) = tenancy::archive_notes(handle, snap, &v).await? else {
        let msg = format!("archive {v} of LxcBackup {n} is not listed in Proxmox");
        return Err(p.stop(Reason::ArchiveNotFound, msg).await);
    };
    let marked = ArchiveMark::parse(notes.as_deref()).is_some();
    let proven = ownership::made_by_backup(notes.as_deref(), &ns, &backup_uid);
    if marked && !proven {
        let msg = format!("archive {v} in the status of LxcBackup {n} was not made by it");
        let r = Refusal::new(Reason::NotOwned, msg);
        return Err(Halt::end(tenancy::refuse(p, r).await));
    }
    if let Err(r) = tenancy::may_restore(p, &v, notes.as_deref(), admission) {
        return Err(Halt::end(tenancy::refuse(p, r).await));
    }
    let storage = v.split_once(':').map(|x| x.0).unwrap_or_default();
    let shared = snap.storages.iter().any(|s| s.name == storage && s.shared);
    Ok(Resolved {
        how: How::Create {
            ostemplate: v,
            restore: true,
        },
        origin: Origin::Restore(if shared { None } else { bnode }),
    })
}

/// A clone of a Ready `LxcTemplate`: the vmid in its status counts only when Proxmox shows its
/// tag there.
async fn from_template(p: &mut P<'_>, snap: &Snapshot, name: &str, full: bool) -> Step<Resolved> {
    let ns = p.obj.namespace().unwrap_or_default();
    let templates: Api<LxcTemplate> = Api::namespaced(p.ctx.kube.clone(), &ns);
    let t = templates.get_opt(name).await.op("read LxcTemplate")?;
    let ready = t
        .as_ref()
        .and_then(|t| t.status.as_ref())
        .filter(|s| conditions::is_true(&s.conditions, CONDITION_READY));
    let template_uid = t.as_ref().and_then(|t| t.uid()).unwrap_or_default();
    match ready.and_then(|s| Some((s.vmid?, s.node.clone()?))) {
        Some((tv, _)) if !identity::carries_identity(snap, tv, &template_uid) => {
            let msg = format!("CT {tv} in the status of LxcTemplate {name} does not carry its identity tag");
            Err(Halt::end(tenancy::refuse(p, Refusal::new(Reason::NotOwned, msg)).await))
        }
        Some((tv, tn)) => Ok(Resolved {
            how: How::Clone {
                src_node: tn.clone(),
                src_vmid: tv,
                full,
            },
            origin: Origin::Clone(tn),
        }),
        None => {
            let msg = format!("LxcTemplate {name} is not Ready yet");
            Err(p.stop(Reason::WaitingForTemplate, msg).await)
        }
    }
}

/// The Secret type that marks a Secret as a container root password.
pub const ROOT_PASSWORD_TYPE: &str = "pve.lxc.dev/root-password";
/// The label that marks a Secret as a container root password (the type cannot be changed on
/// an existing Secret; the label can).
pub const ROOT_PASSWORD_LABEL: &str = "pve.lxc.dev/root-password";

/// Whether `s` is meant as a root password (its type or label says so).
pub fn is_root_password_secret(s: &Secret) -> bool {
    s.type_.as_deref() == Some(ROOT_PASSWORD_TYPE)
        || s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROOT_PASSWORD_LABEL))
            .is_some_and(|v| v == "true")
}

/// Reads the root password from its Secret (never logged or copied); halts the pass while
/// there is none to read.
async fn root_password(p: &mut P<'_>) -> Step<Option<String>> {
    let Some(r) = p.obj.spec.auth.as_ref().and_then(|a| a.password_secret_ref.clone()) else {
        return Ok(None);
    };
    let secrets: Api<Secret> = Api::namespaced(p.ctx.kube.clone(), &p.obj.namespace().unwrap_or_default());
    let secret = secrets.get_opt(&r.name).await.op("read the root password Secret")?;
    // only Secrets meant for it: otherwise any key of any Secret of the namespace (a
    // basic-auth password, a token) becomes a root password hash readable in the container
    if let Some(s) = &secret {
        if !is_root_password_secret(s) {
            let msg = format!(
                "Secret {} is not meant as a root password: give it type {ROOT_PASSWORD_TYPE} or the label {ROOT_PASSWORD_LABEL}=true",
                r.name
            );
            return Err(p.stop(Reason::PasswordSecretNotFound, msg).await);
        }
    }
    match secret.and_then(|s| {
        s.data
            .and_then(|d| d.get(&r.key).map(|v| String::from_utf8_lossy(&v.0).into_owned()))
    }) {
        Some(v) => Ok(Some(v)),
        None => {
            let msg = format!("Secret {} with key {} not found", r.name, r.key);
            Err(p.stop(Reason::PasswordSecretNotFound, msg).await)
        }
    }
}

/// Starts the create, restore or clone on `node` (the slot of `slot_node`): the root password
/// read (a create), the status recorded (node, phase, host mounts) with the write-ahead marker,
/// then the call.
async fn start(p: &mut P<'_>, t: &Target<'_>, f: &CreateFacts, node: &str, slot_node: &str) -> Step<Action> {
    let (handle, vmid) = (t.handle, t.vmid);
    let mut how = f
        .source
        .as_ref()
        .expect("the source is resolved before the create")
        .how
        .clone();
    if let (How::Create { ostemplate, .. }, Some(volid)) = (&mut how, &f.pulled) {
        ostemplate.clone_from(volid);
    }
    let password = match &how {
        How::Create { .. } => root_password(p).await?,
        How::Clone { .. } => None,
    };
    let from_snapshot = f.clone_from.clone().flatten();
    // a container created again (image update) keeps its MACs
    let kept;
    let desired = if f.from_image && !p.status.mac.is_empty() {
        kept = super::desired::with_kept_macs(t.desired, &p.status.mac);
        &kept
    } else {
        t.desired
    };
    let operation = how.operation();
    let before = p.status.node.clone();
    if matches!(how, How::Create { .. }) {
        // the create call carries them: recorded with the marker, before the call
        p.status.host_mounts = create_host_mounts(desired);
    }
    p.status.node = Some(node.to_string());
    p.status.phase = Some(ContainerPhase::Creating);
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Creating,
        format!("creating CT {vmid} on {node}"),
    ));
    let call = create_call(
        handle,
        desired,
        vmid,
        node,
        &how,
        password,
        from_snapshot.clone(),
        p.obj,
    );
    // the marker goes first: a crash after the call leaves the status saying what was started
    let started = task::start(p, handle, slot_node, operation, true, call).await?;
    let r = match started {
        Started::Task(_) | Started::NoTask => {
            if p.obj.spec.node.is_none() {
                handle.reserve(node, memory_bytes(desired));
            }
            p.event(Reason::Creating, format!("{operation} of CT {vmid} started on {node}"))
                .await;
            Ok(next_poll(p))
        }
        Started::NoSlot => {
            (p.status.node, p.status.phase) = (before, Some(ContainerPhase::Pending));
            if let (Some(r), Some(_)) = (p.status.clone_snapshot.as_mut(), &from_snapshot) {
                // not started: the snapshot is still to be cloned from
                r.used = false;
            }
            let msg = format!("waiting for a task slot on node {slot_node}");
            p.not_ready(Reason::WaitingForTaskSlot, msg, Action::requeue(jitter(SLOT_RETRY)))
                .await
        }
        Started::Refused(e) => refused(p, handle, e, operation, from_snapshot.is_some()).await,
    };
    r.map_err(Halt::Fail)
}

/// The `mpN`/`devN` keys the create call sets for the spec's bind mounts and devices.
fn create_host_mounts(desired: &Desired) -> Vec<String> {
    let slots = desired.mount_points.keys().copied().collect();
    let (mps, devs) = super::host_mounts::create_keys(&desired.host, &slots);
    let binds = mps.into_keys().map(|i| format!("mp{i}"));
    let keys: std::collections::BTreeSet<String> = binds.chain(devs.into_keys()).collect();
    keys.into_iter().collect()
}

/// The memory the container takes on its node (MiB in the config; 512 when unset), in bytes.
fn memory_bytes(desired: &Desired) -> u64 {
    desired.config.memory_mib.unwrap_or(512) << 20
}

/// The Proxmox call that makes the container.
#[allow(clippy::too_many_arguments)]
fn create_call<'a>(
    handle: &ClusterHandle,
    desired: &'a Desired,
    vmid: u32,
    node: &'a str,
    how: &'a How,
    password: Option<String>,
    from_snapshot: Option<String>,
    obj: &'a LxcContainer,
) -> impl std::future::Future<Output = pve::Result<pve::Upid>> + 'a {
    let client = handle.client.clone();
    async move {
        match how {
            How::Create { ostemplate, restore } => {
                let params = create_params(desired, vmid, ostemplate, *restore, password, obj.spec.auth.as_deref());
                client.lxc_create(node, &params).await
            }
            How::Clone {
                src_node,
                src_vmid,
                full,
            } => {
                let params = pve::CloneParams {
                    newid: vmid,
                    full: Some(*full),
                    target: (node != src_node).then(|| node.to_string()),
                    storage: if *full {
                        desired.rootfs.as_ref().map(|r| r.0.clone())
                    } else {
                        None
                    },
                    hostname: Some(desired.config.hostname.clone()),
                    pool: desired.pool.clone(),
                    description: desired.config.description.clone(),
                    snapname: from_snapshot,
                    ..Default::default()
                };
                client.lxc_clone(src_node, *src_vmid, &params).await
            }
        }
    }
}

/// A create Proxmox refused: `root@pam` needed, already there (the next pass judges whose it
/// is), an invalid spec, or an error for the usual retry.
async fn refused(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    e: pve::Error,
    operation: &str,
    from_snapshot: bool,
) -> Result<Action, Error> {
    p.status.phase = Some(ContainerPhase::Pending);
    if let Some(msg) = super::host_mounts::root_required(&e) {
        let retry = Action::requeue(jitter(super::converge::ROOT_RETRY));
        return p.not_ready(Reason::RootRequired, msg, retry).await;
    }
    match e.class() {
        // exists already: the next pass looks at its tag (ours → adopt; not ours → conflict)
        ErrorClass::Conflict if matches!(e, pve::Error::AlreadyExists { .. }) => {
            handle.refresh.notify_one();
            p.save().await?;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        ErrorClass::InvalidSpec => {
            let message = format!("Proxmox refused the {operation}: {e}");
            let field = "source".into();
            let action = p.invalid(InvalidSpec { field, message }).await?;
            // the temporary snapshot it was to be made from is deleted by the next pass
            Ok(match from_snapshot {
                true => Action::requeue(Duration::from_secs(1)),
                false => action,
            })
        }
        _ => {
            p.cond(CondSpec::no(CONDITION_READY, Reason::CreateFailed, e.to_string()));
            p.save().await?;
            Err(e.into())
        }
    }
}

/// The parameters of `POST /nodes/{node}/lxc` for the desired container: its settings, and the
/// root credentials (fresh creates only) or the restore flags.
fn create_params(
    d: &Desired,
    vmid: u32,
    ostemplate: &str,
    restore: bool,
    password: Option<String>,
    auth: Option<&ContainerAuth>,
) -> pve::LxcCreateParams {
    let mut params = d.create_params(vmid, ostemplate);
    params.password = password;
    params.ssh_public_keys = auth
        .filter(|a| !a.ssh_public_keys.is_empty())
        .map(|a| a.ssh_public_keys.join("\n"));
    if matches!(d.source, Source::Image { .. }) {
        // created stopped: entrypoint and env (which Proxmox takes from the image at create)
        // are set by the first config update, before the first start
        params.start = Some(false);
    }
    if restore {
        // the spec's privilege flag, never the archive's: a privileged archive is restored
        // unprivileged unless the spec (and the tenant) allow otherwise; a restore makes new MACs
        params.unprivileged = Some(d.unprivileged);
        params.restore = true;
        params.unique = Some(true);
    }
    params
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
