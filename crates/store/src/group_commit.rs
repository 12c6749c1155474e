//! Group commit for SQLite: the write transactions of concurrent requests run
//! one after the other inside one SQLite transaction, committed (and, with
//! `synchronous=FULL`, fsynced) once for the whole group.
//!
//! SQLite admits one writer at a time, so with one writer connection the
//! transactions are serialised anyway; what grouping saves is the `BEGIN` and
//! `COMMIT` round trips to sqlx's connection thread (and the fsync) of every
//! transaction but one per group. Guarantees are unchanged for each caller:
//!
//! - a caller gets its result only after the group's `COMMIT` succeeded, so a
//!   success is durable; if the commit fails, every caller of the group gets
//!   the error and none of their changes is stored;
//! - a job that fails leaves nothing behind: through sqlx its writes run
//!   inside a savepoint (see [`crate::writes`]) that is rolled back, and the
//!   group is committed right after it, so a job never runs after one that
//!   failed in the same transaction; on the [`LiteWriter`] the transaction
//!   is rolled back and the jobs before it run again (see
//!   [`crate::lite_writer`]);
//! - a job that panics rolls the whole group back and every caller of the
//!   group gets an error;
//! - after a failed `COMMIT` (a full disk, an I/O error) the writer
//!   connection is closed and the next group runs on a fresh one: SQLite
//!   may leave the failed transaction open (its `ROLLBACK` fails too), and
//!   a connection inside a transaction would refuse every later `BEGIN`.
//!
//! The jobs run in one task that owns the transaction, so a request that is
//! cancelled half-way (its client went away) cannot leave a transaction open.
//!
//! Two kinds of jobs share the queue, in the order they came: bodies of
//! sqlx statements (and reads), run by this task on sqlx's writer
//! connection, and plain statements ([`Writes`], the commits of ES9+ steps
//! and eIM sessions), which on a SQLite file go as whole groups to the
//! [`LiteWriter`]'s thread and connection, without a hand-off to sqlx's
//! thread per statement. A group holds jobs of one kind; the task holds
//! sqlx's writer connection while either kind runs, so that no other
//! writer of this store runs a transaction meanwhile.

use std::any::Any as StdAny;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use ferrosim_smdp::store::StoreError;
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot};

use crate::Backend;
use crate::lite_writer::{LiteBody, LiteCloser, LiteJob, LiteWriter};
use crate::writes::Writes;

/// Most jobs in one group: bounds the time a caller waits for the commit.
const MAX_GROUP: usize = 64;

/// How long the writer keeps the pool's one connection for groups that
/// follow each other without a pause, before it gives other users of the
/// pool (imports, purges, maintenance) their turn. Taking the connection
/// from the pool and giving it back cost a hand-off to its thread each.
const HOLD: Duration = Duration::from_millis(20);

/// What a job gives back, type-erased on the way through the queue.
pub(crate) type Output = Box<dyn StdAny + Send>;

/// The body of a write transaction as callers give it: runs its statements
/// on the connection it is handed (inside the transaction) and gives `R`.
pub(crate) trait WriteBody<R>:
    for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<R, StoreError>> + Send + 'static
{
}

impl<R, F> WriteBody<R> for F where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<R, StoreError>>
        + Send
        + 'static
{
}

/// A [`WriteBody`] with its result type erased, as the queue carries it.
type ErasedBody = Box<dyn WriteBody<Output>>;

/// What a job runs.
enum Body {
    /// Statements and reads through sqlx, on its writer connection.
    Sqlx(ErasedBody),
    /// Statements on the [`LiteWriter`]'s connection.
    Lite(LiteBody),
}

struct Job {
    body: Body,
    reply: oneshot::Sender<Result<Output, StoreError>>,
}

/// The sending side of the queue; cheap to clone. The task that runs the
/// groups ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(crate) struct WriteQueue {
    jobs: mpsc::UnboundedSender<Job>,
    /// Whether plain statements go to a [`LiteWriter`] (a SQLite file; an
    /// in-memory database has no second connection to the same data).
    lite: bool,
    /// Closes the [`LiteWriter`]'s connection (see [`WriteQueue::close`]).
    lite_closer: Option<LiteCloser>,
}

impl WriteQueue {
    /// Starts the task that runs groups on connections of `pool` (the single
    /// SQLite writer connection) and, with `lite`, the groups of plain
    /// statements on that writer's own thread and connection.
    pub(crate) fn start(pool: AnyPool, lite: Option<LiteWriter>) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let queue = Self {
            jobs,
            lite: lite.is_some(),
            lite_closer: lite.as_ref().map(LiteWriter::closer),
        };
        tokio::spawn(run(pool, lite, rx));
        queue
    }

    /// Closes the [`LiteWriter`]'s connection to the file once the groups
    /// already sent to it have ended (the store is closing; writes after
    /// this fail). sqlx's connections are closed with their pool.
    pub(crate) async fn close(&self) {
        if let Some(closer) = &self.lite_closer {
            closer.close().await;
        }
    }

    /// Runs `writes` as part of a group and returns once the group is
    /// committed: on the [`LiteWriter`] when there is one, else through sqlx.
    pub(crate) async fn commit_writes(&self, writes: Writes) -> Result<(), StoreError> {
        if !self.lite {
            return self
                .write(move |conn| {
                    Box::pin(async move { writes.execute(conn, Backend::Sqlite).await })
                })
                .await;
        }
        self.write_lite(move |conn| writes.run_on(conn))
            .await
            .unwrap_or_else(|| Err(StoreError::Backend("no SQLite writer thread".into())))
    }

    /// Runs `body` on the [`LiteWriter`]'s connection as part of a group and
    /// returns its result once the group is committed; `None` without a
    /// [`LiteWriter`] (an in-memory database). `body` may run more
    /// than once (see [`crate::lite_writer`]).
    pub(crate) async fn write_lite<R: Send + 'static>(
        &self,
        body: impl Fn(&rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Option<Result<R, StoreError>> {
        if !self.lite {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        let body = Body::Lite(Box::new(move |conn| {
            body(conn).map(|r| Box::new(r) as Output)
        }));
        if self.jobs.send(Job { body, reply }).is_err() {
            return Some(Err(stopped()));
        }
        let Ok(out) = answer.await else {
            return Some(Err(stopped()));
        };
        Some(out.and_then(|out| {
            out.downcast::<R>()
                .map(|r| *r)
                .map_err(|_| StoreError::Backend("write queue returned a foreign result".into()))
        }))
    }

    /// Runs `body` as part of a group and returns its result once the group
    /// is committed.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        body: impl WriteBody<R>,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        let body = Body::Sqlx(Box::new(move |conn| {
            async move { body(conn).await.map(|r| Box::new(r) as Output) }.boxed()
        }));
        self.jobs.send(Job { body, reply }).map_err(|_| stopped())?;
        let out = answer.await.map_err(|_| stopped())??;
        out.downcast::<R>()
            .map(|r| *r)
            .map_err(|_| StoreError::Backend("write queue returned a foreign result".into()))
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the SQLite writer stopped".into())
}

async fn run(pool: AnyPool, lite: Option<LiteWriter>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut pending: VecDeque<Job> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
        let mut writer = match pool.acquire().await {
            Ok(conn) => Writer {
                conn,
                unsafe_to_reuse: false,
            },
            Err(e) => {
                fail_all(&mut pending, &mut rx, &e.to_string());
                continue;
            }
        };
        // Group after group on this connection while jobs keep coming, for
        // at most HOLD, so that other users of the pool get their turn. The
        // groups of plain statements run on the LiteWriter meanwhile: holding
        // the pool's connection keeps every other writer of this store out.
        let held = Instant::now();
        loop {
            match (&lite, pending.front()) {
                (
                    Some(lite),
                    Some(Job {
                        body: Body::Lite(_),
                        ..
                    }),
                ) => {
                    lite.run_group(lite_group(&mut pending, &mut rx)).await;
                }
                _ => {
                    writer.unsafe_to_reuse = true;
                    let ok = run_group(&mut writer.conn, &mut pending, &mut rx, lite.is_some());
                    if !ok.await {
                        // Closed rather than given back (see `run_group`).
                        break;
                    }
                    writer.unsafe_to_reuse = false;
                }
            }
            if held.elapsed() >= HOLD {
                break;
            }
            if pending.is_empty() {
                match rx.try_recv() {
                    Ok(job) => pending.push_back(job),
                    Err(_) => break,
                }
            }
        }
    }
}

/// The writer's connection while it runs groups. It is closed rather than
/// given back to the pool when it may be inside a group's transaction: after
/// a failed group, or when the writer stops half-way through one (the
/// runtime shutting down drops its task).
struct Writer {
    conn: PoolConnection<Any>,
    unsafe_to_reuse: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.unsafe_to_reuse {
            self.conn.close_on_drop();
        }
    }
}

/// Runs one group on `conn`: the pending jobs and whatever arrives
/// meanwhile, up to [`MAX_GROUP`], then commits. `false` when the
/// connection must not be used again: a job panicked or the commit failed
/// (SQLite may then have left the transaction open, its `ROLLBACK` failing
/// as its `COMMIT` did, and a connection inside a transaction would refuse
/// every later `BEGIN`).
///
/// `BEGIN` and `COMMIT` are plain statements rather than sqlx's
/// transaction, whose begin and commit each hold the connection's thread
/// until the caller took the answer.
async fn run_group(
    conn: &mut AnyConnection,
    pending: &mut VecDeque<Job>,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    lite: bool,
) -> bool {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        fail_all(pending, rx, &e.to_string());
        // A connection that cannot begin is not trusted with the next group.
        return false;
    }
    let mut done: Vec<(oneshot::Sender<Result<Output, StoreError>>, Output)> = Vec::new();
    // Why a job of the group failed on the database's side (a full disk, an
    // I/O error): SQLite may then have rolled back the whole transaction,
    // and the jobs before it are only stored if the COMMIT succeeds.
    let mut cause: Option<String> = None;
    while done.len() < MAX_GROUP {
        let Some(job) = pending.pop_front().or_else(|| rx.try_recv().ok()) else {
            break;
        };
        let body = match job.body {
            Body::Sqlx(body) => body,
            Body::Lite(body) => {
                // The next group's, on the LiteWriter. (Without one no such
                // job is queued, see `write_lite`.)
                if lite {
                    pending.push_front(Job {
                        body: Body::Lite(body),
                        reply: job.reply,
                    });
                    break;
                }
                let _ = job
                    .reply
                    .send(Err(StoreError::Backend("no SQLite writer thread".into())));
                continue;
            }
        };
        match AssertUnwindSafe(body(&mut *conn)).catch_unwind().await {
            Ok(Ok(out)) => done.push((job.reply, out)),
            Ok(Err(e)) => {
                if let StoreError::Backend(why) = &e {
                    cause = Some(why.clone());
                }
                // Its own writes were rolled back to its savepoint; end the
                // group here so that nothing runs after a failure.
                let _ = job.reply.send(Err(e));
                break;
            }
            Err(_) => {
                let _ = job.reply.send(Err(StoreError::Backend(
                    "a write transaction panicked".into(),
                )));
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                for (reply, _) in done {
                    let _ = reply.send(Err(StoreError::Backend(
                        "rolled back: another write of the same group panicked".into(),
                    )));
                }
                return false;
            }
        }
    }
    match sqlx::query("COMMIT").execute(&mut *conn).await {
        Ok(_) => {
            for (reply, out) in done {
                let _ = reply.send(Ok(out));
            }
            true
        }
        Err(e) => {
            // Nothing of the group is stored.
            let msg = match cause {
                Some(cause) => format!("not stored, the transaction was rolled back: {cause}"),
                None => format!("commit failed, nothing stored: {e}"),
            };
            tracing::warn!(error = %e, jobs = done.len(), "SQLite writer: {msg}");
            for (reply, _) in done {
                let _ = reply.send(Err(StoreError::Backend(msg.clone())));
            }
            false
        }
    }
}

/// The jobs of plain statements at the head of the queue, and those that
/// arrive meanwhile, up to [`MAX_GROUP`]: the next group of the
/// [`LiteWriter`]. Stops at the first job of another kind.
fn lite_group(pending: &mut VecDeque<Job>, rx: &mut mpsc::UnboundedReceiver<Job>) -> Vec<LiteJob> {
    let mut group = Vec::with_capacity(pending.len().clamp(1, MAX_GROUP));
    while group.len() < MAX_GROUP {
        let Some(job) = pending.pop_front().or_else(|| rx.try_recv().ok()) else {
            break;
        };
        match job.body {
            Body::Lite(body) => group.push(LiteJob {
                body,
                reply: job.reply,
            }),
            body @ Body::Sqlx(_) => {
                pending.push_front(Job {
                    body,
                    reply: job.reply,
                });
                break;
            }
        }
    }
    group
}

/// No connection or no transaction: every waiting job gets the error.
fn fail_all(pending: &mut VecDeque<Job>, rx: &mut mpsc::UnboundedReceiver<Job>, msg: &str) {
    while let Some(job) = pending.pop_front().or_else(|| rx.try_recv().ok()) {
        let _ = job
            .reply
            .send(Err(StoreError::Backend(format!("SQLite writer: {msg}"))));
    }
}
