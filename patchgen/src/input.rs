//! The files a user names on patchgen's command line (fixes, a vmlinux,
//! objects to compare): opened with `O_NONBLOCK` so a FIFO or a device
//! given by mistake cannot hang the command in `open(2)`, and refused
//! unless `fstat` says it is a regular file, before a byte is read.
//! Bundles and keys go through the bundle crate, which does the same.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` for reading: a regular file only, never blocking in the
/// open. For a regular file `O_NONBLOCK` changes nothing, so it stays.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device, socket or directory): give the file itself",
        ));
    }
    Ok(file)
}

/// Reads a text file through [`open_regular`].
pub fn read_text(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    open_regular(path)?.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fix.patch");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(read_text(&fifo).map(|_| ()));
        });
        let error = receiver
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the read blocked on a FIFO")
            .expect_err("refused");
        assert!(error.to_string().contains("not a regular file"), "{error}");
        let error = read_text(dir.path()).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
