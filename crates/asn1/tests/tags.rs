//! Known-answer encodings: the generated types put the tags SGP.22 / SGP.32
//! specify (outer `BFxx` tags, explicit tags around CHOICEs, automatic tags
//! of tagged SEQUENCEs, tagged SEQUENCE OF elements), checked byte for byte
//! against encodings written out by hand from the ASN.1 and the spec's tag
//! comments, and against real encodings from the published BSP vectors.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use base64::Engine as _;
use ferrosim_asn1::rasn::types::{
    BitString, FixedOctetString, Integer, ObjectIdentifier, OctetString,
};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der, pkix, rsp, sgp32};
use support::{Gen, Rng};

fn h(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).unwrap()
}

fn tid() -> rsp::TransactionId {
    rsp::TransactionId(OctetString::from_static(&[1, 2, 3]))
}

/// OID 2.999.10 (`06 03 88 37 0A`).
fn oid() -> ObjectIdentifier {
    ObjectIdentifier::new(vec![2, 999, 10]).unwrap()
}

fn iccid() -> rsp::Iccid {
    rsp::Iccid(FixedOctetString::new([
        0x98, 0x10, 0x32, 0x54, 0x76, 0x98, 0x10, 0x32, 0x54, 0xF6,
    ]))
}

fn sig(byte: u8) -> OctetString {
    OctetString::from(vec![byte; 64])
}

fn certificate(seed: u64) -> pkix::Certificate {
    pkix::Certificate::generate(&mut Rng::new(seed), 0)
}

/// Encodes, compares with `expected`, and decodes back to the same value.
fn assert_der<T>(value: &T, expected: &[u8])
where
    T: rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug,
{
    let der = encode_der(value).unwrap();
    assert_eq!(hex::encode(&der), hex::encode(expected));
    assert_eq!(&decode_der::<T>(&der).unwrap(), value);
}

fn child_tags(tlv: &Tlv<'_>) -> Vec<u32> {
    tlv.children().map(|c| c.unwrap().tag).collect()
}

#[test]
fn cancel_session_request_is_bf41_with_automatic_tags() {
    let value = rsp::CancelSessionRequest::new(tid(), rsp::CancelSessionReason(Integer::from(1)));
    assert_der(&value, &h("bf41 08 80 03 010203 81 01 01"));
}

#[test]
fn cancel_session_response_ok_is_bf41_a0() {
    let signed = rsp::EuiccCancelSessionSigned::new(
        tid(),
        oid(),
        rsp::CancelSessionReason(Integer::from(1)),
    );
    let ok = rsp::CancelSessionResponseOk::new(signed, sig(0xAA));
    let value = rsp::CancelSessionResponse::cancelSessionResponseOk(ok);
    let expected = [
        h("bf41 54 a0 52 30 0d 80 03 010203 81 03 88370a 82 01 01 5f37 40"),
        vec![0xAA; 64],
    ]
    .concat();
    assert_der(&value, &expected);
}

#[test]
fn prepare_download_response_is_bf21_with_explicit_choice() {
    // downloadErrorCode is untagged next to the tagged transactionId [0], so
    // no automatic tagging: it stays a universal INTEGER (02).
    let error =
        rsp::PrepareDownloadResponseError::new(tid(), rsp::DownloadErrorCode(Integer::from(1)));
    assert_der(
        &rsp::PrepareDownloadResponse::downloadResponseError(error),
        &h("bf21 0a a1 08 80 03 010203 02 01 01"),
    );

    let otpk = OctetString::from([vec![0x04], vec![0x11; 64]].concat());
    let signed2 = rsp::EUICCSigned2::new(tid(), otpk, None);
    let ok = rsp::PrepareDownloadResponseOk::new(signed2, sig(0xBB));
    let expected = [
        h("bf21 81 91 a0 81 8e 30 49 80 03 010203 5f49 41 04"),
        vec![0x11; 64],
        h("5f37 40"),
        vec![0xBB; 64],
    ]
    .concat();
    assert_der(
        &rsp::PrepareDownloadResponse::downloadResponseOk(ok),
        &expected,
    );
}

#[test]
fn profile_installation_result_is_bf37_bf27() {
    let mut install = BitString::new();
    install.push(true); // notificationInstall(0)
    let metadata = rsp::NotificationMetadata::new(
        Integer::from(5),
        rsp::NotificationEvent(install),
        "example.com".to_string(),
        Some(iccid()),
    );
    let success = rsp::SuccessResult::new(
        OctetString::from(vec![0xA0; 16]),
        OctetString::from_static(&[0x00]),
    );
    let data = rsp::ProfileInstallationResultData::new(
        tid(),
        metadata,
        oid(),
        rsp::ProfileInstallationResultDataFinalResult::successResult(success),
    );
    let value = rsp::ProfileInstallationResult::new(data, rsp::EuiccSignPIR(sig(0xCC)));
    let expected = [
        h("bf37 81 8c bf27 46 80 03 010203"),
        h("bf2f 20 80 01 05 81 02 0780 0c 0b"),
        b"example.com".to_vec(),
        h("5a 0a 98103254769810325 4f6"),
        h("06 03 88370a a2 17 a0 15 4f 10"),
        vec![0xA0; 16],
        h("04 01 00 5f37 40"),
        vec![0xCC; 64],
    ]
    .concat();
    assert_der(&value, &expected);
    // Also as a PendingNotification (handleNotification).
    let pending = rsp::PendingNotification::profileInstallationResult(value);
    assert_der(&pending, &expected);
}

#[test]
fn euicc_info1_is_bf20_with_tagged_lists() {
    let ski = pkix::SubjectKeyIdentifier(pkix::KeyIdentifier(OctetString::from(vec![0x5A; 20])));
    let value = rsp::EUICCInfo1::new(
        rsp::VersionType(FixedOctetString::new([2, 2, 0])),
        vec![ski.clone()],
        vec![ski],
    );
    let expected = [
        h("bf20 35 82 03 020200 a9 16 04 14"),
        vec![0x5A; 20],
        h("aa 16 04 14"),
        vec![0x5A; 20],
    ]
    .concat();
    assert_der(&value, &expected);
}

#[test]
fn get_euicc_challenge_response_is_bf2e() {
    let value = rsp::GetEuiccChallengeResponse::new(rsp::Octet16(FixedOctetString::new([7; 16])));
    assert_der(&value, &[h("bf2e 12 80 10"), vec![7; 16]].concat());
}

#[test]
fn profile_info_list_request_wraps_search_criteria_explicitly() {
    let value = rsp::ProfileInfoListRequest::new(
        Some(rsp::ProfileInfoListRequestSearchCriteria::iccid(iccid())),
        Some(OctetString::from_static(&[0x5A, 0x4F])),
    );
    assert_der(
        &value,
        &h("bf2d 12 a0 0c 5a 0a 98103254769810325 4f6 5c 02 5a4f"),
    );
    // No criteria: only the tag list.
    let value = rsp::ProfileInfoListRequest::new(None, Some(OctetString::from_static(&[0x5A])));
    assert_der(&value, &h("bf2d 03 5c 01 5a"));
}

#[test]
fn initiate_authentication_request_inside_the_es9_choice() {
    let info1 = rsp::EUICCInfo1::new(
        rsp::VersionType(FixedOctetString::new([2, 5, 0])),
        vec![],
        vec![],
    );
    let request = rsp::InitiateAuthenticationRequest::new(
        rsp::Octet16(FixedOctetString::new([9; 16])),
        "a.b".to_string(),
        info1,
    );
    let expected = [
        h("bf39 23 81 10"),
        vec![9; 16],
        h("83 03 612e62 bf20 09 82 03 020500 a9 00 aa 00"),
    ]
    .concat();
    assert_der(&request, &expected);
    // RemoteProfileProvisioningRequest ::= [2] CHOICE: explicit 'A2' around it.
    let wrapped = rsp::RemoteProfileProvisioningRequest::initiateAuthenticationRequest(request);
    assert_der(&wrapped, &[h("a2 26"), expected].concat());
}

#[test]
fn tagged_choice_inside_the_es9_response_choice_is_not_tagged_twice() {
    // InitiateAuthenticationResponse ::= [57] CHOICE {.., initiateAuthenticationError INTEGER}
    let response =
        rsp::InitiateAuthenticationResponse::initiateAuthenticationError(Integer::from(1));
    assert_der(&response, &h("bf39 03 81 01 01"));
    // `[57] InitiateAuthenticationResponse` re-tags the same [57]: A2 { BF39 { 81 .. } }.
    let wrapped = rsp::RemoteProfileProvisioningResponse::initiateAuthenticationResponse(response);
    assert_der(&wrapped, &h("a2 06 bf39 03 81 01 01"));
}

#[test]
fn signed_messages_have_the_documented_layout() {
    let server_signed1 = rsp::ServerSigned1::new(
        tid(),
        rsp::Octet16(FixedOctetString::new([1; 16])),
        "smdp.example".to_string(),
        rsp::Octet16(FixedOctetString::new([2; 16])),
    );
    let der = encode_der(&server_signed1).unwrap();
    let expected = [
        h("30 37 80 03 010203 81 10"),
        vec![1; 16],
        h("83 0c"),
        b"smdp.example".to_vec(),
        h("84 10"),
        vec![2; 16],
    ]
    .concat();
    assert_eq!(hex::encode(&der), hex::encode(&expected));

    let device = rsp::DeviceInfo::new(
        rsp::Octet4(FixedOctetString::new([0x35, 0x29, 0x06, 0x11])),
        rsp::DeviceCapabilities::new(
            None, None, None, None, None, None, None, None, None, None, None, None, None, None,
            None,
        ),
        None,
    );
    let ctx = rsp::CtxParams1::ctxParamsForCommonAuthentication(
        rsp::CtxParamsForCommonAuthentication::new(Some("MATCH".to_string()), device),
    );
    assert_eq!(
        hex::encode(encode_der(&ctx).unwrap()),
        hex::encode(h("a0 11 80 05 4d41544348 a1 08 80 04 35290611 a1 00"))
    );

    let ski = pkix::SubjectKeyIdentifier(pkix::KeyIdentifier(OctetString::from(vec![0x5A; 20])));
    let request = rsp::AuthenticateServerRequest::new(
        server_signed1.clone(),
        sig(0x01),
        ski,
        certificate(1),
        ctx.clone(),
    );
    let der = encode_der(&request).unwrap();
    let outer = Tlv::parse_tagged(&der, 0xBF38).unwrap();
    assert_eq!(child_tags(&outer), vec![0x30, 0x5F37, 0x04, 0x30, 0xA0]);

    let smdp_signed2 = rsp::SmdpSigned2::new(tid(), true, None);
    assert_eq!(
        hex::encode(encode_der(&smdp_signed2).unwrap()),
        hex::encode(h("30 08 80 03 010203 01 01 ff"))
    );
    let request = rsp::PrepareDownloadRequest::new(
        smdp_signed2,
        sig(0x02),
        Some(rsp::Octet32(FixedOctetString::new([3; 32]))),
        certificate(2),
    );
    let der = encode_der(&request).unwrap();
    let outer = Tlv::parse_tagged(&der, 0xBF21).unwrap();
    assert_eq!(child_tags(&outer), vec![0x30, 0x5F37, 0x04, 0x30]);
}

#[test]
fn bpp_elements_carry_their_segment_tags() {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(
            serde_json::from_str::<serde_json::Value>(
                &std::fs::read_to_string(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../testdata/vectors/bsp-kat.json"
                ))
                .unwrap(),
            )
            .unwrap()["bpp_decode"]["bound_profile_package_b64"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let outer = Tlv::parse_tagged(&bytes, 0xBF36).unwrap();
    let tags = child_tags(&outer);
    assert_eq!(&tags[..3], &[0xBF23, 0xA0, 0xA1]);
    for (container, segment) in [(0xA0, 0x87), (0xA1, 0x88), (0xA3, 0x86)] {
        let c = outer.require(container).unwrap();
        assert!(child_tags(&c).iter().all(|&t| t == segment));
    }
    // The typed BPP re-encodes its segments with the same tags.
    let bpp: rsp::BoundProfilePackage = decode_der(&bytes).unwrap();
    assert_eq!(encode_der(&bpp).unwrap(), bytes);
}

#[test]
fn es8_plain_commands_from_the_vectors_decode() {
    // ConfigureISDP and StoreMetadata as decrypted from the vectors' BPP.
    let configure: rsp::ConfigureISDPRequest = decode_der(&h("bf2400")).unwrap();
    assert_eq!(encode_der(&configure).unwrap(), h("bf2400"));
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/bsp-kat.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let plain = h(v["bpp_decode"]["store_metadata_plain"].as_str().unwrap());
    let metadata: rsp::StoreMetadataRequest = decode_der(&plain).unwrap();
    assert_eq!(metadata.iccid.0.as_ref(), &h("89000123456789012341")[..]);
    assert_eq!(encode_der(&metadata).unwrap(), plain);
}

#[test]
fn default_valued_profile_class_is_left_out() {
    // StoreMetadataRequest.profileClass [21] ProfileClass DEFAULT operational(2).
    let with = |class: i64| {
        rsp::StoreMetadataRequest::new(
            iccid(),
            "SP".to_string(),
            "P".to_string(),
            None,
            None,
            rsp::ProfileClass(Integer::from(class)),
            None,
            None,
            None,
            None,
            None,
        )
    };
    let default = encode_der(&with(2)).unwrap();
    assert_eq!(
        hex::encode(&default),
        hex::encode(h("bf25 13 5a 0a 98103254769810325 4f6 91 02 5350 92 01 50"))
    );
    let test_class = encode_der(&with(0)).unwrap();
    assert_eq!(
        hex::encode(&test_class),
        hex::encode(h(
            "bf25 16 5a 0a 98103254769810325 4f6 91 02 5350 92 01 50 95 01 00"
        ))
    );
    // Absent on the wire means operational.
    let decoded: rsp::StoreMetadataRequest = decode_der(&default).unwrap();
    assert_eq!(decoded.profile_class, rsp::ProfileClass(Integer::from(2)));
}

#[test]
fn default_true_boolean_is_left_out() {
    // SGP.32 CompactProfileInstallationResultData.iccidPresent BOOLEAN DEFAULT TRUE.
    let mut r = Rng::new(7);
    for _ in 0..50 {
        let value = sgp32::CompactProfileInstallationResultData::generate(&mut r, 0);
        let der = encode_der(&value).unwrap();
        let top = Tlv::parse_exact(&der).unwrap();
        let has_field = top.children().any(|c| c.unwrap().tag == 0x01);
        assert_eq!(has_field, !value.iccid_present, "{}", hex::encode(&der));
    }
}

#[test]
fn psmo_enable_keeps_its_application_tag() {
    let enable = sgp32::PsmoEnable::new(iccid(), Some(()));
    let value = sgp32::Psmo::enable(enable);
    assert_der(&value, &h("a3 0e 5a 0a 98103254769810325 4f6 05 00"));
}

#[test]
fn set_of_members_are_sorted_in_der() {
    // RelativeDistinguishedName ::= SET OF AttributeTypeAndValue.
    let atv = |arc: u32, text: u8| {
        pkix::AttributeTypeAndValue::new(
            pkix::AttributeType(ObjectIdentifier::new(vec![2, 5, 4, arc]).unwrap()),
            pkix::AttributeValue(rasn::types::Any::new(vec![0x0C, 0x01, text])),
        )
    };
    let unsorted = pkix::RelativeDistinguishedName(rasn::types::SetOf::from(vec![
        atv(10, b'O'),
        atv(3, b'C'),
    ]));
    let der = encode_der(&unsorted).unwrap();
    assert_eq!(
        hex::encode(&der),
        hex::encode(h(
            "31 14 30 08 06 03 550403 0c 01 43 30 08 06 03 55040a 0c 01 4f"
        ))
    );
}

/// Every type whose ASN.1 definition carries a tag comment (`-- Tag 'BF20'`)
/// encodes with exactly that outer tag.
#[test]
fn outer_tags_match_the_tag_comments_of_the_asn1() {
    struct Check {
        expected: std::collections::BTreeMap<String, Vec<u8>>,
        seen: Vec<String>,
        wrong: Vec<String>,
    }
    impl support::TypeVisitor for Check {
        fn visit<T>(&mut self, name: &str)
        where
            T: Gen + rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug,
        {
            let Some(tag) = self.expected.get(name) else {
                return;
            };
            self.seen.push(name.to_string());
            for seed in 0..8 {
                let der = encode_der(&T::generate(&mut Rng::new(seed), 0)).unwrap();
                if !der.starts_with(tag) {
                    self.wrong.push(format!(
                        "{name}: expected {}, got {}",
                        hex::encode(tag),
                        hex::encode(&der[..der.len().min(4)])
                    ));
                    return;
                }
            }
        }
    }
    let mut expected = std::collections::BTreeMap::new();
    for (file, module) in [
        ("RSPDefinitions", "rsp"),
        ("SGP32Definitions-v1.2", "sgp32"),
        ("SGP32Definitions", "sgp32_v1_0"),
    ] {
        let path = format!(
            "{}/../../testdata/asn1/{file}.asn1",
            env!("CARGO_MANIFEST_DIR")
        );
        for line in std::fs::read_to_string(path).unwrap().lines() {
            if let Some((name, tag)) = tag_comment(line) {
                expected.insert(format!("{module}::{}", name.replace('-', "")), tag);
            }
        }
    }
    assert!(
        expected.len() > 90,
        "only {} tag comments found",
        expected.len()
    );
    let mut check = Check {
        expected: expected.clone(),
        seen: Vec::new(),
        wrong: Vec::new(),
    };
    support::visit_all_types(&mut check);
    assert!(check.wrong.is_empty(), "{}", check.wrong.join("\n"));
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !check.seen.contains(k))
        .collect();
    assert!(missing.is_empty(), "types not generated: {missing:?}");
}

/// `Name ::= [..] ... -- Tag 'BF20'` -> `("Name", [0xBF, 0x20])`.
fn tag_comment(line: &str) -> Option<(String, Vec<u8>)> {
    let (name, rest) = line.split_once(" ::= [")?;
    if name.contains(' ') {
        return None;
    }
    let (_, comment) = rest.split_once("--")?;
    let lower = comment.to_ascii_lowercase();
    let after = &comment[lower.find("tag")? + 3..];
    let hex_run: String = after
        .trim_start_matches(|c: char| !c.is_ascii_hexdigit() || c.is_ascii_lowercase())
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    if hex_run.len() < 2 || !hex_run.len().is_multiple_of(2) {
        return None;
    }
    Some((name.to_string(), hex::decode(hex_run).ok()?))
}
