//! What a layout is: a struct or union's size and its members as slots,
//! those of anonymous aggregates flattened in. Made in `flatten`, kept
//! per build in `types`, compared and described in `describe`.

use std::borrow::Cow;

/// One member of a flattened layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slot<'a> {
    /// The member's name, or its path through anonymous aggregates.
    pub path: Cow<'a, [u8]>,
    /// From the start of the outermost aggregate.
    pub bit_offset: u64,
    pub bit_size: u64,
}

/// A struct or union's layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Layout<'a> {
    pub is_union: bool,
    pub byte_size: Option<u64>,
    pub slots: Vec<Slot<'a>>,
}
