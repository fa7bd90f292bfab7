//! patchd: suture's server side, which puts live patches into a running
//! Linux kernel and takes them out again, and keeps the evidence.
//!
//! The data flows one way, verify -> link -> load -> enable:
//!
//! - [`trust`] and [`verify`] check a bundle before anything touches the
//!   kernel: signature by a key of a root-owned trust store, digests and
//!   caps (the `suture-bundle` crate), the target kernel's release and
//!   build-id, lockdown;
//! - [`kallsyms`], [`link`] and [`load`] are the user-space link step:
//!   non-exported symbols are resolved exactly in `/proc/kallsyms` and
//!   rewritten as absolute symbols before `init_module`;
//! - [`switch`] enables and disables patches through the companion module,
//!   retrying its `EBUSY` refusals;
//! - [`apply`], [`revert`] and [`status`] are the commands, all or nothing
//!   across the bundles of one apply; [`state`] records each step before it
//!   happens and [`reconcile`] squares the record with the kernel at every
//!   start; [`audit`] keeps a hash-chained log of every attempt;
//! - [`report`] turns the state and the verified audit log into compliance
//!   figures (vulnerability gap per CVE, reboots avoided, failures), and
//!   [`metrics`] the same for Prometheus;
//! - [`privileges`] refuses kernel changes without `CAP_SYS_MODULE` and
//!   drops the daemon's other capabilities;
//! - [`kernel`] is the one trait through which patchd touches the kernel,
//!   with the real implementation and a recording fake for tests, and
//!   [`clock`] the same for time.
//!
//! The library never panics on its input: bundles, module files, kallsyms
//! text and state files are untrusted, and every offset and size from them
//! is checked.

pub mod apply;
pub mod audit;
pub mod clock;
pub mod config;
pub mod daemon;
mod elf;
mod files;
pub mod kallsyms;
pub mod kernel;
pub mod killpoint;
pub mod link;
mod link_error;
pub mod load;
pub mod metrics;
pub mod ownership;
pub mod privileges;
pub mod reconcile;
pub mod report;
pub mod revert;
pub mod session;
pub mod state;
pub mod status;
pub mod switch;
pub mod trust;
pub mod verify;

#[cfg(test)]
mod testkit;

pub use apply::{apply, apply_read, reapply, ApplyError, ApplyReport, ReadBundle};
pub use audit::{AuditLog, Tampered};
pub use clock::{Clock, FakeClock, SystemClock};
pub use config::{ConfigError, Overrides, Settings};
pub use kallsyms::{Kallsyms, KallsymsError, LinkRecord, Resolved};
#[cfg(any(test, feature = "fake-kernel"))]
pub use kernel::{FakeKernel, KernelCall};
pub use kernel::{Kernel, KernelError, RealKernel};
pub use link::{link_module, strip_signature, undefined_symbols, LinkError, LinkedModule};
pub use load::{load_module, LoadError, LoadReport};
pub use metrics::{render, write_textfile, MetricsSnapshot};
pub use report::{report, Report, ReportError};
pub use revert::{revert, RevertError, RevertReport, RevertTarget};
pub use session::{Config, Session, SessionError};
pub use status::{status, Status};
pub use switch::{RetryPolicy, SwitchError};
pub use verify::{verify_bundle, VerifiedBundle, VerifyError};

/// How a command failed, for the command line's exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The companion module kept refusing a switch with `EBUSY`; nothing
    /// changed, trying again later may work.
    Busy,
    /// The bundle is for another kernel.
    WrongKernel,
    /// The bundle itself is bad: malformed, damaged, not signed by a
    /// trusted key.
    Rejected,
    /// The audit log was tampered with.
    Tampered,
    /// Anything else.
    Other,
}

/// Classifies an error by the first cause in its chain that says more than
/// [`FailureKind::Other`].
pub fn failure_kind(error: &(dyn std::error::Error + 'static)) -> FailureKind {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        let kind = classify_one(current);
        if kind != FailureKind::Other {
            return kind;
        }
        cause = current.source();
    }
    FailureKind::Other
}

fn classify_one(error: &(dyn std::error::Error + 'static)) -> FailureKind {
    // Wrappers marked `transparent` hand their inner error's *source* on,
    // so the inner error itself is looked at here.
    let verify =
        error
            .downcast_ref::<VerifyError>()
            .or_else(|| match error.downcast_ref::<ApplyError>() {
                Some(ApplyError::Verify(inner)) => Some(&**inner),
                _ => None,
            });
    if let Some(verify) = verify {
        return match verify {
            VerifyError::WrongKernel(_) => FailureKind::WrongKernel,
            other if other.is_rejection() => FailureKind::Rejected,
            _ => FailureKind::Other,
        };
    }
    if error.is::<suture_bundle::ParseError>() || error.is::<suture_bundle::VerifyError>() {
        return FailureKind::Rejected;
    }
    let switch = error.downcast_ref::<SwitchError>().or_else(|| {
        match error.downcast_ref::<revert::TakeOutError>() {
            Some(revert::TakeOutError::Switch(inner)) => Some(inner),
            _ => None,
        }
    });
    if let Some(SwitchError::Busy { .. }) = switch {
        return FailureKind::Busy;
    }
    if error.is::<Tampered>() {
        return FailureKind::Tampered;
    }
    FailureKind::Other
}

/// An error and its causes on one line, `a: b: c`, for the audit log and
/// for logs.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
