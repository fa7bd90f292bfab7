//! What a built patch module needs linked into the running kernel: the
//! functions it replaces and the records of the kernel symbols it refers
//! to.
//!
//! The build makes them (`build::module`) and the position proof
//! (`target_symbols::sympos`) completes the records, so they live here,
//! where both can use them without depending on each other.

use serde::Serialize;
use suture_bundle::link_record::{LinkRecord, SymbolBinding};

/// One function the patch module replaces.
#[derive(Debug, Clone, Serialize)]
pub struct Replacement {
    /// The kernel's name of the replaced function.
    pub old_name: String,
    /// Its ELF size in the target build.
    pub old_size: u64,
    /// The module's symbol for the old function (what patchd links).
    pub old_symbol: String,
    /// The replacement's symbol in the module.
    pub new_symbol: String,
    /// The object file it comes from.
    pub object_file: String,
    /// Whether the old function is a static of its object.
    pub local: bool,
}

/// A link record as the build makes it: the link contract's record
/// (`suture_bundle::LinkRecord`, which the bundle ships and patchd
/// resolves) and, for the position proof only, the kernel object whose code
/// refers to the symbol.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BuildRecord {
    /// What patchd needs to resolve one undefined symbol of the module.
    pub record: LinkRecord,
    /// The kernel object (`vmlinux` or a module) whose code refers to it;
    /// `None` when not known. A non-exported symbol that vmlinux code uses
    /// is defined in vmlinux.
    pub from_object: Option<String>,
}

impl std::ops::Deref for BuildRecord {
    type Target = LinkRecord;

    fn deref(&self) -> &LinkRecord {
        &self.record
    }
}

impl std::ops::DerefMut for BuildRecord {
    fn deref_mut(&mut self) -> &mut LinkRecord {
        &mut self.record
    }
}

impl BuildRecord {
    /// A record for the module's `symbol`, the kernel's `name`: a static of
    /// `object` (`local`) or a global; `function`: code or data, if known.
    pub fn new(symbol: &str, name: &str, local: bool, function: Option<bool>) -> Self {
        Self {
            record: LinkRecord::new(symbol, name, Some(local), function),
            from_object: None,
        }
    }

    /// Whether the symbol is a static of its object.
    pub fn is_local(&self) -> bool {
        self.record.binding == SymbolBinding::Local
    }
}
