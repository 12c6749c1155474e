//! Webhooks to operators for device and rollout events, signed with
//! HMAC-SHA256 over the timestamp and the body.
//!
//! Every decision the fleet commits becomes one [`WebhookEvent`]
//! (`device.<decision>` or `rollout.<decision>`, its id `d<seq>`). The
//! decision log in the fleet store is the outbox: each endpoint has a
//! cursor in the same store (the last sequence number it acknowledged with
//! a 2xx), events are sent in order, and a failing endpoint is retried with
//! capped exponential backoff without holding the others up. Several
//! instances on one database share the cursors: an instance sends an
//! endpoint's events only while it holds that endpoint's lease
//! ([`FleetStore::claim_webhook`]), renewed with every acknowledged event,
//! so each event is sent once; a stopping instance gives its claims up, and
//! another instance (or the restarted one) resumes after the last
//! acknowledged event, after a crash once the 30 s lease ran out. An event can
//! only be sent twice when an instance dies between the receiver's answer
//! and the cursor's update: receivers deduplicate by the event id.
//!
//! A request carries `X-Ferrosim-Timestamp` (Unix seconds) and
//! `X-Ferrosim-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! [`Verifier`] is the receiving side: it refuses a bad signature, a
//! timestamp outside the replay window and a signature it has seen.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ferrosim_fleet::decision::Decision;
use ferrosim_fleet::store::{DecisionQuery, FleetStore};
use ferrosim_ids::Clock;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-ferrosim-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-ferrosim-signature";

/// Where events go.
#[derive(Clone)]
pub struct WebhookEndpoint {
    /// A name (logs, the cursor file).
    pub name: String,
    /// The URL (`https://…`; `http://` only for loopback receivers).
    pub url: String,
    /// The shared secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// One event as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEvent {
    /// `d<decision seq>`: unique, for deduplication.
    pub id: String,
    /// `device.<decision>` or `rollout.<decision>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the decision was taken (ms since the Unix epoch).
    pub at_ms: i64,
    /// The decision with its reason and inputs.
    pub decision: Decision,
}

impl WebhookEvent {
    /// The event of a decision.
    pub fn of(d: &Decision) -> Self {
        let what = serde_json::to_value(&d.what)
            .ok()
            .and_then(|v| {
                v.get("decision")
                    .and_then(|s| s.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "decision".into());
        let scope = if d.device.is_some() {
            "device"
        } else {
            "rollout"
        };
        Self {
            id: format!("d{}", d.seq),
            kind: format!("{scope}.{what}"),
            at_ms: d.at.millis(),
            decision: d.clone(),
        }
    }
}

/// The signature header's value for `body` sent at `timestamp` (Unix s).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| {
        // HMAC takes keys of any length; this branch is unreachable.
        HmacSha256::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!())
    });
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Why a received webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    /// A header is missing or malformed.
    #[error("missing or malformed {0} header")]
    Header(&'static str),
    /// The signature does not match the timestamp and body.
    #[error("the signature does not match")]
    BadSignature,
    /// The timestamp is outside the replay window.
    #[error("the timestamp is {0} s away from now (outside the replay window)")]
    Stale(i64),
    /// This signature was seen before.
    #[error("replayed: this signature was already received")]
    Replayed,
}

/// The receiving side: verifies signatures and refuses replays.
#[derive(Debug)]
pub struct Verifier {
    secret: Vec<u8>,
    window_secs: i64,
    seen: VecDeque<(i64, String)>,
}

impl Verifier {
    /// A verifier for `secret` accepting timestamps within `window` of now.
    pub fn new(secret: &[u8], window: Duration) -> Self {
        Self {
            secret: secret.to_vec(),
            window_secs: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            seen: VecDeque::new(),
        }
    }

    /// Checks one request (`now` in Unix seconds).
    pub fn verify(
        &mut self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let ts: i64 = timestamp
            .and_then(|t| t.trim().parse().ok())
            .ok_or(VerifyError::Header(TIMESTAMP_HEADER))?;
        let sig = signature
            .filter(|s| s.starts_with("v1=") && s.len() == 67)
            .ok_or(VerifyError::Header(SIGNATURE_HEADER))?;
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).map_err(|_| VerifyError::BadSignature)?;
        mac.update(ts.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let given = hex::decode(&sig[3..]).map_err(|_| VerifyError::Header(SIGNATURE_HEADER))?;
        mac.verify_slice(&given)
            .map_err(|_| VerifyError::BadSignature)?;
        let skew = now.saturating_sub(ts);
        if skew.abs() > self.window_secs {
            return Err(VerifyError::Stale(skew));
        }
        while self
            .seen
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > self.window_secs)
        {
            self.seen.pop_front();
        }
        if self.seen.iter().any(|(_, s)| s == sig) {
            return Err(VerifyError::Replayed);
        }
        self.seen.push_back((ts, sig.to_owned()));
        Ok(())
    }
}

/// How long a claim on an endpoint lasts without an acknowledged event:
/// well above one request's time-out, so a live holder never loses it.
const LEASE: Duration = Duration::from_secs(30);
/// One request's time-out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Delivery of events to the configured endpoints.
#[derive(Clone)]
pub struct Webhooks {
    endpoints: Arc<Vec<WebhookEndpoint>>,
    holder: String,
    retry_base: Duration,
    http: reqwest::Client,
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("endpoints", &self.endpoints)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks to `endpoints`, delivered by this instance under a random
    /// holder name; the cursors live in the fleet store given to
    /// [`Webhooks::spawn`]. A failing endpoint is retried after 1 s,
    /// doubling up to 256 s.
    pub fn new(
        endpoints: Vec<WebhookEndpoint>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            endpoints: Arc::new(endpoints),
            holder: format!("instance-{:016x}", rand::random::<u64>()),
            retry_base: Duration::from_secs(1),
            http,
            wake: Arc::new(Notify::new()),
            clock,
        }
    }

    /// The first retry delay (doubled after each further failure, at most
    /// 256 times this).
    #[must_use]
    pub fn retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// The name this instance claims endpoints under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// New decisions were committed: deliver soon.
    pub(crate) fn decisions(&self, decisions: &[Decision]) {
        if !decisions.is_empty() {
            self.wake.notify_one();
        }
    }

    /// Delivers from the decision log in `store` until `stop` turns true.
    pub fn spawn<F: FleetStore>(
        &self,
        store: F,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let hooks = self.clone();
        tokio::spawn(async move {
            let mut failing = vec![false; hooks.endpoints.len()];
            loop {
                if *stop.borrow() {
                    for ep in hooks.endpoints.iter() {
                        if let Err(e) = store.release_webhook(&ep.name, &hooks.holder).await {
                            warn!(endpoint = %ep.name, error = %e, "webhook claim not released");
                        }
                    }
                    break;
                }
                let mut busy = false;
                for (i, ep) in hooks.endpoints.iter().enumerate() {
                    match hooks.deliver_some(&store, ep).await {
                        Ok(more) => {
                            busy |= more;
                        }
                        Err(Failure::Receiver(e)) => {
                            failing[i] = true;
                            warn!(endpoint = %ep.name, error = %e, "webhook delivery failed");
                            continue;
                        }
                        Err(Failure::Store(e)) => {
                            warn!(endpoint = %ep.name, error = %e, "webhook cursor not read or written");
                            continue;
                        }
                    }
                    if std::mem::take(&mut failing[i]) {
                        info!(endpoint = %ep.name, "webhook endpoint recovered");
                    }
                }
                if busy {
                    continue;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    () = hooks.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500).min(hooks.retry_base)) => {}
                }
            }
        })
    }

    /// Claims `ep` and sends it up to 100 events; whether more may be
    /// waiting. Nothing is sent when another instance holds the endpoint or
    /// its retry is not due.
    async fn deliver_some<F: FleetStore>(
        &self,
        store: &F,
        ep: &WebhookEndpoint,
    ) -> Result<bool, Failure> {
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now().millis();
        let Some(cursor) = store
            .claim_webhook(&ep.name, &self.holder, now, lease_ms)
            .await
            .map_err(|e| Failure::Store(e.to_string()))?
        else {
            return Ok(false);
        };
        let batch = store
            .decisions(&DecisionQuery {
                after_seq: cursor.delivered_seq,
                limit: 100,
                ..DecisionQuery::default()
            })
            .await
            .map_err(|e| Failure::Store(e.to_string()))?;
        let full = batch.len() == 100;
        for d in batch {
            if let Err(e) = self.send(ep, &d).await {
                let delay = self
                    .retry_base
                    .saturating_mul(1u32 << cursor.failures.min(8));
                let next = self
                    .clock
                    .now()
                    .millis()
                    .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                store
                    .webhook_failed(&ep.name, &self.holder, next, &e)
                    .await
                    .map_err(|e| Failure::Store(e.to_string()))?;
                return Err(Failure::Receiver(format!(
                    "{e} (retry in {} ms)",
                    delay.as_millis()
                )));
            }
            let still_ours = store
                .webhook_delivered(
                    &ep.name,
                    &self.holder,
                    d.seq,
                    self.clock.now().millis(),
                    lease_ms,
                )
                .await
                .map_err(|e| Failure::Store(e.to_string()))?;
            if !still_ours {
                // Another instance took the endpoint over: it goes on.
                return Ok(false);
            }
        }
        Ok(full)
    }

    /// POSTs one decision's event, signed; an answer other than 2xx fails.
    async fn send(&self, ep: &WebhookEndpoint, d: &Decision) -> Result<(), String> {
        let body = serde_json::to_vec(&WebhookEvent::of(d)).map_err(|e| e.to_string())?;
        let ts = self.clock.now().millis() / 1000;
        let answer = self
            .http
            .post(&ep.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(SIGNATURE_HEADER, sign(&ep.secret, ts, &body))
            .timeout(REQUEST_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", answer.status()))
        }
    }
}

/// Why one round of delivery to an endpoint stopped.
#[derive(Debug)]
enum Failure {
    /// The receiver failed or was unreachable (backoff recorded).
    Receiver(String),
    /// The fleet store failed.
    Store(String),
}
