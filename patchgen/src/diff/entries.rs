//! The kernel's tables about code, compared per function by meaning.
//!
//! Some of what a function does is not in its bytes but in the entries of
//! tables that every function of the object shares: which static key a
//! jump label tests (`__jump_table`), which feature an alternative depends
//! on and what it is replaced with (`.altinstructions`), where an exception
//! is fixed up (`__ex_table`), which static call a site belongs to
//! (`.static_call_sites`), the flags of a `WARN`/`BUG` (`__bug_table`),
//! paravirt sites. Two versions of a function are the same only when, in
//! addition to their code, the entries that belong to them mean the same:
//! equal bytes outside relocated fields, and relocations to the same place
//! inside the function or to the same target by identity. Tables that only
//! list positions derived from the code (ORC, `__mcount_loc`, return and
//! retpoline sites, lock prefixes) are left out: equal code gives equal
//! positions.

use std::collections::HashMap;

use super::compare::{identity, Identity, Side};
use super::correlate::Correlation;
use super::special::EntrySizes;
use crate::elf::{is_pc_relative, ObjectFile, Symbol};

/// Tables compared per function.
const COMPARED: &[&str] = &[
    "__jump_table",
    ".altinstructions",
    "__ex_table",
    ".static_call_sites",
    "__bug_table",
    ".parainstructions",
];

/// The bytes of a `__bug_table` entry (relative pointers, BUGVERBOSE) that
/// hold the line: only what a WARN prints, never a change in behaviour, and
/// moved by every line a fix adds above it.
const BUG_LINE: std::ops::Range<usize> = 8..10;

/// What one table entry says, comparable across the two builds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    table: String,
    /// Bytes with relocated fields (and a bug entry's line) zeroed.
    bytes: Vec<u8>,
    /// (offset in the entry, type, target).
    targets: Vec<(u64, u32, Target)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A place inside the function itself, by offset from its start.
    Own(i64),
    /// Anything else, by identity.
    Other(Identity),
}

/// Table entries indexed by the code section they point into.
#[derive(Debug, Default)]
pub struct Tables {
    /// text section index -> (table section index, entry index, offset of
    /// the first field pointing into that text section).
    by_text: HashMap<usize, Vec<(usize, u64, u64)>>,
}

impl Tables {
    /// Indexes the compared tables of `obj`.
    pub fn of(obj: &ObjectFile, sizes: &EntrySizes) -> Self {
        let mut by_text: HashMap<usize, Vec<(usize, u64, u64)>> = HashMap::new();
        for name in COMPARED {
            let Some(size) = sizes.get(name).filter(|&s| s > 0) else {
                continue;
            };
            for sec in obj.sections.iter().filter(|s| s.name == *name) {
                let mut last = None;
                for r in &sec.relocs {
                    let entry = r.offset / size;
                    let Some(t) = obj.symbols.get(r.symbol) else {
                        continue;
                    };
                    let Some(ts) = t.section else { continue };
                    if !obj.sections.get(ts).is_some_and(|s| s.is_text()) {
                        continue;
                    }
                    // The first field of an entry that points into code
                    // decides whose entry it is.
                    if last == Some(entry) {
                        continue;
                    }
                    last = Some(entry);
                    let at = t.value.saturating_add_signed(r.addend);
                    by_text.entry(ts).or_default().push((sec.index, entry, at));
                }
            }
        }
        Self { by_text }
    }

    /// The entries of function `f`, in table order.
    fn entries(
        &self,
        obj: &ObjectFile,
        side: Side,
        corr: &Correlation,
        sizes: &EntrySizes,
        f: &Symbol,
    ) -> Vec<Entry> {
        let Some(text) = f.section else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let hi = f.value.saturating_add(f.size.max(1));
        for &(table, index, at) in self.by_text.get(&text).map(Vec::as_slice).unwrap_or(&[]) {
            if at < f.value || at >= hi {
                continue;
            }
            let sec = &obj.sections[table];
            let Some(size) = sizes.get(&sec.name) else {
                continue;
            };
            let (lo, end) = (index * size, (index + 1) * size);
            let mut bytes = obj
                .bytes(table, lo, size)
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let mut targets = Vec::new();
            for r in sec
                .relocs
                .iter()
                .filter(|r| r.offset >= lo && r.offset < end)
            {
                let field = r.offset - lo;
                for i in 0..u64::from(r.size) {
                    if let Some(b) = usize::try_from(field + i)
                        .ok()
                        .and_then(|i| bytes.get_mut(i))
                    {
                        *b = 0;
                    }
                }
                let t = &obj.symbols[r.symbol];
                let target = if t.section == Some(text) {
                    let own = t.value.saturating_add_signed(r.addend);
                    Target::Own(
                        i64::try_from(own).unwrap_or(i64::MAX)
                            - i64::try_from(f.value).unwrap_or(0),
                    )
                } else {
                    // Table fields hold `target - .` with no instruction
                    // end to bias the addend: unbias it for identity(),
                    // which reads relocations as code's.
                    let mut unbiased = r.clone();
                    if is_pc_relative(r.r_type) {
                        unbiased.addend = r.addend.saturating_sub(i64::from(r.size));
                    }
                    Target::Other(identity(obj, side, corr, &unbiased))
                };
                targets.push((field, r.r_type, target));
            }
            if sec.name == "__bug_table" && size >= 12 {
                if let Some(b) = bytes.get_mut(BUG_LINE) {
                    b.fill(0);
                }
            }
            out.push(Entry {
                table: sec.name.clone(),
                bytes,
                targets,
            });
        }
        out
    }
}

/// Compares the table entries of function `o` (original) and `f` (fixed).
/// `None` when they mean the same, else what differs.
pub fn compare_entries(
    (orig, otables, o): (&ObjectFile, &Tables, &Symbol),
    (fixed, ftables, f): (&ObjectFile, &Tables, &Symbol),
    corr: &Correlation,
    sizes: &EntrySizes,
) -> Option<String> {
    let a = otables.entries(orig, Side::Orig, corr, sizes, o);
    let b = ftables.entries(fixed, Side::Fixed, corr, sizes, f);
    let count = |v: &[Entry], t: &str| v.iter().filter(|e| e.table == t).count();
    for t in COMPARED {
        let (na, nb) = (count(&a, t), count(&b, t));
        if na != nb {
            return Some(format!("{na} -> {nb} {t} entries"));
        }
    }
    for t in COMPARED {
        let ea = a.iter().filter(|e| e.table == *t);
        let eb = b.iter().filter(|e| e.table == *t);
        for (n, (x, y)) in ea.zip(eb).enumerate() {
            if x != y {
                return Some(format!("its {t} entry {n} differs"));
            }
        }
    }
    None
}
