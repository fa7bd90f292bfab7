//! Enabling and disabling a patch through the companion module, retrying
//! its `EBUSY` refusals with backoff up to a bound.
//!
//! A refusal changes nothing in the kernel (the companion module checks every
//! stack before it flips anything), so retrying is safe; after the last
//! attempt the error names the task and function that blocked the switch,
//! from the patch's `last_busy`. Any other error is not retried.

use std::time::Duration;

use tracing::{info, warn};

use crate::clock::Clock;
use crate::kernel::{Kernel, KernelError, PatchAttribute};

/// How often and how patiently to retry a refused switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub attempts: u32,
    /// Wait after the first refusal; doubled after each further one.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, 20 ms doubling to at most 1 s: about 4.3 s of waiting
    /// in all, enough for a task to leave a function it is briefly in.
    fn default() -> Self {
        Self {
            attempts: 10,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The waits between attempts, in order (`attempts - 1` of them).
    pub fn backoffs(&self) -> Vec<Duration> {
        let mut waits = Vec::new();
        let mut wait = self.initial_backoff;
        for _ in 1..self.attempts.max(1) {
            waits.push(wait.min(self.max_backoff));
            wait = wait.saturating_mul(2);
        }
        waits
    }
}

/// Why a switch did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// Every attempt was refused with `EBUSY`.
    #[error("the companion module refused to {verb} patch {patch} {attempts} times (EBUSY: a task was inside a function being switched){}; nothing was changed: try again later, or allow more attempts (--switch-attempts)", describe_blocker(.last_busy.as_deref()))]
    Busy {
        /// The patch.
        patch: String,
        /// `enable` or `disable`.
        verb: &'static str,
        /// How many attempts were made.
        attempts: u32,
        /// The patch's `last_busy` after the last refusal.
        last_busy: Option<String>,
    },

    /// Another failure, not retried.
    #[error("cannot {verb} patch {patch}")]
    Kernel {
        /// The patch.
        patch: String,
        /// `enable` or `disable`.
        verb: &'static str,
        /// What the kernel said.
        #[source]
        source: KernelError,
    },
}

/// `last_busy` is `pid PID comm COMM at SYMBOL+0xOFF/0xSIZE [MODULE]`:
/// name the task and the function separately.
fn describe_blocker(last_busy: Option<&str>) -> String {
    match last_busy.map(str::trim).filter(|text| !text.is_empty()) {
        None => String::new(),
        Some(text) => match text.split_once(" at ") {
            Some((task, function)) => format!("; the last time, task {task} was in {function}"),
            None => format!("; the last time: {text}"),
        },
    }
}

/// Switches `patch` on or off, retrying `EBUSY` as `policy` says; returns
/// the number of attempts it took.
pub fn switch_patch(
    kernel: &dyn Kernel,
    clock: &dyn Clock,
    policy: &RetryPolicy,
    patch: &str,
    enabled: bool,
) -> Result<u32, SwitchError> {
    let verb = if enabled { "enable" } else { "disable" };
    let backoffs = policy.backoffs();
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        match kernel.write_patch_enabled(patch, enabled) {
            Ok(()) => {
                info!(patch, attempts = attempt, "{verb}d");
                return Ok(attempt);
            }
            Err(KernelError::Busy { .. }) => {
                let last_busy = kernel
                    .read_patch_attribute(patch, PatchAttribute::LastBusy)
                    .unwrap_or_default();
                let wait = usize::try_from(attempt - 1)
                    .ok()
                    .and_then(|index| backoffs.get(index));
                let Some(&wait) = wait else {
                    return Err(SwitchError::Busy {
                        patch: patch.to_owned(),
                        verb,
                        attempts: attempt,
                        last_busy,
                    });
                };
                warn!(
                    patch,
                    attempt,
                    last_busy = last_busy.as_deref().unwrap_or(""),
                    "{verb} refused with EBUSY; retrying in {} ms",
                    wait.as_millis()
                );
                clock.sleep(wait);
            }
            Err(source) => {
                return Err(SwitchError::Kernel {
                    patch: patch.to_owned(),
                    verb,
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use nix::errno::Errno;

    use super::*;
    use crate::clock::FakeClock;
    use crate::fake_kernel::{FakeKernel, KernelCall, FAKE_LAST_BUSY};

    fn kernel() -> FakeKernel {
        FakeKernel::new("")
            .with_loaded_modules(["suture"])
            .with_patch("fix_a", false)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let ms: Vec<u128> = policy.backoffs().iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 500, 500]);
        let once = RetryPolicy {
            attempts: 1,
            ..policy
        };
        assert!(once.backoffs().is_empty());
        assert_eq!(RetryPolicy::default().backoffs().len(), 9);
    }

    #[test]
    fn busy_refusals_are_retried_with_backoff_until_the_switch_happens() {
        let kernel = kernel().busy_on_enable("fix_a", 3);
        let clock = FakeClock::new(0);
        let policy = RetryPolicy::default();
        let attempts = switch_patch(&kernel, &clock, &policy, "fix_a", true).expect("enabled");
        assert_eq!(attempts, 4);
        assert_eq!(kernel.patch_enabled("fix_a"), Some(true));
        assert_eq!(clock.sleeps(), policy.backoffs()[..3]);
    }

    #[test]
    fn giving_up_names_the_blocking_task_and_function_and_changes_nothing() {
        let kernel = kernel().busy_on_enable("fix_a", 100);
        let clock = FakeClock::new(0);
        let policy = RetryPolicy {
            attempts: 4,
            ..RetryPolicy::default()
        };
        let error = switch_patch(&kernel, &clock, &policy, "fix_a", true).expect_err("busy");
        let text = error.to_string();
        assert!(
            text.contains("4 times")
                && text.contains("task pid 4242 comm suture_busy")
                && text.contains("in suture_target_sleep+0x94/0xd0 [suture_target]")
                && text.contains("nothing was changed"),
            "{text}"
        );
        assert!(matches!(
            error,
            SwitchError::Busy { last_busy: Some(ref b), .. } if b == FAKE_LAST_BUSY
        ));
        assert_eq!(kernel.patch_enabled("fix_a"), Some(false));
        let writes = kernel
            .changes()
            .iter()
            .filter(|c| matches!(c, KernelCall::WritePatchEnabled { .. }))
            .count();
        assert_eq!(writes, 4);
        assert_eq!(clock.sleeps().len(), 3);
    }

    #[test]
    fn other_refusals_are_not_retried() {
        let kernel = kernel().failing_switch_of("fix_a", true, Errno::EEXIST);
        let clock = FakeClock::new(0);
        let error = switch_patch(&kernel, &clock, &RetryPolicy::default(), "fix_a", true)
            .expect_err("refused");
        assert!(matches!(error, SwitchError::Kernel { .. }));
        assert!(clock.sleeps().is_empty());
        assert_eq!(kernel.changes().len(), 1);
    }

    #[test]
    fn blocker_text_without_the_usual_shape_is_shown_whole() {
        assert_eq!(describe_blocker(None), "");
        assert_eq!(describe_blocker(Some("  ")), "");
        assert_eq!(
            describe_blocker(Some("something odd")),
            "; the last time: something odd"
        );
    }
}
