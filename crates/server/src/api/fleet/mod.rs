//! The fleet's REST API (`/api/v1/fleet/...`): the catalog (carriers,
//! groups, rules), devices with their desired and observed state,
//! rollouts (create, approve, pause, resume, abort), profile revocation
//! (ES2+ at the carrier, then replaced and deleted), the decision log,
//! outage declarations, the authenticated ingest of device reports and of
//! carrier connectivity events, and the device-agent channel (commands
//! such as APN settings and their results).
//!
//! Every call needs an API token (`ferrosim api-token`): reads `read-only`,
//! everything else `operator`. Bodies must be JSON of the exact type
//! (unknown fields refused); a refused input changes nothing.

pub mod ops;
pub mod types;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ferrosim_eim::EimStore;
use ferrosim_fleet::config::RuleConfig;
use ferrosim_fleet::store::FleetStore;
use ferrosim_fleet::{DeviceSpec, RolloutSpec};
use utoipa::OpenApi;

use super::auth::{Authorizer, Scope, TokenStore};
use super::{ApiError, ApiJson, ErrorBody};
use crate::fleet::FleetDriver;
pub use types::*;

/// What the fleet API runs on.
pub struct FleetApi<F, E, T> {
    /// The driver.
    pub driver: FleetDriver<F, E>,
    /// Checks tokens.
    pub auth: Authorizer<T>,
}

type ApiState<F, E, T> = State<Arc<FleetApi<F, E, T>>>;

/// The fleet API's routes.
pub fn routes<F: FleetStore, E: EimStore, T: TokenStore + Clone>(
    driver: FleetDriver<F, E>,
    tokens: T,
) -> Router {
    let api = Arc::new(FleetApi {
        driver,
        auth: Authorizer::new(tokens.clone()),
    });
    Router::new()
        .route("/api/v1/fleet/carriers", get(carriers::<F, E, T>))
        .route("/api/v1/fleet/groups", get(groups::<F, E, T>))
        .route(
            "/api/v1/fleet/rules",
            get(rules::<F, E, T>).post(add_rule::<F, E, T>),
        )
        .route(
            "/api/v1/fleet/devices",
            get(list_devices::<F, E, T>).post(add_device::<F, E, T>),
        )
        .route("/api/v1/fleet/devices/{eid}", get(device::<F, E, T>))
        .route(
            "/api/v1/fleet/devices/{eid}/profiles/{iccid}/revoke",
            post(revoke_profile::<F, E, T>),
        )
        .route(
            "/api/v1/fleet/devices/{eid}/agent",
            get(agent_commands::<F, E, T>).post(agent_result::<F, E, T>),
        )
        .route(
            "/api/v1/fleet/rollouts",
            get(rollouts::<F, E, T>).post(create_rollout::<F, E, T>),
        )
        .route("/api/v1/fleet/rollouts/{id}", get(rollout::<F, E, T>))
        .route(
            "/api/v1/fleet/rollouts/{id}/{command}",
            post(rollout_command::<F, E, T>),
        )
        .route("/api/v1/fleet/decisions", get(decisions::<F, E, T>))
        .route("/api/v1/fleet/outages", post(outage::<F, E, T>))
        .route("/api/v1/fleet/reports", post(reports::<F, E, T>))
        .route(
            "/api/v1/fleet/carriers/{carrier}/events",
            post(carrier_events::<F, E, T>),
        )
        // Changing calls (devices, rollouts, outages...) go to the audit trail.
        .route_layer(axum::middleware::from_fn_with_state(
            tokens,
            crate::audit::api_calls::<T>,
        ))
        .with_state(api)
}

fn answer<V: serde::Serialize>(status: StatusCode, result: Result<V, ApiError>) -> Response {
    match result {
        Ok(v) => (status, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

macro_rules! authorize {
    ($api:expr, $headers:expr, $scope:expr) => {
        if let Err(e) = $api.auth.authorize(&$headers, $scope).await {
            return e.into_response();
        }
    };
}

macro_rules! body {
    ($body:expr) => {
        match $body {
            Ok(ApiJson(b)) => b,
            Err(e) => return e.into_response(),
        }
    };
}

fn query<Q>(q: Result<Query<Q>, QueryRejection>) -> Result<Q, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(&format!("query parameters: {}", e.body_text())))
}

fn config_part(
    config: &ferrosim_fleet::FleetConfig,
    part: &str,
) -> Result<serde_json::Value, ApiError> {
    let all = serde_json::to_value(config).map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(all
        .get(part)
        .cloned()
        .unwrap_or(serde_json::Value::Array(Vec::new())))
}

/// One part of the fleet configuration (`carrier`, `group`, `rule`), for
/// read-only tokens and above.
async fn catalog_part<F: FleetStore, E: EimStore, T: TokenStore>(
    api: &FleetApi<F, E, T>,
    headers: &HeaderMap,
    part: &str,
) -> Response {
    authorize!(api, *headers, Scope::ReadOnly);
    // Rules another instance added are known after this.
    if let Err(e) = api.driver.refresh().await {
        return ops::driver_error(e).into_response();
    }
    let r = api
        .driver
        .read(|f, _| config_part(f.catalog().config(), part))
        .await;
    answer(StatusCode::OK, r)
}

/// The carriers: networks, SM-DP+, the ES2+ credentials reference, APN
/// settings, profile types, rate limits, pre-authorised fallbacks.
#[utoipa::path(get, path = "/api/v1/fleet/carriers", tag = "fleet",
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody)))]
async fn carriers<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
) -> Response {
    catalog_part(&api, &headers, "carrier").await
}

/// The device groups (rule, primary and fallback profile types).
#[utoipa::path(get, path = "/api/v1/fleet/groups", tag = "fleet",
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody)))]
async fn groups<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
) -> Response {
    catalog_part(&api, &headers, "group").await
}

/// The failover rules (when, how, return, how fast, how often).
#[utoipa::path(get, path = "/api/v1/fleet/rules", tag = "fleet",
    responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody)))]
async fn rules<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
) -> Response {
    catalog_part(&api, &headers, "rule").await
}

/// Adds a failover rule (the TOML's `[[rule]]` as JSON: `name`, `when`
/// triggers, `method`, `return_dwell`, `min_on_fallback`,
/// `max_switches_per_hour`, `max_fraction_per_minute`, `jitter`,
/// `restage_after_switch`), checked like the configuration's. Devices get
/// it through a rollout of kind `rule` (staged and gated).
#[utoipa::path(post, path = "/api/v1/fleet/rules", tag = "fleet",
    request_body(content = Object, description = "a failover rule (see docs/FLEET.md)"),
    responses((status = 201, body = Object), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a rule of that name exists", body = ErrorBody),
        (status = 422, description = "not a valid rule", body = ErrorBody)))]
async fn add_rule<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    b: Result<ApiJson<RuleConfig>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let rule = body!(b);
    answer(StatusCode::CREATED, ops::add_rule(&api.driver, rule).await)
}

/// Devices by EID, paged.
#[utoipa::path(get, path = "/api/v1/fleet/devices", tag = "fleet", operation_id = "fleet_list_devices", params(PageQuery),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
async fn list_devices<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    authorize!(api, headers, Scope::ReadOnly);
    let r = match query(q) {
        Ok(q) => ops::list_devices(&api.driver, &q).await,
        Err(e) => Err(e),
    };
    answer(StatusCode::OK, r)
}

/// Registers a device: `{"eid", "group", "vendor", "model", "firmware",
/// "region"?, "tags"?, "capabilities": {"sgp32_version", ...}, "profiles"?}`.
#[utoipa::path(post, path = "/api/v1/fleet/devices", tag = "fleet",
    request_body(content = Object, description = "a device (see docs/FLEET.md)"),
    responses((status = 201, body = DeviceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "already registered", body = ErrorBody),
        (status = 422, description = "unknown group, region, tag...", body = ErrorBody)))]
async fn add_device<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    b: Result<ApiJson<DeviceSpec>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let spec = body!(b);
    answer(
        StatusCode::CREATED,
        ops::add_device(&api.driver, spec).await,
    )
}

/// One device.
#[utoipa::path(get, path = "/api/v1/fleet/devices/{eid}", tag = "fleet", operation_id = "fleet_device",
    params(("eid" = String, Path, description = "EID")),
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody)))]
async fn device<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    authorize!(api, headers, Scope::ReadOnly);
    answer(StatusCode::OK, ops::device(&api.driver, &eid).await)
}

/// Revoke a profile the fleet ordered for a device: ES2+ `revokeProfile` at
/// its carrier's SM-DP+ (the carrier's credentials), then the fleet orders a
/// fresh profile of its type, puts it in the revoked one's place (enabled
/// with rollback if the revoked one was in use, fallback attribute moved),
/// and deletes the revoked one from the device once its enabled profile
/// works; the delete notification settles the revocation at the SM-DP+.
#[utoipa::path(post, path = "/api/v1/fleet/devices/{eid}/profiles/{iccid}/revoke", tag = "fleet",
    params(("eid" = String, Path, description = "EID"), ("iccid" = String, Path, description = "ICCID")),
    request_body = RevokeRequest,
    responses((status = 200, body = RevokeView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "unknown device", body = ErrorBody),
        (status = 409, description = "revoked already", body = ErrorBody),
        (status = 422, description = "not a fleet profile of the device, or refused by the SM-DP+", body = ErrorBody),
        (status = 502, description = "the carrier's SM-DP+ failed", body = ErrorBody)))]
async fn revoke_profile<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path((eid, iccid)): Path<(String, String)>,
    b: Result<ApiJson<RevokeRequest>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let r = body!(b);
    answer(
        StatusCode::OK,
        ops::revoke_profile(&api.driver, &eid, &iccid, &r).await,
    )
}

/// Commands waiting for the device's agent (APN settings, fallback, return).
#[utoipa::path(get, path = "/api/v1/fleet/devices/{eid}/agent", tag = "fleet",
    params(("eid" = String, Path, description = "EID")),
    responses((status = 200, body = AgentCommands), (status = 404, body = ErrorBody)))]
async fn agent_commands<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    answer(StatusCode::OK, ops::agent_commands(&api.driver, &eid).await)
}

/// The device agent's result for one command.
#[utoipa::path(post, path = "/api/v1/fleet/devices/{eid}/agent", tag = "fleet",
    params(("eid" = String, Path, description = "EID")), request_body = AgentResult,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn agent_result<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(eid): Path<String>,
    b: Result<ApiJson<AgentResult>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let r = body!(b);
    match ops::agent_result(&api.driver, &eid, &r).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every rollout.
#[utoipa::path(get, path = "/api/v1/fleet/rollouts", tag = "fleet",
    responses((status = 200, body = Vec<RolloutView>), (status = 401, body = ErrorBody)))]
async fn rollouts<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
) -> Response {
    authorize!(api, headers, Scope::ReadOnly);
    answer(StatusCode::OK, ops::rollouts(&api.driver).await)
}

/// Creates a staged rollout: `{"name", "change": {...}, "groups"?, "tags_any"?,
/// "waves"?, "soak"?, "max_wait"?, "gate"?, "compat"?, "manual_approval"?,
/// "seed"?}` (see docs/FLEET.md).
#[utoipa::path(post, path = "/api/v1/fleet/rollouts", tag = "fleet",
    request_body(content = Object, description = "a rollout (see docs/FLEET.md)"),
    responses((status = 201, body = RolloutView), (status = 400, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
async fn create_rollout<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    b: Result<ApiJson<RolloutSpec>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let spec = body!(b);
    answer(
        StatusCode::CREATED,
        ops::create_rollout(&api.driver, spec).await,
    )
}

/// One rollout.
#[utoipa::path(get, path = "/api/v1/fleet/rollouts/{id}", tag = "fleet",
    params(("id" = u32, Path, description = "rollout id")),
    responses((status = 200, body = RolloutView), (status = 404, body = ErrorBody)))]
async fn rollout<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    authorize!(api, headers, Scope::ReadOnly);
    let r = match id.parse() {
        Ok(id) => ops::rollout(&api.driver, id).await,
        Err(_) => Err(ApiError::bad_request(&format!(
            "{id:?} is not a rollout id"
        ))),
    };
    answer(StatusCode::OK, r)
}

/// `approve`, `pause`, `resume` or `abort` a rollout.
#[utoipa::path(post, path = "/api/v1/fleet/rollouts/{id}/{command}", tag = "fleet",
    params(("id" = u32, Path, description = "rollout id"),
        ("command" = String, Path, description = "approve, pause, resume or abort")),
    responses((status = 200, body = RolloutView), (status = 404, body = ErrorBody),
        (status = 409, description = "not allowed in its state", body = ErrorBody)))]
async fn rollout_command<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path((id, command)): Path<(String, String)>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let r = match id.parse() {
        Ok(id) => ops::rollout_command(&api.driver, id, &command).await,
        Err(_) => Err(ApiError::bad_request(&format!(
            "{id:?} is not a rollout id"
        ))),
    };
    answer(StatusCode::OK, r)
}

/// The decision log: every decision with its reason and inputs.
#[utoipa::path(get, path = "/api/v1/fleet/decisions", tag = "fleet", params(DecisionsQuery),
    responses((status = 200, body = DecisionList), (status = 400, body = ErrorBody)))]
async fn decisions<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    q: Result<Query<DecisionsQuery>, QueryRejection>,
) -> Response {
    authorize!(api, headers, Scope::ReadOnly);
    let r = match query(q) {
        Ok(q) => ops::decisions(&api.driver, &q).await,
        Err(e) => Err(e),
    };
    answer(StatusCode::OK, r)
}

/// Declares a carrier outage (everywhere or in a region), or its end.
#[utoipa::path(post, path = "/api/v1/fleet/outages", tag = "fleet", request_body = OutageRequest,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn outage<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    b: Result<ApiJson<OutageRequest>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let r = body!(b);
    match ops::outage(&api.driver, &r).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Device reports (registration attempts, data-path checks, handover
/// failures, profile switches), all or none.
#[utoipa::path(post, path = "/api/v1/fleet/reports", tag = "fleet", request_body = ReportBatch,
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 422, description = "unknown device", body = ErrorBody)))]
async fn reports<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    b: Result<ApiJson<ReportBatch>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let batch = body!(b);
    answer(
        StatusCode::OK,
        ops::ingest(&api.driver, batch.reports).await,
    )
}

/// A carrier's connectivity events (attach accepted/rejected, data session
/// start/end), mapped onto device reports.
#[utoipa::path(post, path = "/api/v1/fleet/carriers/{carrier}/events", tag = "fleet",
    params(("carrier" = String, Path, description = "carrier name")), request_body = CarrierEvents,
    responses((status = 200, body = Accepted), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn carrier_events<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(carrier): Path<String>,
    b: Result<ApiJson<CarrierEvents>, ApiError>,
) -> Response {
    authorize!(api, headers, Scope::Operator);
    let batch = body!(b);
    answer(
        StatusCode::OK,
        ops::carrier_events(&api.driver, &carrier, &batch.events).await,
    )
}

/// The fleet API's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(carriers, groups, rules, add_rule, list_devices, add_device, device, revoke_profile, agent_commands,
        agent_result, rollouts, create_rollout, rollout, rollout_command, decisions, outage,
        reports, carrier_events),
    components(schemas(DeviceView, CapabilitiesView, DeviceList, ProfileView, RolloutView, DecisionList,
        ReportBatch, Accepted, CarrierEvent, CarrierEvents, OutageRequest, AgentCommand,
        AgentCommands, AgentResult, RevokeRequest, RevokeView)),
    tags((name = "fleet", description = "Fleet control: carriers, devices, failover, rollouts"))
)]
pub struct FleetApiDoc;
