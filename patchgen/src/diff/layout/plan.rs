//! Reading plans: the kinds of question asked of a DIE ([`Want`]), and
//! each abbreviation of a unit compiled, once per kind of question, into
//! the steps reading a DIE of it takes. A run of unwanted fixed-size
//! attributes is one skip; a wanted attribute is decoded straight into
//! its field of a [`Die`](super::die::Die).

use std::cell::{Cell, RefCell};

use gimli::{DwAt, DwForm, DwTag, Encoding, Format};

use super::form::fixed_size;

/// Which attributes of a DIE to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Only `DW_AT_sibling`, to skip the DIE's children.
    Sibling,
    /// What the index needs of the DIEs it indexes (name, declaration,
    /// origins, sibling); of others, only the sibling.
    Index,
    /// [`Want::Index`] without functions: of subprograms, only the
    /// sibling.
    TypeIndex,
    /// Everything the check reads.
    All,
    /// What a chain of types needs: declaration, size, type, and whether
    /// the DIE has a name (not the name itself).
    Type,
    /// Where it is declared.
    Decl,
    /// Of a member, what [`Want::All`] reads; of other DIEs, only the
    /// sibling (an aggregate's children read for its members).
    Members,
}

/// How many kinds of [`Want`] there are.
pub(super) const WANTS: usize = 7;

impl Want {
    /// Where the plans for this question are kept in [`Compiled::plans`].
    pub(super) fn index(self) -> usize {
        match self {
            Want::Sibling => 0,
            Want::Index => 1,
            Want::All => 2,
            Want::Type => 3,
            Want::Decl => 4,
            Want::TypeIndex => 5,
            Want::Members => 6,
        }
    }
}

/// What reading an aggregate's subtree for its members asks at `level`
/// below it: of the aggregate itself only where its children end, of its
/// children [`Want::Members`].
pub(super) fn members_want(level: isize) -> Want {
    if level == 0 {
        Want::Sibling
    } else {
        Want::Members
    }
}

/// The fields `want` reads of a DIE with `tag`: what the question uses
/// of it, nothing more (every attribute read costs; names cost a string
/// search).
fn wanted(want: Want, tag: DwTag) -> Fields {
    use Field::*;
    match want {
        Want::Sibling => Fields::of(&[Sibling]),
        Want::Members if tag == gimli::DW_TAG_member => wanted(Want::All, tag),
        Want::Members => Fields::of(&[Sibling]),
        Want::TypeIndex if tag == gimli::DW_TAG_subprogram => Fields::of(&[Sibling]),
        Want::Index | Want::TypeIndex => match tag {
            gimli::DW_TAG_subprogram
            | gimli::DW_TAG_variable
            | gimli::DW_TAG_structure_type
            | gimli::DW_TAG_union_type
            | gimli::DW_TAG_typedef => {
                Fields::of(&[Name, Declaration, AbstractOrigin, Specification, Sibling])
            }
            _ => Fields::of(&[Sibling]),
        },
        Want::All => match tag {
            gimli::DW_TAG_member => Fields::of(&[
                Name,
                Type,
                MemberLocation,
                DataBitOffset,
                BitOffset,
                BitSize,
                ByteSize,
            ]),
            gimli::DW_TAG_variable => Fields::of(&[
                Name,
                Type,
                AbstractOrigin,
                Specification,
                Declaration,
                External,
                Location,
                Sibling,
            ]),
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                Fields::of(&[Name, Declaration, ByteSize, Sibling])
            }
            gimli::DW_TAG_typedef => Fields::of(&[Name, Type]),
            gimli::DW_TAG_subrange_type => Fields::of(&[Count, LowerBound, UpperBound]),
            // Not the name: a function's scope is read with `Index`.
            gimli::DW_TAG_subprogram => Fields::of(&[Type, AbstractOrigin, Specification, Sibling]),
            _ => Fields::of(&[
                Type,
                AbstractOrigin,
                Specification,
                Sibling,
                ByteSize,
                Declaration,
            ]),
        },
        Want::Type => Fields::of(&[Declaration, ByteSize, Type]),
        Want::Decl => Fields::of(&[DeclFile, DeclLine]),
    }
}

/// A set of [`Field`]s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields(u32);

impl Fields {
    const fn of(fields: &[Field]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < fields.len() {
            bits |= 1 << fields[i] as u32;
            i += 1;
        }
        Self(bits)
    }

    fn has(self, field: Field) -> bool {
        self.0 & (1 << field as u32) != 0
    }
}

/// The field of [`Die`] an attribute fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Field {
    Name,
    Declaration,
    External,
    Location,
    MemberLocation,
    ByteSize,
    BitSize,
    DataBitOffset,
    BitOffset,
    Count,
    LowerBound,
    UpperBound,
    DeclFile,
    DeclLine,
    Type,
    AbstractOrigin,
    Specification,
    Sibling,
}

fn field_of(name: DwAt) -> Option<Field> {
    Some(match name {
        gimli::DW_AT_name => Field::Name,
        gimli::DW_AT_declaration => Field::Declaration,
        gimli::DW_AT_external => Field::External,
        gimli::DW_AT_location => Field::Location,
        gimli::DW_AT_data_member_location => Field::MemberLocation,
        gimli::DW_AT_byte_size => Field::ByteSize,
        gimli::DW_AT_bit_size => Field::BitSize,
        gimli::DW_AT_data_bit_offset => Field::DataBitOffset,
        gimli::DW_AT_bit_offset => Field::BitOffset,
        gimli::DW_AT_count => Field::Count,
        gimli::DW_AT_lower_bound => Field::LowerBound,
        gimli::DW_AT_upper_bound => Field::UpperBound,
        gimli::DW_AT_decl_file => Field::DeclFile,
        gimli::DW_AT_decl_line => Field::DeclLine,
        gimli::DW_AT_type => Field::Type,
        gimli::DW_AT_abstract_origin => Field::AbstractOrigin,
        gimli::DW_AT_specification => Field::Specification,
        gimli::DW_AT_sibling => Field::Sibling,
        _ => return None,
    })
}

/// One step of reading a DIE's attributes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    /// Skip this many bytes: a run of unwanted fixed-size attributes.
    Skip(usize),
    /// Skip one unwanted attribute of a variable-size form.
    Variable(DwForm),
    /// Read one attribute into a field (the form's implicit constant, if
    /// it has one).
    Read(Field, DwForm, i64),
    /// The commonest reads, decoded without going through [`Value`]: a
    /// `DW_FORM_ref4` reference,
    Ref4(Field),
    /// a 32-bit `DW_FORM_strp` name,
    Strp4Name,
    /// a `DW_FORM_data1`/`2`/`4`/`8` constant (its size),
    Data(Field, u8),
    /// a `DW_FORM_flag_present` flag.
    Present(Field),
}

/// The step that reads an attribute of `form` into `field`.
fn read_step(field: Field, form: DwForm, implicit: i64, encoding: Encoding) -> Step {
    let reference = matches!(
        field,
        Field::Type | Field::AbstractOrigin | Field::Specification | Field::Sibling
    );
    let unsigned = matches!(
        field,
        Field::MemberLocation
            | Field::ByteSize
            | Field::BitSize
            | Field::DataBitOffset
            | Field::BitOffset
            | Field::Count
            | Field::LowerBound
            | Field::UpperBound
            | Field::DeclFile
            | Field::DeclLine
    );
    let flag = matches!(field, Field::Declaration | Field::External);
    match form {
        gimli::DW_FORM_ref4 if reference => Step::Ref4(field),
        gimli::DW_FORM_strp if field == Field::Name && encoding.format == Format::Dwarf32 => {
            Step::Strp4Name
        }
        gimli::DW_FORM_data1 if unsigned => Step::Data(field, 1),
        gimli::DW_FORM_data2 if unsigned => Step::Data(field, 2),
        gimli::DW_FORM_data4 if unsigned => Step::Data(field, 4),
        gimli::DW_FORM_data8 if unsigned => Step::Data(field, 8),
        gimli::DW_FORM_flag_present if flag => Step::Present(field),
        _ => Step::Read(field, form, implicit),
    }
}

/// One abbreviation: what every DIE of it has, and where its plan for
/// each [`Want`] is in [`Abbrevs::steps`], once made (most abbreviations
/// are only ever read for one or two).
#[derive(Debug)]
pub(super) struct Compiled {
    pub code: u64,
    pub tag: DwTag,
    pub has_children: bool,
    /// Its attributes, as positions in [`Abbrevs::specs`].
    pub specs: (u32, u32),
    pub has_name: bool,
    /// [`Want::All`] reads every attribute [`Want::Type`] reads.
    pub all_covers_type: bool,
    pub plans: [Cell<(u32, u32)>; WANTS],
}

/// A plan not made yet.
pub(super) const UNMADE: (u32, u32) = (u32::MAX, u32::MAX);

/// One attribute of an abbreviation: its name, its form, and the value of
/// a `DW_FORM_implicit_const`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spec {
    pub name: DwAt,
    pub form: DwForm,
    pub implicit: i64,
}

/// Appends to `steps` the plan for reading the attributes `want` asks
/// of a DIE with `tag` and the attributes `specs`; returns where it is.
pub(super) fn plan(
    tag: DwTag,
    specs: &[Spec],
    encoding: Encoding,
    want: Want,
    steps: &mut Vec<Step>,
) -> (u32, u32) {
    let fields = wanted(want, tag);
    let start = steps.len();
    let mut skip = 0usize;
    for spec in specs {
        let field = field_of(spec.name).filter(|&f| fields.has(f));
        match (field, fixed_size(spec.form, encoding)) {
            (None, Some(size)) => skip = skip.saturating_add(size),
            (field, _) => {
                if skip > 0 {
                    steps.push(Step::Skip(skip));
                    skip = 0;
                }
                steps.push(match field {
                    Some(field) => read_step(field, spec.form, spec.implicit, encoding),
                    None => Step::Variable(spec.form),
                });
            }
        }
    }
    if skip > 0 {
        steps.push(Step::Skip(skip));
    }
    // Abbreviation tables are small (`.debug_abbrev` is capped with the
    // object): a plan's bounds fit.
    let index = |n: usize| u32::try_from(n).unwrap_or(u32::MAX - 1);
    (index(start), index(steps.len()))
}

pub(super) fn has_name(specs: &[Spec]) -> bool {
    specs.iter().any(|s| s.name == gimli::DW_AT_name)
}

/// Whether [`Want::All`] reads every attribute of an abbreviation with
/// `tag` and `specs` that [`Want::Type`] does.
pub(super) fn all_covers_type(tag: DwTag, specs: &[Spec]) -> bool {
    let (all, types) = (wanted(Want::All, tag), wanted(Want::Type, tag));
    specs
        .iter()
        .filter_map(|s| field_of(s.name))
        .all(|f| !types.has(f) || all.has(f))
}

/// A unit's abbreviations (read in `abbrev`) and the plans made for them
/// (as DIEs are read: the plans need a cell, so a unit is read on one
/// thread).
#[derive(Debug)]
pub(super) struct Abbrevs {
    pub encoding: Encoding,
    /// In the order of the table: compilers number abbreviations from 1
    /// in order, so code `n` is found at `n - 1`.
    pub compiled: Vec<Compiled>,
    /// The attributes of all of them.
    pub specs: Vec<Spec>,
    pub steps: RefCell<Vec<Step>>,
}

impl Abbrevs {
    /// The abbreviation with `code`.
    pub(super) fn get(&self, code: u64) -> Option<&Compiled> {
        let at = usize::try_from(code.checked_sub(1)?).ok();
        match at.and_then(|i| self.compiled.get(i)) {
            Some(c) if c.code == code => Some(c),
            // Out of order (never from gcc or clang).
            _ => self.compiled.iter().find(|c| c.code == code),
        }
    }

    /// The attributes of `abbrev`.
    pub(super) fn specs_of(&self, abbrev: &Compiled) -> &[Spec] {
        let (from, to) = abbrev.specs;
        self.specs
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }
}
