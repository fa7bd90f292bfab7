//! What patchgen knows of each kernel line it supports, in one place per
//! line: the special sections and how their entries are laid out, how to
//! measure those layouts in the target's headers, and the filters the
//! line's `scripts/mksysmap` and `scripts/kallsyms` apply to the symbol
//! table. A second line (Debian 13's 6.12, say) is a second module here
//! and one more entry in [`LINES`]; the differ, the build and the symbol
//! proofs take the line of their target instead of assuming 6.1.
//!
//! What does not depend on the line stays where it is used: the kallsyms
//! tables decoder (`target_symbols::tables`) accepts every layout variant
//! it has seen and checks each by its structure.

pub mod linux_6_1;
pub mod linux_6_12;

/// One special section: an array of fixed-size entries the kernel reads
/// (bug table, exception table, jump labels, alternatives, ORC, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialSection {
    /// The section's name in an object file.
    pub name: &'static str,
    /// The entry size in the line's x86-64 builds, used when it is not
    /// measured in the target's headers (`patchgen diff` on its own).
    pub entry_size: u64,
    /// The C expression that gives the entry size, compiled against the
    /// target's headers.
    pub measured_as: &'static str,
    /// The configuration option without which the structure does not exist.
    pub guard: Option<&'static str>,
}

impl SpecialSection {
    /// A special section's description (for the lines' tables).
    pub const fn new(
        name: &'static str,
        entry_size: u64,
        measured_as: &'static str,
        guard: Option<&'static str>,
    ) -> Self {
        Self {
            name,
            entry_size,
            measured_as,
            guard,
        }
    }
}

/// The absolute symbols `scripts/kallsyms` keeps (every line so far).
pub const KALLSYMS_KEPT_ABSOLUTE: [&str; 4] = [
    "__kernel_syscall_via_break",
    "__kernel_syscall_via_epc",
    "__kernel_sigtramp",
    "__gp",
];

/// A kernel line: a `major.minor` series and what patchgen knows of it.
#[derive(Debug)]
pub struct KernelLine {
    /// `major.minor`, e.g. `6.1`.
    pub version: &'static str,
    /// The special sections whose entries the differ keeps per function.
    pub special_sections: &'static [SpecialSection],
    /// The `#include` lines under which every `measured_as` compiles.
    pub measure_includes: &'static str,
    /// Whether `scripts/mksysmap` leaves `(name, type letter)` out of
    /// `System.map`, and so out of kallsyms.
    pub dropped_by_mksysmap: fn(&str, char) -> bool,
    /// Whether `scripts/kallsyms` (`is_ignored_symbol`) leaves it out.
    pub dropped_by_kallsyms: fn(&str, char) -> bool,
    /// Whether kbuild runs objtool only at the link of vmlinux.o and of
    /// each module (`delay-objtool`: IBT builds), so that a compiled
    /// object has no ORC, return sites, ENDBR seal list or `__pfx_`
    /// symbols of its own.
    pub objtool_at_link: bool,
}

/// Every line patchgen supports, oldest first.
pub const LINES: &[&KernelLine] = &[&linux_6_1::LINE, &linux_6_12::LINE];

/// The line used where no target says otherwise (`patchgen diff` without a
/// target): the pinned default kernel's.
pub const DEFAULT: &KernelLine = &linux_6_1::LINE;

impl KernelLine {
    /// The line of a kernel release such as `6.1.0-50-amd64` or `6.1.176`;
    /// `None` for a line patchgen does not know.
    pub fn of_release(release: &str) -> Option<&'static KernelLine> {
        let mut parts = release.split(['.', '-']);
        let (major, minor) = (parts.next()?, parts.next()?);
        LINES
            .iter()
            .copied()
            .find(|line| line.version.split_once('.') == Some((major, minor)))
    }

    /// Whether kallsyms lists `(name, letter)` from the symbol table: the
    /// line's `mksysmap` and `kallsyms` filters both keep it.
    pub fn lists_in_kallsyms(&self, name: &str, letter: char) -> bool {
        !(self.dropped_by_mksysmap)(name, letter) && !(self.dropped_by_kallsyms)(name, letter)
    }

    /// The special section called `name`, if the line has one.
    pub fn special_section(&self, name: &str) -> Option<&'static SpecialSection> {
        self.special_sections.iter().find(|s| s.name == name)
    }

    /// The versions of every supported line, for messages: `6.1, 6.12`.
    pub fn supported() -> String {
        LINES
            .iter()
            .map(|line| line.version)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_map_to_their_line() {
        for release in ["6.1.0-50-amd64", "6.1.176", "6.1"] {
            assert_eq!(
                KernelLine::of_release(release).map(|l| l.version),
                Some("6.1"),
                "{release}"
            );
        }
        for release in ["6.12.107+deb13-amd64", "6.12.118+deb13-cloud-amd64", "6.12"] {
            assert_eq!(
                KernelLine::of_release(release).map(|l| l.version),
                Some("6.12"),
                "{release}"
            );
        }
        for release in ["6.10.0", "5.10.0-30-amd64", "", "6", "six.one"] {
            assert!(KernelLine::of_release(release).is_none(), "{release}");
        }
    }

    #[test]
    fn every_line_measures_every_special_section_it_names() {
        for line in LINES {
            let mut names: Vec<&str> = line.special_sections.iter().map(|s| s.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                line.special_sections.len(),
                "{}: a section twice",
                line.version
            );
            for section in line.special_sections {
                assert!(section.entry_size > 0, "{}", section.name);
                assert!(
                    section.measured_as.starts_with("sizeof("),
                    "{}",
                    section.name
                );
            }
        }
    }
}
