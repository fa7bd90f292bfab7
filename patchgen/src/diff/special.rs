//! Special sections: tables the kernel reads (bug table, exception table,
//! jump labels, alternatives, ORC, ...). Each is an array of fixed-size
//! entries; an entry belongs to the function its relocations point into.
//! The output keeps exactly the entries of the included functions.
//!
//! Entry sizes depend on the kernel version and configuration. The defaults
//! are those of the kernel line's x86-64 builds ([`crate::kernel_line`]); a
//! build measures them in the target's headers, and `--entry-size
//! SECTION=BYTES` overrides one.

use std::collections::{BTreeMap, HashSet};

use crate::elf::ObjectFile;
use crate::kernel_line::{self, KernelLine};

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
    /// The sizes of the default kernel line's x86-64 builds.
    fn default() -> Self {
        Self::of_line(kernel_line::DEFAULT)
    }
}

impl EntrySizes {
    /// The sizes `line`'s x86-64 builds have (measuring them in the
    /// target's headers is better: see `build::entry_sizes`).
    pub fn of_line(line: &KernelLine) -> Self {
        let sizes = line
            .special_sections
            .iter()
            .map(|section| (section.name.to_string(), section.entry_size))
            .collect();
        Self { sizes }
    }

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
    EntrySizes::default().get(name).is_some()
        || name == ".altinstr_replacement"
        || super::runtime_const::is_table(name)
        || is_dropped(name)
}

/// The ftrace call sites of an object: (section, offset) pairs from the
/// relocations of `__mcount_loc`. On x86 `__patchable_function_entries`
/// is never ftrace's table: there it records the call padding before each
/// function (`CONFIG_CALL_PADDING`, 6.12), which every object has, also
/// one built without ftrace (`lib/`), so counting it would hide that.
pub fn ftrace_sites(obj: &ObjectFile) -> HashSet<(usize, u64)> {
    let mut sites = HashSet::new();
    for sec in obj.sections.iter().filter(|s| s.name == "__mcount_loc") {
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
