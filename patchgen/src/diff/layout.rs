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
//! stay cheap in time and memory (measured with `scripts/bench-diff` and
//! the ignored `layout_timing` test). So it never copies a debug section
//! or parses a relocation table whole, never builds a model of all DIEs,
//! and keeps every table it does build packed: only top-level DIEs are
//! indexed; the subtrees the walk reaches are read once, in place, only
//! the attributes the question needs; type DIEs are read once per build;
//! a type's layouts are kept only until compared.
//!
//! Submodules, in the order the data flows: `relocate` (the debug sections
//! and their relocations, read in place), `dwarf` (units and the DIE
//! cursor), `abbrev` (a unit's abbreviations), `plan`, `form` and `die`
//! (reading one DIE: per-abbreviation
//! plans, attribute forms, the decoded DIE), `index` and `scan` (top-level
//! DIEs by name), `types` (one build's subtrees and type definitions),
//! `chains` (type chains and sizes), `reach` (the walk from the shipped
//! functions), `flatten` (layouts, as `shape` defines them), `describe`
//! (comparing and reporting), `fast` (the tables' hasher and 32-bit
//! offsets).

mod abbrev;
mod chains;
mod describe;
mod die;
mod dwarf;
mod fast;
mod flatten;
mod form;
mod index;
mod plan;
mod reach;
mod relocate;
mod scan;
mod shape;
mod types;

use std::path::PathBuf;

use crate::elf::ObjectFile;
use describe::Differing;
use dwarf::Dwarf;
use relocate::DebugSections;
use shape::Layout;
use types::{Defined, Side};

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
    /// A debug section's relocation writes outside the section or names
    /// no symbol.
    #[error("{path}: a relocation of {section} at {offset:#x} is out of range")]
    BadRelocation {
        /// The object.
        path: PathBuf,
        /// The relocated section.
        section: String,
        /// Offset of the relocated field.
        offset: u64,
    },
    /// A debug section has a relocation of a type DWARF does not use.
    #[error("{path}: a relocation of {section} at {offset:#x} has type {r_type}, which DWARF does not use")]
    UnsupportedRelocation {
        /// The object.
        path: PathBuf,
        /// The relocated section.
        section: String,
        /// Offset of the relocated field.
        offset: u64,
        /// `R_X86_64_*` type.
        r_type: u32,
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
    relocate::require_debug_info(orig)?;
    relocate::require_debug_info(fixed)?;
    if shipped.is_empty() {
        return Ok(Vec::new());
    }
    // One thread: the original build used to be read on a second one, but
    // in a fresh process the thread, its allocator arena and the layouts
    // kept for the other side to compare cost about as much CPU as they
    // saved wall time on an idle machine, and more on a loaded one.
    let orig_sections = DebugSections::new(orig)?;
    let fixed_sections = DebugSections::new(fixed)?;
    let fixed_dwarf = Dwarf::load(&fixed_sections)?;
    let mut new = Side::new(&fixed_dwarf, true)?;
    let mut reached = reach::reach(&mut new, fixed, shipped)?;
    let orig_dwarf = Dwarf::load(&orig_sections)?;
    let mut old = Side::new(&orig_dwarf, false)?;
    // Each type's layouts are compared as soon as both builds' are made,
    // and kept only when they differ (rarely): the memory of one type's
    // serves the next.
    let mut differing = Vec::new();
    let (mut new_defs, mut old_defs) = (Definitions::default(), Definitions::default());
    for &defined in reached.types.keys() {
        new_defs.make(&mut new, defined)?;
        old_defs.make(&mut old, defined)?;
        if describe::differ(new_defs.layouts(), old_defs.layouts()) {
            differing.push(Differing {
                defined,
                found: new_defs.found.clone(),
                new_layouts: new_defs.layouts().to_vec(),
                old_layouts: old_defs.layouts().to_vec(),
            });
        }
    }
    let mut changes = Vec::new();
    for d in &differing {
        let Some(mut change) = describe::change(&new, d) else {
            continue;
        };
        if let Some(dies) = reached.types.get(&d.defined).map(|d| d.as_slice().to_vec()) {
            change.used_by = reached.users(&mut new, &dies)?;
        }
        change.used_by.sort();
        change.used_by.dedup();
        changes.push(change);
    }
    changes.sort_by(|a, b| {
        (&a.type_name, &a.scope, &a.declared_at).cmp(&(&b.type_name, &b.scope, &b.declared_at))
    });
    Ok(changes)
}

/// A build's definitions of one type, each as (aggregate DIE, the DIE that
/// names it), and their layouts: made for one type after another in the
/// same memory (a diff compares hundreds of types, nearly all the same).
#[derive(Debug, Default)]
struct Definitions<'a> {
    found: Vec<(usize, usize)>,
    /// The first `found.len()` are the type's; the others are memory kept
    /// for the next.
    layouts: Vec<Layout<'a>>,
}

impl<'a> Definitions<'a> {
    /// Makes `side`'s definitions of `defined` and their layouts.
    fn make(&mut self, side: &mut Side<'_, 'a>, defined: Defined<'a>) -> Result<(), LayoutError> {
        let (scope, key) = defined;
        side.definitions(scope, key, &mut self.found)?;
        if self.layouts.len() < self.found.len() {
            self.layouts.resize_with(self.found.len(), Layout::default);
        }
        for (&(d, _), layout) in self.found.iter().zip(&mut self.layouts) {
            side.layout_into(d, layout)?;
        }
        Ok(())
    }

    /// The layouts of the type made last.
    fn layouts(&self) -> &[Layout<'a>] {
        self.layouts.get(..self.found.len()).unwrap_or_default()
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
