//! A FIFO (or any file that is not regular) where a bundle or a key is
//! expected is refused at once: opening a FIFO for reading waits for a
//! writer, and before `O_NONBLOCK` `patchd verify` hung there for ever.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use suture_bundle::{read_file, read_signing_key, read_verifying_key, FileError, KeyError};

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
    path
}

/// Runs `read` on a thread and fails the test if it has not returned after
/// a generous while (a blocked open never returns).
fn without_blocking<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(read());
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the read blocked on a FIFO instead of refusing it")
}

#[test]
fn a_fifo_bundle_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fifo(dir.path(), "fix.bundle");
    let result = without_blocking(move || read_file(&path));
    assert!(
        matches!(result, Err(FileError::NotAFile { .. })),
        "{result:?}"
    );
}

#[test]
fn a_fifo_key_is_refused_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = fifo(dir.path(), "k.pub");
    let secret = fifo(dir.path(), "k.key");
    let result = without_blocking(move || read_verifying_key(&public));
    assert!(
        matches!(result, Err(KeyError::NotAKeyFile { .. })),
        "{result:?}"
    );
    let result = without_blocking(move || read_signing_key(&secret).map(|_| ()));
    assert!(
        matches!(result, Err(KeyError::NotAKeyFile { .. })),
        "{result:?}"
    );
}
