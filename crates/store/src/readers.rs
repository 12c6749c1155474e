//! SQLite: the read-only connections the SM-DP+'s hot reads (the loads of
//! an ES9+ step) run on, used without sqlx's pool.
//!
//! Every SQLite connection of sqlx has a thread of its own, and every
//! command is a hand-off to that thread and back. sqlx's pool adds two more
//! per query: a ping when a connection is taken (`test_before_acquire`) and
//! another when it is given back (in a task spawned for it). For a local
//! file neither is of use, so these readers are plain connections behind
//! async mutexes: one command per query.
//!
//! A query whose caller goes away half-way leaves the connection usable:
//! its thread still runs the command to its end (or stops sending rows) and
//! resets the statement, and the next command queues behind it. A
//! connection whose thread is gone is replaced on its next use.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sqlx::any::{AnyConnectOptions, AnyRow};
use sqlx::{AnyConnection, Connection, Executor};
use tokio::sync::{Mutex, MutexGuard};

use crate::writes::AnyQuery;

/// The read-only connections (at least one).
pub(crate) struct Readers {
    options: AnyConnectOptions,
    /// `None` once closed, or after the connection's thread stopped.
    slots: Box<[Mutex<Option<AnyConnection>>]>,
    /// Where a caller that finds every connection busy queues.
    next: AtomicUsize,
    /// Set by [`Readers::close`]: no connection is opened again.
    closed: AtomicBool,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("connections", &self.slots.len())
            .finish()
    }
}

impl Readers {
    /// Opens `n` (at least one) read-only connections.
    pub(crate) async fn open(options: AnyConnectOptions, n: u32) -> Result<Self, sqlx::Error> {
        let mut slots = Vec::new();
        for _ in 0..n.max(1) {
            slots.push(Mutex::new(Some(connect(&options).await?)));
        }
        Ok(Self {
            options,
            slots: slots.into_boxed_slice(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `query` (one or more statements) and gives every row.
    pub(crate) async fn fetch_all(&self, query: AnyQuery<'_>) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut slot = self.slot().await;
        let conn = self.open_slot(&mut slot).await?;
        let result = query.fetch_all(&mut *conn).await;
        forget_if_broken(&mut slot, &result);
        result
    }

    /// Runs `query` and gives its first row, if any.
    pub(crate) async fn fetch_optional(
        &self,
        query: AnyQuery<'_>,
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        let mut slot = self.slot().await;
        let conn = self.open_slot(&mut slot).await?;
        let result = query.fetch_optional(&mut *conn).await;
        forget_if_broken(&mut slot, &result);
        result
    }

    /// Closes every connection; later queries fail.
    pub(crate) async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }

    /// A free connection, or the next one in turn once it is free.
    async fn slot(&self) -> MutexGuard<'_, Option<AnyConnection>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[i].lock().await
    }

    /// The slot's connection, opened again if its thread had stopped.
    async fn open_slot<'s>(
        &self,
        slot: &'s mut Option<AnyConnection>,
    ) -> Result<&'s mut AnyConnection, sqlx::Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        if slot.is_none() {
            *slot = Some(connect(&self.options).await?);
        }
        slot.as_mut().ok_or(sqlx::Error::PoolClosed)
    }
}

/// A new read-only connection.
async fn connect(options: &AnyConnectOptions) -> Result<AnyConnection, sqlx::Error> {
    let mut conn = AnyConnection::connect_with(options).await?;
    conn.execute("PRAGMA query_only = ON").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    Ok(conn)
}

/// After a failure that is not the database's answer (the connection's
/// thread stopped, an I/O error), the connection is dropped and the next
/// use opens a new one.
fn forget_if_broken<T>(slot: &mut Option<AnyConnection>, result: &Result<T, sqlx::Error>) {
    if let Err(e) = result
        && !matches!(
            e,
            sqlx::Error::Database(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)
        )
    {
        *slot = None;
    }
}
