//! The `-dbg` symbol table indexed for the position proof (`sympos`):
//! symbols by name, the statics of each file group, and whether a group is
//! a given pristine object.

use std::collections::{BTreeSet, HashMap};

use super::object_locals::ObjectLocals;
use super::vmlinux::{SymbolBinding, SymbolType, Symtab, SymtabSymbol};

/// Symbols of the `-dbg` table by name, and the locals of each file group.
pub(super) struct SymtabIndex<'a> {
    symtab: &'a Symtab,
    by_name: HashMap<&'a str, Vec<&'a SymtabSymbol>>,
}

impl<'a> SymtabIndex<'a> {
    /// Indexes `symtab`.
    pub(super) fn new(symtab: &'a Symtab) -> Self {
        let mut by_name: HashMap<&str, Vec<&SymtabSymbol>> = HashMap::new();
        for symbol in &symtab.symbols {
            by_name.entry(&symbol.name).or_default().push(symbol);
        }
        Self { symtab, by_name }
    }

    /// The symbols named `name`, in table order.
    pub(super) fn named(&self, name: &str) -> &[&'a SymtabSymbol] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The name of file symbol `file`, or a placeholder saying there is none.
    pub(super) fn file_name(&self, file: Option<usize>) -> &str {
        file.and_then(|f| self.symtab.files.get(f))
            .map_or("(no file symbol)", String::as_str)
    }

    /// The local functions and data objects after file symbol `file`.
    pub(super) fn group_locals(&self, file: usize) -> BTreeSet<(&str, bool)> {
        self.symtab
            .symbols
            .iter()
            .filter(|s| s.file == Some(file) && s.binding == SymbolBinding::Local)
            .filter_map(|s| match s.kind {
                SymbolType::Func => Some((s.name.as_str(), true)),
                SymbolType::Object => Some((s.name.as_str(), false)),
                SymbolType::Other => None,
            })
            .collect()
    }
}

/// Whether a file group of vmlinux is the pristine object: every local of
/// the group is one of the object's, and every local function of the object
/// is in the group. (The object may have local data the link discards,
/// such as `.discard.*` and `.exitcall.exit` entries.)
pub(super) fn group_is_object(group: &BTreeSet<(&str, bool)>, object: &ObjectLocals) -> bool {
    group
        .iter()
        .all(|(name, func)| object.locals.contains(&((*name).to_string(), *func)))
        && object
            .locals
            .iter()
            .filter(|(_, func)| *func)
            .all(|(name, _)| group.contains(&(name.as_str(), true)))
}

/// The candidates, listed for an error message.
pub(super) fn list_symbols(index: &SymtabIndex<'_>, symbols: &[&SymtabSymbol]) -> String {
    symbols
        .iter()
        .map(|s| {
            format!(
                "{:#x} ({} bytes, after file symbol {})",
                s.address,
                s.size,
                index.file_name(s.file)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
