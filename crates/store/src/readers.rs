//! SQLite: the read-only connections the SM-DP+'s hot reads (the loads of
//! an ES9+ step) run on, called directly from the request's task.
//!
//! Every SQLite connection of sqlx has a thread of its own, and every query
//! is a hand-off to that thread and back (a wake-up and a sleep on both
//! sides), with each row and each statement's result sent over a channel.
//! For a point lookup in a local file that costs more than the lookup
//! itself, so these readers are plain SQLite connections (rusqlite, on the
//! same SQLite library as sqlx) behind `std` mutexes, and a query runs on
//! the calling thread with its statement prepared once and cached.
//!
//! A query blocks its thread for as long as SQLite takes: a few indexed
//! lookups, tens of microseconds. In WAL mode a reader does not wait for
//! the writer; only a checkpoint that resets the WAL at the same instant
//! can make one wait (SQLite's busy handler, bounded by `busy_timeout`).
//!
//! A connection that fails for another reason than the query's own (an I/O
//! error, a damaged file) is dropped and replaced on its next use.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::types::{FromSql, ToSqlOutput, Value};
use rusqlite::{CachedStatement, Connection, OpenFlags, Row, Statement};
use sqlx::any::AnyRow;

use ferrosim_smdp::store::StoreError;

use crate::lite_writer::{BUSY_TIMEOUT, lite_err};
use crate::rows::{ColValue, StoreRow, col};
use crate::writes::Val;

/// Prepared statements each connection keeps (the hot reads use a handful).
const STATEMENT_CACHE: usize = 64;

/// The read-only connections (at least one).
pub(crate) struct Readers {
    path: String,
    /// `None` when not opened yet, or after a connection failed.
    slots: Box<[Mutex<Option<Connection>>]>,
    /// Where a caller that finds every connection busy waits.
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

/// A row of a hot read: from sqlx (PostgreSQL, in-memory SQLite) or from a
/// hot reader; the record parsers read both alike.
pub(crate) enum HotRow<'a> {
    /// A row through sqlx.
    Any(&'a AnyRow),
    /// A row of a hot reader.
    Lite(LiteRow<'a>),
}

impl StoreRow for HotRow<'_> {
    fn value<T: ColValue>(&self, name: &str) -> Result<T, StoreError> {
        match self {
            HotRow::Any(row) => col(row, name),
            HotRow::Lite(row) => row.get(name),
        }
    }
}

/// A row of a hot reader, read column by column by name.
///
/// rusqlite finds a column by name by asking SQLite for every column's
/// name from the first until one matches, so the 15 to 24 columns of a
/// session or profile row read by name cost hundreds of name look-ups per
/// step. The record parsers read the columns in the order the `SELECT`
/// lists them, so the search starts at the column after the last one
/// found: one look-up per column in the usual case, any order still works.
/// The names come from the statement's [`Shape`], read from SQLite once
/// per statement text.
pub(crate) struct LiteRow<'a> {
    row: &'a Row<'a>,
    /// The names of the row's columns, in order.
    columns: &'a [Box<str>],
    /// Where the next search starts.
    next: Cell<usize>,
}

impl<'a> LiteRow<'a> {
    /// Reads `row` (of a statement of this `shape`) column by column.
    pub(crate) fn new(row: &'a Row<'a>, shape: &'a Shape) -> Self {
        Self {
            row,
            columns: &shape.columns,
            next: Cell::new(0),
        }
    }

    /// The column `name`, or a corruption error naming it.
    fn get<T: FromSql>(&self, name: &str) -> Result<T, StoreError> {
        let n = self.columns.len();
        let start = self.next.get();
        let index = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.columns[i].eq_ignore_ascii_case(name));
        let Some(i) = index else {
            return Err(StoreError::Corrupt(format!(
                "column {name}: no such column"
            )));
        };
        self.next.set(i + 1);
        self.row
            .get(i)
            .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
    }
}

/// The queries of one read, run one after the other on one connection.
pub(crate) struct ReadSession<'c> {
    conn: &'c Connection,
}

impl ReadSession<'_> {
    /// Runs `sql` (one statement, placeholders `$1..$n` taken from `vals`
    /// by number) and gives its first row to `parse`, if there is one.
    pub(crate) fn first<T>(
        &self,
        sql: &str,
        vals: &[Val],
        parse: impl FnOnce(&HotRow<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let (mut stmt, shape) = self.prepare(sql, vals)?;
        let mut rows = stmt.raw_query();
        match rows.next().map_err(lite_err)? {
            Some(row) => parse(&HotRow::Lite(LiteRow::new(row, &shape))).map(Some),
            None => Ok(None),
        }
    }

    fn prepare(
        &self,
        sql: &str,
        vals: &[Val],
    ) -> Result<(CachedStatement<'_>, Arc<Shape>), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(lite_err)?;
        let shape = bind_numbered(&mut stmt, sql, vals)?;
        Ok((stmt, shape))
    }
}

/// What a statement's text says about its placeholders and columns, read
/// from SQLite once per text and kept (see [`shape_of`]).
#[derive(Debug)]
pub(crate) struct Shape {
    /// For each placeholder in SQLite's order, the index in the values of
    /// the number it names (`$3` takes the third value).
    params: Box<[Option<usize>]>,
    /// The names of the result columns, in order.
    columns: Box<[Box<str>]>,
}

/// Most statement texts whose [`Shape`] is kept (the SM-DP+ and eIM run a
/// few dozen; texts past this are read from SQLite at every use).
const SHAPES: usize = 512;

/// The [`Shape`] of `stmt`, whose text is `sql`: from the process-wide
/// cache, or read from SQLite (one call per placeholder and per column,
/// each with a C string's length and UTF-8 check) and kept. The shape of a
/// text does not depend on the connection: every connection of every
/// store runs the same schema.
pub(crate) fn shape_of(stmt: &Statement<'_>, sql: &str) -> Arc<Shape> {
    type Cache = HashMap<Box<str>, Arc<Shape>, foldhash::fast::RandomState>;
    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);
    if let Some(shape) = CACHE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|c| c.get(sql))
    {
        return Arc::clone(shape);
    }
    let params = (1..=stmt.parameter_count())
        .map(|i| {
            stmt.parameter_name(i)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
        })
        .collect();
    let columns = (0..stmt.column_count())
        .map(|i| stmt.column_name(i).unwrap_or_default().into())
        .collect();
    let shape = Arc::new(Shape { params, columns });
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(Cache::default);
    if cache.len() < SHAPES {
        cache.insert(sql.into(), Arc::clone(&shape));
    }
    shape
}

/// Binds `vals` to the placeholders `$1..$n` of `stmt` (the text `sql`),
/// each placeholder taking its value by number, as sqlx binds them, and
/// gives the statement's [`Shape`].
pub(crate) fn bind_numbered(
    stmt: &mut Statement<'_>,
    sql: &str,
    vals: &[Val],
) -> Result<Arc<Shape>, StoreError> {
    let shape = shape_of(stmt, sql);
    for (i, n) in shape.params.iter().enumerate() {
        let val = n.and_then(|n| vals.get(n)).ok_or_else(|| {
            StoreError::Backend(format!("no value for parameter {} of {sql}", i + 1))
        })?;
        stmt.raw_bind_parameter(i + 1, sql_value(val))
            .map_err(lite_err)?;
    }
    Ok(shape)
}

/// A bind value as rusqlite takes it.
fn sql_value(val: &Val) -> ToSqlOutput<'_> {
    use rusqlite::types::ValueRef;
    match val {
        Val::Int(Some(i)) => ToSqlOutput::Owned(Value::Integer(*i)),
        Val::Text(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
        Val::Bytes(Some(b)) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        Val::Int(None) | Val::Text(None) | Val::Bytes(None) => ToSqlOutput::Owned(Value::Null),
    }
}

impl Readers {
    /// Opens `n` (at least one) read-only connections to the SQLite file at
    /// `path`, so that a file that cannot be read fails here.
    pub(crate) fn open(path: &str, n: u32) -> Result<Self, StoreError> {
        let mut slots = Vec::new();
        for _ in 0..n.max(1) {
            slots.push(Mutex::new(Some(connect(path)?)));
        }
        Ok(Self {
            path: path.to_owned(),
            slots: slots.into_boxed_slice(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Runs `read` on a free connection (opened again if it had failed).
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&ReadSession<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.slot();
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Backend("the SQLite readers are closed".into()));
        }
        if slot.is_none() {
            *slot = Some(connect(&self.path)?);
        }
        let Some(conn) = slot.as_ref() else {
            return Err(StoreError::Backend("the SQLite readers are closed".into()));
        };
        let result = read(&ReadSession { conn });
        if let Err(StoreError::Backend(_)) = &result
            && broken(conn)
        {
            *slot = None;
        }
        result
    }

    /// Closes every connection; later reads fail.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.slots {
            slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
    }

    /// A free connection, or the next one in turn once it is free.
    fn slot(&self) -> MutexGuard<'_, Option<Connection>> {
        for slot in &self.slots {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        // A reader never panics while holding its connection (the parsers
        // return errors), and a poisoned slot's connection is still usable.
        self.slots[i].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A new read-only connection: read-write at the file level (a WAL reader
/// writes its locks to the `-shm` file) but refusing every write.
fn connect(path: &str) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(lite_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(lite_err)?;
    // A reader waits as long as the writer for a lock SQLite holds briefly
    // (a checkpoint resetting the WAL).
    conn.busy_timeout(BUSY_TIMEOUT).map_err(lite_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Whether the connection still answers a trivial query.
fn broken(conn: &Connection) -> bool {
    conn.query_row("SELECT 1", [], |_| Ok(())).is_err()
}
