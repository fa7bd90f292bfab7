//! What a valid string of each kind of manifest field is: the character
//! set and length of a patch id, a CVE id, a kernel release, a symbol or
//! module name, an object path... [`crate::manifest`] checks every field
//! with these and names the field when one does not hold.

/// Longest patch id; it becomes the patch module's name (`MODULE_NAME_LEN`
/// is 56 with its NUL, and patchgen may add a prefix). Ids have no `-`: the
/// kernel turns `-` into `_` in module names, so `a-b` and `a_b` would be
/// one patch in the kernel and two to patchd.
pub const MAX_ID_LEN: usize = 48;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// Longest kernel symbol name (`KSYM_NAME_LEN` in 6.1 is 512 with its NUL).
pub const MAX_SYMBOL_NAME_LEN: usize = 511;
/// Longest object file path (`fs/proc/cmdline.o`).
pub const MAX_OBJECT_FILE_LEN: usize = 255;

/// Not empty and at most `max` bytes.
fn bounded(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max
}

/// A patch id: `[a-z0-9_]`, 1 to [`MAX_ID_LEN`] bytes.
pub fn is_patch_id(s: &str) -> bool {
    bounded(s, MAX_ID_LEN)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A description: at most [`MAX_DESCRIPTION_LEN`] bytes, no control
/// characters but newline and tab, and nothing that reorders or hides
/// text on a terminal ([`is_spoofing_format`]): `inspect`, `verify` and
/// `status` print it.
pub fn is_description(s: &str) -> bool {
    s.len() <= MAX_DESCRIPTION_LEN
        && s.chars()
            .all(|c| c == '\n' || c == '\t' || !(c.is_control() || is_spoofing_format(c)))
}

/// Characters that change how the text around them is shown without
/// showing themselves: the bidirectional marks, embeddings, overrides and
/// isolates (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069,
/// the "Trojan Source" set), zero-width characters (U+200B to U+200D,
/// U+2060 to U+2064, U+FEFF), the line and paragraph separators (U+2028,
/// U+2029: a line break a reader does not expect) and the interlinear
/// annotation marks (U+FFF9 to U+FFFB).
pub fn is_spoofing_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// A CVE id: `CVE-YYYY-` and 4 to 19 digits.
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, number)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && (4..=19).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Earliest year of a CVE publication date: CVE ids start in 1999.
pub const MIN_CVE_YEAR: u32 = 1999;

/// A CVE publication date: a calendar date `YYYY-MM-DD` (leap days only in
/// leap years) of a year [`MIN_CVE_YEAR`] to 9999.
pub fn is_cve_date(s: &str) -> bool {
    cve_date_seconds(s).is_some()
}

/// The start of the day a CVE publication date names, 00:00 UTC, in Unix
/// seconds; `None` when `s` is not such a date ([`is_cve_date`]).
pub fn cve_date_seconds(s: &str) -> Option<u64> {
    let shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape || s.get(..4)?.parse::<u32>().ok()? < MIN_CVE_YEAR {
        return None;
    }
    // humantime checks the month and the day of the month.
    let time = humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// A kernel release (`uname -r`): `[A-Za-z0-9._+~-]`, 1 to 64 bytes.
pub fn is_kernel_release(s: &str) -> bool {
    bounded(s, 64)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+~-".contains(&b))
}

/// A GNU build-id: lowercase hex, 4 to 64 bytes.
pub fn is_build_id(s: &str) -> bool {
    (8..=128).contains(&s.len())
        && s.len() % 2 == 0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A Debian version: starts with a digit, `[A-Za-z0-9.+~:-]`, 1 to 128
/// bytes.
pub fn is_debian_version(s: &str) -> bool {
    bounded(s, 128)
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+~:-".contains(&b))
}

/// A kernel symbol name: `[A-Za-z0-9_.$]`, 1 to [`MAX_SYMBOL_NAME_LEN`]
/// bytes.
pub fn is_symbol_name(s: &str) -> bool {
    bounded(s, MAX_SYMBOL_NAME_LEN)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.$".contains(&b))
}

/// `vmlinux` or a module name: `[A-Za-z0-9_-]`, 1 to 55 bytes.
pub fn is_module_name(s: &str) -> bool {
    bounded(s, 55)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A relative object path: `[A-Za-z0-9_.+-]` between slashes, no `.` or
/// `..`, 1 to [`MAX_OBJECT_FILE_LEN`] bytes.
pub fn is_object_file(s: &str) -> bool {
    bounded(s, MAX_OBJECT_FILE_LEN)
        && s.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
        })
}

/// A version: `[A-Za-z0-9.+-]`, 1 to 64 bytes.
pub fn is_version(s: &str) -> bool {
    bounded(s, 64)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b))
}
