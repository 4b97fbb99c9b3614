//! Host resources of an `LxcContainer`: bind mounts of host paths (`mpN: /host/path,mp=/path`)
//! and device passthrough (`devN: /dev/xyz`). Proxmox lets only `root@pam` itself set them (a
//! token, even one of `root@pam`, is refused), and a tenant needs `privileges.bindMounts` /
//! `privileges.devices`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An absolute host or container path: `/`-separated components, none of them `.` or `..`, no
/// empty component (`//`), no trailing `/`, no property-string separators (`,` `;` `=`),
/// whitespace or control characters. `/` alone is refused.
pub const ABSOLUTE_PATH_PATTERN: &str = r"^(/([^/.,;=\s\x00-\x1f\x7f][^/,;=\s\x00-\x1f\x7f]*|\.[^/.,;=\s\x00-\x1f\x7f][^/,;=\s\x00-\x1f\x7f]*|\.\.[^/,;=\s\x00-\x1f\x7f]+))+$";

/// A device node under `/dev/`, with the rules of [`ABSOLUTE_PATH_PATTERN`].
pub const DEVICE_PATH_PATTERN: &str = r"^/dev(/([^/.,;=\s\x00-\x1f\x7f][^/,;=\s\x00-\x1f\x7f]*|\.[^/.,;=\s\x00-\x1f\x7f][^/,;=\s\x00-\x1f\x7f]*|\.\.[^/,;=\s\x00-\x1f\x7f]+))+$";

/// A host directory (or file) bind-mounted into the container: Proxmox `mpN:
/// /host/path,mp=/path[,ro=1]`. The operator picks the `mpN` slot (never one of
/// `mountPoints`, never one that holds a volume). A bind mount is not a volume: it is not
/// backed up, and removing it from the spec only removes the mount, never data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BindMount {
    /// Absolute path on the Proxmox node, e.g. `/srv/media`. It must exist on the node the
    /// container runs on (Proxmox does not create it). Paths under `/dev/` are refused: use
    /// `devices` for device passthrough.
    #[schemars(length(min = 2, max = 256), regex(pattern = ABSOLUTE_PATH_PATTERN))]
    pub host_path: String,
    /// Absolute path inside the container, unique among `bindMounts` and `mountPoints`.
    #[schemars(length(min = 2, max = 256), regex(pattern = ABSOLUTE_PATH_PATTERN))]
    pub mount_path: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Mount options (Proxmox `mountoptions`), e.g. `[nosuid, nodev, noexec]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6))]
    pub mount_options: Vec<MountOption>,
}

/// A mount option Proxmox accepts for a mount point.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MountOption {
    /// Pass discards to the underlying storage.
    Discard,
    /// Lazy time updates.
    Lazytime,
    /// No access time updates.
    Noatime,
    /// No device files.
    Nodev,
    /// No program execution.
    Noexec,
    /// No set-user-id or set-group-id bits.
    Nosuid,
}

impl MountOption {
    /// The option as Proxmox spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            MountOption::Discard => "discard",
            MountOption::Lazytime => "lazytime",
            MountOption::Noatime => "noatime",
            MountOption::Nodev => "nodev",
            MountOption::Noexec => "noexec",
            MountOption::Nosuid => "nosuid",
        }
    }
}

/// A host device passed into the container: Proxmox `devN:
/// /dev/xyz[,mode=0660][,uid=N][,gid=N][,deny-write=1]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// The device node on the Proxmox node, e.g. `/dev/dri/renderD128`; unique in the list.
    #[schemars(length(min = 6, max = 128), regex(pattern = DEVICE_PATH_PATTERN))]
    pub path: String,
    /// Access mode of the device node in the container, four octal digits, e.g. `0660`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4), regex(pattern = r"^0[0-7]{3}$"))]
    pub mode: Option<String>,
    /// Owner of the device node in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub uid: Option<u32>,
    /// Group of the device node in the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub gid: Option<u32>,
    /// Deny the container writes to the device (Proxmox `deny-write`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_patterns_refuse_dot_components_separators_and_the_root() {
        let re = regex::Regex::new(ABSOLUTE_PATH_PATTERN).unwrap();
        for ok in [
            "/srv/media",
            "/a",
            "/srv/.hidden",
            "/srv/..x",
            "/srv/...",
            "/srv/a.b-c_d",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "/",
            "srv",
            "/srv/../etc",
            "/srv/..",
            "/srv/./x",
            "/srv/.",
            "/srv//x",
            "/srv/",
            "/a,ro=1",
            "/a=b",
            "/a;b",
            "/a b",
            "/a\nb",
        ] {
            assert!(!re.is_match(bad), "{bad:?}");
        }
        let dev = regex::Regex::new(DEVICE_PATH_PATTERN).unwrap();
        assert!(dev.is_match("/dev/dri/renderD128"));
        for bad in ["/dev", "/dev/", "/srv/x", "/dev/../etc/shadow", "/dev/ttyS0,mode=0777"] {
            assert!(!dev.is_match(bad), "{bad:?}");
        }
    }
}
