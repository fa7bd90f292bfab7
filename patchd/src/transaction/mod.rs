//! Changing the kernel as a transaction: every command that applies,
//! reverts or reconciles records each step before it happens, so a crash
//! at any point is finished or undone by the next start.
//!
//! - [`session`]: a command's view of the host (locked state directory,
//!   state, audit log, kernel, clock); [`Session::open`] locks and reconciles;
//! - [`state`] and [`audit`]: the atomic state file and the hash-chained
//!   audit log;
//! - [`switch`]: enabling and disabling through the companion module, with
//!   the `EBUSY` retries;
//! - [`apply`] and [`revert`]: the commands, all or nothing across the
//!   bundles of one apply;
//! - [`take_out`]: disable and unload one patch, the step shared by revert,
//!   the roll-back of a failed apply and [`reconcile`];
//! - [`reconcile`]: squaring the record with the kernel at every start;
//! - [`crash_guard`]: which boot this is, which bundles survived, holding
//!   back the others after a crash; [`release`] applies held bundles again.

pub mod apply;
pub mod apply_error;
pub mod audit;
mod companion;
pub mod crash_guard;
pub mod reconcile;
pub mod release;
pub mod revert;
mod rollback;
pub mod session;
pub mod state;
pub mod switch;
pub mod take_out;

use crate::clock::Clock;
use crate::kernel::Kernel;
use reconcile::{reconcile, ReconcileError};
use session::{Config, Session};
use state::StateError;

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The state directory or file is unusable.
    #[error(transparent)]
    State(StateError),
    /// Reconciling with the kernel failed.
    #[error(transparent)]
    Reconcile(ReconcileError),
    /// The audit log is broken or does not account for the state: nothing
    /// was touched.
    #[error(transparent)]
    Audit(audit::AuditError),
}

impl<'k> Session<'k> {
    /// Locks the state directory, reads the state, checks the audit log
    /// (its chain, and that it accounts for the state: refused otherwise,
    /// before anything changes), notes a new boot for the crash-loop guard
    /// and reconciles the state with the kernel.
    pub fn open(
        kernel: &'k dyn Kernel,
        clock: &'k dyn Clock,
        config: Config,
    ) -> Result<Self, SessionError> {
        let mut session = Session::lock(kernel, clock, config).map_err(SessionError::State)?;
        // Before anything is changed or audited: never add to a broken log.
        audit::check::check_before_changes(&session.audit, &session.state)
            .map_err(SessionError::Audit)?;
        crash_guard::begin_boot(&mut session).map_err(SessionError::State)?;
        session.reconciled = reconcile(&mut session).map_err(SessionError::Reconcile)?;
        Ok(session)
    }
}

#[cfg(test)]
mod bad_files_tests;

#[cfg(test)]
mod forged_state_tests;
