//! Activation telemetry of a running SM-DP+: Prometheus families at
//! `/metrics`, events recorded to a [`TelemetryStore`], the live dashboard.
//!
//! The request path only measures: an axum layer on the ES2+ and ES9+
//! routes ([`observe`]) times each call, reads its status from the answer
//! and counts it in the Prometheus families at once (atomic counters), then
//! offers the observation to a bounded queue without waiting. When the queue
//! is full the observation is dropped and counted
//! (`ferrosim_telemetry_events_dropped_total{reason="queue_full"}`): a slow
//! telemetry store never slows or fails a download.
//!
//! One writer task ([`writer`]) drains the queue: it ties calls and the
//! orders' progress events (from the callback outbox) to devices and
//! activations ([`attribute`]), feeds the live [`ActivationTracker`] (the
//! activation-time histogram), appends events to the store in batches, and
//! once a second updates the outbox backlog and times out activations;
//! periodically it purges events past retention and recomputes the
//! profiles-in-use gauge.

mod attribute;
mod decode;
mod lookup;
pub(crate) mod observe;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrosim_smdp::order::ProgressEvent;
use ferrosim_telemetry::prom::ReasonLabels;
use ferrosim_telemetry::{
    Dictionary, Event, EventQuery, PromMetrics, Retention, StoreError, TelemetryStore, Timestamp,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

pub(crate) use attribute::Call;
pub use attribute::activation_id;

/// Settings of the telemetry of an instance.
#[derive(Debug, Clone)]
pub struct TelemetryOptions {
    /// Observations waiting for the writer; beyond, they are dropped and
    /// counted.
    pub queue: usize,
    /// Events appended to the store at once.
    pub batch: usize,
    /// How long the writer lets observations gather after the first of a
    /// batch before it handles them: the bindings of every session in the
    /// batch are then read in one look-up of the SM-DP+'s store instead of
    /// one per download (zero: handle at once what is queued).
    pub gather: Duration,
    /// Longest time an event waits before it is appended.
    pub flush_interval: Duration,
    /// How long events are kept.
    pub retention: Retention,
    /// How often events past retention are purged.
    pub purge_interval: Duration,
    /// An activation without success this long after its first event counts
    /// as timed out in `ferrosim_activations_total`.
    pub horizon: Duration,
    /// Most carrier values used as Prometheus labels (then `other`).
    pub max_carriers: usize,
    /// How often `ferrosim_profiles_active` is recomputed, and over which
    /// window of events.
    pub profiles_interval: Duration,
    /// See [`TelemetryOptions::profiles_interval`].
    pub profiles_window: Duration,
}

impl Default for TelemetryOptions {
    fn default() -> Self {
        Self {
            queue: 16_384,
            batch: 512,
            gather: Duration::from_millis(20),
            flush_interval: Duration::from_millis(500),
            retention: Retention::default(),
            purge_interval: Duration::from_secs(3600),
            horizon: Duration::from_secs(600),
            max_carriers: 64,
            profiles_interval: Duration::from_secs(60),
            profiles_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// What reaches the writer.
pub(crate) enum Input {
    /// An ES2+/ES9+ call served.
    Call(Call),
    /// An order's progress event, as the outbox first hands it out.
    Progress(Box<ProgressEvent>),
    /// Append everything received so far, then answer.
    Flush(oneshot::Sender<()>),
}

/// [`TelemetryStore`] behind a pointer (its methods return boxed futures).
pub(crate) trait DynStore: Send + Sync + 'static {
    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), StoreError>>;
    fn query<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, Result<Vec<Event>, StoreError>>;
    fn purge_before(&self, cutoff: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>>;
}

impl<T: TelemetryStore + 'static> DynStore for T {
    fn append<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), StoreError>> {
        TelemetryStore::append(self, events).boxed()
    }
    fn query<'a>(&'a self, q: &'a EventQuery) -> BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        TelemetryStore::query(self, q).boxed()
    }
    fn purge_before(&self, cutoff: Timestamp) -> BoxFuture<'_, Result<u64, StoreError>> {
        TelemetryStore::purge_before(self, cutoff).boxed()
    }
}

/// Counters of the telemetry path, for the API and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Events appended to the store.
    pub written: AtomicU64,
    /// Observations dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Calls that could not be tied to a device.
    pub unattributed: AtomicU64,
    /// Appends to the store (successful or not).
    pub appends: AtomicU64,
    /// Microseconds the writer spent in appends, from the call to the
    /// store's answer (on a shared SQLite database this includes the wait in
    /// the commit queue behind the SM-DP+'s own writes).
    pub append_micros: AtomicU64,
    /// The longest single append, in microseconds.
    pub append_max_micros: AtomicU64,
    /// Reads of session bindings from the SM-DP+'s store.
    pub lookups: AtomicU64,
}

/// What the telemetry writer did so far: see [`Telemetry::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TelemetryStats {
    /// Events appended to the store.
    pub written: u64,
    /// Observations dropped because the writer's queue was full.
    pub dropped: u64,
    /// Calls that could not be tied to a device.
    pub unattributed: u64,
    /// Appends to the store (one transaction each).
    pub appends: u64,
    /// Time the writer spent waiting for the store's appends, in total.
    pub append_time: Duration,
    /// The longest single append.
    pub append_max: Duration,
    /// Reads of session bindings from the SM-DP+'s store (one per batch of
    /// calls that needs any).
    pub lookups: u64,
}

pub(crate) struct Inner {
    pub prom: PromMetrics,
    pub dict: Dictionary,
    pub store: Box<dyn DynStore>,
    pub options: TelemetryOptions,
    pub counters: Counters,
    tx: mpsc::Sender<Input>,
    rx: Mutex<Option<mpsc::Receiver<Input>>>,
    /// Whether a writer took the receiver.
    running: std::sync::atomic::AtomicBool,
    /// Bumped after every append: the dashboard's live stream waits on it.
    pub appended: watch::Sender<u64>,
}

/// The telemetry of an instance: Prometheus families, the event store, the
/// queue to the writer. Cheap to clone. Give it to
/// [`crate::ServerOptions::telemetry`]; [`crate::start`] runs its writer.
#[derive(Clone)]
pub struct Telemetry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Telemetry recording to `store` (its dictionary names the dimensions).
    pub fn new(store: impl TelemetryStore + 'static, options: TelemetryOptions) -> Self {
        let dict = TelemetryStore::dictionary(&store).clone();
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let prom = PromMetrics::new(dict.clone(), options.max_carriers);
        // Both reasons exposed from the start, at 0.
        for reason in ["queue_full", "unattributed"] {
            let _ = prom.events_dropped.get_or_create(&ReasonLabels { reason });
        }
        Self {
            inner: Arc::new(Inner {
                prom,
                dict,
                store: Box::new(store),
                options,
                counters: Counters::default(),
                tx,
                rx: Mutex::new(Some(rx)),
                running: std::sync::atomic::AtomicBool::new(false),
                appended: watch::channel(0).0,
            }),
        }
    }

    /// The Prometheus families.
    pub fn prom(&self) -> &PromMetrics {
        &self.inner.prom
    }

    /// The dictionary naming the events' dimensions.
    pub fn dictionary(&self) -> &Dictionary {
        &self.inner.dict
    }

    /// Events matching `query`, from the store.
    pub async fn query(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError> {
        self.inner.store.query(query).await
    }

    /// Waits until every observation offered so far is in the store (tests,
    /// and `ferrosim demo` before it computes its report). Returns at once
    /// when the writer is not running.
    pub async fn flush(&self) {
        if !self.inner.running.load(Ordering::Acquire) {
            return;
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.tx.send(Input::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Observations dropped because the writer's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// What the writer did so far: events written and dropped, appends and
    /// the time they took (`ferrosim bench --telemetry compare` reports it).
    pub fn stats(&self) -> TelemetryStats {
        let c = &self.inner.counters;
        TelemetryStats {
            written: c.written.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            unattributed: c.unattributed.load(Ordering::Relaxed),
            appends: c.appends.load(Ordering::Relaxed),
            append_time: Duration::from_micros(c.append_micros.load(Ordering::Relaxed)),
            append_max: Duration::from_micros(c.append_max_micros.load(Ordering::Relaxed)),
            lookups: c.lookups.load(Ordering::Relaxed),
        }
    }

    /// Offers an input to the writer without waiting.
    pub(crate) fn offer(&self, input: Input) {
        if self.inner.tx.try_send(input).is_err() {
            self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            self.inner
                .prom
                .events_dropped
                .get_or_create(&ReasonLabels {
                    reason: "queue_full",
                })
                .inc();
        }
    }

    /// An order's progress event, from the callback outbox.
    pub(crate) fn progress(&self, event: &ProgressEvent) {
        self.offer(Input::Progress(Box::new(event.clone())));
    }

    /// Takes the receiving end of the queue (once: the writer of the first
    /// server started with this telemetry).
    pub(crate) async fn take_receiver(&self) -> Option<mpsc::Receiver<Input>> {
        let rx = self.inner.rx.lock().await.take();
        if rx.is_some() {
            self.inner.running.store(true, Ordering::Release);
        }
        rx
    }
}

pub(crate) use writer::{maintain, run as run_writer};

/// Adds telemetry to an SM-DP+ router: the observing layer on its ES2+ and
/// ES9+ routes, `GET /metrics`, the dashboard and its API.
pub(crate) fn routes(app: axum::Router, t: Telemetry) -> axum::Router {
    use axum::routing::get;
    app.route_layer(axum::middleware::from_fn_with_state(
        t.clone(),
        observe::observe,
    ))
    .merge(
        axum::Router::new()
            .route("/metrics", get(observe::metrics))
            .with_state(t.clone()),
    )
    .merge(crate::dashboard::routes(t))
}
