//! One build's top-level DIEs by name: where a type the other build names
//! is defined, and which DIEs a shipped function's name designates.

use super::die::Die;
use super::fast::FastMap;

/// The DIEs of one index entry: almost always one, so no allocation then.
#[derive(Debug, Clone)]
pub(super) enum Dies {
    /// One DIE.
    One(usize),
    /// Several (a name shared by a declaration and a definition, ...).
    Many(Vec<usize>),
}

impl Dies {
    pub(super) fn push(&mut self, die: usize) {
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
    map.entry(key)
        .and_modify(|dies| dies.push(die))
        .or_insert(Dies::One(die));
}

fn sized<K, V>(capacity: usize) -> FastMap<K, V> {
    FastMap::with_capacity_and_hasher(capacity, Default::default())
}

/// Functions by name, from top-level DIEs.
#[derive(Debug, Default)]
pub(super) struct Functions<'a> {
    /// Named subprograms (definitions, abstract instances and declarations).
    pub subprograms: FastMap<&'a [u8], Dies>,
    /// Top-level subprograms with `DW_AT_abstract_origin` or
    /// `DW_AT_specification` (out-of-line instances, definitions), by the
    /// DIE they point at.
    pub by_origin: FastMap<usize, Dies>,
}

impl<'a> Functions<'a> {
    /// Room for the functions of a `.debug_info` of `size` bytes, so that
    /// the maps grow rarely (kernel objects have a named top-level
    /// subprogram per 300 bytes of it, and few out-of-line instances).
    pub(super) fn new(size: usize) -> Self {
        Self {
            subprograms: sized(size / 256),
            by_origin: sized(size / 8192),
        }
    }

    /// Adds a top-level DIE read with `Want::Index`.
    pub(super) fn add(&mut self, die: &Die<'a>) {
        if die.tag != gimli::DW_TAG_subprogram {
            return;
        }
        if let Some(origin) = die.origin() {
            add(&mut self.by_origin, origin, die.offset);
        }
        if let Some(name) = die.name {
            add(&mut self.subprograms, name, die.offset);
        }
    }
}

/// Top-level DIEs by name.
#[derive(Debug, Default)]
pub(super) struct Index<'a> {
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

/// An [`Index`] being built, in one pass over the top-level DIEs.
#[derive(Debug)]
pub(super) struct IndexBuilder<'a> {
    index: Index<'a>,
}

impl<'a> IndexBuilder<'a> {
    /// A builder for a `.debug_info` of `size` bytes.
    pub(super) fn new(size: usize) -> Self {
        // Room for what kernel objects have (per 60 to 95 bytes of
        // `.debug_info` a top-level DIE, per 240 to 450 a struct or union,
        // per 1,300 to 2,300 a typedef, per 650 to 3,800 a variable), so
        // that these grow rarely; room never used costs no memory.
        Self {
            index: Index {
                aggregates: sized(size / 200),
                typedefs: sized(size / 1024),
                variables: sized(size / 512),
                top_level: Vec::with_capacity(size / 32),
            },
        }
    }

    /// Adds a top-level DIE, read with at least the name and declaration
    /// of structs, unions, typedefs and variables.
    pub(super) fn add(&mut self, die: &Die<'a>) {
        let index = &mut self.index;
        index.top_level.push(die.offset);
        let Some(name) = die.name else { return };
        let map = match die.tag {
            gimli::DW_TAG_variable => &mut index.variables,
            gimli::DW_TAG_typedef => &mut index.typedefs,
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type if !die.declaration => {
                &mut index.aggregates
            }
            _ => return,
        };
        add(map, name, die.offset);
    }

    pub(super) fn finish(self) -> Index<'a> {
        let mut index = self.index;
        // In order already when read in order, but `containing` relies on it.
        if !index.top_level.is_sorted() {
            index.top_level.sort_unstable();
        }
        index
    }
}
