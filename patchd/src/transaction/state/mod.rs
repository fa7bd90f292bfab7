//! patchd's state directory (default `/var/lib/suture/`): `state.json`
//! records every bundle patchd has put into the kernel and how far it got;
//! `applied/ID.bundle` keeps a copy of each applied bundle so it can be
//! applied again later; `lock` keeps two patchd processes from working at
//! once; the audit log lives beside them (see [`crate::transaction::audit`]).
//!
//! `state.json` is replaced atomically (a temporary file, fsync, rename,
//! fsync of the directory), so a crash leaves the old or the new state,
//! never a mix. Each step of an apply is recorded *before* it touches the
//! kernel, so after a crash [`crate::transaction::reconcile`] knows what may be half
//! done. This module never touches the kernel.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use suture_bundle::manifest::Target;

use crate::ownership::{check_trusted_entry, check_trusted_path};
use crate::verify::VerifiedBundle;
pub use error::StateError;

/// Where the state is unless `--state-dir` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/suture";
/// The state file's name.
pub const STATE_FILE: &str = "state.json";
/// The version of `state.json` this patchd writes and reads.
pub const STATE_VERSION: u32 = 1;
/// Cap on `state.json`: 4096 bundles with 4096 functions each fit easily.
pub(crate) const MAX_STATE_FILE: u64 = 64 << 20;
/// The directory of bundle copies, inside the state directory.
const APPLIED_DIR: &str = "applied";

/// How far patchd got with a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// About to load the patch module (or loading it).
    Loading,
    /// Loaded; about to enable (or enabling) it.
    Enabling,
    /// Enabled: the patch is in effect.
    Applied,
    /// About to disable and unload it.
    Reverting,
    /// Loaded but disabled by someone else than patchd.
    Disabled,
    /// Recorded as applied, but its module is not loaded (an unload by
    /// hand, or a reboot).
    Lost,
    /// Recorded as applied, its module gone after the machine went down
    /// without a clean shutdown: held back by the crash-loop guard, not
    /// re-applied until `patchd release` or a boot after a clean shutdown
    /// ([`crate::transaction::crash_guard`]).
    Held,
}

impl Phase {
    /// The phase's name in the state file and in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loading => "loading",
            Self::Enabling => "enabling",
            Self::Applied => "applied",
            Self::Reverting => "reverting",
            Self::Disabled => "disabled",
            Self::Lost => "lost",
            Self::Held => "held",
        }
    }

    /// Whether the bundle is recorded as applied but is not in the kernel,
    /// waiting to be applied again from its copy: lost or held.
    pub fn is_gone(self) -> bool {
        matches!(self, Self::Lost | Self::Held)
    }
}

/// What a bundle's manifest says, kept for status and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSummary {
    /// What the fix does.
    pub description: String,
    /// The CVEs it fixes.
    pub cves: Vec<String>,
    /// The kernel it is for.
    pub target: Target,
    /// The kernel functions it replaces (`old_name`).
    pub functions: Vec<String>,
    /// Functions the fix changes that its author left out: not fixed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Ids of bundles it needs applied first.
    pub dependencies: Vec<String>,
    /// When patchgen made it (Unix seconds).
    pub created: u64,
    /// Its version among the bundles of its id (the manifest's
    /// `bundle_version`). Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bundle_version: u64,
    /// The distribution kernel whose fixes it brings (for scanners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixes_up_to: Option<suture_bundle::FixesUpTo>,
    /// The publication dates it declares for its CVEs (`YYYY-MM-DD` by CVE
    /// id). Absent when none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cve_published: std::collections::BTreeMap<String, String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One bundle in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleRecord {
    /// The patch id (= patch module name = sysfs directory).
    pub id: String,
    /// sha256 of the bundle file.
    pub sha256: String,
    /// Key id of the trusted key that signed it.
    pub signer_key_id: String,
    /// How far patchd got.
    pub phase: Phase,
    /// The apply that put it there.
    pub transaction: u64,
    /// When it became applied (Unix seconds).
    pub applied_at: Option<u64>,
    /// When this record last changed.
    pub updated_at: u64,
    /// Its copy, relative to the state directory.
    pub bundle_file: String,
    /// What its manifest says.
    pub manifest: ManifestSummary,
    /// Proven not to bring the machine down: it was applied at a clean
    /// shutdown, or for the crash-loop guard's uptime. A bundle that has
    /// not survived is held back after a crash. Absent when false, so a
    /// state without it reads and writes as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub survived: bool,
}

/// This boot as patchd saw it, for the crash-loop guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootRecord {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`).
    pub id: String,
    /// `patchd shutdown` ran in this boot and nothing was applied since.
    pub clean_shutdown: bool,
    /// The boot before this one ended without a clean shutdown while a
    /// bundle that had not survived was recorded: its bundles that had not
    /// survived are held back.
    pub after_crash: bool,
}

/// An apply in progress: every bundle of this transaction is undone when a
/// restart finds it still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenTransaction {
    /// Its number.
    pub id: u64,
    /// When it started (Unix seconds).
    pub started: u64,
    /// Bundles of this transaction that were recorded as lost before it
    /// (a re-apply after a reboot): undoing them records them as lost again,
    /// with their copies, instead of forgetting them. Absent when empty, so
    /// a state without re-applies reads and writes as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reapplying: Vec<String>,
    /// Those of `reapplying` that were held (a release): undoing them
    /// records them as held again. Absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The number the next apply gets.
    pub next_transaction: u64,
    /// An apply that has not finished.
    pub open_transaction: Option<OpenTransaction>,
    /// The bundles in the order they were applied.
    pub bundles: Vec<BundleRecord>,
    /// The boot patchd last saw (the crash-loop guard). Absent in state
    /// files of an older patchd, and until a boot id could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootRecord>,
    /// The highest `bundle_version` applied so far, per bundle id; kept
    /// after a revert, so an older build of an id is never applied again.
    /// Absent when empty (and in state files of an older patchd).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub highest_versions: BTreeMap<String, u64>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            next_transaction: 1,
            open_transaction: None,
            bundles: Vec::new(),
            boot: None,
            highest_versions: BTreeMap::new(),
        }
    }
}

impl State {
    /// The record of bundle `id`.
    pub fn get(&self, id: &str) -> Option<&BundleRecord> {
        self.bundles.iter().find(|b| b.id == id)
    }

    /// The record of bundle `id`, to change it.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut BundleRecord> {
        self.bundles.iter_mut().find(|b| b.id == id)
    }

    /// The highest version of `id` applied so far (0: none, or only
    /// bundles without a version).
    pub fn highest_version(&self, id: &str) -> u64 {
        self.highest_versions.get(id).copied().unwrap_or(0)
    }

    /// Records that `version` of `id` was applied.
    pub fn note_applied_version(&mut self, id: &str, version: u64) {
        if version > self.highest_version(id) {
            self.highest_versions.insert(id.to_owned(), version);
        }
    }

    /// Removes and returns the record of bundle `id`.
    pub fn remove(&mut self, id: &str) -> Option<BundleRecord> {
        let index = self.bundles.iter().position(|b| b.id == id)?;
        Some(self.bundles.remove(index))
    }
}

impl BundleRecord {
    /// A new record of `bundle` in phase [`Phase::Loading`].
    pub fn loading(bundle: &VerifiedBundle, transaction: u64, now: u64, file: String) -> Self {
        let manifest = &bundle.manifest();
        Self {
            id: manifest.id.clone(),
            sha256: bundle.sha256().to_string(),
            signer_key_id: bundle.signer_key_id().to_string(),
            phase: Phase::Loading,
            transaction,
            applied_at: None,
            updated_at: now,
            bundle_file: file,
            manifest: ManifestSummary {
                description: manifest.description.clone(),
                cves: manifest.cves.clone(),
                target: manifest.target.clone(),
                functions: manifest
                    .replaced_functions
                    .iter()
                    .map(|f| f.old_name.clone())
                    .collect(),
                skipped: manifest
                    .skipped_functions
                    .iter()
                    .map(|f| f.name.clone())
                    .collect(),
                dependencies: manifest.dependencies.clone(),
                created: manifest.created,
                bundle_version: manifest.bundle_version,
                fixes_up_to: manifest.fixes_up_to.clone(),
                cve_published: manifest.cve_published.clone(),
            },
            survived: false,
        }
    }
}

/// The state directory, locked for this process while the value lives:
/// exclusively by the commands that change it, shared by the read-only ones
/// (which can write nothing through it).
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// `None`: opened read-only and there is no lock file (nothing was
    /// ever written there).
    _lock: Option<Flock<File>>,
    read_only: bool,
    /// Who may own what is in it.
    owners: Vec<u32>,
}

impl StateDir {
    /// Creates the directory if needed (mode 0700), checks that it is
    /// root-owned and private (as [`crate::ownership`] defines), and takes
    /// its lock without waiting.
    pub fn open(dir: &Path, owners: &[u32]) -> Result<Self, StateError> {
        let io = |what, path: &Path| {
            let path = path.to_owned();
            move |source| StateError::Io { what, path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
        check_trusted_path(dir, owners).map_err(|source| StateError::Unsafe {
            dir: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                StateError::Locked {
                    dir: dir.to_owned(),
                }
            } else {
                StateError::Io {
                    what: "lock",
                    path: lock_path.clone(),
                    source: errno.into(),
                }
            }
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            _lock: Some(lock),
            read_only: false,
            owners: owners.to_vec(),
        })
    }

    /// Opens an existing state directory for reading only: nothing is
    /// created (a missing directory is an error), the lock is taken shared
    /// (waiting for a command that changes the state), and every write
    /// through the value is refused.
    pub fn open_read_only(dir: &Path, owners: &[u32]) -> Result<Self, StateError> {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(StateError::Missing {
                    dir: dir.to_owned(),
                })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::Missing {
                    dir: dir.to_owned(),
                })
            }
            Err(source) => {
                return Err(StateError::Io {
                    what: "read",
                    path: dir.to_owned(),
                    source,
                })
            }
        }
        check_trusted_path(dir, owners).map_err(|source| StateError::Unsafe {
            dir: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join("lock");
        let lock = match crate::files::open_no_follow(&lock_path) {
            Ok(file) => Some(
                Flock::lock(file, FlockArg::LockShared).map_err(|(_, errno)| StateError::Io {
                    what: "lock",
                    path: lock_path.clone(),
                    source: errno.into(),
                })?,
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StateError::Io {
                    what: "open",
                    path: lock_path,
                    source,
                })
            }
        };
        Ok(Self {
            dir: dir.to_owned(),
            _lock: lock,
            read_only: true,
            owners: owners.to_vec(),
        })
    }

    /// Refuses a write through a read-only value.
    fn writable(&self) -> Result<(), StateError> {
        if self.read_only {
            return Err(StateError::ReadOnly {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads `state.json`; an absent file is the empty state. Every id,
    /// name, path and time in it is checked ([`validate`]).
    pub fn load(&self) -> Result<State, StateError> {
        let path = self.dir.join(STATE_FILE);
        let io = |source| StateError::Io {
            what: "read",
            path: path.clone(),
            source,
        };
        let file = match crate::files::open_no_follow(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State::default())
            }
            Err(error) => return Err(io(error)),
        };
        let Some(text) = crate::files::read_capped(file, MAX_STATE_FILE).map_err(io)? else {
            return Err(StateError::TooLarge { path });
        };
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let versioned: Versioned =
            serde_json::from_slice(&text).map_err(|source| StateError::Corrupt {
                path: path.clone(),
                source,
            })?;
        if versioned.version != STATE_VERSION {
            return Err(StateError::Version {
                path,
                version: versioned.version,
            });
        }
        let state: State = serde_json::from_slice(&text).map_err(|source| StateError::Corrupt {
            path: path.clone(),
            source,
        })?;
        validate::validate(&state).map_err(|invalid| StateError::Invalid {
            path,
            field: invalid.field,
            value: invalid.value,
            expected: invalid.expected,
        })?;
        Ok(state)
    }

    /// Replaces `state.json` atomically: temporary file, fsync, rename,
    /// fsync of the directory.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        self.writable()?;
        let mut text = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: self.dir.join(STATE_FILE),
            source,
        })?;
        text.push(b'\n');
        write_atomically(&self.dir, STATE_FILE, &text)
    }

    /// Keeps a copy of an applied bundle, `applied/ID.bundle`, mode 0600
    /// (written atomically, never through a link); returns its path
    /// relative to the state directory.
    pub fn store_bundle(&self, bundle: &VerifiedBundle) -> Result<String, StateError> {
        self.writable()?;
        let applied = self.applied_dir()?;
        let name = format!("{}.bundle", bundle.id());
        crate::files::write_atomically(
            &applied,
            &name,
            &format!(".{name}.tmp"),
            0o600,
            bundle.bytes(),
        )
        .map_err(|e| StateError::Io {
            what: e.what,
            path: e.path,
            source: e.source,
        })?;
        Ok(format!("{APPLIED_DIR}/{name}"))
    }

    /// `applied/`, created (0700) if absent; refused when it is a symbolic
    /// link or could be written by others ([`crate::ownership`]).
    pub fn applied_dir(&self) -> Result<PathBuf, StateError> {
        let applied = self.dir.join(APPLIED_DIR);
        match DirBuilder::new().mode(0o700).create(&applied) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(StateError::Io {
                    what: "create",
                    path: applied,
                    source,
                })
            }
        }
        check_trusted_entry(&applied, &self.owners).map_err(|source| StateError::Unsafe {
            dir: self.dir.clone(),
            source,
        })?;
        Ok(applied)
    }

    /// The path of a bundle copy recorded as `relative` (a record's
    /// `bundle_file`): only ever a file directly in `applied/`, whatever the
    /// state file says.
    pub fn copy_path(&self, relative: &str) -> PathBuf {
        let name = Path::new(relative)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        self.dir.join(APPLIED_DIR).join(name)
    }

    /// Removes a bundle copy (after a revert or a rollback). A copy that is
    /// already gone is fine.
    pub fn remove_bundle(&self, relative: &str) -> Result<(), StateError> {
        self.writable()?;
        let path = self.copy_path(relative);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Io {
                what: "remove",
                path,
                source,
            }),
        }
    }
}

/// Writes `dir/name` atomically through `dir/.name.tmp`, mode 0600 (see
/// `files::write_atomically`).
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    crate::files::write_atomically(dir, name, &format!(".{name}.tmp"), 0o600, bytes).map_err(|e| {
        StateError::Io {
            what: e.what,
            path: e.path,
            source: e.source,
        }
    })
}

mod error;
pub mod validate;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
