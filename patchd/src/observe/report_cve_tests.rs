//! The report's CVE publication dates, exposures and open CVEs: from
//! hand-made logs and states (dates shown, the earliest of two, none at
//! all, a bad one left out; open after a revert, a failure, a hold; not open
//! when another bundle is applied), in the three formats, and through a
//! real apply and revert against the fake kernel.

use std::time::Duration;

use super::tests::{bundle, cve, dates, line, recorded, records, T0};
use super::*;
use crate::clock::Clock;
use crate::ownership::default_owners;
use crate::testkit::{manifest, signing_key, TestHost};
use crate::transaction::apply::apply;
use crate::transaction::revert::{revert, RevertTarget};
use AuditAction::{Apply, Revert, Rollback};
use AuditResult::{Failed, Ok as Done};

/// 2023-11-01T00:00:00Z: 13 days and 80000 s before T0
/// (2023-11-14T22:13:20Z).
const NOV_1: u64 = T0 - 13 * 86_400 - 80_000;

fn open<'r>(report: &'r Report, id: &str) -> Option<&'r OpenCve> {
    report.open_cves.iter().find(|o| o.cve == id)
}

#[test]
fn a_declared_date_gives_the_exposure_to_the_first_apply() {
    let records = records(&[
        line(T0 + 3600, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-01")]),
        line(T0 + 7200, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-01")]),
    ]);
    let state = State {
        bundles: vec![recorded("fix_a", Phase::Applied, T0, &["CVE-2024-0001"])],
        ..State::default()
    };
    let report = Report::build(&state, &records);
    let gap = cve(&report, "CVE-2024-0001");
    assert_eq!(gap.published.as_deref(), Some("2023-11-01"));
    assert_eq!(
        gap.exposure_seconds,
        Some(i64::try_from(T0 + 3600 - NOV_1).expect("small"))
    );
    // The gap is as it was: from the bundle's creation.
    assert_eq!(gap.gap_seconds, Some(3600));
    assert!(gap.fixed_now);
    assert!(report.open_cves.is_empty());
    assert_eq!(
        bundle(&report, "fix_a").cve_published,
        dates(&[("CVE-2024-0001", "2023-11-01")])
    );
    let text = report.to_string();
    assert!(
        text.contains(
            "exposure (CVE published -> first applied here):\n  \
             CVE-2024-0001: 13 day(s) (published 2023-11-01, applied 2023-11-14T23:13:20Z)\n\
             open CVEs: none\n"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["cves"][0]["published"], "2023-11-01");
    assert_eq!(json["cves"][0]["exposure_seconds"], T0 + 3600 - NOV_1);
    assert_eq!(json["cves"][0]["fixed_now"], true);
    assert_eq!(json["open_cves"], serde_json::json!([]));
}

#[test]
fn bundles_that_disagree_on_the_date_give_the_earliest() {
    let records = records(&[
        line(T0 + 600, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-05")]),
        // Applied later, but it declares an earlier date.
        line(T0 + 900, Apply, Done, "fix_c")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-01")]),
    ]);
    let report = Report::build(&State::default(), &records);
    let gap = cve(&report, "CVE-2024-0001");
    assert_eq!(gap.published.as_deref(), Some("2023-11-01"));
    assert_eq!(gap.fixed_by.as_deref(), Some("fix_a"));
    assert_eq!(
        gap.exposure_seconds,
        Some(i64::try_from(T0 + 600 - NOV_1).expect("small"))
    );
}

#[test]
fn an_apply_before_publication_has_a_negative_exposure() {
    let records = records(&[line(T0, Apply, Done, "early")
        .cves(&["CVE-2024-0003"])
        .created(T0 - 60)
        .published(&[("CVE-2024-0003", "2023-11-15")])]);
    let report = Report::build(&State::default(), &records);
    // 2023-11-15T00:00:00Z is 6400 s after T0.
    assert_eq!(cve(&report, "CVE-2024-0003").exposure_seconds, Some(-6400));
    assert!(
        report.to_string().contains(
            "CVE-2024-0003: -1 day(s) (applied before publication) (published 2023-11-15"
        ),
        "{report}"
    );
}

#[test]
fn bundles_without_dates_give_none_and_old_lines_take_them_from_the_state() {
    // Lines and records written before the field: no dates anywhere.
    let lines = [line(T0 + 60, Apply, Done, "fix_a")
        .cves(&["CVE-2024-0001"])
        .created(T0)];
    let state = State {
        bundles: vec![recorded("fix_a", Phase::Applied, T0, &["CVE-2024-0001"])],
        ..State::default()
    };
    let report = Report::build(&state, &records(&lines));
    let gap = cve(&report, "CVE-2024-0001");
    assert_eq!((&gap.published, gap.exposure_seconds), (&None, None));
    assert_eq!(gap.gap_seconds, Some(60));
    assert!(gap.fixed_now);
    let text = report.to_string();
    assert!(
        text.contains(
            "exposure (CVE published -> first applied here): no bundle declares a publication date\n"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["cves"][0]["published"], serde_json::Value::Null);
    assert_eq!(json["cves"][0]["exposure_seconds"], serde_json::Value::Null);
    // An old line, and a state whose copy of the manifest has the date.
    let mut state = state;
    state.bundles[0].manifest.cve_published = dates(&[("CVE-2024-0001", "2023-11-01")]);
    let report = Report::build(&state, &records(&lines));
    assert_eq!(
        cve(&report, "CVE-2024-0001").published.as_deref(),
        Some("2023-11-01")
    );
}

#[test]
fn dates_that_are_not_a_day_of_one_of_the_cves_are_left_out() {
    let records = records(&[line(T0 + 60, Apply, Done, "fix_a")
        .cves(&["CVE-2024-0001", "CVE-2024-0002"])
        .created(T0)
        .published(&[
            ("CVE-2024-0001", "2023-02-29"),
            ("CVE-2024-0002", "2023-11-01\u{1b}[2J"),
            ("CVE-2024-0009", "2023-11-01"),
        ])]);
    let report = Report::build(&State::default(), &records);
    assert!(bundle(&report, "fix_a").cve_published.is_empty());
    assert!(report.cves.iter().all(|c| c.published.is_none()));
    assert!(!report.to_string().contains('\u{1b}'));
}

#[test]
fn a_cve_is_open_after_its_bundle_was_reverted() {
    let records = records(&[
        line(T0 + 60, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .published(&[("CVE-2024-0001", "2023-11-01")]),
        line(T0 + 120, Revert, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
    ]);
    // The revert took it out of the state.
    let report = Report::build(&State::default(), &records);
    let gap = cve(&report, "CVE-2024-0001");
    assert!(!gap.fixed_now);
    // It was exposed until the apply; it is open again now.
    assert_eq!(gap.published.as_deref(), Some("2023-11-01"));
    assert!(gap.exposure_seconds.is_some());
    let open = open(&report, "CVE-2024-0001").expect("open");
    assert_eq!(
        (open.bundles.as_slice(), open.reason),
        (["fix_a".to_owned()].as_slice(), "reverted")
    );
    let text = report.to_string();
    assert!(
        text.contains(
            "open CVEs (no bundle that fixes them is applied now):\n  CVE-2024-0001: reverted (fix_a)\n"
        ),
        "{text}"
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(
        json["open_cves"],
        serde_json::json!([{"cve": "CVE-2024-0001", "bundles": ["fix_a"], "reason": "reverted"}])
    );
    let csv = report.to_csv();
    assert!(
        csv.lines()
            .nth(1)
            .is_some_and(|row| row.ends_with(",2023-11-01,1203260,no")),
        "{csv}"
    );
}

#[test]
fn a_cve_is_open_after_a_failed_apply_or_a_rollback() {
    let records = records(&[
        line(T0 + 60, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0002"])
            .created(T0)
            .error("cannot enable bundle fix_b"),
        line(T0 + 100, Apply, Done, "fix_c")
            .cves(&["CVE-2024-0004"])
            .created(T0),
        line(T0 + 101, Apply, Failed, "fix_d").created(T0),
        line(T0 + 102, Rollback, Done, "fix_c").cves(&["CVE-2024-0004"]),
    ]);
    let report = Report::build(&State::default(), &records);
    let reasons: Vec<(&str, &str)> = report
        .open_cves
        .iter()
        .map(|o| (o.cve.as_str(), o.reason))
        .collect();
    assert_eq!(
        reasons,
        [
            ("CVE-2024-0002", "failed"),
            ("CVE-2024-0004", "rolled_back")
        ]
    );
    assert!(report
        .to_string()
        .contains("  CVE-2024-0002: failed (fix_b)\n"));
    let csv = report.to_csv();
    assert!(
        csv.lines().nth(1).is_some_and(|row| row.ends_with(",,,no")),
        "{csv}"
    );
}

#[test]
fn a_cve_another_applied_bundle_fixes_is_not_open() {
    let records = records(&[
        line(T0 + 60, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .error("cannot enable bundle fix_b"),
        line(T0 + 120, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        // Failing again after fix_a was applied changes nothing.
        line(T0 + 180, Apply, Failed, "fix_b")
            .cves(&["CVE-2024-0001"])
            .created(T0)
            .error("cannot enable bundle fix_b"),
    ]);
    let state = State {
        bundles: vec![recorded("fix_a", Phase::Applied, T0, &["CVE-2024-0001"])],
        ..State::default()
    };
    let report = Report::build(&state, &records);
    assert!(cve(&report, "CVE-2024-0001").fixed_now);
    assert!(report.open_cves.is_empty(), "{:?}", report.open_cves);
    // Both bundles' rows say the CVE is fixed now.
    let csv = report.to_csv();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().all(|row| row.ends_with(",yes")), "{csv}");
}

#[test]
fn the_state_says_why_a_recorded_bundle_leaves_its_cve_open() {
    let records = records(&[
        line(T0 + 60, Apply, Done, "fix_a")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        line(T0 + 70, Apply, Done, "fix_e")
            .cves(&["CVE-2024-0005"])
            .created(T0),
        // Another bundle of the same CVE reverted later: the state's hold
        // is nearer now.
        line(T0 + 80, Apply, Done, "fix_a2")
            .cves(&["CVE-2024-0001"])
            .created(T0),
        line(T0 + 90, Revert, Done, "fix_a2").cves(&["CVE-2024-0001"]),
    ]);
    let state = State {
        bundles: vec![
            recorded("fix_a", Phase::Held, T0, &["CVE-2024-0001"]),
            recorded("fix_e", Phase::Lost, T0, &["CVE-2024-0005"]),
        ],
        ..State::default()
    };
    let report = Report::build(&state, &records);
    let held = open(&report, "CVE-2024-0001").expect("open");
    assert_eq!(held.reason, "held");
    assert_eq!(held.bundles, ["fix_a", "fix_a2"]);
    assert_eq!(
        open(&report, "CVE-2024-0005").map(|o| o.reason),
        Some("lost")
    );
}

#[test]
fn the_shared_history_has_the_lost_and_failed_cves_open() {
    let (state, records) = super::tests::history();
    let report = Report::build(&state, &records);
    let reasons: Vec<(&str, &str)> = report
        .open_cves
        .iter()
        .map(|o| (o.cve.as_str(), o.reason))
        .collect();
    // fix_a and fix_c are applied; fix_e is lost, fix_b failed; evil's
    // claim is not a CVE of this host.
    assert_eq!(
        reasons,
        [("CVE-2023-9", "lost"), ("CVE-2024-0002", "failed")]
    );
}

#[test]
fn dates_go_through_a_real_apply_and_revert() {
    let host = TestHost::new();
    let kernel = TestHost::kernel();
    let mut fix = manifest("fix_a");
    // The clock starts at T0; the CVE was published on 2023-11-01.
    fix.cve_published = dates(&[("CVE-2024-0001", "2023-11-01")]);
    let path = host.bundle_of(&fix, &signing_key());
    host.clock.sleep(Duration::from_secs(5400));
    {
        let mut session = host.session(&kernel);
        apply(&mut session, &[path]).expect("applies");
    }
    let dir = StateDir::open(&host.config().state_dir, &default_owners()).expect("open");
    let applied = report(&dir).expect("report");
    let gap = cve(&applied, "CVE-2024-0001");
    assert_eq!(gap.published.as_deref(), Some("2023-11-01"));
    assert_eq!(
        gap.exposure_seconds,
        Some(i64::try_from(T0 + 5400 - NOV_1).expect("small"))
    );
    assert!(gap.fixed_now);
    drop(dir);
    host.clock.sleep(Duration::from_secs(60));
    {
        let mut session = host.session(&kernel);
        revert(&mut session, &RevertTarget::Ids(vec!["fix_a".to_owned()])).expect("reverts");
    }
    let dir = StateDir::open(&host.config().state_dir, &default_owners()).expect("open");
    let reverted = report(&dir).expect("report");
    // The state no longer has it; the log still has its date.
    assert_eq!(
        cve(&reverted, "CVE-2024-0001").published.as_deref(),
        Some("2023-11-01")
    );
    assert_eq!(
        open(&reverted, "CVE-2024-0001").map(|o| o.reason),
        Some("reverted")
    );
    assert_eq!(host.clock.now(), T0 + 5460);
}
