//! Known-answer tests from `testdata/vectors/bsp-kat.json` (public vectors
//! published with pySim): X9.63 KDF, ECKA, BSP segments, and a whole Bound
//! Profile Package decoded segment by segment.

#![allow(clippy::unwrap_used)] // test helpers unwrap on fixed, known-good vectors

use base64::Engine;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_crypto::bsp::{
    self, BspDecryptor, BspEncryptor, TAG_CONFIGURE_ISDP_SEGMENT, TAG_PROFILE_SEGMENT,
    TAG_STORE_METADATA_SEGMENT,
};
use ferrosim_crypto::ecka::OneTimeKeyPair;
use ferrosim_crypto::kdf::{self, SessionKeys};
use ferrosim_crypto::{Error, SharedSecret};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/bsp-kat.json"
    );
    let text = std::fs::read_to_string(path).expect("read bsp-kat.json");
    serde_json::from_str(&text).expect("parse bsp-kat.json")
}

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_else(|| panic!("missing {key}"))).expect("hex")
}

fn arr16(v: &Value, key: &str) -> [u8; 16] {
    hex_field(v, key).try_into().expect("16 bytes")
}

fn b64_field(v: &Value, key: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v[key].as_str().expect(key))
        .expect("base64")
}

fn session_keys(v: &Value) -> SessionKeys {
    SessionKeys {
        initial_mcv: arr16(v, "initial_mcv"),
        s_enc: arr16(v, "s_enc"),
        s_mac: arr16(v, "s_mac"),
    }
}

#[test]
fn kdf_vectors() {
    let v = vectors();
    let cases = v["kdf"].as_array().expect("kdf array");
    assert!(!cases.is_empty());
    for case in cases {
        let z = hex_field(case, "shared_secret");
        let key_type =
            u8::from_str_radix(case["key_type"].as_str().expect("key_type"), 16).unwrap();
        let key_length = u8::try_from(case["key_length"].as_u64().expect("key_length")).unwrap();
        let host_id = hex_field(case, "host_id");
        let eid = hex_field(case, "eid");
        let keys = kdf::derive_session_keys_with(&z, key_type, key_length, &host_id, &eid).unwrap();
        assert_eq!(keys, session_keys(case));
        // The RSP convenience entry point gives the same result.
        let secret = SharedSecret::from_slice(&z).unwrap();
        let eid16: [u8; 16] = eid.try_into().unwrap();
        assert_eq!(
            kdf::derive_session_keys(&secret, &host_id, &eid16).unwrap(),
            keys
        );
    }
}

#[test]
fn ecka_vector() {
    let v = &vectors()["ecka"];
    assert_eq!(v["curve"], "P-256");
    let smdp = OneTimeKeyPair::from_scalar(&hex_field(v, "smdp_otsk")).unwrap();
    assert_eq!(smdp.public_sec1().as_slice(), hex_field(v, "smdp_otpk"));
    let secret = smdp.agree(&hex_field(v, "euicc_otpk")).unwrap();
    assert_eq!(secret.as_bytes().as_slice(), hex_field(v, "shared_secret"));
}

/// Runs the steps of one `segments_*` vector through one encryptor and one
/// decryptor, so the counter and MCV carry over between steps.
fn run_segment_steps(name: &str) {
    let v = &vectors()[name];
    let keys = session_keys(v);
    let mut enc = BspEncryptor::new(&keys);
    let mut dec = BspDecryptor::new(&keys);
    let steps = v["steps"].as_array().expect("steps");
    assert!(!steps.is_empty());
    for (i, step) in steps.iter().enumerate() {
        let tag = u8::from_str_radix(step["tag"].as_str().expect("tag"), 16).unwrap();
        let plain = hex_field(step, "plain");
        let expected = hex_field(step, "out");
        let (out, back) = match step["op"].as_str() {
            Some("encrypt_and_mac") => {
                let out = enc.encrypt_and_mac(tag, &plain).unwrap();
                let back = dec.verify_and_decrypt(&expected).unwrap();
                assert_eq!(back.tag, tag);
                (out, back.data)
            }
            Some("mac_only") => {
                let out = enc.mac_only(tag, &plain).unwrap();
                let back = dec.verify_mac_only(&expected).unwrap();
                assert_eq!(back.tag, tag);
                (out, back.data.to_vec())
            }
            other => panic!("{name} step {i}: unknown op {other:?}"),
        };
        assert_eq!(hex::encode(&out), hex::encode(&expected), "{name} step {i}");
        assert_eq!(back, plain, "{name} step {i}");
    }
}

#[test]
fn segments_with_session_keys() {
    run_segment_steps("segments_session_keys");
}

#[test]
fn segments_with_profile_keys() {
    run_segment_steps("segments_profile_keys");
}

#[test]
fn segment_vectors_reject_tampering_and_reordering() {
    let v = &vectors()["segments_session_keys"];
    let keys = session_keys(v);
    let steps = v["steps"].as_array().expect("steps");
    let first = hex_field(&steps[0], "out");
    let second = hex_field(&steps[1], "out");
    // Second segment first: wrong counter and MCV.
    let mut dec = BspDecryptor::new(&keys);
    assert!(matches!(
        dec.verify_mac_only(&second),
        Err(Error::MacMismatch)
    ));
    // Flipped MAC byte.
    let mut bad = first.clone();
    *bad.last_mut().unwrap() ^= 0x80;
    assert!(matches!(
        dec.verify_and_decrypt(&bad),
        Err(Error::MacMismatch)
    ));
    // Truncated.
    assert!(dec.verify_and_decrypt(&first[..first.len() - 1]).is_err());
    // The genuine sequence still opens after the failures.
    dec.verify_and_decrypt(&first).unwrap();
    dec.verify_mac_only(&second).unwrap();
}

/// The `bpp_decode` package frames each segment as the *content* of its
/// `[7]`/`[8]`/`[6]` OCTET STRING (so `A0 { 87 1A { 87 18 ... } }`), as an
/// older osmo-smdpp wrote it through its ASN.1 encoder; the inner TLV is the
/// segment the MAC covers. Accept both framings: if the element's content is
/// itself one TLV with the same tag that fills it exactly, that is the segment.
fn segment_of(element: Tlv<'_>) -> &[u8] {
    match Tlv::parse_exact(element.value) {
        Ok(inner) if inner.tag == element.tag => inner.raw,
        _ => element.raw,
    }
}

#[test]
fn bound_profile_package_decodes() {
    let v = &vectors()["bpp_decode"];
    let bpp = b64_field(v, "bound_profile_package_b64");
    let upp = b64_field(v, "unprotected_profile_package_b64");
    let keys = session_keys(v);

    let root = Tlv::parse_tagged(&bpp, 0xBF36).unwrap();
    let init = root.require(0xBF23).unwrap();
    assert_eq!(init.require(0x82).unwrap().value, &[0x01]);
    let crt = init.require(0xA6).unwrap();
    assert_eq!(crt.require(0x80).unwrap().value, &[kdf::KEY_TYPE_AES]);
    assert_eq!(crt.require(0x81).unwrap().value, &[kdf::KEY_LENGTH_AES128]);
    assert_eq!(init.require(0x5F49).unwrap().value.len(), 65);
    assert_eq!(init.require(0x5F37).unwrap().value.len(), 64);

    let mut dec = BspDecryptor::new(&keys);

    // A0: ConfigureISDP, one encrypted segment.
    let a0 = root.require(0xA0).unwrap();
    let segments: Vec<_> = a0.children().map(Result::unwrap).collect();
    assert_eq!(segments.len(), 1);
    let configure = dec.verify_and_decrypt(segment_of(segments[0])).unwrap();
    assert_eq!(configure.tag, TAG_CONFIGURE_ISDP_SEGMENT);
    assert_eq!(configure.data, hex_field(v, "configure_isdp_plain"));

    // A1: StoreMetadata, MAC-only segments.
    let a1 = root.require(0xA1).unwrap();
    let mut metadata = Vec::new();
    for seg in a1.children() {
        let opened = dec.verify_mac_only(segment_of(seg.unwrap())).unwrap();
        assert_eq!(opened.tag, TAG_STORE_METADATA_SEGMENT);
        metadata.extend_from_slice(opened.data);
    }
    assert_eq!(metadata, hex_field(v, "store_metadata_plain"));
    assert_eq!(dec.block_counter(), 3);

    // A2 (ReplaceSessionKeys) is optional; when present it carries the PPKs.
    // This package omits it and protects A3 with the PPKs given beside it.
    let ppk = match root.find(0xA2).unwrap() {
        Some(a2) => {
            let seg = segment_of(a2.require(0x87).unwrap());
            let replace = dec.verify_and_decrypt(seg).unwrap();
            bsp::decode_replace_session_keys(&replace.data).unwrap()
        }
        None => SessionKeys {
            initial_mcv: arr16(v, "ppk_initial_mcv"),
            s_enc: arr16(v, "ppk_enc"),
            s_mac: arr16(v, "ppk_mac"),
        },
    };
    assert_eq!(ppk.s_enc, arr16(v, "ppk_enc"));
    assert_eq!(ppk.s_mac, arr16(v, "ppk_mac"));
    assert_eq!(ppk.initial_mcv, arr16(v, "ppk_initial_mcv"));

    // A3: profile elements under the PPKs (counter restarts at 1). Its full
    // segments are 1036 bytes, over the 1020-byte limit: a strict receiver
    // refuses them, a lenient one accepts.
    let a3 = root.require(0xA3).unwrap();
    let first = segment_of(a3.children().next().unwrap().unwrap());
    assert_eq!(first.len(), bsp::LENIENT_MAX_SEGMENT_LEN);
    let mut strict = BspDecryptor::new(&ppk);
    assert!(matches!(
        strict.verify_and_decrypt(first),
        Err(Error::SegmentTooLong {
            len: 1036,
            max: 1020
        })
    ));

    dec.replace_session_keys(&ppk);
    let mut dec = dec.with_max_segment_len(bsp::LENIENT_MAX_SEGMENT_LEN);
    assert_eq!(dec.block_counter(), 1);
    let mut profile = Vec::with_capacity(upp.len());
    let mut count = 0;
    for seg in a3.children() {
        let tag = dec
            .verify_and_decrypt_into(segment_of(seg.unwrap()), &mut profile)
            .unwrap();
        assert_eq!(tag, TAG_PROFILE_SEGMENT);
        count += 1;
    }
    assert_eq!(count, 13);
    assert_eq!(profile.len(), upp.len());
    assert!(
        profile == upp,
        "decrypted profile differs from the unprotected package"
    );
}

#[test]
fn bound_profile_package_sender_side_matches() {
    // Protecting the same ConfigureISDP and StoreMetadata with the same keys
    // reproduces the reference segments byte for byte.
    let v = &vectors()["bpp_decode"];
    let bpp = b64_field(v, "bound_profile_package_b64");
    let root = Tlv::parse_tagged(&bpp, 0xBF36).unwrap();
    let mut enc = BspEncryptor::new(&session_keys(v));

    let a0 = enc
        .encrypt_and_mac(
            TAG_CONFIGURE_ISDP_SEGMENT,
            &hex_field(v, "configure_isdp_plain"),
        )
        .unwrap();
    let reference = root
        .require(0xA0)
        .unwrap()
        .children()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(a0, segment_of(reference));
    let a1 = enc
        .mac_only_segments(
            TAG_STORE_METADATA_SEGMENT,
            &hex_field(v, "store_metadata_plain"),
        )
        .unwrap();
    assert_eq!(a1.len(), 1);
    let reference = root
        .require(0xA1)
        .unwrap()
        .children()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(a1[0], segment_of(reference));
}

#[test]
fn full_bound_profile_package_round_trip_with_replace_session_keys() {
    // Build a whole BPP body (A0, A1, A2, A3) from the vector's plaintexts with
    // our sender, then open it with our receiver under a strict 1020-byte limit.
    let v = &vectors()["bpp_decode"];
    let upp = b64_field(v, "unprotected_profile_package_b64");
    let keys = session_keys(v);
    let ppk = SessionKeys {
        initial_mcv: arr16(v, "ppk_initial_mcv"),
        s_enc: arr16(v, "ppk_enc"),
        s_mac: arr16(v, "ppk_mac"),
    };
    let mut enc = BspEncryptor::new(&keys);
    let a0 = enc
        .encrypt_and_mac(
            TAG_CONFIGURE_ISDP_SEGMENT,
            &hex_field(v, "configure_isdp_plain"),
        )
        .unwrap();
    let a1 = enc
        .mac_only_segments(
            TAG_STORE_METADATA_SEGMENT,
            &hex_field(v, "store_metadata_plain"),
        )
        .unwrap();
    let a2 = enc
        .encrypt_and_mac(
            TAG_CONFIGURE_ISDP_SEGMENT,
            &bsp::encode_replace_session_keys(&ppk),
        )
        .unwrap();
    enc.replace_session_keys(&ppk);
    let a3 = enc
        .encrypt_and_mac_segments(TAG_PROFILE_SEGMENT, &upp)
        .unwrap();
    assert_eq!(a3.len(), upp.len().div_ceil(bsp::MAX_ENCRYPTED_PLAIN_LEN));
    assert!(a3.iter().all(|s| s.len() <= bsp::MAX_SEGMENT_LEN));

    let mut dec = BspDecryptor::new(&keys);
    assert_eq!(
        dec.verify_and_decrypt(&a0).unwrap().data,
        hex_field(v, "configure_isdp_plain")
    );
    let mut metadata = Vec::new();
    for seg in &a1 {
        metadata.extend_from_slice(dec.verify_mac_only(seg).unwrap().data);
    }
    assert_eq!(metadata, hex_field(v, "store_metadata_plain"));
    let replace = dec.verify_and_decrypt(&a2).unwrap();
    assert_eq!(replace.tag, TAG_CONFIGURE_ISDP_SEGMENT);
    let received = bsp::decode_replace_session_keys(&replace.data).unwrap();
    assert_eq!(received, ppk);
    dec.replace_session_keys(&received);
    let mut profile = Vec::new();
    for seg in &a3 {
        dec.verify_and_decrypt_into(seg, &mut profile).unwrap();
    }
    assert!(profile == upp);
}
