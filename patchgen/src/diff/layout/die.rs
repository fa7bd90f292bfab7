//! Reading one DIE in place: its abbreviation's plan for the question
//! asked ([`Want`], see `plan`), run over its bytes (see `form`), the
//! values put into a [`Die`]. gimli parses unit headers and abbreviations;
//! this does the per-DIE work, which is most of the check's, without
//! building gimli's general attribute values.

use gimli::DwTag;

use super::form::{relocated, value, Cursor, DieError, Value};
use super::plan::{plan, Abbrevs, Field, Step, Want, UNMADE};
use super::relocate::SectionRelocs;

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
    /// The DIE was read with [`Want::All`], which read every attribute
    /// [`Want::Type`] reads of it.
    pub covers_type: bool,
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
    pub(super) fn new(offset: usize, tag: DwTag, has_children: bool) -> Self {
        Self {
            offset,
            tag,
            has_children,
            name: None,
            has_name: false,
            covers_type: false,
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

/// What decoding a DIE needs besides its bytes: the relocations of
/// `.debug_info`, for the offsets it holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decoder<'s, 'a> {
    pub relocs: &'s SectionRelocs<'a>,
}

/// What a DIE's string attribute holds, before it is looked up.
#[derive(Debug, Clone, Copy)]
pub(super) enum StrRef<'a> {
    Inline(&'a [u8]),
    Str(u64),
    LineStr(u64),
    Index(u64),
}

/// A unit, as DIEs are read in it.
#[derive(Debug, Clone, Copy)]
pub(super) struct UnitCtx<'u> {
    pub start: usize,
    pub end: usize,
    pub abbrevs: &'u Abbrevs,
}

impl<'a> Decoder<'_, 'a> {
    /// Reads the DIE at the cursor into `die`, the attributes `want` asks
    /// for; `names` turns string attributes into bytes. `Ok(false)` for a
    /// null entry.
    pub(super) fn read(
        &self,
        unit: UnitCtx<'_>,
        cur: &mut Cursor<'a>,
        want: Want,
        die: &mut Die<'a>,
        names: &dyn Fn(StrRef<'a>) -> Result<&'a [u8], DieError>,
    ) -> Result<bool, DieError> {
        let offset = cur.pos;
        let code = cur.uleb()?;
        if code == 0 {
            return Ok(false);
        }
        let abbrevs = unit.abbrevs;
        let compiled = abbrevs
            .get(code)
            .ok_or(DieError::Bad("unknown abbreviation code"))?;
        *die = Die::new(offset, compiled.tag, compiled.has_children);
        die.has_name = compiled.has_name;
        die.covers_type = want == Want::All && compiled.all_covers_type;
        let cell = &compiled.plans[want.index()];
        let mut range = cell.get();
        if range == UNMADE {
            let mut steps = abbrevs.steps.try_borrow_mut().map_err(|_| BUSY)?;
            let specs = abbrevs.specs_of(compiled);
            range = plan(compiled.tag, specs, abbrevs.encoding, want, &mut steps);
            cell.set(range);
        }
        let steps = abbrevs.steps.try_borrow().map_err(|_| BUSY)?;
        let steps = steps
            .get(range.0 as usize..range.1 as usize)
            .ok_or(DieError::Bad("abbreviation plan out of range"))?;
        self.run(unit, cur, steps, die, names)?;
        Ok(true)
    }

    /// Reads the attributes of a DIE by its plan.
    fn run(
        &self,
        unit: UnitCtx<'_>,
        cur: &mut Cursor<'a>,
        steps: &[Step],
        die: &mut Die<'a>,
        names: &dyn Fn(StrRef<'a>) -> Result<&'a [u8], DieError>,
    ) -> Result<(), DieError> {
        let encoding = unit.abbrevs.encoding;
        for step in steps {
            match *step {
                Step::Skip(n) => cur.skip(n)?,
                Step::Variable(form) => {
                    value(cur, encoding, form, 0, self.relocs)?;
                }
                Step::Read(field, form, implicit) => {
                    let value = value(cur, encoding, form, implicit, self.relocs)?;
                    set(field, value, unit, die, names)?;
                }
                Step::Ref4(field) => {
                    let target = usize::try_from(cur.uint(4)?)
                        .ok()
                        .and_then(|o| unit.start.checked_add(o))
                        .filter(|&t| t < unit.end)
                        .ok_or(DieError::Bad("reference outside its unit"))?;
                    put_reference(die, field, target);
                }
                Step::Strp4Name => {
                    let offset = relocated(cur, self.relocs, 4)?;
                    die.name = Some(names(StrRef::Str(offset))?);
                }
                Step::Data(field, size) => {
                    let value = cur.uint(usize::from(size))?;
                    put_unsigned(die, field, Some(value));
                }
                Step::Present(field) => match field {
                    Field::Declaration => die.declaration = true,
                    Field::External => die.external = true,
                    _ => {}
                },
            }
        }
        Ok(())
    }
}

/// The plans of a unit's abbreviations are being made while read: a bug.
const BUSY: DieError = DieError::Bad("abbreviation plans in use");

/// Puts `value` into `field` of `die`.
fn set<'a>(
    field: Field,
    value: Value<'a>,
    unit: UnitCtx<'_>,
    die: &mut Die<'a>,
    names: &dyn Fn(StrRef<'a>) -> Result<&'a [u8], DieError>,
) -> Result<(), DieError> {
    let reference = || -> Result<usize, DieError> {
        match value {
            Value::UnitRef(o) => usize::try_from(o)
                .ok()
                .and_then(|o| unit.start.checked_add(o))
                .filter(|&t| t < unit.end)
                .ok_or(DieError::Bad("reference outside its unit")),
            Value::InfoRef(o) => {
                usize::try_from(o).map_err(|_| DieError::Bad("reference out of range"))
            }
            Value::Unsupported(what) => Err(DieError::Unsupported(what)),
            _ => Err(DieError::Bad("reference attribute of a non-reference form")),
        }
    };
    match field {
        Field::Name => {
            let string = match value {
                Value::Str(s) => StrRef::Inline(s),
                Value::StrOffset(o) => StrRef::Str(o),
                Value::LineStrOffset(o) => StrRef::LineStr(o),
                Value::StrIndex(i) => StrRef::Index(i),
                Value::Unsupported(what) => return Err(DieError::Unsupported(what)),
                _ => return Err(DieError::Bad("string attribute of a non-string form")),
            };
            die.name = Some(names(string)?);
        }
        Field::Declaration => die.declaration = matches!(value, Value::Flag(true)),
        Field::External => die.external = matches!(value, Value::Flag(true)),
        Field::Location => {
            // DW_OP_addr, DW_OP_addrx, DW_OP_GNU_addr_index
            die.static_location =
                matches!(value, Value::Block(e) if matches!(e.first(), Some(0x03 | 0xa1 | 0xfb)));
        }
        Field::MemberLocation => {
            die.member_location = match value {
                Value::Block(e) => plus_uconst(e),
                v => v.unsigned(),
            };
        }
        Field::ByteSize
        | Field::BitSize
        | Field::DataBitOffset
        | Field::BitOffset
        | Field::Count
        | Field::LowerBound
        | Field::UpperBound
        | Field::DeclFile
        | Field::DeclLine => put_unsigned(die, field, value.unsigned()),
        Field::Type | Field::AbstractOrigin | Field::Specification | Field::Sibling => {
            put_reference(die, field, reference()?);
        }
    }
    Ok(())
}

/// Puts an unsigned constant into `field` of `die`.
fn put_unsigned(die: &mut Die<'_>, field: Field, value: Option<u64>) {
    match field {
        Field::MemberLocation => die.member_location = value,
        Field::ByteSize => die.byte_size = value,
        Field::BitSize => die.bit_size = value,
        Field::DataBitOffset => die.data_bit_offset = value,
        Field::BitOffset => die.bit_offset = value,
        Field::Count => die.count = value,
        Field::LowerBound => die.lower_bound = value,
        Field::UpperBound => die.upper_bound = value,
        Field::DeclFile => die.decl_file = value,
        Field::DeclLine => die.decl_line = value,
        _ => {}
    }
}

/// Puts a reference into `field` of `die`.
fn put_reference(die: &mut Die<'_>, field: Field, target: usize) {
    match field {
        Field::Type => die.type_ref = Some(target),
        Field::AbstractOrigin => die.abstract_origin = Some(target),
        Field::Specification => die.specification = Some(target),
        Field::Sibling => die.sibling = Some(target),
        _ => {}
    }
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
