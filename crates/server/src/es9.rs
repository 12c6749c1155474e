//! `POST /gsma/rsp2/es9plus/{function}`: the ES9+ JSON binding.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode as HttpStatus;
use axum::response::{IntoResponse, Response};
use ferrosim_asn1::json::es9::AuthenticateClientRequest;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_audit::AuditRecord;
use ferrosim_smdp::store::Store;
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Es9Error, Smdp};
use tracing::{Instrument, error, info, info_span};

use crate::access::Access;
use crate::http::{failed, no_content, ok_json, ok_json_sized, ok_json_with_tid, parse_json};

/// Room for the JSON of a `getBoundProfilePackage` answer around the
/// package's base64 text (header, transaction id, field names).
const ANSWER_FRAME: usize = 512;

/// Dispatches one ES9+ call. Every failure, including garbage input, is a
/// `Failed` JSON answer with its SGP.22 status code, except a
/// `handleNotification` the SM-DP+ cannot use: 204, logged and dropped
/// ([`ferrosim_smdp::es9::NotificationHandled::Dropped`]).
pub(crate) async fn handle<S: Store + Clone>(
    State(smdp): State<Smdp<S>>,
    Path(function): Path<String>,
    ctx: crate::audit::AuditContext,
    access: Option<Extension<Access>>,
    body: Bytes,
) -> Response {
    let span = info_span!("es9", function = %function);
    // The record is built only for an auditor that keeps it: it reads the
    // request's JSON once more for its transaction id.
    let audited = (ctx.auditor.is_enabled() && ORDER_STEPS.contains(&function.as_str()))
        .then(|| (function.clone(), body.clone()));
    let response = async move {
        let now = Timestamp::now();
        let result = match function.as_str() {
            "initiateAuthentication" => match parse_json(&body) {
                Ok(req) => smdp
                    .initiate_authentication(&req, now)
                    .await
                    .map(|r| ok_json_with_tid(&r, &r.transaction_id)),
                Err(resp) => return *resp,
            },
            "authenticateClient" => match parse_json::<AuthenticateClientRequest>(&body) {
                Ok(req) => {
                    // The device's own limits, by the EID its certificate
                    // names, before any signature check.
                    let device = access.as_ref().and_then(|Extension(a)| {
                        certificate_eid(&req.authenticate_server_response.0).map(|e| (a, e))
                    });
                    if let Some((access, eid)) = &device
                        && let Some(refused) = access.admit_eid("es9", eid)
                    {
                        return refused;
                    }
                    let result = smdp.authenticate_client(&req, now).await;
                    if let (Err(e), Some((access, eid))) = (&result, &device)
                        && after_euicc_proved_its_eid(e)
                    {
                        access.eid_failed("es9", eid);
                    }
                    result.map(|r| ok_json(&r))
                }
                Err(resp) => return *resp,
            },
            "getBoundProfilePackage" => match parse_json(&body) {
                Ok(req) => smdp.get_bound_profile_package(&req, now).await.map(|r| {
                    // The package's base64 text and the header around it.
                    let base64 = r.bound_profile_package.0.len().div_ceil(3) * 4;
                    ok_json_sized(&r, base64 + ANSWER_FRAME)
                }),
                Err(resp) => return *resp,
            },
            "handleNotification" => match parse_json(&body) {
                // Recorded or dropped (logged by the SM-DP+ core), the
                // answer is 204: SGP.22 ES9+.HandleNotification has no other.
                Ok(req) => smdp
                    .handle_notification(&req, now)
                    .await
                    .map(|_| no_content()),
                Err(resp) => return *resp,
            },
            "cancelSession" => match parse_json(&body) {
                Ok(req) => smdp.cancel_session(&req, now).await.map(|r| ok_json(&r)),
                Err(resp) => return *resp,
            },
            _ => return HttpStatus::NOT_FOUND.into_response(),
        };
        result.unwrap_or_else(|e| failure(&e))
    }
    .instrument(span)
    .await;
    if let Some((function, body)) = audited {
        let record = es9_record(&function, &body, &response, ctx.client);
        ctx.auditor.record(record).await;
    }
    response
}

/// The EID (32 digits) of the eUICC certificate in an
/// AuthenticateServerResponse (`BF38 { A0 { euiccSigned1,
/// euiccSignature1, euiccCertificate, eumCertificate } }`), not verified:
/// the key of the device's rate limit. `None` when it cannot be read (the
/// SM-DP+ refuses such a call anyway).
fn certificate_eid(authenticate_server_response: &[u8]) -> Option<String> {
    let outer = Tlv::parse_exact(authenticate_server_response).ok()?;
    let ok = outer.children().next()?.ok()?;
    if ok.tag != 0xA0 {
        return None;
    }
    let certificate = ok.children().nth(2)?.ok()?;
    let eid = ferrosim_pki::RspCertificate::from_der(certificate.raw)
        .ok()?
        .eid()
        .ok()?;
    Some(eid.to_string())
}

/// Whether an authenticateClient refusal came after the eUICC's signature
/// (and so its EID) verified: a matching id refused, an order rule broken.
/// Only those count towards the device's lockout.
fn after_euicc_proved_its_eid(e: &Es9Error) -> bool {
    matches!(e, Es9Error::MatchingIdRefused | Es9Error::Order(_))
}

/// The ES9+ functions after which an order may have changed state
/// (downloaded, installed, failed, cancelled): those are audited.
const ORDER_STEPS: [&str; 4] = [
    "authenticateClient",
    "getBoundProfilePackage",
    "handleNotification",
    "cancelSession",
];

/// The audit record of an ES9+ step: by the client's address, on the
/// session's transaction id, with the answer's HTTP status and, for a
/// refusal, its SGP.22 subject/reason code.
fn es9_record(
    function: &str,
    body: &[u8],
    response: &Response,
    client: ferrosim_audit::Actor,
) -> AuditRecord {
    #[derive(serde::Deserialize)]
    struct Tid {
        #[serde(rename = "transactionId")]
        transaction_id: Option<String>,
    }
    let tid = serde_json::from_slice::<Tid>(body)
        .ok()
        .and_then(|t| t.transaction_id)
        .filter(|t| t.len() <= 64)
        .unwrap_or_default();
    AuditRecord::new(Timestamp::now(), client, &format!("es9.{function}"), &tid).with_details(
        match response.extensions().get::<Refusal>() {
            Some(Refusal(subject, reason)) => serde_json::json!({
                "http": response.status().as_u16(),
                "refused": format!("{subject}/{reason}"),
            }),
            None => serde_json::json!({ "http": response.status().as_u16() }),
        },
    )
}

/// The SGP.22 status of a refused ES9+ call, kept on its response (not sent)
/// for the audit record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal(&'static str, &'static str);

fn failure(e: &Es9Error) -> Response {
    let code = e.status();
    let mut response = failure_response(e);
    // A refusal of the client's request (not a failure on our side) counts
    // towards its lockout (see `crate::access`) and is audited with its code.
    if !matches!(e, Es9Error::Store(_) | Es9Error::Internal(_)) {
        response
            .extensions_mut()
            .insert(Refusal(code.subject, code.reason));
    }
    response
}

fn failure_response(e: &Es9Error) -> Response {
    let code = e.status();
    match e {
        Es9Error::Store(_) => {
            error!(error = %e, subject = code.subject, reason = code.reason, "ES9+ call failed on our side");
            failed(
                code,
                Some(ferrosim_smdp::es2::STORE_FAILURE_MESSAGE.to_owned()),
            )
        }
        Es9Error::Internal(_) => {
            error!(error = %e, subject = code.subject, reason = code.reason, "ES9+ call failed on our side");
            failed(code, None)
        }
        _ => {
            info!(error = %e, subject = code.subject, reason = code.reason, "ES9+ call refused");
            failed(code, Some(e.to_string()))
        }
    }
}
