//! The user-space link step: a patch module's references to non-exported
//! kernel symbols become absolute symbols before the kernel loads it.
//!
//! - [`module`] reads a module image once ([`ModuleImage`]): signature,
//!   `.modinfo` name, undefined symbols, on top of the ELF reader [`elf`];
//! - [`kallsyms`] parses `/proc/kallsyms` and resolves a symbol exactly, at
//!   the position its link record proves;
//! - [`rewrite`] rewrites each resolved symbol to `SHN_ABS` at its address;
//! - [`load`] decides whether a module needs linking, refuses what lockdown
//!   would refuse, links and calls `init_module`;
//! - [`compressed`] decompresses xz and zstd module files (DKMS's output
//!   where the kernel's modules are compressed);
//! - [`error`] is the error all of them share.

pub(crate) mod compressed;
pub(crate) mod elf;
pub mod error;
pub mod kallsyms;
pub mod load;
pub mod module;
pub mod rewrite;

pub use error::{Candidate, LinkError};
pub use module::{module_name, strip_signature, undefined_symbols, ModuleFacts, ModuleImage};
pub use rewrite::{link_module, LinkedModule};
