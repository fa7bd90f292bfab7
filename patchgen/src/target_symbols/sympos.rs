//! Proving each link record's position (`sympos`) in the target's kallsyms.
//!
//! For a record of vmlinux: find the one symbol it means, then its position
//! among the same-named vmlinux lines of `/proc/kallsyms` (1-based, every
//! type counted, as the kernel's livepatch counts). The symbol is:
//!
//! - with the `-dbg` symbol table: the only local of that name; else the
//!   only one after an `STT_FILE` symbol equal to the object's own; else the
//!   only one whose object's locals are the pristine object's (same base
//!   name, different directories). For a global, the one definition. Its
//!   ELF size must be the size in the pristine build (for a function the
//!   patch only calls, the kernel's size is recorded instead: a
//!   function-sections build may pad its loops differently);
//! - with only the image's kallsyms: the only same-named line whose type
//!   letter fits (a static function is `t`, a global one `T`, ...).
//!
//! In both cases the line's type letter must fit and its kallsyms size
//! (distance to the next address) must hold the function: patchd checks
//! both again at link time, and the companion module checks that a replaced
//! function's kallsyms size is its size plus less than 16 bytes of padding,
//! which is checked here too so that the build fails instead of the apply.
//! The rules are the link contract's (`suture_bundle::link_record`), which
//! patchd applies.
//! Records of modules are left to patchd's resolution at load time.

use std::collections::BTreeSet;

pub use super::object_locals::ObjectLocals;
use super::symtab_index::{group_is_object, list_symbols, SymtabIndex};
use super::vmlinux::{SymbolBinding, SymbolType, SymtabSymbol};
use super::TargetSymbols;
use crate::linkage::{BuildRecord, Replacement};

/// The object name of the kernel image in records and kallsyms.
pub const VMLINUX: &str = "vmlinux";

/// Why a record's position cannot be proven. Each names the symbol.
#[derive(Debug, thiserror::Error)]
pub enum SymposError {
    /// The symbol is not in vmlinux.
    #[error("`{name}` (used by {object_file}) is not defined in the target's vmlinux: {detail}")]
    NotInVmlinux {
        /// The symbol.
        name: String,
        /// The object that uses it.
        object_file: String,
        /// What was searched.
        detail: String,
    },
    /// The symbol is in vmlinux but kallsyms does not list it.
    #[error("`{name}` is in the target's vmlinux at {address:#x}, but its kallsyms has no such line, so patchd could not find it; it cannot be linked")]
    NotListed {
        /// The symbol.
        name: String,
        /// Its link-time address.
        address: u64,
    },
    /// More than one candidate, and the evidence does not pick one.
    #[error("cannot tell which `{name}` {object_file} means: {why}; candidates: {candidates}")]
    Ambiguous {
        /// The symbol.
        name: String,
        /// The object that uses it.
        object_file: String,
        /// Why the evidence is not enough.
        why: String,
        /// The candidates.
        candidates: String,
    },
    /// Several same-named symbols, and no symbol table to tell them apart.
    #[error("kallsyms of {release} lists {count} symbols named `{name}` that could be the one {object_file} means ({candidates}), and without the kernel's symbol table nothing tells them apart: install linux-image-{release}-dbg (or run scripts/setup --kernel {release} --with-dbg), or pass its vmlinux with --vmlinux")]
    NeedsSymbolTable {
        /// The symbol.
        name: String,
        /// The object that uses it.
        object_file: String,
        /// How many lines fit.
        count: usize,
        /// The lines.
        candidates: String,
        /// The target release.
        release: String,
    },
    /// The pristine build differs from the target's.
    #[error("`{name}` of {object_file} is {built} in the pristine build here but {kernel} in the target's vmlinux: this build does not reproduce the kernel's, so the patch would be made against other code; check the compiler and the configuration")]
    Differs {
        /// The symbol.
        name: String,
        /// The object.
        object_file: String,
        /// What the build has.
        built: String,
        /// What the kernel has.
        kernel: String,
    },
    /// The kallsyms line would fail patchd's or the companion module's check.
    #[error("`{name}`: {what}")]
    Unlinkable {
        /// The symbol.
        name: String,
        /// What would fail.
        what: String,
    },
}

/// How one record's position was proven, for progress output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The module symbol.
    pub symbol: String,
    /// The position.
    pub sympos: u32,
    /// How the candidate was chosen.
    pub by: String,
}

/// Sets `object` and `sympos` of every vmlinux record, or refuses. Returns
/// how each was proven.
pub fn assign_positions(
    records: &mut [BuildRecord],
    replacements: &[Replacement],
    objects: &[ObjectLocals],
    target: &TargetSymbols,
) -> Result<Vec<Proof>, SymposError> {
    let index = target.symtab.as_ref().map(SymtabIndex::new);
    let mut proofs = Vec::new();
    for record in records.iter_mut() {
        if record.from_object.as_deref() != Some(VMLINUX) {
            continue;
        }
        let object = record
            .object_file
            .as_deref()
            .and_then(|f| objects.iter().find(|o| o.object == f));
        let replaced = replacements
            .iter()
            .any(|r| r.old_symbol == record.symbol && r.old_name == record.name);
        let (kallsyms_index, by) = match &index {
            Some(index) => {
                let (line, by, kernel_size) =
                    by_symbol_table(record, object, index, target, replaced)?;
                // A function the patch only calls: the kernel's own size is
                // what patchd checks the room against.
                if let Some(size) = kernel_size {
                    record.size = Some(size);
                }
                (line, by)
            }
            None => by_type_letter(record, target)?,
        };
        let entry = target
            .kallsyms
            .get(kallsyms_index)
            .ok_or_else(|| SymposError::Unlinkable {
                name: record.name.clone(),
                what: "internal: no such kallsyms line".to_string(),
            })?;
        if !record.letter_fits(entry.letter) {
            return Err(SymposError::Unlinkable {
                name: record.name.clone(),
                what: format!(
                    "kallsyms lists it as `{}`, which is not a {}; patchd would refuse it",
                    entry.letter,
                    describe(record.function(), record.is_local())
                ),
            });
        }
        check_kallsyms_size(record, replacements, target, kallsyms_index)?;
        let position = target
            .kallsyms
            .same_named(&record.name)
            .iter()
            .position(|&i| i == kallsyms_index)
            .map(suture_bundle::link_record::position_of)
            .ok_or_else(|| SymposError::Unlinkable {
                name: record.name.clone(),
                what: "internal: the line is not among its name's".to_string(),
            })?;
        record.object = Some(VMLINUX.to_string());
        record.sympos = Some(position);
        proofs.push(Proof {
            symbol: record.symbol.clone(),
            sympos: position,
            by,
        });
    }
    Ok(proofs)
}

fn describe(function: Option<bool>, local: bool) -> String {
    let binding = if local { "static" } else { "global" };
    match function {
        Some(true) => format!("{binding} function"),
        Some(false) => format!("{binding} variable"),
        None => format!("{binding} symbol"),
    }
}

/// patchd refuses a function whose kallsyms size is below its ELF size; the
/// companion module refuses a replaced function whose kallsyms size is not
/// its size plus less than the link contract's allowance
/// (`suture_bundle::SIZE_ALLOWANCE`).
fn check_kallsyms_size(
    record: &BuildRecord,
    replacements: &[Replacement],
    target: &TargetSymbols,
    kallsyms_index: usize,
) -> Result<(), SymposError> {
    if record.function() != Some(true) {
        return Ok(());
    }
    let Some(size) = record.size else {
        return Ok(());
    };
    let kallsyms_size = target.kallsyms.kallsyms_size(kallsyms_index);
    let unlinkable = |what: String| SymposError::Unlinkable {
        name: record.name.clone(),
        what,
    };
    let Some(kallsyms_size) = kallsyms_size else {
        return Err(unlinkable(
            "it is the last kallsyms line, so its size cannot be checked".to_string(),
        ));
    };
    if kallsyms_size < size {
        return Err(unlinkable(format!(
            "it is {size} bytes, but kallsyms has another symbol {kallsyms_size} bytes after its start; patchd would refuse it"
        )));
    }
    let replaced = replacements
        .iter()
        .any(|r| r.old_symbol == record.symbol && r.old_name == record.name);
    if replaced && !suture_bundle::link_record::size_fits(size, kallsyms_size) {
        // More room than alignment to 16 leaves: every byte of it must be
        // padding, as the companion module checks in the running kernel.
        let address = target.kallsyms.get(kallsyms_index).map_or(0, |e| e.address);
        let gap = target
            .text
            .bytes(address.saturating_add(size), kallsyms_size - size);
        match gap {
            Some(bytes) if suture_bundle::link_record::is_padding(bytes) => {}
            Some(_) => {
                return Err(unlinkable(format!(
                    "it is {size} bytes, but kallsyms gives it {kallsyms_size}, and the {} bytes after it in the target's image are not padding: the running function is not the one built, and the companion module would refuse to replace it",
                    kallsyms_size - size
                )))
            }
            None => {
                return Err(unlinkable(format!(
                    "it is {size} bytes, but kallsyms gives it {kallsyms_size} (more than {} bytes of padding), and the target's image is not there to show the rest is padding: the companion module would check and may refuse to replace it; build with the kernel cache's image",
                    suture_bundle::SIZE_ALLOWANCE - 1
                )))
            }
        }
    }
    Ok(())
}

/// Finds the record's symbol in the `-dbg` table, then its kallsyms line.
/// Also returns the kernel's size of a function the patch only refers to,
/// when the build's differs (see [`check_as_built`]).
fn by_symbol_table(
    record: &BuildRecord,
    object: Option<&ObjectLocals>,
    index: &SymtabIndex<'_>,
    target: &TargetSymbols,
    replaced: bool,
) -> Result<(usize, String, Option<u64>), SymposError> {
    let object_file = record
        .object_file
        .clone()
        .unwrap_or_else(|| "the patch".into());
    let (symbol, by) = if record.is_local() {
        let locals = defined_named(index, &record.name, true);
        choose_local(record, object, index, &locals, &object_file)?
    } else {
        choose_global(record, index, &object_file)?
    };
    let kernel_size = check_as_built(record, symbol, &object_file, replaced)?;
    let line = kallsyms_line(record, symbol, target, &object_file)?;
    let by = match kernel_size {
        Some(size) => format!(
            "{by}; {size} bytes in the kernel, {} in this function-sections build (alignment padding inside it depends on where it sits), a function the patch only calls",
            record.size.unwrap_or(0)
        ),
        None => by,
    };
    Ok((line, by, kernel_size))
}

/// The symbols of the table named `name` that vmlinux defines: its statics
/// (`local`), or its global and weak definitions.
fn defined_named<'a>(index: &SymtabIndex<'a>, name: &str, local: bool) -> Vec<&'a SymtabSymbol> {
    index
        .named(name)
        .iter()
        .filter(|s| s.letter.is_some_and(|l| !matches!(l, 'U' | 'w' | 'v')))
        .filter(|s| (s.binding == SymbolBinding::Local) == local)
        .copied()
        .collect()
}

/// The one global (or weak) definition of the record's name.
fn choose_global<'a>(
    record: &BuildRecord,
    index: &SymtabIndex<'a>,
    object_file: &str,
) -> Result<(&'a SymtabSymbol, String), SymposError> {
    let globals = defined_named(index, &record.name, false);
    match globals.as_slice() {
        [one] => Ok((*one, "the one global definition".to_string())),
        [] => Err(SymposError::NotInVmlinux {
            name: record.name.clone(),
            object_file: object_file.to_string(),
            detail: "no global or weak definition of that name".to_string(),
        }),
        many => Err(SymposError::Ambiguous {
            name: record.name.clone(),
            object_file: object_file.to_string(),
            why: "vmlinux has several global definitions".to_string(),
            candidates: list_symbols(index, many),
        }),
    }
}

/// The symbol is what the record says: of its kind, and of the built size.
/// A function the patch replaces must be the size built (its code is what
/// the fix was made against, and the companion module checks it). One it
/// only calls may differ in size: the loops' alignment padding inside a
/// function depends on its place in its section, which a function-sections
/// build changes; its identity is proven by name and file, and its kernel
/// size is returned for the link record.
fn check_as_built(
    record: &BuildRecord,
    symbol: &SymtabSymbol,
    object_file: &str,
    replaced: bool,
) -> Result<Option<u64>, SymposError> {
    let mut kernel_size = None;
    if let Some(size) = record.size {
        if symbol.size != size && !replaced && record.function() == Some(true) {
            kernel_size = Some(symbol.size);
        } else if symbol.size != size {
            return Err(SymposError::Differs {
                name: record.name.clone(),
                object_file: object_file.to_string(),
                built: format!("{size} bytes"),
                kernel: format!("{} bytes", symbol.size),
            });
        }
    }
    let kind_matches = match record.function() {
        Some(true) => symbol.kind == SymbolType::Func,
        Some(false) => symbol.kind != SymbolType::Func,
        None => true,
    };
    if !kind_matches {
        return Err(SymposError::Differs {
            name: record.name.clone(),
            object_file: object_file.to_string(),
            built: describe(record.function(), record.is_local()),
            kernel: format!("a symbol of type {:?}", symbol.kind),
        });
    }
    Ok(kernel_size)
}

/// The kallsyms line of `symbol` (its index in the list).
fn kallsyms_line(
    record: &BuildRecord,
    symbol: &SymtabSymbol,
    target: &TargetSymbols,
    object_file: &str,
) -> Result<usize, SymposError> {
    // Its kallsyms line: same name, same address. Lines of one name at one
    // address are interchangeable for linking only if their letters agree.
    let lines: Vec<usize> = target
        .kallsyms
        .same_named(&record.name)
        .iter()
        .copied()
        .filter(|&i| {
            target
                .kallsyms
                .get(i)
                .is_some_and(|e| e.address == symbol.address)
        })
        .collect();
    let Some(&first) = lines.first() else {
        return Err(SymposError::NotListed {
            name: record.name.clone(),
            address: symbol.address,
        });
    };
    let letters: BTreeSet<char> = lines
        .iter()
        .filter_map(|&i| target.kallsyms.get(i).map(|e| e.letter))
        .collect();
    if letters.len() > 1 {
        return Err(SymposError::Ambiguous {
            name: record.name.clone(),
            object_file: object_file.to_string(),
            why: format!(
                "kallsyms lists it {} times at its address with different types",
                lines.len()
            ),
            candidates: letters
                .iter()
                .map(char::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(first)
}

/// The one static of the record's name among `locals` that is the
/// object's: the only one, the only one after the object's file symbol, or
/// the only one whose file group is the pristine object.
fn choose_local<'a>(
    record: &BuildRecord,
    object: Option<&ObjectLocals>,
    index: &SymtabIndex<'_>,
    locals: &[&'a SymtabSymbol],
    object_file: &str,
) -> Result<(&'a SymtabSymbol, String), SymposError> {
    let ambiguous = |why: String, candidates: &[&SymtabSymbol]| SymposError::Ambiguous {
        name: record.name.clone(),
        object_file: object_file.to_string(),
        why,
        candidates: list_symbols(index, candidates),
    };
    match locals {
        [] => {
            return Err(SymposError::NotInVmlinux {
                name: record.name.clone(),
                object_file: object_file.to_string(),
                detail: "no local symbol of that name".to_string(),
            })
        }
        [one] => return Ok((one, "the only static of that name".to_string())),
        _ => {}
    }
    let Some(hint) = object.and_then(|o| o.file_symbol.as_deref()) else {
        return Err(ambiguous(
            format!(
                "vmlinux has {} statics of that name and the object has no file symbol to tell them apart",
                locals.len()
            ),
            locals,
        ));
    };
    let in_file: Vec<&SymtabSymbol> = locals
        .iter()
        .filter(|s| index.file_name(s.file) == hint)
        .copied()
        .collect();
    match in_file.as_slice() {
        [] => {
            return Err(ambiguous(
                format!(
                    "vmlinux has {} statics of that name, none after file symbol {hint}",
                    locals.len()
                ),
                locals,
            ))
        }
        [one] => return Ok((one, format!("the only one after file symbol {hint}"))),
        _ => {}
    }
    let Some(object) = object else {
        return Err(ambiguous(
            format!("several objects named {hint} define it"),
            &in_file,
        ));
    };
    let matching: Vec<&SymtabSymbol> = in_file
        .iter()
        .filter(|s| {
            s.file
                .is_some_and(|f| group_is_object(&index.group_locals(f), object))
        })
        .copied()
        .collect();
    match matching.as_slice() {
        [one] => Ok((
            one,
            format!("the only object {hint} whose statics are those of {object_file}"),
        )),
        [] => Err(ambiguous(
            format!(
                "{} objects named {hint} define it, and none has exactly the statics of {object_file}",
                in_file.len()
            ),
            &in_file,
        )),
        many => Err(ambiguous(
            format!(
                "{} objects named {hint} define it with the same statics",
                many.len()
            ),
            many,
        )),
    }
}

/// Without a symbol table: the only same-named line whose letter fits.
fn by_type_letter(
    record: &BuildRecord,
    target: &TargetSymbols,
) -> Result<(usize, String), SymposError> {
    let object_file = record
        .object_file
        .clone()
        .unwrap_or_else(|| "the patch".into());
    // The proof below assumes the symbol is among the lines; kallsyms
    // never lists names its filter drops, whatever their type.
    if !target.line.lists_in_kallsyms(&record.name, 't') {
        return Err(SymposError::Unlinkable {
            name: record.name.clone(),
            what: "kallsyms never lists symbols of that name, so patchd could not find it"
                .to_string(),
        });
    }
    let lines = target.kallsyms.same_named(&record.name);
    let fitting: Vec<usize> = lines
        .iter()
        .copied()
        .filter(|&i| {
            target
                .kallsyms
                .get(i)
                .is_some_and(|e| record.letter_fits(e.letter))
        })
        .collect();
    match (lines.len(), fitting.as_slice()) {
        (_, []) => Err(SymposError::NotInVmlinux {
            name: record.name.clone(),
            object_file,
            detail: format!(
                "its kallsyms has {} lines of that name, none of a {}",
                lines.len(),
                describe(record.function(), record.is_local())
            ),
        }),
        (1, [one]) => Ok((*one, "the only kallsyms line of that name".to_string())),
        (_, [one]) => Ok((
            *one,
            format!(
                "the only one of {} kallsyms lines of that name of a {}",
                lines.len(),
                describe(record.function(), record.is_local())
            ),
        )),
        (_, many) => Err(SymposError::NeedsSymbolTable {
            name: record.name.clone(),
            object_file,
            count: many.len(),
            candidates: many
                .iter()
                .filter_map(|&i| target.kallsyms.get(i))
                .map(|e| format!("`{}` at {:#x}", e.letter, e.address))
                .collect::<Vec<_>>()
                .join(", "),
            release: target.release.clone(),
        }),
    }
}

#[cfg(test)]
#[path = "sympos_tests.rs"]
mod tests;
