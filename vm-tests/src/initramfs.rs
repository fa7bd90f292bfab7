//! An initramfs in the kernel's newc cpio format, built in memory.
//!
//! Parent directories are added automatically; entries are written sorted so
//! the same inputs give the same archive.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{io_err, run_command, HarnessError, Result};

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDev { major: u32, minor: u32 },
}

/// The archive being assembled: guest path -> node.
#[derive(Debug, Default)]
pub struct Initramfs {
    nodes: BTreeMap<String, Node>,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn add_parents(&mut self, guest: &str) {
        let mut cur = String::new();
        let parts: Vec<&str> = guest.split('/').filter(|p| !p.is_empty()).collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            cur.push('/');
            cur.push_str(part);
            self.nodes.entry(cur.clone()).or_insert(Node::Dir);
        }
    }

    /// Adds a directory.
    pub fn dir(&mut self, guest: &str) {
        self.add_parents(guest);
        self.nodes.insert(guest.to_string(), Node::Dir);
    }

    /// Adds a file with the given contents and permission bits.
    pub fn bytes(&mut self, guest: &str, mode: u32, data: Vec<u8>) {
        self.add_parents(guest);
        self.nodes
            .insert(guest.to_string(), Node::File { mode, data });
    }

    /// Adds a host file (following links) at `guest`.
    pub fn file(&mut self, guest: &str, host: &Path, mode: u32) -> Result<()> {
        let data = std::fs::read(host).map_err(io_err("cannot read", host))?;
        self.bytes(guest, mode, data);
        Ok(())
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, guest: &str, target: &str) {
        self.add_parents(guest);
        self.nodes.insert(
            guest.to_string(),
            Node::Symlink {
                target: target.to_string(),
            },
        );
    }

    /// Adds a character device node (the kernel needs `/dev/console` before
    /// `/init` runs).
    pub fn char_dev(&mut self, guest: &str, major: u32, minor: u32) {
        self.add_parents(guest);
        self.nodes
            .insert(guest.to_string(), Node::CharDev { major, minor });
    }

    /// Adds a dynamically linked host executable and the shared libraries
    /// `ldd` lists for it, at their host paths.
    pub fn executable_with_libs(&mut self, guest: &str, host: &Path) -> Result<()> {
        self.file(guest, host, 0o755)?;
        let out = run_command(std::process::Command::new("ldd").arg(host))?;
        for line in out.lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path = line
                .split("=>")
                .last()
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|p| p.starts_with('/'));
            if let Some(lib) = path {
                self.file(lib, Path::new(lib), 0o755)?;
            }
        }
        Ok(())
    }

    /// Writes the archive to `path`.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        let file = std::fs::File::create(path).map_err(io_err("cannot create", path))?;
        let mut w = std::io::BufWriter::new(file);
        let werr = |source| HarnessError::Io {
            what: "cannot write",
            path: path.to_path_buf(),
            source,
        };
        for (ino, (name, node)) in (1u32..).zip(&self.nodes) {
            let rel = name.trim_start_matches('/');
            let builder = cpio::newc::Builder::new(rel).ino(ino).nlink(1);
            match node {
                Node::Dir => {
                    let e = builder.mode(0o040_755).nlink(2).write(&mut w, 0);
                    e.finish().map_err(werr)?;
                }
                Node::File { mode, data } => {
                    let len = u32::try_from(data.len()).map_err(|_| HarnessError::Io {
                        what: "file too large for an initramfs entry",
                        path: PathBuf::from(name),
                        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
                    })?;
                    let mut e = builder.mode(0o100_000 | mode).write(&mut w, len);
                    e.write_all(data).map_err(werr)?;
                    e.finish().map_err(werr)?;
                }
                Node::CharDev { major, minor } => {
                    let e = builder
                        .mode(0o020_600)
                        .rdev_major(*major)
                        .rdev_minor(*minor)
                        .write(&mut w, 0);
                    e.finish().map_err(werr)?;
                }
                Node::Symlink { target } => {
                    let len = u32::try_from(target.len()).unwrap_or(0);
                    let mut e = builder.mode(0o120_777).write(&mut w, len);
                    e.write_all(target.as_bytes()).map_err(werr)?;
                    e.finish().map_err(werr)?;
                }
            }
        }
        let mut w = cpio::newc::trailer(w).map_err(werr)?;
        w.flush().map_err(werr)?;
        Ok(path.to_path_buf())
    }
}
