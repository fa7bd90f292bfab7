//! The object differ: correlate -> compare -> select -> emit.
//!
//! Given the original and the fixed build of one kernel object, finds the
//! functions whose code changed and the new ones, refuses what cannot be
//! live-patched safely (with the section or symbol and the reason), and
//! emits an object holding exactly what must be replaced.

pub mod callers;
pub mod compare;
pub mod correlate;
pub mod emit;
pub mod entries;
pub mod layout;
pub mod lines;
pub mod report;
pub mod runtime_const;
mod select;
pub mod special;
pub mod targets;

use std::collections::BTreeSet;

use crate::elf::{Binding, ObjectFile};
use correlate::Correlation;
pub use report::{Refusal, Report};
use select::Selected;
pub use special::EntrySizes;

/// Options of one diff.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Entry sizes of special sections (defaults: the default kernel line,
    /// overridable per section).
    pub entry_sizes: EntrySizes,
    /// How the fix moves the lines of the object's source file: byte
    /// differences that are only moved `__LINE__` immediates are not
    /// changes (see `lines.rs`). Empty: no such allowance.
    pub line_map: lines::LineMap,
    /// When set, functions defined in the output are named
    /// `{prefix}new__{name}` (redirect targets global; new global functions
    /// keep their name, for the other objects of the fix), and references to
    /// the kernel's static symbols `{prefix}old__{name}`, so that a patch
    /// module can hold several objects' code and refer to an old function
    /// and its replacement at once. The report maps each back.
    pub symbol_prefix: Option<String>,
    /// Types whose changed layout the fix's author accepts (`struct foo`,
    /// `union bar`, a typedef name): only safe when no object of the old
    /// layout can reach the new code. Recorded in the report.
    pub accept_layout: Vec<String>,
    /// Changed functions the author leaves out of the patch (kpatch's
    /// `KPATCH_IGNORE_FUNCTION`): by name, or by the name before a clone
    /// suffix (`foo` leaves out `foo.isra.0` and `foo.cold`). Their changes
    /// are not shipped; the report lists them under `skipped`.
    pub skip: Vec<String>,
}

/// What a diff found.
#[derive(Debug)]
pub struct Diff {
    /// The report (also the JSON of `--report`).
    pub report: Report,
    /// The output object, when something changed and nothing was refused.
    pub object: Option<Vec<u8>>,
}

/// A function chosen for the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Included {
    /// Symbol index in the fixed object.
    pub symbol: usize,
    /// Whether calls to the original are redirected to it (changed
    /// functions); `false` for new functions and for `.cold`/`.part` parts
    /// that only the included code calls.
    pub redirect: bool,
}

/// Diffs two objects: selects what must be replaced (see `select`), then,
/// when something changed and nothing was refused, emits it.
pub fn diff(orig: &ObjectFile, fixed: &ObjectFile, opts: &DiffOptions) -> Diff {
    let Selected {
        corr,
        mut report,
        included,
    } = select::select(orig, fixed, opts);
    if report.refusals.is_empty() && included.is_empty() {
        report.result = report::Outcome::NothingChanged;
        return Diff {
            report,
            object: None,
        };
    }
    if !report.refusals.is_empty() {
        report.result = report::Outcome::Refused;
        return Diff {
            report,
            object: None,
        };
    }
    emit_selected(orig, fixed, &corr, &included, opts, report)
}

/// Emits the selected functions, and refuses the output when the shipped
/// code reads objects of a type whose layout the fix changed or emitting
/// found a reason to.
fn emit_selected(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    corr: &Correlation,
    included: &BTreeSet<Included>,
    opts: &DiffOptions,
    mut report: Report,
) -> Diff {
    // The shipped code must not read objects of a type whose layout the
    // fix changed: the running kernel's objects keep the old one. (Run
    // beside the output on a second thread, it saved nothing measurable.)
    let shipped: Vec<String> = included
        .iter()
        .map(|i| fixed.symbols[i.symbol].name.clone())
        .collect();
    let layouts = layout::check(orig, fixed, &shipped);
    let result = emit::emit(orig, fixed, corr, included, opts, &mut report);
    apply_layouts(layouts, opts, &mut report);
    describe_included(orig, fixed, corr, included, opts, &mut report);
    match result {
        Ok(bytes) if report.refusals.is_empty() => {
            report.result = report::Outcome::Changed;
            Diff {
                report,
                object: Some(bytes),
            }
        }
        Ok(_) => {
            report.result = report::Outcome::Refused;
            Diff {
                report,
                object: None,
            }
        }
        Err(e) => {
            report.refuse(Refusal::emit_failed(&e.to_string()));
            report.result = report::Outcome::Refused;
            Diff {
                report,
                object: None,
            }
        }
    }
}

/// Refuses a layout change of a type the shipped functions reach, unless
/// the author accepted it for that type (then it is recorded).
fn apply_layouts(
    layouts: Result<Vec<layout::LayoutChange>, layout::LayoutError>,
    opts: &DiffOptions,
    report: &mut Report,
) {
    match layouts {
        Ok(changes) => {
            for c in changes {
                if opts.accept_layout.contains(&c.type_name) {
                    report.accepted_layout_changes.push(c);
                } else {
                    report.refuse(Refusal::layout_changed(&c));
                }
            }
        }
        Err(e) => report.refuse(Refusal::layout_unchecked(&e.to_string())),
    }
}

/// Fills in, for each changed function, what a patch module needs: its
/// symbol in the output, whether it is redirected, its binding and the
/// size of the original.
fn describe_included(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    corr: &Correlation,
    included: &BTreeSet<Included>,
    opts: &DiffOptions,
    report: &mut Report,
) {
    for c in &mut report.changed_functions {
        let Some(inc) = included
            .iter()
            .find(|i| fixed.symbols[i.symbol].name == c.name)
        else {
            continue;
        };
        let f = &fixed.symbols[inc.symbol];
        c.redirect = inc.redirect;
        c.local = f.binding == Binding::Local;
        c.new_symbol = Some(emit::output_name(opts.symbol_prefix.as_deref(), f));
        c.old_size = corr.to_orig.get(&inc.symbol).map(|&o| orig.symbols[o].size);
        c.old_name = corr
            .to_orig
            .get(&inc.symbol)
            .map(|&o| orig.symbols[o].name.clone());
    }
}
