//! Attribute values in `.debug_info`: their sizes by form, and decoding one
//! at a cursor, bounds-checked against the unit (malformed DWARF is an
//! error, never a panic).

use gimli::{DwForm, Encoding, Format};

use super::relocate::SectionRelocs;

/// What is wrong with a DIE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DieError {
    /// Malformed.
    Bad(&'static str),
    /// Valid DWARF that kernel builds do not produce.
    Unsupported(&'static str),
}

pub(super) const TRUNCATED: DieError = DieError::Bad("DIE runs past the end of its unit");

/// A position in `.debug_info`, bounded by the end of its unit.
#[derive(Debug, Clone)]
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pub pos: usize,
    pub end: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos` of `data`, reading no further than `end`.
    pub(super) fn new(data: &'a [u8], pos: usize, end: usize) -> Self {
        Self {
            data,
            pos,
            end: end.min(data.len()),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DieError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.end);
        let bytes = end
            .and_then(|e| self.data.get(self.pos..e))
            .ok_or(TRUNCATED)?;
        self.pos += n;
        Ok(bytes)
    }

    pub(super) fn skip(&mut self, n: usize) -> Result<(), DieError> {
        self.take(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DieError> {
        self.take(N)?.try_into().map_err(|_| TRUNCATED)
    }

    fn u8(&mut self) -> Result<u8, DieError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    /// A little-endian unsigned integer of `n` (at most 8) bytes.
    pub(super) fn uint(&mut self, n: usize) -> Result<u64, DieError> {
        Ok(match n {
            1 => u64::from(self.u8()?),
            2 => u64::from(u16::from_le_bytes(self.array()?)),
            4 => u64::from(u32::from_le_bytes(self.array()?)),
            8 => u64::from_le_bytes(self.array()?),
            _ => {
                let bytes = self.take(n)?;
                let mut word = [0u8; 8];
                word.get_mut(..n).ok_or(TRUNCATED)?.copy_from_slice(bytes);
                u64::from_le_bytes(word)
            }
        })
    }

    pub(super) fn uleb(&mut self) -> Result<u64, DieError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            } else if byte & 0x7f != 0 {
                return Err(DieError::Bad("LEB128 value too large"));
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
    }

    pub(super) fn sleb(&mut self) -> Result<i64, DieError> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            if shift < 64 {
                value |= i64::from(byte & 0x7f) << shift;
            }
            shift = shift.saturating_add(7);
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// A NUL-terminated string, without the NUL.
    fn cstr(&mut self) -> Result<&'a [u8], DieError> {
        let rest = self.data.get(self.pos..self.end).ok_or(TRUNCATED)?;
        let len = rest.iter().position(|&b| b == 0).ok_or(TRUNCATED)?;
        let s = self.take(len)?;
        self.pos += 1;
        Ok(s)
    }
}

/// A decoded attribute value, as far as the check tells values apart.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Unsigned(u64),
    Signed(i64),
    Flag(bool),
    /// A reference within the unit.
    UnitRef(u64),
    /// A `.debug_info` offset (`DW_FORM_ref_addr`).
    InfoRef(u64),
    /// An inline string.
    Str(&'a [u8]),
    /// A `.debug_str` offset.
    StrOffset(u64),
    /// A `.debug_line_str` offset.
    LineStrOffset(u64),
    /// An index into the unit's string offsets.
    StrIndex(u64),
    /// An expression or block.
    Block(&'a [u8]),
    /// A form that DWARF allows but the check does not read.
    Unsupported(&'static str),
    /// Anything the check never uses (addresses, section offsets).
    Other,
}

impl Value<'_> {
    /// The value as an unsigned constant (gimli's `udata_value`).
    pub(super) fn unsigned(self) -> Option<u64> {
        match self {
            Value::Unsigned(v) => Some(v),
            Value::Signed(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// The size of an attribute of `form` when it does not depend on its
/// value (gimli's table).
pub(super) fn fixed_size(form: DwForm, encoding: Encoding) -> Option<usize> {
    let offset = usize::from(encoding.format.word_size());
    Some(match form {
        gimli::DW_FORM_addr => usize::from(encoding.address_size),
        gimli::DW_FORM_implicit_const | gimli::DW_FORM_flag_present => 0,
        gimli::DW_FORM_data1
        | gimli::DW_FORM_flag
        | gimli::DW_FORM_strx1
        | gimli::DW_FORM_ref1
        | gimli::DW_FORM_addrx1 => 1,
        gimli::DW_FORM_data2
        | gimli::DW_FORM_ref2
        | gimli::DW_FORM_addrx2
        | gimli::DW_FORM_strx2 => 2,
        gimli::DW_FORM_addrx3 | gimli::DW_FORM_strx3 => 3,
        gimli::DW_FORM_data4
        | gimli::DW_FORM_ref_sup4
        | gimli::DW_FORM_ref4
        | gimli::DW_FORM_strx4
        | gimli::DW_FORM_addrx4 => 4,
        gimli::DW_FORM_data8
        | gimli::DW_FORM_ref8
        | gimli::DW_FORM_ref_sig8
        | gimli::DW_FORM_ref_sup8 => 8,
        gimli::DW_FORM_data16 => 16,
        gimli::DW_FORM_sec_offset
        | gimli::DW_FORM_GNU_ref_alt
        | gimli::DW_FORM_strp
        | gimli::DW_FORM_strp_sup
        | gimli::DW_FORM_GNU_strp_alt
        | gimli::DW_FORM_line_strp => offset,
        gimli::DW_FORM_ref_addr if encoding.version == 2 => usize::from(encoding.address_size),
        gimli::DW_FORM_ref_addr => offset,
        _ => return None,
    })
}

/// A field whose value a relocation may provide: the relocated value if
/// one applies at its offset, else its bytes.
pub(super) fn relocated(
    cur: &mut Cursor<'_>,
    relocs: &SectionRelocs<'_>,
    size: usize,
) -> Result<u64, DieError> {
    let at = cur.pos;
    let raw = cur.uint(size)?;
    Ok(relocs.value_at(at).unwrap_or(raw))
}

/// Decodes one attribute value of `form` at the cursor (`implicit`: the
/// constant of `DW_FORM_implicit_const`); offsets are taken from `relocs`
/// where a relocation applies.
pub(super) fn value<'a>(
    cur: &mut Cursor<'a>,
    encoding: Encoding,
    form: DwForm,
    implicit: i64,
    relocs: &SectionRelocs<'_>,
) -> Result<Value<'a>, DieError> {
    let form = direct_form(cur, form)?;
    direct_value(cur, encoding, form, implicit, relocs)
}

/// The form the attribute at the cursor really has: `form`, or the one a
/// `DW_FORM_indirect` names in the data (read past).
fn direct_form(cur: &mut Cursor<'_>, mut form: DwForm) -> Result<DwForm, DieError> {
    // DW_FORM_indirect names the form in the data; it cannot name itself
    // forever in a well-formed unit.
    for _ in 0..4 {
        if form != gimli::DW_FORM_indirect {
            return Ok(form);
        }
        form = DwForm(
            u16::try_from(cur.uleb()?).map_err(|_| DieError::Bad("unknown attribute form"))?,
        );
        if form == gimli::DW_FORM_implicit_const {
            return Err(DieError::Bad(
                "DW_FORM_implicit_const through DW_FORM_indirect",
            ));
        }
    }
    Err(DieError::Bad("DW_FORM_indirect loops"))
}

/// [`value`] of an attribute of `form` once any `DW_FORM_indirect` is
/// resolved (one still left here is an unknown form).
fn direct_value<'a>(
    cur: &mut Cursor<'a>,
    encoding: Encoding,
    form: DwForm,
    implicit: i64,
    relocs: &SectionRelocs<'_>,
) -> Result<Value<'a>, DieError> {
    let offset_size = usize::from(encoding.format.word_size());
    Ok(match form {
        gimli::DW_FORM_block1 => {
            let n = cur.u8()?;
            Value::Block(cur.take(usize::from(n))?)
        }
        gimli::DW_FORM_block2 => {
            let n = cur.uint(2)?;
            Value::Block(cur.take(usize::try_from(n).map_err(|_| TRUNCATED)?)?)
        }
        gimli::DW_FORM_block4 => {
            let n = cur.uint(4)?;
            Value::Block(cur.take(usize::try_from(n).map_err(|_| TRUNCATED)?)?)
        }
        gimli::DW_FORM_block | gimli::DW_FORM_exprloc => {
            let n = cur.uleb()?;
            Value::Block(cur.take(usize::try_from(n).map_err(|_| TRUNCATED)?)?)
        }
        gimli::DW_FORM_data16 => Value::Block(cur.take(16)?),
        gimli::DW_FORM_data1 => Value::Unsigned(cur.uint(1)?),
        gimli::DW_FORM_data2 => Value::Unsigned(cur.uint(2)?),
        gimli::DW_FORM_data4 => Value::Unsigned(cur.uint(4)?),
        gimli::DW_FORM_data8 => Value::Unsigned(cur.uint(8)?),
        gimli::DW_FORM_udata => Value::Unsigned(cur.uleb()?),
        gimli::DW_FORM_sdata => Value::Signed(cur.sleb()?),
        gimli::DW_FORM_implicit_const => Value::Signed(implicit),
        gimli::DW_FORM_flag => Value::Flag(cur.u8()? != 0),
        gimli::DW_FORM_flag_present => Value::Flag(true),
        gimli::DW_FORM_string => Value::Str(cur.cstr()?),
        gimli::DW_FORM_strp => Value::StrOffset(relocated(cur, relocs, offset_size)?),
        gimli::DW_FORM_line_strp => Value::LineStrOffset(relocated(cur, relocs, offset_size)?),
        gimli::DW_FORM_strx | gimli::DW_FORM_GNU_str_index => Value::StrIndex(cur.uleb()?),
        gimli::DW_FORM_strx1 => Value::StrIndex(cur.uint(1)?),
        gimli::DW_FORM_strx2 => Value::StrIndex(cur.uint(2)?),
        gimli::DW_FORM_strx3 => Value::StrIndex(cur.uint(3)?),
        gimli::DW_FORM_strx4 => Value::StrIndex(cur.uint(4)?),
        gimli::DW_FORM_ref1 => Value::UnitRef(cur.uint(1)?),
        gimli::DW_FORM_ref2 => Value::UnitRef(cur.uint(2)?),
        gimli::DW_FORM_ref4 => Value::UnitRef(cur.uint(4)?),
        gimli::DW_FORM_ref8 => Value::UnitRef(cur.uint(8)?),
        gimli::DW_FORM_ref_udata => Value::UnitRef(cur.uleb()?),
        gimli::DW_FORM_ref_addr => {
            let size = if encoding.version == 2 {
                usize::from(encoding.address_size)
            } else {
                offset_size
            };
            Value::InfoRef(relocated(cur, relocs, size)?)
        }
        gimli::DW_FORM_ref_sig8 => {
            cur.skip(8)?;
            Value::Unsupported("type unit references (DW_FORM_ref_sig8)")
        }
        gimli::DW_FORM_ref_sup4 | gimli::DW_FORM_ref_sup8 | gimli::DW_FORM_GNU_ref_alt => {
            cur.skip(fixed_size(form, encoding).unwrap_or(offset_size))?;
            Value::Unsupported("references into a supplementary object file")
        }
        gimli::DW_FORM_strp_sup | gimli::DW_FORM_GNU_strp_alt => {
            cur.skip(offset_size)?;
            Value::Unsupported("strings in a supplementary object file")
        }
        gimli::DW_FORM_addrx
        | gimli::DW_FORM_GNU_addr_index
        | gimli::DW_FORM_loclistx
        | gimli::DW_FORM_rnglistx => {
            cur.uleb()?;
            Value::Other
        }
        form => match fixed_size(form, encoding) {
            Some(size) => {
                cur.skip(size)?;
                Value::Other
            }
            None => return Err(DieError::Bad("unknown attribute form")),
        },
    })
}

/// The size of a unit's offsets.
pub(super) fn offset_size(format: Format) -> usize {
    usize::from(format.word_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DWARF5: Encoding = Encoding {
        address_size: 8,
        format: Format::Dwarf32,
        version: 5,
    };

    fn decode(bytes: &[u8], form: DwForm) -> (Result<String, DieError>, usize) {
        let relocs = SectionRelocs::default();
        let mut cur = Cursor::new(bytes, 0, bytes.len());
        let v = value(&mut cur, DWARF5, form, -3, &relocs).map(|v| format!("{v:?}"));
        (v, cur.pos)
    }

    #[test]
    fn leb128() {
        let mut cur = Cursor::new(&[0xe5, 0x8e, 0x26, 0x7f, 0x80, 0x7f, 0x80], 0, 7);
        assert_eq!(cur.uleb(), Ok(624_485));
        assert_eq!(cur.sleb(), Ok(-1));
        assert_eq!(cur.sleb(), Ok(-128));
        // Runs past the end.
        assert_eq!(cur.uleb(), Err(TRUNCATED));
        let mut ones = vec![0xff; 10];
        ones.push(0x01);
        let mut cur = Cursor::new(&ones, 0, ones.len());
        assert_eq!(cur.uleb(), Err(DieError::Bad("LEB128 value too large")));
    }

    #[test]
    fn forms() {
        let cases: &[(&[u8], DwForm, &str, usize)] = &[
            (&[0x2a], gimli::DW_FORM_data1, "Unsigned(42)", 1),
            (&[0x34, 0x12], gimli::DW_FORM_data2, "Unsigned(4660)", 2),
            (&[1, 0, 0, 0], gimli::DW_FORM_ref4, "UnitRef(1)", 4),
            (&[0x7f], gimli::DW_FORM_sdata, "Signed(-1)", 1),
            (&[], gimli::DW_FORM_implicit_const, "Signed(-3)", 0),
            (&[], gimli::DW_FORM_flag_present, "Flag(true)", 0),
            (&[0], gimli::DW_FORM_flag, "Flag(false)", 1),
            (b"ab\0c", gimli::DW_FORM_string, "Str([97, 98])", 3),
            (&[2, 0x23, 8], gimli::DW_FORM_exprloc, "Block([35, 8])", 3),
            (&[9, 0, 0, 0], gimli::DW_FORM_strp, "StrOffset(9)", 4),
            (&[3], gimli::DW_FORM_strx1, "StrIndex(3)", 1),
            (&[0; 8], gimli::DW_FORM_addr, "Other", 8),
            // DW_FORM_indirect names the real form.
            (&[0x0b, 5], gimli::DW_FORM_indirect, "Unsigned(5)", 2),
        ];
        for &(bytes, form, want, used) in cases {
            assert_eq!(decode(bytes, form), (Ok(want.to_string()), used), "{form}");
        }
        assert_eq!(decode(&[1, 2], gimli::DW_FORM_data4).0, Err(TRUNCATED));
        assert_eq!(
            decode(&[0x21], gimli::DW_FORM_indirect).0,
            Err(DieError::Bad(
                "DW_FORM_implicit_const through DW_FORM_indirect"
            ))
        );
        assert_eq!(
            decode(&[], DwForm(0x7777)).0,
            Err(DieError::Bad("unknown attribute form"))
        );
    }
}
