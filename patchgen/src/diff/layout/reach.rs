//! What shipped code can reach, in the fixed build's DWARF: the subtrees of
//! the shipped functions' subprogram DIEs (abstract and concrete; inlined
//! callees through their abstract instances), the variables their code's
//! relocations name, and from there every type reference, transitively.
//!
//! One walk serves all shipped functions. Which of them reach a type is
//! only worked out for the types that changed, by walking again, recording
//! the references, and following them backwards: most diffs change no
//! layout (so the references are not kept in the first walk), and a patch
//! can ship dozens of functions that all reach most of the object's types.

use std::collections::BTreeMap;

use super::fast::{narrow, wide, FastMap, FastSet};
use super::index::Dies;
use super::types::{Defined, Held, Key, Side};
use super::LayoutError;
use crate::diff::targets::target_offset;
use crate::elf::{is_pc_relative, ObjectFile, Reloc, Symbol, SymbolKind};

/// What the walk from the shipped functions found.
#[derive(Debug)]
pub(super) struct Reached<'a> {
    /// The DIEs that may define a compared type, by scope and key.
    pub types: BTreeMap<Defined<'a>, Dies>,
    /// Each shipped function (as named by the caller) and the DIEs its
    /// walk starts from.
    roots: Vec<(String, Vec<usize>)>,
    /// Who refers to each DIE (by reference or by holding it), built on
    /// the first question by walking again.
    referrers: Option<FastMap<u32, Vec<u32>>>,
}

/// Walks from `shipped` through the fixed build `new`.
pub(super) fn reach<'a>(
    new: &mut Side<'_, 'a>,
    fixed: &ObjectFile,
    shipped: &[String],
) -> Result<Reached<'a>, LayoutError> {
    let mut roots = Vec::new();
    let mut statics: Vec<(usize, &Symbol)> = Vec::new();
    for (i, function) in shipped.iter().enumerate() {
        let base = function.split('.').next().unwrap_or_default();
        let mut from = new.subprograms(base.as_bytes())?;
        for target in referenced_by(fixed, function) {
            let name = variable_name(&target.name);
            let at_top = new.index.variables.get(name.as_bytes()).map(Dies::as_slice);
            from.extend(at_top.into_iter().flatten());
            // A static local (`buf.3`), or a static the index does not
            // know by name: found through its DW_OP_addr.
            if target.section.is_some() && (target.name.contains('.') || at_top.is_none()) {
                statics.push((i, target));
            }
        }
        roots.push((function.clone(), from));
    }
    for (i, die) in locate_statics(new, fixed, &statics)? {
        if let Some((_, from)) = roots.get_mut(i) {
            from.push(die);
        }
    }

    let mut types = BTreeMap::new();
    walk(new, &roots, Some(&mut types), None)?;
    Ok(Reached {
        types,
        roots,
        referrers: None,
    })
}

/// Walks from `roots` through `new`: records in `types` the DIEs that may
/// define a compared type, and in `edges` (DIE, walked DIE that refers to
/// it or holds it) for every reference and definition in every walked
/// subtree.
fn walk<'a>(
    new: &mut Side<'_, 'a>,
    roots: &[(String, Vec<usize>)],
    mut types: Option<&mut BTreeMap<Defined<'a>, Dies>>,
    mut edges: Option<&mut Vec<(u32, u32)>>,
) -> Result<(), LayoutError> {
    let mut walked = Bits::new(new.dwarf.info_len());
    let mut stack: Vec<u32> = roots
        .iter()
        .flat_map(|(_, r)| r.iter().map(|&d| narrow(d)))
        .collect();
    let mut seen_defs: FastSet<u32> = FastSet::default();
    let mut held = Held::default();
    let mut defs: Vec<(u32, Key<'a>)> = Vec::new();
    while let Some(offset) = stack.pop() {
        if !walked.insert(offset) {
            continue;
        }
        new.read_subtree(wide(offset), &mut held, false)?;
        for &r in &held.refs {
            if let Some(edges) = edges.as_mut().filter(|_| r != offset) {
                edges.push((r, offset));
            }
            if !walked.contains(r) {
                stack.push(r);
            }
        }
        if let Some(edges) = edges.as_mut() {
            let held_defs = held.defs.iter().filter(|&&(d, _)| d != offset);
            edges.extend(held_defs.map(|&(d, _)| (d, offset)));
        }
        let Some(types) = types.as_mut() else {
            continue;
        };
        defs.clear();
        defs.extend(held.defs.iter().filter(|(d, _)| !seen_defs.contains(d)));
        for &(d, key) in &defs {
            if !seen_defs.insert(d) || !new.may_define(wide(d), key)? {
                continue;
            }
            let defined = (new.scope_of(wide(d))?, key);
            types
                .entry(defined)
                .and_modify(|dies| dies.push(wide(d)))
                .or_insert(Dies::One(wide(d)));
        }
    }
    Ok(())
}

/// A set of `.debug_info` offsets, one bit each: the walk asks it tens of
/// thousands of times.
#[derive(Debug)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }

    fn contains(&self, at: u32) -> bool {
        let at = wide(at);
        self.0
            .get(at / 64)
            .is_some_and(|w| w & (1 << (at % 64)) != 0)
    }

    /// Adds `at`; whether it was absent. An offset outside the section is
    /// never recorded: reading it fails.
    fn insert(&mut self, at: u32) -> bool {
        let at = wide(at);
        match self.0.get_mut(at / 64) {
            Some(w) => {
                let bit = 1 << (at % 64);
                let absent = *w & bit == 0;
                *w |= bit;
                absent
            }
            None => true,
        }
    }
}

impl<'a> Reached<'a> {
    /// The shipped functions whose walk through `new` reaches any of
    /// `defs`, in the order given.
    pub(super) fn users(
        &mut self,
        new: &mut Side<'_, 'a>,
        defs: &[usize],
    ) -> Result<Vec<String>, LayoutError> {
        if self.referrers.is_none() {
            let mut edges = Vec::new();
            walk(new, &self.roots, None, Some(&mut edges))?;
            let mut referrers: FastMap<u32, Vec<u32>> = FastMap::default();
            for (target, n) in edges {
                referrers.entry(target).or_default().push(n);
            }
            self.referrers = Some(referrers);
        }
        let referrers = self.referrers.get_or_insert_with(FastMap::default);
        let mut reaching: FastSet<u32> = defs.iter().map(|&d| narrow(d)).collect();
        let mut stack: Vec<u32> = reaching.iter().copied().collect();
        while let Some(d) = stack.pop() {
            for &r in referrers.get(&d).into_iter().flatten() {
                if reaching.insert(r) {
                    stack.push(r);
                }
            }
        }
        let mut users: Vec<String> = self
            .roots
            .iter()
            .filter(|(_, roots)| roots.iter().any(|&r| reaching.contains(&narrow(r))))
            .map(|(f, _)| f.clone())
            .collect();
        users.dedup();
        Ok(users)
    }
}

/// A data symbol's C name: without the `.N` that static locals and
/// compiler-made copies carry.
fn variable_name(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or_default()
}

/// Names a compiler gives to data it emits no variable DIE for.
fn is_compiler_data(name: &str) -> bool {
    matches!(
        name,
        "CSWTCH" | "__func__" | "__FUNCTION__" | "__PRETTY_FUNCTION__" | "__compound_literal"
    )
}

/// The data symbols the code of `function` refers to.
fn referenced_by<'o>(obj: &'o ObjectFile, function: &str) -> Vec<&'o Symbol> {
    let mut out: Vec<&'o Symbol> = Vec::new();
    let code = obj
        .symbols
        .iter()
        .filter(|s| s.name == function && s.kind == SymbolKind::Func);
    for sym in code {
        let Some(section) = sym.section.and_then(|i| obj.sections.get(i)) else {
            continue;
        };
        let (lo, hi) = (sym.value, sym.value.saturating_add(sym.size.max(1)));
        let start = section.relocs.partition_point(|r| r.offset < lo);
        let relocs = section.relocs.get(start..).unwrap_or_default();
        for r in relocs.iter().take_while(|r| r.offset < hi) {
            targets(obj, r, &mut out);
        }
    }
    out.retain(|s| {
        let name = variable_name(&s.name);
        !name.is_empty() && !is_compiler_data(name)
    });
    out.sort_by_key(|s| s.index);
    out.dedup_by_key(|s| s.index);
    out
}

/// Every data symbol `r` may designate. Like
/// `targets::symbol_at_reloc`, but a PC-relative field leaves open
/// whether 0, 1, 2 or 4 bytes of immediate follow it, and picking one
/// reading could miss the variable really used: all are taken.
fn targets<'o>(obj: &'o ObjectFile, r: &Reloc, out: &mut Vec<&'o Symbol>) {
    let Some(target) = obj.symbols.get(r.symbol) else {
        return;
    };
    if target.kind != SymbolKind::Section {
        if !matches!(target.kind, SymbolKind::Func | SymbolKind::File) {
            out.push(target);
        }
        return;
    }
    let Some(index) = target.section else { return };
    let Some(section) = obj.sections.get(index) else {
        return;
    };
    // Code (calls, jump labels) and literals have no variable DIE.
    if section.is_text() || section.is_mergeable() || !section.is_alloc() {
        return;
    }
    // The section's named symbols, but its own and file symbols.
    let candidates = || {
        obj.symbols_in(index)
            .filter(|s| s.kind != SymbolKind::File && !s.name.is_empty())
    };
    let base = target_offset(r);
    let immediates: &[i64] = if is_pc_relative(r.r_type) {
        &[0, 1, 2, 4]
    } else {
        &[0]
    };
    for &imm in immediates {
        let Ok(at) = u64::try_from(base.saturating_add(imm)) else {
            continue;
        };
        for s in candidates() {
            let end = s.value.saturating_add(s.size);
            // One past the end: a loop bound of the array before.
            let hit = s.value == at
                || (s.value <= at && at < end)
                || (s.kind == SymbolKind::Object && s.size > 0 && end == at);
            if hit && s.kind != SymbolKind::Func {
                out.push(s);
            }
        }
    }
}

/// The variable DIEs of `statics` (shipped function index, symbol): the
/// DIE whose `DW_AT_location` the relocations of `.debug_info` point at
/// the symbol, looked up by name in the top-level DIE holding it.
fn locate_statics(
    new: &mut Side<'_, '_>,
    fixed: &ObjectFile,
    statics: &[(usize, &Symbol)],
) -> Result<Vec<(usize, usize)>, LayoutError> {
    if statics.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_section: FastMap<usize, Vec<&Symbol>> = FastMap::default();
    let mut by_index: FastSet<usize> = FastSet::default();
    for &(_, s) in statics {
        by_index.insert(s.index);
        if let Some(section) = s.section {
            by_section.entry(section).or_default().push(s);
        }
    }
    // The symbols a relocation naming one of them may point at a static
    // through: the statics and their sections' symbols. Most of the
    // relocations of .debug_info name neither, and are passed over
    // without a look at their symbol.
    let named: Vec<bool> = fixed
        .symbols
        .iter()
        .map(|s| {
            let of_section = s.kind == SymbolKind::Section
                && s.section.is_some_and(|i| by_section.contains_key(&i));
            of_section || (s.kind != SymbolKind::Section && by_index.contains(&s.index))
        })
        .collect();
    // (symbol index, .debug_info offset of a field that holds its address)
    let mut sites: Vec<(usize, usize)> = Vec::new();
    for r in new
        .dwarf
        .sections
        .relocs(gimli::SectionId::DebugInfo)
        .iter()
    {
        if !named.get(r.symbol).copied().unwrap_or(false) {
            continue;
        }
        let Some(target) = fixed.symbols.get(r.symbol) else {
            continue;
        };
        let Ok(at) = usize::try_from(r.offset) else {
            continue;
        };
        if target.kind != SymbolKind::Section {
            if by_index.contains(&target.index) {
                sites.push((target.index, at));
            }
            continue;
        }
        let Ok(addend) = u64::try_from(r.addend) else {
            continue;
        };
        let candidates = target.section.and_then(|i| by_section.get(&i));
        for s in candidates.into_iter().flatten() {
            if s.value <= addend && addend < s.value.saturating_add(s.size.max(1)) {
                sites.push((s.index, at));
            }
        }
    }
    sites.sort_unstable();
    sites.dedup();
    let mut out = Vec::new();
    let mut held = Held::default();
    for (symbol, at) in sites {
        let Some(top) = new.index.containing(at) else {
            continue;
        };
        let Some(s) = fixed.symbols.get(symbol) else {
            continue;
        };
        let name = variable_name(&s.name).as_bytes();
        new.read_subtree(top, &mut held, true)?;
        let variables = &held.variables;
        // The variables of that name; and the variable DIE the address is
        // in, when it is a nameless concrete instance (the walk follows
        // its abstract origin).
        let mut dies: Vec<usize> = variables
            .iter()
            .filter(|(n, _)| *n == Some(name))
            .map(|&(_, d)| wide(d))
            .collect();
        let holder = variables.iter().rev().find(|&&(_, d)| wide(d) <= at);
        if let Some(&(None, d)) = holder {
            dies.push(wide(d));
        }
        for &(function, _) in statics.iter().filter(|(_, st)| st.index == symbol) {
            out.extend(dies.iter().map(|&d| (function, d)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Bits;

    #[test]
    fn bits_record_offsets_inside_the_section_only() {
        let mut bits = Bits::new(130);
        assert!(bits.insert(0));
        assert!(bits.insert(129));
        assert!(!bits.insert(129));
        assert!(bits.contains(0) && bits.contains(129) && !bits.contains(64));
        // Outside: never recorded, so never taken as walked.
        assert!(bits.insert(200));
        assert!(bits.insert(200));
        assert!(!bits.contains(200));
    }
}
