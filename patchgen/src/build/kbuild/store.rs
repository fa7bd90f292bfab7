//! The records on disk (`.suture-kbuild/` in the tree): their text format,
//! written to a private name and renamed, and the lock under which one
//! build makes them while others wait.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::deps::Deps;
use super::Built;
use crate::build::BuildError;

/// Version of the files' format; a record of another version is remade.
const FORMAT: &str = "suture-kbuild 2";

/// The objects recorded at `path` if the record is there and made for
/// `key`.
pub(super) fn read_objects(path: &Path, key: &str) -> Result<Option<Vec<Built>>, BuildError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BuildError::Io {
                what: "cannot read the kbuild record",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT) || lines.next() != Some(key) {
        return Ok(None);
    }
    let mut objects = Vec::new();
    for line in lines {
        let mut fields = line.split('\t');
        let (Some(kind), Some(object), Some(source), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(BuildError::BadKbuildRecord {
                path: path.to_path_buf(),
                why: format!("malformed line '{line}'"),
            });
        };
        objects.push(Built {
            object: PathBuf::from(object),
            source: PathBuf::from(source),
            module: kind == "m",
        });
    }
    Ok(Some(objects))
}

/// Records `objects` at `path` for `key`.
pub(super) fn write_objects(path: &Path, key: &str, objects: &[Built]) -> Result<(), BuildError> {
    let mut text = format!("{FORMAT}\n{key}\n");
    for b in objects {
        text.push_str(&format!(
            "{}\t{}\t{}\n",
            if b.module { 'm' } else { 'y' },
            b.object.display(),
            b.source.display()
        ));
    }
    write_atomically(path, text.as_bytes())
}

impl Deps {
    /// The dependency record at `path` if it is there and made for `key`;
    /// an error if it is damaged or not for `objects` objects.
    pub(super) fn read(path: &Path, key: &str, objects: usize) -> Result<Option<Self>, BuildError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BuildError::Io {
                    what: "cannot read the dependency record",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let bad = |why: String| BuildError::BadKbuildRecord {
            path: path.to_path_buf(),
            why,
        };
        let mut lines = text.lines();
        if lines.next() != Some(FORMAT) || lines.next() != Some(key) {
            return Ok(None);
        }
        let mut files = Vec::new();
        let mut reads = Vec::with_capacity(objects);
        for line in lines {
            if let Some(file) = line.strip_prefix("F ") {
                files.push(PathBuf::from(file));
            } else if line == "U" {
                reads.push(None);
            } else if let Some(ids) = line.strip_prefix("R") {
                let mut r = Vec::new();
                for id in ids.split_ascii_whitespace() {
                    let id: u32 = id.parse().map_err(|_| bad(format!("bad file id '{id}'")))?;
                    if id as usize >= files.len() {
                        return Err(bad(format!("file id {id} before its file")));
                    }
                    r.push(id);
                }
                r.sort_unstable();
                reads.push(Some(r));
            } else {
                return Err(bad(format!("malformed line '{line}'")));
            }
        }
        if reads.len() != objects {
            return Err(bad(format!(
                "{} objects' dependencies for {objects} objects",
                reads.len()
            )));
        }
        Ok(Some(Self { files, reads }))
    }

    /// Records the dependencies at `path` for `key`.
    pub(super) fn write(&self, path: &Path, key: &str) -> Result<(), BuildError> {
        let mut text = format!("{FORMAT}\n{key}\n");
        for f in &self.files {
            text.push_str(&format!("F {}\n", f.display()));
        }
        for r in &self.reads {
            let Some(r) = r else {
                text.push_str("U\n");
                continue;
            };
            text.push('R');
            for id in r {
                text.push_str(&format!(" {id}"));
            }
            text.push('\n');
        }
        write_atomically(path, text.as_bytes())
    }
}

/// Writes `bytes` to a private name beside `path` and renames it there.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    let io = |what, source| BuildError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory of", e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io("cannot write", e))?;
    tmp.write_all(bytes).map_err(|e| io("cannot write", e))?;
    // Readable like the rest of the kernel cache.
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .map_err(|e| io("cannot write", e))?;
    tmp.persist(path).map_err(|e| io("cannot write", e.error))?;
    Ok(())
}

/// The lock under which one build makes the record while others wait.
pub(super) struct CacheLock {
    _lock: Flock<File>,
}

impl CacheLock {
    /// Takes the lock of the records in `dir` (created if need be),
    /// waiting for the build that holds it.
    pub(super) fn take(dir: &Path) -> Result<Self, BuildError> {
        std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
            what: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| BuildError::Io {
                what: "cannot open",
                path: path.clone(),
                source,
            })?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| BuildError::Io {
                what: "cannot lock",
                path,
                source: std::io::Error::from(errno),
            })?;
        Ok(Self { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_round_trip_and_go_stale_with_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deps");
        let deps = Deps {
            files: vec!["a.c".into(), "include/x.h".into(), "b.c".into()],
            reads: vec![Some(vec![0, 1]), None, Some(vec![1, 2])],
        };
        deps.write(&path, "key 1").expect("write");
        let back = Deps::read(&path, "key 1", 3).expect("read").expect("fresh");
        assert_eq!(back.objects_reading(Path::new("include/x.h")), vec![0, 2]);
        assert_eq!(back.objects_reading(Path::new("./b.c")), vec![2]);
        assert!(back.objects_reading(Path::new("include/y.h")).is_empty());
        assert_eq!(back.unknown(), vec![1]);
        assert!(Deps::read(&path, "key 2", 3).expect("read").is_none());
        assert!(Deps::read(&path, "key 1", 4).is_err());
    }
}
