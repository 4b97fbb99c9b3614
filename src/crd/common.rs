//! Types shared by several kinds: references, conditions, quantities and validation patterns.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The API group of every kind.
pub const GROUP: &str = "pve.lxc.dev";
/// The API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// Prefix of the identity tag put on every container the operator creates: `k8s-<metadata.uid>`.
pub const IDENTITY_TAG_PREFIX: &str = "k8s-";
/// The finalizer the operator puts on resources that own Proxmox state.
pub const FINALIZER: &str = "pve.lxc.dev/cleanup";

/// DNS-1123 subdomain (names of Kubernetes objects).
pub const K8S_NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A Proxmox node name (`pve-node`).
pub const NODE_PATTERN: &str = r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$";
/// A Proxmox storage id (`pve-storage-id`).
pub const STORAGE_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_.-]*[a-zA-Z0-9]$";
/// A DNS host name (`dns-name`); at most 255 characters overall.
pub const HOSTNAME_PATTERN: &str =
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$";
/// A Linux bridge name (at most 15 characters, no separators).
pub const BRIDGE_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$";
/// A Proxmox tag (`pve-tag`).
pub const TAG_PATTERN: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9_+.-]*$";
/// A Kubernetes label key (optional DNS prefix, then a name).
pub const LABEL_KEY_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
/// Proxmox pool ids.
pub const POOL_PATTERN: &str = r"^[a-zA-Z0-9_.-]+$";
/// A unicast-looking MAC address `XX:XX:XX:XX:XX:XX`.
pub const MAC_PATTERN: &str = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$";
/// An IPv4 address.
pub const IPV4_PATTERN: &str =
    r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
/// An IPv4 address with prefix length (CIDR).
pub const IPV4_CIDR_PATTERN: &str = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])/([0-9]|[12][0-9]|3[0-2])$";
/// An IPv6 address (shape only; the operator parses it fully).
pub const IPV6_PATTERN: &str = r"^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$";
/// An IPv6 address with prefix length (shape only; the operator parses it fully).
pub const IPV6_CIDR_PATTERN: &str = r"^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*/([0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$";
/// An IPv4 or IPv6 address.
pub const IP_PATTERN: &str = r"^([0-9.]+|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)$";
/// A container template volume id, e.g. `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`.
pub const VZTMPL_VOLID_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_.-]*:vztmpl/[a-zA-Z0-9_.+-]+$";
/// A backup archive volume id, e.g. `nfs-backup:backup/vzdump-lxc-100-2026_01_01-02_00_00.tar.zst`
/// or a PBS id `pbs:backup/ct/100/2026-01-01T02:00:00Z`.
pub const BACKUP_VOLID_PATTERN: &str = r"^[a-zA-Z][a-zA-Z0-9_.-]*:backup/[a-zA-Z0-9_:+/-]+(\.[a-zA-Z0-9_:+/-]+)*$";
/// An absolute path inside the container, without property-string separators.
pub const MOUNT_PATH_PATTERN: &str = r"^/[^,;=\s]*$";
/// One line of text: no line breaks or other control characters.
pub const SINGLE_LINE_PATTERN: &str = r"^[^\x00-\x1f\x7f]*$";
/// A non-negative Kubernetes quantity without exponent (`512Mi`, `1Gi`, `8G`, `1073741824`).
pub const QUANTITY_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";
/// A duration like `60s`, `5m`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// `resyncInterval`: a duration in whole seconds, minutes or hours (no `ms`), e.g. `60s`, `5m`.
pub const RESYNC_PATTERN: &str = r"^([0-9]{1,6}(s|m|h))+$";

/// Whether `v` is a backup volume id the operator may pass to Proxmox: it matches
/// [`BACKUP_VOLID_PATTERN`] (so it never contains `..`, a path escape out of the storage's
/// dump directory).
pub fn is_backup_volid(v: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(BACKUP_VOLID_PATTERN).expect("valid pattern"))
        .is_match(v)
}

/// A reference to a `ProxmoxCluster` (cluster-scoped). When omitted, the cluster annotated
/// `pve.lxc.dev/is-default-cluster: "true"` is used, else the one named `default`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    /// Name of the `ProxmoxCluster`.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
}

/// A reference to another object of a known kind in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object in the same namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret in the same namespace.
    #[schemars(length(min = 1, max = 253), regex(pattern = K8S_NAME_PATTERN))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// What happens in Proxmox when the Kubernetes object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Proxmox object (containers are stopped, then destroyed with purge).
    #[default]
    Delete,
    /// Keep the Proxmox object; only the operator's identity tag is removed.
    Retain,
}

/// A non-negative byte quantity in Kubernetes notation (`512Mi`, `1Gi`, `8G`, or a plain number
/// of bytes such as `0`).
///
/// Proxmox counts memory and disks in MiB, so the operator accepts only values that are a whole
/// number of MiB and rejects everything else with a message naming the field.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ByteQuantity(pub String);

impl<'de> Deserialize<'de> for ByteQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum IntOrString {
            Int(u64),
            Str(String),
        }
        Ok(match IntOrString::deserialize(d)? {
            IntOrString::Int(n) => ByteQuantity(n.to_string()),
            IntOrString::Str(s) => ByteQuantity(s),
        })
    }
}

impl JsonSchema for ByteQuantity {
    fn schema_name() -> Cow<'static, str> {
        "ByteQuantity".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "minimum": 0,
            "pattern": QUANTITY_PATTERN,
            "maxLength": 32,
        })
    }
}

/// Why a [`ByteQuantity`] could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The text is not a non-negative quantity.
    #[error("'{0}' is not a non-negative quantity such as 512Mi or 8Gi")]
    Syntax(String),
    /// The value is not a whole number of MiB.
    #[error("'{0}' is not a whole number of MiB (Proxmox counts in MiB)")]
    NotWholeMiB(String),
    /// The value does not fit in 64 bits.
    #[error("'{0}' is too large")]
    Overflow(String),
}

impl ByteQuantity {
    /// Builds a quantity from text.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The exact number of bytes.
    pub fn to_bytes(&self) -> Result<u64, QuantityError> {
        let s = self.0.as_str();
        let err = || QuantityError::Syntax(s.to_string());
        let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let (num, suffix) = s.split_at(split);
        let mult: u128 = match suffix {
            "" => 1,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            "Pi" => 1 << 50,
            "Ei" => 1 << 60,
            "k" => 1_000,
            "M" => 1_000_000,
            "G" => 1_000_000_000,
            "T" => 1_000_000_000_000,
            "P" => 1_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000,
            _ => return Err(err()),
        };
        let (int_part, frac_part) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num, ""),
        };
        if int_part.is_empty()
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || (num.contains('.') && frac_part.is_empty())
        {
            return Err(err());
        }
        if frac_part.len() > 18 {
            return Err(QuantityError::NotWholeMiB(s.to_string()));
        }
        let overflow = || QuantityError::Overflow(s.to_string());
        let int: u128 = int_part.parse().map_err(|_| overflow())?;
        let frac: u128 = if frac_part.is_empty() {
            0
        } else {
            frac_part.parse().map_err(|_| overflow())?
        };
        let scale = 10u128.pow(frac_part.len() as u32);
        let total_scaled = int
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac))
            .and_then(|v| v.checked_mul(mult))
            .ok_or_else(overflow)?;
        if total_scaled % scale != 0 {
            return Err(QuantityError::NotWholeMiB(s.to_string()));
        }
        u64::try_from(total_scaled / scale).map_err(|_| overflow())
    }

    /// The exact number of MiB; fails when the value is not a whole number of MiB.
    pub fn to_mib(&self) -> Result<u64, QuantityError> {
        let bytes = self.to_bytes()?;
        if bytes % (1 << 20) != 0 {
            return Err(QuantityError::NotWholeMiB(self.0.clone()));
        }
        Ok(bytes >> 20)
    }
}

/// Adds `x-kubernetes-list-type: map` keyed by `type` to a list of conditions, as Kubernetes does.
pub fn conditions_schema(gen: &mut SchemaGenerator) -> Schema {
    let mut schema = <Vec<Condition>>::json_schema(gen);
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    schema
}

/// The condition type that says whether the object is fully working.
pub const CONDITION_READY: &str = "Ready";
/// The condition type that says whether Proxmox matches the latest spec.
pub const CONDITION_SYNCED: &str = "Synced";
/// Condition type: set (True) when no progress is possible without a change by the user; read by
/// Flux's kstatus.
pub const CONDITION_STALLED: &str = "Stalled";

/// A size in bytes in binary units as `kubectl` users read them: `8Gi`, `375.4Mi`, `512` (one
/// decimal when not whole, trailing `.0` dropped).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut v = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    let s = format!("{v:.1}");
    format!("{}{unit}", s.strip_suffix(".0").unwrap_or(&s))
}

/// A container's root volume as Proxmox has it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootVolume {
    /// The volume id, e.g. `local-lvm:vm-101-disk-0`.
    pub volume: String,
    /// The storage holding it, e.g. `local-lvm`.
    pub storage: String,
    /// Its size in binary units, e.g. `8Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1024), "1Ki");
        assert_eq!(human_size(393_597_484), "375.4Mi");
        assert_eq!(human_size(8 << 30), "8Gi");
        assert_eq!(human_size(3 << 40), "3Ti");
    }

    fn mib(s: &str) -> Result<u64, QuantityError> {
        ByteQuantity::new(s).to_mib()
    }

    #[test]
    fn binary_quantities_convert_exactly_to_mib() {
        assert_eq!(mib("512Mi"), Ok(512));
        assert_eq!(mib("1Gi"), Ok(1024));
        assert_eq!(mib("1.5Gi"), Ok(1536));
        assert_eq!(mib("8Ti"), Ok(8 << 20));
        assert_eq!(mib("1048576"), Ok(1));
        assert_eq!(mib("2048Ki"), Ok(2));
    }

    #[test]
    fn quantities_that_are_not_whole_mib_are_rejected() {
        assert!(matches!(mib("1G"), Err(QuantityError::NotWholeMiB(_))));
        assert!(matches!(mib("1000Ki"), Err(QuantityError::NotWholeMiB(_))));
        assert!(matches!(mib("1.1Mi"), Err(QuantityError::NotWholeMiB(_))));
        assert!(matches!(mib("100"), Err(QuantityError::NotWholeMiB(_))));
    }

    #[test]
    fn malformed_or_negative_quantities_are_syntax_errors() {
        for bad in ["", "-1Gi", "1.Gi", "Gi", "1gi", "1e3", "1 Gi", "1.5.5Mi"] {
            assert!(matches!(mib(bad), Err(QuantityError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn plain_integers_are_byte_counts() {
        let q: ByteQuantity = serde_json::from_str("0").unwrap();
        assert_eq!(q.to_mib(), Ok(0));
        let q: ByteQuantity = serde_json::from_str("1048576").unwrap();
        assert_eq!(q.to_mib(), Ok(1));
        assert!(serde_json::from_str::<ByteQuantity>("-1").is_err());
    }

    #[test]
    fn huge_quantities_overflow_cleanly() {
        assert!(matches!(mib("99999999999999999999Ei"), Err(QuantityError::Overflow(_))));
    }

    #[test]
    fn schema_patterns_compile_as_rust_regexes() {
        for p in [
            K8S_NAME_PATTERN,
            NODE_PATTERN,
            STORAGE_PATTERN,
            HOSTNAME_PATTERN,
            BRIDGE_PATTERN,
            TAG_PATTERN,
            POOL_PATTERN,
            MAC_PATTERN,
            IPV4_PATTERN,
            IPV4_CIDR_PATTERN,
            IPV6_PATTERN,
            IPV6_CIDR_PATTERN,
            IP_PATTERN,
            VZTMPL_VOLID_PATTERN,
            BACKUP_VOLID_PATTERN,
            MOUNT_PATH_PATTERN,
            SINGLE_LINE_PATTERN,
            QUANTITY_PATTERN,
            DURATION_PATTERN,
            RESYNC_PATTERN,
        ] {
            regex::Regex::new(p).unwrap();
        }
    }

    #[test]
    fn separators_cannot_pass_the_property_string_patterns() {
        for p in [
            BRIDGE_PATTERN,
            TAG_PATTERN,
            STORAGE_PATTERN,
            HOSTNAME_PATTERN,
            MOUNT_PATH_PATTERN,
            POOL_PATTERN,
        ] {
            let re = regex::Regex::new(p).unwrap();
            for bad in ["vmbr0,firewall=0", "a=b", "a;b", "a\nb", "/data,backup=1"] {
                assert!(!re.is_match(bad), "{p} accepted {bad:?}");
            }
        }
    }
}

/// A Proxmox task in flight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    /// The task's UPID.
    pub upid: String,
    /// What the task does, e.g. `create`, `start`, `migrate`.
    pub operation: String,
    /// When the task was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

impl PendingTask {
    /// What the task does, when it is one the operator knows.
    pub fn op(&self) -> Option<Operation> {
        Operation::parse(&self.operation)
    }
}

/// What a task does, as `PendingTask.operation` records it (these strings are the wire format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A container created from an OS template or an image (`POST /nodes/{node}/lxc`).
    Create,
    /// A container cloned from another.
    Clone,
    /// A container restored from a backup archive.
    Restore,
    /// A container started.
    Start,
    /// A container stopped at once.
    Stop,
    /// A container shut down.
    Shutdown,
    /// A container rebooted.
    Reboot,
    /// A container moved to another node.
    Migrate,
    /// A disk grown.
    Resize,
    /// A container, snapshot or template destroyed.
    Delete,
    /// An OCI image pulled into storage.
    Pull,
    /// A container destroyed to be created again from a new image.
    Recreate,
    /// The temporary snapshot a clone of a running container is made from.
    CloneSnapshot,
    /// That temporary snapshot deleted.
    CloneSnapshotDelete,
    /// A backup.
    Vzdump,
    /// An image downloaded.
    Download,
    /// A container converted into a template.
    Template,
    /// A snapshot taken.
    Snapshot,
    /// A container rolled back to a snapshot.
    Rollback,
}

impl Operation {
    /// Every operation.
    pub const ALL: &'static [Operation] = &[
        Operation::Create,
        Operation::Clone,
        Operation::Restore,
        Operation::Start,
        Operation::Stop,
        Operation::Shutdown,
        Operation::Reboot,
        Operation::Migrate,
        Operation::Resize,
        Operation::Delete,
        Operation::Pull,
        Operation::Recreate,
        Operation::CloneSnapshot,
        Operation::CloneSnapshotDelete,
        Operation::Vzdump,
        Operation::Download,
        Operation::Template,
        Operation::Snapshot,
        Operation::Rollback,
    ];

    /// The operation as recorded in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Clone => "clone",
            Operation::Restore => "restore",
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Shutdown => "shutdown",
            Operation::Reboot => "reboot",
            Operation::Migrate => "migrate",
            Operation::Resize => "resize",
            Operation::Delete => "delete",
            Operation::Pull => "pull",
            Operation::Recreate => "recreate",
            Operation::CloneSnapshot => "clone-snapshot",
            Operation::CloneSnapshotDelete => "clone-snapshot-delete",
            Operation::Vzdump => "vzdump",
            Operation::Download => "download",
            Operation::Template => "template",
            Operation::Snapshot => "snapshot",
            Operation::Rollback => "rollback",
        }
    }

    /// The operation recorded as `s`, if it is one.
    pub fn parse(s: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|o| o.as_str() == s)
    }

    /// Whether the task makes a new container (or the snapshot one is made from): when it
    /// fails, nothing exists yet.
    pub fn makes_container(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Clone | Operation::Restore | Operation::CloneSnapshot
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod operation_tests {
    use super::*;

    #[test]
    fn every_task_operation_reads_back_as_the_string_status_records() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(*op));
        }
        assert_eq!(Operation::CloneSnapshot.as_str(), "clone-snapshot");
        assert_eq!(Operation::parse("something-else"), None);
        let pt = PendingTask {
            upid: "UPID:pve1:…".into(),
            operation: "restore".into(),
            started_at: None,
        };
        assert_eq!(pt.op(), Some(Operation::Restore));
        assert!(Operation::Restore.makes_container() && !Operation::Delete.makes_container());
    }
}

/// A Kubernetes label value (empty, or up to 63 characters starting and ending alphanumeric).
pub const LABEL_VALUE_PATTERN: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";

/// The schema of a `LabelSelector` with bounds (a selector is cached with its object: unbounded,
/// one object could hold the operator's memory): at most 64 `matchLabels` and 16
/// `matchExpressions` of at most 64 values each; keys and values as Kubernetes label keys
/// (≤ 317 characters) and values (≤ 63).
pub fn bounded_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut schema =
        <k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as JsonSchema>::json_schema(generator);
    bound_label_selector(&mut schema);
    schema
}

/// [`bounded_label_selector`] for an optional selector.
pub fn bounded_optional_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = bounded_label_selector(generator);
    if let Some(o) = schema.as_object_mut() {
        o.insert("nullable".into(), serde_json::Value::Bool(true));
    }
    schema
}

fn bound_label_selector(schema: &mut Schema) {
    use serde_json::{json, Value};
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(Value::Object(labels)) = props.get_mut("matchLabels") {
        labels.insert("maxProperties".into(), json!(64));
        if let Some(Value::Object(v)) = labels.get_mut("additionalProperties") {
            v.insert("maxLength".into(), json!(63));
            v.insert("pattern".into(), json!(LABEL_VALUE_PATTERN));
        }
    }
    if let Some(Value::Object(exprs)) = props.get_mut("matchExpressions") {
        exprs.insert("maxItems".into(), json!(16));
        let item = exprs
            .get_mut("items")
            .and_then(|i| i.get_mut("properties"))
            .and_then(Value::as_object_mut);
        if let Some(item) = item {
            if let Some(Value::Object(k)) = item.get_mut("key") {
                k.insert("maxLength".into(), json!(317));
                k.insert("pattern".into(), json!(LABEL_KEY_PATTERN));
            }
            if let Some(Value::Object(op)) = item.get_mut("operator") {
                op.insert("maxLength".into(), json!(12));
            }
            if let Some(Value::Object(vs)) = item.get_mut("values") {
                vs.insert("maxItems".into(), json!(64));
                if let Some(Value::Object(v)) = vs.get_mut("items") {
                    v.insert("maxLength".into(), json!(63));
                    v.insert("pattern".into(), json!(LABEL_VALUE_PATTERN));
                }
            }
        }
    }
}

/// `true`: the serde default of flags that are on unless turned off.
pub(crate) fn default_true() -> bool {
    true
}
