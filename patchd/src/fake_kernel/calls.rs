//! The calls a [`FakeKernel`] records.

#[cfg(doc)]
use crate::kernel::Kernel;
use crate::kernel::PatchAttribute;

#[cfg(doc)]
use super::FakeKernel;

/// One call made through the [`Kernel`] trait, as [`FakeKernel`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCall {
    /// [`Kernel::kallsyms`].
    Kallsyms,
    /// [`Kernel::lockdown`].
    Lockdown,
    /// [`Kernel::load_module`], with the exact bytes and parameters passed.
    LoadModule {
        /// The module image handed to `init_module`.
        image: Vec<u8>,
        /// The parameter string.
        params: String,
    },
    /// [`Kernel::loaded_modules`].
    LoadedModules,
    /// [`Kernel::os_release`].
    OsRelease,
    /// [`Kernel::os_version`].
    OsVersion,
    /// [`Kernel::host_name`].
    HostName,
    /// [`Kernel::kernel_notes`].
    KernelNotes,
    /// [`Kernel::delete_module`].
    DeleteModule {
        /// The module.
        name: String,
    },
    /// [`Kernel::suture_patches`].
    SuturePatches,
    /// [`Kernel::read_patch_attribute`].
    ReadPatchAttribute {
        /// The patch.
        patch: String,
        /// The file.
        attribute: PatchAttribute,
    },
    /// [`Kernel::write_patch_enabled`].
    WritePatchEnabled {
        /// The patch.
        patch: String,
        /// The value written.
        enabled: bool,
    },
    /// [`Kernel::boot_id`].
    BootId,
}

impl KernelCall {
    /// Whether the call changes the kernel (load, unload, switch).
    pub fn changes_kernel(&self) -> bool {
        matches!(
            self,
            Self::LoadModule { .. } | Self::DeleteModule { .. } | Self::WritePatchEnabled { .. }
        )
    }
}
