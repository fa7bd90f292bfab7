//! The report's figures from hand-made logs (rollbacks, re-applies,
//! refusals, old lines, clock skew), its three formats, and the whole path
//! from a real apply against the fake kernel to a refused tampered log.

use std::time::Duration;

use crate::clock::Clock;

use super::*;
use crate::clock::utc_rfc3339;
use crate::observe::report_format::csv_field;
use crate::ownership::default_owners;
use crate::testkit::TestHost;
use crate::transaction::apply::apply;
use crate::transaction::audit::GENESIS;
use crate::transaction::state::{BundleRecord, ManifestSummary};
use crate::{failure_kind, FailureKind};

pub(super) const T0: u64 = 1_700_000_000;

/// One audit line; only the fields the report reads matter.
#[derive(Clone)]
pub(super) struct Line {
    at: u64,
    action: AuditAction,
    result: AuditResult,
    id: Option<&'static str>,
    sha: Option<String>,
    cves: &'static [&'static str],
    created: Option<u64>,
    published: &'static [(&'static str, &'static str)],
    error: Option<&'static str>,
}

pub(super) fn line(at: u64, action: AuditAction, result: AuditResult, id: &'static str) -> Line {
    Line {
        at,
        action,
        result,
        id: Some(id),
        sha: Some(sha(id)),
        cves: &[],
        created: None,
        published: &[],
        error: None,
    }
}

pub(super) fn sha(id: &str) -> String {
    format!("{:0<64}", id.replace('_', ""))
}

impl Line {
    pub(super) fn cves(mut self, cves: &'static [&'static str]) -> Self {
        self.cves = cves;
        self
    }
    pub(super) fn created(mut self, created: u64) -> Self {
        self.created = Some(created);
        self
    }
    pub(super) fn published(mut self, published: &'static [(&'static str, &'static str)]) -> Self {
        self.published = published;
        self
    }
    pub(super) fn error(mut self, error: &'static str) -> Self {
        self.error = Some(error);
        self
    }
}

pub(super) fn records(lines: &[Line]) -> Vec<AuditRecord> {
    lines
        .iter()
        .zip(1..)
        .map(|(line, seq)| AuditRecord {
            seq,
            time: utc_rfc3339(line.at),
            action: line.action,
            bundle_id: line.id.map(str::to_owned),
            bundle_sha256: line.sha.clone(),
            signer_key_id: line.id.map(|_| "fe812c12f3ab4ce6".to_owned()),
            cves: line.cves.iter().map(|c| (*c).to_owned()).collect(),
            bundle_created: line.created.map(utc_rfc3339),
            cve_published: dates(line.published),
            result: line.result,
            error: line.error.map(str::to_owned),
            detail: None,
            prev: GENESIS.to_owned(),
        })
        .collect()
}

pub(super) fn dates(published: &[(&str, &str)]) -> BTreeMap<String, String> {
    published
        .iter()
        .map(|(cve, date)| ((*cve).to_owned(), (*date).to_owned()))
        .collect()
}

pub(super) fn recorded(id: &str, phase: Phase, created: u64, cves: &[&str]) -> BundleRecord {
    BundleRecord {
        id: id.to_owned(),
        sha256: sha(id),
        signer_key_id: "fe812c12f3ab4ce6".to_owned(),
        phase,
        transaction: 1,
        applied_at: None,
        updated_at: 0,
        bundle_file: format!("applied/{id}.bundle"),
        manifest: ManifestSummary {
            description: String::new(),
            cves: cves.iter().map(|c| (*c).to_owned()).collect(),
            target: suture_bundle::manifest::Manifest::example().target,
            functions: vec![],
            skipped: Vec::new(),
            dependencies: vec![],
            created,
            bundle_version: 0,
            fixes_up_to: None,
            cve_published: BTreeMap::new(),
        },
        survived: false,
    }
}

pub(super) fn bundle<'r>(report: &'r Report, id: &str) -> &'r BundleFigures {
    report
        .bundles
        .iter()
        .find(|b| b.id.as_deref() == Some(id))
        .expect("bundle in report")
}

pub(super) fn cve<'r>(report: &'r Report, id: &str) -> &'r CveGap {
    report
        .cves
        .iter()
        .find(|c| c.cve == id)
        .expect("cve in report")
}

use AuditAction::{Apply, Reconcile, Revert, Rollback};
use AuditResult::{Failed, Ok as Done, Refused};

/// The host's history the figure tests share.
pub(super) fn history() -> (State, Vec<AuditRecord>) {
    let lines = [
        // fix_a: made at T0, applied an hour later, reverted, applied again.
        line(T0 + 3600, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        line(T0 + 4000, Revert, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        line(T0 + 5000, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        // fix_b: tried twice, failed both times.
        line(T0 + 100, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0002"])
            .created(T0)
            .error("cannot enable bundle fix_b: busy"),
        line(T0 + 200, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0002"])
            .created(T0)
            .error("cannot load the patch module of bundle fix_b"),
        // fix_c: applied, rolled back (fix_d of the same apply failed),
        // then applied alone.
        line(T0 + 600, Apply, Done, "fix_c")
            .cves(&["CVE-2024-10000", "CVE-2024-0001"])
            .created(T0),
        line(T0 + 601, Apply, Failed, "fix_d").error("cannot enable bundle fix_d"),
        line(T0 + 602, Rollback, Done, "fix_c").cves(&["CVE-2024-10000", "CVE-2024-0001"]),
        line(T0 + 7200, Apply, Done, "fix_c")
            .cves(&["CVE-2024-10000", "CVE-2024-0001"])
            .created(T0),
        // An untrusted file that claims a CVE: refused, never verified.
        line(T0 + 300, Apply, Refused, "evil")
            .cves(&["CVE-2099-9999"])
            .error("not signed by a trusted key"),
        // A file that could not be read: no digest, no bundle.
        Line {
            id: None,
            sha: None,
            ..line(T0 + 301, Apply, Refused, "x").error("cannot read")
        },
        // fix_e: an old line without bundle_created; the state knows it.
        line(T0 + 900, Apply, Done, "fix_e").cves(&["CVE-2023-9"]),
        line(T0 + 950, Reconcile, Done, "fix_e").cves(&["CVE-2023-9"]),
    ];
    let state = State {
        bundles: vec![
            recorded("fix_a", Phase::Applied, T0, &["CVE-2024-0001"]),
            recorded("fix_c", Phase::Applied, T0, &["CVE-2024-10000"]),
            recorded("fix_e", Phase::Lost, T0 + 800, &["CVE-2023-9"]),
        ],
        ..State::default()
    };
    (state, records(&lines))
}

#[test]
fn totals_count_bundles_applied_live_once_and_every_attempt() {
    let (state, records) = history();
    let report = Report::build(&state, &records);
    assert_eq!(report.audit_lines, 13);
    // fix_a, fix_c, fix_e; fix_a's re-apply is the same bundle.
    assert_eq!(report.reboots_avoided, 3);
    // fix_a twice, fix_c once (its rolled-back apply does not count), fix_e.
    assert_eq!(report.successful_applies, 4);
    assert_eq!(report.failed_attempts, 3);
    assert_eq!(report.refused_attempts, 2);
    assert_eq!(report.last_success, Some(T0 + 7200));
    assert_eq!(report.currently_applied, ["fix_a", "fix_c"]);
}

#[test]
fn a_rolled_back_apply_is_not_a_first_apply() {
    let (state, records) = history();
    let report = Report::build(&state, &records);
    let fix_c = bundle(&report, "fix_c");
    assert_eq!(fix_c.first_applied, Some(T0 + 7200));
    assert_eq!(fix_c.times_applied, 1);
    assert_eq!(fix_c.gap_seconds, Some(7200));
    let fix_a = bundle(&report, "fix_a");
    assert_eq!(
        (fix_a.first_applied, fix_a.times_applied, fix_a.gap_seconds),
        (Some(T0 + 3600), 2, Some(3600))
    );
}

#[test]
fn failures_keep_the_count_and_the_last_error() {
    let (state, records) = history();
    let report = Report::build(&state, &records);
    let fix_b = bundle(&report, "fix_b");
    assert_eq!((fix_b.failed_attempts, fix_b.refused_attempts), (2, 0));
    assert_eq!(
        fix_b.last_error.as_deref(),
        Some("cannot load the patch module of bundle fix_b")
    );
    assert_eq!(fix_b.last_error_at, Some(T0 + 200));
    assert_eq!((fix_b.first_applied, fix_b.phase), (None, None));
    let evil = bundle(&report, "evil");
    assert_eq!((evil.failed_attempts, evil.refused_attempts), (0, 1));
}

#[test]
fn the_gap_of_a_cve_is_that_of_the_first_bundle_applied_that_fixes_it() {
    let (state, records) = history();
    let report = Report::build(&state, &records);
    let order: Vec<&str> = report.cves.iter().map(|c| c.cve.as_str()).collect();
    // Verified bundles only (not evil's claim), by year and number.
    assert_eq!(
        order,
        [
            "CVE-2023-9",
            "CVE-2024-0001",
            "CVE-2024-0002",
            "CVE-2024-10000"
        ]
    );
    let first = cve(&report, "CVE-2024-0001");
    assert_eq!(first.bundles, ["fix_a", "fix_c"]);
    assert_eq!(first.fixed_by.as_deref(), Some("fix_a"));
    assert_eq!(first.fixed_by_sha256, Some(sha("fix_a")));
    assert_eq!(
        (first.bundle_created, first.first_applied, first.gap_seconds),
        (Some(T0), Some(T0 + 3600), Some(3600))
    );
    let unfixed = cve(&report, "CVE-2024-0002");
    assert_eq!(unfixed.bundles, ["fix_b"]);
    assert_eq!((&unfixed.fixed_by, unfixed.gap_seconds), (&None, None));
}

#[test]
fn the_creation_time_of_old_lines_comes_from_the_state() {
    let (state, records) = history();
    let report = Report::build(&state, &records);
    let fix_e = bundle(&report, "fix_e");
    assert_eq!(fix_e.created, Some(T0 + 800));
    assert_eq!(fix_e.gap_seconds, Some(100));
    assert_eq!(fix_e.phase, Some("lost"));
    assert_eq!(cve(&report, "CVE-2023-9").gap_seconds, Some(100));
    // Without the state, the gap is unknown rather than guessed.
    let report = Report::build(&State::default(), &records);
    assert_eq!(bundle(&report, "fix_e").gap_seconds, None);
}

#[test]
fn a_bundle_made_after_it_was_applied_has_a_negative_gap() {
    let records = records(&[line(T0, Apply, Done, "skew")
        .cves(&["CVE-2024-0003"])
        .created(T0 + 30)]);
    let report = Report::build(&State::default(), &records);
    assert_eq!(cve(&report, "CVE-2024-0003").gap_seconds, Some(-30));
    assert!(
        report
            .to_string()
            .contains("CVE-2024-0003: -30s (made after"),
        "{report}"
    );
}

#[test]
fn text_report_golden() {
    let lines = [
        line(T0 + 5400, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-01")]),
        line(T0 + 5500, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0002", "CVE-2024-0003"])
            .created(T0)
            .published(&[("CVE-2024-0002", "2023-11-10")])
            .error("cannot enable bundle fix_b"),
    ];
    let state = State {
        bundles: vec![recorded("fix_a", Phase::Applied, T0, &["CVE-2024-0001"])],
        ..State::default()
    };
    let report = Report::build(&state, &records(&lines));
    let (a, b) = (sha("fix_a"), sha("fix_b"));
    assert_eq!(
        report.to_string(),
        format!(
            "audit log: 2 line(s), hash chain intact\n\
             reboots avoided: 1 (distinct bundles applied live)\n\
             applies: 1 successful, 1 failed, 0 refused; last success 2023-11-14T23:43:20Z\n\
             currently applied: fix_a\n\
             vulnerability gap (bundle made -> first applied here):\n\
             \x20 CVE-2024-0001: 1h 30m (fix_a, made 2023-11-14T22:13:20Z, applied 2023-11-14T23:43:20Z)\n\
             \x20 CVE-2024-0002: not applied (fix_b)\n\
             \x20 CVE-2024-0003: not applied (fix_b)\n\
             exposure (CVE published -> first applied here):\n\
             \x20 CVE-2024-0001: 13 day(s) (published 2023-11-01, applied 2023-11-14T23:43:20Z)\n\
             \x20 CVE-2024-0002: published 2023-11-10, not applied\n\
             \x20 no publication date declared: CVE-2024-0003\n\
             open CVEs (no bundle that fixes them is applied now):\n\
             \x20 CVE-2024-0002: failed (fix_b)\n\
             \x20 CVE-2024-0003: failed (fix_b)\n\
             bundles:\n\
             \x20 fix_a (sha256 {a}): applied\n\
             \x20   made 2023-11-14T22:13:20Z, first applied 2023-11-14T23:43:20Z (gap 1h 30m), applied 1 time(s); cves: CVE-2024-0001\n\
             \x20   attempts: 0 failed, 0 refused\n\
             \x20 fix_b (sha256 {b}): not in the state now\n\
             \x20   made 2023-11-14T22:13:20Z, first applied never, applied 0 time(s); cves: CVE-2024-0002, CVE-2024-0003\n\
             \x20   attempts: 1 failed, 0 refused\n\
             \x20   last error (2023-11-14T23:45:00Z): cannot enable bundle fix_b\n"
        )
    );
    assert_eq!(
        Report::default().to_string(),
        "audit log: 0 line(s), hash chain intact\n\
         reboots avoided: 0 (distinct bundles applied live)\n\
         applies: 0 successful, 0 failed, 0 refused; last success never\n\
         currently applied: none\n\
         vulnerability gap: no CVEs\n\
         bundles: none\n"
    );
}

#[test]
fn csv_report_golden() {
    let lines = [
        line(T0 + 60, Apply, Done, "fix_c")
            .cves(&["CVE-2024-10000", "CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-13")]),
        line(T0 + 70, Apply, Refused, "fix_q").error("bundle fix_q needs bundle \"a, b\" first"),
        line(T0 + 80, Apply, Failed, "fix_f")
            .cves(&["CVE-2024-0002"])
            .created(T0),
    ];
    let state = State {
        bundles: vec![recorded(
            "fix_c",
            Phase::Applied,
            T0,
            &["CVE-2024-10000", "CVE-2024-0001"],
        )],
        ..State::default()
    };
    let report = Report::build(&state, &records(&lines));
    let (c, q, f) = (sha("fix_c"), sha("fix_q"), sha("fix_f"));
    // 2023-11-13T00:00:00Z is T0 - 166400.
    assert_eq!(
        report.to_csv(),
        format!(
            "cve,bundle_id,bundle_sha256,signer_key_id,bundle_created,first_applied,gap_seconds,\
             times_applied,phase,failed_attempts,refused_attempts,last_error_at,last_error,\
             cve_published,exposure_seconds,fixed_now\n\
             CVE-2024-10000,fix_c,{c},fe812c12f3ab4ce6,2023-11-14T22:13:20Z,2023-11-14T22:14:20Z,60,1,applied,0,0,,,,,yes\n\
             CVE-2024-0001,fix_c,{c},fe812c12f3ab4ce6,2023-11-14T22:13:20Z,2023-11-14T22:14:20Z,60,1,applied,0,0,,,2023-11-13,166460,yes\n\
             ,fix_q,{q},fe812c12f3ab4ce6,,,,0,,0,1,2023-11-14T22:14:30Z,\"bundle fix_q needs bundle \"\"a, b\"\" first\",,,\n\
             CVE-2024-0002,fix_f,{f},fe812c12f3ab4ce6,2023-11-14T22:13:20Z,,,0,,1,0,2023-11-14T22:14:40Z,,,,no\n"
        )
    );
}

#[test]
fn csv_fields_are_quoted_only_when_they_must_be() {
    let cases = [
        ("", ""),
        ("plain text", "plain text"),
        ("a,b", "\"a,b\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""),
        ("two\nlines", "\"two\nlines\""),
        ("cr\r", "\"cr\r\""),
        ("\"", "\"\"\"\""),
        ("-30", "-30"),
    ];
    for (field, want) in cases {
        assert_eq!(csv_field(field), want, "{field:?}");
    }
}

#[test]
fn json_field_names_are_the_documented_ones() {
    let (state, records) = history();
    let value = serde_json::to_value(Report::build(&state, &records)).expect("json");
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object().expect("object").keys().cloned().collect()
    };
    let mut want = [
        "audit_lines",
        "reboots_avoided",
        "successful_applies",
        "failed_attempts",
        "refused_attempts",
        "last_success",
        "currently_applied",
        "held",
        "cves",
        "open_cves",
        "bundles",
    ];
    want.sort_unstable();
    assert_eq!(keys(&value), want);
    let mut want = [
        "cve",
        "bundles",
        "fixed_by",
        "fixed_by_sha256",
        "bundle_created",
        "first_applied",
        "gap_seconds",
        "published",
        "exposure_seconds",
        "fixed_now",
    ];
    want.sort_unstable();
    assert_eq!(keys(&value["cves"][0]), want);
    let mut want = ["cve", "bundles", "reason"];
    want.sort_unstable();
    assert_eq!(keys(&value["open_cves"][0]), want);
    let mut want = [
        "id",
        "sha256",
        "signer_key_id",
        "cves",
        "cve_published",
        "created",
        "first_applied",
        "gap_seconds",
        "times_applied",
        "failed_attempts",
        "refused_attempts",
        "last_error",
        "last_error_at",
        "phase",
    ];
    want.sort_unstable();
    assert_eq!(keys(&value["bundles"][0]), want);
}

#[test]
fn a_real_apply_is_reported_from_the_state_directory() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let bundle = host.bundle("fix_a");
    // The bundle was made at the clock's start; apply it 90 minutes later.
    host.clock.sleep(Duration::from_secs(5400));
    {
        let mut session = host.session(&kernel);
        apply(&mut session, &[bundle]).expect("applies");
    }
    let dir = StateDir::open(&host.config().state_dir, &default_owners()).expect("open");
    let report = report(&dir).expect("report");
    assert_eq!(report.reboots_avoided, 1);
    assert_eq!(report.currently_applied, ["fix_a"]);
    let gap = cve(&report, "CVE-2024-0001");
    assert_eq!(gap.fixed_by.as_deref(), Some("fix_a"));
    assert_eq!(gap.gap_seconds, Some(5400));
}

#[test]
fn a_tampered_log_is_refused_with_the_audit_exit_kind() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    {
        let mut session = host.session(&kernel);
        apply(&mut session, &[host.bundle("fix_a")]).expect("applies");
        apply(&mut session, &[host.bundle("fix_b")]).expect("applies");
    }
    let log = host
        .config()
        .state_dir
        .join(crate::transaction::audit::AUDIT_FILE);
    let text = std::fs::read_to_string(&log).expect("read");
    std::fs::write(&log, text.replacen("fix_a", "fix_z", 1)).expect("write");
    let dir = StateDir::open(&host.config().state_dir, &default_owners()).expect("open");
    let error = report(&dir).expect_err("tampered");
    assert!(matches!(error, ReportError::Tampered(_)), "{error}");
    let text = crate::error_text(&error);
    assert!(
        text.contains("patchd audit verify") && text.contains("line 1"),
        "{text}"
    );
    assert_eq!(failure_kind(&error), FailureKind::Tampered);
}
