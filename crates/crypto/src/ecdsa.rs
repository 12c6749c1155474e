//! ECDSA over P-256 with SHA-256, in the encodings RSP uses.
//!
//! SGP.22 carries signatures as raw `r || s` (64 bytes, BSI TR-03111), usually
//! wrapped in the TLV `5F37 40 <r||s>`; X.509 certificates and CRLs carry DER
//! `ECDSA-Sig-Value`. This module verifies both forms and converts between
//! them. Public keys are SEC1 points: uncompressed (`04 || x || y`, 65 bytes)
//! or compressed (`02/03 || x`, 33 bytes).
//!
//! For repeated verification with one key, parse it once into a
//! [`VerifyingKey`]; the free functions parse the key on every call.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, ParsedPublicKey};

use crate::error::{Error, Result};

/// Length of a raw P-256 signature `r || s`.
pub const RAW_SIGNATURE_LEN: usize = 64;
/// Length of one P-256 scalar (`r`, `s`, a coordinate, a private key).
pub const SCALAR_LEN: usize = 32;
/// Length of an uncompressed SEC1 P-256 point.
pub const UNCOMPRESSED_POINT_LEN: usize = 65;
/// Length of a compressed SEC1 P-256 point.
pub const COMPRESSED_POINT_LEN: usize = 33;
/// Longest DER `ECDSA-Sig-Value` for P-256 (two 33-byte INTEGERs).
pub const MAX_DER_SIGNATURE_LEN: usize = 72;
/// Tag of the RSP signature wrapper.
pub const TAG_SIGNATURE: u32 = 0x5F37;

/// Verifies a DER `ECDSA-Sig-Value` over `message` (hashed here with SHA-256).
///
/// `public_key_sec1` is a SEC1 P-256 point, uncompressed or compressed.
/// Returns [`Error::InvalidPoint`] for a bad key, [`Error::MalformedSignature`]
/// for a signature that is not strict DER, [`Error::BadSignature`] when it does
/// not verify.
pub fn verify_der(public_key_sec1: &[u8], message: &[u8], der_signature: &[u8]) -> Result<()> {
    VerifyingKey::from_sec1(public_key_sec1)?.verify_der(message, der_signature)
}

/// Verifies a raw `r || s` signature (64 bytes) over `message` (hashed with SHA-256).
///
/// Errors as for [`verify_der`].
pub fn verify_raw(public_key_sec1: &[u8], message: &[u8], raw_rs: &[u8]) -> Result<()> {
    VerifyingKey::from_sec1(public_key_sec1)?.verify_raw(message, raw_rs)
}

/// Converts a raw `r || s` signature (64 bytes) to a DER `ECDSA-Sig-Value`.
pub fn raw_to_der(raw_rs: &[u8]) -> Result<Vec<u8>> {
    let raw = as_raw(raw_rs)?;
    let (r, s) = raw.split_at(SCALAR_LEN);
    let mut r_buf = [0u8; SCALAR_LEN + 1];
    let mut s_buf = [0u8; SCALAR_LEN + 1];
    let r = der_integer_content(r, &mut r_buf);
    let s = der_integer_content(s, &mut s_buf);
    let body_len = 2 + r.len() + 2 + s.len();
    let mut out = Vec::with_capacity(2 + body_len);
    // Each INTEGER is at most 33 bytes, so every length fits in one byte.
    out.extend_from_slice(&[0x30, body_len as u8, 0x02, r.len() as u8]);
    out.extend_from_slice(r);
    out.extend_from_slice(&[0x02, s.len() as u8]);
    out.extend_from_slice(s);
    Ok(out)
}

/// Converts a strict DER `ECDSA-Sig-Value` to raw `r || s` (64 bytes).
///
/// Rejects BER variations (long-form lengths, non-minimal or negative
/// integers, trailing bytes), zero values and integers wider than 256 bits.
pub fn der_to_raw(der_signature: &[u8]) -> Result<[u8; RAW_SIGNATURE_LEN]> {
    let body = match der_signature {
        [0x30, len, body @ ..] if usize::from(*len) == body.len() && *len < 0x80 => body,
        [0x30, ..] => return Err(Error::MalformedSignature("bad SEQUENCE length")),
        _ => return Err(Error::MalformedSignature("not a DER SEQUENCE")),
    };
    let (r, rest) = read_der_uint(body)?;
    let (s, rest) = read_der_uint(rest)?;
    if !rest.is_empty() {
        return Err(Error::MalformedSignature("trailing bytes in SEQUENCE"));
    }
    let mut out = [0u8; RAW_SIGNATURE_LEN];
    out[SCALAR_LEN - r.len()..SCALAR_LEN].copy_from_slice(r);
    out[RAW_SIGNATURE_LEN - s.len()..].copy_from_slice(s);
    Ok(out)
}

/// Wraps a raw `r || s` signature in the RSP TLV `5F37 40 <r||s>` (67 bytes).
pub fn wrap_5f37(raw_rs: &[u8]) -> Result<Vec<u8>> {
    let raw = as_raw(raw_rs)?;
    let mut out = Vec::with_capacity(3 + RAW_SIGNATURE_LEN);
    out.extend_from_slice(&[0x5F, 0x37, RAW_SIGNATURE_LEN as u8]);
    out.extend_from_slice(raw);
    Ok(out)
}

/// Extracts the raw `r || s` from exactly one `5F37` TLV holding 64 bytes.
pub fn unwrap_5f37(tlv: &[u8]) -> Result<&[u8; RAW_SIGNATURE_LEN]> {
    match tlv {
        [0x5F, 0x37, 0x40, raw @ ..] => as_raw(raw),
        [0x5F, 0x37, ..] => Err(Error::MalformedSignature("5F37 must hold exactly 64 bytes")),
        _ => Err(Error::MalformedSignature("expected a 5F37 TLV")),
    }
}

/// A P-256 public key parsed and validated once, for repeated verification.
///
/// Cheap to share between threads (`Send + Sync`); cloning shares nothing
/// mutable.
#[derive(Clone)]
pub struct VerifyingKey {
    key: ParsedPublicKey,
}

impl VerifyingKey {
    /// Parses a SEC1 point (uncompressed 65 bytes or compressed 33 bytes) and
    /// checks that it lies on P-256.
    pub fn from_sec1(public_key_sec1: &[u8]) -> Result<Self> {
        check_sec1_shape(public_key_sec1)?;
        let key = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_key_sec1)
            .map_err(|_| Error::InvalidPoint("not a point on P-256"))?;
        Ok(Self { key })
    }

    /// Verifies a raw `r || s` signature over `message`.
    pub fn verify_raw(&self, message: &[u8], raw_rs: &[u8]) -> Result<()> {
        let raw = as_raw(raw_rs)?;
        self.key
            .verify_sig(message, raw)
            .map_err(|_| Error::BadSignature)
    }

    /// Verifies a DER `ECDSA-Sig-Value` over `message`.
    pub fn verify_der(&self, message: &[u8], der_signature: &[u8]) -> Result<()> {
        let raw = der_to_raw(der_signature)?;
        self.verify_raw(message, &raw)
    }

    /// Verifies a `5F37 40 <r||s>` TLV over `message`.
    pub fn verify_5f37(&self, message: &[u8], tlv: &[u8]) -> Result<()> {
        self.verify_raw(message, unwrap_5f37(tlv)?)
    }

    /// The SEC1 encoding the key was parsed from.
    pub fn sec1(&self) -> &[u8] {
        self.key.as_ref()
    }

    /// The key as an uncompressed SEC1 point (65 bytes), whatever form it was
    /// parsed from.
    pub fn to_uncompressed(&self) -> Result<[u8; UNCOMPRESSED_POINT_LEN]> {
        let parsed = self.sec1();
        if parsed.len() == UNCOMPRESSED_POINT_LEN {
            return parsed
                .try_into()
                .map_err(|_| Error::Backend("point length"));
        }
        // The backend writes SubjectPublicKeyInfo with the point uncompressed,
        // as the last 65 bytes.
        let spki = self
            .key
            .as_der()
            .map_err(|_| Error::Backend("public key encoding"))?;
        let der = spki.as_ref();
        match der.get(der.len().saturating_sub(UNCOMPRESSED_POINT_LEN)..) {
            Some(point) if point.len() == UNCOMPRESSED_POINT_LEN && point[0] == 0x04 => {
                point.try_into().map_err(|_| Error::Backend("point length"))
            }
            _ => Err(Error::Backend("public key encoding")),
        }
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("sec1", &HexBytes(self.sec1()))
            .finish()
    }
}

/// Rejects encodings other than SEC1 compressed/uncompressed P-256 points
/// (the backend would otherwise also accept SubjectPublicKeyInfo or hybrid form).
pub(crate) fn check_sec1_shape(point: &[u8]) -> Result<()> {
    match (point.first(), point.len()) {
        (Some(0x04), UNCOMPRESSED_POINT_LEN) | (Some(0x02 | 0x03), COMPRESSED_POINT_LEN) => Ok(()),
        (Some(0x00), 1) => Err(Error::InvalidPoint("point at infinity")),
        (None, _) => Err(Error::InvalidPoint("empty")),
        _ => Err(Error::InvalidPoint(
            "not a SEC1 uncompressed (65 bytes) or compressed (33 bytes) P-256 point",
        )),
    }
}

fn as_raw(raw_rs: &[u8]) -> Result<&[u8; RAW_SIGNATURE_LEN]> {
    raw_rs
        .try_into()
        .map_err(|_| Error::MalformedSignature("raw signature must be 64 bytes"))
}

/// Minimal DER INTEGER content of an unsigned big-endian value, written into `buf`.
fn der_integer_content<'b>(value: &[u8], buf: &'b mut [u8; SCALAR_LEN + 1]) -> &'b [u8] {
    let zeros = value.iter().take_while(|&&b| b == 0).count();
    let trimmed = &value[zeros.min(value.len() - 1)..];
    let pad = usize::from(trimmed[0] & 0x80 != 0);
    buf[pad..pad + trimmed.len()].copy_from_slice(trimmed);
    &buf[..pad + trimmed.len()]
}

/// Reads one strict-DER non-negative INTEGER of at most 256 bits, returning
/// its magnitude without sign padding.
fn read_der_uint(input: &[u8]) -> Result<(&[u8], &[u8])> {
    let (len, rest) = match input {
        [0x02, len, rest @ ..] => (usize::from(*len), rest),
        [] | [_] => return Err(Error::MalformedSignature("truncated INTEGER")),
        _ => return Err(Error::MalformedSignature("expected INTEGER")),
    };
    if len == 0 || len >= 0x80 || len > rest.len() {
        return Err(Error::MalformedSignature("bad INTEGER length"));
    }
    let (content, rest) = rest.split_at(len);
    if content[0] & 0x80 != 0 {
        return Err(Error::MalformedSignature("negative INTEGER"));
    }
    let magnitude = if content[0] == 0 {
        if content.len() > 1 && content[1] & 0x80 == 0 {
            return Err(Error::MalformedSignature("non-minimal INTEGER"));
        }
        &content[1..]
    } else {
        content
    };
    if magnitude.is_empty() {
        return Err(Error::MalformedSignature("zero INTEGER"));
    }
    if magnitude.len() > SCALAR_LEN {
        return Err(Error::MalformedSignature("INTEGER wider than 256 bits"));
    }
    Ok((magnitude, rest))
}

/// Formats bytes as lower-case hex in `Debug` output.
pub(crate) struct HexBytes<'a>(pub(crate) &'a [u8]);

impl std::fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair};
    use proptest::prelude::*;

    fn key_pair() -> EcdsaKeyPair {
        EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
    }

    #[test]
    fn raw_signature_verifies_and_tampering_fails() {
        let kp = key_pair();
        let msg = b"serverSigned1";
        let sig = kp.sign(&SystemRandom::new(), msg).unwrap();
        let pk = kp.public_key().as_ref();
        verify_raw(pk, msg, sig.as_ref()).unwrap();
        assert!(matches!(
            verify_raw(pk, b"other", sig.as_ref()),
            Err(Error::BadSignature)
        ));
        let mut bad = sig.as_ref().to_vec();
        bad[10] ^= 1;
        assert!(matches!(
            verify_raw(pk, msg, &bad),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            verify_raw(pk, msg, &bad[..63]),
            Err(Error::MalformedSignature(_))
        ));
    }

    #[test]
    fn der_round_trip_and_verify() {
        let kp = key_pair();
        let msg = b"smdpSigned2";
        let sig = kp.sign(&SystemRandom::new(), msg).unwrap();
        let der = raw_to_der(sig.as_ref()).unwrap();
        assert_eq!(der_to_raw(&der).unwrap().as_slice(), sig.as_ref());
        verify_der(kp.public_key().as_ref(), msg, &der).unwrap();
    }

    #[test]
    fn der_encoding_of_edge_values() {
        // r = 1, s = 0x80 00..00 (needs a sign byte).
        let mut raw = [0u8; 64];
        raw[31] = 1;
        raw[32] = 0x80;
        let der = raw_to_der(&raw).unwrap();
        let mut expected = vec![0x30, 3 + 35, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00, 0x80];
        expected.extend_from_slice(&[0u8; 31]);
        assert_eq!(der, expected);
        assert_eq!(der_to_raw(&der).unwrap(), raw);
    }

    #[test]
    fn der_rejects_non_strict_encodings() {
        // non-minimal: leading zero before a byte without the high bit
        assert!(der_to_raw(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01]).is_err());
        // negative
        assert!(der_to_raw(&[0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01]).is_err());
        // zero
        assert!(der_to_raw(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01]).is_err());
        // trailing byte inside and outside the SEQUENCE
        assert!(der_to_raw(&[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00]).is_err());
        assert!(der_to_raw(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00]).is_err());
        // long-form length
        assert!(der_to_raw(&[0x30, 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]).is_err());
        // 33-byte magnitude
        let mut long = vec![0x30, 0x26, 0x02, 0x21];
        long.extend_from_slice(&[0x7F; 33]);
        long.extend_from_slice(&[0x02, 0x01, 0x01]);
        assert!(der_to_raw(&long).is_err());
        assert!(der_to_raw(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
        assert!(der_to_raw(&[0x30, 0x00]).is_err());
        assert!(der_to_raw(&[]).is_err());
    }

    #[test]
    fn wrap_and_unwrap_5f37() {
        let kp = key_pair();
        let msg = b"euiccSigned1";
        let sig = kp.sign(&SystemRandom::new(), msg).unwrap();
        let tlv = wrap_5f37(sig.as_ref()).unwrap();
        assert_eq!(&tlv[..3], &[0x5F, 0x37, 0x40]);
        assert_eq!(unwrap_5f37(&tlv).unwrap().as_slice(), sig.as_ref());
        let vk = VerifyingKey::from_sec1(kp.public_key().as_ref()).unwrap();
        vk.verify_5f37(msg, &tlv).unwrap();
        assert!(unwrap_5f37(&tlv[..66]).is_err());
        let mut wrong_tag = tlv.clone();
        wrong_tag[1] = 0x38;
        assert!(unwrap_5f37(&wrong_tag).is_err());
        let mut extra = tlv.clone();
        extra.push(0);
        assert!(unwrap_5f37(&extra).is_err());
        assert!(wrap_5f37(&[0u8; 63]).is_err());
    }

    #[test]
    fn compressed_keys_verify() {
        let kp = key_pair();
        let pk = kp.public_key().as_ref();
        let mut compressed = vec![0x02 | (pk[64] & 1)];
        compressed.extend_from_slice(&pk[1..33]);
        let msg = b"compressed";
        let sig = kp.sign(&SystemRandom::new(), msg).unwrap();
        verify_raw(&compressed, msg, sig.as_ref()).unwrap();
        let vk = VerifyingKey::from_sec1(&compressed).unwrap();
        assert_eq!(vk.to_uncompressed().unwrap().as_slice(), pk);
    }

    #[test]
    fn bad_points_are_rejected() {
        let kp = key_pair();
        let mut pk = kp.public_key().as_ref().to_vec();
        pk[64] ^= 1; // no longer on the curve
        assert!(matches!(
            VerifyingKey::from_sec1(&pk),
            Err(Error::InvalidPoint(_))
        ));
        assert!(matches!(
            VerifyingKey::from_sec1(&[0]),
            Err(Error::InvalidPoint(_))
        ));
        assert!(matches!(
            VerifyingKey::from_sec1(&[]),
            Err(Error::InvalidPoint(_))
        ));
        assert!(matches!(
            VerifyingKey::from_sec1(&pk[..64]),
            Err(Error::InvalidPoint(_))
        ));
        // x = p (field modulus) is not a valid coordinate
        let mut compressed = vec![0x02];
        compressed.extend_from_slice(&[0xFF; 32]);
        assert!(matches!(
            VerifyingKey::from_sec1(&compressed),
            Err(Error::InvalidPoint(_))
        ));
    }

    proptest! {
        #[test]
        fn der_to_raw_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..90)) {
            let _ = der_to_raw(&bytes);
        }

        #[test]
        fn raw_der_round_trip(raw in proptest::array::uniform32(any::<u8>()), s in proptest::array::uniform32(1u8..)) {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&raw);
            sig[32..].copy_from_slice(&s);
            prop_assume!(raw.iter().any(|&b| b != 0));
            let der = raw_to_der(&sig).unwrap();
            prop_assert!(der.len() <= MAX_DER_SIGNATURE_LEN);
            prop_assert_eq!(der_to_raw(&der).unwrap(), sig);
        }

        #[test]
        fn random_signatures_and_keys_give_errors(
            key in proptest::collection::vec(any::<u8>(), 0..70),
            sig in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            prop_assert!(verify_raw(&key, b"m", &sig).is_err());
            prop_assert!(verify_der(&key, b"m", &sig).is_err());
            let _ = unwrap_5f37(&sig);
        }
    }
}
