//! The audit log anchored (issue #16): a session that may change the
//! kernel refuses a broken chain before anything happens, a log deleted
//! with its head is found through the state, and `restart` sets a broken
//! log aside and starts a new chain that accounts for the state.

use super::*;
use crate::testkit::TestHost;
use crate::transaction::apply::apply;
use crate::transaction::session::Session;
use crate::transaction::SessionError;

#[test]
fn deleting_the_log_and_its_head_is_found_through_the_state() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let state = session.state().clone();
    drop(session);
    let dir = host.path().join("state");
    std::fs::remove_file(dir.join(AUDIT_FILE)).expect("rm log");
    std::fs::remove_file(dir.join(HEAD_FILE)).expect("rm head");

    // The chain alone is "intact" (empty); the state says otherwise.
    let log = AuditLog::new(&dir);
    let accounted = log.accounted().expect("reads").expect("an empty chain");
    assert_eq!(accounted.lines, 0);
    let tampered = cross_check(&log, &accounted, &state).expect_err("found");
    assert!(tampered.what.contains("fix_a"), "{tampered}");

    // A session that would change the kernel refuses before touching it.
    let calls = kernel.changes().len();
    let error = Session::open(&kernel, &host.clock, host.config()).expect_err("refused");
    assert!(
        matches!(error, SessionError::Audit(AuditError::Broken { .. })),
        "{error:?}"
    );
    assert_eq!(kernel.changes().len(), calls, "nothing was changed");
    assert!(!dir.join(AUDIT_FILE).exists(), "nothing was appended");
}

#[test]
fn a_cut_log_refuses_the_next_apply_before_the_kernel_is_touched() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    apply(&mut session, &[host.bundle("fix_b")]).expect("applies");
    drop(session);
    let path = host.path().join("state").join(AUDIT_FILE);
    let text = std::fs::read_to_string(&path).expect("read");
    let first: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &first).expect("cut");
    let state_before = std::fs::read(host.path().join("state/state.json")).expect("state");
    let calls = kernel.changes().len();

    let error = Session::open(&kernel, &host.clock, host.config()).expect_err("refused");
    let text = crate::error_text(&error);
    assert!(text.contains("patchd audit restart"), "{text}");
    assert!(text.contains("removed"), "{text}");
    assert_eq!(kernel.changes().len(), calls);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), first);
    assert_eq!(
        std::fs::read(host.path().join("state/state.json")).expect("state"),
        state_before
    );
    assert_eq!(crate::failure_kind(&error), crate::FailureKind::Tampered);
}

#[test]
fn restart_keeps_the_broken_log_and_accounts_for_the_state() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let state = session.state().clone();
    drop(session);
    let dir = host.path().join("state");
    let log = AuditLog::new(&dir);
    // Intact: nothing to restart.
    let error = restart(&log, 1_700_000_500, &state).expect_err("intact");
    assert!(matches!(error, RestartError::Intact { .. }), "{error:?}");

    std::fs::write(dir.join(AUDIT_FILE), b"edited\n").expect("tamper");
    let restarted = restart(&log, 1_700_000_500, &state).expect("restarts");
    assert_eq!(restarted.bundles, ["fix_a"]);
    assert_eq!(
        std::fs::read(dir.join("audit.log.broken-1700000500")).expect("kept"),
        b"edited\n"
    );
    assert!(dir.join("audit.head.broken-1700000500").exists());
    let records = log
        .read_verified()
        .expect("reads")
        .expect("a new intact chain");
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.action == AuditAction::Restart));
    assert!(
        records[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("broken"),
        "{records:?}"
    );
    let accounted = log.accounted().expect("reads").expect("intact");
    cross_check(&log, &accounted, &state).expect("accounts for the state");
    // And patchd works again.
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_b")]).expect("applies");
}
