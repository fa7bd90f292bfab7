//! The crash-loop guard against the fake kernel, one session at a time: the
//! boot record at a new boot, survivors by clean shutdown and by uptime,
//! holding and releasing, an apply cut short by a crash, and an unreadable
//! boot id. The daemon's side is in `daemon/guard_tests.rs`.

use std::time::Duration;

use super::*;
use crate::clock::Clock;
use crate::fake_kernel::{FakeKernel, FAKE_BOOT_ID};
use crate::testkit::TestHost;
use crate::transaction::apply::{apply, ApplyError};
use crate::transaction::audit::{AuditAction, AuditRecord, AuditResult};
use crate::transaction::release::{release, ReleaseError, ReleaseTarget};
use crate::transaction::state::{OpenTransaction, STATE_FILE};

fn audit_lines(host: &TestHost) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(host.path().join("state/audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect()
}

/// The state file as it is on disk, read without the lock.
fn state_on_disk(host: &TestHost) -> State {
    let path = host.path().join("state").join(STATE_FILE);
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("state")
}

/// Applies `ids` in one session of `kernel`.
fn applied(host: &TestHost, kernel: &FakeKernel, ids: &[&str]) {
    let mut session = host.session(kernel);
    let paths: Vec<_> = ids.iter().map(|id| host.bundle(id)).collect();
    apply(&mut session, &paths).expect("applies");
}

fn phase(session: &Session<'_>, id: &str) -> Option<Phase> {
    session.state().get(id).map(|record| record.phase)
}

#[test]
fn the_first_session_records_the_boot_and_a_fresh_install_is_no_crash() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let session = host.session(&kernel);
    let boot = session.state().boot.clone().expect("recorded");
    assert_eq!(
        boot,
        BootRecord {
            id: FAKE_BOOT_ID.to_owned(),
            clean_shutdown: false,
            after_crash: false,
        }
    );
    assert_eq!(session.boot_id(), Some(FAKE_BOOT_ID));
    assert!(!after_crash(&session));
    drop(session);
    // The same boot again: nothing new.
    let before = std::fs::read(host.path().join("state").join(STATE_FILE)).expect("read");
    drop(host.session(&kernel));
    let after = std::fs::read(host.path().join("state").join(STATE_FILE)).expect("read");
    assert_eq!(before, after);
}

#[test]
fn a_reboot_without_a_clean_shutdown_is_a_crash_and_after_one_is_not() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    kernel.reboot();
    let session = host.session(&kernel);
    assert!(after_crash(&session), "{:?}", session.state().boot);
    assert_eq!(phase(&session, "fix_a"), Some(Phase::Lost));
    let record = session.state().get("fix_a").expect("recorded");
    assert!(!record.survived);
    drop(session);

    // The next boot ends with `patchd shutdown` while fix_a is applied.
    let mut session = host.session(&kernel);
    crate::transaction::apply::reapply(&mut session, "fix_a").expect("re-applies");
    let report = shutdown(&mut session).expect("records");
    assert_eq!(report.applied, ["fix_a"]);
    assert!(report.boot_id.is_some());
    // Not a survivor yet: only the boot after the shutdown proves it.
    assert!(!session.state().get("fix_a").expect("recorded").survived);
    drop(session);
    kernel.reboot();
    let session = host.session(&kernel);
    assert!(!after_crash(&session));
    assert!(session.state().get("fix_a").expect("recorded").survived);
    let last = audit_lines(&host)
        .into_iter()
        .rfind(|line| line.action == AuditAction::Shutdown)
        .expect("a shutdown line");
    assert_eq!(last.result, AuditResult::Ok);
    assert!(
        last.detail.as_deref().is_some_and(|d| d.contains("fix_a")),
        "{last:?}"
    );
}

#[test]
fn work_after_a_shutdown_in_the_same_boot_voids_it() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    let mut session = host.session(&kernel);
    shutdown(&mut session).expect("records");
    assert!(session.state().boot.as_ref().expect("boot").clean_shutdown);
    // The machine did not go down: patchd works again (a restart of the
    // unit), then it crashes.
    note_work(&mut session).expect("notes");
    assert!(!session.state().boot.as_ref().expect("boot").clean_shutdown);
    drop(session);
    kernel.reboot();
    let session = host.session(&kernel);
    assert!(after_crash(&session));
    assert!(!session.state().get("fix_a").expect("recorded").survived);
}

#[test]
fn uptime_survivors_are_marked_by_work_never_by_status() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    host.clock.sleep(Duration::from_secs(599));
    let mut session = host.session(&kernel);
    assert_eq!(
        note_work(&mut session).expect("notes"),
        Vec::<String>::new()
    );
    assert_eq!(next_survivor_at(session.state(), 600), Some(1_700_000_600));
    drop(session);
    host.clock.sleep(Duration::from_secs(1));

    // Status reads: it marks nothing.
    let before = std::fs::read(host.path().join("state").join(STATE_FILE)).expect("read");
    let session = host.session(&kernel);
    let status = crate::observe::status::status(&session).expect("status");
    assert!(!status.bundles[0].survived);
    drop(session);
    let after = std::fs::read(host.path().join("state").join(STATE_FILE)).expect("read");
    assert_eq!(before, after, "status wrote nothing");

    let mut session = host.session(&kernel);
    assert_eq!(note_work(&mut session).expect("notes"), ["fix_a"]);
    assert!(
        state_on_disk(&host)
            .get("fix_a")
            .expect("recorded")
            .survived
    );
    assert_eq!(next_survivor_at(session.state(), 600), None);
    // A survivor is re-applied after a crash.
    drop(session);
    kernel.reboot();
    let session = host.session(&kernel);
    assert!(!after_crash(&session), "nothing unproven was recorded");
}

#[test]
fn status_after_a_boot_change_marks_no_survivor() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    // Applied long ago, but no patchd work saw it since: no proof.
    host.clock.sleep(Duration::from_secs(7200));
    kernel.reboot();
    let session = host.session(&kernel);
    let status = crate::observe::status::status(&session).expect("status");
    assert!(status.crash_guard.after_crash);
    assert_eq!(status.bundles[0].phase, "lost");
    assert!(!status.bundles[0].survived);
    assert!(
        !state_on_disk(&host)
            .get("fix_a")
            .expect("recorded")
            .survived
    );
}

#[test]
fn no_uptime_proof_when_it_is_zero() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    host.clock.sleep(Duration::from_secs(100_000));
    let mut config = host.config();
    config.crash_guard_uptime_secs = 0;
    let mut session = Session::open(&kernel, &host.clock, config).expect("opens");
    assert!(note_work(&mut session).expect("notes").is_empty());
    assert_eq!(next_survivor_at(session.state(), 0), None);
}

/// The second boot's id.
const BOOT_2: &str = "00000000-0000-0000-0000-000000000002";

/// Applies fix_a on a first boot, then boots `rebooted` (another boot id)
/// after a crash and holds fix_a as the daemon does.
fn held_after_a_crash(host: &TestHost, rebooted: &FakeKernel) {
    applied(host, &TestHost::kernel(), &["fix_a"]);
    let mut session = host.session(rebooted);
    hold(&mut session, "fix_a").expect("holds");
    assert_eq!(phase(&session, "fix_a"), Some(Phase::Held));
}

#[test]
fn a_held_bundle_is_audited_and_released_on_demand() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().with_boot_id(BOOT_2);
    held_after_a_crash(&host, &kernel);
    let line = audit_lines(&host).pop().expect("a line");
    assert_eq!(
        (line.action, line.result),
        (AuditAction::Hold, AuditResult::Ok)
    );
    let detail = line.detail.unwrap_or_default();
    assert!(
        detail.contains("without a clean shutdown")
            && detail.contains("600 s")
            && detail.contains("patchd release fix_a"),
        "{detail}"
    );
    assert!(copy_exists(&host, "fix_a"));

    let mut session = host.session(&kernel);
    assert!(matches!(
        release(&mut session, &ReleaseTarget::Ids(vec!["fix_z".to_owned()])),
        Err(ReleaseError::NotHeld { phase: None, .. })
    ));
    let report = release(&mut session, &ReleaseTarget::All).expect("releases");
    assert_eq!(report.released, ["fix_a"]);
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    let record = session.state().get("fix_a").expect("recorded");
    assert_eq!(record.phase, Phase::Applied);
    assert!(!record.survived, "a release proves nothing");
    let line = audit_lines(&host).pop().expect("a line");
    assert_eq!(
        (line.action, line.result),
        (AuditAction::Apply, AuditResult::Ok)
    );
    assert!(
        line.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("released:")),
        "{line:?}"
    );
    assert!(matches!(
        release(&mut session, &ReleaseTarget::Ids(vec!["fix_a".to_owned()])),
        Err(ReleaseError::NotHeld {
            phase: Some(Phase::Applied),
            ..
        })
    ));
    assert!(session.audit_log().verify().expect("readable").is_ok());
}

fn copy_exists(host: &TestHost, id: &str) -> bool {
    host.path()
        .join(format!("state/applied/{id}.bundle"))
        .exists()
}

#[test]
fn a_failed_release_leaves_the_bundle_held() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .with_boot_id(BOOT_2)
        .busy_on_enable("fix_a", u32::MAX);
    held_after_a_crash(&host, &kernel);
    let mut session = host.session(&kernel);
    let error = release(&mut session, &ReleaseTarget::All).expect_err("busy");
    assert!(matches!(error, ReleaseError::Failed { .. }), "{error}");
    assert!(error.to_string().contains("stays held"), "{error}");
    assert_eq!(crate::failure_kind(&error), crate::FailureKind::Busy);
    assert_eq!(phase(&session, "fix_a"), Some(Phase::Held));
    assert!(copy_exists(&host, "fix_a"));
    // A plain apply of the same file is refused with what to do.
    let error = apply(&mut session, &[host.bundle("fix_a")]).expect_err("held");
    assert!(matches!(error, ApplyError::NotApplicable { .. }), "{error}");
    assert!(
        error.to_string().contains("patchd release fix_a"),
        "{error}"
    );
}

#[test]
fn a_kill_during_a_release_leaves_the_bundle_held() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().with_boot_id(BOOT_2);
    held_after_a_crash(&host, &kernel);
    // What the state file says after a kill once fix_a was loading.
    let path = host.path().join("state").join(STATE_FILE);
    let mut state = state_on_disk(&host);
    let transaction = state.next_transaction;
    state.next_transaction += 1;
    state.open_transaction = Some(OpenTransaction {
        id: transaction,
        started: 1_700_000_000,
        reapplying: vec!["fix_a".to_owned()],
        held: vec!["fix_a".to_owned()],
    });
    let record = state.get_mut("fix_a").expect("record");
    record.phase = Phase::Loading;
    record.transaction = transaction;
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");

    let session = host.session(&kernel);
    assert_eq!(phase(&session, "fix_a"), Some(Phase::Held));
    let what = &session.reconciled().changes[0].what;
    assert!(what.contains("recorded as held again"), "{what}");
    assert!(copy_exists(&host, "fix_a"));
}

#[test]
fn an_apply_a_crash_cut_short_is_held_not_forgotten() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    // fix_b was being enabled when the machine went down.
    let path = host.path().join("state").join(STATE_FILE);
    drop(host.session(&kernel));
    let mut state = state_on_disk(&host);
    let mut record = state.get("fix_a").expect("record").clone();
    record.id = "fix_b".to_owned();
    record.phase = Phase::Enabling;
    record.applied_at = None;
    record.transaction = state.next_transaction;
    record.bundle_file = "applied/fix_b.bundle".to_owned();
    std::fs::copy(
        host.path().join("state/applied/fix_a.bundle"),
        host.path().join("state/applied/fix_b.bundle"),
    )
    .expect("copy");
    state.open_transaction = Some(OpenTransaction {
        id: record.transaction,
        started: 1_700_000_000,
        reapplying: Vec::new(),
        held: Vec::new(),
    });
    state.next_transaction += 1;
    state.bundles.push(record);
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");

    kernel.reboot();
    let session = host.session(&kernel);
    assert_eq!(phase(&session, "fix_b"), Some(Phase::Held));
    assert_eq!(phase(&session, "fix_a"), Some(Phase::Lost));
    assert!(copy_exists(&host, "fix_b"));
    let line = audit_lines(&host)
        .into_iter()
        .rfind(|line| line.bundle_id.as_deref() == Some("fix_b"))
        .expect("a line");
    assert_eq!(line.action, AuditAction::Hold);
    assert!(
        line.detail
            .as_deref()
            .is_some_and(|d| d.contains("while it was being applied")),
        "{line:?}"
    );
}

#[test]
fn a_kill_without_a_reboot_still_forgets_an_unfinished_apply() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    drop(host.session(&kernel));
    let path = host.path().join("state").join(STATE_FILE);
    applied(&host, &kernel, &["fix_a"]);
    let mut state = state_on_disk(&host);
    state.open_transaction = Some(OpenTransaction {
        id: 1,
        started: 1_700_000_000,
        reapplying: Vec::new(),
        held: Vec::new(),
    });
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
    let session = host.session(&kernel);
    assert_eq!(phase(&session, "fix_a"), None, "same boot: all or nothing");
}

#[test]
fn an_unreadable_boot_id_turns_the_guard_off_without_failing() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    applied(&host, &kernel, &["fix_a"]);
    let recorded = state_on_disk(&host).boot;
    kernel.reboot();
    kernel.set_boot_id(None);
    let mut session = host.session(&kernel);
    assert_eq!(session.boot_id(), None);
    assert!(!after_crash(&session));
    assert_eq!(session.state().boot, recorded, "left as it was");
    note_work(&mut session).expect("notes");
    let report = shutdown(&mut session).expect("does not fail");
    assert_eq!(report.boot_id, None);
    let line = audit_lines(&host).pop().expect("a line");
    assert_eq!(
        (line.action, line.result),
        (AuditAction::Shutdown, AuditResult::Failed)
    );
    assert!(!session.state().boot.as_ref().expect("boot").clean_shutdown);
    let status = crate::observe::status::status(&session).expect("status");
    assert!(
        status.to_string().contains("crash-loop guard: off"),
        "{status}"
    );
}
