//! The signed bundles of the VM tests: the fixes of `vm-tests/fixes/`
//! built by `patchgen build` as a kernel engineer would, each packed into
//! a bundle signed with the rig's test key and into bundles patchd must
//! refuse, and the hand-written `test_patch_busy` module's bundle.
//!
//! It never writes a bundle by hand except through suture-bundle's writer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{io_err, workspace_root, HarnessError, Result, Target};

/// A fix built by `patchgen build`: its module, link records and bundles.
pub(crate) struct BuiltFix {
    pub(crate) name: String,
    pub(crate) ko: PathBuf,
    pub(crate) records: String,
    pub(crate) bundles: Vec<(String, PathBuf)>,
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
        cve_published: Default::default(),
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
    let failed = |command: String, e: &dyn std::error::Error| HarnessError::Command {
        command,
        status: "failed".to_string(),
        output: with_causes(e),
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
        cve_published: Default::default(),
    };
    let bundle = package::package(&out, &kernel, &info, key)
        .map_err(|e| failed(format!("packaging {name}"), &e))?;
    let path = dir.join(format!("{name}.bundle"));
    std::fs::write(&path, bundle).map_err(io_err("cannot write", &path))?;
    Ok(path)
}

/// Which fixes of `vm-tests/fixes/` a build of the test modules includes.
#[derive(Debug, Clone)]
pub enum FixSelection {
    /// Every one.
    All,
    /// Those whose name (`NAME` of `NAME.patch`) appears in this text: the
    /// guest scripts of a run ([`crate::GuestSpec::script_text`]), so a run
    /// builds only the fixes its checks use.
    NamedIn(String),
}

impl FixSelection {
    fn includes(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::NamedIn(text) => text.contains(name),
        }
    }
}

/// Builds the selected fixes of `vm-tests/fixes/` (`NAME.patch`) with
/// `patchgen build` into a patch module `NAME` and signed bundles, as a
/// kernel engineer would.
pub(crate) fn build_fixes(
    target: &Target,
    root: &Path,
    selection: &FixSelection,
) -> Result<Vec<BuiltFix>> {
    let dir = workspace_root().join("vm-tests/fixes");
    let mut fixes: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io_err("cannot read", &dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .filter(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|name| selection.includes(name))
        })
        .collect();
    if fixes.is_empty() {
        return Ok(Vec::new());
    }
    fixes.sort();
    let failed = |command: String, e: &dyn std::error::Error| HarnessError::Command {
        command,
        status: "failed".to_string(),
        output: with_causes(e),
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

/// `test_patch_busy.ko` (it replaces `suture_target_value` and
/// `suture_target_sleep`, where a test thread can be made to sleep) as a
/// signed bundle, so that patchd's handling of a busy function is tested
/// on the real kernel: the module is hand-written, not made by patchgen,
/// so the manifest is written here.
pub(crate) fn busy_bundle(
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
        cve_published: Default::default(),
    };
    let bytes = suture_bundle::build(&manifest, &module, key)
        .map_err(|e| failed("packaging test_patch_busy", &e))?;
    let path = root.join("test_patch_busy.bundle");
    std::fs::write(&path, bytes).map_err(io_err("cannot write", &path))?;
    Ok(path)
}

/// An error with its causes, one per line: patchgen's errors keep the
/// cause in their source, and a failed build must show it.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!("\n  caused by: {c}"));
        cause = c.source();
    }
    text
}
