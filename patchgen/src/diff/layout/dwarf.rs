//! The DWARF of one relocatable object, read as little as the layout check
//! needs: its units, their top-level DIEs indexed by name, and a cursor that
//! reads any DIE's subtree on demand, only the attributes asked for.
//!
//! It never builds a model of all DIEs: a kernel object is mostly DWARF and
//! this runs on every diff. Subtrees are skipped through `DW_AT_sibling`.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use gimli::{AttributeValue, DwAt, DwTag, EndianSlice, EntriesRaw, LittleEndian, SectionId};

use super::relocate::Relocated;
use super::LayoutError;
use crate::elf::ObjectFile;

/// FxHash's mixing. The maps of the check are keyed by DIE offsets and
/// names, and probed some hundred thousand times per kernel object;
/// SipHash's defence against chosen keys buys nothing here (an object
/// built to collide slows down the diff of that object) and costs a good
/// part of the check's time.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A map with [`FastHasher`].
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
/// A set with [`FastHasher`].
pub(super) type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// A borrowed DWARF section.
pub(super) type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// One DIE, with the attributes the layout check reads. Offsets are
/// `.debug_info` offsets, so they name a DIE across units.
#[derive(Debug, Clone)]
pub(super) struct Die<'a> {
    pub offset: usize,
    pub tag: DwTag,
    pub has_children: bool,
    pub name: Option<&'a [u8]>,
    /// The DIE has a `DW_AT_name` (read or not).
    pub has_name: bool,
    pub declaration: bool,
    pub external: bool,
    /// `DW_AT_location` is an expression starting with `DW_OP_addr`(x):
    /// a variable with static storage.
    pub static_location: bool,
    pub byte_size: Option<u64>,
    pub bit_size: Option<u64>,
    pub data_bit_offset: Option<u64>,
    /// DWARF 2-4 bit fields: bits from the storage unit's most significant bit.
    pub bit_offset: Option<u64>,
    pub member_location: Option<u64>,
    pub type_ref: Option<usize>,
    pub abstract_origin: Option<usize>,
    pub specification: Option<usize>,
    pub sibling: Option<usize>,
    pub count: Option<u64>,
    pub lower_bound: Option<u64>,
    pub upper_bound: Option<u64>,
    pub decl_file: Option<u64>,
    pub decl_line: Option<u64>,
}

impl Die<'_> {
    fn new(offset: usize, tag: DwTag, has_children: bool) -> Self {
        Self {
            offset,
            tag,
            has_children,
            name: None,
            has_name: false,
            declaration: false,
            external: false,
            static_location: false,
            byte_size: None,
            bit_size: None,
            data_bit_offset: None,
            bit_offset: None,
            member_location: None,
            type_ref: None,
            abstract_origin: None,
            specification: None,
            sibling: None,
            count: None,
            lower_bound: None,
            upper_bound: None,
            decl_file: None,
            decl_line: None,
        }
    }

    /// The DIE this one completes or instantiates.
    pub fn origin(&self) -> Option<usize> {
        self.abstract_origin.or(self.specification)
    }
}

/// One unit and where it lies in `.debug_info`.
#[derive(Debug)]
pub(super) struct UnitInfo<'a> {
    pub unit: gimli::Unit<Slice<'a>>,
    start: usize,
    end: usize,
}

/// The DIEs of one index entry: almost always one, so no allocation then.
#[derive(Debug, Clone)]
pub(super) enum Dies {
    /// One DIE.
    One(usize),
    /// Several (a name shared by a declaration and a definition, ...).
    Many(Vec<usize>),
}

impl Dies {
    fn push(&mut self, die: usize) {
        match self {
            Self::One(first) => *self = Self::Many(vec![*first, die]),
            Self::Many(all) => all.push(die),
        }
    }

    /// The DIEs, in the order added.
    pub(super) fn as_slice(&self) -> &[usize] {
        match self {
            Self::One(die) => std::slice::from_ref(die),
            Self::Many(all) => all,
        }
    }
}

fn add<K: std::hash::Hash + Eq>(map: &mut FastMap<K, Dies>, key: K, die: usize) {
    match map.entry(key) {
        Entry::Occupied(mut dies) => dies.get_mut().push(die),
        Entry::Vacant(slot) => {
            slot.insert(Dies::One(die));
        }
    }
}

/// Top-level DIEs by name.
#[derive(Debug, Default)]
pub(super) struct Index<'a> {
    /// Named subprograms (definitions, abstract instances and declarations).
    pub subprograms: FastMap<&'a [u8], Dies>,
    /// Top-level DIEs with `DW_AT_abstract_origin` or `DW_AT_specification`
    /// (out-of-line instances, definitions of declared variables), by the
    /// DIE they point at.
    pub by_origin: FastMap<usize, Dies>,
    /// Named struct and union definitions (not declarations).
    pub aggregates: FastMap<&'a [u8], Dies>,
    /// Named typedefs.
    pub typedefs: FastMap<&'a [u8], Dies>,
    /// Named variables (definitions and declarations).
    pub variables: FastMap<&'a [u8], Dies>,
    /// Offsets of all top-level DIEs, sorted: the DIE containing a nested
    /// one is the last top-level DIE before it.
    pub top_level: Vec<usize>,
}

impl Index<'_> {
    /// The top-level DIE at or before `offset`: the one whose subtree
    /// holds the DIE at `offset`.
    pub fn containing(&self, offset: usize) -> Option<usize> {
        let i = self.top_level.partition_point(|&t| t <= offset);
        self.top_level.get(i.checked_sub(1)?).copied()
    }
}

/// One object's DWARF.
#[derive(Debug)]
pub(super) struct Dwarf<'a> {
    pub path: &'a Path,
    dwarf: gimli::Dwarf<Slice<'a>>,
    units: Vec<UnitInfo<'a>>,
    pub index: Index<'a>,
}

impl<'a> Dwarf<'a> {
    /// Opens the DWARF of `obj`, whose relocated sections are `relocated`,
    /// and indexes its top-level DIEs.
    pub(super) fn load(obj: &'a ObjectFile, relocated: &'a Relocated) -> Result<Self, LayoutError> {
        let section = |id: SectionId| -> Result<Slice<'a>, LayoutError> {
            Ok(EndianSlice::new(relocated.section(obj, id), LittleEndian))
        };
        let dwarf = gimli::Dwarf::load(section)?;
        let path = obj.path.as_path();
        let err = |source| LayoutError::Dwarf {
            path: path.to_owned(),
            source,
        };
        let mut units = Vec::new();
        let mut headers = dwarf.units();
        while let Some(header) = headers.next().map_err(err)? {
            let Some(start) = header.offset().as_debug_info_offset() else {
                continue;
            };
            let start = start.0;
            let end = start
                .checked_add(header.length_including_self())
                .ok_or_else(|| LayoutError::BadDwarf {
                    path: path.to_owned(),
                    offset: start as u64,
                    what: "unit length out of range",
                })?;
            let unit = gimli::Unit::new(&dwarf, header).map_err(err)?;
            units.push(UnitInfo { unit, start, end });
        }
        let mut this = Self {
            path,
            dwarf,
            units,
            index: Index::default(),
        };
        this.index = this.build_index()?;
        Ok(this)
    }

    pub(super) fn err(&self, source: gimli::Error) -> LayoutError {
        LayoutError::Dwarf {
            path: self.path.to_owned(),
            source,
        }
    }

    pub(super) fn bad(&self, offset: usize, what: &'static str) -> LayoutError {
        LayoutError::BadDwarf {
            path: self.path.to_owned(),
            offset: offset as u64,
            what,
        }
    }

    fn unit_of(&self, offset: usize) -> Result<&UnitInfo<'a>, LayoutError> {
        let i = self.units.partition_point(|u| u.start <= offset);
        i.checked_sub(1)
            .and_then(|i| self.units.get(i))
            .filter(|u| offset < u.end)
            .ok_or_else(|| self.bad(offset, "reference outside every unit"))
    }

    /// A cursor over the subtree of the DIE at `offset`.
    pub(super) fn subtree(&self, offset: usize) -> Result<Subtree<'_, 'a>, LayoutError> {
        let unit = self.unit_of(offset)?;
        let raw = unit
            .unit
            .entries_raw(Some(gimli::UnitOffset(offset - unit.start)))
            .map_err(|e| self.err(e))?;
        Ok(Subtree {
            dwarf: self,
            unit,
            raw,
            depth: 0,
            done: false,
            current: Die::new(offset, gimli::DW_TAG_null, false),
            level: 0,
        })
    }

    /// The DIE at `offset`, with all the attributes the check reads.
    pub(super) fn die(&self, offset: usize) -> Result<Die<'a>, LayoutError> {
        self.die_with(offset, Want::All)
    }

    /// The DIE at `offset`, with the attributes `want` asks for.
    pub(super) fn die_with(&self, offset: usize, want: Want) -> Result<Die<'a>, LayoutError> {
        let unit = self.unit_of(offset)?;
        let mut raw = unit
            .unit
            .entries_raw(Some(gimli::UnitOffset(offset - unit.start)))
            .map_err(|e| self.err(e))?;
        let mut die = Die::new(offset, gimli::DW_TAG_null, false);
        if self.read_die(unit, &mut raw, &|_| want, &mut die)? {
            Ok(die)
        } else {
            Err(self.bad(offset, "no DIE at a referenced offset"))
        }
    }

    /// `file:line` of a DIE's declaration, the file as the line program
    /// names it (relative to the build directory when it is inside it).
    pub(super) fn declared_at(&self, offset: usize) -> Option<String> {
        let die = self.die_with(offset, Want::Decl).ok()?;
        let (file, line) = (die.decl_file?, die.decl_line?);
        let unit = self.unit_of(die.offset).ok()?;
        let header = unit.unit.line_program.as_ref()?.header();
        let entry = header.file(file)?;
        let string = |v| {
            self.dwarf
                .attr_string(&unit.unit, v)
                .ok()
                .map(|s: Slice<'a>| String::from_utf8_lossy(s.slice()).into_owned())
        };
        let name = string(entry.path_name())?;
        let mut path = if name.starts_with('/') || entry.directory_index() == 0 {
            name
        } else {
            match entry.directory(header).and_then(string) {
                Some(dir) => format!("{dir}/{name}"),
                None => name,
            }
        };
        while let Some(rest) = path.strip_prefix("./") {
            path = rest.to_string();
        }
        Some(format!("{path}:{line}"))
    }

    fn build_index(&self) -> Result<Index<'a>, LayoutError> {
        let mut index = Index::default();
        let wanted = |tag| match tag {
            gimli::DW_TAG_subprogram
            | gimli::DW_TAG_variable
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_typedef => Want::Index,
            _ => Want::Sibling,
        };
        for unit in &self.units {
            let root = unit.start + unit.unit.header.header_size();
            let mut sub = self.subtree(root)?;
            // The unit DIE, then its children, each skipped past.
            if sub.next(|_| Want::Sibling)?.is_none() {
                continue;
            }
            while sub.next(wanted)?.is_some() {
                sub.skip_children()?;
                let die = sub.current();
                index.top_level.push(die.offset);
                if let Some(origin) = die.origin() {
                    add(&mut index.by_origin, origin, die.offset);
                }
                let Some(name) = die.name else { continue };
                let map = match die.tag {
                    gimli::DW_TAG_subprogram => &mut index.subprograms,
                    gimli::DW_TAG_variable => &mut index.variables,
                    gimli::DW_TAG_typedef => &mut index.typedefs,
                    gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type if !die.declaration => {
                        &mut index.aggregates
                    }
                    _ => continue,
                };
                add(map, name, die.offset);
            }
        }
        index.top_level.sort_unstable();
        Ok(index)
    }

    /// A reference attribute's target, as a `.debug_info` offset.
    fn reference(
        &self,
        unit: &UnitInfo<'a>,
        at: usize,
        value: AttributeValue<Slice<'a>>,
    ) -> Result<usize, LayoutError> {
        match value {
            AttributeValue::UnitRef(o) => unit
                .start
                .checked_add(o.0)
                .filter(|&t| t < unit.end)
                .ok_or_else(|| self.bad(at, "reference outside its unit")),
            AttributeValue::DebugInfoRef(o) => Ok(o.0),
            AttributeValue::DebugTypesRef(_) => Err(LayoutError::Unsupported {
                path: self.path.to_owned(),
                offset: at as u64,
                what: "type unit references (DW_FORM_ref_sig8)",
            }),
            AttributeValue::DebugInfoRefSup(_) => Err(LayoutError::Unsupported {
                path: self.path.to_owned(),
                offset: at as u64,
                what: "references into a supplementary object file",
            }),
            _ => Err(self.bad(at, "reference attribute of a non-reference form")),
        }
    }

    /// Reads one DIE at the cursor into `die`, the attributes `want` asks
    /// for its tag. `false` for a null entry.
    fn read_die(
        &self,
        unit: &UnitInfo<'a>,
        raw: &mut EntriesRaw<'_, '_, Slice<'a>>,
        want: &dyn Fn(DwTag) -> Want,
        die: &mut Die<'a>,
    ) -> Result<bool, LayoutError> {
        let err = |e| self.err(e);
        // Both lie inside .debug_info, whose size `ObjectFile` caps.
        let offset = unit.start + raw.next_offset().0;
        let Some(abbrev) = raw.read_abbreviation().map_err(err)? else {
            return Ok(false);
        };
        *die = Die::new(offset, abbrev.tag(), abbrev.has_children());
        let want = want(die.tag);
        if want == Want::Sibling && !die.has_children {
            raw.skip_attributes(abbrev.attributes()).map_err(err)?;
            return Ok(true);
        }
        let specs = abbrev.attributes();
        // Unwanted attributes are skipped in runs: gimli adds up the sizes
        // of fixed-size forms instead of reading each.
        let mut skip_from = 0;
        for (i, spec) in specs.iter().enumerate() {
            let name = spec.name();
            let wanted = match want {
                Want::Sibling => name == gimli::DW_AT_sibling,
                Want::Index => matches!(
                    name,
                    gimli::DW_AT_name
                        | gimli::DW_AT_declaration
                        | gimli::DW_AT_abstract_origin
                        | gimli::DW_AT_specification
                        | gimli::DW_AT_sibling
                ),
                Want::All => reads(die.tag, name),
                Want::Type => matches!(
                    name,
                    gimli::DW_AT_declaration | gimli::DW_AT_byte_size | gimli::DW_AT_type
                ),
                Want::Decl => matches!(name, gimli::DW_AT_decl_file | gimli::DW_AT_decl_line),
            };
            if name == gimli::DW_AT_name {
                die.has_name = true;
            }
            if !wanted {
                continue;
            }
            if let Some(run) = specs.get(skip_from..i).filter(|r| !r.is_empty()) {
                raw.skip_attributes(run).map_err(err)?;
            }
            skip_from = i + 1;
            // Raw values: the forms of these attributes need none of
            // `Attribute::value`'s normalization.
            let value = raw.read_attribute(*spec).map_err(err)?.raw_value();
            match name {
                gimli::DW_AT_type => die.type_ref = Some(self.reference(unit, offset, value)?),
                gimli::DW_AT_abstract_origin => {
                    die.abstract_origin = Some(self.reference(unit, offset, value)?);
                }
                gimli::DW_AT_specification => {
                    die.specification = Some(self.reference(unit, offset, value)?);
                }
                gimli::DW_AT_sibling => die.sibling = Some(self.reference(unit, offset, value)?),
                gimli::DW_AT_name => {
                    let s = self.dwarf.attr_string(&unit.unit, value).map_err(err)?;
                    die.name = Some(s.slice());
                }
                gimli::DW_AT_declaration => die.declaration = flag(&value),
                gimli::DW_AT_external => die.external = flag(&value),
                gimli::DW_AT_location => {
                    die.static_location = value.exprloc_value().is_some_and(|e| {
                        // DW_OP_addr, DW_OP_addrx, DW_OP_GNU_addr_index
                        matches!(e.0.slice().first(), Some(0x03 | 0xa1 | 0xfb))
                    });
                }
                gimli::DW_AT_data_member_location => {
                    die.member_location = match value.exprloc_value() {
                        Some(e) => plus_uconst(e.0.slice()),
                        None => value.udata_value(),
                    };
                }
                _ => {
                    let v = value.udata_value();
                    match name {
                        gimli::DW_AT_byte_size => die.byte_size = v,
                        gimli::DW_AT_bit_size => die.bit_size = v,
                        gimli::DW_AT_data_bit_offset => die.data_bit_offset = v,
                        gimli::DW_AT_bit_offset => die.bit_offset = v,
                        gimli::DW_AT_count => die.count = v,
                        gimli::DW_AT_lower_bound => die.lower_bound = v,
                        gimli::DW_AT_upper_bound => die.upper_bound = v,
                        gimli::DW_AT_decl_file => die.decl_file = v,
                        gimli::DW_AT_decl_line => die.decl_line = v,
                        _ => {}
                    }
                }
            }
        }
        if let Some(run) = specs.get(skip_from..).filter(|r| !r.is_empty()) {
            raw.skip_attributes(run).map_err(err)?;
        }
        Ok(true)
    }
}

/// Which attributes of a DIE to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Only `DW_AT_sibling`, to skip the DIE's children.
    Sibling,
    /// What the index needs: name, declaration, origins, sibling.
    Index,
    /// Everything the check reads.
    All,
    /// What a chain of types needs: declaration, size, type, and whether
    /// the DIE has a name (not the name itself).
    Type,
    /// Where it is declared.
    Decl,
}

/// Whether `Want::All` reads attribute `name` of a DIE with `tag`: what
/// reachability and layouts use of it, nothing more (every attribute read
/// costs; names cost a string search).
fn reads(tag: DwTag, name: DwAt) -> bool {
    match tag {
        gimli::DW_TAG_member => matches!(
            name,
            gimli::DW_AT_name
                | gimli::DW_AT_type
                | gimli::DW_AT_data_member_location
                | gimli::DW_AT_data_bit_offset
                | gimli::DW_AT_bit_offset
                | gimli::DW_AT_bit_size
                | gimli::DW_AT_byte_size
        ),
        gimli::DW_TAG_variable => matches!(
            name,
            gimli::DW_AT_name
                | gimli::DW_AT_type
                | gimli::DW_AT_abstract_origin
                | gimli::DW_AT_specification
                | gimli::DW_AT_declaration
                | gimli::DW_AT_external
                | gimli::DW_AT_location
                | gimli::DW_AT_sibling
        ),
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => matches!(
            name,
            gimli::DW_AT_name
                | gimli::DW_AT_declaration
                | gimli::DW_AT_byte_size
                | gimli::DW_AT_sibling
        ),
        gimli::DW_TAG_typedef => matches!(name, gimli::DW_AT_name | gimli::DW_AT_type),
        gimli::DW_TAG_subrange_type => matches!(
            name,
            gimli::DW_AT_count | gimli::DW_AT_lower_bound | gimli::DW_AT_upper_bound
        ),
        gimli::DW_TAG_subprogram => matches!(
            name,
            gimli::DW_AT_name
                | gimli::DW_AT_type
                | gimli::DW_AT_abstract_origin
                | gimli::DW_AT_specification
                | gimli::DW_AT_sibling
        ),
        _ => matches!(
            name,
            gimli::DW_AT_type
                | gimli::DW_AT_abstract_origin
                | gimli::DW_AT_specification
                | gimli::DW_AT_sibling
                | gimli::DW_AT_byte_size
                | gimli::DW_AT_declaration
        ),
    }
}

fn flag(value: &AttributeValue<Slice<'_>>) -> bool {
    matches!(value, AttributeValue::Flag(true))
}

/// A DWARF 2 member location: `DW_OP_plus_uconst N`.
fn plus_uconst(expr: &[u8]) -> Option<u64> {
    let (&op, rest) = expr.split_first()?;
    if op != 0x23 {
        return None;
    }
    let mut value = 0u64;
    for (i, &b) in rest.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f).checked_shl(u32::try_from(i * 7).ok()?)?;
        if b & 0x80 == 0 {
            return (i + 1 == rest.len()).then_some(value);
        }
    }
    None
}

/// A depth-first cursor over one DIE and its descendants.
#[derive(Debug)]
pub(super) struct Subtree<'d, 'a> {
    dwarf: &'d Dwarf<'a>,
    unit: &'d UnitInfo<'a>,
    raw: EntriesRaw<'d, 'd, Slice<'a>>,
    /// Open child lists: 0 before the root, 1 among the root's children.
    depth: isize,
    done: bool,
    /// The DIE `next` read last, and its depth.
    current: Die<'a>,
    level: isize,
}

impl<'a> Subtree<'_, 'a> {
    /// Reads the next DIE (then [`Self::current`]); returns its depth below
    /// the root (the root is 0), or `None` past the subtree.
    pub(super) fn next(
        &mut self,
        want: impl Fn(DwTag) -> Want,
    ) -> Result<Option<isize>, LayoutError> {
        loop {
            if self.done || self.raw.is_empty() {
                self.done = true;
                return Ok(None);
            }
            let level = self.depth;
            if !self
                .dwarf
                .read_die(self.unit, &mut self.raw, &want, &mut self.current)?
            {
                self.depth -= 1;
                if self.depth <= 0 {
                    self.done = true;
                }
                continue;
            }
            if self.current.has_children {
                self.depth += 1;
            } else if level == 0 {
                self.done = true;
            }
            self.level = level;
            return Ok(Some(level));
        }
    }

    /// The DIE `next` read last.
    pub(super) fn current(&self) -> &Die<'a> {
        &self.current
    }

    /// Skips the children of the current DIE.
    pub(super) fn skip_children(&mut self) -> Result<(), LayoutError> {
        let (die, level) = (&self.current, self.level);
        if !die.has_children || self.depth != level + 1 {
            return Ok(());
        }
        let sibling = die.sibling.filter(|&s| s > die.offset && s < self.unit.end);
        if let Some(sibling) = sibling {
            self.raw = self
                .unit
                .unit
                .entries_raw(Some(gimli::UnitOffset(sibling - self.unit.start)))
                .map_err(|e| self.dwarf.err(e))?;
            self.depth = level;
        } else {
            while self.depth > level {
                if self.raw.is_empty() {
                    self.done = true;
                    return Ok(());
                }
                match self
                    .raw
                    .read_abbreviation()
                    .map_err(|e| self.dwarf.err(e))?
                {
                    None => self.depth -= 1,
                    Some(abbrev) => {
                        self.raw
                            .skip_attributes(abbrev.attributes())
                            .map_err(|e| self.dwarf.err(e))?;
                        if abbrev.has_children() {
                            self.depth += 1;
                        }
                    }
                }
            }
        }
        if level == 0 {
            self.done = true;
        }
        Ok(())
    }
}
