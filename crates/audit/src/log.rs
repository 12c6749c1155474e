//! Where the log is kept ([`AuditLog`]), a log in memory, and the
//! operations over any log: verify it page by page, sign a checkpoint.

use std::sync::{Arc, Mutex, PoisonError};

use ferrosim_crypto::KeySource;
use futures::future::BoxFuture;
use thiserror::Error;

use crate::checkpoint::{Checkpoint, CheckpointError, sign_checkpoint};
use crate::entry::{AuditEntry, AuditRecord, GENESIS_HASH, chain};
use crate::verify::{Verifier, VerifyReport};

/// Entries read per page by [`verify_log`](AuditLog::verify).
const PAGE: usize = 1000;

/// The last entry's sequence number and hash (`None`: the log is empty).
pub type Head = Option<(u64, [u8; 32])>;

/// A failure of an audit log.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The storage failed.
    #[error("audit log storage: {0}")]
    Storage(String),
    /// A stored row is unreadable (a hash of the wrong length...).
    #[error("audit log: unreadable entry: {0}")]
    Corrupt(String),
    /// A checkpoint could not be signed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// An append-only, hash-chained log. Appends are atomic (all records of a
/// call or none) and serialised across every process sharing the storage,
/// so the chain never forks.
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Appends `records` in order after the last entry; gives the entries.
    fn append(
        &self,
        records: Vec<AuditRecord>,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>>;

    /// Up to `limit` entries with sequence numbers above `after`, ascending.
    fn entries(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>>;

    /// The last entry's sequence number and hash (`None`: empty).
    fn head(&self) -> BoxFuture<'_, Result<Head, AuditError>>;

    /// Keeps a signed checkpoint.
    fn add_checkpoint(&self, checkpoint: Checkpoint) -> BoxFuture<'_, Result<(), AuditError>>;

    /// Every kept checkpoint, ascending.
    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>>;
}

/// Operations over any [`AuditLog`].
impl dyn AuditLog + '_ {
    /// Verifies the whole log, page by page, against its kept checkpoints
    /// and `more` (kept elsewhere), signed by `expected_key` when given.
    pub async fn verify(
        &self,
        more: Vec<Checkpoint>,
        expected_key: Option<Vec<u8>>,
    ) -> Result<VerifyReport, AuditError> {
        let mut checkpoints = self.checkpoints().await?;
        for c in more {
            if !checkpoints.contains(&c) {
                checkpoints.push(c);
            }
        }
        let mut v = Verifier::new(checkpoints, expected_key);
        let mut after = 0;
        loop {
            let page = self.entries(after, PAGE).await?;
            for e in &page {
                v.push(e);
            }
            match page.last() {
                Some(e) if page.len() == PAGE => after = e.seq,
                _ => break,
            }
        }
        Ok(v.finish())
    }

    /// Signs a checkpoint of the last entry with `key`, keeps it and gives
    /// it (`None` when the log is empty).
    pub async fn checkpoint(
        &self,
        key: &dyn KeySource,
        at: i64,
    ) -> Result<Option<Checkpoint>, AuditError> {
        let Some((seq, hash)) = self.head().await? else {
            return Ok(None);
        };
        let cp = sign_checkpoint(key, seq, hash, at)?;
        self.add_checkpoint(cp.clone()).await?;
        Ok(Some(cp))
    }
}

/// A log in memory (tests, the simulator). Clones share the log.
#[derive(Debug, Clone, Default)]
pub struct MemAuditLog {
    inner: Arc<Mutex<(Vec<AuditEntry>, Vec<Checkpoint>)>>,
}

impl MemAuditLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry (a copy).
    pub fn snapshot(&self) -> Vec<AuditEntry> {
        self.lock().0.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<AuditEntry>, Vec<Checkpoint>)> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AuditLog for MemAuditLog {
    fn append(
        &self,
        records: Vec<AuditRecord>,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>> {
        let mut g = self.lock();
        let (seq, hash) = g.0.last().map_or((0, GENESIS_HASH), |e| (e.seq, e.hash));
        let new = chain(seq, hash, &records);
        g.0.extend(new.iter().cloned());
        Box::pin(async move { Ok(new) })
    }

    fn entries(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>> {
        let out = self
            .lock()
            .0
            .iter()
            .filter(|e| e.seq > after)
            .take(limit)
            .cloned()
            .collect();
        Box::pin(async move { Ok(out) })
    }

    fn head(&self) -> BoxFuture<'_, Result<Head, AuditError>> {
        let h = self.lock().0.last().map(|e| (e.seq, e.hash));
        Box::pin(async move { Ok(h) })
    }

    fn add_checkpoint(&self, checkpoint: Checkpoint) -> BoxFuture<'_, Result<(), AuditError>> {
        self.lock().1.push(checkpoint);
        Box::pin(async move { Ok(()) })
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>> {
        let c = self.lock().1.clone();
        Box::pin(async move { Ok(c) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::entry::Actor;
    use ferrosim_crypto::SoftwareKey;
    use ferrosim_ids::Timestamp;

    #[tokio::test]
    async fn a_memory_log_appends_verifies_and_checkpoints() {
        let mem = MemAuditLog::new();
        let log: &dyn AuditLog = &mem;
        for i in 0..2500 {
            log.append(vec![AuditRecord::new(
                Timestamp(i),
                Actor::system(),
                "t",
                "",
            )])
            .await
            .unwrap();
        }
        let key = SoftwareKey::generate().unwrap();
        let cp = log.checkpoint(&key, 9).await.unwrap().unwrap();
        assert_eq!(cp.seq, 2500);
        let r = log
            .verify(vec![], Some(key.public_key_sec1().to_vec()))
            .await
            .unwrap();
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.entries, r.checkpoints), (2500, 1));
    }
}
