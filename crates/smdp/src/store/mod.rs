//! What the SM-DP+ needs from persistence: one trait per domain, and one
//! atomic, version-checked commit.
//!
//! The logic in this crate never talks to a database. A function of the
//! SM-DP+ is a pure step over records (see [`crate::es9`], [`crate::es2`]):
//! its driver *loads* the records it needs with their [`Version`], runs the
//! step (all checks, signatures, key agreement and package building happen
//! here, outside any transaction), and *commits* the [`Changes`] the step
//! returned. A commit is one short transaction that only checks that each
//! record it rewrites still has the version that was read (compare-and-set)
//! and writes; if one changed meanwhile, nothing is written and the commit
//! fails with [`StoreError::Stale`], and the driver runs the step again on
//! fresh records (which then gives the right answer for the new state, e.g.
//! a session that moved on, or an order another session took). So no store
//! transaction waits on EC work, and no lost race can issue a profile twice.
//!
//! Domains (each a trait; the next issues add eIM, fleet and telemetry
//! stores beside them):
//! - [`CatalogStore`]: operators and profile types.
//! - [`ProfileStore`]: profiles and the orders on them.
//! - [`SessionStore`]: ES9+ download sessions.
//! - [`OutboxStore`]: the ES2+ callback outbox and ES2+ call slots.
//! - [`StepLoadStore`]: the loads of an ES9+ step asked for together (one
//!   round trip where the store can), with record-by-record defaults.
//! - [`CommitStore`]: the one write path of versioned records, which spans
//!   sessions, profiles, callbacks and notifications in one transaction.
//!
//! [`Store`] is all of them; `ferrosim-store` implements it with sqlx on
//! SQLite and PostgreSQL, [`crate::memstore::MemStore`] in memory.

mod catalog;
mod commit;
mod end_of_life;
mod outbox;
mod profiles;
mod sessions;
mod step_loads;

use thiserror::Error;

pub use catalog::{CatalogStore, Operator, ProfileTypeRecord};
pub use commit::{Changes, CommitStore, ProfileWrite, SessionWrite};
pub use end_of_life::EndOfLifeStore;
pub use outbox::{CallSlot, CallbackRecord, NotificationRecord, OutboxStore};
pub use profiles::{NewProfile, ProfileFilter, ProfileSelector, ProfileStore};
pub use sessions::SessionStore;
pub use step_loads::{StepLoadStore, StepRecords};

/// A persistence failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (duplicate ICCID, matching id in use...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record changed since it was read: the commit wrote nothing and the
    /// step should run again on fresh records.
    #[error("a record changed since it was read")]
    Stale,
    /// Stored data could not be read back (corruption or a newer schema).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Backend(String),
}

/// Result alias of store methods.
pub type StoreResult<T> = Result<T, StoreError>;

/// How many times a record was rewritten since it was created: what a
/// commit compares to detect a concurrent change.
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
    /// Its version when it was read.
    pub version: Version,
}

impl<T> Versioned<T> {
    /// Pairs a record with its version.
    pub fn new(record: T, version: Version) -> Self {
        Self { record, version }
    }
}

/// Every store the SM-DP+ uses: what [`crate::Smdp`] runs on.
pub trait Store:
    CatalogStore + ProfileStore + SessionStore + StepLoadStore + OutboxStore + CommitStore
{
}

impl<T> Store for T where
    T: CatalogStore + ProfileStore + SessionStore + StepLoadStore + OutboxStore + CommitStore
{
}
