//! A unit's abbreviation table, read from `.debug_abbrev` straight into
//! [`Abbrevs`]: each abbreviation's tag and attributes, packed in two
//! vectors. gimli's reading built a vector per abbreviation and a table
//! of them, for each build on every diff, only for the check to copy what
//! it needs out of them; malformed tables are errors here as there.

use std::cell::{Cell, RefCell};

use gimli::{DwAt, DwForm, DwTag, Encoding};

use super::form::{self, Cursor, DieError};
use super::plan::{all_covers_type, has_name, Abbrevs, Compiled, Spec, UNMADE};

const TRUNCATED: DieError = DieError::Bad("abbreviation table runs past its section");

impl Abbrevs {
    /// Reads the abbreviation table at `offset` of `section` (the
    /// `.debug_abbrev` of a unit with `encoding`).
    pub(super) fn read(
        section: &[u8],
        offset: usize,
        encoding: Encoding,
    ) -> Result<Self, DieError> {
        if offset >= section.len() {
            return Err(TRUNCATED);
        }
        let mut cur = Cursor::new(section, offset, section.len());
        Self::read_at(&mut cur, encoding).map_err(
            |e| {
                if e == form::TRUNCATED {
                    TRUNCATED
                } else {
                    e
                }
            },
        )
    }

    fn read_at(cur: &mut Cursor<'_>, encoding: Encoding) -> Result<Self, DieError> {
        let mut compiled: Vec<Compiled> = Vec::new();
        let mut specs = Vec::new();
        loop {
            let code = cur.uleb()?;
            if code == 0 {
                break;
            }
            // In order, a code cannot repeat; out of order, look.
            let in_order = u64::try_from(compiled.len()).is_ok_and(|n| n + 1 == code);
            if !in_order && compiled.iter().any(|c| c.code == code) {
                return Err(DieError::Bad("duplicate abbreviation code"));
            }
            let tag = u16::try_from(cur.uleb()?)
                .ok()
                .filter(|&t| t != 0)
                .ok_or(DieError::Bad("abbreviation with an invalid tag"))?;
            let has_children = match cur.uint(1)? {
                0 => false,
                1 => true,
                _ => return Err(DieError::Bad("abbreviation with an invalid children flag")),
            };
            let first = specs.len();
            read_specs(cur, &mut specs)?;
            let tag = DwTag(tag);
            let own = specs.get(first..).unwrap_or_default();
            compiled.push(Compiled {
                code,
                tag,
                has_children,
                specs: (position(first)?, position(specs.len())?),
                has_name: has_name(own),
                all_covers_type: all_covers_type(tag, own),
                plans: std::array::from_fn(|_| Cell::new(UNMADE)),
            });
        }
        Ok(Self {
            encoding,
            compiled,
            specs,
            steps: RefCell::new(Vec::with_capacity(1024)),
        })
    }
}

/// Reads one abbreviation's attribute specifications, up to the (0, 0)
/// that ends them, onto `specs`.
fn read_specs(cur: &mut Cursor<'_>, specs: &mut Vec<Spec>) -> Result<(), DieError> {
    loop {
        let (name, form) = (cur.uleb()?, cur.uleb()?);
        if (name, form) == (0, 0) {
            return Ok(());
        }
        let invalid = DieError::Bad("abbreviation with an invalid attribute");
        let name = u16::try_from(name)
            .ok()
            .filter(|&n| n != 0)
            .ok_or(invalid)?;
        let form = u16::try_from(form)
            .ok()
            .filter(|&f| f != 0)
            .ok_or(invalid)?;
        let form = DwForm(form);
        let implicit = if form == gimli::DW_FORM_implicit_const {
            cur.sleb()?
        } else {
            0
        };
        specs.push(Spec {
            name: DwAt(name),
            form,
            implicit,
        });
    }
}

/// A position in [`Abbrevs::specs`], in the 32 bits kept.
fn position(n: usize) -> Result<u32, DieError> {
    u32::try_from(n).map_err(|_| DieError::Bad("abbreviation table too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DWARF5: Encoding = Encoding {
        address_size: 8,
        format: gimli::Format::Dwarf32,
        version: 5,
    };

    #[test]
    fn abbreviations_are_read_with_their_attributes() {
        let table = [
            // 1: DW_TAG_structure_type, children, name strp, byte_size data1
            1, 0x13, 1, 0x03, 0x0e, 0x0b, 0x0b, 0, 0,
            // 2: DW_TAG_member, no children, const_value implicit_const -2
            2, 0x0d, 0, 0x1c, 0x21, 0x7e, 0, 0, // end of the table
            0,
        ];
        // Read from an offset, as a unit's table is.
        let mut section = vec![0xff; 3];
        section.extend_from_slice(&table);
        let abbrevs = Abbrevs::read(&section, 3, DWARF5).expect("a valid table");
        let s = abbrevs.get(1).expect("code 1");
        assert_eq!(
            (s.tag, s.has_children, s.has_name),
            (gimli::DW_TAG_structure_type, true, true)
        );
        assert_eq!(
            abbrevs.specs_of(s),
            [
                Spec {
                    name: gimli::DW_AT_name,
                    form: gimli::DW_FORM_strp,
                    implicit: 0
                },
                Spec {
                    name: gimli::DW_AT_byte_size,
                    form: gimli::DW_FORM_data1,
                    implicit: 0
                },
            ]
        );
        let m = abbrevs.get(2).expect("code 2");
        assert_eq!(
            (m.tag, m.has_children, m.has_name),
            (gimli::DW_TAG_member, false, false)
        );
        assert_eq!(abbrevs.specs_of(m)[0].implicit, -2);
        assert!(abbrevs.get(3).is_none() && abbrevs.get(0).is_none());
    }

    #[test]
    fn codes_out_of_order_are_found_and_duplicates_refused() {
        let table = [5, 0x24, 0, 0, 0, 2, 0x0f, 0, 0, 0, 0];
        let abbrevs = Abbrevs::read(&table, 0, DWARF5).expect("a valid table");
        assert_eq!(abbrevs.get(5).map(|a| a.tag), Some(gimli::DW_TAG_base_type));
        assert_eq!(
            abbrevs.get(2).map(|a| a.tag),
            Some(gimli::DW_TAG_pointer_type)
        );
        let twice = [1, 0x24, 0, 0, 0, 1, 0x0f, 0, 0, 0, 0];
        assert_eq!(
            Abbrevs::read(&twice, 0, DWARF5).err(),
            Some(DieError::Bad("duplicate abbreviation code"))
        );
    }

    #[test]
    fn malformed_tables_are_errors() {
        let bad = |table: &[u8]| Abbrevs::read(table, 0, DWARF5).err();
        // No end.
        assert_eq!(bad(&[1, 0x24, 0, 0x03, 0x08]), Some(TRUNCATED));
        // Children flag 2, tag 0, attribute name 0.
        assert!(bad(&[1, 0x24, 2, 0, 0, 0]).is_some());
        assert!(bad(&[1, 0, 0, 0, 0, 0]).is_some());
        assert!(bad(&[1, 0x24, 0, 0, 0x08, 0, 0, 0]).is_some());
        // An offset past the section.
        assert_eq!(Abbrevs::read(&[0], 1, DWARF5).err(), Some(TRUNCATED));
    }
}
