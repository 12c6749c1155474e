//! Opening a database: URL parsing, connection settings, migrations.

use std::path::Path;
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use ferrosim_smdp::store::StoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, Connection, Executor, Transaction};

use crate::SqlStore;
use crate::group_commit::{WriteBody, WriteQueue};
use crate::health::{IntegrityCheck, preflight_postgres, preflight_sqlite};
use crate::lite_writer::LiteWriter;
use crate::rows::backend_err;
use crate::writes::Writes;

pub(crate) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The database behind a [`SqlStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (one process).
    Sqlite,
    /// A PostgreSQL server (any number of instances).
    Postgres,
}

/// How hard SQLite works to keep a commit (PostgreSQL follows its own settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: each commit is on disk before it is acknowledged;
    /// survives a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process (WAL), may lose
    /// the last commits on a power loss. Much faster on slow disks.
    Normal,
}

impl Durability {
    /// The `PRAGMA synchronous` statement of this durability.
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(format!(
                "durability must be `full` or `normal`, not `{other}`"
            )),
        }
    }
}

/// Settings for [`SqlStore::connect`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite commit durability.
    pub durability: Durability,
    /// Pool size for PostgreSQL (SQLite always uses one writer connection
    /// in its pool, beside the writer thread's, which only writes while the
    /// group-commit task holds the pool's: SQLite admits one writer at a
    /// time, and queueing in the pool is cheaper than SQLite's busy-wait
    /// retries).
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub acquire_timeout: Duration,
    /// SQLite read-only connections beside the single writer.
    pub sqlite_readers: u32,
    /// How thoroughly a SQLite database is checked before it is used
    /// (`ferrosim serve` checks; admin commands do not).
    pub integrity_check: IntegrityCheck,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            sqlite_readers: 4,
            integrity_check: IntegrityCheck::Off,
        }
    }
}

static DRIVERS: Once = Once::new();

/// Pool options every pool of the store starts from.
///
/// Connections are neither closed when idle nor recycled by age: with either
/// time set, sqlx 0.9.0 runs a maintenance task whose sweep counts idle
/// connections with a counter that a concurrent release and acquire can wrap
/// below zero, after which the task spins on one core for good and the
/// process hangs at exit (sqlx issue 3645). Neither time is of use to the
/// store: SQLite connections are a local file, and the PostgreSQL pool is
/// bounded by `max_connections`.
fn base_pool_options(options: &StoreOptions) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .acquire_timeout(options.acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
}

impl SqlStore {
    /// Connects to `url` (`sqlite:PATH`, `sqlite://PATH`, `postgres://...`),
    /// creating the SQLite file and its directory if needed, and applies the
    /// migrations.
    ///
    /// One connection is tried first, so that a database that cannot be
    /// opened, is read-only or damaged (or fails `options.integrity_check`),
    /// or a server that does not answer, fails at once with its cause rather
    /// than after the pool's acquire time-out.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let given = url;
        let (backend, url) = normalise_url(url)?;
        match backend {
            Backend::Sqlite if !url.contains(":memory:") => {
                let path = sqlite_path(&url);
                preflight_sqlite(
                    &url,
                    Path::new(path),
                    options.durability,
                    options.integrity_check,
                )
                .await?;
            }
            Backend::Sqlite => {}
            Backend::Postgres => preflight_postgres(&url, &redact_password(given)).await?,
        }
        let connect_options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::Backend(e.to_string()))?;
        let durability = options.durability;
        let pool_options = base_pool_options(options);
        let pool_options = match backend {
            Backend::Sqlite => pool_options
                .max_connections(1)
                .min_connections(1)
                // A connection left inside a transaction (its COMMIT and
                // ROLLBACK both failed, as on a full disk) is closed and
                // replaced instead of refusing every later BEGIN: the writer
                // recovers by itself once the fault is gone.
                .before_acquire(|conn, _meta| {
                    Box::pin(async move {
                        if conn.is_in_transaction() {
                            tracing::warn!(
                                "SQLite writer connection left inside a failed transaction: reopening it"
                            );
                            return Ok(false);
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute(durability.pragma()).await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        // The writer's sub-journal (the pages a savepoint or
                        // a statement may have to roll back within the open
                        // transaction) in memory: group commit runs each job
                        // in a savepoint, and past 64 KB SQLite spills that
                        // journal to a temporary file, written page by page
                        // (about 60 writes per download) and never needed
                        // after the transaction. Crash safety rests on the
                        // WAL alone, so durability is unchanged.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        Ok(())
                    })
                }),
            Backend::Postgres => pool_options.max_connections(options.max_connections.max(1)),
        };
        let pool = pool_options
            .connect_with(connect_options)
            .await
            .map_err(backend_err)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let (read_pool, readers) = if backend == Backend::Sqlite && !url.contains(":memory:") {
            let read_options = AnyConnectOptions::from_str(&url)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let readers = base_pool_options(options)
                .max_connections(options.sqlite_readers.max(1))
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA query_only = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        Ok(())
                    })
                })
                .connect_with(read_options)
                .await
                .map_err(backend_err)?;
            let hot = crate::readers::Readers::open(sqlite_path(&url), options.sqlite_readers)?;
            (Some(readers), Some(std::sync::Arc::new(hot)))
        } else {
            (None, None)
        };
        let writer = match backend {
            Backend::Sqlite => {
                // Plain writes on a connection of their own, for a file (an
                // in-memory database has no second connection to its data).
                let lite = if url.contains(":memory:") {
                    None
                } else {
                    Some(LiteWriter::start(sqlite_path(&url), durability)?)
                };
                Some(WriteQueue::start(pool.clone(), lite))
            }
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            read_pool,
            readers,
            writer,
            backend,
            at_rest: None,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so it never fails half-way on a lock
    /// upgrade.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(backend_err)
    }

    /// `FOR UPDATE` on PostgreSQL (row locks); nothing on SQLite, whose write
    /// transaction already excludes other writers.
    pub(crate) fn lock_clause(&self, skip_locked: bool) -> &'static str {
        self.backend.lock_clause(skip_locked)
    }

    /// Runs `body` as one write transaction and returns its result once it
    /// is committed; if `body` fails, none of its changes is stored.
    ///
    /// On SQLite the transaction joins a group that commits together (see
    /// [`crate::group_commit`]); on PostgreSQL it is a transaction of its own
    /// on a pool connection.
    pub(crate) async fn write<R: Send + 'static>(
        &self,
        body: impl WriteBody<R>,
    ) -> Result<R, StoreError> {
        if let Some(queue) = &self.writer {
            return queue.write(body).await;
        }
        let mut tx = self.begin_write().await?;
        let out = body(&mut tx).await?;
        tx.commit().await.map_err(backend_err)?;
        Ok(out)
    }
}

impl SqlStore {
    /// Runs the plain statements of `writes` as one write transaction and
    /// returns once they are committed; if one fails, none is stored.
    ///
    /// On a SQLite file they join a group of the writer's own thread (see
    /// [`crate::lite_writer`]); elsewhere they run as [`SqlStore::write`]
    /// runs a transaction.
    pub(crate) async fn commit_writes(&self, writes: Writes) -> Result<(), StoreError> {
        if let Some(queue) = &self.writer {
            return queue.commit_writes(writes).await;
        }
        let backend = self.backend;
        self.write(move |conn| Box::pin(async move { writes.execute(conn, backend).await }))
            .await
    }
}

impl Backend {
    /// `FOR UPDATE` on PostgreSQL (row locks); nothing on SQLite, whose write
    /// transaction already excludes other writers.
    pub(crate) fn lock_clause(self, skip_locked: bool) -> &'static str {
        match (self, skip_locked) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, false) => " FOR UPDATE",
            (Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Recognises the backend and turns a bare SQLite path into a URL that
/// creates the file.
fn normalise_url(url: &str) -> Result<(Backend, String), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_owned()));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "unsupported database URL `{url}`: use sqlite:PATH or postgres://..."
            ))
        })?;
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    if path.is_empty() {
        return Err(StoreError::Backend("empty SQLite path".into()));
    }
    let query = query.unwrap_or("mode=rwc");
    if path != ":memory:" && query.contains("mode=rwc") {
        private_sqlite_file(Path::new(path))?;
    }
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

/// The file of a normalised SQLite URL (`sqlite://PATH?QUERY`).
fn sqlite_path(url: &str) -> &str {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// A database URL as it may be shown: without the password.
pub(crate) fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Makes the SQLite file (and its directory, when missing) private before
/// SQLite opens it: the database holds subscriber keys. Missing directories
/// are created 0700, a missing file is created empty with mode 0600 (SQLite
/// gives its `-wal` and `-shm` files the mode of the database file), and an
/// existing file, `-wal` or `-shm` readable by others is narrowed to 0600.
fn private_sqlite_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Backend(format!("cannot {what} {}: {e}", p.display()))
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| io("create", parent, e))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create", path, e)),
    }
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io("make private", &file, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            normalise_url("postgres://u@h/db").unwrap().0,
            Backend::Postgres
        );
        let (b, u) = normalise_url("sqlite::memory:").unwrap();
        assert_eq!(
            (b, u.as_str()),
            (Backend::Sqlite, "sqlite://:memory:?mode=rwc")
        );
        assert!(normalise_url("mysql://x").is_err());
        assert!(normalise_url("sqlite:").is_err());
        assert!("fast".parse::<Durability>().is_err());
    }

    /// A store on the SQLite file `db`, with the default options.
    async fn open_sqlite(db: &Path) -> SqlStore {
        SqlStore::connect(
            &format!("sqlite:{}", db.display()),
            &StoreOptions::default(),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn sqlite_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data/sub");
        let db = data.join("f.db");
        let store = open_sqlite(&db).await;
        store.set_setting("k", "v").await.unwrap();
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&data), 0o700);
        for name in ["f.db", "f.db-wal", "f.db-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
        store.close().await;
        // A database left readable by others is narrowed on the next open.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = open_sqlite(&db).await;
        assert_eq!(store.setting("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(store.setting("missing").await.unwrap(), None);
        assert_eq!(mode(&db), 0o600);
        store.close().await;
    }

    /// The files of `db` (with its `-wal` and `-shm`) this process has open.
    fn open_files_of(db: &Path) -> Vec<std::path::PathBuf> {
        let name = db.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| {
                target.parent() == db.parent()
                    && target
                        .file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(&name))
            })
            .collect()
    }

    #[tokio::test]
    async fn closing_a_sqlite_store_closes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().canonicalize().unwrap().join("c.db");
        let store = open_sqlite(&db).await;
        store.set_setting("k", "v").await.unwrap();
        assert!(!open_files_of(&db).is_empty());
        store.close().await;
        // Closed before the store is dropped: the writer thread's own
        // connection included (a read-only remount right after a close
        // once failed with "mount point is busy").
        assert_eq!(open_files_of(&db), Vec::<std::path::PathBuf>::new());
        let err = store.set_setting("k", "w").await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        drop(store);
    }
}
