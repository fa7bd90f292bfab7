//! The one door between patchd and the running kernel.
//!
//! Every read of `/proc` or `/sys` and every syscall that changes the kernel
//! goes through [`Kernel`], so the logic above it (linking, loading, later
//! enabling and reverting) is tested without root against [`FakeKernel`].
//! Nothing outside this module may touch the kernel directly.

mod fake;
mod real;

use std::path::PathBuf;

use nix::errno::Errno;

pub use fake::{FakeKernel, KernelCall};
pub use real::RealKernel;

/// What patchd needs from the running kernel.
///
/// Reads are side-effect free; [`Kernel::load_module`] is the only call that
/// changes the kernel, so callers do every check before it.
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
    fn module_names_are_the_first_column() {
        let text = "ext4 999424 1 - Live 0xffffffffc0a00000\nsuture 16384 0 - Live 0x0000000000000000 (OE)\n\n";
        assert_eq!(parse_modules(text), ["ext4", "suture"]);
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
