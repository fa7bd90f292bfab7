//! Correlation: which symbol of the fixed object is which symbol of the
//! original one.
//!
//! Names are compared after dropping the numbers the compiler and the
//! preprocessor make up per build (`foo.isra.0`, `foo.constprop.3`, `var.12`,
//! `__UNIQUE_ID_ddebug431`). Where a normalized name still occurs more than
//! once (two static locals `count.1`, `count.2` of different functions),
//! symbols are paired through the functions that reference them, walking
//! both versions' relocations side by side. Special statics whose state must
//! not carry over, or whose identity is per call site, are never correlated.

use std::collections::HashMap;

use crate::elf::{ObjectFile, Symbol, SymbolKind};

/// Normalized names (and prefixes) of statics that are never correlated: a
/// fixed function gets fresh ones.
const NEVER_CORRELATED: &[&str] = &[
    "__key",
    "__warned",
    "__already_done",
    "__func__",
    "__FUNCTION__",
    "__PRETTY_FUNCTION__",
    "_rs",
    "CSWTCH",
    "__print_once",
    "__once",
    "descriptor",
    "_entry",
    "_entry_ptr",
    "__UNIQUE_ID_ddebug",
];

/// Sections whose contents are per call site and never correlated.
const NEVER_CORRELATED_SECTIONS: &[&str] = &[".data.once", ".data..once", "__dyndbg"];

/// Drops compiler- and preprocessor-made numbers from a symbol name.
///
/// `foo.isra.0` -> `foo.isra`, `foo.constprop.0.isra.0` -> `foo.constprop.isra`,
/// `var.12` -> `var`, `__UNIQUE_ID_ddebug431` -> `__UNIQUE_ID_ddebug`,
/// `foo.llvm.123456` -> `foo.llvm`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, part) in name.split('.').enumerate() {
        if i > 0 && !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if i > 0 {
            out.push('.');
        }
        out.push_str(part);
    }
    // Macro-made names end in a per-build counter: __UNIQUE_ID_x123,
    // __BTF_ID__struct__bpf_map__456.
    for prefix in ["__UNIQUE_ID_", "__BTF_ID__"] {
        if let Some(rest) = out.strip_prefix(prefix) {
            let trimmed = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            return format!("{prefix}{trimmed}");
        }
    }
    out
}

/// Whether a symbol must never be correlated (see [`NEVER_CORRELATED`]).
pub fn never_correlated(obj: &ObjectFile, sym: &Symbol) -> bool {
    let key = normalize(&sym.name);
    if NEVER_CORRELATED
        .iter()
        .any(|n| key == *n || key.starts_with(n))
    {
        return true;
    }
    sym.section
        .and_then(|i| obj.sections.get(i))
        .is_some_and(|s| NEVER_CORRELATED_SECTIONS.iter().any(|n| s.name == *n))
}

/// The function a clone or split part belongs to: `foo.cold` -> `foo`,
/// `foo.part.0` -> `foo`, `foo.isra.0.cold` -> `foo.isra.0`.
pub fn parent_name(name: &str) -> Option<&str> {
    if let Some(p) = name.strip_suffix(".cold") {
        return Some(p);
    }
    name.find(".part.").map(|i| &name[..i])
}

/// Pairs of symbol indices: original -> fixed, and back.
#[derive(Debug, Default, Clone)]
pub struct Correlation {
    /// orig symbol index -> fixed symbol index
    pub to_fixed: HashMap<usize, usize>,
    /// fixed symbol index -> orig symbol index
    pub to_orig: HashMap<usize, usize>,
}

impl Correlation {
    fn pair(&mut self, orig: usize, fixed: usize) {
        if self.to_fixed.contains_key(&orig) || self.to_orig.contains_key(&fixed) {
            return;
        }
        self.to_fixed.insert(orig, fixed);
        self.to_orig.insert(fixed, orig);
    }
}

fn correlatable(obj: &ObjectFile, s: &Symbol) -> bool {
    // Untyped labels too (BTF id sets, asm labels), but not the
    // assembler's local literals (.LC, .L), which compare by contents.
    s.section.is_some()
        && matches!(
            s.kind,
            SymbolKind::Func | SymbolKind::Object | SymbolKind::Other
        )
        && !s.name.is_empty()
        && !s.name.starts_with(".L")
        && !never_correlated(obj, s)
}

/// Correlates the defined functions and data objects of two objects.
pub fn correlate(orig: &ObjectFile, fixed: &ObjectFile) -> Correlation {
    let mut c = Correlation::default();
    let index = |obj: &ObjectFile| {
        let mut map: HashMap<(String, bool), Vec<usize>> = HashMap::new();
        for s in obj.symbols.iter().filter(|s| correlatable(obj, s)) {
            map.entry((normalize(&s.name), s.kind == SymbolKind::Func))
                .or_default()
                .push(s.index);
        }
        map
    };
    let orig_index = index(orig);
    let fixed_index = index(fixed);

    // 1. Unique normalized names, and exact names among duplicates.
    for (key, o) in &orig_index {
        let Some(f) = fixed_index.get(key) else {
            continue;
        };
        if o.len() == 1 && f.len() == 1 {
            c.pair(o[0], f[0]);
            continue;
        }
        for &oi in o {
            if let Some(&fi) = f
                .iter()
                .find(|&&fi| fixed.symbols[fi].name == orig.symbols[oi].name)
            {
                c.pair(oi, fi);
            }
        }
    }

    // 2. Duplicates left over: pair them through the relocations of the
    //    functions already paired (a static local belongs to one function),
    //    until nothing new is learned.
    loop {
        let before = c.to_fixed.len();
        let pairs: Vec<(usize, usize)> = c.to_fixed.iter().map(|(&o, &f)| (o, f)).collect();
        for (o, f) in pairs {
            let (os, fs) = (&orig.symbols[o], &fixed.symbols[f]);
            if os.kind != SymbolKind::Func {
                continue;
            }
            let (Some(osec), Some(fsec)) = (os.section, fs.section) else {
                continue;
            };
            let (orel, frel) = (&orig.sections[osec].relocs, &fixed.sections[fsec].relocs);
            // Walk the targets in order; stop at the first divergence in kind.
            let ot = orel.iter().map(|r| &orig.symbols[r.symbol]);
            let ft = frel.iter().map(|r| &fixed.symbols[r.symbol]);
            for (a, b) in ot.zip(ft) {
                if correlatable(orig, a)
                    && correlatable(fixed, b)
                    && a.kind == b.kind
                    && normalize(&a.name) == normalize(&b.name)
                {
                    c.pair(a.index, b.index);
                }
            }
        }
        if c.to_fixed.len() == before {
            break;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_made_up_numbers() {
        for (raw, want) in [
            ("foo", "foo"),
            ("foo.isra.0", "foo.isra"),
            ("foo.constprop.0.isra.0", "foo.constprop.isra"),
            ("foo.part.3", "foo.part"),
            ("foo.cold", "foo.cold"),
            ("var.12", "var"),
            ("foo.llvm.123456", "foo.llvm"),
            ("__UNIQUE_ID_ddebug431", "__UNIQUE_ID_ddebug"),
            (
                "__UNIQUE_ID___addressable_foo512",
                "__UNIQUE_ID___addressable_foo",
            ),
            ("x86_64", "x86_64"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
    }

    #[test]
    fn parents_of_split_parts() {
        assert_eq!(parent_name("foo.cold"), Some("foo"));
        assert_eq!(parent_name("foo.part.0"), Some("foo"));
        assert_eq!(parent_name("foo.isra.0.cold"), Some("foo.isra.0"));
        assert_eq!(parent_name("foo.isra.0"), None);
    }
}
