//! DER encoding and decoding of the generated types.
//!
//! All RSP messages are DER on the wire. [`decode_der`] rejects bytes left over
//! after the value, so a message cannot smuggle data past a length check;
//! [`decode_der_prefix`] is for streams of concatenated values (profile
//! elements of a profile package).
//!
//! rasn does not know which BIT STRINGs have named bits, so it cannot apply
//! the DER rule that such a value carries no trailing zero bits (X.690
//! 11.2.2). Build those values (`NotificationEvent`, `PprIds`,
//! `UICCCapability`, `RspCapability`, ...) with [`named_bits`].
//!
//! Known limitation of rasn 0.30: although the modules are `EXTENSIBILITY
//! IMPLIED`, a SEQUENCE carrying components this version of the ASN.1 does
//! not know (for example fields a later SGP.22 adds to `EUICCInfo2`) is
//! refused, not skipped. Signed parts are still found by [`crate::signed`],
//! which works on the raw TLVs.

use rasn::types::BitString;
use rasn::{Decode, Encode};

use crate::Error;

/// Encodes `value` as DER.
///
/// DER rules apply: DEFAULT-valued fields equal to their default are left out,
/// SET OF members are sorted, lengths are minimal.
pub fn encode_der<T: Encode>(value: &T) -> Result<Vec<u8>, Error> {
    rasn::der::encode(value).map_err(|e| Error::Encode {
        type_name: asn1_name::<T>(),
        reason: readable_reason(&e.to_string()),
    })
}

/// Decodes exactly one DER value of type `T` from `bytes`, with nothing after it.
pub fn decode_der<T: Decode>(bytes: &[u8]) -> Result<T, Error> {
    let (value, rest) = decode_der_prefix::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes {
            type_name: asn1_name::<T>(),
            count: rest.len(),
        });
    }
    Ok(value)
}

/// Decodes one DER value of type `T` from the start of `bytes`, returning it
/// and the bytes after it.
pub fn decode_der_prefix<T: Decode>(bytes: &[u8]) -> Result<(T, &[u8]), Error> {
    rasn::der::decode_with_remainder(bytes).map_err(|e| Error::Decode {
        type_name: asn1_name::<T>(),
        reason: readable_reason(&e.to_string()),
    })
}

/// The ASN.1 name of a generated type: the last segment of its Rust path
/// (`ferrosim_asn1::generated::rsp::EUICCInfo1` -> `EUICCInfo1`), so error
/// messages that reach peers name the ASN.1 type, not this crate's modules.
fn asn1_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// rasn's explanation in ASN.1 terms: tags as `[CONTEXT 32]` instead of
/// Rust's `Tag { class: Context, value: 32 }`, and the codec named once.
fn readable_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(at) = rest.find("Tag { class: ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "Tag { class: ".len()..];
        let Some(end) = after.find(" }") else {
            out.push_str(&rest[at..]);
            rest = "";
            break;
        };
        let inner = &after[..end];
        let (class, value) = inner.split_once(", value: ").unwrap_or((inner, "?"));
        out.push_str(&format!("[{} {value}]", class.to_ascii_uppercase()));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    let codec = " (Codec: DER)";
    let had_codec = out.contains(codec);
    let mut out = out.replace(codec, "");
    if had_codec {
        out.push_str(" (DER)");
    }
    out
}

/// A named-bit BIT STRING with the given bits set, in its DER form: exactly
/// as long as the highest set bit requires (no trailing zero bits), empty when
/// no bit is set.
pub fn named_bits(set: &[usize]) -> BitString {
    let len = set.iter().max().map_or(0, |&max| max + 1);
    let mut bits = BitString::repeat(false, len);
    for &bit in set {
        bits.set(bit, true);
    }
    bits
}

/// Removes trailing zero bits from a named-bit BIT STRING (DER form).
pub fn trim_named_bits(bits: &mut BitString) {
    let len = bits.last_one().map_or(0, |last| last + 1);
    bits.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rsp;

    #[test]
    fn errors_name_asn1_types_not_rust_paths() {
        for bytes in [
            &[0xBF, 0x20, 0x03, 0x82, 0x01, 0x00][..],
            &[0x30, 0x00],
            &[0xBF, 0x20, 0x00],
            &[0x04, 0x01],
            &[],
        ] {
            let e = decode_der::<rsp::EUICCInfo1>(bytes)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("cannot decode EUICCInfo1"), "{e}");
            for leak in ["::", "ferrosim", "Tag {", "class:", "Codec: DER) (Codec"] {
                assert!(!e.contains(leak), "`{leak}` in {e}");
            }
        }
        let e = decode_der::<rsp::EUICCInfo1>(&[0x30, 0x00])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[CONTEXT 32]") && e.contains("[UNIVERSAL 16]"),
            "{e}"
        );
        assert_eq!(asn1_name::<Vec<u8>>(), "Vec");
        assert_eq!(
            readable_reason("x Tag { class: Private, value: 1 } y"),
            "x [PRIVATE 1] y"
        );
        assert_eq!(
            readable_reason("broken Tag { class: "),
            "broken Tag { class: "
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let value = rsp::GetEuiccInfo1Request::new();
        let der = encode_der(&value).unwrap();
        assert_eq!(der, [0xBF, 0x20, 0x00]);
        let mut longer = der.clone();
        longer.push(0);
        assert!(matches!(
            decode_der::<rsp::GetEuiccInfo1Request>(&longer),
            Err(Error::TrailingBytes { count: 1, .. })
        ));
        let (again, rest) = decode_der_prefix::<rsp::GetEuiccInfo1Request>(&longer).unwrap();
        assert_eq!((again, rest), (value, &[0u8][..]));
        assert!(matches!(
            decode_der::<rsp::GetEuiccInfo1Request>(&der[..2]),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn named_bits_have_no_trailing_zeros() {
        // notificationInstall(0) only: 1 bit, 7 unused -> 03 02 07 80.
        let install = rsp::NotificationEvent(named_bits(&[0]));
        assert_eq!(encode_der(&install).unwrap(), [0x03, 0x02, 0x07, 0x80]);
        // enable(1) and delete(3): 4 bits -> 03 02 04 50.
        let ev = rsp::NotificationEvent(named_bits(&[3, 1]));
        assert_eq!(encode_der(&ev).unwrap(), [0x03, 0x02, 0x04, 0x50]);
        assert_eq!(
            encode_der(&rsp::NotificationEvent(named_bits(&[]))).unwrap(),
            [0x03, 0x01, 0x00]
        );

        let mut padded = named_bits(&[1]);
        padded.extend([false; 10]);
        trim_named_bits(&mut padded);
        assert_eq!(padded, named_bits(&[1]));
    }
}
