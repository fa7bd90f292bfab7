//! The one-line verdict `patchd status` opens with, and the exit code of
//! `patchd status --check` for monitoring systems (the Nagios/Icinga plugin
//! convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN when the status
//! cannot be read).
//!
//! - CRITICAL: a fix patchd applied is not in effect: held back by the
//!   crash-loop guard, or recorded applied while the kernel does not run
//!   it (lost, disabled, not loaded).
//! - WARNING: something waits: bundles in the watch directory not applied,
//!   an apply or revert cut short (the next patchd command finishes it),
//!   or the daemon's last repository poll failed.
//! - OK: every bundle patchd applied is in effect and nothing waits.

use std::fmt;

use serde::Serialize;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Everything applied is in effect, nothing waits.
    Ok,
    /// Something waits.
    Warning,
    /// A fix is not in effect.
    Critical,
}

impl Level {
    /// The monitoring exit code: 0, 1 or 2.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
        }
    }
}

/// The exit code of `status --check` when the status cannot be read.
pub const UNKNOWN_EXIT_CODE: u8 = 3;

/// The verdict on a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// How bad.
    pub level: Level,
    /// What, in one line.
    pub summary: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.level.name(), self.summary)
    }
}

fn bundles(n: usize) -> String {
    if n == 1 {
        "1 bundle".to_owned()
    } else {
        format!("{n} bundles")
    }
}

/// What the verdict is made of, counted from a status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Bundles the crash-loop guard holds back.
    pub held: usize,
    /// Bundles recorded applied (or lost, disabled) that the kernel does
    /// not run.
    pub not_in_effect: usize,
    /// Bundles whose apply or revert was cut short.
    pub cut_short: usize,
    /// Bundles applied and enabled.
    pub in_effect: usize,
    /// Bundle files of the watch directory not applied.
    pub pending: usize,
    /// The daemon's last repository poll failed.
    pub poll_failed: bool,
}

/// The verdict on `facts`.
pub fn verdict(facts: &Facts) -> Verdict {
    let mut critical = Vec::new();
    if facts.held > 0 {
        critical.push(format!(
            "{} held back after a crash (patchd release)",
            bundles(facts.held)
        ));
    }
    if facts.not_in_effect > 0 {
        critical.push(format!(
            "{} applied but not in effect in the kernel",
            bundles(facts.not_in_effect)
        ));
    }
    let mut warning = Vec::new();
    if facts.pending > 0 {
        warning.push(format!(
            "{} in the watch directory not applied",
            bundles(facts.pending)
        ));
    }
    if facts.cut_short > 0 {
        warning.push(format!(
            "{} with an apply or revert cut short (the next patchd command finishes it)",
            bundles(facts.cut_short)
        ));
    }
    if facts.poll_failed {
        warning.push("the last repository poll failed".to_owned());
    }
    let level = if !critical.is_empty() {
        Level::Critical
    } else if !warning.is_empty() {
        Level::Warning
    } else {
        Level::Ok
    };
    let mut parts = critical;
    parts.extend(warning);
    if parts.is_empty() {
        parts.push(if facts.in_effect == 0 {
            "no bundle applied".to_owned()
        } else {
            format!("{} applied and in effect", bundles(facts.in_effect))
        });
    } else if facts.in_effect > 0 {
        parts.push(format!("{} in effect", bundles(facts.in_effect)));
    }
    Verdict {
        level,
        summary: parts.join("; "),
    }
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
