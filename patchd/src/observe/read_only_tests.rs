//! The read-only commands' view of the state: `status` through
//! `Session::open_read_only`, and `report`, `metrics`, `audit verify`
//! through `StateDir::open_read_only`, change nothing in the state
//! directory and create nothing, even where a command that changes the
//! state would reconcile or start a new boot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clock::Clock;
use crate::observe::status::status;
use crate::testkit::TestHost;
use crate::transaction::apply::apply;
use crate::transaction::session::Session;
use crate::transaction::state::{StateDir, StateError};

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    files
}

#[test]
fn status_reads_without_reconciling_or_writing() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    drop(session);
    // After a reboot the kernel has nothing: a command that changes the
    // state would record the bundle lost and start a new boot record.
    host.clock.sleep(Duration::from_secs(700));
    kernel.reboot();
    let state_dir = host.path().join("state");
    let before = snapshot(&state_dir);

    let session = Session::open_read_only(&kernel, &host.clock, host.config()).expect("opens");
    let shown = status(&session).expect("status");
    assert_eq!(shown.bundles[0].phase, "applied", "as recorded");
    assert_eq!(
        shown.bundles[0].kernel_state, "not loaded",
        "as the kernel has it"
    );
    assert!(matches!(
        session.dir.save(session.state()),
        Err(StateError::ReadOnly { .. })
    ));
    drop(session);
    assert_eq!(
        before,
        snapshot(&state_dir),
        "nothing in the state directory changed"
    );
}

#[test]
fn a_missing_state_directory_is_an_error_and_is_not_created() {
    let host = TestHost::new();
    let missing = host.path().join("no-such-state");
    let error = StateDir::open_read_only(&missing, &[0]).expect_err("missing");
    assert!(matches!(error, StateError::Missing { .. }), "{error}");
    assert!(
        error.to_string().contains("--state-dir"),
        "the error says what to check: {error}"
    );
    assert!(!missing.exists(), "not created");
}

#[test]
fn report_metrics_and_audit_reads_leave_the_directory_as_it_was() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    drop(session);
    let state_dir = host.path().join("state");
    let before = snapshot(&state_dir);
    let dir = StateDir::open_read_only(&state_dir, &host.config().trusted_owners).expect("opens");
    let report = crate::observe::report::report(&dir).expect("report");
    assert!(report.to_string().contains("fix_a"), "{report}");
    let _ = dir.load().expect("state");
    let log = crate::transaction::audit::AuditLog::new(dir.path());
    assert_eq!(log.verify().expect("reads").expect("intact"), 1);
    assert!(matches!(
        dir.remove_bundle("applied/fix_a.bundle"),
        Err(StateError::ReadOnly { .. })
    ));
    drop(dir);
    assert_eq!(before, snapshot(&state_dir));
}
