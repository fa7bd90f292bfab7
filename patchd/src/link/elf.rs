//! Reading the parts of a kernel module's ELF image that linking needs: the
//! header checks, the undefined symbols of `.symtab` with the file offset of
//! each entry, the names it defines, and the module name in `.modinfo`.
//!
//! Every offset and size comes from an untrusted file: they are checked here
//! (or by `object`, which checks its own) before anything is indexed, and a
//! bad file is an error, never a panic. This module never writes.

use std::collections::BTreeSet;

use object::elf::{self, FileHeader64, SectionHeader64, Sym64};
use object::read::elf::{FileHeader, SectionHeader, SectionTable, Sym, SymbolTable};
use object::LittleEndian;

use super::error::LinkError;

type Header = FileHeader64<LittleEndian>;

/// Size of `e_ident`.
const EI_NIDENT: usize = 16;
/// Size of one `Elf64_Sym`.
pub(crate) const SYM_SIZE: usize = std::mem::size_of::<Sym64<LittleEndian>>();
/// Offset of `st_shndx` (u16) inside an `Elf64_Sym`.
pub(crate) const ST_SHNDX_OFFSET: usize = 6;
/// Offset of `st_value` (u64) inside an `Elf64_Sym`.
pub(crate) const ST_VALUE_OFFSET: usize = 8;

/// An undefined entry of a module's `.symtab`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UndefinedSymbol {
    pub(crate) name: String,
    /// `STB_WEAK`: the kernel leaves it 0 when nothing defines it.
    pub(crate) weak: bool,
    /// File offset of the 24-byte `Elf64_Sym` entry.
    pub(crate) entry_offset: usize,
}

/// The named symbols of a module's `.symtab` ([`ModuleElf::symbols`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ModuleSymbols {
    /// The undefined entries, in `.symtab` order.
    pub(crate) undefined: Vec<UndefinedSymbol>,
    /// The names of the defined entries.
    pub(crate) defined: BTreeSet<String>,
}

/// A validated x86-64 relocatable ELF image (a `.ko` without its signature).
#[derive(Debug)]
pub(crate) struct ModuleElf<'data> {
    data: &'data [u8],
    sections: SectionTable<'data, Header, &'data [u8]>,
}

impl<'data> ModuleElf<'data> {
    /// Checks the identity bytes and header, and that the section table and
    /// its string table lie inside `data`.
    pub(crate) fn parse(data: &'data [u8]) -> Result<Self, LinkError> {
        let unsupported = |what: String| Err(LinkError::UnsupportedElf { what });
        if !data.starts_with(&elf::ELFMAG) {
            return Err(LinkError::NotElf);
        }
        let ident = data.get(..EI_NIDENT).ok_or(LinkError::Malformed {
            what: "the file is shorter than an ELF identification",
        })?;
        match (ident.get(4).copied(), ident.get(5).copied()) {
            (Some(elf::ELFCLASS64), Some(elf::ELFDATA2LSB)) => {}
            (Some(elf::ELFCLASS64), Some(data)) => {
                return unsupported(format!("data encoding {data} is not little endian"));
            }
            (class, _) => {
                return unsupported(format!("class {class:?} is not ELFCLASS64"));
            }
        }
        let header = Header::parse(data).map_err(|source| LinkError::Parse {
            what: "file header",
            source,
        })?;
        let endian = LittleEndian;
        let e_type = header.e_type(endian);
        if e_type != elf::ET_REL {
            return unsupported(format!(
                "type {e_type} is not ET_REL (a relocatable object)"
            ));
        }
        let machine = header.e_machine(endian);
        if machine != elf::EM_X86_64 {
            return unsupported(format!("machine {machine} is not EM_X86_64"));
        }
        let sections = header
            .sections(endian, data)
            .map_err(|source| LinkError::Parse {
                what: "section table",
                source,
            })?;
        if sections.is_empty() {
            return Err(LinkError::Malformed {
                what: "the file has no section headers",
            });
        }
        Ok(Self { data, sections })
    }

    /// The one `SHT_SYMTAB` section, checked for entry size and bounds, and
    /// its file offset.
    fn symtab(&self) -> Result<(SymbolTable<'data, Header, &'data [u8]>, usize), LinkError> {
        let endian = LittleEndian;
        let mut found: Option<(object::SectionIndex, &SectionHeader64<LittleEndian>)> = None;
        for (index, section) in self.sections.enumerate() {
            if section.sh_type(endian) == elf::SHT_SYMTAB {
                if found.is_some() {
                    return Err(LinkError::Malformed {
                        what: "the file has more than one symbol table",
                    });
                }
                found = Some((index, section));
            }
        }
        let (index, section) = found.ok_or(LinkError::NoSymbolTable)?;
        let offset = usize::try_from(section.sh_offset(endian)).ok();
        let size = usize::try_from(section.sh_size(endian)).ok();
        let entsize = section.sh_entsize(endian);
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(LinkError::Malformed {
                what: "the symbol table offset or size does not fit in memory",
            });
        };
        if usize::try_from(entsize).ok() != Some(SYM_SIZE) {
            return Err(LinkError::Malformed {
                what: "the symbol table entry size is not 24",
            });
        }
        if size % SYM_SIZE != 0 {
            return Err(LinkError::Malformed {
                what: "the symbol table size is not a multiple of 24",
            });
        }
        match offset.checked_add(size) {
            Some(end) if end <= self.data.len() => {}
            _ => {
                return Err(LinkError::Malformed {
                    what: "the symbol table extends past the end of the file",
                })
            }
        }
        let table = SymbolTable::parse(endian, self.data, &self.sections, index, section).map_err(
            |source| LinkError::Parse {
                what: "symbol table",
                source,
            },
        )?;
        Ok((table, offset))
    }

    /// The named symbols of `.symtab`, in one pass: every undefined one,
    /// in `.symtab` order, and the names of the defined ones (any binding:
    /// a replacement function may be static). Index 0 (the null symbol),
    /// nameless entries and section or file symbols are not symbols a
    /// module references or provides.
    pub(crate) fn symbols(&self) -> Result<ModuleSymbols, LinkError> {
        let endian = LittleEndian;
        let (table, table_offset) = self.symtab()?;
        let mut found = ModuleSymbols::default();
        for (index, symbol) in table.enumerate() {
            let kind = symbol.st_type();
            if index.0 == 0 || kind == elf::STT_SECTION || kind == elf::STT_FILE {
                continue;
            }
            let name = table
                .symbol_name(endian, symbol)
                .map_err(|source| LinkError::Parse {
                    what: "symbol name",
                    source,
                })?;
            if name.is_empty() {
                continue;
            }
            let name = std::str::from_utf8(name)
                .map_err(|_| LinkError::Malformed {
                    what: "a symbol name is not UTF-8",
                })?
                .to_owned();
            if symbol.st_shndx(endian) != elf::SHN_UNDEF {
                found.defined.insert(name);
                continue;
            }
            let entry_offset = index
                .0
                .checked_mul(SYM_SIZE)
                .and_then(|relative| relative.checked_add(table_offset))
                .ok_or(LinkError::Malformed {
                    what: "a symbol entry offset overflows",
                })?;
            found.undefined.push(UndefinedSymbol {
                name,
                weak: symbol.st_bind() == elf::STB_WEAK,
                entry_offset,
            });
        }
        Ok(found)
    }

    /// The `name=` entry of `.modinfo`, which modpost adds to every module;
    /// `None` if there is no such section or entry.
    pub(crate) fn module_name(&self) -> Result<Option<String>, LinkError> {
        let endian = LittleEndian;
        let Some((_, section)) = self.sections.section_by_name(endian, b".modinfo") else {
            return Ok(None);
        };
        let modinfo = section
            .data(endian, self.data)
            .map_err(|source| LinkError::Parse {
                what: ".modinfo section",
                source,
            })?;
        let name = modinfo
            .split(|&byte| byte == 0)
            .find_map(|entry| entry.strip_prefix(b"name="))
            .filter(|name| !name.is_empty());
        Ok(name.map(|name| String::from_utf8_lossy(name).into_owned()))
    }
}
