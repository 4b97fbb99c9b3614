//! Health of an object at a glance: the same mapping as the Argo CD health check
//! (`charts/proxmox-lxc-operator/argocd/health.lua`), so the UI's badges and Argo CD agree.

use serde_json::Value;

/// Health of one object, as Argo CD names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// Ready, or a backup that completed.
    Healthy,
    /// The operator is working towards the spec.
    Progressing,
    /// Needs a person or a change of spec.
    Degraded,
    /// A suspended schedule.
    Suspended,
}

impl HealthStatus {
    /// The name Argo CD shows.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Suspended => "Suspended",
        }
    }
}

/// A health status with the message explaining it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why (the Ready condition's reason and message, mostly).
    pub message: String,
}

/// `Ready=False` reasons that need a person (or a change of spec): Degraded.
const DEGRADED: &[&str] = &[
    "InvalidSpec",
    "Failed",
    "AuthenticationFailed",
    "PermissionDenied",
    "Unauthorized",
    "Forbidden",
    "TaskFailed",
    "CredentialsNotFound",
    "SecretNotFound",
    "TLSError",
    "CertificateMismatch",
    "NotOwned",
    "Conflict",
    "ShrinkRefused",
    "InUse",
    "QuotaExceeded",
];

/// `Ready=False` reasons the operator is working through: Progressing.
const PROGRESSING: &[&str] = &[
    "Pending",
    "Creating",
    "Cloning",
    "Restoring",
    "Starting",
    "Stopping",
    "Updating",
    "Resizing",
    "Deleting",
    "Downloading",
    "Building",
    "Queued",
    "Running",
    "TaskRunning",
    "Reconciling",
    "WaitingForTemplate",
    "WaitingForCluster",
    "WaitingForBackup",
    "WaitingForNode",
    "ClusterNotReady",
    "Connecting",
];

/// The condition `type_` of a status, if present.
pub fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn describe(c: Option<&Value>, fallback: &str) -> String {
    let Some(c) = c else { return fallback.to_string() };
    match (text(&c["reason"]), text(&c["message"])) {
        (r, m) if !r.is_empty() && !m.is_empty() => format!("{r}: {m}"),
        ("", "") => fallback.to_string(),
        ("", m) => m.to_string(),
        (r, _) => r.to_string(),
    }
}

fn health(status: HealthStatus, message: impl Into<String>) -> Health {
    Health {
        status,
        message: message.into(),
    }
}

/// The health of a `pve.lxc.dev` object given as JSON (what `health.lua` returns for it).
pub fn of(obj: &Value) -> Health {
    let waiting = health(HealthStatus::Progressing, "Waiting for the operator to report status");
    let schedule = obj["kind"] == "LxcBackupSchedule" || obj["kind"] == "LxcSnapshotSchedule";
    if schedule && obj["spec"]["suspend"] == true {
        return health(HealthStatus::Suspended, "Schedule is suspended (spec.suspend)");
    }
    let status = &obj["status"];
    if !status.is_object() {
        return waiting;
    }
    let ready = condition(status, "Ready");
    if obj["kind"] == "LxcBackup" {
        return match text(&status["phase"]) {
            "Completed" => match status["volid"].as_str() {
                Some(v) => health(HealthStatus::Healthy, format!("Backup completed: {v}")),
                None => health(HealthStatus::Healthy, "Backup completed"),
            },
            "Failed" => health(HealthStatus::Degraded, describe(ready, "Backup failed")),
            "" => health(HealthStatus::Progressing, "Backup pending"),
            p => health(HealthStatus::Progressing, format!("Backup {}", p.to_lowercase())),
        };
    }
    let generation = obj["metadata"]["generation"].as_i64();
    let observed = ready
        .and_then(|r| r["observedGeneration"].as_i64())
        .or_else(|| status["observedGeneration"].as_i64());
    if let (Some(g), Some(o)) = (generation, observed) {
        if o < g {
            return health(
                HealthStatus::Progressing,
                format!("Waiting for the operator to observe generation {g}"),
            );
        }
    }
    if let Some(stalled) = condition(status, "Stalled").filter(|c| c["status"] == "True") {
        return health(HealthStatus::Degraded, describe(Some(stalled), "Stalled"));
    }
    match ready.map(|r| text(&r["status"])) {
        Some("True") => return health(HealthStatus::Healthy, describe(ready, "Ready")),
        _ if status["phase"] == "Failed" => return health(HealthStatus::Degraded, describe(ready, "Failed")),
        Some("False") => {
            let reason = ready.map(|r| text(&r["reason"])).unwrap_or("");
            let degraded = DEGRADED.contains(&reason)
                || (!PROGRESSING.contains(&reason)
                    && (reason.ends_with("Failed")
                        || reason.starts_with("Invalid")
                        || reason.ends_with("Error")
                        || reason.starts_with("TenantPolicy")
                        || reason.ends_with("NotOwned")));
            let status = if degraded {
                HealthStatus::Degraded
            } else {
                HealthStatus::Progressing
            };
            return health(status, describe(ready, "Not ready"));
        }
        _ => {}
    }
    match ready {
        Some(r) => health(HealthStatus::Progressing, describe(Some(r), "Ready is Unknown")),
        None => waiting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn badges_agree_with_the_argocd_health_check_on_its_test_cases() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/proxmox-lxc-operator/argocd");
        let cases: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap()).unwrap();
        let cases = cases["tests"].as_array().expect("tests");
        assert!(cases.len() >= 10);
        for case in cases {
            let path = case["inputPath"].as_str().unwrap();
            let obj: Value = serde_saphyr::from_str(&std::fs::read_to_string(dir.join(path)).unwrap()).unwrap();
            let got = of(&obj);
            assert_eq!(got.status.as_str(), case["healthStatus"]["status"], "{path}");
            assert_eq!(got.message, case["healthStatus"]["message"].as_str().unwrap(), "{path}");
        }
    }
}
