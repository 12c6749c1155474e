//! Opening an SM-DP+ instance from its configuration: the store, the PKI
//! (generated on first start when there is none) and the SM-DP+ logic.

use std::time::Duration;

use anyhow::Context;
use ferrosim_pki::Oid;
use ferrosim_server::bootstrap::{
    Pkcs11Keys, PkiPaths, SmdpIdentity, ensure_test_pki, load_identity,
};
use ferrosim_server::{CallbackOptions, ServerOptions};
use ferrosim_smdp::order::OrderPolicy;
use ferrosim_smdp::{Smdp, SmdpConfig};
use ferrosim_store::{SqlStore, StoreOptions};

use crate::config::InstanceConfig;

/// An opened instance.
pub struct Instance {
    /// The SM-DP+ logic over the store.
    pub smdp: Smdp<SqlStore>,
    /// The store.
    pub store: SqlStore,
    /// Server options (TLS identity, callbacks).
    pub server_options: ServerOptions,
}

/// Connects to the database only (for commands that need no keys).
pub async fn open_store(cfg: &InstanceConfig) -> anyhow::Result<SqlStore> {
    let options = StoreOptions {
        durability: cfg.durability.parse().map_err(anyhow::Error::msg)?,
        max_connections: cfg.max_db_connections,
        ..StoreOptions::default()
    };
    let url = cfg.database_url();
    SqlStore::connect(&url, &options)
        .await
        .with_context(|| format!("opening database {}", redact(&url)))
}

/// Opens the store, loads (or first generates) the PKI, and assembles the SM-DP+
/// with the given address.
pub async fn open(cfg: &InstanceConfig, smdp_address: &str) -> anyhow::Result<Instance> {
    let store = open_store(cfg).await?;
    let identity = load_pki(cfg, smdp_address)?;
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
    let mut server_options = ServerOptions::new(identity.tls);
    server_options.http = cfg.http.limits();
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
    })
}

fn load_pki(cfg: &InstanceConfig, smdp_address: &str) -> anyhow::Result<SmdpIdentity> {
    let p = &cfg.pki;
    let explicit = p.dpauth_cert.is_some() || p.dppb_cert.is_some() || p.tls_cert.is_some();
    let paths = if explicit {
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
        ensure_test_pki(&dir, smdp_address, oid.as_ref(), 4)?;
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
    let identity = load_identity(&paths, pkcs11.as_ref())?;
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
    use super::redact;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
    }
}
