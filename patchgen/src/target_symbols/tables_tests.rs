//! Decoding kallsyms tables written the way `scripts/kallsyms` writes them.

// The encoder narrows small test values into the tables' fixed-width
// fields as scripts/kallsyms' `.long`/`.byte` do.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

use super::*;

const RODATA: u64 = 0xffff_ffff_8200_0000;

/// How to write the synthetic tables.
#[derive(Clone, Copy)]
struct Style {
    config: KallsymsConfig,
    seqs: bool,
    encoding: LengthEncoding,
    /// Bytes of other data before the tables (not a multiple of 8 on purpose).
    before: usize,
    /// Where the offsets and the base go.
    placement: Placement,
}

const NEW_6_1: Style = Style {
    config: KallsymsConfig {
        base_relative: true,
        absolute_percpu: true,
    },
    seqs: true,
    encoding: LengthEncoding::Uleb128,
    before: 0x123,
    placement: Placement::BeforeCount,
};

/// 6.12: offsets and base after the token index, the sequences last.
const LINUX_6_12: Style = Style {
    placement: Placement::AfterTokenIndex,
    before: 0x35,
    ..NEW_6_1
};

fn pad8(out: &mut Vec<u8>) {
    while (RODATA + out.len() as u64) % 8 != 0 {
        out.push(0);
    }
}

/// Tokens: every byte used in the names stands for itself; the other codes
/// get two-character tokens, which the encoder uses where they fit.
fn token_table(names: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut used = [false; 256];
    for name in names {
        for &b in name {
            used[usize::from(b)] = true;
        }
    }
    for d in b'0'..=b'9' {
        used[usize::from(d)] = true;
    }
    let pairs: Vec<&[u8]> = vec![b"_s", b"ta", b"ic", b"en", b"__", b"er"];
    let mut next_pair = 0;
    (0..256)
        .map(|code| {
            if used[code] {
                vec![u8::try_from(code).expect("byte")]
            } else {
                next_pair += 1;
                pairs
                    .get(next_pair - 1)
                    .map_or_else(|| b"zz".to_vec(), |p| p.to_vec())
            }
        })
        .collect()
}

fn compress(name: &[u8], tokens: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < name.len() {
        let pair = tokens
            .iter()
            .position(|t| t.len() == 2 && name[at..].starts_with(t));
        match pair {
            Some(code) => {
                out.push(u8::try_from(code).expect("byte"));
                at += 2;
            }
            None => {
                out.push(name[at]);
                at += 1;
            }
        }
    }
    out
}

fn encode(entries: &[KallsymsEntry], style: Style) -> Vec<u8> {
    let names: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| {
            let mut n = vec![u8::try_from(e.letter).expect("ascii")];
            n.extend_from_slice(e.name.as_bytes());
            n
        })
        .collect();
    let tokens = token_table(&names);
    let mut out: Vec<u8> = (0..style.before).map(|i| (i * 7 % 251) as u8).collect();
    pad8(&mut out);
    let relative_base = entries
        .iter()
        .find(|e| e.letter != 'A')
        .map_or(0, |e| e.address);
    if style.placement == Placement::BeforeCount {
        address_table(&mut out, entries, style, relative_base);
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    pad8(&mut out);
    let names_start = out.len();
    let mut markers = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i % 256 == 0 {
            markers.push((out.len() - names_start) as u32);
        }
        let compressed = compress(name, &tokens);
        let len = compressed.len();
        if len > 0x7f && style.encoding == LengthEncoding::Uleb128 {
            out.push((len & 0x7f) as u8 | 0x80);
            out.push((len >> 7) as u8);
        } else {
            out.push(len as u8);
        }
        out.extend_from_slice(&compressed);
    }
    pad8(&mut out);
    for m in markers {
        out.extend_from_slice(&m.to_le_bytes());
    }
    pad8(&mut out);
    if style.seqs && style.placement == Placement::BeforeCount {
        seqs(&mut out, entries.len());
    }
    let mut index = Vec::new();
    let table_start = out.len();
    for token in &tokens {
        index.push((out.len() - table_start) as u16);
        out.extend_from_slice(token);
        out.push(0);
    }
    pad8(&mut out);
    for i in index {
        out.extend_from_slice(&i.to_le_bytes());
    }
    if style.placement == Placement::AfterTokenIndex {
        pad8(&mut out);
        address_table(&mut out, entries, style, relative_base);
        seqs(&mut out, entries.len());
    }
    out.extend_from_slice(b"rest of .rodata");
    out
}

fn seqs(out: &mut Vec<u8>, count: usize) {
    for i in 0..count {
        out.extend_from_slice(&[0, (i >> 8) as u8, i as u8]);
    }
    pad8(out);
}

/// The offsets (or addresses), then the base.
fn address_table(out: &mut Vec<u8>, entries: &[KallsymsEntry], style: Style, relative_base: u64) {
    for e in entries {
        if !style.config.base_relative {
            out.extend_from_slice(&e.address.to_le_bytes());
        } else if style.config.absolute_percpu && e.letter == 'A' {
            out.extend_from_slice(&(e.address as u32).to_le_bytes());
        } else if style.config.absolute_percpu {
            let offset = relative_base as i64 - e.address as i64 - 1;
            out.extend_from_slice(&(offset as i32).to_le_bytes());
        } else {
            out.extend_from_slice(&((e.address - relative_base) as u32).to_le_bytes());
        }
    }
    pad8(out);
    if style.config.base_relative {
        out.extend_from_slice(&relative_base.to_le_bytes());
        pad8(out);
    }
}

fn entries(count: usize) -> Vec<KallsymsEntry> {
    let mut out = vec![
        KallsymsEntry {
            address: 0,
            letter: 'A',
            name: "fixed_percpu_data".into(),
        },
        KallsymsEntry {
            address: 0x1000,
            letter: 'A',
            name: "static_percpu".into(),
        },
    ];
    for i in 0..count {
        out.push(KallsymsEntry {
            address: 0xffff_ffff_8100_0000 + 0x40 * i as u64,
            letter: if i % 3 == 0 { 'T' } else { 't' },
            name: format!("static_func_{}", i % 97),
        });
    }
    out.push(KallsymsEntry {
        address: 0xffff_ffff_8100_0000 + 0x40 * count as u64,
        letter: 't',
        name: format!("a_very_long_{}_name", "x".repeat(200)),
    });
    out
}

#[test]
fn decodes_the_6_1_stable_layout() {
    let want = entries(700);
    let rodata = encode(&want, NEW_6_1);
    let list = decode(&rodata, RODATA, NEW_6_1.config).expect("decodes");
    assert_eq!(list.entries(), want.as_slice());
    assert_eq!(list.same_named("static_func_5").len(), 8);
}

#[test]
fn decodes_the_6_12_layout() {
    let want = entries(700);
    let rodata = encode(&want, LINUX_6_12);
    let list = decode(&rodata, RODATA, LINUX_6_12.config).expect("decodes");
    assert_eq!(list.entries(), want.as_slice());
}

#[test]
fn decodes_older_and_other_layouts() {
    let short_names: Vec<KallsymsEntry> = entries(300)
        .into_iter()
        .filter(|e| e.name.len() < 100)
        .collect();
    let styles = [
        Style {
            seqs: false,
            encoding: LengthEncoding::Byte,
            ..NEW_6_1
        },
        Style {
            config: KallsymsConfig {
                base_relative: true,
                absolute_percpu: false,
            },
            before: 0x10,
            ..NEW_6_1
        },
        Style {
            config: KallsymsConfig {
                base_relative: false,
                absolute_percpu: false,
            },
            before: 0,
            ..NEW_6_1
        },
    ];
    for (i, style) in styles.into_iter().enumerate() {
        let want: Vec<KallsymsEntry> = if style.config.absolute_percpu {
            short_names.clone()
        } else {
            short_names
                .iter()
                .filter(|e| e.letter != 'A')
                .cloned()
                .collect()
        };
        let rodata = encode(&want, style);
        let list = decode(&rodata, RODATA, style.config).unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(list.entries(), want.as_slice(), "style {i}");
    }
}

#[test]
fn refuses_tables_that_do_not_fit_together() {
    let want = entries(600);
    let good = encode(&want, NEW_6_1);

    // A wrong marker: the names no longer check out.
    let mut bad = good.clone();
    let markers = find_marker_table(&good, want.len());
    bad[markers + 4] ^= 1;
    let error = decode(&bad, RODATA, NEW_6_1.config).expect_err("bad marker");
    assert!(error.contains("kallsyms_num_syms"), "{error}");

    // A broken token index.
    let mut bad = good.clone();
    let index = good.len() - b"rest of .rodata".len() - 512;
    bad[index + 2 * 0x41] ^= 1;
    let error = decode(&bad, RODATA, NEW_6_1.config).expect_err("bad index");
    assert!(error.contains("token table"), "{error}");

    // No tables at all.
    let error = decode(&[0u8; 4096], RODATA, NEW_6_1.config).expect_err("nothing");
    assert!(error.contains("token table"), "{error}");
}

/// The marker table's offset in `rodata`: right after the names.
fn find_marker_table(rodata: &[u8], count: usize) -> usize {
    let (token_table, _) = find_token_table(rodata, RODATA).expect("token table");
    let seqs = token_table - (3 * count).next_multiple_of(8);
    seqs - (4 * count.div_ceil(256)).next_multiple_of(8)
}
