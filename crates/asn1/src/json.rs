//! The JSON bindings of ES9+ (LPA ↔ SM-DP+) and ES2+ (operator ↔ SM-DP+),
//! SGP.22 section 6, and of ESipa (IPA ↔ eIM, SGP.32, in [`esipa`]).
//!
//! Field names are exactly those of the specification (camelCase). Binary
//! values travel as standard base64 of their DER encoding ([`Base64`]);
//! transaction ids as hex, read into a [`ferrosim_ids::TransactionId`] (1
//! to 16 bytes, checked while the body is parsed). Every response carries
//! `header.functionExecutionStatus`; on ES9+ a failure is still HTTP 200.
//! Unknown fields are ignored, so newer peers interoperate.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod esipa;

/// `X-Admin-Protocol` header value sent by ferrosim.
pub const ADMIN_PROTOCOL: &str = "gsma/rsp/v2.5.0";

/// Bytes carried as base64 text (standard alphabet; padding optional on input).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Base64(pub Vec<u8>);

impl Base64 {
    /// Decodes base64 text, accepting missing padding and surrounding whitespace.
    pub fn decode(text: &str) -> Option<Self> {
        let t = text.trim();
        STANDARD
            .decode(t)
            .or_else(|_| STANDARD_NO_PAD.decode(t.trim_end_matches('=')))
            .ok()
            .map(Self)
    }

    /// The text form.
    pub fn encode(&self) -> String {
        STANDARD.encode(&self.0)
    }
}

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({} bytes)", self.0.len())
    }
}

impl From<Vec<u8>> for Base64 {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl Serialize for Base64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::decode(&text).ok_or_else(|| serde::de::Error::custom("invalid base64"))
    }
}

/// `header.functionExecutionStatus` of every response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionExecutionStatus {
    /// `Executed-Success`, `Executed-WithWarning`, `Failed` or `Expired`.
    pub status: String,
    /// Present when the status is not a plain success.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_code_data: Option<StatusCodeData>,
}

impl FunctionExecutionStatus {
    /// `Executed-Success`.
    pub fn success() -> Self {
        Self {
            status: "Executed-Success".to_owned(),
            status_code_data: None,
        }
    }

    /// `Failed` with a status code.
    pub fn failed(data: StatusCodeData) -> Self {
        Self {
            status: "Failed".to_owned(),
            status_code_data: Some(data),
        }
    }

    /// Whether the function executed (with or without warning).
    pub fn is_success(&self) -> bool {
        self.status.starts_with("Executed-")
    }
}

/// Subject code, reason code and message of a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCodeData {
    /// Subject code, e.g. `8.8.1`.
    pub subject_code: String,
    /// Reason code, e.g. `3.8`.
    pub reason_code: String,
    /// Identifier of the subject, when useful (e.g. an ICCID).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject_identifier: Option<String>,
    /// Human-readable text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
}

/// `header` of a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseHeader {
    /// Outcome of the function.
    pub function_execution_status: FunctionExecutionStatus,
}

impl ResponseHeader {
    /// A success header.
    pub fn success() -> Self {
        Self {
            function_execution_status: FunctionExecutionStatus::success(),
        }
    }

    /// A failure header.
    pub fn failed(data: StatusCodeData) -> Self {
        Self {
            function_execution_status: FunctionExecutionStatus::failed(data),
        }
    }
}

/// A response that carries only a header (every failure, and functions
/// without output data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderOnly {
    /// The header.
    pub header: ResponseHeader,
}

/// What the body of an ES9+ or ES2+ answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer<T> {
    /// The function executed (with or without warning): its output.
    Executed(T),
    /// A `Failed` (or `Expired`) header. Subject and reason codes are empty
    /// when the SM-DP+ gave none; the message falls back to the status.
    Failed(StatusCodeData),
    /// Not the JSON the binding defines: why.
    Malformed(String),
}

/// Reads an answer body: its header first (so a failure is recognised even
/// when the rest is not the function's output), then the output as `T`.
/// The body is parsed once.
pub fn read_answer<T: serde::de::DeserializeOwned>(body: &[u8]) -> Answer<T> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Answer::Malformed("the body is not JSON".into());
    };
    let status = json.pointer("/header/functionExecutionStatus");
    let Some(state) = status
        .and_then(|s| s.get("status"))
        .and_then(|s| s.as_str())
    else {
        return Answer::Malformed("no header.functionExecutionStatus".into());
    };
    if !state.starts_with("Executed-") {
        let data = status.and_then(|s| s.get("statusCodeData"));
        let text = |key: &str| {
            data.and_then(|d| d.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        return Answer::Failed(StatusCodeData {
            subject_code: text("subjectCode").unwrap_or_default(),
            reason_code: text("reasonCode").unwrap_or_default(),
            subject_identifier: text("subjectIdentifier"),
            message: text("message").or_else(|| Some(state.to_owned())),
        });
    }
    match T::deserialize(json) {
        Ok(output) => Answer::Executed(output),
        Err(e) => Answer::Malformed(e.to_string()),
    }
}

/// ES9+ request and response bodies.
pub mod es9 {
    use super::{Base64, ResponseHeader};
    use ferrosim_ids::TransactionId;
    use serde::{Deserialize, Serialize};

    /// `POST /gsma/rsp2/es9plus/initiateAuthentication`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InitiateAuthenticationRequest {
        /// 16-byte eUICC challenge.
        pub euicc_challenge: Base64,
        /// EUICCInfo1 (BF20).
        pub euicc_info1: Base64,
        /// The SM-DP+ address the device used.
        pub smdp_address: String,
    }

    /// Answer to [`InitiateAuthenticationRequest`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct InitiateAuthenticationResponse {
        /// Status.
        pub header: ResponseHeader,
        /// New session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// ServerSigned1 DER.
        pub server_signed1: Base64,
        /// ServerSignature1 (5F37 TLV).
        pub server_signature1: Base64,
        /// SubjectKeyIdentifier DER (04 14 ...) of the CI to use.
        #[serde(rename = "euiccCiPKIdToBeUsed")]
        pub euicc_ci_pkid_to_be_used: Base64,
        /// CERT.DPauth.SIG DER.
        pub server_certificate: Base64,
    }

    /// `POST /gsma/rsp2/es9plus/authenticateClient`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AuthenticateClientRequest {
        /// Session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// AuthenticateServerResponse (BF38) from the eUICC.
        pub authenticate_server_response: Base64,
    }

    /// Answer to [`AuthenticateClientRequest`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AuthenticateClientResponse {
        /// Status.
        pub header: ResponseHeader,
        /// Session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// StoreMetadataRequest (BF25).
        pub profile_metadata: Base64,
        /// SmdpSigned2 DER.
        pub smdp_signed2: Base64,
        /// SmdpSignature2 (5F37 TLV).
        pub smdp_signature2: Base64,
        /// CERT.DPpb.SIG DER.
        pub smdp_certificate: Base64,
    }

    /// `POST /gsma/rsp2/es9plus/getBoundProfilePackage`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetBoundProfilePackageRequest {
        /// Session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// PrepareDownloadResponse (BF21) from the eUICC.
        pub prepare_download_response: Base64,
    }

    /// Answer to [`GetBoundProfilePackageRequest`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GetBoundProfilePackageResponse {
        /// Status.
        pub header: ResponseHeader,
        /// Session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// BoundProfilePackage (BF36).
        pub bound_profile_package: Base64,
    }

    /// `POST /gsma/rsp2/es9plus/handleNotification` (answered with HTTP 204).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct HandleNotificationRequest {
        /// PendingNotification: ProfileInstallationResult (BF37) or another
        /// signed notification (BF2F).
        pub pending_notification: Base64,
    }

    /// `POST /gsma/rsp2/es9plus/cancelSession`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelSessionRequest {
        /// Session id (hex on the wire).
        pub transaction_id: TransactionId,
        /// CancelSessionResponse (BF41) from the eUICC.
        pub cancel_session_response: Base64,
    }

    /// Answer to [`CancelSessionRequest`].
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelSessionResponse {
        /// Status.
        pub header: ResponseHeader,
        /// Session id (hex on the wire).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub transaction_id: Option<TransactionId>,
    }
}

/// ES2+ request and response bodies.
pub mod es2 {
    use super::{FunctionExecutionStatus, ResponseHeader};
    use serde::{Deserialize, Serialize};

    /// `header` of every ES2+ request.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RequestHeader {
        /// Who calls (the operator id).
        pub function_requester_identifier: String,
        /// Unique id of this call; a repeat returns the first answer.
        pub function_call_identifier: String,
    }

    /// `downloadOrder`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DownloadOrderRequest {
        /// Header.
        pub header: RequestHeader,
        /// EID to link the order to.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub eid: Option<String>,
        /// A specific profile.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub iccid: Option<String>,
        /// Any available profile of this type.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub profile_type: Option<String>,
    }

    /// Answer to `downloadOrder`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct DownloadOrderResponse {
        /// Status.
        pub header: ResponseHeader,
        /// The reserved profile.
        pub iccid: String,
    }

    /// `confirmOrder`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ConfirmOrderRequest {
        /// Header.
        pub header: RequestHeader,
        /// The profile.
        pub iccid: String,
        /// EID, if the order is for one device.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub eid: Option<String>,
        /// Matching id; empty or absent asks the SM-DP+ to generate one.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub matching_id: Option<String>,
        /// Confirmation code the end user must enter.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub confirmation_code: Option<String>,
        /// SM-DS address for an event registration.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub smds_address: Option<String>,
        /// Release the profile at once.
        pub release_flag: bool,
    }

    /// Answer to `confirmOrder`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ConfirmOrderResponse {
        /// Status.
        pub header: ResponseHeader,
        /// EID, if the order is linked.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub eid: Option<String>,
        /// The matching id of the order.
        pub matching_id: String,
        /// This SM-DP+'s address.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub smdp_address: Option<String>,
    }

    /// `cancelOrder`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct CancelOrderRequest {
        /// Header.
        pub header: RequestHeader,
        /// The profile.
        pub iccid: String,
        /// Must match the order's EID when given.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub eid: Option<String>,
        /// Must match the order's matching id when given.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub matching_id: Option<String>,
        /// `Available` or `Unavailable`.
        pub final_profile_status_indicator: String,
    }

    /// `releaseProfile`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct ReleaseProfileRequest {
        /// Header.
        pub header: RequestHeader,
        /// The profile.
        pub iccid: String,
    }

    /// `handleDownloadProgressInfo`, sent by the SM-DP+ to the operator.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct HandleDownloadProgressInfoRequest {
        /// Header (the SM-DP+ is the requester).
        pub header: RequestHeader,
        /// The device, when known (its 32 digits on the wire; a receiver
        /// refuses anything else while reading the body).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub eid: Option<ferrosim_ids::Eid>,
        /// The profile (its digits on the wire).
        pub iccid: ferrosim_ids::Iccid,
        /// Its profile type.
        pub profile_type: String,
        /// When the step happened (RFC 3339).
        pub timestamp: String,
        /// Which step (1 eligibility, 2 confirmation failure, 3 BPP download, 4 installation).
        pub notification_point_id: i64,
        /// How it went.
        pub notification_point_status: FunctionExecutionStatus,
        /// Base64 of the signed installation result, for point 4.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        pub result_data: Option<String>,
    }

    /// Re-export for callers building ES2+ responses.
    pub type Header = ResponseHeader;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_header_first() {
        let failed = br#"{"header":{"functionExecutionStatus":{"status":"Failed",
            "statusCodeData":{"subjectCode":"8.2.7","reasonCode":"3.8"}}}}"#;
        match read_answer::<es9::CancelSessionResponse>(failed) {
            Answer::Failed(d) => {
                assert_eq!(
                    (d.subject_code.as_str(), d.reason_code.as_str()),
                    ("8.2.7", "3.8")
                );
                assert_eq!(d.message.as_deref(), Some("Failed"));
            }
            other => panic!("{other:?}"),
        }
        let bare = br#"{"header":{"functionExecutionStatus":{"status":"Expired"}}}"#;
        assert!(
            matches!(read_answer::<HeaderOnly>(bare), Answer::Failed(d) if d.subject_code.is_empty())
        );
        let ok = br#"{"header":{"functionExecutionStatus":{"status":"Executed-Success"}}}"#;
        assert!(matches!(read_answer::<HeaderOnly>(ok), Answer::Executed(_)));
        // A success without the function's output (transactionId missing).
        assert!(matches!(
            read_answer::<es9::InitiateAuthenticationResponse>(ok),
            Answer::Malformed(_)
        ));
        for garbage in [&b"<html>"[..], b"{}", b"", b"{\"header\":3}"] {
            assert!(matches!(
                read_answer::<HeaderOnly>(garbage),
                Answer::Malformed(_)
            ));
        }
    }

    #[test]
    fn base64_accepts_missing_padding_and_rejects_garbage() {
        assert_eq!(Base64::decode("AQI=").unwrap().0, vec![1, 2]);
        assert_eq!(Base64::decode("AQI").unwrap().0, vec![1, 2]);
        assert!(Base64::decode("!!").is_none());
        let r: Result<es9::HandleNotificationRequest, _> =
            serde_json::from_str(r#"{"pendingNotification":"%%%"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn field_names_follow_the_spec() {
        let r = es9::InitiateAuthenticationResponse {
            header: ResponseHeader::success(),
            transaction_id: ferrosim_ids::TransactionId::from_bytes(&[1]).unwrap(),
            server_signed1: Base64(vec![1]),
            server_signature1: Base64(vec![2]),
            euicc_ci_pkid_to_be_used: Base64(vec![3]),
            server_certificate: Base64(vec![4]),
        };
        let v = serde_json::to_value(&r).unwrap();
        for k in [
            "transactionId",
            "serverSigned1",
            "serverSignature1",
            "euiccCiPKIdToBeUsed",
            "serverCertificate",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(
            v["header"]["functionExecutionStatus"]["status"],
            "Executed-Success"
        );
    }

    #[test]
    fn progress_callbacks_carry_ids_as_digits_and_refuse_garbage() {
        let eid = "89049032123451234512345678901235";
        let iccid = "8944000000000000001";
        let body = es2::HandleDownloadProgressInfoRequest {
            header: es2::RequestHeader {
                function_requester_identifier: "smdp.example".into(),
                function_call_identifier: "call-1".into(),
            },
            eid: Some(eid.parse().unwrap()),
            iccid: iccid.parse().unwrap(),
            profile_type: "t".into(),
            timestamp: "2026-01-31T12:00:00Z".into(),
            notification_point_id: 4,
            notification_point_status: FunctionExecutionStatus::success(),
            result_data: None,
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["eid"], eid);
        assert_eq!(v["iccid"], iccid);
        let back: es2::HandleDownloadProgressInfoRequest =
            serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, body);
        for (field, bad) in [
            ("eid", "89049032123451234512345678901234"),
            ("eid", "x"),
            ("iccid", "8944000000000000002"),
            ("iccid", ""),
        ] {
            let mut garbage = v.clone();
            garbage[field] = bad.into();
            assert!(
                serde_json::from_value::<es2::HandleDownloadProgressInfoRequest>(garbage).is_err(),
                "{field}: {bad}"
            );
        }
    }
}
