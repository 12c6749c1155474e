//! HTTP details shared by the ES9+ and ES2+ handlers: headers, JSON bodies,
//! failure answers.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode as HttpStatus, header};
use axum::response::{IntoResponse, Response};
use ferrosim_asn1::json::{ADMIN_PROTOCOL, HeaderOnly, ResponseHeader};
use ferrosim_smdp::ids::TransactionId;
use ferrosim_smdp::status::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `GET /health`: the process is up.
pub(crate) async fn health() -> &'static str {
    "ok"
}

/// A JSON answer with the GSMA headers.
pub(crate) fn json_response(status: HttpStatus, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    h.insert("X-Admin-Protocol", HeaderValue::from_static(ADMIN_PROTOCOL));
    r
}

/// How a call ended, attached to its answer as a response extension by the
/// handlers, so that the telemetry layer need not parse the answer (a bound
/// profile package is hundreds of kilobytes of JSON) to learn it. An answer
/// without one is parsed (ES2+ answers, which are small).
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// The status code of a `Failed` answer; `None` for a success.
    pub(crate) failed: Option<StatusCode>,
    /// The transaction id the answer names (`initiateAuthentication`'s).
    pub(crate) transaction_id: Option<TransactionId>,
}

/// First capacity of an answer's JSON text: most ES9+ answers (certificates,
/// signatures) fit, and a bound profile package grows from there in a few
/// doublings rather than from serde_json's 128 bytes.
const ANSWER_CAPACITY: usize = 4096;

/// Serialises a successful answer.
pub(crate) fn ok_json<T: Serialize>(value: &T) -> Response {
    ok_json_sized(value, ANSWER_CAPACITY)
}

/// [`ok_json`] into a buffer of `capacity` bytes: for an answer whose size
/// is known beforehand (a bound profile package's base64 text), serialised
/// without the copies of growing the buffer.
pub(crate) fn ok_json_sized<T: Serialize>(value: &T, capacity: usize) -> Response {
    let mut text = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut text, value) {
        Ok(()) => {
            let mut r = json_response(HttpStatus::OK, text);
            r.extensions_mut().insert(Outcome::default());
            r
        }
        Err(_) => failed(StatusCode::EXECUTION_ERROR, None),
    }
}

/// [`ok_json`] for an answer that names its transaction id.
pub(crate) fn ok_json_with_tid<T: Serialize>(value: &T, tid: &TransactionId) -> Response {
    let mut r = ok_json(value);
    if let Some(o) = r.extensions_mut().get_mut::<Outcome>() {
        o.transaction_id = Some(tid.clone());
    }
    r
}

/// The JSON text of a `Failed` answer.
pub(crate) fn failed_body(code: StatusCode, message: Option<String>) -> String {
    let body = HeaderOnly {
        header: ResponseHeader::failed(code.to_data(message)),
    };
    serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"header":{"functionExecutionStatus":{"status":"Failed"}}}"#.to_owned()
    })
}

/// A `Failed` answer (HTTP 200, as SGP.22 requires).
pub(crate) fn failed(code: StatusCode, message: Option<String>) -> Response {
    let mut r = json_response(HttpStatus::OK, failed_body(code, message));
    r.extensions_mut().insert(Outcome {
        failed: Some(code),
        transaction_id: None,
    });
    r
}

/// Parses a JSON request body; a failure says whether a field was missing
/// or the body is malformed, with the status code and message to answer.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let code = if msg.starts_with("missing field") {
            StatusCode::MANDATORY_ELEMENT_MISSING
        } else {
            StatusCode::INVALID_REQUEST_FORMAT
        };
        (code, format!("request body: {msg}"))
    })
}

/// [`parse_body`] with the `Failed` answer ready to send.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    parse_body(body).map_err(|(code, msg)| Box::new(failed(code, Some(msg))))
}

/// HTTP 204 with the GSMA header.
pub(crate) fn no_content() -> Response {
    let mut r = HttpStatus::NO_CONTENT.into_response();
    r.headers_mut()
        .insert("X-Admin-Protocol", HeaderValue::from_static(ADMIN_PROTOCOL));
    r.extensions_mut().insert(Outcome::default());
    r
}
