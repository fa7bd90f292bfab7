//! `patchd report`: compliance figures for this host, computed from the
//! state file and the audit log alone: per CVE the vulnerability gap (from
//! when patchgen made the bundle that fixes it to the first time that
//! bundle was applied here), the reboots live patching avoided, the failed
//! attempts with each bundle's last error, what is applied now and what
//! the crash-loop guard holds back.
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
//! - **failed** and **refused** attempts count `apply` lines with those
//!   results (refused: stopped before the kernel was touched).
//!
//! CVEs come only from bundles that passed verification (applied, failed,
//! or recorded in the state): a refused bundle's CVEs are what an
//! unverified file claims, so they do not enter the CVE table.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::clock::utc_rfc3339;
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
fn seconds_between(earlier: u64, later: u64) -> Option<i64> {
    i64::try_from(later)
        .ok()?
        .checked_sub(i64::try_from(earlier).ok()?)
}

/// Orders CVE ids by year and number (`CVE-2024-999` before
/// `CVE-2024-1000`), anything else after them by text.
fn cve_order(cve: &str) -> (bool, Option<(u64, u64)>, &str) {
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
        for record in records {
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
                bundle.add(record);
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
        report.cves = cve_gaps(&bundles);
        report.bundles = bundles;
        report
    }
}

impl BundleFigures {
    /// Takes in one audit line of this bundle.
    fn add(&mut self, record: &AuditRecord) {
        if self.id.is_none() {
            self.id.clone_from(&record.bundle_id);
        }
        if self.signer_key_id.is_none() {
            self.signer_key_id.clone_from(&record.signer_key_id);
        }
        if self.cves.is_empty() {
            self.cves.clone_from(&record.cves);
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

/// The CVE table: for each CVE of a verified bundle, the bundle first
/// applied among those that fix it.
fn cve_gaps(bundles: &[BundleFigures]) -> Vec<CveGap> {
    let mut gaps: BTreeMap<String, CveGap> = BTreeMap::new();
    for bundle in bundles.iter().filter(|b| b.verified) {
        for cve in &bundle.cves {
            let gap = gaps.entry(cve.clone()).or_insert_with(|| CveGap {
                cve: cve.clone(),
                bundles: Vec::new(),
                fixed_by: None,
                fixed_by_sha256: None,
                bundle_created: None,
                first_applied: None,
                gap_seconds: None,
            });
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
        }
    }
    let mut gaps: Vec<CveGap> = gaps.into_values().collect();
    gaps.sort_by(|a, b| cve_order(&a.cve).cmp(&cve_order(&b.cve)));
    gaps
}

/// The columns of `patchd report --csv`, in order.
pub const CSV_COLUMNS: [&str; 13] = [
    "cve",
    "bundle_id",
    "bundle_sha256",
    "signer_key_id",
    "bundle_created",
    "first_applied",
    "gap_seconds",
    "times_applied",
    "phase",
    "failed_attempts",
    "refused_attempts",
    "last_error_at",
    "last_error",
];

impl Report {
    /// The report as CSV: a header, then one row per bundle and CVE (one
    /// row with an empty `cve` for a bundle that names none); times RFC 3339
    /// UTC, empty when unknown.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        push_csv_row(&mut out, CSV_COLUMNS.iter().map(|c| (*c).to_owned()));
        for bundle in &self.bundles {
            let time = |t: Option<u64>| t.map(utc_rfc3339).unwrap_or_default();
            let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
            let cves: Vec<&str> = if bundle.cves.is_empty() {
                vec![""]
            } else {
                bundle.cves.iter().map(String::as_str).collect()
            };
            for cve in cves {
                push_csv_row(
                    &mut out,
                    [
                        cve.to_owned(),
                        bundle.id.clone().unwrap_or_default(),
                        bundle.sha256.clone(),
                        bundle.signer_key_id.clone().unwrap_or_default(),
                        time(bundle.created),
                        time(bundle.first_applied),
                        number(bundle.gap_seconds),
                        bundle.times_applied.to_string(),
                        bundle.phase.unwrap_or_default().to_owned(),
                        bundle.failed_attempts.to_string(),
                        bundle.refused_attempts.to_string(),
                        time(bundle.last_error_at),
                        bundle.last_error.clone().unwrap_or_default(),
                    ],
                );
            }
        }
        out
    }
}

/// Appends one CSV row and its newline.
pub(crate) fn push_csv_row(out: &mut String, fields: impl IntoIterator<Item = String>) {
    for (i, field) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&csv_field(&field));
    }
    out.push('\n');
}

/// One CSV field as RFC 4180 writes it: in double quotes, with quotes
/// doubled, when it holds a comma, a quote or a line break; as it is
/// otherwise. (Twelve lines, so no CSV crate in a root daemon for them.)
pub(crate) fn csv_field(text: &str) -> Cow<'_, str> {
    if text.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(text)
    }
}

/// A gap as people read it: `2h 5m`, `-30s (made after it was applied:
/// the clocks disagree)`.
fn gap_text(seconds: i64) -> String {
    let span = humantime::format_duration(Duration::from_secs(seconds.unsigned_abs()));
    if seconds < 0 {
        format!("-{span} (made after it was applied: the clocks disagree)")
    } else {
        span.to_string()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: Option<u64>| t.map_or_else(|| "never".to_owned(), utc_rfc3339);
        let list = |items: &[String]| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        writeln!(
            f,
            "audit log: {} line(s), hash chain intact",
            self.audit_lines
        )?;
        writeln!(
            f,
            "reboots avoided: {} (distinct bundles applied live)",
            self.reboots_avoided
        )?;
        writeln!(
            f,
            "applies: {} successful, {} failed, {} refused; last success {}",
            self.successful_applies,
            self.failed_attempts,
            self.refused_attempts,
            time(self.last_success)
        )?;
        writeln!(f, "currently applied: {}", list(&self.currently_applied))?;
        if !self.held.is_empty() {
            writeln!(
                f,
                "held back after a crash: {} (`patchd release ID` applies it again)",
                list(&self.held)
            )?;
        }
        if self.cves.is_empty() {
            writeln!(f, "vulnerability gap: no CVEs")?;
        } else {
            writeln!(f, "vulnerability gap (bundle made -> first applied here):")?;
        }
        for cve in &self.cves {
            match (&cve.fixed_by, cve.first_applied) {
                (Some(id), Some(applied)) => writeln!(
                    f,
                    "  {}: {} ({id}, made {}, applied {})",
                    cve.cve,
                    cve.gap_seconds
                        .map_or_else(|| "unknown".to_owned(), gap_text),
                    time(cve.bundle_created),
                    utc_rfc3339(applied)
                )?,
                _ => writeln!(f, "  {}: not applied ({})", cve.cve, list(&cve.bundles))?,
            }
        }
        if self.bundles.is_empty() {
            writeln!(f, "bundles: none")?;
        } else {
            writeln!(f, "bundles:")?;
        }
        for bundle in &self.bundles {
            writeln!(
                f,
                "  {} (sha256 {}): {}",
                bundle.id.as_deref().unwrap_or("(unreadable)"),
                bundle.sha256,
                bundle.phase.map_or("not in the state now", |phase| phase)
            )?;
            let gap = bundle
                .gap_seconds
                .map(|gap| format!(" (gap {})", gap_text(gap)))
                .unwrap_or_default();
            writeln!(
                f,
                "    made {}, first applied {}{gap}, applied {} time(s); cves: {}",
                time(bundle.created),
                time(bundle.first_applied),
                bundle.times_applied,
                list(&bundle.cves)
            )?;
            writeln!(
                f,
                "    attempts: {} failed, {} refused",
                bundle.failed_attempts, bundle.refused_attempts
            )?;
            if let Some(error) = &bundle.last_error {
                writeln!(
                    f,
                    "    last error ({}): {error}",
                    time(bundle.last_error_at)
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
