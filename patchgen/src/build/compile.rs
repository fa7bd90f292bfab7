//! Compiling one object of the target build, exactly as kbuild does, with
//! function and data sections added and the fix's copies of the sources read
//! first. The command comes from kbuild's own record of it (`.<obj>.cmd`),
//! so flags, defines and objtool's options are the target's.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::{BuildError, KernelTarget};

/// kbuild's recorded commands for one object.
#[derive(Debug, Clone)]
pub struct ObjectCommand {
    /// The object, relative to the tree (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The source it is built from, relative to the tree.
    pub source: PathBuf,
    /// The compiler invocation.
    pub compile: String,
    /// objtool's invocation, when kbuild runs it per object.
    pub objtool: Option<String>,
    /// Whether the object is part of a module (`-DMODULE`), and which.
    pub module: Option<String>,
}

/// A lock on the kernel cache's source tree, shared by parallel builds:
/// kbuild runs in the tree (to record an object's command) only under the
/// exclusive lock, and compiles that read the tree's generated headers hold
/// it shared, so one build never regenerates a header another is reading.
#[derive(Debug)]
pub struct TreeLock {
    _lock: Flock<File>,
}

impl TreeLock {
    /// Takes the lock, waiting for the holders of a conflicting one.
    pub fn take(target: &KernelTarget, exclusive: bool) -> Result<Self, BuildError> {
        let path = target.source.join(".suture-tree.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| BuildError::Io {
                what: "cannot open the kernel tree's lock",
                path: path.clone(),
                source: e,
            })?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let lock = Flock::lock(file, arg).map_err(|(_, errno)| BuildError::Io {
            what: "cannot lock the kernel tree",
            path,
            source: std::io::Error::from(errno),
        })?;
        Ok(Self { _lock: lock })
    }
}

/// Reads (creating it if needed, by building the object once in the tree)
/// kbuild's command for `object`.
pub fn object_command(
    target: &KernelTarget,
    object: &Path,
    source: &Path,
) -> Result<ObjectCommand, BuildError> {
    let dir = object.parent().unwrap_or(Path::new(""));
    let name = object
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cmd_file = target.source.join(dir).join(format!(".{name}.cmd"));
    // Another build may be recording it right now: look again under the lock.
    let _lock = if cmd_file.is_file() {
        None
    } else {
        Some(TreeLock::take(target, true)?)
    };
    if !cmd_file.is_file() {
        let out = target
            .command("make")
            .arg("-s")
            .arg("-C")
            .arg(&target.source)
            .arg(format!("CC={}", target.cc))
            .arg(object)
            .output()
            .map_err(|e| BuildError::Io {
                what: "cannot run make in",
                path: target.source.clone(),
                source: e,
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if stderr.contains("No rule to make target") {
                return Err(BuildError::OutsideBuild {
                    file: source.to_path_buf(),
                    release: target.release.clone(),
                });
            }
            return Err(BuildError::CompileFailed {
                object: object.to_path_buf(),
                which: "original",
                output: stderr,
            });
        }
    }
    let text = std::fs::read_to_string(&cmd_file).map_err(|e| BuildError::Io {
        what: "cannot read kbuild's command file",
        path: cmd_file.clone(),
        source: e,
    })?;
    // `savedcmd_` since 6.2, `cmd_` before.
    let key = format!("cmd_{} := ", object.display());
    let full = text
        .lines()
        .find_map(|l| l.strip_prefix("saved").unwrap_or(l).strip_prefix(&key))
        .ok_or_else(|| BuildError::OutsideBuild {
            file: source.to_path_buf(),
            release: target.release.clone(),
        })?;
    let mut parts = full.split(';').map(str::trim);
    let compile = parts.next().unwrap_or("").to_string();
    let objtool = parts
        .find(|p| p.contains("objtool/objtool"))
        .map(str::to_string);
    let tail = format!(" -c -o {} {}", object.display(), source.display());
    if !compile.ends_with(&tail) {
        return Err(BuildError::UnexpectedCommand {
            object: object.to_path_buf(),
            command: compile,
        });
    }
    let module = compile
        .contains(" -DMODULE ")
        .then(|| {
            compile
                .split("-DKBUILD_MODNAME=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .map(|s| s.trim_matches(|c| c == '\'' || c == '"').to_string())
        })
        .flatten();
    Ok(ObjectCommand {
        object: object.to_path_buf(),
        source: source.to_path_buf(),
        compile,
        objtool,
        module,
    })
}

/// Compiles `cmd`'s object from `src` (a pristine or a fixed copy) into
/// `out`. `overlay` is the fix's copy root: its include directories are
/// searched before the tree's, so fixed headers win.
pub fn compile(
    target: &KernelTarget,
    cmd: &ObjectCommand,
    src: &Path,
    out: &Path,
    overlay: Option<&Path>,
    which: &'static str,
) -> Result<(), BuildError> {
    let tail = format!(" -c -o {} {}", cmd.object.display(), cmd.source.display());
    let head = cmd.compile.strip_suffix(&tail).unwrap_or(&cmd.compile);
    // No dependency file: this is not kbuild's build.
    let head: String = head
        .split(' ')
        .filter(|w| !w.starts_with("-Wp,-MMD,"))
        .collect::<Vec<_>>()
        .join(" ");
    // The fix's copies of headers are found before the tree's: for every
    // include directory of the command that the overlay also has, its
    // overlay twin goes first, right after the compiler.
    let mut overlay_includes = String::new();
    if let Some(root) = overlay {
        for dir in head.split(' ').filter_map(|w| w.strip_prefix("-I")) {
            let over = root.join(dir.trim_start_matches("./"));
            if over.is_dir() {
                overlay_includes.push_str(&format!(" -I{}", over.display()));
            }
        }
    }
    let (cc, rest) = head.split_once(' ').unwrap_or((head.as_str(), ""));
    let src_dir = target
        .source
        .join(cmd.source.parent().unwrap_or(Path::new("")));
    // __FILE__ must read as kbuild makes it (relative to the tree) for both
    // versions, or every string holding it (WARN, fortify) would differ
    // from the running kernel's: the pristine source is compiled by its
    // relative path from the tree, as kbuild does, and the fix's copy with
    // its root mapped away.
    let (src_arg, file_map) = match (src.strip_prefix(&target.source), overlay) {
        (Ok(rel), _) => (rel.to_path_buf(), String::new()),
        (Err(_), Some(root)) => (
            src.to_path_buf(),
            format!(" -fmacro-prefix-map={}/=", root.display()),
        ),
        (Err(_), None) => (src.to_path_buf(), String::new()),
    };
    // Headers next to the source are found through -iquote (an absolute
    // path) when the fix's copy is compiled: map the tree away too, so that
    // __FILE__ in such a header reads "net/wireless/core.h" as in kbuild's
    // build, not the cache's absolute path.
    // The same for the DWARF's file names (a refused layout change names
    // the file as the tree does).
    let debug_map = match overlay {
        Some(root) => format!(" -fdebug-prefix-map={}/=", root.display()),
        None => String::new(),
    };
    let file_map = format!(
        "{file_map}{debug_map} -fmacro-prefix-map={}/=",
        target.source.display()
    );
    // kbuild must not rewrite the tree's generated files under this compile.
    let _lock = TreeLock::take(target, false)?;
    let line = format!(
        "{cc}{overlay_includes} {rest}{file_map} -ffunction-sections -fdata-sections -iquote {} -c -o {} {}",
        src_dir.display(),
        out.display(),
        src_arg.display()
    );
    run_shell(target, &line, &cmd.object, which)?;
    if let Some(tool) = &cmd.objtool {
        let tool = tool.replace(
            &format!(" {}", cmd.object.display()),
            &format!(" {}", out.display()),
        );
        run_shell(target, &tool, &cmd.object, which)?;
    }
    Ok(())
}

/// What the compiler could not find, from its error lines: identifiers
/// undeclared, functions declared implicitly, unknown types, members a
/// struct lacks. gcc quotes with ‘’ in a UTF-8 locale and '' otherwise.
pub fn missing_declarations(output: &str) -> Vec<String> {
    let unquote = |s: &str| -> Option<String> {
        let s = s.trim_start();
        let open = s.chars().next().filter(|c| matches!(c, '\'' | '‘' | '`'))?;
        let rest = &s[open.len_utf8()..];
        let end = rest.find(['\'', '’'])?;
        Some(rest[..end].to_string())
    };
    let mut out: Vec<String> = Vec::new();
    for line in output.lines() {
        let Some((_, msg)) = line.split_once("error: ") else {
            continue;
        };
        let found = if let Some(rest) = msg.strip_prefix("implicit declaration of function ") {
            unquote(rest).map(|f| format!("function {f}"))
        } else if let Some(rest) = msg.strip_prefix("unknown type name ") {
            unquote(rest).map(|t| format!("type {t}"))
        } else if msg.contains(" undeclared") {
            unquote(msg)
        } else if let Some((ty, member)) = msg.split_once(" has no member named ") {
            match (unquote(ty), unquote(member)) {
                (Some(ty), Some(member)) => Some(format!("member {member} of {ty}")),
                _ => None,
            }
        } else if let Some(rest) = msg.strip_prefix("invalid use of undefined type ") {
            unquote(rest).map(|t| format!("the definition of {t}"))
        } else {
            None
        };
        if let Some(f) = found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

fn run_shell(
    target: &KernelTarget,
    line: &str,
    object: &Path,
    which: &'static str,
) -> Result<(), BuildError> {
    tracing::debug!(command = line, "running");
    let out = target
        .command("sh")
        .arg("-c")
        .arg(line)
        .current_dir(&target.source)
        .output()
        .map_err(|e| BuildError::Io {
            what: "cannot run sh in",
            path: target.source.clone(),
            source: e,
        })?;
    if !out.status.success() {
        let output = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        // The original compiled first: a fixed source that does not is
        // most often a fix that needs other files too.
        let missing = missing_declarations(&output);
        if which == "fixed" && !missing.is_empty() {
            return Err(BuildError::FixIncomplete {
                object: object.to_path_buf(),
                missing,
                output,
            });
        }
        return Err(BuildError::CompileFailed {
            object: object.to_path_buf(),
            which,
            output,
        });
    }
    Ok(())
}

/// Where the build keeps an object's two versions.
pub fn object_paths(work: &Path, object: &Path) -> (PathBuf, PathBuf) {
    let flat = object.to_string_lossy().replace('/', "__");
    (
        work.join(format!("{flat}.orig.o")),
        work.join(format!("{flat}.fixed.o")),
    )
}

#[cfg(test)]
mod tests {
    use super::missing_declarations;

    #[test]
    fn names_what_the_compiler_could_not_find() {
        let out = "fs/x.c: In function ‘f’:\n\
            fs/x.c:10:9: error: ‘NEW_FLAG’ undeclared (first use in this function)\n\
            fs/x.c:11:9: error: implicit declaration of function ‘new_helper’ [-Werror=implicit-function-declaration]\n\
            fs/x.c:12:14: error: 'struct sock' has no member named 'sk_new'\n\
            fs/x.c:13:1: error: unknown type name ‘new_t’\n\
            fs/x.c:14:9: error: ‘NEW_FLAG’ undeclared (first use in this function)\n\
            fs/x.c:15:9: error: expected ‘;’ before ‘}’ token\n";
        assert_eq!(
            missing_declarations(out),
            [
                "NEW_FLAG",
                "function new_helper",
                "member sk_new of struct sock",
                "type new_t"
            ]
        );
        assert!(missing_declarations("fs/x.c:1: error: expected ‘;’").is_empty());
    }
}
