//! Layouts of structs and unions in one build: total size and every
//! member's offset and size in bits, members of anonymous aggregates
//! flattened into their holder (named by their path through them).
//!
//! Paths are byte strings borrowed from the DWARF; only a member reached
//! through a named member of an anonymous type (`in.x` of
//! `struct { int x; } in`) gets a path of its own.

use std::borrow::Cow;

use super::chains::MAX_CHAIN;
use super::dwarf::members_want;
use super::fast::narrow;
use super::shape::{Layout, Slot};
use super::types::{Member, Side};
use super::LayoutError;

impl<'a> Side<'_, 'a> {
    /// The layout of the aggregate definition at `offset`, members of
    /// anonymous aggregates flattened into it, made in `out` (whose slots'
    /// memory is reused).
    pub(super) fn layout_into(
        &mut self,
        offset: usize,
        out: &mut Layout<'a>,
    ) -> Result<(), LayoutError> {
        self.layout_at(offset, 0, out)
    }

    fn layout_at(
        &mut self,
        offset: usize,
        depth: usize,
        out: &mut Layout<'a>,
    ) -> Result<(), LayoutError> {
        if depth > MAX_CHAIN {
            return Err(self
                .dwarf
                .bad(offset, "anonymous aggregates nested too deeply"));
        }
        let root = self.types.type_die(self.dwarf, offset)?;
        out.is_union = root.tag == gimli::DW_TAG_union_type;
        out.byte_size = root.byte_size;
        let slots = &mut out.slots;
        slots.clear();
        match self.members_of(offset)? {
            Some((from, to)) => {
                slots.reserve(to - from);
                for i in from..to {
                    let Some(m) = self.member(i) else { break };
                    self.flatten_member(&m, depth, slots)?;
                }
            }
            None => {
                // Read first, then flattened: the layout is allocated once.
                let mut members = std::mem::take(&mut self.scratch_members);
                members.clear();
                let dwarf = self.dwarf;
                let mut sub = dwarf.subtree(offset)?;
                while let Some(level) = sub.next_by(members_want)? {
                    if level == 1 && sub.current().tag == gimli::DW_TAG_member {
                        members.push(Member::of(sub.current()));
                    }
                    if level > 0 {
                        sub.skip_children()?;
                    }
                }
                slots.reserve(members.len());
                for m in &members {
                    self.flatten_member(m, depth, slots)?;
                }
                self.scratch_members = members;
            }
        }
        Ok(())
    }

    /// Adds member `m` to `slots`, with the members of its anonymous
    /// aggregate type if it has one.
    fn flatten_member(
        &mut self,
        m: &Member<'a>,
        depth: usize,
        slots: &mut Vec<Slot<'a>>,
    ) -> Result<(), LayoutError> {
        let (types, dwarf) = (&mut self.types, self.dwarf);
        let (type_bits, inner) = types.member_type(dwarf, m.type_ref, m.name.is_some())?;
        let bit_size = m.bit_size.or(type_bits).unwrap_or(0);
        let bit_offset = member_bit_offset(m, bit_size, type_bits);
        if let Some(name) = m.name {
            slots.push(Slot {
                path: Cow::Borrowed(name),
                bit_offset,
                bit_size,
            });
        }
        let Some(inner) = inner else {
            if m.name.is_none() {
                slots.push(Slot {
                    path: Cow::Borrowed(b"(unnamed)"),
                    bit_offset,
                    bit_size,
                });
            }
            return Ok(());
        };
        let prefix: Option<Vec<u8>> = match m.name {
            None => None,
            Some(n) => {
                let mut p = n.to_vec();
                p.extend_from_slice(if self.types.is_array(self.dwarf, m.type_ref)? {
                    b"[0]."
                } else {
                    b"."
                });
                Some(p)
            }
        };
        // Anonymous aggregates are flattened into each definition that
        // holds them: their layouts are kept.
        let key = narrow(inner);
        if !self.layouts.contains_key(&key) {
            let mut layout = Layout::default();
            self.layout_at(inner, depth + 1, &mut layout)?;
            self.layouts.insert(key, layout);
        }
        let Some(layout) = self.layouts.get(&key) else {
            return Ok(());
        };
        slots.reserve(layout.slots.len());
        for s in &layout.slots {
            let path = match &prefix {
                None => s.path.clone(),
                Some(p) => {
                    let mut path = Vec::with_capacity(p.len() + s.path.len());
                    path.extend_from_slice(p);
                    path.extend_from_slice(&s.path);
                    Cow::Owned(path)
                }
            };
            slots.push(Slot {
                path,
                bit_offset: bit_offset.saturating_add(s.bit_offset),
                bit_size: s.bit_size,
            });
        }
        Ok(())
    }
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
