//! Loading a module: decide whether it needs linking, refuse early what the
//! kernel would refuse, link, then `init_module`.
//!
//! Every check happens before the one call that changes the kernel, so any
//! error leaves the kernel exactly as it was.

use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use super::error::LinkError;
use super::kallsyms::{Kallsyms, KallsymsError, LinkRecord, Resolved};
use super::module::ModuleImage;
use super::rewrite::link_module;
use crate::kernel::{Kernel, KernelError};

/// Cap on a module file. Modules with full debug information reach tens of
/// MiB; a larger file is not a module patchd should load.
pub const MAX_MODULE_SIZE: u64 = 512 << 20;

/// What [`load_module`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// The module's name from `.modinfo`, if it has one.
    pub module_name: Option<String>,
    /// Whether the image was rewritten before loading.
    pub linked: bool,
    /// The symbols linked to absolute addresses.
    pub resolved: Vec<Resolved>,
    /// Whether the module's signature was removed to link it.
    pub signature_stripped: bool,
}

/// Why a module was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The module file could not be read.
    #[error("cannot read module file {path}")]
    ReadModule {
        /// The file.
        path: PathBuf,
        /// What the read returned.
        #[source]
        source: std::io::Error,
    },

    /// The module file is xz or zstd and does not decompress.
    #[error("cannot decompress module file {path}")]
    Decompress {
        /// The file.
        path: PathBuf,
        /// What the decoder returned.
        #[source]
        source: std::io::Error,
    },

    /// The module file is over [`MAX_MODULE_SIZE`].
    #[error("module file {path} is larger than {limit} bytes; refusing to load it")]
    ModuleTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },

    /// Reading kernel state failed.
    #[error("cannot read the kernel's state")]
    KernelState(#[source] KernelError),

    /// `/proc/kallsyms` could not be parsed.
    #[error("cannot use /proc/kallsyms")]
    Kallsyms(#[source] KallsymsError),

    /// The module could not be inspected or linked.
    #[error("cannot link the module")]
    Link(#[source] LinkError),

    /// Lockdown refuses the unsigned module that linking would produce.
    #[error("kernel lockdown is `{mode}`, which refuses unsigned modules; linking this module's non-exported symbols ({}) must remove its signature, so it cannot be loaded: boot without lockdown, or build the module to use only exported symbols", .symbols.join(", "))]
    Lockdown {
        /// The active lockdown mode.
        mode: String,
        /// The symbols that would need linking.
        symbols: Vec<String>,
    },

    /// Lockdown refuses a module that carries no signature at all.
    #[error("kernel lockdown is `{mode}`, which refuses modules not signed by a key the kernel trusts, and this module is not signed: live patching with suture needs a kernel booted without lockdown (no Secure Boot lockdown, no lockdown= on the command line)")]
    LockdownUnsigned {
        /// The active lockdown mode.
        mode: String,
    },

    /// `init_module` failed.
    #[error("the kernel did not load the module")]
    Load(#[source] KernelError),
}

/// Reads a module file into memory, refusing files over [`MAX_MODULE_SIZE`];
/// an xz or zstd file (`.ko.xz`, `.ko.zst`) is decompressed, to at most
/// that size.
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_error = |source| LoadError::ReadModule {
        path: path.to_owned(),
        source,
    };
    let read = crate::files::read_regular(path, MAX_MODULE_SIZE, crate::files::Links::Follow);
    let Some(image) = read.map_err(read_error)? else {
        return Err(LoadError::ModuleTooLarge {
            path: path.to_owned(),
            limit: MAX_MODULE_SIZE,
        });
    };
    match super::compressed::decompress(&image, MAX_MODULE_SIZE) {
        None => Ok(image),
        Some(decompressed) => decompressed.map_err(|source| LoadError::Decompress {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Reads the module file at `path` and loads it (see [`load_module`]).
pub fn load_module_file(
    kernel: &dyn Kernel,
    path: &Path,
    params: &str,
    records: &[LinkRecord],
) -> Result<LoadReport, LoadError> {
    let image = read_module(path)?;
    let module = ModuleImage::parse(&image).map_err(LoadError::Link)?;
    load_module(kernel, &module, params, records)
}

/// Loads `module` with parameters `params` (space-separated `NAME=VALUE`),
/// linking its non-exported symbols first if it has any.
///
/// A module that needs no linking is loaded byte for byte as given, so its
/// signature stays valid. One that does is refused up front under lockdown,
/// because linking must strip its signature.
pub fn load_module(
    kernel: &dyn Kernel,
    module: &ModuleImage<'_>,
    params: &str,
    records: &[LinkRecord],
) -> Result<LoadReport, LoadError> {
    if module.undefined().is_empty() && records.is_empty() {
        debug!("the module has no undefined symbols; loading it unchanged");
        return load_unchanged(kernel, module, params);
    }

    let kallsyms = kernel.kallsyms().map_err(LoadError::KernelState)?;
    let kallsyms = Kallsyms::parse(&kallsyms).map_err(LoadError::Kallsyms)?;
    let to_resolve = module.to_resolve(&kallsyms).map_err(LoadError::Link)?;
    if to_resolve.is_empty() && records.is_empty() {
        debug!("every undefined symbol is exported; loading the module unchanged");
        return load_unchanged(kernel, module, params);
    }

    if !to_resolve.is_empty() {
        if let Some(mode) = active_lockdown(kernel)? {
            return Err(LoadError::Lockdown {
                mode,
                symbols: to_resolve,
            });
        }
    }

    let linked = link_module(module, &kallsyms, records).map_err(LoadError::Link)?;
    if linked.resolved.is_empty() {
        warn!("nothing was linked: the module's unexported symbols are all weak and undefined");
    }
    kernel
        .load_module(&linked.image, params)
        .map_err(LoadError::Load)?;
    Ok(LoadReport {
        module_name: module.name().map(str::to_owned),
        linked: !linked.resolved.is_empty(),
        resolved: linked.resolved,
        signature_stripped: linked.signature_stripped,
    })
}

/// Refuses, before anything is loaded, a module that kernel lockdown would
/// refuse: under `integrity` or `confidentiality` the kernel loads only
/// modules signed by a key it trusts, so a module that must be linked
/// (linking strips the signature) or that has no signature cannot load.
/// `records` are the link records that come with the module.
pub fn check_lockdown(
    kernel: &dyn Kernel,
    module: &ModuleImage<'_>,
    records: &[LinkRecord],
) -> Result<(), LoadError> {
    let Some(mode) = active_lockdown(kernel)? else {
        return Ok(());
    };
    let mut symbols: Vec<String> = records.iter().map(|r| r.symbol.clone()).collect();
    if module.undefined().is_empty() {
        debug!("the module has no undefined symbols");
    } else {
        let kallsyms = kernel.kallsyms().map_err(LoadError::KernelState)?;
        let kallsyms = Kallsyms::parse(&kallsyms).map_err(LoadError::Kallsyms)?;
        for name in module.to_resolve(&kallsyms).map_err(LoadError::Link)? {
            if !symbols.contains(&name) {
                symbols.push(name);
            }
        }
    }
    if !symbols.is_empty() {
        return Err(LoadError::Lockdown { mode, symbols });
    }
    if module.signed() {
        Ok(())
    } else {
        Err(LoadError::LockdownUnsigned { mode })
    }
}

/// The lockdown mode if it is one that restricts module loading.
fn active_lockdown(kernel: &dyn Kernel) -> Result<Option<String>, LoadError> {
    match kernel.lockdown().map_err(LoadError::KernelState)? {
        Some(mode) if mode != "none" => Ok(Some(mode)),
        Some(_) => Ok(None),
        None => {
            debug!("no lockdown file (securityfs not mounted?); assuming no lockdown");
            Ok(None)
        }
    }
}

fn load_unchanged(
    kernel: &dyn Kernel,
    module: &ModuleImage<'_>,
    params: &str,
) -> Result<LoadReport, LoadError> {
    kernel
        .load_module(module.image(), params)
        .map_err(LoadError::Load)?;
    Ok(LoadReport {
        module_name: module.name().map(str::to_owned),
        linked: false,
        resolved: Vec::new(),
        signature_stripped: false,
    })
}
