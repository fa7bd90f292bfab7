//! The forms of `patchd report` besides JSON: the text for people
//! ([`Report`]'s `Display`) and the CSV ([`Report::to_csv`], columns
//! [`CSV_COLUMNS`]). The figures and their definitions are in
//! [`super::report`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use suture_bundle::names::cve_date_seconds;

use super::report::{seconds_between, BundleFigures, CveGap, Report};
use crate::clock::utc_rfc3339;

/// The columns of `patchd report --csv`, in order: new ones are added at
/// the end, so scripts that read the first ones keep working.
pub const CSV_COLUMNS: [&str; 16] = [
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
    "cve_published",
    "exposure_seconds",
    "fixed_now",
];

/// Seconds in a day, for exposures in days.
const DAY: u64 = 86_400;

impl Report {
    /// The report as CSV: a header, then one row per bundle and CVE (one
    /// row with an empty `cve` for a bundle that names none); times RFC 3339
    /// UTC, empty when unknown. The CVE's publication date, the exposure
    /// (this bundle's first successful apply minus the start of that date)
    /// and whether the CVE is fixed now (`yes`, `no`) are those of the CVE
    /// table, empty for a CVE that is not in it (claimed only by a bundle
    /// that was refused unverified).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        push_csv_row(&mut out, CSV_COLUMNS.iter().map(|c| (*c).to_owned()));
        let table: BTreeMap<&str, &CveGap> =
            self.cves.iter().map(|c| (c.cve.as_str(), c)).collect();
        for bundle in &self.bundles {
            let cves: Vec<&str> = if bundle.cves.is_empty() {
                vec![""]
            } else {
                bundle.cves.iter().map(String::as_str).collect()
            };
            for cve in cves {
                push_csv_row(&mut out, csv_row(bundle, cve, table.get(cve).copied()));
            }
        }
        out
    }
}

/// The CSV row of `bundle` and one of its CVEs (`""`: none), with that
/// CVE's entry in the CVE table.
fn csv_row(bundle: &BundleFigures, cve: &str, entry: Option<&CveGap>) -> [String; 16] {
    let time = |t: Option<u64>| t.map(utc_rfc3339).unwrap_or_default();
    let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    let published = entry.and_then(|e| e.published.as_deref());
    let exposure = published
        .and_then(cve_date_seconds)
        .zip(bundle.first_applied)
        .and_then(|(start, applied)| seconds_between(start, applied));
    let fixed_now = entry.map_or("", |e| if e.fixed_now { "yes" } else { "no" });
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
        published.unwrap_or_default().to_owned(),
        number(exposure),
        fixed_now.to_owned(),
    ]
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

/// An exposure in whole days, as the publication date is a day: the days
/// from the publication date to the day of the apply (`0 day(s)`: the same
/// day), or before it.
fn exposure_text(seconds: i64) -> String {
    let magnitude = seconds.unsigned_abs();
    if seconds < 0 {
        format!(
            "-{} day(s) (applied before publication)",
            magnitude.div_ceil(DAY)
        )
    } else {
        format!("{} day(s)", magnitude / DAY)
    }
}

/// A time for the text form: RFC 3339 UTC, or `never`.
fn time(t: Option<u64>) -> String {
    t.map_or_else(|| "never".to_owned(), utc_rfc3339)
}

/// A list for the text form: comma-separated, or `none`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        self.write_gaps(f)?;
        if !self.cves.is_empty() {
            self.write_exposures(f)?;
            self.write_open(f)?;
        }
        self.write_bundles(f)
    }
}

impl Report {
    /// The vulnerability gap of each CVE.
    fn write_gaps(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        Ok(())
    }

    /// The exposure of each CVE with a publication date, then the CVEs
    /// without one.
    fn write_exposures(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dated, undated): (Vec<&CveGap>, Vec<&CveGap>) =
            self.cves.iter().partition(|c| c.published.is_some());
        if dated.is_empty() {
            return writeln!(
                f,
                "exposure (CVE published -> first applied here): no bundle declares a publication date"
            );
        }
        writeln!(f, "exposure (CVE published -> first applied here):")?;
        for cve in dated {
            let published = cve.published.as_deref().unwrap_or_default();
            match (cve.exposure_seconds, cve.first_applied) {
                (Some(exposure), Some(applied)) => writeln!(
                    f,
                    "  {}: {} (published {published}, applied {})",
                    cve.cve,
                    exposure_text(exposure),
                    utc_rfc3339(applied)
                )?,
                _ => writeln!(f, "  {}: published {published}, not applied", cve.cve)?,
            }
        }
        if !undated.is_empty() {
            let names: Vec<String> = undated.iter().map(|c| c.cve.clone()).collect();
            writeln!(f, "  no publication date declared: {}", list(&names))?;
        }
        Ok(())
    }

    /// The CVEs no bundle applied now fixes.
    fn write_open(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.open_cves.is_empty() {
            return writeln!(f, "open CVEs: none");
        }
        writeln!(f, "open CVEs (no bundle that fixes them is applied now):")?;
        for open in &self.open_cves {
            writeln!(
                f,
                "  {}: {} ({})",
                open.cve,
                open.reason,
                list(&open.bundles)
            )?;
        }
        Ok(())
    }

    /// Each bundle: its phase, times, attempts and last error.
    fn write_bundles(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
