//! Selection: which functions of the fixed object go into the output, and
//! what is refused or left out on the way. It runs in phases (see
//! [`select`]): comparing the correlated pairs, closing the changed set
//! over split parts, adding new functions, redirecting changed functions
//! (or carrying them, with their callers, when they have no ftrace site),
//! then the parts included code calls and the statics it must not guess.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::compare::{compare, Extent};
use super::correlate::{self, correlate, never_correlated, parent_name, Correlation};
use super::report::{Refusal, Report};
use super::{callers, entries, special, DiffOptions, Included};
use crate::elf::{Binding, ObjectFile, Symbol, SymbolKind};

/// What the selection found.
#[derive(Debug)]
pub(super) struct Selected {
    /// Which fixed symbol is which original one.
    pub corr: Correlation,
    /// The report so far: changes, refusals, what was left out and why.
    pub report: Report,
    /// The functions chosen for the output.
    pub included: BTreeSet<Included>,
}

/// Correlates the objects and selects what the output must hold. The
/// phases run in this order, which is also the order of the report's
/// entries.
pub(super) fn select(orig: &ObjectFile, fixed: &ObjectFile, opts: &DiffOptions) -> Selected {
    let mut s = Selection {
        orig,
        fixed,
        opts,
        corr: correlate(orig, fixed),
        report: Report::new(orig, fixed),
        changed: BTreeSet::new(),
        included: BTreeSet::new(),
    };
    s.compare_pairs();
    s.refuse_changed_groups();
    s.mark_split_parents();
    s.include_new_functions();
    s.note_removed_functions();
    s.redirect_changed();
    s.include_children();
    s.refuse_ambiguous_statics();
    Selected {
        corr: s.corr,
        report: s.report,
        included: s.included,
    }
}

/// One selection in progress: the objects, their correlation, and what
/// the phases found so far.
struct Selection<'o> {
    orig: &'o ObjectFile,
    fixed: &'o ObjectFile,
    opts: &'o DiffOptions,
    corr: Correlation,
    report: Report,
    /// Changed functions, by fixed symbol index.
    changed: BTreeSet<usize>,
    included: BTreeSet<Included>,
}

/// The special-section entries of both objects, by function: built when a
/// function's contents first compare equal.
type EntryTables = Option<(entries::Tables, entries::Tables)>;

/// The changed functions the redirect phase has yet to place, and every
/// function made changed so far (each is placed once).
struct Pending {
    work: Vec<usize>,
    seen: HashSet<usize>,
}

impl Selection<'_> {
    /// Compares every correlated function and data object, in symbol
    /// order so that the report is the same on every run.
    fn compare_pairs(&mut self) {
        let mut tables: EntryTables = None;
        let mut pairs: Vec<(usize, usize)> =
            self.corr.to_fixed.iter().map(|(&o, &f)| (o, f)).collect();
        pairs.sort_unstable_by_key(|&(_, f)| f);
        for (o, f) in pairs {
            if let Some(why) = self.difference(o, f, &mut tables) {
                self.note_difference(o, f, &why);
            }
        }
    }

    /// How original symbol `o` and its fixed counterpart `f` differ, if
    /// they do: in their contents, or for functions in their entries of
    /// special sections.
    fn difference(&self, o: usize, f: usize, tables: &mut EntryTables) -> Option<String> {
        let (orig, fixed, opts) = (self.orig, self.fixed, self.opts);
        let (os, fs) = (&orig.symbols[o], &fixed.symbols[f]);
        let (oe, fe) = (Extent::of(os)?, Extent::of(fs)?);
        compare(orig, oe, fixed, fe, &self.corr, &opts.line_map).or_else(|| {
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
                        &self.corr,
                        &opts.entry_sizes,
                    )
                })
                .flatten()
        })
    }

    /// Records that `o` changed into `f` (`why`): a function is changed,
    /// skipped by the author, refused (init code) or ignored (exit code);
    /// changed data is refused unless it is a special section's.
    fn note_difference(&mut self, o: usize, f: usize, why: &str) {
        let (os, fs) = (&self.orig.symbols[o], &self.fixed.symbols[f]);
        let sec = section_name(self.fixed, f).to_string();
        let report = &mut self.report;
        if os.kind == SymbolKind::Func && skipped(self.opts, &fs.name) {
            report.skip(&fs.name, &sec, why);
            return;
        }
        match os.kind {
            SymbolKind::Func if is_init_section(&sec) => report.refuse(Refusal::init_changed(&fs.name, &sec, why)),
            SymbolKind::Func if is_exit_section(&sec) => report.ignore(&fs.name, "exit code changed: it never runs in a built-in object or a loaded module's lifetime"),
            SymbolKind::Func => {
                self.changed.insert(f);
                report.note_change(&fs.name, &sec, why);
            }
            _ if special::is_special(&sec) || sec.is_empty() => {}
            _ => report.refuse(Refusal::data_changed(&fs.name, &sec, why)),
        }
    }

    /// Section groups (COMDAT): the kernel has no use for them in built-in
    /// code, and a changed one cannot be merged into the running kernel.
    fn refuse_changed_groups(&mut self) {
        for name in changed_groups(self.orig, self.fixed) {
            self.report.refuse(Refusal::group_changed(&name));
        }
    }

    /// A changed split part marks its parent.
    fn mark_split_parents(&mut self) {
        let fixed = self.fixed;
        let by_name = |name: &str| {
            fixed
                .symbols
                .iter()
                .find(|s| s.name == name && s.kind == SymbolKind::Func && s.section.is_some())
                .map(|s| s.index)
        };
        for f in self.changed.clone() {
            if let Some(parent) = parent_name(&fixed.symbols[f].name).and_then(by_name) {
                if self.changed.insert(parent) {
                    self.report.note_change(
                        &fixed.symbols[parent].name,
                        section_name(fixed, parent),
                        "a .cold or .part child changed",
                    );
                }
            }
        }
    }

    /// New functions are included (not redirected: nothing calls them in
    /// the running kernel), unless they are init or exit code or the
    /// author tries to skip one.
    fn include_new_functions(&mut self) {
        let fixed = self.fixed;
        for s in defined_functions(fixed) {
            if self.corr.to_orig.contains_key(&s.index) || never_correlated(fixed, s) {
                continue;
            }
            let sec = section_name(fixed, s.index);
            if skipped(self.opts, &s.name) {
                self.report.refuse(Refusal::cannot_skip_new(&s.name));
                continue;
            }
            if is_init_section(sec) {
                self.report
                    .refuse(Refusal::init_changed(&s.name, sec, "new init function"));
                continue;
            }
            if is_exit_section(sec) {
                self.report
                    .ignore(&s.name, "new exit function: never runs for a live patch");
                continue;
            }
            self.report.new_functions.push(s.name.clone());
            self.include(s.index, false);
        }
    }

    /// Functions the fix removed are noted: nothing shipped calls them.
    fn note_removed_functions(&mut self) {
        let orig = self.orig;
        for s in defined_functions(orig) {
            if !self.corr.to_fixed.contains_key(&s.index) && !never_correlated(orig, s) {
                self.report.ignore(
                    &s.name,
                    "function removed in the fixed object: nothing changed calls it any more",
                );
            }
        }
    }

    /// Changed functions are redirected; they need an ftrace site. A
    /// changed static function without one (the kernel's `inline` implies
    /// notrace) is carried as a new copy and its callers become changed
    /// instead, up to functions that can be redirected. That is sound only
    /// when every way into the old copy is a direct call from code that
    /// still runs: a stored pointer would keep running the old code.
    fn redirect_changed(&mut self) {
        let (orig, fixed) = (self.orig, self.fixed);
        let ftrace_sites = special::ftrace_sites(orig);
        let mut pending = Pending {
            work: self.changed.iter().copied().collect(),
            seen: self.changed.iter().copied().collect(),
        };
        let mut refused_mcount = false;
        while let Some(f) = pending.work.pop() {
            let sym = &fixed.symbols[f];
            let orig_sym = self.corr.to_orig.get(&f).map(|&o| &orig.symbols[o]);
            let has_site =
                orig_sym.is_some_and(|o| special::has_ftrace_site(orig, &ftrace_sites, o));
            if sym.name.ends_with(".cold") {
                self.include(f, false);
            } else if has_site {
                self.include(f, true);
            } else if ftrace_sites.is_empty() {
                if !refused_mcount {
                    self.report.refuse(Refusal::no_mcount(&orig.path));
                    refused_mcount = true;
                }
            } else if sym.binding != Binding::Local {
                self.report
                    .refuse(Refusal::no_ftrace_site(&sym.name, section_name(fixed, f)));
            } else {
                self.carry(f, orig_sym, &mut pending);
            }
        }
    }

    /// Carries the changed static function `f` (`orig_sym` in the running
    /// kernel), which has no ftrace site, as a new copy, and makes its
    /// callers changed instead; refused when its address is taken or no
    /// run-time code calls it.
    fn carry(&mut self, f: usize, orig_sym: Option<&Symbol>, pending: &mut Pending) {
        let (orig, fixed) = (self.orig, self.fixed);
        let name = &fixed.symbols[f].name;
        // In the running kernel (the original object), who reaches it.
        let uses = orig_sym
            .map(|o| callers::uses_of(orig, o.index))
            .unwrap_or_default();
        if let Some(why) = uses.iter().find_map(|u| u.address_taken(orig)) {
            self.report.refuse(Refusal::address_taken(name, &why));
            return;
        }
        self.include(f, false);
        self.report.carried.push(name.clone());
        let callers = callers::callers_of(fixed, f);
        if callers.is_empty() {
            self.report
                .refuse(Refusal::no_ftrace_site(name, section_name(fixed, f)));
        }
        let runtime_callers = self.change_callers(name, &callers, pending);
        if runtime_callers == 0 && !callers.is_empty() {
            self.report
                .refuse(Refusal::only_init_callers(name, section_name(fixed, f)));
        }
    }

    /// Makes the `callers` of the carried function `name` changed (queued
    /// in `pending`), except those the author skips: they keep calling the
    /// old copy, as init and exit code does. How many run-time callers
    /// there are.
    fn change_callers(&mut self, name: &str, callers: &[usize], pending: &mut Pending) -> usize {
        let fixed = self.fixed;
        let mut runtime_callers = 0;
        for &caller in callers {
            let sec = section_name(fixed, caller);
            let caller_name = &fixed.symbols[caller].name;
            if is_init_section(sec) || is_exit_section(sec) {
                let when = if is_init_section(sec) {
                    "init code: it ran at boot (or module load) and was freed"
                } else {
                    "exit code: it runs only when the module goes away"
                };
                self.report.ignore(
                    caller_name,
                    &format!("calls {name}, a changed function without an ftrace site, from {when}; not redirected, it keeps the old {name}"),
                );
                continue;
            }
            runtime_callers += 1;
            if skipped(self.opts, caller_name) {
                // Left out by the author: it keeps calling the old copy.
                if pending.seen.insert(caller) {
                    let why = format!("calls {name}, a changed function without an ftrace site");
                    self.report.skip(caller_name, sec, &why);
                }
                continue;
            }
            if pending.seen.insert(caller) {
                let why = format!("calls {name}, a changed function without an ftrace site");
                self.report.note_change(caller_name, sec, &why);
                pending.work.push(caller);
            }
        }
        runtime_callers
    }

    /// Parts of included functions come along (the new code calls them).
    fn include_children(&mut self) {
        let fixed = self.fixed;
        let names: HashSet<String> = self
            .included
            .iter()
            .map(|i| fixed.symbols[i.symbol].name.clone())
            .collect();
        for s in defined_functions(fixed) {
            if parent_name(&s.name).is_some_and(|p| names.contains(p))
                && !self.included.iter().any(|i| i.symbol == s.index)
            {
                self.report.children.push(s.name.clone());
                self.include(s.index, false);
            }
        }
    }

    /// A shipped function must use the running kernel's statics, or new
    /// ones that are clearly new: never a guess.
    fn refuse_ambiguous_statics(&mut self) {
        let (orig, fixed) = (self.orig, self.fixed);
        for inc in &self.included {
            if let Some((name, candidates)) =
                correlate::ambiguous_static(orig, fixed, &self.corr, inc.symbol)
            {
                self.report.refuse(Refusal::ambiguous_static(
                    &fixed.symbols[inc.symbol].name,
                    &name,
                    &candidates,
                ));
            }
        }
    }

    /// Chooses fixed function `symbol` for the output.
    fn include(&mut self, symbol: usize, redirect: bool) {
        self.included.insert(Included { symbol, redirect });
    }
}

/// The functions an object defines.
fn defined_functions(obj: &ObjectFile) -> impl Iterator<Item = &Symbol> {
    obj.symbols
        .iter()
        .filter(|s| s.kind == SymbolKind::Func && s.section.is_some())
}

/// Whether `name` (a fixed-object function) is one the author skips.
fn skipped(opts: &DiffOptions, name: &str) -> bool {
    let base = name.split('.').next().unwrap_or(name);
    opts.skip.iter().any(|s| s == name || s == base)
}

/// Sections of code that runs only at boot or module load and is freed
/// (or never runs again) afterwards. `.ref.text` (`__ref`) is ordinary
/// run-time code that may refer to init code; it is not among them.
fn is_init_section(name: &str) -> bool {
    name.starts_with(".init.") || name == ".init" || name.starts_with(".head.text")
}

/// Sections of code that runs only when a module goes away.
fn is_exit_section(name: &str) -> bool {
    name.starts_with(".exit.")
}

/// The name of the section that defines symbol `sym`, or "".
fn section_name(obj: &ObjectFile, sym: usize) -> &str {
    obj.symbols
        .get(sym)
        .and_then(|s| s.section)
        .and_then(|i| obj.sections.get(i))
        .map_or("", |s| s.name.as_str())
}

/// Section groups, by signature symbol: the names and contents of their
/// member sections.
fn groups(obj: &ObjectFile) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let mut out = BTreeMap::new();
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
