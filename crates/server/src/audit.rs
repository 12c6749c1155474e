//! The server's side of the audit trail (`ferrosim-audit`): an [`Auditor`]
//! that request handlers hand records to, and the hooks that use it.
//!
//! Handlers must not wait for the database's turn-taking on the chain, so
//! [`Auditor::record`] only queues the record; one task appends what has
//! queued up as one batch (one transaction, one chain lock) and starts over.
//! Under load a batch holds hundreds of records, so the chain costs one
//! short transaction per batch instead of one per request. The queue is
//! bounded: when the database falls behind, handlers wait for room (the
//! trail is never silently dropped). A record is durable once its batch is
//! committed, normally milliseconds later; a crash loses what was queued and
//! not yet committed ([`Auditor::flush`] waits for it; shutdown flushes).
//!
//! Hooks: ES2+ calls and refused ES2+ authentications ([`crate::es2`]), the
//! ES9+ steps that change an order ([`crate::es9`]), eIM results received
//! on ESipa ([`crate::esipa`]), every changing REST API call with the token
//! that made it ([`api_calls`]). Other crates (the fleet's API, CLI commands)
//! append through the same [`Auditor`] or an [`AuditLog`] directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use ferrosim_audit::{Actor, AuditLog, AuditRecord};
use ferrosim_ids::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::api::auth::{TOKEN_PREFIX, TokenStore, token_hash};

/// Records queued before handlers wait.
const QUEUE: usize = 8192;
/// Most records in one append.
const MAX_BATCH: usize = 1024;

enum Msg {
    Record(AuditRecord),
    Flush(oneshot::Sender<()>),
}

/// Queues audit records for the appender task; cheap to clone. A disabled
/// auditor (the default) drops records: an instance without an audit log.
#[derive(Debug, Clone, Default)]
pub struct Auditor {
    tx: Option<mpsc::Sender<Msg>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("audit message")
    }
}

impl Auditor {
    /// An auditor that records nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the appender task over `log` (needs a tokio runtime). The task
    /// ends when the last clone of the auditor is dropped, after appending
    /// what was queued.
    pub fn start(log: Arc<dyn AuditLog>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(log, rx));
        Self { tx: Some(tx) }
    }

    /// Whether records go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues `record` (waits only when the queue is full).
    pub async fn record(&self, record: AuditRecord) {
        if let Some(tx) = &self.tx
            && tx.send(Msg::Record(record)).await.is_err()
        {
            error!("audit appender stopped; a record was not kept");
        }
    }

    /// Waits until everything queued before this call is stored (or the
    /// appender stopped).
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }
}

async fn run(log: Arc<dyn AuditLog>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Record(r) => batch.push(r),
                Msg::Flush(done) => flushes.push(done),
            }
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        append(&*log, std::mem::take(&mut batch)).await;
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Appends one batch, retrying with backoff while the database fails (the
/// queue fills meanwhile and handlers wait: no record is dropped).
async fn append(log: &dyn AuditLog, batch: Vec<AuditRecord>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    loop {
        match log.append(batch.clone()).await {
            Ok(_) => return,
            Err(e) => {
                warn!(error = %e, records = batch.len(), "audit append failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The auditor a request carries (added by the server for every route).
pub(crate) fn from_request(req: &Request) -> Auditor {
    req.extensions()
        .get::<Auditor>()
        .cloned()
        .unwrap_or_default()
}

/// A handler's audit context: the request's auditor and its client as an
/// actor. Never fails (no auditor: a disabled one; no address: `unknown`).
#[derive(Debug, Clone)]
pub(crate) struct AuditContext {
    /// Where records go.
    pub(crate) auditor: Auditor,
    /// `client:<address>`.
    pub(crate) client: Actor,
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            auditor: parts
                .extensions
                .get::<Auditor>()
                .cloned()
                .unwrap_or_default(),
            client: client(parts.extensions.get::<ConnectInfo<SocketAddr>>()),
        })
    }
}

/// The client's address, when the server was started with connection info.
pub(crate) fn client(connect: Option<&ConnectInfo<SocketAddr>>) -> Actor {
    match connect {
        Some(ConnectInfo(addr)) => Actor::client(addr.ip()),
        None => Actor::client("unknown"),
    }
}

/// Middleware of a REST API (`route_layer`): every call that may change
/// something (not `GET`/`HEAD`/`OPTIONS`) is recorded after it ran, as
/// `api.<METHOD> <route>` with its path and HTTP status, by the token that
/// made it (`token:<id>`) or, without a valid token, the client's address.
/// Refused calls (401, 403, 4xx) are recorded too.
pub async fn api_calls<T: TokenStore + Clone>(
    State(tokens): State<T>,
    req: Request,
    next: Next,
) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let auditor = from_request(&req);
    if !auditor.is_enabled() {
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let action = format!("api.{} {route}", req.method());
    let subject = req.uri().path().to_owned();
    let bearer = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .map(token_hash);
    let address = client(req.extensions().get::<ConnectInfo<SocketAddr>>());
    let response = next.run(req).await;
    let actor = match bearer {
        Some(hash) => match tokens.token_by_hash(&hash).await {
            Ok(Some(t)) => Actor::token(&t.id),
            _ => address,
        },
        None => address,
    };
    auditor
        .record(
            AuditRecord::new(Timestamp::now(), actor, &action, &subject)
                .with_details(serde_json::json!({ "status": response.status().as_u16() })),
        )
        .await;
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ferrosim_audit::MemAuditLog;

    #[tokio::test]
    async fn records_queue_and_flush_in_order() {
        let mem = MemAuditLog::new();
        let auditor = Auditor::start(Arc::new(mem.clone()));
        for i in 0..3000 {
            auditor
                .record(AuditRecord::new(
                    Timestamp(i),
                    Actor::system(),
                    "t",
                    &i.to_string(),
                ))
                .await;
        }
        auditor.flush().await;
        let entries = mem.snapshot();
        assert_eq!(entries.len(), 3000);
        assert!(
            entries
                .iter()
                .enumerate()
                .all(|(i, e)| e.subject == i.to_string())
        );
        let log: &dyn AuditLog = &mem;
        assert!(log.verify(vec![], None).await.unwrap().ok());
        // A disabled auditor drops records and its flush returns at once.
        Auditor::disabled()
            .record(AuditRecord::new(Timestamp(0), Actor::system(), "t", ""))
            .await;
        Auditor::disabled().flush().await;
    }
}
