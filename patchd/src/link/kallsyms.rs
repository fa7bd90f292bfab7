//! `/proc/kallsyms`: parsing, the exported-symbol rule, and exact resolution.
//!
//! Resolution never guesses: a name that occurs more than once is refused
//! unless a [`LinkRecord`] says which object and position to take, and a
//! record that matches nothing is an error, not a fallback.
//!
//! A position (`sympos`) counts the lines of that name in that object in
//! `/proc/kallsyms` order, every type letter included, as the kernel's
//! livepatch does; for vmlinux these are the lines without a `[module]`
//! column, which the kernel prints first, in its table's (address) order.
//! patchgen proves positions at build time; the type letter (and for a
//! function, the room up to the next symbol) is checked again here.

use std::collections::HashMap;

use super::error::{Candidate, LinkError};

/// The object name kallsyms implies for lines without a `[module]` column.
pub const VMLINUX: &str = "vmlinux";

/// Prefixes of the symbols the export machinery generates; they are never
/// candidates for a module's undefined symbol.
const EXPORT_PREFIXES: [&str; 4] = ["__ksymtab_", "__kstrtab_", "__kstrtabns_", "__crc_"];

/// Which definition of a symbol to link against: the link contract's
/// record (`suture_bundle::link_record`), from a bundle's manifest, a
/// `--records` file or a `--symbol NAME=OBJECT[,POS]` argument.
pub use suture_bundle::LinkRecord;

/// A `--symbol` argument that is not `NAME=OBJECT[,POS]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid symbol record `{text}`: {reason}; write NAME=OBJECT[,POS], e.g. cmdline_proc_show=vmlinux,1")]
pub struct SymbolRecordError {
    /// The argument as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a `--symbol NAME=OBJECT[,POS]` argument: a record selecting that
/// object (and position) for the symbol NAME, of any binding and kind.
pub fn parse_symbol_arg(text: &str) -> Result<LinkRecord, SymbolRecordError> {
    {
        let error = |reason| SymbolRecordError {
            text: text.to_owned(),
            reason,
        };
        let (name, rest) = text.split_once('=').ok_or_else(|| error("no `=`"))?;
        let (object, sympos) = match rest.split_once(',') {
            Some((object, pos)) => {
                let pos: u32 = pos
                    .parse()
                    .map_err(|_| error("the position is not a number"))?;
                if pos == 0 {
                    return Err(error("positions start at 1"));
                }
                (object, Some(pos))
            }
            None => (rest, None),
        };
        let bad = |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == ',');
        if bad(name) {
            return Err(error("empty or malformed symbol name"));
        }
        if bad(object) || object.contains('=') {
            return Err(error("empty or malformed object name"));
        }
        Ok(LinkRecord::selecting(name, object, sympos))
    }
}

/// A symbol as patchd linked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The symbol name.
    pub name: String,
    /// Its address in the running kernel.
    pub address: u64,
    /// `vmlinux` or the module that defines it.
    pub object: String,
}

/// `/proc/kallsyms` text that is not in the kernel's format.
#[derive(Debug, thiserror::Error)]
pub enum KallsymsError {
    /// A line is not `ADDR TYPE NAME` or `ADDR TYPE NAME\t[MODULE]`.
    #[error(
        "kallsyms line {line} is malformed: {reason}; pass the kernel's /proc/kallsyms unchanged"
    )]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// There is not a single symbol.
    #[error("kallsyms is empty; the kernel needs CONFIG_KALLSYMS")]
    Empty,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    address: u64,
    kind: char,
    /// Index into `Kallsyms::objects`; 0 is vmlinux.
    object: usize,
}

/// An index over the symbols of `/proc/kallsyms`.
#[derive(Debug)]
pub struct Kallsyms {
    /// Every definition of each name, in file order.
    by_name: HashMap<Box<str>, Vec<Entry>>,
    /// Object names; `objects[0]` is `vmlinux`.
    objects: Vec<String>,
    /// Sorted, distinct addresses per object, for kallsyms sizes.
    addresses: Vec<Vec<u64>>,
    addresses_hidden: bool,
    lists_exports: bool,
}

impl Kallsyms {
    /// Parses the text of `/proc/kallsyms`.
    pub fn parse(text: &str) -> Result<Self, KallsymsError> {
        let mut by_name: HashMap<Box<str>, Vec<Entry>> = HashMap::with_capacity(1 << 17);
        let mut objects = vec![VMLINUX.to_owned()];
        let mut object_ids: HashMap<String, usize> = HashMap::new();
        let mut any_address = false;
        let mut lists_exports = false;
        for (index, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let malformed = |reason| KallsymsError::Malformed {
                line: index.saturating_add(1),
                reason,
            };
            let (address, kind, name, module) = split_line(line).map_err(malformed)?;
            let object = match module {
                None => 0,
                Some(module) => match object_ids.get(module) {
                    Some(&id) => id,
                    None => {
                        let id = objects.len();
                        objects.push(module.to_owned());
                        object_ids.insert(module.to_owned(), id);
                        id
                    }
                },
            };
            any_address |= address != 0;
            lists_exports |= name.starts_with("__ksymtab_");
            let entry = Entry {
                address,
                kind,
                object,
            };
            match by_name.get_mut(name) {
                Some(entries) => entries.push(entry),
                None => {
                    by_name.insert(name.into(), vec![entry]);
                }
            }
        }
        if by_name.is_empty() {
            return Err(KallsymsError::Empty);
        }
        let mut addresses: Vec<Vec<u64>> = vec![Vec::new(); objects.len()];
        for entry in by_name.values().flatten() {
            if let Some(list) = addresses.get_mut(entry.object) {
                list.push(entry.address);
            }
        }
        for list in &mut addresses {
            list.sort_unstable();
            list.dedup();
        }
        Ok(Self {
            by_name,
            addresses,
            objects,
            addresses_hidden: !any_address,
            lists_exports,
        })
    }

    /// Whether `name` is exported, i.e. resolved by the kernel's own module
    /// loader: kallsyms then lists `__ksymtab_<name>`.
    pub fn is_exported(&self, name: &str) -> bool {
        self.by_name
            .contains_key(format!("__ksymtab_{name}").as_str())
    }

    /// Whether any `__ksymtab_` entry exists. Without them (a kernel without
    /// `CONFIG_KALLSYMS_ALL`) exported symbols cannot be told from others, and
    /// every symbol would look unexported.
    pub fn lists_exports(&self) -> bool {
        self.lists_exports
    }

    /// Whether every address is 0, i.e. the kernel hid them from this reader.
    pub fn addresses_hidden(&self) -> bool {
        self.addresses_hidden
    }

    /// Finds the one definition of `name` that a module should link against:
    /// the single candidate, or the one `record` selects.
    pub fn resolve(&self, name: &str, record: Option<&LinkRecord>) -> Result<Resolved, LinkError> {
        if self.addresses_hidden {
            return Err(LinkError::AddressesHidden);
        }
        let lookup = record.map_or(name, |r| r.name.as_str());
        let entries: &[Entry] = if EXPORT_PREFIXES.iter().any(|p| lookup.starts_with(p)) {
            &[]
        } else {
            self.by_name.get(lookup).map_or(&[], Vec::as_slice)
        };
        let entry = match record {
            None => match entries {
                [] => {
                    return Err(LinkError::NotFound {
                        name: name.to_owned(),
                    })
                }
                [entry] => entry,
                _ => {
                    return Err(LinkError::Ambiguous {
                        name: name.to_owned(),
                        candidates: self.candidates(entries, None),
                    })
                }
            },
            Some(record) => self.select_by_record(name, record, entries)?,
        };
        Ok(Resolved {
            name: name.to_owned(),
            address: entry.address,
            object: self.object_name(entry.object).to_owned(),
        })
    }

    /// The one entry of `entries` (the lines named like the record) that
    /// `record` selects: by its position, or narrowed by object, binding
    /// and size; never a guess.
    fn select_by_record<'e>(
        &self,
        name: &str,
        record: &LinkRecord,
        entries: &'e [Entry],
    ) -> Result<&'e Entry, LinkError> {
        if record.symbol != name {
            return Err(LinkError::UnusedRecord {
                record: Box::new(record.clone()),
            });
        }
        if record.sympos == Some(0) {
            return Err(LinkError::InvalidSympos {
                record: Box::new(record.clone()),
            });
        }
        let object = self.object_of(name, record)?;
        let in_object: Vec<&Entry> = entries
            .iter()
            .filter(|e| object.is_none_or(|o| e.object == o))
            .collect();
        let not_in_object = || LinkError::NotInObject {
            name: name.to_owned(),
            object: record
                .object
                .clone()
                .unwrap_or_else(|| "any object".to_owned()),
            candidates: self.candidates(entries, None),
        };
        if let Some(sympos) = record.sympos {
            let selected = suture_bundle::link_record::select(&in_object, sympos);
            let entry = match (in_object.as_slice(), selected) {
                ([], _) => return Err(not_in_object()),
                (_, Some(entry)) => *entry,
                (many, None) => {
                    return Err(LinkError::NoSuchPosition {
                        record: Box::new(record.clone()),
                        count: many.len(),
                    })
                }
            };
            self.check_selected(record, entry)?;
            return Ok(entry);
        }
        match self.narrow(record, in_object).as_slice() {
            [] => Err(not_in_object()),
            [entry] => Ok(entry),
            _ => Err(LinkError::Ambiguous {
                name: name.to_owned(),
                candidates: self.candidates(entries, object),
            }),
        }
    }

    /// The index of the object the record names (`None`: any object).
    fn object_of(&self, name: &str, record: &LinkRecord) -> Result<Option<usize>, LinkError> {
        let Some(wanted) = &record.object else {
            return Ok(None);
        };
        let wanted = normalize_object(wanted);
        match self.objects.iter().position(|o| *o == wanted) {
            Some(id) => Ok(Some(id)),
            None => Err(LinkError::ObjectNotLoaded {
                name: name.to_owned(),
                object: wanted,
            }),
        }
    }

    /// A record without a position: binding, then size, narrow the lines
    /// of its object.
    fn narrow<'e>(&self, record: &LinkRecord, in_object: Vec<&'e Entry>) -> Vec<&'e Entry> {
        // A loaded module's lines do not tell binding by case: its
        // non-exported globals show lowercase too (seen for ext4_search_dir,
        // a global of ext4, as `t`). So a global record takes the uppercase
        // lines, and only when there is none, a module's lowercase ones; a
        // local record needs a lowercase line.
        let by_case: Vec<&Entry> = in_object
            .iter()
            .copied()
            .filter(|e| {
                record
                    .local()
                    .is_none_or(|local| e.kind.is_ascii_lowercase() == local)
            })
            .collect();
        let mut left: Vec<&Entry> = if by_case.is_empty() && record.local() == Some(false) {
            in_object.into_iter().filter(|e| e.object != 0).collect()
        } else {
            by_case
        };
        if left.len() > 1 {
            if let Some(size) = record.size {
                left.retain(|e| {
                    self.size_of(e)
                        .is_some_and(|ks| suture_bundle::link_record::size_fits(size, ks))
                });
            }
        }
        left
    }

    /// What patchgen proved of the line a position selects: its type letter
    /// fits the record, and a function has room for its size before the
    /// next symbol. Either failing means the record is for another build
    /// or another symbol; nothing is linked.
    fn check_selected(&self, record: &LinkRecord, entry: &Entry) -> Result<(), LinkError> {
        if !record.letter_fits(entry.kind) {
            return Err(LinkError::WrongType {
                record: Box::new(record.clone()),
                found: entry.kind,
            });
        }
        if let (Some(true), Some(size)) = (record.function(), record.size) {
            if let Some(kallsyms_size) = self.size_of(entry) {
                if kallsyms_size < size {
                    return Err(LinkError::TooSmall {
                        record: Box::new(record.clone()),
                        size,
                        kallsyms_size,
                    });
                }
            }
        }
        Ok(())
    }

    /// The kallsyms size of an entry: the distance to the next higher
    /// address in the same object, as the kernel computes it.
    fn size_of(&self, entry: &Entry) -> Option<u64> {
        let addrs = self.addresses.get(entry.object)?;
        let at = addrs.partition_point(|&a| a <= entry.address);
        addrs.get(at).map(|next| next - entry.address)
    }

    fn object_name(&self, id: usize) -> &str {
        self.objects.get(id).map_or(VMLINUX, String::as_str)
    }

    /// Every definition in `entries` (of one object only, if given), each with
    /// the position a record would need to select it.
    fn candidates(&self, entries: &[Entry], only_object: Option<usize>) -> Vec<Candidate> {
        let mut positions: HashMap<usize, usize> = HashMap::new();
        let mut candidates = Vec::new();
        for entry in entries {
            let seen = positions.entry(entry.object).or_insert(0);
            let sympos = suture_bundle::link_record::position_of(*seen);
            *seen += 1;
            if only_object.is_none_or(|o| o == entry.object) {
                candidates.push(Candidate {
                    kind: entry.kind,
                    object: self.object_name(entry.object).to_owned(),
                    sympos,
                });
            }
        }
        candidates
    }
}

/// Module names appear in kallsyms with `-` turned into `_`, as the kernel
/// names modules; accept either spelling in records.
fn normalize_object(object: &str) -> String {
    object.replace('-', "_")
}

/// Splits `ADDR TYPE NAME[\t[MODULE]]` into its fields.
fn split_line(line: &str) -> Result<(u64, char, &str, Option<&str>), &'static str> {
    let mut fields = line.split_ascii_whitespace();
    let address = fields.next().ok_or("no address")?;
    let kind = fields.next().ok_or("no symbol type")?;
    let name = fields.next().ok_or("no symbol name")?;
    let module = fields.next();
    if fields.next().is_some() {
        return Err("too many fields");
    }
    if address.len() > 16 || !address.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the address is not a 64-bit hexadecimal number");
    }
    let address = u64::from_str_radix(address, 16).map_err(|_| "the address is not hexadecimal")?;
    let mut kind_chars = kind.chars();
    let kind = match (kind_chars.next(), kind_chars.next()) {
        (Some(c), None) if c.is_ascii_graphic() => c,
        _ => return Err("the symbol type is not one character"),
    };
    let module = match module {
        None => None,
        Some(m) => {
            let m = m.strip_prefix('[').and_then(|m| m.strip_suffix(']'));
            Some(
                m.filter(|m| !m.is_empty())
                    .ok_or("the module column is not `[NAME]`")?,
            )
        }
    };
    Ok((address, kind, name, module))
}

#[cfg(test)]
#[path = "kallsyms_tests.rs"]
mod tests;
