//! Creating a container: from an OS template, a backup archive (restore) or a clone. The
//! vmid is in status before the call, the write-ahead marker goes first, and the node comes
//! from [`decide::placement`].

use super::clone_snapshot::Prepared;
use super::converge::foreign;
use super::decide::{self, Origin};
use super::desired::{Desired, InvalidSpec, Source};
use super::identity;
use super::reconcile::{next_poll, P, SLOT_RETRY};
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

/// What to create from.
enum How {
    Create {
        ostemplate: String,
        restore: bool,
    },
    Clone {
        src_node: String,
        src_vmid: u32,
        full: bool,
    },
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
) -> Step<(How, Origin)> {
    let ns = p.obj.namespace().unwrap_or_default();
    Ok(match &desired.source {
        Source::OsTemplate(t) => (
            How::Create {
                ostemplate: t.clone(),
                restore: false,
            },
            Origin::Create,
        ),
        // the image is pulled on the node placement picks (below)
        Source::Image { .. } => (
            How::Create {
                ostemplate: String::new(),
                restore: false,
            },
            Origin::Create,
        ),
        Source::BackupVolid(v) => {
            let Some(notes) = tenancy::archive_notes(handle, snap, v).await? else {
                let msg = format!("archive {v} is not listed on any node that sees its storage");
                return Err(p.stop(Reason::ArchiveNotFound, msg).await);
            };
            if let Err(r) = tenancy::may_restore(p, v, notes.as_deref(), admission) {
                return Err(Halt::end(tenancy::refuse(p, r).await));
            }
            (
                How::Create {
                    ostemplate: v.clone(),
                    restore: true,
                },
                Origin::Restore(None),
            )
        }
        Source::BackupName(n) => {
            let backups: Api<LxcBackup> = Api::namespaced(p.ctx.kube.clone(), &ns);
            let found = backups.get_opt(n).await.op("read LxcBackup")?.and_then(|b| {
                let uid = b.uid().unwrap_or_default();
                let s = b.status?;
                Some((s.volid?, s.node, uid))
            });
            match found {
                Some((v, bnode, backup_uid)) => {
                    // the volid in the LxcBackup's status counts only when the archive's notes
                    // say that this LxcBackup made it
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
                    // an archive on storage that is not shared can only be restored on its node
                    let storage = v.split_once(':').map(|x| x.0).unwrap_or_default();
                    let shared = snap.storages.iter().any(|s| s.name == storage && s.shared);
                    (
                        How::Create {
                            ostemplate: v,
                            restore: true,
                        },
                        Origin::Restore(if shared { None } else { bnode }),
                    )
                }
                None => {
                    let msg = format!("LxcBackup {n} has no completed archive yet");
                    return Err(p.stop(Reason::WaitingForBackup, msg).await);
                }
            }
        }
        Source::Clone { vmid: src, full } => match snap.guests.get(src) {
            Some(g) => {
                // the owner is looked up once (a scan of the caches), not once per check
                if let Err(r) = tenancy::may_use(p, g, admission, "source.clone.vmid") {
                    return Err(Halt::end(tenancy::refuse(p, r).await));
                }
                (
                    How::Clone {
                        src_node: g.node.clone(),
                        src_vmid: *src,
                        full: *full || !g.template,
                    },
                    Origin::Clone(g.node.clone()),
                )
            }
            None => {
                let msg = format!("source CT {src} does not exist in Proxmox");
                return Err(p.stop(Reason::SourceNotFound, msg).await);
            }
        },
        Source::Template { name, full } => {
            let templates: Api<LxcTemplate> = Api::namespaced(p.ctx.kube.clone(), &ns);
            let t = templates.get_opt(name).await.op("read LxcTemplate")?;
            let ready = t
                .as_ref()
                .and_then(|t| t.status.as_ref())
                .filter(|s| conditions::is_true(&s.conditions, CONDITION_READY));
            let template_uid = t.as_ref().and_then(|t| t.uid()).unwrap_or_default();
            match ready.and_then(|s| Some((s.vmid?, s.node.clone()?))) {
                // the vmid in the template's status counts only when Proxmox shows its tag there
                Some((tv, _)) if !identity::carries_identity(snap, tv, &template_uid) => {
                    let msg = format!("CT {tv} in the status of LxcTemplate {name} does not carry its identity tag");
                    return Err(Halt::end(tenancy::refuse(p, Refusal::new(Reason::NotOwned, msg)).await));
                }
                Some((tv, tn)) => (
                    How::Clone {
                        src_node: tn.clone(),
                        src_vmid: tv,
                        full: *full,
                    },
                    Origin::Clone(tn),
                ),
                None => {
                    let msg = format!("LxcTemplate {name} is not Ready yet");
                    return Err(p.stop(Reason::WaitingForTemplate, msg).await);
                }
            }
        }
    })
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

/// Creates CT `vmid` (absent from Proxmox) as the spec says.
pub(super) async fn create(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    desired: &Desired,
    vmid: u32,
    admission: &Admission,
) -> Result<Action, Error> {
    // the spec against the inventory first: a typo is refused here, not by Proxmox
    if let Some(action) = super::precheck::run(p, handle, snap, desired).await? {
        return Ok(action);
    }
    let user_vmid = p.obj.spec.vmid.is_some();
    if let Some(verdict) = identity::held_by_vm(snap.guests.get(&vmid).map(|g| g.kind.as_str()), user_vmid) {
        let node = snap.guests.get(&vmid).map(|g| g.node.clone()).unwrap_or_default();
        return foreign(
            p,
            verdict,
            vmid,
            &node,
            desired,
            "a QEMU virtual machine holds this vmid",
        )
        .await;
    }
    let memory_bytes = desired
        .keys
        .get("memory")
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(512)
        << 20;
    let rootfs_storage = desired
        .rootfs
        .as_ref()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| tenancy::DEFAULT_ROOTFS_STORAGE.into());
    let (how, origin) = match resolve_source(p, handle, snap, desired, admission).await {
        Ok(x) => x,
        Err(halt) => return halt.into(),
    };
    let image = match &desired.source {
        Source::Image { reference, storage } => Some((reference.clone(), storage.clone())),
        _ => None,
    };
    if p.obj.spec.app.is_some() {
        // every value spec.app reads must be there (and acceptable) before anything is made
        if let Err(halt) = super::app::resolve(p).await {
            return halt.into();
        }
    }
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
        .or(pinned.as_deref().filter(|_| image.is_some()));
    // a tenant limited to some nodes is placed among them only, and never on a node in maintenance
    let allowed: Vec<String> = admission.spec().map(|t| t.nodes.clone()).unwrap_or_default();
    if let Some(n) = p
        .obj
        .spec
        .node
        .as_deref()
        .filter(|n| handle.in_maintenance(n).is_some())
    {
        let msg =
            format!("node {n} is in maintenance (ProxmoxCluster spec.maintenance); the container is made once it ends");
        return p
            .not_ready(
                Reason::NodeUnavailable,
                msg,
                Action::requeue(jitter(Duration::from_secs(30))),
            )
            .await;
    }
    let limited = tenancy::placeable(handle, snap, &allowed).map(|nodes| snap.placement_only_on(&nodes));
    let placed = match (wanted_node, tenancy::spread_siblings(p, handle)) {
        (None, Some((group, siblings))) => decide::placement_spread(
            &origin,
            limited.as_ref().unwrap_or(snap),
            &rootfs_storage,
            &handle.reserved(),
            &load,
            &siblings,
        )
        .map(|(n, shared)| (n, shared.map(|k| (group, k)))),
        (wanted, _) => decide::placement_with_load(
            wanted,
            &origin,
            limited.as_ref().unwrap_or(snap),
            &rootfs_storage,
            &handle.reserved(),
            &load,
        )
        .map(|n| (n, None)),
    };
    if let (Ok((n, _)), Some(_)) = (&placed, &p.obj.spec.spread_by) {
        handle.place_spread(&p.uid, n);
    }
    let node = match placed {
        Ok((n, None)) => n,
        Ok((n, Some((group, k)))) => {
            let msg = format!(
                "every node that fits already runs a container of spread group {group}; placed on {n} with {k} of them"
            );
            p.event(Reason::SpreadNotPossible, msg).await;
            n
        }
        Err(u) => {
            return p
                .not_ready(u.reason, u.message, Action::requeue(jitter(Duration::from_secs(15))))
                .await
        }
    };
    // a container created again (image update) keeps its MACs
    let kept;
    let desired = if image.is_some() && !p.status.mac.is_empty() {
        kept = super::image::with_kept_macs(desired, &p.status.mac);
        &kept
    } else {
        desired
    };
    let how = match (&image, how) {
        (Some((reference, storage)), How::Create { .. }) => {
            match super::image::ensure_pulled(p, handle, &node, storage, reference).await {
                Ok(volid) => {
                    p.status.image = Some(reference.clone());
                    How::Create {
                        ostemplate: volid,
                        restore: false,
                    }
                }
                Err(halt) => return halt.into(),
            }
        }
        (_, how) => how,
    };
    let node = match &how {
        How::Clone {
            src_node,
            src_vmid,
            full,
        } if node != *src_node => {
            let src_cfg = handle.client.lxc_config(src_node, *src_vmid).await?;
            let local: Vec<String> = crate::controller::template::build::disk_storages(&src_cfg)
                .into_iter()
                .filter(|s| {
                    !snap
                        .storages
                        .iter()
                        .any(|st| st.node == *src_node && st.name == *s && st.shared)
                })
                .collect();
            match decide::clone_node(&node, src_node, *full, &local) {
                Ok(n) => n,
                Err(storages) => {
                    let what = match &desired.source {
                        Source::Template { name, .. } => format!("LxcTemplate {name} (CT {src_vmid})"),
                        _ => format!("CT {src_vmid}"),
                    };
                    p.status.phase = Some(ContainerPhase::Pending);
                    let msg = format!(
                        "a linked clone of {what} can only be made on node {src_node}: its disks are on storage {storages} that is not shared; remove spec.node, set it to {src_node}, or ask for a full clone"
                    );
                    return p
                        .not_ready(
                            Reason::CloneNotPossible,
                            msg,
                            Action::requeue(jitter(Duration::from_secs(60))),
                        )
                        .await;
                }
            }
        }
        _ => node,
    };
    if !allowed.is_empty() && !allowed.contains(&node) {
        let msg = format!(
            "the container would be made on node {node} (where its source is), which is not one of the tenant's nodes ({})",
            allowed.join(", ")
        );
        return tenancy::refuse(p, Refusal::new(Reason::TenantPolicyNode, msg)).await;
    }
    let password = match &how {
        How::Create { .. } => match root_password(p).await {
            Ok(pw) => pw,
            Err(halt) => return halt.into(),
        },
        How::Clone { .. } => None,
    };
    let from_snapshot = match &how {
        How::Clone {
            src_node,
            src_vmid,
            full,
        } => match super::clone_snapshot::prepare(p, handle, snap, src_node, *src_vmid, *full).await? {
            Prepared::Direct => None,
            Prepared::From(name) => Some(name),
            Prepared::Done(action) => return Ok(action),
        },
        How::Create { .. } => None,
    };
    let slot_node = match &how {
        How::Clone { src_node, .. } => src_node.clone(),
        How::Create { .. } => node.clone(),
    };
    let operation = match &how {
        How::Create { restore: true, .. } => "restore",
        How::Create { .. } => "create",
        How::Clone { .. } => "clone",
    };
    let before = (p.status.node.clone(), p.status.phase);
    if matches!(how, How::Create { .. }) {
        // the create call carries them: recorded with the marker, before the call
        let slots = desired.mount_points.keys().copied().collect();
        let (mps, devs) = super::host_mounts::create_keys(&desired.host, &slots);
        let binds = mps.into_keys().map(|i| format!("mp{i}"));
        let keys: std::collections::BTreeSet<String> = binds.chain(devs.into_keys()).collect();
        p.status.host_mounts = keys.into_iter().collect();
    }
    p.status.node = Some(node.clone());
    p.status.phase = Some(ContainerPhase::Creating);
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Creating,
        format!("creating CT {vmid} on {node}"),
    ));
    let (client, obj) = (handle.client.clone(), p.obj);
    let call = async {
        match &how {
            How::Create { ostemplate, restore } => {
                let params = create_params(desired, vmid, ostemplate, *restore, password, obj.spec.auth.as_ref());
                client.lxc_create(&node, &params).await
            }
            How::Clone {
                src_node,
                src_vmid,
                full,
            } => {
                let params = pve::CloneParams {
                    newid: vmid,
                    full: Some(*full),
                    target: (node != *src_node).then(|| node.clone()),
                    storage: if *full {
                        desired.rootfs.as_ref().map(|r| r.0.clone())
                    } else {
                        None
                    },
                    hostname: desired.keys.get("hostname").cloned(),
                    pool: desired.pool.clone(),
                    description: desired.keys.get("description").cloned(),
                    snapname: from_snapshot.clone(),
                    ..Default::default()
                };
                client.lxc_clone(src_node, *src_vmid, &params).await
            }
        }
    };
    // the marker goes first: a crash after the call leaves the status saying what was started
    match task::start(p, handle, &slot_node, operation, true, call).await? {
        Started::Task(_) | Started::NoTask => {
            if p.obj.spec.node.is_none() {
                handle.reserve(&node, memory_bytes);
            }
            p.event(Reason::Creating, format!("{operation} of CT {vmid} started on {node}"))
                .await;
            Ok(next_poll(p))
        }
        Started::NoSlot => {
            (p.status.node, p.status.phase) = (before.0, Some(ContainerPhase::Pending));
            if let (Some(r), Some(_)) = (p.status.clone_snapshot.as_mut(), &from_snapshot) {
                // not started: the snapshot is still to be cloned from
                r.used = false;
            }
            let msg = format!("waiting for a task slot on node {slot_node}");
            p.not_ready(Reason::WaitingForTaskSlot, msg, Action::requeue(jitter(SLOT_RETRY)))
                .await
        }
        Started::Refused(e) => {
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
                    let action = p
                        .invalid(InvalidSpec {
                            field: "source".into(),
                            message,
                        })
                        .await?;
                    // the temporary snapshot it was to be made from is deleted by the next pass
                    Ok(match from_snapshot {
                        Some(_) => Action::requeue(Duration::from_secs(1)),
                        None => action,
                    })
                }
                _ => {
                    p.cond(CondSpec::no(CONDITION_READY, Reason::CreateFailed, e.to_string()));
                    p.save().await?;
                    Err(e.into())
                }
            }
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
