//! The effectful part of the `LxcTemplate` controller: resolve the image (download it when
//! absent), create the template container, convert it with `template`, keep earlier builds while
//! linked clones use them, and clean up on deletion. At most one Proxmox task per pass; the task
//! in flight is kept in `status.pendingTask`; status is written only when it changed.

use super::build::{self, create_params, image_volid, pick_appliance, Image, TemplatePlan};
use super::pass::{
    check_task, cluster_key, config, describe_clones, linked_clones, start_task, NO_UPID, P, PHASE_BUILDING,
    PHASE_DOWNLOADING, PHASE_FAILED, PHASE_PENDING, PHASE_READY,
};
use crate::controller::cluster::{ClusterHandle, Snapshot};
use crate::controller::conditions::CondSpec;
use crate::controller::container::decide;
use crate::controller::container::desired::{identity_tag, InvalidSpec};
use crate::controller::container::image as oci;
use crate::controller::context::Context;
use crate::controller::kernel::{Pass, Reason};
use crate::controller::{jitter, Error};
use crate::crd::lxc_container::PendingTask;
use crate::crd::lxc_template::{LxcTemplate, PreviousTemplate};
use crate::crd::CONDITION_READY;
use crate::pve::{self, ErrorClass};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::sync::Arc;
use std::time::Duration;

/// Reconciles one `LxcTemplate`.
pub async fn reconcile(obj: Arc<LxcTemplate>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::controller::kernel::pass::run(&*obj, &ctx, reconcile_inner(&obj, &ctx)).await
}

/// Requeue policy for errors: the one every kind uses.
pub fn error_policy(obj: Arc<LxcTemplate>, err: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::kernel::pass::error_policy(obj, err, ctx)
}

async fn reconcile_inner(obj: &LxcTemplate, ctx: &Context) -> Result<Action, Error> {
    let mut p = Pass::new(obj, ctx);
    if obj.metadata.deletion_timestamp.is_some() {
        return super::cleanup::cleanup(&mut p).await;
    }
    p.add_finalizer().await?;
    let (handle, snap) = match ctx.clusters.usable(&cluster_key(obj, ctx)) {
        Ok(u) => u,
        Err(why) => {
            p.status.phase.get_or_insert_with(|| PHASE_PENDING.into());
            return p
                .not_ready(
                    Reason::ClusterNotReady,
                    why,
                    Action::requeue(jitter(Duration::from_secs(10))),
                )
                .await;
        }
    };
    let mut plan = match build::plan(&obj.spec, &obj.name_any(), &p.uid) {
        Ok(pl) => pl,
        Err(e) => return p.invalid(e).await,
    };
    // the tenant's policy: nothing reaches Proxmox when the spec is outside it
    if let Err(r) = super::tenancy::admit(obj, ctx, &handle, &mut plan) {
        p.status.phase.get_or_insert_with(|| PHASE_PENDING.into());
        return p
            .not_ready(r.reason, r.message, Action::requeue(jitter(Duration::from_secs(30))))
            .await;
    }
    // a task in flight: check it, and do nothing else until it has ended
    if let Some(action) = check_task(&mut p, &handle).await? {
        return Ok(action);
    }
    // a changed spec builds a new template; the current one is kept as a previous build
    if p.status.build_hash.as_deref() != Some(plan.hash.as_str()) {
        if let (Some(vmid), Some(node)) = (p.status.vmid, p.status.node.clone()) {
            p.status.previous.push(PreviousTemplate {
                vmid,
                node: node.clone(),
            });
            p.event(
                Reason::Rebuilding,
                format!(
                    "the spec changed: building a new template; CT {vmid} on {node} is kept while linked clones use it"
                ),
            )
            .await;
        }
        p.status.vmid = None;
        p.status.node = None;
        p.status.os_template = None;
        p.status.build_hash = Some(plan.hash.clone());
        p.status.phase = Some(PHASE_PENDING.into());
        p.cond(CondSpec::no(
            CONDITION_READY,
            Reason::Pending,
            "the template is about to be built",
        ));
        p.save().await?;
    }
    // earlier builds nothing clones from any more are deleted first (one task per pass)
    let kept = match collect_previous(&mut p, &handle).await? {
        Collected::Kept(k) => k,
        Collected::Started(action) => return Ok(action),
    };
    build_current(&mut p, &handle, &snap, &plan, kept).await
}

/// What happened to the earlier builds in this pass.
enum Collected {
    /// No task was started; these are kept because linked clones use them (vmid, clones).
    Kept(Vec<(u32, Vec<u32>)>),
    /// A deletion task was started.
    Started(Action),
}

/// Deletes earlier builds that no linked clone uses any more (at most one task).
async fn collect_previous(p: &mut P<'_>, handle: &ClusterHandle) -> Result<Collected, Error> {
    let identity = identity_tag(&p.uid);
    let mut kept = Vec::new();
    for prev in p.status.previous.clone() {
        let Some(cfg) = config(handle, &prev.node, prev.vmid).await? else {
            p.status.previous.retain(|x| *x != prev);
            p.save().await?;
            continue;
        };
        if !cfg.tag_list().contains(&identity) {
            p.event(
                Reason::LeftUntouched,
                format!(
                    "earlier build CT {} on {} no longer carries our tag; it is not deleted",
                    prev.vmid, prev.node
                ),
            )
            .await;
            p.status.previous.retain(|x| *x != prev);
            p.save().await?;
            continue;
        }
        let clones = linked_clones(handle, &prev.node, prev.vmid, &cfg).await?;
        if !clones.is_empty() || cfg.lock.is_some() {
            kept.push((prev.vmid, clones));
            continue;
        }
        p.event(
            Reason::DeletingPrevious,
            format!(
                "deleting earlier build CT {} on {}: no linked clone uses it any more",
                prev.vmid, prev.node
            ),
        )
        .await;
        let client = handle.client.clone();
        let (n, v) = (prev.node.clone(), prev.vmid);
        let params = pve::DeleteParams::purge_referenced_only();
        return match start_task(p, handle, &prev.node, "delete", async move {
            client.lxc_delete(&n, v, &params).await
        })
        .await?
        {
            Ok(a) => Ok(Collected::Started(a)),
            Err(e) if e.class() == ErrorClass::NotFound => {
                Ok(Collected::Started(Action::requeue(Duration::from_millis(200))))
            }
            Err(e) => Err(e.into()),
        };
    }
    Ok(Collected::Kept(kept))
}

/// Builds (or checks) the current template: node, image, create, convert, Ready.
async fn build_current(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    snap: &Snapshot,
    plan: &TemplatePlan,
    kept: Vec<(u32, Vec<u32>)>,
) -> Result<Action, Error> {
    let spec = &p.obj.spec;
    // where
    let node = match (&p.status.node, &spec.node) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => {
            if !snap.node_online(n) {
                p.status.phase.get_or_insert_with(|| PHASE_PENDING.into());
                return p
                    .not_ready(
                        Reason::NodeUnavailable,
                        format!("node {n} is not online in Proxmox"),
                        Action::requeue(jitter(Duration::from_secs(15))),
                    )
                    .await;
            }
            n.clone()
        }
        (None, None) => {
            let storage = plan
                .settings
                .rootfs
                .as_ref()
                .map(|r| r.0.clone())
                .unwrap_or_else(|| "local".into());
            let memory = plan.settings.config.memory_mib.unwrap_or(512) << 20;
            match decide::placement_with_load(
                None,
                &decide::Origin::Create,
                &super::tenancy::placement_view(snap, &plan.allowed_nodes),
                &storage,
                &handle.reserved(),
                &p.ctx
                    .slots
                    .load(&handle.client, &handle.key, snap.nodes.iter().map(|n| n.name.as_str())),
            ) {
                Ok(n) => {
                    handle.reserve(&n, memory);
                    n
                }
                Err(u) => {
                    return p
                        .not_ready(u.reason, u.message, Action::requeue(jitter(Duration::from_secs(15))))
                        .await
                }
            }
        }
    };
    // the image
    let os_template = match p.status.os_template.clone() {
        Some(t) => t,
        None => match resolve_image(p, handle, plan, &node).await? {
            Ok(volid) => {
                p.status.node = Some(node.clone());
                p.status.os_template = Some(volid.clone());
                p.save().await?;
                volid
            }
            Err(action) => return Ok(action),
        },
    };
    // the container
    let vmid = match p.status.vmid {
        Some(v) => v,
        None => {
            let v = match spec.vmid {
                Some(v) => {
                    if let Some((_, clones)) = kept.iter().find(|(pv, _)| *pv == v) {
                        let who = describe_clones(p, clones).await;
                        return p.not_ready(Reason::VmidInUse, format!("spec.vmid {v} is the earlier build of this template, which linked clones still use ({who}); remove spec.vmid or choose another to build the changed template"), Action::requeue(jitter(Duration::from_secs(30)))).await;
                    }
                    v
                }
                None => match plan.vmid_range {
                    None => handle.allocate_vmid().await?,
                    Some(r) => match handle.allocate_vmid_in(r.min, r.max).await? {
                        Some(v) => v,
                        None => {
                            let msg = format!("every vmid of the tenant's range {}-{} is taken", r.min, r.max);
                            let action = Action::requeue(jitter(Duration::from_secs(30)));
                            return p.not_ready(Reason::TenantPolicyVmidRange, msg, action).await;
                        }
                    },
                },
            };
            // the vmid is recorded before anything is created with it
            p.status.vmid = Some(v);
            p.status.node = Some(node.clone());
            p.save().await?;
            v
        }
    };
    let identity = identity_tag(&p.uid);
    // steady state: the inventory shows our template; nothing to read
    let seen = snap
        .guests
        .get(&vmid)
        .is_some_and(|g| g.template && g.node == node && g.has_tag(&identity));
    if !(seen && p.status.phase.as_deref() == Some(PHASE_READY)) {
        let Some(cfg) = config(handle, &node, vmid).await? else {
            // held elsewhere (another node, or a VM): a create would answer "already exists"
            // forever
            if let Some(g) = snap.guests.get(&vmid).filter(|g| g.node != node || g.kind == "qemu") {
                if spec.vmid.is_none() {
                    p.status.vmid = None;
                    p.save().await?;
                    return Ok(Action::requeue(Duration::from_millis(100)));
                }
                p.status.phase = Some(PHASE_FAILED.into());
                let what = if g.kind == "qemu" {
                    "a QEMU virtual machine"
                } else {
                    "a container"
                };
                let msg = format!(
                    "vmid {vmid} is held by {what} on node {} that is not this template; choose another vmid",
                    g.node
                );
                return p
                    .not_ready(
                        Reason::VmidConflict,
                        msg,
                        Action::requeue(jitter(Duration::from_secs(300))),
                    )
                    .await;
            }
            if p.status.phase.as_deref() == Some(PHASE_READY) {
                p.event(
                    Reason::Recreating,
                    format!("template CT {vmid} is gone from Proxmox; building it again"),
                )
                .await;
            }
            p.status.phase = Some(PHASE_BUILDING.into());
            p.cond(CondSpec::no(
                CONDITION_READY,
                Reason::Building,
                format!("creating CT {vmid} on {node} from {os_template}"),
            ));
            let params = create_params(plan, vmid, &os_template);
            let client = handle.client.clone();
            let n = node.clone();
            return match start_task(p, handle, &node, "create", async move {
                client.lxc_create(&n, &params).await
            })
            .await?
            {
                Ok(a) => {
                    p.event(
                        Reason::Building,
                        format!("creating template CT {vmid} on {node} from {os_template}"),
                    )
                    .await;
                    Ok(a)
                }
                // exists already: the next pass looks at its tag
                Err(pve::Error::AlreadyExists { .. }) => Ok(Action::requeue(Duration::from_millis(500))),
                Err(e) if e.class() == ErrorClass::InvalidSpec => {
                    p.invalid(InvalidSpec {
                        field: "(create)".into(),
                        message: format!("Proxmox refused the create: {e}"),
                    })
                    .await
                }
                Err(e) => Err(e.into()),
            };
        };
        if !cfg.tag_list().contains(&identity) {
            if spec.vmid.is_none() && p.status.phase.as_deref() != Some(PHASE_READY) {
                // an id we picked was taken by someone else before our create: pick another
                p.status.vmid = None;
                p.save().await?;
                return Ok(Action::requeue(Duration::from_millis(100)));
            }
            p.status.phase = Some(PHASE_FAILED.into());
            return p
                .not_ready(Reason::VmidConflict, format!("CT {vmid} exists on {node} but is not managed by this object (it lacks the tag {identity}); it is left untouched — choose another vmid"), Action::requeue(jitter(Duration::from_secs(300))))
                .await;
        }
        if let Some(lock) = &cfg.lock {
            p.cond(CondSpec::no(
                CONDITION_READY,
                Reason::Building,
                format!("CT {vmid} is locked ({lock}); waiting"),
            ));
            p.save().await?;
            return Ok(Action::requeue(jitter(p.ctx.settings.lock_retry)));
        }
        if cfg.template != Some(true) {
            p.status.phase = Some(PHASE_BUILDING.into());
            let running = handle.client.lxc_status(&node, vmid).await?.is_running();
            if running {
                let client = handle.client.clone();
                let n = node.clone();
                return match start_task(p, handle, &node, "stop", async move { client.lxc_stop(&n, vmid).await })
                    .await?
                {
                    Ok(a) => Ok(a),
                    Err(e) => Err(e.into()),
                };
            }
            p.cond(CondSpec::no(
                CONDITION_READY,
                Reason::Converting,
                format!("converting CT {vmid} into a template"),
            ));
            handle.client.lxc_template(&node, vmid).await?;
            p.status.pending_task = Some(PendingTask {
                upid: NO_UPID.into(),
                operation: "template".into(),
                started_at: Some(p.now.clone()),
            });
            p.save().await?;
            return Ok(Action::requeue(p.ctx.settings.task_poll));
        }
    }
    // ready
    let became_ready = !p.is_true(CONDITION_READY);
    let mut msg = format!("template CT {vmid} on {node}, built from {os_template}");
    if !kept.is_empty() {
        let mut parts = Vec::new();
        for (v, clones) in &kept {
            parts.push(format!("CT {v} (used by {})", describe_clones(p, clones).await));
        }
        msg.push_str(&format!(
            "; earlier builds kept while linked clones use them: {}",
            parts.join(", ")
        ));
    }
    p.status.phase = Some(PHASE_READY.into());
    p.cond(CondSpec::yes(CONDITION_READY, Reason::Ready, msg));
    p.observed();
    p.save().await?;
    if became_ready {
        p.event(Reason::Ready, format!("template CT {vmid} is ready on {node}"))
            .await;
    }
    // earlier builds are looked at again when clones go away (watch) and periodically
    Ok(if p.status.previous.is_empty() {
        Action::requeue(jitter(Duration::from_secs(600)))
    } else {
        Action::requeue(jitter(Duration::from_secs(15)))
    })
}

/// The image's volume id when it is present on `node`; otherwise starts its download (or
/// explains why it cannot be had) and returns the action that ends the pass.
async fn resolve_image(
    p: &mut P<'_>,
    handle: &ClusterHandle,
    plan: &TemplatePlan,
    node: &str,
) -> Result<Result<String, Action>, Error> {
    let (volid, storage, file) = match &plan.image {
        Image::Volid(v) => {
            let storage = v.split(':').next().unwrap_or_default().to_string();
            if present(handle, node, &storage, v).await? {
                return Ok(Ok(v.clone()));
            }
            p.status.phase = Some(PHASE_PENDING.into());
            let a = p
                .not_ready(
                    Reason::ImageNotFound,
                    format!("image {v} does not exist on node {node} (spec.image.volid)"),
                    Action::requeue(jitter(Duration::from_secs(60))),
                )
                .await?;
            return Ok(Err(a));
        }
        Image::Appliance { name } => {
            let index = handle.client.aplinfo(node).await?;
            let Some(entry) = pick_appliance(&index, name) else {
                p.status.phase = Some(PHASE_FAILED.into());
                let a = p.not_ready(Reason::ApplianceNotFound, format!("appliance {name} is not in the appliance index of node {node} (spec.image.appliance; see `pveam available`)"), Action::requeue(jitter(Duration::from_secs(300)))).await?;
                return Ok(Err(a));
            };
            (
                image_volid(&plan.image_storage, &entry.template),
                plan.image_storage.clone(),
                entry.template.clone(),
            )
        }
        Image::Oci { reference } => (
            oci::volid(&plan.image_storage, reference),
            plan.image_storage.clone(),
            oci::file_name(reference),
        ),
        Image::Url { file_name, .. } => (
            image_volid(&plan.image_storage, file_name),
            plan.image_storage.clone(),
            file_name.clone(),
        ),
    };
    if present(handle, node, &storage, &volid).await? {
        return Ok(Ok(volid));
    }
    // one download per image: another template may be fetching it already
    let claim = format!("{}/{node}/{volid}", cluster_key(p.obj, p.ctx));
    let someone_else = !p.ctx.downloads.claim(&claim, &p.uid);
    if someone_else {
        p.status.phase = Some(PHASE_DOWNLOADING.into());
        let a = p
            .not_ready(
                Reason::Downloading,
                format!("waiting for the download of {volid} to node {node} started for another template"),
                Action::requeue(jitter(Duration::from_secs(2))),
            )
            .await?;
        return Ok(Err(a));
    }
    p.status.phase = Some(PHASE_DOWNLOADING.into());
    p.status.node = Some(node.to_string());
    p.cond(CondSpec::no(
        CONDITION_READY,
        Reason::Downloading,
        format!("downloading {file} to {storage} on node {node}"),
    ));
    let client = handle.client.clone();
    let n = node.to_string();
    let started = match &plan.image {
        Image::Url {
            url,
            algorithm,
            checksum,
            file_name,
        } => {
            let params = pve::DownloadUrlParams {
                url: url.clone(),
                content: "vztmpl".into(),
                filename: file_name.clone(),
                checksum: Some(checksum.clone()),
                checksum_algorithm: Some(algorithm.clone()),
                ..Default::default()
            };
            start_task(p, handle, node, "download", async move {
                client.download_url(&n, &storage, &params).await
            })
            .await?
        }
        Image::Oci { reference } => {
            let params = pve::OciPullParams {
                reference: reference.clone(),
                filename: Some(file.clone()),
            };
            start_task(p, handle, node, "download", async move {
                client.oci_registry_pull(&n, &storage, &params).await
            })
            .await?
        }
        _ => {
            let f = file.clone();
            start_task(p, handle, node, "download", async move {
                client.aplinfo_download(&n, &storage, &f).await
            })
            .await?
        }
    };
    match started {
        Ok(a) => {
            p.event(
                Reason::Downloading,
                format!("downloading {file} to {} on node {node}", plan.image_storage),
            )
            .await;
            Ok(Err(a))
        }
        Err(e) => {
            p.ctx.downloads.release(&claim);
            if matches!(
                e.class(),
                ErrorClass::InvalidSpec | ErrorClass::Permanent | ErrorClass::Conflict
            ) {
                p.status.phase = Some(PHASE_FAILED.into());
                let a = p
                    .not_ready(
                        Reason::DownloadFailed,
                        format!(
                            "Proxmox refused to download {file} to {} on node {node}: {}",
                            plan.image_storage,
                            e.message()
                        ),
                        Action::requeue(jitter(Duration::from_secs(120))),
                    )
                    .await?;
                return Ok(Err(a));
            }
            Err(e.into())
        }
    }
}

pub(crate) use crate::controller::guest::present;
