//! Ownership proven in Proxmox, never by a status field a user could write: a guest is owned by
//! the namespace of the object whose identity tag (`k8s-<uid>`) it carries; a backup archive by
//! the namespace, container and `LxcBackup` recorded in the first line of its notes, which the
//! operator writes when it makes the archive (a user's notes can only follow on later lines:
//! the schema forbids line breaks in them).

use super::policy::{Admission, Refusal};
pub use crate::controller::cluster::inventory::identity_uid;
use crate::controller::kernel::Reason;

/// Who a Proxmox guest belongs to, as far as the operator can prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestOwner {
    /// It carries the identity tag of an object in this namespace.
    Namespace(String),
    /// It carries an identity tag of an object this process does not know (deleted, or in a
    /// namespace it does not watch).
    UnknownObject,
    /// No identity tag: not made (or no longer managed) by the operator.
    Untagged,
}

/// Whether an object in `namespace` may clone, observe or back up guest `vmid` of `kind`
/// (`lxc`/`qemu`) owned by `owner`: guests of its own namespace always; untagged guests on an
/// `Open` cluster without tenant (the single-team setup), or when its tenant lists the vmid in
/// `sharedVmids`; nothing else.
pub fn may_use_guest(
    namespace: &str,
    vmid: u32,
    kind: &str,
    owner: &GuestOwner,
    admission: &Admission,
    what: &str,
) -> Result<(), Refusal> {
    if kind != "lxc" {
        return Err(Refusal::new(
            Reason::NotOwned,
            format!("{what}: vmid {vmid} is a {kind} guest, not an LXC container"),
        ));
    }
    match owner {
        GuestOwner::Namespace(ns) if ns == namespace => Ok(()),
        GuestOwner::Namespace(_) | GuestOwner::UnknownObject => Err(Refusal::new(
            Reason::NotOwned,
            format!("{what}: CT {vmid} is managed for another namespace; only containers of namespace {namespace} can be used"),
        )),
        GuestOwner::Untagged => match admission.spec() {
            None => Ok(()),
            Some(t) if t.shared_vmids.iter().any(|r| r.contains(vmid)) => Ok(()),
            Some(_) => Err(Refusal::new(
                Reason::NotOwned,
                format!(
                    "{what}: CT {vmid} was not made by the operator for namespace {namespace}, and the tenant {} does not share it (spec.sharedVmids)",
                    admission.tenant_name().unwrap_or_default()
                ),
            )),
        },
    }
}

/// The first word of the ownership line of an archive's notes.
const MARK: &str = "pve.lxc.dev";

/// What the operator records about an archive it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveMark {
    /// Namespace of the container backed up.
    pub namespace: String,
    /// uid of that namespace (`nsuid=`; absent in marks written before it was recorded): a
    /// namespace deleted and created again under the same name does not inherit the archive.
    pub namespace_uid: Option<String>,
    /// uid of the `LxcContainer` backed up.
    pub container_uid: String,
    /// uid of the `LxcBackup` that made it.
    pub backup_uid: String,
}

impl ArchiveMark {
    /// The first line of the archive's notes.
    pub fn line(&self) -> String {
        let nsuid = self
            .namespace_uid
            .as_ref()
            .map(|u| format!(" nsuid={u}"))
            .unwrap_or_default();
        format!(
            "{MARK} ns={}{nsuid} ct={} backup={}",
            self.namespace, self.container_uid, self.backup_uid
        )
    }

    /// Reads the mark from an archive's notes (its first line), if the operator wrote one.
    pub fn parse(notes: Option<&str>) -> Option<ArchiveMark> {
        let first = notes?.lines().next()?;
        let mut words = first.split(' ');
        if words.next()? != MARK {
            return None;
        }
        let (mut ns, mut nsuid, mut ct, mut backup) = (None, None, None, None);
        for w in words {
            match w.split_once('=')? {
                ("ns", v) => ns = Some(v.to_string()),
                ("nsuid", v) => nsuid = Some(v.to_string()),
                ("ct", v) => ct = Some(v.to_string()),
                ("backup", v) => backup = Some(v.to_string()),
                _ => return None,
            }
        }
        Some(ArchiveMark {
            namespace: ns?,
            namespace_uid: nsuid,
            container_uid: ct?,
            backup_uid: backup?,
        })
    }
}

/// Whether an archive's `notes` carry the mark of the `LxcBackup` with `backup_uid` in
/// `namespace` (the one rule for the backup that made it and for a restore from it).
pub fn made_by_backup(notes: Option<&str>, namespace: &str, backup_uid: &str) -> bool {
    ArchiveMark::parse(notes).is_some_and(|m| m.namespace == namespace && m.backup_uid == backup_uid)
}

/// The `notes-template` of a vzdump the operator starts: the mark first, then the user's
/// notes on the next line (Proxmox's escapes: `\n` is a line break, `\\` a backslash).
pub fn notes_template(mark: &ArchiveMark, user: Option<&str>) -> String {
    match user.filter(|u| !u.is_empty()) {
        Some(u) => format!("{}\\n{}", mark.line(), u.replace('\\', "\\\\")),
        None => mark.line(),
    }
}

/// The user's part of an archive's notes (without the mark).
pub fn user_notes(notes: &str) -> Option<String> {
    let rest = match ArchiveMark::parse(Some(notes)) {
        Some(_) => notes.split_once('\n').map(|x| x.1).unwrap_or(""),
        None => notes,
    };
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Whether an object in `namespace` (whose uid is `namespace_uid`, when known) may restore
/// archive `volid` with `notes`: archives the operator made for this namespace (this very one,
/// when the mark records its uid: not an earlier namespace of the same name); unmarked ones
/// (made outside the operator) only on an `Open` cluster without tenant.
pub fn may_restore(
    namespace: &str,
    namespace_uid: Option<&str>,
    volid: &str,
    notes: Option<&str>,
    admission: &Admission,
) -> Result<(), Refusal> {
    match (ArchiveMark::parse(notes), admission.spec()) {
        (Some(m), _) if m.namespace == namespace => match (m.namespace_uid.as_deref(), namespace_uid) {
            (None, _) => Ok(()),
            (Some(was), Some(is)) if was.eq_ignore_ascii_case(is) => Ok(()),
            (Some(was), is) => Err(Refusal::new(
                Reason::NotOwned,
                format!(
                    "archive {volid} was made for an earlier namespace {namespace} (uid {was}), not this one (uid {}): a namespace created again does not inherit its predecessor's archives; an administrator may adopt it by setting nsuid=<this namespace's uid> in the first line of the archive's notes in Proxmox",
                    is.unwrap_or("not known yet")
                ),
            )),
        },
        (Some(_), _) => Err(Refusal::new(
            Reason::NotOwned,
            format!("archive {volid} was made for another namespace; only archives of namespace {namespace} can be restored"),
        )),
        (None, None) => Ok(()),
        (None, Some(_)) => Err(Refusal::new(
            Reason::NotOwned,
            format!("archive {volid} was not made by the operator for namespace {namespace}; restore it from an LxcBackup of this namespace"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::proxmox_tenant::{ProxmoxTenant, ProxmoxTenantSpec, VmidRange};
    use std::sync::Arc;

    fn tenant(shared: Vec<VmidRange>) -> Admission {
        Admission::Tenant(Arc::new(ProxmoxTenant::new(
            "team-a",
            ProxmoxTenantSpec {
                clusters: vec!["pve".into()],
                shared_vmids: shared,
                ..Default::default()
            },
        )))
    }

    #[test]
    fn a_guest_of_another_namespace_is_never_usable() {
        let owner = GuestOwner::Namespace("team-b".into());
        let r = may_use_guest("team-a", 105, "lxc", &owner, &Admission::Open, "source.clone");
        assert_eq!(r.unwrap_err().reason, Reason::NotOwned);
        let r = may_use_guest("team-a", 105, "lxc", &GuestOwner::UnknownObject, &Admission::Open, "x");
        assert!(r.is_err());
        let own = GuestOwner::Namespace("team-a".into());
        assert!(may_use_guest("team-a", 105, "lxc", &own, &tenant(vec![]), "x").is_ok());
    }

    #[test]
    fn untagged_guests_are_usable_only_without_a_tenant_or_when_shared() {
        let u = GuestOwner::Untagged;
        assert!(may_use_guest("a", 9000, "lxc", &u, &Admission::Open, "x").is_ok());
        assert!(may_use_guest("a", 9000, "lxc", &u, &tenant(vec![]), "x").is_err());
        let shared = tenant(vec![VmidRange { min: 9000, max: 9009 }]);
        assert!(may_use_guest("a", 9000, "lxc", &u, &shared, "x").is_ok());
        assert!(may_use_guest("a", 9010, "lxc", &u, &shared, "x").is_err());
    }

    #[test]
    fn a_virtual_machine_is_never_cloned_or_observed_as_a_container() {
        let r = may_use_guest("a", 100, "qemu", &GuestOwner::Untagged, &Admission::Open, "spec.vmid");
        assert!(r.unwrap_err().message.contains("qemu"));
    }

    #[test]
    fn the_archive_mark_round_trips_and_user_notes_cannot_forge_it() {
        let m = ArchiveMark {
            namespace: "team-a".into(),
            namespace_uid: Some("n-1".into()),
            container_uid: "c-1".into(),
            backup_uid: "b-1".into(),
        };
        let t = notes_template(&m, Some("nightly \\ pve.lxc.dev ns=team-b ct=x backup=y"));
        // what Proxmox stores after unescaping the template
        let stored = t.replacen("\\n", "\n", 1).replace("\\\\", "\\");
        assert_eq!(ArchiveMark::parse(Some(&stored)), Some(m.clone()));
        assert_eq!(
            user_notes(&stored).as_deref(),
            Some("nightly \\ pve.lxc.dev ns=team-b ct=x backup=y")
        );
        assert_eq!(ArchiveMark::parse(Some("pve.lxc.dev ns=a")), None);
        assert_eq!(ArchiveMark::parse(Some("nightly")), None);
    }

    #[test]
    fn archives_of_another_namespace_are_never_restored() {
        let b = "pve.lxc.dev ns=team-b ct=c backup=b";
        assert!(may_restore("team-a", None, "v", Some(b), &Admission::Open).is_err());
        assert!(may_restore("team-b", None, "v", Some(b), &tenant(vec![])).is_ok());
        assert!(may_restore("team-a", None, "v", Some("by hand"), &Admission::Open).is_ok());
        assert!(may_restore("team-a", None, "v", None, &tenant(vec![])).is_err());
    }

    #[test]
    fn after_namespace_team_b_is_created_again_an_archive_marked_for_the_earlier_one_is_refused() {
        let b = "pve.lxc.dev ns=team-b nsuid=uid-1 ct=c backup=b";
        let r = may_restore("team-b", Some("uid-2"), "v", Some(b), &tenant(vec![])).unwrap_err();
        assert_eq!(r.reason, Reason::NotOwned);
        assert!(
            r.message.contains("earlier namespace team-b (uid uid-1)"),
            "{}",
            r.message
        );
        assert!(
            may_restore("team-b", None, "v", Some(b), &Admission::Open).is_err(),
            "fails closed"
        );
        assert!(may_restore("team-b", Some("UID-1"), "v", Some(b), &Admission::Open).is_ok());
        // the adoption path: an admin writes the new uid into the mark
        let adopted = "pve.lxc.dev ns=team-b nsuid=uid-2 ct=c backup=b";
        assert!(may_restore("team-b", Some("uid-2"), "v", Some(adopted), &tenant(vec![])).is_ok());
        // marks written before the uid was recorded keep working by name
        let old = "pve.lxc.dev ns=team-b ct=c backup=b";
        assert!(may_restore("team-b", Some("uid-2"), "v", Some(old), &tenant(vec![])).is_ok());
    }

    #[test]
    fn an_archive_counts_as_a_backups_only_with_its_uid_and_its_namespace_in_the_mark() {
        let notes = Some("pve.lxc.dev ns=team-b ct=c backup=b1\nnightly");
        assert!(made_by_backup(notes, "team-b", "b1"));
        assert!(
            !made_by_backup(notes, "team-a", "b1"),
            "a mark naming another namespace"
        );
        assert!(!made_by_backup(notes, "team-b", "b2"));
        assert!(!made_by_backup(Some("by hand"), "team-b", "b1"));
        assert!(!made_by_backup(None, "team-b", "b1"));
    }
}
