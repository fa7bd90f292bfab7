//! The user-space link step: turn a module's references to non-exported
//! kernel symbols into absolute symbols before the kernel loads it.
//!
//! Each undefined `.symtab` entry that the kernel's loader cannot resolve
//! (not exported: no `__ksymtab_<name>` in kallsyms) is resolved exactly in
//! `/proc/kallsyms` and rewritten in place to `st_shndx = SHN_ABS`,
//! `st_value = address`; the loader then applies the relocations against
//! that value. Nothing else in the file changes, except that a rewrite drops
//! the appended signature, which the rewrite would invalidate anyway.
//! Exported symbols are never touched: the kernel resolves and version-checks
//! them itself.

use std::collections::HashMap;

use object::elf::SHN_ABS;
use tracing::info;

use super::elf::{UndefinedSymbol, ST_SHNDX_OFFSET, ST_VALUE_OFFSET, SYM_SIZE};
use super::error::LinkError;
use super::kallsyms::{Kallsyms, LinkRecord, Resolved};
use super::module::ModuleImage;

/// A module image ready for `init_module`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedModule {
    /// The image to load: the input unchanged if nothing was rewritten.
    pub image: Vec<u8>,
    /// The symbols rewritten to absolute addresses, in `.symtab` order.
    pub resolved: Vec<Resolved>,
    /// Whether the input's signature was removed (only when rewriting).
    pub signature_stripped: bool,
}

/// Links `module` against the running kernel's symbols: every undefined,
/// non-exported symbol is resolved exactly (with its record from `records`,
/// if any) and rewritten to an absolute symbol. A weak symbol that nothing
/// defines is left undefined, as the kernel would. If nothing needs
/// rewriting, the image is returned unchanged, signature included.
pub fn link_module(
    module: &ModuleImage<'_>,
    kallsyms: &Kallsyms,
    records: &[LinkRecord],
) -> Result<LinkedModule, LinkError> {
    let undefined = module.undefined();
    if !undefined.is_empty() && !kallsyms.lists_exports() {
        return Err(LinkError::NoExportInformation);
    }
    let records = index_records(records, undefined, kallsyms)?;

    let mut resolved: Vec<Resolved> = Vec::new();
    let mut rewrites: Vec<(&UndefinedSymbol, u64)> = Vec::new();
    for symbol in undefined {
        if kallsyms.is_exported(&symbol.name) {
            continue;
        }
        let address = match resolved.iter().find(|r| r.name == symbol.name) {
            Some(done) => done.address,
            None => {
                match kallsyms.resolve(&symbol.name, records.get(symbol.name.as_str()).copied()) {
                    Ok(found) => {
                        let address = found.address;
                        resolved.push(found);
                        address
                    }
                    Err(LinkError::NotFound { .. }) if symbol.weak => continue,
                    Err(error) => return Err(error),
                }
            }
        };
        rewrites.push((symbol, address));
    }
    if rewrites.is_empty() {
        return Ok(LinkedModule {
            image: module.image().to_vec(),
            resolved,
            signature_stripped: false,
        });
    }

    let mut linked = module.unsigned().to_vec();
    for (symbol, address) in rewrites {
        write_absolute(&mut linked, symbol.entry_offset, address)?;
    }
    for done in &resolved {
        info!(
            symbol = %done.name,
            address = %format_args!("{:#x}", done.address),
            object = %done.object,
            "linked symbol"
        );
    }
    if module.signed() {
        info!("removed the module signature: the rewrite would invalidate it");
    }
    Ok(LinkedModule {
        image: linked,
        resolved,
        signature_stripped: module.signed(),
    })
}

/// Checks the records against the module and indexes them by name: each must
/// name a symbol the module leaves undefined and the kernel does not export.
fn index_records<'r>(
    records: &'r [LinkRecord],
    undefined: &[UndefinedSymbol],
    kallsyms: &Kallsyms,
) -> Result<HashMap<&'r str, &'r LinkRecord>, LinkError> {
    let mut by_name = HashMap::new();
    for record in records {
        if !undefined.iter().any(|symbol| symbol.name == record.symbol) {
            return Err(LinkError::UnusedRecord {
                record: Box::new(record.clone()),
            });
        }
        if kallsyms.is_exported(&record.symbol) {
            return Err(LinkError::RecordForExported {
                record: Box::new(record.clone()),
            });
        }
        if by_name.insert(record.symbol.as_str(), record).is_some() {
            return Err(LinkError::DuplicateRecord {
                name: record.symbol.clone(),
            });
        }
    }
    Ok(by_name)
}

/// Rewrites the `Elf64_Sym` at `entry_offset` to `SHN_ABS` at `address`.
fn write_absolute(image: &mut [u8], entry_offset: usize, address: u64) -> Result<(), LinkError> {
    let entry: &mut [u8; SYM_SIZE] = entry_offset
        .checked_add(SYM_SIZE)
        .and_then(|end| image.get_mut(entry_offset..end))
        .and_then(|entry| entry.try_into().ok())
        .ok_or(LinkError::Malformed {
            what: "a symbol entry lies outside the file",
        })?;
    // Constant ranges inside a 24-byte array: these cannot fail.
    entry[ST_SHNDX_OFFSET..ST_SHNDX_OFFSET + 2].copy_from_slice(&SHN_ABS.to_le_bytes());
    entry[ST_VALUE_OFFSET..ST_VALUE_OFFSET + 8].copy_from_slice(&address.to_le_bytes());
    Ok(())
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
