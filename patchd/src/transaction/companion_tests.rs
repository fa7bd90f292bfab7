//! The companion module is checked like the trust store before it is
//! loaded (issue #16): a file others could write, or a link, is refused
//! and nothing changes.

use std::os::unix::fs::PermissionsExt;

use crate::testkit::TestHost;
use crate::transaction::apply::{apply, ApplyError};
use crate::transaction::audit::AuditResult;

#[test]
fn a_companion_others_could_write_is_refused_before_loading() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let kmod = host.path().join("suture.ko");
    std::fs::set_permissions(&kmod, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let bundle = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    let state_before = std::fs::read(host.path().join("state/state.json")).ok();
    let error = apply(&mut session, &[bundle]).expect_err("refused");
    assert!(
        matches!(error, ApplyError::UnsafeCompanion { .. }),
        "{error:?}"
    );
    let text = crate::error_text(&error);
    assert!(text.contains("chmod go-w"), "{text}");
    assert!(kernel.changes().is_empty(), "{:?}", kernel.changes());
    assert_eq!(
        std::fs::read(host.path().join("state/state.json")).ok(),
        state_before,
        "the state is unchanged"
    );
    let records = session
        .audit_log()
        .read_verified()
        .expect("read")
        .expect("intact");
    assert_eq!(records.last().map(|r| r.result), Some(AuditResult::Refused));

    // The same file, made private, loads.
    std::fs::set_permissions(&kmod, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    apply(&mut session, &[host.path().join("in/fix_a.bundle")]).expect("applies");
}

#[test]
fn a_companion_behind_a_symbolic_link_is_refused() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let kmod = host.path().join("suture.ko");
    let real = host.path().join("real.ko");
    std::fs::rename(&kmod, &real).expect("mv");
    std::os::unix::fs::symlink(&real, &kmod).expect("link");
    let bundle = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &[bundle]).expect_err("refused");
    assert!(
        crate::error_text(&error).contains("symbolic link"),
        "{}",
        crate::error_text(&error)
    );
    assert!(kernel.changes().is_empty());
}
