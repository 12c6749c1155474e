//! The ESipa JSON binding: request bodies become the DER message the ASN.1
//! binding carries (read by the same reader), answers carry the inner DER as
//! base64, and malformed bodies are refused with a typed error.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_asn1::esipa::{Sgp32Version, read_ipa_message};
use ferrosim_asn1::json::esipa::{Function, JsonError, answer_from_message, request_to_der};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};

fn h(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).unwrap()
}

const EID: &str = "89049032123451234512345678901235";

fn b64(bytes: &[u8]) -> String {
    ferrosim_asn1::json::Base64(bytes.to_vec()).encode()
}

#[test]
fn get_eim_package_body_is_the_asn1_request() {
    let body = format!(
        r#"{{"eidValue":"{EID}","notifyStateChange":true,"stateChangeCause":1,"rPlmn":"{}"}}"#,
        b64(&[0x62, 0xF2, 0x10])
    );
    let der = request_to_der(Function::GetEimPackage, body.as_bytes()).unwrap();
    assert_eq!(
        der,
        [h("bf4f 1c 5a 10"), h(EID), h("80 00 81 01 01 82 03 62f210")].concat()
    );
    let read = read_ipa_message(&der, None).unwrap();
    assert_eq!(read.read_as, Sgp32Version::V1_2);
    // The ASN.1 spelling of rPLMN is accepted too; notifyStateChange false is absent.
    let body = format!(r#"{{"eidValue":"{EID}","notifyStateChange":false,"rPLMN":"YvIQ"}}"#);
    let der = request_to_der(Function::GetEimPackage, body.as_bytes()).unwrap();
    assert_eq!(
        der,
        [h("bf4f 17 5a 10"), h(EID), h("82 03 62f210")].concat()
    );
}

#[test]
fn provide_result_body_keeps_the_received_bytes() {
    let result = h("bf51 0a a2 08 80 03 65696d 84 01 07");
    let body = format!(
        r#"{{"eidValue":"{EID}","eimPackageResult":"{}"}}"#,
        b64(&result)
    );
    let der = request_to_der(Function::ProvideEimPackageResult, body.as_bytes()).unwrap();
    assert_eq!(der, [h("bf50 1f 5a 10"), h(EID), result.clone()].concat());
    let read = read_ipa_message(&der, None).unwrap();
    assert_eq!(read.package_results.len(), 1);
    let body = format!(
        r#"{{"provideEimPackageResult":"{}"}}"#,
        b64(&[h("bf50 0d"), result].concat())
    );
    let der = request_to_der(Function::HandleNotification, body.as_bytes()).unwrap();
    assert_eq!(
        read_ipa_message(&der, None).unwrap().package_results.len(),
        1
    );
}

#[test]
fn relay_bodies_become_esipa_requests() {
    let body = format!(
        r#"{{"transactionId":"0102","cancelSessionResponse":"{}"}}"#,
        b64(&h("bf41 03 81 01 05"))
    );
    let der = request_to_der(Function::CancelSession, body.as_bytes()).unwrap();
    assert_eq!(der, h("bf41 09 80 02 0102 a1 03 81 01 05"));
    let _: sgp32::CancelSessionRequestEsipa = decode_der(&der).unwrap();

    let info1 = encode_der(&rsp::EUICCInfo1::new(
        rsp::VersionType(FixedOctetString::new([2, 3, 0])),
        vec![],
        vec![],
    ))
    .unwrap();
    let body = format!(
        r#"{{"euiccChallenge":"{}","euiccInfo1":"{}","smdpAddress":"a.b","eimTransactionId":"aa"}}"#,
        b64(&[7; 16]),
        b64(&info1)
    );
    let der = request_to_der(Function::InitiateAuthentication, body.as_bytes()).unwrap();
    let request: sgp32::InitiateAuthenticationRequestEsipa = decode_der(&der).unwrap();
    assert_eq!(request.smdp_address.as_deref(), Some("a.b"));
    assert_eq!(request.eim_transaction_id.unwrap().0.as_ref(), &[0xAA]);
}

#[test]
fn malformed_bodies_are_refused() {
    let cases: &[(Function, &str)] = &[
        (Function::GetEimPackage, "{}"),
        (Function::GetEimPackage, r#"{"eidValue":"1234"}"#),
        (
            Function::GetEimPackage,
            r#"{"eidValue":"zz049032123451234512345678901235"}"#,
        ),
        (Function::GetEimPackage, "not json"),
        (
            Function::ProvideEimPackageResult,
            r#"{"eimPackageResult":"%%"}"#,
        ),
        (
            Function::ProvideEimPackageResult,
            r#"{"eimPackageResult":"AQ=="}"#,
        ),
        (Function::HandleNotification, "{}"),
        (
            Function::HandleNotification,
            r#"{"pendingNotification":"MAA=","provideEimPackageResult":"MAA="}"#,
        ),
        (
            Function::InitiateAuthentication,
            r#"{"euiccChallenge":"AQI="}"#,
        ),
        (Function::CancelSession, r#"{"transactionId":"01"}"#),
        (
            Function::AuthenticateClient,
            r#"{"transactionId":"0","authenticateServerResponse":"MAA="}"#,
        ),
    ];
    for (function, body) in cases {
        assert!(
            matches!(
                request_to_der(*function, body.as_bytes()),
                Err(JsonError::Malformed { .. })
            ),
            "{function:?} {body}"
        );
    }
    assert_eq!(
        Function::from_path_segment("getEimPackage"),
        Some(Function::GetEimPackage)
    );
    assert_eq!(Function::from_path_segment("nope"), None);
}

#[test]
fn answers_carry_inner_der_as_base64() {
    let acks = sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
        sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(sgp32::EimAcknowledgements(
            vec![sgp32::SequenceNumber(Integer::from(5))],
        )),
    );
    let answer = answer_from_message(&acks, Sgp32Version::V1_2).unwrap();
    let json = serde_json::to_value(&answer).unwrap();
    assert_eq!(
        json["header"]["functionExecutionStatus"]["status"],
        "Executed-Success"
    );
    assert_eq!(json["eimAcknowledgements"], b64(&h("bf53 03 80 01 05")));

    let none = sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
        sgp32::GetEimPackageResponse::eimPackageError(Integer::from(1)),
    );
    let json =
        serde_json::to_value(answer_from_message(&none, Sgp32Version::V1_0).unwrap()).unwrap();
    assert_eq!(json["eimPackageError"], 1);
    assert!(json.get("euiccPackageRequest").is_none());

    let trigger = sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
        sgp32::GetEimPackageResponse::profileDownloadTriggerRequest(
            sgp32::ProfileDownloadTriggerRequest::new(
                Some(sgp32::ProfileDownloadData::activationCode("1$a$b".into())),
                Some(rsp::TransactionId(OctetString::from_static(&[1]))),
            ),
        ),
    );
    let json =
        serde_json::to_value(answer_from_message(&trigger, Sgp32Version::V1_2).unwrap()).unwrap();
    let der = ferrosim_asn1::json::Base64::decode(
        json["profileDownloadTriggerRequest"].as_str().unwrap(),
    )
    .unwrap();
    let _: sgp32::ProfileDownloadTriggerRequest = decode_der(&der.0).unwrap();
}
