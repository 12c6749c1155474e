//! The fleet control plane in `ferrosim serve` (`[fleet]` in the instance
//! configuration): the driver over the instance's database and eIM, its
//! REST API, and the operator webhooks.
//!
//! Each carrier's `es2_credentials` reference in the fleet configuration
//! names how the driver reaches the carrier's SM-DP+ over ES2+:
//! `file:PATH` is a TOML file with `operator` (the
//! functionRequesterIdentifier), `token` (the bearer token), and optionally
//! `url` (default `https://<smdp_address>`) and `trust` (CA certificate
//! files; default the instance's CI certificates). Other schemes are not
//! read by `serve`: that carrier's ES2+ actions fail as unreachable and are
//! retried. A carrier created or changed over the REST API is read the same
//! way (a relative `file:` path from the fleet configuration's directory)
//! when the fleet first needs its client.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ferrosim_eim::Eim;
use ferrosim_fleet::FleetConfig;
use ferrosim_server::es2_client::Es2Client;
use ferrosim_server::fleet::{FleetDriver, FleetEvents, FleetOptions, WebhookEndpoint, Webhooks};
use ferrosim_store::{SqlFleetStore, SqlStore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::InstanceConfig;
use crate::instance::Instance;

/// `[fleet]`: fleet control in `serve` (off without `config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// The fleet configuration (TOML: carriers, groups, rules; see
    /// docs/FLEET.md). Fleet control is off without it.
    pub config: Option<PathBuf>,
    /// Longest time between two polls of the fleet (ms; default 1000).
    pub tick_ms: Option<u64>,
    /// Webhooks to operators for device and rollout events.
    pub webhook: Vec<WebhookSettings>,
    /// Obsolete and ignored: webhook delivery cursors are kept in the
    /// instance's database, shared by every instance on it (a warning is
    /// logged when set). Still accepted so older configurations load.
    pub webhook_cursor_file: Option<PathBuf>,
}

/// `[[fleet.webhook]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// A name.
    pub name: String,
    /// Where to POST events.
    pub url: String,
    /// File holding the shared HMAC secret (at least 16 bytes).
    pub secret_file: PathBuf,
    /// Extra CA certificates to trust for the endpoint (PEM files).
    #[serde(default)]
    pub trust: Vec<PathBuf>,
}

/// An ES2+ credentials file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Es2Credentials {
    operator: String,
    token: String,
    url: Option<String>,
    #[serde(default)]
    trust: Vec<PathBuf>,
}

/// What `serve` runs for the fleet.
pub struct FleetServing {
    /// `/api/v1/fleet`.
    pub routes: axum::Router,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FleetServing {
    /// Stops the driver and the webhook delivery.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The ES2+ client of carrier `c` from its `file:` credentials reference
/// (relative to `dir`, the fleet configuration's directory).
fn es2_client(
    c: &ferrosim_fleet::config::CarrierConfig,
    dir: &Path,
    default_trust: &[PathBuf],
) -> anyhow::Result<Es2Client> {
    let Some(file) = c.es2_credentials.strip_prefix("file:") else {
        bail!(
            "carrier {}: only file: ES2+ credential references are read, not {:?}",
            c.name,
            c.es2_credentials
        );
    };
    let file = relative(dir, Path::new(file));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("carrier {}: ES2+ credentials {}", c.name, file.display()))?;
    let creds: Es2Credentials = toml::from_str(&text)
        .with_context(|| format!("carrier {}: ES2+ credentials {}", c.name, file.display()))?;
    let trust: Vec<PathBuf> = if creds.trust.is_empty() {
        default_trust.to_vec()
    } else {
        creds.trust.iter().map(|p| relative(dir, p)).collect()
    };
    let mut pem = Vec::new();
    for t in &trust {
        pem.extend(std::fs::read(t).with_context(|| format!("trust {}", t.display()))?);
    }
    let url = creds
        .url
        .clone()
        .unwrap_or_else(|| format!("https://{}", c.smdp_address));
    Es2Client::new(&url, &creds.operator, &creds.token, &pem)
        .with_context(|| format!("carrier {}: ES2+ client", c.name))
}

fn relative(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Starts fleet control when `[fleet] config` is set.
pub async fn start(
    cfg: &InstanceConfig,
    inst: &Instance,
    eim: Option<Eim<SqlStore>>,
) -> anyhow::Result<Option<FleetServing>> {
    let Some(path) = &cfg.fleet.config else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("fleet.config: cannot read {}", path.display()))?;
    let config = FleetConfig::from_toml(&text)
        .with_context(|| format!("fleet.config {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let default_trust = if cfg.pki.ci_certs.is_empty() {
        ferrosim_server::bootstrap::PkiPaths::in_dir(&cfg.pki_dir()).ci_certs
    } else {
        cfg.pki.ci_certs.clone()
    };
    // The carriers of the TOML are checked now; carriers created or changed
    // over the REST API get their client when the fleet first needs it.
    let mut es2 = HashMap::new();
    for c in &config.carriers {
        if !c.es2_credentials.starts_with("file:") {
            tracing::warn!(carrier = %c.name, reference = %c.es2_credentials,
                "fleet: only file: ES2+ credential references are read; this carrier's orders will fail");
            continue;
        }
        es2.insert(c.name.clone(), es2_client(c, dir, &default_trust)?);
    }
    let resolver = {
        let dir = dir.to_path_buf();
        ferrosim_server::fleet::Es2Resolver(Arc::new(
            move |c: &ferrosim_fleet::config::CarrierConfig| {
                es2_client(c, &dir, &default_trust).map_err(|e| format!("{e:#}"))
            },
        ))
    };
    let clock: Arc<dyn ferrosim_ids::Clock> = Arc::new(ferrosim_ids::SystemClock);
    let hooks = if cfg.fleet.webhook.is_empty() {
        None
    } else {
        let mut endpoints = Vec::new();
        let mut builder = reqwest::Client::builder();
        for w in &cfg.fleet.webhook {
            let secret = std::fs::read(&w.secret_file)
                .with_context(|| format!("webhook {}: {}", w.name, w.secret_file.display()))?;
            let secret = String::from_utf8_lossy(&secret).trim().as_bytes().to_vec();
            if secret.len() < 16 {
                bail!("webhook {}: the secret must have at least 16 bytes", w.name);
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://127.0.0.1")) {
                bail!(
                    "webhook {}: url must be https:// (or http://127.0.0.1 for tests)",
                    w.name
                );
            }
            for t in &w.trust {
                let pem = std::fs::read(t).with_context(|| format!("trust {}", t.display()))?;
                for c in reqwest::Certificate::from_pem_bundle(&pem)? {
                    builder = builder.add_root_certificate(c);
                }
            }
            endpoints.push(WebhookEndpoint {
                name: w.name.clone(),
                url: w.url.clone(),
                secret,
            });
        }
        if let Some(old) = &cfg.fleet.webhook_cursor_file {
            tracing::warn!(
                file = %old.display(),
                "[fleet] webhook_cursor_file is ignored: webhook cursors are kept in the database"
            );
        }
        Some(Webhooks::new(endpoints, builder.build()?, clock.clone()))
    };
    // The fleet's telemetry events (device reports, eIM results, its
    // activations) go to the instance's telemetry store, or with telemetry
    // off to the events table of the instance's database (purged with the
    // same retention): rollout gates read them there, so a restart or
    // another instance still sees a wave's outcomes.
    let events = match &inst.server_options.telemetry {
        Some(t) => FleetEvents::shared(t),
        None => FleetEvents::new(inst.store.telemetry(ferrosim_telemetry::Dictionary::new()))
            .purging(Duration::from_secs(
                u64::from(cfg.telemetry.retention_days.max(1)) * 86_400,
            )),
    };
    let dict = events.dictionary().clone();
    let options = FleetOptions {
        tick: Duration::from_millis(cfg.fleet.tick_ms.unwrap_or(1000).max(10)),
        es2,
        es2_resolver: Some(resolver),
        events: Some(events),
        audit: inst.server_options.audit.clone(),
        ..FleetOptions::default()
    };
    let store: SqlFleetStore = inst.store.fleet();
    let driver = FleetDriver::open(
        store.clone(),
        eim,
        config,
        dict,
        clock,
        options,
        hooks.clone(),
    )
    .await
    .context("fleet")?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![driver.spawn(stopped.clone())];
    if let Some(h) = &hooks {
        tasks.push(h.spawn(store, stopped));
    }
    tracing::info!("fleet control: REST at /api/v1/fleet");
    let routes = ferrosim_server::api::fleet::routes(driver, inst.store.clone());
    Ok(Some(FleetServing {
        routes,
        stop,
        tasks,
    }))
}
