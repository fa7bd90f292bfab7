//! Why a module could not be linked: the errors of the link step (ELF
//! reading in `elf`, resolution in `kallsyms`, rewriting in `link`), in a
//! module of their own so that those three depend on it and not on each
//! other.

use std::fmt;

use suture_bundle::LinkRecord;

/// One definition of an ambiguous symbol, with the record that selects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The kallsyms type letter (`t`, `T`, `d`, ...).
    pub kind: char,
    /// `vmlinux` or a module name.
    pub object: String,
    /// Its 1-based position among same-named symbols of `object`.
    pub sympos: u32,
}

impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` in {} (position {})",
            self.kind, self.object, self.sympos
        )
    }
}

fn describe(record: &LinkRecord) -> String {
    let binding = match record.local() {
        Some(true) => "static ",
        Some(false) => "global ",
        None => "",
    };
    let kind = match record.function() {
        Some(true) => "function",
        Some(false) => "variable",
        None => "symbol",
    };
    format!("a {binding}{kind}")
}

fn list(candidates: &[Candidate]) -> String {
    let items: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    items.join(", ")
}

/// Why a module could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The file does not start with the ELF magic.
    #[error("not an ELF file; pass a kernel module (.ko)")]
    NotElf,

    /// An ELF file of another kind.
    #[error("unsupported ELF file: {what}; patchd links x86-64 kernel modules (ELF64, little endian, relocatable)")]
    UnsupportedElf {
        /// Which property is wrong.
        what: String,
    },

    /// An inconsistency found by patchd's own checks.
    #[error("malformed module: {what}; rebuild the module")]
    Malformed {
        /// What is inconsistent.
        what: &'static str,
    },

    /// An inconsistency found while `object` read a part of the file.
    #[error("malformed module: cannot read its {what}; rebuild the module")]
    Parse {
        /// The part being read.
        what: &'static str,
        /// What `object` found.
        #[source]
        source: object::read::Error,
    },

    /// No `.symtab`.
    #[error("the module has no symbol table (.symtab); it was stripped: use the unstripped .ko")]
    NoSymbolTable,

    /// A `~Module signature appended~` trailer whose lengths do not fit.
    #[error(
        "malformed module signature trailer: {what}; re-sign the module or remove the trailer"
    )]
    SignatureTrailer {
        /// What does not fit.
        what: &'static str,
    },

    /// Every kallsyms address is 0.
    #[error("every address in /proc/kallsyms is 0: the kernel hides them from this process; run as root with sysctl kernel.kptr_restrict set to 0 or 1 (not 2)")]
    AddressesHidden,

    /// kallsyms has no export entries, so the export rule cannot be applied.
    #[error("/proc/kallsyms lists no __ksymtab_ entries, so patchd cannot tell exported symbols from others; use a kernel built with CONFIG_KALLSYMS_ALL=y")]
    NoExportInformation,

    /// No definition of the name anywhere.
    #[error("symbol `{name}` is not in /proc/kallsyms: neither the running kernel (vmlinux) nor any loaded module defines it; load the module that defines it first, or check that the module was built for this kernel")]
    NotFound {
        /// The symbol.
        name: String,
    },

    /// More than one definition and nothing to choose between them.
    #[error("symbol `{name}` is ambiguous: /proc/kallsyms has {}; pass an explicit record, e.g. --symbol {name}=OBJECT,POS", list(.candidates))]
    Ambiguous {
        /// The symbol.
        name: String,
        /// Every definition that matched.
        candidates: Vec<Candidate>,
    },

    /// A record names an object that kallsyms does not know.
    #[error("symbol `{name}` is expected in `{object}`, but no module of that name is loaded; load it first or fix the record")]
    ObjectNotLoaded {
        /// The symbol.
        name: String,
        /// The object the record names.
        object: String,
    },

    /// A record names an object that does not define the symbol.
    #[error("symbol `{name}` is not defined in `{object}` according to /proc/kallsyms (definitions: [{}]); fix the record", list(.candidates))]
    NotInObject {
        /// The symbol.
        name: String,
        /// The object the record names.
        object: String,
        /// The definitions elsewhere.
        candidates: Vec<Candidate>,
    },

    /// A record's position is past the definitions in its object.
    #[error("record {record} names a position that does not exist: `{}` has {count} symbol(s) of that name; fix the record", .record.object.as_deref().unwrap_or("any object"))]
    NoSuchPosition {
        /// The record.
        record: Box<LinkRecord>,
        /// How many definitions the object has.
        count: usize,
    },

    /// The line a record's position selects has a type that does not fit.
    #[error("record {record} selects a `{found}` line of /proc/kallsyms, which is not what the record describes ({}); the bundle was made for another build or the record is wrong", describe(.record))]
    WrongType {
        /// The record.
        record: Box<LinkRecord>,
        /// The type letter found.
        found: char,
    },

    /// The function a record's position selects is followed by another
    /// symbol before its end.
    #[error("record {record} selects a function of {size} bytes, but /proc/kallsyms has another symbol {kallsyms_size} bytes after its start; the bundle was made for another build or the record is wrong")]
    TooSmall {
        /// The record.
        record: Box<LinkRecord>,
        /// The recorded size.
        size: u64,
        /// The distance to the next symbol.
        kallsyms_size: u64,
    },

    /// A record with position 0.
    #[error("record {record} has position 0; positions start at 1")]
    InvalidSympos {
        /// The record.
        record: Box<LinkRecord>,
    },

    /// A record for a symbol the module does not leave undefined.
    #[error("record {record} names a symbol the module does not reference; check its spelling")]
    UnusedRecord {
        /// The record.
        record: Box<LinkRecord>,
    },

    /// A record for an exported symbol, which the kernel resolves itself.
    #[error("record {record} names an exported symbol, which the kernel's loader resolves itself; drop the record")]
    RecordForExported {
        /// The record.
        record: Box<LinkRecord>,
    },

    /// Two records for one symbol.
    #[error("more than one record for symbol `{name}`; give one")]
    DuplicateRecord {
        /// The symbol.
        name: String,
    },
}
