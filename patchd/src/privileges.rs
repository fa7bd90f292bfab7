//! patchd's privileges: the commands that change the kernel refuse to start
//! without `CAP_SYS_MODULE`, and the daemon drops every capability it does
//! not need once it has started.
//!
//! What patchd needs, from its code paths (docs/patchd.md repeats this):
//!
//! - `CAP_SYS_MODULE`: `init_module(2)` and `delete_module(2)` (loading the
//!   companion and patch modules, unloading them). Without it nothing can
//!   be applied or reverted.
//! - `CAP_SYSLOG`: `/proc/kallsyms` shows real addresses only to an opener
//!   with it (with `kernel.kptr_restrict` 0 or 1; with 2, to no one; with 0
//!   and `kernel.perf_event_paranoid` at most 1, to everyone). Linking reads
//!   kallsyms, and refuses all-zero addresses, so nothing is loaded then.
//! - Not `CAP_DAC_OVERRIDE`: patchd runs as uid 0, and every file it writes
//!   is root's: the state directory (root-owned, 0700, which patchd
//!   enforces), `/sys/kernel/suture/*/enabled` (root, 0644); the files it
//!   reads are root's or world-readable (`/proc/modules`,
//!   `/sys/kernel/notes`, the trust store). The owner's permission bits
//!   apply to uid 0 like to anyone else, so no override is needed.
//!
//! So the check before a kernel change asks only for `CAP_SYS_MODULE`
//! ([`KERNEL_CHANGES`]); `CAP_SYSLOG` is not demanded up front because some
//! kernels show addresses without it, and the link step's refusal says what
//! to do when they are hidden. The daemon keeps [`DAEMON_CAPABILITIES`].
//!
//! Capabilities are per thread: [`drop_to`] refuses to run once the process
//! has more than one, as a thread left with its capabilities would defeat
//! the drop. Every call goes through [`ProcessCapabilities`], with the real
//! implementation (the `caps` crate, prctl through nix) and a fake that
//! enforces the kernel's rules, so the logic is tested without root. This
//! module never raises a capability.

use std::fmt;
use std::io;
use std::sync::{Mutex, PoisonError};

pub use caps::{CapSet, Capability, CapsHashSet};

/// What loading, enabling, disabling and unloading need.
pub const KERNEL_CHANGES: &[Capability] = &[Capability::CAP_SYS_MODULE];

/// What the daemon keeps after it starts: module loading and unloading,
/// and real addresses in `/proc/kallsyms` for linking.
pub const DAEMON_CAPABILITIES: &[Capability] =
    &[Capability::CAP_SYS_MODULE, Capability::CAP_SYSLOG];

/// The calling process's capability sets.
pub trait ProcessCapabilities {
    /// One set of the calling thread (all five sets can be read).
    fn read(&self, set: CapSet) -> io::Result<CapsHashSet>;
    /// Replaces the effective, permitted or inheritable set (`capset(2)`:
    /// effective must stay within permitted, permitted can only shrink).
    fn set(&self, set: CapSet, value: &CapsHashSet) -> io::Result<()>;
    /// Drops one capability from the bounding set (needs `CAP_SETPCAP`).
    fn drop_bounding(&self, capability: Capability) -> io::Result<()>;
    /// Clears the ambient set.
    fn clear_ambient(&self) -> io::Result<()>;
    /// Sets `no_new_privs`: no execve can grant privileges again.
    fn set_no_new_privs(&self) -> io::Result<()>;
    /// How many threads the process runs.
    fn threads(&self) -> io::Result<usize>;
}

/// The real process, through the `caps` crate and prctl.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealCapabilities;

impl ProcessCapabilities for RealCapabilities {
    fn read(&self, set: CapSet) -> io::Result<CapsHashSet> {
        caps::read(None, set).map_err(io::Error::other)
    }

    fn set(&self, set: CapSet, value: &CapsHashSet) -> io::Result<()> {
        caps::set(None, set, value).map_err(io::Error::other)
    }

    fn drop_bounding(&self, capability: Capability) -> io::Result<()> {
        caps::drop(None, CapSet::Bounding, capability).map_err(io::Error::other)
    }

    fn clear_ambient(&self) -> io::Result<()> {
        caps::clear(None, CapSet::Ambient).map_err(io::Error::other)
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)
    }

    fn threads(&self) -> io::Result<usize> {
        Ok(std::fs::read_dir("/proc/self/task")?.count())
    }
}

/// Capabilities as `CAP_A, CAP_B`, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityList(pub Vec<Capability>);

impl CapabilityList {
    fn of<'c>(capabilities: impl IntoIterator<Item = &'c Capability>) -> Self {
        let mut list: Vec<Capability> = capabilities.into_iter().copied().collect();
        list.sort_by_key(Capability::index);
        list.dedup();
        Self(list)
    }
}

impl fmt::Display for CapabilityList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, capability) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{capability}")?;
        }
        Ok(())
    }
}

/// Why patchd refuses to go on, or could not drop its capabilities.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A command that changes the kernel lacks a capability.
    #[error("{command} changes the running kernel and needs {missing} in its effective capability set, which this process lacks: run it as root, or grant it {missing} (in a systemd unit: AmbientCapabilities={missing})")]
    Missing {
        /// The command, e.g. `patchd apply`.
        command: String,
        /// What it lacks.
        missing: CapabilityList,
    },

    /// The daemon was asked to keep a capability it does not have.
    #[error("cannot keep {missing}: not in this process's effective set; start patchd as root, or grant it {missing}")]
    CannotKeep {
        /// What it lacks.
        missing: CapabilityList,
    },

    /// More than one thread runs.
    #[error("cannot drop capabilities while {threads} threads run: capabilities are per thread, so drop them before starting any thread")]
    Threads {
        /// How many.
        threads: usize,
    },

    /// A capability call failed.
    #[error("cannot {what}")]
    Call {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// A set still holds capabilities after the drop.
    #[error("after dropping, the {set} set still holds {extra}")]
    NotDropped {
        /// The set.
        set: &'static str,
        /// What it still holds.
        extra: CapabilityList,
    },
}

fn call(what: impl Into<String>) -> impl FnOnce(io::Error) -> PrivilegeError {
    let what = what.into();
    move |source| PrivilegeError::Call { what, source }
}

/// Refuses `command` unless every capability of `needed` is in the
/// effective set.
pub fn require(
    process: &dyn ProcessCapabilities,
    needed: &[Capability],
    command: &str,
) -> Result<(), PrivilegeError> {
    let effective = process
        .read(CapSet::Effective)
        .map_err(call("read this process's capabilities"))?;
    let missing = CapabilityList::of(needed.iter().filter(|c| !effective.contains(c)));
    if missing.0.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Missing {
            command: command.to_owned(),
            missing,
        })
    }
}

/// Keeps only `needed`: sets `no_new_privs`, drops every other capability
/// from the bounding set (while `CAP_SETPCAP` is still effective), clears
/// the ambient and inheritable sets, then narrows the effective and the
/// permitted sets to `needed`, and reads every set back. Call it before
/// any thread starts. The uid stays 0 (see the module doc for why patchd
/// needs it).
pub fn drop_to(
    process: &dyn ProcessCapabilities,
    needed: &[Capability],
) -> Result<(), PrivilegeError> {
    let threads = process
        .threads()
        .map_err(call("count this process's threads"))?;
    if threads > 1 {
        return Err(PrivilegeError::Threads { threads });
    }
    let read = |set: CapSet| {
        process
            .read(set)
            .map_err(call(format!("read the {} set", set_name(set))))
    };
    let effective = read(CapSet::Effective)?;
    let missing = CapabilityList::of(needed.iter().filter(|c| !effective.contains(c)));
    if !missing.0.is_empty() {
        return Err(PrivilegeError::CannotKeep { missing });
    }
    let keep: CapsHashSet = needed.iter().copied().collect();

    process
        .set_no_new_privs()
        .map_err(call("set no_new_privs"))?;
    let bounding = read(CapSet::Bounding)?;
    for capability in CapabilityList::of(bounding.difference(&keep)).0 {
        process.drop_bounding(capability).map_err(call(format!(
            "drop {capability} from the bounding set (that needs CAP_SETPCAP)"
        )))?;
    }
    process
        .clear_ambient()
        .map_err(call("clear the ambient set"))?;
    let none = CapsHashSet::new();
    for (set, value) in [
        (CapSet::Inheritable, &none),
        // Effective first: it must stay within permitted at every step.
        (CapSet::Effective, &keep),
        (CapSet::Permitted, &keep),
    ] {
        process
            .set(set, value)
            .map_err(call(format!("narrow the {} set", set_name(set))))?;
    }

    for (set, allowed) in [
        (CapSet::Effective, &keep),
        (CapSet::Permitted, &keep),
        (CapSet::Inheritable, &none),
        (CapSet::Bounding, &keep),
        (CapSet::Ambient, &none),
    ] {
        let extra = CapabilityList::of(read(set)?.difference(allowed));
        if !extra.0.is_empty() {
            return Err(PrivilegeError::NotDropped {
                set: set_name(set),
                extra,
            });
        }
    }
    Ok(())
}

fn set_name(set: CapSet) -> &'static str {
    match set {
        CapSet::Ambient => "ambient",
        CapSet::Bounding => "bounding",
        CapSet::Effective => "effective",
        CapSet::Inheritable => "inheritable",
        CapSet::Permitted => "permitted",
    }
}

/// The five sets and `no_new_privs` of a [`FakeCapabilities`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeSets {
    /// Effective.
    pub effective: CapsHashSet,
    /// Permitted.
    pub permitted: CapsHashSet,
    /// Inheritable.
    pub inheritable: CapsHashSet,
    /// Bounding.
    pub bounding: CapsHashSet,
    /// Ambient.
    pub ambient: CapsHashSet,
    /// Whether `no_new_privs` is set.
    pub no_new_privs: bool,
}

/// A process for tests: holds the sets in memory and refuses what the
/// kernel refuses (`EPERM`): raising effective beyond permitted, growing
/// permitted (or shrinking it below effective), raising inheritable beyond
/// inheritable and permitted, dropping from the
/// bounding set without `CAP_SETPCAP` in effective. Lowering permitted or
/// inheritable lowers ambient, as in the kernel.
#[derive(Debug, Default)]
pub struct FakeCapabilities {
    sets: Mutex<FakeSets>,
    threads: usize,
}

impl FakeCapabilities {
    /// A root process: every capability in every set but inheritable and
    /// ambient, one thread.
    pub fn root() -> Self {
        let all = caps::all();
        Self::with(FakeSets {
            effective: all.clone(),
            permitted: all.clone(),
            bounding: all,
            ..FakeSets::default()
        })
    }

    /// A process with these sets and one thread.
    pub fn with(sets: FakeSets) -> Self {
        Self {
            sets: Mutex::new(sets),
            threads: 1,
        }
    }

    /// The same with `threads` threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The sets now.
    pub fn sets(&self) -> FakeSets {
        self.sets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update<T>(&self, change: impl FnOnce(&mut FakeSets) -> io::Result<T>) -> io::Result<T> {
        change(&mut self.sets.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn eperm() -> io::Error {
    io::Error::from_raw_os_error(nix::libc::EPERM)
}

impl ProcessCapabilities for FakeCapabilities {
    fn read(&self, set: CapSet) -> io::Result<CapsHashSet> {
        let sets = self.sets();
        Ok(match set {
            CapSet::Ambient => sets.ambient,
            CapSet::Bounding => sets.bounding,
            CapSet::Effective => sets.effective,
            CapSet::Inheritable => sets.inheritable,
            CapSet::Permitted => sets.permitted,
        })
    }

    fn set(&self, set: CapSet, value: &CapsHashSet) -> io::Result<()> {
        self.update(|sets| {
            match set {
                CapSet::Effective if value.is_subset(&sets.permitted) => {
                    sets.effective.clone_from(value);
                }
                CapSet::Permitted
                    if value.is_subset(&sets.permitted) && sets.effective.is_subset(value) =>
                {
                    sets.permitted.clone_from(value);
                }
                CapSet::Inheritable if value.is_subset(&(&sets.inheritable | &sets.permitted)) => {
                    sets.inheritable.clone_from(value);
                }
                CapSet::Ambient | CapSet::Bounding => {
                    return Err(io::Error::from_raw_os_error(nix::libc::EINVAL))
                }
                _ => return Err(eperm()),
            }
            sets.ambient = &(&sets.ambient & &sets.permitted) & &sets.inheritable;
            Ok(())
        })
    }

    fn drop_bounding(&self, capability: Capability) -> io::Result<()> {
        self.update(|sets| {
            if !sets.effective.contains(&Capability::CAP_SETPCAP) {
                return Err(eperm());
            }
            sets.bounding.remove(&capability);
            Ok(())
        })
    }

    fn clear_ambient(&self) -> io::Result<()> {
        self.update(|sets| {
            sets.ambient.clear();
            Ok(())
        })
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        self.update(|sets| {
            sets.no_new_privs = true;
            Ok(())
        })
    }

    fn threads(&self) -> io::Result<usize> {
        Ok(self.threads)
    }
}

#[cfg(test)]
#[path = "privileges_tests.rs"]
mod tests;
