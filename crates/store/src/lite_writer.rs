//! SQLite: the thread that commits groups of write jobs (the plain
//! statements of [`crate::writes::Writes`], the outbox's leases) on a
//! connection of its own, outside sqlx.
//!
//! Every statement through sqlx is a hand-off to its connection's thread
//! and back, with each statement's result sent over a channel; for the
//! commits of ES9+ steps that cost more than SQLite's own work. Here a
//! whole group (`BEGIN IMMEDIATE`, every job's statements with their
//! prepared statements cached, `COMMIT`) runs on this thread in one go:
//! one hand-off to it per group, and each caller is answered from here
//! once the group is committed.
//!
//! Jobs run without savepoints. When a job fails, the transaction is rolled
//! back and the jobs before it in the group are run again (a job can run
//! more than once; its answer is that of its last run), so a failed job
//! leaves nothing behind and the others are stored as if it had never run. Savepoints cost a copy of
//! every page a job touches into SQLite's sub-journal; failures are rare
//! (a stale record, a conflict).
//!
//! The writer of [`crate::group_commit`] decides when a group runs here:
//! it holds sqlx's single writer connection meanwhile, so this connection
//! and sqlx's never write at the same time within one store.

use std::sync::mpsc;
use std::time::Duration;

use ferrosim_smdp::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::connect::Durability;
use crate::group_commit::Output;

/// Prepared statements the writer keeps (a commit has a handful of shapes).
const STATEMENT_CACHE: usize = 128;

/// How long the writer waits for a lock another connection holds (another
/// instance on the same file), as sqlx's connections and the readers do.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a job runs, inside the group's transaction: its statements on the
/// writer's connection. It may run again after another job of the group
/// failed (on the state from before its first run), so it must have the
/// same effect each time.
pub(crate) type LiteBody = Box<dyn Fn(&Connection) -> Result<Output, StoreError> + Send>;

/// One job: what it runs and where its result goes.
pub(crate) struct LiteJob {
    pub(crate) body: LiteBody,
    pub(crate) reply: oneshot::Sender<Result<Output, StoreError>>,
}

/// The jobs of one group, and who waits for the group to end.
struct Group {
    jobs: Vec<LiteJob>,
    done: oneshot::Sender<()>,
    /// The store is closing: the thread closes its connection, answers
    /// `done` and ends (`jobs` is empty).
    close: bool,
}

/// The sending side of the writer thread; the thread ends when it is dropped.
#[derive(Debug)]
pub(crate) struct LiteWriter {
    groups: mpsc::Sender<Group>,
}

impl LiteWriter {
    /// Opens the writer's connection to the SQLite file at `path` (so that
    /// a file that cannot be written fails here) and starts its thread.
    pub(crate) fn start(path: &str, durability: Durability) -> Result<Self, StoreError> {
        let mut conn = Opener {
            path: path.to_owned(),
            durability,
        };
        let first = conn.open()?;
        let (groups, rx) = mpsc::channel::<Group>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, Some(first), &rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Self { groups })
    }

    /// Runs `jobs` as one group on the writer's thread and returns once it
    /// ended (each job's caller is answered from there).
    pub(crate) async fn run_group(&self, jobs: Vec<LiteJob>) {
        let (done, ended) = oneshot::channel();
        if let Err(mpsc::SendError(group)) = self.groups.send(Group {
            jobs,
            done,
            close: false,
        }) {
            for job in group.jobs {
                let _ = job
                    .reply
                    .send(Err(StoreError::Backend("the SQLite writer stopped".into())));
            }
            return;
        }
        let _ = ended.await;
    }

    /// A handle that closes the writer's connection and ends its thread
    /// (see [`LiteCloser::close`]).
    pub(crate) fn closer(&self) -> LiteCloser {
        LiteCloser {
            groups: self.groups.clone(),
        }
    }
}

/// Closes a [`LiteWriter`]'s connection from outside the task that owns
/// the writer, so that [`crate::SqlStore::close`] returns only once the
/// database file is no longer open for writing here.
#[derive(Debug, Clone)]
pub(crate) struct LiteCloser {
    groups: mpsc::Sender<Group>,
}

impl LiteCloser {
    /// Waits for the groups sent before to end, then closes the writer's
    /// connection and ends its thread; later groups get "the SQLite writer
    /// stopped". Returns at once if the thread has already ended.
    pub(crate) async fn close(&self) {
        let (done, ended) = oneshot::channel();
        let close = Group {
            jobs: Vec::new(),
            done,
            close: true,
        };
        if self.groups.send(close).is_ok() {
            let _ = ended.await;
        }
    }
}

/// How the writer's connection is opened (again, after a failed commit).
struct Opener {
    path: String,
    durability: Durability,
}

impl Opener {
    fn open(&mut self) -> Result<Connection, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(lite_err)?;
        // As sqlx's writer connection (see `connect`): the file is already
        // in WAL mode, commits are as durable as asked.
        conn.execute_batch(&format!(
            "{}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
            self.durability.pragma()
        ))
        .map_err(lite_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(lite_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    }
}

fn run(mut opener: Opener, mut conn: Option<Connection>, rx: &mpsc::Receiver<Group>) {
    while let Ok(group) = rx.recv() {
        if group.close {
            drop(conn.take());
            let _ = group.done.send(());
            return;
        }
        let c = match conn.take() {
            Some(c) => Ok(c),
            None => opener.open(),
        };
        match c {
            Ok(c) => {
                if run_group(&c, group.jobs) {
                    conn = Some(c);
                }
                // Else closed here: it may be inside a failed transaction.
            }
            Err(e) => fail(group.jobs, &e.to_string()),
        }
        let _ = group.done.send(());
    }
}

/// Runs one group; `false` when the connection must not be used again
/// (the transaction could not be begun or committed, and may be left open).
fn run_group(conn: &Connection, jobs: Vec<LiteJob>) -> bool {
    if let Err(e) = begin(conn) {
        fail(jobs, &e.to_string());
        return false;
    }
    let mut stored: Vec<(LiteJob, Output)> = Vec::with_capacity(jobs.len());
    let mut jobs = jobs.into_iter();
    while let Some(job) = jobs.next() {
        match (job.body)(conn) {
            Ok(out) => stored.push((job, out)),
            Err(e) => {
                let _ = job.reply.send(Err(e));
                // Undo its statements that ran: the whole transaction goes,
                // and the jobs before it run again.
                if let Err(why) = restart(conn, &mut stored) {
                    // Every job not yet answered gets the error, those that
                    // had not run yet included.
                    let unanswered = stored.into_iter().map(|(job, _)| job).chain(jobs);
                    fail(unanswered.collect(), &why);
                    return false;
                }
            }
        }
    }
    match conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        Ok(_) => {
            for (job, out) in stored {
                let _ = job.reply.send(Ok(out));
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = stored.len(), "SQLite writer: commit failed");
            let jobs = stored.into_iter().map(|(job, _)| job).collect();
            fail(jobs, &format!("commit failed, nothing stored: {e}"));
            false
        }
    }
}

fn begin(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(lite_err)
}

/// Rolls the transaction back (unless SQLite already did) and runs the
/// jobs of `stored` again in a new one, each keeping its new answer.
///
/// A job can fail when it runs again: another process writing the same
/// file may have committed between the rollback and the new transaction
/// (its compare-and-set now finds a newer version). That job gets its own
/// error (a [`StoreError::Stale`] its caller retries, say), leaves the
/// group, and the others start over once more. `Err` only when the
/// transaction itself cannot be rolled back or begun.
fn restart(conn: &Connection, stored: &mut Vec<(LiteJob, Output)>) -> Result<(), String> {
    'again: loop {
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(|e| {
                format!("not stored, the transaction could not be rolled back: {e}")
            })?;
        }
        begin(conn).map_err(|e| format!("not stored, the transaction was rolled back: {e}"))?;
        for i in 0..stored.len() {
            match (stored[i].0.body)(conn) {
                Ok(out) => stored[i].1 = out,
                Err(e) => {
                    let (job, _) = stored.remove(i);
                    let _ = job.reply.send(Err(e));
                    continue 'again;
                }
            }
        }
        return Ok(());
    }
}

/// Every job gets the error.
fn fail(jobs: Vec<LiteJob>, msg: &str) {
    for job in jobs {
        let _ = job
            .reply
            .send(Err(StoreError::Backend(format!("SQLite writer: {msg}"))));
    }
}

/// Maps a rusqlite error (the writer's and the readers') as
/// [`crate::rows::backend_err`] maps sqlx's: a unique violation is a
/// [`StoreError::Conflict`], anything else a backend error.
pub(crate) fn lite_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e
        && matches!(
            f.extended_code,
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        )
    {
        return StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()));
    }
    StoreError::Backend(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writes::Writes;

    fn job(writes: Writes) -> (LiteJob, oneshot::Receiver<Result<Output, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let body: LiteBody =
            Box::new(move |conn| writes.run_on(conn).map(|()| Box::new(()) as Output));
        (LiteJob { body, reply }, answer)
    }

    fn insert(name: &str) -> Writes {
        let mut w = Writes::default();
        w.push("INSERT INTO t (name, v) VALUES ($1, 0)", vec![name.into()]);
        w
    }

    fn names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT name FROM t ORDER BY name").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn outcome(mut answer: oneshot::Receiver<Result<Output, StoreError>>) -> Result<(), String> {
        match answer.try_recv() {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    /// A writer connection to a new WAL file with the table `t` (the
    /// directory holding it goes with the returned guard).
    fn writer_on_new_file() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let path = path.to_str().unwrap();
        Connection::open(path)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (name TEXT PRIMARY KEY, v INTEGER)",
            )
            .unwrap();
        let conn = Opener {
            path: path.to_owned(),
            durability: Durability::Full,
        }
        .open()
        .unwrap();
        (dir, conn)
    }

    /// Runs the group "a", `stale` (answering on `stale_answer`), "a"
    /// again (a conflict), "c" and checks each answer and that "a" and "c"
    /// are stored.
    fn stale_second_of_four(
        conn: &Connection,
        stale: LiteJob,
        stale_answer: oneshot::Receiver<Result<Output, StoreError>>,
    ) {
        let (j1, a1) = job(insert("a"));
        let (j3, a3) = job(insert("a"));
        let (j4, a4) = job(insert("c"));
        assert!(run_group(conn, vec![j1, stale, j3, j4]));

        assert_eq!(outcome(a1), Ok(()));
        assert_eq!(outcome(stale_answer), Err("Stale".into()));
        let conflict = outcome(a3).unwrap_err();
        assert!(conflict.starts_with("Conflict("), "{conflict}");
        assert_eq!(outcome(a4), Ok(()));
        assert_eq!(names(conn), ["a", "c"]);
    }

    #[test]
    fn a_failed_job_leaves_nothing_and_the_others_of_its_group_are_stored() {
        let (_dir, conn) = writer_on_new_file();

        // The second job inserts a row, then its compare-and-set finds no
        // row at version 7: stale. The third repeats the first's key.
        let mut stale = insert("b");
        stale.push_checked(
            "UPDATE t SET v = v + 1 WHERE name = $1 AND v = $2",
            vec!["a".into(), 7i64.into()],
        );
        let (j2, a2) = job(stale);
        stale_second_of_four(&conn, j2, a2);
        assert!(conn.is_autocommit(), "the group's transaction is committed");

        // The connection goes on with the next group.
        let (j5, a5) = job(insert("d"));
        assert!(run_group(&conn, vec![j5]));
        assert_eq!(outcome(a5), Ok(()));
        assert_eq!(names(&conn), ["a", "c", "d"]);
    }

    #[test]
    fn a_job_stale_when_run_again_gets_its_own_error_and_the_rest_are_stored() {
        let (_dir, conn) = writer_on_new_file();

        // The second job stores "b" the first time it runs; when it runs
        // again (after the third job's conflict rolled the group back),
        // another writer has committed first and its compare-and-set fails.
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (reply, a2) = oneshot::channel();
        let seen = std::sync::Arc::clone(&runs);
        let body: LiteBody = Box::new(move |conn| {
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0 {
                return Err(StoreError::Stale);
            }
            insert("b").run_on(conn).map(|()| Box::new(()) as Output)
        });
        stale_second_of_four(&conn, LiteJob { body, reply }, a2);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(conn.is_autocommit(), "the group's transaction is committed");
    }
}
