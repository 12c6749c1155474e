//! Signed-part extraction against bytes produced by the generated types, and
//! against damaged input.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use ferrosim_asn1::rasn::types::OctetString;
use ferrosim_asn1::signed::{self, SignedPart};
use ferrosim_asn1::tlv::{Tlv, TlvError, tlv};
use ferrosim_asn1::{Error, encode_der, rsp};
use proptest::prelude::*;
use support::{Gen, Rng, strategy};

fn sig(seed: u8) -> OctetString {
    OctetString::from((0..64).map(|i| seed.wrapping_add(i)).collect::<Vec<u8>>())
}

fn random<T: Gen>(seed: u64) -> T {
    T::generate(&mut Rng::new(seed), 0)
}

/// Every strict prefix, and the message with a byte appended, is refused.
fn assert_refuses_damage(
    message: &[u8],
    extract: impl Fn(&[u8]) -> Result<SignedPart<'_>, Error>,
) -> Result<(), TestCaseError> {
    for len in 0..message.len() {
        prop_assert!(extract(&message[..len]).is_err(), "prefix {len} accepted");
    }
    let mut longer = message.to_vec();
    longer.push(0);
    prop_assert!(extract(&longer).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn euicc_signed1_from_authenticate_server_response(seed in any::<u64>(), s in any::<u8>()) {
        let signed1: rsp::EuiccSigned1 = random(seed);
        let ok = rsp::AuthenticateResponseOk::new(signed1.clone(), sig(s), random(seed ^ 1), random(seed ^ 2));
        let message = encode_der(&rsp::AuthenticateServerResponse::authenticateResponseOk(ok)).unwrap();
        let part = signed::euicc_signed1(&message).unwrap();
        prop_assert_eq!(part.signed, &encode_der(&signed1).unwrap()[..]);
        prop_assert_eq!(part.signature, &sig(s)[..]);
        prop_assert_eq!(part.signature_tlv, &tlv(0x5F37, &sig(s))[..]);
        assert_refuses_damage(&message, signed::euicc_signed1)?;
    }

    #[test]
    fn euicc_signed2_from_prepare_download_response(signed2 in strategy::<rsp::EUICCSigned2>(), s in any::<u8>()) {
        let ok = rsp::PrepareDownloadResponseOk::new(signed2.clone(), sig(s));
        let message = encode_der(&rsp::PrepareDownloadResponse::downloadResponseOk(ok)).unwrap();
        let part = signed::euicc_signed2(&message).unwrap();
        prop_assert_eq!(part.signed, &encode_der(&signed2).unwrap()[..]);
        prop_assert_eq!(part.signature, &sig(s)[..]);
        assert_refuses_damage(&message, signed::euicc_signed2)?;
    }

    #[test]
    fn server_signed1_from_authenticate_server_request(seed in any::<u64>(), s in any::<u8>()) {
        let signed1: rsp::ServerSigned1 = random(seed);
        let request = rsp::AuthenticateServerRequest::new(
            signed1.clone(), sig(s), random(seed ^ 1), random(seed ^ 2), random(seed ^ 3));
        let message = encode_der(&request).unwrap();
        let part = signed::server_signed1(&message).unwrap();
        prop_assert_eq!(part.signed, &encode_der(&signed1).unwrap()[..]);
        prop_assert_eq!(part.signature, &sig(s)[..]);
        assert_refuses_damage(&message, signed::server_signed1)?;
    }

    #[test]
    fn smdp_signed2_from_prepare_download_request(seed in any::<u64>(), s in any::<u8>()) {
        let signed2: rsp::SmdpSigned2 = random(seed);
        let request = rsp::PrepareDownloadRequest::new(signed2.clone(), sig(s), random(seed ^ 1), random(seed ^ 2));
        let message = encode_der(&request).unwrap();
        let part = signed::smdp_signed2(&message).unwrap();
        prop_assert_eq!(part.signed, &encode_der(&signed2).unwrap()[..]);
        prop_assert_eq!(part.signature, &sig(s)[..]);
        assert_refuses_damage(&message, signed::smdp_signed2)?;
    }

    #[test]
    fn profile_installation_result_data(data in strategy::<rsp::ProfileInstallationResultData>(), s in any::<u8>()) {
        let pir = rsp::ProfileInstallationResult::new(data.clone(), rsp::EuiccSignPIR(sig(s)));
        let message = encode_der(&pir).unwrap();
        let part = signed::profile_installation_result(&message).unwrap();
        prop_assert_eq!(part.signed, &encode_der(&data).unwrap()[..]);
        prop_assert_eq!(&part.signed[..2], &[0xBF, 0x27]);
        prop_assert_eq!(part.signature, &sig(s)[..]);
        assert_refuses_damage(&message, signed::profile_installation_result)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for f in [signed::euicc_signed1, signed::euicc_signed2, signed::server_signed1,
                  signed::smdp_signed2, signed::profile_installation_result] {
            let _ = f(&bytes);
            // Also behind each outer tag, so the inner checks are reached.
            for outer in [0xBF38u32, 0xBF21, 0xBF37] {
                let _ = f(&tlv(outer, &bytes));
                let _ = f(&tlv(outer, &tlv(0xA0, &bytes)));
            }
        }
    }
}

#[test]
fn signed_part_is_taken_as_received_not_re_encoded() {
    // euiccSigned2 with a non-minimal (long form) length: valid BER that a
    // DER re-encoding would change. The signed slice must keep it.
    let inner = [tlv(0x80, &[1, 2, 3]), tlv(0x5F49, &[4; 65])].concat();
    let mut signed2 = vec![0x30, 0x81, inner.len() as u8];
    signed2.extend_from_slice(&inner);
    let ok = [signed2.clone(), tlv(0x5F37, &[9; 64])].concat();
    let message = tlv(0xBF21, &tlv(0xA0, &ok));
    let part = signed::euicc_signed2(&message).unwrap();
    assert_eq!(part.signed, &signed2[..]);
    assert_eq!(part.signature, &[9; 64]);

    // A changed byte inside the signed part is returned as changed.
    let mut tampered = message.clone();
    let at = message.len() - 64 - 3 - 10;
    tampered[at] ^= 0xFF;
    let part = signed::euicc_signed2(&tampered).unwrap();
    assert_ne!(part.signed, &signed2[..]);
}

#[test]
fn error_alternatives_are_reported() {
    let error =
        rsp::AuthenticateResponseError::new(random(1), rsp::AuthenticateErrorCode(3.into()));
    let message = encode_der(&rsp::AuthenticateServerResponse::authenticateResponseError(
        error,
    ))
    .unwrap();
    assert_eq!(
        signed::euicc_signed1(&message),
        Err(Error::ErrorAlternative {
            message: "AuthenticateServerResponse",
            tag: 0xA1
        })
    );
    let error = rsp::PrepareDownloadResponseError::new(random(2), rsp::DownloadErrorCode(1.into()));
    let message = encode_der(&rsp::PrepareDownloadResponse::downloadResponseError(error)).unwrap();
    assert!(matches!(
        signed::euicc_signed2(&message),
        Err(Error::ErrorAlternative { tag: 0xA1, .. })
    ));
}

#[test]
fn wrong_shapes_are_refused() {
    let signed = tlv(0x30, &tlv(0x80, &[1]));
    let good_sig = tlv(0x5F37, &[7; 64]);
    // Wrong outer tag.
    let message = tlv(
        0xBF22,
        &tlv(0xA0, &[signed.clone(), good_sig.clone()].concat()),
    );
    assert_eq!(
        signed::euicc_signed2(&message),
        Err(Error::Tlv(TlvError::UnexpectedTag {
            expected: 0xBF21,
            found: 0xBF22
        }))
    );
    // Signature of 63 bytes.
    let short = tlv(0x5F37, &[7; 63]);
    let message = tlv(0xBF38, &[signed.clone(), short].concat());
    assert_eq!(
        signed::server_signed1(&message),
        Err(Error::SignatureLength {
            tag: 0x5F37,
            len: 63
        })
    );
    // Signature first, signed part second.
    let message = tlv(0xBF21, &[good_sig.clone(), signed.clone()].concat());
    assert!(matches!(
        signed::smdp_signed2(&message),
        Err(Error::Tlv(TlvError::UnexpectedTag { expected: 0x30, .. }))
    ));
    // Signature missing.
    let message = tlv(0xBF37, &tlv(0xBF27, &[]));
    assert_eq!(
        signed::profile_installation_result(&message),
        Err(Error::Tlv(TlvError::Missing(0x5F37)))
    );
    // Garbage after the signature inside the outer element.
    let message = tlv(
        0xBF21,
        &[signed.clone(), good_sig.clone(), vec![0x04, 0x05]].concat(),
    );
    assert!(matches!(
        signed::smdp_signed2(&message),
        Err(Error::Tlv(TlvError::Truncated { .. }))
    ));
    // Two CHOICE alternatives at once.
    let ok = tlv(0xA0, &[signed.clone(), good_sig.clone()].concat());
    let message = tlv(0xBF38, &[ok.clone(), ok].concat());
    assert!(matches!(
        signed::euicc_signed1(&message),
        Err(Error::Tlv(TlvError::TrailingBytes(_)))
    ));
}

#[test]
fn es9_fields_arrive_as_base64() {
    let signed1: rsp::ServerSigned1 = random(5);
    let der = encode_der(&signed1).unwrap();
    let sig_tlv = tlv(0x5F37, &[3; 64]);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed_bytes = signed::decode_base64("serverSigned1", &b64.encode(&der)).unwrap();
    let sig_bytes = signed::decode_base64("serverSignature1", &b64.encode(&sig_tlv)).unwrap();
    let part = signed::from_parts(&signed_bytes, &sig_bytes).unwrap();
    assert_eq!(part.signed, &der[..]);
    assert_eq!(part.signature, &[3; 64]);
    assert_eq!(
        signed::decode_base64("serverSigned1", "not base64!"),
        Err(Error::Base64 {
            field: "serverSigned1"
        })
    );
    // The signature field must be the 5F37 TLV, the signed field one SEQUENCE.
    assert!(signed::from_parts(&der, &[3; 64]).is_err());
    assert!(signed::from_parts(&[der.clone(), vec![0]].concat(), &sig_tlv).is_err());

    // The SM-DP+ side: a whole AuthenticateServerResponse in base64.
    let ok = rsp::AuthenticateResponseOk::new(random(6), sig(1), random(7), random(8));
    let message = encode_der(&rsp::AuthenticateServerResponse::authenticateResponseOk(ok)).unwrap();
    let received =
        signed::decode_base64("authenticateServerResponse", &b64.encode(&message)).unwrap();
    let part = signed::euicc_signed1(&received).unwrap();
    let outer = Tlv::parse_exact(&received).unwrap();
    assert!(
        outer
            .raw
            .windows(part.signed.len())
            .any(|w| w == part.signed)
    );
}
