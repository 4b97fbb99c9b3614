//! Table tests of the `LxcBackup` controller's pure parts.

use super::*;

#[test]
fn a_backup_never_adopts_an_archive_it_cannot_tell_apart_from_a_foreign_one() {
    let a = |v: &str, t: i64| (v.to_string(), Some(t), Some(10u64));
    let list = vec![a("pbs:backup/ct/101/old", 50), a("pbs:backup/ct/101/ours", 120)];
    assert_eq!(
        pick_archive(&list, None, 100),
        Some(("pbs:backup/ct/101/ours".into(), Some(10)))
    );
    // another job backed the container up while ours ran: which one is ours cannot be told
    let two = vec![a("pbs:backup/ct/101/ours", 120), a("pbs:backup/ct/101/theirs", 125)];
    assert_eq!(pick_archive(&two, None, 100), None);
    // the log names ours: that one, and only if it is listed
    assert_eq!(
        pick_archive(&two, Some("pbs:backup/ct/101/ours"), 100).map(|x| x.0),
        Some("pbs:backup/ct/101/ours".into())
    );
    assert_eq!(pick_archive(&two, Some("pbs:backup/ct/101/gone"), 100), None);
}

#[test]
fn the_archive_name_comes_from_the_task_log() {
    let log = vec![
        "INFO: starting new backup job: vzdump 101 --mode snapshot --storage local --compress zstd --node pve1"
            .to_string(),
        "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-lxc-101-2026_03_02-02_00_01.tar.zst'".to_string(),
        "INFO: Finished Backup of VM 101 (00:00:12)".to_string(),
    ];
    assert_eq!(
        archive_from_log(&log).as_deref(),
        Some("vzdump-lxc-101-2026_03_02-02_00_01.tar.zst")
    );
    assert_eq!(
        archive_from_log(&["INFO: creating Proxmox Backup Server archive 'ct/101/2026-03-02T02:00:01Z'".to_string()]),
        None
    );
}

#[test]
fn a_vzdump_that_met_a_lock_waits_for_it_instead_of_failing_the_backup() {
    let tail = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // the one error is the lock: wait
    let locked = tail(&[
        "INFO: starting new backup job: vzdump 101 --mode snapshot --storage local --compress zstd --node pve1",
        "ERROR: Backup of VM 101 failed - CT is locked (snapshot)",
        "INFO: Backup job finished with errors",
        "TASK ERROR: job errors",
    ]);
    assert_eq!(met_lock("job errors", &locked).as_deref(), Some("snapshot"));
    assert_eq!(met_lock("CT is locked (migrate)", &[]).as_deref(), Some("migrate"));
    // another error, or more than one: a failed backup
    let other = tail(&["ERROR: Backup of VM 101 failed - no space left on device"]);
    assert_eq!(met_lock("job errors", &other), None);
    let two = tail(&[
        "ERROR: Backup of VM 101 failed - CT is locked (snapshot)",
        "ERROR: unable to remove temporary directory",
    ]);
    assert_eq!(met_lock("job errors", &two), None);
}
