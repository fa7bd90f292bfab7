//! Runtime constants (x86 `asm/runtime-const.h`, in 6.12): vmlinux code
//! reads a few values fixed at boot (`USER_PTR_MAX` in every `access_ok`,
//! the dentry hash table and shift) as instruction immediates, a
//! `movabs $0x0123456789abcdef, %reg` (or `shrl $12, %reg`) with an s32
//! entry in `runtime_ptr_SYM` (`runtime_shift_SYM`) by which boot code
//! writes the value in. The module loader never reads those tables, so code
//! shipped in a module would keep the placeholder. Module code reads the
//! variable instead (`runtime_const_ptr(sym)` is `(sym)` under `MODULE`);
//! the output does the same: each `movabs` of copied code becomes a
//! RIP-relative load of `SYM`, of the same length. A shift has no such form
//! and is refused. This must never leave a placeholder in emitted code.

use super::report::Refusal;
use super::targets::symbol_at;
use crate::elf::{ObjectFile, Reloc, Section};

/// The table of `runtime_const_ptr(SYM)` sites: `runtime_ptr_SYM`.
pub const PTR_TABLE: &str = "runtime_ptr_";
/// The table of `runtime_const_shift_right_32(v, SYM)` sites.
pub const SHIFT_TABLE: &str = "runtime_shift_";
/// The immediate the kernel's headers put in every pointer site.
pub const PLACEHOLDER: u64 = 0x0123_4567_89ab_cdef;
/// The length of the `movabs` and of its replacement.
pub const SITE_LEN: usize = 10;
/// Where the replacement's disp32 (relocated against `SYM`) starts.
pub const DISP_AT: u64 = 3;

/// Whether a section is a table of runtime-constant sites.
pub fn is_table(name: &str) -> bool {
    name.starts_with(PTR_TABLE) || name.starts_with(SHIFT_TABLE)
}

/// The replacement of `movabs $PLACEHOLDER, %reg` (`REX.W B8+r imm64`):
/// `mov 0(%rip), %reg` (`REX.W 8B /r`, disp32 at [`DISP_AT`], to be
/// relocated `R_X86_64_PC32 SYM-4`) and `nopl (%rax)`. None when `site` is
/// not that instruction.
pub fn load_for(site: &[u8]) -> Option<[u8; SITE_LEN]> {
    let (&rex, rest) = site.split_first()?;
    let (&op, imm) = rest.split_first()?;
    let imm: [u8; 8] = imm.try_into().ok()?;
    if !matches!(rex, 0x48 | 0x49) || !(0xb8..=0xbf).contains(&op) {
        return None;
    }
    if u64::from_le_bytes(imm) != PLACEHOLDER {
        return None;
    }
    // The register: op's low bits, extended by REX.B; in the load it is
    // ModRM.reg, extended by REX.R. ModRM mod 00 r/m 101 is RIP-relative.
    let rex_r = (rex & 1) << 2;
    let modrm = 0x05 | ((op - 0xb8) << 3);
    Some([0x48 | rex_r, 0x8b, modrm, 0, 0, 0, 0, 0x0f, 0x1f, 0x00])
}

/// A pointer site of copied code and its replacement.
#[derive(Debug)]
pub struct Site<'a> {
    /// The fixed object's text section holding it.
    pub text: usize,
    /// The offset of the `movabs` in it.
    pub at: u64,
    /// The bytes that replace it.
    pub load: [u8; SITE_LEN],
    /// The variable to load (`SYM` of `runtime_ptr_SYM`).
    pub variable: &'a str,
}

/// The site that entry `r` of `table` (`.long imm - .`: the addend is the
/// immediate's offset in its section) designates, or why it is refused.
pub fn site<'a>(fixed: &ObjectFile, table: &'a Section, r: &Reloc) -> Result<Site<'a>, Refusal> {
    let target = fixed.symbols.get(r.symbol);
    let text = target.and_then(|t| t.section);
    let imm = target.and_then(|t| t.value.checked_add_signed(r.addend));
    let function = text
        .zip(imm.and_then(|o| i64::try_from(o).ok()))
        .and_then(|(sec, o)| symbol_at(fixed, sec, o))
        .map_or_else(|| "code".to_string(), |f| f.name.clone());
    let refuse = |why: &str| Refusal::runtime_constant(&table.name, &function, why);
    let Some(variable) = table.name.strip_prefix(PTR_TABLE) else {
        return Err(refuse("a shift count has no load of the same length"));
    };
    let len = SITE_LEN as u64;
    // The immediate follows REX.W and the opcode; no relocation may touch
    // the instruction.
    let at = imm.and_then(|i| i.checked_sub(2));
    let unrelocated = |sec: usize, at: u64| {
        let end = at.saturating_add(len);
        !fixed.sections[sec]
            .relocs
            .iter()
            .any(|x| x.offset.saturating_add(u64::from(x.size)) > at && x.offset < end)
    };
    let found = text.zip(at).filter(|&(sec, at)| unrelocated(sec, at));
    let load = found
        .and_then(|(sec, at)| fixed.bytes(sec, at, len))
        .and_then(load_for);
    match (found, load) {
        (Some((text, at)), Some(load)) => Ok(Site {
            text,
            at,
            load,
            variable,
        }),
        _ => Err(refuse("not the movabs of the placeholder")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn movabs(rex: u8, op: u8) -> Vec<u8> {
        let mut v = vec![rex, op];
        v.extend_from_slice(&PLACEHOLDER.to_le_bytes());
        v
    }

    #[test]
    fn a_movabs_becomes_a_rip_relative_load_of_the_same_register() {
        // movabs $.., %rax -> mov 0(%rip), %rax; nopl (%rax)
        assert_eq!(
            load_for(&movabs(0x48, 0xb8)),
            Some([0x48, 0x8b, 0x05, 0, 0, 0, 0, 0x0f, 0x1f, 0x00])
        );
        // %rdx (2)
        assert_eq!(load_for(&movabs(0x48, 0xba)).map(|l| l[2]), Some(0x15));
        // %r12 (REX.B + 4) -> REX.R, reg 4
        assert_eq!(
            load_for(&movabs(0x49, 0xbc)).map(|l| (l[0], l[2])),
            Some((0x4c, 0x25))
        );
        // %r15
        assert_eq!(
            load_for(&movabs(0x49, 0xbf)).map(|l| (l[0], l[2])),
            Some((0x4c, 0x3d))
        );
    }

    #[test]
    fn anything_else_is_not_rewritten() {
        let mut other_imm = movabs(0x48, 0xb8);
        other_imm[2] ^= 1;
        assert_eq!(load_for(&other_imm), None);
        // 32-bit mov (no REX.W), a different opcode, a short slice.
        assert_eq!(load_for(&movabs(0x40, 0xb8)), None);
        assert_eq!(load_for(&movabs(0x48, 0x8b)), None);
        assert_eq!(load_for(&movabs(0x48, 0xb8)[..9]), None);
    }
}
