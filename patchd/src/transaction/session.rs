//! One run of a patchd command that works with the state: the locked state
//! directory, the state read from it, the audit log, the kernel and the
//! clock. [`Session::open`] (in [`super`]) also reconciles the state with
//! the kernel, so every command starts from what the kernel really has.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tracing::error;

use super::audit::witness::DEFAULT_SYSLOG_SOCKET;
use super::audit::{AuditAction, AuditEntry, AuditError, AuditLog, AuditResult};
use super::state::{State, StateDir, StateError, DEFAULT_STATE_DIR};
use super::switch::RetryPolicy;
use crate::clock::Clock;
use crate::kernel::Kernel;
use crate::ownership::default_owners;
use crate::verify::trust::DEFAULT_KEYS_DIR;

/// Where the companion module is unless `--kmod` says otherwise (and no
/// DKMS build for the running kernel is found first).
pub const DEFAULT_KMOD: &str = "/usr/lib/suture/suture.ko";

/// Where DKMS installs the modules it builds: `RELEASE/updates/dkms/` under
/// this directory (kmod/dkms.conf's `DEST_MODULE_LOCATION`).
pub const DEFAULT_MODULES_DIR: &str = "/lib/modules";

/// How long a bundle must have been applied to survive the crash-loop
/// guard ([`super::crash_guard`]), unless the config file says otherwise:
/// ten minutes.
pub const DEFAULT_CRASH_GUARD_UPTIME_SECS: u64 = 600;
/// Longest uptime proof accepted: 30 days.
pub const MAX_CRASH_GUARD_UPTIME_SECS: u64 = 30 * 24 * 3600;

/// patchd's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The trust store.
    pub keys_dir: PathBuf,
    /// The companion module, loaded when absent, unless DKMS built one for
    /// the running kernel under `dkms_modules_dir`.
    pub kmod: PathBuf,
    /// Where to look for the companion DKMS built for the running kernel
    /// (`/lib/modules`) before `kmod`; `None` when `kmod` is not the
    /// default (flag or config file), which then is the one file loaded.
    pub dkms_modules_dir: Option<PathBuf>,
    /// Retries of refused switches.
    pub retry: RetryPolicy,
    /// Who may own the trust store and the state directory.
    pub trusted_owners: Vec<u32>,
    /// How long a bundle must have been applied to count as a survivor of
    /// the crash-loop guard (seconds; 0: only a clean shutdown proves it).
    pub crash_guard_uptime_secs: u64,
    /// The syslog socket each new audit head is sent to (`None`: nowhere,
    /// for tests).
    pub audit_syslog: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            keys_dir: PathBuf::from(DEFAULT_KEYS_DIR),
            kmod: PathBuf::from(DEFAULT_KMOD),
            dkms_modules_dir: Some(PathBuf::from(DEFAULT_MODULES_DIR)),
            retry: RetryPolicy::default(),
            trusted_owners: default_owners(),
            crash_guard_uptime_secs: DEFAULT_CRASH_GUARD_UPTIME_SECS,
            audit_syslog: Some(PathBuf::from(DEFAULT_SYSLOG_SOCKET)),
        }
    }
}

/// One change reconciling made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// The bundle.
    pub id: String,
    /// What was found and done.
    pub what: String,
}

/// Everything reconciling changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// The changes, in order.
    pub changes: Vec<Reconciled>,
}

/// A command's view of the host, with the state directory locked.
pub struct Session<'k> {
    pub(crate) kernel: &'k dyn Kernel,
    pub(crate) clock: &'k dyn Clock,
    pub(crate) config: Config,
    pub(crate) dir: StateDir,
    pub(crate) state: State,
    pub(crate) audit: AuditLog,
    pub(crate) reconciled: ReconcileReport,
    /// This boot's id, if it could be read (the crash-loop guard is off
    /// without it).
    pub(crate) boot_id: Option<String>,
    /// This session began the first patchd run of a boot that followed a
    /// crash: an apply it finds open was cut by the crash.
    pub(crate) first_after_crash: bool,
    /// Modules this process loaded itself (`init_module` succeeded, and
    /// the apply's plan had found no module of that name): proof enough to
    /// unload one that then failed to register with the companion module.
    pub(crate) loaded_here: BTreeSet<String>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<'k> Session<'k> {
    /// Locks the state directory and reads the state, without reconciling
    /// it with the kernel: [`Session::open`] does both.
    pub(crate) fn lock(
        kernel: &'k dyn Kernel,
        clock: &'k dyn Clock,
        config: Config,
    ) -> Result<Self, StateError> {
        let dir = StateDir::open(&config.state_dir, &config.trusted_owners)?;
        let state = dir.load()?;
        let audit = AuditLog::new(dir.path()).with_syslog(config.audit_syslog.clone());
        Ok(Self {
            kernel,
            clock,
            config,
            dir,
            state,
            audit,
            reconciled: ReconcileReport::default(),
            boot_id: None,
            first_after_crash: false,
            loaded_here: BTreeSet::new(),
        })
    }

    /// A view of the recorded state for the read-only commands (`status`):
    /// the state directory must exist, its lock is shared, and nothing is
    /// reconciled, created or written. What the kernel shows is read by the
    /// command itself.
    pub fn open_read_only(
        kernel: &'k dyn Kernel,
        clock: &'k dyn Clock,
        config: Config,
    ) -> Result<Self, StateError> {
        let dir = StateDir::open_read_only(&config.state_dir, &config.trusted_owners)?;
        let state = dir.load()?;
        let audit = AuditLog::new(dir.path());
        Ok(Self {
            kernel,
            clock,
            config,
            dir,
            state,
            audit,
            reconciled: ReconcileReport::default(),
            boot_id: kernel.boot_id().ok(),
            first_after_crash: false,
            loaded_here: BTreeSet::new(),
        })
    }

    /// The state as it is now.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What reconciling changed when the session opened.
    pub fn reconciled(&self) -> &ReconcileReport {
        &self.reconciled
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// This boot's id, if the kernel told it.
    pub fn boot_id(&self) -> Option<&str> {
        self.boot_id.as_deref()
    }

    /// Writes the state file.
    pub(crate) fn save(&self) -> Result<(), StateError> {
        self.dir.save(&self.state)
    }

    /// Appends an audit line stamped with the clock's time.
    pub(crate) fn audit(
        &self,
        action: AuditAction,
        result: AuditResult,
        entry: AuditEntry,
    ) -> Result<(), AuditError> {
        self.audit
            .append(self.clock.now(), action, result, entry)
            .map(|_| ())
    }

    /// Appends an audit line where a failure to write it must not stop what
    /// is being done (undoing, reconciling): it is logged instead.
    pub(crate) fn audit_or_log(&self, action: AuditAction, result: AuditResult, entry: AuditEntry) {
        if let Err(failure) = self.audit(action, result, entry) {
            error!(error = %failure, "cannot write the audit log");
        }
    }
}
