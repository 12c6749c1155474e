//! Activation telemetry of ferrosim: what happened during each activation,
//! the headline metrics computed exactly from it, and what operators see of
//! them (Prometheus families, SLO rules and burn-rate alerts, SLA reports).
//!
//! Sans-IO: producers (the SM-DP+, the eIM, the fleet plane, devices, the
//! simulator) hand in [`Event`]s with their time; computations take the
//! instant they evaluate at. Nothing here reads a clock, opens a socket or a
//! database: stores implement [`TelemetryStore`], drivers move the data.
//!
//! The definitions of the metrics are in `docs/METRICS.md`.

#![forbid(unsafe_code)]

pub mod dims;
pub mod event;
pub mod grafana;
pub mod mem;
pub mod metrics;
pub mod prom;
pub mod record;
pub mod report;
pub mod slo;
pub mod store;
pub mod suite;
pub mod time;
pub mod tracker;

pub use dims::{Dictionary, Dimension, Dims, GroupKey, Sym};
pub use event::{
    ActivationKind, CorrelationId, EuiccOutcome, EuiccStage, Event, EventKind, Function, Interface,
    ProfileChange, ProfileKey, RegistrationOutcome, Source, StatusCode, StepStatus,
};
pub use mem::MemTelemetryStore;
pub use metrics::{Metrics, MetricsQuery, MetricsReport, compute, compute_slice};
pub use prom::PromMetrics;
pub use record::{EventRecord, RecordError, read_jsonl, write_jsonl};
pub use store::{EventQuery, Filter, Retention, StoreError, TelemetryStore};
pub use time::Timestamp;
pub use tracker::{ActivationOutcome, ActivationTracker};
