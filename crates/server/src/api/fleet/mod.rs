//! The fleet's REST API (`/api/v1/fleet/...`): the catalog (carriers,
//! groups, rules), devices with their desired and observed state,
//! rollouts (create, approve, pause, resume, abort), profile revocation
//! (ES2+ at the carrier, then replaced and deleted), the decision log,
//! outage declarations, the authenticated ingest of device reports and of
//! carrier connectivity events, and the device-agent channel (commands
//! such as APN settings and their results).
//!
//! Every call needs an API token (`ferrosim api-token`): reads `read-only`,
//! changes of carriers `admin` (they say where ES2+ orders and credentials
//! go), everything else `operator`. Carriers, groups and rules are changed
//! with their version as `If-Match` (see [`catalog`]). Bodies must be JSON of the exact type
//! (unknown fields refused); a refused input changes nothing.

pub mod catalog;
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
use ferrosim_fleet::config::{CarrierConfig, GroupConfig};
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
        .route(
            "/api/v1/fleet/carriers/{name}",
            get(get_carrier::<F, E, T>)
                .put(put_carrier::<F, E, T>)
                .delete(delete_carrier::<F, E, T>),
        )
        .route("/api/v1/fleet/groups", get(groups::<F, E, T>))
        .route(
            "/api/v1/fleet/groups/{name}",
            get(get_group::<F, E, T>)
                .put(put_group::<F, E, T>)
                .delete(delete_group::<F, E, T>),
        )
        .route(
            "/api/v1/fleet/rules",
            get(rules::<F, E, T>).post(add_rule::<F, E, T>),
        )
        .route(
            "/api/v1/fleet/rules/{name}",
            get(get_rule::<F, E, T>)
                .put(put_rule::<F, E, T>)
                .delete(delete_rule::<F, E, T>),
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

/// Answers one catalog item with its version (body and `ETag`).
fn versioned(status: StatusCode, v: &catalog::Versioned) -> Response {
    let mut r = (
        status,
        axum::Json(CatalogItem {
            version: v.version.clone(),
            item: v.item.clone(),
        }),
    )
        .into_response();
    if let Ok(tag) = axum::http::HeaderValue::from_str(&format!("\"{}\"", v.version)) {
        r.headers_mut().insert(axum::http::header::ETAG, tag);
    }
    r
}

async fn get_item<F: FleetStore, E: EimStore, T: TokenStore>(
    api: &FleetApi<F, E, T>,
    headers: &HeaderMap,
    kind: catalog::Kind,
    name: &str,
) -> Response {
    authorize!(api, *headers, Scope::ReadOnly);
    match catalog::get(&api.driver, kind, name).await {
        Ok(v) => versioned(StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

/// The scope changing a kind of catalog item needs: carriers say where
/// ES2+ orders and credentials go (`admin`); groups and rules `operator`.
fn change_scope(kind: catalog::Kind) -> Scope {
    match kind {
        catalog::Kind::Carrier => Scope::Admin,
        catalog::Kind::Group | catalog::Kind::Rule => Scope::Operator,
    }
}

/// Records a catalog change in the audit trail: `fleet.<kind>.<created|
/// updated|deleted>` by the token, on `<kind>/<name>`, with the versions
/// before and after.
async fn audit_change(
    audit: &crate::audit::AuditContext,
    token: &super::auth::ApiToken,
    kind: catalog::Kind,
    name: &str,
    changed: &catalog::Changed,
) {
    let what = match (&changed.after, changed.created) {
        (None, _) => "deleted",
        (Some(_), true) => "created",
        (Some(_), false) => "updated",
    };
    let record = ferrosim_audit::AuditRecord::new(
        ferrosim_ids::Timestamp::now(),
        ferrosim_audit::Actor::token(&token.id),
        &format!("fleet.{}.{what}", kind.name()),
        &format!("{}/{name}", kind.name()),
    )
    .with_details(serde_json::json!({
        "before": changed.before,
        "after": changed.after.as_ref().map(|a| &a.version),
    }));
    audit.auditor.record(record).await;
}

async fn put_item<F: FleetStore, E: EimStore, T: TokenStore>(
    api: &FleetApi<F, E, T>,
    audit: &crate::audit::AuditContext,
    headers: &HeaderMap,
    kind: catalog::Kind,
    name: &str,
    item: Result<catalog::Item, ApiError>,
) -> Response {
    let token = match api.auth.authorize(headers, change_scope(kind)).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let item = match item {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let expected = match catalog::if_match(headers) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match catalog::put(&api.driver, name, item, expected.as_deref()).await {
        Ok(changed) => {
            audit_change(audit, &token, kind, name, &changed).await;
            let status = if changed.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            match &changed.after {
                Some(v) => versioned(status, v),
                None => {
                    ApiError::internal("the changed item is not in the catalog").into_response()
                }
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn delete_item<F: FleetStore, E: EimStore, T: TokenStore>(
    api: &FleetApi<F, E, T>,
    audit: &crate::audit::AuditContext,
    headers: &HeaderMap,
    kind: catalog::Kind,
    name: &str,
) -> Response {
    let token = match api.auth.authorize(headers, change_scope(kind)).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let expected = match catalog::if_match(headers) {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    match catalog::delete(&api.driver, kind, name, expected.as_deref()).await {
        Ok(changed) => {
            audit_change(audit, &token, kind, name, &changed).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// One carrier with its version (also the `ETag`).
#[utoipa::path(get, path = "/api/v1/fleet/carriers/{name}", tag = "fleet",
    params(("name" = String, Path, description = "carrier name")),
    responses((status = 200, body = CatalogItem), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_carrier<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    get_item(&api, &headers, catalog::Kind::Carrier, &name).await
}

/// Creates (no `If-Match`) or replaces (`If-Match`: its version) a carrier:
/// the TOML's `[[carrier]]` as JSON (`name`, `mcc_mnc`, `smdp_address`,
/// `es2_credentials` — a reference such as `file:PATH`, never the
/// credentials —, `fallback_carriers`, `rate_limits`, `apn`,
/// `profile_type`). `admin` scope.
#[utoipa::path(put, path = "/api/v1/fleet/carriers/{name}", tag = "fleet",
    params(("name" = String, Path, description = "carrier name"),
        ("If-Match" = Option<String>, Header, description = "the version read (required to replace)")),
    request_body(content = Object, description = "a carrier (see docs/FLEET.md)"),
    responses((status = 200, description = "replaced", body = CatalogItem),
        (status = 201, description = "created", body = CatalogItem),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "it would strand devices or a rollout", body = ErrorBody),
        (status = 412, description = "changed since the version was read", body = ErrorBody),
        (status = 422, description = "not a valid configuration", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
async fn put_carrier<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Result<ApiJson<CarrierConfig>, ApiError>,
) -> Response {
    let item = b.map(|ApiJson(c)| catalog::Item::Carrier(c));
    put_item(&api, &audit, &headers, catalog::Kind::Carrier, &name, item).await
}

/// Deletes a carrier (`If-Match`: its version; `admin` scope); refused
/// while a group, another carrier's fallbacks, a device, an action or an
/// unfinished rollout refers to it.
#[utoipa::path(delete, path = "/api/v1/fleet/carriers/{name}", tag = "fleet",
    params(("name" = String, Path, description = "carrier name"),
        ("If-Match" = String, Header, description = "the version read")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "still in use", body = ErrorBody),
        (status = 412, description = "changed since the version was read", body = ErrorBody),
        (status = 428, description = "If-Match missing", body = ErrorBody)))]
async fn delete_carrier<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    delete_item(&api, &audit, &headers, catalog::Kind::Carrier, &name).await
}

/// One device group with its version (also the `ETag`).
#[utoipa::path(get, path = "/api/v1/fleet/groups/{name}", tag = "fleet",
    params(("name" = String, Path, description = "group name")),
    responses((status = 200, body = CatalogItem), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_group<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    get_item(&api, &headers, catalog::Kind::Group, &name).await
}

/// Creates or replaces a device group (the TOML's `[[group]]` as JSON:
/// `name`, `rule`, `primary`, `fallback`, `tags`); `If-Match` to replace.
/// Its primary and fallback apply to devices registered from then on.
#[utoipa::path(put, path = "/api/v1/fleet/groups/{name}", tag = "fleet",
    params(("name" = String, Path, description = "group name"),
        ("If-Match" = Option<String>, Header, description = "the version read (required to replace)")),
    request_body(content = Object, description = "a group (see docs/FLEET.md)"),
    responses((status = 200, description = "replaced", body = CatalogItem),
        (status = 201, description = "created", body = CatalogItem),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 428, body = ErrorBody)))]
async fn put_group<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Result<ApiJson<GroupConfig>, ApiError>,
) -> Response {
    let item = b.map(|ApiJson(g)| catalog::Item::Group(g));
    put_item(&api, &audit, &headers, catalog::Kind::Group, &name, item).await
}

/// Deletes a device group (`If-Match`: its version); refused while it has
/// devices or an unfinished rollout selects it.
#[utoipa::path(delete, path = "/api/v1/fleet/groups/{name}", tag = "fleet",
    params(("name" = String, Path, description = "group name"),
        ("If-Match" = String, Header, description = "the version read")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 428, body = ErrorBody)))]
async fn delete_group<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    delete_item(&api, &audit, &headers, catalog::Kind::Group, &name).await
}

/// One failover rule with its version (also the `ETag`).
#[utoipa::path(get, path = "/api/v1/fleet/rules/{name}", tag = "fleet",
    params(("name" = String, Path, description = "rule name")),
    responses((status = 200, body = CatalogItem), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_rule<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    get_item(&api, &headers, catalog::Kind::Rule, &name).await
}

/// Creates or replaces a failover rule (as `POST /rules` takes it);
/// `If-Match` to replace. A changed rule applies at once to the devices
/// that follow it.
#[utoipa::path(put, path = "/api/v1/fleet/rules/{name}", tag = "fleet",
    params(("name" = String, Path, description = "rule name"),
        ("If-Match" = Option<String>, Header, description = "the version read (required to replace)")),
    request_body(content = Object, description = "a failover rule (see docs/FLEET.md)"),
    responses((status = 200, description = "replaced", body = CatalogItem),
        (status = 201, description = "created", body = CatalogItem),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 428, body = ErrorBody)))]
async fn put_rule<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
    b: Result<ApiJson<RuleConfig>, ApiError>,
) -> Response {
    let item = b.map(|ApiJson(r)| catalog::Item::Rule(r));
    put_item(&api, &audit, &headers, catalog::Kind::Rule, &name, item).await
}

/// Deletes a failover rule (`If-Match`: its version); refused while a
/// group names it, devices follow it, or an unfinished rollout rolls it out.
#[utoipa::path(delete, path = "/api/v1/fleet/rules/{name}", tag = "fleet",
    params(("name" = String, Path, description = "rule name"),
        ("If-Match" = String, Header, description = "the version read")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 428, body = ErrorBody)))]
async fn delete_rule<F: FleetStore, E: EimStore, T: TokenStore>(
    State(api): ApiState<F, E, T>,
    audit: crate::audit::AuditContext,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    delete_item(&api, &audit, &headers, catalog::Kind::Rule, &name).await
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
    paths(carriers, groups, rules, add_rule, get_carrier, put_carrier, delete_carrier, get_group,
        put_group, delete_group, get_rule, put_rule, delete_rule, list_devices, add_device, device, revoke_profile, agent_commands,
        agent_result, rollouts, create_rollout, rollout, rollout_command, decisions, outage,
        reports, carrier_events),
    components(schemas(CatalogItem, DeviceView, CapabilitiesView, DeviceList, ProfileView, RolloutView, DecisionList,
        ReportBatch, Accepted, CarrierEvent, CarrierEvents, OutageRequest, AgentCommand,
        AgentCommands, AgentResult, RevokeRequest, RevokeView)),
    tags((name = "fleet", description = "Fleet control: carriers, devices, failover, rollouts"))
)]
pub struct FleetApiDoc;
