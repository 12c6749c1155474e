//! The revocation state a trust store consults: the CRLs in force, the
//! policy for CRLs that cannot be relied on, and the schedule of CRL
//! distribution points to fetch.
//!
//! [`Revocation`] is a cheap handle (an `Arc`): the trust store used by the
//! SM-DP+ or the eUICC and the driver that fetches CRLs share one state, so
//! a CRL fetched in the background is in force for the next verification.
//!
//! The fetch schedule is sans-IO: [`Revocation::poll_fetch`] says which URLs
//! are due at `now`; the driver fetches them and hands the bytes (or the
//! failure) to [`crate::TrustStore::handle_crl_fetch`]. A CRL is refreshed
//! at three quarters of its thisUpdate–nextUpdate span, so well before it
//! goes stale; a failed fetch is retried with exponential backoff, and the
//! CRL already in force stays in force meanwhile.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use super::CrlError;
use super::parse::Crl;
use super::set::{CrlSet, CrlStatus};
use crate::cert::RspCertificate;
use crate::error::{Error, Result};
use crate::profile::{CertRole, KeyId};
use crate::timefmt::format_time;

/// Distribution point URLs tracked at most (they come from verified certificates).
const MAX_URLS: usize = 256;
/// Soonest refresh after a successful fetch.
const MIN_REFRESH: Duration = Duration::from_secs(60);
/// Latest refresh after a successful fetch.
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// First retry delay after a failed fetch; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(15 * 60);

/// What to do when the CRL a certificate needs is stale, incomplete, or
/// could not be fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StalePolicy {
    /// Refuse the certificate (fail closed).
    #[default]
    Refuse,
    /// Accept it and report a [`RevocationWarning`] (fail open).
    Warn,
}

impl StalePolicy {
    /// Reads `refuse` or `warn`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "refuse" => Some(Self::Refuse),
            "warn" => Some(Self::Warn),
            _ => None,
        }
    }
}

impl fmt::Display for StalePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refuse => "refuse",
            Self::Warn => "warn",
        })
    }
}

/// How revocation is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevocationPolicy {
    /// A CRL that cannot be relied on.
    pub on_stale: StalePolicy,
    /// Whether the distribution points named in certificates are fetched
    /// (then a certificate naming one needs its CRL).
    pub fetch_distribution_points: bool,
}

/// Why a certificate's revocation status is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationProblem {
    /// The newest CRL covering it is past its nextUpdate.
    Stale {
        /// That CRL's nextUpdate.
        next_update: SystemTime,
    },
    /// Only some parts of the issuer's partial CRL are loaded.
    Incomplete {
        /// The parts still missing.
        missing_parts: Vec<u32>,
    },
    /// The issuer publishes CRLs but none covering the certificate is loaded
    /// (not fetched yet, or the last fetch failed).
    Unavailable {
        /// The last fetch or load failure, if any.
        last_error: Option<String>,
    },
}

impl fmt::Display for RevocationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stale { next_update } => {
                write!(
                    f,
                    "the CRL is stale (nextUpdate {})",
                    format_time(*next_update)
                )
            }
            Self::Incomplete { missing_parts } => {
                write!(f, "the partial CRL lacks parts {missing_parts:?}")
            }
            Self::Unavailable { last_error: None } => f.write_str("no CRL of its issuer is loaded"),
            Self::Unavailable {
                last_error: Some(e),
            } => write!(f, "no CRL of its issuer is loaded ({e})"),
        }
    }
}

/// A certificate accepted although its revocation status is unknown
/// ([`StalePolicy::Warn`]); the caller logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationWarning {
    /// The certificate concerned.
    pub cert: CertRole,
    /// Why its status is unknown.
    pub problem: RevocationProblem,
}

impl fmt::Display for RevocationWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revocation status of the {} certificate unknown: {}",
            self.cert, self.problem
        )
    }
}

/// A CRL distribution point due for fetching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    /// The URL (http or https).
    pub url: String,
}

/// Fetch bookkeeping of one distribution point.
#[derive(Clone, Debug)]
struct UrlState {
    /// Key id of the CA whose CRL is published there, when known.
    issuer: Option<KeyId>,
    /// That CA's certificate, when it is not a trusted CI (an EUM).
    issuer_cert: Option<RspCertificate>,
    next_due: SystemTime,
    in_flight: bool,
    failures: u32,
    last_error: Option<String>,
}

struct Shared {
    policy: RevocationPolicy,
    crls: RwLock<CrlSet>,
    urls: Mutex<BTreeMap<String, UrlState>>,
}

/// Shared revocation state; clones share it. See the module documentation.
#[derive(Clone)]
pub struct Revocation {
    shared: Arc<Shared>,
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("policy", &self.shared.policy)
            .field("crls", &self.crls().summary().len())
            .field("urls", &self.urls().len())
            .finish()
    }
}

impl Revocation {
    /// Empty revocation state with this policy.
    pub fn new(policy: RevocationPolicy) -> Self {
        Revocation {
            shared: Arc::new(Shared {
                policy,
                crls: RwLock::new(CrlSet::new()),
                urls: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> RevocationPolicy {
        self.shared.policy
    }

    /// A snapshot of the CRLs in force.
    pub fn crl_set(&self) -> CrlSet {
        self.crls().clone()
    }

    /// The status of `cert`, issued by `issuer` (already verified), without
    /// applying the policy. Verifies waiting CRLs of `issuer` first.
    pub fn status(
        &self,
        cert: &RspCertificate,
        issuer: &RspCertificate,
        now: SystemTime,
    ) -> CrlStatus {
        let Some(issuer_id) = issuer.subject_key_id() else {
            return CrlStatus::NoCrl;
        };
        if self.crls().has_unverified(issuer_id) {
            let failures = self.crls_mut().promote(issuer);
            if let Some(e) = failures.last() {
                self.note_issuer_error(issuer_id, e);
            }
        }
        self.crls().status(
            issuer_id,
            cert.serial_number(),
            cert.is_ca(),
            cert.crl_distribution_points(),
            now,
        )
    }

    /// Checks `cert` (presented as `role`, issued by `issuer`, both already
    /// verified up to a trusted CI): a revoked certificate is an
    /// [`Error::Revoked`]; an unknown status is refused
    /// ([`Error::RevocationUnknown`]) or returned as a warning, per policy.
    pub fn check(
        &self,
        cert: &RspCertificate,
        role: CertRole,
        issuer: &RspCertificate,
        now: SystemTime,
    ) -> Result<Option<RevocationWarning>> {
        let problem = match self.status(cert, issuer, now) {
            CrlStatus::Revoked { entry, .. } => {
                return Err(Error::Revoked {
                    cert: role,
                    serial: hex::encode_upper(&entry.serial),
                    revoked_at: entry.revoked_at,
                    reason: entry.reason,
                });
            }
            CrlStatus::Good { .. } => return Ok(None),
            CrlStatus::Stale { next_update, .. } => RevocationProblem::Stale { next_update },
            CrlStatus::Incomplete { missing_parts } => {
                RevocationProblem::Incomplete { missing_parts }
            }
            CrlStatus::NoCrl => {
                let issuer_id = issuer.subject_key_id();
                let known = issuer_id.is_some_and(|id| self.crls().knows_issuer(id));
                let fetchable = self.shared.policy.fetch_distribution_points
                    && !cert.crl_distribution_points().is_empty();
                if !known && !fetchable {
                    // The issuer publishes no CRL we know of: nothing to check against.
                    return Ok(None);
                }
                if fetchable {
                    self.want(cert.crl_distribution_points(), issuer, now);
                }
                RevocationProblem::Unavailable {
                    last_error: self.last_error(issuer_id, cert.crl_distribution_points()),
                }
            }
        };
        match self.shared.policy.on_stale {
            StalePolicy::Refuse => Err(Error::RevocationUnknown {
                cert: role,
                problem,
            }),
            StalePolicy::Warn => Ok(Some(RevocationWarning {
                cert: role,
                problem,
            })),
        }
    }

    /// Puts a CRL verified by the caller in force.
    pub(crate) fn insert_verified(&self, crl: Crl) -> Result<super::LoadOutcome, CrlError> {
        self.crls_mut().insert_verified(crl)
    }

    /// Keeps a CRL of an issuer not known yet.
    pub(crate) fn insert_unverified(&self, crl: Crl) -> super::LoadOutcome {
        self.crls_mut().insert_unverified(crl)
    }

    /// Adds a distribution point to fetch (from configuration), now and then
    /// on schedule. `issuer` is the key id the CRL must carry, when known.
    pub fn add_url(
        &self,
        url: &str,
        issuer: Option<KeyId>,
        now: SystemTime,
    ) -> Result<(), CrlError> {
        check_url(url)?;
        let mut urls = self.urls();
        if urls.len() >= MAX_URLS && !urls.contains_key(url) {
            return Err(CrlError::Fetch {
                url: url.to_owned(),
                problem: format!("at most {MAX_URLS} CRL distribution points are tracked"),
            });
        }
        urls.entry(url.to_owned()).or_insert_with(|| UrlState {
            issuer,
            issuer_cert: None,
            next_due: now,
            in_flight: false,
            failures: 0,
            last_error: None,
        });
        Ok(())
    }

    /// The distribution points due at `now`; each is marked in flight until
    /// its result is handed back.
    pub fn poll_fetch(&self, now: SystemTime) -> Vec<FetchRequest> {
        let mut urls = self.urls();
        urls.iter_mut()
            .filter(|(_, s)| !s.in_flight && s.next_due <= now)
            .map(|(url, s)| {
                s.in_flight = true;
                FetchRequest { url: url.clone() }
            })
            .collect()
    }

    /// When the next distribution point falls due (`None`: nothing tracked
    /// or everything in flight).
    pub fn next_fetch_at(&self) -> Option<SystemTime> {
        self.urls()
            .values()
            .filter(|s| !s.in_flight)
            .map(|s| s.next_due)
            .min()
    }

    /// The tracked distribution points with their last error, for display.
    pub fn urls_status(&self) -> Vec<(String, Option<String>)> {
        self.urls()
            .iter()
            .map(|(u, s)| (u.clone(), s.last_error.clone()))
            .collect()
    }

    /// The issuer expected at a URL: key id, and its certificate when it is not a CI.
    pub(crate) fn url_issuer(&self, url: &str) -> (Option<KeyId>, Option<RspCertificate>) {
        self.urls()
            .get(url)
            .map(|s| (s.issuer.clone(), s.issuer_cert.clone()))
            .unwrap_or_default()
    }

    /// Records the result of a fetch of `url`: schedules the refresh (from
    /// the loaded CRL's validity) or the retry.
    pub(crate) fn fetched(&self, url: &str, result: Result<&Crl, &CrlError>, now: SystemTime) {
        let mut urls = self.urls();
        let Some(state) = urls.get_mut(url) else {
            return;
        };
        state.in_flight = false;
        match result {
            Ok(crl) => {
                state.failures = 0;
                state.last_error = None;
                let span = crl
                    .next_update()
                    .duration_since(crl.this_update())
                    .unwrap_or_default();
                let refresh_at = crl.this_update() + span / 4 * 3;
                let earliest = now + MIN_REFRESH;
                let latest = now + MAX_REFRESH;
                state.next_due = refresh_at.clamp(earliest, latest);
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                state.last_error = Some(e.to_string());
                let exponent = state.failures.saturating_sub(1).min(16);
                let delay = FIRST_RETRY.saturating_mul(1 << exponent).min(MAX_RETRY);
                state.next_due = now + delay;
            }
        }
    }

    /// Starts tracking the distribution points a verified certificate names.
    fn want(&self, uris: &[String], issuer: &RspCertificate, now: SystemTime) {
        let mut urls = self.urls();
        for uri in uris {
            if urls.contains_key(uri) || urls.len() >= MAX_URLS || check_url(uri).is_err() {
                continue;
            }
            let issuer_cert = (!issuer.is_self_issued()).then(|| issuer.clone());
            urls.insert(
                uri.clone(),
                UrlState {
                    issuer: issuer.subject_key_id().cloned(),
                    issuer_cert,
                    next_due: now,
                    in_flight: false,
                    failures: 0,
                    last_error: None,
                },
            );
        }
    }

    /// The last fetch error of the issuer's (or these) distribution points.
    fn last_error(&self, issuer: Option<&KeyId>, uris: &[String]) -> Option<String> {
        self.urls()
            .iter()
            .filter(|(u, s)| uris.contains(u) || (issuer.is_some() && s.issuer.as_ref() == issuer))
            .find_map(|(_, s)| s.last_error.clone())
    }

    fn note_issuer_error(&self, issuer: &KeyId, error: &CrlError) {
        for state in self.urls().values_mut() {
            if state.issuer.as_ref() == Some(issuer) {
                state.last_error = Some(error.to_string());
            }
        }
    }

    fn crls(&self) -> RwLockReadGuard<'_, CrlSet> {
        // Every write is a single insert or promotion of whole values, so a
        // panic elsewhere cannot leave the set half-updated: keep using it.
        self.shared
            .crls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn crls_mut(&self) -> RwLockWriteGuard<'_, CrlSet> {
        self.shared
            .crls
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn urls(&self) -> MutexGuard<'_, BTreeMap<String, UrlState>> {
        self.shared
            .urls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Only plain `http` and `https` URLs are fetched (GSMA distribution points are http).
fn check_url(url: &str) -> Result<(), CrlError> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && url.len() <= 2048 => Ok(()),
        _ => Err(CrlError::Fetch {
            url: url.chars().take(128).collect(),
            problem: "not an http or https URL".into(),
        }),
    }
}
