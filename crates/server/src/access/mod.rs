//! Per-client rate limits and temporary lockouts on ES9+, ES2+, ESipa and
//! the REST APIs, with Prometheus metrics.
//!
//! Every request to those interfaces is counted against its client's IP
//! address and, when it carries a bearer token, against the token (keys of
//! [`ClientKey`]); each key has a token bucket (a sustained rate and a
//! burst). Requests that name a device are also counted against its EID,
//! with a smaller bucket ([`Access::admit_eid`]: ESipa messages by the EID
//! they carry, ES9+ authenticateClient by the EID of its eUICC
//! certificate), and ES9+ refusals after the eUICC proved its EID count as
//! that device's failures ([`Access::eid_failed`]). Requests that fail in a way a guesser's would — a refused ES9+
//! call (unknown matching id or transaction, wrong confirmation code, a
//! certificate refused), a 401 or 403 — count as failures of the request's
//! keys; too many within a window lock the keys out for a while. A limited
//! or locked client gets `429 Too Many Requests` with `Retry-After` *before
//! its request is parsed or reaches the SM-DP+, the eIM or the database* (its
//! body is read and dropped, bounded in size and time, so that the client
//! sees the 429 rather than a reset stream): a brute force costs the server
//! a map look-up per request, and other clients are not slowed.
//!
//! Behind a load balancer that terminates TCP every client has the
//! balancer's address: give the balancer's address room (or disable the
//! address limits); `X-Forwarded-For` is not trusted.
//!
//! The decisions are sans-IO ([`control`]); this module is the axum layer.
//! Metrics (`/metrics`, with telemetry on): `ferrosim_access_refused_total
//! {surface, key, reason}`, `ferrosim_access_lockouts_total{surface, key}`,
//! `ferrosim_access_locked_keys`.

pub mod control;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ferrosim_ids::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tracing::warn;

pub use control::{AccessControl, AccessPolicy, ClientKey, Verdict};

/// How long a refused request's body is read before the answer.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Keys tracked at most (about 200 bytes each).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    surface: &'static str,
    key: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LockoutLabels {
    surface: &'static str,
    key: &'static str,
}

#[derive(Debug)]
struct Inner {
    control: Mutex<AccessControl>,
    registry: Registry,
    refused: Family<RefusedLabels, Counter>,
    lockouts: Family<LockoutLabels, Counter>,
    locked: Gauge,
}

/// Access control of an instance; cheap to clone. Give it to
/// [`crate::ServerOptions::access`].
#[derive(Debug, Clone)]
pub struct Access {
    inner: Arc<Inner>,
}

impl Access {
    /// Access control under `policy`.
    pub fn new(policy: AccessPolicy) -> Self {
        let mut registry = Registry::with_prefix("ferrosim");
        let refused = Family::<RefusedLabels, Counter>::default();
        let lockouts = Family::<LockoutLabels, Counter>::default();
        let locked = Gauge::default();
        registry.register(
            "access_refused",
            "Requests refused early by access control (reason: rate or locked)",
            refused.clone(),
        );
        registry.register(
            "access_lockouts",
            "Client keys locked out after too many failures",
            lockouts.clone(),
        );
        registry.register(
            "access_locked_keys",
            "Client keys locked out now",
            locked.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                control: Mutex::new(AccessControl::new(policy, MAX_KEYS)),
                registry,
                refused,
                lockouts,
                locked,
            }),
        }
    }

    fn control(&self) -> std::sync::MutexGuard<'_, AccessControl> {
        self.inner
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a request of the device `eid` (32 digits) on `surface`,
    /// taking one token from its bucket: `None` to go on, or the `429` to
    /// answer (counted in the metrics with `key="eid"`). Handlers call it as
    /// soon as they have read the EID, before any signature check or
    /// database access.
    pub fn admit_eid(&self, surface: &'static str, eid: &str) -> Option<Response> {
        let key = ClientKey::Eid(eid.to_owned());
        let verdict = self.control().check(&key, Timestamp::now().0);
        (verdict != Verdict::Allow).then(|| refuse(self, surface, &key, verdict))
    }

    /// Records a failure of the device `eid` on `surface` — only after the
    /// device proved its EID (an ES9+ call refused once the eUICC's
    /// signature verified: a matching id refused, an order rule broken), so
    /// that naming a device does not lock it out.
    pub fn eid_failed(&self, surface: &'static str, eid: &str) {
        let key = ClientKey::Eid(eid.to_owned());
        let locked = self.control().failed(&key, Timestamp::now().0);
        if locked {
            note_lockout(self, surface, &key);
        }
    }

    /// The metrics in the OpenMetrics text format (ending `# EOF`).
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let locked = self.control().locked(Timestamp::now().0);
        self.inner
            .locked
            .set(i64::try_from(locked).unwrap_or(i64::MAX));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }
}

/// Which interface a path belongs to; `None`: not limited (health,
/// readiness, metrics, dashboard).
fn surface(path: &str) -> Option<&'static str> {
    if path.starts_with("/gsma/rsp2/es9plus/") {
        Some("es9")
    } else if path.starts_with("/gsma/rsp2/es2plus/") {
        Some("es2")
    } else if path.starts_with("/gsma/rsp2/esipa/") || path == "/gsma/rsp2/asn1" {
        Some("esipa")
    } else if path.starts_with("/api/") {
        Some("api")
    } else {
        None
    }
}

/// The keys of a request: its address, and its bearer token if any.
fn keys(req: &Request) -> Vec<ClientKey> {
    let mut keys = Vec::with_capacity(2);
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        keys.push(ClientKey::Address(addr.ip()));
    }
    if let Some(token) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let digest = Sha256::digest(token.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        keys.push(ClientKey::Token(id));
    }
    keys
}

/// Whether a response is a failure that counts towards a lockout.
fn is_failure(response: &Response) -> bool {
    matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) || response.extensions().get::<crate::es9::Refusal>().is_some()
}

/// The layer (outermost, before the body is read).
pub async fn guard(State(access): State<Access>, req: Request, next: Next) -> Response {
    let Some(surface) = surface(req.uri().path()) else {
        return next.run(req).await;
    };
    let keys = keys(&req);
    let now = Timestamp::now().0;
    let refusal = {
        let mut control = access.control();
        keys.iter()
            .map(|k| (k, control.check(k, now)))
            .find(|(_, v)| *v != Verdict::Allow)
    };
    if let Some((key, verdict)) = refusal {
        let response = refuse(&access, surface, key, verdict);
        // Read (not parse) what the client sent, bounded in size and time,
        // so that it receives the 429 instead of a reset stream.
        let _ = tokio::time::timeout(
            DRAIN_TIMEOUT,
            axum::body::to_bytes(req.into_body(), crate::MAX_REQUEST_BODY),
        )
        .await;
        return response;
    }
    let response = next.run(req).await;
    if is_failure(&response) {
        let now = Timestamp::now().0;
        let mut control = access.control();
        let locked: Vec<&ClientKey> = keys.iter().filter(|k| control.failed(k, now)).collect();
        drop(control);
        for k in locked {
            note_lockout(&access, surface, k);
        }
    }
    response
}

/// Counts and logs a key just locked out.
fn note_lockout(access: &Access, surface: &'static str, key: &ClientKey) {
    access
        .inner
        .lockouts
        .get_or_create(&LockoutLabels {
            surface,
            key: key.kind(),
        })
        .inc();
    let lockout = access.control().policy().lockout.as_secs();
    warn!(surface, key = key.kind(), client = %describe(key), lockout_secs = lockout, "client locked out after repeated failures");
}

/// A key for a log line: the address, or the token's hash prefix.
fn describe(key: &ClientKey) -> String {
    match key {
        ClientKey::Address(a) => a.to_string(),
        ClientKey::Token(h) => format!("token-sha256:{}", hex::encode(&h[..4])),
        ClientKey::Eid(e) => e.clone(),
    }
}

fn refuse(access: &Access, surface: &'static str, key: &ClientKey, verdict: Verdict) -> Response {
    let (reason, retry_ms, message) = match verdict {
        Verdict::Limited { retry_after_ms } => (
            "rate",
            retry_after_ms,
            "too many requests from this client; slow down",
        ),
        Verdict::Locked { retry_after_ms } => (
            "locked",
            retry_after_ms,
            "this client is locked out after repeated failures; retry later",
        ),
        Verdict::Allow => ("rate", 0, ""),
    };
    access
        .inner
        .refused
        .get_or_create(&RefusedLabels {
            surface,
            key: key.kind(),
            reason,
        })
        .inc();
    let body = serde_json::json!({
        "error": { "status": 429, "code": if reason == "locked" { "locked_out" } else { "too_many_requests" }, "message": message }
    });
    let mut r = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let secs = (retry_ms.max(0) + 999) / 1000;
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surfaces() {
        assert_eq!(
            surface("/gsma/rsp2/es9plus/authenticateClient"),
            Some("es9")
        );
        assert_eq!(surface("/gsma/rsp2/es2plus/downloadOrder"), Some("es2"));
        assert_eq!(surface("/gsma/rsp2/esipa/getEimPackage"), Some("esipa"));
        assert_eq!(surface("/gsma/rsp2/asn1"), Some("esipa"));
        assert_eq!(surface("/api/v1/eim/devices"), Some("api"));
        for free in ["/health", "/ready", "/metrics", "/dashboard"] {
            assert_eq!(surface(free), None);
        }
    }

    #[test]
    fn metrics_are_exposed_from_the_start() {
        let a = Access::new(AccessPolicy::default());
        let text = a.encode_metrics().unwrap_or_default();
        assert!(text.contains("ferrosim_access_locked_keys 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
