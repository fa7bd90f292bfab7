//! patchd: suture's server side, which puts live patches into a running
//! Linux kernel and takes them out again, and keeps the evidence.
//!
//! The data flows one way, verify -> link -> load -> enable, and the
//! folders follow it:
//!
//! - [`verify`] checks a bundle before anything touches the kernel:
//!   signature by a key of a root-owned trust store ([`verify::trust`]),
//!   digests and caps (the `suture-bundle` crate), the target kernel's
//!   release and build-id, lockdown; a [`VerifiedBundle`] can only come
//!   from there, and carries its patch module read once;
//! - [`link`] is the user-space link step: non-exported symbols are
//!   resolved exactly in `/proc/kallsyms` and rewritten as absolute symbols
//!   before `init_module` ([`link::load`]);
//! - [`transaction`] changes the kernel: [`apply`], [`revert`],
//!   reconciling at every start, the state file recorded before each step,
//!   the enable/disable switch with its `EBUSY` retries, and the
//!   hash-chained audit log of every attempt;
//! - [`observe`] turns the state and the verified audit log into `status`,
//!   compliance figures (`report`) and Prometheus metrics;
//! - [`daemon`] watches a directory and a repository and applies what
//!   arrives; [`config`], [`privileges`] and [`ownership`] are its
//!   settings, capabilities and trusted owners;
//! - [`kernel`] is the one trait through which patchd touches the kernel
//!   (the recording fake only with the `fake-kernel` feature), and
//!   [`clock`] the same for time; `files` holds the one capped read and the
//!   one atomic write.
//!
//! The library never panics on its input: bundles, module files, kallsyms
//! text and state files are untrusted, and every offset and size from them
//! is checked.

pub mod clock;
pub mod config;
pub mod daemon;
#[cfg(any(test, feature = "fake-kernel"))]
pub mod fake_kernel;
pub mod files;
pub mod kernel;
pub mod killpoint;
pub mod link;
pub mod observe;
pub mod ownership;
pub mod privileges;
pub mod transaction;
pub mod verify;

#[cfg(test)]
mod testkit;

pub use clock::{Clock, FakeClock, SystemClock};
pub use config::{ConfigError, Overrides, Settings};
#[cfg(any(test, feature = "fake-kernel"))]
pub use fake_kernel::{FakeKernel, KernelCall};
pub use kernel::{Kernel, KernelError, RealKernel};
pub use link::kallsyms::{Kallsyms, KallsymsError, LinkRecord, Resolved};
pub use link::load::{load_module, LoadError, LoadReport};
pub use link::{
    link_module, strip_signature, undefined_symbols, LinkError, LinkedModule, ModuleImage,
};
pub use observe::metrics::{render, write_textfile, MetricsSnapshot};
pub use observe::report::{report, Report, ReportError};
pub use observe::status::{status, Status};
pub use transaction::apply::{apply, apply_read, reapply, ApplyError, ApplyReport, ReadBundle};
pub use transaction::audit::{AuditLog, Tampered};
pub use transaction::revert::{revert, RevertError, RevertReport, RevertTarget};
pub use transaction::session::{Config, Session};
pub use transaction::switch::{RetryPolicy, SwitchError};
pub use transaction::SessionError;
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
        match error.downcast_ref::<transaction::take_out::TakeOutError>() {
            Some(transaction::take_out::TakeOutError::Switch(inner)) => Some(inner),
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
