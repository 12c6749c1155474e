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
//!   in [`SESSION_SHARDS`] maps behind their own locks, each with the
//!   expiry times of its sessions still waiting for `authenticateClient`,
//!   so that counting them (every `initiateAuthentication` does) reads only
//!   those and not every session kept;
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

use std::collections::{BTreeMap, HashMap};
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

/// One lock's worth of sessions, and the expiry times of those of them
/// that wait for `authenticateClient` (state [`SessionState::Initiated`]).
#[derive(Default)]
struct SessionShard {
    records: HashMap<TransactionId, Stored<SessionRecord>>,
    /// Expiry time -> number of waiting sessions expiring then. Kept in step
    /// with `records` by every change below.
    waiting: BTreeMap<Timestamp, u32>,
}

impl SessionShard {
    fn get(&self, tid: &TransactionId) -> Option<&Stored<SessionRecord>> {
        self.records.get(tid)
    }

    fn contains_key(&self, tid: &TransactionId) -> bool {
        self.records.contains_key(tid)
    }

    /// Stores `stored` under its transaction id, replacing a record there.
    fn put(&mut self, stored: Stored<SessionRecord>) {
        self.note(&stored.record, true);
        let tid = stored.record.transaction_id.clone();
        if let Some(old) = self.records.insert(tid, stored) {
            self.note(&old.record, false);
        }
    }

    fn remove(&mut self, tid: &TransactionId) {
        if let Some(old) = self.records.remove(tid) {
            self.note(&old.record, false);
        }
    }

    /// Counts `record` in (`add`) or out of the waiting sessions, if it waits.
    fn note(&mut self, record: &SessionRecord, add: bool) {
        if record.state() != SessionState::Initiated {
            return;
        }
        let at = record.expires_at;
        if add {
            *self.waiting.entry(at).or_default() += 1;
        } else if let Some(n) = self.waiting.get_mut(&at) {
            *n -= 1;
            if *n == 0 {
                self.waiting.remove(&at);
            }
        }
    }

    /// Waiting sessions not expired at `now` (an `Initiated` session is
    /// live until its expiry time, inclusive).
    fn waiting_at(&self, now: Timestamp) -> u64 {
        self.waiting.range(now..).map(|(_, n)| u64::from(*n)).sum()
    }
}

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
                .records
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
            pending += lock(shard).waiting_at(now);
            if pending >= up_to {
                return Ok(up_to);
            }
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use ferrosim_ids::CiKeyId;

    use super::*;
    use crate::store::{Changes, CommitStore, SessionWrite};

    fn initiated(n: u8, expires: i64) -> SessionRecord {
        SessionRecord::initiated(
            TransactionId::from_bytes(&[n; 16]).unwrap(),
            [n; 16],
            [2; 16],
            CiKeyId::from_bytes(&[3; 20]).unwrap(),
            Timestamp(1),
            Timestamp(expires),
        )
    }

    async fn write(store: &MemStore, session: SessionWrite) {
        let changes = Changes {
            session: Some(session),
            ..Changes::default()
        };
        store.commit(changes).await.unwrap();
    }

    /// The waiting index follows every change: inserts count, a cancel and
    /// a purge take a session out, a refused insert changes nothing.
    #[tokio::test]
    async fn waiting_sessions_follow_every_change() {
        let store = MemStore::new();
        for n in 0..10 {
            write(
                &store,
                SessionWrite::Insert(initiated(n, 100 + i64::from(n % 3))),
            )
            .await;
        }
        assert_eq!(
            store.pending_sessions(Timestamp(100), 1000).await.unwrap(),
            10
        );
        assert_eq!(
            store.pending_sessions(Timestamp(101), 1000).await.unwrap(),
            6
        );
        assert_eq!(
            store.pending_sessions(Timestamp(102), 1000).await.unwrap(),
            3
        );
        assert_eq!(
            store.pending_sessions(Timestamp(103), 1000).await.unwrap(),
            0
        );

        // A cancelled session no longer waits.
        let tid = TransactionId::from_bytes(&[2; 16]).unwrap();
        let mut stored = store.session(&tid).await.unwrap().unwrap();
        stored.record.cancel(Timestamp(50));
        let expected = stored.version;
        write(
            &store,
            SessionWrite::Update {
                expected,
                record: stored.record,
            },
        )
        .await;
        assert_eq!(
            store.pending_sessions(Timestamp(100), 1000).await.unwrap(),
            9
        );
        assert_eq!(
            store.pending_sessions(Timestamp(102), 1000).await.unwrap(),
            2
        );

        // A second insert of a transaction id is refused and counts nothing.
        let again = Changes {
            session: Some(SessionWrite::Insert(initiated(3, 500))),
            ..Changes::default()
        };
        assert!(store.commit(again).await.is_err());
        assert_eq!(
            store.pending_sessions(Timestamp(103), 1000).await.unwrap(),
            0
        );

        // The purge removes the expired waiting ones and the index with them.
        assert_eq!(
            store
                .purge_sessions(Timestamp(101), Timestamp(0), 1000)
                .await
                .unwrap(),
            4
        );
        assert_eq!(store.pending_sessions(Timestamp(0), 1000).await.unwrap(), 5);
        assert_eq!(store.pending_sessions(Timestamp(0), 3).await.unwrap(), 3);
    }
}
