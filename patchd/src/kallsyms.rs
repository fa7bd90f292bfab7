//! `/proc/kallsyms`: parsing, the exported-symbol rule, and exact resolution.
//!
//! Resolution never guesses: a name that occurs more than once is refused
//! unless a [`SymbolRecord`] says which object and position to take, and a
//! record that matches nothing is an error, not a fallback.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::link::{Candidate, LinkError};

/// The object name kallsyms implies for lines without a `[module]` column.
pub const VMLINUX: &str = "vmlinux";

/// Prefixes of the symbols the export machinery generates; they are never
/// candidates for a module's undefined symbol.
const EXPORT_PREFIXES: [&str; 4] = ["__ksymtab_", "__kstrtab_", "__kstrtabns_", "__crc_"];

/// Which definition of a symbol to link against, as recorded by patchgen or
/// given on the command line as `NAME=OBJECT[,POS]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SymbolRecord {
    /// The symbol name.
    pub name: String,
    /// `vmlinux` or the name of a loaded module.
    pub object: String,
    /// 1-based position among the symbols of that name in that object, in
    /// kallsyms order; `None` when the name is unique in the object.
    pub sympos: Option<u32>,
}

impl fmt::Display for SymbolRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.object)?;
        if let Some(sympos) = self.sympos {
            write!(f, ",{sympos}")?;
        }
        Ok(())
    }
}

/// A `--symbol` argument that is not `NAME=OBJECT[,POS]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid symbol record `{text}`: {reason}; write NAME=OBJECT[,POS], e.g. cmdline_proc_show=vmlinux,1")]
pub struct SymbolRecordError {
    /// The argument as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for SymbolRecord {
    type Err = SymbolRecordError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
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
        Ok(Self {
            name: name.to_owned(),
            object: object.to_owned(),
            sympos,
        })
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
        Ok(Self {
            by_name,
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
    pub fn resolve(
        &self,
        name: &str,
        record: Option<&SymbolRecord>,
    ) -> Result<Resolved, LinkError> {
        if self.addresses_hidden {
            return Err(LinkError::AddressesHidden);
        }
        let entries: &[Entry] = if EXPORT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            &[]
        } else {
            self.by_name.get(name).map_or(&[], Vec::as_slice)
        };
        let found = |entry: &Entry| Resolved {
            name: name.to_owned(),
            address: entry.address,
            object: self.object_name(entry.object).to_owned(),
        };
        let Some(record) = record else {
            return match entries {
                [] => Err(LinkError::NotFound {
                    name: name.to_owned(),
                }),
                [entry] => Ok(found(entry)),
                _ => Err(LinkError::Ambiguous {
                    name: name.to_owned(),
                    candidates: self.candidates(entries, None),
                }),
            };
        };
        if record.name != name {
            return Err(LinkError::UnusedRecord {
                record: record.clone(),
            });
        }
        if record.sympos == Some(0) {
            return Err(LinkError::InvalidSympos {
                record: record.clone(),
            });
        }
        let wanted = normalize_object(&record.object);
        let Some(object) = self.objects.iter().position(|o| *o == wanted) else {
            return Err(LinkError::ObjectNotLoaded {
                name: name.to_owned(),
                object: record.object.clone(),
            });
        };
        let in_object: Vec<&Entry> = entries.iter().filter(|e| e.object == object).collect();
        let not_in_object = || LinkError::NotInObject {
            name: name.to_owned(),
            object: record.object.clone(),
            candidates: self.candidates(entries, None),
        };
        match (record.sympos, in_object.as_slice()) {
            (_, []) => Err(not_in_object()),
            (Some(sympos), many) => {
                let index = usize::try_from(sympos).ok().and_then(|p| p.checked_sub(1));
                match index.and_then(|i| many.get(i)) {
                    Some(entry) => Ok(found(entry)),
                    None => Err(LinkError::NoSuchPosition {
                        record: record.clone(),
                        count: many.len(),
                    }),
                }
            }
            (None, [entry]) => Ok(found(entry)),
            (None, _) => Err(LinkError::Ambiguous {
                name: name.to_owned(),
                candidates: self.candidates(entries, Some(object)),
            }),
        }
    }

    fn object_name(&self, id: usize) -> &str {
        self.objects.get(id).map_or(VMLINUX, String::as_str)
    }

    /// Every definition in `entries` (of one object only, if given), each with
    /// the position a record would need to select it.
    fn candidates(&self, entries: &[Entry], only_object: Option<usize>) -> Vec<Candidate> {
        let mut positions: HashMap<usize, u32> = HashMap::new();
        let mut candidates = Vec::new();
        for entry in entries {
            let pos = positions.entry(entry.object).or_insert(0);
            *pos = pos.saturating_add(1);
            if only_object.map_or(true, |o| o == entry.object) {
                candidates.push(Candidate {
                    kind: entry.kind,
                    object: self.object_name(entry.object).to_owned(),
                    sympos: *pos,
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
