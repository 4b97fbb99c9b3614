//! The application-container parts of `LxcContainer` (Proxmox VE 9.1 OCI images): the image
//! source, the process settings (`spec.app`) and the image update strategy.

use super::common::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Proxmox's rule for an OCI image reference (`oci-registry-pull`'s `reference` pattern):
/// `[registry[:port]/]repository:tag`, lower-case repository path, a tag of at most 128
/// characters (`\w[\w.-]*`); digests (`@sha256:...`) and references without a tag are refused.
pub const OCI_REFERENCE_PATTERN: &str = r"^(?:(?:[a-zA-Z\d]|[a-zA-Z\d][a-zA-Z\d-]*[a-zA-Z\d])(?:\.(?:[a-zA-Z\d]|[a-zA-Z\d][a-zA-Z\d-]*[a-zA-Z\d]))*(?::\d+)?/)?[a-z\d]+(?:(?:[._]|__|[-]*)[a-z\d]+)*(?:/[a-z\d]+(?:(?:[._]|__|[-]*)[a-z\d]+)*)*:\w[\w.-]{0,127}$";

/// The rule of [`OCI_REFERENCE_PATTERN`] in words, as the operator says it in an `InvalidSpec`
/// condition.
pub const OCI_REFERENCE_RULE: &str = "Proxmox accepts [registry[:port]/]repository:tag only: a tag is required (e.g. docker.io/library/nginx:1.27), digests (@sha256:...) are not accepted, the repository path is lower-case, the tag is at most 128 characters of letters, digits, _ . -";

/// An OCI image pulled into Proxmox storage and used as the container's root filesystem
/// (an "application container", a technology preview of Proxmox VE 9.1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSource {
    /// The image, `[registry[:port]/]repository:tag`, e.g. `docker.io/library/nginx:1.27`.
    /// Proxmox accepts a tag only: references without a tag and digests (`@sha256:...`) are
    /// refused. A new reference is an image update, handled per `spec.updateStrategy`. The image is
    /// pulled once per node and storage (private registries need the node's own skopeo
    /// credentials: the API takes none).
    #[schemars(length(min = 3, max = 255), regex(pattern = OCI_REFERENCE_PATTERN))]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "!self.contains('@') && self.matches(':[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')", "message": "a tag is required, e.g. `docker.io/library/nginx:1.27` (digests are refused)"}]))]
    pub reference: String,
    /// File-based storage with content `vztmpl` the image is pulled into.
    #[serde(default = "default_image_storage")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub storage: String,
}

fn default_image_storage() -> String {
    "local".into()
}

/// The process an application container runs, like a Pod container's `command`, `args` and
/// `env`. Mapped to Proxmox's `entrypoint` and `env`, set after the create (Proxmox takes both
/// from the image at create) and before the first start. A Pod's `workingDir` and user cannot
/// be set through the Proxmox API (they are root-only raw `lxc.init.*` keys): the image's apply.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppSpec {
    /// Replaces the image's entrypoint and command (Proxmox stores both as one `entrypoint`
    /// string; each item is shell-quoted). Omitted: the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 512), regex(pattern = SINGLE_LINE_PATTERN)))]
    pub command: Vec<String>,
    /// Arguments after `command`. Needs `command`: Proxmox keeps the image's entrypoint and
    /// command as one string, so arguments alone cannot replace the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 512), regex(pattern = SINGLE_LINE_PATTERN)))]
    pub args: Vec<String>,
    /// Environment variables, set over the image's (a name given here replaces the image's
    /// value; the image's other variables stay). Names match `\w+` (letters, digits, `_`:
    /// Proxmox refuses `.` and `-`); values have no line breaks or other control characters
    /// except tabs. Removing an entry does not remove the variable from the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub env: Vec<AppEnvVar>,
    /// What happens when the process settings change while the container runs: `Never` (the
    /// default) leaves it running with a `PendingRestart` condition; `OnChange` restarts it.
    #[serde(default)]
    pub restart_policy: AppRestartPolicy,
    /// What happens when the process ends by itself (the container stops) while `spec.state`
    /// is `Running`: `Restart` (the default) starts it again and counts it in
    /// `status.restartCount`; `Stay` leaves it stopped (a job that ran to completion).
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_exit: AppExitPolicy,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What happens when an app container's process ends by itself.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AppExitPolicy {
    /// Start it again.
    #[default]
    Restart,
    /// Leave it stopped.
    Stay,
}

/// One environment variable: a `value`, or `valueFrom` a Secret or ConfigMap key of the same
/// namespace. Values from Secrets are never copied into status, Events or logs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["value"]}, {"required": ["valueFrom"]}]))]
pub struct AppEnvVar {
    /// Variable name, `\w+` (Proxmox's rule).
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^\w+$"))]
    pub name: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), regex(pattern = r"^[^\x00-\x08\x0a-\x1f\x7f]*$"))]
    pub value: Option<String>,
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<AppEnvVarSource>,
}

/// The source of an environment variable's value: exactly one of `secretKeyRef` or
/// `configMapKeyRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["secretKeyRef"]}, {"required": ["configMapKeyRef"]}]))]
pub struct AppEnvVarSource {
    /// A key of a Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeySelector>,
    /// A key of a ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeySelector>,
}

/// A key of a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySelector {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
    /// The key.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
    /// Leave the variable out (instead of waiting) when the object or key does not exist.
    #[serde(default)]
    pub optional: bool,
}

/// What happens when `spec.app` (or a value it reads) changes while the container runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AppRestartPolicy {
    /// Keep it running; the `PendingRestart` condition says what waits for a restart.
    #[default]
    Never,
    /// Restart the container (a Proxmox reboot) to apply the change.
    OnChange,
}

/// How a change of `spec.source.image.reference` (a new tag) is rolled out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdateStrategy {
    /// The new image is pulled first; then the container is stopped, destroyed and created again
    /// from it with the same vmid, node, MAC addresses and (static) IPs and the same spec; its old
    /// root filesystem is gone, as a Pod's writable layer is. Refused (with a condition, nothing
    /// changed) while the container has mount points or detached volumes — Proxmox destroys every
    /// volume of a container it destroys — or protection on.
    #[default]
    Recreate,
    /// Refuse the change with a condition; the container keeps running its image.
    Refuse,
}

/// The container's console (Proxmox `cmode` and `tty`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Console {
    /// What `pct console` and the GUI console attach to. Proxmox sets `Console` for containers
    /// from OCI images (an entrypoint other than `/sbin/init` breaks the tty mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ConsoleMode>,
    /// Number of ttys available to the container (0–6; Proxmox default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 6))]
    pub ttys: Option<u8>,
}

/// Console mode (Proxmox `cmode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConsoleMode {
    /// Open one of the container's ttys (Proxmox's default).
    Tty,
    /// Attach to `/dev/console` (an application container's process output).
    Console,
    /// Run a shell inside the container, without login.
    Shell,
}

/// A time zone: `host`, `UTC` or a zone of `/usr/share/zoneinfo` (e.g. `Europe/Berlin`).
pub const TIMEZONE_PATTERN: &str = r"^(host|UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2})$";
