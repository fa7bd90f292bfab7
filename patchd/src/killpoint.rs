//! Kill points: where a test may have patchd killed with SIGKILL.
//!
//! `PATCHD_TEST_KILL_AT=NAME` makes patchd send itself SIGKILL when it
//! reaches the point NAME: the same as `kill -9` from outside, at a moment
//! that is known instead of raced for. The VM tests use it to prove that a
//! restart reconciles every such moment (docs/patchd.md lists the points).
//! Without the variable a point costs one comparison.

use std::sync::OnceLock;

/// The environment variable that names the point.
pub const VARIABLE: &str = "PATCHD_TEST_KILL_AT";

/// The points of an apply, in order: the transaction recorded, the
/// bundle's record saved as loading, its module loaded, the record saved
/// as enabling, the patch enabled, the record saved as applied, the
/// transaction closed.
pub const APPLY_POINTS: &[&str] = &[
    "apply-transaction-open",
    "apply-loading-saved",
    "apply-module-loaded",
    "apply-enabling-saved",
    "apply-enabled",
    "apply-applied-saved",
    "apply-transaction-closed",
];

/// Kills the process with SIGKILL if [`VARIABLE`] names `point`.
pub fn reached(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var(VARIABLE).ok());
    if at.as_deref() == Some(point) {
        tracing::warn!(point, "{VARIABLE}: killing patchd with SIGKILL");
        // Nothing sensible is left to do if raising fails.
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
