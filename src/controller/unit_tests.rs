//! Reconciles against the fake apiserver and the in-process simulator (see `fixtures`): the
//! cases that need the real pass but not a real apiserver.

use super::backup::lxc_backup::{self, BackupCtx};
use super::fixtures::{path, World};
use crate::crd::{LxcBackup, LxcContainer, LxcTemplate};
use crate::sim::{FaultConfig, FaultKind, FaultRule};
use kube::runtime::reflector;
use kube::ResourceExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn object<K: serde::de::DeserializeOwned>(kind: &str, ns: &str, name: &str, spec: serde_json::Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "pve.lxc.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"), "generation": 1, "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

/// The condition `type_` of a written status.
fn condition(status: &serde_json::Value, type_: &str) -> serde_json::Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap()
        .clone()
}

fn container(ns: &str, name: &str) -> LxcContainer {
    object(
        "LxcContainer",
        ns,
        name,
        json!({"source": {"osTemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}, "rootfs": {"storage": "local-lvm", "size": "2Gi"}}),
    )
}

/// Runs passes of `obj` as the cache shows it (never updated: the watch lags behind every
/// status write the operator makes) until `done` or the attempts run out.
async fn passes<F, Fut>(n: usize, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n {
        pass().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
}

#[tokio::test]
async fn a_watch_cache_that_lags_behind_our_writes_never_makes_a_second_container() {
    let w = World::new("ns", 2).await;
    let obj = Arc::new(container("ns", "web"));
    w.api.put(&path("ns", "lxccontainers", "web"), &*obj);
    passes(15, || {
        let (o, c) = (obj.clone(), w.ctx.clone());
        async move {
            let _ = super::container::reconcile::reconcile(o, c).await;
        }
    })
    .await;
    assert_eq!(w.requests("POST /nodes/{node}/lxc"), 1, "exactly one create");
    assert_eq!(w.sim.containers().len(), 1);
}

#[tokio::test]
async fn a_watch_cache_that_lags_behind_our_writes_never_builds_a_template_twice() {
    let w = World::new("ns", 2).await;
    let spec = json!({"image": {"volid": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"}, "imageStorage": "local", "rootfs": {"storage": "local-lvm", "size": "2Gi"}});
    let obj: Arc<LxcTemplate> = Arc::new(object("LxcTemplate", "ns", "base", spec));
    w.api.put(&path("ns", "lxctemplates", "base"), &*obj);
    passes(15, || {
        let (o, c) = (obj.clone(), w.ctx.clone());
        async move {
            let _ = super::template::reconcile::reconcile(o, c).await;
        }
    })
    .await;
    assert_eq!(
        w.requests("POST /nodes/{node}/lxc"),
        1,
        "exactly one template container is created"
    );
    assert_eq!(w.sim.containers().len(), 1);
}

#[tokio::test]
async fn a_watch_cache_that_lags_behind_our_writes_never_starts_a_second_vzdump() {
    let w = World::new("ns", 2).await;
    // a container of ours in Proxmox (with its identity tag), and its object with the vmid in status
    let params = crate::pve::LxcCreateParams {
        vmid: 150,
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
        tags: Some("k8s-uid-web".into()),
        ..Default::default()
    };
    let upid = w.handle.client.lxc_create("pve1", &params).await.unwrap();
    w.handle
        .client
        .wait_task(&upid, Duration::from_millis(50), Duration::from_secs(30))
        .await
        .unwrap();
    w.wait_for_guest(150).await;
    let mut ct = container("ns", "web");
    ct.status = Some(crate::crd::LxcContainerStatus {
        vmid: Some(150),
        ..Default::default()
    });
    w.api.put(&path("ns", "lxccontainers", "web"), &ct);
    let obj: Arc<LxcBackup> = Arc::new(object(
        "LxcBackup",
        "ns",
        "b1",
        json!({"containerRef": {"name": "web"}, "storage": "local"}),
    ));
    w.api.put(&path("ns", "lxcbackups", "b1"), &*obj);
    let bctx = Arc::new(BackupCtx {
        ctx: w.ctx.clone(),
        store: reflector::store().0,
    });
    passes(15, || {
        let (o, b) = (obj.clone(), bctx.clone());
        async move {
            let _ = lxc_backup::reconcile(o, b).await;
        }
    })
    .await;
    assert_eq!(w.requests("POST /nodes/{node}/vzdump"), 1, "exactly one vzdump");
    let last = w.api.status_writes(&path("ns", "lxcbackups", "b1")).pop().unwrap();
    assert_eq!(last["phase"], "Completed", "{last}");
}

#[tokio::test]
async fn a_persistent_proxmox_failure_that_ends_a_pass_shows_synced_false_naming_it() {
    let w = World::new("ns", 2).await;
    let obj = Arc::new(container("ns", "web"));
    w.api.put(&path("ns", "lxccontainers", "web"), &*obj);
    let rule = FaultRule {
        endpoint: "GET /nodes/{node}/lxc/{vmid}/config".into(),
        rate: 1.0,
        kind: FaultKind::Error,
        message: Some("Permission check failed (/vms/100, VM.Audit)".into()),
        status: Some(403),
    };
    w.sim.set_faults(FaultConfig {
        rules: vec![rule],
        ..Default::default()
    });
    // the first pass creates the container; every pass after it fails reading its config
    let mut failed = 0;
    for _ in 0..20 {
        if super::container::reconcile::reconcile(obj.clone(), w.ctx.clone())
            .await
            .is_err()
        {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(failed >= 3, "the passes fail ({failed})");
    let last = w.api.status_writes(&path("ns", "lxccontainers", "web")).pop().unwrap();
    let synced = condition(&last, "Synced");
    assert_eq!(synced["status"], "False");
    assert_eq!(synced["reason"], "ProxmoxAuthFailed");
    let msg = synced["message"].as_str().unwrap();
    assert!(
        msg.contains("/config") && msg.contains("VM.Audit"),
        "the message names the call and the privilege: {msg}"
    );
    let ready = condition(&last, "Ready");
    assert_eq!(ready["status"], "False", "a failing object is not shown as fine");
}

/// Runs one pass of schedule `obj` (of `plural`) where the fake apiserver serves no
/// LxcContainer list, and checks that it fails showing `Synced=False` naming the call.
async fn a_failing_schedule_pass<K: super::schedule::ScheduleKind>(w: &World, plural: &str, obj: Arc<K>) {
    let name = obj.name_any();
    w.api.put(&path("ns", plural, &name), &*obj);
    // the fake apiserver serves no LxcContainer list: the pass cannot see which to use
    let res = super::schedule::pass::reconcile(obj.clone(), w.ctx.clone()).await;
    assert!(res.is_err(), "the pass fails");
    let last = w
        .api
        .status_writes(&path("ns", plural, &name))
        .pop()
        .expect("a status write");
    let synced = condition(&last, "Synced");
    assert_eq!(synced["status"], "False");
    assert_eq!(synced["reason"], "KubernetesError");
    assert!(
        synced["message"].as_str().unwrap().contains("Kubernetes API"),
        "{synced}"
    );
}

#[tokio::test]
async fn a_schedule_whose_pass_fails_shows_synced_false_naming_the_call() {
    let w = World::new("ns", 2).await;
    let spec = json!({"schedule": "*-*-* *:00:00", "selector": {"matchLabels": {"backup": "yes"}}, "storage": "local"});
    let backups: Arc<crate::crd::LxcBackupSchedule> = Arc::new(object("LxcBackupSchedule", "ns", "nightly", spec));
    a_failing_schedule_pass(&w, "lxcbackupschedules", backups).await;
    let spec = json!({"schedule": "*-*-* *:00:00", "selector": {"matchLabels": {"snap": "yes"}}});
    let snapshots: Arc<crate::crd::LxcSnapshotSchedule> = Arc::new(object("LxcSnapshotSchedule", "ns", "hourly", spec));
    a_failing_schedule_pass(&w, "lxcsnapshotschedules", snapshots).await;
}

fn app_container(ns: &str, name: &str, reference: &str, app: serde_json::Value) -> LxcContainer {
    object(
        "LxcContainer",
        ns,
        name,
        json!({"source": {"image": {"reference": reference, "storage": "local"}}, "rootfs": {"storage": "local-lvm", "size": "2Gi"}, "app": app}),
    )
}

#[tokio::test]
async fn a_watch_cache_that_lags_behind_our_writes_never_pulls_an_image_twice() {
    let w = World::new("ns", 2).await;
    let obj = Arc::new(app_container(
        "ns",
        "web",
        "nginx:1.27",
        json!({"env": [{"name": "MODE", "value": "x"}]}),
    ));
    w.api.put(&path("ns", "lxccontainers", "web"), &*obj);
    passes(30, || {
        let (o, c) = (obj.clone(), w.ctx.clone());
        async move {
            let _ = super::container::reconcile::reconcile(o, c).await;
        }
    })
    .await;
    assert_eq!(
        w.requests("POST /nodes/{node}/storage/{storage}/oci-registry-pull"),
        1,
        "exactly one pull"
    );
    assert_eq!(w.requests("POST /nodes/{node}/lxc"), 1, "exactly one create");
    let last = w.api.status_writes(&path("ns", "lxccontainers", "web")).pop().unwrap();
    assert_eq!(last["image"], "nginx:1.27", "{last}");
    assert_eq!(condition(&last, "Ready")["status"], "True", "{last}");
}

#[tokio::test]
async fn the_operator_refuses_what_the_schema_would_with_proxmoxs_rule_before_any_proxmox_call() {
    // the fake apiserver checks no schema: these reach the operator as an old apiserver's would
    let w = World::new("ns", 2).await;
    let cases = [
        (
            app_container("ns", "notag", "docker.io/library/nginx", json!({})),
            "spec.source.image.reference",
            "a tag is required",
        ),
        (
            app_container("ns", "digest", "nginx@sha256:0123", json!({})),
            "spec.source.image.reference",
            "digests (@sha256:...) are not accepted",
        ),
        (
            app_container(
                "ns",
                "dash",
                "nginx:1.27",
                json!({"env": [{"name": "MY-VAR", "value": "1"}]}),
            ),
            "spec.app.env[0].name",
            "letters, digits and _ only",
        ),
    ];
    for (obj, field, rule) in cases {
        let name = obj.metadata.name.clone().unwrap();
        w.api.put(&path("ns", "lxccontainers", &name), &obj);
        let _ = super::container::reconcile::reconcile(Arc::new(obj), w.ctx.clone()).await;
        let last = w.api.status_writes(&path("ns", "lxccontainers", &name)).pop().unwrap();
        let ready = condition(&last, "Ready");
        assert_eq!(ready["reason"], "InvalidSpec", "{name}: {last}");
        let msg = ready["message"].as_str().unwrap();
        assert!(msg.contains(field) && msg.contains(rule), "{name}: {msg}");
    }
    assert_eq!(w.requests("POST /nodes/{node}/storage/{storage}/oci-registry-pull"), 0);
    assert_eq!(w.requests("POST /nodes/{node}/lxc"), 0);
}

#[test]
fn the_container_cache_keeps_only_our_annotations_and_no_managed_fields() {
    let mut o: crate::crd::LxcContainer = serde_json::from_value(serde_json::json!({
        "apiVersion": "pve.lxc.dev/v1alpha1", "kind": "LxcContainer",
        "metadata": {"name": "a", "namespace": "n",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                     "argocd.argoproj.io/tracking-id": "x", "pve.lxc.dev/keep": "1"},
                     "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"source": {"osTemplate": "local:vztmpl/x.tar.zst"}}}))
    .unwrap();
    crate::controller::kernel::wiring::slim_for_cache(&mut o);
    assert!(o.metadata.managed_fields.is_none());
    let keys: Vec<_> = o.metadata.annotations.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(keys, vec!["pve.lxc.dev/keep".to_string()]);
    o.metadata.annotations = Some([("other".to_string(), "1".to_string())].into());
    crate::controller::kernel::wiring::slim_for_cache(&mut o);
    assert!(o.metadata.annotations.is_none());
}

/// Whether `ns/name` lost our finalizer: a merge patch of its metadata without it.
fn finalizer_removed(w: &World, ns: &str, name: &str) -> bool {
    let p = path(ns, "lxccontainers", name);
    w.api.writes.lock().unwrap().iter().any(|(m, at, body)| {
        m == "PATCH"
            && *at == p
            && body["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|l| !l.iter().any(|f| f == crate::crd::FINALIZER))
    })
}

#[tokio::test]
async fn an_object_deleted_while_proxmox_still_creates_its_container_keeps_its_finalizer_so_no_orphan_is_left() {
    let w = World::new("ns", 2).await;
    // the create a crashed operator started: while it runs, Proxmox holds CT 150 locked
    // `create`, with no tags yet (our tag is in the create call and shows only at the end)
    w.sim.set_clock_speed(2.0);
    let params = crate::pve::LxcCreateParams {
        vmid: 150,
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into(),
        tags: Some("k8s-uid-web".into()),
        ..Default::default()
    };
    w.handle.client.lxc_create("pve1", &params).await.unwrap();
    w.sim.set_clock_speed(50.0);
    let ct = w.sim.container(150).expect("the config exists at once");
    assert_eq!(ct.lock.as_deref(), Some("create"));
    assert!(!ct.config.contains_key("tags"), "{:?}", ct.config);
    // its object, deleted now; status says a create may have been started (the marker)
    let mut obj = container("ns", "web");
    obj.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    obj.metadata.finalizers = Some(vec![crate::crd::FINALIZER.to_string()]);
    obj.status = Some(crate::crd::LxcContainerStatus {
        vmid: Some(150),
        cluster: Some("default".into()),
        node: Some("pve1".into()),
        phase: Some(crate::crd::lxc_container::ContainerPhase::Creating),
        pending_task: Some(Box::new(crate::crd::lxc_container::PendingTask {
            upid: super::kernel::UNKNOWN_UPID.into(),
            operation: "create".into(),
            started_at: None,
        })),
        ..Default::default()
    });
    w.api.put(&path("ns", "lxccontainers", "web"), &obj);
    let obj = Arc::new(obj);
    let action = super::container::reconcile::reconcile(obj.clone(), w.ctx.clone())
        .await
        .unwrap();
    assert!(
        !finalizer_removed(&w, "ns", "web"),
        "a container Proxmox is still creating may be ours: the deletion waits"
    );
    assert_ne!(
        action,
        kube::runtime::controller::Action::await_change(),
        "it looks again"
    );
    // once the create has ended the container carries our tag: the deletion destroys it, and
    // only then does the finalizer go
    for _ in 0..100 {
        if finalizer_removed(&w, "ns", "web") {
            break;
        }
        let _ = super::container::reconcile::reconcile(obj.clone(), w.ctx.clone()).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(finalizer_removed(&w, "ns", "web"), "the deletion ends");
    assert!(w.sim.container(150).is_none(), "no orphan is left in Proxmox");
}
