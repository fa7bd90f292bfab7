//! Packaging a built patch module as a signed bundle: the manifest says what
//! it replaces, for which kernel, and how patchd links it.

use suture_bundle::manifest::{
    FixesUpTo, LinkRecord, Manifest, NewFunction, ReplacedFunction, SkippedFunction, Target,
};
use suture_bundle::SigningKey;

use super::{BuildOutput, KernelTarget};

/// Version of the interface between patch modules and the companion module
/// (`SUTURE_INTERFACE_VERSION` in kmod/include/suture.h).
pub const KMOD_INTERFACE: u32 = 1;

/// What the engineer says about the patch.
#[derive(Debug, Clone, Default)]
pub struct PatchInfo {
    /// Free text: what the fix does.
    pub description: String,
    /// CVE ids it fixes.
    pub cves: Vec<String>,
    /// Ids of bundles that must be applied first.
    pub dependencies: Vec<String>,
    /// The bundle's version among the bundles of its id (0: none given).
    pub bundle_version: u64,
    /// The distribution kernel whose fixes the bundle brings (for scanners).
    pub fixes_up_to: Option<FixesUpTo>,
    /// Publication dates (`YYYY-MM-DD`) of some or all of `cves`.
    pub cve_published: std::collections::BTreeMap<String, String>,
}

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The built module could not be read.
    #[error("cannot read the built module {path}")]
    Module {
        /// Its path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The manifest or bundle is invalid (a CVE id, the description, ...).
    #[error("cannot make the bundle")]
    Bundle(#[source] suture_bundle::BuildError),
}

/// The link records the bundle ships (also written as `NAME.records.json`
/// by `--emit-module`): the link contract's records, as patchd reads them.
pub fn manifest_records(records: &[super::BuildRecord]) -> Vec<LinkRecord> {
    records.iter().map(|r| r.record.clone()).collect()
}

/// Every function an object's part of the module ships that no kernel
/// function is redirected to: new functions, changed functions without an
/// ftrace site carried as new copies, `.cold`/`.part` parts. With the
/// replaced functions, the manifest lists every function the module holds.
fn shipped_without_redirect(r: &crate::diff::Report) -> impl Iterator<Item = String> + '_ {
    let mut names: Vec<String> = r
        .new_functions
        .iter()
        .chain(&r.carried)
        .chain(&r.children)
        .cloned()
        .chain(
            r.changed_functions
                .iter()
                .filter(|c| !c.redirect)
                .map(|c| c.name.clone()),
        )
        .collect();
    names.sort();
    names.dedup();
    names.into_iter()
}

/// The manifest of a build.
pub fn manifest(
    out: &BuildOutput,
    target: &KernelTarget,
    info: &PatchInfo,
    created: u64,
) -> Manifest {
    let module = &out.module;
    let new_functions = out
        .reports
        .iter()
        .flat_map(|(obj, r)| {
            shipped_without_redirect(r).map(move |n| NewFunction {
                name: n,
                object_file: obj.display().to_string(),
            })
        })
        .collect();
    Manifest {
        id: module.name.clone(),
        description: info.description.clone(),
        cves: info.cves.clone(),
        target: Target {
            kernel_release: target.release.clone(),
            build_id: target.build_id.clone(),
            package_version: target.package_version.clone(),
        },
        replaced_functions: module
            .replacements
            .iter()
            .map(|r| ReplacedFunction {
                old_name: r.old_name.clone(),
                old_size: r.old_size,
                new_name: r.new_symbol.clone(),
                object_file: r.object_file.clone(),
            })
            .collect(),
        new_functions,
        skipped_functions: out
            .reports
            .iter()
            .flat_map(|(obj, r)| {
                r.skipped.iter().map(move |c| SkippedFunction {
                    name: c.name.clone(),
                    object_file: obj.display().to_string(),
                })
            })
            .collect(),
        symbols: manifest_records(&module.records),
        dependencies: info.dependencies.clone(),
        created,
        patchgen_version: env!("CARGO_PKG_VERSION").to_string(),
        kmod_interface: KMOD_INTERFACE,
        target_modules: module.target_modules.clone(),
        bundle_version: info.bundle_version,
        fixes_up_to: info.fixes_up_to.clone(),
        cve_published: info.cve_published.clone(),
    }
}

/// The signed bundle of a build. The creation time is `SOURCE_DATE_EPOCH`
/// when set, so that the same inputs give the same bytes.
pub fn package(
    out: &BuildOutput,
    target: &KernelTarget,
    info: &PatchInfo,
    key: &SigningKey,
) -> Result<Vec<u8>, PackageError> {
    let module = std::fs::read(&out.module.ko).map_err(|source| PackageError::Module {
        path: out.module.ko.clone(),
        source,
    })?;
    let created = suture_bundle::creation_time().map_err(PackageError::Bundle)?;
    let manifest = manifest(out, target, info, created);
    suture_bundle::build(&manifest, &module, key).map_err(PackageError::Bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::report::{ChangedFunction, Outcome, Report};

    fn changed(name: &str, redirect: bool) -> ChangedFunction {
        ChangedFunction {
            name: name.to_string(),
            section: format!(".text.{name}"),
            reason: String::new(),
            redirect,
            local: true,
            new_symbol: None,
            old_size: None,
            old_name: None,
        }
    }

    /// A build of one replaced function of `ext4`'s code.
    fn ext4_build() -> (BuildOutput, KernelTarget) {
        let module = super::super::BuiltModule {
            ko: "fs_ext4_fix.ko".into(),
            name: "fs_ext4_fix".to_string(),
            replacements: vec![super::super::Replacement {
                old_name: "ext4_fill_super".to_string(),
                old_size: 100,
                old_symbol: "ext4_fill_super".to_string(),
                new_symbol: "suture0_new__ext4_fill_super".to_string(),
                object_file: "fs/ext4/super.o".to_string(),
                local: false,
            }],
            records: Vec::new(),
            target_modules: vec!["ext4".to_string()],
        };
        let out = BuildOutput {
            module,
            reports: Vec::new(),
            timings: Vec::new(),
            proofs: Vec::new(),
        };
        let target = KernelTarget {
            release: "6.1.0-50-amd64".to_string(),
            package_version: None,
            build_id: "0123456789abcdef".to_string(),
            source: "/nonexistent".into(),
            headers: "/nonexistent".into(),
            cc: "gcc-12".to_string(),
            image: None,
            debug_vmlinux: None,
            build_root: None,
        };
        (out, target)
    }

    #[test]
    fn the_manifest_names_the_modules_the_patch_module_targets() {
        let (out, target) = ext4_build();
        let m = manifest(&out, &target, &PatchInfo::default(), 0);
        assert_eq!(m.target_modules, ["ext4"]);
        m.validate().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn every_shipped_function_without_a_redirect_is_listed() {
        let report = Report {
            orig: "a.o".to_string(),
            fixed: "b.o".to_string(),
            result: Outcome::Changed,
            changed_functions: vec![
                changed("caller", true),
                changed("helper", false),
                changed("caller.cold", false),
            ],
            new_functions: vec!["made_out_of_line".to_string()],
            children: vec!["caller.cold".to_string()],
            carried: vec!["helper".to_string()],
            new_data: Vec::new(),
            ignored: Vec::new(),
            refusals: Vec::new(),
            undefined: Vec::new(),
            skipped: Vec::new(),
            accepted_layout_changes: Vec::new(),
        };
        let listed: Vec<String> = shipped_without_redirect(&report).collect();
        assert_eq!(listed, ["caller.cold", "helper", "made_out_of_line"]);
    }
}
