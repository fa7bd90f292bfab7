//! Compressed module files, as DKMS installs them where the kernel's
//! modules are compressed (Debian 13's kernels: xz). The kernel could
//! decompress such a file itself (`finit_module` with
//! `MODULE_INIT_COMPRESSED_FILE`), but the link step rewrites the image
//! first, so patchd decompresses it, recognising the format by its magic as
//! the kernel does, never by the file's name. The output is capped like an
//! uncompressed module file.

use std::io::Read;

/// The first bytes of an xz stream.
const XZ_MAGIC: &[u8] = b"\xfd7zXZ\x00";
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: &[u8] = b"\x28\xb5\x2f\xfd";

/// `file` decompressed if it is an xz or zstd stream, else `None`; at most
/// `cap` bytes of output (more is an error).
pub(crate) fn decompress(file: &[u8], cap: u64) -> Option<std::io::Result<Vec<u8>>> {
    let mut image = Vec::new();
    let read = if file.starts_with(XZ_MAGIC) {
        xz2::read::XzDecoder::new(file)
            .take(cap.saturating_add(1))
            .read_to_end(&mut image)
    } else if file.starts_with(ZSTD_MAGIC) {
        let mut stream = file;
        match ruzstd::decoding::StreamingDecoder::new(&mut stream) {
            Ok(decoder) => decoder.take(cap.saturating_add(1)).read_to_end(&mut image),
            Err(error) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, error)),
        }
    } else {
        return None;
    };
    Some(read.and_then(|_| {
        if u64::try_from(image.len()).unwrap_or(u64::MAX) > cap {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("decompresses to more than {cap} bytes"),
            ))
        } else {
            Ok(image)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const MODULE: &[u8] = b"\x7fELF a companion module";

    #[test]
    fn an_uncompressed_module_is_left_alone() {
        assert!(decompress(MODULE, 1 << 20).is_none());
    }

    #[test]
    fn xz_and_zstd_modules_are_decompressed() {
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(MODULE).expect("compress");
        let xz = xz.finish().expect("finish");
        let zstd =
            ruzstd::encoding::compress_to_vec(MODULE, ruzstd::encoding::CompressionLevel::Fastest);
        for file in [xz, zstd] {
            let image = decompress(&file, 1 << 20)
                .expect("compressed")
                .expect("decompresses");
            assert_eq!(image, MODULE);
        }
    }

    #[test]
    fn output_over_the_cap_is_refused() {
        let big = vec![0u8; 4096];
        let zstd = ruzstd::encoding::compress_to_vec(
            &big[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let error = decompress(&zstd, 1024)
            .expect("compressed")
            .expect_err("too big");
        assert!(error.to_string().contains("1024"), "{error}");
    }

    #[test]
    fn a_damaged_stream_is_an_error() {
        let error = decompress(b"\xfd7zXZ\x00garbage", 1 << 20)
            .expect("compressed")
            .expect_err("damaged");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    }
}
