//! What kbuild builds for the target, and what each object's compilation
//! reads: asked of kbuild and the compiler themselves, never guessed from
//! the makefiles.
//!
//! - **Objects** (`record`): a dry run of the kernel's own make
//!   (`make -n -k vmlinux modules` in the prepared tree, about 15 s, with
//!   one harmless define added to every command so that objects already
//!   built in the tree are listed too) lists every compile command of the
//!   target's configuration. An object is part
//!   of the build exactly when kbuild would compile it, into vmlinux or a
//!   module (`-DMODULE`).
//! - **Dependencies** (`deps`): each listed compile command run with `-M
//!   -MG` instead of `-c -o`: the preprocessor's own list of every file the
//!   object's compilation reads, headers (macros included) and `#include`d
//!   `.c` files alike (`kernel/sched/build_policy.c` reads `rt.c`). About
//!   50 ms per object: some 6 minutes for the 13,700 objects of Debian's
//!   6.1 amd64 configuration on 2 CPUs, once per target.
//!
//! Both are cached in the tree (`.suture-kbuild/`), keyed by the target's
//! build id and `.config`, written to a private name and renamed, under a
//! lock so that parallel builds compute them once. Reading the tree takes
//! the tree's shared lock (see `compile::TreeLock`): no build regenerates a
//! header while the record is made.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use super::compile::TreeLock;
use super::{BuildError, KernelTarget};

/// Version of the files' format; a record of another version is remade.
const FORMAT: &str = "suture-kbuild 2";

/// Added to every compile command of the dry run (and taken out again):
/// kbuild lists only the commands it would run, and it would not rerun an
/// object already built in the tree with the same command. A changed
/// command makes it list them all.
const DRY_RUN_MARK: &str = "-DSUTURE_KBUILD_DRY_RUN";

/// One object kbuild compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The object as kbuild names it, relative to the tree: what `make`
    /// takes as a goal and what its `.cmd` file is named after
    /// (`arch/x86/kvm/../../../virt/kvm/kvm_main.o` for KVM's shared code).
    pub object: PathBuf,
    /// Its source as the compile command names it.
    pub source: PathBuf,
    /// Part of a module (`-DMODULE`) rather than vmlinux.
    pub module: bool,
}

impl Built {
    /// The source, with `.` and `..` resolved: the path a fix names.
    pub fn source_path(&self) -> PathBuf {
        normalize(&self.source)
    }
}

/// Every object kbuild compiles for the target.
#[derive(Debug)]
pub struct Record {
    dir: PathBuf,
    key: String,
    /// In the order kbuild lists them, each once.
    pub objects: Vec<Built>,
    /// Objects by their normalized source.
    by_source: HashMap<PathBuf, Vec<usize>>,
}

/// Which objects read which files.
#[derive(Debug)]
pub struct Deps {
    /// Every file read, normalized, by id.
    files: Vec<PathBuf>,
    /// For each object of the record (same order), the ids of the files
    /// its compilation reads; `None` when the preprocessor could not tell
    /// (a source that needs files only a full build generates).
    reads: Vec<Option<Vec<u32>>>,
}

impl Record {
    /// The target's record, made on first need (with `progress`).
    pub fn load(target: &KernelTarget, progress: &mut dyn FnMut(&str)) -> Result<Self, BuildError> {
        let dir = target.source.join(".suture-kbuild");
        let key = record_key(target)?;
        let path = dir.join("objects");
        if let Some(record) = Self::read(&dir, &key)? {
            return Ok(record);
        }
        let _lock = CacheLock::take(&dir)?;
        // Another build may have made it while this one waited.
        if let Some(record) = Self::read(&dir, &key)? {
            return Ok(record);
        }
        progress("listing what kbuild builds for the target (make -n, once per target)");
        let objects = dry_run(target)?;
        let mut text = format!("{FORMAT}\n{key}\n");
        for b in &objects {
            text.push_str(&format!(
                "{}\t{}\t{}\n",
                if b.module { 'm' } else { 'y' },
                b.object.display(),
                b.source.display()
            ));
        }
        write_atomically(&path, text.as_bytes())?;
        Ok(Self::new(dir, key, objects))
    }

    fn new(dir: PathBuf, key: String, objects: Vec<Built>) -> Self {
        let mut by_source: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, b) in objects.iter().enumerate() {
            by_source.entry(b.source_path()).or_default().push(i);
        }
        Self {
            dir,
            key,
            objects,
            by_source,
        }
    }

    /// The record in `dir` if it is there and made for `key`.
    fn read(dir: &Path, key: &str) -> Result<Option<Self>, BuildError> {
        let path = dir.join("objects");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(BuildError::Io {
                    what: "cannot read the kbuild record",
                    path,
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
                    path,
                    why: format!("malformed line '{line}'"),
                });
            };
            objects.push(Built {
                object: PathBuf::from(object),
                source: PathBuf::from(source),
                module: kind == "m",
            });
        }
        Ok(Some(Self::new(dir.to_path_buf(), key.to_string(), objects)))
    }

    /// The objects compiled from `source` itself (a path as a fix names
    /// it): one, or several when a file is built twice (into vmlinux and a
    /// module, or into two modules).
    pub fn compiled_from(&self, source: &Path) -> Vec<&Built> {
        self.by_source
            .get(&normalize(source))
            .map(|v| v.iter().filter_map(|&i| self.objects.get(i)).collect())
            .unwrap_or_default()
    }

    /// The dependency record if it has been made (see [`Self::deps`]).
    pub fn deps_if_made(&self) -> Result<Option<Deps>, BuildError> {
        Deps::read(&self.dir.join("deps"), &self.key, self.objects.len())
    }

    /// The objects (indices) whose sources `#include` the C file `file`
    /// (`fs/compat_binfmt_elf.c` includes `binfmt_elf.c`), found by
    /// reading every built source's `#include` lines for its name: seconds,
    /// where the dependency record takes minutes to make. A superset of
    /// the exact answer (a same-named file elsewhere, an include under a
    /// false condition), which costs at most an object compiled for
    /// nothing, never a missed one.
    pub fn includers_of(&self, target: &KernelTarget, file: &Path) -> Vec<usize> {
        let file = normalize(file);
        let Some(name) = file.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for (i, b) in self.objects.iter().enumerate() {
            let source = b.source_path();
            if source == file {
                continue;
            }
            let Ok(text) = std::fs::read(target.source.join(&source)) else {
                continue;
            };
            let text = String::from_utf8_lossy(&text);
            if !text.contains(name.as_str()) {
                continue;
            }
            let includes = text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with('#') && l.contains("include") && l.contains(name.as_str())
            });
            if includes {
                found.push(i);
            }
        }
        found
    }

    /// Which files each object reads, computed on first need (minutes,
    /// once per target, with `progress`).
    pub fn deps(
        &self,
        target: &KernelTarget,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Deps, BuildError> {
        let path = self.dir.join("deps");
        if let Some(deps) = Deps::read(&path, &self.key, self.objects.len())? {
            return Ok(deps);
        }
        let _lock = CacheLock::take(&self.dir)?;
        if let Some(deps) = Deps::read(&path, &self.key, self.objects.len())? {
            return Ok(deps);
        }
        let deps = compute_deps(target, &self.objects, progress)?;
        deps.write(&path, &self.key)?;
        Ok(deps)
    }
}

impl Deps {
    /// The objects (indices into the record) whose compilation reads
    /// `file` (a path as a fix names it).
    pub fn objects_reading(&self, file: &Path) -> Vec<usize> {
        let file = normalize(file);
        let Some(id) = self.files.iter().position(|f| *f == file) else {
            return Vec::new();
        };
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        self.reads
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.binary_search(&id).is_ok()))
            .map(|(i, _)| i)
            .collect()
    }

    /// The objects (indices into the record) whose dependencies are
    /// unknown: the preprocessor failed on them in the prepared tree (they
    /// need files only a full build generates, and patchgen cannot compile
    /// them either).
    pub fn unknown(&self) -> Vec<usize> {
        self.reads
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| i)
            .collect()
    }

    fn read(path: &Path, key: &str, objects: usize) -> Result<Option<Self>, BuildError> {
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

    fn write(&self, path: &Path, key: &str) -> Result<(), BuildError> {
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

/// What makes a record stale: another kernel build or configuration.
fn record_key(target: &KernelTarget) -> Result<String, BuildError> {
    let config = target.source.join(".config");
    let bytes = std::fs::read(&config).map_err(|source| BuildError::Io {
        what: "cannot read the target's configuration",
        path: config,
        source,
    })?;
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("build-id {} config {hex}", target.build_id))
}

/// The objects kbuild compiles for `vmlinux modules`.
fn dry_run(target: &KernelTarget) -> Result<Vec<Built>, BuildError> {
    Ok(compile_commands(&dry_run_output(target)?, &target.cc))
}

/// What kbuild's dry run of `vmlinux modules` prints: every command it
/// would run (the tree's shared lock held).
fn dry_run_output(target: &KernelTarget) -> Result<String, BuildError> {
    let _tree = TreeLock::take(target, false)?;
    let out = Command::new("make")
        .args(["-n", "-k", "-C"])
        .arg(&target.source)
        .arg(format!("CC={}", target.cc))
        .arg(format!("KCFLAGS={DRY_RUN_MARK}"))
        .arg(format!("KAFLAGS={DRY_RUN_MARK}"))
        .args(["vmlinux", "modules"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Io {
            what: "cannot run make in",
            path: target.source.clone(),
            source,
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // In a dry run nothing is built, so the final link's inputs are
    // missing: that error (and only that) is expected.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("***") && !l.contains("vmlinux"))
        .collect();
    if compile_commands(&stdout, &target.cc).is_empty() || !unexpected.is_empty() {
        return Err(BuildError::KbuildDryRun {
            tree: target.source.clone(),
            output: if unexpected.is_empty() {
                stderr.into_owned()
            } else {
                unexpected.join("\n")
            },
        });
    }
    Ok(stdout)
}

/// The objects of the compile commands (`CC ... -c -o OBJ SRC`) in a dry
/// run's output, each once, in order.
pub fn compile_commands(output: &str, cc: &str) -> Vec<Built> {
    let mut seen = BTreeSet::new();
    let mut objects = Vec::new();
    for command in output.lines().flat_map(|l| l.split(';')) {
        let words: Vec<&str> = command.split_ascii_whitespace().collect();
        if words.first() != Some(&cc) || !words.contains(&"-D__KERNEL__") {
            continue;
        }
        let [.., c, o, object, source] = words.as_slice() else {
            continue;
        };
        if *c != "-c" || *o != "-o" || !object.ends_with(".o") {
            continue;
        }
        if seen.insert((*object).to_string()) {
            objects.push(Built {
                object: PathBuf::from(object),
                source: PathBuf::from(source),
                module: words.contains(&"-DMODULE"),
            });
        }
    }
    objects
}

/// Runs each object's compile command with `-M -MG` (in parallel, one
/// compiler per CPU) and collects the files it reads.
fn compute_deps(
    target: &KernelTarget,
    objects: &[Built],
    progress: &mut dyn FnMut(&str),
) -> Result<Deps, BuildError> {
    let _tree = TreeLock::take(target, false)?;
    let commands = commands_of(target, objects)?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    progress(&format!(
        "finding which files each of the target's {} objects reads (once per target, {workers} at a time)",
        objects.len()
    ));
    let next = AtomicUsize::new(0);
    // Files are interned as each object's list comes in: the lists hold
    // millions of paths, a few thousand of them distinct.
    let table: Mutex<Table> = Mutex::new(Table {
        ids: HashMap::new(),
        files: Vec::new(),
        reads: vec![None; objects.len()],
    });
    let failure: Mutex<Option<BuildError>> = Mutex::new(None);
    let done = AtomicUsize::new(0);
    let (tick, ticks) = std::sync::mpsc::channel::<usize>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tick = tick.clone();
            let (next, table, failure, done, commands) =
                (&next, &table, &failure, &done, &commands);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((object, command)) = commands.get(i) else {
                    return;
                };
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                match files_read(target, object, command) {
                    Ok(files) => {
                        if let Ok(mut t) = table.lock() {
                            t.put(i, files);
                        }
                        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                        let _ = tick.send(n);
                    }
                    Err(e) => {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
        drop(tick);
        let mut shown = 0;
        for n in ticks {
            if n >= shown + 1000 {
                shown = n;
                progress(&format!("  {n} of {} objects", objects.len()));
            }
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let Table {
        files, reads: all, ..
    } = table
        .into_inner()
        .map_err(|_| BuildError::BadKbuildRecord {
            path: target.source.join(".suture-kbuild"),
            why: "a dependency worker failed".to_string(),
        })?;
    let mut reads = Vec::with_capacity(all.len());
    for (i, r) in all.into_iter().enumerate() {
        let Some(read) = r else {
            return Err(BuildError::BadKbuildRecord {
                path: target.source.join(".suture-kbuild"),
                why: format!("no dependencies found for object {i}"),
            });
        };
        reads.push(read);
    }
    let deps = Deps { files, reads };
    let unknown = deps.unknown();
    if !unknown.is_empty() {
        progress(&format!(
            "what {} object(s) read is unknown: their sources, or files they include, are generated by a full build: {}",
            unknown.len(),
            unknown
                .iter()
                .filter_map(|&i| objects.get(i))
                .map(|b| b.object.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(deps)
}

/// The dependencies as they come in: files by id, and each object's.
struct Table {
    ids: HashMap<PathBuf, u32>,
    files: Vec<PathBuf>,
    /// Per object: not yet known, or what `files_read` found.
    reads: Vec<Option<Option<Vec<u32>>>>,
}

impl Table {
    fn put(&mut self, object: usize, read: Option<Vec<PathBuf>>) {
        let read = read.map(|files| {
            let mut r: Vec<u32> = files
                .into_iter()
                .map(|f| match self.ids.get(&f) {
                    Some(&id) => id,
                    None => {
                        let id = u32::try_from(self.files.len()).unwrap_or(u32::MAX);
                        self.ids.insert(f.clone(), id);
                        self.files.push(f);
                        id
                    }
                })
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        });
        if let Some(slot) = self.reads.get_mut(object) {
            *slot = Some(read);
        }
    }
}

/// The compile command of each object, from the dry run's output again
/// (kept out of the record: 3 KB each).
fn commands_of(
    target: &KernelTarget,
    objects: &[Built],
) -> Result<Vec<(PathBuf, String)>, BuildError> {
    let stdout = dry_run_output(target)?;
    let mut by_object: HashMap<&str, &str> = HashMap::new();
    for command in stdout.lines().flat_map(|l| l.split(';')) {
        let command = command.trim();
        if !command.starts_with(&format!("{} ", target.cc)) {
            continue;
        }
        let words: Vec<&str> = command.split_ascii_whitespace().collect();
        if let [.., "-c", "-o", object, _] = words.as_slice() {
            by_object.entry(object).or_insert(command);
        }
    }
    objects
        .iter()
        .map(|b| {
            let key = b.object.to_string_lossy();
            by_object
                .get(key.as_ref())
                .map(|c| {
                    let command: Vec<&str> = c
                        .split_ascii_whitespace()
                        .filter(|w| *w != DRY_RUN_MARK)
                        .collect();
                    (b.object.clone(), command.join(" "))
                })
                .ok_or_else(|| BuildError::KbuildDryRun {
                    tree: target.source.clone(),
                    output: format!("a second dry run did not list {key}"),
                })
        })
        .collect()
}

/// The files compiling `object` with `command` reads, from the
/// preprocessor (`-M -MG`: missing generated headers are listed, not
/// errors).
fn files_read(
    target: &KernelTarget,
    object: &Path,
    command: &str,
) -> Result<Option<Vec<PathBuf>>, BuildError> {
    let words: Vec<&str> = command
        .split_ascii_whitespace()
        .filter(|w| !w.starts_with("-Wp,-MMD") && !w.starts_with("-Wp,-MD"))
        .collect();
    let Some((source, rest)) = words.split_last() else {
        return Ok(Some(Vec::new()));
    };
    let object_name = object.to_string_lossy();
    let Some(flags) = rest.strip_suffix(&["-c", "-o", object_name.as_ref()][..]) else {
        return Err(BuildError::UnexpectedCommand {
            object: object.to_path_buf(),
            command: command.to_string(),
        });
    };
    // A source the build generates (the vDSO images' C wrappers) is not
    // in a prepared tree: what it reads is unknown, and said so.
    if !target.source.join(source).exists() {
        return Ok(None);
    }
    // kbuild's commands are shell words: run them through sh as kbuild
    // does (quoted -D values).
    let line = format!("{} -M -MG {source}", flags.join(" "));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(&target.source)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| BuildError::Io {
            what: "cannot run sh in",
            path: target.source.clone(),
            source,
        })?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(make_rule_files(&String::from_utf8_lossy(&out.stdout))))
}

/// The prerequisites of a make rule printed by `-M`, normalized.
pub fn make_rule_files(rule: &str) -> Vec<PathBuf> {
    let joined = rule.replace("\\\n", " ");
    let Some((_, prerequisites)) = joined.split_once(':') else {
        return Vec::new();
    };
    prerequisites
        .split_ascii_whitespace()
        .filter(|w| *w != "\\")
        .map(|w| normalize(Path::new(w)))
        .collect()
}

/// `path` with `.` and `..` resolved lexically (kbuild's paths are
/// relative to the tree and name no symbolic links).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
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
struct CacheLock {
    _lock: Flock<File>,
}

impl CacheLock {
    fn take(dir: &Path) -> Result<Self, BuildError> {
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
    fn lists_kernel_compiles_once_and_tells_modules_apart() {
        let out = "set -e;  echo '  CC      net/ipv4/tcp.o';  gcc-12 -Wp,-MMD,net/ipv4/.tcp.o.d -nostdinc -D__KERNEL__ -O2 -c -o net/ipv4/tcp.o net/ipv4/tcp.c  ; ./tools/objtool/objtool --orc net/ipv4/tcp.o\n\
            gcc-12 -D__KERNEL__ -DMODULE -DKBUILD_MODNAME='\"kvm\"' -c -o arch/x86/kvm/../../../virt/kvm/kvm_main.o arch/x86/kvm/../../../virt/kvm/kvm_main.c\n\
            gcc -Wp,-MMD,scripts/mod/.modpost.o.d -O2 -c -o scripts/mod/modpost.o scripts/mod/modpost.c\n\
            gcc-12 -D__KERNEL__ -c -o net/ipv4/tcp.o net/ipv4/tcp.c\n\
            gcc-12 -D__KERNEL__ -E -o x.lds x.lds.S\n";
        let objects = compile_commands(out, "gcc-12");
        assert_eq!(
            objects,
            vec![
                Built {
                    object: "net/ipv4/tcp.o".into(),
                    source: "net/ipv4/tcp.c".into(),
                    module: false,
                },
                Built {
                    object: "arch/x86/kvm/../../../virt/kvm/kvm_main.o".into(),
                    source: "arch/x86/kvm/../../../virt/kvm/kvm_main.c".into(),
                    module: true,
                },
            ]
        );
        assert_eq!(
            objects[1].source_path(),
            PathBuf::from("virt/kvm/kvm_main.c")
        );
    }

    #[test]
    fn reads_the_preprocessors_rule() {
        let rule = "tcp.o: net/ipv4/tcp.c include/linux/compiler-version.h \\\n include/linux/kconfig.h ./include/generated/autoconf.h \\\n arch/x86/kvm/../../../virt/kvm/async_pf.h\n";
        assert_eq!(
            make_rule_files(rule),
            vec![
                PathBuf::from("net/ipv4/tcp.c"),
                "include/linux/compiler-version.h".into(),
                "include/linux/kconfig.h".into(),
                "include/generated/autoconf.h".into(),
                "virt/kvm/async_pf.h".into(),
            ]
        );
    }

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
