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
pub mod special;
pub mod targets;

use std::collections::{BTreeSet, HashSet};

use crate::elf::{Binding, ObjectFile, SymbolKind};
use compare::{compare, Extent};
use correlate::{correlate, never_correlated, parent_name};
pub use report::{Refusal, Report};
pub use special::EntrySizes;

/// Options of one diff.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Entry sizes of special sections (defaults for Debian 6.1 x86-64,
    /// overridable per section).
    pub entry_sizes: EntrySizes,
    /// How the fix moves the lines of the object's source file: byte
    /// differences that are only moved `__LINE__` immediates are not
    /// changes (see `lines.rs`). Empty: no such allowance.
    pub line_map: lines::LineMap,
    /// When set, functions defined in the output are named
    /// `{prefix}new__{name}` (redirect targets global), and references to
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

/// Whether `name` (a fixed-object function) is one the author skips.
fn skipped(opts: &DiffOptions, name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name);
    opts.skip.iter().any(|s| s == name || s == base)
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

/// Sections of code that runs only at boot or module load and is freed
/// (or never runs again) afterwards. `.ref.text` (`__ref`) is ordinary
/// run-time code that may refer to init code; it is not among them.
fn is_init_section(name: &str) -> bool {
    name.starts_with(".init.") || name == ".init" || name.starts_with(".head.text")
}

fn is_exit_section(name: &str) -> bool {
    name.starts_with(".exit.")
}

fn section_name(obj: &ObjectFile, sym: usize) -> &str {
    obj.symbols
        .get(sym)
        .and_then(|s| s.section)
        .and_then(|i| obj.sections.get(i))
        .map_or("", |s| s.name.as_str())
}

/// Diffs two objects.
pub fn diff(orig: &ObjectFile, fixed: &ObjectFile, opts: &DiffOptions) -> Diff {
    let corr = correlate(orig, fixed);
    let mut report = Report::new(orig, fixed);
    let ftrace_sites = special::ftrace_sites(orig);

    // Compare every correlated function and data object.
    let mut changed: BTreeSet<usize> = BTreeSet::new(); // fixed indices
    let mut tables: Option<(entries::Tables, entries::Tables)> = None;
    // In symbol order, so that the report is the same on every run.
    let mut pairs: Vec<(usize, usize)> = corr.to_fixed.iter().map(|(&o, &f)| (o, f)).collect();
    pairs.sort_unstable_by_key(|&(_, f)| f);
    for (o, f) in pairs {
        let (os, fs) = (&orig.symbols[o], &fixed.symbols[f]);
        let (Some(oe), Some(fe)) = (Extent::of(os), Extent::of(fs)) else {
            continue;
        };
        let why = compare(orig, oe, fixed, fe, &corr, &opts.line_map).or_else(|| {
            (os.kind == SymbolKind::Func)
                .then(|| {
                    let (ot, ft) = tables.get_or_insert_with(|| {
                        (
                            entries::Tables::of(orig, &opts.entry_sizes),
                            entries::Tables::of(fixed, &opts.entry_sizes),
                        )
                    });
                    entries::compare_entries(
                        (orig, ot, os),
                        (fixed, ft, fs),
                        &corr,
                        &opts.entry_sizes,
                    )
                })
                .flatten()
        });
        let Some(why) = why else {
            continue;
        };
        let sec = section_name(fixed, f).to_string();
        if os.kind == SymbolKind::Func && skipped(opts, &fs.name) {
            report.skip(&fs.name, &sec, &why);
            continue;
        }
        match os.kind {
            SymbolKind::Func if is_init_section(&sec) => report.refuse(Refusal::init_changed(&fs.name, &sec, &why)),
            SymbolKind::Func if is_exit_section(&sec) => report.ignore(&fs.name, "exit code changed: it never runs in a built-in object or a loaded module's lifetime"),
            SymbolKind::Func => {
                changed.insert(f);
                report.note_change(&fs.name, &sec, &why);
            }
            _ if special::is_special(&sec) || sec.is_empty() => {}
            _ => report.refuse(Refusal::data_changed(&fs.name, &sec, &why)),
        }
    }

    // Section groups (COMDAT): the kernel has no use for them in built-in
    // code, and a changed one cannot be merged into the running kernel.
    for name in changed_groups(orig, fixed) {
        report.refuse(Refusal::group_changed(&name));
    }

    // A changed split part marks its parent.
    let by_name = |name: &str| {
        fixed
            .symbols
            .iter()
            .find(|s| s.name == name && s.kind == SymbolKind::Func && s.section.is_some())
            .map(|s| s.index)
    };
    for f in changed.clone() {
        if let Some(parent) = parent_name(&fixed.symbols[f].name).and_then(by_name) {
            if changed.insert(parent) {
                report.note_change(
                    &fixed.symbols[parent].name,
                    section_name(fixed, parent),
                    "a .cold or .part child changed",
                );
            }
        }
    }

    // New functions.
    let mut included: BTreeSet<Included> = BTreeSet::new();
    for s in fixed
        .symbols
        .iter()
        .filter(|s| s.kind == SymbolKind::Func && s.section.is_some())
    {
        if corr.to_orig.contains_key(&s.index) || never_correlated(fixed, s) {
            continue;
        }
        let sec = section_name(fixed, s.index);
        if skipped(opts, &s.name) {
            report.refuse(Refusal::cannot_skip_new(&s.name));
            continue;
        }
        if is_init_section(sec) {
            report.refuse(Refusal::init_changed(&s.name, sec, "new init function"));
            continue;
        }
        if is_exit_section(sec) {
            report.ignore(&s.name, "new exit function: never runs for a live patch");
            continue;
        }
        report.new_functions.push(s.name.clone());
        included.insert(Included {
            symbol: s.index,
            redirect: false,
        });
    }
    for s in orig
        .symbols
        .iter()
        .filter(|s| s.kind == SymbolKind::Func && s.section.is_some())
    {
        if !corr.to_fixed.contains_key(&s.index) && !never_correlated(orig, s) {
            report.ignore(
                &s.name,
                "function removed in the fixed object: nothing changed calls it any more",
            );
        }
    }

    // Changed functions are redirected; they need an ftrace site. A
    // changed static function without one (the kernel's `inline` implies
    // notrace) is carried as a new copy and its callers become changed
    // instead, up to functions that can be redirected. That is sound only
    // when every way into the old copy is a direct call from code that
    // still runs: a stored pointer would keep running the old code.
    let mut work: Vec<usize> = changed.iter().copied().collect();
    let mut seen: HashSet<usize> = changed.iter().copied().collect();
    let mut refused_mcount = false;
    while let Some(f) = work.pop() {
        let sym = &fixed.symbols[f];
        let name = sym.name.clone();
        let orig_sym = corr.to_orig.get(&f).map(|&o| &orig.symbols[o]);
        let has_site = orig_sym.is_some_and(|o| special::has_ftrace_site(orig, &ftrace_sites, o));
        if name.ends_with(".cold") {
            included.insert(Included {
                symbol: f,
                redirect: false,
            });
        } else if has_site {
            included.insert(Included {
                symbol: f,
                redirect: true,
            });
        } else if ftrace_sites.is_empty() {
            if !refused_mcount {
                report.refuse(Refusal::no_mcount(&orig.path));
                refused_mcount = true;
            }
        } else if sym.binding != Binding::Local {
            report.refuse(Refusal::no_ftrace_site(&name, section_name(fixed, f)));
        } else {
            // In the running kernel (the original object), who reaches it.
            let uses = orig_sym
                .map(|o| callers::uses_of(orig, o.index))
                .unwrap_or_default();
            if let Some(why) = uses.iter().find_map(|u| u.address_taken(orig)) {
                report.refuse(Refusal::address_taken(&name, &why));
                continue;
            }
            included.insert(Included {
                symbol: f,
                redirect: false,
            });
            report.carried.push(name.clone());
            let mut runtime_callers = 0;
            let callers = callers::callers_of(fixed, f);
            if callers.is_empty() {
                report.refuse(Refusal::no_ftrace_site(&name, section_name(fixed, f)));
            }
            for caller in callers.iter().copied() {
                let sec = section_name(fixed, caller);
                let caller_name = &fixed.symbols[caller].name;
                if is_init_section(sec) || is_exit_section(sec) {
                    let when = if is_init_section(sec) {
                        "init code: it ran at boot (or module load) and was freed"
                    } else {
                        "exit code: it runs only when the module goes away"
                    };
                    report.ignore(
                        caller_name,
                        &format!("calls {name}, a changed function without an ftrace site, from {when}; not redirected, it keeps the old {name}"),
                    );
                    continue;
                }
                runtime_callers += 1;
                if skipped(opts, caller_name) {
                    // Left out by the author: it keeps calling the old copy.
                    if seen.insert(caller) {
                        let why =
                            format!("calls {name}, a changed function without an ftrace site");
                        report.skip(caller_name, sec, &why);
                    }
                    continue;
                }
                if seen.insert(caller) {
                    let why = format!("calls {name}, a changed function without an ftrace site");
                    report.note_change(caller_name, sec, &why);
                    work.push(caller);
                }
            }
            if runtime_callers == 0 && !callers.is_empty() {
                report.refuse(Refusal::only_init_callers(&name, section_name(fixed, f)));
            }
        }
    }

    // Parts of included functions come along (the new code calls them).
    let names: HashSet<String> = included
        .iter()
        .map(|i| fixed.symbols[i.symbol].name.clone())
        .collect();
    for s in fixed
        .symbols
        .iter()
        .filter(|s| s.kind == SymbolKind::Func && s.section.is_some())
    {
        if parent_name(&s.name).is_some_and(|p| names.contains(p))
            && !included.iter().any(|i| i.symbol == s.index)
        {
            report.children.push(s.name.clone());
            included.insert(Included {
                symbol: s.index,
                redirect: false,
            });
        }
    }

    // A shipped function must use the running kernel's statics, or new
    // ones that are clearly new: never a guess.
    for inc in &included {
        if let Some((name, candidates)) =
            correlate::ambiguous_static(orig, fixed, &corr, inc.symbol)
        {
            report.refuse(Refusal::ambiguous_static(
                &fixed.symbols[inc.symbol].name,
                &name,
                &candidates,
            ));
        }
    }

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
    // The shipped code must not read objects of a type whose layout the
    // fix changed: the running kernel's objects keep the old one. (Run
    // beside the output on a second thread, it saved nothing measurable.)
    let shipped: Vec<String> = included
        .iter()
        .map(|i| fixed.symbols[i.symbol].name.clone())
        .collect();
    let layouts = layout::check(orig, fixed, &shipped);
    let result = emit::emit(orig, fixed, &corr, &included, opts, &mut report);
    apply_layouts(layouts, opts, &mut report);
    describe_included(orig, fixed, &corr, &included, opts, &mut report);
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
    corr: &correlate::Correlation,
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

/// Section groups, by signature symbol: the names and contents of their
/// member sections.
fn groups(obj: &ObjectFile) -> std::collections::BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let mut out = std::collections::BTreeMap::new();
    for g in obj
        .sections
        .iter()
        .filter(|s| s.sh_type == object::elf::SHT_GROUP)
    {
        let signature = usize::try_from(g.info)
            .ok()
            .and_then(|i| obj.symbols.get(i))
            .map_or_else(|| g.name.clone(), |s| s.name.clone());
        // u32 flags, then u32 member section indices.
        let members = g
            .data
            .chunks_exact(4)
            .skip(1)
            .filter_map(|c| usize::try_from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).ok())
            .filter_map(|i| obj.sections.get(i))
            .map(|m| (m.name.clone(), m.data.clone()))
            .collect();
        out.insert(signature, members);
    }
    out
}

/// Signatures of groups that differ between the objects (added, removed or
/// with other members or contents).
fn changed_groups(orig: &ObjectFile, fixed: &ObjectFile) -> Vec<String> {
    let (o, f) = (groups(orig), groups(fixed));
    let mut names: BTreeSet<String> = o.keys().chain(f.keys()).cloned().collect();
    names.retain(|n| o.get(n) != f.get(n));
    names.into_iter().collect()
}
