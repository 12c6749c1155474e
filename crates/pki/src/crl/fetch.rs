//! The HTTP driver of the CRL fetch schedule (feature `fetch`).
//!
//! It moves bytes and time only: [`crate::crl::Revocation::poll_fetch`] says
//! which distribution points are due, this driver GETs them (with a timeout
//! and a size limit) and hands the bytes or the failure to
//! [`TrustStore::handle_crl_fetch`], which decides everything else. A server
//! that is down, slow, or answers garbage or a CRL of the wrong signer only
//! ever produces a [`CrlError`] in a [`FetchReport`]; the CRL in force stays
//! and the policy decides what verification does meanwhile.

use std::time::{Duration, SystemTime};

use super::{CrlError, LoadOutcome};
use crate::trust::TrustStore;

/// Limits of the driver.
#[derive(Clone, Copy, Debug)]
pub struct FetchOptions {
    /// Whole-request timeout (connect, headers, body).
    pub timeout: Duration,
    /// Largest CRL accepted, in bytes.
    pub max_bytes: usize,
    /// How often [`CrlFetcher::run`] looks for newly wanted distribution
    /// points when nothing is due sooner.
    pub idle_poll: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_bytes: 8 << 20,
            idle_poll: Duration::from_secs(2),
        }
    }
}

/// The result of fetching one distribution point.
#[derive(Debug)]
pub struct FetchReport {
    /// The URL fetched.
    pub url: String,
    /// What loading the answer did, or why it failed.
    pub result: Result<LoadOutcome, CrlError>,
}

/// Fetches due CRLs into a trust store's revocation state.
#[derive(Clone, Debug)]
pub struct CrlFetcher {
    trust: TrustStore,
    client: reqwest::Client,
    options: FetchOptions,
}

impl CrlFetcher {
    /// A fetcher for `trust` (which must have revocation enabled; clones of
    /// it share the CRLs this fetcher loads).
    pub fn new(trust: TrustStore, options: FetchOptions) -> Result<Self, CrlError> {
        if trust.revocation().is_none() {
            return Err(CrlError::NotEnabled);
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| CrlError::Fetch {
                url: String::new(),
                problem: format!("HTTP client: {e}"),
            })?;
        Ok(Self {
            trust,
            client,
            options,
        })
    }

    /// Fetches every distribution point due at `now`, concurrently, and
    /// loads the answers.
    pub async fn fetch_due(&self, now: SystemTime) -> Vec<FetchReport> {
        let Some(revocation) = self.trust.revocation() else {
            return Vec::new();
        };
        let due = revocation.poll_fetch(now);
        let fetches = due.into_iter().map(|request| async move {
            let body = self.get(&request.url).await;
            let result = self.trust.handle_crl_fetch(&request.url, body, now);
            match &result {
                Ok(outcome) => tracing::info!(url = %request.url, ?outcome, "CRL fetched"),
                Err(e) => tracing::warn!(url = %request.url, error = %e, "CRL fetch failed"),
            }
            FetchReport {
                url: request.url,
                result,
            }
        });
        futures::future::join_all(fetches).await
    }

    /// Fetches on schedule until the task is dropped or aborted.
    pub async fn run(self) {
        loop {
            self.fetch_due(SystemTime::now()).await;
            let wait = self
                .trust
                .revocation()
                .and_then(|r| r.next_fetch_at())
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .unwrap_or(self.options.idle_poll)
                .min(self.options.idle_poll);
            tokio::time::sleep(wait).await;
        }
    }

    /// Spawns [`CrlFetcher::run`] on the current tokio runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, CrlError> {
        let fail = |problem: String| CrlError::Fetch {
            url: url.to_owned(),
            problem,
        };
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(describe(&e)))? {
            if body.len() + chunk.len() > self.options.max_bytes {
                return Err(fail(format!(
                    "CRL larger than {} bytes",
                    self.options.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A transport error in a few words.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        e.to_string()
    }
}
