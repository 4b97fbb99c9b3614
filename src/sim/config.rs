//! Simulator configuration (YAML file for the binary, `SimConfig` for tests).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// The whole simulator configuration. Every field has a default; see
/// `examples/pve-sim/config.yaml` for a commented example.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Address to listen on; `None` = `127.0.0.1:0` for the library (the binary defaults to
    /// `127.0.0.1:8006`).
    pub listen: Option<SocketAddr>,
    /// Cluster name (returned by `/cluster/status` and the ticket call).
    pub cluster_name: String,
    /// PVE version reported by `/version`.
    pub version: String,
    /// Cluster nodes.
    pub nodes: Vec<NodeConfig>,
    /// Storages (cluster-wide definitions; non-shared ones exist once per node).
    pub storages: Vec<StorageConfig>,
    /// Bridges present on every node, with the DHCP pool handed to containers with `ip=dhcp`.
    pub bridges: Vec<BridgeConfig>,
    /// The appliance index (`GET /nodes/{node}/aplinfo`).
    pub appliances: Vec<ApplianceConfig>,
    /// Volumes present at start on every node (`local:vztmpl/...`).
    pub preloaded_templates: Vec<String>,
    /// Users that can log in with a password (ticket auth).
    pub users: Vec<UserConfig>,
    /// API tokens.
    pub tokens: Vec<TokenConfig>,
    /// Pools that exist at start.
    pub pools: Vec<String>,
    /// Task durations in milliseconds by worker type (`vzcreate`, `vzstart`, ...); missing
    /// types use the defaults of [`default_task_durations`], `default` applies to the rest.
    pub task_durations_ms: BTreeMap<String, u64>,
    /// Random spread of every task's duration: `0.2` = uniform within ±20 % of the configured
    /// duration, drawn from the seeded generator (`seed`), so a run with the same seed replays.
    /// `0` (the default) keeps every duration exact and draws nothing.
    pub task_jitter: f64,
    /// Clock speed-up for tasks: durations are divided by this factor (and running
    /// containers' uptime advances this much faster).
    pub clock_speed: f64,
    /// Delay before every 401 answer (real PVE waits 3000 ms).
    pub auth_failure_delay_ms: u64,
    /// Latency and fault injection.
    pub faults: FaultConfig,
    /// Seed for every random draw (fault draws, MACs, DHCP addresses, jitter). `None` = random.
    pub seed: Option<u64>,
}

/// One node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Node name (`pve1`).
    pub name: String,
    /// CPU count.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Whether the node starts offline.
    pub offline: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "pve1".into(),
            cpus: 8,
            memory_bytes: 32 << 30,
            offline: false,
        }
    }
}

/// One storage definition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Storage id (`local-lvm`).
    pub id: String,
    /// Plugin type: `dir`, `lvmthin`, `lvm`, `zfspool`, `nfs`, `cifs`, `rbd`, `pbs`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Content types (`rootdir`, `images`, `vztmpl`, `backup`, `iso`, `snippets`).
    pub content: Vec<String>,
    /// Shared between nodes (one pool of volumes for the whole cluster).
    pub shared: bool,
    /// Restrict to these nodes (empty = all).
    pub nodes: Vec<String>,
    /// Capacity in bytes (per node for non-shared storages).
    pub capacity_bytes: u64,
    /// Bytes already used at start (besides the simulated volumes).
    pub used_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            id: "local".into(),
            kind: "dir".into(),
            content: vec![],
            shared: false,
            nodes: vec![],
            capacity_bytes: 100 << 30,
            used_bytes: 0,
        }
    }
}

/// A bridge and its DHCP pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// Bridge name (`vmbr0`).
    pub name: String,
    /// DHCP network, IPv4 CIDR (`10.10.0.0/24`); leases start at `.100`.
    pub dhcp_cidr: String,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            name: "vmbr0".into(),
            dhcp_cidr: "10.10.0.0/24".into(),
        }
    }
}

/// An entry of the appliance index.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApplianceConfig {
    /// File name, e.g. `debian-12-standard_12.7-1_amd64.tar.zst`.
    pub template: String,
    /// Package name, e.g. `debian-12-standard`.
    pub package: String,
    /// OS (`debian`, `ubuntu`, `alpine`, ...).
    pub os: String,
    /// Version string.
    pub version: String,
    /// Headline.
    pub headline: String,
    /// Size in bytes of the downloaded file.
    pub size_bytes: u64,
}

impl Default for ApplianceConfig {
    fn default() -> Self {
        ApplianceConfig {
            template: String::new(),
            package: String::new(),
            os: "debian".into(),
            version: String::new(),
            headline: String::new(),
            size_bytes: 120 << 20,
        }
    }
}

/// A user with a password (ticket auth).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// `user@realm`.
    pub userid: String,
    /// Password.
    pub password: String,
    /// Privileges granted (`VM.Allocate`, ...); `None` = all.
    pub privileges: Option<Vec<String>>,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            userid: "root@pam".into(),
            password: String::new(),
            privileges: None,
        }
    }
}

/// An API token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// `user@realm!tokenid`.
    pub id: String,
    /// Secret (a UUID on real PVE).
    pub secret: String,
    /// Privileges granted (`VM.Allocate`, ...); `None` = all.
    pub privileges: Option<Vec<String>>,
}

impl TokenConfig {
    /// Parse the `USER@REALM!ID=SECRET` shortcut of `--token`.
    pub fn parse(s: &str) -> Option<TokenConfig> {
        let (id, secret) = s.rsplit_once('=')?;
        if !id.contains('@') || !id.contains('!') || secret.is_empty() {
            return None;
        }
        Some(TokenConfig {
            id: id.into(),
            secret: secret.into(),
            privileges: None,
        })
    }
}

/// Latency and fault injection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Added latency on every API request.
    pub latency: LatencyConfig,
    /// Error rules, checked in order; the first rule whose draw hits applies.
    pub rules: Vec<FaultRule>,
    /// Probability that a task ends in error (`simulated task failure`).
    pub task_failure_rate: f64,
    /// Nodes that are offline.
    pub offline_nodes: Vec<String>,
}

/// Latency added to each request: `fixed_ms` plus a uniform draw in `0..=jitter_ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Fixed part.
    pub fixed_ms: u64,
    /// Random part (uniform).
    pub jitter_ms: u64,
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// `"METHOD /path/template"` as in the schema (`"PUT /nodes/{node}/lxc/{vmid}/config"`),
    /// a bare template (any method), or `"*"` for every API request.
    pub endpoint: String,
    /// Probability in `0.0..=1.0`.
    pub rate: f64,
    /// What happens.
    pub kind: FaultKind,
    /// Message for `error` (default `simulated failure`).
    #[serde(default)]
    pub message: Option<String>,
    /// HTTP status for `error` (default 500).
    #[serde(default)]
    pub status: Option<u16>,
}

/// Kinds of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP error with the rule's status/message.
    Error,
    /// HTTP 500 `can't lock file '/run/lock/lxc/pve-config-<vmid>.lock' - got timeout`.
    LockTimeout,
    /// The connection is closed without an answer.
    Reset,
    /// The request never gets an answer (the connection hangs until the client gives up).
    Timeout,
}

/// Default task durations in milliseconds (at clock speed 1).
pub fn default_task_durations() -> BTreeMap<String, u64> {
    [
        ("vzcreate", 3000),
        ("vzrestore", 4000),
        ("vzstart", 1000),
        ("vzstop", 500),
        ("vzshutdown", 1500),
        ("vzreboot", 2000),
        ("vzsuspend", 300),
        ("vzresume", 300),
        ("vzdestroy", 1000),
        ("vzclone", 3000),
        ("vzmigrate", 4000),
        ("vztemplate", 1000),
        ("resize", 500),
        ("vzdump", 5000),
        ("vzsnapshot", 500),
        ("vzdelsnapshot", 500),
        ("vzrollback", 1000),
        ("download", 2000),
        ("default", 500),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The secret of the default token `root@pam!sim`.
pub const DEFAULT_TOKEN_SECRET: &str = "5e1f0c3a-7d2b-4c8e-9a61-0123456789ab";
/// The password of the default user `root@pam`.
pub const DEFAULT_ROOT_PASSWORD: &str = "pve-sim-root";

impl Default for SimConfig {
    fn default() -> Self {
        let gib = 1u64 << 30;
        let appl = |template: &str, os: &str, version: &str, headline: &str, size_mib: u64| {
            let package = template.split('_').next().unwrap_or(template).to_string();
            ApplianceConfig {
                template: template.into(),
                package,
                os: os.into(),
                version: version.into(),
                headline: headline.into(),
                size_bytes: size_mib << 20,
            }
        };
        SimConfig {
            listen: None,
            cluster_name: "pve-sim".into(),
            version: "9.1.3".into(),
            nodes: (1..=3)
                .map(|i| NodeConfig {
                    name: format!("pve{i}"),
                    cpus: 16,
                    memory_bytes: 64 * gib,
                    offline: false,
                })
                .collect(),
            storages: vec![
                StorageConfig {
                    id: "local".into(),
                    kind: "dir".into(),
                    content: vec!["vztmpl".into(), "backup".into(), "rootdir".into(), "iso".into()],
                    shared: false,
                    nodes: vec![],
                    capacity_bytes: 100 * gib,
                    used_bytes: 5 * gib,
                },
                StorageConfig {
                    id: "local-lvm".into(),
                    kind: "lvmthin".into(),
                    content: vec!["rootdir".into(), "images".into()],
                    shared: false,
                    nodes: vec![],
                    capacity_bytes: 400 * gib,
                    used_bytes: 0,
                },
                StorageConfig {
                    id: "nfs-backup".into(),
                    kind: "nfs".into(),
                    content: vec!["backup".into()],
                    shared: true,
                    nodes: vec![],
                    capacity_bytes: 2048 * gib,
                    used_bytes: 100 * gib,
                },
            ],
            bridges: vec![BridgeConfig::default()],
            appliances: vec![
                appl(
                    "debian-12-standard_12.7-1_amd64.tar.zst",
                    "debian-12",
                    "12.7-1",
                    "Debian 12 Bookworm (standard)",
                    120,
                ),
                appl(
                    "debian-13-standard_13.1-2_amd64.tar.zst",
                    "debian-13",
                    "13.1-2",
                    "Debian 13 Trixie (standard)",
                    125,
                ),
                appl(
                    "ubuntu-24.04-standard_24.04-2_amd64.tar.zst",
                    "ubuntu-24.04",
                    "24.04-2",
                    "Ubuntu 24.04 Noble (standard)",
                    141,
                ),
                appl(
                    "alpine-3.20-default_20240908_amd64.tar.xz",
                    "alpine-3.20",
                    "3.20-0",
                    "Alpine Linux 3.20 (default)",
                    3,
                ),
            ],
            preloaded_templates: vec!["local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst".into()],
            users: vec![UserConfig {
                userid: "root@pam".into(),
                password: DEFAULT_ROOT_PASSWORD.into(),
                privileges: None,
            }],
            tokens: vec![TokenConfig {
                id: "root@pam!sim".into(),
                secret: DEFAULT_TOKEN_SECRET.into(),
                privileges: None,
            }],
            pools: vec![],
            task_durations_ms: BTreeMap::new(),
            task_jitter: 0.0,
            clock_speed: 1.0,
            auth_failure_delay_ms: 0,
            faults: FaultConfig::default(),
            seed: None,
        }
    }
}

impl SimConfig {
    /// Parse a YAML configuration (fields not given keep their defaults).
    pub fn from_yaml(text: &str) -> Result<SimConfig, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Effective duration of a task type in milliseconds at clock speed 1.
    pub fn task_duration_ms(&self, typ: &str) -> u64 {
        let d = default_task_durations();
        self.task_durations_ms
            .get(typ)
            .or_else(|| d.get(typ))
            .or_else(|| self.task_durations_ms.get("default"))
            .or_else(|| d.get("default"))
            .copied()
            .unwrap_or(500)
    }

    /// The duration of a task of `configured_ms` with `jitter` (a fraction, clamped to 0..=1)
    /// for a draw `u` in `-1.0..=1.0`: `configured_ms × (1 + jitter × u)`, rounded.
    pub fn jittered_ms(configured_ms: u64, jitter: f64, u: f64) -> u64 {
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (configured_ms as f64 * (1.0 + j * u.clamp(-1.0, 1.0))).round().max(0.0) as u64
    }

    /// A configuration suited for fast tests: tasks take ~20-60 ms, fixed seed.
    pub fn fast() -> SimConfig {
        SimConfig {
            clock_speed: 50.0,
            seed: Some(1),
            ..SimConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_a_duration_uniformly_within_its_fraction() {
        assert_eq!(SimConfig::jittered_ms(3000, 0.0, 1.0), 3000);
        assert_eq!(SimConfig::jittered_ms(3000, 0.2, -1.0), 2400);
        assert_eq!(SimConfig::jittered_ms(3000, 0.2, 1.0), 3600);
        assert_eq!(SimConfig::jittered_ms(3000, 0.2, 0.5), 3300);
        // out-of-range knobs are clamped: never a negative or NaN duration
        assert_eq!(SimConfig::jittered_ms(1000, 5.0, -1.0), 0);
        assert_eq!(SimConfig::jittered_ms(1000, f64::NAN, 1.0), 1000);
        let cfg = SimConfig::from_yaml("task_jitter: 0.2").unwrap();
        assert_eq!(cfg.task_jitter, 0.2);
        assert_eq!(SimConfig::default().task_jitter, 0.0);
    }
}
