//! What the fleet needs from persistence, as a trait: devices with their
//! desired and observed state, rollouts, the engine's own state (counters,
//! token buckets, carrier health, downloads in progress), actions in flight
//! and the decision log.
//!
//! It follows the SM-DP+ store's conventions: records are read with a
//! [`Version`]; one [`FleetStore::commit`] writes a set of changes all or
//! nothing, each rewritten record only if it is still at the version that
//! was read (compare-and-set), else nothing is written and the commit fails
//! with [`StoreError::Stale`]. So two instances can never both decide for
//! the same device: the second commit loses and its driver reloads.
//!
//! [`MemFleetStore`] keeps everything in memory (tests, the simulator);
//! SQL stores implement the same trait in `ferrosim-store` and run the same
//! [`suite`]. [`save`] and [`load`] move a whole [`Fleet`] in and out.

mod mem;
pub mod suite;

use std::future::Future;

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_telemetry::Dictionary;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::action::{Action, ActionId};
use crate::catalog::CarrierId;
use crate::config::FleetConfig;
use crate::decision::Decision;
use crate::device::DeviceState;
use crate::engine::{Fleet, PendingDownload, RegionHealth, Snapshot};
use crate::limit::TokenBucket;
use crate::rollout::Rollout;

pub use mem::MemFleetStore;

/// A persistence failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (a device or rollout inserted twice).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record changed since it was read: nothing was written.
    #[error("a record changed since it was read")]
    Stale,
    /// Stored data could not be read back.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result alias of store methods.
pub type StoreResult<T> = Result<T, StoreError>;

/// How many times a record was rewritten since it was created.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version(pub u64);

impl Version {
    /// The version after one more write.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// A record as loaded, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The record.
    pub record: T,
    /// Its version when read.
    pub version: Version,
}

/// The engine's state besides devices, rollouts and actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// When it was written.
    pub taken_at: Timestamp,
    /// The configuration the stored ids refer to.
    pub config: FleetConfig,
    /// Vendor/model/firmware names.
    pub names: Vec<String>,
    /// Downloads in progress.
    pub downloads: Vec<(Eid, PendingDownload)>,
    /// Carrier health per region.
    pub regions: Vec<(CarrierId, u16, RegionHealth)>,
    /// Fleet-wide declared outages.
    pub declared_everywhere: Vec<Option<Timestamp>>,
    /// Ends of fleet-wide outages.
    pub healthy_everywhere_since: Vec<Timestamp>,
    /// ES2+ buckets.
    pub es2_buckets: Vec<TokenBucket>,
    /// Download buckets.
    pub smdp_buckets: Vec<TokenBucket>,
    /// Switch buckets.
    pub switch_buckets: Vec<TokenBucket>,
    /// Id counters: action, decision, rollout, activation.
    pub counters: (u64, u64, u32, u64),
    /// The eIM queue items carrying in-flight actions (action, item id),
    /// kept by the driver that queued them so that after a restart it
    /// collects their results instead of queuing them again.
    #[serde(default)]
    pub eim_items: Vec<(ActionId, u64)>,
}

/// A record written by a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<T> {
    /// New ([`StoreError::Conflict`] if it exists).
    Insert(T),
    /// Replaces the stored record if it is still at `expected`.
    Update {
        /// The version read.
        expected: Version,
        /// The new record.
        record: T,
    },
}

/// Everything one commit writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetChanges {
    /// Devices.
    pub devices: Vec<Write<DeviceState>>,
    /// Rollouts.
    pub rollouts: Vec<Write<Rollout>>,
    /// The engine state (`None` expected version: first write).
    pub engine: Option<(Option<Version>, EngineState)>,
    /// Actions issued.
    pub issued: Vec<Action>,
    /// Actions answered (removed from the in-flight set).
    pub answered: Vec<ActionId>,
    /// Decision records to append (their `seq` must be new).
    pub decisions: Vec<Decision>,
}

/// Which decisions to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionQuery {
    /// Only about this device.
    pub device: Option<Eid>,
    /// Only about this rollout.
    pub rollout: Option<u32>,
    /// Only with `seq` above this.
    pub after_seq: u64,
    /// At most this many (oldest first); 0 means no limit.
    pub limit: u32,
}

/// Where delivery of operator webhooks to one endpoint stands, shared by
/// every instance on the database (the decision log is the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookCursor {
    /// The endpoint's name.
    pub endpoint: String,
    /// The last decision sequence number the endpoint acknowledged (2xx).
    pub delivered_seq: u64,
    /// Failed attempts since the last success (drives the backoff).
    pub failures: u32,
    /// No attempt before this time (ms since the Unix epoch).
    pub next_attempt_ms: i64,
    /// The instance holding the delivery lease, if any.
    pub holder: Option<String>,
    /// The lease ends at this time (ms since the Unix epoch).
    pub lease_until_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Persistence of the fleet.
pub trait FleetStore: Send + Sync + 'static {
    /// One device.
    fn device(
        &self,
        eid: &Eid,
    ) -> impl Future<Output = StoreResult<Option<Versioned<DeviceState>>>> + Send;
    /// Devices in EID order after `after`, at most `limit` (paging).
    fn devices(
        &self,
        after: Option<Eid>,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Versioned<DeviceState>>>> + Send;
    /// One rollout.
    fn rollout(
        &self,
        id: u32,
    ) -> impl Future<Output = StoreResult<Option<Versioned<Rollout>>>> + Send;
    /// Every rollout, by id.
    fn rollouts(&self) -> impl Future<Output = StoreResult<Vec<Versioned<Rollout>>>> + Send;
    /// The engine state.
    fn engine(&self) -> impl Future<Output = StoreResult<Option<Versioned<EngineState>>>> + Send;
    /// Actions issued and not yet answered, by id.
    fn in_flight(&self) -> impl Future<Output = StoreResult<Vec<Action>>> + Send;
    /// Decision records matching `query`, by sequence number.
    fn decisions(
        &self,
        query: &DecisionQuery,
    ) -> impl Future<Output = StoreResult<Vec<Decision>>> + Send;
    /// Writes `changes` atomically (see the module documentation).
    fn commit(&self, changes: FleetChanges) -> impl Future<Output = StoreResult<()>> + Send;
    /// Claims delivery to webhook `endpoint` for `holder` until
    /// `now_ms + lease_ms`, atomically: granted (the cursor returned, a new
    /// endpoint starting at 0) when no attempt is due later than `now_ms`
    /// and the lease is free, expired or already `holder`'s; else `None`.
    /// So one instance at a time sends an endpoint's events.
    fn claim_webhook(
        &self,
        endpoint: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = StoreResult<Option<WebhookCursor>>> + Send;
    /// Records that `endpoint` acknowledged decision `seq`: moves the
    /// cursor on, clears the failures and extends the lease to
    /// `now_ms + lease_ms`, only while `holder` holds the claim (and `seq`
    /// is past the cursor). `false`: the claim was lost, nothing written.
    fn webhook_delivered(
        &self,
        endpoint: &str,
        holder: &str,
        seq: u64,
        now_ms: i64,
        lease_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Records a failed attempt by `holder`: one more failure, no attempt
    /// before `next_attempt_ms`, the lease released (any instance may
    /// retry then). `false`: the claim was lost, nothing written.
    fn webhook_failed(
        &self,
        endpoint: &str,
        holder: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Gives `holder`'s claim on `endpoint` up (an instance stopping), so
    /// another instance need not wait for the lease to run out.
    fn release_webhook(
        &self,
        endpoint: &str,
        holder: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Every endpoint's cursor, by name.
    fn webhook_cursors(&self) -> impl Future<Output = StoreResult<Vec<WebhookCursor>>> + Send;
}

/// Writes a whole fleet: every device, rollout and in-flight action and
/// the engine state, against the versions stored now (a first save inserts).
/// Decisions are not part of it: drivers append them as they drain them.
pub async fn save(store: &impl FleetStore, fleet: &Fleet, now: Timestamp) -> StoreResult<()> {
    let snap = fleet.snapshot(now);
    let mut changes = FleetChanges::default();
    for d in snap.devices {
        changes.devices.push(match store.device(&d.eid).await? {
            Some(v) => Write::Update {
                expected: v.version,
                record: d,
            },
            None => Write::Insert(d),
        });
    }
    for r in snap.rollouts {
        changes.rollouts.push(match store.rollout(r.id).await? {
            Some(v) => Write::Update {
                expected: v.version,
                record: r,
            },
            None => Write::Insert(r),
        });
    }
    let stored: Vec<ActionId> = store.in_flight().await?.iter().map(|a| a.id).collect();
    let current: Vec<ActionId> = snap.in_flight.iter().map(|a| a.id).collect();
    changes.answered = stored
        .iter()
        .filter(|id| !current.contains(id))
        .copied()
        .collect();
    changes.issued = snap
        .in_flight
        .into_iter()
        .filter(|a| !stored.contains(&a.id))
        .collect();
    let expected = store.engine().await?.map(|v| v.version);
    changes.engine = Some((
        expected,
        EngineState {
            taken_at: snap.taken_at,
            config: snap.config,
            names: snap.names,
            downloads: snap.downloads,
            regions: snap.regions,
            declared_everywhere: snap.declared_everywhere,
            healthy_everywhere_since: snap.healthy_everywhere_since,
            es2_buckets: snap.es2_buckets,
            smdp_buckets: snap.smdp_buckets,
            switch_buckets: snap.switch_buckets,
            counters: (
                snap.next_action,
                snap.next_decision,
                snap.next_rollout,
                snap.next_activation,
            ),
            eim_items: Vec::new(),
        },
    ));
    store.commit(changes).await
}

/// Reads a whole fleet back and restores it at `now` (see
/// [`Fleet::restore`]); `None` when nothing was saved.
pub async fn load(
    store: &impl FleetStore,
    dict: Dictionary,
    now: Timestamp,
) -> Result<Option<Fleet>, LoadError> {
    let Some(engine) = store.engine().await? else {
        return Ok(None);
    };
    let e = engine.record;
    let mut devices = Vec::new();
    let mut after = None;
    loop {
        let page = store.devices(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.record.eid);
        devices.extend(page.into_iter().map(|v| v.record));
    }
    let snapshot = Snapshot {
        taken_at: e.taken_at,
        config: e.config,
        names: e.names,
        devices,
        downloads: e.downloads,
        in_flight: store.in_flight().await?,
        regions: e.regions,
        declared_everywhere: e.declared_everywhere,
        healthy_everywhere_since: e.healthy_everywhere_since,
        rollouts: store
            .rollouts()
            .await?
            .into_iter()
            .map(|v| v.record)
            .collect(),
        es2_buckets: e.es2_buckets,
        smdp_buckets: e.smdp_buckets,
        switch_buckets: e.switch_buckets,
        next_action: e.counters.0,
        next_decision: e.counters.1,
        next_rollout: e.counters.2,
        next_activation: e.counters.3,
    };
    Ok(Some(Fleet::restore(snapshot, dict, now)?))
}

/// Why [`load`] failed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What it held does not make a fleet.
    #[error(transparent)]
    Restore(#[from] crate::error::FleetError),
}
