use super::*;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec, ResourceRequirements};

fn vnode() -> Vnode {
    Vnode {
        cluster: "prod".into(),
        pve_node: "pve2".into(),
        ready: true,
        spec: Default::default(),
    }
}

fn pod(containers: Vec<Container>) -> Pod {
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("apps".into()),
            uid: Some("uid-1".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
        status: None,
    }
}

fn container(image: &str) -> Container {
    Container {
        name: "web".into(),
        image: Some(image.into()),
        ..Default::default()
    }
}

#[test]
fn short_image_names_are_spelled_out_as_a_runtime_reads_them() {
    assert_eq!(normalize_image("nginx").unwrap(), "docker.io/library/nginx:latest");
    assert_eq!(normalize_image("nginx:1.27").unwrap(), "docker.io/library/nginx:1.27");
    assert_eq!(normalize_image("bitnami/redis:7").unwrap(), "docker.io/bitnami/redis:7");
    assert_eq!(normalize_image("ghcr.io/a/b:2").unwrap(), "ghcr.io/a/b:2");
    assert_eq!(normalize_image("localhost:5000/x").unwrap(), "localhost:5000/x:latest");
    let digest = normalize_image("nginx@sha256:abcd").unwrap_err();
    assert_eq!(digest.reason, "InvalidImageName");
    assert!(digest.message.contains("by tag only"), "{}", digest.message);
}

#[test]
fn a_pod_with_two_containers_is_refused_naming_them() {
    let r = translate(&pod(vec![container("a"), container("b")]), &vnode()).unwrap_err();
    assert_eq!(r.reason, "MultipleContainersUnsupported");
    assert!(r.message.contains("2: web, web"), "{}", r.message);
}

#[test]
fn limits_become_cores_a_cpu_limit_and_memory_and_the_node_is_pinned() {
    let mut c = container("nginx:1.27");
    c.resources = Some(ResourceRequirements {
        limits: Some(
            [
                ("cpu".to_string(), Quantity("1500m".into())),
                ("memory".to_string(), Quantity("1Gi".into())),
            ]
            .into(),
        ),
        requests: Some([("ephemeral-storage".to_string(), Quantity("10Gi".into()))].into()),
        ..Default::default()
    });
    let t = translate(&pod(vec![c]), &vnode()).unwrap();
    let r = t.spec.resources.unwrap();
    assert_eq!(r.cores, Some(2));
    assert_eq!(r.cpu_limit.as_deref(), Some("1.50"));
    assert_eq!(r.memory.unwrap().0, "1024Mi");
    assert_eq!(t.spec.rootfs.unwrap().size.0, "10Gi");
    assert_eq!(t.spec.node.as_deref(), Some("pve2"));
    assert_eq!(t.spec.cluster_ref.unwrap().name, "prod");
    assert_eq!(t.spec.tags, vec![POD_TAG.to_string()]);
    assert!(t.spec.network[0].host_managed == Some(true));
}

#[test]
fn without_resources_a_pod_gets_one_core_512_mib_and_4_gib() {
    let t = translate(&pod(vec![container("nginx")]), &vnode()).unwrap();
    let r = t.spec.resources.unwrap();
    assert_eq!((r.cores, r.cpu_limit.as_deref()), (Some(1), None));
    assert_eq!(r.memory.unwrap().0, "512Mi");
    assert_eq!(t.spec.rootfs.unwrap().size.0, "4Gi");
}

#[test]
fn the_downward_api_is_resolved_and_secret_references_are_kept_as_references() {
    let mut c = container("nginx:1.27");
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    c.env = Some(vec![
        EnvVar {
            name: "NS".into(),
            value_from: Some(field("metadata.namespace")),
            ..Default::default()
        },
        EnvVar {
            name: "PW".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                    name: "db".into(),
                    key: "password".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    let app = translate(&pod(vec![c.clone()]), &vnode()).unwrap().spec.app.unwrap();
    assert_eq!(app.env[0].value.as_deref(), Some("apps"));
    assert_eq!(app.env[1].value, None);
    assert_eq!(
        app.env[1]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "db"
    );
    c.env = Some(vec![EnvVar {
        name: "IP".into(),
        value_from: Some(field("status.podIP")),
        ..Default::default()
    }]);
    let r = translate(&pod(vec![c]), &vnode()).unwrap_err();
    assert_eq!(r.reason, "EnvFieldUnsupported");
}

#[test]
fn args_without_command_host_ports_and_volumes_are_refused() {
    let mut c = container("nginx");
    c.args = Some(vec!["-g".into()]);
    assert_eq!(
        translate(&pod(vec![c]), &vnode()).unwrap_err().reason,
        "ArgsWithoutCommand"
    );
    let mut c = container("nginx");
    c.ports = Some(vec![k8s_openapi::api::core::v1::ContainerPort {
        container_port: 80,
        host_port: Some(8080),
        ..Default::default()
    }]);
    assert_eq!(
        translate(&pod(vec![c]), &vnode()).unwrap_err().reason,
        "HostPortUnsupported"
    );
    let mut p = pod(vec![container("nginx")]);
    p.spec.as_mut().unwrap().volumes = Some(vec![k8s_openapi::api::core::v1::Volume {
        name: "data".into(),
        empty_dir: Some(Default::default()),
        ..Default::default()
    }]);
    assert_eq!(translate(&p, &vnode()).unwrap_err().reason, "VolumesUnsupported");
}

/// The ServiceAccount volume as the apiserver's admission adds it: `secret` (up to 1.20) or
/// `projected` with a token source (1.21+), named `name`, mounted at `path`.
fn with_token_volume(projected: bool, name: &str, path: &str) -> Pod {
    use k8s_openapi::api::core::v1::{
        ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    };
    let mut c = container("nginx");
    c.volume_mounts = Some(vec![VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    }]);
    let mut p = pod(vec![c]);
    let mut v = Volume {
        name: name.into(),
        ..Default::default()
    };
    if projected {
        v.projected = Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    path: "token".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
    } else {
        v.secret = Some(SecretVolumeSource {
            secret_name: Some(name.into()),
            ..Default::default()
        });
    }
    p.spec.as_mut().unwrap().volumes = Some(vec![v]);
    p
}

#[test]
fn the_service_account_token_volume_is_recognised_by_its_source_and_mount_path_in_either_form() {
    let sa = TOKEN_MOUNT_PATH;
    // 1.20: a Secret `<sa>-token-<rand>`; 1.21+: projected `kube-api-access-<rand>`; any name
    for (projected, name) in [
        (false, "default-token-7xk2p"),
        (true, "kube-api-access-x1"),
        (false, "creds"),
    ] {
        let t = translate(&with_token_volume(projected, name, sa), &vnode());
        let t = t.unwrap_or_else(|r| panic!("{name}: {r:?}"));
        assert!(
            t.ignored.is_empty(),
            "the token mount is not reported as ignored: {:?}",
            t.ignored
        );
    }
    // the same sources mounted elsewhere are the user's volumes, which are not supported
    for projected in [false, true] {
        let r = translate(
            &with_token_volume(projected, "kube-api-access-x1", "/etc/creds"),
            &vnode(),
        );
        assert_eq!(r.unwrap_err().reason, "VolumesUnsupported");
    }
}

#[test]
fn a_daemon_sets_pod_is_not_run_and_says_how_to_keep_it_off() {
    let mut p = pod(vec![container("fluent-bit")]);
    p.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: "agent".into(),
        uid: "u".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    let r = translate(&p, &vnode()).unwrap_err();
    assert_eq!(r.reason, "DaemonSetUnsupported");
    assert!(r.message.contains("NotIn [virtual-kubelet]"), "{}", r.message);
}

#[test]
fn probes_and_working_dir_are_reported_as_not_applied() {
    let mut c = container("nginx");
    c.working_dir = Some("/srv".into());
    c.readiness_probe = Some(Default::default());
    let t = translate(&pod(vec![c]), &vnode()).unwrap();
    assert_eq!(
        t.ignored,
        vec!["spec.containers[0].readinessProbe", "spec.containers[0].workingDir"]
    );
}

#[test]
fn restart_policy_never_leaves_an_exited_app_stopped() {
    let mut p = pod(vec![container("nginx")]);
    p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
    let app = translate(&p, &vnode()).unwrap().spec.app.unwrap();
    assert_eq!(app.on_exit, AppExitPolicy::Stay);
    let always = translate(&pod(vec![container("nginx")]), &vnode())
        .unwrap()
        .spec
        .app
        .unwrap();
    assert_eq!(always.on_exit, AppExitPolicy::Restart);
}

#[test]
fn template_images_name_one_of_our_templates() {
    let t = translate(&pod(vec![container("pve.lxc.dev/template/debian-12")]), &vnode()).unwrap();
    assert_eq!(t.spec.source.template.unwrap().name, "debian-12");
    assert!(t.spec.app.is_none());
}

#[test]
fn long_pod_names_get_a_short_stable_child_name() {
    assert_eq!(child_name("web"), "pod-web");
    let long = "a".repeat(120);
    let c = child_name(&long);
    assert!(c.len() <= 63, "{c}");
    assert_eq!(c, child_name(&long));
    assert_ne!(c, child_name(&format!("{long}b")));
}

#[test]
fn a_command_run_by_a_shell_goes_under_the_exit_status_wrapper_and_others_stay_as_they_are() {
    let mut c = container("alpine:3.20");
    c.command = Some(vec!["/bin/sh".into(), "-c".into()]);
    c.args = Some(vec!["exit 3".into()]);
    let app = translate(&pod(vec![c.clone()]), &vnode()).unwrap().spec.app.unwrap();
    assert_eq!(
        app.command,
        super::super::exitcode::wrap("/bin/sh", &["/bin/sh".into(), "-c".into()], &["exit 3".into()])
    );
    assert!(app.args.is_empty());
    // no shell known: the command as it is (the Pod will say its exit code is unknown)
    c.command = Some(vec!["/app/run-once".into()]);
    let app = translate(&pod(vec![c.clone()]), &vnode()).unwrap().spec.app.unwrap();
    assert_eq!(app.command, ["/app/run-once"]);
    assert_eq!(app.args, ["exit 3"]);
    // the Pod says the image has one
    let mut p = pod(vec![c]);
    p.metadata.annotations = Some(
        [(
            super::super::exitcode::SHELL_ANNOTATION.to_string(),
            "/bin/sh".to_string(),
        )]
        .into(),
    );
    let app = translate(&p, &vnode()).unwrap().spec.app.unwrap();
    assert_eq!(app.command[0], "/bin/sh");
    assert_eq!(&app.command[4..], ["/app/run-once", "exit 3"]);
}
