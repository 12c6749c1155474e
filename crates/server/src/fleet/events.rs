//! Where the fleet keeps its telemetry events — device reports, the eIM's
//! results of its actions, the start of each of its activations — and how
//! rollout gates read them back.
//!
//! With a [`FleetEvents`] store (in `serve`: the instance's telemetry store,
//! or the `telemetry_events` table of its database when telemetry is off),
//! each committed change appends its events, and a gate measures its wave
//! and the untouched devices from what the store holds: a restarted
//! instance, or another instance on the same database, sees the outcomes a
//! wave's devices reported before. Without one, the last
//! [`super::FleetOptions::events_kept`] events are kept in memory only.

use std::sync::Arc;
use std::time::Duration;

use ferrosim_telemetry::metrics::MetricsQuery;
use ferrosim_telemetry::{
    Dictionary, Event, EventQuery, Filter, Source, StoreError, TelemetryStore, Timestamp,
};

use crate::telemetry::{DynStore, Telemetry};

/// How far before a gate's window events are read: an activation that
/// started up to this long before the window keeps its true start (and so
/// is not counted as one of the window's).
pub const GATE_LOOKBACK: Duration = Duration::from_secs(3600);

/// A telemetry store the fleet appends its events to and reads its gates
/// from. Cheap to clone.
#[derive(Clone)]
pub struct FleetEvents {
    store: Arc<dyn DynStore>,
    dict: Dictionary,
    retention: Option<Duration>,
}

impl std::fmt::Debug for FleetEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetEvents")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The instance's telemetry store, shared with its writer.
struct Shared(Telemetry);

impl DynStore for Shared {
    fn append<'a>(
        &'a self,
        events: &'a [Event],
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
        self.0.inner.store.append(events)
    }
    fn query<'a>(
        &'a self,
        q: &'a EventQuery,
    ) -> futures::future::BoxFuture<'a, Result<Vec<Event>, StoreError>> {
        self.0.inner.store.query(q)
    }
    fn purge_before(
        &self,
        cutoff: Timestamp,
    ) -> futures::future::BoxFuture<'_, Result<u64, StoreError>> {
        self.0.inner.store.purge_before(cutoff)
    }
}

impl FleetEvents {
    /// Events kept in `store` (named with its dictionary). Nothing purges
    /// them unless [`FleetEvents::purging`] says so.
    pub fn new(store: impl TelemetryStore + 'static) -> Self {
        let dict = TelemetryStore::dictionary(&store).clone();
        Self {
            store: Arc::new(store),
            dict,
            retention: None,
        }
    }

    /// Events kept in the instance's telemetry store (whose writer purges
    /// them with its retention; they show in its metrics and dashboard).
    pub fn shared(telemetry: &Telemetry) -> Self {
        Self {
            dict: telemetry.dictionary().clone(),
            store: Arc::new(Shared(telemetry.clone())),
            retention: None,
        }
    }

    /// The driver also purges events older than `keep` (hourly), for a
    /// store no telemetry writer looks after.
    #[must_use]
    pub fn purging(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// The dictionary the events' dimensions are named with (the fleet
    /// driver interns its names in it).
    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    pub(super) fn retention(&self) -> Option<Duration> {
        self.retention
    }

    pub(super) async fn append(&self, events: &[Event]) -> Result<(), StoreError> {
        self.store.append(events).await
    }

    pub(super) async fn purge_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        self.store.purge_before(cutoff).await
    }

    /// The stored events a gate's `query` is computed over: its devices'
    /// events from [`GATE_LOOKBACK`] before its window up to its `as_of`,
    /// from the fleet, the eIM and the devices (the SM-DP+'s own call
    /// events have activations of their own and are not the fleet's).
    pub(super) async fn for_gate(&self, query: &MetricsQuery) -> Result<Vec<Event>, StoreError> {
        let lookback = i64::try_from(GATE_LOOKBACK.as_millis()).unwrap_or(i64::MAX);
        let q = EventQuery {
            from: Timestamp(query.from.0.saturating_sub(lookback)),
            to: Timestamp(query.as_of.0.saturating_add(1)),
            filter: Filter {
                devices: query.filter.devices.clone(),
                ..Filter::default()
            },
            limit: None,
        };
        let mut events = self.store.query(&q).await?;
        events.retain(|e| e.source != Source::Smdp);
        Ok(events)
    }
}
