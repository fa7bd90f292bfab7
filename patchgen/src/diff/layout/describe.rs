//! Comparing one type's layouts across the builds, and saying how they
//! differ in words a patch author can act on.

use super::shape::{Layout, Slot};
use super::types::{Defined, Key, Scope, Side};
use super::LayoutChange;

/// A reached type whose layouts differ between the builds.
#[derive(Debug)]
pub(super) struct Differing<'a> {
    pub defined: Defined<'a>,
    /// The fixed build's definitions, each with the DIE that names it.
    pub found: Vec<(usize, usize)>,
    pub new_layouts: Vec<Layout<'a>>,
    pub old_layouts: Vec<Layout<'a>>,
}

/// Whether the fixed build's definitions of a type (`new_layouts`) differ
/// from the original build's: each one of either build matches one of the
/// other. A type new in the fixed build, or only declared in the original,
/// does not differ: no old object of it can exist.
pub(super) fn differ(new_layouts: &[Layout<'_>], old_layouts: &[Layout<'_>]) -> bool {
    if old_layouts.is_empty() || new_layouts.is_empty() {
        return false;
    }
    let same = |a: &Layout<'_>, b: &Layout<'_>| a == b || describe(a, b).0.is_empty();
    let covered =
        |xs: &[Layout<'_>], ys: &[Layout<'_>]| xs.iter().all(|x| ys.iter().any(|y| same(x, y)));
    !(covered(new_layouts, old_layouts) && covered(old_layouts, new_layouts))
}

/// The change to report for `d`, described against the original
/// definition closest to the fixed one (`used_by` left empty).
pub(super) fn change(new: &Side<'_, '_>, d: &Differing<'_>) -> Option<LayoutChange> {
    let (scope, key) = d.defined;
    let new_layout = d.new_layouts.first()?;
    let &(first_new, first_namer) = d.found.first()?;
    let (mut changes, mut members) = d
        .old_layouts
        .iter()
        .map(|o| describe(o, new_layout))
        .min_by_key(|(c, _)| c.len())
        .unwrap_or_default();
    if d.new_layouts.len() > 1 || d.old_layouts.len() > 1 {
        changes.push(format!(
            "{} definitions in the original build, {} in the fixed build, with different layouts",
            d.old_layouts.len(),
            d.new_layouts.len()
        ));
    }
    members.sort();
    members.dedup();
    let kind = if new_layout.is_union {
        "union"
    } else {
        "struct"
    };
    let type_name = match key {
        Key::Tag(n) => format!("{kind} {}", String::from_utf8_lossy(n)),
        Key::Typedef(n) => String::from_utf8_lossy(n).into_owned(),
        Key::Variable(n) => format!("anonymous {kind} of `{}`", String::from_utf8_lossy(n)),
    };
    let declared_at = new
        .dwarf
        .declared_at(first_new)
        .or_else(|| new.dwarf.declared_at(first_namer));
    Some(LayoutChange {
        type_name,
        scope: match scope {
            Scope::File => None,
            Scope::Function(f) => Some(String::from_utf8_lossy(f).into_owned()),
        },
        changes,
        members,
        used_by: Vec::new(),
        declared_at,
    })
}

fn at(bits: u64) -> String {
    if bits % 8 == 0 {
        format!("offset {}", bits / 8)
    } else {
        format!("bit offset {bits}")
    }
}

fn size(bits: u64) -> String {
    if bits % 8 == 0 {
        let bytes = bits / 8;
        format!("{bytes} byte{}", if bytes == 1 { "" } else { "s" })
    } else {
        format!("{bits} bit{}", if bits == 1 { "" } else { "s" })
    }
}

/// What changed from `old` to `new`, and the members involved; nothing
/// when the layouts are the same. Members are matched by name first (a
/// member at another offset moved, even if another took its place), then
/// unmatched ones by slot (a member only renamed is not a change).
pub(super) fn describe(old: &Layout<'_>, new: &Layout<'_>) -> (Vec<String>, Vec<String>) {
    let mut changes = Vec::new();
    let mut members = Vec::new();
    if old.is_union != new.is_union {
        let kind = |u| if u { "union" } else { "struct" };
        changes.push(format!("{} -> {}", kind(old.is_union), kind(new.is_union)));
    }
    let mut old_left: Vec<Option<&Slot<'_>>> = old.slots.iter().map(Some).collect();
    let mut new_left = Vec::new();
    for n in &new.slots {
        let matched = old_left
            .iter_mut()
            .find(|o| o.is_some_and(|o| o.path == n.path))
            .and_then(Option::take);
        let Some(o) = matched else {
            new_left.push(n);
            continue;
        };
        let path = String::from_utf8_lossy(&n.path);
        if o.bit_offset != n.bit_offset {
            let (from, to) = (o.bit_offset, n.bit_offset);
            changes.push(if from % 8 == 0 && to % 8 == 0 {
                format!(
                    "member `{}` moved from offset {} to {}",
                    path,
                    from / 8,
                    to / 8
                )
            } else {
                format!("member `{path}` moved from bit offset {from} to {to}")
            });
            members.push(path.to_string());
        }
        if o.bit_size != n.bit_size {
            let (from, to) = (o.bit_size, n.bit_size);
            changes.push(if from % 8 == 0 && to % 8 == 0 {
                format!(
                    "member `{}` resized from {} to {} bytes",
                    path,
                    from / 8,
                    to / 8
                )
            } else {
                format!("member `{path}` resized from {from} to {to} bits")
            });
            members.push(path.to_string());
        }
    }
    for n in new_left {
        let renamed = old_left
            .iter_mut()
            .find(|o| o.is_some_and(|o| (o.bit_offset, o.bit_size) == (n.bit_offset, n.bit_size)))
            .and_then(Option::take);
        if renamed.is_none() {
            let path = String::from_utf8_lossy(&n.path);
            changes.push(format!(
                "member `{path}` added at {} ({})",
                at(n.bit_offset),
                size(n.bit_size)
            ));
            members.push(path.into_owned());
        }
    }
    for o in old_left.into_iter().flatten() {
        let path = String::from_utf8_lossy(&o.path);
        changes.push(format!(
            "member `{path}` removed from {} ({})",
            at(o.bit_offset),
            size(o.bit_size)
        ));
        members.push(path.into_owned());
    }
    if old.byte_size != new.byte_size {
        let show = |s: Option<u64>| s.map_or_else(|| "unknown".to_string(), |s| s.to_string());
        changes.push(format!(
            "size {} -> {} bytes",
            show(old.byte_size),
            show(new.byte_size)
        ));
    }
    (changes, members)
}
