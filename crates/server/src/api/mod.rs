//! The REST (JSON) APIs of `ferrosim serve` for operators: the eIM's
//! ([`eim`]) and the fleet's ([`fleet`]), sharing what is here:
//!
//! - [`auth`]: API tokens with scopes, checked on every call;
//! - [`ApiError`]: every failure as `{"error": {"status", "code",
//!   "message"}}` with its HTTP status (`400` bad JSON or unknown fields,
//!   `401` no or unknown token, `403` too small a scope, `404`, `409`,
//!   `415`, `422` refused by the eIM, `500`);
//! - [`ApiJson`]: the body extractor that refuses anything but a JSON body
//!   of the exact type (request types deny unknown fields);
//! - [`openapi`]: the OpenAPI 3.1 document served at `/openapi.json`, which
//!   other APIs extend by merging theirs into it.

pub mod auth;
pub mod eim;
pub mod fleet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status.
    pub status: u16,
    /// A stable machine-readable code: `bad_request`, `unauthorized`,
    /// `forbidden`, `not_found`, `conflict`, `unsupported_media_type`,
    /// `refused`, `internal`.
    pub code: String,
    /// What to fix, for a person.
    pub message: String,
}

/// An API failure: status, code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: &str) -> Self {
        Self {
            status,
            code,
            message: message.to_owned(),
        }
    }

    /// `400`: the request is not what the endpoint takes.
    pub fn bad_request(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// `401`: no token, or one that is unknown or revoked.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// `403`: the token's scope does not allow this.
    pub fn forbidden(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `404`.
    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// `409`: conflicts with what is stored.
    pub fn conflict(message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// `412`: the `If-Match` version is not the current one (someone
    /// changed the item since it was read).
    pub fn precondition_failed(message: &str) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "stale_version", message)
    }

    /// `428`: a change of an existing item needs its version (`If-Match`).
    pub fn precondition_required(message: &str) -> Self {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            "version_required",
            message,
        )
    }

    /// `422`: well-formed, but refused by the service.
    pub fn refused(message: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }

    /// `502`: a service this call depends on (a carrier's SM-DP+) failed
    /// or could not be reached.
    pub fn upstream(message: &str) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream", message)
    }

    /// `500`: a failure on the server's side (details are logged, not shown).
    pub fn internal(detail: &str) -> Self {
        tracing::error!(detail, "API call failed on the server's side");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; see its log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                status: self.status.as_u16(),
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// A JSON request body of exactly type `T`: `415` without
/// `Content-Type: application/json`, `400` naming the problem (syntax, a
/// missing or unknown field, a wrong type) otherwise.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v.split(';').next().unwrap_or("").trim();
                essence.eq_ignore_ascii_case("application/json")
            });
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(&format!("the body could not be read: {e}")))?;
        // The error names the field (`events[2].iccid: ...`), so a bad
        // identifier deep in a batch is found at once.
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ApiError::bad_request(&format!("invalid JSON body: {e}")))?;
        de.end()
            .map_err(|e| ApiError::bad_request(&format!("invalid JSON body: {e}")))?;
        Ok(ApiJson(value))
    }
}

/// Adds the bearer-token security scheme.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The base of the OpenAPI document: info, the token scheme, the error body.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ferrosim",
        description = "REST APIs of ferrosim serve. Every call needs `Authorization: Bearer <API token>` \
                       (create one with `ferrosim api-token create --scope read-only|operator|admin`).",
    ),
    components(schemas(ErrorBody, ErrorDetail, auth::Scope)),
    modifiers(&BearerAuth),
    security(("api_token" = []))
)]
struct BaseDoc;

/// The OpenAPI 3.1 document of every REST API of the server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = BaseDoc::openapi();
    doc.merge(eim::EimApiDoc::openapi());
    doc.merge(fleet::FleetApiDoc::openapi());
    describe_responses(&mut doc);
    doc
}

/// OpenAPI requires a `description` on every response; utoipa leaves it out
/// when the annotation gives none. Those get the status's reason phrase
/// (`Unauthorized`, `Not Found`...).
fn describe_responses(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for op in operations.into_iter().flatten() {
            for (code, response) in &mut op.responses.responses {
                if let utoipa::openapi::RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    r.description = code
                        .parse::<u16>()
                        .ok()
                        .and_then(|c| StatusCode::from_u16(c).ok())
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("Response")
                        .to_owned();
                }
            }
        }
    }
}

/// `GET /openapi.json` (no token needed).
pub fn openapi_route() -> axum::Router {
    let text = openapi().to_json().unwrap_or_else(|_| "{}".to_owned());
    axum::Router::new().route(
        "/openapi.json",
        get(move || {
            let text = text.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], text) }
        }),
    )
}
