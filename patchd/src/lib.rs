//! patchd: suture's server side, which puts live patches into a running
//! Linux kernel.
//!
//! This first piece is the user-space link step. Patch modules and the
//! companion module reference kernel symbols that are not exported (static
//! functions, globals of other modules); the kernel's loader cannot resolve
//! them, so patchd does, exactly, from `/proc/kallsyms`, and rewrites them as
//! absolute symbols before `init_module`:
//!
//! - [`kallsyms`] parses `/proc/kallsyms`, tells exported from non-exported
//!   symbols and resolves a name to one definition, refusing ambiguity;
//! - [`link`] finds a module's undefined symbols and rewrites them;
//! - [`load`] decides whether a module needs linking, refuses early what the
//!   kernel would refuse (lockdown), links and loads;
//! - [`kernel`] is the one trait through which patchd touches the kernel,
//!   with the real implementation and a recording fake for tests.
//!
//! The library never panics on its input: module files and kallsyms text are
//! untrusted, and every offset and size from them is checked.

mod elf;
pub mod kallsyms;
pub mod kernel;
pub mod link;
pub mod load;

pub use kallsyms::{Kallsyms, KallsymsError, Resolved, SymbolRecord};
pub use kernel::{FakeKernel, Kernel, KernelCall, KernelError, RealKernel};
pub use link::{link_module, strip_signature, undefined_symbols, LinkError, LinkedModule};
pub use load::{load_module, LoadError, LoadReport};
