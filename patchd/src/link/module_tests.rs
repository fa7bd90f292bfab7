//! Unit tables for signature stripping. Reading real modules compiled from
//! C is tested in `tests/link.rs`.

use super::*;

/// Appends a signature trailer as `sign-file` writes it: signature bytes,
/// `struct module_signature` (PKCS#7: only id_type and sig_len set), marker.
fn sign(module: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut signed = module.to_vec();
    signed.extend_from_slice(signature);
    let sig_len = u32::try_from(signature.len()).expect("small signature");
    signed.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
    signed.extend_from_slice(&sig_len.to_be_bytes());
    signed.extend_from_slice(SIGNATURE_MARKER);
    signed
}

#[test]
fn unsigned_modules_are_returned_whole() {
    let module = b"\x7fELF module bytes";
    assert_eq!(
        strip_signature(module).expect("unsigned"),
        (&module[..], false)
    );
    assert_eq!(strip_signature(b"").expect("empty"), (&b""[..], false));
}

#[test]
fn signature_and_trailer_are_stripped() {
    let module = b"\x7fELF module bytes".to_vec();
    let signed = sign(&module, &[0xa5; 300]);
    let (stripped, was_signed) = strip_signature(&signed).expect("signed");
    assert!(was_signed);
    assert_eq!(stripped, &module[..]);
}

#[test]
fn signer_and_key_id_lengths_are_counted() {
    let module = b"\x7fELF module".to_vec();
    let mut signed = module.clone();
    signed.extend_from_slice(b"SIGNERKEYIDsig");
    // signer_len 6, key_id_len 5, sig_len 3
    signed.extend_from_slice(&[1, 1, 1, 6, 5, 0, 0, 0, 0, 0, 0, 3]);
    signed.extend_from_slice(SIGNATURE_MARKER);
    assert_eq!(
        strip_signature(&signed).expect("signed"),
        (&module[..], true)
    );
}

#[test]
fn trailers_whose_lengths_do_not_fit_are_errors() {
    let module = b"\x7fELF module bytes".to_vec();
    let signed = sign(&module, &[0xa5; 300]);
    let marker_start = signed.len() - SIGNATURE_MARKER.len();

    // Only the marker, or the marker and part of the struct.
    for keep in 0..MODULE_SIGNATURE_SIZE {
        let truncated = &signed[marker_start - keep..];
        assert!(
            matches!(
                strip_signature(truncated),
                Err(LinkError::SignatureTrailer { .. })
            ),
            "struct cut to {keep} bytes"
        );
    }
    // Signature longer than what precedes it, by cutting the front.
    for cut in 1..=module.len() + 300 {
        let result = strip_signature(&signed[cut..]);
        if cut < module.len() {
            let (stripped, true) = result.expect("still fits") else {
                panic!("not seen as signed");
            };
            assert_eq!(stripped, &module[cut..]);
        } else {
            assert!(
                matches!(result, Err(LinkError::SignatureTrailer { .. })),
                "cut {cut}: {result:?}"
            );
        }
    }
    // A sig_len of 0 or one that overflows.
    for sig_len in [0_u32, u32::MAX] {
        let mut bad = signed.clone();
        bad[marker_start - 4..marker_start].copy_from_slice(&sig_len.to_be_bytes());
        assert!(
            matches!(
                strip_signature(&bad),
                Err(LinkError::SignatureTrailer { .. })
            ),
            "sig_len {sig_len}"
        );
    }
}
