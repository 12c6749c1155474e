//! The SM-DP+ on the network: ES9+ for devices and ES2+ for operators over
//! HTTPS (HTTP/1.1 with keep-alive and HTTP/2 by ALPN), with the background
//! work an instance does: delivering ES2+ callbacks from the outbox and
//! expiring orders.
//!
//! All protocol decisions are in `ferrosim-smdp`; this crate only turns HTTP
//! requests into calls of [`ferrosim_smdp::Smdp`] and answers into HTTP.
//! Instances are stateless: any number can share one database.

pub mod access;
pub mod api;
pub mod audit;
pub mod bootstrap;
mod callback_endpoints;
mod callbacks;
pub mod client_auth;
mod dashboard;
pub mod eim_identity;
mod es2;
pub mod es2_client;
mod es9;
pub mod esipa;
pub mod fleet;
pub mod housekeeping;
mod http;
mod limits;
mod ready;
pub mod relay;
pub mod sandbox;
pub mod telemetry;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use ferrosim_smdp::Smdp;
use ferrosim_smdp::store::{EndOfLifeStore, Store};
use thiserror::Error;
use tokio::task::JoinSet;
use tracing::info;

pub use callbacks::CallbackOptions;
pub use limits::{HttpLimits, MAX_REQUEST_BODY};
pub use ready::ReadyCheck;
pub use tls::{TlsCertificateProblem, TlsIdentity, check_tls_certificate};

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The TLS certificate or key is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The listening socket failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// How an instance runs besides the protocol itself.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The DPtls certificate chain and key.
    pub tls: TlsIdentity,
    /// Delivery of ES2+ callbacks.
    pub callbacks: CallbackOptions,
    /// How often to expire orders and purge old sessions.
    pub housekeeping_interval: Duration,
    /// How long ended sessions are kept (late installation results still verify).
    pub session_retention: Duration,
    /// How long after its installation a profile keeps its K, OPc, PIN/PUK
    /// and ADM keys in the database (purged by housekeeping; the ICCID and
    /// IMSI stay). `None` (the default here) keeps them; `ferrosim serve`
    /// purges at once unless configured otherwise.
    pub secrets_retention: Option<Duration>,
    /// Timeouts and the connection limit of the HTTPS listener.
    pub http: HttpLimits,
    /// Operators that may authenticate to ES2+ with a TLS client
    /// certificate (besides their bearer token); none by default.
    pub client_auth: Vec<client_auth::OperatorClientAuth>,
    /// Activation telemetry: `/metrics`, the dashboard and its API, events
    /// recorded to a telemetry store. `None`: none of these.
    pub telemetry: Option<telemetry::Telemetry>,
    /// Where privileged calls and state changes are recorded (see
    /// [`audit`]); disabled by default.
    pub audit: audit::Auditor,
    /// Per-client rate limits and lockouts (see [`access`]); none by default.
    pub access: Option<access::Access>,
}

impl ServerOptions {
    /// Defaults around a TLS identity.
    pub fn new(tls: TlsIdentity) -> Self {
        Self {
            tls,
            callbacks: CallbackOptions::default(),
            housekeeping_interval: Duration::from_secs(30),
            session_retention: Duration::from_secs(7 * 24 * 3600),
            secrets_retention: None,
            http: HttpLimits::default(),
            client_auth: Vec::new(),
            telemetry: None,
            audit: audit::Auditor::disabled(),
            access: None,
        }
    }
}

/// A running instance.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    tasks: JoinSet<()>,
    stop: tokio::sync::watch::Sender<bool>,
    audit: audit::Auditor,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in flight finish within
    /// `grace`, stops the background workers and waits for them.
    pub async fn shutdown(mut self, grace: Duration) {
        self.handle.graceful_shutdown(Some(grace));
        // A state, not an edge: a worker that has not started yet still sees it.
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // What requests recorded is stored before the process goes (bounded:
        // an unreachable database must not hold the shutdown forever).
        let _ = tokio::time::timeout(grace.max(Duration::from_secs(1)), self.audit.flush()).await;
        info!("server stopped");
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] from a clone of its handle, or a fatal error).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The HTTP routes of an SM-DP+: ES9+, ES2+, `/health` (the process runs)
/// and `/ready` (its database is reachable and writable).
pub fn router<S: Store + EndOfLifeStore + ReadyCheck + Clone>(smdp: Smdp<S>) -> Router {
    Router::new()
        .route("/gsma/rsp2/es9plus/{function}", post(es9::handle::<S>))
        .route("/gsma/rsp2/es2plus/{function}", post(es2::handle::<S>))
        .route("/health", get(http::health))
        .route("/ready", get(ready::ready::<S>))
        .with_state(smdp)
}

/// Starts serving `smdp` on `listener` with TLS, plus the background workers.
pub async fn start<
    S: Store + EndOfLifeStore + ReadyCheck + housekeeping::InstalledSecretsPurge + Clone,
>(
    listener: std::net::TcpListener,
    smdp: Smdp<S>,
    options: ServerOptions,
) -> Result<RunningServer, ServerError> {
    start_with(listener, smdp, options, Router::new()).await
}

/// [`start`], with more routes served beside the SM-DP+'s on the same
/// listener (the eIM's ESipa bindings and REST API: [`esipa::routes`],
/// [`api`]).
pub async fn start_with<
    S: Store + EndOfLifeStore + ReadyCheck + housekeeping::InstalledSecretsPurge + Clone,
>(
    listener: std::net::TcpListener,
    smdp: Smdp<S>,
    options: ServerOptions,
    extra: Router,
) -> Result<RunningServer, ServerError> {
    let local_addr = listener.local_addr()?;
    let tls = tls::rustls_config(&options.tls, &options.client_auth)?;
    let authenticator = client_auth::ClientAuthenticator::new(
        &Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        &options.client_auth,
    )
    .map_err(|e| ServerError::Tls(e.to_string()))?;
    let handle = axum_server::Handle::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();

    let limits = options.http;
    let mut app = router(smdp.clone());
    if let Some(t) = &options.telemetry {
        app = telemetry::routes(app, t.clone());
    }
    // The eIM's routes join after the telemetry layer: it observes the
    // SM-DP+'s ES2+ and ES9+ traffic only.
    let mut app = app
        .merge(extra)
        .layer(axum::Extension(Arc::new(authenticator)))
        .layer(axum::Extension(options.audit.clone()))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::read_body,
        ));
    if let Some(access) = &options.access {
        // Outermost: a limited or locked client is answered before its
        // body is read; /metrics shows the access families too.
        app =
            app.layer(axum::Extension(access.clone()))
                .layer(axum::middleware::from_fn_with_state(
                    access.clone(),
                    access::guard,
                ));
    }
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .handshake_timeout(limits.header_timeout)
        .acceptor(limits::ConnectionAcceptor::new(&limits));
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .first_request_timeout(limits.header_timeout)
        .handle(handle.clone());
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    tasks.spawn(async move {
        if let Err(e) = server
            .serve(app.into_make_service_with_connect_info::<SocketAddr>())
            .await
        {
            tracing::error!(error = %e, "HTTPS server failed");
        }
    });
    tasks.spawn(callbacks::run(
        smdp.clone(),
        options.callbacks.clone(),
        options.telemetry.clone(),
        stopped.clone(),
    ));
    if let Some(t) = options.telemetry.clone() {
        tasks.spawn(telemetry::run_writer(
            t.clone(),
            smdp.clone(),
            stopped.clone(),
        ));
        tasks.spawn(telemetry::maintain(t, stopped.clone()));
    }
    tasks.spawn(housekeeping::run(
        smdp,
        housekeeping::Upkeep {
            interval: options.housekeeping_interval,
            session_retention: options.session_retention,
            secrets_retention: options.secrets_retention,
        },
        stopped.clone(),
    ));
    info!(%local_addr, "SM-DP+ listening (HTTPS, HTTP/1.1 and HTTP/2)");
    Ok(RunningServer {
        local_addr,
        handle,
        tasks,
        stop,
        audit: options.audit,
    })
}
