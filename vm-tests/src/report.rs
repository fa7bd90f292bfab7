//! Reads a guest's serial log: each check's result and output, the taint
//! flags, dmesg, and any kernel warning.
//!
//! The guest frames its output with lines that start with `@@SUTURE-`. The
//! kernel may print on the same console at any time, so markers are searched
//! anywhere in a line.

use std::path::PathBuf;
use std::time::Duration;

/// One guest check.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name (its script name).
    pub name: String,
    /// Exit status of the script; `None` when it never finished.
    pub status: Option<i32>,
    /// What the script printed.
    pub output: String,
    /// How long the script ran, from the guest's clock (`/proc/uptime`,
    /// 10 ms resolution); `None` when it never finished.
    pub seconds: Option<f64>,
}

impl CheckResult {
    /// True when the script ran to the end and exited 0.
    pub fn passed(&self) -> bool {
        self.status == Some(0)
    }
}

/// Everything one guest boot reported.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// The run's name.
    pub name: String,
    /// Checks in the order they ran.
    pub checks: Vec<CheckResult>,
    /// `/proc/sys/kernel/tainted` at the end.
    pub taint: Option<u64>,
    /// The guest's dmesg at the end (empty if it never got there).
    pub dmesg: String,
    /// Kernel warnings, oopses, lockdep reports and unexpected taint.
    pub problems: Vec<String>,
    /// Whether the guest reached its final marker.
    pub finished: bool,
    /// Wall time from QEMU start to exit.
    pub elapsed: Duration,
    /// Directory holding `serial.log` and `dmesg.log`.
    pub dir: PathBuf,
    /// Lines `@@SUTURE-FIGURE key value` printed by benchmarks.
    pub figures: Vec<(String, String)>,
}

/// Kernel log patterns that fail a run wherever they appear.
pub const PROBLEM_PATTERNS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "kernel BUG",
    "general protection fault",
    "Kernel panic",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "lockdep",
    "rcu_sched detected stall",
    "rcu: INFO:",
    "self-detected stall",
    "blocked for more than",
    "Call Trace:",
    "UBSAN:",
    "KASAN:",
];

/// Taint letters by bit, as in the kernel's `taint_flags` table.
pub const TAINT_BITS: &[u8] = b"PFSRMBUDAWCIOELKXTN";

/// The letters of the taint bits set in `taint`.
pub fn taint_letters(taint: u64) -> String {
    TAINT_BITS
        .iter()
        .enumerate()
        .filter(|(bit, _)| taint & (1u64 << bit) != 0)
        .map(|(_, l)| char::from(*l))
        .collect()
}

fn marker<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let tag = format!("@@SUTURE-{name}");
    let at = line.find(&tag)?;
    Some(line[at + tag.len()..].trim())
}

/// What the guest's markers said, gathered line by line.
#[derive(Default)]
struct LogReader {
    checks: Vec<CheckResult>,
    current: Option<CheckResult>,
    taint: Option<u64>,
    dmesg: String,
    in_dmesg: bool,
    finished: bool,
    figures: Vec<(String, String)>,
}

impl LogReader {
    /// Takes one line of the serial log: a marker, a dmesg line, or output
    /// of the running check.
    fn line(&mut self, line: &str) {
        if let Some(rest) = marker(line, "CHECK-BEGIN") {
            if let Some(c) = self.current.take() {
                self.checks.push(c);
            }
            self.current = Some(CheckResult {
                name: rest.to_string(),
                status: None,
                output: String::new(),
                seconds: None,
            });
        } else if let Some(rest) = marker(line, "CHECK-END") {
            self.end_check(rest);
        } else if let Some(rest) = marker(line, "TAINT") {
            self.taint = rest.parse().ok();
        } else if marker(line, "DMESG-BEGIN").is_some() {
            self.in_dmesg = true;
        } else if marker(line, "DMESG-END").is_some() {
            self.in_dmesg = false;
        } else if marker(line, "DONE").is_some() {
            self.finished = true;
        } else if let Some(rest) = marker(line, "FIGURE") {
            if let Some((k, v)) = rest.split_once(' ') {
                self.figures.push((k.to_string(), v.trim().to_string()));
            }
        } else if self.in_dmesg {
            self.dmesg.push_str(line);
            self.dmesg.push('\n');
        } else if let Some(c) = self.current.as_mut() {
            c.output.push_str(line);
            c.output.push('\n');
        }
    }

    /// `CHECK-END name status [seconds]`: closes the running check, with its
    /// status when the name matches.
    fn end_check(&mut self, rest: &str) {
        let mut parts = rest.split_whitespace();
        let (check, status) = (parts.next(), parts.next().and_then(|s| s.parse().ok()));
        let seconds = parts.next().and_then(|s| s.parse().ok());
        if let Some(mut c) = self.current.take() {
            if check == Some(c.name.as_str()) {
                c.status = status;
                c.seconds = seconds;
            }
            self.checks.push(c);
        }
    }
}

/// The kernel problems in the log and dmesg, unexpected taint, and a guest
/// that never reported its taint or never finished.
fn find_problems(
    log: &str,
    dmesg: &str,
    taint: Option<u64>,
    allowed_taint: &str,
    finished: bool,
) -> Vec<String> {
    let mut problems: Vec<String> = Vec::new();
    // The console carries what dmesg would, and more if the guest died.
    for line in log.lines().chain(dmesg.lines()) {
        if line.contains("@@SUTURE-") {
            continue;
        }
        if PROBLEM_PATTERNS.iter().any(|p| line.contains(p)) && !problems.iter().any(|l| l == line)
        {
            problems.push(line.to_string());
        }
    }
    match taint {
        Some(t) => {
            let unexpected: String = taint_letters(t)
                .chars()
                .filter(|c| !allowed_taint.contains(*c))
                .collect();
            if !unexpected.is_empty() {
                problems.push(format!(
                    "kernel tainted {unexpected} (taint {t}; allowed: {allowed_taint})"
                ));
            }
        }
        None => problems.push("the guest never reported its taint flags".to_string()),
    }
    if !finished {
        problems.push("the guest did not reach the end of its checks".to_string());
    }
    problems
}

impl GuestRun {
    /// Parses a serial log.
    pub fn parse(
        name: &str,
        log: &str,
        allowed_taint: &str,
        elapsed: Duration,
        dir: PathBuf,
    ) -> Self {
        let mut reader = LogReader::default();
        for line in log.lines() {
            reader.line(line);
        }
        if let Some(c) = reader.current.take() {
            reader.checks.push(c);
        }
        let problems = find_problems(
            log,
            &reader.dmesg,
            reader.taint,
            allowed_taint,
            reader.finished,
        );
        Self {
            name: name.to_string(),
            checks: reader.checks,
            taint: reader.taint,
            dmesg: reader.dmesg,
            problems,
            finished: reader.finished,
            elapsed,
            dir,
            figures: reader.figures,
        }
    }

    /// The result of the check named `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// Prints each check's verdict and where the logs are, for the test
    /// output of a session shared by several tests.
    pub fn print_summary(&self, guest: &str) {
        for c in &self.checks {
            eprintln!(
                "guest check {}: {}",
                c.name,
                if c.passed() { "passed" } else { "FAILED" }
            );
        }
        eprintln!(
            "{guest} ran in {:.1} s; logs in {}",
            self.elapsed.as_secs_f64(),
            self.dir.display()
        );
    }

    /// A report of one check for a test failure message.
    pub fn describe(&self, name: &str) -> String {
        let logs = format!("serial log: {}", self.dir.join("serial.log").display());
        match self.check(name) {
            Some(c) => format!(
                "guest check '{name}' {} ({logs})\n--- output ---\n{}",
                match c.status {
                    Some(0) => "passed".to_string(),
                    Some(s) => format!("failed with status {s}"),
                    None => "did not finish".to_string(),
                },
                c.output
            ),
            None => format!("guest check '{name}' never started ({logs})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "boot noise\n@@SUTURE-CHECK-BEGIN one\nhello\n@@SUTURE-CHECK-END one 0 1.25\n\
        @@SUTURE-CHECK-BEGIN two\n[ 1.0] WARNING: CPU: 0 PID: 1 at x\n@@SUTURE-CHECK-END two 1\n\
        @@SUTURE-TAINT 12800\n@@SUTURE-DMESG-BEGIN\n[ 1.0] WARNING: CPU: 0 PID: 1 at x\n@@SUTURE-DMESG-END\n\
        @@SUTURE-FIGURE call_ns 42\n@@SUTURE-DONE\n";

    #[test]
    fn parses_checks_taint_and_problems() {
        let run = GuestRun::parse("t", LOG, "OE", Duration::ZERO, PathBuf::new());
        assert_eq!(run.checks.len(), 2);
        assert!(run.check("one").is_some_and(CheckResult::passed));
        assert_eq!(run.check("two").and_then(|c| c.status), Some(1));
        assert_eq!(run.check("one").map(|c| c.output.as_str()), Some("hello\n"));
        assert_eq!(run.check("one").and_then(|c| c.seconds), Some(1.25));
        assert_eq!(run.check("two").and_then(|c| c.seconds), None);
        assert_eq!(run.taint, Some(12800));
        assert!(run.finished);
        assert_eq!(run.figures, vec![("call_ns".to_string(), "42".to_string())]);
        // 12800 = W (bit 9) + O (12) + E (13): the warning line and the W taint.
        assert_eq!(taint_letters(12800), "WOE");
        assert!(run.problems.iter().any(|p| p.contains("WARNING:")));
        assert!(run.problems.iter().any(|p| p.contains("tainted W")));
    }

    #[test]
    fn unfinished_guest_is_a_problem() {
        let run = GuestRun::parse(
            "t",
            "@@SUTURE-CHECK-BEGIN one\n",
            "OE",
            Duration::ZERO,
            PathBuf::new(),
        );
        assert_eq!(run.check("one").and_then(|c| c.status), None);
        assert!(!run.check("one").is_some_and(CheckResult::passed));
        assert!(run
            .problems
            .iter()
            .any(|p| p.contains("did not reach the end")));
        assert!(run
            .problems
            .iter()
            .any(|p| p.contains("never reported its taint")));
    }

    #[test]
    fn clean_run_has_no_problems() {
        let log =
            "@@SUTURE-CHECK-BEGIN a\n@@SUTURE-CHECK-END a 0\n@@SUTURE-TAINT 12288\n@@SUTURE-DONE\n";
        let run = GuestRun::parse("t", log, "OE", Duration::ZERO, PathBuf::new());
        assert!(run.problems.is_empty(), "{:?}", run.problems);
    }
}
