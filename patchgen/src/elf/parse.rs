//! Parsing an object's tables: the ELF header checked to be an x86-64
//! relocatable object, then the sections (with their relocations) and the
//! symbols copied into the model of [`super`], every index checked.

use std::ops::Range;
use std::path::Path;

use object::elf;
use object::read::elf::{ElfFile64, ElfSection64, FileHeader, SectionHeader};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget};

use super::{Binding, ReadError, Reloc, Section, Symbol, SymbolKind, MAX_ALIGN, MAX_OBJECT_SIZE};

/// The parsed ELF file `object` reads the tables from.
type Elf<'d> = ElfFile64<'d, object::Endianness>;

/// The error for an object `object` cannot parse.
fn parse_error(path: &Path) -> impl Fn(object::Error) -> ReadError + '_ {
    move |source| ReadError::Parse {
        path: path.to_owned(),
        source,
    }
}

/// The error for an object of the wrong kind (or a corrupt one).
fn wrong_kind(path: &Path, what: &str) -> ReadError {
    ReadError::WrongKind {
        path: path.to_owned(),
        what: what.to_string(),
    }
}

/// The sections and symbols of an object.
pub(super) fn parse_tables(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<Section>, Vec<Symbol>), ReadError> {
    let file = open_relocatable(path, bytes)?;
    let sections = read_sections(path, bytes, &file)?;
    let symbols = read_symbols(path, &file, &sections)?;
    check_indices(path, &sections, &symbols)?;
    Ok((sections, symbols))
}

/// The ELF file in `bytes`, if it is a little-endian x86-64 relocatable
/// object.
fn open_relocatable<'d>(path: &Path, bytes: &'d [u8]) -> Result<Elf<'d>, ReadError> {
    let perr = parse_error(path);
    let wrong = |what: &str| wrong_kind(path, what);
    match object::FileKind::parse(bytes).map_err(&perr)? {
        object::FileKind::Elf64 => {}
        object::FileKind::Elf32 => return Err(wrong("a 32-bit ELF file")),
        other => return Err(wrong(&format!("not ELF ({other:?})"))),
    }
    let file = Elf::parse(bytes).map_err(&perr)?;
    let header = file.elf_header();
    let endian = file.endian();
    if header.e_machine(endian) != elf::EM_X86_64 {
        return Err(wrong(&format!("for machine {}", header.e_machine(endian))));
    }
    if header.e_type(endian) != elf::ET_REL {
        return Err(wrong("not relocatable (an executable or shared object)"));
    }
    if !file.is_little_endian() {
        return Err(wrong("big-endian"));
    }
    Ok(file)
}

/// Every section by header index (gaps filled with null sections).
fn read_sections(path: &Path, bytes: &[u8], file: &Elf<'_>) -> Result<Vec<Section>, ReadError> {
    let mut sections = Vec::new();
    for section in file.sections() {
        let index = section.index().0;
        // Keep indices aligned with the header table (index 0 is null).
        while sections.len() < index {
            sections.push(null_section(sections.len()));
        }
        sections.push(read_section(path, bytes, file, &section)?);
    }
    Ok(sections)
}

/// One section, checked: its contents and relocations copied, or (for a
/// debugging section) where they are in the file.
fn read_section(
    path: &Path,
    bytes: &[u8],
    file: &Elf<'_>,
    section: &ElfSection64<'_, '_, object::Endianness>,
) -> Result<Section, ReadError> {
    let perr = parse_error(path);
    let wrong = |what: &str| wrong_kind(path, what);
    let endian = file.endian();
    let raw = section.elf_section_header();
    let index = section.index().0;
    let sh_type = raw.sh_type(endian);
    let align = raw.sh_addralign(endian);
    // Kernel objects align to pages at most (PMD-sized at the very
    // most); larger is corruption, and would make the writer pad
    // the output by that much.
    if align > 1 && (!align.is_power_of_two() || align > MAX_ALIGN) {
        return Err(wrong(&format!(
            "corrupt: section {index} has alignment {align}"
        )));
    }
    // A NOBITS size is not backed by the file: cap it like a file.
    if raw.sh_size(endian) > MAX_OBJECT_SIZE {
        return Err(wrong(&format!(
            "corrupt: section {index} claims {} bytes",
            raw.sh_size(endian)
        )));
    }
    let name = section.name().map_err(&perr)?.to_string();
    // Debugging sections stay in the file until asked for.
    let lazy = if is_lazy(&name, raw.sh_flags(endian)) && sh_type != elf::SHT_NOBITS {
        Some(lazy_range(path, bytes, section.file_range(), index)?)
    } else {
        None
    };
    let data = if sh_type == elf::SHT_NOBITS || lazy.is_some() {
        Vec::new()
    } else {
        section.data().map_err(&perr)?.to_vec()
    };
    let relocs = if lazy.is_some() {
        Vec::new()
    } else {
        read_relocs(section.relocations(), path)?
    };
    Ok(Section {
        index,
        name,
        sh_type,
        sh_flags: raw.sh_flags(endian),
        align,
        entsize: raw.sh_entsize(endian),
        info: raw.sh_info(endian),
        size: raw.sh_size(endian),
        data,
        relocs,
        lazy,
        lazy_relocs: std::sync::OnceLock::new(),
    })
}

/// Where a debugging section's bytes are in the file, checked to lie
/// inside it.
fn lazy_range(
    path: &Path,
    bytes: &[u8],
    file_range: Option<(u64, u64)>,
    index: usize,
) -> Result<Range<usize>, ReadError> {
    let (start, len) = file_range.unwrap_or((0, 0));
    usize::try_from(start)
        .ok()
        .zip(usize::try_from(len).ok())
        .and_then(|(s, l)| Some(s..s.checked_add(l)?))
        .filter(|r| r.end <= bytes.len())
        .ok_or_else(|| {
            wrong_kind(
                path,
                &format!("corrupt: section {index} lies outside the file"),
            )
        })
}

/// Every symbol by symbol-table index (gaps filled with null symbols); a
/// section symbol takes its section's name.
fn read_symbols(
    path: &Path,
    file: &Elf<'_>,
    sections: &[Section],
) -> Result<Vec<Symbol>, ReadError> {
    let perr = parse_error(path);
    let mut symbols = Vec::new();
    for symbol in file.symbols() {
        let index = symbol.index().0;
        while symbols.len() < index {
            symbols.push(null_symbol(symbols.len()));
        }
        let section = match symbol.section() {
            object::SymbolSection::Section(i) => Some(i.0),
            _ => None,
        };
        let kind = match symbol.kind() {
            object::SymbolKind::Text => SymbolKind::Func,
            object::SymbolKind::Data | object::SymbolKind::Tls => SymbolKind::Object,
            object::SymbolKind::Section => SymbolKind::Section,
            object::SymbolKind::File => SymbolKind::File,
            _ => SymbolKind::Other,
        };
        let binding = if symbol.is_weak() {
            Binding::Weak
        } else if symbol.is_global() {
            Binding::Global
        } else {
            Binding::Local
        };
        let mut name = symbol.name().map_err(&perr)?.to_string();
        if kind == SymbolKind::Section {
            if let Some(s) = section.and_then(|i| sections.get(i)) {
                name.clone_from(&s.name);
            }
        }
        symbols.push(Symbol {
            index,
            name,
            kind,
            binding,
            section,
            value: symbol.address(),
            size: symbol.size(),
        });
    }
    Ok(symbols)
}

/// Refuses a symbol naming a section that does not exist, or a relocation
/// naming a symbol that does not.
fn check_indices(path: &Path, sections: &[Section], symbols: &[Symbol]) -> Result<(), ReadError> {
    if let Some(s) = symbols
        .iter()
        .find(|s| s.section.is_some_and(|i| i >= sections.len()))
    {
        return Err(wrong_kind(
            path,
            &format!(
                "corrupt: symbol {} names section {:?} of {}",
                s.index,
                s.section,
                sections.len()
            ),
        ));
    }
    for section in sections {
        if let Some(r) = section.relocs.iter().find(|r| r.symbol >= symbols.len()) {
            return Err(wrong_kind(
                path,
                &format!(
                    "corrupt: a relocation in {} names symbol {} of {}",
                    section.name,
                    r.symbol,
                    symbols.len()
                ),
            ));
        }
    }
    Ok(())
}

fn bits_to_bytes(bits: u8) -> u8 {
    bits.div_ceil(8)
}

/// Debugging sections, read only by the layout check: left in the file.
fn is_lazy(name: &str, sh_flags: u64) -> bool {
    sh_flags & u64::from(elf::SHF_ALLOC) == 0 && name.starts_with(".debug")
}

/// A section's relocations, sorted by offset.
pub(super) fn read_relocs<'d, 'f, R>(
    relocations: object::read::elf::ElfSectionRelocationIterator<
        'd,
        'f,
        object::elf::FileHeader64<object::Endianness>,
        R,
    >,
    path: &Path,
) -> Result<Vec<Reloc>, ReadError>
where
    R: object::ReadRef<'d>,
{
    let wrong = |what: &str| ReadError::WrongKind {
        path: path.to_owned(),
        what: what.to_string(),
    };
    let mut relocs = Vec::new();
    for (offset, reloc) in relocations {
        let RelocationTarget::Symbol(sym) = reloc.target() else {
            return Err(wrong("using relocations without a symbol"));
        };
        let RelocationFlags::Elf { r_type } = reloc.flags() else {
            return Err(wrong("using non-ELF relocations"));
        };
        relocs.push(Reloc {
            offset,
            r_type,
            size: bits_to_bytes(reloc.size()),
            symbol: sym.0,
            addend: reloc.addend(),
        });
    }
    relocs.sort_by_key(|r| r.offset);
    Ok(relocs)
}

fn null_section(index: usize) -> Section {
    Section {
        index,
        name: String::new(),
        sh_type: elf::SHT_NULL,
        sh_flags: 0,
        align: 0,
        entsize: 0,
        info: 0,
        size: 0,
        data: Vec::new(),
        relocs: Vec::new(),
        lazy: None,
        lazy_relocs: std::sync::OnceLock::new(),
    }
}

fn null_symbol(index: usize) -> Symbol {
    Symbol {
        index,
        name: String::new(),
        kind: SymbolKind::Other,
        binding: Binding::Local,
        section: None,
        value: 0,
        size: 0,
    }
}
