//! A patch module image read once: its appended signature split off, its
//! `.modinfo` name, its undefined symbols and the names it defines. Verification, the link step
//! and the load share this one reading ([`ModuleImage`]), so the image is
//! parsed once per apply whatever checks run on it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use super::elf::{ModuleElf, UndefinedSymbol};
use super::error::LinkError;
use super::kallsyms::Kallsyms;

/// The marker that ends a signed module.
const SIGNATURE_MARKER: &[u8] = b"~Module signature appended~\n";
/// `sizeof(struct module_signature)`: algo, hash, id_type, signer_len,
/// key_id_len, pad[3], __be32 sig_len.
const MODULE_SIGNATURE_SIZE: usize = 12;

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

/// What reading a module image found; kept by a verified bundle so that
/// the link step and the load do not read its module again. Only
/// [`ModuleImage::parse`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFacts {
    /// Length of the module without its appended signature.
    unsigned_len: usize,
    /// Whether a signature was appended.
    signed: bool,
    /// `name=` from `.modinfo`.
    name: Option<String>,
    /// The undefined `.symtab` entries, in `.symtab` order.
    undefined: Vec<UndefinedSymbol>,
    /// The names `.symtab` defines.
    defined: BTreeSet<String>,
}

/// A module image and what was read from it.
#[derive(Debug, Clone)]
pub struct ModuleImage<'a> {
    image: &'a [u8],
    facts: Cow<'a, ModuleFacts>,
}

impl<'a> ModuleImage<'a> {
    /// Reads `image`: its signature trailer, its ELF headers, `.modinfo` and
    /// `.symtab`. Any malformed part is an error.
    pub fn parse(image: &'a [u8]) -> Result<Self, LinkError> {
        let (module, signed) = strip_signature(image)?;
        let elf = ModuleElf::parse(module)?;
        let symbols = elf.symbols()?;
        let facts = ModuleFacts {
            unsigned_len: module.len(),
            signed,
            name: elf.module_name()?,
            undefined: symbols.undefined,
            defined: symbols.defined,
        };
        Ok(Self {
            image,
            facts: Cow::Owned(facts),
        })
    }

    /// `image` with the facts a previous [`ModuleImage::parse`] of these
    /// same bytes found (a verified bundle keeps both).
    pub(crate) fn from_parsed(image: &'a [u8], facts: &'a ModuleFacts) -> Self {
        Self {
            image,
            facts: Cow::Borrowed(facts),
        }
    }

    /// What was read, to keep beside the bytes.
    pub fn into_facts(self) -> ModuleFacts {
        self.facts.into_owned()
    }

    /// The whole image, signature included.
    pub fn image(&self) -> &'a [u8] {
        self.image
    }

    /// The image without its signature.
    pub fn unsigned(&self) -> &'a [u8] {
        self.image
            .get(..self.facts.unsigned_len)
            .unwrap_or(self.image)
    }

    /// Whether a signature is appended.
    pub fn signed(&self) -> bool {
        self.facts.signed
    }

    /// The module's name from its `.modinfo` (`name=`), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.facts.name.as_deref()
    }

    /// The undefined `.symtab` entries, in `.symtab` order.
    pub(crate) fn undefined(&self) -> &[UndefinedSymbol] {
        &self.facts.undefined
    }

    /// The names of the undefined symbols, in `.symtab` order, each once.
    pub fn undefined_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.facts
            .undefined
            .iter()
            .filter(|symbol| seen.insert(symbol.name.as_str()))
            .map(|symbol| symbol.name.clone())
            .collect()
    }

    /// Whether the module defines `name` (any binding).
    pub fn defines(&self, name: &str) -> bool {
        self.facts.defined.contains(name)
    }

    /// The undefined symbols the kernel cannot resolve (not exported), which
    /// patchd must link; empty when the module can be loaded unchanged.
    /// Works even when kallsyms addresses are hidden.
    pub fn to_resolve(&self, kallsyms: &Kallsyms) -> Result<Vec<String>, LinkError> {
        let mut names = self.undefined_names();
        if !names.is_empty() && !kallsyms.lists_exports() {
            return Err(LinkError::NoExportInformation);
        }
        names.retain(|name| !kallsyms.is_exported(name));
        Ok(names)
    }
}

/// The names of a module's undefined symbols, in `.symtab` order, each once.
pub fn undefined_symbols(image: &[u8]) -> Result<Vec<String>, LinkError> {
    Ok(ModuleImage::parse(image)?.undefined_names())
}

/// A module's name from its `.modinfo` (`name=`), if it has one.
pub fn module_name(image: &[u8]) -> Result<Option<String>, LinkError> {
    Ok(ModuleImage::parse(image)?.name().map(str::to_owned))
}

#[cfg(test)]
#[path = "module_tests.rs"]
mod tests;
