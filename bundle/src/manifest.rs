//! The manifest: what a bundle says about its patch, as JSON with a fixed
//! field order.
//!
//! Every field is validated whenever a manifest is written or read
//! ([`Manifest::validate`]): lengths, the character set of every name, and
//! counts, so that nothing downstream (patchd's link step, sysfs names, a
//! terminal printing `inspect`) ever sees a name it was not written for.
//! Unknown fields are rejected: a field this version does not know could
//! change what the patch means.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use crate::link_record::{LinkRecord, SymbolBinding, SymbolKind};
use crate::names::{
    is_build_id, is_cve_date, is_cve_id, is_debian_version, is_description, is_kernel_release,
    is_module_name, is_object_file, is_patch_id, is_symbol_name, is_version,
};
pub use crate::names::{MAX_DESCRIPTION_LEN, MAX_ID_LEN, MAX_OBJECT_FILE_LEN, MAX_SYMBOL_NAME_LEN};

/// Most CVE ids in one manifest, and most CVE publication dates.
pub const MAX_CVES: usize = 256;
/// Most replaced functions, and most new functions, in one manifest.
pub const MAX_FUNCTIONS: usize = 4096;
/// Most symbol records in one manifest.
pub const MAX_SYMBOLS: usize = 16384;
/// Most dependencies in one manifest.
pub const MAX_DEPENDENCIES: usize = 64;
/// Most kernel modules one manifest names as patched.
pub const MAX_TARGET_MODULES: usize = 256;
/// Latest creation time accepted: 9999-12-31T23:59:59Z.
pub const MAX_CREATED: u64 = 253_402_300_799;

/// What a bundle says about its patch. Field order is the JSON order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The patch id, `[a-z0-9_]{1,48}`: the patch module's and the patch's
    /// name in the running kernel.
    pub id: String,
    /// What the patch fixes, for people (printable text, newlines allowed).
    pub description: String,
    /// The CVE ids the patch fixes (`CVE-YYYY-NNNN…`).
    pub cves: Vec<String>,
    /// The one kernel build the patch module was built for.
    pub target: Target,
    /// Functions of the running kernel the patch redirects.
    pub replaced_functions: Vec<ReplacedFunction>,
    /// Functions the patch module adds that replace nothing (new helpers,
    /// copies of changed callees).
    pub new_functions: Vec<NewFunction>,
    /// Symbols of the running kernel the patch module needs that the kernel
    /// does not export: what patchd resolves in `/proc/kallsyms`.
    pub symbols: Vec<LinkRecord>,
    /// Ids of bundles that must be applied before this one.
    pub dependencies: Vec<String>,
    /// Creation time, unix seconds (`SOURCE_DATE_EPOCH` when the builder
    /// had one, so rebuilds are byte-identical).
    pub created: u64,
    /// Version of the patchgen that built the bundle.
    pub patchgen_version: String,
    /// Version of the companion module's interface the patch module uses.
    pub kmod_interface: u32,
    /// Functions the fix changes that its author left out of the patch
    /// (`patchgen build --skip-function`): the bundle does NOT fix them.
    /// Absent from the JSON when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_functions: Vec<SkippedFunction>,
    /// The kernel modules (not vmlinux) whose functions the patch
    /// replaces, sorted, each once: they must be loaded before the patch
    /// module (patchgen also writes them to its modinfo as
    /// `suture_target_module`). Absent from the JSON when empty, as for a
    /// patch of vmlinux only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_modules: Vec<String>,
    /// The bundle's version among the bundles of its id, chosen by its
    /// builder (`patchgen build --bundle-version N`), signed with the rest:
    /// patchd never applies a lower version of an id than the highest it
    /// has applied, so an older (vulnerable) build cannot be brought back.
    /// Absent from the JSON when 0, the version of every bundle made before
    /// the field existed, whose bytes stay as they were.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bundle_version: u64,
    /// The distribution kernel whose fixes this bundle brings to the
    /// target (`patchgen build --fixes-up-to`): what vulnerability scanners
    /// should take the patched kernel for (`patchd uname`). Absent from the
    /// JSON when not declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixes_up_to: Option<FixesUpTo>,
    /// When each CVE was published, as its author declares it
    /// (`patchgen build --cve-published CVE=YYYY-MM-DD`): a calendar date
    /// `YYYY-MM-DD` per CVE id of `cves`, for some or all of them
    /// (`patchd report` measures the exposure from it). Absent from the
    /// JSON when empty, so bundles made without dates keep their bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cve_published: BTreeMap<String, String>,
}

/// Whether a version is 0 (left out of the JSON).
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A kernel version a bundle's fixes correspond to: "this kernel has every
/// fix of Debian's 6.1.187-1", for scanners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixesUpTo {
    /// The Debian package version, e.g. `6.1.187-1`; not older than the
    /// target's own.
    pub version: String,
    /// That version's kernel release (`uname -r`), e.g. `6.1.0-53-amd64`,
    /// when the author names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
}

/// A changed function the author left out of the patch: the running
/// kernel keeps its old code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedFunction {
    /// The function.
    pub name: String,
    /// The object file it is in.
    pub object_file: String,
}

/// The kernel build a bundle is for; patchd compares it with the running
/// kernel before it loads anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `uname -r`, e.g. `6.1.0-50-amd64`.
    pub kernel_release: String,
    /// GNU build-id of the target vmlinux, lowercase hex (the note in
    /// `/sys/kernel/notes` of the running kernel).
    pub build_id: String,
    /// Debian package version of the kernel image, e.g. `6.1.176-1`;
    /// `None` for a kernel that does not come from a Debian package.
    pub package_version: Option<String>,
}

/// One function the patch redirects to its replacement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplacedFunction {
    /// The function in the running kernel.
    pub old_name: String,
    /// Its ELF size in the target build (the companion module compares it
    /// with kallsyms).
    pub old_size: u64,
    /// The replacement's symbol in the patch module.
    pub new_name: String,
    /// The object file both come from, e.g. `fs/proc/cmdline.o`.
    pub object_file: String,
}

/// A function the patch module adds without replacing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFunction {
    /// The symbol in the patch module.
    pub name: String,
    /// The object file it was taken from.
    pub object_file: String,
}

/// Why a manifest is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A field's value is outside what the format allows.
    #[error("manifest field {field} is {value}, which is not {expected}")]
    Invalid {
        /// The field, e.g. `replaced_functions[2].old_name`.
        field: String,
        /// The value, quoted and shortened for display.
        value: String,
        /// What the field must be.
        expected: &'static str,
    },
    /// A list is longer than its cap.
    #[error("manifest field {field} has {count} entries, more than the limit of {max}")]
    TooMany {
        /// The list.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// A list names the same thing twice.
    #[error("manifest field {field} lists {value} twice: remove the duplicate")]
    Duplicate {
        /// The list.
        field: &'static str,
        /// The repeated value, quoted and shortened for display.
        value: String,
    },
    /// The patch replaces nothing, so applying it would change nothing.
    #[error("the manifest replaces no function: a bundle must replace at least one")]
    NothingReplaced,
    /// The patch lists itself among its dependencies.
    #[error("manifest field dependencies lists the patch's own id {id}")]
    DependsOnItself {
        /// The id, quoted.
        id: String,
    },
}

impl Manifest {
    /// Checks every field; see the constants of this module for the caps.
    pub fn validate(&self) -> Result<(), ManifestError> {
        self.validate_identity()?;
        self.validate_cve_published()?;
        self.target.validate()?;
        self.validate_functions()?;
        self.validate_target_modules()?;
        self.validate_fixes_up_to()?;
        self.validate_symbols()?;
        self.validate_dependencies()?;
        self.validate_build_info()
    }

    /// The id, the description and the CVE ids.
    fn validate_identity(&self) -> Result<(), ManifestError> {
        check(
            "id",
            &self.id,
            is_patch_id,
            "a patch id ([a-z0-9_], 1 to 48 bytes)",
        )?;
        check(
            "description",
            &self.description,
            is_description,
            "printable text of at most 4096 bytes (newlines and tabs allowed)",
        )?;
        cap("cves", self.cves.len(), MAX_CVES)?;
        for (i, cve) in self.cves.iter().enumerate() {
            check(
                &format!("cves[{i}]"),
                cve,
                is_cve_id,
                "a CVE id (CVE-YYYY-NNNN, 4 to 19 digits after the year)",
            )?;
        }
        unique("cves", self.cves.iter().map(String::as_str))
    }

    /// The CVE publication dates: each of a CVE the manifest lists, each a
    /// real calendar date.
    fn validate_cve_published(&self) -> Result<(), ManifestError> {
        cap("cve_published", self.cve_published.len(), MAX_CVES)?;
        for (cve, date) in &self.cve_published {
            if !self.cves.contains(cve) {
                return Err(invalid(
                    "cve_published",
                    cve,
                    "one of the CVE ids in cves (a date is declared only for a CVE the bundle fixes)",
                ));
            }
            // `cve` is one of `cves`, checked above: safe to show as is.
            check(
                &format!("cve_published[{cve}]"),
                date,
                is_cve_date,
                "a calendar date YYYY-MM-DD of a year 1999 to 9999",
            )?;
        }
        Ok(())
    }

    /// The replaced (at least one), new and skipped functions.
    fn validate_functions(&self) -> Result<(), ManifestError> {
        if self.replaced_functions.is_empty() {
            return Err(ManifestError::NothingReplaced);
        }
        cap(
            "replaced_functions",
            self.replaced_functions.len(),
            MAX_FUNCTIONS,
        )?;
        for (i, f) in self.replaced_functions.iter().enumerate() {
            let field = |name: &str| format!("replaced_functions[{i}].{name}");
            check_symbol(&field("old_name"), &f.old_name)?;
            if f.old_size == 0 {
                return Err(invalid(&field("old_size"), "0", "a size of at least 1"));
            }
            check_symbol(&field("new_name"), &f.new_name)?;
            check_object_file(&field("object_file"), &f.object_file)?;
        }
        unique(
            "replaced_functions",
            self.replaced_functions
                .iter()
                .map(|f| format!("{} ({})", f.old_name, f.object_file)),
        )?;

        cap("new_functions", self.new_functions.len(), MAX_FUNCTIONS)?;
        for (i, f) in self.new_functions.iter().enumerate() {
            check_symbol(&format!("new_functions[{i}].name"), &f.name)?;
            check_object_file(&format!("new_functions[{i}].object_file"), &f.object_file)?;
        }
        unique(
            "new_functions",
            self.new_functions
                .iter()
                .map(|f| format!("{} ({})", f.name, f.object_file)),
        )?;

        cap(
            "skipped_functions",
            self.skipped_functions.len(),
            MAX_FUNCTIONS,
        )?;
        for (i, f) in self.skipped_functions.iter().enumerate() {
            check_symbol(&format!("skipped_functions[{i}].name"), &f.name)?;
            check_object_file(
                &format!("skipped_functions[{i}].object_file"),
                &f.object_file,
            )?;
        }
        Ok(())
    }

    /// The patched kernel modules: module names other than vmlinux, in
    /// sorted order, each once.
    fn validate_target_modules(&self) -> Result<(), ManifestError> {
        cap(
            "target_modules",
            self.target_modules.len(),
            MAX_TARGET_MODULES,
        )?;
        for (i, module) in self.target_modules.iter().enumerate() {
            check(
                &format!("target_modules[{i}]"),
                module,
                |m| m != "vmlinux" && is_module_name(m),
                "a kernel module name other than vmlinux ([A-Za-z0-9_-], 1 to 55 bytes)",
            )?;
        }
        unique(
            "target_modules",
            self.target_modules.iter().map(String::as_str),
        )?;
        if let Some(i) = (1..self.target_modules.len())
            .find(|&i| self.target_modules[i] < self.target_modules[i - 1])
        {
            return Err(invalid(
                &format!("target_modules[{i}]"),
                &self.target_modules[i],
                "in sorted order after the module before it",
            ));
        }
        Ok(())
    }

    /// The declared kernel version (see [`FixesUpTo::validate`]).
    fn validate_fixes_up_to(&self) -> Result<(), ManifestError> {
        match &self.fixes_up_to {
            Some(fixes) => fixes.validate(self.target.package_version.as_deref()),
            None => Ok(()),
        }
    }

    /// The symbol records, one per symbol.
    fn validate_symbols(&self) -> Result<(), ManifestError> {
        cap("symbols", self.symbols.len(), MAX_SYMBOLS)?;
        for (i, s) in self.symbols.iter().enumerate() {
            s.validate(i)?;
        }
        // One record per undefined symbol of the module: two would let
        // patchd pick.
        unique("symbols", self.symbols.iter().map(|s| s.symbol.as_str()))
    }

    /// The dependencies: patch ids, not this patch's own, each once.
    fn validate_dependencies(&self) -> Result<(), ManifestError> {
        cap("dependencies", self.dependencies.len(), MAX_DEPENDENCIES)?;
        for (i, dep) in self.dependencies.iter().enumerate() {
            check(
                &format!("dependencies[{i}]"),
                dep,
                is_patch_id,
                "a patch id ([a-z0-9_], 1 to 48 bytes)",
            )?;
            if *dep == self.id {
                return Err(ManifestError::DependsOnItself { id: shown(dep) });
            }
        }
        unique("dependencies", self.dependencies.iter().map(String::as_str))
    }

    /// The creation time, the patchgen version and the kmod interface.
    fn validate_build_info(&self) -> Result<(), ManifestError> {
        if self.created > MAX_CREATED {
            return Err(invalid(
                "created",
                &self.created.to_string(),
                "a unix time before the year 10000",
            ));
        }
        check(
            "patchgen_version",
            &self.patchgen_version,
            is_version,
            "a version ([A-Za-z0-9.+-], 1 to 64 bytes)",
        )?;
        if self.kmod_interface == 0 {
            return Err(invalid(
                "kmod_interface",
                "0",
                "an interface version of at least 1",
            ));
        }
        Ok(())
    }
}

impl FixesUpTo {
    /// A Debian version not older than the target's package version
    /// `target` (when known), and a kernel release.
    pub fn validate(&self, target: Option<&str>) -> Result<(), ManifestError> {
        check(
            "fixes_up_to.version",
            &self.version,
            is_debian_version,
            "a Debian package version such as 6.1.187-1",
        )?;
        if let Some(target) = target {
            if crate::debian_version::compare(&self.version, target).is_lt() {
                return Err(invalid(
                    "fixes_up_to.version",
                    &self.version,
                    "a version not older than the target's own package version",
                ));
            }
        }
        if let Some(release) = &self.release {
            check(
                "fixes_up_to.release",
                release,
                is_kernel_release,
                "a kernel release such as 6.1.0-53-amd64",
            )?;
        }
        Ok(())
    }
}

impl Target {
    fn validate(&self) -> Result<(), ManifestError> {
        check(
            "target.kernel_release",
            &self.kernel_release,
            is_kernel_release,
            "a kernel release ([A-Za-z0-9._+~-], 1 to 64 bytes)",
        )?;
        check(
            "target.build_id",
            &self.build_id,
            is_build_id,
            "a GNU build-id (lowercase hex, 4 to 64 bytes)",
        )?;
        if let Some(version) = &self.package_version {
            check(
                "target.package_version",
                version,
                is_debian_version,
                "a Debian version (starts with a digit; [A-Za-z0-9.+~:-], 1 to 128 bytes)",
            )?;
        }
        Ok(())
    }
}

impl LinkRecord {
    fn validate(&self, i: usize) -> Result<(), ManifestError> {
        let field = |name: &str| format!("symbols[{i}].{name}");
        check_symbol(&field("symbol"), &self.symbol)?;
        check_symbol(&field("name"), &self.name)?;
        if let Some(object) = &self.object {
            check(
                &field("object"),
                object,
                is_module_name,
                "vmlinux or a module name ([A-Za-z0-9_-], 1 to 55 bytes)",
            )?;
        }
        if let Some(object_file) = &self.object_file {
            check_object_file(&field("object_file"), object_file)?;
        }
        if self.sympos == Some(0) {
            return Err(invalid(
                &field("sympos"),
                "0",
                "a position of at least 1 (positions start at 1)",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &str, value: &str, expected: &'static str) -> ManifestError {
    ManifestError::Invalid {
        field: field.to_owned(),
        value: shown(value),
        expected,
    }
}

fn check(
    field: &str,
    value: &str,
    valid: fn(&str) -> bool,
    expected: &'static str,
) -> Result<(), ManifestError> {
    if valid(value) {
        Ok(())
    } else {
        Err(invalid(field, value, expected))
    }
}

fn check_symbol(field: &str, value: &str) -> Result<(), ManifestError> {
    check(
        field,
        value,
        is_symbol_name,
        "a kernel symbol name ([A-Za-z0-9_.$], 1 to 511 bytes)",
    )
}

fn check_object_file(field: &str, value: &str) -> Result<(), ManifestError> {
    check(
        field,
        value,
        is_object_file,
        "a relative object path like fs/proc/cmdline.o ([A-Za-z0-9_.+-] between slashes, no . or .., 1 to 255 bytes)",
    )
}

fn cap(field: &'static str, count: usize, max: usize) -> Result<(), ManifestError> {
    if count > max {
        Err(ManifestError::TooMany { field, count, max })
    } else {
        Ok(())
    }
}

fn unique<S: AsRef<str>>(
    field: &'static str,
    values: impl Iterator<Item = S>,
) -> Result<(), ManifestError> {
    let mut seen = BTreeSet::new();
    for value in values {
        if !seen.insert(value.as_ref().to_owned()) {
            return Err(ManifestError::Duplicate {
                field,
                value: shown(value.as_ref()),
            });
        }
    }
    Ok(())
}

/// A value for an error message: quoted, escaped (no terminal control
/// sequences from a hostile manifest) and at most about 80 characters.
pub(crate) fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 80;
    let mut out = String::from("`");
    for (i, c) in value.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
