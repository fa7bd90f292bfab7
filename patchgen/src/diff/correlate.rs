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

use super::targets::symbol_at_reloc;
use crate::elf::{Binding, ObjectFile, Symbol, SymbolKind};

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
    /// Function-scope statics of the original object -> the symbols that use them.
    pub orig_static_users: HashMap<usize, Vec<usize>>,
    /// Function-scope statics of the fixed object -> the symbols that use them.
    pub fixed_static_users: HashMap<usize, Vec<usize>>,
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

/// Whether a symbol is a function-scope static (`buf.0`): a local data
/// object whose name is an identifier followed by the compiler's number.
/// The number is given per object in an order the fix can change, so such a
/// symbol is identified by the code and data that use it, never by it.
pub fn is_static_local(s: &Symbol) -> bool {
    if s.binding != Binding::Local || !matches!(s.kind, SymbolKind::Object | SymbolKind::Other) {
        return false;
    }
    let Some((base, number)) = s.name.rsplit_once('.') else {
        return false;
    };
    !base.is_empty()
        && !base.contains('.')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// For every symbol of `wanted`, the defined symbols whose bytes refer to
/// it (through a relocation naming it, or naming its section at an offset
/// inside it), in the order of their first reference.
fn referrers(obj: &ObjectFile, wanted: &[usize]) -> HashMap<usize, Vec<usize>> {
    let mut out: HashMap<usize, Vec<usize>> = HashMap::new();
    let sections: std::collections::HashSet<usize> = wanted
        .iter()
        .filter_map(|&i| obj.symbols[i].section)
        .collect();
    let wanted: std::collections::HashSet<usize> = wanted.iter().copied().collect();
    for sec in obj.sections.iter().filter(|s| s.is_alloc()) {
        // The defined symbols of this section, by offset, to attribute each
        // relocation to the function or object it lies in.
        let mut owners: Vec<&Symbol> = obj
            .symbols_in(sec.index)
            .filter(|s| matches!(s.kind, SymbolKind::Func | SymbolKind::Object) && s.size > 0)
            .collect();
        if owners.is_empty() {
            continue;
        }
        owners.sort_by_key(|s| s.value);
        for r in &sec.relocs {
            let Some(target) = obj.symbols.get(r.symbol) else {
                continue;
            };
            if !target.section.is_some_and(|s| sections.contains(&s)) {
                continue;
            }
            let starts_before = owners.partition_point(|s| s.value <= r.offset);
            let Some(owner) = owners[..starts_before]
                .iter()
                .rev()
                .find(|s| r.offset < s.value.saturating_add(s.size))
            else {
                continue;
            };
            let target = match (target.kind, target.section) {
                (SymbolKind::Section, Some(tsec)) => match symbol_at_reloc(obj, tsec, r) {
                    Some(t) => t.index,
                    None => continue,
                },
                _ => target.index,
            };
            if target == owner.index || !wanted.contains(&target) {
                continue;
            }
            let list = out.entry(target).or_default();
            if !list.contains(&owner.index) {
                list.push(owner.index);
            }
        }
    }
    out
}

/// Correlates the defined functions and data objects of two objects.
pub fn correlate(orig: &ObjectFile, fixed: &ObjectFile) -> Correlation {
    let mut c = Correlation::default();
    let index = |obj: &ObjectFile| {
        let mut map: HashMap<(String, bool), Vec<usize>> = HashMap::new();
        for s in obj
            .symbols
            .iter()
            .filter(|s| correlatable(obj, s) && !is_static_local(s))
        {
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

    // 2. Other duplicates left over (clones of one function with other
    //    numbers): pair them through the relocations of the functions
    //    already paired, walking both versions side by side.
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
            let ot = orel.iter().map(|r| &orig.symbols[r.symbol]);
            let ft = frel.iter().map(|r| &fixed.symbols[r.symbol]);
            for (a, b) in ot.zip(ft) {
                if correlatable(orig, a)
                    && correlatable(fixed, b)
                    && !is_static_local(a)
                    && !is_static_local(b)
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

    // 3. Function-scope statics, through the functions (and data) that use
    //    them: `buf.1` of the original is `buf.2` of the fixed build when
    //    the same function uses both. Repeated until nothing new is learned,
    //    since a static may be used only by another static.
    correlate_static_locals(orig, fixed, &mut c);
    c
}

/// Pairs the function-scope statics of the two objects by their users (see
/// [`correlate`]). A static is paired only when the pairing is unique: one
/// candidate of its name among the statics of its users' counterparts, or,
/// where one function has several statics of one name, the same number of
/// them used in the same order.
fn correlate_static_locals(orig: &ObjectFile, fixed: &ObjectFile, c: &mut Correlation) {
    let statics = |obj: &ObjectFile| -> Vec<usize> {
        obj.symbols
            .iter()
            .filter(|s| correlatable(obj, s) && is_static_local(s))
            .map(|s| s.index)
            .collect()
    };
    let (os, fs) = (statics(orig), statics(fixed));
    if os.is_empty() || fs.is_empty() {
        return;
    }
    let (oref, fref) = (referrers(orig, &os), referrers(fixed, &fs));
    // The statics each symbol uses, per normalized name, in order of use.
    let uses = |obj: &ObjectFile, statics: &[usize], refs: &HashMap<usize, Vec<usize>>| {
        let mut out: HashMap<(usize, String), Vec<usize>> = HashMap::new();
        for &s in statics {
            for &user in refs.get(&s).map(Vec::as_slice).unwrap_or_default() {
                out.entry((user, normalize(&obj.symbols[s].name)))
                    .or_default()
                    .push(s);
            }
        }
        out
    };
    let (ouses, fuses) = (uses(orig, &os, &oref), uses(fixed, &fs, &fref));
    loop {
        let before = c.to_fixed.len();
        // Candidates proposed by each pair of users; a static with two
        // different proposals is left alone.
        let mut proposals: HashMap<usize, Option<usize>> = HashMap::new();
        let mut taken: HashMap<usize, Option<usize>> = HashMap::new();
        for ((user, name), olist) in &ouses {
            let Some(&fuser) = c.to_fixed.get(user) else {
                continue;
            };
            let Some(flist) = fuses.get(&(fuser, name.clone())) else {
                continue;
            };
            let olist: Vec<usize> = olist
                .iter()
                .copied()
                .filter(|o| !c.to_fixed.contains_key(o))
                .collect();
            let flist: Vec<usize> = flist
                .iter()
                .copied()
                .filter(|f| !c.to_orig.contains_key(f))
                .collect();
            if olist.len() != flist.len() {
                continue;
            }
            for (&o, &f) in olist.iter().zip(&flist) {
                let p = proposals.entry(o).or_insert(Some(f));
                if *p != Some(f) {
                    *p = None;
                }
                let t = taken.entry(f).or_insert(Some(o));
                if *t != Some(o) {
                    *t = None;
                }
            }
        }
        for (o, f) in proposals {
            if let Some(f) = f {
                if taken.get(&f) == Some(&Some(o)) && orig.symbols[o].kind == fixed.symbols[f].kind
                {
                    c.pair(o, f);
                }
            }
        }
        if c.to_fixed.len() == before {
            break;
        }
    }
    c.orig_static_users = oref;
    c.fixed_static_users = fref;
}

/// The first function-scope static that shipped function `f` (fixed
/// index) uses without a counterpart in the original build while its
/// original uses an unmatched static of the same name: which of them is
/// the running kernel's cannot be told. Returns (name, the original's
/// candidates).
pub fn ambiguous_static(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    c: &Correlation,
    f: usize,
) -> Option<(String, String)> {
    let o = *c.to_orig.get(&f)?;
    let mut unmatched_orig: Vec<(String, &str)> = c
        .orig_static_users
        .iter()
        .filter(|(s, users)| users.contains(&o) && !c.to_fixed.contains_key(s))
        .map(|(&s, _)| {
            (
                normalize(&orig.symbols[s].name),
                orig.symbols[s].name.as_str(),
            )
        })
        .collect();
    unmatched_orig.sort();
    let mut new_fixed: Vec<String> = c
        .fixed_static_users
        .iter()
        .filter(|(s, users)| users.contains(&f) && !c.to_orig.contains_key(s))
        .map(|(&s, _)| normalize(&fixed.symbols[s].name))
        .collect();
    new_fixed.sort();
    new_fixed.into_iter().find_map(|name| {
        let candidates: Vec<&str> = unmatched_orig
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, full)| *full)
            .collect();
        (!candidates.is_empty()).then(|| (name, candidates.join(", ")))
    })
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
