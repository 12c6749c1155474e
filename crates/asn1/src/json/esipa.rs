//! The JSON binding of ESipa (SGP.32 section 6.5): `POST
//! /gsma/rsp2/esipa/<function>` with the message's fields as JSON members,
//! ASN.1 values as base64 of their DER (as in ES9+), the EID and transaction
//! ids as hex, and every answer carrying `header.functionExecutionStatus`.
//! Transaction ids are read into a [`TransactionId`], so a bad one is refused
//! with the body. The EID stays text until the eIM reads it: an EID that is
//! 32 hex digits but not a valid EID gets the spec's answer (`eimPackageError`
//! invalidEid), not a malformed-body failure.
//!
//! Member names follow the ASN.1 field names, as deployed IPAs send them
//! (`eidValue`, `notifyStateChange`, `stateChangeCause`, `rPlmn`,
//! `eimPackageResult`, `euiccPackageRequest`, `eimAcknowledgements`, ...).
//!
//! [`request_to_der`] turns a request body into the DER
//! `EsipaMessageFromIpaToEim` the ASN.1 binding carries, assembling it around
//! the received base64 values without decoding and re-encoding them (they may
//! hold signatures), so both bindings go through
//! [`crate::esipa::read_ipa_message`]. [`answer_from_message`] does the
//! opposite for the eIM's answer.

use ferrosim_ids::TransactionId;
use serde::{Deserialize, Serialize};

use super::{Base64, ResponseHeader};
use crate::esipa::{Sgp32Version, encode_eim_message};
use crate::rasn::types::{FixedOctetString, Integer, OctetString};
use crate::tlv::{Tlv, tlv};
use crate::{Error, encode_der, rsp, sgp32};

/// The ESipa functions of the JSON binding, by their path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `initiateAuthentication` (indirect download).
    InitiateAuthentication,
    /// `authenticateClient` (indirect download).
    AuthenticateClient,
    /// `getBoundProfilePackage` (indirect download).
    GetBoundProfilePackage,
    /// `cancelSession` (indirect download).
    CancelSession,
    /// `handleNotification`.
    HandleNotification,
    /// `getEimPackage`.
    GetEimPackage,
    /// `provideEimPackageResult`.
    ProvideEimPackageResult,
}

impl Function {
    /// The function named by the last path segment, if it is one.
    pub fn from_path_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "initiateAuthentication" => Self::InitiateAuthentication,
            "authenticateClient" => Self::AuthenticateClient,
            "getBoundProfilePackage" => Self::GetBoundProfilePackage,
            "cancelSession" => Self::CancelSession,
            "handleNotification" => Self::HandleNotification,
            "getEimPackage" => Self::GetEimPackage,
            "provideEimPackageResult" => Self::ProvideEimPackageResult,
            _ => return None,
        })
    }
}

/// `getEimPackage` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetEimPackageRequest {
    /// EID, 32 hex digits.
    pub eid_value: String,
    /// The eUICC's state changed since the last poll.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub notify_state_change: Option<bool>,
    /// Why (v1.2 `StateChangeCause`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state_change_cause: Option<i64>,
    /// MCC/MNC of the last registered PLMN (3 bytes).
    #[serde(
        rename = "rPlmn",
        alias = "rPLMN",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub r_plmn: Option<Base64>,
}

/// `provideEimPackageResult` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvideEimPackageResultRequest {
    /// EID, 32 hex digits, when the IPA gives it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eid_value: Option<String>,
    /// `EimPackageResult` DER.
    pub eim_package_result: Base64,
}

/// `handleNotification` request: one of the two members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleNotificationRequest {
    /// `PendingNotification` DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_notification: Option<Base64>,
    /// `ProvideEimPackageResult` DER (`BF50`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provide_eim_package_result: Option<Base64>,
}

/// `initiateAuthentication` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitiateAuthenticationRequest {
    /// 16-byte eUICC challenge.
    pub euicc_challenge: Base64,
    /// EUICCInfo1 (BF20) DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub euicc_info1: Option<Base64>,
    /// SM-DP+ address.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub smdp_address: Option<String>,
    /// eIM transaction id (hex on the wire, 1 to 16 bytes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eim_transaction_id: Option<TransactionId>,
}

/// `authenticateClient`, `getBoundProfilePackage` and `cancelSession`
/// requests: a transaction id and the eUICC's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayRequest {
    /// SM-DP+ transaction id (hex on the wire, 1 to 16 bytes).
    pub transaction_id: TransactionId,
    /// AuthenticateServerResponse (BF38) DER, for `authenticateClient`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authenticate_server_response: Option<Base64>,
    /// PrepareDownloadResponse (BF21) DER, for `getBoundProfilePackage`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prepare_download_response: Option<Base64>,
    /// CancelSessionResponse (BF41) DER, for `cancelSession`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cancel_session_response: Option<Base64>,
}

/// An eIM answer: the header and the members of the function's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// Status.
    pub header: ResponseHeader,
    /// `getEimPackage`: EuiccPackageRequest (BF51) DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub euicc_package_request: Option<Base64>,
    /// `getEimPackage`: IpaEuiccDataRequest (BF52) DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ipa_euicc_data_request: Option<Base64>,
    /// `getEimPackage`: ProfileDownloadTriggerRequest (BF54) DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub profile_download_trigger_request: Option<Base64>,
    /// `getEimPackage`: `eimPackageError` (1 noEimPackageAvailable, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eim_package_error: Option<i64>,
    /// `provideEimPackageResult`: EimAcknowledgements (BF53) DER.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eim_acknowledgements: Option<Base64>,
    /// `provideEimPackageResult`: `provideEimPackageResultError`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub provide_eim_package_result_error: Option<i64>,
    /// Indirect download: the relayed ES9+ answer's members, base64 DER or
    /// text as ES9+ carries them (transactionId, serverSigned1,
    /// serverSignature1, euiccCiPKIdentifierToBeUsed, serverCertificate,
    /// matchingId, ctxParams1, profileMetadata, smdpSigned2, smdpSignature2,
    /// smdpCertificate, hashCc, boundProfilePackage).
    #[serde(flatten)]
    pub relay: serde_json::Map<String, serde_json::Value>,
}

/// Why a JSON request body is not an ESipa message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not the JSON the function defines.
    #[error("malformed {function} body: {reason}")]
    Malformed {
        /// The function's path segment.
        function: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A member holds bytes that are not the ASN.1 value it names.
    #[error(transparent)]
    Asn1(#[from] Error),
}

/// The DER `EsipaMessageFromIpaToEim` a JSON request body stands for.
pub fn request_to_der(function: Function, body: &[u8]) -> Result<Vec<u8>, JsonError> {
    match function {
        Function::GetEimPackage => {
            let r: GetEimPackageRequest = parse(body, "getEimPackage")?;
            let request = sgp32::GetEimPackageRequest::new(
                eid(&r.eid_value, "getEimPackage")?,
                r.notify_state_change.filter(|&b| b).map(|_| ()),
                r.state_change_cause
                    .map(|c| sgp32::StateChangeCause(Integer::from(c))),
                r.r_plmn.map(|b| OctetString::from(b.0)),
            );
            Ok(encode_der(&request)?)
        }
        Function::ProvideEimPackageResult => {
            let r: ProvideEimPackageResultRequest = parse(body, "provideEimPackageResult")?;
            let result = element(&r.eim_package_result.0, "provideEimPackageResult")?;
            let mut value = Vec::new();
            if let Some(e) = &r.eid_value {
                let eid = eid(e, "provideEimPackageResult")?;
                value.extend(tlv(0x5A, eid.0.as_ref()));
            }
            value.extend_from_slice(result);
            Ok(tlv(crate::esipa::TAG_PROVIDE_EIM_PACKAGE_RESULT, &value))
        }
        Function::HandleNotification => {
            let r: HandleNotificationRequest = parse(body, "handleNotification")?;
            let inner = match (&r.pending_notification, &r.provide_eim_package_result) {
                (Some(n), None) => tlv(0xA0, element(&n.0, "handleNotification")?),
                (None, Some(p)) => element(&p.0, "handleNotification")?.to_vec(),
                _ => {
                    return Err(malformed(
                        "handleNotification",
                        "exactly one of pendingNotification and provideEimPackageResult",
                    ));
                }
            };
            Ok(tlv(crate::esipa::TAG_HANDLE_NOTIFICATION, &inner))
        }
        Function::InitiateAuthentication => {
            let r: InitiateAuthenticationRequest = parse(body, "initiateAuthentication")?;
            let challenge: [u8; 16] = r.euicc_challenge.0.as_slice().try_into().map_err(|_| {
                malformed("initiateAuthentication", "euiccChallenge is not 16 bytes")
            })?;
            let mut value = tlv(0x81, &challenge);
            if let Some(address) = &r.smdp_address {
                value.extend(tlv(0x83, address.as_bytes()));
            }
            if let Some(info) = &r.euicc_info1 {
                value.extend_from_slice(element(&info.0, "initiateAuthentication")?);
            }
            if let Some(id) = &r.eim_transaction_id {
                value.extend(tlv(0x82, id.as_bytes()));
            }
            Ok(tlv(0xBF39, &value))
        }
        Function::AuthenticateClient => relay(body, "authenticateClient", 0xBF3B, |r| {
            r.authenticate_server_response.as_ref()
        }),
        Function::GetBoundProfilePackage => relay(body, "getBoundProfilePackage", 0xBF3A, |r| {
            r.prepare_download_response.as_ref()
        }),
        Function::CancelSession => relay(body, "cancelSession", 0xBF41, |r| {
            r.cancel_session_response.as_ref()
        }),
    }
}

/// The JSON answer for an eIM message of the `getEimPackage` or
/// `provideEimPackageResult` functions, with inner values encoded for an IPA
/// of `version`. Relay answers are built by the relay from the SM-DP+'s ES9+
/// answer and are refused here.
pub fn answer_from_message(
    message: &sgp32::EsipaMessageFromEimToIpa,
    version: Sgp32Version,
) -> Result<Answer, Error> {
    // Encode in the peer's version, then take the inner elements as bytes.
    let der = encode_eim_message(message, version)?;
    let outer = Tlv::parse_exact(&der)?;
    let inner = Tlv::parse_exact(outer.value).ok();
    let mut answer = Answer {
        header: ResponseHeader::success(),
        euicc_package_request: None,
        ipa_euicc_data_request: None,
        profile_download_trigger_request: None,
        eim_package_error: None,
        eim_acknowledgements: None,
        provide_eim_package_result_error: None,
        relay: serde_json::Map::new(),
    };
    let bytes = |t: &Tlv<'_>| Some(Base64(t.raw.to_vec()));
    match message {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(response) => {
            match (response, &inner) {
                (sgp32::GetEimPackageResponse::euiccPackageRequest(_), Some(t)) => {
                    answer.euicc_package_request = bytes(t);
                }
                (sgp32::GetEimPackageResponse::ipaEuiccDataRequest(_), Some(t)) => {
                    answer.ipa_euicc_data_request = bytes(t);
                }
                (sgp32::GetEimPackageResponse::profileDownloadTriggerRequest(_), Some(t)) => {
                    answer.profile_download_trigger_request = bytes(t);
                }
                (sgp32::GetEimPackageResponse::eimPackageError(code), _) => {
                    answer.eim_package_error = Some(small(code, version)?);
                }
                _ => return Err(unrepresentable(version)),
            }
        }
        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(response) => {
            match response {
                sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(_) => {
                    answer.eim_acknowledgements = inner.as_ref().and_then(bytes);
                }
                sgp32::ProvideEimPackageResultResponse::emptyResponse(_) => {}
                sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(code) => {
                    if version == Sgp32Version::V1_2 {
                        answer.provide_eim_package_result_error = Some(small(code, version)?);
                    }
                }
            }
        }
        _ => return Err(unrepresentable(version)),
    }
    Ok(answer)
}

fn small(code: &Integer, version: Sgp32Version) -> Result<i64, Error> {
    i64::try_from(code.clone()).map_err(|_| unrepresentable(version))
}

fn unrepresentable(version: Sgp32Version) -> Error {
    Error::Unrepresentable {
        what: "this message in the JSON binding",
        version: version.as_str(),
    }
}

fn relay(
    body: &[u8],
    function: &'static str,
    tag: u32,
    answer: impl Fn(&RelayRequest) -> Option<&Base64>,
) -> Result<Vec<u8>, JsonError> {
    let r: RelayRequest = parse(body, function)?;
    let euicc_answer =
        answer(&r).ok_or_else(|| malformed(function, "the eUICC's answer is missing"))?;
    // transactionId [0] (or untagged in cancelSession, automatic [0] too),
    // then the eUICC's answer re-tagged [1] (AUTOMATIC TAGS of the ESipa
    // request; its own tag is replaced, its content kept as received).
    let mut value = tlv(0x80, r.transaction_id.as_bytes());
    let received =
        Tlv::parse_exact(&euicc_answer.0).map_err(|e| malformed(function, &e.to_string()))?;
    value.extend(match tag {
        0xBF41 => tlv(0xA1, received.value),
        _ => received.raw.to_vec(),
    });
    Ok(tlv(tag, &value))
}

fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    function: &'static str,
) -> Result<T, JsonError> {
    serde_json::from_slice(body).map_err(|e| malformed(function, &e.to_string()))
}

fn malformed(function: &'static str, reason: &str) -> JsonError {
    JsonError::Malformed {
        function,
        reason: reason.to_owned(),
    }
}

/// Exactly one TLV element.
fn element<'a>(bytes: &'a [u8], function: &'static str) -> Result<&'a [u8], JsonError> {
    Tlv::parse_exact(bytes)
        .map(|t| t.raw)
        .map_err(|e| malformed(function, &e.to_string()))
}

fn hex_bytes(text: &str, function: &'static str) -> Result<Vec<u8>, JsonError> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return Err(malformed(function, "not an even number of hex digits"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| malformed(function, "not hex"))
        })
        .collect()
}

fn eid(text: &str, function: &'static str) -> Result<rsp::Octet16, JsonError> {
    let bytes: [u8; 16] = hex_bytes(text, function)?
        .try_into()
        .map_err(|_| malformed(function, "eidValue is not 32 hex digits"))?;
    Ok(rsp::Octet16(FixedOctetString::new(bytes)))
}
