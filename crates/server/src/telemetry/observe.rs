//! The HTTP side of telemetry: the layer on the ES2+/ES9+ routes, and
//! `/metrics`.
//!
//! For each call the layer measures the time to answer and the bytes of the
//! request and answer, takes the status (and `initiateAuthentication`'s
//! transaction id) from the [`Outcome`] the handler attached to its answer,
//! or else reads it from the answer's `functionExecutionStatus` (HTTP 204
//! and other successes without one are `ok`; a failure without a valid code
//! is `8.8/4.2`), counts the call in
//! the Prometheus families, and offers it to the telemetry writer without
//! waiting. The request and answer pass through unchanged.

use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode as HttpStatus, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferrosim_telemetry::{Function, Interface, StepStatus, Timestamp};

use super::decode;
use super::{Call, Input, Telemetry};
use crate::MAX_REQUEST_BODY;
use crate::http::Outcome;

/// The function a request path names, if it is an ES2+/ES9+ function.
pub(crate) fn function_of(path: &str) -> Option<Function> {
    let rest = path.strip_prefix("/gsma/rsp2/")?;
    let (iface, name) = rest.split_once('/')?;
    let iface = match iface {
        "es9plus" => Interface::Es9Plus,
        "es2plus" => Interface::Es2Plus,
        _ => return None,
    };
    Function::ALL
        .iter()
        .copied()
        .find(|f| f.interface() == iface && f.name() == name)
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The layer (`axum::middleware::from_fn_with_state`).
pub(crate) async fn observe(State(t): State<Telemetry>, request: Request, next: Next) -> Response {
    let Some(function) = function_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let at = Timestamp::now();
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // The body was read in full before (limits::read_body): this takes it.
    let request_body = match axum::body::to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => return HttpStatus::PAYLOAD_TOO_LARGE.into_response(),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(request_body.clone())))
        .await;
    let (mut parts, body) = response.into_parts();
    let duration_ms = saturate(started.elapsed().as_millis() as usize);
    // The handlers say how the call ended (an `Outcome` extension): the
    // answer is neither parsed nor copied, only its length read. Answers
    // without one (ES2+'s, small) are parsed.
    let (status, tid, answer_len, body) = match parts.extensions.remove::<Outcome>() {
        Some(outcome) => {
            let status = match outcome.failed {
                None => StepStatus::Ok,
                Some(code) => StepStatus::Failed(
                    format!("{}/{}", code.subject, code.reason)
                        .parse()
                        .unwrap_or_else(|_| decode::execution_error()),
                ),
            };
            match body.size_hint().exact() {
                Some(len) => (status, outcome.transaction_id, len as usize, body),
                None => {
                    let answer = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .unwrap_or_else(|_| Bytes::new());
                    let len = answer.len();
                    (status, outcome.transaction_id, len, Body::from(answer))
                }
            }
        }
        None => {
            // Answers are whole JSON documents already in memory.
            let answer = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_else(|_| Bytes::new());
            let (status, tid) = decode::answer(parts.status.is_success(), &answer);
            (status, tid, answer.len(), Body::from(answer))
        }
    };
    let (signalling, bpp) =
        if function == Function::Es9GetBoundProfilePackage && status == StepStatus::Ok {
            (saturate(request_body.len()), saturate(answer_len))
        } else {
            (saturate(request_body.len() + answer_len), 0)
        };
    t.prom()
        .observe_call(function, status, duration_ms, signalling, bpp);
    if function.interface() == Interface::Es9Plus {
        t.offer(Input::Call(Call {
            function,
            status,
            at,
            duration_ms,
            signalling_bytes: signalling,
            bpp_bytes: bpp,
            tid,
            request: request_body,
        }));
    }
    Response::from_parts(parts, body)
}

/// `GET /metrics`: every family, in the OpenMetrics text format when the
/// scraper asks for it (Prometheus does), else in the Prometheus text
/// format 0.0.4.
pub(crate) async fn metrics(
    State(t): State<Telemetry>,
    access: Option<axum::Extension<crate::access::Access>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // The access-control families (when on) join the telemetry's.
    let encode = || -> Result<String, std::fmt::Error> {
        let text = t.prom().encode()?;
        match &access {
            Some(axum::Extension(a)) => {
                let body = text.strip_suffix("# EOF\n").unwrap_or(&text);
                Ok(format!("{body}{}", a.encode_metrics()?))
            }
            None => Ok(text),
        }
    };
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (text, kind) = if openmetrics {
        (
            encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            encode().map(|t| ferrosim_telemetry::prom::openmetrics_to_prometheus(&t)),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    match text {
        Ok(text) => {
            let mut r = Response::new(Body::from(text));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r
        }
        Err(_) => HttpStatus::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            function_of("/gsma/rsp2/es9plus/getBoundProfilePackage"),
            Some(Function::Es9GetBoundProfilePackage)
        );
        assert_eq!(
            function_of("/gsma/rsp2/es2plus/downloadOrder"),
            Some(Function::Es2DownloadOrder)
        );
        for other in [
            "/gsma/rsp2/es9plus/nothing",
            "/gsma/rsp2/es2plus/getBoundProfilePackage",
            "/gsma/rsp2/esipa/getEimPackage",
            "/metrics",
            "/gsma/rsp2/es9plus",
            "",
        ] {
            assert_eq!(function_of(other), None, "{other}");
        }
    }
}
