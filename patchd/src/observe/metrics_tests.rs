//! The exposition text byte for byte, escaping, what a tampered log leaves
//! out, collection from state and log, and the atomic textfile.

use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::clock::utc_rfc3339;
use crate::transaction::audit::{AuditAction, AuditResult, GENESIS};
use crate::transaction::state::{BundleRecord, ManifestSummary};

fn kernel() -> KernelIdentity {
    KernelIdentity {
        release: "6.1.0-50-amd64".to_owned(),
        build_id: "06f8bde30046985060c60820f7a11515a33afb06".to_owned(),
    }
}

fn snapshot() -> MetricsSnapshot {
    MetricsSnapshot {
        version: "0.1.0".to_owned(),
        kernel: kernel(),
        applied: 2,
        held: 1,
        pending: Some(1),
        audit: Some(AuditFigures {
            failed: 3,
            refused: 1,
            reboots_avoided: 4,
            last_success: Some(1_700_007_200),
            gaps: vec![
                ("CVE-2024-0001".to_owned(), 3600),
                ("CVE-2024-10000".to_owned(), -30),
            ],
        }),
        cves_fixed: vec![
            ("CVE-2024-0001".to_owned(), "cmdline_fix".to_owned()),
            ("CVE-2024-10000".to_owned(), "af_unix".to_owned()),
        ],
    }
}

const HEAD: &str = "\
# HELP suture_build_info patchd's version and the running kernel (release, GNU build-id); always 1.
# TYPE suture_build_info gauge
suture_build_info{version=\"0.1.0\",kernel_release=\"6.1.0-50-amd64\",kernel_build_id=\"06f8bde30046985060c60820f7a11515a33afb06\"} 1
# HELP suture_audit_log_intact 1 if the audit log's hash chain verifies; 0 if not, and then the metrics drawn from it are left out (run patchd audit verify).
# TYPE suture_audit_log_intact gauge
";

#[test]
fn golden_exposition_text() {
    let want = format!(
        "{HEAD}\
suture_audit_log_intact 1
# HELP suture_patches_applied Bundles patchd records as applied.
# TYPE suture_patches_applied gauge
suture_patches_applied 2
# HELP suture_patches_held Bundles the crash-loop guard holds back after a crash (patchd release applies them again).
# TYPE suture_patches_held gauge
suture_patches_held 1
# HELP suture_patches_pending Bundles seen but not applied.
# TYPE suture_patches_pending gauge
suture_patches_pending 1
# HELP suture_cve_fixed 1 for each CVE fixed by a bundle patchd records as applied, labelled with the bundle (patchd cves --openvex exports them for scanners).
# TYPE suture_cve_fixed gauge
suture_cve_fixed{{cve=\"CVE-2024-0001\",bundle=\"cmdline_fix\"}} 1
suture_cve_fixed{{cve=\"CVE-2024-10000\",bundle=\"af_unix\"}} 1
# HELP suture_patches_failed_total Attempts to apply a bundle that did not apply, from the audit log: failed (tried and undone) or refused (stopped before the kernel was touched).
# TYPE suture_patches_failed_total counter
suture_patches_failed_total{{result=\"failed\"}} 3
suture_patches_failed_total{{result=\"refused\"}} 1
# HELP suture_reboots_avoided_total Distinct bundles applied live, each a fix that would otherwise have waited for a reboot (an upper bound: see docs/patchd.md).
# TYPE suture_reboots_avoided_total counter
suture_reboots_avoided_total 4
# HELP suture_last_success_timestamp_seconds Unix time of the latest successful apply.
# TYPE suture_last_success_timestamp_seconds gauge
suture_last_success_timestamp_seconds 1700007200
# HELP suture_vulnerability_gap_seconds Per CVE, from the creation of the bundle that fixed it first to its first successful apply on this host.
# TYPE suture_vulnerability_gap_seconds gauge
suture_vulnerability_gap_seconds{{cve=\"CVE-2024-0001\"}} 3600
suture_vulnerability_gap_seconds{{cve=\"CVE-2024-10000\"}} -30
"
    );
    assert_eq!(render(&snapshot()), want);
}

#[test]
fn a_tampered_log_leaves_its_figures_out_and_says_so() {
    let snapshot = MetricsSnapshot {
        audit: None,
        pending: None,
        cves_fixed: Vec::new(),
        ..snapshot()
    };
    let want = format!(
        "{HEAD}\
suture_audit_log_intact 0
# HELP suture_patches_applied Bundles patchd records as applied.
# TYPE suture_patches_applied gauge
suture_patches_applied 2
# HELP suture_patches_held Bundles the crash-loop guard holds back after a crash (patchd release applies them again).
# TYPE suture_patches_held gauge
suture_patches_held 1
"
    );
    assert_eq!(render(&snapshot), want);
}

#[test]
fn families_without_samples_are_left_out() {
    let mut snapshot = snapshot();
    if let Some(audit) = snapshot.audit.as_mut() {
        audit.last_success = None;
        audit.gaps.clear();
    }
    let text = render(&snapshot);
    assert!(
        !text.contains("suture_last_success_timestamp_seconds"),
        "{text}"
    );
    assert!(!text.contains("suture_vulnerability_gap_seconds"), "{text}");
    assert!(text.contains("suture_reboots_avoided_total 4\n"), "{text}");
}

#[test]
fn label_values_and_help_are_escaped() {
    let cases = [
        ("plain", "plain"),
        ("a\"b", "a\\\"b"),
        ("back\\slash", "back\\\\slash"),
        ("two\nlines", "two\\nlines"),
        ("\\\"\n", "\\\\\\\"\\n"),
    ];
    for (value, want) in cases {
        assert_eq!(escape_label_value(value), want, "{value:?}");
    }
    assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");

    let mut snapshot = snapshot();
    snapshot.kernel.release = "6.1\"x\\y\nz".to_owned();
    let text = render(&snapshot);
    assert!(
        text.contains("kernel_release=\"6.1\\\"x\\\\y\\nz\""),
        "{text}"
    );
    // Every line is a comment or a sample; none was split by the newline.
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP suture_")
                || line.starts_with("# TYPE suture_")
                || line.starts_with("suture_"),
            "{line:?}"
        );
    }
}

fn record(id: &str, phase: Phase) -> BundleRecord {
    let manifest = crate::testkit::manifest(id);
    BundleRecord {
        id: id.to_owned(),
        sha256: format!("{id:0<64}"),
        signer_key_id: "fe812c12f3ab4ce6".to_owned(),
        phase,
        transaction: 1,
        applied_at: None,
        updated_at: 0,
        bundle_file: format!("applied/{id}.bundle"),
        manifest: ManifestSummary {
            description: manifest.description,
            cves: vec![format!("CVE-2024-000{}", id.len())],
            target: manifest.target,
            functions: vec![],
            skipped: Vec::new(),
            dependencies: vec![],
            created: 1_700_000_000,
            bundle_version: 0,
            fixes_up_to: None,
            cve_published: Default::default(),
        },
        survived: false,
    }
}

fn audit_line(seq: u64, at: u64, id: &str, result: AuditResult) -> AuditRecord {
    AuditRecord {
        seq,
        time: utc_rfc3339(at),
        action: AuditAction::Apply,
        bundle_id: Some(id.to_owned()),
        bundle_sha256: Some(format!("{id:0<64}")),
        signer_key_id: None,
        cves: vec![format!("CVE-2024-000{}", id.len())],
        bundle_created: Some(utc_rfc3339(1_700_000_000)),
        cve_published: Default::default(),
        result,
        error: None,
        detail: None,
        prev: GENESIS.to_owned(),
    }
}

#[test]
fn collect_counts_applied_bundles_and_draws_the_rest_from_the_log() {
    let state = State {
        bundles: vec![
            record("fix_a", Phase::Applied),
            record("fix_bb", Phase::Lost),
            record("fix_h", Phase::Held),
        ],
        ..State::default()
    };
    let records = [
        audit_line(1, 1_700_000_060, "fix_a", AuditResult::Ok),
        audit_line(2, 1_700_000_090, "fix_bb", AuditResult::Ok),
        audit_line(3, 1_700_000_100, "fix_ccc", AuditResult::Failed),
        audit_line(4, 1_700_000_110, "fix_ccc", AuditResult::Refused),
    ];
    let snapshot = MetricsSnapshot::collect(&state, Ok(&records), Some(5), &kernel());
    assert_eq!(snapshot.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        (snapshot.applied, snapshot.held, snapshot.pending),
        (1, 1, Some(5))
    );
    assert_eq!(
        snapshot.audit,
        Some(AuditFigures {
            failed: 1,
            refused: 1,
            reboots_avoided: 2,
            last_success: Some(1_700_000_090),
            // fix_ccc's CVE was never fixed here: no gap to show.
            gaps: vec![
                ("CVE-2024-0005".to_owned(), 60),
                ("CVE-2024-0006".to_owned(), 90)
            ],
        })
    );

    let tampered = Tampered {
        path: "audit.log".into(),
        line: 2,
        what: "edited".to_owned(),
    };
    let snapshot = MetricsSnapshot::collect(&state, Err(&tampered), None, &kernel());
    assert_eq!((snapshot.applied, &snapshot.audit), (1, &None));
}

#[test]
fn the_textfile_is_replaced_whole_and_readable_by_the_collector() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(TEXTFILE_NAME), "old\n").expect("write");
    write_textfile(dir.path(), "suture_patches_applied 1\n").expect("write");
    let path = dir.path().join(TEXTFILE_NAME);
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "suture_patches_applied 1\n"
    );
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [TEXTFILE_NAME], "no temporary file is left");
}

#[test]
fn a_link_planted_at_the_temporary_name_is_not_followed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").expect("write");
    let temp = dir
        .path()
        .join(format!(".{TEXTFILE_NAME}.{}.tmp", std::process::id()));
    std::os::unix::fs::symlink(&victim, &temp).expect("symlink");
    write_textfile(dir.path(), "suture_patches_applied 0\n").expect("write");
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "precious\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(TEXTFILE_NAME)).expect("read"),
        "suture_patches_applied 0\n"
    );
    assert!(!temp.exists());
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = write_textfile(&dir.path().join("absent"), "x\n").expect_err("no dir");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
}
