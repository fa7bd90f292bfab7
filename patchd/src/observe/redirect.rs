//! How the companion module redirects a patch's functions, from the last
//! column of `/sys/kernel/suture/<patch>/functions`
//! (docs/kmod-interface.md): an ftrace direct call into the companion's
//! trampoline (the fast default) or the ftrace IPMODIFY handler (the
//! fallback when another ftrace user holds the function, or with the
//! module parameter `direct=0`).

use std::fmt;

use serde::Serialize;

use crate::kernel::{Kernel, PatchAttribute};

/// The `path` column of one line of a `functions` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPath {
    /// `direct`: an ftrace direct call into the companion's trampoline.
    Direct,
    /// `ftrace`: the ftrace IPMODIFY handler.
    FtraceHandler,
    /// `-`: not attached (the patch was never enabled).
    NotAttached,
    /// No such column (an older companion module) or a word patchd does
    /// not know.
    Unknown,
}

impl RedirectPath {
    fn from_column(column: Option<&str>) -> Self {
        match column {
            Some("direct") => Self::Direct,
            Some("ftrace") => Self::FtraceHandler,
            Some("-") => Self::NotAttached,
            _ => Self::Unknown,
        }
    }
}

/// The columns before `calls` and `path`: `old_name old_addr old_size
/// new_name new_addr new_size active`.
const REQUIRED_COLUMNS: usize = 7;

/// The functions of a `functions` file with their redirect path, in the
/// file's order. A line of 7 or 8 columns (older companion modules print
/// no `calls` or no `path`) has the path [`RedirectPath::Unknown`]; a line
/// with fewer columns or columns that are not numbers where numbers belong
/// is skipped.
pub fn parse_functions(text: &str) -> Vec<(String, RedirectPath)> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<(String, RedirectPath)> {
    let columns: Vec<&str> = line.split_whitespace().collect();
    let [name, old_addr, old_size, _new_name, new_addr, new_size, active] =
        *columns.get(..REQUIRED_COLUMNS)?
    else {
        return None;
    };
    let well_formed = is_address(old_addr)
        && is_address(new_addr)
        && is_decimal(old_size)
        && is_decimal(new_size)
        && matches!(active, "0" | "1")
        && columns.get(REQUIRED_COLUMNS).is_none_or(|c| is_decimal(c));
    well_formed.then(|| {
        let path = RedirectPath::from_column(columns.get(REQUIRED_COLUMNS + 1).copied());
        (name.to_owned(), path)
    })
}

fn is_address(column: &str) -> bool {
    column
        .strip_prefix("0x")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_decimal(column: &str) -> bool {
    !column.is_empty() && column.bytes().all(|b| b.is_ascii_digit())
}

/// A patch's functions by redirect path, as `patchd status` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Redirect {
    /// Redirected by an ftrace direct call into the companion's trampoline.
    pub direct: Vec<String>,
    /// Redirected by the ftrace handler, the slower fallback: another
    /// ftrace user held the function, or the companion has `direct=0`.
    pub ftrace: Vec<String>,
    /// Not attached: the patch was never enabled.
    pub not_attached: Vec<String>,
    /// The companion module does not say (an older build).
    pub unknown: Vec<String>,
}

impl Redirect {
    /// Sorts parsed lines by path.
    pub fn from_paths(functions: Vec<(String, RedirectPath)>) -> Self {
        let mut redirect = Self::default();
        for (name, path) in functions {
            match path {
                RedirectPath::Direct => redirect.direct.push(name),
                RedirectPath::FtraceHandler => redirect.ftrace.push(name),
                RedirectPath::NotAttached => redirect.not_attached.push(name),
                RedirectPath::Unknown => redirect.unknown.push(name),
            }
        }
        redirect
    }

    /// Reads `patch`'s `functions` file; `None` when it cannot be read
    /// (no such patch, not root: the file is root-only) or lists no
    /// function. Never an error: status shows what it can.
    pub fn read(kernel: &dyn Kernel, patch: &str) -> Option<Self> {
        let text = kernel
            .read_patch_attribute(patch, PatchAttribute::Functions)
            .ok()??;
        let functions = parse_functions(&text);
        (!functions.is_empty()).then(|| Self::from_paths(functions))
    }

    /// Whether the file said how any function is redirected.
    pub fn is_known(&self) -> bool {
        !(self.direct.is_empty() && self.ftrace.is_empty() && self.not_attached.is_empty())
    }
}

/// `direct call (1), ftrace handler (1): cmdline_proc_show`: the count on
/// each path, the ftrace handler's functions named, last.
impl fmt::Display for Redirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = [
            ("direct call", &self.direct),
            ("not attached", &self.not_attached),
            ("path unknown", &self.unknown),
            ("ftrace handler", &self.ftrace),
        ];
        let mut first = true;
        for (label, names) in counts.into_iter().filter(|(_, n)| !n.is_empty()) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{label} ({})", names.len())?;
        }
        if !self.ftrace.is_empty() {
            write!(f, ": {}", self.ftrace.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "redirect_tests.rs"]
mod tests;
