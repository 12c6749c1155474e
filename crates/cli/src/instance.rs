//! Opening an SM-DP+ instance from its configuration: the store, the PKI
//! and the SM-DP+ logic.
//!
//! Only `ferrosim init` and `ferrosim serve` may create an instance (the data
//! directory 0700, the database, a test PKI when none is configured, the
//! stored SM-DP+ address); every other command opens an existing one
//! ([`Access::Existing`]) and refuses, naming the place it looked at, when
//! there is none. A database holds an instance once its SM-DP+ address is
//! stored (setting [`SMDP_ADDRESS`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ferrosim_pki::Oid;
use ferrosim_server::bootstrap::{
    Pkcs11Keys, PkiPaths, SmdpIdentity, ensure_test_pki, load_identity,
};
use ferrosim_server::{CallbackOptions, ServerOptions};
use ferrosim_smdp::order::OrderPolicy;
use ferrosim_smdp::{Smdp, SmdpConfig};
use ferrosim_store::{IntegrityCheck, SqlStore, StoreOptions};

use crate::config::InstanceConfig;

/// Setting holding the instance's SM-DP+ address (`host[:port]`).
pub const SMDP_ADDRESS: &str = "smdp_address";
/// Setting saying where the address came from: `configured` (given with
/// `--smdp-address`, `FERROSIM_SMDP_ADDRESS` or the TOML file; kept until
/// another is configured) or `listen` (`localhost:<listen port>`, following
/// the listen port at each start).
pub const SMDP_ADDRESS_SOURCE: &str = "smdp_address_source";

/// Whether a command may create the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `init` and `serve`: create what is missing.
    Create,
    /// Every other command: the instance must exist.
    Existing,
    /// Readers of recorded data (`report sla`): the database must exist but
    /// need not hold an initialised instance (`ferrosim demo`'s does not).
    Recorded,
}

/// An opened instance.
pub struct Instance {
    /// The SM-DP+ logic over the store.
    pub smdp: Smdp<SqlStore>,
    /// The store.
    pub store: SqlStore,
    /// Server options (TLS identity, callbacks).
    pub server_options: ServerOptions,
    /// The SM-DP+ address of the instance.
    pub smdp_address: String,
    /// CRL reading and fetching to spawn when serving (revocation on).
    pub crl_refresh: Option<crate::revocation_config::CrlRefresh>,
}

/// Where an instance is looked for, for messages: the data directory and
/// the database URL (without its password).
pub fn location(cfg: &InstanceConfig) -> String {
    format!(
        "data directory {} (database {})",
        cfg.data_dir.display(),
        redact(&cfg.database_url())
    )
}

/// The file of a `sqlite:` URL (`None` for PostgreSQL and `:memory:`).
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn no_instance(cfg: &InstanceConfig, why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no ferrosim instance at {}: {why}. Create one with `ferrosim init` (or start \
         `ferrosim serve`), or point --data-dir, --database-url or --config at an existing one",
        location(cfg)
    )
}

/// Connects to the instance's database with its key-encryption key
/// (`[secrets] kek_file`), so that profile secrets are sealed (see
/// [`crate::kek::apply`]). With [`Access::Existing`] it refuses when the
/// SQLite file is missing or the database holds no instance; with
/// [`Access::Create`] it creates the data directory (0700) and the
/// database.
pub async fn open_store(cfg: &InstanceConfig, access: Access) -> anyhow::Result<SqlStore> {
    let store = connect_store(cfg, access).await?;
    crate::kek::apply(store, &cfg.secrets).await
}

/// [`open_store`] without the key-encryption key: for what reads no
/// profile secret (`--print-config`, `keys status`).
pub async fn connect_store(cfg: &InstanceConfig, access: Access) -> anyhow::Result<SqlStore> {
    let url = cfg.database_url();
    match access {
        Access::Existing | Access::Recorded => {
            if let Some(file) = sqlite_file(&url)
                && !file.exists()
            {
                return Err(no_instance(
                    cfg,
                    &format!("{} does not exist", file.display()),
                ));
            }
        }
        Access::Create => create_data_dir(cfg)?,
    }
    let options = StoreOptions {
        durability: cfg.durability.parse().map_err(anyhow::Error::msg)?,
        max_connections: cfg.max_db_connections,
        // `serve` and `init` refuse a damaged SQLite database before they
        // use it; other commands fail on the page they cannot read.
        integrity_check: match access {
            Access::Create => IntegrityCheck::Quick,
            Access::Existing | Access::Recorded => IntegrityCheck::Off,
        },
        ..StoreOptions::default()
    };
    let store = SqlStore::connect(&url, &options)
        .await
        .with_context(|| format!("opening database {}", redact(&url)))?;
    if access == Access::Existing && store.setting(SMDP_ADDRESS).await?.is_none() {
        store.close().await;
        return Err(no_instance(
            cfg,
            "the database was never initialised (no SM-DP+ address stored)",
        ));
    }
    Ok(store)
}

/// Settings of the telemetry database of its own (`[telemetry]
/// database_url`): the instance's durability, a small pool (one writer task
/// appends in batches; the dashboard and reports read).
pub fn telemetry_store_options(cfg: &InstanceConfig) -> anyhow::Result<StoreOptions> {
    Ok(StoreOptions {
        durability: cfg.durability.parse().map_err(anyhow::Error::msg)?,
        max_connections: cfg.max_db_connections.clamp(1, 4),
        sqlite_readers: 2,
        integrity_check: IntegrityCheck::Off,
        ..StoreOptions::default()
    })
}

/// Creates the data directory 0700 when the database or the PKI lives in
/// it; warns when an existing one is open to other users.
fn create_data_dir(cfg: &InstanceConfig) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = &cfg.data_dir;
    let db_inside = sqlite_file(&cfg.database_url()).is_some_and(|f| f.starts_with(dir));
    let pki_inside = !cfg.pki.explicit_files() && cfg.pki_dir().starts_with(dir);
    if !db_inside && !pki_inside {
        return Ok(());
    }
    if dir.exists() {
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                data_dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory holds subscriber keys and is open to other users: chmod 700 it"
            );
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// The SM-DP+ address stored in the instance.
pub async fn stored_address(store: &SqlStore) -> anyhow::Result<Option<String>> {
    Ok(store.setting(SMDP_ADDRESS).await?)
}

/// For `init` and `serve`: decides the instance's SM-DP+ address and stores
/// it. A configured address wins (and replaces a stored one, with a
/// warning); otherwise a stored configured address stays; otherwise it is
/// `localhost:<port>` of the listen address.
pub async fn settle_address(
    store: &SqlStore,
    cfg: &InstanceConfig,
    listen_port: u16,
) -> anyhow::Result<String> {
    let stored = store.setting(SMDP_ADDRESS).await?;
    let source = store.setting(SMDP_ADDRESS_SOURCE).await?;
    let (address, from) = match (&cfg.smdp_address, &stored, source.as_deref()) {
        (Some(configured), _, _) => (configured.clone(), "configured"),
        (None, Some(kept), Some("configured")) => (kept.clone(), "configured"),
        (None, _, _) if listen_port == 0 => bail!(
            "the SM-DP+ address cannot follow listen port 0: give --smdp-address HOST[:PORT] \
             (or FERROSIM_SMDP_ADDRESS / smdp_address in the configuration)"
        ),
        (None, _, _) => (format!("localhost:{listen_port}"), "listen"),
    };
    if source.as_deref() != Some(from) {
        store.set_setting(SMDP_ADDRESS_SOURCE, from).await?;
    }
    match &stored {
        Some(old) if *old == address => {}
        Some(old) => {
            tracing::warn!(
                old = %old,
                new = %address,
                "SM-DP+ address changed: activation codes issued for the old address no longer reach this instance"
            );
            store.set_setting(SMDP_ADDRESS, &address).await?;
        }
        None => store.set_setting(SMDP_ADDRESS, &address).await?,
    }
    Ok(address)
}

/// For commands on an existing instance: the stored SM-DP+ address; an
/// explicitly configured one must match it.
pub async fn existing_address(store: &SqlStore, cfg: &InstanceConfig) -> anyhow::Result<String> {
    let stored = stored_address(store)
        .await?
        .with_context(|| format!("no SM-DP+ address stored at {}", location(cfg)))?;
    if let Some(configured) = &cfg.smdp_address
        && *configured != stored
    {
        bail!(
            "the instance's SM-DP+ address is {stored}, but {configured} is configured \
             (--smdp-address, FERROSIM_SMDP_ADDRESS or the configuration file): change the \
             instance's address with `ferrosim init --smdp-address {configured}` or by starting \
             `ferrosim serve` with it, or drop the setting here"
        );
    }
    Ok(stored)
}

/// Assembles the SM-DP+ over an opened store: loads the PKI (with
/// [`Access::Create`], first generating a test PKI when none is configured
/// or present).
pub fn assemble(
    cfg: &InstanceConfig,
    store: SqlStore,
    smdp_address: &str,
    access: Access,
) -> anyhow::Result<Instance> {
    let mut identity = load_pki(cfg, smdp_address, access)?;
    let crl_refresh = cfg.revocation.apply(&mut identity.trust)?;
    let mut config = SmdpConfig::new(
        smdp_address.to_owned(),
        identity.dpauth,
        identity.dppb,
        identity.trust,
    )?;
    config.policy = OrderPolicy {
        max_confirmation_attempts: cfg.orders.max_confirmation_attempts,
        max_download_attempts: cfg.orders.max_download_attempts,
        order_ttl: Duration::from_secs(cfg.orders.ttl_hours.saturating_mul(3600)),
    };
    config.session_ttl = Duration::from_secs(cfg.orders.session_ttl_secs);
    config.max_pending_sessions = cfg.orders.max_pending_sessions;
    let mut server_options = ServerOptions::new(identity.tls);
    server_options.http = cfg.http.limits();
    server_options.housekeeping_interval =
        Duration::from_secs(cfg.orders.housekeeping_interval_secs);
    server_options.secrets_retention = cfg.secrets.retention()?;
    server_options.client_auth = cfg
        .es2_client_auth
        .iter()
        .map(crate::config::ClientAuthConfig::load)
        .collect::<anyhow::Result<_>>()?;
    server_options.callbacks = CallbackOptions {
        poll_interval: Duration::from_millis(cfg.callbacks.poll_ms),
        initial_backoff: Duration::from_millis(cfg.callbacks.initial_backoff_ms),
        max_backoff: Duration::from_secs(cfg.callbacks.max_backoff_secs),
        accept_invalid_certs: cfg.callbacks.accept_invalid_certs,
        ..CallbackOptions::default()
    };
    Ok(Instance {
        smdp: Smdp::new(config, store.clone()),
        store,
        server_options,
        smdp_address: smdp_address.to_owned(),
        crl_refresh,
    })
}

/// Opens an existing instance with its stored SM-DP+ address.
pub async fn open_existing(cfg: &InstanceConfig) -> anyhow::Result<Instance> {
    let store = open_store(cfg, Access::Existing).await?;
    let address = match existing_address(&store, cfg).await {
        Ok(a) => a,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    assemble(cfg, store, &address, Access::Existing)
}

fn load_pki(
    cfg: &InstanceConfig,
    smdp_address: &str,
    access: Access,
) -> anyhow::Result<SmdpIdentity> {
    let p = &cfg.pki;
    let paths = if p.explicit_files() {
        let need = |v: &Option<std::path::PathBuf>, name: &str| {
            v.clone()
                .with_context(|| format!("pki.{name} is required when certificate files are given"))
        };
        PkiPaths {
            ci_certs: if p.ci_certs.is_empty() {
                anyhow::bail!("pki.ci_certs is required when certificate files are given");
            } else {
                p.ci_certs.clone()
            },
            dpauth_cert: need(&p.dpauth_cert, "dpauth_cert")?,
            dpauth_key: p.dpauth_key.clone().unwrap_or_default(),
            dppb_cert: need(&p.dppb_cert, "dppb_cert")?,
            dppb_key: p.dppb_key.clone().unwrap_or_default(),
            tls_cert: need(&p.tls_cert, "tls_cert")?,
            tls_key: need(&p.tls_key, "tls_key")?,
        }
    } else {
        let dir = cfg.pki_dir();
        let oid = p
            .smdp_oid
            .as_deref()
            .map(Oid::parse)
            .transpose()
            .context("pki.smdp_oid")?;
        match access {
            Access::Create => {
                ensure_test_pki(&dir, smdp_address, oid.as_ref(), 4)?;
            }
            Access::Existing | Access::Recorded => {
                if !PkiPaths::in_dir(&dir).dpauth_cert.exists() {
                    bail!(
                        "the instance's PKI is missing: {} holds no SM-DP+ certificates \
                         (`ferrosim init` or `ferrosim serve` generate a test PKI there; \
                         --pki-dir or [pki] name another)",
                        dir.display()
                    );
                }
            }
        }
        let mut paths = PkiPaths::in_dir(&dir);
        if !p.ci_certs.is_empty() {
            paths.ci_certs = p.ci_certs.clone();
        }
        paths
    };
    let pkcs11 = match &cfg.pkcs11 {
        Some(k) => Some(Pkcs11Keys {
            module: k.module.clone(),
            token: k.token.clone(),
            pin: zeroize::Zeroizing::new(std::env::var(&k.pin_env).with_context(|| {
                format!(
                    "the PKCS#11 PIN must be in the environment variable {}",
                    k.pin_env
                )
            })?),
            dpauth_label: k.dpauth_label.clone(),
            dppb_label: k.dppb_label.clone(),
        }),
        None => None,
    };
    let identity = load_identity(&paths, pkcs11.as_ref()).with_context(|| {
        format!(
            "loading the SM-DP+ certificates and keys ({})",
            describe(&paths)
        )
    })?;
    if let Some(k) = &pkcs11 {
        tracing::info!(
            module = %k.module.display(),
            token = %k.token,
            dpauth = %k.dpauth_label,
            dppb = %k.dppb_label,
            "DPauth and DPpb keys in PKCS#11 token"
        );
    }
    Ok(identity)
}

/// Where the DPauth certificate is, for messages.
fn describe(paths: &PkiPaths) -> String {
    Path::new(&paths.dpauth_cert)
        .parent()
        .and_then(Path::parent)
        .map_or_else(
            || paths.dpauth_cert.display().to_string(),
            |d| d.display().to_string(),
        )
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{redact, sqlite_file};

    #[test]
    fn sqlite_files_of_urls() {
        assert_eq!(sqlite_file("sqlite:d/f.db"), Some("d/f.db".into()));
        assert_eq!(
            sqlite_file("sqlite:///abs/f.db?mode=rwc"),
            Some("/abs/f.db".into())
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
        assert_eq!(sqlite_file("sqlite:"), None);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
