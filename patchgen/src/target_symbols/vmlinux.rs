//! The symbol table of the target's `vmlinux` (Debian's `-dbg` package):
//! every symbol with its size, binding, `nm` type letter and the `STT_FILE`
//! symbol it follows.
//!
//! The linker keeps each input object's local symbols together after that
//! object's `STT_FILE` symbol (the source file's base name), so a static's
//! object is known up to objects with the same base name (kpatch's lookup
//! relies on the same). The file is about 600 MB; only the section
//! headers, the symbol table and its strings are read.

use std::fs::File;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym};
use object::{Object, ReadCache, SymbolIndex};

use super::SymbolSourceError;

/// A symbol's type, as far as this module cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolType {
    /// `STT_FUNC`
    Func,
    /// `STT_OBJECT` (and `STT_TLS`)
    Object,
    /// Anything else (`STT_NOTYPE`, ...).
    Other,
}

/// A symbol's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolBinding {
    /// `STB_LOCAL`
    Local,
    /// `STB_GLOBAL` (and `STB_GNU_UNIQUE`)
    Global,
    /// `STB_WEAK`
    Weak,
}

/// One symbol of vmlinux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymtabSymbol {
    /// Name.
    pub name: String,
    /// Link-time address.
    pub address: u64,
    /// ELF size.
    pub size: u64,
    /// Type.
    pub kind: SymbolType,
    /// Binding.
    pub binding: SymbolBinding,
    /// The type letter `nm` prints; `None` when `nm` does not list the
    /// symbol (file and section symbols).
    pub letter: Option<char>,
    /// For a local: index into [`Symtab::files`] of the `STT_FILE` symbol it
    /// follows, if any.
    pub file: Option<usize>,
}

/// vmlinux's symbol table.
#[derive(Debug, Clone, Default)]
pub struct Symtab {
    /// The symbols other than `STT_FILE` ones and the null symbol, in table
    /// order.
    pub symbols: Vec<SymtabSymbol>,
    /// The `STT_FILE` names, in table order (one per object with locals).
    pub files: Vec<String>,
    /// The GNU build-id.
    pub build_id: Option<Vec<u8>>,
}

/// The section facts `nm` derives its letter from.
#[derive(Debug, Clone, Copy)]
pub struct SectionFacts<'a> {
    /// Section name.
    pub name: &'a [u8],
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub sh_flags: u64,
}

/// Where a symbol is defined, for `nm`'s letter.
#[derive(Debug, Clone, Copy)]
pub enum Placement<'a> {
    /// `SHN_UNDEF`.
    Undefined,
    /// `SHN_ABS`.
    Absolute,
    /// `SHN_COMMON`.
    Common,
    /// A section.
    Section(SectionFacts<'a>),
}

/// The letter GNU `nm` prints for an ELF symbol (binutils'
/// `bfd_decode_symclass` with the ELF section flags BFD derives); `None` for
/// symbols `nm` does not list (`STT_FILE`, `STT_SECTION`).
pub fn nm_letter(st_type: u8, st_bind: u8, placement: Placement<'_>) -> Option<char> {
    if matches!(st_type, elf::STT_FILE | elf::STT_SECTION) {
        return None;
    }
    let facts = match placement {
        Placement::Common => return Some('C'),
        Placement::Undefined => {
            return Some(match (st_bind, st_type) {
                (elf::STB_WEAK, elf::STT_OBJECT) => 'v',
                (elf::STB_WEAK, _) => 'w',
                _ => 'U',
            })
        }
        _ if st_type == elf::STT_GNU_IFUNC => return Some('i'),
        _ if st_bind == elf::STB_WEAK => {
            return Some(if st_type == elf::STT_OBJECT { 'V' } else { 'W' })
        }
        _ if st_bind == elf::STB_GNU_UNIQUE => return Some('u'),
        Placement::Absolute => None,
        Placement::Section(facts) => Some(facts),
    };
    let letter = match facts {
        None => 'a',
        Some(facts) => section_letter(facts),
    };
    Some(if st_bind == elf::STB_GLOBAL {
        letter.to_ascii_uppercase()
    } else {
        letter
    })
}

/// binutils' `coff_section_type` (by name: only Microsoft sections since
/// binutils 2.3x; the kernel's build used Debian 12's 2.40), then
/// `decode_section_type` (by the flags BFD gives an ELF section). So a
/// writable `.rodata`, as vmlinux's is, gives `d`.
fn section_letter(facts: SectionFacts<'_>) -> char {
    const BY_NAME: [(&[u8], char); 4] = [
        (b".drectve", 'i'),
        (b".edata", 'e'),
        (b".idata", 'i'),
        (b".pdata", 'p'),
    ];
    for (prefix, letter) in BY_NAME {
        if let Some(rest) = facts.name.strip_prefix(prefix) {
            // The next character must end the name or be one of `.$0-9`.
            if rest.first().is_none_or(|c| b".$0123456789".contains(c)) {
                return letter;
            }
        }
    }
    let alloc = facts.sh_flags & u64::from(elf::SHF_ALLOC) != 0;
    let has_contents = facts.sh_type != elf::SHT_NOBITS;
    let readonly = facts.sh_flags & u64::from(elf::SHF_WRITE) == 0;
    let code = facts.sh_flags & u64::from(elf::SHF_EXECINSTR) != 0;
    let data = !code && alloc && has_contents;
    let debugging = !alloc && is_debug_section(facts.name);
    if code {
        't'
    } else if data {
        if readonly {
            'r'
        } else {
            'd'
        }
    } else if !has_contents {
        'b'
    } else if debugging {
        'N'
    } else if readonly {
        'n'
    } else {
        '?'
    }
}

fn is_debug_section(name: &[u8]) -> bool {
    [
        b".debug".as_slice(),
        b".gnu.linkonce.wi.",
        b".line",
        b".stab",
        b".zdebug",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

impl Symtab {
    /// Reads the symbol table of the vmlinux at `path`.
    pub fn read(path: &Path) -> Result<Self, SymbolSourceError> {
        let file = crate::input::open_regular(path).map_err(|source| SymbolSourceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cache = ReadCache::new(file);
        let elf_error = |what: String| SymbolSourceError::Elf {
            path: path.to_path_buf(),
            what,
        };
        let parsed = ElfFile64::<object::Endianness, &ReadCache<File>>::parse(&cache)
            .map_err(|e| elf_error(e.to_string()))?;
        Self::from_elf(&parsed).map_err(elf_error)
    }

    /// Reads the symbol table of a parsed vmlinux.
    pub fn from_elf<'data, R: object::ReadRef<'data>>(
        file: &ElfFile64<'data, object::Endianness, R>,
    ) -> Result<Self, String> {
        let endian = file.endian();
        if file.elf_header().e_type(endian) != elf::ET_EXEC {
            return Err("not an executable (ET_EXEC)".to_string());
        }
        let symbols = file.elf_symbol_table();
        if symbols.is_empty() {
            return Err(
                "it has no symbol table (a stripped image; the -dbg package's vmlinux has one)"
                    .to_string(),
            );
        }
        let build_id = file
            .build_id()
            .map_err(|e| format!("its build-id note: {e}"))?
            .map(<[u8]>::to_vec);
        let mut out = Symtab {
            build_id,
            ..Symtab::default()
        };
        let mut current_file = None;
        for (index, sym) in symbols.enumerate() {
            if index.0 == 0 {
                continue;
            }
            let name = symbols
                .symbol_name(endian, sym)
                .map_err(|e| format!("symbol {}: {e}", index.0))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let st_type = sym.st_type();
            if st_type == elf::STT_FILE {
                current_file = Some(out.files.len());
                out.files.push(name);
                continue;
            }
            let placement = placement(file, sym, index)?;
            let binding = match sym.st_bind() {
                elf::STB_LOCAL => SymbolBinding::Local,
                elf::STB_WEAK => SymbolBinding::Weak,
                _ => SymbolBinding::Global,
            };
            out.symbols.push(SymtabSymbol {
                letter: nm_letter(st_type, sym.st_bind(), placement),
                name,
                address: sym.st_value(endian),
                size: sym.st_size(endian),
                kind: match st_type {
                    elf::STT_FUNC => SymbolType::Func,
                    elf::STT_OBJECT | elf::STT_TLS => SymbolType::Object,
                    _ => SymbolType::Other,
                },
                file: (binding == SymbolBinding::Local)
                    .then_some(current_file)
                    .flatten(),
                binding,
            });
        }
        Ok(out)
    }
}

fn placement<'data, 'file, R: object::ReadRef<'data>>(
    file: &'file ElfFile64<'data, object::Endianness, R>,
    sym: &'data elf::Sym64<object::Endianness>,
    index: SymbolIndex,
) -> Result<Placement<'data>, String> {
    let endian = file.endian();
    match sym.st_shndx(endian) {
        elf::SHN_UNDEF => return Ok(Placement::Undefined),
        elf::SHN_ABS => return Ok(Placement::Absolute),
        elf::SHN_COMMON => return Ok(Placement::Common),
        _ => {}
    }
    let sections = file.elf_section_table();
    let section_index = file
        .elf_symbol_table()
        .symbol_section(endian, sym, index)
        .map_err(|e| format!("symbol {}: {e}", index.0))?
        .ok_or_else(|| format!("symbol {} has a reserved section index", index.0))?;
    let header = sections
        .section(section_index)
        .map_err(|e| format!("symbol {}: {e}", index.0))?;
    let name = sections
        .section_name(endian, header)
        .map_err(|e| format!("section {}: {e}", section_index.0))?;
    Ok(Placement::Section(SectionFacts {
        name,
        sh_type: header.sh_type(endian),
        sh_flags: header.sh_flags(endian),
    }))
}

/// Where Debian's `linux-image-RELEASE-dbg` puts the vmlinux of `release`.
pub fn debian_debug_path(release: &str) -> PathBuf {
    PathBuf::from(format!("/usr/lib/debug/boot/vmlinux-{release}"))
}

#[cfg(test)]
#[path = "vmlinux_tests.rs"]
mod tests;
