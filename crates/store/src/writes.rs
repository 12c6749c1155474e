//! The writes of one transaction, sent in as few round trips as the backend
//! allows.
//!
//! Each round trip to SQLite costs a hand-off to sqlx's connection thread and
//! back; with one writer connection these hand-offs bound the whole SM-DP+.
//! SQLite runs several statements of one query string with shared bind
//! parameters, so the row updates and outbox inserts of a transaction go as
//! one query there; PostgreSQL prepares each statement, so they go one by one.
//!
//! On SQLite the query is wrapped in a savepoint: if one of its statements
//! fails, the ones before it are rolled back, so a failed transaction leaves
//! nothing behind even when it shares its SQLite transaction with others
//! (group commit, see [`crate::group_commit`]). On a SQLite file the
//! commits of [`Writes`] skip sqlx altogether: [`Writes::run_on`] runs them
//! statement by statement on the writer's own connection
//! ([`crate::lite_writer`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::any::AnyArguments;
use sqlx::{Any, AnyConnection, AssertSqlSafe};

use ferrosim_smdp::store::StoreError;

use crate::Backend;
use crate::rows::backend_err;

/// A bind value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// An integer (or NULL).
    Int(Option<i64>),
    /// Text (or NULL).
    Text(Option<String>),
    /// Bytes (or NULL).
    Bytes(Option<Vec<u8>>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(Some(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        Val::Text(v)
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Self {
        Val::Bytes(Some(v))
    }
}
impl From<Option<Vec<u8>>> for Val {
    fn from(v: Option<Vec<u8>>) -> Self {
        Val::Bytes(v)
    }
}

/// Statements (each with placeholders `$1..$n`) and their values.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    statements: Vec<Statement>,
}

#[derive(Debug)]
struct Statement {
    sql: &'static str,
    vals: Vec<Val>,
    /// A compare-and-set: it must change exactly one row, or the record is stale.
    checked: bool,
}

/// What SQLite runs after a compare-and-set statement: the `ferrosim_cas`
/// trigger (see the migrations) raises [`STALE_MARKER`] unless the statement
/// changed exactly one row.
const SQLITE_CAS_GUARD: &str = "INSERT INTO ferrosim_cas (changed) VALUES (changes())";

/// The message of the `ferrosim_cas` trigger.
pub(crate) const STALE_MARKER: &str = "ferrosim: stale record";

impl Writes {
    /// Adds a statement.
    pub(crate) fn push(&mut self, sql: &'static str, vals: Vec<Val>) {
        self.statements.push(Statement {
            sql,
            vals,
            checked: false,
        });
    }

    /// Adds a compare-and-set statement: if it changes no row (the record
    /// is not at the version it names), the whole write fails with
    /// [`StoreError::Stale`] and nothing of it is kept.
    pub(crate) fn push_checked(&mut self, sql: &'static str, vals: Vec<Val>) {
        self.statements.push(Statement {
            sql,
            vals,
            checked: true,
        });
    }

    /// Runs every statement on `conn`, which is inside a transaction: all of
    /// them or none.
    pub(crate) async fn execute(
        self,
        conn: &mut AnyConnection,
        backend: Backend,
    ) -> Result<(), StoreError> {
        if self.statements.is_empty() {
            return Ok(());
        }
        match backend {
            Backend::Sqlite => {
                let sql = sqlite_text(&self.statements);
                let mut args =
                    Vec::with_capacity(self.statements.iter().map(|s| s.vals.len()).sum());
                for stmt in self.statements {
                    args.extend(stmt.vals);
                }
                let result = bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                    .execute(&mut *conn)
                    .await;
                if let Err(e) = result {
                    // Undo the statements that ran before the failing one. If
                    // the savepoint itself was not created, nothing ran.
                    let _ = sqlx::query("ROLLBACK TO writes; RELEASE writes;")
                        .execute(&mut *conn)
                        .await;
                    return Err(backend_err(e));
                }
            }
            Backend::Postgres => {
                for stmt in self.statements {
                    let done = bind_all(sqlx::query(stmt.sql), stmt.vals)
                        .execute(&mut *conn)
                        .await
                        .map_err(backend_err)?;
                    if stmt.checked && done.rows_affected() != 1 {
                        // The caller's transaction is rolled back on this error.
                        return Err(StoreError::Stale);
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs every statement, one by one with its prepared statement cached,
    /// on the SQLite writer's own connection (see [`crate::lite_writer`]),
    /// which is inside a transaction. A compare-and-set is checked here by
    /// the count of changed rows. On an error the statements before it are
    /// not undone: the caller rolls the transaction back.
    pub(crate) fn run_on(&self, conn: &rusqlite::Connection) -> Result<(), StoreError> {
        for stmt in &self.statements {
            let mut prepared = conn
                .prepare_cached(stmt.sql)
                .map_err(crate::lite_writer::lite_err)?;
            crate::readers::bind_numbered(&mut prepared, stmt.sql, &stmt.vals)?;
            let changed = prepared
                .raw_execute()
                .map_err(crate::lite_writer::lite_err)?;
            if stmt.checked && changed != 1 {
                return Err(StoreError::Stale);
            }
        }
        Ok(())
    }
}

/// The statements a SQLite query of `statements` runs, in order, and
/// how many values it takes and whether it is a compare-and-set: what the
/// query's text depends on.
type Shape = Box<[(usize, usize, usize, bool)]>;

/// Most query texts [`sqlite_text`] keeps: commits have a handful of
/// shapes (which records a step rewrites, how many outbox events).
const SHAPES: usize = 256;

/// The one SQLite query that runs `statements` inside a savepoint, their
/// placeholders renumbered to follow each other (the values go in the same
/// order).
///
/// A commit's statements are constants, so the same few combinations come
/// back at every download: their text is built once and kept, keyed by the
/// statements' addresses (a `&'static str` at one address and length is
/// always the same text), instead of renumbering every statement character
/// by character per commit.
fn sqlite_text(statements: &[Statement]) -> Arc<str> {
    static TEXTS: Mutex<Option<HashMap<Shape, Arc<str>>>> = Mutex::new(None);
    let shape: Shape = statements
        .iter()
        .map(|s| {
            (
                s.sql.as_ptr() as usize,
                s.sql.len(),
                s.vals.len(),
                s.checked,
            )
        })
        .collect();
    let mut texts = TEXTS.lock().unwrap_or_else(PoisonError::into_inner);
    let texts = texts.get_or_insert_with(HashMap::new);
    if let Some(text) = texts.get(&shape) {
        return Arc::clone(text);
    }
    let mut sql = String::from("SAVEPOINT writes;\n");
    let mut offset = 0;
    for stmt in statements {
        sql.push_str(&renumber(stmt.sql, offset));
        sql.push_str(";\n");
        if stmt.checked {
            sql.push_str(SQLITE_CAS_GUARD);
            sql.push_str(";\n");
        }
        offset += stmt.vals.len();
    }
    sql.push_str("RELEASE writes;");
    let text: Arc<str> = sql.into();
    if texts.len() < SHAPES {
        texts.insert(shape, Arc::clone(&text));
    }
    text
}

/// A query of the `Any` driver with its bind values.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, AnyArguments>;

pub(crate) fn bind_all(mut q: AnyQuery<'_>, vals: Vec<Val>) -> AnyQuery<'_> {
    for v in vals {
        q = match v {
            Val::Int(i) => q.bind(i),
            Val::Text(t) => q.bind(t),
            Val::Bytes(b) => q.bind(b),
        };
    }
    q
}

/// `$n` becomes `$(n + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&format!("${}", n + offset)),
            Err(_) => {
                out.push('$');
                out.push_str(&digits);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::renumber;

    #[test]
    fn placeholders_are_shifted() {
        assert_eq!(
            renumber("UPDATE t SET a = $1, b = $12 WHERE c = $2", 14),
            "UPDATE t SET a = $15, b = $26 WHERE c = $16"
        );
        assert_eq!(renumber("SELECT 1", 3), "SELECT 1");
    }
}
