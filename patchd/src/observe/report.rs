//! `patchd report`: compliance figures for this host, computed from the
//! state file and the audit log alone: per CVE the vulnerability gap (from
//! when patchgen made the bundle that fixes it to the first time that
//! bundle was applied here) and, when a bundle declares the CVE's
//! publication date, the exposure (from publication to that first apply);
//! the CVEs still open; the reboots live patching avoided, the failed
//! attempts with each bundle's last error, what is applied now and what
//! the crash-loop guard holds back. The text and CSV forms are in
//! `report_format`.
//!
//! The figures are only as good as the log, so a log whose hash chain does
//! not verify is refused, never reported from. This module reads; it never
//! writes the state or the log and never touches the kernel.
//!
//! Definitions (docs/patchd.md repeats them for readers of the report):
//!
//! - a bundle is one bundle file, told apart by its sha256 (a rebuilt
//!   bundle with the same id is another bundle);
//! - a **successful apply** is an `apply` line with result `ok` that no
//!   `rollback` line with result `ok` of the same bundle took back (a later
//!   bundle of the same apply failed, so this one was never left in effect);
//! - **reboots avoided** is the number of distinct bundles with at least
//!   one successful apply: each is a kernel fix that, without live
//!   patching, would have waited for a reboot into a fixed kernel. It is an
//!   upper bound: fixes applied close together would have shared one reboot,
//!   and a fix may have been due with a reboot that was planned anyway;
//! - the **vulnerability gap** of a CVE is the first successful apply of a
//!   bundle that fixes it minus that bundle's creation time. It leaves out
//!   the time before the fix was built (disclosure, writing the fix); it is
//!   negative when the build host's clock was ahead of this host's;
//! - the **exposure** of a CVE is the same first successful apply minus
//!   the start (00:00 UTC) of the CVE's publication date, as the verified
//!   bundles that fix it declare it in their signed manifests (the audit
//!   lines and the state carry it); when they declare different dates, the
//!   earliest. Unknown when none declares one; negative when the fix was
//!   applied before the CVE was published;
//! - a CVE is **fixed now** when a verified bundle that fixes it is
//!   recorded as `applied` in the state; every other CVE of a verified
//!   bundle is **open**, with the reason of the bundle for it that is
//!   nearest now: its phase in the state when it is recorded (`held` by the
//!   crash-loop guard, `lost`, or an apply or revert in progress), else
//!   the last thing the log says of it (`reverted`, `failed`,
//!   `rolled_back`, or `not_in_state` when that was a successful apply),
//!   else `not_applied`. Another bundle's failure never opens a CVE that an
//!   applied bundle fixes;
//! - **failed** and **refused** attempts count `apply` lines with those
//!   results (refused: stopped before the kernel was touched).
//!
//! CVEs come only from bundles that passed verification (applied, failed,
//! or recorded in the state): a refused bundle's CVEs are what an
//! unverified file claims, so they do not enter the CVE table.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use serde::Serialize;
use suture_bundle::names::{cve_date_seconds, is_cve_date};

use crate::transaction::audit::{
    AuditAction, AuditError, AuditLog, AuditRecord, AuditResult, Tampered,
};
use crate::transaction::state::{Phase, State, StateDir, StateError};

/// The compliance figures of one host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Lines in the audit log (all verified).
    pub audit_lines: u64,
    /// Distinct bundles with at least one successful apply.
    pub reboots_avoided: u64,
    /// Successful applies, re-applies of the same bundle included.
    pub successful_applies: u64,
    /// `apply` lines with result `failed`.
    pub failed_attempts: u64,
    /// `apply` lines with result `refused`.
    pub refused_attempts: u64,
    /// The latest successful apply (Unix seconds).
    pub last_success: Option<u64>,
    /// Ids of the bundles the state records as applied, in apply order.
    pub currently_applied: Vec<String>,
    /// Ids of the bundles the crash-loop guard holds back (recorded as
    /// held), in apply order.
    pub held: Vec<String>,
    /// One entry per CVE, by CVE year and number.
    pub cves: Vec<CveGap>,
    /// The CVEs of `cves` that no bundle applied now fixes, in that order.
    pub open_cves: Vec<OpenCve>,
    /// One entry per bundle, in the order the log first names them; bundles
    /// only the state knows come last.
    pub bundles: Vec<BundleFigures>,
}

/// The vulnerability gap of one CVE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CveGap {
    /// The CVE id.
    pub cve: String,
    /// Ids of the verified bundles that fix it.
    pub bundles: Vec<String>,
    /// The bundle whose successful apply came first, if any.
    pub fixed_by: Option<String>,
    /// Its sha256.
    pub fixed_by_sha256: Option<String>,
    /// When that bundle was made (Unix seconds), if known.
    pub bundle_created: Option<u64>,
    /// When it was first applied here (Unix seconds).
    pub first_applied: Option<u64>,
    /// `first_applied - bundle_created`.
    pub gap_seconds: Option<i64>,
    /// When the CVE was published (`YYYY-MM-DD`), as the verified bundles
    /// that fix it declare it: the earliest date when they differ.
    pub published: Option<String>,
    /// `first_applied` minus the start of `published` (00:00 UTC).
    pub exposure_seconds: Option<i64>,
    /// Whether a bundle that fixes it is recorded as applied now.
    pub fixed_now: bool,
}

/// A CVE no bundle applied now fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenCve {
    /// The CVE id.
    pub cve: String,
    /// Ids of the verified bundles that fix it.
    pub bundles: Vec<String>,
    /// Why it is open: the state's phase of a bundle for it that is
    /// recorded (`held`, `lost`, `loading`, `enabling`, `reverting`,
    /// `disabled`), else the last outcome in the log of one that is not
    /// (`reverted`, `failed`, `rolled_back`, `not_in_state`), else
    /// `not_applied`.
    pub reason: &'static str,
}

/// The last thing the log says happened to a bundle (what makes it open
/// when the state no longer records it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastOutcome {
    /// A successful apply (the state should record it).
    Applied,
    /// A failed apply.
    Failed,
    /// Undone because a later bundle of its apply failed.
    RolledBack,
    /// Reverted.
    Reverted,
    /// Held back by the crash-loop guard.
    Held,
}

impl LastOutcome {
    /// The reason it gives a CVE of a bundle the state does not record.
    fn open_reason(self) -> &'static str {
        match self {
            Self::Applied => "not_in_state",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Reverted => "reverted",
            Self::Held => "held",
        }
    }
}

/// What the log and the state say about one bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BundleFigures {
    /// Its id (as claimed, for a bundle refused before it parsed: `None`).
    pub id: Option<String>,
    /// sha256 of the bundle file.
    pub sha256: String,
    /// Key id of its signer.
    pub signer_key_id: Option<String>,
    /// The CVEs it fixes.
    pub cves: Vec<String>,
    /// The publication dates it declares (`YYYY-MM-DD` by CVE id), from
    /// the log, or from the state for lines written before the log
    /// recorded them.
    pub cve_published: BTreeMap<String, String>,
    /// When patchgen made it (Unix seconds): from the log, or from the
    /// state for lines written before the log recorded it.
    pub created: Option<u64>,
    /// Its first successful apply (Unix seconds).
    pub first_applied: Option<u64>,
    /// `first_applied - created`.
    pub gap_seconds: Option<i64>,
    /// Successful applies of it.
    pub times_applied: u64,
    /// `apply` lines of it with result `failed`.
    pub failed_attempts: u64,
    /// `apply` lines of it with result `refused`.
    pub refused_attempts: u64,
    /// The error of its latest failed or refused apply.
    pub last_error: Option<String>,
    /// When that was (Unix seconds).
    pub last_error_at: Option<u64>,
    /// Its phase in the state now (`applied`, `lost`, ...), if recorded.
    pub phase: Option<&'static str>,
    /// Whether it passed verification: some line other than a refusal
    /// names it, or the state records it.
    #[serde(skip)]
    verified: bool,
    /// The times of its successful applies; a rollback takes the last one
    /// back.
    #[serde(skip)]
    applies: Vec<u64>,
    /// The last outcome the log records for it, and where (the line's
    /// position in the log).
    #[serde(skip)]
    last_outcome: Option<(usize, LastOutcome)>,
}

/// Why there is no report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The state directory or file is unusable.
    #[error(transparent)]
    State(StateError),
    /// The audit log could not be read.
    #[error("cannot read the audit log")]
    Audit(#[source] AuditError),
    /// The audit log's chain is broken.
    #[error(
        "refusing to report from an audit log that fails verification (run `patchd audit verify`)"
    )]
    Tampered(#[source] Tampered),
}

/// Reads the state and the verified audit log of `dir` and computes the
/// report; a log that fails verification is refused.
pub fn report(dir: &StateDir) -> Result<Report, ReportError> {
    let state = dir.load().map_err(ReportError::State)?;
    let records = AuditLog::new(dir.path())
        .read_verified()
        .map_err(ReportError::Audit)?
        .map_err(ReportError::Tampered)?;
    Ok(Report::build(&state, &records))
}

/// Unix seconds of an RFC 3339 time as patchd writes them.
pub(crate) fn unix_seconds(rfc3339: &str) -> Option<u64> {
    let time = humantime::parse_rfc3339(rfc3339).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// `later - earlier` in seconds, negative when `earlier` is later.
pub(crate) fn seconds_between(earlier: u64, later: u64) -> Option<i64> {
    i64::try_from(later)
        .ok()?
        .checked_sub(i64::try_from(earlier).ok()?)
}

/// Orders CVE ids by year and number (`CVE-2024-999` before
/// `CVE-2024-1000`), anything else after them by text.
pub(crate) fn cve_order(cve: &str) -> (bool, Option<(u64, u64)>, &str) {
    let numbers = cve.strip_prefix("CVE-").and_then(|rest| {
        let (year, number) = rest.split_once('-')?;
        Some((year.parse().ok()?, number.parse().ok()?))
    });
    (numbers.is_none(), numbers, cve)
}

impl Report {
    /// Computes the figures from the state and the records of a verified
    /// audit log (in log order).
    pub fn build(state: &State, records: &[AuditRecord]) -> Self {
        let mut bundles: Vec<BundleFigures> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut report = Self {
            audit_lines: u64::try_from(records.len()).unwrap_or(u64::MAX),
            ..Self::default()
        };
        for (position, record) in records.iter().enumerate() {
            if record.action == AuditAction::Apply {
                match record.result {
                    AuditResult::Failed => report.failed_attempts += 1,
                    AuditResult::Refused => report.refused_attempts += 1,
                    AuditResult::Ok => {}
                }
            }
            // A line without a digest (the file could not even be read)
            // counts above but belongs to no bundle.
            let Some(sha256) = &record.bundle_sha256 else {
                continue;
            };
            let at = *index.entry(sha256.clone()).or_insert_with(|| {
                bundles.push(BundleFigures {
                    sha256: sha256.clone(),
                    ..BundleFigures::default()
                });
                bundles.len() - 1
            });
            if let Some(bundle) = bundles.get_mut(at) {
                bundle.add(position, record);
            }
        }
        for recorded in &state.bundles {
            let at = *index.entry(recorded.sha256.clone()).or_insert_with(|| {
                bundles.push(BundleFigures {
                    sha256: recorded.sha256.clone(),
                    ..BundleFigures::default()
                });
                bundles.len() - 1
            });
            let Some(bundle) = bundles.get_mut(at) else {
                continue;
            };
            bundle.verified = true;
            bundle.phase = Some(recorded.phase.as_str());
            bundle.id.get_or_insert_with(|| recorded.id.clone());
            bundle
                .signer_key_id
                .get_or_insert_with(|| recorded.signer_key_id.clone());
            bundle.created.get_or_insert(recorded.manifest.created);
            if bundle.cves.is_empty() {
                bundle.cves.clone_from(&recorded.manifest.cves);
            }
            if bundle.cve_published.is_empty() {
                bundle.cve_published =
                    valid_dates(&recorded.manifest.cve_published, &recorded.manifest.cves);
            }
            match recorded.phase {
                Phase::Applied => report.currently_applied.push(recorded.id.clone()),
                Phase::Held => report.held.push(recorded.id.clone()),
                _ => {}
            }
        }
        for bundle in &mut bundles {
            bundle.first_applied = bundle.applies.iter().copied().min();
            bundle.times_applied = u64::try_from(bundle.applies.len()).unwrap_or(u64::MAX);
            bundle.gap_seconds = bundle
                .created
                .zip(bundle.first_applied)
                .and_then(|(created, applied)| seconds_between(created, applied));
            if bundle.times_applied > 0 {
                report.reboots_avoided += 1;
                report.successful_applies += bundle.times_applied;
            }
            let last = bundle.applies.iter().copied().max();
            report.last_success = report.last_success.max(last);
        }
        (report.cves, report.open_cves) = cve_table(&bundles);
        report.bundles = bundles;
        report
    }
}

impl BundleFigures {
    /// Takes in one audit line of this bundle, at `position` in the log.
    fn add(&mut self, position: usize, record: &AuditRecord) {
        if self.id.is_none() {
            self.id.clone_from(&record.bundle_id);
        }
        if self.signer_key_id.is_none() {
            self.signer_key_id.clone_from(&record.signer_key_id);
        }
        if self.cves.is_empty() {
            self.cves.clone_from(&record.cves);
        }
        if self.cve_published.is_empty() {
            self.cve_published = valid_dates(&record.cve_published, &record.cves);
        }
        if self.created.is_none() {
            self.created = record.bundle_created.as_deref().and_then(unix_seconds);
        }
        if record.result != AuditResult::Refused {
            // Only a verified bundle is ever tried, rolled back, reverted
            // or reconciled.
            self.verified = true;
        }
        let time = unix_seconds(&record.time);
        let outcome = match (record.action, record.result) {
            (AuditAction::Apply, AuditResult::Ok) => Some(LastOutcome::Applied),
            (AuditAction::Apply, AuditResult::Failed) => Some(LastOutcome::Failed),
            (AuditAction::Rollback, AuditResult::Ok) => Some(LastOutcome::RolledBack),
            (AuditAction::Revert, AuditResult::Ok) => Some(LastOutcome::Reverted),
            (AuditAction::Hold, AuditResult::Ok) => Some(LastOutcome::Held),
            _ => None,
        };
        if let Some(outcome) = outcome {
            self.last_outcome = Some((position, outcome));
        }
        match (record.action, record.result) {
            (AuditAction::Apply, AuditResult::Ok) => {
                // A line patchd wrote always has a time it can read; one
                // that does not is left out of the figures of time.
                if let Some(time) = time {
                    self.applies.push(time);
                }
            }
            (AuditAction::Rollback, AuditResult::Ok) => {
                self.applies.pop();
            }
            (AuditAction::Apply, result @ (AuditResult::Failed | AuditResult::Refused)) => {
                if result == AuditResult::Failed {
                    self.failed_attempts += 1;
                } else {
                    self.refused_attempts += 1;
                }
                self.last_error.clone_from(&record.error);
                self.last_error_at = time;
            }
            _ => {}
        }
    }
}

/// The dates of `dates` that are real days and of one of `cves`; others
/// (not from a manifest patchd verified) are left out, never shown.
fn valid_dates(dates: &BTreeMap<String, String>, cves: &[String]) -> BTreeMap<String, String> {
    dates
        .iter()
        .filter(|(cve, date)| cves.contains(cve) && is_cve_date(date))
        .map(|(cve, date)| (cve.clone(), date.clone()))
        .collect()
}

/// The CVE table and the open CVEs: for each CVE of a verified bundle, the
/// bundle first applied among those that fix it, the earliest publication
/// date they declare, and whether one of them is applied now.
fn cve_table(bundles: &[BundleFigures]) -> (Vec<CveGap>, Vec<OpenCve>) {
    let mut fixing: BTreeMap<&str, Vec<&BundleFigures>> = BTreeMap::new();
    for bundle in bundles.iter().filter(|b| b.verified) {
        for cve in &bundle.cves {
            fixing.entry(cve).or_default().push(bundle);
        }
    }
    let mut gaps = Vec::with_capacity(fixing.len());
    let mut open = Vec::new();
    for (cve, fixes) in fixing {
        let gap = cve_gap(cve, &fixes);
        if !gap.fixed_now {
            open.push(OpenCve {
                cve: cve.to_owned(),
                bundles: gap.bundles.clone(),
                reason: open_reason(&fixes),
            });
        }
        gaps.push(gap);
    }
    gaps.sort_by(|a, b| cve_order(&a.cve).cmp(&cve_order(&b.cve)));
    open.sort_by(|a, b| cve_order(&a.cve).cmp(&cve_order(&b.cve)));
    (gaps, open)
}

/// The figures of `cve` from the verified bundles that fix it.
fn cve_gap(cve: &str, fixes: &[&BundleFigures]) -> CveGap {
    let mut gap = CveGap {
        cve: cve.to_owned(),
        bundles: Vec::new(),
        fixed_by: None,
        fixed_by_sha256: None,
        bundle_created: None,
        first_applied: None,
        gap_seconds: None,
        published: None,
        exposure_seconds: None,
        fixed_now: false,
    };
    // The earliest date declared, and its start in Unix seconds.
    let mut published: Option<(u64, &str)> = None;
    for bundle in fixes {
        if let Some(id) = &bundle.id {
            if !gap.bundles.contains(id) {
                gap.bundles.push(id.clone());
            }
        }
        let earlier = match (bundle.first_applied, gap.first_applied) {
            (Some(this), Some(so_far)) => this < so_far,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            gap.fixed_by.clone_from(&bundle.id);
            gap.fixed_by_sha256 = Some(bundle.sha256.clone());
            gap.bundle_created = bundle.created;
            gap.first_applied = bundle.first_applied;
            gap.gap_seconds = bundle.gap_seconds;
        }
        if let Some(date) = bundle.cve_published.get(cve) {
            if let Some(start) = cve_date_seconds(date) {
                if published.is_none_or(|(so_far, _)| start < so_far) {
                    published = Some((start, date));
                }
            }
        }
        gap.fixed_now |= bundle.phase == Some(Phase::Applied.as_str());
    }
    gap.published = published.map(|(_, date)| date.to_owned());
    gap.exposure_seconds = published
        .zip(gap.first_applied)
        .and_then(|((start, _), applied)| seconds_between(start, applied));
    gap
}

/// Why a CVE whose bundles `fixes` are none applied is open: the reason of
/// the bundle nearest now (one the state records, else the one whose last
/// outcome comes last in the log; the first of equals).
fn open_reason(fixes: &[&BundleFigures]) -> &'static str {
    let mut nearest: Option<(usize, &'static str)> = None;
    for bundle in fixes {
        let this = match (bundle.phase, bundle.last_outcome) {
            (Some(phase), _) => (usize::MAX, phase),
            (None, Some((position, outcome))) => (position, outcome.open_reason()),
            (None, None) => (0, "not_applied"),
        };
        if nearest.is_none_or(|(so_far, _)| this.0 > so_far) {
            nearest = Some(this);
        }
    }
    nearest.map_or("not_applied", |(_, reason)| reason)
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "report_cve_tests.rs"]
mod cve_tests;
