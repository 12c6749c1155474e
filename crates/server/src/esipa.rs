//! ESipa (SGP.32, IPA → eIM) on the network: both bindings of the eIM.
//!
//! - ASN.1 binding: `POST /gsma/rsp2/asn1`, the body one DER
//!   `EsipaMessageFromIpaToEim` (`Content-Type: application/x-gsma-rsp-asn1`),
//!   the answer one DER `EsipaMessageFromEimToIpa` (or `204` for a
//!   HandleNotification).
//! - JSON binding: `POST /gsma/rsp2/esipa/{function}`; the body is turned
//!   into the same DER message (`ferrosim_asn1::json::esipa`), so both
//!   bindings run the same code; failures are in
//!   `header.functionExecutionStatus`.
//!
//! Deployed IPAs send other `User-Agent` and `X-Admin-Protocol` values than
//! the specification's and read only the body, so nothing is refused for its
//! headers and every answer is a well-formed ESipa answer with HTTP 200: a
//! message that does not decode, or that the eIM does not serve, gets the
//! spec's error answer of the function its tag names
//! ([`EsipaReply::error_for`]); a failure on the eIM's side (database, a
//! panic) too, logged as an error. Relayed ES9+ steps (indirect download) go
//! through the [`Es9Relay`] given to [`routes`].
//!
//! Plain HTTP (no TLS) is only for a lab and only when configured: see
//! [`LabHttp`].

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use ferrosim_asn1::esipa::Sgp32Version;
use ferrosim_asn1::json::esipa::{Function, JsonError, answer_from_message, request_to_der};
use ferrosim_audit::AuditRecord;
use ferrosim_eim::relay::Es9Relay;
use ferrosim_eim::{Eim, EimError, EimStore, EsipaAnswer, EsipaReply, Timestamp};
use ferrosim_smdp::status::StatusCode;
use futures::FutureExt;
use tracing::{Instrument, debug, error, info, info_span};

use ferrosim_asn1::tlv::Tlv;

use crate::access::Access;
use crate::http::{failed, json_response};

/// The media type of the ASN.1 binding.
pub const ASN1_CONTENT_TYPE: &str = "application/x-gsma-rsp-asn1";

/// What the ESipa routes serve with.
pub struct EsipaService<S, R> {
    /// The eIM.
    pub eim: Eim<S>,
    /// Where relayed ES9+ steps go.
    pub relay: R,
}

/// The ESipa routes (both bindings) of an eIM.
pub fn routes<S, R>(eim: Eim<S>, relay: R) -> Router
where
    S: EimStore + Clone,
    R: Es9Relay + 'static,
{
    let service = Arc::new(EsipaService { eim, relay });
    Router::new()
        .route("/gsma/rsp2/asn1", post(asn1::<S, R>))
        .route("/gsma/rsp2/esipa/{function}", post(json::<S, R>))
        .with_state(service)
}

/// Runs the eIM on one message; never fails: a refusal, an error of the
/// eIM or a panic becomes the error answer of the message's function.
async fn reply<S: EimStore, R: Es9Relay>(
    service: &EsipaService<S, R>,
    der: &[u8],
    binding: &'static str,
    audit: crate::audit::AuditContext,
) -> EsipaReply {
    let now = Timestamp::now();
    let run = service.eim.handle(der, &service.relay, now);
    let outcome = AssertUnwindSafe(run).catch_unwind().await;
    // eUICC package results (ProvideEimPackageResult, tag BF50) are audited.
    if der.starts_with(&[0xBF, 0x50]) {
        let accepted = matches!(outcome, Ok(Ok(_)));
        audit
            .auditor
            .record(
                AuditRecord::new(now, audit.client, "esipa.provideEimPackageResult", "")
                    .with_details(serde_json::json!({ "binding": binding, "accepted": accepted })),
            )
            .await;
    }
    match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(
            e @ (EimError::Malformed(_)
            | EimError::UnexpectedMessage(_)
            | EimError::CertificateChain(_)
            | EimError::CertificateForOtherEid { .. }),
        )) => {
            info!(binding, error = %e, "ESipa message refused: answered with the function's error");
            EsipaReply::error_for(der)
        }
        Ok(Err(e)) => {
            error!(binding, error = %e, "ESipa message failed on the eIM's side");
            EsipaReply::error_for(der)
        }
        Err(_) => {
            error!(
                binding,
                "ESipa handler panicked; answered with the function's error"
            );
            EsipaReply::error_for(der)
        }
    }
}

/// `POST /gsma/rsp2/asn1`.
async fn asn1<S: EimStore, R: Es9Relay>(
    State(service): State<Arc<EsipaService<S, R>>>,
    audit: crate::audit::AuditContext,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = info_span!("esipa", binding = "asn1");
    async move {
        note_headers(&headers);
        if let Some(refused) = admit_device(access.as_ref(), &body) {
            return refused;
        }
        let reply = reply(&service, &body, "asn1", audit).await;
        let answer = match reply.into_asn1() {
            Ok(a) => a,
            Err(e) => {
                // An answer that cannot be written in the IPA's version.
                error!(error = %e, "ESipa answer could not be encoded");
                match EsipaReply::error_for(&body).into_asn1() {
                    Ok(a) => a,
                    Err(_) => EsipaAnswer::NoContent,
                }
            }
        };
        match answer {
            EsipaAnswer::Message { der, version } => {
                debug!(%version, bytes = der.len(), "ESipa answer");
                asn1_response(der, version)
            }
            EsipaAnswer::NoContent => no_content(),
        }
    }
    .instrument(span)
    .await
}

/// `POST /gsma/rsp2/esipa/{function}`.
async fn json<S: EimStore, R: Es9Relay>(
    State(service): State<Arc<EsipaService<S, R>>>,
    Path(function): Path<String>,
    audit: crate::audit::AuditContext,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let span = info_span!("esipa", binding = "json", function = %function);
    async move {
        note_headers(&headers);
        let Some(f) = Function::from_path_segment(&function) else {
            let mut r = failed(
                StatusCode::INVALID_REQUEST_FORMAT,
                Some(format!("unknown ESipa function `{function}`")),
            );
            *r.status_mut() = HttpStatus::NOT_FOUND;
            return r;
        };
        let der = match request_to_der(f, &body) {
            Ok(der) => der,
            Err(e) => {
                info!(error = %e, "ESipa JSON request refused");
                let code = match &e {
                    JsonError::Malformed { reason, .. } if reason.starts_with("missing field") => {
                        StatusCode::MANDATORY_ELEMENT_MISSING
                    }
                    _ => StatusCode::INVALID_REQUEST_FORMAT,
                };
                return failed(code, Some(e.to_string()));
            }
        };
        if let Some(refused) = admit_device(access.as_ref(), &der) {
            return refused;
        }
        match reply(&service, &der, "json", audit).await {
            EsipaReply::Message { message, version } => {
                match answer_from_message(&message, version) {
                    Ok(answer) => json_answer(&answer, version),
                    Err(e) => {
                        error!(error = %e, "ESipa answer could not be written as JSON");
                        failed(StatusCode::EXECUTION_ERROR, None)
                    }
                }
            }
            EsipaReply::Relayed { answer, version } => json_answer(&answer.json, version),
            EsipaReply::NoContent => no_content(),
        }
    }
    .instrument(span)
    .await
}

/// The device's own rate limit (see [`crate::access`]): a GetEimPackage or
/// ProvideEimPackageResult is counted against the EID it carries (`5A`),
/// before the eIM reads its store. `Some` is the `429` to answer.
fn admit_device(access: Option<&Extension<Access>>, der: &[u8]) -> Option<Response> {
    let Extension(access) = access?;
    let message = Tlv::parse_exact(der).ok()?;
    if !matches!(message.tag, 0xBF4F | 0xBF50) {
        return None;
    }
    let eid = message.find(0x5A).ok()??;
    let eid = ferrosim_eim::Eid::from_bcd(eid.value).ok()?;
    access.admit_eid("esipa", &eid.digits())
}

/// Logs (at debug) headers that differ from the specification's; nothing
/// is refused for them.
fn note_headers(headers: &HeaderMap) {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    debug!(
        user_agent = text(header::USER_AGENT.as_str()).unwrap_or("-"),
        admin_protocol = text("X-Admin-Protocol").unwrap_or("-"),
        content_type = text(header::CONTENT_TYPE.as_str()).unwrap_or("-"),
        "ESipa request headers"
    );
}

fn admin_protocol(version: Sgp32Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Sgp32Version::V1_0 => "gsma/rsp/v1.0.0",
        Sgp32Version::V1_2 => "gsma/rsp/v1.2.0",
    })
}

fn asn1_response(der: Vec<u8>, version: Sgp32Version) -> Response {
    let mut r = Response::new(Body::from(der));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ASN1_CONTENT_TYPE),
    );
    h.insert("X-Admin-Protocol", admin_protocol(version));
    r
}

fn json_answer<T: serde::Serialize>(answer: &T, version: Sgp32Version) -> Response {
    match serde_json::to_string(answer) {
        Ok(text) => {
            let mut r = json_response(HttpStatus::OK, text);
            r.headers_mut()
                .insert("X-Admin-Protocol", admin_protocol(version));
            r
        }
        Err(_) => failed(StatusCode::EXECUTION_ERROR, None),
    }
}

fn no_content() -> Response {
    HttpStatus::NO_CONTENT.into_response()
}

/// ESipa over plain HTTP for a lab (devices without TLS): served only when
/// configured, on its own listener, with the ESipa routes only.
#[derive(Debug)]
pub struct LabHttp {
    local_addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl LabHttp {
    /// Serves `routes` over plain HTTP on `listener`.
    pub fn start(listener: std::net::TcpListener, routes: Router) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, routes)
                .with_graceful_shutdown(shutdown)
                .await
            {
                error!(error = %e, "lab HTTP listener failed");
            }
        });
        tracing::warn!(%local_addr, "ESipa over PLAIN HTTP (lab only): messages travel unencrypted");
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// Stops it and waits for requests in flight.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
