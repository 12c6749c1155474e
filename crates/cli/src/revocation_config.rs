//! `[revocation]` of the instance configuration: the CRLs the SM-DP+ checks
//! eUICC and EUM certificates against at authenticateClient (SGP.22: no
//! certificate of the chain may be revoked).
//!
//! ```toml
//! [revocation]
//! crl_files = ["/etc/ferrosim/crl/ci.crl", "/etc/ferrosim/crl/eum.crl"]
//! crl_urls = ["http://crl.example.com/eum.crl"]
//! fetch_distribution_points = true   # the URLs named in the certificates
//! on_stale = "refuse"                # or "warn"
//! reload_secs = 60
//! ```
//!
//! Checking is on when any CRL source is configured (or `enabled = true`).
//! Files are read at start (a bad file stops the start with its name) and
//! read again every `reload_secs` (a bad file then is logged and the CRL in
//! force stays); URLs and distribution points are fetched by
//! [`ferrosim_pki::crl::fetch::CrlFetcher`] at start and refreshed before
//! nextUpdate, failures retried with backoff.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use ferrosim_pki::crl::fetch::{CrlFetcher, FetchOptions};
use ferrosim_pki::crl::{CrlError, LoadOutcome};
use ferrosim_pki::{RevocationPolicy, StalePolicy, TrustStore};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The `[revocation]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// Check revocation even with no CRL source configured (then an
    /// issuer's CRL loaded later, or none, decides).
    pub enabled: bool,
    /// CRL files (PEM or DER; a PEM file may hold several CRLs, such as the parts of a partial CRL).
    pub crl_files: Vec<PathBuf>,
    /// CRL URLs (http or https) fetched at start and refreshed before nextUpdate.
    pub crl_urls: Vec<String>,
    /// Fetch the CRL distribution points named in the certificates verified.
    pub fetch_distribution_points: bool,
    /// A stale, incomplete or unobtainable CRL: `refuse` the certificate or
    /// accept it with a logged `warn`ing.
    pub on_stale: String,
    /// Seconds between readings of `crl_files`.
    pub reload_secs: u64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            crl_files: Vec::new(),
            crl_urls: Vec::new(),
            fetch_distribution_points: false,
            on_stale: "refuse".into(),
            reload_secs: 60,
        }
    }
}

/// The background work of revocation checking: reading files again and
/// fetching URLs. Spawned by `serve` ([`CrlRefresh::spawn`]).
#[derive(Debug)]
pub struct CrlRefresh {
    trust: TrustStore,
    files: Vec<PathBuf>,
    reload: Duration,
    fetcher: Option<CrlFetcher>,
}

impl RevocationConfig {
    /// Whether revocation is checked.
    pub fn is_on(&self) -> bool {
        self.enabled
            || !self.crl_files.is_empty()
            || !self.crl_urls.is_empty()
            || self.fetch_distribution_points
    }

    /// Turns revocation checking on in `trust` (the SM-DP+'s) and loads the
    /// CRL files; returns the work to spawn, or `None` when checking is off.
    pub fn apply(&self, trust: &mut TrustStore) -> anyhow::Result<Option<CrlRefresh>> {
        if !self.is_on() {
            return Ok(None);
        }
        let Some(on_stale) = StalePolicy::parse(&self.on_stale) else {
            bail!(
                "revocation.on_stale = {:?}: expected \"refuse\" or \"warn\"",
                self.on_stale
            );
        };
        if self.reload_secs == 0 {
            bail!("revocation.reload_secs must be at least 1");
        }
        let revocation = trust
            .enable_revocation(RevocationPolicy {
                on_stale,
                fetch_distribution_points: self.fetch_distribution_points,
            })
            .clone();
        for path in &self.crl_files {
            let bytes = std::fs::read(path)
                .with_context(|| format!("revocation.crl_files: reading {}", path.display()))?;
            trust
                .load_crls(&bytes, None)
                .with_context(|| format!("revocation.crl_files: loading {}", path.display()))?;
        }
        let now = SystemTime::now();
        for url in &self.crl_urls {
            revocation
                .add_url(url, None, now)
                .with_context(|| format!("revocation.crl_urls: {url}"))?;
        }
        let fetcher = if self.crl_urls.is_empty() && !self.fetch_distribution_points {
            None
        } else {
            Some(CrlFetcher::new(trust.clone(), FetchOptions::default())?)
        };
        info!(
            files = self.crl_files.len(),
            urls = self.crl_urls.len(),
            distribution_points = self.fetch_distribution_points,
            on_stale = %on_stale,
            "certificate revocation checking on"
        );
        Ok(Some(CrlRefresh {
            trust: trust.clone(),
            files: self.crl_files.clone(),
            reload: Duration::from_secs(self.reload_secs),
            fetcher,
        }))
    }
}

impl CrlRefresh {
    /// Spawns the file reader and the fetcher on the current tokio runtime.
    pub fn spawn(self) {
        if let Some(fetcher) = self.fetcher {
            fetcher.spawn();
        }
        if self.files.is_empty() {
            return;
        }
        let (trust, files, reload) = (self.trust, self.files, self.reload);
        tokio::spawn(async move {
            // What each file held when last read: only a changed file is loaded.
            let mut last: HashMap<PathBuf, Vec<u8>> = HashMap::new();
            for path in &files {
                if let Ok(bytes) = tokio::fs::read(path).await {
                    last.insert(path.clone(), bytes);
                }
            }
            let mut tick = tokio::time::interval(reload);
            tick.tick().await; // the files were read at start
            loop {
                tick.tick().await;
                for path in &files {
                    reload_file(&trust, path, &mut last).await;
                }
            }
        });
    }
}

/// Reads a CRL file again; when it changed, its CRLs are loaded (a new one
/// put in force, an EUM's verified when a certificate of that EUM is next
/// checked); anything wrong is logged and the CRL in force stays.
async fn reload_file(trust: &TrustStore, path: &PathBuf, last: &mut HashMap<PathBuf, Vec<u8>>) {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(file = %path.display(), error = %e, "CRL file unreadable; the CRL in force stays");
            return;
        }
    };
    if last.get(path) == Some(&bytes) {
        return;
    }
    match trust.load_crls(&bytes, None) {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    LoadOutcome::Loaded { number, .. } => {
                        info!(file = %path.display(), %number, "CRL file read: CRL loaded");
                    }
                    LoadOutcome::AwaitingIssuer { issuer } => info!(
                        file = %path.display(),
                        %issuer,
                        "CRL file read: CRL kept until a certificate of its issuer verifies"
                    ),
                    LoadOutcome::Unchanged { .. } => {}
                }
            }
        }
        // The same or an older CRL again: nothing new.
        Err(CrlError::NotNewer { .. }) => {}
        Err(e) => {
            warn!(file = %path.display(), error = %e, "CRL file refused; the CRL in force stays");
        }
    }
    last.insert(path.clone(), bytes);
}
