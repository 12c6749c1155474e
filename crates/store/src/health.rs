//! The database's real state: checks when a store opens (so a read-only,
//! damaged or missing database fails at once with its cause, not after a
//! connection pool's time-out) and the readiness probe behind `/ready`
//! (reachable and writable right now).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ferrosim_smdp::store::StoreError;
use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, Connection, Executor, Row};

use crate::connect::Durability;
use crate::rows::backend_err;
use crate::writes::Writes;
use crate::{Backend, SqlStore};

/// How thoroughly a SQLite database is checked when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// No check beyond opening it (admin commands: a damaged page still
    /// fails the query that reads it).
    #[default]
    Off,
    /// `PRAGMA quick_check`: every page and record is readable and well
    /// formed (indexes are not compared with their tables). Linear in the
    /// database size.
    Quick,
    /// `PRAGMA integrity_check`: also every index against its table.
    Full,
}

impl FromStr for IntegrityCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "quick" => Ok(Self::Quick),
            "full" => Ok(Self::Full),
            other => Err(format!(
                "integrity check must be `off`, `quick` or `full`, not `{other}`"
            )),
        }
    }
}

/// Longest a readiness probe waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// Setting the readiness probe writes (the time of the last probe).
const PROBE_SETTING: &str = "ready_probe";

/// Opens one connection to the SQLite database at `path` (URL `url`) and
/// checks what the pool would otherwise retry for its whole acquire
/// time-out: that it opens, can be switched to WAL, passes `check`, and can
/// be written. Every failure names the file and what to do.
pub(crate) async fn preflight_sqlite(
    url: &str,
    path: &Path,
    durability: Durability,
    check: IntegrityCheck,
) -> Result<(), StoreError> {
    let options =
        AnyConnectOptions::from_str(url).map_err(|e| StoreError::Backend(e.to_string()))?;
    let fail = |what: &str, e: sqlx::Error| sqlite_failure(path, what, &e);
    let mut conn = AnyConnection::connect_with(&options)
        .await
        .map_err(|e| fail("cannot open", e))?;
    let outcome = async {
        conn.execute("PRAGMA journal_mode = WAL")
            .await
            .map_err(|e| fail("cannot switch to WAL mode", e))?;
        conn.execute(durability.pragma())
            .await
            .map_err(|e| fail("cannot set durability", e))?;
        let pragma = match check {
            IntegrityCheck::Off => None,
            IntegrityCheck::Quick => Some("PRAGMA quick_check(20)"),
            IntegrityCheck::Full => Some("PRAGMA integrity_check(20)"),
        };
        if let Some(pragma) = pragma {
            let rows = sqlx::query(pragma)
                .fetch_all(&mut conn)
                .await
                .map_err(|e| fail("integrity check failed", e))?;
            let problems: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .filter(|line| line != "ok")
                .collect();
            if !problems.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "integrity check of {} failed: {}; restore it from a backup",
                    path.display(),
                    problems.join("; ")
                )));
            }
        }
        // A write that is rolled back: a read-only file, directory or
        // filesystem fails here rather than on the first real write.
        conn.execute("BEGIN IMMEDIATE")
            .await
            .map_err(|e| fail("cannot be written", e))?;
        let probe = conn
            .execute("CREATE TABLE ferrosim_write_probe (x INTEGER)")
            .await;
        let rollback = conn.execute("ROLLBACK").await;
        probe.map_err(|e| fail("cannot be written", e))?;
        rollback.map_err(|e| fail("cannot be written", e))?;
        Ok(())
    }
    .await;
    let _ = conn.close().await;
    outcome
}

/// Opens one connection to the PostgreSQL database of `url` (`shown`: the
/// URL without its password) and checks it accepts writes, so that an
/// unreachable server or a read-only database fails at once with its cause.
pub(crate) async fn preflight_postgres(url: &str, shown: &str) -> Result<(), StoreError> {
    let options =
        AnyConnectOptions::from_str(url).map_err(|e| StoreError::Backend(e.to_string()))?;
    let mut conn = AnyConnection::connect_with(&options)
        .await
        .map_err(|e| StoreError::Backend(format!("cannot connect to {shown}: {e}")))?;
    let read_only = sqlx::query("SELECT current_setting('transaction_read_only')")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| StoreError::Backend(format!("{shown}: {e}")))
        .and_then(|row| {
            row.try_get::<String, _>(0)
                .map_err(|e| StoreError::Backend(format!("{shown}: {e}")))
        });
    let _ = conn.close().await;
    if read_only? == "on" {
        return Err(StoreError::Backend(format!(
            "database {shown} is read-only (a standby server, or default_transaction_read_only \
             is on): point ferrosim at the primary"
        )));
    }
    Ok(())
}

/// A SQLite failure while opening `path`, with its likely cause spelled out.
fn sqlite_failure(path: &Path, what: &str, e: &sqlx::Error) -> StoreError {
    let file = path.display();
    let code = match e {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    };
    if let Some(why) = unwritable(path) {
        return StoreError::Backend(format!(
            "database {file} {what}: {why} ({e}); make the file, its -wal and -shm files and \
             its directory writable by this user, on a filesystem mounted read-write"
        ));
    }
    // Primary result codes of SQLite (sqlite3.h).
    match code {
        Some(8) => StoreError::Backend(format!(
            "database {file} {what}: it is read-only ({e}); make the file, its -wal and -shm \
             files and its directory writable by this user, on a filesystem mounted read-write"
        )),
        Some(11 | 26) => StoreError::Corrupt(format!(
            "database {file} {what}: it is damaged or not a SQLite database ({e}); restore it \
             from a backup"
        )),
        Some(13) => StoreError::Backend(format!(
            "database {file} {what}: the disk is full ({e}); free space on its filesystem"
        )),
        Some(14) => StoreError::Backend(format!(
            "database {file} {what}: it cannot be opened ({e}); check that its directory \
             exists and is accessible to this user"
        )),
        _ => StoreError::Backend(format!("database {file} {what}: {e}")),
    }
}

/// Why the file at `path` (or its directory, for the -wal and -shm files)
/// cannot be written, if it cannot.
fn unwritable(path: &Path) -> Option<String> {
    let read_only = |e: &std::io::Error| {
        // EACCES, EPERM, EROFS
        matches!(e.raw_os_error(), Some(13 | 1 | 30))
    };
    match std::fs::OpenOptions::new().append(true).open(path) {
        Err(e) if read_only(&e) => return Some(format!("it is read-only: {e}")),
        _ => {}
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let meta = std::fs::metadata(dir).ok()?;
    if meta.permissions().readonly() {
        return Some(format!("its directory {} is read-only", dir.display()));
    }
    None
}

impl SqlStore {
    /// Whether the database is usable right now: a read on a reading
    /// connection and a committed write (the time of this probe, in setting
    /// `ready_probe`) through the same path as every other write (on SQLite
    /// the commit group, so a writer that cannot commit shows here), each
    /// within [`READY_TIMEOUT`]. `Err` says what failed.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let within = |what: &'static str| {
            move |_| {
                StoreError::Backend(format!(
                    "the database did not answer a {what} within {READY_TIMEOUT:?}"
                ))
            }
        };
        tokio::time::timeout(READY_TIMEOUT, async {
            sqlx::query("SELECT COUNT(*) FROM instance_settings")
                .fetch_one(self.reader())
                .await
                .map_err(|e| StoreError::Backend(format!("not readable: {}", backend_err(e))))
        })
        .await
        .map_err(within("read"))??;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        tokio::time::timeout(READY_TIMEOUT, self.write_probe(now))
            .await
            .map_err(within("write"))?
            .map_err(|e| StoreError::Backend(format!("not writable: {e}")))
    }

    async fn write_probe(&self, value: String) -> Result<(), StoreError> {
        const UPSERT: &str = "INSERT INTO instance_settings (name, value) VALUES ($1, $2) \
                              ON CONFLICT (name) DO UPDATE SET value = excluded.value";
        match self.backend {
            Backend::Sqlite => {
                let mut writes = Writes::default();
                writes.push(UPSERT, vec![PROBE_SETTING.into(), value.into()]);
                self.commit_writes(writes).await
            }
            Backend::Postgres => {
                sqlx::query(UPSERT)
                    .bind(PROBE_SETTING)
                    .bind(value)
                    .execute(self.pool())
                    .await
                    .map_err(backend_err)?;
                Ok(())
            }
        }
    }
}
