//! Builds the companion module and the test modules for a target kernel.
//!
//! Test patch modules, like the ones patchgen will emit, carry the ELF size
//! of each function they replace. The sizes come from real builds: kernel
//! functions from objects compiled in the target's prepared source tree (the
//! same compiler and config as Debian's image), test-target functions from
//! the built test-target modules. They reach the patch modules as `sizes.h`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};

pub use crate::fixes::{build_bundle, patchgen_build, test_key, FixSelection};
use crate::fixes::{build_fixes, busy_bundle};
use crate::{io_err, run_command, work_dir, workspace_root, HarnessError, Result, Target};

/// Kernel functions the test patch modules replace, with the object holding each.
const KERNEL_FUNCTIONS: &[(&str, &str)] = &[
    ("fs/proc/cmdline.o", "cmdline_proc_show"),
    ("fs/proc/version.o", "version_proc_show"),
];

/// Modules that hold functions to patch; built before the patch modules.
const TARGET_MODULES: &[&str] = &["suture_target", "suture_bench"];

/// Patch modules, built against the companion module's exports.
const PATCH_MODULES: &[&str] = &[
    "test_patch_cmdline",
    "test_patch_stack_a",
    "test_patch_stack_b",
    "test_patch_busy",
    "test_patch_park",
    "test_patch_bad",
    "test_patch_bench1",
    "test_patch_bench3",
    "test_patch_bench20",
    "klp_bench",
    "klp_cmdline",
];

/// The built `.ko` files of one target.
#[derive(Debug, Clone)]
pub struct BuiltModules {
    /// Module name -> path of the `.ko`.
    pub modules: BTreeMap<String, PathBuf>,
    /// Module name -> patchgen's link records (JSON), for modules built
    /// from a fix by `patchgen build`.
    pub records: BTreeMap<String, String>,
    /// Bundle file name -> path: for each fix `NAME.bundle`, signed with
    /// the test key, and two bundles patchd must refuse:
    /// `NAME.flipped.bundle` (one byte of the module flipped) and
    /// `NAME.otherbuild.bundle` (validly signed, for another build-id),
    /// `NAME.otherkey.bundle` (signed by a key the guest does not trust)
    /// and `NAME.truncated.bundle` (its first half).
    pub bundles: BTreeMap<String, PathBuf>,
    /// The public half of the test key, which the guest trusts.
    pub trusted_key: Option<PathBuf>,
}

/// Builds the companion module for `target` (kbuild against its headers,
/// `W=1` clean) under `target/vm-tests/build/<release>/kmod/` and returns
/// the path of `suture.ko`. Rebuilds only what changed.
pub fn build_companion(target: &Target) -> Result<PathBuf> {
    build_companion_in(target, &work_dir().join("build").join(&target.release))
}

/// Builds the companion module for `target` in `dir/kmod/` from the
/// sources built into patchgen (kmod/'s) and returns the path of
/// `suture.ko`. Rebuilds only what changed; concurrent builds in the same
/// `dir` wait for each other (a lock on `dir/kmod.lock`).
pub fn build_companion_in(target: &Target, dir: &Path) -> Result<PathBuf> {
    let kmod = dir.join("kmod");
    std::fs::create_dir_all(&kmod).map_err(io_err("cannot create", &kmod))?;
    let _lock = lock(&dir.join("kmod.lock"))?;
    write_companion_sources(&kmod)?;
    kbuild(target, &kmod, &[])?;
    Ok(kmod.join("suture.ko"))
}

/// Writes the companion's built-in sources into `kmod`, leaving files
/// whose contents are already right untouched (their mtimes tell kbuild
/// what to rebuild).
fn write_companion_sources(kmod: &Path) -> Result<()> {
    for (name, bytes) in patchgen::build::companion::SOURCES {
        let path = kmod.join(name);
        if std::fs::read(&path).ok().as_deref() == Some(*bytes) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
        }
        std::fs::write(&path, bytes).map_err(io_err("cannot write", &path))?;
    }
    Ok(())
}

/// An exclusive lock on `path` (created), held until the value is dropped.
pub fn lock(path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("cannot open the lock file", path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| {
        HarnessError::Io {
            what: "cannot lock",
            path: path.to_path_buf(),
            source: std::io::Error::from(errno),
        }
    })
}

/// Builds everything under `target/vm-tests/build/<release>/`: the
/// companion, the test modules and every fix.
pub fn build_modules(target: &Target) -> Result<BuiltModules> {
    build_modules_for(target, &FixSelection::All)
}

/// Builds the companion, the test modules and the `selection` of fixes
/// under `target/vm-tests/build/<release>/`.
pub fn build_modules_for(target: &Target, selection: &FixSelection) -> Result<BuiltModules> {
    let root = work_dir().join("build").join(&target.release);
    let src = workspace_root();
    let mut modules = BTreeMap::new();

    let kmod = build_companion(target)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.join("kmod"));
    modules.insert("suture".to_string(), kmod.join("suture.ko"));

    let targets = root.join("targets");
    let patches = root.join("patches");
    copy_tree(&src.join("vm-tests/modules"), &targets)?;
    copy_tree(&src.join("vm-tests/modules"), &patches)?;
    write_kbuild(&targets, TARGET_MODULES, &kmod)?;
    kbuild(target, &targets, &[])?;

    let mut sizes = kernel_function_sizes(target)?;
    for name in TARGET_MODULES {
        let ko = targets.join(format!("{name}.ko"));
        sizes.extend(all_function_sizes(&ko)?);
        modules.insert((*name).to_string(), ko);
    }
    let mut header =
        String::from("/* generated by vm-tests: ELF sizes of the functions the tests replace */\n");
    for (name, size) in &sizes {
        let _ = writeln!(header, "#define SIZE_{name} {size}");
    }
    std::fs::write(patches.join("sizes.h"), header)
        .map_err(io_err("cannot write", patches.join("sizes.h")))?;

    write_kbuild(&patches, PATCH_MODULES, &kmod)?;
    let symvers = format!(
        "KBUILD_EXTRA_SYMBOLS={}",
        kmod.join("Module.symvers").display()
    );
    kbuild(target, &patches, &[&symvers])?;
    for name in PATCH_MODULES {
        modules.insert((*name).to_string(), patches.join(format!("{name}.ko")));
    }
    let mut records = BTreeMap::new();
    let mut bundles = BTreeMap::new();
    for fix in build_fixes(target, &root, selection)? {
        modules.insert(fix.name.clone(), fix.ko);
        records.insert(fix.name, fix.records);
        bundles.extend(fix.bundles);
    }
    let (key, trusted_key) = test_key(&root)?;
    let busy = busy_bundle(target, &modules, &sizes, &key, &root)?;
    bundles.insert("test_patch_busy.bundle".to_string(), busy);
    Ok(BuiltModules {
        modules,
        records,
        bundles,
        trusted_key: Some(trusted_key),
    })
}

impl BuiltModules {
    /// The `.ko` of `name`.
    pub fn path(&self, name: &str) -> Option<&Path> {
        self.modules.get(name).map(PathBuf::as_path)
    }
}

fn write_kbuild(dir: &Path, names: &[&str], kmod: &Path) -> Result<()> {
    let mut text = String::new();
    let objs: Vec<String> = names.iter().map(|n| format!("{n}.o")).collect();
    let _ = writeln!(text, "obj-m := {}", objs.join(" "));
    let _ = writeln!(
        text,
        "ccflags-y := -I{} -I{}",
        kmod.join("include").display(),
        dir.display()
    );
    let path = dir.join("Kbuild");
    std::fs::write(&path, text).map_err(io_err("cannot write", path))
}

/// `make -C headers M=dir modules`; W=1 so that warnings show in our code.
fn kbuild(target: &Target, dir: &Path, extra: &[&str]) -> Result<()> {
    let mut cmd = target.command("make");
    cmd.arg("-s")
        .arg("-C")
        .arg(target.headers())
        .arg(format!("M={}", dir.display()))
        .arg(format!("-j{}", jobs()))
        .arg("KBUILD_MODPOST_WARN=1")
        .arg("W=1")
        .args(extra)
        .arg("modules");
    let out = run_command(&mut cmd)?;
    // Non-exported symbols are linked by patchd; anything else is a defect.
    let unexpected: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("warning:") || l.contains("error:"))
        .collect();
    if !unexpected.is_empty() {
        return Err(HarnessError::Command {
            command: format!("kbuild in {}", dir.display()),
            status: "compiler warnings (W=1 must stay clean)".to_string(),
            output: out,
        });
    }
    Ok(())
}

fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// ELF sizes of [`KERNEL_FUNCTIONS`], compiled in the prepared source tree
/// under patchgen's tree lock (kbuild in the tree regenerates headers that
/// parallel builds read: tests of one binary run at once, and so may other
/// test runs).
fn kernel_function_sizes(target: &Target) -> Result<BTreeMap<String, u64>> {
    let source = target.source();
    let failed = |e: &dyn std::fmt::Display| HarnessError::Command {
        command: "locking the kernel tree".to_string(),
        status: "failed".to_string(),
        output: e.to_string(),
    };
    let kernel =
        patchgen::build::KernelTarget::from_cache(&target.release).map_err(|e| failed(&e))?;
    let _lock = patchgen::build::compile::TreeLock::take(&kernel, true).map_err(|e| failed(&e))?;
    // The kernel's own compiler (CONFIG_CC_VERSION_TEXT), where it is.
    let mut cmd = kernel.command("make");
    cmd.arg("-s")
        .arg("-C")
        .arg(&source)
        .arg(format!("CC={}", kernel.cc))
        .arg(format!("-j{}", jobs()));
    for (obj, _) in KERNEL_FUNCTIONS {
        cmd.arg(obj);
    }
    run_command(&mut cmd)?;
    let mut sizes = BTreeMap::new();
    for (obj, func) in KERNEL_FUNCTIONS {
        let path = source.join(obj);
        let all = all_function_sizes(&path)?;
        let size = all.get(*func).ok_or_else(|| HarnessError::MissingSymbol {
            path: path.clone(),
            symbol: (*func).to_string(),
        })?;
        sizes.insert((*func).to_string(), *size);
    }
    Ok(sizes)
}

/// Every defined function symbol of an object with its ELF size.
fn all_function_sizes(path: &Path) -> Result<BTreeMap<String, u64>> {
    let data = std::fs::read(path).map_err(io_err("cannot read", path))?;
    let file = object::File::parse(&*data).map_err(|source| HarnessError::Object {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file
        .symbols()
        .filter(|s| s.kind() == object::SymbolKind::Text && s.is_definition())
        .filter_map(|s| Some((s.name().ok()?.to_string(), s.size())))
        .collect())
}

/// Copies the regular files of `from` (recursively) into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(io_err("cannot create", to))?;
    for entry in std::fs::read_dir(from).map_err(io_err("cannot read", from))? {
        let entry = entry.map_err(io_err("cannot read", from))?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().map_err(io_err("cannot stat", &path))?;
        if kind.is_dir() {
            copy_tree(&path, &dest)?;
        } else if kind.is_file() && is_source(&path) {
            // Keep mtimes so kbuild rebuilds only what changed.
            let same = std::fs::read(&dest).ok() == std::fs::read(&path).ok();
            if !same {
                std::fs::copy(&path, &dest).map_err(io_err("cannot copy", &path))?;
            }
        }
    }
    Ok(())
}

fn is_source(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "Kbuild" || [".c", ".h", ".S"].iter().any(|e| name.ends_with(e))
}
