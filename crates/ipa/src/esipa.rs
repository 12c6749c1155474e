//! ESipa as the IPA speaks it (SGP.32 v1.2; answers of v1.0 eIMs are read
//! too): the messages it sends ([`EsipaRequest`]) and the answers it acts
//! on ([`EimReply`]), with both bindings' wire forms.
//!
//! - ASN.1 binding: `POST /gsma/rsp2/asn1`, `Content-Type:
//!   application/x-gsma-rsp-asn1`, one DER `EsipaMessageFromIpaToEim` per
//!   request, one `EsipaMessageFromEimToIpa` back.
//! - JSON binding: `POST /gsma/rsp2/esipa/<function>` with the members of
//!   [`ferrosim_asn1::json::esipa`], ASN.1 values as base64 DER.
//!
//! Answers are read from the body only (the HTTP status is not trusted,
//! as field eIMs differ), and the eUICC packages inside are kept as
//! received: their eIM signature covers those bytes. Every answer that is
//! not what the function defines is an [`EsipaError::BadAnswer`], never a
//! panic.

use ferrosim_asn1::esipa::{Sgp32Version, read_eim_message};
use ferrosim_asn1::json::Base64;
use ferrosim_asn1::json::esipa::{self as json, Answer};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer, OctetString};
use ferrosim_asn1::tlv::{Tlv, tlv};
use ferrosim_asn1::{encode_der, rsp, sgp32};
use ferrosim_ids::Eid;
use thiserror::Error;

/// `Content-Type` of the ASN.1 binding.
pub const ASN1_CONTENT_TYPE: &str = "application/x-gsma-rsp-asn1";
/// Path of the ASN.1 binding.
pub const ASN1_PATH: &str = "/gsma/rsp2/asn1";
/// Path prefix of the JSON binding (`/gsma/rsp2/esipa/<function>`).
pub const JSON_PATH: &str = "/gsma/rsp2/esipa";
/// `User-Agent` of SGP.32 IPAs.
pub const USER_AGENT: &str = "gsma-rsp-ipad";
/// `X-Admin-Protocol` of this IPA's ESipa requests.
pub const ADMIN_PROTOCOL: &str = "gsma/rsp/v1.2.0";

/// Which ESipa binding an IPA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// DER messages on `/gsma/rsp2/asn1`.
    #[default]
    Asn1,
    /// JSON on `/gsma/rsp2/esipa/<function>`.
    Json,
}

impl std::str::FromStr for Binding {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "asn1" => Ok(Self::Asn1),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown ESipa binding `{other}` (asn1 or json)")),
        }
    }
}

/// Why an ESipa exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EsipaError {
    /// The eIM could not be reached, or the connection broke.
    #[error("{function}: cannot reach the eIM: {reason}")]
    Unreachable {
        /// The ESipa function.
        function: &'static str,
        /// The error chain, as text.
        reason: String,
    },
    /// The eIM did not answer in time.
    #[error("{function}: the eIM did not answer in time")]
    Timeout {
        /// The ESipa function.
        function: &'static str,
    },
    /// The answer is not what the function defines.
    #[error("{function}: malformed answer from the eIM (HTTP {status}): {reason}")]
    BadAnswer {
        /// The ESipa function.
        function: &'static str,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The eIM executed the function and reported a failure (JSON binding
    /// header).
    #[error("{function} failed at the eIM: subject {subject_code}, reason {reason_code}{}",
        message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Failed {
        /// The ESipa function.
        function: &'static str,
        /// Subject code.
        subject_code: String,
        /// Reason code.
        reason_code: String,
        /// The eIM's message.
        message: Option<String>,
    },
    /// A request could not be built (a value out of range).
    #[error("cannot build the {function} request: {reason}")]
    Encode {
        /// The ESipa function.
        function: &'static str,
        /// What failed.
        reason: String,
    },
}

/// An ESipa request of the IPA (other than the relayed ES9+ steps, see
/// [`crate::relay`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsipaRequest {
    /// GetEimPackage: what does the eIM have for this eUICC?
    GetEimPackage {
        /// The eUICC.
        eid: Eid,
        /// The eUICC's state changed in a way the eIM may not know.
        notify_state_change: bool,
        /// Why (`StateChangeCause`).
        state_change_cause: Option<i64>,
        /// MCC/MNC of the last registered PLMN.
        r_plmn: Option<[u8; 3]>,
    },
    /// ProvideEimPackageResult carrying one `EimPackageResult` element.
    ProvideEimPackageResult {
        /// The eUICC.
        eid: Eid,
        /// The `EimPackageResult` element (DER, as signed).
        element: Vec<u8>,
    },
}

impl EsipaRequest {
    /// The function's name (the JSON binding's path segment).
    pub fn function(&self) -> &'static str {
        match self {
            Self::GetEimPackage { .. } => "getEimPackage",
            Self::ProvideEimPackageResult { .. } => "provideEimPackageResult",
        }
    }

    /// The DER `EsipaMessageFromIpaToEim` of the ASN.1 binding.
    pub fn to_der(&self) -> Result<Vec<u8>, EsipaError> {
        match self {
            Self::GetEimPackage {
                eid,
                notify_state_change,
                state_change_cause,
                r_plmn,
            } => encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
                sgp32::GetEimPackageRequest::new(
                    eid_value(eid),
                    notify_state_change.then_some(()),
                    state_change_cause.map(|c| sgp32::StateChangeCause(Integer::from(c))),
                    r_plmn.map(|p| OctetString::from(p.to_vec())),
                ),
            ))
            .map_err(|e| EsipaError::Encode {
                function: self.function(),
                reason: e.to_string(),
            }),
            Self::ProvideEimPackageResult { eid, element } => {
                let value = [tlv(0x5A, &eid.to_bcd()), element.clone()].concat();
                Ok(tlv(
                    ferrosim_asn1::esipa::TAG_PROVIDE_EIM_PACKAGE_RESULT,
                    &value,
                ))
            }
        }
    }

    /// The JSON body of the JSON binding (POSTed to
    /// `/gsma/rsp2/esipa/<function>`).
    pub fn to_json(&self) -> Result<Vec<u8>, EsipaError> {
        let body = match self {
            Self::GetEimPackage {
                eid,
                notify_state_change,
                state_change_cause,
                r_plmn,
            } => serde_json::to_vec(&json::GetEimPackageRequest {
                eid_value: eid.digits(),
                notify_state_change: notify_state_change.then_some(true),
                state_change_cause: *state_change_cause,
                r_plmn: r_plmn.map(|p| Base64(p.to_vec())),
            }),
            Self::ProvideEimPackageResult { eid, element } => {
                serde_json::to_vec(&json::ProvideEimPackageResultRequest {
                    eid_value: Some(eid.digits()),
                    eim_package_result: Base64(element.clone()),
                })
            }
        };
        body.map_err(|e| EsipaError::Encode {
            function: self.function(),
            reason: e.to_string(),
        })
    }
}

fn eid_value(eid: &Eid) -> rsp::Octet16 {
    rsp::Octet16(FixedOctetString::new(eid.to_bcd()))
}

/// An eIM answer the IPA acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EimReply {
    /// An `EuiccPackageRequest` (`BF51`) as received.
    Package(Vec<u8>),
    /// An `IpaEuiccDataRequest` (`BF52`) as received.
    DataRequest(Vec<u8>),
    /// A `ProfileDownloadTriggerRequest` (`BF54`) as received.
    DownloadTrigger(Vec<u8>),
    /// `eimPackageError` noEimPackageAvailable: nothing queued.
    NoPackage,
    /// Another `eimPackageError` (eidNotFound 2, invalidEid 3, missingEid 4,
    /// undefinedError 127).
    PackageError(i64),
    /// `EimAcknowledgements`: the sequence numbers of the results stored.
    Acknowledged(Vec<i64>),
    /// An answer without acknowledgements (`emptyResponse`, or no content).
    Empty,
    /// `provideEimPackageResultError`.
    ProvideError(i64),
}

/// Reads the ASN.1 binding's answer to `function` (`status`, `body`).
pub fn reply_from_asn1(
    function: &'static str,
    status: u16,
    body: &[u8],
) -> Result<EimReply, EsipaError> {
    let bad = |reason: String| EsipaError::BadAnswer {
        function,
        status,
        reason,
    };
    if body.is_empty() {
        return if status == 204 || function == "provideEimPackageResult" && status == 200 {
            Ok(EimReply::Empty)
        } else {
            Err(bad("empty body".into()))
        };
    }
    let read = read_eim_message(body, Some(Sgp32Version::V1_2)).map_err(|e| bad(e.to_string()))?;
    if read.read_as == Sgp32Version::V1_0 {
        tracing::debug!(function, "eIM answer read as SGP.32 v1.0");
    }
    // The inner element as received (its signature covers these bytes).
    let inner = || -> Result<Vec<u8>, EsipaError> {
        let outer = Tlv::parse_exact(body).map_err(|e| bad(e.to_string()))?;
        let inner = Tlv::parse_exact(outer.value).map_err(|e| bad(e.to_string()))?;
        Ok(inner.raw.to_vec())
    };
    use sgp32::EsipaMessageFromEimToIpa as M;
    let reply = match (function, read.message) {
        ("getEimPackage", M::getEimPackageResponse(r)) => {
            use sgp32::GetEimPackageResponse as R;
            match r {
                R::euiccPackageRequest(_) => EimReply::Package(inner()?),
                R::ipaEuiccDataRequest(_) => EimReply::DataRequest(inner()?),
                R::profileDownloadTriggerRequest(_) => EimReply::DownloadTrigger(inner()?),
                R::eimPackageError(code) => package_error(small(&code)),
            }
        }
        ("provideEimPackageResult", M::provideEimPackageResultResponse(r)) => {
            use sgp32::ProvideEimPackageResultResponse as R;
            match r {
                R::eimAcknowledgements(acks) => {
                    EimReply::Acknowledged(acks.0.iter().map(|s| small(&s.0)).collect())
                }
                R::emptyResponse(_) => EimReply::Empty,
                R::provideEimPackageResultError(code) => EimReply::ProvideError(small(&code)),
            }
        }
        (_, other) => return Err(bad(format!("unexpected answer {}", message_name(&other)))),
    };
    Ok(reply)
}

/// Reads the JSON binding's answer to `function` (`status`, `body`).
pub fn reply_from_json(
    function: &'static str,
    status: u16,
    body: &[u8],
) -> Result<EimReply, EsipaError> {
    let bad = |reason: String| EsipaError::BadAnswer {
        function,
        status,
        reason,
    };
    if body.is_empty() && status == 204 {
        return Ok(EimReply::Empty);
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let header = &answer.header.function_execution_status;
    if header.status == "Failed" {
        let data = header.status_code_data.clone();
        return Err(EsipaError::Failed {
            function,
            subject_code: data
                .as_ref()
                .map(|d| d.subject_code.clone())
                .unwrap_or_default(),
            reason_code: data
                .as_ref()
                .map(|d| d.reason_code.clone())
                .unwrap_or_default(),
            message: data.and_then(|d| d.message),
        });
    }
    if !header.status.starts_with("Executed") {
        return Err(bad(format!(
            "function execution status `{}`",
            header.status
        )));
    }
    let element = |b: &Base64, tag: u32| -> Result<Vec<u8>, EsipaError> {
        Tlv::parse_exact(&b.0)
            .ok()
            .filter(|t| t.tag == tag)
            .map(|t| t.raw.to_vec())
            .ok_or_else(|| bad(format!("not one {tag:X} element")))
    };
    match function {
        "getEimPackage" => {
            match (
                &answer.euicc_package_request,
                &answer.ipa_euicc_data_request,
                &answer.profile_download_trigger_request,
                answer.eim_package_error,
            ) {
                (Some(p), None, None, None) => Ok(EimReply::Package(element(p, 0xBF51)?)),
                (None, Some(d), None, None) => Ok(EimReply::DataRequest(element(d, 0xBF52)?)),
                (None, None, Some(t), None) => Ok(EimReply::DownloadTrigger(element(t, 0xBF54)?)),
                (None, None, None, Some(code)) => Ok(package_error(code)),
                _ => Err(bad("not exactly one getEimPackage answer member".into())),
            }
        }
        "provideEimPackageResult" => {
            match (
                &answer.eim_acknowledgements,
                answer.provide_eim_package_result_error,
            ) {
                (Some(acks), None) => {
                    let acks = element(acks, 0xBF53)?;
                    let list = ferrosim_asn1::decode_der::<sgp32::EimAcknowledgements>(&acks)
                        .map_err(|e| bad(e.to_string()))?;
                    Ok(EimReply::Acknowledged(
                        list.0.iter().map(|s| small(&s.0)).collect(),
                    ))
                }
                (None, Some(code)) => Ok(EimReply::ProvideError(code)),
                (None, None) => Ok(EimReply::Empty),
                _ => Err(bad("both eimAcknowledgements and an error".into())),
            }
        }
        other => Err(bad(format!("{other} is not answered by this reader"))),
    }
}

fn package_error(code: i64) -> EimReply {
    match code {
        1 => EimReply::NoPackage,
        other => EimReply::PackageError(other),
    }
}

/// An INTEGER as i64 (out-of-range values become -1, which no code uses).
fn small(value: &Integer) -> i64 {
    i64::try_from(value.clone()).unwrap_or(-1)
}

fn message_name(message: &sgp32::EsipaMessageFromEimToIpa) -> &'static str {
    use sgp32::EsipaMessageFromEimToIpa as M;
    match message {
        M::getEimPackageResponse(_) => "getEimPackageResponse",
        M::provideEimPackageResultResponse(_) => "provideEimPackageResultResponse",
        M::transferEimPackageRequest(_) => "transferEimPackageRequest",
        M::initiateAuthenticationResponseEsipa(_) => "initiateAuthenticationResponseEsipa",
        M::authenticateClientResponseEsipa(_) => "authenticateClientResponseEsipa",
        M::getBoundProfilePackageResponseEsipa(_) => "getBoundProfilePackageResponseEsipa",
        M::cancelSessionResponseEsipa(_) => "cancelSessionResponseEsipa",
    }
}
