//! The debug sections of a relocatable object as DWARF readers need them.
//! In a `.o`, string offsets, `DW_AT_stmt_list` and the like are 0 in the
//! bytes and their values are in relocations. Nothing is copied or applied
//! up front: the sections are read in place, and the value of an offset or
//! address field is looked up in the section's `Elf64_Rela` table, read in
//! place too, when the field is read (by gimli through [`RelocateReader`],
//! by the DIE reader through [`SectionRelocs::value_at`]).
//!
//! Each table is read once, in order, to check every entry and to build a
//! small index by offset; it is never copied or turned into a list of
//! relocations (`.rela.debug_info` is a third of a kernel object).

use gimli::{EndianSlice, LittleEndian, Relocate, RelocateReader, SectionId};
use object::elf;

use super::LayoutError;
use crate::elf::{ObjectFile, Section, Symbol};

/// `SHF_COMPRESSED`: the section holds a compression header and zlib or
/// zstd data (`CONFIG_DEBUG_INFO_COMPRESSED`).
const SHF_COMPRESSED: u64 = 0x800;

/// Size of one `Elf64_Rela`: `r_offset` (u64), `r_info` (u64: symbol in
/// the high half, type in the low), `r_addend` (i64).
const RELA_SIZE: usize = 24;

/// Bytes of section per bucket of the lookup index: `.debug_info` of a
/// kernel object has a relocation every 14 bytes or so, so a bucket holds a
/// handful and the index is a few KiB.
const BUCKET: usize = 64;

/// The sections the check reads. Location and range lists, frames and
/// aranges are never read: they get no reader.
const NEEDED: [SectionId; 7] = [
    SectionId::DebugInfo,
    SectionId::DebugAbbrev,
    SectionId::DebugStr,
    SectionId::DebugLineStr,
    SectionId::DebugLine,
    SectionId::DebugStrOffsets,
    SectionId::DebugAddr,
];

/// A reader of one debug section: the object's bytes, its relocations
/// applied as fields are read.
pub(super) type Reader<'a> = RelocateReader<EndianSlice<'a, LittleEndian>, &'a SectionRelocs<'a>>;

/// Fails unless `obj` has a `.debug_info` with something in it.
pub(super) fn require_debug_info(obj: &ObjectFile) -> Result<(), LayoutError> {
    match obj.section_by_name(".debug_info") {
        Some(info) if info.size > 0 => Ok(()),
        _ => Err(LayoutError::NoDebugInfo {
            path: obj.path.clone(),
        }),
    }
}

/// One relocation, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rela {
    pub offset: u64,
    pub symbol: usize,
    pub r_type: u32,
    pub addend: i64,
}

/// The relocations that apply to one section, read in place from the
/// object's bytes and indexed by offset.
#[derive(Debug, Default)]
pub(super) struct SectionRelocs<'a> {
    /// The raw `Elf64_Rela` entries.
    entries: &'a [u8],
    symbols: &'a [Symbol],
    /// Entry numbers in offset order, when the file's are not in it (the
    /// assembler writes them in order).
    order: Option<Vec<u32>>,
    /// For each [`BUCKET`] bytes of the section, the first position (in
    /// offset order) of a relocation at or after its start.
    buckets: Vec<u32>,
}

/// One `Elf64_Rela`.
fn decode(raw: &[u8]) -> Option<Rela> {
    let info = u64_at(raw, 8)?;
    Some(Rela {
        offset: u64_at(raw, 0)?,
        symbol: usize::try_from(info >> 32).ok()?,
        r_type: u32::try_from(info & 0xffff_ffff).ok()?,
        addend: i64::from_le_bytes(u64_at(raw, 16)?.to_le_bytes()),
    })
}

/// Bytes `at..at + 8` of `bytes`, as a little-endian u64.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

/// What is wrong with a relocation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// An entry's field lies outside the section, or its symbol does not
    /// exist (at the entry's offset).
    OutOfRange(u64),
    /// An entry of a type DWARF does not use (offset, type).
    Type(u64, u32),
}

/// Checks the `Elf64_Rela` entries of `entries` that apply to a section of
/// `size` bytes, in an object of `symbols` symbols, and indexes them by
/// offset: entry numbers in offset order if the file's are not, and the
/// buckets of [`SectionRelocs`].
fn index_entries(
    entries: &[u8],
    symbols: usize,
    size: usize,
) -> Result<(Option<Vec<u32>>, Vec<u32>), Problem> {
    let count = entries.len() / RELA_SIZE;
    let end = u32::try_from(count).map_err(|_| Problem::OutOfRange(0))?;
    // Buckets as if the entries were in order, which they are unless
    // `sorted` ends false.
    let mut buckets = Vec::with_capacity(size / BUCKET + 2);
    let mut sorted = true;
    let mut last = 0;
    for (i, raw) in entries.chunks_exact(RELA_SIZE).enumerate() {
        let r = decode(raw).ok_or(Problem::OutOfRange(0))?;
        let width = match r.r_type {
            elf::R_X86_64_NONE => 0,
            elf::R_X86_64_32 | elf::R_X86_64_32S => 4,
            elf::R_X86_64_64 => 8,
            r_type => return Err(Problem::Type(r.offset, r_type)),
        };
        let at = usize::try_from(r.offset)
            .ok()
            .filter(|o| o.checked_add(width).is_some_and(|end| end <= size))
            .filter(|_| r.symbol < symbols)
            .ok_or(Problem::OutOfRange(r.offset))?;
        sorted &= r.offset >= last;
        last = r.offset;
        if sorted {
            while buckets.len() * BUCKET <= at {
                buckets.push(u32::try_from(i).unwrap_or(end));
            }
        }
    }
    let mut order = None;
    if !sorted {
        let offset_at = |i: u32| {
            (i as usize)
                .checked_mul(RELA_SIZE)
                .and_then(|at| u64_at(entries, at))
                .unwrap_or(u64::MAX)
        };
        let mut sorted: Vec<u32> = (0..end).collect();
        // Stable: of two relocations of one field, the later one wins, as
        // if they were applied in turn.
        sorted.sort_by_key(|&i| offset_at(i));
        buckets.clear();
        for (pos, &i) in sorted.iter().enumerate() {
            let at = usize::try_from(offset_at(i)).unwrap_or(size);
            while buckets.len() * BUCKET <= at {
                buckets.push(u32::try_from(pos).unwrap_or(end));
            }
        }
        order = Some(sorted);
    }
    while buckets.len() * BUCKET <= size {
        buckets.push(end);
    }
    buckets.push(end);
    Ok((order, buckets))
}

impl<'a> SectionRelocs<'a> {
    /// Indexes `entries` (the contents of an `SHT_RELA` section) that apply
    /// to `section`, checking every entry: its type is one DWARF uses, its
    /// symbol exists, its field lies inside the section.
    fn new(obj: &'a ObjectFile, section: &Section, entries: &'a [u8]) -> Result<Self, LayoutError> {
        let size = usize::try_from(section.size).unwrap_or(usize::MAX);
        let (order, buckets) =
            index_entries(entries, obj.symbols.len(), size).map_err(|problem| match problem {
                Problem::OutOfRange(offset) => bad(obj, section, offset),
                Problem::Type(offset, r_type) => LayoutError::UnsupportedRelocation {
                    path: obj.path.clone(),
                    section: section.name.clone(),
                    offset,
                    r_type,
                },
            })?;
        Ok(Self {
            entries,
            symbols: &obj.symbols,
            order,
            buckets,
        })
    }

    /// Entry `i` in file order.
    fn entry(&self, i: usize) -> Option<Rela> {
        let at = i.checked_mul(RELA_SIZE)?;
        decode(self.entries.get(at..at.checked_add(RELA_SIZE)?)?)
    }

    fn offset_at(&self, i: usize) -> u64 {
        i.checked_mul(RELA_SIZE)
            .and_then(|at| u64_at(self.entries, at))
            .unwrap_or(u64::MAX)
    }

    /// The entry number at position `pos` in offset order.
    fn entry_number(&self, pos: usize) -> usize {
        match &self.order {
            Some(order) => order.get(pos).map_or(usize::MAX, |&i| i as usize),
            None => pos,
        }
    }

    /// Every relocation, in file order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Rela> + '_ {
        (0..self.entries.len() / RELA_SIZE).filter_map(|i| self.entry(i))
    }

    /// The value the relocation of the field at `offset` puts there, if
    /// one does: the symbol's value plus the addend (section symbols have
    /// value 0; a named symbol's value is its offset in its section, which
    /// is what DWARF expects of an address in an unlinked object), cut to
    /// the field's width.
    pub(super) fn value_at(&self, offset: usize) -> Option<u64> {
        let bucket = offset / BUCKET;
        let from = *self.buckets.get(bucket)? as usize;
        let to = self.buckets.get(bucket + 1).map_or(from, |&p| p as usize);
        let target = u64::try_from(offset).ok()?;
        // In offset order: of two relocations of one field, the later one
        // in the file wins, as if they were applied in turn.
        let mut found = None;
        for pos in from..to {
            let i = self.entry_number(pos);
            let at = self.offset_at(i);
            if at > target {
                break;
            }
            if at == target {
                if let Some(r) = self.entry(i).filter(|r| r.r_type != elf::R_X86_64_NONE) {
                    found = Some(r);
                }
            }
        }
        let r = found?;
        let value = self
            .symbols
            .get(r.symbol)?
            .value
            .wrapping_add(u64::from_le_bytes(r.addend.to_le_bytes()));
        Some(match r.r_type {
            elf::R_X86_64_64 => value,
            _ => value & 0xffff_ffff,
        })
    }
}

impl Relocate for &SectionRelocs<'_> {
    fn relocate_address(&self, offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(self.value_at(offset).unwrap_or(value))
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        match self.value_at(offset) {
            Some(v) => usize::try_from(v).map_err(|_| gimli::Error::UnsupportedOffset),
            None => Ok(value),
        }
    }
}

fn bad(obj: &ObjectFile, section: &Section, offset: u64) -> LayoutError {
    LayoutError::BadRelocation {
        path: obj.path.clone(),
        section: section.name.clone(),
        offset,
    }
}

/// The debug sections of one object that the check reads, each with its
/// relocations.
#[derive(Debug)]
pub(super) struct DebugSections<'a> {
    obj: &'a ObjectFile,
    /// Section id, its bytes, its relocations.
    sections: Vec<(SectionId, &'a [u8], SectionRelocs<'a>)>,
    none: SectionRelocs<'a>,
}

impl<'a> DebugSections<'a> {
    /// Finds the needed sections of `obj` and indexes their relocations.
    /// Fails when `obj` has no `.debug_info`, type units, compressed debug
    /// sections, or relocations DWARF does not use.
    pub(super) fn new(obj: &'a ObjectFile) -> Result<Self, LayoutError> {
        let path = || obj.path.clone();
        require_debug_info(obj)?;
        if obj.section_by_name(".debug_types").is_some() {
            return Err(LayoutError::Unsupported {
                path: path(),
                offset: 0,
                what: "type units (.debug_types)",
            });
        }
        let mut sections = Vec::with_capacity(NEEDED.len());
        for id in NEEDED {
            let Some(section) = obj.section_by_name(id.name()) else {
                continue;
            };
            if section.sh_flags & SHF_COMPRESSED != 0 {
                return Err(LayoutError::Compressed {
                    path: path(),
                    section: section.name.clone(),
                });
            }
            let mut tables = obj
                .sections
                .iter()
                .filter(|s| is_relocation_table(s) && s.info as usize == section.index);
            let relocs = match (tables.next(), tables.next()) {
                (None, _) => SectionRelocs::default(),
                (Some(rela), None) if rela.sh_type == elf::SHT_RELA => {
                    let entries = obj.section_data(rela.index);
                    if entries.len() % RELA_SIZE != 0 {
                        return Err(bad(obj, section, 0));
                    }
                    SectionRelocs::new(obj, section, entries)?
                }
                // x86-64 objects have one RELA table per section.
                _ => {
                    return Err(LayoutError::Unsupported {
                        path: path(),
                        offset: 0,
                        what: "debug sections with several or REL relocation tables",
                    })
                }
            };
            let bytes = obj.section_data(section.index);
            // The check keeps `.debug_info` offsets in 32 bits (its tables
            // are most of its memory); 4 GiB is far above any object
            // `ObjectFile` reads.
            if id == SectionId::DebugInfo && u32::try_from(bytes.len()).is_err() {
                return Err(LayoutError::Unsupported {
                    path: path(),
                    offset: 0,
                    what: "a .debug_info of 4 GiB or more",
                });
            }
            sections.push((id, bytes, relocs));
        }
        Ok(Self {
            obj,
            sections,
            none: SectionRelocs::default(),
        })
    }

    /// The object.
    pub(super) fn object(&self) -> &'a ObjectFile {
        self.obj
    }

    /// The bytes of section `id`; empty when the check does not read it
    /// or the object has none.
    pub(super) fn bytes(&self, id: SectionId) -> &'a [u8] {
        self.sections
            .iter()
            .find(|(i, _, _)| *i == id)
            .map_or(&[], |&(_, bytes, _)| bytes)
    }

    /// The relocations of section `id`.
    pub(super) fn relocs(&self, id: SectionId) -> &SectionRelocs<'a> {
        self.sections
            .iter()
            .find(|(i, _, _)| *i == id)
            .map_or(&self.none, |(_, _, relocs)| relocs)
    }

    /// A reader of section `id`.
    pub(super) fn reader(&'a self, id: SectionId) -> Reader<'a> {
        RelocateReader::new(
            EndianSlice::new(self.bytes(id), LittleEndian),
            self.relocs(id),
        )
    }
}

/// Whether `section` is a relocation table.
fn is_relocation_table(section: &Section) -> bool {
    matches!(section.sh_type, elf::SHT_RELA | elf::SHT_REL)
}

/// The NUL-terminated string at `offset` of a string section, without its
/// NUL.
pub(super) fn string_at(section: &[u8], offset: usize) -> Option<&[u8]> {
    let tail = section.get(offset..)?;
    // Names are short: eight bytes at a time, no setup.
    let mut words = tail.chunks_exact(8);
    let mut len = 0;
    for word in &mut words {
        let v = u64::from_le_bytes(word.try_into().ok()?);
        let zero = v.wrapping_sub(0x0101_0101_0101_0101) & !v & 0x8080_8080_8080_8080;
        if zero != 0 {
            // The lowest flagged byte is the first NUL (a borrow only
            // flags bytes above a zero one).
            return tail.get(..len + (zero.trailing_zeros() / 8) as usize);
        }
        len += 8;
    }
    let rest = words.remainder();
    tail.get(..len + rest.iter().position(|&b| b == 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `Elf64_Rela` entry's bytes.
    fn rela(offset: u64, symbol: u64, r_type: u32, addend: i64) -> Vec<u8> {
        let mut raw = offset.to_le_bytes().to_vec();
        raw.extend_from_slice(&((symbol << 32) | u64::from(r_type)).to_le_bytes());
        raw.extend_from_slice(&addend.to_le_bytes());
        raw
    }

    fn symbols(n: usize) -> Vec<Symbol> {
        (0..n)
            .map(|index| Symbol {
                index,
                name: String::new(),
                kind: crate::elf::SymbolKind::Section,
                binding: crate::elf::Binding::Local,
                section: None,
                value: if index == 2 { 0x100 } else { 0 },
                size: 0,
            })
            .collect()
    }

    fn relocs<'a>(entries: &'a [u8], symbols: &'a [Symbol], size: usize) -> SectionRelocs<'a> {
        let (order, buckets) = index_entries(entries, symbols.len(), size).expect("valid table");
        SectionRelocs {
            entries,
            symbols,
            order,
            buckets,
        }
    }

    #[test]
    fn values_are_symbol_plus_addend_cut_to_the_field() {
        let syms = symbols(3);
        let entries = [
            rela(0x08, 1, elf::R_X86_64_32, 0x4aeb),
            rela(0x0e, 2, elf::R_X86_64_32, 0x10),
            rela(0x20, 2, elf::R_X86_64_64, -0x10),
            rela(0x90, 1, elf::R_X86_64_32S, -1),
        ]
        .concat();
        let r = relocs(&entries, &syms, 0x100);
        assert_eq!(r.value_at(0x08), Some(0x4aeb));
        assert_eq!(r.value_at(0x0e), Some(0x110));
        assert_eq!(r.value_at(0x20), Some(0xf0));
        assert_eq!(r.value_at(0x90), Some(0xffff_ffff));
        assert_eq!(r.value_at(0x09), None);
        assert_eq!(r.value_at(0x1000), None);
        assert_eq!(r.iter().count(), 4);
    }

    #[test]
    fn unsorted_tables_are_looked_up_in_offset_order() {
        let syms = symbols(2);
        let entries = [
            rela(0xc0, 1, elf::R_X86_64_32, 3),
            rela(0x04, 1, elf::R_X86_64_32, 1),
            rela(0x44, 1, elf::R_X86_64_32, 2),
            // Two relocations of one field: the later one wins; NONE
            // changes nothing.
            rela(0x04, 1, elf::R_X86_64_32, 7),
            rela(0x44, 0, elf::R_X86_64_NONE, 0),
        ]
        .concat();
        let r = relocs(&entries, &syms, 0x100);
        assert!(r.order.is_some());
        assert_eq!(r.value_at(0x04), Some(7));
        assert_eq!(r.value_at(0x44), Some(2));
        assert_eq!(r.value_at(0xc0), Some(3));
        assert_eq!(r.value_at(0x05), None);
    }

    #[test]
    fn bad_entries_are_refused() {
        let check = |entry: Vec<u8>| index_entries(&entry, 2, 0x10).map(|_| ());
        assert_eq!(
            check(rela(0x0e, 1, elf::R_X86_64_32, 0)),
            Err(Problem::OutOfRange(0x0e))
        );
        assert_eq!(
            check(rela(0x00, 5, elf::R_X86_64_32, 0)),
            Err(Problem::OutOfRange(0))
        );
        assert_eq!(
            check(rela(0x00, 1, elf::R_X86_64_PC32, 0)),
            Err(Problem::Type(0, elf::R_X86_64_PC32))
        );
        assert_eq!(check(rela(0x0c, 1, elf::R_X86_64_32, 0)), Ok(()));
    }

    #[test]
    fn strings_end_at_their_nul() {
        let section = b"\0abc\0exactly8\0a longer string of names\0tail";
        assert_eq!(string_at(section, 0), Some(&b""[..]));
        assert_eq!(string_at(section, 1), Some(&b"abc"[..]));
        assert_eq!(string_at(section, 5), Some(&b"exactly8"[..]));
        assert_eq!(
            string_at(section, 14),
            Some(&b"a longer string of names"[..])
        );
        assert_eq!(string_at(section, 39), None);
        assert_eq!(string_at(section, 100), None);
        // Bytes with the high bit set are not NULs.
        assert_eq!(
            string_at(b"\x80\xff\x81x\0", 0),
            Some(&b"\x80\xff\x81x"[..])
        );
    }
}
