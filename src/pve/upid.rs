//! Task ids (UPIDs) and task results.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::de;
use super::error::Error;

/// A Proxmox task id:
/// `UPID:<node>:<pid 8 hex>:<pstart 8-9 hex>:<starttime 8 hex>:<type>:<id>:<user>:`.
///
/// Parsed with the regex of `PVE::UPID` (README §5). [`Display`](fmt::Display) returns the
/// exact original string.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    raw: String,
    node: String,
    pid: u32,
    pstart: u64,
    starttime: i64,
    task_type: String,
    id: String,
    user: String,
}

fn upid_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$",
        )
        .expect("valid UPID regex")
    })
}

impl Upid {
    /// The UPID text without the API token name: `user@realm!token` becomes `user@realm`.
    /// For status fields and events, where the token id (half of a credential, and the name
    /// under which it is revoked) should not be shown. Not parseable back into the task's
    /// real UPID; keep [`Upid::as_str`] for polling.
    pub fn redacted(&self) -> String {
        match self.user.split_once('!') {
            Some((user, _token)) => {
                let end = self.raw.len() - self.user.len() - 1;
                format!("{}{user}:", &self.raw[..end])
            }
            None => self.raw.clone(),
        }
    }

    /// The task's real UPID from its [`Upid::redacted`] form, given the principal that started
    /// it (`user@realm!token`): the token id goes back in when the user matches. A UPID that
    /// was not redacted, or another user's, is returned as it is.
    pub fn unredacted(&self, principal: &str) -> Upid {
        let token_of_user = principal
            .strip_prefix(self.user.as_str())
            .is_some_and(|rest| rest.starts_with('!'));
        if self.user.contains('!') || !token_of_user {
            return self.clone();
        }
        let end = self.raw.len() - self.user.len() - 1;
        format!("{}{principal}:", &self.raw[..end])
            .parse()
            .unwrap_or_else(|_| self.clone())
    }

    /// Node that runs the task (poll this node's task API).
    pub fn node(&self) -> &str {
        &self.node
    }
    /// Worker process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// Process start time in clock ticks (from `/proc`).
    pub fn pstart(&self) -> u64 {
        self.pstart
    }
    /// Task start, seconds since the Unix epoch.
    pub fn starttime(&self) -> i64 {
        self.starttime
    }
    /// Worker type, e.g. `vzcreate`, `vzstart`, `vzdump`.
    pub fn task_type(&self) -> &str {
        &self.task_type
    }
    /// Task object id (vmid for most LXC tasks; the *source* vmid for clone); may be empty.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// User (or `user@realm!token`) that started the task.
    pub fn user(&self) -> &str {
        &self.user
    }
    /// The UPID string.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::Decode {
            method: String::new(),
            path: String::new(),
            message: format!("not a UPID: {s:?}"),
        };
        let c = upid_regex().captures(s).ok_or_else(bad)?;
        let hex = |i: usize| u64::from_str_radix(&c[i], 16).map_err(|_| bad());
        Ok(Upid {
            raw: s.to_string(),
            node: c[1].to_string(),
            pid: hex(3)? as u32,
            pstart: hex(4)?,
            starttime: hex(5)? as i64,
            task_type: c[6].to_string(),
            id: c[7].to_string(),
            user: c[8].to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upid({})", self.raw)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The outcome of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    /// Still running.
    Running,
    /// Finished with `OK`.
    Ok,
    /// Finished successfully with `WARNINGS: n`.
    Warnings(u32),
    /// Finished with an error; the text is the exit status (`TASK ERROR: ...` message).
    Failed(String),
}

impl TaskResult {
    /// Interprets a stopped task's `exitstatus`.
    pub fn from_exitstatus(exitstatus: &str) -> TaskResult {
        let s = exitstatus.trim();
        if s == "OK" {
            TaskResult::Ok
        } else if let Some(n) = s.strip_prefix("WARNINGS:") {
            TaskResult::Warnings(n.trim().parse().unwrap_or(0))
        } else {
            TaskResult::Failed(s.to_string())
        }
    }

    /// True for `Ok` and `Warnings`.
    pub fn is_success(&self) -> bool {
        matches!(self, TaskResult::Ok | TaskResult::Warnings(_))
    }
}

/// `GET /nodes/{node}/tasks/{upid}/status`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TaskStatus {
    /// The task id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub upid: Option<String>,
    /// Node.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub node: Option<String>,
    /// Worker pid.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pid: Option<u64>,
    /// Process start ticks.
    #[serde(default, deserialize_with = "de::opt_u64")]
    pub pstart: Option<u64>,
    /// Start time (epoch seconds).
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub starttime: Option<i64>,
    /// Worker type.
    #[serde(default, rename = "type", deserialize_with = "de::opt_string")]
    pub task_type: Option<String>,
    /// Object id.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub id: Option<String>,
    /// User (without the token part for token tasks).
    #[serde(default, deserialize_with = "de::opt_string")]
    pub user: Option<String>,
    /// Token name for token-owned tasks.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub tokenid: Option<String>,
    /// `running` or `stopped`.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub status: Option<String>,
    /// Only when stopped: `OK`, `WARNINGS: n` or the error text.
    #[serde(default, deserialize_with = "de::opt_string")]
    pub exitstatus: Option<String>,
    /// End time (epoch seconds), in task lists once the task stopped.
    #[serde(default, deserialize_with = "de::opt_i64")]
    pub endtime: Option<i64>,
}

impl TaskStatus {
    /// The typed result: `Running` unless `status == "stopped"`.
    pub fn result(&self) -> TaskResult {
        if self.status.as_deref() != Some("stopped") {
            return TaskResult::Running;
        }
        match &self.exitstatus {
            Some(e) => TaskResult::from_exitstatus(e),
            None => TaskResult::Failed("task stopped without exit status".to_string()),
        }
    }
}

/// One line of `GET /nodes/{node}/tasks/{upid}/log`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TaskLogLine {
    /// Line number (1-based).
    #[serde(deserialize_with = "de::u64_lenient")]
    pub n: u64,
    /// Text.
    #[serde(default)]
    pub t: String,
}

#[cfg(test)]
mod redaction_tests {
    use super::Upid;

    #[test]
    fn a_redacted_upid_is_restored_with_the_principal_that_started_it() {
        let full: Upid = "UPID:pve1:0000ABCD:00012345:67000000:vzcreate:101:op@pve!k8s:"
            .parse()
            .unwrap();
        let shown: Upid = full.redacted().parse().unwrap();
        assert_eq!(shown.user(), "op@pve");
        assert_eq!(shown.unredacted("op@pve!k8s").as_str(), full.as_str());
        assert_eq!(
            shown.unredacted("other@pve!x").as_str(),
            shown.as_str(),
            "another user's task stays as it is"
        );
        assert_eq!(full.unredacted("op@pve!k8s").as_str(), full.as_str());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_upid_shown_in_status_does_not_carry_the_token_id() {
        let u: Upid = "UPID:pve1:0000ABCD:00112233:65A0B0C0:vzstart:100:operator@pve!k8s-secret-name:"
            .parse()
            .unwrap();
        assert_eq!(
            u.redacted(),
            "UPID:pve1:0000ABCD:00112233:65A0B0C0:vzstart:100:operator@pve:"
        );
        assert!(!u.redacted().contains("k8s-secret-name"));
        let plain: Upid = "UPID:pve1:0000ABCD:00112233:65A0B0C0:vzstart:100:root@pam:"
            .parse()
            .unwrap();
        assert_eq!(plain.redacted(), plain.as_str());
    }

    use super::*;

    #[test]
    fn a_token_upid_parses_and_prints_unchanged() {
        let s = "UPID:proxmox2:000D7AA2:08D5A17C:63DF62A5:vzclone:200:root@pam!api_token:";
        let u: Upid = s.parse().unwrap();
        assert_eq!(u.node(), "proxmox2");
        assert_eq!(u.pid(), 0x000D7AA2);
        assert_eq!(u.starttime(), 0x63DF62A5);
        assert_eq!(u.task_type(), "vzclone");
        assert_eq!(u.id(), "200");
        assert_eq!(u.user(), "root@pam!api_token");
        assert_eq!(u.to_string(), s);
    }

    #[test]
    fn an_upid_with_empty_id_and_nine_digit_pstart_parses() {
        let u: Upid = "UPID:pve-1:0002A1B3:1136F0E2A:6650A1B2:vzdump::root@pam:"
            .parse()
            .unwrap();
        assert_eq!(u.id(), "");
        assert_eq!(u.pstart(), 0x1136F0E2A);
    }

    #[test]
    fn malformed_upids_are_rejected() {
        for s in [
            "UPID:pve:1:2:3:vzstart:100:root@pam:",
            "UPID:pve:0002A1B3:0136F0E2:6650A1B2:vzstart:100:root@pam",
            "OK",
            "",
        ] {
            assert!(s.parse::<Upid>().is_err(), "{s}");
        }
    }

    #[test]
    fn exit_statuses_map_to_results() {
        assert_eq!(TaskResult::from_exitstatus("OK"), TaskResult::Ok);
        assert_eq!(TaskResult::from_exitstatus("WARNINGS: 3"), TaskResult::Warnings(3));
        assert_eq!(
            TaskResult::from_exitstatus("interrupted by signal"),
            TaskResult::Failed("interrupted by signal".into())
        );
    }
}
