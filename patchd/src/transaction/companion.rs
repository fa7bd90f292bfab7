//! The companion module (`suture.ko`) as an apply loads it: checked like
//! the trust store before a byte of it is read, because whoever can write
//! that file decides what runs in the kernel; then loaded through the link
//! step. It must never load a file the ownership rule refuses.
//!
//! Which file: the one DKMS built for the running kernel
//! (`/lib/modules/RELEASE/updates/dkms/suture.ko`, or `.ko.xz`/`.ko.zst`
//! where DKMS compresses modules), else the configured one
//! (`/usr/lib/suture/suture.ko`). Another path given with `--kmod` or
//! `kmod` in the config file is the only one tried: whoever names a file
//! means it.

use std::path::PathBuf;

use tracing::info;

use super::apply_error::ApplyError;
use super::session::Session;
use crate::kernel::{Kernel, KernelError, COMPANION_MODULE};
use crate::link::load::load_module_file;
use crate::ownership::check_trusted_path;

/// The names DKMS gives the companion in `updates/dkms/`, uncompressed
/// first (Debian 12's kernels do not compress modules; Debian 13's use xz).
const DKMS_NAMES: [&str; 3] = ["suture.ko", "suture.ko.xz", "suture.ko.zst"];

/// The companion module file to load: DKMS's build for the running kernel
/// if `config.dkms_modules_dir` is set and has one, else `config.kmod`.
pub(crate) fn companion_path(
    config: &super::session::Config,
    kernel: &dyn Kernel,
) -> Result<PathBuf, KernelError> {
    let Some(modules) = &config.dkms_modules_dir else {
        return Ok(config.kmod.clone());
    };
    let release = kernel.os_release()?;
    let dkms = modules.join(release.trim()).join("updates").join("dkms");
    let built = DKMS_NAMES
        .iter()
        .map(|name| dkms.join(name))
        .find(|path| path.symlink_metadata().is_ok());
    Ok(built.unwrap_or_else(|| config.kmod.clone()))
}

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
    let path = &companion_path(&session.config, session.kernel).map_err(ApplyError::Kernel)?;
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
        let path = &companion_path(&session.config, kernel).map_err(ApplyError::Kernel)?;
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
