//! `patchd status`: the running kernel, the companion module, and every
//! bundle patchd applied with its state in the kernel (read from sysfs now,
//! not taken from the state file), its functions and how the companion
//! module redirects them (direct call or ftrace handler), when it was
//! applied, the CVEs it fixes, its signer and digest, and why the
//! crash-loop guard holds it back if it does. Patches registered with the companion module that
//! patchd did not apply are listed apart. Status never marks survivors:
//! it reads.

use std::fmt;

use serde::Serialize;

use super::last_poll::{self, LastPoll};
use super::redirect::Redirect;
use super::verdict::{verdict, Facts, Verdict};
use crate::clock::utc_rfc3339;
use crate::kernel::{running_identity, KernelError, KernelIdentity};
use crate::transaction::crash_guard::{after_crash, hold_reason};
use crate::transaction::session::Session;
use crate::transaction::state::Phase;
use crate::transaction::take_out::patch_enabled;

/// What `patchd status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The running kernel.
    pub kernel: KernelIdentity,
    /// Whether the companion module is loaded.
    pub companion_loaded: bool,
    /// The bundles patchd applied, in the order it applied them.
    pub bundles: Vec<BundleStatus>,
    /// Patches registered with the companion module that patchd did not
    /// apply (loaded by hand).
    pub other_patches: Vec<String>,
    /// The crash-loop guard in this boot.
    pub crash_guard: GuardStatus,
    /// Bundle files of the watch directory not applied; `None` when the
    /// directory was not looked at.
    pub pending: Option<Vec<String>>,
    /// The daemon's last repository poll, if one is recorded.
    pub last_poll: Option<LastPoll>,
    /// The verdict on all of it (the first line of the text).
    pub verdict: Verdict,
}

/// The crash-loop guard as `patchd status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardStatus {
    /// This boot's id; `None` when it cannot be read (the guard is off).
    pub boot_id: Option<String>,
    /// This boot followed a crash: bundles that had not survived are held.
    pub after_crash: bool,
    /// How long a bundle must be applied to survive (seconds; 0: only a
    /// clean shutdown proves it).
    pub uptime_secs: u64,
}

/// One applied bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleStatus {
    /// Its id.
    pub id: String,
    /// Its phase in patchd's state.
    pub phase: &'static str,
    /// What the kernel shows now: `enabled`, `disabled` or `not loaded`.
    pub kernel_state: &'static str,
    /// The kernel functions it replaces.
    pub functions: Vec<String>,
    /// How the companion module redirects them now (its `functions` file);
    /// `None` when the patch is not registered or the file cannot be read.
    pub redirect: Option<Redirect>,
    /// Functions the fix changes that its author left out: not fixed.
    pub skipped: Vec<String>,
    /// When it was applied (Unix seconds).
    pub applied_at: Option<u64>,
    /// The same, RFC 3339 UTC.
    pub applied_at_utc: Option<String>,
    /// The CVEs it fixes.
    pub cves: Vec<String>,
    /// What it does.
    pub description: String,
    /// Key id of its signer.
    pub signer_key_id: String,
    /// sha256 of the bundle.
    pub sha256: String,
    /// It proved itself to the crash-loop guard (applied at a clean
    /// shutdown or for the uptime): never held back after a crash.
    pub survived: bool,
    /// Why the crash-loop guard holds it back, when it does.
    pub held: Option<String>,
    /// The distribution kernel whose fixes it brings, if it says.
    pub fixes_up_to: Option<suture_bundle::FixesUpTo>,
}

/// Reads the status.
pub fn status(session: &Session<'_>) -> Result<Status, KernelError> {
    let kernel = session.kernel;
    let identity = running_identity(kernel)?;
    let modules = kernel.loaded_modules()?;
    let registered = kernel.suture_patches()?;
    let uptime_secs = session.config().crash_guard_uptime_secs;
    let mut bundles = Vec::new();
    for record in &session.state().bundles {
        let is_patch = registered
            .as_ref()
            .is_some_and(|patches| patches.contains(&record.id));
        let kernel_state = if !modules.contains(&record.id) {
            "not loaded"
        } else if !is_patch {
            // Never patchd's: a record that names another module.
            "not loaded as a patch (a module of that name is loaded but not registered with the companion module)"
        } else if patch_enabled(kernel, &record.id)? {
            "enabled"
        } else {
            "disabled"
        };
        bundles.push(BundleStatus {
            id: record.id.clone(),
            phase: record.phase.as_str(),
            kernel_state,
            functions: record.manifest.functions.clone(),
            redirect: is_patch
                .then(|| Redirect::read(kernel, &record.id))
                .flatten(),
            skipped: record.manifest.skipped.clone(),
            applied_at: record.applied_at,
            applied_at_utc: record.applied_at.map(utc_rfc3339),
            cves: record.manifest.cves.clone(),
            description: record.manifest.description.clone(),
            signer_key_id: record.signer_key_id.clone(),
            sha256: record.sha256.clone(),
            survived: record.survived,
            held: (record.phase == Phase::Held).then(|| hold_reason(record, uptime_secs)),
            fixes_up_to: record.manifest.fixes_up_to.clone(),
        });
    }
    let other_patches = registered
        .iter()
        .flatten()
        .filter(|patch| session.state().get(patch).is_none())
        .cloned()
        .collect();
    let mut status = Status {
        kernel: identity,
        companion_loaded: registered.is_some(),
        bundles,
        other_patches,
        crash_guard: GuardStatus {
            boot_id: session.boot_id().map(str::to_owned),
            after_crash: after_crash(session),
            uptime_secs,
        },
        pending: None,
        last_poll: last_poll::read(&session.config().state_dir),
        verdict: Verdict {
            level: super::verdict::Level::Ok,
            summary: String::new(),
        },
    };
    status.verdict = verdict(&status.facts());
    Ok(status)
}

impl Status {
    /// Adds the watch directory's bundle files not applied, and judges
    /// again.
    pub fn set_pending(&mut self, pending: Vec<String>) {
        self.pending = Some(pending);
        self.verdict = verdict(&self.facts());
    }

    /// What the verdict is made of.
    pub fn facts(&self) -> Facts {
        let count =
            |f: &dyn Fn(&BundleStatus) -> bool| self.bundles.iter().filter(|b| f(b)).count();
        Facts {
            held: count(&|b| b.phase == "held"),
            not_in_effect: count(&|b| {
                matches!(b.phase, "applied" | "lost" | "disabled") && b.kernel_state != "enabled"
            }),
            cut_short: count(&|b| matches!(b.phase, "loading" | "enabling" | "reverting")),
            in_effect: count(&|b| b.phase == "applied" && b.kernel_state == "enabled"),
            pending: self.pending.as_ref().map_or(0, Vec::len),
            poll_failed: self.last_poll.as_ref().is_some_and(|p| !p.ok),
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.verdict)?;
        writeln!(
            f,
            "kernel: {} (build-id {})",
            self.kernel.release, self.kernel.build_id
        )?;
        let companion = if self.companion_loaded {
            "loaded"
        } else {
            "not loaded"
        };
        writeln!(f, "companion module: {companion}")?;
        let guard = &self.crash_guard;
        if guard.boot_id.is_none() {
            writeln!(f, "crash-loop guard: off (this boot's id cannot be read)")?;
        } else if guard.after_crash {
            writeln!(
                f,
                "crash-loop guard: this boot followed a crash (no clean shutdown recorded); bundles not seen applied for {} s are held back",
                guard.uptime_secs
            )?;
        }
        if self.bundles.is_empty() {
            writeln!(f, "applied bundles: none")?;
        } else {
            writeln!(f, "applied bundles: {}", self.bundles.len())?;
        }
        for bundle in &self.bundles {
            writeln!(
                f,
                "  {}: {} (kernel: {}), applied {}",
                bundle.id,
                bundle.phase,
                bundle.kernel_state,
                bundle.applied_at_utc.as_deref().unwrap_or("never")
            )?;
            if let Some(reason) = &bundle.held {
                writeln!(f, "    {reason}")?;
            }
            writeln!(f, "    functions: {}", list(&bundle.functions))?;
            if let Some(redirect) = bundle.redirect.as_ref().filter(|r| r.is_known()) {
                writeln!(f, "    redirect: {redirect}")?;
            }
            if !bundle.skipped.is_empty() {
                writeln!(
                    f,
                    "    NOT fixed (left out of the fix by its author): {}",
                    list(&bundle.skipped)
                )?;
            }
            writeln!(f, "    cves: {}", list(&bundle.cves))?;
            if let Some(fixes) = &bundle.fixes_up_to {
                writeln!(f, "    fixes up to kernel {}", fixes.version)?;
            }
            writeln!(
                f,
                "    signer {}, sha256 {}",
                bundle.signer_key_id, bundle.sha256
            )?;
        }
        if !self.other_patches.is_empty() {
            writeln!(
                f,
                "patches not applied by patchd: {}",
                self.other_patches.join(", ")
            )?;
        }
        if let Some(pending) = self.pending.as_ref().filter(|p| !p.is_empty()) {
            writeln!(
                f,
                "in the watch directory, not applied: {}",
                pending.join(", ")
            )?;
        }
        if let Some(poll) = &self.last_poll {
            let outcome = match &poll.error {
                None => format!("ok, {} downloaded, {} failed", poll.downloaded, poll.failed),
                Some(error) => format!("failed: {error}"),
            };
            writeln!(
                f,
                "repository {}: last poll {} ({outcome})",
                poll.url,
                utc_rfc3339(poll.at)
            )?;
        }
        Ok(())
    }
}

/// A status of `bundles` on a fake 6.1 host, for tests.
#[cfg(test)]
pub(crate) fn test_status(bundles: Vec<BundleStatus>) -> Status {
    let mut status = Status {
        kernel: KernelIdentity {
            release: "6.1.0-50-amd64".to_owned(),
            build_id: "06f8".to_owned(),
        },
        companion_loaded: true,
        bundles,
        other_patches: Vec::new(),
        crash_guard: GuardStatus {
            boot_id: Some("b".to_owned()),
            after_crash: false,
            uptime_secs: 600,
        },
        pending: None,
        last_poll: None,
        verdict: Verdict {
            level: super::verdict::Level::Ok,
            summary: String::new(),
        },
    };
    status.verdict = verdict(&status.facts());
    status
}

/// A bundle `id` in `phase`, the kernel showing `kernel_state`, for tests.
#[cfg(test)]
pub(crate) fn test_bundle(
    id: &str,
    phase: &'static str,
    kernel_state: &'static str,
) -> BundleStatus {
    BundleStatus {
        id: id.to_owned(),
        phase,
        kernel_state,
        functions: vec!["cmdline_proc_show".to_owned()],
        redirect: None,
        skipped: Vec::new(),
        applied_at: None,
        applied_at_utc: None,
        cves: Vec::new(),
        description: String::new(),
        signer_key_id: "k".to_owned(),
        sha256: "s".to_owned(),
        survived: false,
        held: None,
        fixes_up_to: None,
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
