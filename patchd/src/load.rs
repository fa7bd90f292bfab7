//! Loading a module: decide whether it needs linking, refuse early what the
//! kernel would refuse, link, then `init_module`.
//!
//! Every check happens before the one call that changes the kernel, so any
//! error leaves the kernel exactly as it was.

use std::fs::File;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::kallsyms::{Kallsyms, KallsymsError, LinkRecord, Resolved};
use crate::kernel::{Kernel, KernelError};
use crate::link::{
    link_module, module_name, strip_signature, symbols_to_resolve, undefined_symbols, LinkError,
};

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

/// Reads a module file into memory, refusing files over [`MAX_MODULE_SIZE`].
pub fn read_module(path: &Path) -> Result<Vec<u8>, LoadError> {
    let read_error = |source| LoadError::ReadModule {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let Some(image) = crate::files::read_capped(file, MAX_MODULE_SIZE).map_err(read_error)? else {
        return Err(LoadError::ModuleTooLarge {
            path: path.to_owned(),
            limit: MAX_MODULE_SIZE,
        });
    };
    Ok(image)
}

/// Loads the module `image` with parameters `params` (space-separated
/// `NAME=VALUE`), linking its non-exported symbols first if it has any.
///
/// A module that needs no linking is loaded byte for byte as given, so its
/// signature stays valid. One that does is refused up front under lockdown,
/// because linking must strip its signature.
pub fn load_module(
    kernel: &dyn Kernel,
    image: &[u8],
    params: &str,
    records: &[LinkRecord],
) -> Result<LoadReport, LoadError> {
    let name = module_name(image).map_err(LoadError::Link)?;
    let undefined = undefined_symbols(image).map_err(LoadError::Link)?;
    if undefined.is_empty() && records.is_empty() {
        debug!("the module has no undefined symbols; loading it unchanged");
        return load_unchanged(kernel, image, params, name);
    }

    let kallsyms = kernel.kallsyms().map_err(LoadError::KernelState)?;
    let kallsyms = Kallsyms::parse(&kallsyms).map_err(LoadError::Kallsyms)?;
    let to_resolve = symbols_to_resolve(image, &kallsyms).map_err(LoadError::Link)?;
    if to_resolve.is_empty() && records.is_empty() {
        debug!("every undefined symbol is exported; loading the module unchanged");
        return load_unchanged(kernel, image, params, name);
    }

    if !to_resolve.is_empty() {
        if let Some(mode) = active_lockdown(kernel)? {
            return Err(LoadError::Lockdown {
                mode,
                symbols: to_resolve,
            });
        }
    }

    let linked = link_module(image, &kallsyms, records).map_err(LoadError::Link)?;
    if linked.resolved.is_empty() {
        warn!("nothing was linked: the module's unexported symbols are all weak and undefined");
    }
    kernel
        .load_module(&linked.image, params)
        .map_err(LoadError::Load)?;
    Ok(LoadReport {
        module_name: name,
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
    image: &[u8],
    records: &[LinkRecord],
) -> Result<(), LoadError> {
    let Some(mode) = active_lockdown(kernel)? else {
        return Ok(());
    };
    let mut symbols: Vec<String> = records.iter().map(|r| r.symbol.clone()).collect();
    if undefined_symbols(image)
        .map_err(LoadError::Link)?
        .is_empty()
    {
        debug!("the module has no undefined symbols");
    } else {
        let kallsyms = kernel.kallsyms().map_err(LoadError::KernelState)?;
        let kallsyms = Kallsyms::parse(&kallsyms).map_err(LoadError::Kallsyms)?;
        for name in symbols_to_resolve(image, &kallsyms).map_err(LoadError::Link)? {
            if !symbols.contains(&name) {
                symbols.push(name);
            }
        }
    }
    if !symbols.is_empty() {
        return Err(LoadError::Lockdown { mode, symbols });
    }
    let (_, signed) = strip_signature(image).map_err(LoadError::Link)?;
    if signed {
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
    image: &[u8],
    params: &str,
    module_name: Option<String>,
) -> Result<LoadReport, LoadError> {
    kernel.load_module(image, params).map_err(LoadError::Load)?;
    Ok(LoadReport {
        module_name,
        linked: false,
        resolved: Vec::new(),
        signature_stripped: false,
    })
}
