//! `LxcTemplate`: a Proxmox container template, the clone source for containers.

use super::common::*;
use super::lxc_container::{Features, NetworkInterface, PendingTask, Resources, RootFs};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A container template: an OS image made into a container and converted with Proxmox `template`.
/// A template is immutable once made; changing its spec builds a new one.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "pve.lxc.dev",
    version = "v1alpha1",
    kind = "LxcTemplate",
    namespaced,
    doc = "A Proxmox VE container template (an OS image made into a container and converted), the clone source for LxcContainers.",
    shortname = "lxct",
    category = "proxmox",
    status = "LxcTemplateStatus",
    printcolumn = r#"{"name":"VMID","type":"integer","jsonPath":".status.vmid"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".status.node"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Image","type":"string","priority":1,"jsonPath":".status.osTemplate"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LxcTemplateSpec {
    /// The `ProxmoxCluster` (cluster-scoped); when omitted, the one annotated
    /// `pve.lxc.dev/is-default-cluster: "true"`, else the one named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ref: Option<ClusterRef>,
    /// Node to build the template on; placement picks one when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = NODE_PATTERN))]
    pub node: Option<String>,
    /// vmid of the template; allocated when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 999_999_999))]
    pub vmid: Option<u32>,
    /// The OS image: exactly one of `appliance`, `url` or `volid`.
    pub image: TemplateImage,
    /// Storage that holds the image (content `vztmpl`). Default `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = STORAGE_PATTERN))]
    pub image_storage: Option<String>,
    /// CPU and memory baked into the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The template's root disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootFs>,
    /// Network interfaces baked into the template; names must be unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub network: Vec<NetworkInterface>,
    /// Container features baked into the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// Build an unprivileged template (default true).
    #[serde(default = "default_true")]
    pub unprivileged: bool,
    /// Description shown in Proxmox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub description: Option<String>,
    /// Proxmox tags (the operator adds its identity tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64), regex(pattern = TAG_PATTERN)))]
    pub tags: Vec<String>,
    /// What happens to the Proxmox template when this object is deleted: `Delete` (default) or
    /// `Retain`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The OS image of a template. Exactly one field must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("oneOf" = [{"required": ["appliance"]}, {"required": ["url"]}, {"required": ["volid"]}, {"required": ["oci"]}]))]
pub struct TemplateImage {
    /// An entry of the node's appliance index (`pveam available`), e.g. `debian-12-standard`;
    /// downloaded to `imageStorage` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]*$"))]
    pub appliance: Option<String>,
    /// Download an image from a URL (Proxmox storage `download-url`), checked against a checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<ImageUrl>,
    /// An image already present, e.g. `local:vztmpl/alpine-3.20-default_20240908_amd64.tar.xz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255), regex(pattern = VZTMPL_VOLID_PATTERN))]
    pub volid: Option<String>,
    /// An OCI image, `[registry[:port]/]repository:tag` (a tag is required, digests are refused:
    /// Proxmox's rule), pulled to `imageStorage` (a file-based storage; the token needs
    /// `Sys.AccessNetwork`). Linked clones of the template share one copy of the image; Proxmox
    /// sets the template's `entrypoint` and `env` from the image, and clones may override them
    /// with `spec.app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 255), regex(pattern = super::app::OCI_REFERENCE_PATTERN))]
    pub oci: Option<String>,
}

/// An image downloaded from a URL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageUrl {
    /// HTTP(S) URL of a `.tar.gz`, `.tar.xz` or `.tar.zst` root filesystem.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s,;]+$"))]
    pub url: String,
    /// Expected checksum as `ALGORITHM:HEX`, e.g. `sha256:...`.
    #[schemars(
        length(max = 135),
        regex(pattern = r"^(md5|sha1|sha224|sha256|sha384|sha512):[0-9a-fA-F]{32,128}$")
    )]
    pub checksum: String,
    /// File name to store it as; taken from the URL when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 255),
        regex(pattern = r"^[a-zA-Z0-9_.+-]+\.(tar\.gz|tar\.xz|tar\.zst|tar\.bz2|tgz|txz|tar)$")
    )]
    pub file_name: Option<String>,
}

/// Observed state of a template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LxcTemplateStatus {
    /// vmid of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
    /// Node holding the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Volume id of the OS image the template was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_template: Option<String>,
    /// Phase: Pending, Downloading, Building, Ready, Failed or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Fingerprint of the spec fields the current template was built from; when the spec no
    /// longer matches it, a new template is built and the current one moves to `previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_hash: Option<String>,
    /// The Proxmox task in flight for this template (at most one): a download, the create, the
    /// conversion or a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_task: Option<PendingTask>,
    /// Earlier templates kept while containers still clone from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousTemplate>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// An earlier build of a template.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousTemplate {
    /// Its vmid.
    pub vmid: u32,
    /// Its node.
    pub node: String,
}
