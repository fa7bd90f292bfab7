//! One build's types, read on demand from its DWARF and memoized: the
//! subtrees the walk reads and where types are defined. Type chains and
//! sizes are in `chains`, layouts in `flatten`.
//!
//! Nothing is kept of a subtree but the members of aggregates (for their
//! layouts) and the attributes of its types (for type chains): a walk
//! reads thousands of subtrees once each.

use super::chains::{is_aggregate, TypeTable, MAX_CHAIN};
use super::dwarf::{members_want, Die, Dwarf, Want};
use super::fast::{narrow, wide, FastMap, NONE};
use super::index::{Dies, Functions, Index};
use super::shape::Layout;
use super::LayoutError;

/// How a type is named across the builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Key<'a> {
    /// A struct or union tag.
    Tag(&'a [u8]),
    /// A typedef of an anonymous struct or union.
    Typedef(&'a [u8]),
    /// A variable with static storage whose type is an anonymous struct
    /// or union.
    Variable(&'a [u8]),
}

/// Where a type is declared: file scope or a function (by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Scope<'a> {
    /// File scope.
    File,
    /// Local to the named function.
    Function(&'a [u8]),
}

/// A type as both builds name it.
pub(super) type Defined<'a> = (Scope<'a>, Key<'a>);

/// What a subtree holds, as the walk needs it. Offsets are [`narrow`]ed.
#[derive(Debug, Default)]
pub(super) struct Held<'a> {
    /// DIEs the subtree refers to (types, abstract origins, specifications).
    pub refs: Vec<u32>,
    /// DIEs in the subtree that may define a compared type.
    pub defs: Vec<(u32, Key<'a>)>,
    /// The variables in the subtree, by offset, and their names (none for
    /// a concrete instance of an abstract one), when asked for.
    pub variables: Vec<(Option<&'a [u8]>, u32)>,
}

/// A member DIE's attributes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Member<'a> {
    pub name: Option<&'a [u8]>,
    pub type_ref: Option<usize>,
    pub member_location: Option<u64>,
    pub data_bit_offset: Option<u64>,
    pub bit_offset: Option<u64>,
    pub bit_size: Option<u64>,
    pub byte_size: Option<u64>,
}

impl<'a> Member<'a> {
    pub(super) fn of(die: &Die<'a>) -> Self {
        Self {
            name: die.name,
            type_ref: die.type_ref,
            member_location: die.member_location,
            data_bit_offset: die.data_bit_offset,
            bit_offset: die.bit_offset,
            bit_size: die.bit_size,
            byte_size: die.byte_size,
        }
    }
}

/// A [`Member`] as kept for later: bit-field attributes, which few members
/// have, in a side table.
#[derive(Debug, Clone, Copy)]
struct StoredMember<'a> {
    name: Option<&'a [u8]>,
    member_location: Option<u64>,
    type_ref: u32,
    /// Position in [`Side::bit_fields`], or [`NONE`].
    bit_field: u32,
}

/// `data_bit_offset`, `bit_offset`, `bit_size`, `byte_size` of a member.
type BitField = [Option<u64>; 4];

/// Whether the children of a DIE with `tag` are skipped: enumerators and
/// call sites refer to no types (a call site's DW_AT_call_origin is a
/// callee, not shipped code).
pub(super) fn skips_children(tag: gimli::DwTag) -> bool {
    matches!(
        tag,
        gimli::DW_TAG_enumeration_type | gimli::DW_TAG_call_site | gimli::DW_TAG_GNU_call_site
    )
}

/// The key under which a DIE named `name` may define a compared type;
/// `top_level`: whether the DIE is a top-level one.
fn keyed<'a>(die: &Die<'a>, name: &'a [u8], top_level: impl FnOnce() -> bool) -> Option<Key<'a>> {
    match die.tag {
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type if !die.declaration => {
            Some(Key::Tag(name))
        }
        gimli::DW_TAG_typedef => Some(Key::Typedef(name)),
        gimli::DW_TAG_variable => {
            // Only objects with static storage outlive the old code.
            let is_static = die.static_location || die.external || die.declaration || top_level();
            is_static.then_some(Key::Variable(name))
        }
        _ => None,
    }
}

/// One build's DWARF and what has been read from it.
#[derive(Debug)]
pub(super) struct Side<'d, 'a> {
    pub dwarf: &'d Dwarf<'a>,
    /// Walked (the fixed build): what the walk needs of subtrees is kept.
    pub(super) walked: bool,
    /// Top-level DIEs by name.
    pub(super) index: Index<'a>,
    /// Functions: indexed in the scan on the walked side, on first
    /// question on the other (asked only about types local to one).
    pub(super) functions: Option<Functions<'a>>,
    /// Members of aggregates, by aggregate: [`Self::member_ranges`].
    members: Vec<StoredMember<'a>>,
    bit_fields: Vec<BitField>,
    /// Each aggregate's members, as positions in [`Self::members`].
    pub(super) member_ranges: FastMap<u32, (u32, u32)>,
    /// Layouts of anonymous aggregates (flattened into each holder).
    pub(super) layouts: FastMap<u32, Layout<'a>>,
    /// Type DIEs read, and what was worked out from them.
    pub(super) types: TypeTable,
    /// Type definitions by function scope: function name -> key -> DIEs.
    local_defs: FastMap<&'a [u8], FastMap<Key<'a>, Vec<usize>>>,
    /// Room for the members of the aggregate whose layout is being made.
    pub(super) scratch_members: Vec<Member<'a>>,
}

impl<'d, 'a> Side<'d, 'a> {
    /// A side to walk (`walked`: the fixed build) or only to look types up
    /// in (the original), its top-level DIEs indexed (see `scan`).
    pub(super) fn new(dwarf: &'d Dwarf<'a>, walked: bool) -> Result<Self, LayoutError> {
        let mut side = Self {
            dwarf,
            walked,
            index: Index::default(),
            functions: None,
            members: Vec::new(),
            bit_fields: Vec::new(),
            member_ranges: FastMap::default(),
            layouts: FastMap::default(),
            types: TypeTable::default(),
            local_defs: FastMap::default(),
            scratch_members: Vec::new(),
        };
        side.scan()?;
        // Room for what the questions about kernel objects read (type DIEs
        // on the order of half the top-level ones on the side asked, three
        // quarters on the walked side, where the walk keeps every type DIE
        // it reads; two members per top-level DIE and an aggregate per
        // four): these tables would otherwise grow several times, copied
        // each time, and room never used costs no memory.
        let top_level = side.index.top_level.len();
        side.types = TypeTable::with_capacity(if walked {
            top_level / 4 * 3
        } else {
            top_level / 8 * 5
        });
        if walked {
            side.members.reserve(top_level * 2);
            side.member_ranges.reserve(top_level / 4);
        }
        Ok(side)
    }

    /// Subprogram DIEs of the function `name`: named ones, and the
    /// out-of-line instances and definitions that point at them.
    pub(super) fn subprograms(&mut self, name: &[u8]) -> Result<Vec<usize>, LayoutError> {
        let index = self.functions()?;
        let mut out: Vec<usize> = index
            .subprograms
            .get(name)
            .map(|d| d.as_slice().to_vec())
            .unwrap_or_default();
        let mut i = 0;
        while let Some(&d) = out.get(i) {
            if let Some(more) = index.by_origin.get(&d) {
                out.extend(
                    more.as_slice()
                        .iter()
                        .filter(|m| !out.contains(m))
                        .copied()
                        .collect::<Vec<_>>(),
                );
            }
            i += 1;
        }
        Ok(out)
    }

    /// Reads the subtree of the DIE at `offset` into `held` (cleared first;
    /// `variables` only if asked for). Keeps the members of an aggregate
    /// root on the walked side, and the type attributes of its types.
    pub(super) fn read_subtree(
        &mut self,
        offset: usize,
        held: &mut Held<'a>,
        variables: bool,
    ) -> Result<(), LayoutError> {
        held.refs.clear();
        held.defs.clear();
        held.variables.clear();
        let dwarf = self.dwarf;
        let keep_members = self.walked && !self.member_ranges.contains_key(&narrow(offset));
        let first_member = self.members.len();
        let mut aggregate = false;
        let mut sub = dwarf.subtree(offset)?;
        while let Some(level) = sub.next(Want::All)? {
            let die = sub.current();
            let skip = skips_children(die.tag);
            if self.note(die, level, held, keep_members, variables) {
                aggregate = true;
            }
            if skip {
                sub.skip_children()?;
            }
        }
        if keep_members {
            self.keep_members(offset, aggregate, first_member);
        }
        Ok(())
    }

    /// Records what the walk needs of `die`, at `level` below the root of
    /// a subtree, in `held`;
    /// keeps its type attributes, and when `keep_members` the members of
    /// the root if it is an aggregate. Whether `die` is an aggregate root.
    fn note(
        &mut self,
        die: &Die<'a>,
        level: isize,
        held: &mut Held<'a>,
        keep_members: bool,
        variables: bool,
    ) -> bool {
        held.refs.extend(die.type_ref.map(narrow));
        held.refs.extend(die.specification.map(narrow));
        // A parameter, variable or block of a concrete instance points
        // into the abstract instance, which is walked whole from the
        // instance's own DW_AT_abstract_origin: only those of
        // subprograms, inlined calls and roots are followed.
        if level == 0
            || matches!(
                die.tag,
                gimli::DW_TAG_subprogram | gimli::DW_TAG_inlined_subroutine
            )
        {
            held.refs.extend(die.abstract_origin.map(narrow));
        }
        self.types.remember_type(die);
        if level == 1 && keep_members && die.tag == gimli::DW_TAG_member {
            self.store_member(Member::of(die));
        }
        if variables && die.tag == gimli::DW_TAG_variable {
            held.variables.push((die.name, narrow(die.offset)));
        }
        if let Some(name) = die.name {
            // Asked only of a variable root: most subtrees are not.
            let top_level =
                || level == 0 && self.index.top_level.binary_search(&die.offset).is_ok();
            if let Some(key) = keyed(die, name, top_level) {
                held.defs.push((narrow(die.offset), key));
            }
        }
        level == 0 && is_aggregate(die.tag)
    }

    /// Keeps the members stored since `first` as those of the aggregate at
    /// `offset`, when it is one.
    fn keep_members(&mut self, offset: usize, aggregate: bool, first: usize) {
        if aggregate {
            self.member_ranges
                .insert(narrow(offset), (narrow(first), narrow(self.members.len())));
        } else {
            self.members.truncate(first);
        }
    }

    fn store_member(&mut self, m: Member<'a>) {
        let bits = [m.data_bit_offset, m.bit_offset, m.bit_size, m.byte_size];
        let bit_field = if bits.iter().all(Option::is_none) {
            NONE
        } else {
            self.bit_fields.push(bits);
            narrow(self.bit_fields.len() - 1)
        };
        self.members.push(StoredMember {
            name: m.name,
            member_location: m.member_location,
            type_ref: m.type_ref.map_or(NONE, narrow),
            bit_field,
        });
    }

    /// The members of the aggregate at `offset`, as positions for
    /// [`Self::member`]: kept by the scan or the walk, or on the walked
    /// side read now; elsewhere `None` (the caller reads them as it goes).
    pub(super) fn members_of(
        &mut self,
        offset: usize,
    ) -> Result<Option<(usize, usize)>, LayoutError> {
        if !self.walked && !self.member_ranges.contains_key(&narrow(offset)) {
            return Ok(None);
        }
        if !self.member_ranges.contains_key(&narrow(offset)) {
            let first = narrow(self.members.len());
            let dwarf = self.dwarf;
            let mut sub = dwarf.subtree(offset)?;
            while let Some(level) = sub.next_by(members_want)? {
                if level == 1 && sub.current().tag == gimli::DW_TAG_member {
                    self.store_member(Member::of(sub.current()));
                }
                if level > 0 {
                    sub.skip_children()?;
                }
            }
            self.member_ranges
                .insert(narrow(offset), (first, narrow(self.members.len())));
        }
        Ok(self
            .member_ranges
            .get(&narrow(offset))
            .map(|&(from, to)| (wide(from), wide(to)))
            .filter(|&(from, to)| from <= to && to <= self.members.len()))
    }

    /// The member at position `i` of the recorded ones.
    pub(super) fn member(&self, i: usize) -> Option<Member<'a>> {
        let m = self.members.get(i)?;
        let [data_bit_offset, bit_offset, bit_size, byte_size] = match m.bit_field {
            NONE => [None; 4],
            b => *self.bit_fields.get(wide(b))?,
        };
        Some(Member {
            name: m.name,
            type_ref: (m.type_ref != NONE).then_some(wide(m.type_ref)),
            member_location: m.member_location,
            data_bit_offset,
            bit_offset,
            bit_size,
            byte_size,
        })
    }

    /// The scope of the DIE at `offset`: the function whose subtree holds
    /// it, if any.
    pub(super) fn scope_of(&self, offset: usize) -> Result<Scope<'a>, LayoutError> {
        let top = match self.index.containing(offset) {
            Some(top) if top != offset => top,
            _ => return Ok(Scope::File),
        };
        let mut die = self.dwarf.die_with(top, Want::Index)?;
        if die.tag != gimli::DW_TAG_subprogram {
            return Ok(Scope::File);
        }
        for _ in 0..MAX_CHAIN {
            if let Some(name) = die.name {
                return Ok(Scope::Function(name));
            }
            let Some(origin) = die.origin() else { break };
            die = self.dwarf.die_with(origin, Want::Index)?;
        }
        // An unnamed function: compare against the file-scope type of the
        // same name, rather than not at all.
        Ok(Scope::File)
    }

    /// The DIEs that may define `key` in function `function`.
    fn local_defs(&mut self, function: &'a [u8], key: Key<'a>) -> Result<Vec<usize>, LayoutError> {
        if !self.local_defs.contains_key(function) {
            let mut defs: FastMap<Key<'a>, Vec<usize>> = FastMap::default();
            let mut held = Held::default();
            for root in self.subprograms(function)? {
                self.read_subtree(root, &mut held, false)?;
                for &(offset, key) in &held.defs {
                    defs.entry(key).or_default().push(wide(offset));
                }
            }
            self.local_defs.insert(function, defs);
        }
        let mut found = self
            .local_defs
            .get(function)
            .and_then(|d| d.get(&key))
            .cloned()
            .unwrap_or_default();
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }

    /// Whether the DIE at `offset` that `key` names (from a subtree's
    /// `defs`) defines an aggregate: typedefs and variables only when of
    /// an anonymous one.
    pub(super) fn may_define(&mut self, offset: usize, key: Key<'a>) -> Result<bool, LayoutError> {
        Ok(match key {
            Key::Tag(_) => true,
            Key::Typedef(_) | Key::Variable(_) => {
                let (types, dwarf) = (&mut self.types, self.dwarf);
                let die = types.type_die(dwarf, offset)?;
                let arrays = matches!(key, Key::Variable(_));
                types
                    .anonymous_aggregate(dwarf, die.type_ref, arrays)?
                    .is_some()
            }
        })
    }

    /// The aggregate definitions that `key` names in `scope`, each with the
    /// DIE that names it (the aggregate, typedef or variable), into `out`
    /// (cleared first).
    pub(super) fn definitions(
        &mut self,
        scope: Scope<'a>,
        key: Key<'a>,
        out: &mut Vec<(usize, usize)>,
    ) -> Result<(), LayoutError> {
        out.clear();
        let local;
        let namers = match scope {
            Scope::File => {
                let index = &self.index;
                let found = match key {
                    Key::Tag(n) => index.aggregates.get(n),
                    Key::Typedef(n) => index.typedefs.get(n),
                    Key::Variable(n) => index.variables.get(n),
                };
                found.map_or(&[][..], Dies::as_slice)
            }
            Scope::Function(f) => {
                local = self.local_defs(f, key)?;
                &local[..]
            }
        };
        let (types, dwarf) = (&mut self.types, self.dwarf);
        for &namer in namers {
            let die = types.type_die(dwarf, namer)?;
            let aggregate = match key {
                Key::Tag(_) => (is_aggregate(die.tag) && !die.declaration).then_some(namer),
                Key::Typedef(_) => types.anonymous_aggregate(dwarf, die.type_ref, false)?,
                Key::Variable(_) => types.anonymous_aggregate(dwarf, die.type_ref, true)?,
            };
            if let Some(a) = aggregate {
                out.push((a, namer));
            }
        }
        Ok(())
    }
}
