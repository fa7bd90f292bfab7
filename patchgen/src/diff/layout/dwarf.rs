//! The DWARF of one relocatable object, read as little as the layout check
//! needs: its units, and a cursor that reads any DIE's subtree, only the
//! attributes asked for. Subtrees are skipped through `DW_AT_sibling`.

use std::path::Path;

use gimli::{AttributeValue, SectionId};

pub(super) use super::die::Die;
use super::die::{Decoder, StrRef, UnitCtx};
use super::form::{offset_size, relocated, value, Cursor, DieError};
use super::plan::Abbrevs;
pub(super) use super::plan::{members_want, Want};
use super::relocate::{string_at, DebugSections, Reader, SectionRelocs};
use super::LayoutError;

/// One unit and where it lies in `.debug_info`.
#[derive(Debug)]
struct UnitInfo<'a> {
    header: gimli::UnitHeader<Reader<'a>>,
    start: usize,
    end: usize,
    abbrevs: Abbrevs,
    /// `DW_AT_str_offsets_base` of the unit DIE (0 without one).
    str_offsets_base: usize,
}

impl UnitInfo<'_> {
    fn ctx(&self) -> UnitCtx<'_> {
        UnitCtx {
            start: self.start,
            end: self.end,
            abbrevs: &self.abbrevs,
        }
    }
}

/// One object's DWARF.
#[derive(Debug)]
pub(super) struct Dwarf<'a> {
    pub path: &'a Path,
    pub sections: &'a DebugSections<'a>,
    /// `.debug_info`, `.debug_str`, `.debug_line_str`, `.debug_str_offsets`.
    info: &'a [u8],
    strings: &'a [u8],
    line_strings: &'a [u8],
    str_offsets: &'a [u8],
    info_relocs: &'a SectionRelocs<'a>,
    dwarf: gimli::Dwarf<Reader<'a>>,
    units: Vec<UnitInfo<'a>>,
}

impl<'a> Dwarf<'a> {
    /// Opens the DWARF in `sections`: its units and their abbreviations.
    pub(super) fn load(sections: &'a DebugSections<'a>) -> Result<Self, LayoutError> {
        let path = sections.object().path.as_path();
        let err = |source| LayoutError::Dwarf {
            path: path.to_owned(),
            source,
        };
        let dwarf =
            gimli::Dwarf::load(|id| Ok::<_, gimli::Error>(sections.reader(id))).map_err(err)?;
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
            let die_error = |e| match e {
                DieError::Bad(what) => LayoutError::BadDwarf {
                    path: path.to_owned(),
                    offset: start as u64,
                    what,
                },
                DieError::Unsupported(what) => LayoutError::Unsupported {
                    path: path.to_owned(),
                    offset: start as u64,
                    what,
                },
            };
            let abbrevs = Abbrevs::read(
                sections.bytes(SectionId::DebugAbbrev),
                header.debug_abbrev_offset().0,
                header.encoding(),
            )
            .map_err(die_error)?;
            let root = start.checked_add(header.header_size()).unwrap_or(end);
            let str_offsets_base = str_offsets_base(
                sections.bytes(SectionId::DebugInfo),
                sections.relocs(SectionId::DebugInfo),
                (root, end),
                &abbrevs,
            )
            .map_err(die_error)?;
            units.push(UnitInfo {
                header,
                start,
                end,
                abbrevs,
                str_offsets_base,
            });
        }
        Ok(Self {
            path,
            sections,
            info: sections.bytes(SectionId::DebugInfo),
            strings: sections.bytes(SectionId::DebugStr),
            line_strings: sections.bytes(SectionId::DebugLineStr),
            str_offsets: sections.bytes(SectionId::DebugStrOffsets),
            info_relocs: sections.relocs(SectionId::DebugInfo),
            dwarf,
            units,
        })
    }

    /// The offsets of the units' root DIEs.
    pub(super) fn unit_roots(&self) -> Vec<usize> {
        self.units
            .iter()
            .map(|u| u.start + u.header.header_size())
            .collect()
    }

    /// The size of `.debug_info`.
    pub(super) fn info_len(&self) -> usize {
        self.info.len()
    }

    pub(super) fn bad(&self, offset: usize, what: &'static str) -> LayoutError {
        LayoutError::BadDwarf {
            path: self.path.to_owned(),
            offset: offset as u64,
            what,
        }
    }

    /// The error of the DIE at `offset`.
    fn die_error(&self, offset: usize, e: DieError) -> LayoutError {
        match e {
            DieError::Bad(what) => self.bad(offset, what),
            DieError::Unsupported(what) => LayoutError::Unsupported {
                path: self.path.to_owned(),
                offset: offset as u64,
                what,
            },
        }
    }

    fn unit_of(&self, offset: usize) -> Result<&UnitInfo<'a>, LayoutError> {
        let i = self.units.partition_point(|u| u.start <= offset);
        i.checked_sub(1)
            .and_then(|i| self.units.get(i))
            .filter(|u| offset < u.end)
            .ok_or_else(|| self.bad(offset, "reference outside every unit"))
    }

    /// The string `s` of a DIE in `unit`.
    fn string(&self, unit: &UnitInfo<'a>, s: StrRef<'a>) -> Result<&'a [u8], DieError> {
        let out_of_range = DieError::Bad("string offset out of range");
        let at = |section: &'a [u8], offset: u64| {
            usize::try_from(offset)
                .ok()
                .and_then(|o| string_at(section, o))
                .ok_or(out_of_range)
        };
        match s {
            StrRef::Inline(s) => Ok(s),
            StrRef::Str(o) => at(self.strings, o),
            StrRef::LineStr(o) => at(self.line_strings, o),
            StrRef::Index(i) => {
                let size = offset_size(unit.header.encoding().format);
                let entry = usize::try_from(i)
                    .ok()
                    .and_then(|i| i.checked_mul(size))
                    .and_then(|o| o.checked_add(unit.str_offsets_base))
                    .ok_or(out_of_range)?;
                let field = entry
                    .checked_add(size)
                    .and_then(|end| self.str_offsets.get(entry..end))
                    .ok_or(out_of_range)?;
                let mut word = [0u8; 8];
                word.get_mut(..size)
                    .ok_or(out_of_range)?
                    .copy_from_slice(field);
                let offset = self
                    .sections
                    .relocs(SectionId::DebugStrOffsets)
                    .value_at(entry)
                    .unwrap_or(u64::from_le_bytes(word));
                at(self.strings, offset)
            }
        }
    }

    fn decoder(&self) -> Decoder<'_, 'a> {
        Decoder {
            relocs: self.info_relocs,
        }
    }

    /// Reads the DIE at `cur` of `unit` into `die`.
    fn read_die(
        &self,
        unit: &UnitInfo<'a>,
        cur: &mut Cursor<'a>,
        want: Want,
        die: &mut Die<'a>,
    ) -> Result<bool, LayoutError> {
        let at = cur.pos;
        self.decoder()
            .read(unit.ctx(), cur, want, die, &|s| self.string(unit, s))
            .map_err(|e| self.die_error(at, e))
    }

    /// A cursor over the subtree of the DIE at `offset`.
    pub(super) fn subtree(&self, offset: usize) -> Result<Subtree<'_, 'a>, LayoutError> {
        let unit = self.unit_of(offset)?;
        Ok(Subtree {
            dwarf: self,
            unit,
            cur: Cursor::new(self.info, offset, unit.end),
            depth: 0,
            done: false,
            current: Die::new(offset, gimli::DW_TAG_null, false),
            level: 0,
        })
    }

    /// The DIE at `offset`, with the attributes `want` asks for.
    pub(super) fn die_with(&self, offset: usize, want: Want) -> Result<Die<'a>, LayoutError> {
        let unit = self.unit_of(offset)?;
        let mut cur = Cursor::new(self.info, offset, unit.end);
        let mut die = Die::new(offset, gimli::DW_TAG_null, false);
        if self.read_die(unit, &mut cur, want, &mut die)? {
            Ok(die)
        } else {
            Err(self.bad(offset, "no DIE at a referenced offset"))
        }
    }

    /// `file:line` of a DIE's declaration, the file as the line program
    /// names it (relative to the build directory when it is inside it).
    /// Only asked about changed types: the unit's line program is read here.
    pub(super) fn declared_at(&self, offset: usize) -> Option<String> {
        let die = self.die_with(offset, Want::Decl).ok()?;
        let (file, line) = (die.decl_file?, die.decl_line?);
        let unit_info = self.unit_of(die.offset).ok()?;
        let unit = gimli::Unit::new(&self.dwarf, unit_info.header.clone()).ok()?;
        let header = unit.line_program.as_ref()?.header();
        let entry = header.file(file)?;
        let string = |v: AttributeValue<Reader<'a>>| {
            let s = self.dwarf.attr_string(&unit, v).ok()?;
            let bytes = gimli::Reader::to_slice(&s).ok()?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
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
}

/// `DW_AT_str_offsets_base` of the unit DIE at `root` (in a unit ending at
/// `end`), 0 without one.
fn str_offsets_base(
    info: &[u8],
    relocs: &SectionRelocs<'_>,
    (root, end): (usize, usize),
    abbrevs: &Abbrevs,
) -> Result<usize, DieError> {
    let mut cur = Cursor::new(info, root, end);
    if cur.is_empty() {
        return Ok(0);
    }
    let code = cur.uleb()?;
    if code == 0 {
        return Ok(0);
    }
    let abbrev = abbrevs
        .get(code)
        .ok_or(DieError::Bad("unknown abbreviation code"))?;
    let encoding = abbrevs.encoding;
    for spec in abbrevs.specs_of(abbrev) {
        if spec.name == gimli::DW_AT_str_offsets_base && spec.form == gimli::DW_FORM_sec_offset {
            let base = relocated(&mut cur, relocs, offset_size(encoding.format))?;
            return usize::try_from(base)
                .map_err(|_| DieError::Bad("string offsets base out of range"));
        }
        value(&mut cur, encoding, spec.form, spec.implicit, relocs)?;
    }
    Ok(0)
}

/// A depth-first cursor over one DIE and its descendants.
#[derive(Debug)]
pub(super) struct Subtree<'d, 'a> {
    dwarf: &'d Dwarf<'a>,
    unit: &'d UnitInfo<'a>,
    cur: Cursor<'a>,
    /// Open child lists: 0 before the root, 1 among the root's children.
    depth: isize,
    done: bool,
    /// The DIE `next` read last, and its depth.
    current: Die<'a>,
    level: isize,
}

impl<'a> Subtree<'_, 'a> {
    /// Reads the next DIE (then [`Self::current`]) with the attributes
    /// `want` asks for; returns its depth below the root (the root is 0),
    /// or `None` past the subtree.
    pub(super) fn next(&mut self, want: Want) -> Result<Option<isize>, LayoutError> {
        self.next_by(|_| want)
    }

    /// [`Self::next`], with the attributes `want` asks for at the DIE's
    /// depth.
    pub(super) fn next_by(
        &mut self,
        want: impl Fn(isize) -> Want,
    ) -> Result<Option<isize>, LayoutError> {
        loop {
            if self.done || self.cur.is_empty() {
                self.done = true;
                return Ok(None);
            }
            let level = self.depth;
            if !self
                .dwarf
                .read_die(self.unit, &mut self.cur, want(level), &mut self.current)?
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
        let level = self.level;
        if !self.current.has_children || self.depth != level + 1 {
            return Ok(());
        }
        let (offset, end) = (self.current.offset, self.unit.end);
        match self.current.sibling.filter(|&s| s > offset && s < end) {
            Some(sibling) => {
                self.cur.pos = sibling;
                self.depth = level;
            }
            None => {
                // Through the children, jumping past theirs where they say
                // where their siblings are.
                let mut die = Die::new(offset, gimli::DW_TAG_null, false);
                while self.depth > level {
                    if self.cur.is_empty() {
                        self.done = true;
                        return Ok(());
                    }
                    if !self
                        .dwarf
                        .read_die(self.unit, &mut self.cur, Want::Sibling, &mut die)?
                    {
                        self.depth -= 1;
                    } else if die.has_children {
                        match die.sibling.filter(|&s| s > die.offset && s < end) {
                            Some(sibling) => self.cur.pos = sibling,
                            None => self.depth += 1,
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
