//! What kbuild builds for the target, and what each object's compilation
//! reads: asked of kbuild and the compiler themselves, never guessed from
//! the makefiles.
//!
//! - **Objects** (`record`): a dry run of the kernel's own make
//!   (`make -n -k vmlinux modules` in the prepared tree, about 15 s, with
//!   one harmless define added to every command so that objects already
//!   built in the tree are listed too) lists every compile command of the
//!   target's configuration. An object is part
//!   of the build exactly when kbuild would compile it, into vmlinux or a
//!   module (`-DMODULE`).
//! - **Dependencies** (`deps`): each listed compile command run with `-M
//!   -MG` instead of `-c -o`: the preprocessor's own list of every file the
//!   object's compilation reads, headers (macros included) and `#include`d
//!   `.c` files alike (`kernel/sched/build_policy.c` reads `rt.c`). About
//!   50 ms per object: some 6 minutes for the 13,700 objects of Debian's
//!   6.1 amd64 configuration on 2 CPUs, once per target.
//!
//! Both are cached in the tree (`.suture-kbuild/`), keyed by the target's
//! build id and `.config`, written to a private name and renamed, under a
//! lock so that parallel builds compute them once (`store`). Reading the
//! tree takes the tree's shared lock (see `compile::TreeLock`): no build
//! regenerates a header while the record is made.

mod deps;
mod dry_run;
mod record;
mod store;

use std::path::{Component, Path, PathBuf};

pub use deps::{make_rule_files, Deps};
pub use dry_run::compile_commands;
pub use record::Record;

/// One object kbuild compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The object as kbuild names it, relative to the tree: what `make`
    /// takes as a goal and what its `.cmd` file is named after
    /// (`arch/x86/kvm/../../../virt/kvm/kvm_main.o` for KVM's shared code).
    pub object: PathBuf,
    /// Its source as the compile command names it.
    pub source: PathBuf,
    /// Part of a module (`-DMODULE`) rather than vmlinux.
    pub module: bool,
}

impl Built {
    /// The source, with `.` and `..` resolved: the path a fix names.
    pub fn source_path(&self) -> PathBuf {
        normalize(&self.source)
    }
}

/// `path` with `.` and `..` resolved lexically (kbuild's paths are
/// relative to the tree and name no symbolic links).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
