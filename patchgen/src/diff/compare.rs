//! Comparison by meaning: two versions of a function (or data object) are
//! the same when their bytes match outside relocated fields and their
//! relocations match in offset, type and target identity. A target's
//! identity is the correlated symbol, the contents of a string literal, or
//! a named symbol inside the referenced section, never a section offset or
//! a symbol index.

use crate::diff::correlate::{never_correlated, normalize, Correlation};
use crate::diff::lines::{only_line_churn, only_line_churn_in_string, LineMap};
use crate::elf::{ObjectFile, Reloc, Symbol, SymbolKind};

// Where relocations point is the same question for correlation, which
// comes first; these were defined here and are still reachable here.
pub use crate::diff::targets::{symbol_at, symbol_at_reloc, target_offset};

/// Which of the two objects a symbol belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The original build.
    Orig,
    /// The fixed build.
    Fixed,
}

/// What a relocation points at, comparable across the two objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A defined symbol of the original object (fixed symbols map through
    /// the correlation), plus an offset from it.
    Symbol(usize, i64),
    /// A defined symbol of the fixed object with no original counterpart.
    New(usize, i64),
    /// An undefined (external) symbol, by name.
    External(String, i64),
    /// A string literal, by contents (and the offset into it).
    String(Vec<u8>, i64),
    /// A per-site static that is never correlated (`__key`, `__func__`,
    /// `__already_done`, ...): the same when the normalized names match.
    PerSite(String, i64),
    /// Anything else: a section by normalized name, at an offset.
    Section(String, i64),
    /// A snippet of a code section that every function of the object
    /// shares (`static_cpu_has()`'s test in `.altinstr_aux`): by its bytes
    /// (relocated fields zeroed) and its relocations' targets, never its
    /// offset, which moves when another function gains or loses one.
    Snippet(Vec<u8>, Vec<(u64, u32, Identity)>, i64),
}

/// Sections of code shared by every function of an object: the replacement
/// instructions of alternatives and the aux code of `static_cpu_has()`.
pub fn is_shared_code(name: &str) -> bool {
    name == ".altinstr_replacement" || name == ".altinstr_aux"
}

/// The identity of the snippet of shared code section `section` that
/// starts at or contains `offset`: from there to the next place other code
/// enters the section.
fn snippet(
    obj: &ObjectFile,
    side: Side,
    corr: &Correlation,
    section: usize,
    offset: i64,
    delta: i64,
) -> Identity {
    let Some(sec) = obj.sections.get(section) else {
        return Identity::Section(String::new(), offset);
    };
    let Ok(start) = u64::try_from(offset) else {
        return Identity::Section(sec.name.clone(), offset);
    };
    let entries = obj.entry_points(section);
    let end = entries
        .iter()
        .copied()
        .find(|&e| e > start)
        .unwrap_or(sec.size)
        .min(sec.size);
    let mut bytes = obj
        .bytes(section, start, end.saturating_sub(start))
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let mut targets = Vec::new();
    for r in sec
        .relocs
        .iter()
        .filter(|r| r.offset >= start && r.offset < end)
    {
        let at = r.offset - start;
        for i in 0..u64::from(r.size) {
            if let Some(b) = usize::try_from(at + i).ok().and_then(|i| bytes.get_mut(i)) {
                *b = 0;
            }
        }
        // Targets in shared code again (a jump within the section) are
        // relative to this snippet, never followed.
        let inner = obj
            .symbols
            .get(r.symbol)
            .and_then(|t| t.section)
            .and_then(|ts| obj.sections.get(ts))
            .is_some_and(|ts| is_shared_code(&ts.name));
        let id = if inner {
            Identity::Section(sec.name.clone(), target_offset(r) - offset)
        } else {
            identity(obj, side, corr, r)
        };
        targets.push((at, r.r_type, id));
    }
    Identity::Snippet(bytes, targets, delta)
}

/// A literal of a mergeable section by contents: a NUL-terminated string,
/// or one constant of the section's entry size.
fn literal(sec: &crate::elf::Section, offset: i64, delta: i64) -> Option<Identity> {
    if sec.is_strings() {
        return c_string_at(&sec.data, offset).map(|s| Identity::String(s, delta));
    }
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(sec.entsize.max(1)).ok()?;
    let bytes = sec.data.get(start..start.checked_add(len)?)?;
    Some(Identity::String(bytes.to_vec(), delta))
}

fn c_string_at(data: &[u8], offset: i64) -> Option<Vec<u8>> {
    let start = usize::try_from(offset).ok()?;
    let rest = data.get(start..)?;
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    rest.get(..end).map(<[u8]>::to_vec)
}

/// The identity of a relocation's target.
pub fn identity(obj: &ObjectFile, side: Side, corr: &Correlation, r: &Reloc) -> Identity {
    let Some(sym) = obj.symbols.get(r.symbol) else {
        return Identity::Section(String::new(), r.addend);
    };
    symbol_identity(obj, side, corr, sym, r)
}

fn symbol_identity(
    obj: &ObjectFile,
    side: Side,
    corr: &Correlation,
    sym: &Symbol,
    r: &Reloc,
) -> Identity {
    let Some(section) = sym.section else {
        return Identity::External(sym.name.clone(), r.addend);
    };
    if sym.kind != SymbolKind::Section {
        if let Some(sec) = obj.sections.get(section).filter(|s| s.is_mergeable()) {
            // A named literal (.LC label): by contents.
            let start = i64::try_from(sym.value)
                .unwrap_or(i64::MAX)
                .saturating_add(target_offset(r));
            if let Some(id) = literal(sec, start, r.addend.saturating_sub(target_offset(r))) {
                return id;
            }
        }
        if never_correlated(obj, sym) {
            return Identity::PerSite(normalize(&sym.name), r.addend);
        }
    }
    if obj
        .sections
        .get(section)
        .is_some_and(|s| is_shared_code(&s.name))
    {
        let base = i64::try_from(sym.value).unwrap_or(i64::MAX);
        let off = base.saturating_add(target_offset(r));
        return snippet(obj, side, corr, section, off, r.addend - target_offset(r));
    }
    if sym.kind == SymbolKind::Section {
        let Some(sec) = obj.sections.get(section) else {
            return Identity::Section(String::new(), r.addend);
        };
        let off = target_offset(r);
        if sec.is_mergeable() {
            if let Some(id) = literal(sec, off, r.addend.saturating_sub(off)) {
                return id;
            }
        }
        if let Some(named) = symbol_at_reloc(obj, section, r) {
            let delta = r
                .addend
                .saturating_sub(i64::try_from(named.value).unwrap_or(i64::MAX));
            if never_correlated(obj, named) {
                return Identity::PerSite(normalize(&named.name), delta);
            }
            return defined(side, corr, named.index, delta);
        }
        return Identity::Section(normalize(&sec.name), r.addend);
    }
    defined(side, corr, sym.index, r.addend)
}

fn defined(side: Side, corr: &Correlation, index: usize, delta: i64) -> Identity {
    match side {
        Side::Orig => Identity::Symbol(index, delta),
        Side::Fixed => match corr.to_orig.get(&index) {
            Some(&o) => Identity::Symbol(o, delta),
            None => Identity::New(index, delta),
        },
    }
}

/// A byte range of one object: a function or a data object.
#[derive(Debug, Clone, Copy)]
pub struct Extent {
    /// Section index.
    pub section: usize,
    /// Start offset.
    pub start: u64,
    /// Length.
    pub len: u64,
}

impl Extent {
    /// The extent of a defined symbol.
    pub fn of(sym: &Symbol) -> Option<Self> {
        Some(Self {
            section: sym.section?,
            start: sym.value,
            len: sym.size,
        })
    }

    fn relocs<'a>(&self, obj: &'a ObjectFile) -> impl Iterator<Item = &'a Reloc> {
        let (start, end) = (self.start, self.start.saturating_add(self.len));
        obj.sections
            .get(self.section)
            .map(|s| s.relocs.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(move |r| r.offset >= start && r.offset < end)
    }
}

/// Compares two extents by meaning. `None` when they are the same, else a
/// short description of the first difference.
pub fn compare(
    orig: &ObjectFile,
    o: Extent,
    fixed: &ObjectFile,
    f: Extent,
    corr: &Correlation,
    lines: &LineMap,
) -> Option<String> {
    if o.len != f.len {
        return Some(format!("size {} -> {}", o.len, f.len));
    }
    let nobits = |obj: &ObjectFile, e: Extent| {
        obj.sections
            .get(e.section)
            .is_some_and(|s| s.data.is_empty())
    };
    let ob = if nobits(orig, o) {
        Some(&[][..])
    } else {
        orig.bytes(o.section, o.start, o.len)
    };
    let fb = if nobits(fixed, f) {
        Some(&[][..])
    } else {
        fixed.bytes(f.section, f.start, f.len)
    };
    let (Some(ob), Some(fb)) = (ob, fb) else {
        return Some("extent outside its section".to_string());
    };
    let (mut ob, mut fb) = (ob.to_vec(), fb.to_vec());
    let orel: Vec<&Reloc> = o.relocs(orig).collect();
    let frel: Vec<&Reloc> = f.relocs(fixed).collect();
    for (bytes, rels, base) in [(&mut ob, &orel, o.start), (&mut fb, &frel, f.start)] {
        for r in rels.iter() {
            let at = r.offset.saturating_sub(base);
            for i in 0..u64::from(r.size) {
                if let Some(b) = usize::try_from(at.saturating_add(i))
                    .ok()
                    .and_then(|i| bytes.get_mut(i))
                {
                    *b = 0;
                }
            }
        }
    }
    if ob != fb && !only_line_churn(&ob, &fb, lines) {
        let at = ob.iter().zip(&fb).position(|(a, b)| a != b).unwrap_or(0);
        return Some(format!("code or data differs at +{at:#x}"));
    }
    if orel.len() != frel.len() {
        return Some(format!("{} -> {} relocations", orel.len(), frel.len()));
    }
    for (a, b) in orel.iter().zip(&frel) {
        if a.offset - o.start != b.offset - f.start || a.r_type != b.r_type {
            return Some(format!("relocation at +{:#x} differs", a.offset - o.start));
        }
        let ia = identity(orig, Side::Orig, corr, a);
        let ib = identity(fixed, Side::Fixed, corr, b);
        if let (Identity::String(sa, da), Identity::String(sb, db)) = (&ia, &ib) {
            if da == db && only_line_churn_in_string(sa, sb, lines) {
                continue;
            }
        }
        if ia != ib {
            return Some(format!(
                "relocation at +{:#x} targets {} -> {}",
                a.offset - o.start,
                describe(orig, &ia, orig),
                describe(fixed, &ib, orig)
            ));
        }
    }
    None
}

/// A short human name for an identity.
pub fn describe(obj: &ObjectFile, id: &Identity, orig: &ObjectFile) -> String {
    match id {
        Identity::Symbol(i, d) => {
            format!("{}{:+}", orig.symbols.get(*i).map_or("?", |s| &s.name), d)
        }
        Identity::New(i, d) => format!(
            "new {}{:+}",
            obj.symbols.get(*i).map_or("?", |s| &s.name),
            d
        ),
        Identity::External(n, d) => format!("{n}{d:+}"),
        Identity::String(s, _) => format!("\"{}\"", String::from_utf8_lossy(s).escape_debug()),
        Identity::PerSite(n, d) => format!("per-site {n}{d:+}"),
        Identity::Section(n, d) => format!("{n}{d:+}"),
        Identity::Snippet(b, t, _) => {
            format!("shared code ({} bytes, {} relocations)", b.len(), t.len())
        }
    }
}
