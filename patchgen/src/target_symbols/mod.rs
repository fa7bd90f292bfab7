//! The target kernel's symbols, as `/proc/kallsyms` will show them, and the
//! link records' positions proven against them.
//!
//! patchd resolves a non-exported symbol by name and position among the
//! same-named lines of vmlinux in `/proc/kallsyms` (`sympos`, as the
//! kernel's livepatch counts it). This module computes that position at
//! build time and refuses the build when it cannot be proven. Two sources:
//!
//! - the kallsyms tables inside the target's own image (`vmlinuz`): the
//!   exact list the running kernel prints, names, type letters and order
//!   ([`image`], [`tables`]); no object file names;
//! - the symbol table of the target's `vmlinux` from Debian's `-dbg`
//!   package ([`vmlinux`]): sizes, and `STT_FILE` symbols that tell which
//!   object file each static belongs to; kallsyms' filter and order are
//!   applied to it ([`kallsyms`]) when the image cannot be read.
//!
//! It must never pick among same-named symbols by anything but proof: the
//! object file a static came from, a type letter only one candidate has, or
//! a name that occurs once. Everything else is a refusal that says what
//! would make it provable.

pub mod image;
pub mod kallsyms;
pub mod object_locals;
pub mod sympos;
mod symtab_index;
pub mod tables;
pub mod vmlinux;

use crate::kernel_line::KernelLine;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use kallsyms::{KallsymsEntry, KallsymsList};
pub use sympos::{assign_positions, ObjectLocals, SymposError};
pub use vmlinux::{Symtab, SymtabSymbol};

/// Why the target's symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolSourceError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The image is not a bzImage this reader knows.
    #[error("{path} is not a usable x86 bzImage: {what}")]
    Image {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The image's payload does not decompress.
    #[error("cannot decompress the kernel in {path}")]
    Decompress {
        /// The image.
        path: PathBuf,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// The decompressed kernel or the `-dbg` vmlinux is not a usable ELF file.
    #[error("{path} is not a usable vmlinux: {what}")]
    Elf {
        /// The file (for the image: the bzImage it came from).
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The kallsyms tables were not found or do not decode.
    #[error("cannot find the kallsyms tables in the kernel of {path}: {what}")]
    Tables {
        /// The image.
        path: PathBuf,
        /// What was not found or does not fit.
        what: String,
    },
    /// Nothing to read the symbols from.
    #[error("neither the kernel image nor the -dbg vmlinux of {release} is known: run scripts/setup --kernel {release}, or pass --vmlinux")]
    NoSource {
        /// The target release.
        release: String,
    },
    /// The file is of another build of the kernel.
    #[error("{path} has GNU build-id {found}, but the target kernel's is {expected}: it belongs to another build; pass the vmlinux of this build (Debian: linux-image-{release}-dbg at the image's version)")]
    BuildIdMismatch {
        /// The file.
        path: PathBuf,
        /// Its build-id.
        found: String,
        /// The target's.
        expected: String,
        /// The target release.
        release: String,
    },
}

/// How the target's kallsyms tables were built (from its `.config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KallsymsConfig {
    /// `CONFIG_KALLSYMS_BASE_RELATIVE`: 32-bit offsets from a base instead of
    /// addresses. Since 6.11 the option is gone and offsets are the only
    /// format.
    pub base_relative: bool,
    /// `CONFIG_KALLSYMS_ABSOLUTE_PERCPU`: per-CPU symbols are listed as
    /// absolute (`A`), and non-negative offsets are absolute values.
    pub absolute_percpu: bool,
}

impl KallsymsConfig {
    /// Reads the options from a kernel `.config` text.
    pub fn from_config(config: &str) -> Self {
        let enabled = |option: &str| {
            config
                .lines()
                .any(|line| line.strip_prefix(option) == Some("=y"))
        };
        // A configuration that does not mention the option at all (not
        // even "is not set") is of a kernel without it: always relative.
        let mentions_base_relative = config.contains("CONFIG_KALLSYMS_BASE_RELATIVE");
        Self {
            base_relative: enabled("CONFIG_KALLSYMS_BASE_RELATIVE") || !mentions_base_relative,
            absolute_percpu: enabled("CONFIG_KALLSYMS_ABSOLUTE_PERCPU"),
        }
    }
}

/// Where the build's knowledge of the target's symbols comes from.
#[derive(Debug)]
pub struct TargetSymbols {
    /// The vmlinux part of `/proc/kallsyms`, in its order.
    pub kallsyms: KallsymsList,
    /// The `-dbg` vmlinux's symbol table, when one was found.
    pub symtab: Option<Symtab>,
    /// What was read, for progress lines and errors.
    pub sources: Vec<String>,
    /// The target release (for the advice in refusals).
    pub release: String,
    /// The target's kernel line (its kallsyms filters).
    pub line: &'static KernelLine,
    /// The kernel's code, from the image: what lies between a function's
    /// end and the next symbol is checked against it.
    pub text: KernelText,
}

/// The executable sections of the target's kernel: (link-time address,
/// bytes) each.
#[derive(Debug, Default)]
pub struct KernelText {
    sections: Vec<(u64, Vec<u8>)>,
}

impl KernelText {
    /// Code given as (link-time address, bytes) pieces.
    pub fn new(sections: Vec<(u64, Vec<u8>)>) -> Self {
        Self { sections }
    }

    /// The executable sections of the kernel ELF `elf`.
    pub fn of_elf(elf: &[u8]) -> Self {
        use object::{Object, ObjectSection, SectionKind};
        let Ok(file) = object::File::parse(elf) else {
            return Self::default();
        };
        let sections = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text)
            .filter_map(|s| Some((s.address(), s.data().ok()?.to_vec())))
            .collect();
        Self { sections }
    }

    /// `len` bytes of code at link-time address `address`, if known.
    pub fn bytes(&self, address: u64, len: u64) -> Option<&[u8]> {
        self.sections.iter().find_map(|(start, bytes)| {
            let from = usize::try_from(address.checked_sub(*start)?).ok()?;
            let to = from.checked_add(usize::try_from(len).ok()?)?;
            bytes.get(from..to)
        })
    }
}

/// Inputs for [`TargetSymbols::load`].
#[derive(Debug, Clone)]
pub struct SymbolInputs<'a> {
    /// Target release.
    pub release: &'a str,
    /// The target's kernel line.
    pub line: &'static KernelLine,
    /// The target's GNU build-id (lowercase hex).
    pub build_id: &'a str,
    /// The bzImage, if known.
    pub image: Option<&'a Path>,
    /// The `-dbg` vmlinux, if known.
    pub vmlinux: Option<&'a Path>,
    /// The kallsyms options of the target's configuration.
    pub config: KallsymsConfig,
}

impl TargetSymbols {
    /// Reads what is available: the image's kallsyms tables (preferred for
    /// the order: they are what the kernel prints) and the `-dbg` symbol
    /// table. At least one of the two must be given; each must be of the
    /// target's build.
    pub fn load(inputs: &SymbolInputs<'_>) -> Result<Self, SymbolSourceError> {
        let mut sources = Vec::new();
        let symtab = match inputs.vmlinux {
            Some(path) => {
                let start = Instant::now();
                let symtab = Symtab::read(path)?;
                check_build_id(path, symtab.build_id.as_deref(), inputs)?;
                sources.push(format!(
                    "symbol table of {} ({} symbols, {:.1} s)",
                    path.display(),
                    symtab.symbols.len(),
                    start.elapsed().as_secs_f64()
                ));
                Some(symtab)
            }
            None => None,
        };
        let mut text = KernelText::default();
        let kallsyms = match (inputs.image, &symtab) {
            (Some(path), _) => {
                let start = Instant::now();
                let bytes = std::fs::read(path).map_err(|source| SymbolSourceError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                let kernel = image::decompress_bzimage(path, &bytes)?;
                let (list, build_id) = tables::read_kallsyms(path, &kernel, inputs.config)?;
                check_build_id(path, build_id.as_deref(), inputs)?;
                text = KernelText::of_elf(&kernel);
                sources.push(format!(
                    "kallsyms of {} ({} symbols, {:.1} s)",
                    path.display(),
                    list.len(),
                    start.elapsed().as_secs_f64()
                ));
                list
            }
            (None, Some(symtab)) => {
                sources.push("kallsyms order computed from the symbol table".to_string());
                KallsymsList::from_symtab(symtab, inputs.line)
            }
            (None, None) => {
                return Err(SymbolSourceError::NoSource {
                    release: inputs.release.to_string(),
                })
            }
        };
        Ok(Self {
            kallsyms,
            symtab,
            sources,
            release: inputs.release.to_string(),
            line: inputs.line,
            text,
        })
    }
}

fn check_build_id(
    path: &Path,
    found: Option<&[u8]>,
    inputs: &SymbolInputs<'_>,
) -> Result<(), SymbolSourceError> {
    let found = found.map(hex).unwrap_or_else(|| "none".to_string());
    if found != inputs.build_id {
        return Err(SymbolSourceError::BuildIdMismatch {
            path: path.to_path_buf(),
            found,
            expected: inputs.build_id.to_string(),
            release: inputs.release.to_string(),
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `-dbg` vmlinux to use for `release` when none is given: a copy in
/// the kernel cache (`scripts/setup --with-dbg`), else the one Debian's
/// `linux-image-RELEASE-dbg` installs.
pub fn find_debug_vmlinux(cache_entry: &Path, release: &str) -> Option<PathBuf> {
    [
        cache_entry.join("vmlinux"),
        vmlinux::debian_debug_path(release),
    ]
    .into_iter()
    .find(|p| p.is_file())
}
