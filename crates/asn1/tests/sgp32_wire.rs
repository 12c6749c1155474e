//! Known-answer encodings of the SGP.32 messages an eIM and an IPA exchange,
//! in v1.2 (`sgp32`) and, where the wire differs, in v1.0 (`sgp32_v1_0`).
//! Every expected encoding is written out by hand from the ASN.1 modules
//! (AUTOMATIC TAGS, explicit tags around CHOICEs, implicit re-tagging of
//! tagged types), not produced by the code under test.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32, sgp32_v1_0};

fn h(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text.replace(' ', "")).unwrap()
}

const EID: &str = "89049032123451234512345678901235";
const ICCID: &str = "98103254769810325 4f6";

fn eid() -> rsp::Octet16 {
    rsp::Octet16(FixedOctetString::new(h(EID).try_into().unwrap()))
}

fn iccid() -> rsp::Iccid {
    rsp::Iccid(FixedOctetString::new(h(ICCID).try_into().unwrap()))
}

fn tid() -> rsp::TransactionId {
    rsp::TransactionId(OctetString::from_static(&[1, 2]))
}

fn int(v: i64) -> Integer {
    Integer::from(v)
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

/// `EuiccPackageSigned` of an enable with rollback, counter 5.
fn enable_signed() -> sgp32::EuiccPackageSigned {
    let enable = sgp32::Psmo::enable(sgp32::PsmoEnable::new(iccid(), Some(())));
    sgp32::EuiccPackageSigned::new(
        "eim".into(),
        eid(),
        int(5),
        Some(tid()),
        sgp32::EuiccPackage::psmoList(vec![enable]),
    )
}

const ENABLE_SIGNED: &str = "30 30 80 03 65696d 5a 10 89049032123451234512345678901235 81 01 05 82 02 0102 \
     a0 10 a3 0e 5a 0a 98103254769810325 4f6 05 00";

#[test]
fn euicc_package_request_is_bf51_with_the_psmo_list_in_a0() {
    assert_der(&enable_signed(), &h(ENABLE_SIGNED));
    let request =
        sgp32::EuiccPackageRequest::new(enable_signed(), OctetString::from(vec![0xEE; 64]));
    let expected = [h("bf51 75"), h(ENABLE_SIGNED), h("5f37 40"), vec![0xEE; 64]].concat();
    assert_der(&request, &expected);
    // The same package in v1.0 (transactionId instead of eimTransactionId,
    // same tag) is the same bytes.
    let v1_0: sgp32_v1_0::EuiccPackageRequest = decode_der(&expected).unwrap();
    assert_eq!(encode_der(&v1_0).unwrap(), expected);
}

#[test]
fn eco_list_is_a1() {
    let list = sgp32::Eco::listEim(sgp32::EcoListEim::new());
    let signed = sgp32::EuiccPackageSigned::new(
        "eim".into(),
        eid(),
        int(1),
        None,
        sgp32::EuiccPackage::ecoList(vec![list]),
    );
    assert_der(
        &signed,
        &h("30 1e 80 03 65696d 5a 10 89049032123451234512345678901235 81 01 01 a1 02 ab 00"),
    );
}

/// `EuiccPackageResultDataSigned`: eim, counter 5, seq 1, enableResult ok.
const RESULT_DATA: &str = "30 10 80 03 65696d 81 01 05 83 01 01 30 03 83 01 00";

fn package_result() -> sgp32::EuiccPackageResult {
    let data = sgp32::EuiccPackageResultDataSigned::new(
        "eim".into(),
        int(5),
        None,
        int(1),
        vec![sgp32::EuiccResultData::enableResult(
            sgp32::EnableProfileResult(int(0)),
        )],
    );
    sgp32::EuiccPackageResult::euiccPackageResultSigned(sgp32::EuiccPackageResultSigned::new(
        data,
        OctetString::from(vec![0xCC; 64]),
    ))
}

fn package_result_der() -> Vec<u8> {
    [
        h("bf51 57 a0 55"),
        h(RESULT_DATA),
        h("5f37 40"),
        vec![0xCC; 64],
    ]
    .concat()
}

#[test]
fn euicc_package_result_is_bf51_around_its_alternative() {
    assert_der(&package_result(), &package_result_der());
    let unsigned = sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(
        sgp32::EuiccPackageErrorUnsigned::new("eim".into(), None, Some(int(7)), None),
    );
    assert_der(&unsigned, &h("bf51 0a a2 08 80 03 65696d 84 01 07"));
    let error =
        sgp32::EuiccPackageResult::euiccPackageErrorSigned(sgp32::EuiccPackageErrorSigned::new(
            sgp32::EuiccPackageErrorDataSigned::new(
                "eim".into(),
                int(5),
                None,
                sgp32::EuiccPackageErrorCode(int(4)),
            ),
            OctetString::from(vec![0xDD; 64]),
        ));
    let expected = [
        h("bf51 52 a1 50 30 0b 80 03 65696d 81 01 05 02 01 04 5f37 40"),
        vec![0xDD; 64],
    ]
    .concat();
    assert_der(&error, &expected);
}

#[test]
fn provide_eim_package_result_v1_2_is_a_sequence_v1_0_a_choice() {
    let v1_2 = sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(
        sgp32::ProvideEimPackageResult::new(
            Some(eid()),
            sgp32::EimPackageResult::euiccPackageResult(package_result()),
        ),
    );
    let expected = [h("bf50 6c 5a 10"), h(EID), package_result_der()].concat();
    assert_der(&v1_2, &expected);

    let result_v1_0: sgp32_v1_0::EuiccPackageResult =
        decode_der(&package_result_der()[3..]).unwrap();
    let v1_0 = sgp32_v1_0::EsipaMessageFromIpaToEim::provideEimPackageResult(
        sgp32_v1_0::ProvideEimPackageResult::euiccPackageResult(result_v1_0),
    );
    assert_der(&v1_0, &[h("bf50 5a"), package_result_der()].concat());

    // eimPackageError: a bare INTEGER in v1.0, a tagged SEQUENCE in v1.2.
    let error_v1_0 = sgp32_v1_0::EsipaMessageFromIpaToEim::provideEimPackageResult(
        sgp32_v1_0::ProvideEimPackageResult::eimPackageError(int(1)),
    );
    assert_der(&error_v1_0, &h("bf50 03 02 01 01"));
    let error_v1_2 = sgp32::EsipaMessageFromIpaToEim::provideEimPackageResult(
        sgp32::ProvideEimPackageResult::new(
            None,
            sgp32::EimPackageResult::eimPackageResultResponseError(
                sgp32::EimPackageResultResponseError::new(
                    None,
                    sgp32::EimPackageResultErrorCode(int(1)),
                ),
            ),
        ),
    );
    assert_der(&error_v1_2, &h("bf50 05 a0 03 02 01 01"));
}

#[test]
fn epr_and_notifications_carry_the_list_in_a0_v1_2_and_bf2b_v1_0() {
    let v1_2 = sgp32::ProvideEimPackageResult::new(
        None,
        sgp32::EimPackageResult::ePRAndNotifications(
            sgp32::EimPackageResultEPRAndNotifications::new(
                package_result(),
                sgp32::PendingNotificationList(vec![]),
            ),
        ),
    );
    assert_der(
        &v1_2,
        &[h("bf50 5e 30 5c"), package_result_der(), h("a0 00")].concat(),
    );
    let result_v1_0: sgp32_v1_0::EuiccPackageResult =
        decode_der(&package_result_der()[3..]).unwrap();
    let v1_0 = sgp32_v1_0::ProvideEimPackageResult::ePRAndNotifications(
        sgp32_v1_0::ProvideEimPackageResultEPRAndNotifications::new(
            result_v1_0,
            sgp32_v1_0::SGP32RetrieveNotificationsListResponse::notificationList(vec![]),
        ),
    );
    let expected = [h("30 5f"), package_result_der(), h("bf2b 02 a0 00")].concat();
    assert_der(&v1_0, &expected);
}

#[test]
fn get_eim_package_request_moved_rplmn_from_81_to_82() {
    let v1_2 = sgp32::GetEimPackageRequest::new(
        eid(),
        Some(()),
        Some(sgp32::StateChangeCause(int(1))),
        Some(OctetString::from_static(&[0x62, 0xF2, 0x10])),
    );
    assert_der(
        &v1_2,
        &[h("bf4f 1c 5a 10"), h(EID), h("80 00 81 01 01 82 03 62f210")].concat(),
    );
    let v1_0 = sgp32_v1_0::GetEimPackageRequest::new(
        eid(),
        Some(()),
        Some(OctetString::from_static(&[0x62, 0xF2, 0x10])),
    );
    assert_der(
        &v1_0,
        &[h("bf4f 19 5a 10"), h(EID), h("80 00 81 03 62f210")].concat(),
    );
}

#[test]
fn get_eim_package_response_alternatives() {
    let none = sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
        sgp32::GetEimPackageResponse::eimPackageError(int(1)),
    );
    assert_der(&none, &h("bf4f 03 02 01 01"));
    let trigger = sgp32::ProfileDownloadTriggerRequest::new(
        Some(sgp32::ProfileDownloadData::activationCode("1$a.b$M".into())),
        Some(tid()),
    );
    let response = sgp32::GetEimPackageResponse::profileDownloadTriggerRequest(trigger);
    assert_der(
        &response,
        &h("bf4f 12 bf54 0f a0 09 80 07 3124612e62244d 82 02 0102"),
    );
}

#[test]
fn provide_eim_package_result_response_v1_2_choice_v1_0_sequence() {
    let acks = sgp32::EimAcknowledgements(vec![
        sgp32::SequenceNumber(int(5)),
        sgp32::SequenceNumber(int(6)),
    ]);
    assert_der(
        &sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(acks),
        &h("bf50 09 bf53 06 80 01 05 80 01 06"),
    );
    assert_der(
        &sgp32::ProvideEimPackageResultResponse::emptyResponse(
            sgp32::ProvideEimPackageResultResponseEmptyResponse::new(),
        ),
        &h("bf50 02 30 00"),
    );
    assert_der(
        &sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(int(2)),
        &h("bf50 03 02 01 02"),
    );
    let acks_v1_0 = sgp32_v1_0::EimAcknowledgements(vec![sgp32_v1_0::SequenceNumber(int(5))]);
    assert_der(
        &sgp32_v1_0::ProvideEimPackageResultResponse::new(Some(acks_v1_0)),
        &h("bf50 06 bf53 03 80 01 05"),
    );
    assert_der(
        &sgp32_v1_0::ProvideEimPackageResultResponse::new(None),
        &h("bf50 00"),
    );
}

#[test]
fn handle_notification_carries_a_result_in_bf50_v1_2_and_a1_v1_0() {
    let provide = sgp32::ProvideEimPackageResult::new(
        None,
        sgp32::EimPackageResult::euiccPackageResult(package_result()),
    );
    let v1_2 = sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
        sgp32::HandleNotificationEsipa::provideEimPackageResult(provide),
    );
    assert_der(
        &v1_2,
        &[h("bf3d 5d bf50 5a"), package_result_der()].concat(),
    );
    let result_v1_0: sgp32_v1_0::EuiccPackageResult =
        decode_der(&package_result_der()[3..]).unwrap();
    let v1_0 = sgp32_v1_0::EsipaMessageFromIpaToEim::handleNotificationEsipa(
        sgp32_v1_0::HandleNotificationEsipa::provideEimPackageResult(
            sgp32_v1_0::ProvideEimPackageResult::euiccPackageResult(result_v1_0),
        ),
    );
    assert_der(&v1_0, &[h("bf3d 5c a1 5a"), package_result_der()].concat());
}

#[test]
fn ipa_euicc_data_request_v1_2() {
    let request = sgp32::IpaEuiccDataRequest::new(
        OctetString::from_static(&[0x80, 0xA2]),
        None,
        Some(sgp32::IpaEuiccDataRequestSearchCriteriaNotification::seqNumber(int(7))),
        Some(sgp32::IpaEuiccDataRequestSearchCriteriaEuiccPackageResult::seqNumber(int(9))),
        Some(rsp::TransactionId(OctetString::from_static(&[0xAA]))),
    );
    assert_der(
        &request,
        &h("bf52 11 5c 02 80a2 a1 03 80 01 07 a2 03 80 01 09 83 01 aa"),
    );
    // v1.0 asked for package results with [2] NULL inside the [1] CHOICE.
    let v1_0 = sgp32_v1_0::IpaEuiccDataRequest::new(
        OctetString::from_static(&[0x80, 0xA2]),
        None,
        Some(sgp32_v1_0::IpaEuiccDataRequestSearchCriteria::euiccPackageResults(())),
    );
    assert_der(&v1_0, &h("bf52 08 5c 02 80a2 a1 02 82 00"));
}

#[test]
fn cancel_session_request_esipa_is_the_same_in_both_versions() {
    let v1_2 = sgp32::CancelSessionRequestEsipa::new(
        rsp::TransactionId(OctetString::from_static(&[1, 2, 3])),
        sgp32::CancelSessionResponse::cancelSessionResponseError(int(5)),
    );
    let expected = h("bf41 0a 80 03 010203 a1 03 81 01 05");
    assert_der(&v1_2, &expected);
    let v1_0: sgp32_v1_0::CancelSessionRequestEsipa = decode_der(&expected).unwrap();
    assert_eq!(encode_der(&v1_0).unwrap(), expected);
}

#[test]
fn eim_id_info_type_moved_from_84_to_82() {
    let v1_2 = sgp32::EimIdInfo::new("a".into(), Some(sgp32::EimIdType(int(1))));
    assert_der(&v1_2, &h("30 06 80 01 61 82 01 01"));
    let v1_0 = sgp32_v1_0::EimIdInfo::new("a".into(), Some(sgp32_v1_0::EimIdType(int(1))));
    assert_der(&v1_0, &h("30 06 80 01 61 84 01 01"));
}

#[test]
fn euicc_memory_reset_is_bf64_in_v1_2() {
    let mut options = ferrosim_asn1::rasn::types::BitString::new();
    options.push(false);
    options.push(false);
    options.push(false);
    options.push(false);
    options.push(false);
    options.push(true); // resetEimConfigData(5)
    let request = sgp32::EuiccMemoryResetRequest::new(options);
    assert_der(&request, &h("bf64 04 82 02 02 04"));
}
