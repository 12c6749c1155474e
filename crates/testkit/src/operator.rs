//! The operator's side of ES2+ for tests that talk to an SM-DP+ they did not
//! start in-process (a `ferrosim serve` child, another instance): a callback
//! endpoint that takes its time to acknowledge, so that a test can stop the
//! SM-DP+ while callbacks are in flight. Orders go through
//! [`crate::Es2Client`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;

/// An operator's callback endpoint on 127.0.0.1 (plain HTTP) that records
/// each callback when it arrives and acknowledges it (204) only after a
/// delay. A callback that arrived but is not yet acknowledged is *in
/// flight*: if the SM-DP+ dies then, it has reached the operator but the
/// SM-DP+ does not know. While the endpoint is *down* ([`Self::set_down`])
/// it refuses callbacks with 503 at once and records nothing but the count.
pub struct SlowCallbackEndpoint {
    /// Its URL.
    pub url: String,
    shared: Arc<Shared>,
    _task: tokio::task::JoinHandle<()>,
}

struct Shared {
    received: Mutex<Vec<Value>>,
    in_flight: Mutex<Vec<Value>>,
    answering: AtomicUsize,
    refused: AtomicUsize,
    down: AtomicBool,
    delay: Duration,
}

impl SlowCallbackEndpoint {
    /// Listens on a free port; acknowledges each callback `delay` after it arrived.
    pub async fn start(delay: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            in_flight: Mutex::new(Vec::new()),
            answering: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            delay,
        });
        let app = Router::new()
            .route("/callback", post(slow_record))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}/callback"),
            shared,
            _task: task,
        })
    }

    /// Every callback that arrived (acknowledged or not), in order.
    pub fn received(&self) -> Vec<Value> {
        self.shared
            .received
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Callbacks that arrived and are waiting for their acknowledgement now.
    pub fn in_flight(&self) -> Vec<Value> {
        self.shared
            .in_flight
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// Refuse (`true`, HTTP 503) or accept callbacks from now on.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Callbacks refused while down.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// How many callbacks are waiting for their acknowledgement now.
    pub fn in_flight_count(&self) -> usize {
        self.shared.answering.load(Ordering::SeqCst)
    }
}

/// Removes its callback from the in-flight list when the request ends,
/// answered or abandoned (the SM-DP+ hung up).
struct InFlight {
    shared: Arc<Shared>,
    body: Value,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.answering.fetch_sub(1, Ordering::SeqCst);
        if let Ok(mut v) = self.shared.in_flight.lock()
            && let Some(i) = v.iter().position(|b| *b == self.body)
        {
            v.swap_remove(i);
        }
    }
}

async fn slow_record(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    if shared.down.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    if let Ok(mut v) = shared.received.lock() {
        v.push(body.clone());
    }
    if let Ok(mut v) = shared.in_flight.lock() {
        v.push(body.clone());
    }
    shared.answering.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight {
        shared: Arc::clone(&shared),
        body,
    };
    tokio::time::sleep(shared.delay).await;
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn slow_endpoint_records_on_arrival_and_answers_late() {
        let endpoint = SlowCallbackEndpoint::start(Duration::from_millis(300))
            .await
            .expect("endpoint");
        let client = reqwest::Client::new();
        let url = endpoint.url.clone();
        let call = tokio::spawn(async move {
            client
                .post(url)
                .body(r#"{"n":1}"#)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while endpoint.in_flight_count() == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(endpoint.in_flight(), vec![json!({"n": 1})]);
        assert_eq!(endpoint.received(), vec![json!({"n": 1})]);
        let status = call.await.expect("task").expect("answer");
        assert_eq!(status, 204);
        assert_eq!(endpoint.in_flight_count(), 0);
        assert!(endpoint.in_flight().is_empty());
        assert_eq!(endpoint.received().len(), 1);

        endpoint.set_down(true);
        let status = reqwest::Client::new()
            .post(&endpoint.url)
            .body("{}")
            .send()
            .await
            .expect("answer")
            .status();
        assert_eq!(status.as_u16(), 503);
        assert_eq!(endpoint.refused(), 1);
        assert_eq!(endpoint.received().len(), 1);
    }
}
