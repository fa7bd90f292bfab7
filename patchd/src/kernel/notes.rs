//! The running kernel's identity: its release and the GNU build-id of its
//! vmlinux, read from `/sys/kernel/notes`, which holds the kernel's ELF
//! notes back to back (the `.notes` section of vmlinux).
//!
//! A bundle names the exact kernel build it was made for; patchd compares
//! both before anything is loaded. The notes come from the kernel, but are
//! parsed like any untrusted bytes: every size is checked.

use std::path::PathBuf;

use super::{Kernel, KernelError};

/// `NT_GNU_BUILD_ID`.
const NT_GNU_BUILD_ID: u32 = 3;
/// The owner name of GNU notes, with its NUL.
const GNU_NAME: &[u8] = b"GNU\0";
/// Size of an ELF note header: `n_namesz`, `n_descsz`, `n_type`.
const NOTE_HEADER: usize = 12;
/// Where the notes are, for error messages.
const NOTES_PATH: &str = "/sys/kernel/notes";

/// Which kernel build is running.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelIdentity {
    /// `uname -r`.
    pub release: String,
    /// The GNU build-id of vmlinux, lowercase hex.
    pub build_id: String,
}

/// The GNU build-id in a sequence of ELF notes (4-byte aligned names and
/// descriptors, as on x86-64), lowercase hex; `Ok(None)` if there is none.
pub fn gnu_build_id(notes: &[u8]) -> Result<Option<String>, &'static str> {
    let mut offset = 0usize;
    while offset < notes.len() {
        let rest = notes.get(offset..).unwrap_or_default();
        if rest.len() < NOTE_HEADER {
            // The section may end in alignment padding; anything else is
            // a note cut short.
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            return Err("a note header is cut short");
        }
        let word = |at: usize| -> Result<u32, &'static str> {
            let bytes: [u8; 4] = rest
                .get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or("a note header is cut short")?;
            Ok(u32::from_ne_bytes(bytes))
        };
        let namesz = usize::try_from(word(0)?).map_err(|_| "a note name size overflows")?;
        let descsz = usize::try_from(word(4)?).map_err(|_| "a note size overflows")?;
        let kind = word(8)?;
        let name_start = NOTE_HEADER;
        let desc_start = align4(name_start.checked_add(namesz)).ok_or("a note name overflows")?;
        let desc_end = desc_start
            .checked_add(descsz)
            .ok_or("a note descriptor overflows")?;
        let name = rest
            .get(name_start..name_start + namesz)
            .ok_or("a note name runs past the end")?;
        let desc = rest
            .get(desc_start..desc_end)
            .ok_or("a note descriptor runs past the end")?;
        if kind == NT_GNU_BUILD_ID && name == GNU_NAME {
            if desc.is_empty() {
                return Err("the GNU build-id note is empty");
            }
            return Ok(Some(desc.iter().map(|b| format!("{b:02x}")).collect()));
        }
        let next = align4(Some(desc_end)).ok_or("a note descriptor overflows")?;
        offset = offset.checked_add(next).ok_or("the notes overflow")?;
    }
    Ok(None)
}

fn align4(value: Option<usize>) -> Option<usize> {
    value?.checked_add(3).map(|v| v & !3)
}

/// The running kernel's release and build-id.
pub fn running_identity(kernel: &dyn Kernel) -> Result<KernelIdentity, KernelError> {
    let release = kernel.os_release()?;
    let notes = kernel.kernel_notes()?;
    let path = PathBuf::from(NOTES_PATH);
    let build_id = gnu_build_id(&notes)
        .map_err(|reason| KernelError::Notes {
            path: path.clone(),
            reason,
        })?
        .ok_or(KernelError::NoBuildId { path })?;
    Ok(KernelIdentity { release, build_id })
}

/// Encodes one note as the kernel lays it out (tests and the fake kernel).
#[cfg(any(test, feature = "fake-kernel"))]
pub(crate) fn encode_note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
    let size = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut note = Vec::new();
    note.extend_from_slice(&size(name.len()).to_ne_bytes());
    note.extend_from_slice(&size(desc.len()).to_ne_bytes());
    note.extend_from_slice(&kind.to_ne_bytes());
    note.extend_from_slice(name);
    while note.len() % 4 != 0 {
        note.push(0);
    }
    note.extend_from_slice(desc);
    while note.len() % 4 != 0 {
        note.push(0);
    }
    note
}

/// `/sys/kernel/notes` of a kernel with this build-id (hex), between the
/// other notes a Debian kernel has.
#[cfg(any(test, feature = "fake-kernel"))]
pub(crate) fn notes_with_build_id(build_id_hex: &str) -> Vec<u8> {
    let desc: Vec<u8> = (0..build_id_hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(build_id_hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let mut notes = encode_note(b"Xen\0", 18, &[0, 0xfe, 0x78, 0x03, 0, 0, 0, 0]);
    notes.extend(encode_note(b"Linux\0", 0x100, b"6.1.0\0"));
    notes.extend(encode_note(GNU_NAME, NT_GNU_BUILD_ID, &desc));
    notes.extend(encode_note(b"Linux\0", 0x101, &[0]));
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real `/sys/kernel/notes` (an x86-64 6.1 kernel, 164 bytes): the
    /// GNU build-id first, then Linux and Xen notes.
    const REAL_NOTES: &str = "\
        040000001400000003000000474e550048dc540c8b76393804ca8088dbfa7d42911a944406000000\
        04000000010100004c696e757800000000000000060000001e000000000100004c696e7578000000\
        362e312e3130322d312e3138322e616d7a6e323032332e7838365f3634000000040000000c000000\
        1300000058656e000000000100000001ffffff3f04000000080000001200000058656e0000fe7803\
        00000000";

    fn unhex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| {
                u8::from_str_radix(std::str::from_utf8(pair).expect("ascii"), 16).expect("hex")
            })
            .collect()
    }

    #[test]
    fn finds_the_build_id_in_real_notes() {
        let notes = unhex(REAL_NOTES);
        assert_eq!(notes.len(), 164);
        assert_eq!(
            gnu_build_id(&notes).expect("well-formed").as_deref(),
            Some("48dc540c8b76393804ca8088dbfa7d42911a9444")
        );
        // The same notes with the build-id note moved last.
        let mut moved = notes[36..].to_vec();
        moved.extend_from_slice(&notes[..36]);
        assert_eq!(
            gnu_build_id(&moved).expect("well-formed").as_deref(),
            Some("48dc540c8b76393804ca8088dbfa7d42911a9444")
        );
    }

    #[test]
    fn finds_the_build_id_after_other_notes_with_padded_names() {
        let notes = notes_with_build_id("06f8bde30046985060c60820f7a11515a33afb06");
        assert_eq!(
            gnu_build_id(&notes).expect("well-formed").as_deref(),
            Some("06f8bde30046985060c60820f7a11515a33afb06")
        );
    }

    #[test]
    fn no_gnu_note_or_a_gnu_note_of_another_type_is_none() {
        let mut notes = encode_note(b"Linux\0", 3, &[1, 2, 3, 4]);
        notes.extend(encode_note(b"GNU\0", 1, &[0; 16]));
        assert_eq!(gnu_build_id(&notes), Ok(None));
        assert_eq!(gnu_build_id(&[]), Ok(None));
        assert_eq!(gnu_build_id(&[0; 7]), Ok(None), "trailing padding");
    }

    #[test]
    fn truncated_or_oversized_notes_are_errors_not_panics() {
        let notes = notes_with_build_id("0123456789abcdef0123456789abcdef01234567");
        for len in 1..notes.len() {
            // Either the build-id was complete before the cut, or an error.
            let _ = gnu_build_id(&notes[..len]);
        }
        let mut huge = encode_note(b"GNU\0", 3, &[1; 4]);
        huge[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(gnu_build_id(&huge).is_err());
        huge[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(gnu_build_id(&huge).is_err());
        assert!(gnu_build_id(&[1, 0, 0, 0, 0]).is_err());
        assert!(gnu_build_id(&encode_note(b"GNU\0", 3, &[])).is_err());
    }
}
