//! Bundle files: read into a size-capped buffer (the bytes then parsed and
//! verified are the bytes read, never a mapping that can change), and
//! written atomically.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::layout::MAX_BUNDLE_SIZE;

/// Why a bundle file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("cannot read bundle {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not a regular file.
    #[error("{path} is not a regular file: give the path of a bundle file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Larger than [`MAX_BUNDLE_SIZE`]; refused before reading.
    #[error("{path} is {size} bytes, more than the limit of {MAX_BUNDLE_SIZE} for a bundle: not a suture bundle")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least; it may still be growing).
        size: u64,
    },
    /// Writing failed (nothing is left at the path if it did not exist).
    #[error("cannot write bundle {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Reads a bundle file, refusing it before reading when it is larger than
/// [`MAX_BUNDLE_SIZE`], and never reading more than that if it grows.
pub fn read_file(path: &Path) -> Result<Vec<u8>, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_owned(),
        source,
    };
    let (file, metadata) = open_nonblocking(path).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(FileError::NotAFile {
            path: path.to_owned(),
        });
    }
    let too_large = |size| FileError::TooLarge {
        path: path.to_owned(),
        size,
    };
    let cap = u64::try_from(MAX_BUNDLE_SIZE).unwrap_or(u64::MAX);
    if metadata.len() > cap {
        return Err(too_large(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > MAX_BUNDLE_SIZE {
        return Err(too_large(u64::try_from(bytes.len()).unwrap_or(u64::MAX)));
    }
    Ok(bytes)
}

/// Opens `path` for reading with `O_NONBLOCK` and returns its metadata:
/// the open of a FIFO or a device returns at once instead of waiting for a
/// writer, and the caller refuses anything that is not a regular file
/// before it reads a byte. A regular file reads the same with the flag.
pub(crate) fn open_nonblocking(path: &Path) -> std::io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let metadata = file.metadata()?;
    Ok((file, metadata))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over `path`. Readers see the old file or the
/// new one, never part of one.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| write_error(std::io::ErrorKind::InvalidInput.into()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp = dir.join(temp_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename is durable once the directory is synced; a directory
        // that cannot be opened for that changes nothing about the result.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(write_error(source));
    }
    Ok(())
}
