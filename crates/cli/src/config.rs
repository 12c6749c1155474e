//! Configuration of an SM-DP+ instance (`ferrosim serve` and the
//! administrative commands that open the same database and PKI).
//!
//! Filled in this order, each step overriding the one before: built-in
//! defaults, the TOML file (`--config`), environment (`FERROSIM_…`), flags.
//! `ferrosim serve --print-config` shows the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Flags (and their environment variables) shared by every command that
/// opens an instance. They are global to the command family: `ferrosim
/// operator --data-dir D add` and `ferrosim operator add --data-dir D` are
/// the same.
#[derive(Debug, Clone, Args, Default)]
pub struct InstanceArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "FERROSIM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded database and the generated test PKI.
    #[arg(long, global = true, env = "FERROSIM_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite:PATH` or `postgres://USER@HOST/DB`.
    #[arg(long, global = true, env = "FERROSIM_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// The SM-DP+ address devices use (`host[:port]`), as in activation
    /// codes; stored in the instance by `init`/`serve` (default
    /// `localhost:<listen port>`).
    #[arg(
        long,
        global = true,
        env = "FERROSIM_SMDP_ADDRESS",
        value_name = "HOST[:PORT]"
    )]
    pub smdp_address: Option<String>,
    /// Directory with the PKI in the `ferrosim pki init` layout.
    #[arg(long, global = true, env = "FERROSIM_PKI_DIR", value_name = "DIR")]
    pub pki_dir: Option<PathBuf>,
    /// SQLite commit durability: `full` (survives power loss) or `normal` (survives a crash of the process).
    #[arg(
        long,
        global = true,
        env = "FERROSIM_DURABILITY",
        value_name = "full|normal"
    )]
    pub durability: Option<String>,
    /// File holding the key-encryption key that protects profile secrets
    /// at rest (`ferrosim keys init` makes one); same as `[secrets] kek_file`.
    #[arg(long, global = true, env = "FERROSIM_KEK_FILE", value_name = "FILE")]
    pub kek_file: Option<PathBuf>,
}

/// The resolved configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// SM-DP+ address; default `localhost:<listen port>`.
    pub smdp_address: Option<String>,
    /// Database URL; default `sqlite:<data_dir>/ferrosim.db`.
    pub database_url: Option<String>,
    /// SQLite durability (`full` or `normal`).
    pub durability: String,
    /// PostgreSQL pool size.
    pub max_db_connections: u32,
    /// Certificates and keys.
    pub pki: PkiConfig,
    /// DPauth/DPpb keys in a PKCS#11 token (the PIN comes from the environment).
    pub pkcs11: Option<Pkcs11Config>,
    /// Order and session limits.
    pub orders: OrdersConfig,
    /// ES2+ callback delivery.
    pub callbacks: CallbacksConfig,
    /// Timeouts and the connection limit of the HTTPS listener.
    pub http: HttpConfig,
    /// Operators that may authenticate to ES2+ with a TLS client certificate.
    pub es2_client_auth: Vec<ClientAuthConfig>,
    /// Activation telemetry of `serve`.
    pub telemetry: TelemetryConfig,
    /// CRLs the SM-DP+ checks eUICC and EUM certificates against.
    pub revocation: crate::revocation_config::RevocationConfig,
    /// The eIM (SGP.32): ESipa, its REST API, its key.
    pub eim: EimSettings,
    /// Fleet control (off without `fleet.config`).
    pub fleet: crate::fleet_serve::FleetSettings,
    /// The audit trail: recording, signed checkpoints.
    pub audit: crate::audit_cmd::AuditConfig,
    /// Per-client rate limits and lockouts.
    pub access: crate::access_config::AccessConfig,
    /// Profile secrets: how long installed profiles keep them.
    pub secrets: crate::secrets_config::SecretsConfig,
}

/// The eIM served beside the SM-DP+ (ESipa on the same HTTPS listener,
/// its REST API under `/api/v1/eim`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EimSettings {
    /// Serve the eIM.
    pub enabled: bool,
    /// The eIM id devices know it by (default: `eim.` and the SM-DP+ host).
    pub eim_id: Option<String>,
    /// The eIM certificate (PEM); default `<pki dir>/eIM/eim.pem`, generated
    /// with its key on first start when missing.
    pub certificate: Option<PathBuf>,
    /// Its key (PEM); default `<pki dir>/eIM/eim.key.pem`.
    pub key: Option<PathBuf>,
    /// The eIM key's label in the `[pkcs11]` token (instead of the key file).
    pub pkcs11_label: Option<String>,
    /// Also serve ESipa over PLAIN HTTP on this address (a lab only).
    pub lab_plain_http_listen: Option<SocketAddr>,
    /// Relay indirect downloads to other SM-DP+s over HTTPS (the instance's
    /// own SM-DP+ is always reached in process).
    pub relay_remote: bool,
    /// CA certificates the relay trusts for other SM-DP+s (default: the
    /// instance's CI certificates).
    pub relay_trust: Vec<PathBuf>,
}

impl Default for EimSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            eim_id: None,
            certificate: None,
            key: None,
            pkcs11_label: None,
            lab_plain_http_listen: None,
            relay_remote: true,
            relay_trust: Vec::new(),
        }
    }
}

/// One operator's ES2+ client-certificate credential: the CA that issues
/// its client certificates, or one pinned certificate (PEM or DER file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// The operator id (its `functionRequesterIdentifier`).
    pub operator: String,
    /// CA certificate file: certificates it issued (client use, valid now) are the operator's.
    pub ca: Option<PathBuf>,
    /// Certificate file: exactly this certificate (valid now) is the operator's.
    pub certificate: Option<PathBuf>,
}

impl ClientAuthConfig {
    /// Reads the file into the server's form.
    pub fn load(&self) -> anyhow::Result<ferrosim_server::client_auth::OperatorClientAuth> {
        use ferrosim_server::client_auth::{ClientAnchor, OperatorClientAuth};
        let operator = self
            .operator
            .parse()
            .map_err(|e| anyhow::anyhow!("es2_client_auth: operator `{}`: {e}", self.operator))?;
        let (path, pinned) = match (&self.ca, &self.certificate) {
            (Some(ca), None) => (ca, false),
            (None, Some(cert)) => (cert, true),
            _ => bail!(
                "es2_client_auth for operator {}: give exactly one of `ca` and `certificate`",
                self.operator
            ),
        };
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "es2_client_auth for operator {}: reading {}",
                self.operator,
                path.display()
            )
        })?;
        let der = if ferrosim_pki::load::is_pem(&bytes) {
            pem::parse_many(&bytes)
                .ok()
                .and_then(|blocks| blocks.into_iter().find(|b| b.tag() == "CERTIFICATE"))
                .map(pem::Pem::into_contents)
                .with_context(|| {
                    format!(
                        "es2_client_auth for operator {}: no PEM CERTIFICATE in {}",
                        self.operator,
                        path.display()
                    )
                })?
        } else {
            bytes
        };
        Ok(OperatorClientAuth {
            operator,
            anchor: if pinned {
                ClientAnchor::Pinned(der)
            } else {
                ClientAnchor::Ca(der)
            },
        })
    }
}

/// Activation telemetry: `/metrics`, the dashboard and its API, events in
/// the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Record telemetry and serve `/metrics` and `/dashboard`.
    pub enabled: bool,
    /// Days events are kept in the database.
    pub retention_days: u32,
    /// Calls waiting for the telemetry writer; beyond, they are dropped and
    /// counted (`ferrosim_telemetry_events_dropped_total`).
    pub queue: usize,
    /// Where the events are stored. Unset: on SQLite a file of their own
    /// beside the instance's database (`ferrosim.db` ->
    /// `ferrosim-telemetry.db`), with its own writer, so that telemetry
    /// never waits in or lengthens the SM-DP+'s commits; on PostgreSQL the
    /// instance's database. Set it to the instance's own URL to keep them
    /// there on SQLite too.
    pub database_url: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention_days: 90,
            queue: 16_384,
            database_url: None,
        }
    }
}

impl TelemetryConfig {
    /// The database of the events of an instance whose own database is at
    /// `instance_url`; `None` when it is that database.
    pub fn own_database_url(&self, instance_url: &str) -> Option<String> {
        match &self.database_url {
            Some(url) if url == instance_url => None,
            Some(url) => Some(url.clone()),
            None => ferrosim_store::telemetry_database_url(instance_url),
        }
    }

    /// The telemetry of an instance on `store` (whose URL is `instance_url`),
    /// or `None` when disabled; with the database of its own it opened, if
    /// any (close it after the server).
    pub async fn build(
        &self,
        store: &ferrosim_store::SqlStore,
        instance_url: &str,
        store_options: &ferrosim_store::StoreOptions,
    ) -> anyhow::Result<
        Option<(
            ferrosim_server::telemetry::Telemetry,
            Option<ferrosim_store::SqlStore>,
        )>,
    > {
        use anyhow::Context;
        use ferrosim_server::telemetry::{Telemetry, TelemetryOptions};
        if !self.enabled {
            return Ok(None);
        }
        if self.retention_days == 0 || self.queue == 0 {
            anyhow::bail!("[telemetry] retention_days and queue must be at least 1");
        }
        let options = TelemetryOptions {
            retention: ferrosim_telemetry::Retention {
                keep: std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400),
            },
            queue: self.queue,
            ..TelemetryOptions::default()
        };
        let dict = ferrosim_telemetry::Dictionary::new();
        Ok(Some(match self.own_database_url(instance_url) {
            None => (Telemetry::new(store.telemetry(dict), options), None),
            Some(url) => {
                let own = ferrosim_store::SqlStore::connect(&url, store_options)
                    .await
                    .with_context(|| {
                        format!(
                            "opening the telemetry database {}",
                            crate::instance::redact(&url)
                        )
                    })?;
                (Telemetry::new(own.telemetry(dict), options), Some(own))
            }
        }))
    }
}

/// Timeouts and the connection limit of the HTTPS listener: slow or idle
/// clients are dropped so that they cannot hold connections forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Seconds for the TLS handshake and the first request's headers, and
    /// for each later HTTP/1.1 request's headers (also how long a kept-alive
    /// HTTP/1.1 connection may wait for its next request).
    pub header_timeout_secs: u64,
    /// Seconds for a request's whole body.
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay without a request in progress (HTTP/2).
    pub idle_timeout_secs: u64,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        let d = ferrosim_server::HttpLimits::default();
        Self {
            header_timeout_secs: d.header_timeout.as_secs(),
            body_timeout_secs: d.body_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
            max_connections: d.max_connections,
        }
    }
}

impl HttpConfig {
    /// As the server takes them.
    pub fn limits(&self) -> ferrosim_server::HttpLimits {
        ferrosim_server::HttpLimits {
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            body_timeout: std::time::Duration::from_secs(self.body_timeout_secs),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
        }
    }
}

/// Where certificates and keys are.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// A directory in the `ferrosim pki init` layout; default `<data_dir>/pki`,
    /// generated on first start when it holds no PKI and no files are given.
    pub dir: Option<PathBuf>,
    /// SM-DP+ OID for a generated PKI.
    pub smdp_oid: Option<String>,
    /// Trusted CI certificates (instead of the directory's).
    pub ci_certs: Vec<PathBuf>,
    /// CERT.DPauth.SIG file.
    pub dpauth_cert: Option<PathBuf>,
    /// DPauth key file.
    pub dpauth_key: Option<PathBuf>,
    /// CERT.DPpb.SIG file.
    pub dppb_cert: Option<PathBuf>,
    /// DPpb key file.
    pub dppb_key: Option<PathBuf>,
    /// TLS certificate (chain) file.
    pub tls_cert: Option<PathBuf>,
    /// TLS key file.
    pub tls_key: Option<PathBuf>,
    /// Serve even when the TLS certificate has expired, is not valid yet or
    /// does not name the SM-DP+ address (devices will refuse it; a loud
    /// warning is logged). `serve` refuses to start otherwise.
    pub allow_tls_mismatch: bool,
}

impl PkiConfig {
    /// Whether certificate files are named (instead of a PKI directory).
    pub fn explicit_files(&self) -> bool {
        self.dpauth_cert.is_some() || self.dppb_cert.is_some() || self.tls_cert.is_some()
    }
}

/// DPauth/DPpb keys in a PKCS#11 token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Module path, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Token label.
    pub token: String,
    /// Environment variable holding the user PIN.
    #[serde(default = "default_pin_env")]
    pub pin_env: String,
    /// Label of the DPauth key.
    #[serde(default = "default_dpauth_label")]
    pub dpauth_label: String,
    /// Label of the DPpb key.
    #[serde(default = "default_dppb_label")]
    pub dppb_label: String,
}

fn default_pin_env() -> String {
    "FERROSIM_PKCS11_PIN".into()
}
fn default_dpauth_label() -> String {
    "dpauth".into()
}
fn default_dppb_label() -> String {
    "dppb".into()
}

/// Order and session limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// Lifetime of an order from `downloadOrder`, in hours.
    pub ttl_hours: u64,
    /// Wrong confirmation codes before the order is terminated.
    pub max_confirmation_attempts: u32,
    /// Download sessions per order.
    pub max_download_attempts: u32,
    /// Lifetime of an ES9+ session, in seconds.
    pub session_ttl_secs: u64,
    /// Most ES9+ sessions waiting for `authenticateClient` at once; further
    /// `initiateAuthentication` calls are refused (8.8/4.2) meanwhile.
    pub max_pending_sessions: u64,
    /// Seconds between two housekeeping rounds of `serve` (orders expired,
    /// sessions purged, installed profiles' secrets purged).
    pub housekeeping_interval_secs: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            ttl_hours: 30 * 24,
            max_confirmation_attempts: 5,
            max_download_attempts: 10,
            session_ttl_secs: 600,
            max_pending_sessions: ferrosim_smdp::config::DEFAULT_MAX_PENDING_SESSIONS,
            housekeeping_interval_secs: 30,
        }
    }
}

/// ES2+ callback delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// Poll interval when idle, in milliseconds.
    pub poll_ms: u64,
    /// First retry delay, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Longest retry delay, in seconds.
    pub max_backoff_secs: u64,
    /// Accept operator endpoints with invalid certificates (tests only).
    pub accept_invalid_certs: bool,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            poll_ms: 250,
            initial_backoff_ms: 1000,
            max_backoff_secs: 3600,
            accept_invalid_certs: false,
        }
    }
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ferrosim-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            smdp_address: None,
            database_url: None,
            durability: "full".into(),
            max_db_connections: 16,
            pki: PkiConfig::default(),
            pkcs11: None,
            orders: OrdersConfig::default(),
            callbacks: CallbacksConfig::default(),
            http: HttpConfig::default(),
            es2_client_auth: Vec::new(),
            telemetry: TelemetryConfig::default(),
            revocation: crate::revocation_config::RevocationConfig::default(),
            eim: EimSettings::default(),
            fleet: crate::fleet_serve::FleetSettings::default(),
            audit: crate::audit_cmd::AuditConfig::default(),
            access: crate::access_config::AccessConfig::default(),
            secrets: crate::secrets_config::SecretsConfig::default(),
        }
    }
}

impl InstanceConfig {
    /// Defaults, then the file, then environment and flags (`args`).
    pub fn resolve(args: &InstanceArgs, listen: Option<SocketAddr>) -> anyhow::Result<Self> {
        let mut cfg = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(v) = &args.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &args.database_url {
            cfg.database_url = Some(v.clone());
        }
        if let Some(v) = &args.smdp_address {
            cfg.smdp_address = Some(v.clone());
        }
        if let Some(v) = &args.pki_dir {
            cfg.pki.dir = Some(v.clone());
        }
        if let Some(v) = &args.durability {
            cfg.durability = v.clone();
        }
        if let Some(v) = &args.kek_file {
            cfg.secrets.kek_file = Some(v.clone());
        }
        if let Some(v) = listen {
            cfg.listen = v;
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn check(&self) -> anyhow::Result<()> {
        self.durability
            .parse::<ferrosim_store::Durability>()
            .map_err(anyhow::Error::msg)?;
        if let Some(a) = &self.smdp_address
            && (a.trim().is_empty() || a.contains('/') || a.contains(' '))
        {
            bail!("smdp_address must be host[:port], not `{a}`");
        }
        let h = &self.http;
        if h.header_timeout_secs == 0 || h.body_timeout_secs == 0 || h.idle_timeout_secs == 0 {
            bail!("http timeouts must be at least 1 second");
        }
        if h.max_connections == 0 {
            bail!("http.max_connections must be at least 1");
        }
        if self.orders.max_confirmation_attempts == 0 || self.orders.max_download_attempts == 0 {
            bail!("order attempt limits must be at least 1");
        }
        if self.orders.housekeeping_interval_secs == 0 {
            bail!("orders.housekeeping_interval_secs must be at least 1");
        }
        self.secrets.check()?;
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("ferrosim.db").display()))
    }

    /// The PKI directory in effect.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("pki"))
    }

    /// As TOML, for `--print-config`.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_database_defaults_beside_sqlite_and_inside_postgres() {
        let mut t = TelemetryConfig::default();
        let main = "sqlite:/srv/y/ferrosim.db";
        assert_eq!(
            t.own_database_url(main).as_deref(),
            Some("sqlite:/srv/y/ferrosim-telemetry.db")
        );
        assert_eq!(t.own_database_url("postgres://u@h/db"), None);
        assert_eq!(t.own_database_url("sqlite::memory:"), None);
        t.database_url = Some(main.into());
        assert_eq!(t.own_database_url(main), None);
        t.database_url = Some("sqlite:/var/events.db".into());
        assert_eq!(
            t.own_database_url(main).as_deref(),
            Some("sqlite:/var/events.db")
        );
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/x\"\nlisten = \"0.0.0.0:9443\"\n[orders]\nttl_hours = 2\n\
             [http]\nbody_timeout_secs = 5\nmax_connections = 10\n",
        )
        .unwrap();
        let args = InstanceArgs {
            config: Some(file),
            data_dir: Some("/srv/y".into()),
            ..Default::default()
        };
        let cfg = InstanceConfig::resolve(&args, None).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/y"));
        assert_eq!(cfg.listen.port(), 9443);
        assert_eq!(cfg.orders.ttl_hours, 2);
        assert_eq!(cfg.http.limits().body_timeout.as_secs(), 5);
        assert_eq!(cfg.http.limits().max_connections, 10);
        assert_eq!(cfg.http.header_timeout_secs, 10);
        assert_eq!(cfg.database_url(), "sqlite:/srv/y/ferrosim.db");
        let printed = cfg.to_toml().unwrap();
        assert!(printed.contains("ttl_hours = 2"));
    }

    #[test]
    fn bad_files_and_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "dataa_dir = 1\n").unwrap();
        let args = InstanceArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        assert!(InstanceConfig::resolve(&args, None).is_err());
        std::fs::write(&file, "\u{0}\u{1}garbage[[[").unwrap();
        assert!(InstanceConfig::resolve(&args, None).is_err());
        let args = InstanceArgs {
            durability: Some("sometimes".into()),
            ..Default::default()
        };
        assert!(InstanceConfig::resolve(&args, None).is_err());
        for bad in [
            "[http]\nheader_timeout_secs = 0\n",
            "[http]\nmax_connections = 0\n",
            "[http]\nbody_timeout_secs = -1\n",
            "[http]\nslowloris = true\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            let args = InstanceArgs {
                config: Some(file.clone()),
                ..Default::default()
            };
            assert!(InstanceConfig::resolve(&args, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_auth_entries() {
        let dir = tempfile::tempdir().unwrap();
        let pki =
            ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions::default()).unwrap();
        let pem_file = dir.path().join("ca.pem");
        std::fs::write(&pem_file, pki.ci.certificate_pem()).unwrap();
        let der_file = dir.path().join("client.der");
        std::fs::write(&der_file, pki.dp_tls.certificate.der()).unwrap();
        let text_file = dir.path().join("notes.pem");
        std::fs::write(
            &text_file,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(
            &file,
            format!(
                "[[es2_client_auth]]\noperator = \"acme\"\nca = {:?}\n\
                 [[es2_client_auth]]\noperator = \"acme\"\ncertificate = {:?}\n",
                pem_file, der_file
            ),
        )
        .unwrap();
        let args = InstanceArgs {
            config: Some(file),
            ..Default::default()
        };
        let cfg = InstanceConfig::resolve(&args, None).unwrap();
        let loaded: Vec<_> = cfg
            .es2_client_auth
            .iter()
            .map(|c| c.load().unwrap())
            .collect();
        assert_eq!(
            loaded[0].anchor,
            ferrosim_server::client_auth::ClientAnchor::Ca(pki.ci.certificate.der().to_vec())
        );
        assert_eq!(
            loaded[1].anchor,
            ferrosim_server::client_auth::ClientAnchor::Pinned(
                pki.dp_tls.certificate.der().to_vec()
            )
        );
        let entry =
            |ca: Option<&Path>, certificate: Option<&Path>, operator: &str| ClientAuthConfig {
                operator: operator.into(),
                ca: ca.map(Path::to_path_buf),
                certificate: certificate.map(Path::to_path_buf),
            };
        for (bad, why) in [
            (entry(None, None, "acme"), "exactly one"),
            (
                entry(Some(&pem_file), Some(&der_file), "acme"),
                "exactly one",
            ),
            (
                entry(Some(&dir.path().join("missing.pem")), None, "acme"),
                "missing.pem",
            ),
            (entry(Some(&text_file), None, "acme"), "no PEM CERTIFICATE"),
            (entry(Some(&pem_file), None, ""), "operator"),
        ] {
            let e = format!("{:#}", bad.load().unwrap_err());
            assert!(e.contains(why), "{e}");
        }
    }
}
