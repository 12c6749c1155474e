//! A complete SM-DP+ on 127.0.0.1 with nothing to set up: a freshly
//! generated test PKI (with as many eUICC certificates as wanted), a SQLite
//! (or given) database, an operator, a profile type made from a GSMA TS.48
//! test package, and personalised profiles. `ferrosim demo`, `ferrosim bench`
//! and the end-to-end tests start one.

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
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, InventoryError, ProfileTypeImport};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::time::Timestamp;
use ferrosim_smdp::{Credential, Smdp, SmdpConfig};
use ferrosim_store::{SqlStore, StoreOptions};
use serde_json::Value;
use tempfile::TempDir;
use thiserror::Error;

use crate::telemetry::{Telemetry, TelemetryOptions};
use crate::{RunningServer, ServerError, ServerOptions, TlsIdentity};

/// The GSMA TS.48 v2 test profile package (SAIP DER), the sandbox's profile type.
pub const TS48_PACKAGE: &[u8] =
    include_bytes!("../../../testdata/upp/TS48V2-SAIP2-1-BERTLV-UNIQUE.der");

/// The sandbox operator's id.
pub const OPERATOR: &str = "sandbox-operator";
/// The sandbox profile type's name.
pub const PROFILE_TYPE: &str = "ts48";

/// Why a sandbox could not start.
#[derive(Debug, Error)]
pub enum SandboxError {
    /// Temporary files or the listener.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// PKI generation.
    #[error("test PKI: {0}")]
    Pki(#[from] ferrosim_pki::Error),
    /// Crypto (signing keys).
    #[error("keys: {0}")]
    Crypto(#[from] ferrosim_crypto::Error),
    /// SM-DP+ configuration.
    #[error("configuration: {0}")]
    Config(#[from] ferrosim_smdp::ConfigError),
    /// Database.
    #[error("database: {0}")]
    Store(#[from] ferrosim_smdp::store::StoreError),
    /// Seeding the operator, type and profiles.
    #[error("seeding: {0}")]
    Inventory(#[from] InventoryError),
    /// Starting the server.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// What the sandbox contains.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// eUICC certificates in the PKI (one per virtual device).
    pub euiccs: usize,
    /// Profiles generated for [`PROFILE_TYPE`].
    pub profiles: u64,
    /// Operator callback URL.
    pub callback_url: Option<String>,
    /// Database URL; a SQLite file in the sandbox's directory when `None`.
    pub database_url: Option<String>,
    /// Store settings.
    pub store: StoreOptions,
    /// Order lifetime (default 30 days).
    pub order_ttl: Option<Duration>,
    /// Callback worker poll interval.
    pub callback_poll: Duration,
    /// Record activation telemetry (Prometheus `/metrics`, the dashboard,
    /// events in the database).
    pub telemetry: bool,
    /// Where the telemetry events go (with [`SandboxOptions::telemetry`]).
    pub telemetry_database: TelemetryDatabase,
    /// Record the audit trail in the sandbox's database.
    pub audit: bool,
    /// Per-client rate limits and lockouts.
    pub access: Option<crate::access::AccessPolicy>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            euiccs: 2,
            profiles: 5,
            callback_url: None,
            database_url: None,
            store: StoreOptions::default(),
            order_ttl: None,
            callback_poll: Duration::from_millis(50),
            telemetry: false,
            telemetry_database: TelemetryDatabase::default(),
            audit: false,
            access: None,
        }
    }
}

/// Where a sandbox's telemetry events are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TelemetryDatabase {
    /// On SQLite a database of their own beside the SM-DP+'s (a second file
    /// with its own writer, so that telemetry appends never wait in, or
    /// lengthen, the SM-DP+'s commits), as `ferrosim serve` does; on
    /// PostgreSQL the SM-DP+'s database.
    #[default]
    Own,
    /// The SM-DP+'s database, through its writer (on SQLite, one slot of
    /// the SM-DP+'s group commit per append).
    Shared,
    /// In memory (nothing written; isolates the SQL cost in measurements).
    Memory,
}

/// A running sandbox SM-DP+.
pub struct Sandbox {
    /// Holds the PKI files and the SQLite database.
    pub dir: TempDir,
    /// The PKI (CI, EUM, eUICCs, DP certificates and keys).
    pub pki: TestPki,
    /// Where the PKI was written, in the `ferrosim pki init` layout.
    pub pki_dir: PathBuf,
    /// The SM-DP+ logic, sharing the store with the server.
    pub smdp: Smdp<SqlStore>,
    /// The store.
    pub store: SqlStore,
    /// The server, until [`Sandbox::stop`].
    pub server: Option<RunningServer>,
    /// Its telemetry, when [`SandboxOptions::telemetry`] asked for it.
    pub telemetry: Option<Telemetry>,
    /// The database holding the telemetry events when it is not
    /// [`Sandbox::store`] ([`TelemetryDatabase::Own`] on SQLite).
    pub telemetry_store: Option<SqlStore>,
    /// `localhost:PORT`.
    pub address: String,
    /// The operator's ES2+ token.
    pub token: String,
    /// How every instance of this sandbox runs (TLS identity, callbacks).
    server_options: ServerOptions,
}

/// The sandbox's telemetry and, for [`TelemetryDatabase::Own`] on SQLite,
/// the database of its events (`NAME-telemetry.db` beside the SM-DP+'s, as
/// `ferrosim serve` does).
async fn start_telemetry(
    options: &SandboxOptions,
    store: &SqlStore,
    url: &str,
) -> Result<(Option<Telemetry>, Option<SqlStore>), SandboxError> {
    if !options.telemetry {
        return Ok((None, None));
    }
    let dict = ferrosim_telemetry::Dictionary::new();
    let t = |s| Telemetry::new(s, TelemetryOptions::default());
    Ok(match options.telemetry_database {
        TelemetryDatabase::Shared => (Some(t(store.telemetry(dict))), None),
        TelemetryDatabase::Memory => (
            Some(Telemetry::new(
                ferrosim_telemetry::MemTelemetryStore::with_dictionary(dict),
                TelemetryOptions::default(),
            )),
            None,
        ),
        TelemetryDatabase::Own => match ferrosim_store::telemetry_database_url(url) {
            Some(own_url) => {
                let own = SqlStore::connect(&own_url, &options.store).await?;
                (Some(t(own.telemetry(dict))), Some(own))
            }
            // PostgreSQL (writers do not queue behind each other).
            None => (Some(t(store.telemetry(dict))), None),
        },
    })
}

impl Sandbox {
    /// Generates, seeds and starts.
    pub async fn start(options: SandboxOptions) -> Result<Self, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("ferrosim-sandbox-")
            .tempdir()?;
        let pki = TestPki::generate(&TestPkiOptions {
            euicc_count: options.euiccs,
            smdp_address: "localhost".into(),
            ..TestPkiOptions::default()
        })?;
        let pki_dir = dir.path().join("pki");
        pki.write_to(&pki_dir)?;
        let url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("smdp.db").display()));
        let store = SqlStore::connect(&url, &options.store).await?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = format!("localhost:{}", listener.local_addr()?.port());
        let smdp = Smdp::new(
            smdp_config(&pki, &address, options.order_ttl)?,
            store.clone(),
        );
        let token = seed(&store, &options).await?;
        let mut server_options = ServerOptions::new(tls_identity(&pki));
        server_options.callbacks.poll_interval = options.callback_poll;
        server_options.callbacks.initial_backoff = Duration::from_millis(100);
        let (telemetry, telemetry_store) = start_telemetry(&options, &store, &url).await?;
        server_options.telemetry = telemetry.clone();
        server_options.access = options.access.map(crate::access::Access::new);
        if options.audit {
            server_options.audit = crate::audit::Auditor::start(Arc::new(store.clone()));
        }
        let server = crate::start(listener, smdp.clone(), server_options.clone()).await?;
        Ok(Self {
            dir,
            pki,
            pki_dir,
            smdp,
            store,
            server: Some(server),
            telemetry,
            telemetry_store,
            address,
            token,
            server_options,
        })
    }

    /// Starts one more instance of the same SM-DP+ (same address, keys and
    /// database) on another port: what a second stateless instance behind a
    /// load balancer is.
    pub async fn start_instance(&self) -> Result<RunningServer, SandboxError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Ok(crate::start(listener, self.smdp.clone(), self.server_options.clone()).await?)
    }

    /// `https://localhost:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// The CI certificate as PEM: the trust anchor of the DPtls certificate.
    pub fn ci_pem(&self) -> String {
        self.pki.ci.certificate_pem()
    }

    /// Stops the server; the store stays usable.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(2)).await;
        }
    }
}

/// The DPtls certificate and key of a test PKI.
pub fn tls_identity(pki: &TestPki) -> TlsIdentity {
    TlsIdentity {
        cert_chain_der: vec![pki.dp_tls.certificate.der().to_vec()],
        key_pkcs8_der: pki.dp_tls.key_pkcs8_der().to_vec(),
    }
}

/// The SM-DP+ configuration for a test PKI.
pub fn smdp_config(
    pki: &TestPki,
    address: &str,
    order_ttl: Option<Duration>,
) -> Result<SmdpConfig, SandboxError> {
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
pub async fn seed(store: &SqlStore, options: &SandboxOptions) -> Result<String, SandboxError> {
    let op = OperatorId::new(OPERATOR).map_err(|e| SandboxError::Io(std::io::Error::other(e)))?;
    let token = inventory::add_operator(
        store,
        op.clone(),
        "Sandbox Operator".into(),
        options.callback_url.clone(),
        &mut rand::rng(),
    )
    .await?;
    inventory::import_profile_type(
        store,
        ProfileTypeImport {
            operator: op.clone(),
            name: PROFILE_TYPE.into(),
            package: TS48_PACKAGE.to_vec(),
            service_provider_name: Some("ferrosim sandbox".into()),
            profile_name: Some("TS.48 test profile".into()),
            profile_class: ProfileClass::Operational,
            policy_rules: PolicyRules::default(),
            owner_mcc_mnc: None,
            fallback_allowed: false,
        },
        Timestamp::now(),
    )
    .await?;
    let bad = |e: ferrosim_saip::Error| SandboxError::Io(std::io::Error::other(e));
    // ICCIDs 8944 0000 000n nnnn nn + Luhn, IMSIs 001-01-n; in chunks so one
    // transaction stays small.
    let mut done = 0;
    while done < options.profiles {
        let n = (options.profiles - done).min(5_000);
        let iccid = Iccid::from_body(&format!("89440000000{:07}", done + 1))
            .map_err(ferrosim_saip::Error::from)
            .map_err(bad)?;
        let imsi = Imsi::with_mnc_len(&format!("00101{:010}", done + 1), 2)
            .map_err(ferrosim_saip::Error::from)
            .map_err(bad)?;
        let range = inventory::ProfileRange {
            count: n,
            first_iccid: iccid,
            first_imsi: imsi,
        };
        inventory::generate_profiles(
            store,
            &op,
            PROFILE_TYPE,
            &range,
            &mut rand::rng(),
            Timestamp::now(),
        )
        .await?;
        done += n;
    }
    Ok(token)
}

/// An operator endpoint on 127.0.0.1 that records every ES2+ callback it
/// receives (plain HTTP; the sandbox's operator can point its callback URL here).
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
    pub async fn start() -> std::io::Result<Self> {
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
