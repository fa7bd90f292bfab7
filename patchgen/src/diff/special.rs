//! Special sections: tables the kernel reads (bug table, exception table,
//! jump labels, alternatives, ORC, ...). Each is an array of fixed-size
//! entries; an entry belongs to the function its relocations point into.
//! The output keeps exactly the entries of the included functions.
//!
//! Entry sizes depend on the kernel version and configuration. The defaults
//! are those of Debian's 6.1 x86-64 kernels (from the structures in their
//! headers); `--entry-size SECTION=BYTES` overrides one.

use std::collections::{BTreeMap, HashSet};

use crate::elf::ObjectFile;

/// Sections dropped from the output: build-time only, or consumed by
/// tooling rather than by the kernel at run time.
pub fn is_dropped(name: &str) -> bool {
    name.starts_with(".discard")
        || name.starts_with(".debug")
        || name.starts_with(".note")
        || name == ".comment"
        || name.starts_with(".printk_index")
        || name.starts_with("___ksymtab")
        || name.starts_with("__ksymtab")
        || name.starts_with("__kstrtab")
        || name.starts_with(".initcall")
        || name == ".modinfo"
        || name == ".BTF"
        || name == ".eh_frame"
}

/// Entry sizes of the special sections, by section name.
#[derive(Debug, Clone)]
pub struct EntrySizes {
    sizes: BTreeMap<String, u64>,
}

impl Default for EntrySizes {
    fn default() -> Self {
        // Debian 6.1 x86-64: struct bug_entry with relative pointers and
        // BUGVERBOSE (12), exception_table_entry {insn, fixup, data} (12),
        // jump_entry {s32 code, s32 target, long key} (16), alt_instr (12),
        // static_call_site (8), s32 site lists (4), paravirt_patch_site
        // {u8 *instr; u8 type; u8 len} (16), __mcount_loc addresses (8), ORC
        // ip (4) and orc_entry (6).
        let table: &[(&str, u64)] = &[
            ("__bug_table", 12),
            ("__ex_table", 12),
            ("__jump_table", 16),
            (".altinstructions", 12),
            (".static_call_sites", 8),
            (".retpoline_sites", 4),
            (".return_sites", 4),
            (".call_sites", 4),
            (".ibt_endbr_seal", 4),
            (".smp_locks", 4),
            (".parainstructions", 16),
            ("__mcount_loc", 8),
            ("__patchable_function_entries", 8),
            (".orc_unwind_ip", 4),
            (".orc_unwind", 6),
        ];
        Self {
            sizes: table.iter().map(|(n, s)| ((*n).to_string(), *s)).collect(),
        }
    }
}

impl EntrySizes {
    /// Overrides (or adds) the entry size of `section`.
    pub fn set(&mut self, section: &str, size: u64) {
        self.sizes.insert(section.to_string(), size);
    }

    /// The entry size of `section`, if it is a special section.
    pub fn get(&self, section: &str) -> Option<u64> {
        self.sizes.get(section).copied()
    }

    /// Every special section name known.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sizes.keys().map(String::as_str)
    }
}

/// Whether a section is one of the special tables (or their companions).
pub fn is_special(name: &str) -> bool {
    EntrySizes::default().get(name).is_some() || name == ".altinstr_replacement" || is_dropped(name)
}

/// The ftrace call sites of an object: (section, offset) pairs from the
/// relocations of `__mcount_loc` (or `__patchable_function_entries`).
pub fn ftrace_sites(obj: &ObjectFile) -> HashSet<(usize, u64)> {
    let mut sites = HashSet::new();
    for sec in obj
        .sections
        .iter()
        .filter(|s| s.name == "__mcount_loc" || s.name == "__patchable_function_entries")
    {
        for r in &sec.relocs {
            let Some(sym) = obj.symbols.get(r.symbol) else {
                continue;
            };
            let Some(target) = sym.section else { continue };
            if let Some(off) = sym.value.checked_add_signed(r.addend) {
                sites.insert((target, off));
            }
        }
    }
    sites
}

/// Whether function `f` of `obj` has an ftrace site: an entry of
/// `__mcount_loc` at its start (or after an ENDBR on IBT kernels), or,
/// where the table does not list it (older toolchains, some section
/// layouts), a `call __fentry__` as its first instruction.
pub fn has_ftrace_site(
    obj: &ObjectFile,
    sites: &HashSet<(usize, u64)>,
    f: &crate::elf::Symbol,
) -> bool {
    let Some(sec) = f.section else {
        return false;
    };
    if (0..8).any(|d| sites.contains(&(sec, f.value.saturating_add(d)))) {
        return true;
    }
    let Some(section) = obj.sections.get(sec) else {
        return false;
    };
    // Optional endbr64 (f3 0f 1e fa), then e8 rel32 to __fentry__.
    let start = f.value;
    let call_at = match obj.bytes(sec, start, 4) {
        Some([0xf3, 0x0f, 0x1e, 0xfa]) => start + 4,
        _ => start,
    };
    if obj.bytes(sec, call_at, 1) != Some(&[0xe8]) {
        return false;
    }
    section.relocs.iter().any(|r| {
        r.offset == call_at + 1
            && obj
                .symbols
                .get(r.symbol)
                .is_some_and(|s| s.section.is_none() && s.name == "__fentry__")
    })
}
