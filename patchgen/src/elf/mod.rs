//! Reading a kernel object: sections, symbols and relocations, checked and
//! copied into a small model the differ works on.
//!
//! Only x86-64 relocatable ELF objects are accepted. Every table comes
//! through the `object` crate, which checks offsets and sizes; anything it
//! cannot read is an error naming the file, never a panic.

mod parse;

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::ElfFile64;
use object::{Object, ObjectSection};

/// Largest input accepted (the largest 6.1 kernel objects are a few MiB;
/// `vmlinux.o` is not an input).
pub const MAX_OBJECT_SIZE: u64 = 256 << 20;

/// Largest section alignment accepted (2 MiB).
pub const MAX_ALIGN: u64 = 2 << 20;

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_OBJECT_SIZE`].
    #[error("{path} is larger than {MAX_OBJECT_SIZE} bytes: not a kernel object")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not an ELF object `object` can parse, or a corrupt one.
    #[error("{path} is not a valid ELF object")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        #[source]
        source: object::Error,
    },
    /// A valid ELF file of the wrong kind.
    #[error(
        "{path} is {what}: patchgen needs x86-64 relocatable objects (.o) from a kernel build"
    )]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        what: String,
    },
}

/// A symbol's type, as the differ needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// `STT_FUNC`
    Func,
    /// `STT_OBJECT` (and TLS, common)
    Object,
    /// `STT_SECTION`
    Section,
    /// `STT_FILE`
    File,
    /// `STT_NOTYPE` and anything else
    Other,
}

/// A symbol's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Binding {
    /// `STB_LOCAL`: visible only in its object (a `static`)
    Local,
    /// `STB_GLOBAL`
    Global,
    /// `STB_WEAK`
    Weak,
}

/// One symbol-table entry.
#[derive(Debug, Clone)]
pub struct Symbol {
    /// Index in the symbol table.
    pub index: usize,
    /// Name (empty for section symbols, which take their section's name here).
    pub name: String,
    /// Type.
    pub kind: SymbolKind,
    /// Binding.
    pub binding: Binding,
    /// Defining section (index into [`ObjectFile::sections`]); `None` when
    /// undefined, absolute or common.
    pub section: Option<usize>,
    /// Offset in its section.
    pub value: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One relocation (always RELA on x86-64).
#[derive(Debug, Clone)]
pub struct Reloc {
    /// Offset in the section it applies to.
    pub offset: u64,
    /// `R_X86_64_*` type.
    pub r_type: u32,
    /// Size of the field it writes, in bytes.
    pub size: u8,
    /// Target symbol (index into [`ObjectFile::symbols`]).
    pub symbol: usize,
    /// Addend.
    pub addend: i64,
}

/// One section with its relocations.
#[derive(Debug, Clone)]
pub struct Section {
    /// Index in the section header table.
    pub index: usize,
    /// Name.
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub sh_flags: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// `sh_entsize`.
    pub entsize: u64,
    /// `sh_info` (for a section group: its signature symbol).
    pub info: u32,
    /// Size (also for `SHT_NOBITS`, whose `data` is empty).
    pub size: u64,
    /// Contents.
    pub data: Vec<u8>,
    /// Relocations applied to this section, sorted by offset. Empty for
    /// debugging sections, which are read on demand
    /// ([`ObjectFile::section_data`], [`ObjectFile::section_relocs`]).
    pub relocs: Vec<Reloc>,
    /// Where a debugging section's bytes are in the file; its `data` and
    /// `relocs` are not copied (most of a kernel object is DWARF, which only
    /// the layout check reads).
    lazy: Option<std::ops::Range<usize>>,
    /// A debugging section's relocations, once asked for.
    lazy_relocs: std::sync::OnceLock<Vec<Reloc>>,
}

impl Section {
    /// Whether the section holds code.
    pub fn is_text(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_EXECINSTR) != 0
    }

    /// Whether the first `len` bytes are padding before a function's entry
    /// and nothing else: `nop` or `int3` bytes without relocations, as
    /// `-fpatchable-function-entry=N,N` (`CONFIG_CALL_PADDING`, 6.12)
    /// leaves them for call thunks and FineIBT. At most 64 bytes.
    pub fn is_entry_padding(&self, len: u64) -> bool {
        let Ok(n) = usize::try_from(len) else {
            return false;
        };
        n <= 64
            && self.data.len() >= n
            && self.data[..n].iter().all(|&b| b == 0x90 || b == 0xcc)
            && self.relocs.iter().all(|r| r.offset >= len)
    }

    /// Whether the section is loaded at run time.
    pub fn is_alloc(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_ALLOC) != 0
    }

    /// Whether the section holds NUL-terminated strings to be merged.
    pub fn is_strings(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_STRINGS) != 0
    }

    /// Whether the section holds mergeable constants or strings
    /// (`.rodata.cst16`, `.rodata.str1.1`): anonymous, compared by contents.
    pub fn is_mergeable(&self) -> bool {
        self.sh_flags & u64::from(elf::SHF_MERGE) != 0
    }
}

/// A kernel object, read.
#[derive(Debug, Clone)]
pub struct ObjectFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Sections by header index (index 0 is the null section).
    pub sections: Vec<Section>,
    /// Symbols by symbol-table index.
    pub symbols: Vec<Symbol>,
    /// Entry points of shared code sections, computed on first use (see
    /// [`ObjectFile::entry_points`]).
    entries: std::sync::OnceLock<std::collections::HashMap<usize, Vec<u64>>>,
    /// The defined symbols of each section (not section symbols), in
    /// symbol-table order, built on first use.
    by_section: std::sync::OnceLock<Vec<Vec<usize>>>,
    /// The file's bytes (debugging sections are read from here on demand).
    raw: Bytes,
}

/// An object's bytes: mapped from its file, or held in memory.
#[derive(Debug, Clone)]
enum Bytes {
    Owned(Vec<u8>),
    Mapped(std::sync::Arc<memmap2::Mmap>),
}

impl Bytes {
    /// Maps `file` read-only; `None` where it cannot be mapped (a pipe, an
    /// empty file), to be read instead.
    ///
    /// Mapping rather than reading: most of a kernel object is DWARF, of
    /// which only the layout check reads a part; copying it all cost a
    /// tenth of a diff's time.
    fn map(file: &std::fs::File) -> Option<Self> {
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        // SAFETY: the mapping is private and read-only, and every access
        // through it is bounds-checked against its length. What the
        // mapping cannot rule out is another process rewriting the object
        // while it is read (bytes changing under the parser, or SIGBUS
        // past a truncation): the contract linkers and binutils also rely
        // on when they map objects. patchgen's inputs are objects a build
        // has finished writing; `patchgen build` compiles its own into a
        // private work directory and reads them after the compiler exits.
        let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(file) }.ok()?;
        Some(Self::Mapped(std::sync::Arc::new(map)))
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m,
        }
    }
}

impl ObjectFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let io = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let file = crate::input::open_regular(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > MAX_OBJECT_SIZE {
            return Err(ReadError::TooLarge {
                path: path.to_owned(),
            });
        }
        let raw = match Bytes::map(&file) {
            Some(mapped) => mapped,
            None => {
                let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                std::io::Read::read_to_end(&mut &file, &mut bytes).map_err(io)?;
                Bytes::Owned(bytes)
            }
        };
        let (sections, symbols) = parse::parse_tables(path, &raw)?;
        Ok(Self::assemble(path, sections, symbols, raw))
    }

    /// Parses an object held in memory; `path` only names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ReadError> {
        Self::parse_owned(path, bytes.to_vec())
    }

    /// Parses an object held in memory, keeping the bytes.
    pub fn parse_owned(path: &Path, raw: Vec<u8>) -> Result<Self, ReadError> {
        let (sections, symbols) = parse::parse_tables(path, &raw)?;
        Ok(Self::assemble(path, sections, symbols, Bytes::Owned(raw)))
    }

    fn assemble(path: &Path, sections: Vec<Section>, symbols: Vec<Symbol>, raw: Bytes) -> Self {
        Self {
            path: path.to_owned(),
            sections,
            symbols,
            entries: std::sync::OnceLock::new(),
            by_section: std::sync::OnceLock::new(),
            raw,
        }
    }

    /// The bytes of section `index` (a debugging section's from the file).
    pub fn section_data(&self, index: usize) -> &[u8] {
        match self.sections.get(index) {
            Some(Section {
                lazy: Some(range), ..
            }) => self.raw.get(range.clone()).unwrap_or_default(),
            Some(s) => &s.data,
            None => &[],
        }
    }

    /// The relocations of section `index`, sorted by offset (a debugging
    /// section's parsed on first use, checked like the others, and kept).
    pub fn section_relocs(&self, index: usize) -> Result<&[Reloc], ReadError> {
        let Some(section) = self.sections.get(index) else {
            return Ok(&[]);
        };
        if section.lazy.is_none() {
            return Ok(&section.relocs);
        }
        if let Some(relocs) = section.lazy_relocs.get() {
            return Ok(relocs);
        }
        let perr = |source| ReadError::Parse {
            path: self.path.clone(),
            source,
        };
        let file = ElfFile64::<object::Endianness>::parse(&*self.raw).map_err(perr)?;
        let s = file
            .section_by_index(object::SectionIndex(index))
            .map_err(perr)?;
        let relocs = parse::read_relocs(s.relocations(), &self.path)?;
        if let Some(r) = relocs.iter().find(|r| r.symbol >= self.symbols.len()) {
            return Err(ReadError::WrongKind {
                path: self.path.clone(),
                what: format!(
                    "corrupt: a relocation in {} names symbol {} of {}",
                    section.name,
                    r.symbol,
                    self.symbols.len()
                ),
            });
        }
        Ok(section.lazy_relocs.get_or_init(|| relocs))
    }

    /// The defined symbols of a section (not its section symbol), in
    /// symbol-table order.
    pub fn symbols_in(&self, section: usize) -> impl Iterator<Item = &Symbol> {
        let index = self.by_section.get_or_init(|| {
            let mut v: Vec<Vec<usize>> = vec![Vec::new(); self.sections.len()];
            for s in self
                .symbols
                .iter()
                .filter(|s| s.kind != SymbolKind::Section)
            {
                if let Some(list) = s.section.and_then(|i| v.get_mut(i)) {
                    list.push(s.index);
                }
            }
            v
        });
        index
            .get(section)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| &self.symbols[i])
    }

    /// The offsets of section `section` that relocations of other loaded
    /// sections point at, sorted: where the snippets of a section that many
    /// functions share (`.altinstr_aux`, `.altinstr_replacement`) begin.
    /// Computed once for every section and kept.
    pub fn entry_points(&self, section: usize) -> &[u64] {
        let all = self.entries.get_or_init(|| {
            let mut map: std::collections::HashMap<usize, Vec<u64>> = Default::default();
            for s in self.sections.iter().filter(|s| s.is_alloc()) {
                for r in &s.relocs {
                    let Some(t) = self.symbols.get(r.symbol) else {
                        continue;
                    };
                    let Some(ts) = t.section.filter(|&ts| ts != s.index) else {
                        continue;
                    };
                    let off = if is_pc_relative(r.r_type) {
                        r.addend.saturating_add(i64::from(r.size))
                    } else {
                        r.addend
                    };
                    if let Some(at) = t.value.checked_add_signed(off) {
                        map.entry(ts).or_default().push(at);
                    }
                }
            }
            for v in map.values_mut() {
                v.sort_unstable();
                v.dedup();
            }
            map
        });
        all.get(&section).map_or(&[], Vec::as_slice)
    }

    /// The section named `name`.
    pub fn section_by_name(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Bytes `[offset, offset + len)` of a section, if in range.
    pub fn bytes(&self, section: usize, offset: u64, len: u64) -> Option<&[u8]> {
        let s = self.sections.get(section)?;
        let start = usize::try_from(offset).ok()?;
        let end = usize::try_from(offset.checked_add(len)?).ok()?;
        s.data.get(start..end)
    }
}

/// Whether the section header type is one the differ may copy.
pub fn is_progbits_like(sh_type: u32) -> bool {
    matches!(
        sh_type,
        elf::SHT_PROGBITS | elf::SHT_NOBITS | elf::SHT_INIT_ARRAY | elf::SHT_FINI_ARRAY
    )
}

/// Whether `r_type` is PC-relative (its addend is biased by the field's end).
pub fn is_pc_relative(r_type: u32) -> bool {
    matches!(
        r_type,
        elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 | elf::R_X86_64_PC64 | elf::R_X86_64_GOTPCREL
    )
}
