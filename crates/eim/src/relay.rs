//! Indirect profile download: the eIM relays the ES9+ steps of an IPA that
//! does not reach the SM-DP+ itself (SGP.32 ESipa `initiateAuthentication`,
//! `authenticateClient`, `getBoundProfilePackage`, `cancelSession`, and
//! `handleNotification` with a profile notification).
//!
//! Sans-IO: [`prepare`] turns the ESipa request into the ES9+ call to make
//! ([`RelayRequest`]: the SM-DP+ address and the ES9+ JSON request, the
//! eUICC's answers cut from the received bytes, never re-encoded), the
//! driver makes the call through an [`Es9Relay`] (ferrosim's own SM-DP+ in
//! process, or any SM-DP+ over HTTPS), and [`answer`] turns the SM-DP+'s
//! answer (or its failure) into the ESipa answer for both bindings: the DER
//! `EsipaMessageFromEimToIpa` assembled around the SM-DP+'s signed values as
//! received, and the JSON binding's members.
//!
//! The SM-DP+ a later step goes to is the one its transaction id was opened
//! with: [`crate::Eim`] keeps the transaction id → address mapping in the
//! store ([`crate::store::RelaySession`]) so any eIM instance can relay any
//! step.

use std::future::Future;

use ferrosim_asn1::esipa::{Sgp32Version, read_eim_message};
use ferrosim_asn1::json::es9;
use ferrosim_asn1::json::esipa::Answer;
use ferrosim_asn1::json::{Base64, FunctionExecutionStatus, ResponseHeader, StatusCodeData};
use ferrosim_asn1::tlv::{Tlv, tlv};

use crate::error::EimError;
use crate::ids::{EimTransactionId, TransactionId};

/// The relayed ES9+ function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayFunction {
    /// `initiateAuthentication` (ESipa `BF39`).
    InitiateAuthentication,
    /// `authenticateClient` (ESipa `BF3B`).
    AuthenticateClient,
    /// `getBoundProfilePackage` (ESipa `BF3A`).
    GetBoundProfilePackage,
    /// `cancelSession` (ESipa `BF41`).
    CancelSession,
    /// `handleNotification` with a `pendingNotification` (ESipa `BF3D`).
    HandleNotification,
}

impl RelayFunction {
    /// The ES9+ function name.
    pub fn name(self) -> &'static str {
        match self {
            Self::InitiateAuthentication => "initiateAuthentication",
            Self::AuthenticateClient => "authenticateClient",
            Self::GetBoundProfilePackage => "getBoundProfilePackage",
            Self::CancelSession => "cancelSession",
            Self::HandleNotification => "handleNotification",
        }
    }

    /// The ESipa tag of its request and answer.
    pub fn tag(self) -> u32 {
        match self {
            Self::InitiateAuthentication => 0xBF39,
            Self::AuthenticateClient => 0xBF3B,
            Self::GetBoundProfilePackage => 0xBF3A,
            Self::CancelSession => 0xBF41,
            Self::HandleNotification => 0xBF3D,
        }
    }

    /// The function whose ESipa request carries `tag`.
    pub fn from_tag(tag: u32) -> Option<Self> {
        [
            Self::InitiateAuthentication,
            Self::AuthenticateClient,
            Self::GetBoundProfilePackage,
            Self::CancelSession,
            Self::HandleNotification,
        ]
        .into_iter()
        .find(|f| f.tag() == tag)
    }

    /// The `undefinedError` / `invalidTransactionId` codes of its ESipa
    /// error answer (`None` for handleNotification, which has no answer).
    fn codes(self) -> Option<(i64, i64)> {
        match self {
            Self::InitiateAuthentication => Some((127, 52)),
            Self::AuthenticateClient => Some((127, 10)),
            Self::GetBoundProfilePackage => Some((127, 95)),
            Self::CancelSession => Some((127, 1)),
            Self::HandleNotification => None,
        }
    }
}

/// An ES9+ request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Es9Request {
    /// `initiateAuthentication`.
    InitiateAuthentication(es9::InitiateAuthenticationRequest),
    /// `authenticateClient`.
    AuthenticateClient(es9::AuthenticateClientRequest),
    /// `getBoundProfilePackage`.
    GetBoundProfilePackage(es9::GetBoundProfilePackageRequest),
    /// `cancelSession`.
    CancelSession(es9::CancelSessionRequest),
    /// `handleNotification`.
    HandleNotification(es9::HandleNotificationRequest),
}

/// A successful ES9+ answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Es9Response {
    /// `initiateAuthentication`.
    InitiateAuthentication(es9::InitiateAuthenticationResponse),
    /// `authenticateClient`.
    AuthenticateClient(es9::AuthenticateClientResponse),
    /// `getBoundProfilePackage`.
    GetBoundProfilePackage(es9::GetBoundProfilePackageResponse),
    /// `cancelSession`.
    CancelSession(es9::CancelSessionResponse),
    /// `handleNotification` (acknowledged).
    HandleNotification,
}

/// Why an ES9+ call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayFailure {
    /// The SM-DP+ answered `Failed` with this status.
    Failed {
        /// SGP.22 subject code.
        subject_code: String,
        /// SGP.22 reason code.
        reason_code: String,
        /// Its message.
        message: Option<String>,
    },
    /// The SM-DP+ could not be reached, or answered something unreadable.
    Unreachable(String),
}

/// One ES9+ call the eIM makes for an IPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRequest {
    /// What.
    pub function: RelayFunction,
    /// The SM-DP+ (`host[:port]`).
    pub address: String,
    /// The request.
    pub request: Es9Request,
    /// The version of the IPA's message (its answer is written in it).
    pub version: Sgp32Version,
}

/// Makes relayed ES9+ calls: the driver's side of the relay.
pub trait Es9Relay: Send + Sync {
    /// Sends `request` to its SM-DP+.
    fn call(
        &self,
        request: &RelayRequest,
    ) -> impl Future<Output = Result<Es9Response, RelayFailure>> + Send;
}

/// An [`Es9Relay`] for an eIM without one: every call fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRelay;

impl Es9Relay for NoRelay {
    async fn call(&self, _request: &RelayRequest) -> Result<Es9Response, RelayFailure> {
        Err(RelayFailure::Unreachable(
            "this eIM relays no ES9+ calls".to_owned(),
        ))
    }
}

/// The answer to a relayed step, for both bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAnswer {
    /// The DER `EsipaMessageFromEimToIpa` (`None` for handleNotification).
    pub der: Option<Vec<u8>>,
    /// The JSON binding's answer.
    pub json: Answer,
}

/// What a relayed request names, read from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `initiateAuthentication`: everything but the address and EUICCInfo1
    /// may need the eIM's records.
    Initiate {
        /// 16-byte challenge.
        challenge: Vec<u8>,
        /// The SM-DP+ address, when the IPA gave it.
        smdp_address: Option<String>,
        /// EUICCInfo1 TLV (`BF20`), when the IPA gave it.
        euicc_info1: Option<Vec<u8>>,
        /// The eIM transaction id of the download trigger it follows
        /// (`None` too for an id of a length this eIM never makes: no item
        /// of it can carry that id).
        eim_transaction_id: Option<EimTransactionId>,
    },
    /// A later step of an open session.
    Step {
        /// Which.
        function: RelayFunction,
        /// The SM-DP+ transaction id.
        transaction_id: TransactionId,
        /// The eUICC's answer as ES9+ carries it (BF38, BF21, BF41).
        euicc_answer: Vec<u8>,
    },
    /// A profile notification (`PendingNotification` TLV) to deliver.
    Notification {
        /// The notification as received.
        pending_notification: Vec<u8>,
        /// Where it goes (its notificationAddress), when it names one.
        address: Option<String>,
        /// The SM-DP+ transaction id of a ProfileInstallationResult.
        transaction_id: Option<TransactionId>,
    },
}

/// Reads a relayed ESipa request (`BF39`, `BF3B`, `BF3A`, `BF41`, or `BF3D`
/// with a pendingNotification); `None` for any other message.
pub fn parse(der: &[u8]) -> Result<Option<Parsed>, EimError> {
    let malformed = EimError::UnexpectedMessage;
    let Ok(outer) = Tlv::parse_exact(der) else {
        return Ok(None);
    };
    let Some(function) = RelayFunction::from_tag(outer.tag) else {
        return Ok(None);
    };
    let children: Vec<Tlv<'_>> = outer
        .children()
        .collect::<Result<_, _>>()
        .map_err(|_| malformed("a relayed request whose elements do not parse"))?;
    let find = |tag: u32| children.iter().find(|c| c.tag == tag);
    Ok(Some(match function {
        RelayFunction::InitiateAuthentication => Parsed::Initiate {
            challenge: find(0x81)
                .filter(|c| c.value.len() == 16)
                .ok_or_else(|| {
                    malformed("initiateAuthentication without a 16-byte euiccChallenge")
                })?
                .value
                .to_vec(),
            smdp_address: find(0x83)
                .map(|c| String::from_utf8(c.value.to_vec()))
                .transpose()
                .map_err(|_| malformed("an smdpAddress that is not UTF-8"))?,
            euicc_info1: find(0xBF20).map(|c| c.raw.to_vec()),
            eim_transaction_id: find(0x82).and_then(|c| EimTransactionId::from_slice(c.value)),
        },
        RelayFunction::HandleNotification => {
            let Some(inner) = find(0xA0) else {
                return Ok(None);
            };
            let note = Tlv::parse_exact(inner.value)
                .map_err(|_| malformed("a pendingNotification that does not parse"))?;
            let (address, transaction_id) = notification_facts(&note);
            Parsed::Notification {
                pending_notification: note.raw.to_vec(),
                address,
                transaction_id,
            }
        }
        step => {
            let tid = children
                .first()
                .filter(|c| c.tag == 0x80)
                .and_then(|c| TransactionId::from_bytes(c.value).ok())
                .ok_or_else(|| malformed("a relayed step without a transactionId"))?;
            let answer = children
                .get(1)
                .ok_or_else(|| malformed("a relayed step without the eUICC's answer"))?;
            let euicc_answer = match step {
                // [1] IMPLICIT CancelSessionResponse: its own tag is BF41.
                RelayFunction::CancelSession if answer.tag == 0xA1 => tlv(0xBF41, answer.value),
                RelayFunction::AuthenticateClient if answer.tag == 0xBF38 => answer.raw.to_vec(),
                RelayFunction::GetBoundProfilePackage if answer.tag == 0xBF21 => {
                    answer.raw.to_vec()
                }
                _ => return Err(malformed("a relayed step with the wrong eUICC answer")),
            };
            Parsed::Step {
                function: step,
                transaction_id: tid,
                euicc_answer,
            }
        }
    }))
}

/// The notificationAddress and the PIR's transaction id of a
/// PendingNotification, where it has them.
fn notification_facts(note: &Tlv<'_>) -> (Option<String>, Option<TransactionId>) {
    // ProfileInstallationResult BF37 { BF27 { 80 tid, BF2F metadata, ... } }
    // OtherSignedNotification 30 { BF2F metadata, ... }
    let data = match note.tag {
        0xBF37 => note.find(0xBF27).ok().flatten(),
        _ => Some(*note),
    };
    let Some(data) = data else {
        return (None, None);
    };
    let tid = data
        .find(0x80)
        .ok()
        .flatten()
        .filter(|_| note.tag == 0xBF37)
        .and_then(|t| TransactionId::from_bytes(t.value).ok());
    let address = data
        .find(0xBF2F)
        .ok()
        .flatten()
        .and_then(|m| m.find(0x0C).ok().flatten())
        .and_then(|a| String::from_utf8(a.value.to_vec()).ok());
    (address, tid)
}

/// The ES9+ request for a later step.
pub fn step_request(
    function: RelayFunction,
    transaction_id: &TransactionId,
    euicc_answer: Vec<u8>,
) -> Es9Request {
    let answer = Base64(euicc_answer);
    let transaction_id = transaction_id.clone();
    match function {
        RelayFunction::AuthenticateClient => {
            Es9Request::AuthenticateClient(es9::AuthenticateClientRequest {
                transaction_id,
                authenticate_server_response: answer,
            })
        }
        RelayFunction::GetBoundProfilePackage => {
            Es9Request::GetBoundProfilePackage(es9::GetBoundProfilePackageRequest {
                transaction_id,
                prepare_download_response: answer,
            })
        }
        _ => Es9Request::CancelSession(es9::CancelSessionRequest {
            transaction_id,
            cancel_session_response: answer,
        }),
    }
}

/// The ESipa error answer of `function` with `code` (both bindings). For
/// the JSON binding the error is the function's error member with a
/// `Failed` header carrying the SM-DP+'s status when there is one.
pub fn error_answer(
    function: RelayFunction,
    code: i64,
    status: Option<StatusCodeData>,
    version: Sgp32Version,
) -> RelayAnswer {
    let _ = version; // the relay messages have one wire form in v1.0 and v1.2
    let der = function.codes().map(|_| {
        let mut value = Vec::new();
        let bytes = code.to_be_bytes();
        let skip = bytes
            .windows(2)
            .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xFF && w[1] & 0x80 != 0))
            .count();
        value.extend_from_slice(&bytes[skip..]);
        // The error alternative's automatic tag: [2] after authenticateClient's
        // two ok alternatives, [1] elsewhere.
        let error_tag = match function {
            RelayFunction::AuthenticateClient => 0x82,
            _ => 0x81,
        };
        tlv(function.tag(), &tlv(error_tag, &value))
    });
    let mut json = empty_answer(ResponseHeader {
        function_execution_status: FunctionExecutionStatus {
            status: "Failed".to_owned(),
            status_code_data: Some(status.unwrap_or(StatusCodeData {
                subject_code: "8.8".to_owned(),
                reason_code: "4.2".to_owned(),
                subject_identifier: None,
                message: Some(format!("{} failed at the eIM relay", function.name())),
            })),
        },
    });
    let member = match function {
        RelayFunction::InitiateAuthentication => Some("initiateAuthenticationErrorEsipa"),
        RelayFunction::AuthenticateClient => Some("authenticateClientErrorEsipa"),
        RelayFunction::GetBoundProfilePackage => Some("getBoundProfilePackageErrorEsipa"),
        RelayFunction::CancelSession => Some("cancelSessionError"),
        RelayFunction::HandleNotification => None,
    };
    if let Some(member) = member {
        json.relay.insert(member.to_owned(), code.into());
    }
    RelayAnswer { der, json }
}

/// The `invalidTransactionId` answer of a step whose session the eIM does
/// not know.
pub fn unknown_transaction(function: RelayFunction, version: Sgp32Version) -> RelayAnswer {
    let code = function.codes().map_or(127, |(_, invalid)| invalid);
    error_answer(
        function,
        code,
        Some(StatusCodeData {
            subject_code: "8.10.1".to_owned(),
            reason_code: "3.9".to_owned(),
            subject_identifier: None,
            message: Some("TransactionId unknown at the eIM".to_owned()),
        }),
        version,
    )
}

/// The ESipa answer to a relayed call, from the SM-DP+'s outcome.
pub fn answer(
    request: &RelayRequest,
    outcome: &Result<Es9Response, RelayFailure>,
    matching_id: Option<&str>,
) -> RelayAnswer {
    let function = request.function;
    let response = match outcome {
        Ok(r) => r,
        Err(RelayFailure::Failed {
            subject_code,
            reason_code,
            message,
        }) => {
            let code = error_code(function, subject_code, reason_code);
            let status = StatusCodeData {
                subject_code: subject_code.clone(),
                reason_code: reason_code.clone(),
                subject_identifier: None,
                message: message.clone(),
            };
            return error_answer(function, code, Some(status), request.version);
        }
        Err(RelayFailure::Unreachable(_)) => {
            return error_answer(function, 127, None, request.version);
        }
    };
    match assemble(response, matching_id) {
        Some((der, members)) => {
            // What goes out must read back as an EsipaMessageFromEimToIpa.
            if der
                .as_ref()
                .is_some_and(|d| read_eim_message(d, Some(Sgp32Version::V1_2)).is_err())
            {
                return error_answer(function, 127, None, request.version);
            }
            let mut json = empty_answer(ResponseHeader::success());
            json.relay = members;
            RelayAnswer { der, json }
        }
        None => error_answer(function, 127, None, request.version),
    }
}

type Members = serde_json::Map<String, serde_json::Value>;

/// The DER answer and the JSON members of a successful ES9+ answer.
fn assemble(
    response: &Es9Response,
    matching_id: Option<&str>,
) -> Option<(Option<Vec<u8>>, Members)> {
    let mut members = Members::new();
    let mut put = |name: &str, value: String| {
        members.insert(name.to_owned(), serde_json::Value::String(value));
    };
    let tid = |t: &TransactionId| Some(tlv(0x80, t.as_bytes()));
    let element = |b: &Base64| Tlv::parse_exact(&b.0).ok().map(|t| t.raw.to_vec());
    let ok = |tag: u32, children: Vec<u8>| Some(tlv(tag, &tlv(0xA0, &children)));
    let der = match response {
        Es9Response::InitiateAuthentication(r) => {
            let mut c = tid(&r.transaction_id)?;
            c.extend(element(&r.server_signed1)?);
            c.extend(element(&r.server_signature1)?);
            c.extend(element(&r.euicc_ci_pkid_to_be_used)?);
            c.extend(element(&r.server_certificate)?);
            if let Some(m) = matching_id {
                c.extend(tlv(0x0C, m.as_bytes()));
                put("matchingId", m.to_owned());
            }
            put("transactionId", r.transaction_id.to_hex());
            put("serverSigned1", r.server_signed1.encode());
            put("serverSignature1", r.server_signature1.encode());
            put("euiccCiPKIdToBeUsed", r.euicc_ci_pkid_to_be_used.encode());
            put("serverCertificate", r.server_certificate.encode());
            ok(0xBF39, c)
        }
        Es9Response::AuthenticateClient(r) => {
            let mut c = tid(&r.transaction_id)?;
            c.extend(element(&r.profile_metadata)?);
            c.extend(element(&r.smdp_signed2)?);
            c.extend(element(&r.smdp_signature2)?);
            c.extend(element(&r.smdp_certificate)?);
            put("transactionId", r.transaction_id.to_hex());
            put("profileMetadata", r.profile_metadata.encode());
            put("smdpSigned2", r.smdp_signed2.encode());
            put("smdpSignature2", r.smdp_signature2.encode());
            put("smdpCertificate", r.smdp_certificate.encode());
            ok(0xBF3B, c)
        }
        Es9Response::GetBoundProfilePackage(r) => {
            let mut c = tid(&r.transaction_id)?;
            c.extend(element(&r.bound_profile_package)?);
            put("transactionId", r.transaction_id.to_hex());
            put("boundProfilePackage", r.bound_profile_package.encode());
            ok(0xBF3A, c)
        }
        Es9Response::CancelSession(r) => {
            if let Some(t) = &r.transaction_id {
                put("transactionId", t.to_hex());
            }
            ok(0xBF41, Vec::new())
        }
        Es9Response::HandleNotification => None,
    };
    Some((der, members))
}

/// The ESipa error code of a `Failed` ES9+ status (SGP.22 codes as the
/// SM-DP+ gives them; anything else is undefinedError).
fn error_code(function: RelayFunction, subject: &str, reason: &str) -> i64 {
    let pair = (subject, reason);
    match function {
        RelayFunction::InitiateAuthentication => match pair {
            ("8.8.1", "3.8") => 50,
            ("8.8.2", "3.1") | ("8.8.4", "3.7") => 3,
            ("8.8.3", "3.1") => 2,
            ("8.8", "3.10") => 51,
            _ => 127,
        },
        RelayFunction::AuthenticateClient => match pair {
            ("8.1.2", "6.1") => 1,
            ("8.1.2", "6.3") => 2,
            ("8.1.3", "6.1") | ("8.1.4", "6.1") => 3,
            ("8.1.3", "6.3") => 4,
            ("8.1", "6.1") => 5,
            ("8.2.6", "3.8") | ("8.2.6", "3.3") => 6,
            ("8.1.1", "3.8") | ("8.1.1", "2.1") => 7,
            ("8.2", "1.2") | ("8.2", "3.7") | ("8.2.5", "3.9") | ("8.2.5", "3.7") => 8,
            ("8.11.1", "3.9") => 9,
            ("8.10.1", "3.9") => 10,
            ("8.8.5", "4.10") => 18,
            _ => 127,
        },
        RelayFunction::GetBoundProfilePackage => match pair {
            ("8.1", "6.1") => 1,
            ("8.2.7", "2.2") => 2,
            ("8.2.7", "3.8") => 3,
            ("8.2.7", "6.4") => 4,
            ("8.10.1", "3.9") => 95,
            _ => 127,
        },
        RelayFunction::CancelSession => match pair {
            ("8.10.1", "3.9") => 1,
            ("8.1", "6.1") => 2,
            _ => 127,
        },
        RelayFunction::HandleNotification => 127,
    }
}

fn empty_answer(header: ResponseHeader) -> Answer {
    Answer {
        header,
        euicc_package_request: None,
        ipa_euicc_data_request: None,
        profile_download_trigger_request: None,
        eim_package_error: None,
        eim_acknowledgements: None,
        provide_eim_package_result_error: None,
        relay: Members::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// An ESipa authenticateClient request with this transactionId value.
    fn authenticate_client(tid: &[u8]) -> Vec<u8> {
        let answer = tlv(0xBF38, &tlv(0xA0, &[]));
        tlv(0xBF3B, &[tlv(0x80, tid), answer].concat())
    }

    #[test]
    fn a_step_carries_a_typed_transaction_id_and_garbage_ones_are_refused() {
        let parsed = parse(&authenticate_client(&[0xAB; 16])).unwrap();
        match parsed {
            Some(Parsed::Step { transaction_id, .. }) => {
                assert_eq!(transaction_id.to_hex(), "AB".repeat(16));
            }
            other => panic!("{other:?}"),
        }
        for bad in [&[][..], &[0x01; 17][..]] {
            assert!(
                matches!(
                    parse(&authenticate_client(bad)),
                    Err(EimError::UnexpectedMessage(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_eim_transaction_id_this_eim_never_makes_names_no_trigger() {
        let initiate = |tid: &[u8]| tlv(0xBF39, &[tlv(0x81, &[7; 16]), tlv(0x82, tid)].concat());
        match parse(&initiate(&[9; EimTransactionId::LEN])).unwrap() {
            Some(Parsed::Initiate {
                eim_transaction_id, ..
            }) => assert_eq!(
                eim_transaction_id,
                EimTransactionId::from_slice(&[9; EimTransactionId::LEN])
            ),
            other => panic!("{other:?}"),
        }
        for other_length in [&[][..], &[9; 3][..], &[9; 16][..]] {
            match parse(&initiate(other_length)).unwrap() {
                Some(Parsed::Initiate {
                    eim_transaction_id, ..
                }) => assert_eq!(eim_transaction_id, None),
                other => panic!("{other:?}"),
            }
        }
    }
}
