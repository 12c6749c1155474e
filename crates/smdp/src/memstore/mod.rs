//! [`MemStore`]: every store trait of the SM-DP+ in memory, for unit tests
//! of the ES9+/ES2+ logic and for the simulator, which runs a million
//! devices against one SM-DP+ in one process.
//!
//! It keeps the same rules as the SQL stores (the store suite of
//! `ferrosim-store` runs against all three): versions checked on commit,
//! unique ICCIDs, transaction ids, matching ids and operator tokens, a
//! profile type per operator, all-or-nothing commits and imports, and
//! profile revocations with the ICCID reuse policy enforced at import.
//!
//! Layout, for many concurrent callers and many records:
//! - sessions, the hottest records (every ES9+ step reads and writes one),
//!   in [`SESSION_SHARDS`] maps behind their own locks;
//! - profiles in one map with the indexes the selectors need (matching id,
//!   released orders per EID, available profiles per type, open orders by
//!   expiry), maintained on every write, so no lookup scans;
//! - the outbox and the ES2+ call slots behind one lock. Unlike the SQL
//!   stores, which keep delivered callbacks for audit, it forgets a callback
//!   once delivered.
//!
//! A commit takes its locks in one order (session shard, profiles, outbox),
//! checks everything, then applies everything, so it is atomic for every
//! reader and never deadlocks. Nothing survives the process.

mod catalog;
mod commit;
mod end_of_life;
mod outbox;
mod profiles;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::ids::TransactionId;
use crate::session::{SessionRecord, SessionState};
use crate::store::{SessionStore, StepLoadStore, StoreResult, Version, Versioned};
use crate::time::Timestamp;

use catalog::Catalog;
use outbox::Outbox;
use profiles::ProfileTable;

/// Number of independently locked session maps.
pub const SESSION_SHARDS: usize = 32;

/// The SM-DP+ store in memory. Cheap to clone: clones share the data.
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore").finish_non_exhaustive()
    }
}

struct Inner {
    catalog: RwLock<Catalog>,
    profiles: RwLock<ProfileTable>,
    sessions: Box<[Mutex<SessionShard>]>,
    shard_of: RandomState,
    outbox: Mutex<Outbox>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            catalog: RwLock::default(),
            profiles: RwLock::default(),
            sessions: (0..SESSION_SHARDS)
                .map(|_| Mutex::default())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            shard_of: RandomState::new(),
            outbox: Mutex::default(),
        }
    }
}

/// One lock's worth of sessions.
type SessionShard = HashMap<TransactionId, Stored<SessionRecord>>;

/// A record and its version.
#[derive(Debug, Clone)]
struct Stored<T> {
    record: T,
    version: Version,
}

impl<T: Clone> Stored<T> {
    fn versioned(&self) -> Versioned<T> {
        Versioned::new(self.record.clone(), self.version)
    }
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn session_shard(&self, tid: &TransactionId) -> MutexGuard<'_, SessionShard> {
        let i = (self.inner.shard_of.hash_one(tid) as usize) % self.inner.sessions.len();
        lock(&self.inner.sessions[i])
    }

    fn profiles_read(&self) -> RwLockReadGuard<'_, ProfileTable> {
        self.inner
            .profiles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn profiles_write(&self) -> RwLockWriteGuard<'_, ProfileTable> {
        self.inner
            .profiles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        lock(&self.inner.outbox)
    }
}

/// Locks, carrying on after a panic elsewhere: every change is checked
/// before it is applied, so a panicking holder cannot leave half a change.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Record by record: each load is a lookup in memory.
impl StepLoadStore for MemStore {}

impl SessionStore for MemStore {
    async fn session(&self, tid: &TransactionId) -> StoreResult<Option<Versioned<SessionRecord>>> {
        Ok(self.session_shard(tid).get(tid).map(Stored::versioned))
    }

    async fn purge_sessions(
        &self,
        now: Timestamp,
        ended_before: Timestamp,
        limit: u32,
    ) -> StoreResult<u64> {
        let mut purged = 0u64;
        for shard in &self.inner.sessions {
            let mut shard = lock(shard);
            let mut doomed: Vec<TransactionId> = shard
                .iter()
                .filter(|(_, s)| {
                    let r = &s.record;
                    if r.state() == SessionState::Initiated {
                        r.expires_at < now
                    } else {
                        r.expires_at < ended_before
                    }
                })
                .map(|(tid, _)| tid.clone())
                .collect();
            doomed.truncate(usize::try_from(u64::from(limit) - purged).unwrap_or(usize::MAX));
            for tid in doomed {
                shard.remove(&tid);
                purged += 1;
            }
            if purged >= u64::from(limit) {
                break;
            }
        }
        Ok(purged)
    }

    async fn pending_sessions(&self, now: Timestamp, up_to: u64) -> StoreResult<u64> {
        let mut pending = 0u64;
        for shard in &self.inner.sessions {
            pending += lock(shard)
                .values()
                .filter(|s| s.record.state() == SessionState::Initiated && s.record.is_live(now))
                .count() as u64;
            if pending >= up_to {
                return Ok(up_to);
            }
        }
        Ok(pending)
    }
}
