//! `patchd daemon`: keeps the running kernel patched with every bundle made
//! for it, across reboots, from a watch directory and a repository.
//!
//! At start it reconciles the state with the kernel (as every command
//! does), re-applies from their copies the bundles recorded as applied whose
//! modules are gone after a reboot ([`work`]) — after a crash, the
//! crash-loop guard holds back those that had not survived
//! ([`crate::transaction::crash_guard`]) — and applies every bundle file of
//! the watch directory made for this kernel. Then one thread waits in
//! `poll(2)` on three things: inotify on the watch directory (a bundle
//! written or moved in is applied at once), a signalfd for SIGTERM/SIGINT
//! (stop after the work in hand), and a timeout for the next repository
//! poll ([`repository`]). The poll itself runs on a thread of its own
//! ([`poller`]), so a slow repository never holds up the watch directory
//! or SIGTERM; its downloads land in the watch directory and take the same
//! path, and those that are not applied are removed again. The same loop
//! wakes when an applied bundle has been applied for the crash-loop
//! guard's uptime, to record it as a survivor. No async runtime.
//!
//! The daemon holds the state lock only while it works, so `patchd status`
//! and `patchd revert` run between its batches; when another patchd holds
//! the lock, the work waits and is retried. Every apply is the ordinary
//! all-or-nothing apply, audited as such. A bundle that fails is remembered
//! by its sha256 and not tried again until the file changes, or patchd
//! restarts. The daemon never deletes or changes a file in the watch
//! directory that it did not download itself, and never applies anything
//! it did not verify.
//!
//! [`Observer`]s are told after each change: metrics plug in there.

pub mod exporter;
pub mod index;
pub mod poller;
pub mod repository;
pub mod signals;
pub mod watch;
mod work;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::config::Settings;
use crate::kernel::{running_identity, Kernel, KernelError, KernelIdentity};
use crate::transaction::crash_guard;
use crate::transaction::session::Session;
use crate::transaction::state::{Phase, StateError};
use crate::transaction::SessionError;
use poller::{Poller, CHECK_INTERVAL};
use repository::{next_poll_in, Download, PollReport, Repository, RepositoryError};
use signals::{Notifier, Stop};
use watch::{WatchError, Watcher};

/// Wait before trying again work that another patchd's lock held up.
const LOCK_RETRY: Duration = Duration::from_secs(1);
/// How often the start-up work tries the lock, [`LOCK_RETRY`] apart,
/// before it gives up: two minutes.
const START_LOCK_ATTEMPTS: u32 = 120;

/// Longest the loop sleeps before it looks for survivors of the
/// crash-loop guard again (seconds): a day.
const SURVIVOR_CHECK_MAX: u64 = 86_400;

/// What the daemon is asked to do besides the settings ([`Daemon::run`]
/// or [`Daemon::run_once`] is the caller's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonOptions {
    /// Poll the repository, if one is configured (`--no-repository`
    /// clears it).
    pub repository: bool,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self { repository: true }
    }
}

/// Told after every change the daemon makes, and once at start: the place
/// where metrics are refreshed.
pub trait Observer {
    /// The state is `session`'s; `summary` counts what the daemon did.
    fn refresh(&mut self, session: &Session<'_>, summary: &Summary);
}

/// What the daemon did since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bundles re-applied at start from their copies.
    pub reapplied: Vec<String>,
    /// Bundles the crash-loop guard holds back at start (after a crash):
    /// not failures, but not applied either.
    pub held: Vec<String>,
    /// Bundles applied from the watch directory (ids).
    pub applied: Vec<String>,
    /// Bundles that could not be applied or re-applied, and refused files
    /// (ids or file names).
    pub failed: Vec<String>,
    /// Files downloaded from the repository.
    pub downloaded: usize,
    /// Repository polls or downloads that failed.
    pub repository_failures: usize,
    /// Bundles for the running kernel not applied now: watch-directory
    /// files seen since the start that failed or wait for a dependency,
    /// and bundles recorded as lost or held (the metric
    /// `suture_patches_pending`).
    pub pending: usize,
}

impl Summary {
    /// Whether nothing failed.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.repository_failures == 0
    }
}

/// Why the daemon stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The running kernel's identity could not be read.
    #[error("cannot identify the running kernel")]
    Identity(#[source] KernelError),

    /// The watch directory is unusable.
    #[error(transparent)]
    Watch(WatchError),

    /// The state could not be opened or reconciled.
    #[error(transparent)]
    Session(SessionError),

    /// Another patchd held the state lock for too long.
    #[error("another patchd kept {dir} locked for {seconds} s; the daemon's start-up work could not run: find it (fuser {dir}/lock) and try again")]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// How long the daemon waited.
        seconds: u64,
    },

    /// Waiting for events failed.
    #[error("cannot wait for events (poll)")]
    Poll(#[source] Errno),
}

/// What the daemon remembers between batches.
#[derive(Debug, Default)]
struct Memory {
    /// sha256 of bundles that failed, and why: not tried again until the
    /// file changes.
    failed: HashMap<String, String>,
    /// sha256 of every file read from the watch directory.
    seen: HashSet<String>,
    /// The sha256 of each file last read that claims the running kernel.
    for_this_kernel: HashMap<OsString, String>,
    /// sha256 of the bundles in the state after the last batch.
    recorded: HashSet<String>,
    /// Files whose bundle waits for a dependency: tried again after the
    /// next successful apply.
    waiting: BTreeSet<OsString>,
}

/// The daemon: settings, the kernel, and what it remembers.
pub struct Daemon<'k> {
    kernel: &'k dyn Kernel,
    clock: &'k dyn Clock,
    settings: Settings,
    owners: Vec<u32>,
    running: KernelIdentity,
    poller: Option<Poller>,
    /// Files the repository wrote that have not had their turn yet: those
    /// not applied by it are removed.
    downloads: Vec<Download>,
    observers: Vec<Box<dyn Observer + 'k>>,
    notifier: Notifier,
    memory: Memory,
    summary: Summary,
    /// When an applied bundle next survives the crash-loop guard's uptime
    /// (Unix seconds, by `clock`): the loop wakes then to record it.
    next_survivor: Option<u64>,
}

impl std::fmt::Debug for Daemon<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("settings", &self.settings)
            .field("running", &self.running)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<'k> Daemon<'k> {
    /// Identifies the running kernel and prepares the watch directory
    /// (created if absent, checked as the trust store is). `owners` are
    /// who may own the state, the trust store and the watch directory.
    pub fn new(
        kernel: &'k dyn Kernel,
        clock: &'k dyn Clock,
        settings: Settings,
        owners: Vec<u32>,
        options: DaemonOptions,
    ) -> Result<Self, DaemonError> {
        let running = running_identity(kernel).map_err(DaemonError::Identity)?;
        watch::prepare_dir(&settings.watch_dir, &owners).map_err(DaemonError::Watch)?;
        let poller = match (&settings.repository, options.repository) {
            (Some(repository), true) => Some(Poller::new(Repository::new(repository.clone()))),
            _ => None,
        };
        Ok(Self {
            kernel,
            clock,
            settings,
            owners,
            running,
            poller,
            downloads: Vec::new(),
            observers: Vec::new(),
            notifier: Notifier::default(),
            memory: Memory::default(),
            summary: Summary::default(),
            next_survivor: None,
        })
    }

    /// Adds an observer, told after every change.
    pub fn add_observer(&mut self, observer: Box<dyn Observer + 'k>) {
        self.observers.push(observer);
    }

    /// Tells systemd through `notifier` when the daemon is ready and when
    /// it stops.
    pub fn set_notifier(&mut self, notifier: Notifier) {
        self.notifier = notifier;
    }

    /// What the daemon did so far.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// The running kernel.
    pub fn running(&self) -> &KernelIdentity {
        &self.running
    }

    /// The start-up work, one repository poll and the bundles it brought;
    /// then returns (`patchd daemon --once`).
    pub fn run_once(&mut self) -> Result<Summary, DaemonError> {
        self.start()?;
        let downloaded = self.poll_repository_here();
        if !downloaded.is_empty() {
            let mut session = self.session_waiting()?;
            note_work(&mut session);
            let changed = self.apply_files(&mut session, downloaded.iter().cloned());
            self.remove_unapplied_downloads(&session, &downloaded);
            self.finish(&session, changed);
        }
        info!(
            reapplied = self.summary.reapplied.len(),
            held = self.summary.held.len(),
            applied = self.summary.applied.len(),
            failed = self.summary.failed.len(),
            repository_failures = self.summary.repository_failures,
            "done (--once)"
        );
        Ok(self.summary.clone())
    }

    /// The start-up work, then the loop until `stop` fires.
    pub fn run(&mut self, stop: &Stop) -> Result<Summary, DaemonError> {
        // Watch before the first scan: a file arriving during the start-up
        // work is seen by one or the other (or both; it is applied once).
        let dir = self.settings.watch_dir.clone();
        let watcher = Watcher::new(&dir).map_err(DaemonError::Watch)?;
        self.start()?;
        self.notifier.notify("READY=1");
        info!(watch_dir = %dir.display(), "ready: watching {}", dir.display());

        let mut pending: BTreeSet<OsString> = BTreeSet::new();
        let mut retry_at: Option<Instant> = None;
        // The first poll right away: a host that booted wants its fixes.
        let mut next_poll = self.poller.as_ref().map(|_| Instant::now());
        loop {
            let survivor_at = self.next_survivor.and_then(|at| {
                // A second late, so the clock has reached `at` by then; at
                // most a day ahead (then looked at again), whatever the
                // state file says.
                let left = at.saturating_sub(self.clock.now()).saturating_add(1);
                Instant::now().checked_add(Duration::from_secs(left.min(SURVIVOR_CHECK_MAX)))
            });
            // While a poll runs, the loop looks for its end now and then.
            let poll_check = self
                .poller
                .as_ref()
                .filter(|poller| poller.is_polling())
                .map(|_| Instant::now() + CHECK_INTERVAL);
            let deadline = [retry_at, next_poll, survivor_at, poll_check]
                .into_iter()
                .flatten()
                .min();
            let (stopping, watched) = wait(stop.fd(), watcher.fd(), deadline)?;
            if stopping {
                if let Some(reason) = stop.requested() {
                    self.notifier.notify("STOPPING=1");
                    info!("stopping on {reason}");
                    return Ok(self.summary.clone());
                }
            }
            if watched {
                let events = watcher.read_events().map_err(DaemonError::Watch)?;
                for name in &events.ignored {
                    debug!(file = %watch::display_name(name), "not a bundle name; ignored");
                }
                pending.extend(events.names);
                if events.overflow {
                    warn!("inotify dropped events; scanning {} again", dir.display());
                    pending.extend(watch::scan(&dir).map_err(DaemonError::Watch)?);
                }
            }
            if next_poll.is_some_and(|at| Instant::now() >= at) {
                self.start_poll();
                next_poll = Some(Instant::now() + self.next_poll_delay());
            }
            if let Some(result) = self.poller.as_mut().and_then(Poller::finished) {
                pending.extend(self.take_poll_report(result));
            }
            let survivors_due = self.next_survivor.is_some_and(|at| self.clock.now() >= at);
            if (pending.is_empty() && !survivors_due)
                || retry_at.is_some_and(|at| Instant::now() < at)
            {
                continue;
            }
            match self.session()? {
                Some(mut session) => {
                    retry_at = None;
                    note_work(&mut session);
                    let batch = std::mem::take(&mut pending);
                    let changed = self.apply_files(&mut session, batch.iter().cloned());
                    self.remove_unapplied_downloads(&session, &batch);
                    self.finish(&session, changed);
                }
                None => {
                    info!(
                        "another patchd holds the state lock; trying again in {} s",
                        LOCK_RETRY.as_secs()
                    );
                    retry_at = Some(Instant::now() + LOCK_RETRY);
                }
            }
        }
    }

    /// Reconcile (by opening the session), re-apply lost bundles, apply the
    /// watch directory's bundles.
    fn start(&mut self) -> Result<(), DaemonError> {
        info!(
            release = %self.running.release,
            build_id = %self.running.build_id,
            config = %self.settings.file.as_deref().map_or("none (defaults)".into(), |f| f.display().to_string()),
            watch_dir = %self.settings.watch_dir.display(),
            repository = self.poller.as_ref().map_or("none", |p| p.settings().base_url.as_str()),
            "daemon starting"
        );
        let mut session = self.session_waiting()?;
        note_work(&mut session);
        self.reapply_lost(&mut session);
        let names = watch::scan(&self.settings.watch_dir).map_err(DaemonError::Watch)?;
        self.apply_files(&mut session, names);
        // Observers hear of the start even when nothing changed.
        self.finish(&session, true);
        Ok(())
    }

    /// What the repository may skip: bundles recorded, seen in the watch
    /// directory, or failed.
    fn have(&self) -> HashSet<String> {
        let memory = &self.memory;
        memory
            .recorded
            .iter()
            .chain(&memory.seen)
            .chain(memory.failed.keys())
            .cloned()
            .collect()
    }

    /// Starts a poll on its thread, unless one runs.
    fn start_poll(&mut self) {
        let have = self.have();
        let (running, watch_dir) = (self.running.clone(), self.settings.watch_dir.clone());
        if let Some(poller) = &mut self.poller {
            if !poller.start(running, have, watch_dir) && poller.is_polling() {
                info!("repository: the last poll still runs; this one is skipped");
            }
        }
    }

    /// Polls on this thread (`--once`); returns the files it wrote.
    fn poll_repository_here(&mut self) -> BTreeSet<OsString> {
        let have = self.have();
        let (running, watch_dir) = (self.running.clone(), self.settings.watch_dir.clone());
        let Some(poller) = &mut self.poller else {
            return BTreeSet::new();
        };
        match poller.poll_here(&running, &|sha256| have.contains(sha256), &watch_dir) {
            Some(result) => self.take_poll_report(result),
            None => BTreeSet::new(),
        }
    }

    /// Logs and counts a poll's result, keeps its downloads for the
    /// clean-up; returns the files it wrote.
    fn take_poll_report(
        &mut self,
        result: Result<PollReport, RepositoryError>,
    ) -> BTreeSet<OsString> {
        if let Some(poller) = &self.poller {
            poller.record(&self.settings.state_dir, self.clock.now(), &result);
        }
        match result {
            Ok(report) => {
                info!(
                    not_modified = report.not_modified,
                    entries = report.entries,
                    other_kernel = report.other_kernel,
                    present = report.present,
                    downloaded = report.downloaded.len(),
                    deferred = report.deferred,
                    failed = report.failed.len(),
                    "repository: poll done"
                );
                self.summary.downloaded += report.downloaded.len();
                self.summary.repository_failures += report.failed.len();
                let names = report.downloaded.iter().map(|d| d.name.clone()).collect();
                self.downloads.extend(report.downloaded);
                names
            }
            Err(error) => {
                warn!(
                    error = %crate::error_text(&error),
                    "repository: poll failed; trying again at the next poll"
                );
                self.summary.repository_failures += 1;
                BTreeSet::new()
            }
        }
    }

    /// The interval to the next poll, with random jitter.
    fn next_poll_delay(&self) -> Duration {
        let Some(poller) = &self.poller else {
            return Duration::MAX;
        };
        let settings = poller.settings();
        // Without randomness (a broken getrandom), every host polls on the
        // interval: correct, only less spread.
        let random = getrandom::u64().unwrap_or(0);
        let delay = next_poll_in(settings.interval, settings.jitter, random);
        info!("repository: next poll in {} s", delay.as_secs());
        delay
    }

    /// A session, or `None` while another patchd holds the lock.
    fn session(&self) -> Result<Option<Session<'k>>, DaemonError> {
        let config = self.settings.session_config(self.owners.clone());
        match Session::open(self.kernel, self.clock, config) {
            Ok(session) => Ok(Some(session)),
            Err(SessionError::State(StateError::Locked { .. })) => Ok(None),
            Err(error) => Err(DaemonError::Session(error)),
        }
    }

    /// A session, waiting (boundedly) for another patchd's lock.
    fn session_waiting(&self) -> Result<Session<'k>, DaemonError> {
        for attempt in 1..=START_LOCK_ATTEMPTS {
            if let Some(session) = self.session()? {
                return Ok(session);
            }
            if attempt == 1 {
                info!("another patchd holds the state lock; waiting for it");
            }
            self.clock.sleep(LOCK_RETRY);
        }
        Err(DaemonError::Locked {
            dir: self.settings.state_dir.clone(),
            seconds: LOCK_RETRY
                .as_secs()
                .saturating_mul(u64::from(START_LOCK_ATTEMPTS)),
        })
    }

    /// After a batch: remember what the state records, count what is
    /// pending, tell the observers.
    fn finish(&mut self, session: &Session<'_>, changed: bool) {
        let bundles = &session.state().bundles;
        self.memory.recorded = bundles.iter().map(|record| record.sha256.clone()).collect();
        let applied: HashSet<&str> = bundles
            .iter()
            .filter(|record| record.phase == Phase::Applied)
            .map(|record| record.sha256.as_str())
            .collect();
        let files = self
            .memory
            .for_this_kernel
            .values()
            .filter(|sha256| !applied.contains(sha256.as_str()))
            .collect::<HashSet<_>>()
            .len();
        self.next_survivor =
            crash_guard::next_survivor_at(session.state(), self.settings.crash_guard_uptime_secs);
        let lost = bundles
            .iter()
            .filter(|record| {
                let target = &record.manifest.target;
                record.phase.is_gone()
                    && target.kernel_release == self.running.release
                    && target.build_id == self.running.build_id
                    && !self
                        .memory
                        .for_this_kernel
                        .values()
                        .any(|sha256| *sha256 == record.sha256)
            })
            .count();
        self.summary.pending = files.saturating_add(lost);
        if changed {
            for observer in &mut self.observers {
                observer.refresh(session, &self.summary);
            }
        }
    }
}

/// Tells the crash-loop guard that the daemon works (a clean shutdown
/// recorded in this boot is void) and records the bundles that survived; a
/// failure to save that is logged, and the work goes on.
fn note_work(session: &mut Session<'_>) {
    if let Err(failure) = crash_guard::note_work(session) {
        warn!(
            error = %crate::error_text(&failure),
            "crash-loop guard: cannot record the bundles that survived"
        );
    }
}

/// Waits until `stop` or `watch` is readable or `deadline` passes; returns
/// which are readable.
fn wait(
    stop: BorrowedFd<'_>,
    watch: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<(bool, bool), DaemonError> {
    let timeout = match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            // Rounded up, so the loop does not spin through the last
            // millisecond before a deadline.
            let left = at.saturating_duration_since(Instant::now());
            let millis = left.as_micros().div_ceil(1000);
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
        }
    };
    let mut fds = [
        PollFd::new(stop, PollFlags::POLLIN),
        PollFd::new(watch, PollFlags::POLLIN),
    ];
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok((false, false)),
        Err(errno) => return Err(DaemonError::Poll(errno)),
    }
    let ready = |fd: &PollFd<'_>| {
        fd.revents().is_some_and(|r| {
            r.intersects(PollFlags::POLLIN | PollFlags::POLLERR | PollFlags::POLLHUP)
        })
    };
    Ok((ready(&fds[0]), ready(&fds[1])))
}

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod hostile_repository_tests;
#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;
