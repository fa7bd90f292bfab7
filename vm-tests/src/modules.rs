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
use std::process::Command;

use object::{Object, ObjectSymbol};

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
    "test_patch_bad",
    "test_patch_bench1",
    "test_patch_bench20",
    "klp_bench",
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

/// A fix built by `patchgen build`: its module, link records and bundles.
struct BuiltFix {
    name: String,
    ko: PathBuf,
    records: String,
    bundles: Vec<(String, PathBuf)>,
}

/// The key that signs the test bundles: generated once per build
/// directory (`keys/test.key`, `keys/test.pub`), as a release engineer
/// would with `patchgen keygen`.
pub fn test_key(root: &Path) -> Result<(suture_bundle::SigningKey, PathBuf)> {
    let dir = root.join("keys");
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let secret = dir.join("test.key");
    let public = dir.join("test.pub");
    let failed = |e: &dyn std::fmt::Display| HarnessError::Command {
        command: format!("generating the test key in {}", dir.display()),
        status: "failed".to_string(),
        output: e.to_string(),
    };
    if !secret.exists() || !public.exists() {
        let _ = std::fs::remove_file(&secret);
        let _ = std::fs::remove_file(&public);
        suture_bundle::write_keypair(&dir.join("test")).map_err(|e| failed(&e))?;
    }
    let key = suture_bundle::read_signing_key(&secret).map_err(|e| failed(&e))?;
    Ok((key, public))
}

/// Writes the bundles of one built fix into `dir`: the real one, one with
/// a flipped byte, one for another build-id.
fn write_bundles(
    out: &patchgen::build::BuildOutput,
    kernel: &patchgen::build::KernelTarget,
    key: &suture_bundle::SigningKey,
    dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    use patchgen::build::package;
    let name = &out.module.name;
    let failed = |what: &str, e: &dyn std::fmt::Display| HarnessError::Command {
        command: format!("{what} for {name}"),
        status: "failed".to_string(),
        output: e.to_string(),
    };
    let info = package::PatchInfo {
        description: format!("vm-tests: the {name} fix"),
        cves: vec!["CVE-2099-0001".to_string()],
        dependencies: Vec::new(),
        bundle_version: 0,
        fixes_up_to: None,
    };
    let bundle = package::package(out, kernel, &info, key)
        .map_err(|e| failed("packaging the bundle", &e))?;
    let mut flipped = bundle.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 0x01;
    }
    let module = std::fs::read(&out.module.ko).map_err(io_err("cannot read", &out.module.ko))?;
    let created = suture_bundle::creation_time().map_err(|e| failed("the creation time", &e))?;
    let mut manifest = package::manifest(out, kernel, &info, created);
    manifest.target.build_id = kernel.build_id.chars().rev().collect();
    let other = suture_bundle::build(&manifest, &module, key)
        .map_err(|e| failed("packaging the other-build bundle", &e))?;
    // Validly made and signed, by a key the guest does not trust.
    let stranger = suture_bundle::generate_signing_key()
        .map_err(|e| failed("generating a stranger's key", &e))?;
    let otherkey = package::package(out, kernel, &info, &stranger)
        .map_err(|e| failed("packaging the other-key bundle", &e))?;
    let truncated = bundle.get(..bundle.len() / 2).unwrap_or_default().to_vec();
    let mut written = Vec::new();
    for (file, bytes) in [
        (format!("{name}.bundle"), bundle),
        (format!("{name}.flipped.bundle"), flipped),
        (format!("{name}.otherbuild.bundle"), other),
        (format!("{name}.otherkey.bundle"), otherkey),
        (format!("{name}.truncated.bundle"), truncated),
    ] {
        let path = dir.join(&file);
        std::fs::write(&path, bytes).map_err(io_err("cannot write", &path))?;
        written.push((file, path));
    }
    Ok(written)
}

/// `patchgen build` of one fix into the patch module `name`, in a fresh
/// `work` directory, with the kmod of this checkout.
pub fn patchgen_build(
    kernel: &patchgen::build::KernelTarget,
    fix: &Path,
    name: &str,
    work: &Path,
) -> std::result::Result<patchgen::build::BuildOutput, patchgen::build::BuildError> {
    let _ = std::fs::remove_dir_all(work);
    let req = patchgen::build::BuildRequest {
        target: kernel.clone(),
        patches: vec![fix.to_path_buf()],
        name: name.to_string(),
        kmod: None,
        work: work.to_path_buf(),
        vmlinux: None,
        accept_layout: Vec::new(),
        skip: Vec::new(),
        max_objects: None,
    };
    patchgen::build::build(&req, &mut |_| {})
}

/// Builds one fix into a signed bundle `DIR/NAME.bundle` with `patchgen
/// build`, as a kernel engineer would, and returns its path.
pub fn build_bundle(
    target: &Target,
    fix: &Path,
    name: &str,
    key: &suture_bundle::SigningKey,
    dir: &Path,
) -> Result<PathBuf> {
    use patchgen::build::package;
    let failed = |command: String, e: &dyn std::fmt::Display| HarnessError::Command {
        command,
        status: "failed".to_string(),
        output: e.to_string(),
    };
    let kernel = patchgen::build::KernelTarget::from_cache(&target.release)
        .map_err(|e| failed("patchgen build: target".to_string(), &e))?;
    let out = patchgen_build(&kernel, fix, name, &dir.join(format!("{name}.work")))
        .map_err(|e| failed(format!("patchgen build {}", fix.display()), &e))?;
    let info = package::PatchInfo {
        description: format!("vm-tests: {}", fix.display()),
        cves: Vec::new(),
        dependencies: Vec::new(),
        bundle_version: 0,
        fixes_up_to: None,
    };
    let bundle = package::package(&out, &kernel, &info, key)
        .map_err(|e| failed(format!("packaging {name}"), &e))?;
    let path = dir.join(format!("{name}.bundle"));
    std::fs::write(&path, bundle).map_err(io_err("cannot write", &path))?;
    Ok(path)
}

/// Builds every fix of `vm-tests/fixes/` (`NAME.patch`) with `patchgen
/// build` into a patch module `NAME` and signed bundles, as a kernel
/// engineer would.
fn build_fixes(target: &Target, root: &Path) -> Result<Vec<BuiltFix>> {
    let dir = workspace_root().join("vm-tests/fixes");
    let mut fixes: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    fixes.sort();
    let failed = |command: String, e: &dyn std::fmt::Display| HarnessError::Command {
        command,
        status: "failed".to_string(),
        output: e.to_string(),
    };
    let kernel = patchgen::build::KernelTarget::from_cache(&target.release)
        .map_err(|e| failed("patchgen build: target".to_string(), &e))?;
    let (key, _) = test_key(root)?;
    let mut built = Vec::new();
    for fix in fixes {
        let name = fix
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("fix")
            .to_string();
        let out = patchgen_build(&kernel, &fix, &name, &root.join("fixes").join(&name))
            .map_err(|e| failed(format!("patchgen build {}", fix.display()), &e))?;
        let records = serde_json::to_string_pretty(&patchgen::build::package::manifest_records(
            &out.module.records,
        ))
        .map_err(|e| failed("serializing link records".to_string(), &e))?;
        let bundles = write_bundles(&out, &kernel, &key, &root.join("fixes"))?;
        built.push(BuiltFix {
            name,
            ko: out.module.ko,
            records,
            bundles,
        });
    }
    Ok(built)
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

/// Builds everything under `target/vm-tests/build/<release>/`.
pub fn build_modules(target: &Target) -> Result<BuiltModules> {
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
    for fix in build_fixes(target, &root)? {
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

/// `test_patch_busy.ko` (it replaces `suture_target_value` and
/// `suture_target_sleep`, where a test thread can be made to sleep) as a
/// signed bundle, so that patchd's handling of a busy function is tested
/// on the real kernel: the module is hand-written, not made by patchgen,
/// so the manifest is written here.
fn busy_bundle(
    target: &Target,
    modules: &BTreeMap<String, PathBuf>,
    sizes: &BTreeMap<String, u64>,
    key: &suture_bundle::SigningKey,
    root: &Path,
) -> Result<PathBuf> {
    let failed = |what: &str, e: &dyn std::fmt::Display| HarnessError::Command {
        command: what.to_string(),
        status: "failed".to_string(),
        output: e.to_string(),
    };
    let kernel = patchgen::build::KernelTarget::from_cache(&target.release)
        .map_err(|e| failed("reading the kernel target", &e))?;
    let ko = modules
        .get("test_patch_busy")
        .ok_or_else(|| failed("test_patch_busy", &"was not built"))?;
    let module = std::fs::read(ko).map_err(io_err("cannot read", ko))?;
    let replaced = ["suture_target_value", "suture_target_sleep"]
        .iter()
        .map(|name| {
            Ok(suture_bundle::ReplacedFunction {
                old_name: (*name).to_string(),
                old_size: *sizes
                    .get(*name)
                    .ok_or_else(|| failed("the size of a test function", name))?,
                new_name: format!("new_{name}"),
                object_file: "suture_target.o".to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = suture_bundle::Manifest {
        id: "test_patch_busy".to_string(),
        description: "vm-tests: a patch whose function a test thread can hold busy".to_string(),
        cves: Vec::new(),
        target: suture_bundle::Target {
            kernel_release: kernel.release.clone(),
            build_id: kernel.build_id.clone(),
            package_version: kernel.package_version.clone(),
        },
        replaced_functions: replaced,
        new_functions: Vec::new(),
        symbols: Vec::new(),
        dependencies: Vec::new(),
        created: suture_bundle::creation_time().map_err(|e| failed("the creation time", &e))?,
        patchgen_version: env!("CARGO_PKG_VERSION").to_string(),
        kmod_interface: patchgen::build::package::KMOD_INTERFACE,
        skipped_functions: Vec::new(),
        target_modules: Vec::new(),
        bundle_version: 0,
        fixes_up_to: None,
    };
    let bytes = suture_bundle::build(&manifest, &module, key)
        .map_err(|e| failed("packaging test_patch_busy", &e))?;
    let path = root.join("test_patch_busy.bundle");
    std::fs::write(&path, bytes).map_err(io_err("cannot write", &path))?;
    Ok(path)
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
    let mut cmd = Command::new("make");
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
    let mut cmd = Command::new("make");
    cmd.arg("-s")
        .arg("-C")
        .arg(&source)
        .arg("CC=gcc-12")
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
    name == "Kbuild" || name.ends_with(".c") || name.ends_with(".h")
}
