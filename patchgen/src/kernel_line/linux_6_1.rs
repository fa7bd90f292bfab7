//! Linux 6.1 on x86-64, as Debian 12 (bookworm) builds it.

use super::{KernelLine, SpecialSection};

/// The 6.1 line.
pub const LINE: KernelLine = KernelLine {
    version: "6.1",
    special_sections: SPECIAL_SECTIONS,
    measure_includes: MEASURE_INCLUDES,
    dropped_by_mksysmap,
    dropped_by_kallsyms,
    objtool_at_link: false,
};

/// The special sections of 6.1 x86-64 objects. Sizes from the structures
/// of Debian 12's headers: struct bug_entry with relative pointers and
/// BUGVERBOSE (12), exception_table_entry {insn, fixup, data} (12),
/// jump_entry {s32 code, s32 target, long key} (16), alt_instr (12),
/// static_call_site (8), s32 site lists (4), paravirt_patch_site {u8 *instr;
/// u8 type; u8 len} (16), __mcount_loc addresses (8), ORC ip (4) and
/// orc_entry (6).
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
    SpecialSection::new(".altinstructions", 12, "sizeof(struct alt_instr)", None),
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
    SpecialSection::new(
        ".parainstructions",
        16,
        "sizeof(struct paravirt_patch_site)",
        Some("CONFIG_PARAVIRT"),
    ),
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
    #ifdef CONFIG_UNWINDER_ORC\n#include <asm/orc_types.h>\n#endif\n\
    #ifdef CONFIG_PARAVIRT\n#include <asm/paravirt_types.h>\n#endif\n";

/// `scripts/mksysmap`'s filter (6.1).
pub fn dropped_by_mksysmap(name: &str, letter: char) -> bool {
    matches!(letter, 'a' | 'N' | 'U' | 'w')
        || ["$", ".L", "__crc_", "__kstrtab_", "__kstrtabns_"]
            .iter()
            .any(|p| name.starts_with(p))
        || name == "L0"
}

/// `scripts/kallsyms`' `is_ignored_symbol` (6.1).
pub fn dropped_by_kallsyms(name: &str, letter: char) -> bool {
    const NAMES: [&str; 11] = [
        "kallsyms_addresses",
        "kallsyms_offsets",
        "kallsyms_relative_base",
        "kallsyms_num_syms",
        "kallsyms_names",
        "kallsyms_markers",
        "kallsyms_token_table",
        "kallsyms_token_index",
        "kallsyms_seqs_of_names",
        "_SDA_BASE_",
        "_SDA2_BASE_",
    ];
    const PREFIXES: [&str; 10] = [
        "__efistub_",
        "__kvm_nvhe_$",
        "__kvm_nvhe_.L",
        "__AArch64ADRPThunk_",
        "__ARMV5PILongThunk_",
        "__ARMV7PILongThunk_",
        "__ThumbV7PILongThunk_",
        "__LA25Thunk_",
        "__microLA25Thunk_",
        "__kcfi_typeid_",
    ];
    const SUFFIXES: [&str; 3] = ["_from_arm", "_from_thumb", "_veneer"];
    const INFIXES: [&str; 2] = [".long_branch.", ".plt_branch."];
    NAMES.contains(&name)
        || PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
        || INFIXES.iter().any(|m| name.contains(m))
        || matches!(letter, 'U' | 'u' | 'N' | 'n')
        || (letter.eq_ignore_ascii_case(&'a') && !super::KALLSYMS_KEPT_ABSOLUTE.contains(&name))
}
