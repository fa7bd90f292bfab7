//! Linux 6.12 on x86-64, as Debian 13 (trixie) builds it: gcc-14,
//! `CONFIG_X86_KERNEL_IBT` (ENDBR at function entries, objtool deferred to
//! the link of vmlinux.o and of each module), `CONFIG_CALL_PADDING` with
//! 16 bytes of padding before each function (`-fpatchable-function-entry`,
//! `__pfx_` symbols made by objtool at link), call depth tracking and
//! return thunks.

use super::{KernelLine, SpecialSection};

/// The 6.12 line.
pub const LINE: KernelLine = KernelLine {
    version: "6.12",
    special_sections: SPECIAL_SECTIONS,
    measure_includes: MEASURE_INCLUDES,
    dropped_by_mksysmap,
    dropped_by_kallsyms,
    objtool_at_link: true,
};

/// The special sections of 6.12 x86-64 objects and modules. Sizes from the
/// structures of Debian 13's headers: struct bug_entry with relative
/// pointers and BUGVERBOSE (12), exception_table_entry (12), jump_entry
/// (16), alt_instr, packed, with a 32-bit feature and flags word (14),
/// static_call_site (8), s32 site lists (4), __mcount_loc and
/// __patchable_function_entries addresses (8), ORC ip (4) and orc_entry (6).
/// Paravirt patch sites are gone (paravirt calls are alternatives), and
/// `.cfi_sites` exists only with FineIBT (clang), which Debian does not
/// build. The objtool-made ones (ORC, the site lists) are in a compiled
/// object only after objtool ran on it, which for this line is at link.
const SPECIAL_SECTIONS: &[SpecialSection] = &[
    SpecialSection::new(
        "__bug_table",
        12,
        "sizeof(struct bug_entry)",
        Some("CONFIG_GENERIC_BUG"),
    ),
    SpecialSection::new(
        "__ex_table",
        12,
        "sizeof(struct exception_table_entry)",
        None,
    ),
    SpecialSection::new(
        "__jump_table",
        16,
        "sizeof(struct jump_entry)",
        Some("CONFIG_JUMP_LABEL"),
    ),
    SpecialSection::new(".altinstructions", 14, "sizeof(struct alt_instr)", None),
    SpecialSection::new(
        ".static_call_sites",
        8,
        "sizeof(struct static_call_site)",
        Some("CONFIG_HAVE_STATIC_CALL_INLINE"),
    ),
    SpecialSection::new(".retpoline_sites", 4, "sizeof(s32)", None),
    SpecialSection::new(".return_sites", 4, "sizeof(s32)", None),
    SpecialSection::new(".call_sites", 4, "sizeof(s32)", None),
    SpecialSection::new(".ibt_endbr_seal", 4, "sizeof(s32)", None),
    SpecialSection::new(".smp_locks", 4, "sizeof(s32)", None),
    SpecialSection::new("__mcount_loc", 8, "sizeof(unsigned long)", None),
    SpecialSection::new(
        "__patchable_function_entries",
        8,
        "sizeof(unsigned long)",
        None,
    ),
    SpecialSection::new(".orc_unwind_ip", 4, "sizeof(s32)", None),
    SpecialSection::new(
        ".orc_unwind",
        6,
        "sizeof(struct orc_entry)",
        Some("CONFIG_UNWINDER_ORC"),
    ),
];

/// The headers that declare every structure above.
const MEASURE_INCLUDES: &str = "#include <linux/kbuild.h>\n#include <linux/types.h>\n\
    #include <linux/bug.h>\n#include <linux/jump_label.h>\n#include <linux/static_call_types.h>\n\
    #include <asm/extable.h>\n#include <asm/alternative.h>\n#include <asm/bug.h>\n\
    #ifdef CONFIG_UNWINDER_ORC\n#include <asm/orc_types.h>\n#endif\n";

/// `scripts/mksysmap`'s filter (6.12), applied to `nm -n` lines.
pub fn dropped_by_mksysmap(name: &str, letter: char) -> bool {
    const PREFIXES: [&str; 13] = [
        "$",
        ".L",
        "__efistub_",
        "__pi_$",
        "__pi_.L",
        "__kvm_nvhe_$",
        "__kvm_nvhe_.L",
        "__kcfi_typeid_",
        "__kvm_nvhe___kcfi_typeid_",
        "__pi___kcfi_typeid_",
        "__crc_",
        "__kstrtab_",
        "__kstrtabns_",
    ];
    const SUFFIXES: [&str; 3] = ["_from_arm", "_from_thumb", "_veneer"];
    const NAMES: [&str; 3] = ["L0", "_SDA_BASE_", "_SDA2_BASE_"];
    const INFIXES: [&str; 2] = [".long_branch.", ".plt_branch."];
    matches!(letter, 'a' | 'N' | 'U' | 'w')
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || is_thunk(name)
        || SUFFIXES.iter().any(|s| name.ends_with(s))
        || NAMES.contains(&name)
        || INFIXES.iter().any(|m| name.contains(m))
}

/// `/ __[[:alnum:]]*Thunk_/`: `__`, letters and digits, then `Thunk_`
/// (ARM linker thunks).
fn is_thunk(name: &str) -> bool {
    name.strip_prefix("__").is_some_and(|rest| {
        rest.char_indices()
            .take_while(|(_, c)| c.is_ascii_alphanumeric())
            .any(|(i, _)| rest[i..].starts_with("Thunk_"))
    })
}

/// `scripts/kallsyms`' `is_ignored_symbol` (6.12): everything else moved to
/// `scripts/mksysmap`.
pub fn dropped_by_kallsyms(name: &str, letter: char) -> bool {
    matches!(letter, 'u' | 'n')
        || (letter.eq_ignore_ascii_case(&'a') && !super::KALLSYMS_KEPT_ABSOLUTE.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_follow_the_scripts_of_6_12() {
        for (name, letter) in [
            ("__pfx_cmdline_proc_show", 't'),
            ("cmdline_proc_show", 't'),
            ("__x86_return_thunk", 'T'),
            ("jiffies", 'D'),
            ("__gp", 'A'),
        ] {
            assert!(LINE.lists_in_kallsyms(name, letter), "{name} {letter}");
        }
        for (name, letter) in [
            ("__crc_printk", 'A'),
            (".LC0", 't'),
            ("__kstrtab_printk", 'r'),
            ("__ARMV7PILongThunk_foo", 't'),
            ("__pi___kcfi_typeid_x", 'A'),
            ("weak_thing", 'w'),
            ("abs_thing", 'A'),
            ("L0", 't'),
            ("x.long_branch.y", 't'),
        ] {
            assert!(!LINE.lists_in_kallsyms(name, letter), "{name} {letter}");
        }
    }
}
