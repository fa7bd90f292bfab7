//! The companion module (`suture.ko`) as an apply loads it: checked like
//! the trust store before a byte of it is read, because whoever can write
//! that file decides what runs in the kernel; then loaded through the link
//! step. It must never load a file the ownership rule refuses.

use tracing::info;

use super::apply_error::ApplyError;
use super::session::Session;
use crate::kernel::COMPANION_MODULE;
use crate::link::load::load_module_file;
use crate::ownership::check_trusted_path;

/// Refuses the configured companion module unless it is loaded already or
/// its file and every directory above it are owned by a trusted owner and
/// writable by no one else, and it is not a symbolic link
/// ([`crate::ownership`], the trust store's rule).
pub(crate) fn check_companion(session: &Session<'_>) -> Result<(), ApplyError> {
    let loaded = session
        .kernel
        .module_loaded(COMPANION_MODULE)
        .map_err(ApplyError::Kernel)?;
    if loaded {
        return Ok(());
    }
    let path = &session.config.kmod;
    match check_trusted_path(path, &session.config.trusted_owners) {
        Ok(_) => Ok(()),
        // A missing file is the load's error, which names --kmod.
        Err(crate::ownership::OwnershipError::Stat { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(())
        }
        Err(source) => Err(ApplyError::UnsafeCompanion {
            path: path.clone(),
            source,
        }),
    }
}

/// Loads the companion module through the link step if it is absent
/// (checked again just before); returns whether it did.
pub(crate) fn ensure_companion(session: &Session<'_>) -> Result<bool, ApplyError> {
    let kernel = session.kernel;
    let loaded = kernel
        .module_loaded(COMPANION_MODULE)
        .map_err(ApplyError::Kernel)?;
    if !loaded {
        check_companion(session)?;
        let path = &session.config.kmod;
        let companion = |source| ApplyError::Companion {
            path: path.clone(),
            source: Box::new(source),
        };
        load_module_file(kernel, path, "", &[]).map_err(companion)?;
        info!(path = %path.display(), "loaded the companion module");
    }
    match kernel.suture_patches().map_err(ApplyError::Kernel)? {
        Some(_) => Ok(!loaded),
        None => Err(ApplyError::NoCompanionSysfs),
    }
}

#[cfg(test)]
#[path = "companion_tests.rs"]
mod tests;
