//! Committing a step's changes in memory: check everything, then apply.

use super::{MemStore, Stored};
use crate::store::{Changes, CommitStore, SessionWrite, StoreError, StoreResult, Version};

impl CommitStore for MemStore {
    async fn commit(&self, changes: Changes) -> StoreResult<()> {
        let Changes {
            session,
            profile,
            events,
            notification,
        } = changes;
        // Locks in one order: session shard, profiles, outbox.
        let mut shard = session.as_ref().map(|s| {
            let tid = match s {
                SessionWrite::Insert(r) | SessionWrite::Update { record: r, .. } => {
                    &r.transaction_id
                }
            };
            self.session_shard(tid)
        });
        if let (Some(shard), Some(write)) = (shard.as_deref(), &session) {
            match write {
                SessionWrite::Insert(r) if shard.contains_key(&r.transaction_id) => {
                    return Err(StoreError::Conflict(format!(
                        "transaction id {} exists",
                        r.transaction_id
                    )));
                }
                SessionWrite::Insert(_) => {}
                SessionWrite::Update { expected, record } => {
                    let current = shard.get(&record.transaction_id).map(|s| s.version);
                    if current != Some(*expected) {
                        return Err(StoreError::Stale);
                    }
                }
            }
        }
        let mut profiles = profile.as_ref().map(|_| self.profiles_write());
        if let (Some(table), Some(write)) = (profiles.as_deref(), &profile) {
            table.check(write)?;
        }

        // Everything checked: apply.
        if let (Some(shard), Some(write)) = (shard.as_deref_mut(), session) {
            match write {
                SessionWrite::Insert(record) => {
                    shard.put(Stored {
                        record,
                        version: Version::INITIAL,
                    });
                }
                SessionWrite::Update { record, .. } => {
                    // Checked above: the record is there, at the expected version.
                    if let Some(version) = shard.get(&record.transaction_id).map(|s| s.version) {
                        shard.put(Stored {
                            record,
                            version: version.next(),
                        });
                    }
                }
            }
        }
        if let (Some(table), Some(write)) = (profiles.as_deref_mut(), profile) {
            table.apply(write);
        }
        if !events.is_empty() || notification.is_some() {
            let mut out = self.outbox();
            out.push_events(events);
            if let Some(n) = notification {
                out.push_notification(n);
            }
        }
        Ok(())
    }
}
