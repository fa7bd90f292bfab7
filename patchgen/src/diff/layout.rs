//! Struct and union layouts: a live patch must not ship code that reads
//! objects of a type whose layout the fix changed. Old objects stay in
//! memory with the old layout; the new code would read them at new offsets.
//!
//! From both objects' DWARF, the types the shipped functions can reach
//! (their DIE subtrees, the inlined callees' abstract instances, the
//! variables their relocations name, and the transitive closure over every
//! type reference, pointers included) are compared by layout: total size
//! and the members' offsets and sizes, flattened through anonymous
//! aggregates. Reaching is deliberately generous: a refused patch costs a
//! rewrite, a wrong one corrupts a running kernel.
//!
//! This runs on every diff, and kernel objects are mostly DWARF: it must
//! never build a model of all DIEs. Only top-level DIEs are indexed; the
//! subtrees of reached DIEs are read on demand and memoized, and the
//! original build is read on a second thread while the fixed one is walked.
//!
//! Submodules: `relocate` (debug sections with their relocations applied),
//! `dwarf` (units, the index of top-level DIEs, the DIE cursor), `types`
//! (one build's subtrees, type sizes and layouts), `reach` (the walk from
//! the shipped functions).

mod dwarf;
mod reach;
mod relocate;
mod types;

use std::path::PathBuf;
use std::sync::mpsc;

use crate::elf::ObjectFile;
use dwarf::{Dwarf, FastMap};
use relocate::Relocated;
use types::{Defined, Key, Layout, Scope, Side, Slot};

/// A struct/union whose layout differs between the builds and that code the
/// patch ships can reach.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayoutChange {
    /// "struct foo", "union bar", the typedef name of an anonymous aggregate
    /// ("foo_t"), or "anonymous struct of `var`" for a variable whose type
    /// is an anonymous aggregate.
    pub type_name: String,
    /// The function a local type is declared in; `None` at file scope.
    pub scope: Option<String>,
    /// Human descriptions, e.g. "member `x` added at offset 4 (4 bytes)",
    /// "member `b` moved from offset 4 to 8", "member `c` resized from 4 to
    /// 8 bytes", "member `d` removed from offset 8 (4 bytes)",
    /// "size 8 -> 12 bytes".
    pub changes: Vec<String>,
    /// Names of the members involved (added/removed/moved/resized), for
    /// messages and tests. Members of anonymous aggregates are named by
    /// their path (`u.x` for member `x` of the anonymous aggregate in
    /// member `u`; plain `x` for one in an anonymous member).
    pub members: Vec<String>,
    /// The shipped functions (names as given) whose code can reach the type.
    pub used_by: Vec<String>,
    /// Where the type is declared in the fixed build ("fs/foo.c:12" or the
    /// header), if known.
    pub declared_at: Option<String>,
}

/// Why the layouts could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// The object has no `.debug_info`.
    #[error(
        "{path} has no DWARF: build with debug info (CONFIG_DEBUG_INFO, `-g`) so struct layouts can be checked"
    )]
    NoDebugInfo {
        /// The object.
        path: PathBuf,
    },
    /// The DWARF could not be parsed.
    #[error("cannot read the DWARF of {path}")]
    Dwarf {
        /// The object.
        path: PathBuf,
        /// What gimli found.
        #[source]
        source: gimli::Error,
    },
    /// The DWARF parsed but does not make sense.
    #[error("{path}: malformed DWARF at .debug_info offset {offset:#x}: {what}")]
    BadDwarf {
        /// The object.
        path: PathBuf,
        /// Offset of the DIE in `.debug_info`.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A debug section's relocation writes outside the section.
    #[error("{path}: a relocation of {section} at {offset:#x} is out of range")]
    BadRelocation {
        /// The object.
        path: PathBuf,
        /// The relocated section.
        section: String,
        /// Offset of the relocated field.
        offset: u64,
    },
    /// Compressed debug sections are not read.
    #[error("{path}: {section} is compressed: build without CONFIG_DEBUG_INFO_COMPRESSED")]
    Compressed {
        /// The object.
        path: PathBuf,
        /// The section.
        section: String,
    },
    /// A debugging section's relocations could not be read.
    #[error(transparent)]
    Read(#[from] crate::elf::ReadError),
    /// DWARF that kernel builds do not produce.
    #[error("{path}: unsupported DWARF at .debug_info offset {offset:#x}: {what}")]
    Unsupported {
        /// The object.
        path: PathBuf,
        /// Offset of the DIE in `.debug_info`.
        offset: u64,
        /// What is not supported.
        what: &'static str,
    },
}

/// Checks that no function in `shipped` can reach a struct or union whose
/// layout differs between `orig` and `fixed`, and returns those that it can.
///
/// `shipped`: symbol names (in `fixed`) of every function the patch output
/// defines: replaced, new, carried, .cold/.part children. ELF names may
/// carry compiler suffixes (`foo.isra.0`, `foo.constprop.0`, `foo.part.0`,
/// `foo.cold`); the DWARF subprogram is named by the part before the first
/// '.' (C identifiers have no dots).
pub fn check(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    shipped: &[String],
) -> Result<Vec<LayoutChange>, LayoutError> {
    check_with(orig, fixed, shipped, true)
}

/// [`check`], reading the original build on a second thread when
/// `threaded` (and the thread can be had).
fn check_with(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    shipped: &[String],
    threaded: bool,
) -> Result<Vec<LayoutChange>, LayoutError> {
    relocate::require_debug_info(orig)?;
    relocate::require_debug_info(fixed)?;
    if shipped.is_empty() {
        return Ok(Vec::new());
    }
    // The original build is only asked for the layouts of the types the
    // fixed one reaches. It is read on a second thread, answering each type
    // as the walk through the fixed build reaches it (the two share
    // nothing else): on kernel objects that takes about 40% off the check's
    // wall time. Without a thread, the same one after the other.
    let (mut orig_sections, mut fixed_sections, mut inline_sections) = (None, None, None);
    std::thread::scope(|threads| {
        let (ask, asked) = mpsc::channel();
        let orig_slot = &mut orig_sections;
        let spawned = if threaded {
            std::thread::Builder::new()
                .name("suture-layout".to_string())
                .spawn_scoped(threads, move || {
                    original_layouts(orig, orig_slot, asked.iter().flatten())
                })
                .ok()
        } else {
            None
        };
        let fixed_sections = fixed_sections.insert(Relocated::new(fixed)?);
        let fixed_dwarf = Dwarf::load(fixed, fixed_sections)?;
        let mut new = Side::new(&fixed_dwarf, true);
        let (mut reached, new_sets, old_sets) = match spawned {
            Some(original) => {
                // In batches: waking the other thread for every type costs
                // more than its answer. A send fails only when the original
                // side failed; its error comes with its answer.
                let mut batch = Vec::with_capacity(ASK_BATCH);
                let reached = reach::reach(&mut new, fixed, shipped, &mut |defined| {
                    batch.push(defined);
                    if batch.len() == ASK_BATCH {
                        let _ = ask.send(std::mem::take(&mut batch));
                    }
                })?;
                let _ = ask.send(batch);
                drop(ask);
                let new_sets = fixed_layouts(&mut new, &reached)?;
                let old_sets = match original.join() {
                    Ok(answer) => answer?,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                (reached, new_sets, old_sets)
            }
            None => {
                let mut types = Vec::new();
                let reached = reach::reach(&mut new, fixed, shipped, &mut |defined| {
                    types.push(defined);
                })?;
                let new_sets = fixed_layouts(&mut new, &reached)?;
                let old_sets = original_layouts(orig, &mut inline_sections, types)?;
                (reached, new_sets, old_sets)
            }
        };
        let mut changes = Vec::new();
        for (defined, (found, dies, new_set)) in new_sets {
            let old_set = old_sets.get(&defined).map_or(&[][..], Vec::as_slice);
            let Some(mut change) = compare(&new, defined, &found, &new_set, old_set) else {
                continue;
            };
            change.used_by = reached.users(&new, &dies);
            change.used_by.sort();
            change.used_by.dedup();
            changes.push(change);
        }
        changes.sort_by(|a, b| {
            (&a.type_name, &a.scope, &a.declared_at).cmp(&(&b.type_name, &b.scope, &b.declared_at))
        });
        Ok(changes)
    })
}

/// How many reached types the fixed side hands the original side at once.
const ASK_BATCH: usize = 128;

/// One reached type in the fixed build: its definitions (each with the
/// DIE that names it), the reached DIEs that define it, and the layouts.
type FixedSet<'a> = (Vec<(usize, usize)>, Vec<usize>, Vec<Layout<'a>>);

/// The fixed build's definitions and layouts of each reached type.
fn fixed_layouts<'a>(
    new: &mut Side<'_, 'a>,
    reached: &reach::Reached<'a>,
) -> Result<Vec<(Defined<'a>, FixedSet<'a>)>, LayoutError> {
    let mut out = Vec::with_capacity(reached.types.len());
    for (&(scope, key), dies) in &reached.types {
        let found = new.definitions(scope, key)?;
        let mut layouts = Vec::with_capacity(found.len());
        for &(d, _) in &found {
            layouts.push(new.layout(d, 0)?);
        }
        out.push(((scope, key), (found, dies.clone(), layouts)));
    }
    Ok(out)
}

/// The original build's layouts of each type in `types`: relocates
/// `orig`'s debug sections into `sections`, then answers as the types come.
fn original_layouts<'a>(
    orig: &'a ObjectFile,
    sections: &'a mut Option<Relocated>,
    types: impl IntoIterator<Item = Defined<'a>>,
) -> Result<FastMap<Defined<'a>, Vec<Layout<'a>>>, LayoutError> {
    let sections = sections.insert(Relocated::new(orig)?);
    let dwarf = Dwarf::load(orig, sections)?;
    let mut old = Side::new(&dwarf, false);
    let mut out = FastMap::default();
    for (scope, key) in types {
        let mut layouts = Vec::new();
        for (d, _) in old.definitions(scope, key)? {
            layouts.push(old.layout(d, 0)?);
        }
        out.insert((scope, key), layouts);
    }
    Ok(out)
}

/// Compares the fixed build's definitions of one reached type (`found`,
/// each with the DIE that names it, and their layouts) with the original
/// build's.
fn compare<'a>(
    new: &Side<'_, 'a>,
    (scope, key): Defined<'a>,
    found: &[(usize, usize)],
    new_layouts: &[Layout<'a>],
    old_layouts: &[Layout<'a>],
) -> Option<LayoutChange> {
    if old_layouts.is_empty() {
        // New in the fixed build, or only declared in the original: no old
        // object of it can exist.
        return None;
    }
    let same = |a: &Layout<'_>, b: &Layout<'_>| a == b || describe(a, b).0.is_empty();
    let covered =
        |xs: &[Layout<'_>], ys: &[Layout<'_>]| xs.iter().all(|x| ys.iter().any(|y| same(x, y)));
    if covered(new_layouts, old_layouts) && covered(old_layouts, new_layouts) {
        return None;
    }
    let new_layout = new_layouts.first()?;
    let &(first_new, first_namer) = found.first()?;
    // Describe against the original definition closest to the fixed one.
    let (mut changes, mut members) = old_layouts
        .iter()
        .map(|o| describe(o, new_layout))
        .min_by_key(|(c, _)| c.len())
        .unwrap_or_default();
    if new_layouts.len() > 1 || old_layouts.len() > 1 {
        changes.push(format!(
            "{} definitions in the original build, {} in the fixed build, with different layouts",
            old_layouts.len(),
            new_layouts.len()
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
fn describe(old: &Layout<'_>, new: &Layout<'_>) -> (Vec<String>, Vec<String>) {
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
        if o.bit_offset != n.bit_offset {
            let (from, to) = (o.bit_offset, n.bit_offset);
            changes.push(if from % 8 == 0 && to % 8 == 0 {
                format!(
                    "member `{}` moved from offset {} to {}",
                    n.path,
                    from / 8,
                    to / 8
                )
            } else {
                format!("member `{}` moved from bit offset {from} to {to}", n.path)
            });
            members.push(n.path.to_string());
        }
        if o.bit_size != n.bit_size {
            let (from, to) = (o.bit_size, n.bit_size);
            changes.push(if from % 8 == 0 && to % 8 == 0 {
                format!(
                    "member `{}` resized from {} to {} bytes",
                    n.path,
                    from / 8,
                    to / 8
                )
            } else {
                format!("member `{}` resized from {from} to {to} bits", n.path)
            });
            members.push(n.path.to_string());
        }
    }
    for n in new_left {
        let renamed = old_left
            .iter_mut()
            .find(|o| o.is_some_and(|o| (o.bit_offset, o.bit_size) == (n.bit_offset, n.bit_size)))
            .and_then(Option::take);
        if renamed.is_none() {
            changes.push(format!(
                "member `{}` added at {} ({})",
                n.path,
                at(n.bit_offset),
                size(n.bit_size)
            ));
            members.push(n.path.to_string());
        }
    }
    for o in old_left.into_iter().flatten() {
        changes.push(format!(
            "member `{}` removed from {} ({})",
            o.path,
            at(o.bit_offset),
            size(o.bit_size)
        ));
        members.push(o.path.to_string());
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

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
