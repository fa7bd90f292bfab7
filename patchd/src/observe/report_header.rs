//! What makes `patchd report` evidence an auditor accepts: a header naming
//! the host (name, machine id), its kernel (release, build-id), when the
//! report was made and the audit chain's head at that moment (so the
//! report can be matched with the log and the heads sent to syslog), an
//! optional time window (`--since`, `--until`) over the audit log's lines,
//! and a host column in the CSV so that reports of many hosts concatenate.

use std::fmt;

use serde::Serialize;

use super::report::{unix_seconds, Report, ReportError};
use super::report_format::{csv_field, push_csv_row, CSV_COLUMNS};
use crate::clock::utc_rfc3339;
use crate::transaction::audit::{AuditLog, HEAD_FILE};
use crate::transaction::state::StateDir;

/// Largest `audit.head` read for the header.
const MAX_HEAD: u64 = 4096;

/// Who and what a report is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReportHeader {
    /// The host name.
    pub host: String,
    /// `/etc/machine-id`, when readable.
    pub machine_id: Option<String>,
    /// The running kernel's release.
    pub kernel_release: String,
    /// Its GNU build-id.
    pub kernel_build_id: String,
    /// When the report was made (RFC 3339 UTC).
    pub generated_at: String,
    /// The audit chain's head when the report was made (`audit.head`).
    pub audit_head: Option<String>,
    /// Only audit lines from this time on (RFC 3339 UTC).
    pub since: Option<String>,
    /// Only audit lines up to this time (RFC 3339 UTC).
    pub until: Option<String>,
}

/// A report with its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditorReport {
    /// Who and what.
    pub header: ReportHeader,
    /// The figures.
    #[serde(flatten)]
    pub report: Report,
}

/// The audit window: lines at or after `since` and at or before `until`
/// (Unix seconds; `None`: unbounded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub since: Option<u64>,
    /// End.
    pub until: Option<u64>,
}

impl Window {
    fn holds(&self, time: &str) -> bool {
        let Some(t) = unix_seconds(time) else {
            return self.since.is_none() && self.until.is_none();
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }
}

/// The report of the state directory `dir` over the audit lines in
/// `window`, with `header` (its window and chain head filled in here).
/// A log that fails verification is refused.
pub fn report_with_header(
    dir: &StateDir,
    window: Window,
    mut header: ReportHeader,
) -> Result<AuditorReport, ReportError> {
    let state = dir.load().map_err(ReportError::State)?;
    let log = AuditLog::new(dir.path());
    let records = log
        .read_verified()
        .map_err(ReportError::Audit)?
        .map_err(ReportError::Tampered)?;
    let records: Vec<_> = records
        .into_iter()
        .filter(|r| window.holds(&r.time))
        .collect();
    header.audit_head = crate::files::read_regular(
        &dir.path().join(HEAD_FILE),
        MAX_HEAD,
        crate::files::Links::Refuse,
    )
    .ok()
    .flatten()
    .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned());
    header.since = window.since.map(utc_rfc3339);
    header.until = window.until.map(utc_rfc3339);
    Ok(AuditorReport {
        header,
        report: Report::build(&state, &records),
    })
}

impl AuditorReport {
    /// The CSV of the report with a `host` column first.
    pub fn to_csv(&self) -> String {
        let body = self.report.to_csv();
        let mut out = String::new();
        push_csv_row(
            &mut out,
            std::iter::once("host".to_owned()).chain(CSV_COLUMNS.iter().map(|c| (*c).to_owned())),
        );
        let host = csv_field(&self.header.host).into_owned();
        for row in body.lines().skip(1) {
            out.push_str(&host);
            out.push(',');
            out.push_str(row);
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for AuditorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        writeln!(
            f,
            "host: {} (machine id {})",
            h.host,
            h.machine_id.as_deref().unwrap_or("unknown")
        )?;
        writeln!(
            f,
            "kernel: {} (build-id {})",
            h.kernel_release, h.kernel_build_id
        )?;
        writeln!(f, "report made: {}", h.generated_at)?;
        writeln!(
            f,
            "audit chain head: {}",
            h.audit_head.as_deref().unwrap_or("none")
        )?;
        if h.since.is_some() || h.until.is_some() {
            writeln!(
                f,
                "audit lines from {} to {}",
                h.since.as_deref().unwrap_or("the first"),
                h.until.as_deref().unwrap_or("the last")
            )?;
        }
        write!(f, "{}", self.report)
    }
}

#[cfg(test)]
#[path = "report_header_tests.rs"]
mod tests;
