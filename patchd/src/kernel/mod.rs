//! The one door between patchd and the running kernel.
//!
//! Every read of `/proc` or `/sys` and every syscall that changes the kernel
//! goes through [`Kernel`], so the logic above it (linking, loading,
//! enabling, reverting, reconciling) is tested without root against
//! `FakeKernel` (`crate::fake_kernel`). Nothing outside this module may
//! touch the kernel directly. The fake is built only for tests (unit tests,
//! and integration tests through the `fake-kernel` feature): the production
//! binary has only the real kernel.

pub(crate) mod notes;
mod real;

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

pub use notes::{gnu_build_id, running_identity, KernelIdentity};
pub use real::RealKernel;

/// The companion module's name, as `/proc/modules` lists it.
pub const COMPANION_MODULE: &str = "suture";

/// Longest module name the kernel accepts (`MODULE_NAME_LEN - 1`).
const MAX_MODULE_NAME: usize = 55;

/// A file of a patch's directory `/sys/kernel/suture/<patch>/` that patchd
/// reads (docs/kmod-interface.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchAttribute {
    /// `enabled`: `0` or `1`.
    Enabled,
    /// `last_busy`: the task and function that blocked the last refusal.
    LastBusy,
    /// `busy_refusals`: switches refused with `EBUSY` since registration.
    BusyRefusals,
    /// `module`: the name of the module that registered the patch.
    Module,
    /// `functions` (root only): one line per replaced function, its
    /// addresses, sizes, `active`, `calls` and redirect path.
    Functions,
}

impl PatchAttribute {
    /// The file's name in the patch's sysfs directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::LastBusy => "last_busy",
            Self::BusyRefusals => "busy_refusals",
            Self::Module => "module",
            Self::Functions => "functions",
        }
    }
}

impl fmt::Display for PatchAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// What patchd needs from the running kernel.
///
/// Reads are side-effect free. Three calls change the kernel:
/// [`Kernel::load_module`], [`Kernel::delete_module`] and
/// [`Kernel::write_patch_enabled`]; callers do every check before them.
pub trait Kernel {
    /// The text of `/proc/kallsyms`.
    fn kallsyms(&self) -> Result<String, KernelError>;

    /// The active mode of `/sys/kernel/security/lockdown` (the bracketed word,
    /// e.g. `none` or `integrity`), or `None` if the file does not exist.
    fn lockdown(&self) -> Result<Option<String>, KernelError>;

    /// Loads a module image with `init_module(2)`; `params` is the
    /// space-separated `NAME=VALUE` parameter string.
    fn load_module(&self, image: &[u8], params: &str) -> Result<(), KernelError>;

    /// The names of the loaded modules, from `/proc/modules`.
    fn loaded_modules(&self) -> Result<Vec<String>, KernelError>;

    /// Whether a module of this name is in `/proc/modules`.
    fn module_loaded(&self, name: &str) -> Result<bool, KernelError> {
        Ok(self.loaded_modules()?.iter().any(|loaded| loaded == name))
    }

    /// The running kernel's release (`uname -r`), from
    /// `/proc/sys/kernel/osrelease`.
    fn os_release(&self) -> Result<String, KernelError>;

    /// The running kernel's version text (`uname -v`, e.g. `#1 SMP
    /// PREEMPT_DYNAMIC Debian 6.1.176-1 (2025-06-13)`), from
    /// `/proc/sys/kernel/version`.
    fn os_version(&self) -> Result<String, KernelError>;

    /// The host's name (`uname -n`), from `/proc/sys/kernel/hostname`.
    fn host_name(&self) -> Result<String, KernelError>;

    /// The raw ELF notes of the running kernel, `/sys/kernel/notes`; parse
    /// them with [`gnu_build_id`].
    fn kernel_notes(&self) -> Result<Vec<u8>, KernelError>;

    /// Unloads a module with `delete_module(2)` (`O_NONBLOCK`, as `rmmod`
    /// does): fails at once if the module is in use.
    fn delete_module(&self, name: &str) -> Result<(), KernelError>;

    /// The patches registered with the companion module (the directories
    /// of `/sys/kernel/suture/`), or `None` when the companion module is not
    /// loaded (no such directory).
    fn suture_patches(&self) -> Result<Option<Vec<String>>, KernelError>;

    /// One file of `/sys/kernel/suture/<patch>/`, without its trailing
    /// newline; `None` when the patch is not registered.
    fn read_patch_attribute(
        &self,
        patch: &str,
        attribute: PatchAttribute,
    ) -> Result<Option<String>, KernelError>;

    /// Writes `1` or `0` to `/sys/kernel/suture/<patch>/enabled`: the
    /// companion module switches every function of the patch at once, or
    /// refuses ([`KernelError::Busy`] when a task is inside one of them) and
    /// changes nothing.
    fn write_patch_enabled(&self, patch: &str, enabled: bool) -> Result<(), KernelError>;

    /// This boot's random id, `/proc/sys/kernel/random/boot_id` without
    /// its newline: a new one at every boot, so patchd can tell a reboot
    /// from a restart of itself (the crash-loop guard).
    fn boot_id(&self) -> Result<String, KernelError>;
}

/// Failures while reading kernel state or loading a module.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A kernel file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file (under the configured root).
        path: PathBuf,
        /// What the read returned.
        #[source]
        source: std::io::Error,
    },

    /// A kernel file was larger than patchd accepts.
    #[error("{path} is larger than {limit} bytes; refusing to read it")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap in bytes.
        limit: u64,
    },

    /// A kernel file did not have the expected layout.
    #[error("unexpected content in {path} line {line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: &'static str,
    },

    /// The module parameters cannot be passed to the kernel.
    #[error("module parameters contain a NUL byte; remove it")]
    ParamsContainNul,

    /// `init_module` failed with `EEXIST`.
    #[error("a module with the same name is already loaded (EEXIST); unload it first (rmmod) or rebuild it under another name")]
    ModuleExists,

    /// `init_module` failed with `EPERM`.
    #[error("the kernel refused to load the module (EPERM): either this process lacks CAP_SYS_MODULE (run patchd as root) or kernel lockdown refuses unsigned modules (see /sys/kernel/security/lockdown)")]
    PermissionDenied,

    /// `init_module` failed with `EKEYREJECTED`.
    #[error("the kernel rejected the module signature (EKEYREJECTED): a signed module was modified after signing; strip the signature or sign the module again")]
    SignatureRejected,

    /// `init_module` failed with `ENOEXEC`.
    #[error("the kernel says this is not a valid module for it (ENOEXEC): check that it was built for the running kernel (vermagic, ELF format); dmesg has the details")]
    NotAModule,

    /// `init_module` failed with `ENOENT`, which the loader returns for an
    /// unknown symbol.
    #[error("the kernel could not resolve a symbol of the module (ENOENT, Unknown symbol): check dmesg for its name; non-exported symbols must be linked by patchd")]
    UnknownSymbol,

    /// `init_module` failed with another errno.
    #[error("init_module failed; check dmesg for the kernel's reason")]
    Load {
        /// The errno the syscall returned.
        #[source]
        errno: Errno,
    },

    /// `/sys/kernel/notes` is not a sequence of ELF notes.
    #[error("malformed ELF notes in {path}: {reason}")]
    Notes {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },

    /// The running kernel has no GNU build-id note.
    #[error("{path} has no GNU build-id note, so the running kernel cannot be identified; suture needs a kernel linked with --build-id (Debian's are)")]
    NoBuildId {
        /// The notes file.
        path: PathBuf,
    },

    /// A module or patch name that cannot name a module.
    #[error(
        "`{name}` is not a module name (1 to {MAX_MODULE_NAME} bytes of A-Z, a-z, 0-9, _ and -)"
    )]
    InvalidName {
        /// The name, escaped.
        name: String,
    },

    /// `delete_module` found no such module.
    #[error("module {name} is not loaded (ENOENT)")]
    ModuleNotLoaded {
        /// The module.
        name: String,
    },

    /// `delete_module` found the module in use.
    #[error("module {name} is in use (EBUSY): disable its patch first, or unload the modules that use it")]
    ModuleInUse {
        /// The module.
        name: String,
    },

    /// `delete_module` failed with another errno.
    #[error("delete_module({name}) failed; check dmesg for the kernel's reason")]
    Unload {
        /// The module.
        name: String,
        /// The errno the syscall returned.
        #[source]
        errno: Errno,
    },

    /// The patch has no directory under `/sys/kernel/suture/`.
    #[error("patch {patch} is not registered with the companion module (no /sys/kernel/suture/{patch}/)")]
    PatchNotRegistered {
        /// The patch.
        patch: String,
    },

    /// The companion module refused a switch with `EBUSY`.
    #[error("the companion module refused to {} patch {patch} (EBUSY): a task is inside a function being switched; nothing changed", verb(*.enabled))]
    Busy {
        /// The patch.
        patch: String,
        /// The state asked for.
        enabled: bool,
    },

    /// The companion module refused a switch with another errno.
    #[error("the companion module refused to {} patch {patch}: {}", verb(*.enabled), switch_hint(*.errno))]
    Switch {
        /// The patch.
        patch: String,
        /// The state asked for.
        enabled: bool,
        /// The errno of the write.
        #[source]
        errno: Errno,
    },

    /// A sysfs file could not be written for another reason than the
    /// companion module's refusal.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the write returned.
        #[source]
        source: std::io::Error,
    },
}

fn verb(enabled: bool) -> &'static str {
    if enabled {
        "enable"
    } else {
        "disable"
    }
}

/// What an errno of a write to `enabled` means (docs/kmod-interface.md).
fn switch_hint(errno: Errno) -> &'static str {
    match errno {
        Errno::EEXIST => "another ftrace user (such as the kernel's livepatch) already modifies one of its functions (EEXIST); disable that first",
        Errno::ENODEV => "the patch module is going away (ENODEV)",
        Errno::EINVAL => "the companion module did not accept the request (EINVAL); dmesg has the reason",
        _ => "dmesg has the kernel's reason",
    }
}

impl KernelError {
    /// Maps an errno returned by `init_module`/`finit_module` to the error
    /// that explains it.
    pub fn from_load_errno(errno: Errno) -> Self {
        match errno {
            Errno::EEXIST => Self::ModuleExists,
            Errno::EPERM => Self::PermissionDenied,
            Errno::EKEYREJECTED => Self::SignatureRejected,
            Errno::ENOEXEC => Self::NotAModule,
            Errno::ENOENT => Self::UnknownSymbol,
            errno => Self::Load { errno },
        }
    }

    /// Maps an errno returned by `delete_module` for `name`.
    pub fn from_unload_errno(name: &str, errno: Errno) -> Self {
        let name = name.to_owned();
        match errno {
            Errno::ENOENT => Self::ModuleNotLoaded { name },
            Errno::EBUSY | Errno::EAGAIN => Self::ModuleInUse { name },
            errno => Self::Unload { name, errno },
        }
    }

    /// Maps an errno of a write of `enabled` to a patch's sysfs file.
    pub fn from_switch_errno(patch: &str, enabled: bool, errno: Errno) -> Self {
        let patch = patch.to_owned();
        match errno {
            Errno::EBUSY => Self::Busy { patch, enabled },
            Errno::ENOENT => Self::PatchNotRegistered { patch },
            errno => Self::Switch {
                patch,
                enabled,
                errno,
            },
        }
    }
}

/// Refuses names that cannot be module names before they become paths
/// under `/sys` or arguments of `delete_module`: no `/`, no `..`.
pub(crate) fn check_module_name(name: &str) -> Result<(), KernelError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_MODULE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(KernelError::InvalidName {
            name: name.escape_debug().to_string(),
        })
    }
}

/// Longest boot id accepted (the kernel's is a 36-character UUID).
const MAX_BOOT_ID: usize = 64;

/// Checks the text of `/proc/sys/kernel/random/boot_id` and returns the id
/// without its newline: 1 to 64 bytes of printable ASCII.
pub(crate) fn parse_boot_id(text: &str, path: &std::path::Path) -> Result<String, KernelError> {
    let id = text.trim();
    let valid =
        !id.is_empty() && id.len() <= MAX_BOOT_ID && id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(id.to_owned())
    } else {
        Err(KernelError::Malformed {
            path: path.to_owned(),
            line: 1,
            reason: "not a boot id (1 to 64 printable ASCII characters)",
        })
    }
}

/// Extracts the active mode from the text of `/sys/kernel/security/lockdown`,
/// which lists every mode and brackets the active one:
/// `none [integrity] confidentiality`.
pub(crate) fn parse_lockdown(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
}

/// Extracts module names from the text of `/proc/modules`, where each line
/// starts with the name: `ext4 999424 1 - Live 0xffffffffc0a00000`.
pub(crate) fn parse_modules(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockdown_mode_is_the_bracketed_word() {
        let cases = [
            ("[none] integrity confidentiality\n", Some("none")),
            ("none [integrity] confidentiality\n", Some("integrity")),
            ("none integrity [confidentiality]", Some("confidentiality")),
            ("none integrity confidentiality\n", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_lockdown(text), want, "{text:?}");
        }
    }

    #[test]
    fn a_boot_id_is_the_trimmed_text_and_nothing_else_is_one() {
        let path = std::path::Path::new("/proc/sys/kernel/random/boot_id");
        let id = "0c1f4a4e-8d5b-4a43-9f0e-3d1b2c7a9e10";
        assert_eq!(parse_boot_id(&format!("{id}\n"), path).expect("id"), id);
        let long = "a".repeat(65);
        for bad in ["", "\n", "two words", "\u{1}", long.as_str()] {
            assert!(
                matches!(parse_boot_id(bad, path), Err(KernelError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn module_names_are_the_first_column() {
        let text = "ext4 999424 1 - Live 0xffffffffc0a00000\nsuture 16384 0 - Live 0x0000000000000000 (OE)\n\n";
        assert_eq!(parse_modules(text), ["ext4", "suture"]);
    }

    #[test]
    fn module_names_that_could_escape_a_path_are_refused() {
        for good in ["suture", "cmdline_demo", "a-b", "x"] {
            assert!(check_module_name(good).is_ok(), "{good}");
        }
        let long = "m".repeat(56);
        for bad in ["", "..", "a/b", "../etc", "a b", "a\0b", long.as_str()] {
            assert!(
                matches!(check_module_name(bad), Err(KernelError::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unload_and_switch_errnos_map_to_explanations() {
        assert!(matches!(
            KernelError::from_unload_errno("p", Errno::EBUSY),
            KernelError::ModuleInUse { .. }
        ));
        assert!(matches!(
            KernelError::from_unload_errno("p", Errno::ENOENT),
            KernelError::ModuleNotLoaded { .. }
        ));
        assert!(matches!(
            KernelError::from_switch_errno("p", true, Errno::EBUSY),
            KernelError::Busy { enabled: true, .. }
        ));
        let exists = KernelError::from_switch_errno("p", true, Errno::EEXIST).to_string();
        assert!(
            exists.contains("livepatch") && exists.contains("enable patch p"),
            "{exists}"
        );
        let busy = KernelError::from_switch_errno("p", false, Errno::EBUSY).to_string();
        assert!(
            busy.contains("disable patch p") && busy.contains("nothing changed"),
            "{busy}"
        );
    }

    #[test]
    fn load_errnos_map_to_explanations() {
        assert!(matches!(
            KernelError::from_load_errno(Errno::EEXIST),
            KernelError::ModuleExists
        ));
        assert!(matches!(
            KernelError::from_load_errno(Errno::EPERM),
            KernelError::PermissionDenied
        ));
        assert!(matches!(
            KernelError::from_load_errno(Errno::EKEYREJECTED),
            KernelError::SignatureRejected
        ));
        assert!(matches!(
            KernelError::from_load_errno(Errno::ENOEXEC),
            KernelError::NotAModule
        ));
        assert!(matches!(
            KernelError::from_load_errno(Errno::ENOENT),
            KernelError::UnknownSymbol
        ));
        assert!(matches!(
            KernelError::from_load_errno(Errno::EINVAL),
            KernelError::Load {
                errno: Errno::EINVAL
            }
        ));
        let text = KernelError::PermissionDenied.to_string();
        assert!(text.contains("CAP_SYS_MODULE") && text.contains("/sys/kernel/security/lockdown"));
    }
}
