//! The repository poll on a thread of its own, so a slow or hostile
//! repository never holds up the daemon's loop: bundles dropped into the
//! watch directory are applied, and SIGTERM is answered, while a poll is
//! still downloading. The loop starts a poll ([`Poller::start`]) and looks
//! for its end ([`Poller::finished`]) whenever it wakes (at least every
//! [`CHECK_INTERVAL`] while one runs); on SIGTERM it stops without waiting
//! for it (what a poll leaves is at most a `.NAME.part` file, which the
//! next write replaces).
//!
//! The poll thread only downloads into the watch directory; it never
//! touches the state, the kernel or the audit log.

use std::collections::HashSet;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::error;

use super::repository::{PollReport, Repository, RepositoryError};
use crate::config::RepositorySettings;
use crate::kernel::KernelIdentity;
use crate::observe::last_poll::LastPoll;

/// How often the loop looks for the end of a running poll.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// What a poll thread hands back: the client (with its cached index) and
/// the result.
type PollEnd = (Repository, PollResult);

/// A poll's result.
type PollResult = Result<PollReport, RepositoryError>;

/// The repository client, idle or polling on its thread.
#[derive(Debug)]
pub struct Poller {
    settings: RepositorySettings,
    idle: Option<Repository>,
    polling: Option<JoinHandle<PollEnd>>,
}

impl Poller {
    /// An idle poller of `repository`.
    pub fn new(repository: Repository) -> Self {
        Self {
            settings: repository.settings().clone(),
            idle: Some(repository),
            polling: None,
        }
    }

    /// The repository's settings.
    pub fn settings(&self) -> &RepositorySettings {
        &self.settings
    }

    /// Whether a poll runs now.
    pub fn is_polling(&self) -> bool {
        self.polling.is_some()
    }

    /// Starts a poll on a thread unless one runs (or the client was lost
    /// to a crashed poll): downloads into `watch_dir` every bundle for
    /// `running` whose sha256 is not in `have`. Returns whether it started.
    pub fn start(
        &mut self,
        running: KernelIdentity,
        have: HashSet<String>,
        watch_dir: PathBuf,
    ) -> bool {
        let Some(mut repository) = self.idle.take() else {
            return false;
        };
        let spawned = std::thread::Builder::new()
            .name("repository".to_owned())
            .spawn(move || {
                let result = repository.poll(&running, &|sha256| have.contains(sha256), &watch_dir);
                (repository, result)
            });
        match spawned {
            Ok(handle) => {
                self.polling = Some(handle);
                true
            }
            Err(failure) => {
                error!(error = %failure, "repository: cannot start the poll's thread; polling stops");
                false
            }
        }
    }

    /// The result of a poll that has ended, if one has; `None` while it
    /// runs or when none was started.
    pub fn finished(&mut self) -> Option<Result<PollReport, RepositoryError>> {
        if !self.polling.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        let handle = self.polling.take()?;
        match handle.join() {
            Ok((repository, result)) => {
                self.idle = Some(repository);
                Some(result)
            }
            Err(_) => {
                error!(
                    "repository: the poll's thread crashed; polling stops until patchd restarts"
                );
                None
            }
        }
    }

    /// Records a poll's outcome in the state directory `dir` for `patchd
    /// status`; a failure to write it is only logged.
    pub fn record(&self, dir: &std::path::Path, now: u64, result: &PollResult) {
        if let Err(error) = crate::observe::last_poll::record(dir, &self.outcome(now, result)) {
            tracing::warn!(%error, "repository: cannot record the poll for patchd status");
        }
    }

    /// A poll's outcome at `now`, as `patchd status` shows it.
    pub fn outcome(&self, now: u64, result: &PollResult) -> LastPoll {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        LastPoll {
            at: now,
            url: self.settings.base_url.clone(),
            ok: result.is_ok(),
            downloaded: result.as_ref().map_or(0, |r| count(r.downloaded.len())),
            failed: result.as_ref().map_or(0, |r| count(r.failed.len())),
            error: result.as_ref().err().map(|e| crate::error_text(e)),
        }
    }

    /// Polls on the calling thread (`daemon --once`), if idle.
    pub fn poll_here(
        &mut self,
        running: &KernelIdentity,
        have: &dyn Fn(&str) -> bool,
        watch_dir: &std::path::Path,
    ) -> Option<Result<PollReport, RepositoryError>> {
        let repository = self.idle.as_mut()?;
        Some(repository.poll(running, have, watch_dir))
    }
}
