//! Judging a validation: each step's result against what was expected,
//! the kernel problems and taint of each bundle, and the reports (human
//! text and JSON).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{BundleUnderTest, Expect, Load, Plan, Step, ALLOWED_TAINT, SKIPPED};
use vm_tests::report::{taint_letters, CheckResult, GuestRun, TAINT_BITS};
use vm_tests::{io_err, HarnessError, Result};

/// How a step went.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// What was expected of it.
    pub expected: Expect,
    /// Its exit status; `None` when it never finished.
    pub status: Option<i32>,
    /// Whether the guest skipped it.
    pub skipped: bool,
    /// Whether it did what was expected.
    pub ok: bool,
    /// Seconds it took in the guest.
    pub seconds: Option<f64>,
    /// What it printed.
    pub output: String,
}

/// How one bundle's validation went.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// The bundle file.
    pub file: PathBuf,
    /// Its id.
    pub id: String,
    /// sha256 of the bundle file.
    pub sha256: String,
    /// The build-id of the kernel it is for (the one tested).
    pub target_build_id: String,
    /// When patchgen made it (RFC 3339 UTC).
    pub created: String,
    /// The functions it replaces.
    pub functions: Vec<String>,
    /// The load: the default's exercisers, "script" or "none".
    pub load: String,
    /// Rounds the loaders completed between apply and revert.
    pub load_rounds: Option<u64>,
    /// Calls of each replaced function the companion module sent to the
    /// new code while the bundle was applied.
    pub calls_under_load: Vec<(String, u64)>,
    /// Replaced functions whose new code ran (called at least once while
    /// applied): the evidence that the fix was exercised.
    pub new_code_ran: Vec<String>,
    /// Replaced functions whose new code the load never reached within
    /// `--reach-secs`: the fix was applied but not exercised.
    pub new_code_not_reached: Vec<String>,
    /// Seconds the load ran on before revert waiting for that.
    pub reach_waited: Option<u64>,
    /// The steps in order.
    pub steps: Vec<StepReport>,
    /// Kernel warnings, oopses, lockdep reports and taint attributed to
    /// this bundle.
    pub kernel_problems: Vec<String>,
    /// Taint bits the kernel gained while the bundle was tested, beyond
    /// O and E.
    pub taint_gained: u64,
    /// Why the bundle failed; empty when it passed.
    pub reasons: Vec<String>,
    /// "pass" or "fail".
    pub verdict: &'static str,
}

/// The report of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    /// The tool and its version.
    pub tool: String,
    /// The target kernel release.
    pub kernel: String,
    /// Its GNU build-id.
    pub kernel_build_id: String,
    /// When the validation started (RFC 3339 UTC).
    pub started_at: String,
    /// When it ended (RFC 3339 UTC).
    pub finished_at: String,
    /// Virtual CPUs.
    pub cpus: u32,
    /// One entry per bundle.
    pub bundles: Vec<BundleReport>,
    /// Problems of the guest not attributed to a bundle (it did not
    /// finish, a warning outside the steps, unexpected taint at the end).
    pub guest_problems: Vec<String>,
    /// Seconds the guest ran (boot to power-off).
    pub guest_seconds: f64,
    /// Seconds of the whole validation on the host (build, boot, steps).
    pub total_seconds: f64,
    /// The guest's serial log.
    pub serial_log: PathBuf,
    /// "pass" when every expectation held, else "fail".
    pub verdict: &'static str,
}

impl ValidationReport {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

/// Judges a finished guest run against the plan.
pub fn judge(plan: &Plan, run: &GuestRun, total: Duration) -> ValidationReport {
    let mut attributed: BTreeSet<String> = BTreeSet::new();
    let mut bundles = Vec::new();
    for b in &plan.bundles {
        let report = judge_bundle(plan, b, run);
        for s in &report.steps {
            attributed.extend(s.output.lines().map(str::to_string));
        }
        bundles.push(report);
    }
    // Taint a bundle gained is that bundle's failure, not the guest's.
    let gained = bundles.iter().fold(0u64, |acc, b| acc | b.taint_gained);
    let mut guest_problems: Vec<String> = run
        .problems
        .iter()
        .filter(|p| !attributed.contains(*p) && !p.starts_with("kernel tainted"))
        .cloned()
        .collect();
    if let Some(taint) = run.taint {
        let unexpected: String = taint_letters(taint & !gained)
            .chars()
            .filter(|c| !ALLOWED_TAINT.contains(*c))
            .collect();
        if !unexpected.is_empty() {
            guest_problems.push(format!(
                "kernel tainted {unexpected} outside the bundles' steps (taint {taint})"
            ));
        }
    }
    let passed = guest_problems.is_empty() && bundles.iter().all(|b| b.verdict == "pass");
    let now = std::time::SystemTime::now();
    let started = now.checked_sub(total).unwrap_or(now);
    ValidationReport {
        tool: format!("patchtest {}", env!("CARGO_PKG_VERSION")),
        kernel: plan.target.release.clone(),
        kernel_build_id: plan
            .bundles
            .first()
            .map(|b| b.manifest.target.build_id.clone())
            .unwrap_or_default(),
        started_at: humantime::format_rfc3339_seconds(started).to_string(),
        finished_at: humantime::format_rfc3339_seconds(now).to_string(),
        cpus: plan.cpus,
        bundles,
        guest_problems,
        guest_seconds: run.elapsed.as_secs_f64(),
        total_seconds: total.as_secs_f64(),
        serial_log: run.dir.join("serial.log"),
        verdict: if passed { "pass" } else { "fail" },
    }
}

/// Kernel-log lines (`[ seconds] text`: the log step's dmesg, or the
/// console in the middle of any step) that fail a bundle, by the guest
/// rig's list; a test script's own words are not kernel lines.
fn is_kernel_problem(line: &str) -> bool {
    let kernel_line = line
        .trim_start()
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .is_some_and(|(stamp, _)| stamp.trim().parse::<f64>().is_ok());
    kernel_line
        && vm_tests::report::PROBLEM_PATTERNS
            .iter()
            .any(|p| line.contains(p))
}

/// What the steps' output says beyond their exit status: the guest-side
/// `patchtest-*` lines and the kernel's problems.
#[derive(Default)]
struct StepFindings {
    load_rounds: Option<u64>,
    calls_under_load: Vec<(String, u64)>,
    reach_waited: Option<u64>,
    taint_gained: u64,
    kernel_problems: Vec<String>,
}

impl StepFindings {
    /// Reads one step's output.
    fn read(&mut self, output: &str) {
        for line in output.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("patchtest-load-rounds"), Some(n), None) => self.load_rounds = n.parse().ok(),
                (Some("patchtest-reach-waited"), Some(n), None) => {
                    self.reach_waited = n.parse().ok();
                }
                (Some("patchtest-taint"), Some(before), Some(now)) => {
                    if let (Ok(before), Ok(now)) = (before.parse::<u64>(), now.parse::<u64>()) {
                        let allowed: u64 = ALLOWED_TAINT
                            .chars()
                            .filter_map(|c| TAINT_BITS.iter().position(|l| char::from(*l) == c))
                            .map(|bit| 1u64 << bit)
                            .sum();
                        self.taint_gained = now & !before & !allowed;
                    }
                }
                (Some("patchtest-hits"), Some(f), Some(n)) => {
                    if let Ok(n) = n.parse() {
                        self.calls_under_load.push((f.to_string(), n));
                    }
                }
                _ => {}
            }
            if is_kernel_problem(line) && !self.kernel_problems.iter().any(|p| p == line) {
                self.kernel_problems.push(line.to_string());
            }
        }
    }
}

/// One step of bundle `b` in the guest's run: its report, and why it
/// failed when it did not do what was expected.
fn judge_step(b: &BundleUnderTest, step: Step, run: &GuestRun) -> (StepReport, Option<String>) {
    let expected = match (step, &b.test) {
        (Step::Before, Some(t)) => t.expect.before,
        (Step::Applied, Some(t)) => t.expect.applied,
        (Step::Reverted, Some(t)) => t.expect.reverted,
        _ => Expect::Pass,
    };
    let name = format!("{}.{}", b.name, step.as_str());
    let check = run.check(&name).cloned().unwrap_or(CheckResult {
        name: name.clone(),
        status: None,
        output: String::new(),
        seconds: None,
    });
    let skipped = check.status == Some(SKIPPED);
    let ok = check.status.is_some_and(|s| !skipped && expected.holds(s));
    let reason = (!ok).then(|| step_reason(step, expected, &check, skipped));
    let report = StepReport {
        step,
        expected,
        status: check.status,
        skipped,
        ok,
        seconds: check.seconds,
        output: check.output,
    };
    (report, reason)
}

fn judge_bundle(plan: &Plan, b: &BundleUnderTest, run: &GuestRun) -> BundleReport {
    let mut steps = Vec::new();
    let mut reasons = Vec::new();
    let mut findings = StepFindings::default();
    let mut log_reason = None;
    for step in b.steps() {
        let (report, reason) = judge_step(b, step, run);
        // A failed log step is explained by its taint and kernel lines,
        // below; only a log step that says nothing gets a reason here.
        if let Some(reason) = reason {
            if step == Step::Log {
                log_reason = Some(reason);
            } else {
                reasons.push(reason);
            }
        }
        findings.read(&report.output);
        steps.push(report);
    }
    let StepFindings {
        load_rounds,
        calls_under_load,
        reach_waited,
        taint_gained,
        kernel_problems,
    } = findings;
    let (ran, not_reached): (Vec<_>, Vec<_>) = calls_under_load.iter().partition(|(_, n)| *n > 0);
    let new_code_ran = ran.into_iter().map(|(f, _)| f.clone()).collect();
    let new_code_not_reached = not_reached.into_iter().map(|(f, _)| f.clone()).collect();
    if taint_gained != 0 {
        reasons.push(format!(
            "the kernel gained taint {} ({taint_gained}) while the bundle was tested",
            taint_letters(taint_gained)
        ));
    }
    if !kernel_problems.is_empty() {
        reasons.push(format!(
            "the kernel logged a problem while the bundle was tested: {}",
            kernel_problems[0].trim()
        ));
    }
    if taint_gained == 0 && kernel_problems.is_empty() {
        reasons.extend(log_reason);
    }
    BundleReport {
        file: b.path.clone(),
        id: b.manifest.id.clone(),
        sha256: b.sha256.clone(),
        target_build_id: b.manifest.target.build_id.clone(),
        created: humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs(b.manifest.created),
        )
        .to_string(),
        functions: b
            .manifest
            .replaced_functions
            .iter()
            .map(|f| f.old_name.clone())
            .collect(),
        load: match &plan.load {
            Load::Default => b.classes().join(" "),
            Load::Script(p) => format!("script {}", p.display()),
            Load::None => "none".to_string(),
        },
        load_rounds,
        calls_under_load,
        new_code_ran,
        new_code_not_reached,
        reach_waited,
        steps,
        kernel_problems,
        taint_gained,
        verdict: if reasons.is_empty() { "pass" } else { "fail" },
        reasons,
    }
}

fn last_line(output: &str) -> &str {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("patchtest-"))
        .unwrap_or("")
}

pub(super) fn step_reason(
    step: Step,
    expected: Expect,
    check: &CheckResult,
    skipped: bool,
) -> String {
    let Some(status) = check.status else {
        return format!(
            "{}: never finished (the guest died or hung; see the serial log)",
            step.as_str()
        );
    };
    if skipped {
        return format!("{}: skipped ({})", step.as_str(), last_line(&check.output));
    }
    let says = last_line(&check.output);
    match step {
        Step::Before | Step::Applied | Step::Reverted => {
            let phase = match step {
                Step::Before => "before apply",
                Step::Applied => "with the bundle applied",
                _ => "after revert",
            };
            let (did, hint) = match (expected, step) {
                (Expect::Fail, Step::Before) => (
                    "passed",
                    "is the bug present in this kernel, and does the test detect it?",
                ),
                (Expect::Pass, Step::Applied) => {
                    ("failed", "the bundle does not do what the test checks")
                }
                (Expect::Fail, Step::Reverted) => {
                    ("passed", "the revert did not restore the old code")
                }
                (Expect::Pass, _) => ("failed", "see its output"),
                (Expect::Fail, _) => ("passed", "see its output"),
            };
            format!(
                "{}: the test {did} {phase} (exit {status}), expected to {}: {hint}",
                step.as_str(),
                match expected {
                    Expect::Pass => "pass",
                    Expect::Fail => "fail",
                }
            )
        }
        Step::Log => format!("log: exit {status}: {says}"),
        _ => format!("{}: exit {status}: {says}", step.as_str()),
    }
}

/// The human report.
pub fn render(report: &ValidationReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "patchtest: {} on {} vCPU(s)",
        report.kernel, report.cpus
    );
    for b in &report.bundles {
        let _ = writeln!(
            out,
            "\nbundle {} ({}): replaces {}",
            b.id,
            b.file.display(),
            b.functions.join(", ")
        );
        for s in &b.steps {
            let result = match (s.status, s.skipped) {
                (_, true) => "skipped".to_string(),
                (None, _) => "did not finish".to_string(),
                (Some(0), _) => "exit 0".to_string(),
                (Some(n), _) => format!("exit {n}"),
            };
            let expected = match (s.step, s.expected) {
                (Step::Before | Step::Applied | Step::Reverted, Expect::Pass) => "expected pass",
                (Step::Before | Step::Applied | Step::Reverted, Expect::Fail) => "expected fail",
                _ => "",
            };
            let _ = writeln!(
                out,
                "  {:<9} {:<15} {:>7}  {:<14} {}",
                s.step.as_str(),
                result,
                s.seconds
                    .map_or_else(|| "-".to_string(), |t| format!("{t:.2} s")),
                expected,
                if s.ok { "ok" } else { "FAILED" }
            );
        }
        let _ = write!(
            out,
            "  load: {}",
            if b.load.is_empty() { "none" } else { &b.load }
        );
        if let Some(r) = b.load_rounds {
            let _ = write!(out, ", {r} round(s)");
        }
        let _ = writeln!(out);
        for (f, n) in &b.calls_under_load {
            let _ = writeln!(out, "  {f}: {n} call(s) of the new code while applied");
        }
        if !b.calls_under_load.is_empty() {
            let _ = writeln!(
                out,
                "  new code ran: {} of {} function(s){}",
                b.new_code_ran.len(),
                b.calls_under_load.len(),
                if b.new_code_not_reached.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not reached by the load: {}",
                        b.new_code_not_reached.join(", ")
                    )
                }
            );
        }
        for p in &b.kernel_problems {
            let _ = writeln!(out, "  kernel: {}", p.trim());
        }
        for r in &b.reasons {
            let _ = writeln!(out, "  reason: {r}");
        }
        let _ = writeln!(
            out,
            "  verdict: {}",
            if b.verdict == "pass" { "PASS" } else { "FAIL" }
        );
    }
    for p in &report.guest_problems {
        let _ = writeln!(out, "guest problem: {p}");
    }
    let _ = writeln!(
        out,
        "\nguest ran {:.1} s; serial log: {}",
        report.guest_seconds,
        report.serial_log.display()
    );
    let _ = writeln!(
        out,
        "validated {} bundle(s) in {:.1} s: {}",
        report.bundles.len(),
        report.total_seconds,
        if report.passed() { "PASS" } else { "FAIL" }
    );
    out
}

/// Writes the JSON report.
pub fn write_json(report: &ValidationReport, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|e| HarnessError::Io {
        what: "cannot serialize the report for",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    }
    std::fs::write(path, text + "\n").map_err(io_err("cannot write", path))
}
