//! No rollback to an older bundle (issue #16): a signed but older build of
//! a bundle id is refused, after the newer one was applied and even after
//! it was reverted, across sessions.

use super::*;
use crate::testkit::{manifest, signing_key, TestHost};
use crate::transaction::revert::{revert, RevertTarget};
use crate::transaction::state::State;

fn versioned(host: &TestHost, id: &str, version: u64) -> PathBuf {
    let mut manifest = manifest(id);
    manifest.bundle_version = version;
    // Each version differs in its bytes, as two builds would.
    manifest.description = format!("build {version}");
    host.bundle_of(&manifest, &signing_key())
}

#[test]
fn an_older_version_is_never_applied_again_even_after_a_revert() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[versioned(&host, "fix_a", 2)]).expect("applies");
    assert_eq!(session.state().highest_version("fix_a"), 2);
    assert_eq!(
        session
            .state()
            .get("fix_a")
            .map(|r| r.manifest.bundle_version),
        Some(2)
    );
    revert(&mut session, &RevertTarget::Ids(vec!["fix_a".to_owned()])).expect("reverts");
    drop(session);

    // A new session (the floor is in state.json), the older build.
    let mut session = host.session(&kernel);
    assert_eq!(session.state().highest_version("fix_a"), 2);
    let calls = kernel.changes().len();
    let error = apply(&mut session, &[versioned(&host, "fix_a", 1)]).expect_err("refused");
    assert!(
        matches!(
            error,
            ApplyError::Downgrade {
                version: 1,
                highest: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(crate::error_text(&error).contains("never applies an older version"));
    assert_eq!(kernel.changes().len(), calls, "nothing reached the kernel");
    // A bundle without a version is version 0: older too.
    let error = apply(&mut session, &[versioned(&host, "fix_a", 0)]).expect_err("refused");
    assert!(matches!(error, ApplyError::Downgrade { .. }), "{error:?}");

    // The same version, and a newer one, apply.
    apply(&mut session, &[versioned(&host, "fix_a", 2)]).expect("the same version");
    revert(&mut session, &RevertTarget::All).expect("reverts");
    apply(&mut session, &[versioned(&host, "fix_a", 3)]).expect("a newer version");
    assert_eq!(session.state().highest_version("fix_a"), 3);
}

#[test]
fn a_state_without_versions_reads_and_writes_as_before() {
    let state = State::default();
    let json = serde_json::to_string(&state).expect("json");
    assert!(!json.contains("highest_versions"), "{json}");
}
