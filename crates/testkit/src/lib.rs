//! Test helpers shared by the crates' integration tests (never used by the
//! product): fixtures from the repository's `testdata/`, an SM-DP+ running on
//! 127.0.0.1 with a fresh test PKI and SQLite database, and an operator
//! endpoint that records ES2+ callbacks; the `ferrosim` binary with a clean
//! environment ([`cli`]); `ferrosim serve` as a child process ([`serve`]), an operator's ES2+ client for it ([`operator`]), and
//! read-only checks of what the database recorded ([`audit`]); SoftHSM2 tokens
//! ([`softhsm`]); headless Chromium over WebDriver ([`webdriver`]).

pub mod audit;
pub mod cli;
pub mod namespace;
pub mod operator;
pub mod pcsc;
pub mod serve;
pub mod softhsm;
pub mod webdriver;

use std::path::PathBuf;

use serde_json::Value;
use tempfile::TempDir;

/// The repository's `testdata/` directory.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The TS.48 fixture packages (`testdata/upp/*.der`), sorted by name.
pub fn upp_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(testdata().join("upp")) {
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "der")
                && let Ok(bytes) = std::fs::read(&path)
            {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.push((name, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Environment variable naming a PostgreSQL server for the tests
/// (`postgres://USER@127.0.0.1:PORT/postgres`); `cargo xtask test` starts one.
pub const POSTGRES_ENV: &str = "FERROSIM_TEST_POSTGRES_URL";

/// When set (as `cargo xtask test` does), a test that needs PostgreSQL and
/// finds no [`POSTGRES_ENV`] fails even if [`SKIP_POSTGRES_ENV`] is set.
pub const REQUIRE_POSTGRES_ENV: &str = "FERROSIM_REQUIRE_POSTGRES";

/// `FERROSIM_SKIP_POSTGRES=1` lets a test without [`POSTGRES_ENV`] skip its
/// PostgreSQL part (with a note on stderr) instead of failing.
pub const SKIP_POSTGRES_ENV: &str = "FERROSIM_SKIP_POSTGRES";

/// Whether the explicit skip variable `name` is set to `1` (and the matching
/// `require` variable is not).
pub fn skip_allowed(name: &str, require: &str) -> bool {
    std::env::var(name).as_deref() == Ok("1") && std::env::var_os(require).is_none()
}

/// The PostgreSQL server of [`POSTGRES_ENV`]. Without one, panics with the
/// variables to set, unless [`SKIP_POSTGRES_ENV`]`=1` says the PostgreSQL part
/// of `test` may be skipped: then it says so on stderr and gives `None`.
pub fn postgres_admin_url(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if skip_allowed(SKIP_POSTGRES_ENV, REQUIRE_POSTGRES_ENV) => {
            eprintln!(
                "\n==== SKIP PostgreSQL part of {test}: {POSTGRES_ENV} is not set and \
                 {SKIP_POSTGRES_ENV}=1 ====\n"
            );
            None
        }
        _ => panic!(
            "{test} needs PostgreSQL: set {POSTGRES_ENV} to a server (such as \
             postgres://USER@127.0.0.1:5432/postgres), or run `cargo xtask test`, which starts \
             one; set {SKIP_POSTGRES_ENV}=1 to skip the PostgreSQL part instead"
        ),
    }
}

/// A database for one test: a SQLite file in a temporary directory, or a
/// fresh database on the PostgreSQL server of [`POSTGRES_ENV`].
pub struct TestDatabase {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The URL to connect to.
    pub url: String,
    _dir: Option<TempDir>,
    /// For a PostgreSQL database: the server's admin URL and the database's
    /// name, so that dropping this value drops the database too.
    postgres: Option<(String, String)>,
}

impl Drop for TestDatabase {
    /// A PostgreSQL test database is dropped with its value (`WITH (FORCE)`:
    /// servers a test started may still hold connections), so repeated local
    /// runs do not pile databases up on the server. A failure to drop only
    /// leaves the database behind, with a line on standard error.
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Its own thread and runtime: drop may run inside or outside a tokio
        // runtime, and may not block one of its workers on a future.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test database left behind: {e:#}"),
            Err(_) => eprintln!("test database left behind: the dropping thread panicked"),
        }
    }
}

/// One database per available backend: SQLite always, PostgreSQL when
/// [`POSTGRES_ENV`] is set (creating a database with a unique name on it).
/// When it is not set the test fails, unless [`SKIP_POSTGRES_ENV`]`=1`
/// (see [`postgres_admin_url`]).
pub async fn databases() -> anyhow::Result<Vec<TestDatabase>> {
    let dir = tempfile::tempdir()?;
    let mut out = vec![TestDatabase {
        backend: "sqlite",
        url: format!("sqlite:{}", dir.path().join("test.db").display()),
        _dir: Some(dir),
        postgres: None,
    }];
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if let Some(admin) = postgres_admin_url(&test) {
        out.push(fresh_postgres(&admin).await?);
    }
    Ok(out)
}

/// Runs `sql` (statements without parameters) on the server of
/// `admin_url`, for tests that change the server under a store: refuse or
/// allow connections, terminate backends. Returns the rows affected.
pub async fn postgres_execute(admin_url: &str, sql: &str) -> anyhow::Result<u64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(done.rows_affected())
}

/// Creates a uniquely named database on the server of `admin_url`.
pub async fn fresh_postgres(admin_url: &str) -> anyhow::Result<TestDatabase> {
    use sqlx::Connection;
    let name = format!("ferrosim_test_{:016x}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    Ok(TestDatabase {
        backend: "postgres",
        url: format!("{base}/{name}"),
        _dir: None,
        postgres: Some((admin_url.to_owned(), name)),
    })
}

pub use ferrosim_server::es2_client::Es2Client;
pub use ferrosim_server::sandbox::{OPERATOR, PROFILE_TYPE, Sandbox, SandboxOptions};

/// Options of [`TestSmdp::start`] (the sandbox's).
pub type TestSmdpOptions = SandboxOptions;

/// A sandbox SM-DP+ with helpers for ES2+ and raw ES9+ calls over HTTPS.
pub struct TestSmdp {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// An HTTPS client trusting the test CI, shared by the helpers.
    http: reqwest::Client,
}

impl std::ops::Deref for TestSmdp {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sandbox
    }
}

impl std::ops::DerefMut for TestSmdp {
    fn deref_mut(&mut self) -> &mut Sandbox {
        &mut self.sandbox
    }
}

impl TestSmdp {
    /// Starts a sandbox.
    pub async fn start(options: TestSmdpOptions) -> anyhow::Result<Self> {
        let sandbox = Sandbox::start(options).await?;
        let ci = reqwest::Certificate::from_pem(sandbox.ci_pem().as_bytes())?;
        let http = reqwest::Client::builder().tls_certs_only([ci]).build()?;
        Ok(Self { sandbox, http })
    }

    /// The HTTPS client trusting the test CI that the helpers share.
    pub fn https_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// The sandbox operator's typed ES2+ client.
    pub fn operator(&self) -> Es2Client {
        Es2Client::with_http(&self.base_url(), OPERATOR, &self.token, self.http.clone())
    }

    /// POSTs an ES2+ call with the operator's token; returns the HTTP status and JSON body.
    pub async fn es2(&self, function: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .post(format!("{}/gsma/rsp2/es2plus/{function}", self.base_url()))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// POSTs raw bytes to an ES9+ function; returns the HTTP status and body text.
    pub async fn es9_raw(
        &self,
        function: &str,
        body: impl Into<reqwest::Body>,
    ) -> anyhow::Result<(u16, String)> {
        let resp = self
            .http
            .post(format!("{}/gsma/rsp2/es9plus/{function}", self.base_url()))
            .header("Content-Type", "application/json")
            .header("X-Admin-Protocol", "gsma/rsp/v2.2.0")
            .body(body)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }

    /// Orders a profile of [`PROFILE_TYPE`] through ES2+ and returns (iccid, matching id).
    pub async fn order(
        &self,
        eid: Option<&str>,
        confirmation_code: Option<&str>,
    ) -> anyhow::Result<(String, String)> {
        Ok(self
            .operator()
            .order_released(PROFILE_TYPE, eid, confirmation_code)
            .await?)
    }
}

/// An ES2+ request header with a fresh functionCallIdentifier.
pub fn header() -> Value {
    serde_json::json!({
        "functionRequesterIdentifier": OPERATOR,
        "functionCallIdentifier": format!("call-{}", rand::random::<u64>()),
    })
}

pub use ferrosim_server::sandbox::CallbackSink;
