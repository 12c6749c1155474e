//! `[access]` of the instance configuration: per-client rate limits and
//! temporary lockouts of `serve` on ES9+, ES2+, ESipa and the REST APIs.
//!
//! ```toml
//! [access]
//! enabled = true
//! rate_per_sec = 100.0      # per client address and per bearer token
//! burst = 500
//! max_failures = 100        # refused ES9+ calls, 401/403 ...
//! failure_window_secs = 600 # ... within this window lock the client out
//! lockout_secs = 900
//! eid_rate_per_sec = 20.0   # per device (EID): ESipa polls, ES9+ authenticateClient
//! eid_burst = 200
//! eid_max_failures = 20     # refusals after the eUICC proved its EID
//! ```

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// The `[access]` section: per-client rate limits and lockouts of `serve`
/// (see `ferrosim_server::access`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Limit and lock out clients.
    pub enabled: bool,
    /// Requests per second each client address (and each bearer token) may sustain.
    pub rate_per_sec: f64,
    /// Requests a client may make at once after being idle.
    pub burst: u32,
    /// Failures (refused ES9+ calls, 401/403) within `failure_window_secs`
    /// that lock a client out.
    pub max_failures: u32,
    /// The window failures are counted in.
    pub failure_window_secs: u64,
    /// How long a client stays locked out.
    pub lockout_secs: u64,
    /// Requests per second one device (by EID) may sustain.
    pub eid_rate_per_sec: f64,
    /// Requests one device may make at once after being idle.
    pub eid_burst: u32,
    /// Refusals of one device after its eUICC proved its EID (matching ids
    /// refused, order rules broken) within `failure_window_secs` that lock
    /// it out.
    pub eid_max_failures: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        let p = ferrosim_server::access::AccessPolicy::default();
        Self {
            enabled: true,
            rate_per_sec: p.rate_per_sec,
            burst: p.burst,
            max_failures: p.max_failures,
            failure_window_secs: p.failure_window.as_secs(),
            lockout_secs: p.lockout.as_secs(),
            eid_rate_per_sec: p.eid_rate_per_sec,
            eid_burst: p.eid_burst,
            eid_max_failures: p.eid_max_failures,
        }
    }
}

impl AccessConfig {
    /// The access control of `serve` (`None` when disabled).
    pub fn build(&self) -> anyhow::Result<Option<ferrosim_server::access::Access>> {
        if !self.enabled {
            return Ok(None);
        }
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            bail!("[access] rate_per_sec must be a positive number");
        }
        if self.burst == 0 || self.max_failures == 0 {
            bail!("[access] burst and max_failures must be at least 1");
        }
        if !(self.eid_rate_per_sec.is_finite() && self.eid_rate_per_sec > 0.0) {
            bail!("[access] eid_rate_per_sec must be a positive number");
        }
        if self.eid_burst == 0 || self.eid_max_failures == 0 {
            bail!("[access] eid_burst and eid_max_failures must be at least 1");
        }
        if self.failure_window_secs == 0 || self.lockout_secs == 0 {
            bail!("[access] failure_window_secs and lockout_secs must be at least 1");
        }
        Ok(Some(ferrosim_server::access::Access::new(
            ferrosim_server::access::AccessPolicy {
                rate_per_sec: self.rate_per_sec,
                burst: self.burst,
                max_failures: self.max_failures,
                failure_window: Duration::from_secs(self.failure_window_secs),
                lockout: Duration::from_secs(self.lockout_secs),
                eid_rate_per_sec: self.eid_rate_per_sec,
                eid_burst: self.eid_burst,
                eid_max_failures: self.eid_max_failures,
            },
        )))
    }
}
