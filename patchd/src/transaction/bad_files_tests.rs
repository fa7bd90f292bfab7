//! Bad local files in and around the state directory (issue #16): a FIFO
//! or other non-regular file is refused without blocking, `audit.head` is
//! capped, symbolic links are refused consistently (`applied/`,
//! `audit.log`, `audit.head`), and bundle copies are private (0600).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::apply::{apply, reapply};
use super::audit::{AuditAction, AuditEntry, AuditLog, AuditResult};
use super::state::{Phase, StateDir, StateError};
use crate::files::tests::{mkfifo, without_blocking};
use crate::ownership::default_owners;
use crate::testkit::TestHost;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn bundle_copies_are_private() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    // A permissive umask must not leak into the copy.
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let copy = host.path().join("state/applied/fix_a.bundle");
    assert_eq!(mode(&copy), 0o600);
}

#[test]
fn a_fifo_state_file_is_refused_without_blocking() {
    let host = TestHost::new();
    let state = host.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    mkfifo(&state.join("state.json"));
    let result = without_blocking(move || {
        let dir = StateDir::open(&state, &default_owners()).expect("opens");
        dir.load().map(|_| ())
    });
    let error = result.expect_err("refused");
    assert!(matches!(error, StateError::Io { .. }), "{error:?}");
    assert!(
        crate::error_text(&error).contains("not a regular file"),
        "{}",
        crate::error_text(&error)
    );
}

#[test]
fn a_fifo_or_oversized_audit_head_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::new(dir.path());
    log.append(
        1,
        AuditAction::Apply,
        AuditResult::Ok,
        AuditEntry::default(),
    )
    .expect("append");
    std::fs::remove_file(dir.path().join("audit.head")).expect("rm");
    mkfifo(&dir.path().join("audit.head"));
    let path = dir.path().to_owned();
    let error = without_blocking(move || AuditLog::new(&path).verify().map(|_| ()))
        .expect_err("a FIFO head is refused");
    assert!(
        crate::error_text(&error).contains("not a regular file"),
        "{}",
        crate::error_text(&error)
    );
    std::fs::remove_file(dir.path().join("audit.head")).expect("rm");
    std::fs::write(dir.path().join("audit.head"), vec![b' '; 1 << 20]).expect("huge head");
    let tampered = log.verify().expect("reads").expect_err("damaged");
    assert!(tampered.what.contains("damaged"), "{tampered}");
}

#[test]
fn symbolic_links_in_the_state_directory_are_refused() {
    // audit.log and audit.head: a verify refuses both, naming the link.
    for name in ["audit.log", "audit.head"] {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::new(dir.path());
        log.append(
            1,
            AuditAction::Apply,
            AuditResult::Ok,
            AuditEntry::default(),
        )
        .expect("append");
        let real = dir.path().join(format!("{name}.real"));
        std::fs::rename(dir.path().join(name), &real).expect("mv");
        std::os::unix::fs::symlink(&real, dir.path().join(name)).expect("link");
        let error = log.verify().map(|_| ()).expect_err(name);
        assert!(
            crate::error_text(&error).contains("symbolic link"),
            "{name}: {}",
            crate::error_text(&error)
        );
    }

    // applied/: a new copy is not written through it, and a copy is not
    // re-applied through a link.
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    drop(session);
    let state = host.path().join("state");
    let elsewhere = host.path().join("elsewhere");
    std::fs::rename(state.join("applied"), &elsewhere).expect("mv");
    std::os::unix::fs::symlink(&elsewhere, state.join("applied")).expect("link");
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &[host.bundle("fix_b")]).expect_err("refused");
    assert!(
        crate::error_text(&error).contains("symbolic link"),
        "{}",
        crate::error_text(&error)
    );
    assert!(!elsewhere.join("fix_b.bundle").exists());
    assert_eq!(kernel.patch_enabled("fix_b"), None, "nothing loaded");
    drop(session);

    // A copy that is a link is not read (after a "reboot").
    std::fs::remove_file(state.join("applied")).expect("rm link");
    std::fs::rename(&elsewhere, state.join("applied")).expect("mv back");
    let copy = state.join("applied/fix_a.bundle");
    let target = host.path().join("fix_a.copy");
    std::fs::rename(&copy, &target).expect("mv");
    std::os::unix::fs::symlink(&target, &copy).expect("link");
    let rebooted = TestHost::kernel();
    let mut session = host.session(&rebooted);
    assert_eq!(
        session.state().get("fix_a").map(|r| r.phase),
        Some(Phase::Lost)
    );
    let error = reapply(&mut session, "fix_a").expect_err("refused");
    assert!(
        crate::error_text(&error).contains("symbolic link"),
        "{}",
        crate::error_text(&error)
    );
}
