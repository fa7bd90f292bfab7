//! Where a relocation points: the offset its addend designates inside the
//! target, and the named symbol of a section found there. Both correlation
//! and comparison ask this, so it depends on neither.

use crate::elf::{is_pc_relative, ObjectFile, Reloc, Symbol, SymbolKind};

/// The offset a relocation's addend designates inside its target, undoing
/// the bias of PC-relative fields (the addend is relative to the field's end).
pub fn target_offset(r: &Reloc) -> i64 {
    if is_pc_relative(r.r_type) {
        r.addend.saturating_add(i64::from(r.size))
    } else {
        r.addend
    }
}

/// The defined, named symbol of `section` that covers `offset`.
pub fn symbol_at(obj: &ObjectFile, section: usize, offset: i64) -> Option<&Symbol> {
    let off = u64::try_from(offset).ok()?;
    obj.symbols_in(section)
        .filter(|s| {
            matches!(
                s.kind,
                SymbolKind::Func | SymbolKind::Object | SymbolKind::Other
            ) && !s.name.is_empty()
        })
        .find(|s| s.value == off || (s.value <= off && off < s.value.saturating_add(s.size)))
        .or_else(|| {
            // One past the end of an array (a loop bound): that array.
            obj.symbols_in(section).find(|s| {
                s.kind == SymbolKind::Object && s.size > 0 && s.value.saturating_add(s.size) == off
            })
        })
}

/// The named symbol a section-relative relocation points at. For
/// PC-relative fields an immediate of 0, 1, 2 or 4 bytes may follow the
/// field (the addend is relative to the instruction's end), so a symbol
/// starting exactly at one of those offsets wins, then one covering the
/// plain offset.
pub fn symbol_at_reloc<'a>(obj: &'a ObjectFile, section: usize, r: &Reloc) -> Option<&'a Symbol> {
    let base = target_offset(r);
    if is_pc_relative(r.r_type) {
        for imm in [0i64, 1, 2, 4] {
            let off = base.saturating_add(imm);
            let exact = obj
                .symbols_in(section)
                .find(|s| !s.name.is_empty() && u64::try_from(off).is_ok_and(|o| s.value == o));
            if exact.is_some() {
                return exact;
            }
        }
    }
    symbol_at(obj, section, base)
}
