//! The daemon's work inside one session: re-applying lost bundles at start
//! (or holding them back after a crash: the crash-loop guard), and applying
//! bundle files of the watch directory.
//!
//! Each file is its own all-or-nothing apply, so one bad bundle never holds
//! back the others. Before an apply, a file is skipped when its sha256 is
//! in the state already (applied, or lost and left to the boot re-apply),
//! when it failed before, or when it claims another kernel: a repository
//! serves many kernels, so that is a debug line, not an audit line (the
//! claim is unverified; a bundle that claims this kernel is verified in
//! full by the apply). A bundle whose dependency is not applied yet waits
//! and is tried again after the next successful apply. When several files
//! of one batch claim the same bundle id, the highest `bundle_version` is
//! tried first, so the newest is the one applied (the older ones are then
//! refused by the apply's plan, never applied over it).

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;

use tracing::{debug, error, info, warn};

use super::watch::{self, display_name, WatchError};
use super::Daemon;
use crate::transaction::apply::{apply_read, reapply, ApplyError};
use crate::transaction::crash_guard;
use crate::transaction::session::Session;
use crate::transaction::state::Phase;
use crate::verify::sha256_hex;

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOutcome {
    /// Applied now.
    Applied,
    /// Nothing to do (applied already, another kernel, failed before, gone).
    Skipped,
    /// Its dependency is not applied yet.
    Waiting,
    /// Refused or failed; remembered.
    Failed,
}

impl Daemon<'_> {
    /// Re-applies every bundle recorded as lost (or held) that is for the
    /// running kernel, in the order they were applied (dependencies
    /// first). After a crash, the crash-loop guard holds back each lost
    /// bundle that has not survived, and held bundles stay held; after a
    /// clean shutdown, held bundles are re-applied too.
    pub(super) fn reapply_lost(&mut self, session: &mut Session<'_>) {
        let after_crash = crash_guard::after_crash(session);
        let gone: Vec<(String, Phase, bool, String, String)> = session
            .state()
            .bundles
            .iter()
            .filter(|record| record.phase.is_gone())
            .map(|record| {
                let target = &record.manifest.target;
                (
                    record.id.clone(),
                    record.phase,
                    record.survived,
                    target.kernel_release.clone(),
                    target.build_id.clone(),
                )
            })
            .collect();
        for (id, phase, survived, release, build_id) in gone {
            let as_phase = phase.as_str();
            if release != self.running.release || build_id != self.running.build_id {
                info!(
                    bundle = %id,
                    release = %release,
                    build_id = %build_id,
                    "boot re-apply: {id} is for kernel {release} (build-id {build_id}), not the running one: left recorded as {as_phase}"
                );
                continue;
            }
            if after_crash && (phase == Phase::Held || !survived) {
                self.hold(session, &id, phase);
                continue;
            }
            match reapply(session, &id) {
                Ok(_) => {
                    info!(bundle = %id, "boot re-apply: re-applied {id}");
                    self.summary.reapplied.push(id);
                }
                Err(failure) => {
                    error!(
                        bundle = %id,
                        error = %crate::error_text(&failure),
                        "boot re-apply: cannot re-apply {id}; it stays recorded as {as_phase}"
                    );
                    self.summary.failed.push(id);
                }
            }
        }
    }

    /// Holds back bundle `id` (recorded as `phase`) after a crash, or leaves
    /// it held.
    fn hold(&mut self, session: &mut Session<'_>, id: &str, phase: Phase) {
        if phase == Phase::Held {
            info!(bundle = %id, "boot re-apply: {id} stays held after a crash; `patchd release {id}` re-applies it");
            self.summary.held.push(id.to_owned());
            return;
        }
        match crash_guard::hold(session, id) {
            Ok(()) => self.summary.held.push(id.to_owned()),
            Err(failure) => {
                error!(
                    bundle = %id,
                    error = %crate::error_text(&failure),
                    "boot re-apply: cannot record {id} as held; it stays recorded as lost"
                );
                self.summary.failed.push(id.to_owned());
            }
        }
    }

    /// Applies the files `names` of the watch directory, each on its own;
    /// files waiting for a dependency are tried again after each success.
    /// Returns whether anything was applied or failed.
    pub(super) fn apply_files(
        &mut self,
        session: &mut Session<'_>,
        names: impl IntoIterator<Item = OsString>,
    ) -> bool {
        let mut queue: BTreeSet<OsString> = names.into_iter().collect();
        let mut changed = false;
        while !queue.is_empty() {
            let mut progress = false;
            for name in self.newest_first(std::mem::take(&mut queue)) {
                self.memory.waiting.remove(&name);
                match self.apply_file(session, &name) {
                    FileOutcome::Applied => progress = true,
                    FileOutcome::Waiting => {
                        self.memory.waiting.insert(name);
                    }
                    FileOutcome::Failed => changed = true,
                    FileOutcome::Skipped => {}
                }
            }
            if progress {
                changed = true;
                queue = std::mem::take(&mut self.memory.waiting);
            }
        }
        changed
    }

    /// Removes the repository's downloads among `batch` that were not
    /// applied (refused, failed, skipped), so a hostile repository cannot
    /// fill the watch directory: what the state records stays, as does a
    /// bundle waiting for its dependency, and a file is removed only if it
    /// is still the one written (same device and inode).
    pub(super) fn remove_unapplied_downloads(
        &mut self,
        session: &Session<'_>,
        batch: &BTreeSet<OsString>,
    ) {
        let recorded: HashSet<&str> = session
            .state()
            .bundles
            .iter()
            .map(|record| record.sha256.as_str())
            .collect();
        let mut kept = Vec::new();
        for download in std::mem::take(&mut self.downloads) {
            if !batch.contains(&download.name) || self.memory.waiting.contains(&download.name) {
                kept.push(download);
                continue;
            }
            if recorded.contains(download.sha256.as_str()) {
                continue;
            }
            let file = display_name(&download.name);
            let path = self.settings.watch_dir.join(&download.name);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if (meta.dev(), meta.ino()) == download.identity => {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            info!(file = %file, "repository: removed {file}: downloaded but not applied")
                        }
                        Err(error) => {
                            warn!(file = %file, error = %error, "repository: cannot remove {file}, downloaded but not applied")
                        }
                    }
                    self.memory.for_this_kernel.remove(&download.name);
                }
                _ => {
                    debug!(file = %file, "repository: {file} was replaced or removed since the download; left alone")
                }
            }
        }
        self.downloads = kept;
    }

    /// The files in the order to try them: by the version they claim
    /// (unverified: only the order depends on it), highest first, then by
    /// name. A file that cannot be read or parsed keeps its place by name
    /// and is refused when its turn comes.
    fn newest_first(&self, names: BTreeSet<OsString>) -> Vec<OsString> {
        if names.len() < 2 {
            return names.into_iter().collect();
        }
        let claimed_version = |name: &OsString| {
            let bundle = watch::read_bundle_file(&self.settings.watch_dir, name).ok()??;
            let parsed = suture_bundle::parse(&bundle.bytes).ok()?;
            Some(parsed.inspection().manifest.bundle_version)
        };
        let mut claimed: Vec<(u64, OsString)> = names
            .into_iter()
            .map(|name| (claimed_version(&name).unwrap_or(0), name))
            .collect();
        claimed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        claimed.into_iter().map(|(_, name)| name).collect()
    }

    fn apply_file(&mut self, session: &mut Session<'_>, name: &OsString) -> FileOutcome {
        let file = display_name(name);
        let bundle = match watch::read_bundle_file(&self.settings.watch_dir, name) {
            Ok(Some(bundle)) => bundle,
            Ok(None) => {
                debug!(file = %file, "removed before its turn");
                return FileOutcome::Skipped;
            }
            Err(refusal) => {
                let text = crate::error_text(&refusal);
                match refusal {
                    WatchError::Symlink { .. } => warn!(file = %file, "watch: refused: {text}"),
                    _ => warn!(file = %file, "watch: cannot read: {text}"),
                }
                self.summary.failed.push(file);
                return FileOutcome::Failed;
            }
        };
        let sha256 = sha256_hex(&bundle.bytes);
        self.memory.seen.insert(sha256.clone());
        // Unverified, only to tell other kernels' bundles apart quietly (a
        // bundle that claims this kernel is verified in full when applied).
        let claimed = suture_bundle::parse(&bundle.bytes)
            .ok()
            .map(|unverified| unverified.inspection().manifest);
        let here = claimed.as_ref().map(|manifest| {
            manifest.target.kernel_release == self.running.release
                && manifest.target.build_id == self.running.build_id
        });
        if here == Some(true) {
            self.memory
                .for_this_kernel
                .insert(name.clone(), sha256.clone());
        } else {
            self.memory.for_this_kernel.remove(name);
        }
        if let Some(reason) = self.memory.failed.get(&sha256) {
            debug!(file = %file, sha256 = %sha256, "failed before ({reason}); not tried again until the file changes");
            return FileOutcome::Skipped;
        }
        if let Some(record) = session.state().bundles.iter().find(|r| r.sha256 == sha256) {
            debug!(file = %file, bundle = %record.id, "recorded already as {}", record.phase.as_str());
            return FileOutcome::Skipped;
        }
        if claimed
            .as_ref()
            .is_some_and(|manifest| older_than_applied(session, manifest, &file))
        {
            return FileOutcome::Skipped;
        }
        if let (Some(manifest), Some(false)) = (&claimed, here) {
            let target = &manifest.target;
            debug!(
                file = %file,
                bundle = %manifest.id,
                release = %target.kernel_release,
                build_id = %target.build_id,
                "for another kernel; skipped"
            );
            return FileOutcome::Skipped;
        }
        let path = bundle.path.clone();
        match apply_read(session, vec![bundle]) {
            Ok(report) => {
                for applied in report.applied {
                    info!(
                        file = %file,
                        bundle = %applied.id,
                        sha256 = %applied.sha256,
                        "watch: applied {} from {}",
                        applied.id,
                        path.display()
                    );
                    self.summary.applied.push(applied.id);
                }
                FileOutcome::Applied
            }
            Err(ApplyError::MissingDependency { id, dependency }) => {
                info!(file = %file, bundle = %id, "watch: {id} waits for {dependency} to be applied");
                FileOutcome::Waiting
            }
            Err(failure) => {
                let text = crate::error_text(&failure);
                error!(
                    file = %file,
                    sha256 = %sha256,
                    error = %text,
                    "watch: cannot apply {file}; not tried again until the file changes"
                );
                self.memory.failed.insert(sha256, text);
                self.summary.failed.push(file);
                FileOutcome::Failed
            }
        }
    }
}

/// Whether `manifest` (unverified, so only ever a reason to skip) claims
/// an older build of an id than one applied on this machine; says so.
fn older_than_applied(
    session: &Session<'_>,
    manifest: &suture_bundle::manifest::Manifest,
    file: &str,
) -> bool {
    let highest = session.state().highest_version(&manifest.id);
    if manifest.bundle_version >= highest {
        return false;
    }
    info!(
        file = %file,
        bundle = %manifest.id,
        version = manifest.bundle_version,
        highest,
        "watch: {file} is version {} of {}, older than version {highest} applied before; skipped",
        manifest.bundle_version,
        manifest.id
    );
    true
}
