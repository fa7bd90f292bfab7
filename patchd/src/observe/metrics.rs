//! Metrics in the Prometheus text exposition format (version 0.0.4), for
//! node-exporter's textfile collector: what is applied, held back and
//! pending, failed attempts, the last success, the vulnerability gap per
//! CVE, and patchd's version with the running kernel.
//!
//! [`MetricsSnapshot::collect`] takes its figures from the state and the
//! records of a verified audit log (the same computation as
//! [`crate::observe::report`]); [`render`] is a pure function of the snapshot, so
//! the text is tested byte for byte. When the audit log fails verification
//! the figures drawn from it are left out, never computed from a tampered
//! log, and `suture_audit_log_intact` is 0 so that an alert can fire.
//!
//! There is no `suture_up`: patchd writes this file only when it runs, so
//! an `up` gauge in it could never read 0. Staleness shows in
//! node-exporter's own `node_textfile_mtime_seconds`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use super::report::Report;
use crate::kernel::KernelIdentity;
use crate::transaction::audit::{AuditRecord, Tampered};
use crate::transaction::state::{Phase, State};

/// The file [`write_textfile`] writes: node-exporter's textfile collector
/// reads `*.prom` in its directory.
pub const TEXTFILE_NAME: &str = "suture.prom";

/// What the metrics say, collected once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// patchd's version.
    pub version: String,
    /// The running kernel.
    pub kernel: KernelIdentity,
    /// Bundles the state records as applied.
    pub applied: u64,
    /// Bundles the crash-loop guard holds back (recorded as held).
    pub held: u64,
    /// Bundles seen but not applied, when the caller knows (the daemon
    /// does; a one-off `patchd metrics` does not, and leaves it out).
    pub pending: Option<u64>,
    /// The figures drawn from the audit log; `None` when it failed
    /// verification.
    pub audit: Option<AuditFigures>,
    /// (CVE, bundle id) for each CVE of each bundle the state records as
    /// applied, in the state's order.
    pub cves_fixed: Vec<(String, String)>,
}

/// The metrics drawn from a verified audit log (definitions in
/// [`crate::observe::report`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFigures {
    /// `apply` lines with result `failed`.
    pub failed: u64,
    /// `apply` lines with result `refused`.
    pub refused: u64,
    /// Distinct bundles applied live.
    pub reboots_avoided: u64,
    /// The latest successful apply (Unix seconds).
    pub last_success: Option<u64>,
    /// The vulnerability gap of each CVE fixed here, in seconds, in the
    /// report's CVE order.
    pub gaps: Vec<(String, i64)>,
}

impl MetricsSnapshot {
    /// Collects the metrics from the state, the audit log's records (or
    /// the reason it failed verification), the number of pending bundles
    /// if known, and the running kernel.
    pub fn collect(
        state: &State,
        audit: Result<&[AuditRecord], &Tampered>,
        pending: Option<u64>,
        kernel: &KernelIdentity,
    ) -> Self {
        let count = |phase: Phase| {
            let n = state.bundles.iter().filter(|b| b.phase == phase).count();
            u64::try_from(n).unwrap_or(u64::MAX)
        };
        let audit = audit.ok().map(|records| {
            let report = Report::build(state, records);
            AuditFigures {
                failed: report.failed_attempts,
                refused: report.refused_attempts,
                reboots_avoided: report.reboots_avoided,
                last_success: report.last_success,
                gaps: report
                    .cves
                    .iter()
                    .filter_map(|cve| Some((cve.cve.clone(), cve.gap_seconds?)))
                    .collect(),
            }
        });
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            kernel: kernel.clone(),
            applied: count(Phase::Applied),
            held: count(Phase::Held),
            pending,
            audit,
            cves_fixed: state
                .bundles
                .iter()
                .filter(|b| b.phase == Phase::Applied)
                .flat_map(|b| b.manifest.cves.iter().map(|c| (c.clone(), b.id.clone())))
                .collect(),
        }
    }
}

/// A label value as the exposition format escapes it: backslash, double
/// quote and line feed.
fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text as the exposition format escapes it: backslash and line
/// feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE lines and its samples, each a
/// label set and a value. A family without samples is left out.
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(Vec<(&str, &str)>, V)],
) {
    if samples.is_empty() {
        return;
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{label}=\"{}\"", escape_label_value(value));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// The snapshot in the Prometheus text exposition format.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    let info = vec![
        ("version", snapshot.version.as_str()),
        ("kernel_release", snapshot.kernel.release.as_str()),
        ("kernel_build_id", snapshot.kernel.build_id.as_str()),
    ];
    family(
        &mut out,
        "suture_build_info",
        "gauge",
        "patchd's version and the running kernel (release, GNU build-id); always 1.",
        &[(info, 1)],
    );
    family(
        &mut out,
        "suture_audit_log_intact",
        "gauge",
        "1 if the audit log's hash chain verifies; 0 if not, and then the metrics drawn from it are left out (run patchd audit verify).",
        &[(vec![], u8::from(snapshot.audit.is_some()))],
    );
    family(
        &mut out,
        "suture_patches_applied",
        "gauge",
        "Bundles patchd records as applied.",
        &[(vec![], snapshot.applied)],
    );
    family(
        &mut out,
        "suture_patches_held",
        "gauge",
        "Bundles the crash-loop guard holds back after a crash (patchd release applies them again).",
        &[(vec![], snapshot.held)],
    );
    let pending: Vec<_> = snapshot.pending.map(|n| (vec![], n)).into_iter().collect();
    family(
        &mut out,
        "suture_patches_pending",
        "gauge",
        "Bundles seen but not applied.",
        &pending,
    );
    let fixed: Vec<_> = snapshot
        .cves_fixed
        .iter()
        .map(|(cve, bundle)| (vec![("cve", cve.as_str()), ("bundle", bundle.as_str())], 1))
        .collect();
    family(
        &mut out,
        "suture_cve_fixed",
        "gauge",
        "1 for each CVE fixed by a bundle patchd records as applied, labelled with the bundle (patchd cves --openvex exports them for scanners).",
        &fixed,
    );
    if let Some(audit) = &snapshot.audit {
        render_audit(&mut out, audit);
    }
    out
}

/// The families drawn from a verified audit log.
fn render_audit(out: &mut String, audit: &AuditFigures) {
    family(
        out,
        "suture_patches_failed_total",
        "counter",
        "Attempts to apply a bundle that did not apply, from the audit log: failed (tried and undone) or refused (stopped before the kernel was touched).",
        &[
            (vec![("result", "failed")], audit.failed),
            (vec![("result", "refused")], audit.refused),
        ],
    );
    family(
        out,
        "suture_reboots_avoided_total",
        "counter",
        "Distinct bundles applied live, each a fix that would otherwise have waited for a reboot (an upper bound: see docs/patchd.md).",
        &[(vec![], audit.reboots_avoided)],
    );
    let last: Vec<_> = audit
        .last_success
        .map(|t| (vec![], t))
        .into_iter()
        .collect();
    family(
        out,
        "suture_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the latest successful apply.",
        &last,
    );
    let gaps: Vec<_> = audit
        .gaps
        .iter()
        .map(|(cve, gap)| (vec![("cve", cve.as_str())], *gap))
        .collect();
    family(
        out,
        "suture_vulnerability_gap_seconds",
        "gauge",
        "Per CVE, from the creation of the bundle that fixed it first to its first successful apply on this host.",
        &gaps,
    );
}

/// Writes `text` to `dir/suture.prom` atomically, for node-exporter's
/// textfile collector: a temporary file in the same directory (created
/// afresh, never through a link), fsync, rename over `suture.prom`, fsync
/// of the directory. The collector never sees half a file. Mode 0644: the
/// collector runs as another user.
pub fn write_textfile(dir: &Path, text: &str) -> io::Result<()> {
    // Not `*.prom`, so the collector ignores it; the pid keeps two writers
    // (the daemon and a one-off `patchd metrics`) apart.
    let temp = format!(".{TEXTFILE_NAME}.{}.tmp", std::process::id());
    crate::files::write_atomically(dir, TEXTFILE_NAME, &temp, 0o644, text.as_bytes())
        .map_err(|e| e.source)
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
