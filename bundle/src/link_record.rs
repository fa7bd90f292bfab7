//! The link contract: which symbol of the running kernel a patch module
//! needs that the kernel does not export, and how to find exactly that one
//! in `/proc/kallsyms`. patchgen proves a record at build time against the
//! target's own kallsyms tables; patchd applies it against the running
//! kernel's; the companion module checks the same size allowance. Every
//! rule both sides must agree on is here, once:
//!
//! - **Position** ([`LinkRecord::sympos`]): among the lines of that name in
//!   that object, in `/proc/kallsyms` order, every type letter included,
//!   counted from 1 ([`position_of`], [`select`]), as the kernel's
//!   livepatch counts `sympos`. For vmlinux these are the lines without a
//!   `[module]` column, which the kernel prints first, in address order.
//! - **Type letter** ([`kallsyms_letter_fits`]): the line's letter fits the
//!   record's kind and binding.
//! - **Size** ([`size_fits`], [`SIZE_ALLOWANCE`]): a function's kallsyms
//!   size (the distance to the next symbol) is its ELF size plus less than
//!   [`SIZE_ALLOWANCE`] bytes of alignment padding, or more where every
//!   byte between is padding ([`is_padding`]), which patchgen checks in the
//!   target's image and the companion module in the running kernel's text.

use serde::{Deserialize, Serialize};

/// Alignment padding a kallsyms size may include beyond the ELF size: less
/// than this many bytes (functions are 16-byte aligned on x86-64). The
/// companion module allows the same (`SUTURE_SIZE_ALLOWANCE` in
/// `kmod/include/suture.h`).
pub const SIZE_ALLOWANCE: u64 = 16;

/// A symbol of the running kernel the patch module refers to that the
/// kernel does not export, with what patchd needs to find exactly that one
/// in `/proc/kallsyms` and write its address into the module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    /// The undefined symbol in the patch module that patchd rewrites (it
    /// differs from `name` when patchgen prefixed the kernel's statics).
    pub symbol: String,
    /// The symbol's name in the running kernel's kallsyms.
    pub name: String,
    /// Function or data; `None` when patchgen does not know (then patchd
    /// does not check the kallsyms type letter).
    pub kind: Option<SymbolKind>,
    /// Local (`static`: a lowercase kallsyms type), global or weak.
    pub binding: SymbolBinding,
    /// `vmlinux`, or the module that defines the symbol (the object column
    /// of kallsyms); `None` for a global, found wherever it is.
    pub object: Option<String>,
    /// The object file that defines it, e.g. `fs/proc/cmdline.o`, when known.
    pub object_file: Option<String>,
    /// 1-based position among the symbols of this name in `object`, in
    /// kallsyms order; `None` when the name is unique there.
    pub sympos: Option<u32>,
    /// The symbol's ELF size in the target build, when known.
    pub size: Option<u64>,
}

/// A symbol's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// Code (`STT_FUNC`; `t`/`T` in kallsyms).
    Func,
    /// Data (`STT_OBJECT`; `d`/`D`/`b`/`B`/`r`/`R` in kallsyms).
    Object,
}

/// A symbol's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolBinding {
    /// `STB_LOCAL`: a `static`, lowercase type letter in kallsyms.
    Local,
    /// `STB_GLOBAL`.
    Global,
    /// `STB_WEAK`.
    Weak,
}

impl SymbolKind {
    /// The name used in JSON and in the text dump.
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolKind::Func => "func",
            SymbolKind::Object => "object",
        }
    }
}

impl SymbolBinding {
    /// The name used in JSON and in the text dump.
    pub fn as_str(self) -> &'static str {
        match self {
            SymbolBinding::Local => "local",
            SymbolBinding::Global => "global",
            SymbolBinding::Weak => "weak",
        }
    }
}

impl LinkRecord {
    /// A record for the module's `symbol`, the kernel's `name`: local
    /// (`Some(true)`), global (`Some(false)`) or either (`None`); a function
    /// (`Some(true)`), data (`Some(false)`) or not known. No object,
    /// position or size yet.
    pub fn new(symbol: &str, name: &str, local: Option<bool>, function: Option<bool>) -> Self {
        Self {
            symbol: symbol.to_owned(),
            name: name.to_owned(),
            kind: function.map(|f| {
                if f {
                    SymbolKind::Func
                } else {
                    SymbolKind::Object
                }
            }),
            binding: match local {
                Some(true) => SymbolBinding::Local,
                Some(false) => SymbolBinding::Global,
                None => SymbolBinding::Weak,
            },
            object: None,
            object_file: None,
            sympos: None,
            size: None,
        }
    }

    /// A record selecting `object` (and the position `sympos` there) for
    /// `symbol`, of any binding and kind: what an operator's
    /// `NAME=OBJECT[,POS]` says.
    pub fn selecting(symbol: &str, object: &str, sympos: Option<u32>) -> Self {
        Self {
            object: Some(object.to_owned()),
            sympos,
            ..Self::new(symbol, symbol, None, None)
        }
    }

    /// Whether the record asks for a local (`Some(true)`), a global
    /// (`Some(false)`) or either (`None`: weak) binding.
    pub fn local(&self) -> Option<bool> {
        match self.binding {
            SymbolBinding::Local => Some(true),
            SymbolBinding::Global => Some(false),
            SymbolBinding::Weak => None,
        }
    }

    /// Whether the record is for a function (`Some(true)`), data
    /// (`Some(false)`) or not known (`None`).
    pub fn function(&self) -> Option<bool> {
        self.kind.map(|k| k == SymbolKind::Func)
    }

    /// Whether a kallsyms line's type letter fits the record.
    pub fn letter_fits(&self, letter: char) -> bool {
        kallsyms_letter_fits(letter, self.function(), self.local())
    }
}

/// `NAME=OBJECT[,POS]`, the form the command line takes.
impl std::fmt::Display for LinkRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={}",
            self.symbol,
            self.object.as_deref().unwrap_or("*")
        )?;
        if let Some(sympos) = self.sympos {
            write!(f, ",{sympos}")?;
        }
        Ok(())
    }
}

/// Whether a kallsyms size (the distance to the next symbol) can be that of
/// a symbol of ELF size `elf_size`: at least it, and less than
/// [`SIZE_ALLOWANCE`] more.
pub fn size_fits(elf_size: u64, kallsyms_size: u64) -> bool {
    kallsyms_size >= elf_size && kallsyms_size - elf_size < SIZE_ALLOWANCE
}

/// Whether `bytes` are only x86 padding: `int3`, zero bytes (a
/// zero-filled gap), `nop`, and the long nops of the assembler and the
/// linker (prefixes 0x66 and 0x2e, then 0x90, or 0x0f 0x1f with its
/// operand). What fills the space between
/// a function's end and the next symbol when alignment leaves 16 bytes or
/// more (object boundaries; 6.12's call padding). The companion module
/// applies the same rule (`suture_padding_insn` in kmod/suture_core.c).
pub fn is_padding(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        match padding_insn(rest) {
            Some(n) => rest = &rest[n..],
            None => return false,
        }
    }
    true
}

/// The length of the padding instruction at the start of `p`.
fn padding_insn(p: &[u8]) -> Option<usize> {
    if matches!(p.first(), Some(&0xcc | &0x00)) {
        return Some(1);
    }
    let prefixes = p
        .iter()
        .take(8)
        .take_while(|&&b| b == 0x66 || b == 0x2e)
        .count();
    match p.get(prefixes..)? {
        [0x90, ..] => Some(prefixes + 1),
        [0x0f, 0x1f, modrm, rest @ ..] => {
            let (mode, rm) = (modrm >> 6, modrm & 7);
            let sib = usize::from(mode != 3 && rm == 4);
            // With mod 0, a SIB byte whose base is 5 takes a disp32.
            let sib_base_5 = sib == 1 && rest.first().is_some_and(|b| b & 7 == 5);
            let disp = match (mode, rm) {
                (1, _) => 1,
                (2, _) | (0, 5) => 4,
                (0, 4) if sib_base_5 => 4,
                _ => 0,
            };
            let len = prefixes + 3 + sib + disp;
            (len <= p.len()).then_some(len)
        }
        _ => None,
    }
}

/// The position of the `index`th (0-based) of the same-named lines of one
/// object in kallsyms order.
pub fn position_of(index: usize) -> u32 {
    u32::try_from(index).map_or(u32::MAX, |i| i.saturating_add(1))
}

/// The line a position selects among the same-named lines of one object
/// in kallsyms order; `None` for position 0 or past the last.
pub fn select<T>(lines: &[T], sympos: u32) -> Option<&T> {
    let index = usize::try_from(sympos).ok()?.checked_sub(1)?;
    lines.get(index)
}

/// Whether a `/proc/kallsyms` type letter fits a symbol record's kind
/// (`function`) and binding (`local`), the rule patchgen proves positions
/// with and patchd checks them by. Functions are `t`/`T` (`w`/`W` weak),
/// data any other letter; per-CPU variables of vmlinux are listed as
/// absolute (`A`) whatever their binding. `None` fits anything.
pub fn kallsyms_letter_fits(letter: char, function: Option<bool>, local: Option<bool>) -> bool {
    if letter == 'A' {
        return function != Some(true);
    }
    let binding = match local {
        Some(true) => letter.is_ascii_lowercase(),
        Some(false) => letter.is_ascii_uppercase(),
        None => true,
    };
    let lower = letter.to_ascii_lowercase();
    let kind = match function {
        Some(true) => matches!(lower, 't' | 'w'),
        Some(false) => !matches!(lower, 't' | 'w'),
        None => true,
    };
    binding && kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_letters_fit_kind_and_binding() {
        let cases = [
            ('t', Some(true), Some(true), true),
            ('T', Some(true), Some(true), false),
            ('T', Some(true), Some(false), true),
            ('W', Some(true), Some(false), true),
            ('w', Some(true), None, true),
            ('d', Some(false), Some(true), true),
            ('b', Some(false), Some(true), true),
            ('R', Some(false), Some(false), true),
            ('t', Some(false), Some(true), false),
            ('d', Some(true), Some(true), false),
            ('A', Some(false), Some(true), true),
            ('A', Some(false), Some(false), true),
            ('A', Some(true), Some(false), false),
            ('x', None, None, true),
        ];
        for (letter, function, local, fits) in cases {
            assert_eq!(
                kallsyms_letter_fits(letter, function, local),
                fits,
                "{letter} {function:?} {local:?}"
            );
        }
    }

    #[test]
    fn sizes_fit_with_less_than_the_allowance() {
        assert!(size_fits(0x2a, 0x30));
        assert!(size_fits(0x80, 0x80));
        assert!(!size_fits(0x80, 0x7f));
        assert!(!size_fits(0x20, 0x20 + SIZE_ALLOWANCE));
    }

    #[test]
    fn padding_is_what_assemblers_and_linkers_fill_with() {
        // The tail of a 6.12 function's alignment: `cs nopw 0x0(%rax,%rax,1)`
        // (10 bytes) four times and a 2-byte one, int3, nops of every size.
        let mut tail = Vec::new();
        for _ in 0..4 {
            tail.extend_from_slice(&[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0]);
        }
        tail.extend_from_slice(&[0x66, 0x90, 0xcc, 0x90, 0x0f, 0x1f, 0x00]);
        tail.extend_from_slice(&[0x0f, 0x1f, 0x40, 0x00, 0x0f, 0x1f, 0x44, 0x00, 0x00]);
        tail.extend_from_slice(&[0x0f, 0x1f, 0x80, 0, 0, 0, 0]);
        assert!(is_padding(&tail));
        assert!(is_padding(&[]));
        // Code is not padding, nor is a cut long nop.
        // nopl 0x0(,%rax,1): SIB with base 5, a disp32.
        assert!(is_padding(&[0x0f, 0x1f, 0x04, 0x05, 0, 0, 0, 0]));
        // A zero-filled gap.
        assert!(is_padding(&[0, 0, 0, 0x90]));
        assert!(!is_padding(&[0x90, 0x53, 0x90]));
        assert!(!is_padding(&[0xc3]));
        assert!(!is_padding(&[0x0f, 0x1f, 0x84, 0x00]));
        assert!(!is_padding(&[0x66, 0x2e]));
    }

    #[test]
    fn positions_count_from_one_in_order() {
        let lines = ["a", "b", "c"];
        assert_eq!(position_of(0), 1);
        assert_eq!(select(&lines, position_of(2)), Some(&"c"));
        assert_eq!(select(&lines, 0), None);
        assert_eq!(select(&lines, 4), None);
    }

    /// The companion module allows the same padding.
    #[test]
    fn the_companion_allows_the_same_padding() {
        let header = include_str!("../../kmod/include/suture.h");
        let line = header
            .lines()
            .find(|l| l.starts_with("#define SUTURE_SIZE_ALLOWANCE"))
            .expect("SUTURE_SIZE_ALLOWANCE in kmod/include/suture.h");
        assert_eq!(
            line.split_whitespace().nth(2),
            Some(SIZE_ALLOWANCE.to_string().as_str())
        );
    }
}
