//! Who reaches a function: direct calls, and every other reference to it
//! (its address taken in code or stored in data). A changed function
//! without an ftrace site can be carried as a new copy only when every way
//! into the old copy in the running kernel is a direct call from code that
//! is redirected too; a stored pointer keeps running the old code.

use std::collections::BTreeSet;

use object::elf;

use super::correlate::parent_name;
use super::special;
use super::targets::target_offset;
use crate::elf::{ObjectFile, Reloc, SymbolKind};

/// One reference to a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The section the reference is in.
    pub section: usize,
    /// Its offset there.
    pub offset: u64,
    /// The function whose code holds it, if it is in a function.
    pub from: Option<usize>,
    /// Whether it is the target of a direct `call`/`jmp`/`jcc` to the
    /// function's entry.
    pub call: bool,
}

impl Use {
    /// Why this use is not a plain call from a function, if it is not: the
    /// address is taken, stored in data, or the call comes from code
    /// outside any function (alternatives' replacement code).
    pub fn address_taken(&self, obj: &ObjectFile) -> Option<String> {
        let sec = obj.sections.get(self.section)?;
        let from = self.from.and_then(|i| obj.symbols.get(i));
        match (sec.is_text(), from, self.call) {
            (true, Some(_), true) => None,
            (true, Some(f), false) => Some(format!(
                "{} takes its address (in its code at +{:#x})",
                f.name,
                self.offset - f.value
            )),
            (true, None, _) => Some(format!(
                "code in {} outside any function refers to it (at {:#x})",
                sec.name, self.offset
            )),
            (false, from, _) => Some(match from {
                Some(d) => format!("its address is stored in {} ({})", d.name, sec.name),
                None => format!(
                    "its address is stored in {} at {:#x}",
                    sec.name, self.offset
                ),
            }),
        }
    }
}

/// Whether relocation `r` of section `sec` refers to function `f` (its
/// symbol, or its section at its offset).
fn refers_to(obj: &ObjectFile, r: &Reloc, f: usize) -> bool {
    let Some(target) = obj.symbols.get(r.symbol) else {
        return false;
    };
    if target.index == f {
        return true;
    }
    let sym = &obj.symbols[f];
    target.kind == SymbolKind::Section
        && target.section == sym.section
        && i64::try_from(sym.value).is_ok_and(|v| {
            let off = target_offset(r);
            // Any reference into the function's bytes counts.
            off >= v && off < v.saturating_add(i64::try_from(sym.size.max(1)).unwrap_or(1))
        })
}

/// Whether the PC-relative field at `r.offset` of `data` is the operand of
/// a direct `call`, `jmp` or `jcc` to the entry of function `f`.
fn is_direct_branch(obj: &ObjectFile, data: &[u8], r: &Reloc, f: usize) -> bool {
    if !matches!(r.r_type, elf::R_X86_64_PC32 | elf::R_X86_64_PLT32) {
        return false;
    }
    // The symbol itself, or its section at its offset (`.sched.text+0x7c`).
    let base = obj.symbols.get(r.symbol).map_or(0, |t| t.value);
    let entry = i64::try_from(base)
        .unwrap_or(i64::MAX)
        .saturating_add(target_offset(r));
    if i64::try_from(obj.symbols[f].value).ok() != Some(entry) {
        return false;
    }
    let Ok(at) = usize::try_from(r.offset) else {
        return false;
    };
    // e8 rel32 (call), e9 rel32 (jmp), 0f 8x rel32 (jcc). A RIP-relative
    // memory operand's ModRM byte (mod 00, r/m 101) is never e8 or e9.
    match at.checked_sub(1).and_then(|i| data.get(i)) {
        Some(0xe8 | 0xe9) => true,
        Some(b) if (0x80..=0x8f).contains(b) => {
            at.checked_sub(2).and_then(|i| data.get(i)) == Some(&0x0f)
        }
        _ => false,
    }
}

/// Every reference to function `f` in the loaded sections of `obj`,
/// except the kernel's own tables about code (ORC, exception table,
/// `__mcount_loc`, ...), which describe places inside it rather than use
/// it. References from `f` to itself are left out.
pub fn uses_of(obj: &ObjectFile, f: usize) -> Vec<Use> {
    let mut out = Vec::new();
    for sec in obj.sections.iter().filter(|s| s.is_alloc()) {
        if !sec.is_text() && special::is_special(&sec.name) {
            continue;
        }
        for r in sec.relocs.iter().filter(|r| refers_to(obj, r, f)) {
            let from = obj
                .symbols_in(sec.index)
                .filter(|s| matches!(s.kind, SymbolKind::Func | SymbolKind::Object))
                .find(|s| s.value <= r.offset && r.offset < s.value.saturating_add(s.size))
                .map(|s| s.index);
            // Its own split parts (`.cold`, `.part.N`) jump back into it;
            // they come along with it.
            let own_part = from.is_some_and(|i| {
                parent_name(&obj.symbols[i].name) == Some(obj.symbols[f].name.as_str())
            });
            if from == Some(f) || own_part {
                continue;
            }
            out.push(Use {
                section: sec.index,
                offset: r.offset,
                from,
                call: sec.is_text() && is_direct_branch(obj, &sec.data, r, f),
            });
        }
    }
    out
}

/// The functions whose code refers to function `f` (calls it or takes its
/// address).
pub fn callers_of(obj: &ObjectFile, f: usize) -> Vec<usize> {
    let callers: BTreeSet<usize> = uses_of(obj, f)
        .into_iter()
        .filter(|u| obj.sections.get(u.section).is_some_and(|s| s.is_text()))
        .filter_map(|u| u.from)
        .filter(|&c| {
            obj.symbols
                .get(c)
                .is_some_and(|s| s.kind == SymbolKind::Func)
        })
        .collect();
    callers.into_iter().collect()
}
