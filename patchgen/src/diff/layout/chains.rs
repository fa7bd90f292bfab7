//! Chains of types in one build: what a type DIE refers to through
//! qualifiers, typedefs and arrays, and the sizes that follow. Each type
//! DIE is read once per side (or kept from the walk's reading of it), and
//! everything derived from it is memoized beside it, in one packed table
//! ([`TypeTable`], which each side keeps and asks with its DWARF).

use super::dwarf::{Die, Dwarf, Want};
use super::fast::{narrow, wide, FastMap, NONE};
use super::LayoutError;

/// Longest typedef/qualifier/array chain and deepest nesting of anonymous
/// aggregates followed; deeper is taken as a reference cycle.
pub(super) const MAX_CHAIN: usize = 64;

/// What chains of types need of a type DIE.
#[derive(Debug, Clone, Copy)]
pub(super) struct TypeDie {
    pub offset: usize,
    pub tag: gimli::DwTag,
    pub named: bool,
    pub declaration: bool,
    pub byte_size: Option<u64>,
    pub type_ref: Option<usize>,
}

/// A type DIE and what has been worked out from it, packed: there is one
/// for every type DIE a side reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct TypeEntry {
    tag: gimli::DwTag,
    flags: u8,
    byte_size: u64,
    /// [`narrow`]ed, or [`NONE`].
    type_ref: u32,
    /// [`TypeTable::type_size`], when `SIZE_KNOWN`.
    size: u64,
    /// [`TypeTable::anonymous_aggregate`] from this DIE, without and with
    /// arrays followed, when `ANONYMOUS_KNOWN`: [`narrow`]ed, or [`NONE`].
    anonymous: [u32; 2],
}

const NAMED: u8 = 1;
const DECLARATION: u8 = 1 << 1;
const HAS_BYTE_SIZE: u8 = 1 << 2;
const SIZE_KNOWN: u8 = 1 << 3;
const HAS_SIZE: u8 = 1 << 4;
const ANONYMOUS_KNOWN: [u8; 2] = [1 << 5, 1 << 6];

impl TypeEntry {
    fn die(&self, offset: usize) -> TypeDie {
        TypeDie {
            offset,
            tag: self.tag,
            named: self.flags & NAMED != 0,
            declaration: self.flags & DECLARATION != 0,
            byte_size: (self.flags & HAS_BYTE_SIZE != 0).then_some(self.byte_size),
            type_ref: (self.type_ref != NONE).then_some(wide(self.type_ref)),
        }
    }

    fn size(&self) -> Option<Option<u64>> {
        (self.flags & SIZE_KNOWN != 0).then_some((self.flags & HAS_SIZE != 0).then_some(self.size))
    }

    fn anonymous(&self, arrays: bool) -> Option<Option<usize>> {
        let i = usize::from(arrays);
        let known = ANONYMOUS_KNOWN.get(i).is_some_and(|f| self.flags & f != 0);
        let found = self.anonymous.get(i).copied().unwrap_or(NONE);
        known.then_some((found != NONE).then_some(wide(found)))
    }
}

/// The type DIEs a side has read: entries in the order read, found by
/// offset through a small map (the entries stay packed together).
#[derive(Debug, Default)]
pub(super) struct TypeTable {
    at: FastMap<u32, u32>,
    entries: Vec<TypeEntry>,
}

impl TypeTable {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            at: FastMap::with_capacity_and_hasher(n, Default::default()),
            entries: Vec::with_capacity(n),
        }
    }

    fn get(&self, offset: usize) -> Option<&TypeEntry> {
        self.entries.get(wide(*self.at.get(&narrow(offset))?))
    }

    fn get_mut(&mut self, offset: usize) -> Option<&mut TypeEntry> {
        self.entries.get_mut(wide(*self.at.get(&narrow(offset))?))
    }

    fn contains(&self, offset: usize) -> bool {
        self.at.contains_key(&narrow(offset))
    }

    fn insert(&mut self, offset: usize, entry: TypeEntry) {
        self.at.insert(narrow(offset), narrow(self.entries.len()));
        self.entries.push(entry);
    }
}

/// Whether `tag` only qualifies or renames the type it refers to.
pub(super) fn is_qualifier(tag: gimli::DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type
            | gimli::DW_TAG_immutable_type
            | gimli::DW_TAG_packed_type
            | gimli::DW_TAG_shared_type
    )
}

/// Whether `tag` is a type's.
fn is_type(tag: gimli::DwTag) -> bool {
    is_qualifier(tag)
        || matches!(
            tag,
            gimli::DW_TAG_structure_type
                | gimli::DW_TAG_union_type
                | gimli::DW_TAG_array_type
                | gimli::DW_TAG_pointer_type
                | gimli::DW_TAG_reference_type
                | gimli::DW_TAG_rvalue_reference_type
                | gimli::DW_TAG_base_type
                | gimli::DW_TAG_enumeration_type
                | gimli::DW_TAG_subroutine_type
        )
}

pub(super) fn is_aggregate(tag: gimli::DwTag) -> bool {
    matches!(tag, gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type)
}

/// Questions about the types of one build, asked of its [`TypeTable`]
/// with its DWARF (`dwarf`), where type DIEs not read yet are read.
impl TypeTable {
    /// The type-chain attributes of the DIE at `offset`, read once.
    pub(super) fn type_die(
        &mut self,
        dwarf: &Dwarf<'_>,
        offset: usize,
    ) -> Result<TypeDie, LayoutError> {
        if let Some(t) = self.get(offset) {
            return Ok(t.die(offset));
        }
        let die = dwarf.die_with(offset, Want::Type)?;
        Ok(self.insert_type(&die))
    }

    /// Keeps the type-chain attributes of `die`, read for another reason,
    /// when it has them all and may be asked about: a type, or a variable
    /// (which may name an anonymous one).
    pub(super) fn remember_type(&mut self, die: &Die<'_>) {
        if die.covers_type
            && (is_type(die.tag) || die.tag == gimli::DW_TAG_variable)
            && !self.contains(die.offset)
        {
            self.insert_type(die);
        }
    }

    fn insert_type(&mut self, die: &Die<'_>) -> TypeDie {
        let offset = die.offset;
        let mut flags = 0;
        for (set, flag) in [
            (die.has_name, NAMED),
            (die.declaration, DECLARATION),
            (die.byte_size.is_some(), HAS_BYTE_SIZE),
        ] {
            if set {
                flags |= flag;
            }
        }
        let entry = TypeEntry {
            tag: die.tag,
            flags,
            byte_size: die.byte_size.unwrap_or(0),
            type_ref: die.type_ref.map_or(NONE, narrow),
            size: 0,
            anonymous: [NONE; 2],
        };
        self.insert(offset, entry);
        entry.die(offset)
    }

    /// The anonymous struct or union definition `type_ref` designates
    /// through qualifiers (not typedefs: a typedef'd one is compared by the
    /// typedef's name) and, when `arrays`, array types.
    pub(super) fn anonymous_aggregate(
        &mut self,
        dwarf: &Dwarf<'_>,
        type_ref: Option<usize>,
        arrays: bool,
    ) -> Result<Option<usize>, LayoutError> {
        let Some(start) = type_ref else {
            return Ok(None);
        };
        if let Some(found) = self.get(start).and_then(|t| t.anonymous(arrays)) {
            return Ok(found);
        }
        let found = self.find_anonymous_aggregate(dwarf, type_ref, arrays)?;
        if let Some(t) = self.get_mut(start) {
            let i = usize::from(arrays);
            if let (Some(memo), Some(flag)) = (t.anonymous.get_mut(i), ANONYMOUS_KNOWN.get(i)) {
                *memo = found.map_or(NONE, narrow);
                t.flags |= flag;
            }
        }
        Ok(found)
    }

    fn find_anonymous_aggregate(
        &mut self,
        dwarf: &Dwarf<'_>,
        mut type_ref: Option<usize>,
        arrays: bool,
    ) -> Result<Option<usize>, LayoutError> {
        for _ in 0..MAX_CHAIN {
            let Some(t) = type_ref else { return Ok(None) };
            let die = self.type_die(dwarf, t)?;
            if is_aggregate(die.tag) {
                return Ok((!die.named && !die.declaration).then_some(t));
            }
            let follow = (is_qualifier(die.tag) && die.tag != gimli::DW_TAG_typedef)
                || (arrays && die.tag == gimli::DW_TAG_array_type);
            if !follow {
                return Ok(None);
            }
            type_ref = die.type_ref;
        }
        Err(dwarf.bad(type_ref.unwrap_or(0), "type chain too long (a cycle?)"))
    }

    /// The size in bits of the type of a member (at `type_ref`), and the
    /// anonymous aggregate it designates through qualifiers and, when
    /// `arrays`, arrays: [`Self::type_bits`] and
    /// [`Self::anonymous_aggregate`], with one look-up once both are known.
    pub(super) fn member_type(
        &mut self,
        dwarf: &Dwarf<'_>,
        type_ref: Option<usize>,
        arrays: bool,
    ) -> Result<(Option<u64>, Option<usize>), LayoutError> {
        let Some(t) = type_ref else {
            return Ok((None, None));
        };
        if let Some(e) = self.get(t) {
            if let (Some(size), Some(inner)) = (e.size(), e.anonymous(arrays)) {
                return Ok((size.and_then(|b| b.checked_mul(8)), inner));
            }
        }
        Ok((
            self.type_bits(dwarf, type_ref)?,
            self.anonymous_aggregate(dwarf, type_ref, arrays)?,
        ))
    }

    /// The size in bits of the type at `type_ref`, when it has one.
    pub(super) fn type_bits(
        &mut self,
        dwarf: &Dwarf<'_>,
        type_ref: Option<usize>,
    ) -> Result<Option<u64>, LayoutError> {
        let Some(t) = type_ref else { return Ok(None) };
        Ok(self.type_size(dwarf, t, 0)?.and_then(|b| b.checked_mul(8)))
    }

    /// The size in bytes of the type at `offset`, `depth` links down a
    /// chain, when it has one.
    fn type_size(
        &mut self,
        dwarf: &Dwarf<'_>,
        offset: usize,
        depth: usize,
    ) -> Result<Option<u64>, LayoutError> {
        if let Some(size) = self.get(offset).and_then(TypeEntry::size) {
            return Ok(size);
        }
        if depth > MAX_CHAIN {
            return Err(dwarf.bad(offset, "type chain too long (a cycle?)"));
        }
        let die = self.type_die(dwarf, offset)?;
        let size = if let Some(size) = die.byte_size {
            Some(size)
        } else if is_qualifier(die.tag) {
            match die.type_ref {
                Some(t) => self.type_size(dwarf, t, depth + 1)?,
                None => None,
            }
        } else if die.tag == gimli::DW_TAG_array_type {
            self.array_size(dwarf, die, depth)?
        } else if matches!(
            die.tag,
            gimli::DW_TAG_pointer_type
                | gimli::DW_TAG_reference_type
                | gimli::DW_TAG_rvalue_reference_type
        ) {
            Some(8)
        } else {
            None
        };
        if let Some(t) = self.get_mut(offset) {
            t.flags |= SIZE_KNOWN;
            if let Some(size) = size {
                t.flags |= HAS_SIZE;
                t.size = size;
            }
        }
        Ok(size)
    }

    /// The size in bytes of an array type, `depth` links down a chain:
    /// its element's times its counts.
    fn array_size(
        &mut self,
        dwarf: &Dwarf<'_>,
        array: TypeDie,
        depth: usize,
    ) -> Result<Option<u64>, LayoutError> {
        let Some(element) = array.type_ref else {
            return Ok(None);
        };
        let Some(mut size) = self.type_size(dwarf, element, depth + 1)? else {
            return Ok(None);
        };
        let mut sub = dwarf.subtree(array.offset)?;
        // The array itself was read: of it, only where its children end.
        let want = |level| if level == 0 { Want::Sibling } else { Want::All };
        while let Some(level) = sub.next_by(want)? {
            let die = sub.current();
            if level != 1 || die.tag != gimli::DW_TAG_subrange_type {
                continue;
            }
            let count = match (die.count, die.upper_bound) {
                (Some(c), _) => c,
                (None, Some(upper)) => upper
                    .checked_sub(die.lower_bound.unwrap_or(0))
                    .and_then(|n| n.checked_add(1))
                    .unwrap_or(0),
                // A flexible array member.
                (None, None) => 0,
            };
            size = size.saturating_mul(count);
        }
        Ok(Some(size))
    }

    /// Whether `type_ref` is an array type through qualifiers.
    pub(super) fn is_array(
        &mut self,
        dwarf: &Dwarf<'_>,
        mut type_ref: Option<usize>,
    ) -> Result<bool, LayoutError> {
        for _ in 0..MAX_CHAIN {
            let Some(t) = type_ref else { return Ok(false) };
            let die = self.type_die(dwarf, t)?;
            if die.tag == gimli::DW_TAG_array_type {
                return Ok(true);
            }
            if !is_qualifier(die.tag) || die.tag == gimli::DW_TAG_typedef {
                return Ok(false);
            }
            type_ref = die.type_ref;
        }
        Ok(false)
    }
}
