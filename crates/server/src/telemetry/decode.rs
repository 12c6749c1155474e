//! What telemetry reads from the bodies of ES9+ calls, off the request path:
//! the transaction id and status of an answer, and what a pending
//! notification is about.
//!
//! Nothing here verifies anything (the SM-DP+ did, and telemetry records
//! the call's outcome as the SM-DP+ answered it); a body that does not
//! decode simply yields nothing.

use ferrosim_asn1::{decode_der, rsp};
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::TransactionId;
use ferrosim_telemetry::{EuiccOutcome, EuiccStage, StatusCode, StepStatus};
use serde::Deserialize;

/// The parts of an ES2+/ES9+ JSON answer telemetry reads.
#[derive(Debug, Deserialize)]
struct Answer {
    header: Option<Header>,
    #[serde(rename = "transactionId")]
    transaction_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(rename = "functionExecutionStatus")]
    status: Option<ExecutionStatus>,
}

#[derive(Debug, Deserialize)]
struct ExecutionStatus {
    status: String,
    #[serde(rename = "statusCodeData")]
    data: Option<CodeData>,
}

#[derive(Debug, Deserialize)]
struct CodeData {
    #[serde(rename = "subjectCode")]
    subject: String,
    #[serde(rename = "reasonCode")]
    reason: String,
}

/// `8.8/4.2` (execution error): the status of a failed answer that names no
/// valid code of its own.
pub(crate) fn execution_error() -> StatusCode {
    "8.8/4.2"
        .parse()
        .expect("a constant, valid subject/reason pair")
}

/// How a call ended, from the HTTP status and the JSON answer, and the
/// transaction id the answer names (initiateAuthentication's).
pub(crate) fn answer(http_ok: bool, body: &[u8]) -> (StepStatus, Option<TransactionId>) {
    let parsed: Option<Answer> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    let tid = parsed
        .as_ref()
        .and_then(|a| a.transaction_id.as_deref())
        .and_then(|t| TransactionId::from_hex(t).ok());
    let status = match parsed.and_then(|a| a.header).and_then(|h| h.status) {
        Some(s) if s.status.starts_with("Executed") => StepStatus::Ok,
        Some(s) => StepStatus::Failed(
            s.data
                .and_then(|d| format!("{}/{}", d.subject, d.reason).parse().ok())
                .unwrap_or_else(execution_error),
        ),
        None if http_ok => StepStatus::Ok,
        None => StepStatus::Failed(execution_error()),
    };
    (status, tid)
}

/// The `transactionId` of an ES9+ request body, if it has one.
pub(crate) fn request_tid(body: &[u8]) -> Option<TransactionId> {
    #[derive(Deserialize)]
    struct Request {
        #[serde(rename = "transactionId")]
        transaction_id: Option<String>,
    }
    let r: Request = serde_json::from_slice(body).ok()?;
    TransactionId::from_hex(r.transaction_id.as_deref()?).ok()
}

/// What a `handleNotification` request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notification {
    /// An installation result of a download session.
    InstallationResult(TransactionId),
    /// An enable, disable or delete of a profile.
    ProfileChange {
        /// The profile.
        iccid: Iccid,
        /// What happened to it.
        change: ferrosim_telemetry::ProfileChange,
    },
}

/// Reads the pending notification of a `handleNotification` request body.
pub(crate) fn notification(body: &[u8]) -> Option<Notification> {
    #[derive(Deserialize)]
    struct Request {
        #[serde(rename = "pendingNotification")]
        pending: String,
    }
    use base64::Engine;
    let r: Request = serde_json::from_slice(body).ok()?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(r.pending.trim())
        .ok()?;
    match decode_der::<rsp::PendingNotification>(&der).ok()? {
        rsp::PendingNotification::profileInstallationResult(pir) => {
            let tid = pir.profile_installation_result_data.transaction_id.0;
            TransactionId::from_bytes(tid.as_ref())
                .ok()
                .map(Notification::InstallationResult)
        }
        rsp::PendingNotification::otherSignedNotification(other) => {
            use ferrosim_telemetry::ProfileChange;
            let meta = &other.tbs_other_notification;
            // NotificationEvent bits: install(0), enable(1), disable(2), delete(3).
            let bit = meta
                .profile_management_operation
                .0
                .iter()
                .position(|b| *b)?;
            let change = match bit {
                1 => ProfileChange::Enabled,
                2 => ProfileChange::Disabled,
                3 => ProfileChange::Deleted,
                _ => return None,
            };
            let iccid = Iccid::from_bcd(meta.iccid.as_ref()?.0.as_ref()).ok()?;
            Some(Notification::ProfileChange { iccid, change })
        }
        _ => None,
    }
}

/// The eUICC's result in a ProfileInstallationResult (the `resultData` of
/// an installation progress event).
pub(crate) fn installation_outcome(pir_der: &[u8]) -> Option<EuiccOutcome> {
    let rsp::PendingNotification::profileInstallationResult(pir) =
        decode_der::<rsp::PendingNotification>(pir_der).ok()?
    else {
        return None;
    };
    Some(match pir.profile_installation_result_data.final_result {
        rsp::ProfileInstallationResultDataFinalResult::successResult(_) => EuiccOutcome::Installed,
        rsp::ProfileInstallationResultDataFinalResult::errorResult(e) => {
            let clamp = |v: Option<i64>| v.and_then(|v| u8::try_from(v).ok());
            let bpp = clamp(i64::try_from(&e.bpp_command_id.0).ok())
                .unwrap_or(0)
                .min(3);
            EuiccOutcome::Failed {
                stage: EuiccStage::LoadBoundProfilePackage {
                    bpp_command_id: bpp,
                },
                reason: clamp(i64::try_from(&e.error_reason.0).ok()).unwrap_or(u8::MAX),
            }
        }
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = br#"{"header":{"functionExecutionStatus":{"status":"Executed-Success"}},"transactionId":"0A0B"}"#;
        let (s, tid) = answer(true, ok);
        assert_eq!(s, StepStatus::Ok);
        assert_eq!(tid.map(|t| t.to_hex()), Some("0A0B".to_owned()));
        let failed = br#"{"header":{"functionExecutionStatus":{"status":"Failed","statusCodeData":{"subjectCode":"8.2.6","reasonCode":"3.8","message":"x"}}}}"#;
        assert_eq!(
            answer(true, failed).0,
            StepStatus::Failed("8.2.6/3.8".parse().unwrap())
        );
        let odd = br#"{"header":{"functionExecutionStatus":{"status":"Failed","statusCodeData":{"subjectCode":"x","reasonCode":"y"}}}}"#;
        assert_eq!(answer(true, odd).0, StepStatus::Failed(execution_error()));
        assert_eq!(answer(true, b"").0, StepStatus::Ok, "204");
        assert_eq!(answer(false, b"").0, StepStatus::Failed(execution_error()));
        assert_eq!(
            answer(false, b"\xff{garbage").0,
            StepStatus::Failed(execution_error())
        );
        assert_eq!(execution_error().to_string(), "8.8/4.2");
    }

    #[test]
    fn garbage_yields_nothing() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"transactionId\":\"zz\"}",
            b"{\"transactionId\":7}",
        ] {
            assert_eq!(request_tid(body), None);
            assert_eq!(notification(body), None);
        }
        assert_eq!(
            notification(br#"{"pendingNotification":"not base64!"}"#),
            None
        );
        assert_eq!(notification(br#"{"pendingNotification":"MAA="}"#), None);
        assert_eq!(installation_outcome(b"\x30\x00"), None);
        assert_eq!(installation_outcome(b""), None);
        assert_eq!(
            request_tid(br#"{"transactionId":"00FF","x":1}"#).map(|t| t.to_hex()),
            Some("00FF".to_owned())
        );
    }
}
