//! Persistence of ferrosim with sqlx: SQLite (the embedded default) and
//! PostgreSQL (several stateless instances on one database).
//!
//! One implementation serves both backends through sqlx's `Any` driver: the
//! SQL is shared, and the few places where the backends differ (row locks,
//! how a write transaction begins) ask [`Backend`]. Each backend has its own
//! migrations (`migrations/sqlite`, `migrations/postgres`), applied on
//! connect.
//!
//! Durability: SQLite runs in WAL mode with `synchronous=FULL` by default, so
//! a committed change survives a crash of the process or of the machine;
//! PostgreSQL commits are durable by its own configuration. Every state change
//! is one short transaction that only checks versions and writes (see
//! `ferrosim_smdp::store`): no row lock is held while the SM-DP+ signs.
//!
//! Throughput: SQLite has one writer at a time; its write transactions run
//! in one task and commit in groups (module `group_commit`): one `BEGIN`,
//! `COMMIT` and fsync for all the transactions that arrived together, each
//! caller answered after the commit, a failed transaction rolled back alone.
//! On a SQLite file the step commits and the outbox's leases run, a group at
//! a time, on a writer thread with a connection of its own (module
//! `lite_writer`) while that task holds sqlx's single writer connection, so
//! the two never write at once.
//!
//! The audit trail (`ferrosim-audit`) is in the same database too:
//! [`SqlStore`] is a [`ferrosim_audit::AuditLog`].
//!
//! Activation telemetry (`ferrosim-telemetry` events) has the same schema:
//! [`SqlStore::telemetry`] gives the [`SqlTelemetryStore`] of a database. On
//! SQLite `ferrosim serve` keeps the events in a database of their own
//! ([`telemetry_database_url`]), so that their appends never queue in the
//! SM-DP+'s single writer.
//!
//! Fleet control (`ferrosim-fleet`) too: [`SqlStore::fleet`] gives the
//! [`SqlFleetStore`] (versioned compare-and-set commits).

mod admin_lists;
mod api_tokens;
mod audit;
mod callbacks;
mod calls;
mod commit;
mod connect;
mod eim;
mod fleet;
mod group_commit;
mod health;
mod iccid_reuse;
mod imsi_uniqueness;
mod lite_writer;
mod lookups;
mod operator_admin;
mod operator_tokens;
mod operators;
mod order_history;
mod personalisation;
mod profile_type_admin;
mod profile_update;
mod profiles;
mod readers;
mod revocations;
mod rows;
pub mod sealed_personalisation;
mod secrets_at_rest;
mod secrets_keys;
mod secrets_purge;
mod sessions;
mod settings;
mod smdp_store;
mod step_loads;
mod telemetry;
mod writes;

pub use admin_lists::{
    CallbackEntry, CallbackQuery, CallbackStatus, ListError, MAX_PAGE, NotificationEntry,
    NotificationQuery, OrderQuery,
};
pub use api_tokens::ApiTokenRow;
pub use connect::{Backend, Durability, StoreOptions};
/// The in-memory store of every SM-DP+ store trait, beside the SQL one.
pub use ferrosim_smdp::memstore::MemStore;
pub use fleet::SqlFleetStore;
pub use health::{IntegrityCheck, READY_TIMEOUT};
pub use operator_tokens::{DEFAULT_TOKEN, OperatorToken};
pub use order_history::{OrderEvent, OrderHistory};
pub use profile_type_admin::{ProfileTypeSummary, ProfileTypeVersion};
pub use secrets_at_rest::ResealReport;
pub use secrets_keys::{DataKeyInfo, SecretsCensus};
pub use telemetry::{SqlTelemetryStore, telemetry_database_url};

use sqlx::AnyPool;

/// The sqlx-backed store. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct SqlStore {
    /// Writes (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// SQLite only: read-only connections, so reads run beside the single
    /// writer instead of queueing behind it (WAL lets readers see every
    /// committed transaction).
    read_pool: Option<AnyPool>,
    /// SQLite only: read-only connections outside sqlx, for the hot reads
    /// of ES9+ steps (run on the caller's thread, without a hand-off).
    readers: Option<std::sync::Arc<readers::Readers>>,
    /// SQLite only: the queue of write transactions that commit in groups.
    writer: Option<group_commit::WriteQueue>,
    backend: Backend,
    /// With a key-encryption key: profile secrets sealed at rest.
    at_rest: Option<std::sync::Arc<secrets_at_rest::AtRest>>,
}

impl SqlStore {
    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying (writer) pool, for maintenance tasks and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for reads that need no lock.
    pub(crate) fn reader(&self) -> &AnyPool {
        self.read_pool.as_ref().unwrap_or(&self.pool)
    }

    /// Runs a hot read (the loads of an ES9+ step) and gives its first row
    /// to `parse`: on SQLite on a hot reader, on this thread (see
    /// [`readers`]), else on [`SqlStore::reader`]'s pool. `sql` is one
    /// statement with placeholders `$1..$n`, each taking its value from
    /// `vals` by number.
    pub(crate) async fn hot_first<T>(
        &self,
        sql: String,
        vals: Vec<writes::Val>,
        parse: impl FnOnce(&readers::HotRow<'_>) -> Result<T, ferrosim_smdp::store::StoreError>,
    ) -> Result<Option<T>, ferrosim_smdp::store::StoreError> {
        if let Some(r) = &self.readers {
            return r.read(|s| s.first(&sql, &vals, parse));
        }
        let row = writes::bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), vals)
            .fetch_optional(self.reader())
            .await
            .map_err(rows::backend_err)?;
        row.as_ref()
            .map(|r| parse(&readers::HotRow::Any(r)))
            .transpose()
    }

    /// Closes every connection (after a checkpoint on SQLite).
    pub async fn close(&self) {
        if let Some(r) = &self.readers {
            r.close();
        }
        // The writer thread's connection is closed here rather than when
        // the last clone of the store is dropped (later, on another thread):
        // once `close` returns, nothing of this store has the file open.
        if let Some(w) = &self.writer {
            w.close().await;
        }
        if self.backend == Backend::Sqlite {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        if let Some(r) = &self.read_pool {
            r.close().await;
        }
        self.pool.close().await;
    }
}
