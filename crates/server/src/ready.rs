//! `GET /ready`: whether this instance can serve right now, which needs its
//! database reachable and writable (`/health` only says the process runs).
//! A load balancer or orchestrator takes an instance out of rotation while
//! it answers 503, and back once it answers 200 again.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode as HttpStatus;
use axum::response::{IntoResponse, Response};
use ferrosim_smdp::Smdp;
use ferrosim_store::SqlStore;
use serde::Serialize;

/// A store that can tell whether it is usable right now.
pub trait ReadyCheck: Send + Sync + 'static {
    /// `Ok` when the database answers a read and commits a write; `Err`
    /// says what failed.
    fn check_ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

impl ReadyCheck for SqlStore {
    async fn check_ready(&self) -> Result<(), String> {
        SqlStore::check_ready(self).await.map_err(|e| e.to_string())
    }
}

#[derive(Serialize)]
struct ReadyBody<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `GET /ready`: 200 `{"status":"ready"}`, or 503 `{"status":"unavailable",
/// "reason":…}` naming what failed (the database's own message).
pub(crate) async fn ready<S>(State(smdp): State<Smdp<S>>) -> Response
where
    S: ferrosim_smdp::store::Store + ReadyCheck + Clone,
{
    let (status, body) = match smdp.store().check_ready().await {
        Ok(()) => (
            HttpStatus::OK,
            ReadyBody {
                status: "ready",
                reason: None,
            },
        ),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                HttpStatus::SERVICE_UNAVAILABLE,
                ReadyBody {
                    status: "unavailable",
                    reason: Some(reason),
                },
            )
        }
    };
    (status, axum::Json(body)).into_response()
}
