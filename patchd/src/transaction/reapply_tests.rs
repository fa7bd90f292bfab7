//! [`reapply`] against the fake kernel: a bundle recorded as lost after a
//! "reboot" (a fresh kernel) is verified again from its copy and applied;
//! any failure, or a kill in the middle, leaves it recorded as lost with its
//! copy.

use super::*;
use crate::clock::Clock;
use crate::fake_kernel::{FakeKernel, KernelCall};
use crate::testkit::{
    bundle_bytes, manifest, public_key_text, signing_key, stranger_key, TestHost,
};
use crate::transaction::audit::{AuditRecord, AuditResult};
use crate::transaction::state::STATE_FILE;

fn audit_lines(host: &TestHost) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(host.path().join("state/audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect()
}

fn changes(kernel: &FakeKernel) -> Vec<String> {
    kernel
        .changes()
        .iter()
        .map(|call| match call {
            KernelCall::LoadModule { image, .. } => format!(
                "load {}",
                crate::link::module_name(image)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            ),
            KernelCall::DeleteModule { name } => format!("unload {name}"),
            KernelCall::WritePatchEnabled { patch, enabled } => {
                format!("{} {patch}", if *enabled { "enable" } else { "disable" })
            }
            other => format!("{other:?}"),
        })
        .collect()
}

/// Applies `ids` on one kernel, then "reboots": returns the state as the
/// next start on a fresh kernel sees it (every bundle lost).
fn applied_then_rebooted(
    host: &TestHost,
    ids: &[&str],
) -> Vec<crate::transaction::state::BundleRecord> {
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let paths: Vec<PathBuf> = ids.iter().map(|id| host.bundle(id)).collect();
    apply(&mut session, &paths).expect("applies");
    drop(session);
    let rebooted = TestHost::kernel();
    let session = host.session(&rebooted);
    assert_eq!(session.reconciled().changes.len(), ids.len());
    let records = session.state().bundles.clone();
    assert!(
        records.iter().all(|r| r.phase == Phase::Lost),
        "{records:?}"
    );
    records
}

#[test]
fn a_lost_bundle_is_applied_again_from_its_copy() {
    let host = TestHost::new();
    let before = applied_then_rebooted(&host, &["fix_a"]);
    // The original file is gone: only the copy is left.
    std::fs::remove_file(host.path().join("in/fix_a.bundle")).expect("rm");
    host.clock.sleep(std::time::Duration::from_secs(60));

    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let report = reapply(&mut session, "fix_a").expect("re-applies");
    assert!(report.companion_loaded);
    assert_eq!(report.applied.len(), 1);
    assert_eq!(
        changes(&kernel),
        ["load suture", "load fix_a", "enable fix_a"]
    );
    let record = session.state().get("fix_a").expect("recorded");
    assert_eq!(record.phase, Phase::Applied);
    assert_eq!(record.sha256, before[0].sha256);
    assert_eq!(record.applied_at, Some(1_700_000_060));
    assert!(record.transaction > before[0].transaction);
    assert_eq!(session.state().open_transaction, None);
    assert!(host.path().join("state/applied/fix_a.bundle").exists());

    let lines = audit_lines(&host);
    let last = lines.last().expect("a line");
    assert_eq!(
        (last.action, last.result),
        (AuditAction::Apply, AuditResult::Ok)
    );
    assert!(
        last.detail
            .as_deref()
            .is_some_and(|d| d.contains("re-applied")),
        "{last:?}"
    );
    assert!(session.audit_log().verify().expect("readable").is_ok());
}

#[test]
fn a_failed_reapply_leaves_the_bundle_lost_with_its_copy() {
    let host = TestHost::new();
    let before = applied_then_rebooted(&host, &["fix_a"]);
    let kernel = TestHost::kernel().busy_on_enable("fix_a", u32::MAX);
    let mut session = host.session(&kernel);
    let error = reapply(&mut session, "fix_a").expect_err("stays busy");
    assert!(
        matches!(error, ApplyError::Enable { .. }),
        "{}",
        crate::error_text(&error)
    );
    // Everything this re-apply put in is out again, the companion too.
    let done = changes(&kernel);
    assert_eq!(done.first().map(String::as_str), Some("load suture"));
    assert_eq!(
        done[done.len() - 2..],
        ["unload fix_a".to_owned(), "unload suture".to_owned()]
    );
    assert_eq!(kernel.modules_now(), Vec::<String>::new());
    assert_eq!(session.state().bundles, before, "the record is as it was");
    assert_eq!(session.state().open_transaction, None);
    assert!(host.path().join("state/applied/fix_a.bundle").exists());
    let last = audit_lines(&host).pop().expect("a line");
    assert_eq!(
        (last.action, last.result),
        (AuditAction::Apply, AuditResult::Failed)
    );

    // The next start finds it lost, and can try again.
    drop(session);
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    assert!(session.reconciled().changes.is_empty());
    reapply(&mut session, "fix_a").expect("re-applies once the kernel lets it");
}

#[test]
fn a_replaced_copy_is_refused_before_the_kernel_is_touched() {
    let host = TestHost::new();
    let before = applied_then_rebooted(&host, &["fix_a"]);
    let mut other = manifest("fix_a");
    other.description = "another build of fix_a".to_owned();
    std::fs::write(
        host.path().join("state/applied/fix_a.bundle"),
        bundle_bytes(&other, &signing_key()),
    )
    .expect("replace the copy");

    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let error = reapply(&mut session, "fix_a").expect_err("replaced");
    assert!(matches!(error, ApplyError::CopyChanged { .. }), "{error}");
    assert!(error.to_string().contains(&before[0].sha256), "{error}");
    assert!(kernel.changes().is_empty());
    assert_eq!(session.state().bundles, before);
    let last = audit_lines(&host).pop().expect("a line");
    assert_eq!(last.result, AuditResult::Refused);
}

#[test]
fn a_copy_no_longer_trusted_is_refused_and_stays_lost() {
    let host = TestHost::new();
    let before = applied_then_rebooted(&host, &["fix_a"]);
    // The signer's key was replaced in the trust store since.
    std::fs::write(
        host.path().join("keys/test.pub"),
        public_key_text(&stranger_key()),
    )
    .expect("untrust the key");
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let error = reapply(&mut session, "fix_a").expect_err("untrusted");
    assert_eq!(crate::failure_kind(&error), crate::FailureKind::Rejected);
    assert!(kernel.changes().is_empty());
    assert_eq!(session.state().bundles, before);
}

#[test]
fn only_lost_records_are_reapplied() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    kernel.clear_calls();
    assert!(matches!(
        reapply(&mut session, "fix_a"),
        Err(ApplyError::NotApplicable {
            phase: Phase::Applied,
            ..
        })
    ));
    assert!(matches!(
        reapply(&mut session, "fix_z"),
        Err(ApplyError::NotRecorded { .. })
    ));
    assert!(kernel.changes().is_empty());
}

#[test]
fn a_dependency_reapplied_first_lets_its_dependent_follow() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let mut dependent = manifest("fix_b");
    dependent.dependencies = vec!["fix_a".to_owned()];
    let paths = [
        host.bundle("fix_a"),
        host.bundle_of(&dependent, &signing_key()),
    ];
    apply(&mut session, &paths).expect("applies");
    drop(session);

    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let error = reapply(&mut session, "fix_b").expect_err("fix_a is not back yet");
    assert!(
        matches!(error, ApplyError::MissingDependency { .. }),
        "{error}"
    );
    reapply(&mut session, "fix_a").expect("fix_a");
    reapply(&mut session, "fix_b").expect("then fix_b");
    assert_eq!(kernel.patch_enabled("fix_b"), Some(true));
}

#[test]
fn a_kill_during_a_reapply_leaves_the_bundle_lost_at_the_next_start() {
    // (phase recorded at the kill, the kernel then, what the restart does)
    let cases: [(Phase, Option<bool>, &[&str]); 3] = [
        (Phase::Loading, None, &[]),
        (Phase::Enabling, Some(false), &["unload fix_a"]),
        (
            Phase::Applied,
            Some(true),
            &["disable fix_a", "unload fix_a"],
        ),
    ];
    for (phase, in_kernel, want) in cases {
        let host = TestHost::new();
        let before = applied_then_rebooted(&host, &["fix_a"]);
        // What the state file says after a kill in the middle of reapply().
        let path = host.path().join("state").join(STATE_FILE);
        let mut state: crate::transaction::state::State =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let transaction = state.next_transaction;
        state.next_transaction += 1;
        state.open_transaction = Some(OpenTransaction {
            id: transaction,
            started: 1_700_000_000,
            reapplying: vec!["fix_a".to_owned()],
            held: Vec::new(),
        });
        let record = state.get_mut("fix_a").expect("record");
        record.phase = phase;
        record.transaction = transaction;
        std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");

        let mut kernel = TestHost::kernel().with_loaded_modules(["suture"]);
        if let Some(enabled) = in_kernel {
            kernel = kernel.with_patch("fix_a", enabled);
        }
        let session = host.session(&kernel);
        assert_eq!(changes(&kernel), want, "{phase:?}");
        let record = session.state().get("fix_a").expect("still recorded");
        assert_eq!(record.phase, Phase::Lost, "{phase:?}");
        assert_eq!(record.sha256, before[0].sha256);
        assert_eq!(session.state().open_transaction, None);
        assert!(host.path().join("state/applied/fix_a.bundle").exists());
        let what = &session.reconciled().changes[0].what;
        assert!(what.contains("recorded as lost again"), "{what}");
    }
}
