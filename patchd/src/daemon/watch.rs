//! The watch directory: which names are bundles, reading one without
//! following links, and the inotify watch that says when one arrives.
//!
//! Only `*.bundle` names that do not start with a dot are bundles, so a
//! writer that puts `.NAME.part` (or `NAME.bundle.part`) and renames it
//! when done is never read half written; the daemon's own downloads do
//! exactly that. A file is opened with `O_NOFOLLOW | O_NONBLOCK` and must be
//! a regular file: a symbolic link or a FIFO dropped here is refused, never
//! followed or waited on. This module never writes to the directory.

use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use suture_bundle::MAX_BUNDLE_SIZE;

use crate::ownership::{check_trusted_path, OwnershipError};
use crate::transaction::apply::ReadBundle;

/// The suffix of a bundle file.
pub use suture_bundle::repository_index::BUNDLE_SUFFIX;

/// Why a file of the watch directory, or the directory, cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A symbolic link where a bundle file was expected.
    #[error("{path} is a symbolic link: patchd does not follow links in the watch directory; move the bundle file itself there")]
    Symlink {
        /// The link.
        path: PathBuf,
    },

    /// Not a regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },

    /// Over the bundle size cap.
    #[error("{path} is {size} bytes, more than the limit of {MAX_BUNDLE_SIZE} for a bundle")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least).
        size: u64,
    },

    /// A file or directory operation failed.
    #[error("cannot {what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The directory could be changed by someone else than root.
    #[error("refusing the watch directory {dir}")]
    Unsafe {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: OwnershipError,
    },

    /// inotify failed.
    #[error("cannot watch {dir} with inotify")]
    Inotify {
        /// The directory.
        dir: PathBuf,
        /// The errno.
        #[source]
        source: Errno,
    },

    /// The directory was removed or moved away while watched.
    #[error("the watch directory {dir} was removed or moved: create it again and restart patchd")]
    Gone {
        /// The directory.
        dir: PathBuf,
    },
}

/// Whether `name` is a bundle the daemon applies: `*.bundle`, not a
/// dotfile (temporary and partial files), valid UTF-8.
pub fn is_bundle_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    !name.starts_with('.') && name.len() > BUNDLE_SUFFIX.len() && name.ends_with(BUNDLE_SUFFIX)
}

/// Creates the watch directory if needed (mode 0700) and checks it as the
/// trust store is checked: root-owned, not writable by group or others, no
/// symbolic link, and so every directory above it.
pub fn prepare_dir(dir: &Path, owners: &[u32]) -> Result<(), WatchError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| WatchError::Io {
            what: "create",
            path: dir.to_owned(),
            source,
        })?;
    check_trusted_path(dir, owners).map_err(|source| WatchError::Unsafe {
        dir: dir.to_owned(),
        source,
    })?;
    Ok(())
}

/// The bundle names in `dir`, sorted.
pub fn scan(dir: &Path) -> Result<Vec<OsString>, WatchError> {
    let io = |source| WatchError::Io {
        what: "list",
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if is_bundle_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The sha256 of every bundle file of `dir` (lowercase hex); files that
/// cannot be read are left out. Only reads.
pub fn digests(dir: &Path) -> std::collections::HashSet<String> {
    scan(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| read_bundle_file(dir, name).ok().flatten())
        .map(|read| crate::verify::sha256_hex(&read.bytes))
        .collect()
}

/// The bundle files of `dir` whose contents are not among `applied`
/// (sha256, lowercase hex): what the daemon's next pass would try. A
/// directory that cannot be listed has none; files that cannot be read
/// are left out. Only reads.
pub fn not_applied(dir: &Path, applied: &std::collections::HashSet<&str>) -> Vec<String> {
    let Ok(names) = scan(dir) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| {
            let read = read_bundle_file(dir, name).ok()??;
            let hex = crate::verify::sha256_hex(&read.bytes);
            (!applied.contains(hex.as_str())).then(|| name.to_string_lossy().into_owned())
        })
        .collect()
}

/// Reads `dir/name` into a size-capped buffer without following a link;
/// `None` if it is gone (removed before its turn).
pub fn read_bundle_file(dir: &Path, name: &OsStr) -> Result<Option<ReadBundle>, WatchError> {
    let path = dir.join(name);
    let io = |what| {
        let path = path.clone();
        move |source| WatchError::Io { what, path, source }
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a link fails with ELOOP.
        Err(error) if error.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(WatchError::Symlink { path })
        }
        Err(error) => return Err(io("open")(error)),
    };
    let metadata = file.metadata().map_err(io("inspect"))?;
    if !metadata.is_file() {
        return Err(WatchError::NotAFile { path });
    }
    let cap = u64::try_from(MAX_BUNDLE_SIZE).unwrap_or(u64::MAX);
    if metadata.len() > cap {
        return Err(WatchError::TooLarge {
            path,
            size: metadata.len(),
        });
    }
    // It may have grown since: the read stops one byte past the cap.
    let Some(bytes) = crate::files::read_capped(file, cap).map_err(io("read"))? else {
        let size = cap.saturating_add(1);
        return Err(WatchError::TooLarge { path, size });
    };
    Ok(Some(ReadBundle { path, bytes }))
}

/// What one read of the inotify descriptor found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WatchEvents {
    /// Bundle names written and closed, or moved in.
    pub names: Vec<OsString>,
    /// Other names that arrived (partial files, dotfiles), for the debug log.
    pub ignored: Vec<OsString>,
    /// The kernel dropped events: the directory must be scanned again.
    pub overflow: bool,
}

/// An inotify watch on the watch directory for files closed after writing
/// (`IN_CLOSE_WRITE`) and files moved in (`IN_MOVED_TO`).
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    inotify: Inotify,
}

impl Watcher {
    /// Starts watching `dir` (not following it if it is a link).
    pub fn new(dir: &Path) -> Result<Self, WatchError> {
        let failed = |source| WatchError::Inotify {
            dir: dir.to_owned(),
            source,
        };
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(failed)?;
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR
            | AddWatchFlags::IN_DONT_FOLLOW;
        inotify.add_watch(dir, flags).map_err(failed)?;
        Ok(Self {
            dir: dir.to_owned(),
            inotify,
        })
    }

    /// The descriptor to wait on.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Every event queued now (none if nothing is queued).
    pub fn read_events(&self) -> Result<WatchEvents, WatchError> {
        let mut found = WatchEvents::default();
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) => events,
                Err(Errno::EAGAIN) => return Ok(found),
                Err(Errno::EINTR) => continue,
                Err(source) => {
                    return Err(WatchError::Inotify {
                        dir: self.dir.clone(),
                        source,
                    })
                }
            };
            for event in events {
                let mask = event.mask;
                if mask.intersects(
                    AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_IGNORED
                        | AddWatchFlags::IN_UNMOUNT,
                ) {
                    return Err(WatchError::Gone {
                        dir: self.dir.clone(),
                    });
                }
                if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    found.overflow = true;
                    continue;
                }
                if let Some(name) = event.name {
                    if is_bundle_name(&name) {
                        found.names.push(name);
                    } else {
                        found.ignored.push(name);
                    }
                }
            }
        }
    }
}

/// A name as it appears in logs.
pub fn display_name(name: &OsStr) -> String {
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn bundle_names() {
        let cases = [
            ("fix_a.bundle", true),
            ("cmdline_demo-6.1.0-50.bundle", true),
            (".fix_a.bundle", false),
            (".fix_a.bundle.part", false),
            ("fix_a.bundle.part", false),
            ("fix_a.bundle~", false),
            ("fix_a.part", false),
            (".bundle", false),
            ("fix_a", false),
            ("README", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_bundle_name(OsStr::new(name)), want, "{name}");
        }
        assert!(!is_bundle_name(OsStr::from_bytes(b"\xff.bundle")));
    }

    #[test]
    fn reads_regular_files_and_refuses_links_and_fifos() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("a.bundle"), b"bytes").expect("write");
        let read = read_bundle_file(dir.path(), OsStr::new("a.bundle"))
            .expect("reads")
            .expect("present");
        assert_eq!(read.bytes, b"bytes");
        assert_eq!(read.path, dir.path().join("a.bundle"));

        std::os::unix::fs::symlink(dir.path().join("a.bundle"), dir.path().join("l.bundle"))
            .expect("symlink");
        assert!(matches!(
            read_bundle_file(dir.path(), OsStr::new("l.bundle")),
            Err(WatchError::Symlink { .. })
        ));
        nix::unistd::mkfifo(
            &dir.path().join("f.bundle"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        // O_NONBLOCK: a FIFO with no writer does not hang the daemon.
        assert!(matches!(
            read_bundle_file(dir.path(), OsStr::new("f.bundle")),
            Err(WatchError::NotAFile { .. })
        ));
        std::fs::create_dir(dir.path().join("d.bundle")).expect("mkdir");
        assert!(matches!(
            read_bundle_file(dir.path(), OsStr::new("d.bundle")),
            Err(WatchError::NotAFile { .. })
        ));
        assert!(read_bundle_file(dir.path(), OsStr::new("gone.bundle"))
            .expect("absent is fine")
            .is_none());
    }

    #[test]
    fn an_oversized_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("big.bundle");
        let file = File::create(&path).expect("create");
        let size = u64::try_from(MAX_BUNDLE_SIZE).expect("fits") + 1;
        file.set_len(size).expect("sparse file");
        match read_bundle_file(dir.path(), OsStr::new("big.bundle")) {
            Err(WatchError::TooLarge { size: got, .. }) => assert_eq!(got, size),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_lists_bundles_only_sorted() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["b.bundle", "a.bundle", ".c.bundle.part", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        assert_eq!(scan(dir.path()).expect("scan"), ["a.bundle", "b.bundle"]);
    }

    #[test]
    fn inotify_reports_closed_and_moved_in_bundles_and_a_removed_dir() {
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("watch");
        prepare_dir(&dir, &crate::ownership::default_owners()).expect("prepare");
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let watcher = Watcher::new(&dir).expect("watch");
        assert_eq!(watcher.read_events().expect("read"), WatchEvents::default());

        std::fs::write(dir.join("a.bundle"), b"x").expect("write");
        std::fs::write(dir.join(".b.bundle.part"), b"x").expect("write");
        std::fs::rename(dir.join(".b.bundle.part"), dir.join("b.bundle")).expect("rename");
        let events = watcher.read_events().expect("read");
        assert_eq!(events.names, ["a.bundle", "b.bundle"]);
        assert_eq!(events.ignored, [".b.bundle.part"]);
        assert!(!events.overflow);

        std::fs::remove_file(dir.join("a.bundle")).expect("rm");
        std::fs::remove_file(dir.join("b.bundle")).expect("rm");
        std::fs::remove_dir(&dir).expect("rmdir");
        assert!(matches!(
            watcher.read_events(),
            Err(WatchError::Gone { .. })
        ));
    }

    #[test]
    fn not_applied_is_every_bundle_file_whose_contents_were_not_applied() {
        use sha2::{Digest, Sha256};
        let tmp = tempfile::tempdir().expect("tmp");
        std::fs::write(tmp.path().join("new.bundle"), b"new bytes").expect("write");
        std::fs::write(tmp.path().join("old.bundle"), b"old bytes").expect("write");
        std::fs::write(tmp.path().join(".partial.bundle"), b"x").expect("write");
        std::fs::write(tmp.path().join("notes.txt"), b"x").expect("write");
        let old: String = Sha256::digest(b"old bytes")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let applied = [old.as_str()].into_iter().collect();
        assert_eq!(not_applied(tmp.path(), &applied), ["new.bundle"]);
        assert!(not_applied(&tmp.path().join("missing"), &applied).is_empty());
    }
}
