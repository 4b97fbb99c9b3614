//! A Pod as an `LxcContainer` (pure): what maps, and a refusal naming what does not.

use super::{Vnode, POD_TAG};
use crate::crd::app::{AppEnvVar, AppEnvVarSource, AppExitPolicy, AppSpec, ImageSource, KeySelector};
use crate::crd::lxc_container::{
    ContainerSource, Ipv4Config, NetworkInterface, PowerState, Resources, RootFs, TemplateSource,
};
use crate::crd::{ByteQuantity, ClusterRef, LxcContainerSpec};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A Pod that cannot run as a container: the Pod's `status.reason` and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// CamelCase reason, e.g. `MultipleContainersUnsupported`.
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        message: message.into(),
    }
}

/// The image prefix that names one of our `LxcTemplate`s instead of an OCI image.
pub const TEMPLATE_IMAGE_PREFIX: &str = "pve.lxc.dev/template/";

/// A Pod's container image as Proxmox needs it: registry and repository spelled out
/// (`nginx` → `docker.io/library/nginx:latest`, as a container runtime reads it). Digests are
/// refused: Proxmox pulls by tag only.
pub fn normalize_image(image: &str) -> Result<String, Refusal> {
    let image = image.trim();
    if image.is_empty() {
        return Err(refuse("InvalidImageName", "spec.containers[0].image is empty"));
    }
    if image.contains('@') {
        return Err(refuse(
            "InvalidImageName",
            format!("image {image:?}: Proxmox pulls images by tag only, not by digest; name a tag"),
        ));
    }
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let (registry, path) = if !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        (first.to_string(), rest.to_string())
    } else if first.is_empty() {
        ("docker.io".to_string(), format!("library/{rest}"))
    } else {
        ("docker.io".to_string(), image.to_string())
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    let path = if last.contains(':') {
        path
    } else {
        format!("{path}:latest")
    };
    Ok(format!("{registry}/{path}"))
}

/// The child `LxcContainer`'s name for the Pod `pod` (`pod-<name>`, shortened with a hash when
/// the Pod's name is long).
pub fn child_name(pod: &str) -> String {
    if pod.len() <= 59 {
        return format!("pod-{pod}");
    }
    let hash = pod.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let cut: String = pod.chars().take(50).collect();
    format!("pod-{}-{:08x}", cut.trim_end_matches(['-', '.']), hash as u32)
}

/// A Kubernetes quantity as a number (`500m` → 0.5, `2Gi` → 2147483648).
pub fn quantity(q: &Quantity) -> Option<f64> {
    let s = q.0.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some(n * mult)
}

/// The limit of `resource` (else its request).
fn resource(c: &Container, resource: &str) -> Option<f64> {
    let r = c.resources.as_ref()?;
    r.limits
        .as_ref()
        .and_then(|l| l.get(resource))
        .or_else(|| r.requests.as_ref().and_then(|l| l.get(resource)))
        .and_then(quantity)
}

/// The memory (MiB) a Pod's container gets: its limit, else its request, else 512 MiB; at
/// least Proxmox's 16.
pub fn memory_mib(c: &Container) -> u64 {
    (resource(c, "memory").unwrap_or(512.0 * 1048576.0) / 1048576.0)
        .ceil()
        .max(16.0) as u64
}

/// What the translation says besides the spec: fields that were not mapped, for an Event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// The container's spec.
    pub spec: LxcContainerSpec,
    /// Fields of the Pod that have no Proxmox counterpart and are not applied.
    pub ignored: Vec<String>,
}

/// Where the ServiceAccount admission plugin mounts a Pod's API credentials.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Whether `v` is the service-account token volume the apiserver's admission adds (not mountable
/// in an LXC container: it is left out), recognised by what it is, never by its name: a `secret`
/// volume (the token Secret of Kubernetes up to 1.20) or a `projected` volume with a
/// `serviceAccountToken` source (1.21+), mounted by a container at [`TOKEN_MOUNT_PATH`].
pub fn is_token_volume(v: &k8s_openapi::api::core::v1::Volume, spec: &k8s_openapi::api::core::v1::PodSpec) -> bool {
    let token_source = v.secret.is_some()
        || v.projected
            .as_ref()
            .is_some_and(|p| p.sources.iter().flatten().any(|s| s.service_account_token.is_some()));
    let mounted_as_token = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .filter(|m| m.name == v.name)
        .any(|m| m.mount_path.trim_end_matches('/') == TOKEN_MOUNT_PATH);
    token_source && mounted_as_token
}

/// Whether the Pod was made by a DaemonSet (its controller owner).
fn made_by_daemon_set(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.kind == "DaemonSet")
}

/// The `LxcContainer` a Pod on virtual node `vnode` runs as.
pub fn translate(pod: &Pod, vnode: &Vnode) -> Result<Translation, Refusal> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| refuse("InvalidPod", "the Pod has no spec"))?;
    let mut ignored = Vec::new();
    if made_by_daemon_set(pod) {
        return Err(refuse(
            "DaemonSetUnsupported",
            "a DaemonSet's Pod is not run on a Proxmox virtual node (it would start one LXC container per Proxmox node for an agent meant for a kubelet's host); keep the DaemonSet off virtual nodes with a node affinity `type NotIn [virtual-kubelet]`",
        ));
    }
    if spec.containers.len() != 1 {
        let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
        return Err(refuse(
            "MultipleContainersUnsupported",
            format!(
                "a Pod on a Proxmox virtual node runs exactly one container (one LXC container); spec.containers has {}: {}",
                names.len(),
                names.join(", ")
            ),
        ));
    }
    if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
        return Err(refuse(
            "InitContainersUnsupported",
            "spec.initContainers: init containers cannot run before an LXC container's entrypoint",
        ));
    }
    if spec.host_network == Some(true) {
        return Err(refuse(
            "HostNetworkUnsupported",
            "spec.hostNetwork: a Proxmox container has its own network interface on the bridge",
        ));
    }
    for v in spec.volumes.iter().flatten() {
        if !is_token_volume(v, spec) {
            return Err(refuse(
                "VolumesUnsupported",
                format!(
                    "spec.volumes[{}]: volumes are not mounted in Proxmox containers yet (only the service-account token volume is accepted, and left out)",
                    v.name
                ),
            ));
        }
    }
    let c = &spec.containers[0];
    if let Some(p) = c.ports.iter().flatten().find(|p| p.host_port.is_some()) {
        return Err(refuse(
            "HostPortUnsupported",
            format!(
                "spec.containers[0].ports: hostPort {} cannot be mapped (the container has its own IP on the bridge)",
                p.host_port.unwrap_or_default()
            ),
        ));
    }
    if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(refuse(
            "EnvFromUnsupported",
            "spec.containers[0].envFrom: list the variables one by one in env (with valueFrom)",
        ));
    }
    for (field, present) in [
        ("livenessProbe", c.liveness_probe.is_some()),
        ("readinessProbe", c.readiness_probe.is_some()),
        ("startupProbe", c.startup_probe.is_some()),
        ("workingDir", c.working_dir.is_some()),
        (
            "securityContext.runAsUser",
            c.security_context.as_ref().and_then(|s| s.run_as_user).is_some(),
        ),
        (
            "volumeMounts",
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path.trim_end_matches('/') != TOKEN_MOUNT_PATH),
        ),
    ] {
        if present {
            ignored.push(format!("spec.containers[0].{field}"));
        }
    }
    let image = c.image.clone().unwrap_or_default();
    let source = match image.strip_prefix(TEMPLATE_IMAGE_PREFIX) {
        Some(name) => ContainerSource {
            template: Some(TemplateSource {
                name: name.to_string(),
                full: false,
            }),
            ..Default::default()
        },
        None => ContainerSource {
            image: Some(ImageSource {
                reference: normalize_image(&image)?,
                storage: vnode.spec.image_storage.clone().unwrap_or_else(|| "local".into()),
            }),
            ..Default::default()
        },
    };
    let meta = &pod.metadata;
    let env = env(c, pod)?;
    let (command, args) = (
        c.command.clone().unwrap_or_default(),
        c.args.clone().unwrap_or_default(),
    );
    if command.is_empty() && !args.is_empty() {
        return Err(refuse(
            "ArgsWithoutCommand",
            "spec.containers[0].args needs command too: Proxmox keeps the image's entrypoint and command as one string, so arguments alone cannot replace the command",
        ));
    }
    // where the image has a shell, the command runs under the wrapper that prints its exit status
    let (command, args) = match super::exitcode::shell_of(pod, &command) {
        Some(shell) if !command.is_empty() => (super::exitcode::wrap(&shell, &command, &args), Vec::new()),
        _ => (command, args),
    };
    // Proxmox reports no exit code: OnFailure cannot tell a failure from a success, and is Never
    let on_exit = match spec.restart_policy.as_deref() {
        Some("Never" | "OnFailure") => AppExitPolicy::Stay,
        _ => AppExitPolicy::Restart,
    };
    let app = (source.image.is_some()).then(|| AppSpec {
        command,
        args,
        env,
        on_exit,
        ..Default::default()
    });
    let cpu = resource(c, "cpu").unwrap_or(1.0).max(0.01);
    let memory_mib = memory_mib(c);
    let disk_gib = (resource(c, "ephemeral-storage").unwrap_or(4.0 * 1073741824.0) / 1073741824.0)
        .ceil()
        .max(1.0) as u64;
    let hostname: String = spec
        .hostname
        .clone()
        .or_else(|| meta.name.clone())
        .unwrap_or_default()
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    let cores = cpu.ceil() as u32;
    Ok(Translation {
        spec: LxcContainerSpec {
            cluster_ref: Some(ClusterRef {
                name: vnode.cluster.clone(),
            }),
            node: Some(vnode.pve_node.clone()),
            source,
            app: app.map(Box::new),
            hostname: Some(hostname),
            description: Some(format!(
                "Pod {}/{} (uid {})",
                meta.namespace.clone().unwrap_or_default(),
                meta.name.clone().unwrap_or_default(),
                meta.uid.clone().unwrap_or_default()
            )),
            tags: vec![POD_TAG.into()],
            unprivileged: true,
            resources: Some(Resources {
                cores: Some(cores),
                cpu_limit: (cpu < f64::from(cores)).then(|| format!("{:.2}", cpu)),
                memory: Some(ByteQuantity(format!("{memory_mib}Mi"))),
                swap: Some(ByteQuantity("0".into())),
                ..Default::default()
            }),
            rootfs: Some(Box::new(RootFs {
                storage: vnode.spec.storage.clone().unwrap_or_else(|| "local-lvm".into()),
                size: ByteQuantity(format!("{disk_gib}Gi")),
            })),
            network: vec![NetworkInterface {
                name: "eth0".into(),
                bridge: vnode.spec.bridge.clone().unwrap_or_else(|| "vmbr0".into()),
                ipv4: Some(Ipv4Config {
                    dhcp: Some(true),
                    ..Default::default()
                }),
                host_managed: Some(true),
                ..Default::default()
            }],
            state: PowerState::Running,
            ..Default::default()
        },
        ignored,
    })
}

/// The container's env: values, Secret and ConfigMap keys as they are, the downward API's
/// Pod fields resolved now.
fn env(c: &Container, pod: &Pod) -> Result<Vec<AppEnvVar>, Refusal> {
    let mut out = Vec::new();
    for e in c.env.iter().flatten() {
        let plain = |v: Option<String>| AppEnvVar {
            name: e.name.clone(),
            value: v,
            value_from: None,
        };
        let Some(from) = &e.value_from else {
            out.push(plain(Some(e.value.clone().unwrap_or_default())));
            continue;
        };
        if let Some(s) = &from.secret_key_ref {
            out.push(AppEnvVar {
                name: e.name.clone(),
                value: None,
                value_from: Some(AppEnvVarSource {
                    secret_key_ref: Some(KeySelector {
                        name: s.name.clone(),
                        key: s.key.clone(),
                        optional: s.optional.unwrap_or(false),
                    }),
                    config_map_key_ref: None,
                }),
            });
        } else if let Some(s) = &from.config_map_key_ref {
            out.push(AppEnvVar {
                name: e.name.clone(),
                value: None,
                value_from: Some(AppEnvVarSource {
                    secret_key_ref: None,
                    config_map_key_ref: Some(KeySelector {
                        name: s.name.clone(),
                        key: s.key.clone(),
                        optional: s.optional.unwrap_or(false),
                    }),
                }),
            });
        } else if let Some(f) = &from.field_ref {
            let m = &pod.metadata;
            let v = match f.field_path.as_str() {
                "metadata.name" => m.name.clone(),
                "metadata.namespace" => m.namespace.clone(),
                "metadata.uid" => m.uid.clone(),
                "spec.nodeName" => pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                "spec.serviceAccountName" => pod.spec.as_ref().and_then(|s| s.service_account_name.clone()),
                p if p.starts_with("metadata.labels['") => p
                    .strip_prefix("metadata.labels['")
                    .and_then(|k| k.strip_suffix("']"))
                    .and_then(|k| m.labels.as_ref()?.get(k).cloned()),
                p if p.starts_with("metadata.annotations['") => p
                    .strip_prefix("metadata.annotations['")
                    .and_then(|k| k.strip_suffix("']"))
                    .and_then(|k| m.annotations.as_ref()?.get(k).cloned()),
                other => {
                    return Err(refuse(
                        "EnvFieldUnsupported",
                        format!(
                            "env {}: fieldRef {other} is not known before the container starts (metadata.name, metadata.namespace, metadata.uid, metadata.labels, metadata.annotations, spec.nodeName and spec.serviceAccountName are)",
                            e.name
                        ),
                    ))
                }
            };
            out.push(plain(Some(v.unwrap_or_default())));
        } else {
            return Err(refuse(
                "EnvFieldUnsupported",
                format!("env {}: resourceFieldRef is not supported", e.name),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "translate_tests.rs"]
mod tests;
