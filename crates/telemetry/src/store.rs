//! What telemetry needs from persistence, as a trait, and the queries it asks.
//!
//! The in-memory [`crate::MemTelemetryStore`] serves tests and the simulator;
//! SQL stores (SQLite, PostgreSQL) implement the same trait in
//! `ferrosim-store` and run the same suite ([`crate::suite`], feature
//! `suite`). Events are append-only: a store never changes one, and removes
//! them only by retention ([`TelemetryStore::purge_before`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use ferrosim_ids::Eid;

use crate::dims::{Dictionary, Sym};
use crate::event::{CorrelationId, Event};
use crate::time::Timestamp;

/// A persistence failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("corrupt stored telemetry: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("telemetry database error: {0}")]
    Backend(String),
    /// The query is not valid (e.g. its range ends before it starts).
    #[error("invalid telemetry query: {0}")]
    InvalidQuery(&'static str),
}

/// Append, query and purge events.
pub trait TelemetryStore: Send + Sync {
    /// The dictionary that names the symbols of the events this store
    /// accepts and returns.
    fn dictionary(&self) -> &Dictionary;

    /// Appends events (in any time order; they are returned time-ordered).
    fn append(&self, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Events matching `query`, ordered by time, then by arrival.
    fn query(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// Removes every event stamped before `cutoff`; returns how many.
    fn purge_before(
        &self,
        cutoff: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every event of one activation, time-ordered: its timeline.
    fn timeline(
        &self,
        activation: CorrelationId,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send {
        let query = EventQuery {
            filter: Filter {
                activation: Some(activation),
                ..Filter::default()
            },
            ..EventQuery::all()
        };
        async move { self.query(&query).await }
    }
}

/// Which events to return: a time range `[from, to)`, a filter, a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// First instant included.
    pub from: Timestamp,
    /// First instant excluded.
    pub to: Timestamp,
    /// Conditions on the events.
    pub filter: Filter,
    /// At most this many events (the earliest).
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Every event ever stored.
    pub fn all() -> Self {
        Self::between(Timestamp(i64::MIN), Timestamp(i64::MAX))
    }

    /// Every event in `[from, to)`.
    pub fn between(from: Timestamp, to: Timestamp) -> Self {
        Self {
            from,
            to,
            filter: Filter::default(),
            limit: None,
        }
    }

    /// Checks the range.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.to < self.from {
            return Err(StoreError::InvalidQuery("the range ends before it starts"));
        }
        Ok(())
    }

    /// Whether an event is in the range and passes the filter.
    pub fn matches(&self, event: &Event) -> bool {
        event.at >= self.from && event.at < self.to && self.filter.matches(event)
    }
}

/// Conditions on events: each given field must match (all of them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// Only these devices (a rollout wave, a drill-down).
    pub devices: Option<BTreeSet<Eid>>,
    /// Only this activation.
    pub activation: Option<CorrelationId>,
    /// Only this carrier.
    pub carrier: Option<Sym>,
    /// Only this SM-DP+.
    pub smdp: Option<Sym>,
    /// Only this vendor.
    pub vendor: Option<Sym>,
    /// Only this model.
    pub model: Option<Sym>,
    /// Only this firmware.
    pub firmware: Option<Sym>,
    /// Only this group.
    pub group: Option<Sym>,
    /// Only this rollout.
    pub rollout: Option<Sym>,
    /// Only this wave.
    pub wave: Option<u16>,
}

impl Filter {
    /// Whether `event` passes.
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_parts(&event.device, event.activation, &event.dims)
    }

    /// Whether an event (or an activation) with these parts passes.
    pub fn matches_parts(
        &self,
        device: &Eid,
        activation: Option<CorrelationId>,
        d: &crate::dims::Dims,
    ) -> bool {
        fn eq<T: PartialEq>(want: Option<T>, have: Option<T>) -> bool {
            want.is_none() || want == have
        }
        eq(self.activation, activation)
            && eq(self.carrier, d.carrier)
            && eq(self.smdp, d.smdp)
            && eq(self.vendor, d.vendor)
            && eq(self.model, d.model)
            && eq(self.firmware, d.firmware)
            && eq(self.group, d.group)
            && eq(self.rollout, d.rollout)
            && eq(self.wave, d.wave)
            && self.devices.as_ref().is_none_or(|set| set.contains(device))
    }
}

/// How long events are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Age after which events are purged.
    pub keep: Duration,
}

impl Default for Retention {
    /// 90 days: a 30-day SLO window three times over, enough for quarterly
    /// SLA reports.
    fn default() -> Self {
        Self {
            keep: Duration::from_secs(90 * 86_400),
        }
    }
}

impl Retention {
    /// The cutoff to purge before, at `now`.
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        let keep = i64::try_from(self.keep.as_millis()).unwrap_or(i64::MAX);
        Timestamp(now.millis().saturating_sub(keep))
    }
}
