//! The kernel inside an x86 bzImage: the compressed payload the setup
//! header points at, decompressed.
//!
//! Boot protocol 2.08 and later give the payload's place
//! (`payload_offset`, `payload_length`, relative to the protected-mode code
//! after the `setup_sects` sectors). Debian 12's 6.1 amd64 compresses with
//! xz (`CONFIG_KERNEL_XZ`, `scripts/xz_wrap.sh`: CRC32, x86 BCJ filter,
//! LZMA2), Debian 13's 6.12 with zstd (`CONFIG_KERNEL_ZSTD`), and the build
//! appends the decompressed size as 4 little-endian bytes.
//! Other compressions are named in the error, not guessed at.

use std::io::Read;
use std::path::Path;

use super::SymbolSourceError;

/// Largest decompressed kernel accepted (Debian's is about 66 MB).
pub const MAX_KERNEL_SIZE: u64 = 512 << 20;

const XZ_MAGIC: &[u8] = b"\xfd7zXZ\0";
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";

/// Where the payload is: (offset, length) in the file.
pub fn payload_range(bytes: &[u8]) -> Result<(usize, usize), String> {
    let u16_at = |at: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
        ))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    if bytes.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err("no `HdrS` setup header at offset 0x202".to_string());
    }
    let version = u16_at(0x206).ok_or("the setup header is cut off")?;
    if version < 0x208 {
        return Err(format!(
            "boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            version >> 8,
            version & 0xff
        ));
    }
    let setup_sects = match bytes.get(0x1f1).copied() {
        Some(0) => 4,
        Some(n) => usize::from(n),
        None => return Err("the setup header is cut off".to_string()),
    };
    let payload_offset = u32_at(0x248).ok_or("the setup header is cut off")?;
    let payload_length = u32_at(0x24c).ok_or("the setup header is cut off")?;
    let start = setup_sects
        .checked_add(1)
        .and_then(|s| s.checked_mul(512))
        .and_then(|s| s.checked_add(usize::try_from(payload_offset).ok()?))
        .ok_or("the payload offset overflows")?;
    let length = usize::try_from(payload_length).map_err(|_| "the payload length overflows")?;
    let end = start
        .checked_add(length)
        .ok_or("the payload length overflows")?;
    if end > bytes.len() || length < 4 {
        return Err(format!(
            "the payload ({length} bytes at {start:#x}) lies outside the file ({} bytes)",
            bytes.len()
        ));
    }
    Ok((start, length))
}

/// The decompressed kernel (`vmlinux` without its symbol table) of the
/// bzImage `bytes` read from `path`.
pub fn decompress_bzimage(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, SymbolSourceError> {
    let image_error = |what: String| SymbolSourceError::Image {
        path: path.to_path_buf(),
        what,
    };
    let (start, length) = payload_range(bytes).map_err(image_error)?;
    let payload = bytes
        .get(start..start + length)
        .ok_or_else(|| image_error("the payload lies outside the file".to_string()))?;
    // Both formats are a stream followed by the kernel's size (32-bit
    // little-endian, `size_append` in scripts/Makefile.lib).
    let (stream, size_bytes) = payload.split_at(payload.len() - 4);
    let declared = u32::from_le_bytes(size_bytes.try_into().unwrap_or([0; 4]));
    let mut kernel = Vec::with_capacity(usize::try_from(declared).unwrap_or(0).min(1 << 28));
    let decompress_error = |source| SymbolSourceError::Decompress {
        path: path.to_path_buf(),
        source,
    };
    if payload.starts_with(XZ_MAGIC) {
        xz2::read::XzDecoder::new(stream)
            .take(MAX_KERNEL_SIZE + 1)
            .read_to_end(&mut kernel)
            .map_err(decompress_error)?;
    } else if payload.starts_with(ZSTD_MAGIC) {
        let mut stream = stream;
        ruzstd::decoding::StreamingDecoder::new(&mut stream)
            .map_err(|e| image_error(format!("its zstd payload is damaged: {e}")))?
            .take(MAX_KERNEL_SIZE + 1)
            .read_to_end(&mut kernel)
            .map_err(decompress_error)?;
    } else {
        return Err(image_error(format!(
            "its payload is compressed with {}, and patchgen reads xz and zstd payloads (CONFIG_KERNEL_XZ, CONFIG_KERNEL_ZSTD, as Debian's); pass the kernel's -dbg vmlinux with --vmlinux instead",
            compression_name(payload)
        )));
    }
    if u64::try_from(kernel.len()).unwrap_or(u64::MAX) > MAX_KERNEL_SIZE {
        return Err(image_error(format!(
            "the kernel decompresses to more than {MAX_KERNEL_SIZE} bytes"
        )));
    }
    if usize::try_from(declared).ok() != Some(kernel.len()) {
        return Err(image_error(format!(
            "the kernel decompresses to {} bytes, but the image declares {declared}",
            kernel.len()
        )));
    }
    Ok(kernel)
}

fn compression_name(payload: &[u8]) -> &'static str {
    let magics: [(&[u8], &str); 6] = [
        (b"\x1f\x8b", "gzip"),
        (b"\x28\xb5\x2f\xfd", "zstd"),
        (b"\x02\x21\x4c\x18", "lz4"),
        (b"BZh", "bzip2"),
        (b"\x89LZO", "lzo"),
        (b"\x5d\x00\x00", "lzma"),
    ];
    magics
        .iter()
        .find(|(magic, _)| payload.starts_with(magic))
        .map_or("an unknown format", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal bzImage: setup header fields and a payload.
    fn bzimage(payload: &[u8]) -> Vec<u8> {
        let setup_sects = 2_u8;
        let pm_start = (usize::from(setup_sects) + 1) * 512;
        let payload_offset = 0x40_usize;
        let mut image = vec![0u8; pm_start + payload_offset];
        image[0x1f1] = setup_sects;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x20f_u16.to_le_bytes());
        let offset = u32::try_from(payload_offset).expect("small");
        let length = u32::try_from(payload.len()).expect("small");
        image[0x248..0x24c].copy_from_slice(&offset.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&length.to_le_bytes());
        image.extend_from_slice(payload);
        image.extend_from_slice(b"trailing setup data");
        image
    }

    fn xz_payload(kernel: &[u8], declared: u32) -> Vec<u8> {
        let mut encoder = xz2::write::XzEncoder::new(Vec::new(), 6);
        encoder.write_all(kernel).expect("compress");
        let mut payload = encoder.finish().expect("compress");
        payload.extend_from_slice(&declared.to_le_bytes());
        payload
    }

    #[test]
    fn decompresses_the_payload_the_header_points_at() {
        let kernel = b"\x7fELF pretend kernel".repeat(100);
        let declared = u32::try_from(kernel.len()).expect("small");
        let image = bzimage(&xz_payload(&kernel, declared));
        let out = decompress_bzimage(Path::new("vmlinuz"), &image).expect("decompresses");
        assert_eq!(out, kernel);
    }

    #[test]
    fn refuses_a_size_that_does_not_match_the_declared_one() {
        let kernel = b"kernel".repeat(10);
        let image = bzimage(&xz_payload(&kernel, 7));
        let error = decompress_bzimage(Path::new("vmlinuz"), &image).expect_err("mismatch");
        assert!(error.to_string().contains("declares 7"), "{error}");
    }

    #[test]
    fn names_other_compressions_and_what_to_do() {
        let image = bzimage(b"\x02\x21\x4c\x18lz4 data and size");
        let error = decompress_bzimage(Path::new("vmlinuz"), &image).expect_err("lz4");
        let message = error.to_string();
        assert!(
            message.contains("lz4") && message.contains("--vmlinux"),
            "{message}"
        );
    }

    #[test]
    fn decompresses_a_zstd_payload_as_debian_13_builds_it() {
        let kernel = b"\x7fELF pretend 6.12 kernel".repeat(100);
        let mut payload = ruzstd::encoding::compress_to_vec(
            &kernel[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let declared = u32::try_from(kernel.len()).expect("small");
        payload.extend_from_slice(&declared.to_le_bytes());
        let image = bzimage(&payload);
        let out = decompress_bzimage(Path::new("vmlinuz"), &image).expect("decompresses");
        assert_eq!(out, kernel);
        // A damaged stream is an error, not a panic.
        let mut damaged = payload.clone();
        damaged.truncate(payload.len() / 2);
        damaged.extend_from_slice(&declared.to_le_bytes());
        assert!(decompress_bzimage(Path::new("vmlinuz"), &bzimage(&damaged)).is_err());
    }

    #[test]
    fn refuses_malformed_headers() {
        assert!(payload_range(b"not a kernel").is_err());
        let mut image = bzimage(b"\xfd7zXZ\0....");
        image[0x206..0x208].copy_from_slice(&0x206_u16.to_le_bytes());
        assert!(payload_range(&image).expect_err("old").contains("2.08"));
        let mut image = bzimage(b"\xfd7zXZ\0....");
        image[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(payload_range(&image)
            .expect_err("outside")
            .contains("outside"));
    }
}
