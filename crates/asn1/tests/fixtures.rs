//! Real-world encodings decode with the generated types: TS.48 profile
//! packages, and the Bound Profile Package of the published BSP vectors.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ferrosim_asn1::{decode_der, decode_der_prefix, encode_der, pe, rsp, tlv::Tlv};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn vectors() -> serde_json::Value {
    let text = std::fs::read_to_string(testdata().join("vectors/bsp-kat.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn b64(v: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

/// Decodes `bytes` element by element as PEDefinitions `ProfileElement`s,
/// checking that each re-encodes to exactly the bytes it came from.
/// Returns the outer tag of each element.
fn decode_profile_elements(bytes: &[u8]) -> Vec<u32> {
    let mut rest = bytes;
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (raw, _) = Tlv::parse(rest).unwrap();
        let (element, after): (pe::ProfileElement, _) = decode_der_prefix(rest)
            .unwrap_or_else(|e| panic!("element #{} tag {:#X}: {e}", tags.len(), raw.tag));
        assert_eq!(
            encode_der(&element).unwrap(),
            raw.raw,
            "element #{} tag {:#X} re-encodes differently",
            tags.len(),
            raw.tag
        );
        tags.push(raw.tag);
        rest = after;
    }
    tags
}

#[test]
fn ts48_profile_packages_decode_as_profile_elements() {
    let mut checked = 0;
    for entry in std::fs::read_dir(testdata().join("upp")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("der") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let tags = decode_profile_elements(&bytes);
        let tag_list: Vec<String> = tags.iter().map(|t| format!("{t:X}")).collect();
        println!("{}: {}", path.display(), tag_list.join(" "));
        assert_eq!(
            tags.first(),
            Some(&0xA0),
            "a package starts with the ProfileHeader"
        );
        assert!(tags.contains(&0xB0), "the MF element ([16]) is present");
        assert_eq!(
            tags.last(),
            Some(&0xAA),
            "a package ends with the End element"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn bpp_from_vectors_decodes_and_re_encodes_identically() {
    let v = vectors();
    let bytes = b64(&v["bpp_decode"]["bound_profile_package_b64"]);
    let bpp: rsp::BoundProfilePackage = decode_der(&bytes).unwrap();
    assert_eq!(encode_der(&bpp).unwrap(), bytes);
    // InitialiseSecureChannel: remoteOpId installBoundProfilePackage(1).
    assert_eq!(
        bpp.initialise_secure_channel_request.remote_op_id.0,
        rasn::types::Integer::from(1)
    );
    assert_eq!(bpp.first_sequence_of87.0.len(), 1);
    assert!(!bpp.sequence_of88.0.is_empty());
    assert!(!bpp.sequence_of86.0.is_empty());
}

#[test]
fn unprotected_package_from_vectors_decodes_as_profile_elements() {
    let v = vectors();
    let bytes = b64(&v["bpp_decode"]["unprotected_profile_package_b64"]);
    let tags = decode_profile_elements(&bytes);
    assert_eq!(tags.first(), Some(&0xA0));
    assert_eq!(tags.last(), Some(&0xAA));
}
