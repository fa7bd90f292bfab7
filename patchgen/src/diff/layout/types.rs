//! One build's types, read on demand from its DWARF and memoized: the
//! subtrees reachability walks, type chains and sizes, and the flattened
//! layouts of structs and unions.

use std::borrow::Cow;

use super::dwarf::{Die, Dwarf, FastMap, Want};
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

/// One reached DIE's subtree, as far as reachability needs it: ranges of
/// the arenas of [`Side`] (one allocation per arena, not per subtree).
#[derive(Debug, Clone, Copy)]
struct Node {
    refs: (usize, usize),
    defs: (usize, usize),
    variables: (usize, usize),
    /// When the DIE is a struct or union.
    members: Option<(usize, usize)>,
}

/// A subtree's contents.
#[derive(Debug, Clone, Copy)]
pub(super) struct NodeView<'s, 'a> {
    /// DIEs the subtree refers to (types, abstract origins, specifications).
    pub refs: &'s [usize],
    /// DIEs in the subtree that may define a compared type.
    pub defs: &'s [(usize, Key<'a>)],
    /// The variables in the subtree, by offset, and their names (none for
    /// a concrete instance of an abstract one).
    pub variables: &'s [(Option<&'a [u8]>, usize)],
}

/// A member DIE's attributes.
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    name: Option<&'a [u8]>,
    type_ref: Option<usize>,
    member_location: Option<u64>,
    data_bit_offset: Option<u64>,
    bit_offset: Option<u64>,
    bit_size: Option<u64>,
    byte_size: Option<u64>,
}

impl<'a> Member<'a> {
    fn of(die: &Die<'a>) -> Self {
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

/// The key under which a DIE named `name` may define a compared type.
fn keyed<'a>(die: &Die<'a>, name: &'a [u8], top_level: bool) -> Option<Key<'a>> {
    match die.tag {
        gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type if !die.declaration => {
            Some(Key::Tag(name))
        }
        gimli::DW_TAG_typedef => Some(Key::Typedef(name)),
        gimli::DW_TAG_variable => {
            // Only objects with static storage outlive the old code.
            let is_static = top_level || die.static_location || die.external || die.declaration;
            is_static.then_some(Key::Variable(name))
        }
        _ => None,
    }
}

/// What chains of types need of a type DIE.
#[derive(Debug, Clone, Copy)]
struct TypeDie {
    offset: usize,
    tag: gimli::DwTag,
    named: bool,
    declaration: bool,
    byte_size: Option<u64>,
    type_ref: Option<usize>,
}

/// Whether `tag` only qualifies or renames the type it refers to.
fn is_qualifier(tag: gimli::DwTag) -> bool {
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

fn is_aggregate(tag: gimli::DwTag) -> bool {
    matches!(tag, gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type)
}

/// Longest typedef/qualifier/array chain and deepest nesting of anonymous
/// aggregates followed; deeper is taken as a reference cycle.
const MAX_CHAIN: usize = 64;

/// One build's DWARF and what has been read from it.
#[derive(Debug)]
pub(super) struct Side<'d, 'a> {
    pub dwarf: &'d Dwarf<'a>,
    nodes: FastMap<usize, Node>,
    refs: Vec<usize>,
    defs: Vec<(usize, Key<'a>)>,
    variables: Vec<(Option<&'a [u8]>, usize)>,
    members: Vec<Member<'a>>,
    /// Layouts of anonymous aggregates (flattened into each holder).
    layouts: FastMap<usize, Layout<'a>>,
    sizes: FastMap<usize, Option<u64>>,
    /// `anonymous_aggregate` by type DIE and whether arrays are followed.
    anonymous: FastMap<(usize, bool), Option<usize>>,
    types: FastMap<usize, TypeDie>,
    /// Type definitions by function scope: function name -> key -> DIEs.
    local_defs: FastMap<&'a [u8], FastMap<Key<'a>, Vec<usize>>>,
}

impl<'d, 'a> Side<'d, 'a> {
    /// A side to walk (`walked`: the fixed build) or only to look types up
    /// in (the original).
    pub(super) fn new(dwarf: &'d Dwarf<'a>, walked: bool) -> Self {
        // Kernel objects reach on the order of half their top-level DIEs;
        // sizing the tables for that saves their regrowth.
        let expected = dwarf.index.top_level.len() / 2;
        Self {
            dwarf,
            nodes: FastMap::with_capacity_and_hasher(
                if walked { expected } else { 0 },
                Default::default(),
            ),
            refs: Vec::new(),
            defs: Vec::new(),
            variables: Vec::new(),
            members: Vec::new(),
            layouts: FastMap::default(),
            sizes: FastMap::with_capacity_and_hasher(expected, Default::default()),
            anonymous: FastMap::with_capacity_and_hasher(expected, Default::default()),
            types: FastMap::with_capacity_and_hasher(expected, Default::default()),
            local_defs: FastMap::default(),
        }
    }

    /// Subprogram DIEs of the function `name`: named ones, and the
    /// out-of-line instances and definitions that point at them.
    pub(super) fn subprograms(&self, name: &[u8]) -> Vec<usize> {
        let index = &self.dwarf.index;
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
        out
    }

    /// Reads (once) the subtree of the DIE at `offset`.
    pub(super) fn node(&mut self, offset: usize) -> Result<NodeView<'_, 'a>, LayoutError> {
        let node = match self.nodes.get(&offset) {
            Some(&node) => node,
            None => {
                let node = self.read_node(offset)?;
                self.nodes.insert(offset, node);
                node
            }
        };
        self.view(node)
            .ok_or_else(|| self.dwarf.bad(offset, "subtree not recorded"))
    }

    fn view(&self, node: Node) -> Option<NodeView<'_, 'a>> {
        Some(NodeView {
            refs: self.refs.get(node.refs.0..node.refs.1)?,
            defs: self.defs.get(node.defs.0..node.defs.1)?,
            variables: self.variables.get(node.variables.0..node.variables.1)?,
        })
    }

    fn read_node(&mut self, offset: usize) -> Result<Node, LayoutError> {
        let top_level = self.dwarf.index.top_level.binary_search(&offset).is_ok();
        let start = (
            self.refs.len(),
            self.defs.len(),
            self.variables.len(),
            self.members.len(),
        );
        let mut root_tag = None;
        let mut sub = self.dwarf.subtree(offset)?;
        while let Some(level) = sub.next(|_| Want::All)? {
            let die = sub.current();
            self.refs.extend(die.type_ref);
            self.refs.extend(die.specification);
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
                self.refs.extend(die.abstract_origin);
            }
            if level == 0 {
                root_tag = Some(die.tag);
            } else if level == 1 && die.tag == gimli::DW_TAG_member {
                self.members.push(Member::of(die));
            }
            if die.tag == gimli::DW_TAG_variable {
                self.variables.push((die.name, die.offset));
            }
            if let Some(name) = die.name {
                if let Some(key) = keyed(die, name, level == 0 && top_level) {
                    self.defs.push((die.offset, key));
                }
            }
            // Enumerators and call sites refer to no types (a call site's
            // DW_AT_call_origin is a callee, not shipped code).
            if matches!(
                die.tag,
                gimli::DW_TAG_enumeration_type
                    | gimli::DW_TAG_call_site
                    | gimli::DW_TAG_GNU_call_site
            ) {
                sub.skip_children()?;
            }
        }
        Ok(Node {
            refs: (start.0, self.refs.len()),
            defs: (start.1, self.defs.len()),
            variables: (start.2, self.variables.len()),
            members: root_tag
                .is_some_and(is_aggregate)
                .then_some((start.3, self.members.len())),
        })
    }

    /// The subtree of `offset`, if read.
    pub(super) fn visited_node(&self, offset: usize) -> Option<NodeView<'_, 'a>> {
        self.view(*self.nodes.get(&offset)?)
    }

    /// The scope of the DIE at `offset`: the function whose subtree holds
    /// it, if any.
    pub(super) fn scope_of(&self, offset: usize) -> Result<Scope<'a>, LayoutError> {
        let top = match self.dwarf.index.containing(offset) {
            Some(top) if top != offset => top,
            _ => return Ok(Scope::File),
        };
        let mut die = self.dwarf.die(top)?;
        if die.tag != gimli::DW_TAG_subprogram {
            return Ok(Scope::File);
        }
        for _ in 0..MAX_CHAIN {
            if let Some(name) = die.name {
                return Ok(Scope::Function(name));
            }
            let Some(origin) = die.origin() else { break };
            die = self.dwarf.die(origin)?;
        }
        // An unnamed function: compare against the file-scope type of the
        // same name, rather than not at all.
        Ok(Scope::File)
    }

    /// The type-chain attributes of the DIE at `offset`, read once.
    fn type_die(&mut self, offset: usize) -> Result<TypeDie, LayoutError> {
        if let Some(&t) = self.types.get(&offset) {
            return Ok(t);
        }
        let die = self.dwarf.die_with(offset, Want::Type)?;
        let t = TypeDie {
            offset,
            tag: die.tag,
            named: die.has_name,
            declaration: die.declaration,
            byte_size: die.byte_size,
            type_ref: die.type_ref,
        };
        self.types.insert(offset, t);
        Ok(t)
    }

    /// The DIEs that may define `key` in function `function`.
    fn local_defs(&mut self, function: &'a [u8], key: Key<'a>) -> Result<Vec<usize>, LayoutError> {
        if !self.local_defs.contains_key(function) {
            let mut defs: FastMap<Key<'a>, Vec<usize>> = FastMap::default();
            for root in self.subprograms(function) {
                for &(offset, key) in self.node(root)?.defs {
                    defs.entry(key).or_default().push(offset);
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
                let die = self.type_die(offset)?;
                let arrays = matches!(key, Key::Variable(_));
                self.anonymous_aggregate(die.type_ref, arrays)?.is_some()
            }
        })
    }

    /// The aggregate definitions that `key` names in `scope`, each with the
    /// DIE that names it (the aggregate, typedef or variable).
    pub(super) fn definitions(
        &mut self,
        scope: Scope<'a>,
        key: Key<'a>,
    ) -> Result<Vec<(usize, usize)>, LayoutError> {
        let namers = match scope {
            Scope::File => {
                let index = &self.dwarf.index;
                let found = match key {
                    Key::Tag(n) => index.aggregates.get(n),
                    Key::Typedef(n) => index.typedefs.get(n),
                    Key::Variable(n) => index.variables.get(n),
                };
                found.map(|d| d.as_slice().to_vec()).unwrap_or_default()
            }
            Scope::Function(f) => self.local_defs(f, key)?,
        };
        let mut out = Vec::new();
        for namer in namers {
            let die = self.type_die(namer)?;
            let aggregate = match key {
                Key::Tag(_) => (is_aggregate(die.tag) && !die.declaration).then_some(namer),
                Key::Typedef(_) => self.anonymous_aggregate(die.type_ref, false)?,
                Key::Variable(_) => self.anonymous_aggregate(die.type_ref, true)?,
            };
            if let Some(a) = aggregate {
                out.push((a, namer));
            }
        }
        Ok(out)
    }

    /// The anonymous struct or union definition `type_ref` designates
    /// through qualifiers (not typedefs: a typedef'd one is compared by the
    /// typedef's name) and, when `arrays`, array types.
    fn anonymous_aggregate(
        &mut self,
        type_ref: Option<usize>,
        arrays: bool,
    ) -> Result<Option<usize>, LayoutError> {
        let Some(start) = type_ref else {
            return Ok(None);
        };
        if let Some(&found) = self.anonymous.get(&(start, arrays)) {
            return Ok(found);
        }
        let found = self.find_anonymous_aggregate(type_ref, arrays)?;
        self.anonymous.insert((start, arrays), found);
        Ok(found)
    }

    fn find_anonymous_aggregate(
        &mut self,
        mut type_ref: Option<usize>,
        arrays: bool,
    ) -> Result<Option<usize>, LayoutError> {
        for _ in 0..MAX_CHAIN {
            let Some(t) = type_ref else { return Ok(None) };
            let die = self.type_die(t)?;
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
        Err(self
            .dwarf
            .bad(type_ref.unwrap_or(0), "type chain too long (a cycle?)"))
    }

    /// The size in bits of the type at `type_ref`, when it has one.
    fn type_bits(&mut self, type_ref: Option<usize>) -> Result<Option<u64>, LayoutError> {
        let Some(t) = type_ref else { return Ok(None) };
        Ok(self.type_size(t, 0)?.and_then(|b| b.checked_mul(8)))
    }

    fn type_size(&mut self, offset: usize, depth: usize) -> Result<Option<u64>, LayoutError> {
        if let Some(&size) = self.sizes.get(&offset) {
            return Ok(size);
        }
        if depth > MAX_CHAIN {
            return Err(self.dwarf.bad(offset, "type chain too long (a cycle?)"));
        }
        let die = self.type_die(offset)?;
        let size = if let Some(size) = die.byte_size {
            Some(size)
        } else if is_qualifier(die.tag) {
            match die.type_ref {
                Some(t) => self.type_size(t, depth + 1)?,
                None => None,
            }
        } else if die.tag == gimli::DW_TAG_array_type {
            self.array_size(die, depth)?
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
        self.sizes.insert(offset, size);
        Ok(size)
    }

    fn array_size(&mut self, array: TypeDie, depth: usize) -> Result<Option<u64>, LayoutError> {
        let Some(element) = array.type_ref else {
            return Ok(None);
        };
        let Some(mut size) = self.type_size(element, depth + 1)? else {
            return Ok(None);
        };
        let mut sub = self.dwarf.subtree(array.offset)?;
        while let Some(level) = sub.next(|_| Want::All)? {
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
}

/// One member of a flattened layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slot<'a> {
    /// The member's name, or its path through anonymous aggregates.
    pub path: Cow<'a, str>,
    /// From the start of the outermost aggregate.
    pub bit_offset: u64,
    pub bit_size: u64,
}

/// A struct or union's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout<'a> {
    pub is_union: bool,
    pub byte_size: Option<u64>,
    pub slots: Vec<Slot<'a>>,
}

impl<'a> Side<'_, 'a> {
    /// The layout of the aggregate definition at `offset`, members of
    /// anonymous aggregates flattened into it.
    pub(super) fn layout(
        &mut self,
        offset: usize,
        depth: usize,
    ) -> Result<Layout<'a>, LayoutError> {
        if let Some(layout) = self.layouts.get(&offset) {
            return Ok(layout.clone());
        }
        if depth > MAX_CHAIN {
            return Err(self
                .dwarf
                .bad(offset, "anonymous aggregates nested too deeply"));
        }
        let root = self.type_die(offset)?;
        let known = self
            .nodes
            .get(&offset)
            .and_then(|n| n.members)
            .and_then(|(from, to)| self.members.get(from..to));
        let members = match known {
            Some(members) => members.to_vec(),
            None => {
                let mut members = Vec::new();
                let mut sub = self.dwarf.subtree(offset)?;
                while let Some(level) = sub.next(|_| Want::All)? {
                    if level == 1 && sub.current().tag == gimli::DW_TAG_member {
                        members.push(Member::of(sub.current()));
                    }
                    if level > 0 {
                        sub.skip_children()?;
                    }
                }
                members
            }
        };
        let mut slots = Vec::with_capacity(members.len());
        for m in &members {
            let type_bits = self.type_bits(m.type_ref)?;
            let bit_size = m.bit_size.or(type_bits).unwrap_or(0);
            let bit_offset = member_bit_offset(m, bit_size, type_bits);
            let name = m.name.map(|n| match std::str::from_utf8(n) {
                Ok(n) => Cow::Borrowed(n),
                Err(_) => String::from_utf8_lossy(n),
            });
            let inner = self.anonymous_aggregate(m.type_ref, name.is_some())?;
            if let Some(name) = &name {
                slots.push(Slot {
                    path: name.clone(),
                    bit_offset,
                    bit_size,
                });
            }
            match (inner, name) {
                (Some(inner), name) => {
                    let prefix = match name {
                        None => String::new(),
                        Some(n) if is_array(self, m.type_ref)? => format!("{n}[0]."),
                        Some(n) => format!("{n}."),
                    };
                    for s in self.layout(inner, depth + 1)?.slots {
                        slots.push(Slot {
                            path: Cow::Owned(format!("{prefix}{}", s.path)),
                            bit_offset: bit_offset.saturating_add(s.bit_offset),
                            bit_size: s.bit_size,
                        });
                    }
                }
                (None, Some(_)) => {}
                (None, None) => slots.push(Slot {
                    path: Cow::Borrowed("(unnamed)"),
                    bit_offset,
                    bit_size,
                }),
            }
        }
        let layout = Layout {
            is_union: root.tag == gimli::DW_TAG_union_type,
            byte_size: root.byte_size,
            slots,
        };
        // Only anonymous aggregates are asked for twice (flattened into
        // each definition that holds them).
        if depth > 0 {
            self.layouts.insert(offset, layout.clone());
        }
        Ok(layout)
    }
}

/// Whether `type_ref` is an array type through qualifiers.
fn is_array(side: &mut Side<'_, '_>, mut type_ref: Option<usize>) -> Result<bool, LayoutError> {
    for _ in 0..MAX_CHAIN {
        let Some(t) = type_ref else { return Ok(false) };
        let die = side.type_die(t)?;
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

/// A member's offset in bits from the start of its aggregate.
fn member_bit_offset(m: &Member<'_>, bit_size: u64, type_bits: Option<u64>) -> u64 {
    if let Some(bits) = m.data_bit_offset {
        return bits;
    }
    let base = m.member_location.unwrap_or(0).saturating_mul(8);
    let Some(from_msb) = m.bit_offset else {
        return base;
    };
    // DWARF 2-4 bit fields count from the most significant bit of a storage
    // unit of DW_AT_byte_size (or the type's size); x86 is little-endian.
    let unit_bits = m
        .byte_size
        .and_then(|b| b.checked_mul(8))
        .or(type_bits)
        .unwrap_or(0);
    let within = unit_bits
        .checked_sub(from_msb)
        .and_then(|v| v.checked_sub(bit_size))
        .unwrap_or(0);
    base.saturating_add(within)
}
