//! Test helpers shared by the crates' integration tests (never used by the
//! product): fixtures from the repository's `testdata/`, an SM-DP+ running on
//! 127.0.0.1 with a fresh test PKI and SQLite database, and an operator
//! endpoint that records ES2+ callbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_server::{RunningServer, ServerOptions, TlsIdentity};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileTypeImport};
use ferrosim_smdp::metadata::{ProfileClass, ProfilePolicyRules};
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Credential, Smdp, SmdpConfig};
use ferrosim_store::{SqlStore, StoreOptions};
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
/// (`postgres://USER@127.0.0.1:PORT/postgres`); `.ci/run` starts one.
pub const POSTGRES_ENV: &str = "FERROSIM_TEST_POSTGRES_URL";

/// A database for one test: a SQLite file in a temporary directory, or a
/// fresh database on the PostgreSQL server of [`POSTGRES_ENV`].
pub struct TestDatabase {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The URL to connect to.
    pub url: String,
    _dir: Option<TempDir>,
}

/// One database per available backend: SQLite always, PostgreSQL when
/// [`POSTGRES_ENV`] is set (creating a database with a unique name on it).
/// When it is not set, the PostgreSQL half is skipped with a note on stderr.
pub async fn databases() -> anyhow::Result<Vec<TestDatabase>> {
    let dir = tempfile::tempdir()?;
    let mut out = vec![TestDatabase {
        backend: "sqlite",
        url: format!("sqlite:{}", dir.path().join("test.db").display()),
        _dir: Some(dir),
    }];
    match std::env::var(POSTGRES_ENV) {
        Ok(admin) if !admin.is_empty() => out.push(fresh_postgres(&admin).await?),
        _ => eprintln!("note: {POSTGRES_ENV} not set; PostgreSQL half of this test skipped"),
    }
    Ok(out)
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
    })
}

/// The operator every [`TestSmdp`] has.
pub const OPERATOR: &str = "test-operator";
/// The profile type every [`TestSmdp`] has (the first TS.48 fixture).
pub const PROFILE_TYPE: &str = "ts48";

/// Options of [`TestSmdp::start`].
#[derive(Debug, Clone)]
pub struct TestSmdpOptions {
    /// eUICC certificates in the generated PKI.
    pub euiccs: usize,
    /// Profiles generated for [`PROFILE_TYPE`].
    pub profiles: u64,
    /// Callback URL of the operator.
    pub callback_url: Option<String>,
    /// Adjusts the SM-DP+ configuration before it starts.
    pub order_ttl: Option<Duration>,
}

impl Default for TestSmdpOptions {
    fn default() -> Self {
        Self {
            euiccs: 2,
            profiles: 5,
            callback_url: None,
            order_ttl: None,
        }
    }
}

/// An SM-DP+ serving HTTPS on 127.0.0.1 with its own PKI and database.
pub struct TestSmdp {
    /// Keeps the temporary directory alive.
    pub dir: TempDir,
    /// The generated PKI (CI, EUM, eUICCs, DP certificates).
    pub pki: TestPki,
    /// The SM-DP+ logic (shares the store with the server).
    pub smdp: Smdp<SqlStore>,
    /// The store.
    pub store: SqlStore,
    /// The running server.
    pub server: Option<RunningServer>,
    /// `localhost:PORT`, the SM-DP+ address.
    pub address: String,
    /// The operator's ES2+ token.
    pub token: String,
    /// Where the PKI was written (`ferrosim pki init` layout).
    pub pki_dir: PathBuf,
}

impl TestSmdp {
    /// Generates a PKI, opens a SQLite store, imports the first fixture as
    /// [`PROFILE_TYPE`] with `profiles` generated profiles, and starts serving.
    pub async fn start(options: TestSmdpOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let pki = TestPki::generate(&TestPkiOptions {
            euicc_count: options.euiccs,
            smdp_address: "localhost".into(),
            ..TestPkiOptions::default()
        })?;
        let pki_dir = dir.path().join("pki");
        pki.write_to(&pki_dir)?;
        let url = format!("sqlite:{}", dir.path().join("smdp.db").display());
        let store = SqlStore::connect(&url, &StoreOptions::default()).await?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = format!("localhost:{}", listener.local_addr()?.port());
        let smdp = Smdp::new(
            smdp_config(&pki, &address, options.order_ttl)?,
            store.clone(),
        );
        let token = seed(&store, &options).await?;
        let tls = TlsIdentity {
            cert_chain_der: vec![pki.dp_tls.certificate.der().to_vec()],
            key_pkcs8_der: pki.dp_tls.key_pkcs8_der().to_vec(),
        };
        let mut server_options = ServerOptions::new(tls);
        server_options.callbacks.poll_interval = Duration::from_millis(50);
        server_options.callbacks.initial_backoff = Duration::from_millis(100);
        let server = ferrosim_server::start(listener, smdp.clone(), server_options).await?;
        Ok(Self {
            dir,
            pki,
            smdp,
            store,
            server: Some(server),
            address,
            token,
            pki_dir,
        })
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The CI certificate as PEM (trust anchor of the DPtls certificate).
    pub fn ci_pem(&self) -> String {
        self.pki.ci.certificate_pem()
    }

    /// An HTTPS client trusting the test CI.
    pub fn https_client(&self) -> anyhow::Result<reqwest::Client> {
        let ci = reqwest::Certificate::from_pem(self.ci_pem().as_bytes())?;
        Ok(reqwest::Client::builder().tls_certs_only([ci]).build()?)
    }

    /// POSTs an ES2+ call with the operator's token; returns the HTTP status and JSON body.
    pub async fn es2(&self, function: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .https_client()?
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
            .https_client()?
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
        let (_, r) = self
            .es2(
                "downloadOrder",
                &serde_json::json!({
                    "header": header(),
                    "profileType": PROFILE_TYPE,
                    "eid": eid,
                }),
            )
            .await?;
        let iccid = r["iccid"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("downloadOrder failed: {r}"))?
            .to_owned();
        let (_, r) = self
            .es2(
                "confirmOrder",
                &serde_json::json!({
                    "header": header(),
                    "iccid": iccid,
                    "eid": eid,
                    "confirmationCode": confirmation_code,
                    "releaseFlag": true,
                }),
            )
            .await?;
        let mid = r["matchingId"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("confirmOrder failed: {r}"))?
            .to_owned();
        Ok((iccid, mid))
    }

    /// Stops the server (the store stays usable).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(2)).await;
        }
    }
}

/// An ES2+ request header with a fresh functionCallIdentifier.
pub fn header() -> Value {
    serde_json::json!({
        "functionRequesterIdentifier": OPERATOR,
        "functionCallIdentifier": format!("call-{}", rand::random::<u64>()),
    })
}

/// The SM-DP+ configuration for a test PKI.
pub fn smdp_config(
    pki: &TestPki,
    address: &str,
    order_ttl: Option<Duration>,
) -> anyhow::Result<SmdpConfig> {
    let mut config = SmdpConfig::new(
        address.to_owned(),
        Credential {
            certificate: pki.dp_auth.certificate.clone(),
            key: Arc::new(pki.dp_auth.signing_key()?),
        },
        Credential {
            certificate: pki.dp_pb.certificate.clone(),
            key: Arc::new(pki.dp_pb.signing_key()?),
        },
        pki.trust_store()?,
    )?;
    if let Some(ttl) = order_ttl {
        config.policy.order_ttl = ttl;
    }
    Ok(config)
}

/// Creates the operator, the profile type and the profiles; returns the token.
pub async fn seed(store: &SqlStore, options: &TestSmdpOptions) -> anyhow::Result<String> {
    let op = OperatorId::new(OPERATOR)?;
    let token = inventory::add_operator(
        store,
        op.clone(),
        "Test Operator".into(),
        options.callback_url.clone(),
        &mut rand::rng(),
    )
    .await?;
    let (_, package) = upp_fixtures()
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no fixture in testdata/upp"))?;
    inventory::import_profile_type(
        store,
        ProfileTypeImport {
            operator: op.clone(),
            name: PROFILE_TYPE.into(),
            package,
            service_provider_name: Some("ferrosim test".into()),
            profile_name: Some("TS.48 test profile".into()),
            profile_class: ProfileClass::Operational,
            policy_rules: ProfilePolicyRules::default(),
            owner_mcc_mnc: None,
        },
        Timestamp::now(),
    )
    .await?;
    let first_iccid = Iccid::from_body("894400000000000001")?;
    let first_imsi = Imsi::with_mnc_len("001010000000001", 2)?;
    inventory::generate_profiles(
        store,
        &op,
        PROFILE_TYPE,
        options.profiles,
        &first_iccid,
        &first_imsi,
        &mut rand::rng(),
        Timestamp::now(),
    )
    .await?;
    Ok(token)
}

/// An operator endpoint on 127.0.0.1 that records every callback it receives.
pub struct CallbackSink {
    /// Its URL.
    pub url: String,
    /// The bodies received, in order.
    pub received: Arc<Mutex<Vec<Value>>>,
    /// Answer with this HTTP status (to test retries); 204 by default.
    pub status: Arc<Mutex<u16>>,
    _task: tokio::task::JoinHandle<()>,
}

impl CallbackSink {
    /// Starts listening on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(204u16));
        let app = Router::new()
            .route("/callback", post(record))
            .with_state((Arc::clone(&received), Arc::clone(&status)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}/callback"),
            received,
            status,
            _task: task,
        })
    }

    /// Callbacks received so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds for the received callbacks, or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.received()) {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type SinkState = (Arc<Mutex<Vec<Value>>>, Arc<Mutex<u16>>);

async fn record(State((received, status)): State<SinkState>, body: String) -> StatusCode {
    let code = status.lock().map(|s| *s).unwrap_or(204);
    if (200..300).contains(&code)
        && let Ok(mut v) = received.lock()
    {
        v.push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
    }
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
