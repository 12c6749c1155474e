//! The audit trail in the database (tables `audit_log`,
//! `audit_checkpoints`): [`ferrosim_audit::AuditLog`] for [`SqlStore`].
//!
//! An append reads the last entry and inserts the chained batch in one
//! transaction. Appends are serialised so the chain never forks: on SQLite
//! by the single writer, on PostgreSQL by a lock on the table
//! (`SHARE ROW EXCLUSIVE`, which conflicts with itself but not with readers)
//! held until the commit, so instances sharing the database take turns.
//! Batching the records of many requests into one append (the server's
//! `Auditor` does) keeps that turn-taking off the hot path.

use ferrosim_audit::{
    AuditEntry, AuditError, AuditLog, AuditRecord, Checkpoint, GENESIS_HASH, Head,
};
use futures::future::BoxFuture;
use sqlx::any::AnyRow;

use crate::rows::col;
use crate::{Backend, SqlStore};

const COLUMNS: &str = "seq, at, actor, action, subject, details, prev_hash, entry_hash";

fn storage(e: impl std::fmt::Display) -> AuditError {
    AuditError::Storage(e.to_string())
}

fn c<'r, T>(r: &'r AnyRow, name: &str) -> Result<T, AuditError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    col(r, name).map_err(|e| AuditError::Corrupt(e.to_string()))
}

fn hash(bytes: Vec<u8>, what: &str) -> Result<[u8; 32], AuditError> {
    bytes
        .try_into()
        .map_err(|_| AuditError::Corrupt(format!("{what} is not 32 bytes")))
}

fn seq(v: i64) -> Result<u64, AuditError> {
    u64::try_from(v).map_err(|_| AuditError::Corrupt(format!("sequence number {v}")))
}

fn entry(r: &AnyRow) -> Result<AuditEntry, AuditError> {
    Ok(AuditEntry {
        seq: seq(c(r, "seq")?)?,
        at: c(r, "at")?,
        actor: c(r, "actor")?,
        action: c(r, "action")?,
        subject: c(r, "subject")?,
        details: c(r, "details")?,
        prev_hash: hash(c(r, "prev_hash")?, "prev_hash")?,
        hash: hash(c(r, "entry_hash")?, "entry_hash")?,
    })
}

fn db_seq(s: u64) -> Result<i64, AuditError> {
    i64::try_from(s).map_err(|_| AuditError::Storage(format!("sequence number {s} too large")))
}

impl SqlStore {
    async fn audit_append(&self, records: Vec<AuditRecord>) -> Result<Vec<AuditEntry>, AuditError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        self.write(move |conn| {
            Box::pin(async move {
                if backend == Backend::Postgres {
                    sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
                        .execute(&mut *conn)
                        .await
                        .map_err(crate::rows::backend_err)?;
                }
                let last = sqlx::query(
                    "SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut *conn)
                .await
                .map_err(crate::rows::backend_err)?;
                let (last_seq, last_hash) = match last {
                    Some(r) => {
                        let s: i64 = col(&r, "seq")?;
                        let h: Vec<u8> = col(&r, "entry_hash")?;
                        let h: [u8; 32] = h.try_into().map_err(|_| {
                            ferrosim_smdp::store::StoreError::Corrupt(
                                "audit_log entry_hash is not 32 bytes".into(),
                            )
                        })?;
                        (u64::try_from(s).unwrap_or(0), h)
                    }
                    None => (0, GENESIS_HASH),
                };
                let entries = ferrosim_audit::chain(last_seq, last_hash, &records);
                for e in &entries {
                    sqlx::query(
                        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, entry_hash) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(i64::try_from(e.seq).unwrap_or(i64::MAX))
                    .bind(e.at)
                    .bind(e.actor.clone())
                    .bind(e.action.clone())
                    .bind(e.subject.clone())
                    .bind(e.details.clone())
                    .bind(e.prev_hash.to_vec())
                    .bind(e.hash.to_vec())
                    .execute(&mut *conn)
                    .await
                    .map_err(crate::rows::backend_err)?;
                }
                Ok(entries)
            })
        })
        .await
        .map_err(storage)
    }

    async fn audit_entries(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(db_seq(after)?)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.reader())
            .await
            .map_err(storage)?;
        rows.iter().map(entry).collect()
    }

    async fn audit_head(&self) -> Result<Head, AuditError> {
        let r = sqlx::query("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.reader())
            .await
            .map_err(storage)?;
        r.map(|r| {
            Ok((
                seq(c(&r, "seq")?)?,
                hash(c(&r, "entry_hash")?, "entry_hash")?,
            ))
        })
        .transpose()
    }

    async fn audit_add_checkpoint(&self, cp: Checkpoint) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, entry_hash, at, public_key, signature) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        )
        .bind(db_seq(cp.seq)?)
        .bind(cp.hash.to_vec())
        .bind(cp.at)
        .bind(cp.public_key)
        .bind(cp.signature)
        .execute(self.pool())
        .await
        .map_err(storage)?;
        Ok(())
    }

    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, AuditError> {
        let rows = sqlx::query(
            "SELECT seq, entry_hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq",
        )
        .fetch_all(self.reader())
        .await
        .map_err(storage)?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: seq(c(r, "seq")?)?,
                    hash: hash(c(r, "entry_hash")?, "checkpoint hash")?,
                    at: c(r, "at")?,
                    public_key: c(r, "public_key")?,
                    signature: c(r, "signature")?,
                })
            })
            .collect()
    }
}

impl AuditLog for SqlStore {
    fn append(
        &self,
        records: Vec<AuditRecord>,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>> {
        Box::pin(self.audit_append(records))
    }

    fn entries(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<AuditEntry>, AuditError>> {
        Box::pin(self.audit_entries(after, limit))
    }

    fn head(&self) -> BoxFuture<'_, Result<Head, AuditError>> {
        Box::pin(self.audit_head())
    }

    fn add_checkpoint(&self, checkpoint: Checkpoint) -> BoxFuture<'_, Result<(), AuditError>> {
        Box::pin(self.audit_add_checkpoint(checkpoint))
    }

    fn checkpoints(&self) -> BoxFuture<'_, Result<Vec<Checkpoint>, AuditError>> {
        Box::pin(self.audit_checkpoints())
    }
}
