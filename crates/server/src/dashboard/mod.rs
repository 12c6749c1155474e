//! The live dashboard (`/dashboard`) and the JSON API behind every number it
//! shows (`/api/v1/telemetry/...`, documented in docs/DASHBOARD.md).
//!
//! The page is static HTML, CSS and JavaScript embedded in the binary, with
//! uPlot (vendored from npm, `assets/vendor/README.md`) for the charts; it
//! loads its data from the API and refreshes when the server-sent event
//! stream (`/api/v1/telemetry/stream`) says new events were recorded.
//! Everything is computed from the telemetry store with
//! `ferrosim_telemetry::compute` (see [`view`]), so the dashboard of any
//! instance shows every instance sharing the database.
//!
//! Sections whose data sources do not exist yet (the fleet plane's
//! failovers and rollout gates, the eIM's queues) read endpoints that answer
//! empty lists, and the page says "no data yet".

mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode as HttpStatus, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ferrosim_pki::Eid;
use ferrosim_telemetry::{ActivationKind, Event, EventQuery, Timestamp};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::telemetry::Telemetry;

/// Default window of the API and the page: the last hour.
const DEFAULT_WINDOW_S: u64 = 3_600;
/// Longest window accepted: the default retention, 90 days.
const MAX_WINDOW_S: u64 = 90 * 86_400;
/// Most events one API answer is computed from; beyond, the answer says
/// it was cut (`"truncated": true`).
const MAX_EVENTS: usize = 2_000_000;
/// How long a window's events are reused between requests.
const CACHE_FOR: Duration = Duration::from_secs(1);

#[derive(Clone)]
struct Dashboard {
    telemetry: Telemetry,
    objective: f64,
    cache: Arc<Mutex<Option<Cached>>>,
    alerts: Arc<Mutex<Option<(Instant, Value)>>>,
}

struct Cached {
    at: Instant,
    window_s: u64,
    as_of: Timestamp,
    events: Arc<Vec<Event>>,
}

/// The dashboard's routes, on `telemetry`'s store.
pub(crate) fn routes(telemetry: Telemetry) -> Router {
    let state = Dashboard {
        telemetry,
        objective: view::activation_objective(),
        cache: Arc::new(Mutex::new(None)),
        alerts: Arc::new(Mutex::new(None)),
    };
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/", get(page))
        .route("/dashboard/assets/{file}", get(asset))
        .route("/api/v1/telemetry/overview", get(overview))
        .route("/api/v1/telemetry/series", get(series))
        .route("/api/v1/telemetry/carriers", get(carriers))
        .route("/api/v1/telemetry/failures", get(failures))
        .route("/api/v1/telemetry/alerts", get(alerts))
        .route("/api/v1/telemetry/failovers", get(failovers))
        .route("/api/v1/telemetry/rollouts", get(rollouts))
        .route("/api/v1/telemetry/eim", get(eim))
        .route("/api/v1/telemetry/devices/{eid}/timeline", get(timeline))
        .route("/api/v1/telemetry/stream", get(stream))
        .with_state(state)
}

/// Turns the `activation` ids (64-bit) of a list of objects into strings:
/// JavaScript numbers lose digits past 2^53.
fn ids_as_strings(mut list: Value) -> Value {
    if let Some(items) = list.as_array_mut() {
        for item in items {
            if let Some(id) = item.get_mut("activation")
                && let Some(n) = id.as_u64()
            {
                *id = Value::String(n.to_string());
            }
        }
    }
    list
}

/// A JSON answer.
fn json_ok(value: &Value) -> Response {
    let mut r = Response::new(axum::body::Body::from(value.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON error: `{"error": "..."}` with its HTTP status.
fn json_error(status: HttpStatus, message: impl Into<String>) -> Response {
    let mut r = json_ok(&json!({ "error": message.into() }));
    *r.status_mut() = status;
    r
}

/// Why an API request gets no answer.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// A parameter is wrong: `400`.
    #[error("{0}")]
    BadRequest(String),
    /// The telemetry store failed: `503`.
    #[error("telemetry store: {0}")]
    Store(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadRequest(_) => HttpStatus::BAD_REQUEST,
            Self::Store(_) => HttpStatus::SERVICE_UNAVAILABLE,
        };
        json_error(status, self.to_string())
    }
}

/// Query parameters, read as text and validated here so that every bad value
/// gets a JSON error naming it.
#[derive(Debug, Default, Deserialize)]
struct Params {
    window: Option<String>,
    buckets: Option<String>,
    limit: Option<String>,
    as_of: Option<String>,
}

fn number(
    name: &str,
    value: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    let Some(text) = value else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "{name} must be a whole number from {} to {}, not {:?}",
            range.start(),
            range.end(),
            text.chars().take(32).collect::<String>()
        ))),
    }
}

impl Params {
    fn window(&self) -> Result<u64, ApiError> {
        number(
            "window",
            self.window.as_deref(),
            DEFAULT_WINDOW_S,
            60..=MAX_WINDOW_S,
        )
    }

    /// `as_of`: the instant to evaluate at (ms since the epoch, at most a
    /// day ahead); absent: now.
    fn as_of(&self) -> Result<Option<Timestamp>, ApiError> {
        if self.as_of.is_none() {
            return Ok(None);
        }
        let limit = u64::try_from(Timestamp::now().millis()).unwrap_or(0) + 86_400_000;
        number("as_of", self.as_of.as_deref(), 0, 0..=limit)
            .map(|ms| Some(Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))))
    }
}

fn params(
    q: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Params, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))
}

impl Dashboard {
    /// The events of the last `window_s` seconds and the instant they were
    /// read at (reused for [`CACHE_FOR`]); with `at`, those of the window
    /// ending then.
    async fn events(
        &self,
        window_s: u64,
        at: Option<Timestamp>,
    ) -> Result<(Timestamp, Arc<Vec<Event>>), ApiError> {
        if let Some(as_of) = at {
            return Ok((as_of, self.read(window_s, as_of).await?));
        }
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.window_s == window_s
            && c.at.elapsed() < CACHE_FOR
        {
            return Ok((c.as_of, Arc::clone(&c.events)));
        }
        let as_of = Timestamp::now();
        let events = self.read(window_s, as_of).await?;
        *cache = Some(Cached {
            at: Instant::now(),
            window_s,
            as_of,
            events: Arc::clone(&events),
        });
        Ok((as_of, events))
    }

    async fn read(&self, window_s: u64, as_of: Timestamp) -> Result<Arc<Vec<Event>>, ApiError> {
        let from = as_of.minus(Duration::from_secs(window_s));
        let mut q = EventQuery::between(from, Timestamp(as_of.millis().saturating_add(1)));
        q.limit = Some(MAX_EVENTS);
        self.telemetry
            .query(&q)
            .await
            .map(Arc::new)
            .map_err(|e| ApiError::Store(e.to_string()))
    }

    fn from(as_of: Timestamp, window_s: u64) -> Timestamp {
        as_of.minus(Duration::from_secs(window_s))
    }

    async fn overview_json(&self, window_s: u64, at: Option<Timestamp>) -> Result<Value, ApiError> {
        let (as_of, events) = self.events(window_s, at).await?;
        let from = Self::from(as_of, window_s);
        let dict = self.telemetry.dictionary();
        let c = &self.telemetry.inner.counters;
        use std::sync::atomic::Ordering::Relaxed;
        Ok(json!({
            "as_of": as_of,
            "from": from,
            "window_s": window_s,
            "events": events.len(),
            "truncated": events.len() >= MAX_EVENTS,
            "objective": self.objective,
            "headline": view::headline(&events, from, as_of, dict),
            "fleet": view::fleet_health(&events),
            "pipeline": {
                "events_written": c.written.load(Relaxed),
                "dropped": c.dropped.load(Relaxed),
                "unattributed": c.unattributed.load(Relaxed),
                "outbox_backlog": self.telemetry.prom().outbox_backlog.get(),
            },
        }))
    }
}

async fn page() -> Response {
    let mut r = Response::new(axum::body::Body::from(INDEX_HTML));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/dashboard/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/vendor/uplot/uPlot.min.css"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, bytes)) => {
            let mut r = Response::new(axum::body::Body::from(*bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            );
            r
        }
        None => HttpStatus::NOT_FOUND.into_response(),
    }
}

type ParamsResult = Result<Query<Params>, axum::extract::rejection::QueryRejection>;

async fn overview(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        d.overview_json(p.window()?, p.as_of()?).await
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

async fn series(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = p.window()?;
        let buckets = number("buckets", p.buckets.as_deref(), 12, 1..=120)?;
        let (as_of, events) = d.events(window_s, p.as_of()?).await?;
        let from = Dashboard::from(as_of, window_s);
        let dict = d.telemetry.dictionary();
        Ok::<Value, ApiError>(json!({
            "as_of": as_of,
            "from": from,
            "window_s": window_s,
            "buckets": view::series(&events, from, as_of, buckets as u32, dict),
        }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

async fn carriers(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = p.window()?;
        let (as_of, events) = d.events(window_s, p.as_of()?).await?;
        let from = Dashboard::from(as_of, window_s);
        Ok::<Value, ApiError>(json!({
            "as_of": as_of,
            "window_s": window_s,
            "objective": d.objective,
            "carriers": view::carriers(&events, from, as_of, d.telemetry.dictionary(), d.objective),
        }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

async fn failures(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = p.window()?;
        let limit = number("limit", p.limit.as_deref(), 50, 1..=1000)?;
        let (as_of, events) = d.events(window_s, p.as_of()?).await?;
        let from = Dashboard::from(as_of, window_s);
        let list = view::failures(
            &events,
            from,
            as_of,
            d.telemetry.dictionary(),
            limit as usize,
        );
        Ok::<Value, ApiError>(json!({ "as_of": as_of, "window_s": window_s, "failures": list }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

async fn alerts(State(d): State<Dashboard>) -> Response {
    let mut cached = d.alerts.lock().await;
    if let Some((at, v)) = cached.as_ref()
        && at.elapsed() < Duration::from_secs(10)
    {
        return json_ok(v);
    }
    let as_of = Timestamp::now();
    let events = match d.read(view::ALERT_LOOKBACK_S, as_of).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let list = view::burn_alerts(&events, as_of, d.objective, d.telemetry.dictionary());
    let v = json!({
        "as_of": as_of,
        "slo": "activation-success-60s",
        "objective": d.objective,
        "alerts": list,
    });
    *cached = Some((Instant::now(), v.clone()));
    json_ok(&v)
}

async fn failovers(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = p.window()?;
        let (as_of, events) = d.events(window_s, p.as_of()?).await?;
        let list = view::activations_of_kind(
            &events,
            ActivationKind::Failover,
            d.telemetry.dictionary(),
            100,
        );
        let list = ids_as_strings(json!(list));
        Ok::<Value, ApiError>(json!({ "as_of": as_of, "window_s": window_s, "failovers": list }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

async fn rollouts(State(d): State<Dashboard>, q: ParamsResult) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = p.window()?;
        let (as_of, events) = d.events(window_s, p.as_of()?).await?;
        let from = Dashboard::from(as_of, window_s);
        let waves = view::rollout_waves(&events, from, as_of, d.telemetry.dictionary());
        Ok::<Value, ApiError>(json!({ "as_of": as_of, "window_s": window_s, "rollouts": waves }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

/// The eIM's queues: no eIM reports to this dashboard yet.
async fn eim() -> Response {
    json_ok(&json!({ "queues": [], "source": "no eIM reports to this instance yet" }))
}

async fn timeline(
    State(d): State<Dashboard>,
    Path(eid): Path<String>,
    q: ParamsResult,
) -> Response {
    let result = async {
        let p = params(q)?;
        let window_s = number(
            "window",
            p.window.as_deref(),
            MAX_WINDOW_S,
            60..=MAX_WINDOW_S,
        )?;
        let limit = number("limit", p.limit.as_deref(), 500, 1..=5000)?;
        let eid: Eid = eid.parse().map_err(|_| {
            ApiError::BadRequest(
                "not an EID: 32 decimal digits with valid check digits expected".to_owned(),
            )
        })?;
        let as_of = Timestamp::now();
        let mut q = EventQuery::between(
            as_of.minus(Duration::from_secs(window_s)),
            Timestamp(as_of.millis().saturating_add(1)),
        );
        q.filter.devices = Some([eid].into_iter().collect());
        q.limit = Some(limit as usize);
        let events = d
            .telemetry
            .query(&q)
            .await
            .map_err(|e| ApiError::Store(e.to_string()))?;
        Ok::<Value, ApiError>(json!({
            "device": eid.to_string(),
            "as_of": as_of,
            "events": ids_as_strings(json!(view::records(&events, d.telemetry.dictionary()))),
        }))
    };
    result
        .await
        .map_or_else(IntoResponse::into_response, |v| json_ok(&v))
}

/// Server-sent events: an `overview` event (the overview of the default
/// window) when the stream opens, then whenever new events were recorded
/// (at most once a second), and at least every 15 seconds.
async fn stream(
    State(d): State<Dashboard>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = d.telemetry.inner.appended.subscribe();
    let stream = futures::stream::unfold((d, rx, true), |(d, mut rx, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tokio::time::timeout(Duration::from_secs(14), rx.changed()).await;
        }
        let _ = rx.borrow_and_update();
        let event = match d.overview_json(DEFAULT_WINDOW_S, None).await {
            Ok(v) => SseEvent::default().event("overview").data(v.to_string()),
            Err(_) => SseEvent::default().event("unavailable").data("{}"),
        };
        Some((Ok(event), (d, rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
