//! Webhooks to operators for device and rollout events, signed with
//! HMAC-SHA256 over the timestamp and the body.
//!
//! Every decision the fleet commits becomes one [`WebhookEvent`]
//! (`device.<decision>` or `rollout.<decision>`, its id `d<seq>`). The
//! decision log in the fleet store is the outbox: each endpoint has a
//! cursor (the last sequence number it acknowledged with a 2xx), events are
//! sent in order, and a failing endpoint is retried with capped exponential
//! backoff without holding the others up. The cursors are kept in a small
//! JSON file when one is configured, so a restart resumes where delivery
//! stood; several instances on one database each deliver, so receivers
//! deduplicate by the event id.
//!
//! A request carries `X-Ferrosim-Timestamp` (Unix seconds) and
//! `X-Ferrosim-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//! [`Verifier`] is the receiving side: it refuses a bad signature, a
//! timestamp outside the replay window and a signature it has seen.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrosim_fleet::decision::Decision;
use ferrosim_fleet::store::{DecisionQuery, FleetStore};
use ferrosim_ids::Clock;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use tokio::sync::{Mutex, Notify, watch};
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

/// Delivery of events to the configured endpoints.
#[derive(Clone)]
pub struct Webhooks {
    endpoints: Arc<Vec<WebhookEndpoint>>,
    cursors: Arc<Mutex<HashMap<String, u64>>>,
    cursor_file: Option<PathBuf>,
    http: reqwest::Client,
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Webhooks to `endpoints`; cursors kept in `cursor_file` when given
    /// (read now; a missing file starts every endpoint at sequence 0).
    pub fn new(
        endpoints: Vec<WebhookEndpoint>,
        cursor_file: Option<PathBuf>,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let cursors = match &cursor_file {
            Some(p) if p.exists() => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
            }
            _ => HashMap::new(),
        };
        Ok(Self {
            endpoints: Arc::new(endpoints),
            cursors: Arc::new(Mutex::new(cursors)),
            cursor_file,
            http,
            wake: Arc::new(Notify::new()),
            clock,
        })
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
            let mut backoff: HashMap<String, (u32, i64)> = HashMap::new();
            loop {
                if *stop.borrow() {
                    break;
                }
                let mut busy = false;
                for ep in hooks.endpoints.iter() {
                    let now = hooks.clock.now().millis();
                    if backoff.get(&ep.name).is_some_and(|(_, until)| *until > now) {
                        continue;
                    }
                    match hooks.deliver_some(&store, ep).await {
                        Ok(more) => {
                            if backoff.remove(&ep.name).is_some() {
                                info!(endpoint = %ep.name, "webhook endpoint recovered");
                            }
                            busy |= more;
                        }
                        Err(e) => {
                            let (n, _) = backoff.get(&ep.name).copied().unwrap_or((0, 0));
                            let delay = 1000i64 << n.min(8);
                            warn!(endpoint = %ep.name, error = %e, retry_in_ms = delay, "webhook delivery failed");
                            backoff.insert(ep.name.clone(), (n + 1, now + delay));
                        }
                    }
                }
                if busy {
                    continue;
                }
                tokio::select! {
                    _ = stop.changed() => {}
                    () = hooks.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        })
    }

    /// Sends up to 100 events to one endpoint; whether more may be waiting.
    async fn deliver_some<F: FleetStore>(
        &self,
        store: &F,
        ep: &WebhookEndpoint,
    ) -> Result<bool, String> {
        let after = self
            .cursors
            .lock()
            .await
            .get(&ep.name)
            .copied()
            .unwrap_or(0);
        let batch = store
            .decisions(&DecisionQuery {
                after_seq: after,
                limit: 100,
                ..DecisionQuery::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let full = batch.len() == 100;
        for d in batch {
            let body = serde_json::to_vec(&WebhookEvent::of(&d)).map_err(|e| e.to_string())?;
            let ts = self.clock.now().millis() / 1000;
            let answer = self
                .http
                .post(&ep.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(TIMESTAMP_HEADER, ts.to_string())
                .header(SIGNATURE_HEADER, sign(&ep.secret, ts, &body))
                .timeout(Duration::from_secs(10))
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !answer.status().is_success() {
                return Err(format!("answered {}", answer.status()));
            }
            self.advance(&ep.name, d.seq).await;
        }
        Ok(full)
    }

    async fn advance(&self, endpoint: &str, seq: u64) {
        let mut cursors = self.cursors.lock().await;
        cursors.insert(endpoint.to_owned(), seq);
        if let Some(path) = &self.cursor_file {
            let text = serde_json::to_string(&*cursors).unwrap_or_default();
            let tmp = path.with_extension("tmp");
            if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
                warn!(error = %e, "webhook cursor file not written");
            }
        }
    }

    /// Where each endpoint stands (last delivered decision sequence).
    pub async fn cursors(&self) -> HashMap<String, u64> {
        self.cursors.lock().await.clone()
    }
}
