//! The byte layout of a bundle, version 1 (docs/bundle-format.md has the
//! table). Everything that knows an offset lives here, so the reader and the
//! writer cannot disagree.
//!
//! ```text
//! header (88 bytes) | part table (48 bytes per part) | manifest | signature (64) | parts
//! '-------------------- signed ----------------------------------'
//! ```

/// The first 8 bytes of every bundle. The high first byte catches 7-bit
/// transfers, the newline catches newline conversion (as in PNG).
pub const MAGIC: [u8; 8] = *b"\x89SUTURE\n";

/// The format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Largest manifest: 1 MiB (a manifest with every list at its cap is far
/// smaller); checked before anything is allocated, to prevent DoS.
pub const MAX_MANIFEST_SIZE: usize = 1 << 20;

/// Largest payload part: 64 MiB (Debian 6.1's largest modules are a few
/// MiB with debug info stripped).
pub const MAX_PART_SIZE: usize = 64 << 20;

/// Largest bundle file: 80 MiB. Readers refuse larger files before reading
/// them.
pub const MAX_BUNDLE_SIZE: usize = 80 << 20;

/// Most parts in one bundle. Version 1 has one kind, `module`; the table
/// leaves room for more kinds without a new layout.
pub const MAX_PARTS: usize = 8;

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_VERSION: usize = 8;
pub(crate) const OFF_FLAGS: usize = 12;
pub(crate) const OFF_MANIFEST_LEN: usize = 16;
pub(crate) const OFF_PART_COUNT: usize = 20;
pub(crate) const OFF_SIGNER: usize = 24;
pub(crate) const OFF_MANIFEST_SHA256: usize = 56;
pub(crate) const HEADER_LEN: usize = 88;

/// Part table entry: kind (8 bytes, NUL-padded ASCII), length (u64 LE),
/// sha256 (32 bytes).
pub(crate) const PART_ENTRY_LEN: usize = 48;
pub(crate) const PART_OFF_KIND: usize = 0;
pub(crate) const PART_OFF_LEN: usize = 8;
pub(crate) const PART_OFF_SHA256: usize = 16;

pub(crate) const SIGNATURE_LEN: usize = 64;
pub(crate) const PUBLIC_KEY_LEN: usize = 32;
pub(crate) const SHA256_LEN: usize = 32;

/// The kind of a payload part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartKind {
    /// The patch module, a `.ko` built for the target kernel (opaque bytes
    /// to this crate).
    Module,
}

impl PartKind {
    /// Every kind this version knows, in the order a writer puts them.
    pub const ALL: [PartKind; 1] = [PartKind::Module];

    /// The kind's name, as in the part table and the text dump.
    pub fn as_str(self) -> &'static str {
        match self {
            PartKind::Module => "module",
        }
    }

    /// The 8-byte field of the part table.
    pub(crate) fn to_field(self) -> [u8; 8] {
        let mut field = [0u8; 8];
        let name = self.as_str().as_bytes();
        field[..name.len()].copy_from_slice(name);
        field
    }

    /// The kind an 8-byte field names, if this version knows it.
    pub(crate) fn from_field(field: &[u8; 8]) -> Option<PartKind> {
        PartKind::ALL.into_iter().find(|k| k.to_field() == *field)
    }
}

impl std::fmt::Display for PartKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `len` bytes at `offset` of `bytes`, or `None` when they are not all there.
pub(crate) fn slice(bytes: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    bytes.get(offset..offset.checked_add(len)?)
}

/// The little-endian u32 at `offset`.
pub(crate) fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        slice(bytes, offset, 4)?.try_into().ok()?,
    ))
}

/// The little-endian u64 at `offset`.
pub(crate) fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        slice(bytes, offset, 8)?.try_into().ok()?,
    ))
}

/// The `N` bytes at `offset` as an array.
pub(crate) fn read_array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    slice(bytes, offset, N)?.try_into().ok()
}
