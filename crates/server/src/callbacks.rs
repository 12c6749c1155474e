//! Delivery of ES2+ `handleDownloadProgressInfo` callbacks from the outbox.
//!
//! Each instance runs one worker. It leases due callbacks from the store (so
//! no other instance sends them at the same time), posts them to the
//! operator's callback URL, and marks them delivered on a 2xx answer or
//! schedules a retry with exponential backoff. A crash between sending and
//! marking can repeat a callback once; its `functionCallIdentifier` (the
//! outbox id) lets the operator drop the repeat. One order's callbacks go
//! out in the order they happened (the store leases only the oldest
//! undelivered one of a profile); an endpoint that is down is left alone
//! until its retry time (capped exponential backoff per endpoint, see
//! [`crate::callback_endpoints`]), with one log line per minute.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use ferrosim_asn1::json::FunctionExecutionStatus;
use ferrosim_asn1::json::es2::{HandleDownloadProgressInfoRequest, RequestHeader};
use ferrosim_smdp::Smdp;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::{CallbackRecord, Store};
use ferrosim_smdp::time::Timestamp;
use tokio::sync::watch;

use crate::callback_endpoints::{Endpoints, LogLine, Outcome};

/// At most one "endpoint failing" line per endpoint per interval.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
use tracing::{debug, error, info, warn};

/// Settings of the callback worker.
#[derive(Debug, Clone)]
pub struct CallbackOptions {
    /// How often to look for due callbacks when idle.
    pub poll_interval: Duration,
    /// How long a leased callback is reserved for this instance.
    pub lease: Duration,
    /// Callbacks leased at once.
    pub batch: u32,
    /// Timeout of one delivery.
    pub timeout: Duration,
    /// First retry delay; doubled per attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Accept operator endpoints with self-signed certificates (tests only).
    pub accept_invalid_certs: bool,
}

impl Default for CallbackOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(30),
            batch: 64,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            accept_invalid_certs: false,
        }
    }
}

/// The worker loop; ends when `stop` is notified.
pub(crate) async fn run<S: Store + Clone>(
    smdp: Smdp<S>,
    opts: CallbackOptions,
    telemetry: Option<crate::telemetry::Telemetry>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(opts.timeout)
        .danger_accept_invalid_certs(opts.accept_invalid_certs)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot build the callback HTTP client; callbacks stay queued");
            return;
        }
    };
    let mut urls = UrlCache::default();
    let endpoints = std::sync::Mutex::new(Endpoints::new(
        opts.initial_backoff,
        opts.max_backoff,
        SUMMARY_INTERVAL,
    ));
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = tokio::time::sleep(opts.poll_interval) => {}
        }
        loop {
            let now = Timestamp::now();
            let lease_ms = i64::try_from(opts.lease.as_millis()).unwrap_or(i64::MAX);
            let batch = match smdp
                .store()
                .claim_callbacks(now, lease_ms, opts.batch)
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    warn!(error = %e, "cannot lease callbacks");
                    break;
                }
            };
            let full = batch.len() as u32 >= opts.batch;
            if let Some(t) = &telemetry {
                // Each event once, when the outbox first hands it out.
                for cb in batch.iter().filter(|cb| cb.attempts <= 1) {
                    t.progress(&cb.event);
                }
            }
            for cb in &batch {
                urls.refresh(smdp.store(), &cb.event.operator, now).await;
            }
            let sends = batch.into_iter().map(|cb| {
                let url = urls.get(&cb.event.operator);
                deliver(&smdp, &client, &endpoints, cb, url)
            });
            let delivered: Vec<i64> = futures::future::join_all(sends)
                .await
                .into_iter()
                .flatten()
                .collect();
            if let Err(err) = smdp
                .store()
                .callbacks_delivered(&delivered, Timestamp::now())
                .await
            {
                warn!(error = %err, count = delivered.len(), "callbacks sent but not marked delivered; they may repeat");
            }
            // A delivered callback may have unblocked the next event of
            // its order: look again at once.
            if !full && delivered.is_empty() {
                break;
            }
        }
    }
}

/// Callback URLs per operator, reloaded every few seconds so a changed URL
/// is picked up without a restart.
#[derive(Default)]
struct UrlCache {
    entries: HashMap<OperatorId, (Timestamp, Option<Option<String>>)>,
}

impl UrlCache {
    const TTL_MS: i64 = 5_000;

    async fn refresh<S: Store>(&mut self, store: &S, op: &OperatorId, now: Timestamp) {
        if let Some((at, _)) = self.entries.get(op)
            && now.millis().saturating_sub(at.millis()) < Self::TTL_MS
        {
            return;
        }
        let url = match store.operator(op).await {
            Ok(o) => Some(o.and_then(|o| o.callback_url)),
            Err(e) => {
                warn!(error = %e, operator = %op, "cannot load an operator's callback URL");
                None
            }
        };
        self.entries.insert(op.clone(), (now, url));
    }

    /// `None`: unknown for now (database trouble); `Some(None)`: no URL.
    fn get(&self, op: &OperatorId) -> Option<Option<String>> {
        self.entries.get(op).and_then(|(_, u)| u.clone())
    }
}

async fn deliver<S: Store + Clone>(
    smdp: &Smdp<S>,
    client: &reqwest::Client,
    endpoints: &std::sync::Mutex<Endpoints>,
    cb: CallbackRecord,
    url: Option<Option<String>>,
) -> Option<i64> {
    let store = smdp.store();
    // The operator could not be loaded: leave it leased; it comes back after the lease.
    let url = url?;
    let Some(url) = url else {
        // Nothing to deliver to: the event stays recorded, marked done.
        debug!(id = cb.id, "operator has no callback URL");
        return Some(cb.id);
    };
    // An endpoint that is down gets nothing before its retry time: the
    // callback waits in the outbox until then, without a send or a log line.
    let blocked = endpoints
        .lock()
        .ok()
        .and_then(|e| e.blocked_until(&url, Timestamp::now()));
    if let Some(until) = blocked {
        let _ = store
            .callback_failed(
                cb.id,
                until,
                "endpoint unreachable: waiting for its retry time",
            )
            .await;
        return None;
    }
    let e = &cb.event;
    let body = HandleDownloadProgressInfoRequest {
        header: RequestHeader {
            function_requester_identifier: smdp.config().address.clone(),
            function_call_identifier: format!("ferrosim-callback-{}", cb.id),
        },
        eid: e.eid,
        iccid: e.iccid.clone(),
        profile_type: e.profile_type.clone(),
        timestamp: e.at.to_rfc3339(),
        notification_point_id: e.point.id(),
        notification_point_status: match e.failure {
            None => FunctionExecutionStatus::success(),
            Some(code) => FunctionExecutionStatus::failed(code.into()),
        },
        result_data: e
            .result_data
            .as_ref()
            .map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
    };
    let result = client
        .post(&url)
        .header("X-Admin-Protocol", ferrosim_asn1::json::ADMIN_PROTOCOL)
        .json(&body)
        .send()
        .await;
    let outcome = match result {
        Ok(resp) if resp.status().is_success() => Outcome::Delivered,
        Ok(resp)
            if resp.status().is_server_error()
                || resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
        {
            Outcome::EndpointDown(format!("HTTP {}", resp.status()))
        }
        Ok(resp) => Outcome::Refused(format!("HTTP {}", resp.status())),
        Err(err) => Outcome::EndpointDown(err.to_string()),
    };
    let now = Timestamp::now();
    let (retry_at, line) = match endpoints.lock() {
        Ok(mut e) => e.record(&url, &outcome, now),
        Err(_) => (Some(now.plus(Duration::from_secs(60))), None),
    };
    match line {
        Some(LogLine::Down {
            failed,
            error,
            retry_in,
        }) => {
            warn!(url = %url, failed_attempts = failed, error = %error, retry_in = ?retry_in, "callback endpoint failing; callbacks wait in the outbox");
        }
        Some(LogLine::Recovered { failures }) => {
            info!(url = %url, failed_attempts = failures, "callback endpoint answers again");
        }
        None => {}
    }
    match (outcome, retry_at) {
        (Outcome::Delivered, _) => {
            info!(id = cb.id, iccid = %e.iccid.as_str(), point = e.point.id(), "callback delivered");
            Some(cb.id)
        }
        (Outcome::EndpointDown(why) | Outcome::Refused(why), retry_at) => {
            debug!(id = cb.id, attempts = cb.attempts, error = %why, "callback delivery failed");
            let next = retry_at.unwrap_or_else(|| now.plus(Duration::from_secs(60)));
            let _ = store.callback_failed(cb.id, next, &why).await;
            None
        }
    }
}
