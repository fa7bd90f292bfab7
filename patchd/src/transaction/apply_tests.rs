//! apply, revert, reconcile and status against the fake kernel: what
//! reaches the kernel, in which order, and what the state and the audit log
//! say afterwards.

use nix::errno::Errno;

use super::*;
use crate::fake_kernel::{FakeKernel, KernelCall};
use crate::testkit::{manifest, signing_key, stranger_key, TestHost};
use crate::transaction::audit::{AuditRecord, AuditResult};
use crate::transaction::revert::{revert, RevertError, RevertTarget};
use crate::transaction::state::STATE_FILE;
use crate::{failure_kind, FailureKind};

fn audit_lines(host: &TestHost) -> Vec<AuditRecord> {
    let text = std::fs::read_to_string(host.path().join("state/audit.log")).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).expect("audit record"))
        .collect()
}

fn summary(lines: &[AuditRecord]) -> Vec<(AuditAction, AuditResult, String)> {
    lines
        .iter()
        .map(|l| (l.action, l.result, l.bundle_id.clone().unwrap_or_default()))
        .collect()
}

/// The kernel-changing calls, as (what, module or patch).
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

fn assert_chain_intact(host: &TestHost) {
    let log = crate::transaction::audit::AuditLog::new(&host.path().join("state"));
    assert!(
        log.verify().expect("readable").is_ok(),
        "audit chain broken"
    );
}

#[test]
fn applies_a_bundle_loading_the_companion_first() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let bundle = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    let report = apply(&mut session, &[bundle]).expect("applies");

    assert!(report.companion_loaded);
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.applied[0].functions, ["cmdline_proc_show"]);
    assert_eq!(
        changes(&kernel),
        ["load suture", "load fix_a", "enable fix_a"]
    );
    // Both modules went through the link step: their non-exported symbols
    // were rewritten, so the loaded images differ from the files.
    let images = kernel.loaded_images();
    assert_ne!(images[0], crate::testkit::companion_image());
    assert_ne!(images[1], crate::testkit::patch_image("fix_a"));
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));

    let state = session.state();
    assert_eq!(state.open_transaction, None);
    let record = state.get("fix_a").expect("recorded");
    assert_eq!(record.phase, Phase::Applied);
    assert_eq!(record.applied_at, Some(1_700_000_000));
    assert_eq!(record.manifest.functions, ["cmdline_proc_show"]);
    assert_eq!(record.manifest.cves, ["CVE-2024-0001"]);
    let copy = host.path().join("state").join(&record.bundle_file);
    let original = std::fs::read(host.path().join("in/fix_a.bundle")).expect("read");
    assert_eq!(std::fs::read(copy).expect("copy kept"), original);

    let lines = audit_lines(&host);
    assert_eq!(
        summary(&lines),
        [(AuditAction::Apply, AuditResult::Ok, "fix_a".to_owned())]
    );
    assert_eq!(
        lines[0].bundle_sha256.as_deref(),
        Some(record.sha256.as_str())
    );
    assert_eq!(lines[0].cves, ["CVE-2024-0001"]);
    // The manifest's creation time, so the report's gap needs only the log.
    let created = crate::clock::utc_rfc3339(record.manifest.created);
    assert_eq!(lines[0].bundle_created.as_deref(), Some(created.as_str()));
}

#[test]
fn an_already_loaded_companion_is_used_as_it_is() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().with_loaded_modules(["suture"]);
    let mut session = host.session(&kernel);
    let report = apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    assert!(!report.companion_loaded);
    assert_eq!(changes(&kernel), ["load fix_a", "enable fix_a"]);
}

#[test]
fn a_failure_in_the_second_bundle_undoes_the_first_and_the_companion() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().busy_on_enable("fix_b", u32::MAX);
    let bundles = [host.bundle("fix_a"), host.bundle("fix_b")];
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &bundles).expect_err("fix_b stays busy");

    let text = crate::error_text(&error);
    assert!(
        text.contains("cannot enable bundle fix_b")
            && text.contains("10 times")
            && text.contains("suture_target_sleep+0x94/0xd0"),
        "{text}"
    );
    assert_eq!(failure_kind(&error), FailureKind::Busy);
    let mut want = vec!["load suture", "load fix_a", "enable fix_a", "load fix_b"];
    want.extend(["enable fix_b"; 10]);
    want.extend([
        "unload fix_b",
        "disable fix_a",
        "unload fix_a",
        "unload suture",
    ]);
    assert_eq!(changes(&kernel), want);
    assert!(
        kernel.modules_now().is_empty(),
        "{:?}",
        kernel.modules_now()
    );
    assert_eq!(host.clock.sleeps().len(), 9);

    assert_eq!(session.state().bundles, []);
    assert_eq!(session.state().open_transaction, None);
    assert!(!host.path().join("state/applied/fix_a.bundle").exists());
    assert!(!host.path().join("state/applied/fix_b.bundle").exists());
    assert_eq!(
        summary(&audit_lines(&host)),
        [
            (AuditAction::Apply, AuditResult::Ok, "fix_a".to_owned()),
            (AuditAction::Apply, AuditResult::Failed, "fix_b".to_owned()),
            (AuditAction::Rollback, AuditResult::Ok, "fix_a".to_owned()),
        ]
    );
    assert_chain_intact(&host);
}

#[test]
fn a_load_failure_keeps_a_companion_that_was_there_before() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .with_loaded_modules(["suture"])
        .failing_load_of("fix_b", Errno::ENOEXEC);
    let bundles = [host.bundle("fix_a"), host.bundle("fix_b")];
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &bundles).expect_err("fix_b does not load");
    assert!(matches!(error, ApplyError::Load { ref id, .. } if id == "fix_b"));
    assert_eq!(
        changes(&kernel),
        [
            "load fix_a",
            "enable fix_a",
            "load fix_b",
            "disable fix_a",
            "unload fix_a"
        ]
    );
    assert_eq!(kernel.modules_now(), ["suture"]);
    assert_eq!(session.state().bundles, []);
}

#[test]
fn a_companion_that_cannot_be_loaded_fails_every_bundle_with_the_path() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    std::fs::remove_file(host.path().join("suture.ko")).expect("rm");
    let bundles = [host.bundle("fix_a"), host.bundle("fix_b")];
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &bundles).expect_err("no companion");
    let text = crate::error_text(&error);
    assert!(
        text.contains("suture.ko") && text.contains("--kmod"),
        "{text}"
    );
    assert!(kernel.changes().is_empty());
    assert_eq!(session.state().bundles, []);
    assert_eq!(
        summary(&audit_lines(&host)),
        [
            (AuditAction::Apply, AuditResult::Failed, "fix_a".to_owned()),
            (AuditAction::Apply, AuditResult::Failed, "fix_b".to_owned()),
        ]
    );
}

#[test]
fn a_module_that_does_not_register_is_unloaded_again() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .with_loaded_modules(["suture"])
        .without_registration("fix_a");
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &[host.bundle("fix_a")]).expect_err("no sysfs");
    assert!(matches!(error, ApplyError::NotRegistered { .. }), "{error}");
    assert_eq!(changes(&kernel), ["load fix_a", "unload fix_a"]);
    assert_eq!(kernel.modules_now(), ["suture"]);
}

#[test]
fn an_unsafe_trust_store_refuses_before_the_kernel_is_touched() {
    use std::os::unix::fs::PermissionsExt;
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let keys = host.path().join("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &[host.bundle("fix_a")]).expect_err("unsafe");
    assert!(crate::error_text(&error).contains("chmod go-w"), "{error}");
    assert!(kernel.changes().is_empty());
    let lines = audit_lines(&host);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].result, AuditResult::Refused);
}

#[test]
fn a_busy_switch_is_retried_then_succeeds() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().busy_on_enable("fix_a", 2);
    let mut session = host.session(&kernel);
    let report = apply(&mut session, &[host.bundle("fix_a")]).expect("third attempt");
    assert_eq!(report.applied[0].attempts, 3);
    assert_eq!(host.clock.sleeps().len(), 2);
    let lines = audit_lines(&host);
    assert_eq!(lines[0].detail.as_deref(), Some("enabled after 3 attempts"));
}

#[test]
fn every_bundle_is_verified_before_the_kernel_is_touched() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let good = host.bundle("fix_a");
    let untrusted = host.bundle_of(&manifest("fix_b"), &stranger_key());
    let mut other_kernel = manifest("fix_c");
    other_kernel.target.build_id = "0123456789abcdef0123456789abcdef01234567".to_owned();
    let wrong = host.bundle_of(&other_kernel, &signing_key());
    let mut session = host.session(&kernel);

    let error = apply(&mut session, &[good.clone(), untrusted]).expect_err("untrusted");
    assert_eq!(failure_kind(&error), FailureKind::Rejected);
    let error = apply(&mut session, &[good, wrong]).expect_err("other kernel");
    assert_eq!(failure_kind(&error), FailureKind::WrongKernel);
    assert!(kernel.changes().is_empty());
    assert_eq!(session.state().bundles, []);
    let lines = audit_lines(&host);
    assert_eq!(
        summary(&lines),
        [
            (AuditAction::Apply, AuditResult::Refused, "fix_b".to_owned()),
            (AuditAction::Apply, AuditResult::Refused, "fix_c".to_owned()),
        ]
    );
    assert!(lines[1]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("build-id")));
}

#[test]
fn a_rollback_that_cannot_disable_records_the_truth() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .failing_load_of("fix_b", Errno::ENOEXEC)
        .busy_on_disable("fix_a", u32::MAX);
    let bundles = [host.bundle("fix_a"), host.bundle("fix_b")];
    let mut session = host.session(&kernel);
    let error = apply(&mut session, &bundles).expect_err("fails");
    assert!(
        matches!(error, ApplyError::RollbackIncomplete { ref remaining, .. } if remaining == &["fix_a"]),
        "{error}"
    );
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    let record = session.state().get("fix_a").expect("still recorded");
    assert_eq!(record.phase, Phase::Applied);
    assert_eq!(session.state().open_transaction, None);
    // The companion stays: a patch still uses it.
    assert!(kernel.modules_now().contains(&"suture".to_owned()));
}

#[test]
fn plan_refusals() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().with_loaded_modules(["suture", "fix_x"]);
    let a = host.bundle("fix_a");
    let mut session = host.session(&kernel);
    apply(&mut session, std::slice::from_ref(&a)).expect("applies");
    kernel.clear_calls();

    let report = apply(&mut session, std::slice::from_ref(&a)).expect("no-op");
    assert_eq!(report.unchanged, ["fix_a"]);
    assert!(kernel.changes().is_empty());

    let mut changed = manifest("fix_a");
    changed.description = "another build".to_owned();
    let other = host.bundle_of(&changed, &signing_key());
    assert!(matches!(
        apply(&mut session, &[other]),
        Err(ApplyError::OtherVersionApplied { .. })
    ));
    let b = host.bundle("fix_b");
    assert!(matches!(
        apply(&mut session, &[b.clone(), b]),
        Err(ApplyError::Duplicate { .. })
    ));
    assert!(matches!(
        apply(&mut session, &[host.bundle("fix_x")]),
        Err(ApplyError::ForeignModule { .. })
    ));
    let mut needs = manifest("fix_c");
    needs.dependencies = vec!["fix_d".to_owned()];
    let c = host.bundle_of(&needs, &signing_key());
    let error = apply(&mut session, std::slice::from_ref(&c)).expect_err("dependency");
    assert!(error.to_string().contains("needs bundle fix_d"), "{error}");
    assert!(kernel.changes().is_empty());
    // The dependency ahead of it in the same apply is fine.
    apply(&mut session, &[host.bundle("fix_d"), c]).expect("in order");
}

#[test]
fn revert_all_disables_and_unloads_newest_first() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a"), host.bundle("fix_b")]).expect("applies");
    kernel.clear_calls();
    let report = revert(&mut session, &RevertTarget::All).expect("reverts");
    assert_eq!(report.reverted, ["fix_b", "fix_a"]);
    assert_eq!(
        changes(&kernel),
        [
            "disable fix_b",
            "unload fix_b",
            "disable fix_a",
            "unload fix_a"
        ]
    );
    assert_eq!(kernel.modules_now(), ["suture"]);
    assert_eq!(session.state().bundles, []);
    assert!(!host.path().join("state/applied/fix_a.bundle").exists());
    let lines = audit_lines(&host);
    assert_eq!(
        summary(&lines[2..]),
        [
            (AuditAction::Revert, AuditResult::Ok, "fix_b".to_owned()),
            (AuditAction::Revert, AuditResult::Ok, "fix_a".to_owned()),
        ]
    );
    assert_chain_intact(&host);
    let report = revert(&mut session, &RevertTarget::All).expect("nothing left");
    assert!(report.reverted.is_empty());
}

#[test]
fn a_busy_revert_changes_nothing_and_says_who_blocked_it() {
    let host = TestHost::new();
    let kernel = TestHost::kernel().busy_on_disable("fix_a", u32::MAX);
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let error =
        revert(&mut session, &RevertTarget::Ids(vec!["fix_a".to_owned()])).expect_err("busy");
    assert_eq!(failure_kind(&error), FailureKind::Busy);
    let text = crate::error_text(&error);
    assert!(
        text.contains("recorded as applied") && text.contains("suture_busy"),
        "{text}"
    );
    assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
    assert_eq!(
        session.state().get("fix_a").map(|r| r.phase),
        Some(Phase::Applied)
    );
    let last = audit_lines(&host).pop().expect("a line");
    assert_eq!(
        (last.action, last.result),
        (AuditAction::Revert, AuditResult::Failed)
    );
}

#[test]
fn revert_refuses_unknown_ids_and_needed_dependencies() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut session = host.session(&kernel);
    let mut needs = manifest("fix_b");
    needs.dependencies = vec!["fix_a".to_owned()];
    let b = host.bundle_of(&needs, &signing_key());
    apply(&mut session, &[host.bundle("fix_a"), b]).expect("applies");
    kernel.clear_calls();
    assert!(matches!(
        revert(&mut session, &RevertTarget::Ids(vec!["nope".to_owned()])),
        Err(RevertError::NotApplied { .. })
    ));
    assert!(matches!(
        revert(&mut session, &RevertTarget::Ids(vec!["fix_a".to_owned()])),
        Err(RevertError::Dependent { ref dependent, .. }) if dependent == "fix_b"
    ));
    assert!(kernel.changes().is_empty());
    let ids = vec!["fix_a".to_owned(), "fix_b".to_owned()];
    let report = revert(&mut session, &RevertTarget::Ids(ids)).expect("both");
    assert_eq!(report.reverted, ["fix_b", "fix_a"]);
}

#[test]
fn status_reads_the_kernel_and_lists_patches_patchd_did_not_apply() {
    let host = TestHost::new();
    let kernel = TestHost::kernel()
        .with_loaded_modules(["suture"])
        .with_patch("by_hand", false);
    let mut session = host.session(&kernel);
    apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
    let status = crate::observe::status::status(&session).expect("status");
    assert_eq!(status.kernel.release, crate::fake_kernel::FAKE_RELEASE);
    assert!(status.companion_loaded);
    assert_eq!(status.other_patches, ["by_hand"]);
    let bundle = &status.bundles[0];
    assert_eq!(
        (bundle.id.as_str(), bundle.phase, bundle.kernel_state),
        ("fix_a", "applied", "enabled")
    );
    assert_eq!(
        bundle.applied_at_utc.as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    let text = status.to_string();
    assert!(
        text.contains("fix_a: applied (kernel: enabled), applied 2023-11-14T22:13:20Z")
            && text.contains("functions: cmdline_proc_show")
            && text.contains("cves: CVE-2024-0001")
            && text.contains("patches not applied by patchd: by_hand"),
        "{text}"
    );
    let json = serde_json::to_value(&status).expect("json");
    assert_eq!(json["bundles"][0]["kernel_state"], "enabled");

    revert(&mut session, &RevertTarget::All).expect("reverts");
    let status = crate::observe::status::status(&session).expect("status");
    assert!(status.bundles.is_empty());
    assert!(status.to_string().contains("applied bundles: none"));
}

/// The state file of a patchd killed in the middle of an apply of
/// `fix_a`, recorded as `phase`, with the transaction still open.
fn crashed_in(host: &TestHost, phase: &str) {
    let state = serde_json::json!({
        "version": 1,
        "next_transaction": 8,
        "open_transaction": { "id": 7, "started": 1_700_000_000u64 },
        "bundles": [{
            "id": "fix_a",
            "sha256": "ab".repeat(32),
            "signer_key_id": "fe812c12f3ab4ce6",
            "phase": phase,
            "transaction": 7,
            "applied_at": null,
            "updated_at": 1_700_000_000u64,
            "bundle_file": "applied/fix_a.bundle",
            "manifest": {
                "description": "",
                "cves": [],
                "target": manifest("fix_a").target,
                "functions": ["cmdline_proc_show"],
                "dependencies": [],
                "created": 1_700_000_000u64
            }
        }]
    });
    let dir = host.path().join("state");
    std::fs::create_dir_all(dir.join("applied")).expect("mkdir");
    std::fs::write(dir.join("applied/fix_a.bundle"), b"copy").expect("copy");
    std::fs::write(
        dir.join(STATE_FILE),
        serde_json::to_vec(&state).expect("json"),
    )
    .expect("write state");
}

/// The audit line of fix_a's apply, as a finished apply leaves it.
fn audited_apply(host: &TestHost) {
    let entry = AuditEntry {
        bundle_id: Some("fix_a".to_owned()),
        bundle_sha256: Some("ab".repeat(32)),
        ..AuditEntry::default()
    };
    crate::transaction::audit::AuditLog::new(&host.path().join("state"))
        .append(1_700_000_000, AuditAction::Apply, AuditResult::Ok, entry)
        .expect("audit");
}

#[test]
fn a_restart_after_a_kill_undoes_an_unfinished_apply_at_every_step() {
    // (recorded phase, the kernel at the kill, what the restart must do)
    let cases: [(&str, Option<bool>, &[&str]); 5] = [
        ("loading", None, &[]),
        ("loading", Some(false), &["unload fix_a"]),
        ("enabling", Some(false), &["unload fix_a"]),
        ("enabling", Some(true), &["disable fix_a", "unload fix_a"]),
        ("applied", Some(true), &["disable fix_a", "unload fix_a"]),
    ];
    for (phase, in_kernel, want) in cases {
        let host = TestHost::new();
        crashed_in(&host, phase);
        let mut kernel = TestHost::kernel().with_loaded_modules(["suture"]);
        if let Some(enabled) = in_kernel {
            kernel = kernel.with_patch("fix_a", enabled);
        }
        let session = host.session(&kernel);
        assert_eq!(changes(&kernel), want, "{phase} {in_kernel:?}");
        assert_eq!(session.state().bundles, [], "{phase}");
        assert_eq!(session.state().open_transaction, None);
        assert_eq!(session.reconciled().changes.len(), 1);
        assert!(!host.path().join("state/applied/fix_a.bundle").exists());
        // A kill after `applied` was saved, before the audit line: the
        // open transaction is undone, never refused for the missing line.
        let lines = audit_lines(&host);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].action, AuditAction::Reconcile);
        // The next start finds nothing to do.
        drop(session);
        kernel.clear_calls();
        let again = host.session(&kernel);
        assert!(again.reconciled().changes.is_empty());
        assert!(kernel.changes().is_empty());
    }
}

#[test]
fn a_restart_records_what_the_kernel_has_for_finished_applies() {
    // (recorded phase, loaded, enabled) -> phase afterwards, kernel changes
    type Case<'a> = (&'a str, Option<bool>, Option<Phase>, &'a [&'a str]);
    let cases: [Case<'_>; 6] = [
        ("applied", Some(true), Some(Phase::Applied), &[]),
        ("applied", None, Some(Phase::Lost), &[]),
        ("applied", Some(false), Some(Phase::Disabled), &[]),
        ("reverting", Some(true), Some(Phase::Applied), &[]),
        ("reverting", Some(false), None, &["unload fix_a"]),
        ("reverting", None, None, &[]),
    ];
    for (phase, in_kernel, after, want) in cases {
        let host = TestHost::new();
        crashed_in(&host, phase);
        // Not an open apply: the transaction finished.
        let path = host.path().join("state").join(STATE_FILE);
        let mut state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        state["open_transaction"] = serde_json::Value::Null;
        std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
        audited_apply(&host);

        let mut kernel = TestHost::kernel().with_loaded_modules(["suture"]);
        if let Some(enabled) = in_kernel {
            kernel = kernel.with_patch("fix_a", enabled);
        }
        let session = host.session(&kernel);
        assert_eq!(changes(&kernel), want, "{phase} {in_kernel:?}");
        assert_eq!(
            session.state().get("fix_a").map(|r| r.phase),
            after,
            "{phase} {in_kernel:?}"
        );
        let reconciled = !session.reconciled().changes.is_empty();
        assert_eq!(reconciled, !(phase == "applied" && in_kernel == Some(true)));
        // A lost bundle keeps its copy for a later re-apply.
        let copy = host.path().join("state/applied/fix_a.bundle").exists();
        assert_eq!(copy, after.is_some(), "{phase} {in_kernel:?}");
    }
}
