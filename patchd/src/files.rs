//! patchd's files: the one capped read and the one atomic write.
//!
//! Every file patchd reads that someone else may have written (bundles,
//! the config, its state, kernel files, repository answers, modules) is
//! read through [`read_capped`]: at most the cap and one byte more, so an
//! oversized file is told apart without being read whole. Local files are
//! opened by [`open_regular`] (or [`read_regular`]): with `O_NONBLOCK`, so
//! a FIFO or a device put where a file belongs cannot hold patchd (and the
//! state lock) in `open(2)`, then refused unless `fstat` says it is a
//! regular file. Every file it
//! writes for others to read whole (its state, bundles fetched into the
//! watched directory, the metrics textfile) is written by
//! [`write_atomically`]: a temporary file created afresh (never through a
//! symbolic link) with the final mode, fsync, rename over the final name,
//! fsync of the directory. A reader sees the old file or the new one, never
//! half of one; a crash leaves at most the temporary file, which the next
//! write replaces.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Reads `reader` up to `cap` bytes: `None` when it holds more (only
/// `cap + 1` bytes are read to tell).
pub(crate) fn read_capped(reader: impl Read, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > cap {
        return Ok(None);
    }
    Ok(Some(bytes))
}

/// Whether [`open_regular`] follows a symbolic link as the last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Refuse it (ELOOP): a check made on the path and the open see the
    /// same file. For everything in the state directory and the config.
    Refuse,
    /// Follow it: paths the operator names on the command line.
    Follow,
}

/// The error of a file that is not a regular one.
pub(crate) fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, device, socket or directory): patchd reads only regular files; put the file itself there",
    )
}

/// The error of a symbolic link where patchd follows none.
pub(crate) fn symlink_refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "a symbolic link: patchd does not follow links here; put the file itself there",
    )
}

/// Opens `path` for reading without blocking (a FIFO opened for reading
/// waits for a writer; with `O_NONBLOCK` it returns at once) and refuses
/// anything but a regular file before a byte is read. For a regular file
/// `O_NONBLOCK` changes nothing, so the flag stays.
pub fn open_regular(path: &Path, links: Links) -> io::Result<File> {
    let mut flags = nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(file) => file,
        Err(error) if links == Links::Refuse && error.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(symlink_refused())
        }
        Err(error) => return Err(error),
    };
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// [`open_regular`] and [`read_capped`]: `None` when the file holds more
/// than `cap` bytes.
pub fn read_regular(path: &Path, cap: u64, links: Links) -> io::Result<Option<Vec<u8>>> {
    read_capped(open_regular(path, links)?, cap)
}

/// [`open_regular`] with [`Links::Refuse`]: the state directory's files
/// and the config.
pub(crate) fn open_no_follow(path: &Path) -> io::Result<File> {
    open_regular(path, Links::Refuse)
}

/// A write that failed: the step, the file, the cause.
#[derive(Debug)]
pub(crate) struct WriteFailed {
    /// `create`, `write`, `fsync`, `rename into place`, `remove`.
    pub what: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

/// Writes `dir/name` atomically through `dir/temp` (a name the readers of
/// `dir` ignore), with `mode` whatever the umask.
pub(crate) fn write_atomically(
    dir: &Path,
    name: &str,
    temp: &str,
    mode: u32,
    bytes: &[u8],
) -> Result<(), WriteFailed> {
    let temp = dir.join(temp);
    let path = dir.join(name);
    let failed = |what, path: &Path| {
        let path = path.to_owned();
        move |source| WriteFailed { what, path, source }
    };
    // A temporary file left by a crash is ours to replace.
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed("remove", &temp)(error)),
    }
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&temp)
            .map_err(failed("create", &temp))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(failed("create", &temp))?;
        file.write_all(bytes).map_err(failed("write", &temp))?;
        file.sync_all().map_err(failed("fsync", &temp))?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(failed("rename into place", &path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed("fsync", dir))
    })();
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `read` on a thread; fails if it has not returned after a
    /// generous while (an open blocked on a FIFO never returns).
    pub(crate) fn without_blocking<T: Send + 'static>(
        read: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(read());
        });
        receiver
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the read blocked on a FIFO instead of refusing it")
    }

    /// Makes a FIFO at `path`.
    pub(crate) fn mkfifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }

    #[test]
    fn fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        for links in [Links::Refuse, Links::Follow] {
            let path = fifo.clone();
            let error = without_blocking(move || read_regular(&path, 10, links))
                .expect_err("a FIFO is refused");
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
        let error = read_regular(dir.path(), 10, Links::Follow).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        std::fs::write(dir.path().join("f"), b"abc").expect("write");
        assert_eq!(
            read_regular(&dir.path().join("f"), 3, Links::Refuse).expect("read"),
            Some(b"abc".to_vec())
        );
        assert_eq!(
            read_regular(&dir.path().join("f"), 2, Links::Refuse).expect("read"),
            None
        );
    }

    #[test]
    fn capped_reads_tell_oversized_apart() {
        assert_eq!(
            read_capped(&b"abc"[..], 3).expect("read"),
            Some(b"abc".to_vec())
        );
        assert_eq!(read_capped(&b"abcd"[..], 3).expect("read"), None);
        assert_eq!(read_capped(&b""[..], 0).expect("read"), Some(Vec::new()));
    }

    #[test]
    fn atomic_writes_replace_leftovers_and_never_follow_links() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(".f.tmp"), b"crash leftover").expect("leftover");
        write_atomically(dir.path(), "f", ".f.tmp", 0o640, b"new").expect("write");
        assert_eq!(std::fs::read(dir.path().join("f")).expect("read"), b"new");
        let mode = std::fs::metadata(dir.path().join("f"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        assert!(!dir.path().join(".f.tmp").exists());
        // A link at the final name is replaced by rename, its target untouched.
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").expect("target");
        std::os::unix::fs::symlink(&target, dir.path().join("g")).expect("link");
        write_atomically(dir.path(), "g", ".g.tmp", 0o600, b"mine").expect("write");
        assert_eq!(std::fs::read(&target).expect("read"), b"keep");
        assert_eq!(std::fs::read(dir.path().join("g")).expect("read"), b"mine");
        assert!(open_no_follow(&dir.path().join("missing")).is_err());
        std::os::unix::fs::symlink(&target, dir.path().join("h")).expect("link");
        let error = open_no_follow(&dir.path().join("h")).expect_err("a link is refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
    }
}
