//! Every condition and Event reason the operator writes, in one enum: CamelCase on the wire,
//! with the rules for which ones are warnings, which ones publish an Event, and how long a pass
//! stopped on one waits ([`Reason::retry_after`]).

use crate::controller::settings::Settings;
use std::time::Duration;

macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        /// A condition or Event reason (CamelCase on the wire, as Kubernetes conventions ask).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)+
        }

        impl Reason {
            /// Every reason, for tests and documentation.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)+];

            /// The reason as written into conditions and Events.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)+
                }
            }
        }
    };
}

reasons! {
    // ---- progress (not warnings)
    /// Nothing was done in Proxmox yet.
    Pending,
    /// A container is being created.
    Creating,
    /// A Proxmox task runs.
    TaskRunning,
    /// A state or move was asked of Proxmox's HA stack, which carries it out on its own.
    HaRequested,
    /// The container became an HA resource.
    HaEnabled,
    /// The container's HA resource was removed.
    HaDisabled,
    /// The object waits for a free task slot on its node.
    WaitingForTaskSlot,
    /// A backup waits for its node (one vzdump per node at a time).
    Queued,
    /// An image is downloaded.
    Downloading,
    /// An OCI image is pulled into storage.
    Pulling,
    /// A template container is built.
    Building,
    /// A template container is converted into a template.
    Converting,
    /// The object is being deleted.
    Deleting,
    /// Proxmox matches the spec.
    InSync,
    /// The container runs.
    Running,
    /// The container is stopped, as requested.
    Stopped,
    /// The object is ready (templates).
    Ready,
    /// A backup completed.
    Completed,
    /// An adopted container is observed only.
    Observed,
    /// Changes wait for a restart of the container.
    RestartRequired,
    /// Events of normal operations.
    Updated,
    /// A container is started.
    Starting,
    /// A task was started (a vzdump).
    Started,
    /// The backup's container moved to another node.
    ContainerMoved,
    /// A container is stopped.
    Stopping,
    /// A container is restarted (to apply process settings).
    Restarting,
    /// An app container whose process keeps ending waits before it is started again.
    RestartBackOff,
    /// A disk grows.
    Resizing,
    /// A container moves to another node.
    Migrating,
    /// A container was found on another node.
    Moved,
    /// Values changed in Proxmox were put back.
    DriftCorrected,
    /// Firewall rules or options were changed.
    FirewallUpdated,
    /// A container or template is created again (it disappeared from Proxmox).
    Recreating,
    /// A changed template spec builds a new template.
    Rebuilding,
    /// An earlier template build is deleted.
    DeletingPrevious,
    /// The object stays in Proxmox (deletionPolicy Retain).
    Retained,
    /// A backup archive was deleted.
    ArchiveDeleted,
    /// A Proxmox object without our tag was left alone.
    LeftUntouched,
    /// A schedule created backups.
    Scheduled,
    /// Retention deleted backups.
    Pruned,
    /// A schedule is suspended.
    Suspended,
    /// The cluster is connected.
    Connected,
    /// The cluster is connecting.
    Connecting,
    /// The cluster is connected with TLS verification off.
    InsecureTLS,
    /// The token holds every privilege the objects using the cluster need.
    PrivilegesGranted,
    // ---- waiting on something else (warnings when they persist)
    /// The token lacks privileges the objects using the cluster need.
    PrivilegesMissing,
    /// The ProxmoxCluster is missing, connecting or failing.
    ClusterNotReady,
    /// The named node is not online.
    NodeUnavailable,
    /// No node fits a new container.
    NoNodeAvailable,
    /// The Proxmox object is locked.
    Locked,
    /// The named LxcBackup has no archive yet.
    WaitingForBackup,
    /// The named LxcTemplate is not ready yet.
    WaitingForTemplate,
    /// The named LxcContainer has no vmid or is not in Proxmox yet.
    WaitingForContainer,
    /// The named LxcContainer does not exist.
    ContainerNotFound,
    /// The named LxcContainer was deleted and made again: it is not the container the
    /// snapshot or backup was made of.
    ContainerRecreated,
    /// The backup's container is locked.
    ContainerLocked,
    /// The clone source does not exist.
    SourceNotFound,
    /// A vmid already belongs to another Proxmox object.
    VmidConflict,
    /// A container this object created lost its identity tag in Proxmox.
    IdentityTagMissing,
    /// A vmid is used by an earlier template build.
    VmidInUse,
    /// Linked clones still use the template.
    InUse,
    /// The container is protected in Proxmox.
    Protected,
    /// A container of ours is gone from Proxmox.
    NotFound,
    /// A Secret or ConfigMap key an app env var reads does not exist.
    EnvSourceNotFound,
    // ---- failures
    /// The spec cannot be applied.
    InvalidSpec,
    /// A Proxmox task failed.
    TaskFailed,
    /// A create, clone or restore failed.
    CreateFailed,
    /// A download failed.
    DownloadFailed,
    /// An OCI image pull failed or was refused.
    PullFailed,
    /// A new image reference was refused by the update strategy.
    ImageUpdateRefused,
    /// A delete failed.
    DeleteFailed,
    /// A backup failed.
    BackupFailed,
    /// A backup task reported success but no archive was found.
    ArchiveNotFound,
    /// Proxmox refused a migration.
    MigrationRefused,
    /// A linked clone cannot be made where asked.
    CloneNotPossible,
    /// The root password Secret is missing.
    PasswordSecretNotFound,
    /// The template image is not on the node.
    ImageNotFound,
    /// The appliance is not in the node's index.
    ApplianceNotFound,
    /// No backup storage on the node.
    NoBackupStorage,
    /// A schedule cannot be parsed.
    InvalidSchedule,
    /// A schedule has no next run.
    NoNextRun,
    /// A scheduled backup could not be created.
    StartFailed,
    /// A ProxmoxCluster's credentials Secret is missing.
    CredentialsNotFound,
    /// A ProxmoxCluster's credentials Secret cannot be read.
    CredentialsNotReadable,
    /// A ProxmoxCluster's credentials are incomplete.
    InvalidCredentials,
    /// A ProxmoxCluster's CA Secret is missing.
    CASecretNotFound,
    /// A ProxmoxCluster's CA Secret cannot be read.
    CASecretNotReadable,
    /// Proxmox rejected the credentials.
    AuthenticationFailed,
    /// The token lacks a privilege.
    PermissionDenied,
    /// The TLS certificate did not verify.
    TLSVerificationFailed,
    /// Proxmox cannot be reached.
    Unreachable,
    /// Proxmox answered with another error.
    ProxmoxError,
    /// The ProxmoxCluster was deleted.
    ClusterDeleted,
    // ---- tenancy: refused by the ProxmoxTenant's policy (nothing reached Proxmox)
    /// The namespace may not use the cluster (no tenant admits it to a `Restricted` cluster,
    /// or its tenant does not list the cluster).
    TenantPolicyClusterNotAllowed,
    /// Two tenants claim the namespace.
    TenantPolicyAmbiguous,
    /// `spec.pool` differs from the tenant's pool.
    TenantPolicyPool,
    /// The vmid lies outside the tenant's range, or the range is full.
    TenantPolicyVmidRange,
    /// The node is not one of the tenant's.
    TenantPolicyNode,
    /// A storage is not one of the tenant's.
    TenantPolicyStorage,
    /// A bridge or VLAN is not one of the tenant's.
    TenantPolicyNetwork,
    /// A static MAC address, which the tenant may not set.
    TenantPolicyMacAddress,
    /// A static IP address outside the tenant's ranges.
    TenantPolicyAddress,
    /// A privileged container, which the tenant may not run.
    TenantPolicyPrivileged,
    /// Features beyond `nesting`, which the tenant may not use.
    TenantPolicyFeatures,
    /// An OCI image from a registry the tenant may not pull from.
    TenantPolicyImageRegistry,
    /// Bind mounts, which the tenant may not use (or a host path outside its prefixes).
    TenantPolicyBindMounts,
    /// Device passthrough, which the tenant may not use (or a device outside its list).
    TenantPolicyDevices,
    /// High availability, which the tenant may not use (or node affinity outside its nodes).
    TenantPolicyHighAvailability,
    /// Raw `lxc.*` keys or a hookscript in the config Proxmox has (from a clone source or an
    /// archive), which a tenant's container may not have.
    TenantPolicyRawConfig,
    /// The tenancy caches are not loaded yet, or the namespace's labels are not known while a
    /// tenant selects namespaces by label: nothing is done until the policy is known.
    TenantPolicyPending,
    /// `spec.firewall` cannot apply: no interface has `firewall: true`, or it is disabled.
    FirewallNotApplied,
    /// The HA rule the operator would keep for the container exists and is not its own.
    HaRuleConflict,
    /// Proxmox refused an HA resource or rule change (the message says why, e.g. `Sys.Console`).
    HaRefused,
    /// Bind mounts or devices, which Proxmox lets only `root@pam` itself set, and the operator
    /// signs in otherwise (with a token, even one of `root@pam`).
    RootRequired,
    /// The tenant's quota would be exceeded.
    TenantPolicyQuotaExceeded,
    /// A clone source, archive or guest to observe that belongs to another namespace (or to
    /// nobody the namespace may use).
    NotOwned,
    /// A container of a spread group went to a node that already runs one of the group (no
    /// node that fits had none).
    SpreadNotPossible,
    /// The container is pinned (`spec.node`) to a node in maintenance and stays there.
    NodeInMaintenance,
    /// `spec.ports`: a Service or EndpointSlice of the container's name exists that the operator
    /// did not create; it is left untouched.
    ServiceNotOwned,
    // ---- a pass that failed with an error (Synced=False), by error class
    /// Proxmox was unreachable or answered 5xx; retried.
    ProxmoxUnavailable,
    /// Proxmox refused the credentials or a privilege is missing.
    ProxmoxAuthFailed,
    /// Proxmox does not know what was asked for.
    ProxmoxNotFound,
    /// Proxmox refused because of the current state.
    ProxmoxConflict,
    /// The Kubernetes API failed.
    KubernetesError,
    /// A write lost a race on the Kubernetes object; retried soon.
    KubernetesConflict,
    /// A bug: the pass panicked.
    InternalError,
}

impl Reason {
    /// Whether an Event with this reason is a warning.
    pub fn is_warning(self) -> bool {
        use Reason::*;
        !matches!(
            self,
            Pending
                | Creating
                | TaskRunning
                | WaitingForTaskSlot
                | Queued
                | Downloading
                | Pulling
                | Restarting
                | Building
                | Converting
                | Deleting
                | InSync
                | Running
                | Stopped
                | Ready
                | Completed
                | Observed
                | RestartRequired
                | Updated
                | Starting
                | Started
                | ContainerMoved
                | Stopping
                | Resizing
                | Migrating
                | Moved
                | DriftCorrected
                | FirewallUpdated
                | Rebuilding
                | DeletingPrevious
                | Retained
                | ArchiveDeleted
                | LeftUntouched
                | Scheduled
                | Pruned
                | Suspended
                | Connected
                | Connecting
                | PrivilegesGranted
                | HaRequested
                | HaEnabled
                | HaDisabled
        )
    }

    /// Whether a condition that newly takes this reason also publishes an Event: warnings do,
    /// except the waits that resolve by themselves (a cluster connecting, a task slot, a queue).
    pub fn emits_event(self) -> bool {
        use Reason::*;
        self.is_warning()
            && !matches!(
                self,
                ClusterNotReady | WaitingForTaskSlot | Queued | Locked | ContainerLocked | TenantPolicyPending
            )
    }
}

/// How long a pass that stops on a reason waits, by default, before it looks again (the one
/// table of waits; a step may still choose another, e.g. a back-off it computed).
impl Reason {
    /// The wait before the next look (jitter is added by the caller); `None` when nothing but
    /// a change of the object helps (an invalid spec) or the wait is computed where it is
    /// known (a task's poll, a restart back-off).
    pub fn retry_after(self, s: &Settings) -> Option<Duration> {
        use Reason::*;
        let secs = Duration::from_secs;
        Some(match self {
            // resolves by itself soon
            Locked | ContainerLocked => s.lock_retry,
            // woken first come first when a slot frees: this is only the safety net
            WaitingForTaskSlot => secs(20),
            Pulling | Downloading => secs(2),
            ClusterNotReady | WaitingForTemplate | CreateFailed | TaskFailed => secs(5),
            WaitingForBackup | WaitingForContainer | EnvSourceNotFound => secs(10),
            NodeUnavailable | NoNodeAvailable | PasswordSecretNotFound | SpreadNotPossible => secs(15),
            // needs another object or a person, looked at again now and then
            ArchiveNotFound | SourceNotFound | ContainerNotFound | Protected | ImageNotFound => secs(30),
            NotOwned | ServiceNotOwned | NodeInMaintenance => secs(30),
            NotFound | HaRefused | CloneNotPossible | PullFailed => secs(60),
            MigrationRefused | DeleteFailed => secs(60),
            RootRequired => secs(120),
            VmidConflict | IdentityTagMissing | VmidInUse | InUse | HaRuleConflict | ImageUpdateRefused => secs(300),
            // waiting for the tenancy caches to list: soon
            TenantPolicyPending => secs(2),
            r if r.as_str().starts_with("TenantPolicy") => secs(30),
            InvalidSpec | TaskRunning | RestartBackOff => return None,
            _ => secs(30),
        })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.as_str().to_string()
    }
}

/// `base` plus up to 20% random jitter, so that many objects do not retry in lockstep.
pub fn jitter(base: Duration) -> Duration {
    base + base.mul_f64(rand::random::<f64>() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_camel_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(s.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert!(seen.insert(s), "{s} twice");
        }
    }

    #[test]
    fn waits_that_resolve_by_themselves_publish_no_event() {
        assert!(!Reason::WaitingForTaskSlot.emits_event());
        assert!(!Reason::ClusterNotReady.emits_event());
        assert!(!Reason::Downloading.emits_event());
        assert!(Reason::VmidConflict.emits_event());
        assert!(Reason::TaskFailed.emits_event());
    }

    #[test]
    fn the_same_reason_waits_the_same_wherever_a_pass_stops_on_it() {
        let s = Settings::default();
        let secs = Duration::from_secs;
        assert_eq!(Reason::ClusterNotReady.retry_after(&s), Some(secs(5)));
        assert_eq!(Reason::Locked.retry_after(&s), Some(s.lock_retry));
        assert_eq!(Reason::WaitingForTaskSlot.retry_after(&s), Some(secs(20)));
        assert_eq!(Reason::VmidConflict.retry_after(&s), Some(secs(300)));
        assert_eq!(Reason::TenantPolicyNode.retry_after(&s), Some(secs(30)));
        assert_eq!(
            Reason::InvalidSpec.retry_after(&s),
            None,
            "waits for a change of the spec"
        );
        // a wait is never zero (no hot loop) and never longer than five minutes
        for r in Reason::ALL {
            if let Some(d) = r.retry_after(&s) {
                assert!(d > Duration::ZERO && d <= secs(300), "{r}: {d:?}");
            }
        }
    }

    /// The backticked CamelCase words of the reason column of the README's troubleshooting
    /// table (`…X` is short for `TenantPolicyX`).
    fn readme_reasons() -> Vec<String> {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme
            .find("## Troubleshooting by condition reason")
            .expect("the table");
        let section = &readme[start..];
        let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
        let mut found = Vec::new();
        for row in section
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| kind"))
        {
            let Some(column) = row.split(" | ").nth(1) else {
                continue;
            };
            for word in column.split('`').skip(1).step_by(2) {
                let word = match word.strip_prefix('…') {
                    Some(rest) => format!("TenantPolicy{rest}"),
                    None => word.to_string(),
                };
                if word.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && word.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    found.push(word);
                }
            }
        }
        found
    }

    #[test]
    fn every_reason_the_readme_troubleshooting_table_names_is_one_the_operator_writes() {
        let conditions = ["Ready", "Synced", "Stalled", "PendingRestart", "OutsideTenantPolicy"];
        let named = readme_reasons();
        assert!(named.len() >= 50, "{named:?}");
        for word in &named {
            assert!(
                Reason::ALL.iter().any(|r| r.as_str() == word) || conditions.contains(&word.as_str()),
                "the README names {word}, which is no reason (nor condition type) of the operator"
            );
        }
        // and every warning a user can meet is explained there
        for r in Reason::ALL.iter().filter(|r| r.is_warning()) {
            assert!(
                named.iter().any(|w| w == r.as_str()),
                "{r} is not in the README's table"
            );
        }
    }
}
