//! Unit tables for symbol rewriting. Linking real objects compiled from C
//! is tested in `tests/link.rs`.

use super::*;
use crate::link::error::Candidate;

#[test]
fn rewriting_an_entry_sets_only_shndx_and_value() {
    let mut image = vec![0x11_u8; 64];
    write_absolute(&mut image, 16, 0xffff_ffff_8123_4560).expect("in bounds");
    let mut want = vec![0x11_u8; 64];
    want[16 + 6..16 + 8].copy_from_slice(&[0xf1, 0xff]);
    want[16 + 8..16 + 16].copy_from_slice(&0xffff_ffff_8123_4560_u64.to_le_bytes());
    assert_eq!(image, want);

    for offset in [41, 64, usize::MAX - 10, usize::MAX] {
        assert!(
            matches!(
                write_absolute(&mut image, offset, 1),
                Err(LinkError::Malformed { .. })
            ),
            "offset {offset}"
        );
    }
}

#[test]
fn candidates_display_type_object_and_position() {
    let candidate = Candidate {
        kind: 't',
        object: "ext4".to_owned(),
        sympos: 2,
    };
    assert_eq!(candidate.to_string(), "`t` in ext4 (position 2)");
}
