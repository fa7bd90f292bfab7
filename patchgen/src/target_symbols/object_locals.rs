//! What the pristine build of an object says about its own symbols: the
//! evidence that tells same-named statics of vmlinux apart (see `sympos`).

use std::collections::BTreeSet;

/// What the pristine build of one object says about its own symbols.
#[derive(Debug, Clone, Default)]
pub struct ObjectLocals {
    /// The object, relative to the tree (`fs/proc/cmdline.o`).
    pub object: String,
    /// Its `STT_FILE` symbol (the source file's base name), if it has one.
    pub file_symbol: Option<String>,
    /// Its local functions and data objects: (name, is a function).
    pub locals: BTreeSet<(String, bool)>,
}

impl ObjectLocals {
    /// Reads them from the pristine object.
    pub fn from_object(object: &str, file: &crate::ObjectFile) -> Self {
        use crate::elf::{Binding, SymbolKind};
        let file_symbol = file
            .symbols
            .iter()
            .find(|s| s.kind == SymbolKind::File && !s.name.is_empty())
            .map(|s| s.name.clone());
        let locals = file
            .symbols
            .iter()
            .filter(|s| s.binding == Binding::Local && s.section.is_some())
            .filter_map(|s| match s.kind {
                SymbolKind::Func => Some((s.name.clone(), true)),
                SymbolKind::Object => Some((s.name.clone(), false)),
                _ => None,
            })
            .collect();
        Self {
            object: object.to_string(),
            file_symbol,
            locals,
        }
    }
}
