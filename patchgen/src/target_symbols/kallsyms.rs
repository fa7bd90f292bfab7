//! The vmlinux part of `/proc/kallsyms`: the list, lookups by name, and
//! how the kernel's build derives it from vmlinux's symbol table.
//!
//! The derivation follows Linux 6.1 (`scripts/link-vmlinux.sh`):
//! `scripts/mksysmap` runs `nm -n` on vmlinux and drops types `a N U w` and
//! names starting with `$`, `.L`, `__crc_`, `__kstrtab_`, `__kstrtabns_`
//! (and `L0`); `scripts/kallsyms` (with `--all-symbols` under
//! `CONFIG_KALLSYMS_ALL`) then drops its own list (the `kallsyms_*` tables,
//! undefined, debugging and absolute symbols but four, a few prefixes and
//! suffixes of other architectures), retypes per-CPU symbols as `A` under
//! `--absolute-percpu`, and sorts by address, then weak last, then
//! linker-script symbols last, then fewer leading underscores first, then
//! `nm -n`'s order (by name, `LC_COLLATE=C`). The kernel prints its table
//! in that order, before any module's symbols.

use crate::kernel_line::KernelLine;
use std::collections::HashMap;

use super::vmlinux::Symtab;

/// One line of the vmlinux part of `/proc/kallsyms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KallsymsEntry {
    /// Link-time address (the running kernel adds its KASLR offset to all
    /// but the absolute per-CPU ones; distances stay the same).
    pub address: u64,
    /// The type letter (`t`, `T`, `d`, `A`, ...).
    pub letter: char,
    /// The name.
    pub name: String,
}

/// The vmlinux part of `/proc/kallsyms`, in the kernel's order.
#[derive(Debug, Clone, Default)]
pub struct KallsymsList {
    entries: Vec<KallsymsEntry>,
    by_name: HashMap<String, Vec<usize>>,
    /// Distinct addresses, sorted, for kallsyms sizes.
    addresses: Vec<u64>,
}

impl KallsymsList {
    /// A list in the kernel's order.
    pub fn new(entries: Vec<KallsymsEntry>) -> Self {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            by_name.entry(entry.name.clone()).or_default().push(index);
        }
        let mut addresses: Vec<u64> = entries.iter().map(|e| e.address).collect();
        addresses.sort_unstable();
        addresses.dedup();
        Self {
            entries,
            by_name,
            addresses,
        }
    }

    /// The entries, in order.
    pub fn entries(&self) -> &[KallsymsEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Indices of the entries named `name`, in order: entry `k` of this
    /// slice has position (`sympos`) `k + 1`.
    pub fn same_named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The entry at `index`.
    pub fn get(&self, index: usize) -> Option<&KallsymsEntry> {
        self.entries.get(index)
    }

    /// The size the kernel (and patchd) compute for an entry: the distance
    /// to the next higher address; `None` for the last.
    pub fn kallsyms_size(&self, index: usize) -> Option<u64> {
        let address = self.entries.get(index)?.address;
        let at = self.addresses.partition_point(|&a| a <= address);
        self.addresses.get(at).map(|next| next - address)
    }

    /// The list the kernel's build makes from vmlinux's symbol table (see
    /// the module comment), for when the image's own tables cannot be read.
    pub fn from_symtab(symtab: &Symtab, line: &KernelLine) -> Self {
        let mut listed: Vec<Listed> = Vec::new();
        let mut percpu_start = None;
        let mut percpu_end = None;
        for symbol in &symtab.symbols {
            let Some(letter) = symbol.letter else {
                continue;
            };
            if symbol.name.is_empty() || !line.lists_in_kallsyms(&symbol.name, letter) {
                continue;
            }
            // scripts/kallsyms takes the range from the symbols it keeps.
            match symbol.name.as_str() {
                "__per_cpu_start" => percpu_start = Some(symbol.address),
                "__per_cpu_end" => percpu_end = Some(symbol.address),
                _ => {}
            }
            listed.push(Listed {
                address: symbol.address,
                letter,
                name: &symbol.name,
            });
        }
        // `nm -n`: by address, then by name.
        listed.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
        });
        if let (Some(start), Some(end)) = (percpu_start, percpu_end) {
            for entry in &mut listed {
                if (start..=end).contains(&entry.address) {
                    entry.letter = 'A';
                }
            }
        }
        // scripts/kallsyms' compare_symbols; the sort is stable, so ties keep
        // nm's order as its last key does.
        listed.sort_by(|a, b| {
            a.address
                .cmp(&b.address)
                .then_with(|| is_weak(a.letter).cmp(&is_weak(b.letter)))
                .then_with(|| linker_provided(a.name).cmp(&linker_provided(b.name)))
                .then_with(|| leading_underscores(a.name).cmp(&leading_underscores(b.name)))
        });
        Self::new(
            listed
                .into_iter()
                .map(|l| KallsymsEntry {
                    address: l.address,
                    letter: l.letter,
                    name: l.name.to_string(),
                })
                .collect(),
        )
    }
}

struct Listed<'a> {
    address: u64,
    letter: char,
    name: &'a str,
}

fn is_weak(letter: char) -> bool {
    matches!(letter, 'w' | 'W')
}

/// scripts/kallsyms' guess at symbols a linker script provides.
fn linker_provided(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("__") else {
        return false;
    };
    name.len() >= 8
        && (rest.starts_with("start_")
            || rest.starts_with("stop_")
            || rest.starts_with("end_")
            || name.ends_with("_start")
            || name.ends_with("_end"))
}

fn leading_underscores(name: &str) -> usize {
    name.bytes().take_while(|&b| b == b'_').count()
}

#[cfg(test)]
#[path = "kallsyms_tests.rs"]
mod tests;
