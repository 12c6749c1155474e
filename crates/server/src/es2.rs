//! `POST /gsma/rsp2/es2plus/{function}`: the ES2+ JSON binding for operators.
//!
//! Operators authenticate with `Authorization: Bearer <token>` (tokens are
//! stored hashed) or, when configured, with a TLS client certificate
//! (mutual TLS, as SGP.22 describes ES2+; see [`crate::client_auth`]). A
//! token, when present, decides; otherwise the client certificate of the
//! connection must be the requesting operator's (`functionRequesterIdentifier`).
//! Client certificates only work when TLS ends at ferrosim: a load balancer
//! in front must pass TLS through (TCP mode), not terminate it.

use axum::body::Bytes;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls::TlsInfo;
use ferrosim_asn1::json::es2::RequestHeader;
use ferrosim_audit::{Actor, AuditRecord};
use ferrosim_smdp::end_of_life::RevokeProfileRequest;
use ferrosim_smdp::es2::CallAnswer;
use ferrosim_smdp::status::StatusCode;
use ferrosim_smdp::store::{EndOfLifeStore, Operator, Store};
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Es2Error, Smdp};
use rustls::pki_types::UnixTime;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, info, info_span, warn};

use crate::audit::AuditContext;
use crate::client_auth::ClientAuthenticator;
use crate::http::{failed_body, json_response, parse_body, parse_json};

/// SGP.22's four ES2+ functions, and `revokeProfile` (a ferrosim
/// extension: [`ferrosim_smdp::end_of_life::RevokeProfileRequest`]).
const FUNCTIONS: [&str; 5] = [
    "downloadOrder",
    "confirmOrder",
    "cancelOrder",
    "releaseProfile",
    "revokeProfile",
];

#[derive(Deserialize)]
struct Envelope {
    header: RequestHeader,
}

/// Dispatches one ES2+ call.
pub(crate) async fn handle<S: Store + EndOfLifeStore + Clone>(
    State(smdp): State<Smdp<S>>,
    Path(function): Path<String>,
    tls: Option<Extension<Arc<TlsInfo>>>,
    clients: Option<Extension<Arc<ClientAuthenticator>>>,
    ctx: AuditContext,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let AuditContext {
        auditor: audit,
        client,
    } = ctx;
    if !FUNCTIONS.contains(&function.as_str()) {
        return HttpStatus::NOT_FOUND.into_response();
    }
    let span = info_span!("es2", function = %function);
    async move {
        let refused = |why: &str| {
            let record = AuditRecord::new(
                Timestamp::now(),
                client.clone(),
                "es2.auth-refused",
                &function,
            )
            .with_details(serde_json::json!({ "reason": why }));
            let audit = audit.clone();
            async move { audit.record(record).await }
        };
        let peer_chain = tls
            .as_ref()
            .map(|t| t.peer_certificates.as_slice())
            .filter(|chain| !chain.is_empty());
        let envelope = || -> Result<Envelope, Box<Response>> { parse_json(&body) };
        let (operator, envelope) = match (bearer(&headers), peer_chain, &clients) {
            (Some(token), _, _) => match smdp.authenticate_operator(token).await {
                Ok(op) => match envelope() {
                    Ok(e) => (op, e),
                    Err(resp) => return *resp,
                },
                Err(Es2Error::NotAllowed) => {
                    refused("unknown token").await;
                    return unauthorized(&function, "unknown token");
                }
                Err(e) => return json_response(HttpStatus::OK, failed_body(e.status(), None)),
            },
            (None, Some(chain), Some(Extension(clients))) => {
                // The request names its operator; the certificate must be that operator's.
                let envelope = match envelope() {
                    Ok(e) => e,
                    Err(resp) => return *resp,
                };
                let requester = envelope.header.function_requester_identifier.clone();
                let id = match clients.authenticate(chain, &requester, UnixTime::now()) {
                    Ok(id) => id,
                    Err(why) => {
                        refused(&why).await;
                        return unauthorized(&function, &why);
                    }
                };
                match smdp.store().operator(&id).await {
                    Ok(Some(op)) => (op, envelope),
                    Ok(None) => {
                        warn!(operator = %id, "client certificate of an operator that does not exist");
                        refused("the client certificate's operator does not exist").await;
                        return unauthorized(&function, "the client certificate's operator does not exist");
                    }
                    Err(e) => {
                        return json_response(
                            HttpStatus::OK,
                            failed_body(Es2Error::from(e).status(), None),
                        );
                    }
                }
            }
            _ => {
                refused("missing bearer token or client certificate").await;
                return unauthorized(&function, "missing bearer token or client certificate");
            }
        };
        let now = Timestamp::now();
        let run = || execute(&smdp, &operator, &function, &body, now);
        let outcome = smdp
            .idempotent(&operator, &envelope.header, &function, &body, now, run)
            .await;
        audit
            .record(es2_record(&operator, &function, &body, outcome.as_ref().ok(), now))
            .await;
        match outcome {
            Ok(answer) => json_response(HttpStatus::OK, answer),
            Err(e) => {
                warn!(operator = %operator.id, error = %e, "ES2+ call refused");
                let code = e.status_code_data();
                json_response(
                    HttpStatus::OK,
                    serde_json::to_string(&ferrosim_asn1::json::HeaderOnly {
                        header: ferrosim_asn1::json::ResponseHeader::failed(code),
                    })
                    .unwrap_or_default(),
                )
            }
        }
    }
    .instrument(span)
    .await
}

/// The audit record of an ES2+ call: by the operator, on the ICCID (or
/// EID, matching id) the request names, with the answer's status (or
/// `refused` when the idempotency layer refused the call).
fn es2_record(
    operator: &Operator,
    function: &str,
    body: &[u8],
    answer: Option<&String>,
    now: Timestamp,
) -> AuditRecord {
    let request: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let answer: serde_json::Value = answer
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    // The ICCID (the request's, or the one downloadOrder chose), else the
    // EID or matching id.
    let subject = text(&request, "iccid")
        .or_else(|| text(&answer, "iccid"))
        .or_else(|| text(&request, "eid"))
        .or_else(|| text(&request, "matchingId"))
        .unwrap_or_default();
    let status = answer
        .pointer("/header/functionExecutionStatus/status")
        .and_then(|s| s.as_str())
        .unwrap_or("refused");
    let call_id = request
        .pointer("/header/functionCallIdentifier")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    AuditRecord::new(
        now,
        Actor::operator(operator.id.as_str()),
        &format!("es2.{function}"),
        &subject,
    )
    .with_details(serde_json::json!({ "status": status, "functionCallIdentifier": call_id }))
}

/// Runs the function and returns its JSON answer (success or failure), which
/// the idempotency layer stores.
async fn execute<S: Store + EndOfLifeStore + Clone>(
    smdp: &Smdp<S>,
    operator: &Operator,
    function: &str,
    body: &[u8],
    now: Timestamp,
) -> CallAnswer {
    use ferrosim_asn1::json::es2::{
        CancelOrderRequest, ConfirmOrderRequest, DownloadOrderRequest, ReleaseProfileRequest,
    };
    let result = match function {
        "downloadOrder" => match parse::<DownloadOrderRequest>(body) {
            Ok(r) => answer(smdp.download_order(operator, &r, now).await),
            Err(a) => Err(a),
        },
        "confirmOrder" => match parse::<ConfirmOrderRequest>(body) {
            Ok(r) => answer(smdp.confirm_order(operator, &r, now).await),
            Err(a) => Err(a),
        },
        "cancelOrder" => match parse::<CancelOrderRequest>(body) {
            Ok(r) => answer(smdp.cancel_order(operator, &r, now).await),
            Err(a) => Err(a),
        },
        "releaseProfile" => match parse::<ReleaseProfileRequest>(body) {
            Ok(r) => answer(smdp.release_profile(operator, &r, now).await),
            Err(a) => Err(a),
        },
        "revokeProfile" => match parse::<RevokeProfileRequest>(body) {
            Ok(r) => answer(smdp.revoke_profile_es2(operator, &r, now).await),
            Err(a) => Err(a),
        },
        _ => Err(CallAnswer::Final(failed_body(
            StatusCode::INVALID_REQUEST_FORMAT,
            None,
        ))),
    };
    info!(operator = %operator.id, function, ok = result.is_ok(), "ES2+ call executed");
    result
        .map(CallAnswer::Final)
        .unwrap_or_else(|failure| failure)
}

/// Parses the function's request; a malformed one is a final failure.
fn parse<Req: DeserializeOwned>(body: &[u8]) -> Result<Req, CallAnswer> {
    parse_body(body).map_err(|(code, msg)| CallAnswer::Final(failed_body(code, Some(msg))))
}

/// Serialises the function's outcome; a failure of our database is transient.
fn answer<Resp: serde::Serialize>(result: Result<Resp, Es2Error>) -> Result<String, CallAnswer> {
    match result {
        Ok(resp) => serde_json::to_string(&resp)
            .map_err(|_| CallAnswer::Transient(failed_body(StatusCode::EXECUTION_ERROR, None))),
        Err(e) => {
            let body = serde_json::to_string(&ferrosim_asn1::json::HeaderOnly {
                header: ferrosim_asn1::json::ResponseHeader::failed(e.status_code_data()),
            })
            .unwrap_or_default();
            Err(if matches!(e, Es2Error::Store(_)) {
                CallAnswer::Transient(body)
            } else {
                CallAnswer::Final(body)
            })
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Answers a failed authentication and logs it with the function called
/// (never the token).
fn unauthorized(function: &str, why: &str) -> Response {
    warn!(function, reason = why, "ES2+ authentication failed");
    let mut r = json_response(
        HttpStatus::UNAUTHORIZED,
        failed_body(
            StatusCode::FUNCTION_REQUESTER_NOT_ALLOWED,
            Some(why.to_owned()),
        ),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    r
}
