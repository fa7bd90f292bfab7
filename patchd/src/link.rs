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

use std::collections::{HashMap, HashSet};

use object::elf::SHN_ABS;
use tracing::info;

use crate::elf::{ModuleElf, UndefinedSymbol, ST_SHNDX_OFFSET, ST_VALUE_OFFSET, SYM_SIZE};
use crate::kallsyms::{Kallsyms, LinkRecord, Resolved};
pub use crate::link_error::{Candidate, LinkError};

/// The marker that ends a signed module.
const SIGNATURE_MARKER: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`: algo, hash, id_type, signer_len,
/// key_id_len, pad[3], __be32 sig_len.
const MODULE_SIGNATURE_SIZE: usize = 12;

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

/// Splits off an appended module signature: returns the module without it
/// and whether there was one. A trailer whose lengths do not fit is an error.
pub fn strip_signature(image: &[u8]) -> Result<(&[u8], bool), LinkError> {
    let Some(before_marker) = image.strip_suffix(SIGNATURE_MARKER) else {
        return Ok((image, false));
    };
    let trailer = |what| LinkError::SignatureTrailer { what };
    let info_start = before_marker
        .len()
        .checked_sub(MODULE_SIGNATURE_SIZE)
        .ok_or(trailer("shorter than struct module_signature"))?;
    let info: [u8; MODULE_SIGNATURE_SIZE] = before_marker
        .get(info_start..)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(trailer("shorter than struct module_signature"))?;
    let [_algo, _hash, _id_type, signer_len, key_id_len, _, _, _, s0, s1, s2, s3] = info;
    let sig_len = u32::from_be_bytes([s0, s1, s2, s3]);
    if sig_len == 0 {
        return Err(trailer("the signature length is 0"));
    }
    let signed_len = usize::try_from(sig_len)
        .ok()
        .and_then(|len| len.checked_add(usize::from(signer_len)))
        .and_then(|len| len.checked_add(usize::from(key_id_len)))
        .ok_or(trailer("the signature length overflows"))?;
    let module_len = info_start
        .checked_sub(signed_len)
        .ok_or(trailer("the signature is longer than the file"))?;
    if module_len == 0 {
        return Err(trailer("there is no module before the signature"));
    }
    let module = image
        .get(..module_len)
        .ok_or(trailer("the signature is longer than the file"))?;
    Ok((module, true))
}

/// The names of the module's undefined symbols, in `.symtab` order, each once.
pub fn undefined_symbols(image: &[u8]) -> Result<Vec<String>, LinkError> {
    let (module, _) = strip_signature(image)?;
    let mut seen = HashSet::new();
    let mut names: Vec<String> = ModuleElf::parse(module)?
        .undefined_symbols()?
        .into_iter()
        .map(|symbol| symbol.name)
        .collect();
    names.retain(|name| seen.insert(name.clone()));
    Ok(names)
}

/// The undefined symbols the kernel cannot resolve (not exported), which
/// patchd must link; empty when the module can be loaded unchanged.
/// Works even when kallsyms addresses are hidden.
pub fn symbols_to_resolve(image: &[u8], kallsyms: &Kallsyms) -> Result<Vec<String>, LinkError> {
    let mut names = undefined_symbols(image)?;
    if !names.is_empty() && !kallsyms.lists_exports() {
        return Err(LinkError::NoExportInformation);
    }
    names.retain(|name| !kallsyms.is_exported(name));
    Ok(names)
}

/// The module's name from its `.modinfo` (`name=`), if it has one.
pub fn module_name(image: &[u8]) -> Result<Option<String>, LinkError> {
    let (module, _) = strip_signature(image)?;
    ModuleElf::parse(module)?.module_name()
}

/// Links `image` against the running kernel's symbols: every undefined,
/// non-exported symbol is resolved exactly (with its record from `records`,
/// if any) and rewritten to an absolute symbol. A weak symbol that nothing
/// defines is left undefined, as the kernel would. If nothing needs
/// rewriting, the image is returned unchanged, signature included.
pub fn link_module(
    image: &[u8],
    kallsyms: &Kallsyms,
    records: &[LinkRecord],
) -> Result<LinkedModule, LinkError> {
    let (module, signed) = strip_signature(image)?;
    let undefined = ModuleElf::parse(module)?.undefined_symbols()?;
    if !undefined.is_empty() && !kallsyms.lists_exports() {
        return Err(LinkError::NoExportInformation);
    }
    let records = index_records(records, &undefined, kallsyms)?;

    let mut resolved: Vec<Resolved> = Vec::new();
    let mut rewrites: Vec<(&UndefinedSymbol, u64)> = Vec::new();
    for symbol in &undefined {
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
            image: image.to_vec(),
            resolved,
            signature_stripped: false,
        });
    }

    let mut linked = module.to_vec();
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
    if signed {
        info!("removed the module signature: the rewrite would invalidate it");
    }
    Ok(LinkedModule {
        image: linked,
        resolved,
        signature_stripped: signed,
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
#[path = "link_tests.rs"]
mod tests;
