//! The eIM's REST API (`/api/v1/eim/...`): associate devices, queue eUICC
//! packages (enable with rollback, disable, delete, list profiles, fallback
//! attribute, eCOs...), download triggers and data requests, withdraw what
//! was not delivered, and read a device's queue, results (verified or
//! unsigned) and profiles; mark devices that emulate the IoT functions on a
//! consumer eUICC; sanitize a device leaving the fleet, read the report and
//! release it for a new association.
//!
//! The operations are plain functions over an [`Eim`] ([`ops`]) that the
//! HTTP handlers and the `ferrosim eim` CLI share; the request and answer
//! types are the API's JSON (camelCase; requests refuse unknown fields).

pub mod ops;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use ferrosim_eim::{Eim, EimStore, Timestamp};
use utoipa::OpenApi;

use super::auth::{Authorizer, Scope, TokenStore};
use super::{ApiError, ApiJson, ErrorBody};
pub use types::*;

/// What the eIM API runs on.
pub struct EimApi<S, T> {
    /// The eIM.
    pub eim: Eim<S>,
    /// Checks tokens.
    pub auth: Authorizer<T>,
}

/// The eIM API's routes.
pub fn routes<S: EimStore, T: TokenStore + Clone>(eim: Eim<S>, tokens: T) -> Router {
    let api = Arc::new(EimApi {
        eim,
        auth: Authorizer::new(tokens.clone()),
    });
    Router::new()
        .route(
            "/api/v1/eim/devices",
            post(associate::<S, T>).get(list_devices::<S, T>),
        )
        .route("/api/v1/eim/devices/{eid}", get(device::<S, T>))
        .route("/api/v1/eim/devices/{eid}/emulated", put(emulated::<S, T>))
        .route(
            "/api/v1/eim/devices/{eid}/queue",
            post(enqueue::<S, T>).get(queue::<S, T>),
        )
        .route(
            "/api/v1/eim/devices/{eid}/queue/{item}",
            delete(withdraw::<S, T>),
        )
        .route("/api/v1/eim/devices/{eid}/results", get(results::<S, T>))
        .route("/api/v1/eim/devices/{eid}/profiles", get(profiles::<S, T>))
        .route(
            "/api/v1/eim/devices/{eid}/notifications",
            get(notifications::<S, T>),
        )
        .route(
            "/api/v1/eim/devices/{eid}/sanitize",
            post(sanitize::<S, T>).get(sanitize_report::<S, T>),
        )
        .route("/api/v1/eim/devices/{eid}/release", post(release::<S, T>))
        .route_layer(axum::middleware::from_fn_with_state(
            tokens,
            crate::audit::api_calls::<T>,
        ))
        .with_state(api)
}

type ApiState<S, T> = State<Arc<EimApi<S, T>>>;

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn answer<T: serde::Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// Associate a device with this eIM (its eUICC's certificates are verified).
#[utoipa::path(post, path = "/api/v1/eim/devices", tag = "eim",
    request_body = AssociateRequest,
    responses(
        (status = 201, description = "associated", body = DeviceView),
        (status = 400, description = "bad JSON or unknown fields", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "already associated", body = ErrorBody),
        (status = 422, description = "certificates refused", body = ErrorBody)))]
async fn associate<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    body: Result<ApiJson<AssociateRequest>, ApiError>,
) -> Response {
    let needed = match &body {
        Ok(ApiJson(r)) if r.emulated => Scope::Admin,
        _ => Scope::Operator,
    };
    if let Err(e) = api.auth.authorize(&headers, needed).await {
        return e.into_response();
    }
    let ApiJson(request) = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match ops::associate(&api.eim, request, Timestamp::now()).await {
        Ok(view) => json(StatusCode::CREATED, &view),
        Err(e) => e.into_response(),
    }
}

/// List associated devices (EIDs in ascending order, paged).
#[utoipa::path(get, path = "/api/v1/eim/devices", tag = "eim",
    params(DeviceListQuery),
    responses((status = 200, body = DeviceList), (status = 401, body = ErrorBody)))]
async fn list_devices<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    query: Result<Query<DeviceListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let Ok(Query(query)) = query else {
        return ApiError::bad_request("query parameters: `after` (an EID) and `limit` (1..=1000)")
            .into_response();
    };
    answer(ops::list_devices(&api.eim, &query).await)
}

/// One device: association, queue, profiles, last poll.
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody)))]
async fn device<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::device(&api.eim, &eid).await)
}

/// Mark (or unmark) a device as emulating the IoT functions on a consumer
/// eUICC: its results are then accepted unsigned and shown as unsigned.
#[utoipa::path(put, path = "/api/v1/eim/devices/{eid}/emulated", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    request_body = EmulatedRequest,
    responses((status = 200, body = DeviceView), (status = 403, description = "needs admin", body = ErrorBody)))]
async fn emulated<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
    body: Result<ApiJson<EmulatedRequest>, ApiError>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::Admin).await {
        return e.into_response();
    }
    match body {
        Ok(ApiJson(r)) => match ops::parse_eid(&eid) {
            Ok(eid) => answer(ops::set_emulated(&api.eim, &eid, r.emulated).await),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    }
}

/// Queue an operation for a device: a signed eUICC package (one PSMO or
/// eCO), a profile download trigger, or a request for eUICC data.
#[utoipa::path(post, path = "/api/v1/eim/devices/{eid}/queue", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    request_body = QueueRequest,
    responses((status = 201, body = QueuedView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn enqueue<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
    body: Result<ApiJson<QueueRequest>, ApiError>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::Operator).await {
        return e.into_response();
    }
    let ApiJson(request) = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // A Send rng: the handler's future holds it across awaits.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    match ops::enqueue(&api.eim, &eid, &request, &mut rng, Timestamp::now()).await {
        Ok(v) => json(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

/// A device's open queue, in delivery order.
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}/queue", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = [ItemView]), (status = 404, body = ErrorBody)))]
async fn queue<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::device(&api.eim, &eid).await.map(|d| d.queue))
}

/// Withdraw a queued item that was not delivered yet.
#[utoipa::path(delete, path = "/api/v1/eim/devices/{eid}/queue/{item}", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits"), ("item" = u64, Path, description = "item id")),
    responses((status = 204, description = "withdrawn"), (status = 404, body = ErrorBody)))]
async fn withdraw<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path((eid, item)): Path<(String, String)>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::Operator).await {
        return e.into_response();
    }
    let Ok(item) = item.parse::<u64>() else {
        return ApiError::bad_request("the item id is a number").into_response();
    };
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    match ops::withdraw(&api.eim, &eid, item).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// A device's stored results, by item id: verified (eUICC signature checked)
/// or unsigned (a device marked as emulating).
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}/results", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = [ResultView]), (status = 404, body = ErrorBody)))]
async fn results<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::results(&api.eim, &eid).await)
}

/// A device's profiles as last reported.
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}/profiles", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = ProfilesView), (status = 404, body = ErrorBody)))]
async fn profiles<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::device(&api.eim, &eid).await.map(|d| d.profiles))
}

/// A device's stored profile notifications.
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}/notifications", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = [NotificationView]), (status = 404, body = ErrorBody)))]
async fn notifications<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::notifications(&api.eim, &eid).await)
}

/// Sanitize a device leaving the fleet or changing hands: undelivered items
/// are withdrawn; one signed package disables and deletes every profile the
/// eIM knows of and has the eUICC list what is left (in the same signed
/// result); a listEim shows which eIMs the eUICC still knows. Answers the
/// report (verdict `awaiting-results` until the device has run them).
#[utoipa::path(post, path = "/api/v1/eim/devices/{eid}/sanitize", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    request_body = SanitizeRequest,
    responses((status = 201, body = SanitizeReportView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "delivered items await results, or the device is being released", body = ErrorBody)))]
async fn sanitize<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
    body: Result<ApiJson<SanitizeRequest>, ApiError>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::Operator).await {
        return e.into_response();
    }
    let ApiJson(request) = match body {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    match ops::sanitize(&api.eim, &eid, &request, &mut rng, Timestamp::now()).await {
        Ok(v) => json(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

/// The report of a device's last sanitization, read from the eUICC's stored
/// results: what was wiped, what was kept, whether the signatures verified,
/// and the verdict (`awaiting-results`, `clean`, `not-clean` with reasons,
/// `release-ordered`, `released`).
#[utoipa::path(get, path = "/api/v1/eim/devices/{eid}/sanitize", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 200, body = SanitizeReportView), (status = 400, body = ErrorBody),
        (status = 404, description = "unknown device, or never sanitized", body = ErrorBody)))]
async fn sanitize_report<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::ReadOnly).await {
        return e.into_response();
    }
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    answer(ops::sanitize_report(&api.eim, &eid).await)
}

/// Release a sanitized device (its report must be `clean`): queues the
/// signed eCO deleteEim of this eIM. Once the eUICC's result arrives the
/// device can be associated again (`POST /api/v1/eim/devices`).
#[utoipa::path(post, path = "/api/v1/eim/devices/{eid}/release", tag = "eim",
    params(("eid" = String, Path, description = "EID, 32 digits")),
    responses((status = 201, body = SanitizeReportView), (status = 400, body = ErrorBody),
        (status = 404, description = "unknown device, or never sanitized", body = ErrorBody),
        (status = 409, description = "the sanitization is not clean, or the release was ordered already", body = ErrorBody)))]
async fn release<S: EimStore, T: TokenStore>(
    State(api): ApiState<S, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    if let Err(e) = api.auth.authorize(&headers, Scope::Operator).await {
        return e.into_response();
    }
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_rng(&mut rand::rng());
    let eid = match ops::parse_eid(&eid) {
        Ok(eid) => eid,
        Err(e) => return e.into_response(),
    };
    match ops::release(&api.eim, &eid, &mut rng, Timestamp::now()).await {
        Ok(v) => json(StatusCode::CREATED, &v),
        Err(e) => e.into_response(),
    }
}

/// The eIM API's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(associate, list_devices, device, emulated, enqueue, queue, withdraw, results, profiles, notifications,
        sanitize, sanitize_report, release),
    components(schemas(
        AssociateRequest, EmulatedRequest, QueueRequest, EimConfigurationJson, DataItemName,
        DeviceView, DeviceList, ItemView, QueuedView, ResultView, ProfilesView, ProfileView,
        PollView, NotificationView, SgpVersion, SanitizeRequest, SanitizeReportView,
        WipeOperationView, WipedView, KeptView, SanitizeTrustView
    )),
    tags((name = "eim", description = "SGP.32 eIM: devices, queues, results"))
)]
pub struct EimApiDoc;
