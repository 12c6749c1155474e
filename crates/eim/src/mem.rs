//! [`MemEimStore`]: the eIM store in memory, for unit tests and the
//! simulator. It keeps the rules of the SQL stores ([`crate::suite`] runs on
//! all of them): versions checked on commit, one association per EID, one
//! result per item, all-or-nothing commits. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::{Counter, Eid, EimTransactionId, TransactionId};
use crate::record::{DeviceRecord, ItemKind, NotificationRecord, ResultRecord};
use crate::store::{
    DeviceWrite, EimChanges, EimStore, RelaySession, StoreError, StoreResult, Version, Versioned,
};

/// The eIM store in memory. Cheap to clone: clones share the data.
#[derive(Clone, Default)]
pub struct MemEimStore {
    tables: Arc<Mutex<Tables>>,
}

impl std::fmt::Debug for MemEimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemEimStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Tables {
    /// Records boxed: a B-tree node then holds keys and pointers, so
    /// lookups touch less memory and an insert shifts pointers, not records.
    devices: BTreeMap<Eid, Box<(DeviceRecord, Version)>>,
    /// Open items' eIM transaction ids -> device.
    transactions: HashMap<EimTransactionId, Eid>,
    results: BTreeMap<(Eid, u64), ResultRecord>,
    /// (device, counter) -> item id of its stored result.
    counters: HashMap<(Eid, u32), u64>,
    notifications: BTreeMap<(Eid, i64), NotificationRecord>,
    relay_sessions: HashMap<TransactionId, RelaySession>,
}

impl MemEimStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a half-applied commit:
        // commits check everything before they change anything.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EimStore for MemEimStore {
    async fn device(&self, eid: &Eid) -> StoreResult<Option<Versioned<DeviceRecord>>> {
        Ok(self.tables().devices.get(eid).map(|entry| Versioned {
            record: entry.0.clone(),
            version: entry.1,
        }))
    }

    async fn device_by_transaction(
        &self,
        transaction_id: &EimTransactionId,
    ) -> StoreResult<Option<Eid>> {
        Ok(self.tables().transactions.get(transaction_id).copied())
    }

    async fn devices(&self, after: Option<Eid>, limit: usize) -> StoreResult<Vec<Eid>> {
        let tables = self.tables();
        let keys = tables.devices.keys().copied();
        Ok(match after {
            Some(after) => keys.filter(|e| *e > after).take(limit).collect(),
            None => keys.take(limit).collect(),
        })
    }

    async fn package_result(
        &self,
        eid: &Eid,
        counter: Counter,
    ) -> StoreResult<Option<ResultRecord>> {
        let tables = self.tables();
        Ok(tables
            .counters
            .get(&(*eid, counter.get()))
            .and_then(|item| tables.results.get(&(*eid, *item)))
            .cloned())
    }

    async fn results(&self, eid: &Eid) -> StoreResult<Vec<ResultRecord>> {
        Ok(self
            .tables()
            .results
            .range((*eid, 0)..=(*eid, u64::MAX))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn notifications(&self, eid: &Eid) -> StoreResult<Vec<NotificationRecord>> {
        Ok(self
            .tables()
            .notifications
            .range((*eid, i64::MIN)..=(*eid, i64::MAX))
            .map(|(_, n)| n.clone())
            .collect())
    }

    async fn put_relay_session(&self, session: &RelaySession) -> StoreResult<()> {
        self.tables()
            .relay_sessions
            .insert(session.transaction_id.clone(), session.clone());
        Ok(())
    }

    async fn relay_session(
        &self,
        transaction_id: &TransactionId,
    ) -> StoreResult<Option<RelaySession>> {
        Ok(self.tables().relay_sessions.get(transaction_id).cloned())
    }

    async fn commit(&self, changes: EimChanges) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tables = self.tables();
        // Check everything first.
        match &changes.device {
            Some(DeviceWrite::Insert(record)) if tables.devices.contains_key(&record.eid) => {
                return Err(StoreError::Conflict(format!(
                    "EID {} is associated",
                    record.eid
                )));
            }
            Some(DeviceWrite::Update { expected, record }) => match tables.devices.get(&record.eid)
            {
                Some(entry) if entry.1 == *expected => {}
                _ => return Err(StoreError::Stale),
            },
            _ => {}
        }
        let mut new_results = std::collections::HashSet::new();
        for result in &changes.results {
            let key = (result.eid, result.item_id);
            if tables.results.contains_key(&key) || !new_results.insert(key) {
                return Err(StoreError::Conflict(format!(
                    "item {} of {} has a result",
                    result.item_id, result.eid
                )));
            }
        }
        // Then apply.
        if let Some(write) = changes.device {
            let (record, version) = match write {
                DeviceWrite::Insert(record) => (record, Version::INITIAL),
                DeviceWrite::Update { expected, record } => (record, expected.next()),
            };
            if let Some(old) = tables.devices.get(&record.eid) {
                let stale: Vec<EimTransactionId> = old.0.transaction_ids().copied().collect();
                for id in stale {
                    tables.transactions.remove(&id);
                }
            }
            for tid in record.transaction_ids() {
                tables.transactions.insert(*tid, record.eid);
            }
            tables
                .devices
                .insert(record.eid, Box::new((record, version)));
        }
        for result in changes.results {
            if let Some(counter) = result.counter
                && result.kind != ItemKind::Rollback
            {
                tables
                    .counters
                    .insert((result.eid, counter.get()), result.item_id);
            }
            tables.results.insert((result.eid, result.item_id), result);
        }
        for notification in changes.notifications {
            tables
                .notifications
                .entry((notification.eid, notification.seq_number))
                .or_insert(notification);
        }
        Ok(())
    }
}
