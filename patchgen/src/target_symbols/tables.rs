//! Decoding the kallsyms tables of a kernel image: the exact list of
//! (address, type, name), in order, that the kernel prints as the vmlinux
//! part of `/proc/kallsyms`.
//!
//! Linux 6.1's `scripts/kallsyms` writes into `.rodata`, each table behind
//! an 8-byte aligned label, in this order (6.12 moves the offsets and the
//! base after the token index, and always writes offsets: see below):
//!
//! | table | content |
//! | --- | --- |
//! | `kallsyms_offsets` | N × s32 (base-relative) — or `kallsyms_addresses`, N × u64 |
//! | `kallsyms_relative_base` | u64 (base-relative only) |
//! | `kallsyms_num_syms` | u32 N |
//! | `kallsyms_names` | N × (length, then that many token bytes); the length is ULEB128 of at most two bytes since the 512-byte names, one byte before |
//! | `kallsyms_markers` | ⌈N/256⌉ × u32: offset of every 256th name |
//! | `kallsyms_seqs_of_names` | N × 3 bytes (newer 6.1 stable releases only) |
//! | `kallsyms_token_table` | 256 NUL-terminated tokens |
//! | `kallsyms_token_index` | 256 × u16: offset of each token |
//!
//! Linux 6.12 writes `kallsyms_num_syms`, `kallsyms_names`,
//! `kallsyms_markers`, `kallsyms_token_table`, `kallsyms_token_index`, then
//! `kallsyms_offsets`, `kallsyms_relative_base` and `kallsyms_seqs_of_names`.
//!
//! A name expands to its type letter followed by the symbol name. The image
//! has no symbols that say where the tables are, so they are found by their
//! structure, and accepted only when every part fits: the token index
//! matches the token table, the names walk exactly to the markers, every
//! marker is right, the markers (and sequence table) end exactly at the
//! token table, and the decoded addresses are sorted. Both places of the
//! address table are tried; exactly one must give sorted addresses.

use std::path::Path;

use object::read::elf::ElfFile64;
use object::{Object, ObjectSection};

use super::kallsyms::{KallsymsEntry, KallsymsList};
use super::{KallsymsConfig, SymbolSourceError};

/// Largest symbol count accepted (6.1 amd64 has about 94,000).
pub const MAX_SYMBOLS: u32 = 1 << 22;

/// The vmlinux kallsyms list and GNU build-id of the decompressed kernel
/// `elf` (from the image at `path`).
pub fn read_kallsyms(
    path: &Path,
    elf: &[u8],
    config: KallsymsConfig,
) -> Result<(KallsymsList, Option<Vec<u8>>), SymbolSourceError> {
    let elf_error = |what: String| SymbolSourceError::Elf {
        path: path.to_path_buf(),
        what,
    };
    let file = ElfFile64::<object::Endianness>::parse(elf).map_err(|e| elf_error(e.to_string()))?;
    let build_id = file
        .build_id()
        .map_err(|e| elf_error(format!("its build-id note: {e}")))?
        .map(<[u8]>::to_vec);
    let rodata = file
        .section_by_name(".rodata")
        .ok_or_else(|| elf_error("it has no .rodata section".to_string()))?;
    let data = rodata
        .data()
        .map_err(|e| elf_error(format!(".rodata: {e}")))?;
    let list =
        decode(data, rodata.address(), config).map_err(|what| SymbolSourceError::Tables {
            path: path.to_path_buf(),
            what,
        })?;
    Ok((list, build_id))
}

/// How a name's length is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LengthEncoding {
    /// ULEB128, one or two bytes (6.1 stable with 512-byte names).
    Uleb128,
    /// One byte (before).
    Byte,
}

/// The tables found in `.rodata` (offsets into it).
#[derive(Debug)]
struct Layout {
    count: usize,
    num_syms: usize,
    names: usize,
    encoding: LengthEncoding,
    tokens: Vec<Vec<u8>>,
    /// The end of `kallsyms_token_index`.
    after_index: usize,
}

/// Where the address (or offset) table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Before `kallsyms_num_syms`, the base between them (6.1 and before).
    BeforeCount,
    /// After `kallsyms_token_index`, then the base (6.12).
    AfterTokenIndex,
}

/// Decodes the tables inside `rodata` (loaded at `address`).
pub fn decode(rodata: &[u8], address: u64, config: KallsymsConfig) -> Result<KallsymsList, String> {
    let (token_table, tokens) = find_token_table(rodata, address)?;
    let layout = find_names(rodata, address, token_table, tokens)?;
    let mut sorted = Vec::new();
    let mut first_error = None;
    for placement in [Placement::BeforeCount, Placement::AfterTokenIndex] {
        match decode_entries(rodata, address, &layout, config, placement) {
            Ok(entries) if entries.windows(2).all(|w| w[0].address <= w[1].address) => {
                sorted.push(entries);
            }
            Ok(_) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match sorted.len() {
        1 => Ok(KallsymsList::new(sorted.remove(0))),
        0 => Err(first_error.map_or_else(
            || "the decoded addresses are not sorted".to_string(),
            |e| format!("the decoded addresses are not sorted ({e})"),
        )),
        _ => Err("the address table fits in two places".to_string()),
    }
}

fn align8(address: u64, offset: usize) -> Option<usize> {
    let at = address.checked_add(u64::try_from(offset).ok()?)?;
    let pad = (8 - at % 8) % 8;
    offset.checked_add(usize::try_from(pad).ok()?)
}

fn is_aligned(address: u64, offset: usize) -> bool {
    align8(address, offset) == Some(offset)
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The NUL-terminated string at `at`: (its bytes, the offset after the NUL).
fn c_string(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(at..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some((rest.get(..len)?, at.checked_add(len)?.checked_add(1)?))
}

/// Finds the token table by the tokens of the digits, which every kernel's
/// names use as single characters ("0\01\0...9\0"), then checks it against
/// the index that follows it. Returns its offset and the tokens.
fn find_token_table(rodata: &[u8], address: u64) -> Result<(usize, Vec<Vec<u8>>), String> {
    const DIGITS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
    let mut found: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    let mut from = 0;
    while let Some(pos) = rodata
        .get(from..)
        .and_then(|rest| rest.windows(DIGITS.len()).position(|w| w == DIGITS))
    {
        let digits = from + pos;
        from = digits + 1;
        if let Some(table) = token_table_at(rodata, address, digits) {
            found.push(table);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("no token table (kallsyms_token_table) was found".to_string()),
        n => Err(format!("{n} places look like the token table")),
    }
}

/// The token table whose token for `'0'` is at `digits`, if the index after
/// it confirms every token.
fn token_table_at(rodata: &[u8], address: u64, digits: usize) -> Option<(usize, Vec<Vec<u8>>)> {
    let mut end = digits;
    for _ in usize::from(b'0')..256 {
        end = c_string(rodata, end)?.1;
    }
    let index = align8(address, end)?;
    let offsets: Vec<usize> = (0..256)
        .map(|i| u16_at(rodata, index.checked_add(2 * i)?).map(usize::from))
        .collect::<Option<_>>()?;
    let table = digits.checked_sub(*offsets.get(usize::from(b'0'))?)?;
    if offsets.first() != Some(&0) || !is_aligned(address, table) {
        return None;
    }
    let mut tokens = Vec::with_capacity(256);
    let mut next = table;
    for &offset in &offsets {
        if table.checked_add(offset)? != next {
            return None;
        }
        let (token, after) = c_string(rodata, next)?;
        if token.is_empty() {
            return None;
        }
        tokens.push(token.to_vec());
        next = after;
    }
    (next == end).then_some((table, tokens))
}

/// Reads the length of the name at `at`: (length, offset of its bytes).
fn name_length(rodata: &[u8], at: usize, encoding: LengthEncoding) -> Option<(usize, usize)> {
    let first = *rodata.get(at)?;
    match encoding {
        LengthEncoding::Uleb128 if first & 0x80 != 0 => {
            let second = *rodata.get(at.checked_add(1)?)?;
            if second == 0 || second & 0x80 != 0 {
                return None;
            }
            let len = usize::from(first & 0x7f) | (usize::from(second) << 7);
            Some((len, at.checked_add(2)?))
        }
        _ if first == 0 => None,
        _ => Some((usize::from(first), at.checked_add(1)?)),
    }
}

/// Finds `kallsyms_num_syms` before the token table: the one place from
/// which `N` names walk exactly to markers that are all right and end
/// (with the sequence table, if any) exactly at the token table.
fn find_names(
    rodata: &[u8],
    address: u64,
    token_table: usize,
    tokens: Vec<Vec<u8>>,
) -> Result<Layout, String> {
    let mut found: Vec<(usize, LengthEncoding)> = Vec::new();
    let first = align8(address, 0).ok_or("the section address overflows")?;
    for num_syms in (first..token_table).step_by(8) {
        let Some(count) = u32_at(rodata, num_syms) else {
            break;
        };
        if count == 0 || count > MAX_SYMBOLS || u32_at(rodata, num_syms + 4) != Some(0) {
            continue;
        }
        let Ok(count) = usize::try_from(count) else {
            continue;
        };
        for encoding in [LengthEncoding::Uleb128, LengthEncoding::Byte] {
            if names_fit(rodata, address, num_syms, count, token_table, encoding) {
                found.push((num_syms, encoding));
                break;
            }
        }
    }
    let table_bytes: usize = tokens.iter().map(|t| t.len() + 1).sum();
    let after_index = align8(address, token_table + table_bytes)
        .and_then(|index| index.checked_add(2 * 256))
        .ok_or("the token index overflows")?;
    match found.as_slice() {
        [(num_syms, encoding)] => Ok(Layout {
            count: usize::try_from(u32_at(rodata, *num_syms).unwrap_or(0)).unwrap_or(0),
            num_syms: *num_syms,
            names: num_syms + 8,
            encoding: *encoding,
            tokens,
            after_index,
        }),
        [] => Err("no symbol count and name table (kallsyms_num_syms, kallsyms_names) fit before the token table".to_string()),
        many => Err(format!("{} places fit as the symbol count", many.len())),
    }
}

fn names_fit(
    rodata: &[u8],
    address: u64,
    num_syms: usize,
    count: usize,
    token_table: usize,
    encoding: LengthEncoding,
) -> bool {
    let Some(names) = num_syms.checked_add(8) else {
        return false;
    };
    let mut markers = Vec::with_capacity(count.div_ceil(256));
    let mut at = names;
    for i in 0..count {
        if i % 256 == 0 {
            markers.push(at - names);
        }
        let Some((len, bytes)) = name_length(rodata, at, encoding) else {
            return false;
        };
        match bytes.checked_add(len) {
            Some(end) if end <= token_table => at = end,
            _ => return false,
        }
    }
    let Some(marker_table) = align8(address, at) else {
        return false;
    };
    for (k, &offset) in markers.iter().enumerate() {
        let stored = marker_table
            .checked_add(4 * k)
            .and_then(|p| u32_at(rodata, p));
        if stored.and_then(|s| usize::try_from(s).ok()) != Some(offset) {
            return false;
        }
    }
    let Some(after) = marker_table
        .checked_add(4 * markers.len())
        .and_then(|end| align8(address, end))
    else {
        return false;
    };
    let with_seqs = after
        .checked_add(3 * count)
        .and_then(|end| align8(address, end));
    after == token_table || with_seqs == Some(token_table)
}

/// Where the address (or offset) table and the base are, if they fit in
/// `rodata_len` bytes: each label is aligned, and the next label follows
/// after padding.
fn address_tables(
    address: u64,
    layout: &Layout,
    config: KallsymsConfig,
    placement: Placement,
    rodata_len: usize,
) -> Option<(usize, Option<usize>)> {
    let count = layout.count;
    match placement {
        Placement::BeforeCount if !config.base_relative => {
            Some((layout.num_syms.checked_sub(count.checked_mul(8)?)?, None))
        }
        Placement::BeforeCount => {
            let base = layout.num_syms.checked_sub(8)?;
            let unaligned = base.checked_sub(count.checked_mul(4)?)?;
            let at = address.checked_add(u64::try_from(unaligned).ok()?)?;
            let table = unaligned.checked_sub(usize::try_from(at % 8).ok()?)?;
            Some((table, Some(base)))
        }
        // 6.12 writes offsets only.
        Placement::AfterTokenIndex => {
            let table = align8(address, layout.after_index)?;
            let base = align8(address, table.checked_add(count.checked_mul(4)?)?)?;
            let seqs_end = base.checked_add(8)?.checked_add(count.checked_mul(3)?)?;
            (seqs_end <= rodata_len).then_some((table, Some(base)))
        }
    }
}

fn decode_entries(
    rodata: &[u8],
    address: u64,
    layout: &Layout,
    config: KallsymsConfig,
    placement: Placement,
) -> Result<Vec<KallsymsEntry>, String> {
    let cut = || "the tables are cut off".to_string();
    let (table, base) =
        address_tables(address, layout, config, placement, rodata.len()).ok_or_else(cut)?;
    let relative_base = match base {
        Some(at) => Some(u64_at(rodata, at).ok_or_else(cut)?),
        None => None,
    };
    let mut entries = Vec::with_capacity(layout.count);
    let mut at = layout.names;
    let mut expanded = Vec::with_capacity(64);
    for i in 0..layout.count {
        let (len, bytes) = name_length(rodata, at, layout.encoding).ok_or_else(cut)?;
        let end = bytes.checked_add(len).ok_or_else(cut)?;
        expanded.clear();
        for &token in rodata.get(bytes..end).ok_or_else(cut)? {
            expanded.extend_from_slice(&layout.tokens[usize::from(token)]);
        }
        at = end;
        let (&letter, name) = expanded
            .split_first()
            .ok_or_else(|| format!("symbol {i} has an empty name"))?;
        let address = match relative_base {
            Some(base) => {
                let raw = u32_at(rodata, table + 4 * i).ok_or_else(cut)?;
                let offset = i32::from_le_bytes(raw.to_le_bytes());
                if !config.absolute_percpu {
                    base.checked_add(u64::from(raw))
                } else if offset >= 0 {
                    u64::try_from(offset).ok()
                } else {
                    // Negative offsets count down from base - 1.
                    let below = u64::try_from(-1_i64 - i64::from(offset)).ok();
                    below.and_then(|b| base.checked_add(b))
                }
                .ok_or_else(|| format!("symbol {i}'s address overflows"))?
            }
            None => u64_at(rodata, table + 8 * i).ok_or_else(cut)?,
        };
        entries.push(KallsymsEntry {
            address,
            letter: char::from(letter),
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
#[path = "tables_tests.rs"]
mod tests;
