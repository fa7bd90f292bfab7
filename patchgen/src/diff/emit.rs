//! Emitting the output object: the included functions with their
//! relocations, the new data they need, the special-section entries that
//! belong to them, and undefined references for everything else.
//!
//! A reference is defined in the output only when it is new (or a
//! never-correlated per-site static, which gets a fresh copy); anything that
//! exists in the running kernel stays undefined, by name, to be resolved
//! there. A reference that has no name cannot be resolved and is refused.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use object::write::{self, SectionId, SymbolId};
use object::{elf, SectionFlags, SectionKind, SymbolFlags, SymbolScope};

// Shared code sections are copied whole; only the parts reached from the
// included functions ever run.
use super::compare::is_shared_code;
use super::correlate::{never_correlated, Correlation};
use super::report::{NewData, Refusal, Report, UndefinedSymbol};
use super::runtime_const;
use super::special::is_dropped;
use super::targets::{symbol_at_reloc, target_offset};
use super::{DiffOptions, Included};
use crate::elf::{Binding, ObjectFile, Reloc, Section, SymbolKind};

struct Emitter<'a> {
    /// `DiffOptions::symbol_prefix`.
    prefix: Option<String>,
    /// Fixed-object indices of the redirected functions.
    redirect: HashSet<usize>,
    orig: &'a ObjectFile,
    fixed: &'a ObjectFile,
    corr: &'a Correlation,
    out: write::Object<'static>,
    sections: HashMap<usize, SectionId>,
    symbols: HashMap<usize, SymbolId>,
    undefined: HashMap<String, SymbolId>,
    queue: VecDeque<usize>,
    /// The section whose relocations are being resolved (for messages).
    from: String,
    /// New data defined in the output, for the report.
    new_data: Vec<NewData>,
}

/// Builds the output object. Refusals found on the way go to `report`.
pub fn emit(
    orig: &ObjectFile,
    fixed: &ObjectFile,
    corr: &Correlation,
    included: &BTreeSet<Included>,
    opts: &DiffOptions,
    report: &mut Report,
) -> object::write::Result<Vec<u8>> {
    let mut e = Emitter {
        prefix: opts.symbol_prefix.clone(),
        redirect: included
            .iter()
            .filter(|i| i.redirect)
            .map(|i| i.symbol)
            .collect(),
        orig,
        fixed,
        corr,
        out: write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        ),
        sections: HashMap::new(),
        symbols: HashMap::new(),
        undefined: HashMap::new(),
        queue: VecDeque::new(),
        from: String::new(),
        new_data: Vec::new(),
    };

    for inc in included {
        let sym = &fixed.symbols[inc.symbol];
        let Some(sec) = sym.section else { continue };
        let others = fixed
            .symbols_in(sec)
            .filter(|s| {
                s.kind == SymbolKind::Func
                    && s.index != inc.symbol
                    && (s.value != sym.value || s.size != sym.size)
            })
            .count();
        // The function starts its section, after the entry padding of
        // kernels built with call padding (6.12).
        if others > 0 || !fixed.sections[sec].is_entry_padding(sym.value) {
            report.refuse(Refusal::not_function_sections(
                &sym.name,
                &fixed.sections[sec].name,
            ));
            continue;
        }
        e.copy_section(sec);
    }

    // Copy what the included code needs, section by section.
    e.drain_queue(report)?;
    e.special_sections(opts, report)?;
    report.new_data.append(&mut e.new_data);
    report.undefined.sort();
    report.undefined.dedup();
    e.out.write()
}

/// The name a defined symbol gets in the output with `prefix`
/// (`DiffOptions::symbol_prefix`).
pub fn output_name(prefix: Option<&str>, s: &crate::elf::Symbol) -> String {
    match prefix {
        Some(p) if s.kind == SymbolKind::Func => format!("{p}new__{}", s.name),
        _ => s.name.clone(),
    }
}

fn section_kind(s: &Section) -> SectionKind {
    if s.sh_type == elf::SHT_NOBITS {
        SectionKind::UninitializedData
    } else if s.is_text() {
        SectionKind::Text
    } else {
        SectionKind::Data
    }
}

impl Emitter<'_> {
    /// Copies a section of the fixed object and defines its symbols;
    /// queues it for relocation.
    fn copy_section(&mut self, index: usize) -> SectionId {
        if let Some(&id) = self.sections.get(&index) {
            return id;
        }
        let s = &self.fixed.sections[index];
        let id = self
            .out
            .add_section(Vec::new(), s.name.as_bytes().to_vec(), section_kind(s));
        let align = s.align.max(1);
        if s.sh_type == elf::SHT_NOBITS {
            self.out.append_section_bss(id, s.size, align);
        } else {
            self.out.set_section_data(id, s.data.clone(), align);
        }
        // Merging needs sh_entsize, which the writer does not keep: copy
        // strings as plain data (they are only this patch's).
        let merge = u64::from(elf::SHF_MERGE | elf::SHF_STRINGS);
        self.out.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: s.sh_flags & !merge,
        };
        self.sections.insert(index, id);
        let defined: Vec<usize> = self.fixed.symbols_in(index).map(|s| s.index).collect();
        for sym in defined {
            self.define(sym, id);
        }
        self.queue.push_back(index);
        id
    }

    fn define(&mut self, index: usize, section: SectionId) -> SymbolId {
        if let Some(&id) = self.symbols.get(&index) {
            return id;
        }
        let s = &self.fixed.symbols[index];
        // A new global function keeps its name: another object of the same
        // fix may call it by that name (it is in no running code, so the
        // name clashes with nothing the patch module refers to).
        let new_global = s.binding != Binding::Local && !self.corr.to_orig.contains_key(&index);
        let renamed = self.prefix.is_some() && s.kind == SymbolKind::Func && !new_global;
        let global = s.binding != Binding::Local || (renamed && self.redirect.contains(&index));
        let name = if renamed {
            output_name(self.prefix.as_deref(), s)
        } else {
            s.name.clone()
        };
        let id = self.out.add_symbol(write::Symbol {
            name: name.into_bytes(),
            value: s.value,
            size: s.size,
            kind: match s.kind {
                SymbolKind::Func => object::SymbolKind::Text,
                SymbolKind::Object => object::SymbolKind::Data,
                _ => object::SymbolKind::Label,
            },
            scope: if global {
                SymbolScope::Dynamic
            } else {
                SymbolScope::Compilation
            },
            weak: s.binding == Binding::Weak,
            section: write::SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        self.symbols.insert(index, id);
        id
    }

    fn undefined(&mut self, index: usize, report: &mut Report) -> SymbolId {
        let s = &self.fixed.symbols[index];
        // What the running kernel calls it: the original build's name and
        // size (a static's number, a clone's number may differ in the
        // fixed build).
        let running = self
            .corr
            .to_orig
            .get(&index)
            .and_then(|&o| self.orig.symbols.get(o))
            .unwrap_or(s);
        let local = s.binding == Binding::Local && s.section.is_some();
        let symbol = match &self.prefix {
            Some(p) if local => format!("{p}old__{}", running.name),
            _ => running.name.clone(),
        };
        report.undefined.push(UndefinedSymbol {
            symbol: symbol.clone(),
            name: running.name.clone(),
            local,
            function: s.section.is_some().then_some(s.kind == SymbolKind::Func),
            object: local.then(|| self.orig.path.display().to_string()),
            size: local.then_some(running.size),
        });
        if let Some(&id) = self.undefined.get(&symbol) {
            return id;
        }
        let id = self.out.add_symbol(write::Symbol {
            name: symbol.clone().into_bytes(),
            value: 0,
            size: 0,
            kind: match s.kind {
                SymbolKind::Func => object::SymbolKind::Text,
                SymbolKind::Object => object::SymbolKind::Data,
                _ => object::SymbolKind::Unknown,
            },
            scope: SymbolScope::Dynamic,
            weak: s.binding == Binding::Weak && s.section.is_none(),
            section: write::SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        self.undefined.insert(symbol, id);
        id
    }

    /// Whether a defined symbol must be a fresh copy in the output.
    fn is_new(&self, index: usize) -> bool {
        let s = &self.fixed.symbols[index];
        !self.corr.to_orig.contains_key(&index) || never_correlated(self.fixed, s)
    }

    /// The output symbol and addend for a relocation's target.
    fn resolve(&mut self, r: &Reloc, report: &mut Report) -> Option<(SymbolId, i64)> {
        let sym = self.fixed.symbols.get(r.symbol)?.clone();
        let Some(sec) = sym.section else {
            return Some((self.undefined(sym.index, report), r.addend));
        };
        if sym.kind == SymbolKind::Section {
            let s = &self.fixed.sections[sec];
            if let Some(&id) = self.sections.get(&sec) {
                return Some((self.out.section_symbol(id), r.addend));
            }
            if self.resolving_shared_code() && s.is_text() {
                // Replacement code of other functions' alternatives is dead
                // in the output: leave its jumps back unresolved.
                return None;
            }
            if s.is_mergeable() || is_shared_code(&s.name) {
                let name = s.name.clone();
                let id = self.copy_section(sec);
                self.note_new_data(
                    &name,
                    sec,
                    "string literals or replacement code used by the new code",
                );
                return Some((self.out.section_symbol(id), r.addend));
            }
            let off = target_offset(r);
            if let Some(named) = symbol_at_reloc(self.fixed, sec, r).cloned() {
                let delta = r
                    .addend
                    .saturating_sub(i64::try_from(named.value).unwrap_or(i64::MAX));
                return self.resolve_named(named.index, delta, report);
            }
            report.refuse(Refusal::anonymous_reference(&self.from, &s.name, off));
            return None;
        }
        self.resolve_named(sym.index, r.addend, report)
    }

    fn resolve_named(
        &mut self,
        index: usize,
        addend: i64,
        report: &mut Report,
    ) -> Option<(SymbolId, i64)> {
        if let Some(&id) = self.symbols.get(&index) {
            return Some((id, addend));
        }
        let s = self.fixed.symbols[index].clone();
        let sec = s.section?;
        if self.resolving_shared_code()
            && self.fixed.sections[sec].is_text()
            && !self.sections.contains_key(&sec)
        {
            return None;
        }
        if self.fixed.sections[sec].is_mergeable() {
            // A named string literal (.LC label): the strings come along.
            let id = self.copy_section(sec);
            let name = self.fixed.sections[sec].name.clone();
            self.note_new_data(&name, sec, "string literals used by the new code");
            return Some((self.define(index, id), addend));
        }
        if self.is_new(index) && s.kind != SymbolKind::Func {
            let why = if never_correlated(self.fixed, &s) {
                "per-site static: a fresh copy for the new code"
            } else {
                "new in the fixed object"
            };
            let id = self.copy_section(sec);
            self.note_new_data(&s.name, sec, why);
            return Some((self.define(index, id), addend));
        }
        if self.is_new(index) {
            // A new function not yet copied (e.g. a part of one).
            let id = self.copy_section(sec);
            return Some((self.define(index, id), addend));
        }
        Some((self.undefined(index, report), addend))
    }

    /// Whether the relocations being resolved belong to code shared by all
    /// functions of the object (alternatives' replacement and aux code).
    fn resolving_shared_code(&self) -> bool {
        is_shared_code(&self.from)
    }

    fn note_new_data(&mut self, name: &str, sec: usize, why: &str) {
        let s = &self.fixed.sections[sec];
        if self
            .new_data
            .iter()
            .any(|d| d.name == name && d.section == s.name)
        {
            return;
        }
        self.new_data.push(NewData {
            name: name.to_string(),
            section: s.name.clone(),
            size: s.size,
            why: why.to_string(),
        });
    }

    /// Resolves the relocations of every copied section not yet done.
    fn drain_queue(&mut self, report: &mut Report) -> object::write::Result<()> {
        while let Some(sec) = self.queue.pop_front() {
            let relocs = self.fixed.sections[sec].relocs.clone();
            self.from.clone_from(&self.fixed.sections[sec].name);
            let out_sec = self.sections[&sec];
            self.add_relocations(out_sec, &relocs, report)?;
        }
        Ok(())
    }

    fn add_relocations(
        &mut self,
        section: SectionId,
        relocs: &[Reloc],
        report: &mut Report,
    ) -> object::write::Result<()> {
        for r in relocs {
            if let Some((symbol, addend)) = self.resolve(r, report) {
                self.out.add_relocation(
                    section,
                    write::Relocation {
                        offset: r.offset,
                        symbol,
                        addend,
                        flags: object::RelocationFlags::Elf { r_type: r.r_type },
                    },
                )?;
            }
        }
        Ok(())
    }

    /// Keeps the entries of special sections that belong to copied code.
    fn special_sections(
        &mut self,
        opts: &DiffOptions,
        report: &mut Report,
    ) -> object::write::Result<()> {
        // Entry indices kept per section, computed first for sections whose
        // entries carry relocations; companions without relocations
        // (.orc_unwind) follow their partner (.orc_unwind_ip).
        let mut kept_ip: Option<Vec<u64>> = None;
        let fixed = self.fixed;
        let names: Vec<String> = opts.entry_sizes.names().map(str::to_string).collect();
        for name in names.iter().filter(|n| *n != ".orc_unwind") {
            let Some(s) = fixed.sections.iter().find(|s| &s.name == name) else {
                continue;
            };
            let Some(size) = opts.entry_sizes.get(name).filter(|&s| s > 0) else {
                continue;
            };
            // The entries holding a relocation to copied code, in one pass
            // over the relocations (not one per entry: tables such as
            // .orc_unwind_ip have thousands of both).
            let entries = s.size / size;
            let mut kept: Vec<u64> = s
                .relocs
                .iter()
                .filter(|r| r.offset / size < entries && self.targets_copied_text(r))
                .map(|r| r.offset / size)
                .collect();
            kept.sort_unstable();
            kept.dedup();
            if name == ".orc_unwind_ip" {
                kept_ip = Some(kept.clone());
            }
            self.write_entries(s, size, &kept, report)?;
        }
        if let (Some(kept), Some(s)) = (
            kept_ip,
            fixed.sections.iter().find(|s| s.name == ".orc_unwind"),
        ) {
            let size = opts.entry_sizes.get(".orc_unwind").unwrap_or(6);
            self.write_entries(s, size, &kept, report)?;
        }
        self.runtime_constants(report)?;
        // A table the differ does not know, with entries for the included
        // code, would be lost: refuse rather than drop it silently.
        for s in &self.fixed.sections {
            let known = opts.entry_sizes.get(&s.name).is_some()
                || runtime_const::is_table(&s.name)
                || is_shared_code(&s.name)
                || is_dropped(&s.name);
            let has_symbols = self.fixed.symbols_in(s.index).any(|x| !x.name.is_empty());
            if known
                || has_symbols
                || s.is_text()
                || !s.is_alloc()
                || self.sections.contains_key(&s.index)
            {
                continue;
            }
            if s.relocs.iter().any(|r| self.targets_copied_text(r)) {
                report.refuse(Refusal::unknown_table(&s.name));
            }
        }
        Ok(())
    }

    /// Turns each runtime-constant site of copied code into a load of its
    /// variable, or refuses it (see `runtime_const`); the tables are not
    /// copied.
    fn runtime_constants(&mut self, report: &mut Report) -> object::write::Result<()> {
        let fixed = self.fixed;
        for s in fixed
            .sections
            .iter()
            .filter(|s| runtime_const::is_table(&s.name))
        {
            let sites: Vec<&Reloc> = s
                .relocs
                .iter()
                .filter(|r| self.targets_copied_text(r))
                .collect();
            for r in sites {
                let site = match runtime_const::site(fixed, s, r) {
                    Ok(site) => site,
                    Err(refusal) => {
                        report.refuse(refusal);
                        continue;
                    }
                };
                let out_sec = self.sections[&site.text];
                let code = self.out.section_mut(out_sec).data_mut();
                let Some(place) = usize::try_from(site.at)
                    .ok()
                    .and_then(|at| code.get_mut(at..at.checked_add(runtime_const::SITE_LEN)?))
                else {
                    // The copy is the fixed section's bytes: never here, but
                    // a placeholder must not be left in place.
                    let why = "the site is outside the copied code";
                    report.refuse(Refusal::runtime_constant(&s.name, "code", why));
                    continue;
                };
                place.copy_from_slice(&site.load);
                let symbol = self.undefined_variable(site.variable, report);
                self.out.add_relocation(
                    out_sec,
                    write::Relocation {
                        offset: site.at.saturating_add(runtime_const::DISP_AT),
                        symbol,
                        addend: -4,
                        flags: object::RelocationFlags::Elf {
                            r_type: elf::R_X86_64_PC32,
                        },
                    },
                )?;
            }
        }
        Ok(())
    }

    /// An undefined reference to the running kernel's global variable
    /// `name`, which the fixed object does not refer to by symbol.
    fn undefined_variable(&mut self, name: &str, report: &mut Report) -> SymbolId {
        report.undefined.push(UndefinedSymbol {
            symbol: name.to_string(),
            name: name.to_string(),
            local: false,
            function: None,
            object: None,
            size: None,
        });
        if let Some(&id) = self.undefined.get(name) {
            return id;
        }
        let id = self.out.add_symbol(write::Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind: object::SymbolKind::Data,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: write::SymbolSection::Undefined,
            flags: SymbolFlags::None,
        });
        self.undefined.insert(name.to_string(), id);
        id
    }

    fn targets_copied_text(&self, r: &Reloc) -> bool {
        let Some(sym) = self.fixed.symbols.get(r.symbol) else {
            return false;
        };
        sym.section.is_some_and(|sec| {
            self.fixed.sections[sec].is_text() && self.sections.contains_key(&sec)
        })
    }

    fn write_entries(
        &mut self,
        s: &Section,
        size: u64,
        kept: &[u64],
        report: &mut Report,
    ) -> object::write::Result<()> {
        if kept.is_empty() {
            return Ok(());
        }
        let mut data = Vec::new();
        let mut relocs = Vec::new();
        for (n, &i) in (0u64..).zip(kept) {
            let (lo, hi) = (i * size, (i + 1) * size);
            if let Some(bytes) = self.fixed.bytes(s.index, lo, size) {
                data.extend_from_slice(bytes);
            }
            for r in s.relocs.iter().filter(|r| r.offset >= lo && r.offset < hi) {
                let mut moved = r.clone();
                moved.offset = r.offset - lo + n * size;
                relocs.push(moved);
            }
        }
        let id = self
            .out
            .add_section(Vec::new(), s.name.as_bytes().to_vec(), SectionKind::Data);
        self.out.set_section_data(id, data, s.align.max(1));
        self.out.section_mut(id).flags = SectionFlags::Elf {
            sh_flags: s.sh_flags,
        };
        self.from.clone_from(&s.name);
        self.add_relocations(id, &relocs, report)?;
        // Data copied for these entries (strings, replacement code) has
        // relocations of its own.
        self.drain_queue(report)?;
        Ok(())
    }
}
