//! What the eIM needs from persistence: read a device, its results and
//! notifications; commit a step's changes atomically, compare-and-set.
//!
//! A step of the eIM (see [`crate::steps`]) is a pure function over the
//! records it is given, with their [`Version`]s. Its driver loads them, runs
//! the step (EC signing and verification happen there, outside any
//! transaction) and commits the [`EimChanges`] it returned. The commit writes
//! nothing if the device record changed since it was read
//! ([`StoreError::Stale`]); the driver then runs the step again on the fresh
//! record. That is what keeps counters strictly increasing and unique with
//! several instances on one database, and a result from being stored twice.
//!
//! Implementations: [`crate::mem::MemEimStore`] here; the SQLite and
//! PostgreSQL stores of `ferrosim-store` follow, and all of them must pass
//! [`crate::suite`].

use std::future::Future;

use thiserror::Error;

use crate::ids::{Counter, Eid, EimTransactionId, TransactionId};
use crate::record::{DeviceRecord, NotificationRecord, ResultRecord};

/// A persistence failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was violated: a device inserted twice, a second
    /// result for an item.
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

/// How many times a record was rewritten: what a commit compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version(u64);

impl Version {
    /// The version of a record as first inserted.
    pub const INITIAL: Version = Version(0);

    /// A version read back from storage.
    pub fn new(n: u64) -> Self {
        Self(n)
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The version after one more write.
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// A record as loaded, with the version a commit must find unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The record.
    pub record: T,
    /// Its version when read.
    pub version: Version,
}

/// A device record a step creates or rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceWrite {
    /// A new association ([`StoreError::Conflict`] if the EID has one).
    Insert(DeviceRecord),
    /// The record as it must be now, if it is still at `expected`.
    Update {
        /// The version the step read.
        expected: Version,
        /// The new record (same EID).
        record: DeviceRecord,
    },
}

/// Everything one step writes, all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EimChanges {
    /// The device record created or changed.
    pub device: Option<DeviceWrite>,
    /// Results to store; each (EID, item) at most once
    /// ([`StoreError::Conflict`] otherwise).
    pub results: Vec<ResultRecord>,
    /// Notifications to keep; one already stored (same EID and sequence
    /// number) is left as it is.
    pub notifications: Vec<NotificationRecord>,
}

impl EimChanges {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.device.is_none() && self.results.is_empty() && self.notifications.is_empty()
    }
}

/// An indirect download the eIM relays: which SM-DP+ its ES9+ transaction
/// id belongs to (so any eIM instance can relay its later steps) and, when
/// known, the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySession {
    /// The SM-DP+'s transaction id (upper-case hex as ES9+ carries it).
    pub transaction_id: TransactionId,
    /// The SM-DP+ (`host[:port]`).
    pub smdp_address: String,
    /// The device, when the eIM knows it.
    pub eid: Option<Eid>,
    /// When the session was opened.
    pub created_at: crate::ids::Timestamp,
}

/// The eIM's store.
pub trait EimStore: Send + Sync + 'static {
    /// One device, with its version.
    fn device(
        &self,
        eid: &Eid,
    ) -> impl Future<Output = StoreResult<Option<Versioned<DeviceRecord>>>> + Send;

    /// The device with an open item (or a possible rollback, see
    /// [`DeviceRecord::transaction_ids`]) carrying this eIM transaction id
    /// (how a result without an EID finds its device).
    fn device_by_transaction(
        &self,
        transaction_id: &EimTransactionId,
    ) -> impl Future<Output = StoreResult<Option<Eid>>> + Send;

    /// Up to `limit` associated EIDs in ascending order, after `after`.
    fn devices(
        &self,
        after: Option<Eid>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Eid>>> + Send;

    /// The stored result of the package with this counter, if any (the
    /// latest package's): never a rollback result, which carries the
    /// counter of the package that enabled with rollbackFlag
    /// ([`crate::ItemKind::Rollback`]).
    fn package_result(
        &self,
        eid: &Eid,
        counter: Counter,
    ) -> impl Future<Output = StoreResult<Option<ResultRecord>>> + Send;

    /// Every stored result of a device, by item id.
    fn results(&self, eid: &Eid) -> impl Future<Output = StoreResult<Vec<ResultRecord>>> + Send;

    /// Every stored notification of a device, by sequence number.
    fn notifications(
        &self,
        eid: &Eid,
    ) -> impl Future<Output = StoreResult<Vec<NotificationRecord>>> + Send;

    /// Keeps a relayed download session (replacing one with the same
    /// transaction id).
    fn put_relay_session(
        &self,
        session: &RelaySession,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The relayed download session with this ES9+ transaction id.
    fn relay_session(
        &self,
        transaction_id: &TransactionId,
    ) -> impl Future<Output = StoreResult<Option<RelaySession>>> + Send;

    /// Writes `changes` in one transaction: the device record must still be
    /// at its expected version (then it moves to the next one), an inserted
    /// device must not exist, no result may exist for its item yet.
    /// Otherwise nothing is written ([`StoreError::Stale`] for a changed or
    /// missing record, [`StoreError::Conflict`] for a uniqueness rule). Empty
    /// changes succeed without touching the database.
    fn commit(&self, changes: EimChanges) -> impl Future<Output = StoreResult<()>> + Send;
}
