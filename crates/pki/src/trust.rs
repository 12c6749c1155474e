//! The trust store: the CI certificates a verifier accepts, keyed by their
//! subject key identifier (the CI PKId that SGP.22 exchanges in
//! `euiccCiPKIdListForVerification` and `euiccCiPKIdToBeUsed`).
//!
//! It also caches EUM certificates that have already been verified against
//! one of its CIs, so that the SM-DP+ checks the EUM signature once per EUM
//! rather than once per download.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::cert::RspCertificate;
use crate::error::{Error, Result};
use crate::profile::{CertRole, KeyId};
use crate::verify::{check_eum_against_ci, check_issued_by, check_profile};

/// Verified EUM certificates kept at most; the cache is emptied when full.
/// Only certificates that verified against a trusted CI get in, so the bound
/// only matters for deployments with very many EUMs.
const MAX_CACHED_EUMS: usize = 1024;

/// A set of trusted CI certificates, and a cache of EUMs verified against them.
pub struct TrustStore {
    cis: BTreeMap<KeyId, RspCertificate>,
    eum_cache: Mutex<HashMap<Vec<u8>, Arc<RspCertificate>>>,
}

impl TrustStore {
    /// An empty trust store (trusts nothing).
    pub fn new() -> Self {
        TrustStore {
            cis: BTreeMap::new(),
            eum_cache: Mutex::new(HashMap::new()),
        }
    }

    /// A trust store with the given CI certificates.
    pub fn with_cis(cis: impl IntoIterator<Item = RspCertificate>) -> Result<Self> {
        let mut store = Self::new();
        for ci in cis {
            store.add_ci(ci)?;
        }
        Ok(store)
    }

    /// Parses a DER CI certificate and trusts it; returns its key id.
    pub fn add_ci_der(&mut self, der: &[u8]) -> Result<KeyId> {
        self.add_ci(RspCertificate::from_der(der)?)
    }

    /// Trusts a CI certificate after checking that it is one: CI policy,
    /// keyCertSign and cRLSign, CA:true, a subject key id, self-issued and
    /// self-signed. Validity is checked at verification time, not here.
    pub fn add_ci(&mut self, ci: RspCertificate) -> Result<KeyId> {
        check_profile(&ci, CertRole::Ci)?;
        check_issued_by(&ci, CertRole::Ci, &ci, CertRole::Ci)?;
        let key_id = ci
            .subject_key_id()
            .cloned()
            .ok_or(Error::MissingExtension {
                cert: CertRole::Ci,
                extension: "subjectKeyIdentifier",
            })?;
        self.cis.insert(key_id.clone(), ci);
        self.cache().clear();
        Ok(key_id)
    }

    /// The trusted CI with this key id.
    pub fn ci(&self, key_id: &KeyId) -> Option<&RspCertificate> {
        self.cis.get(key_id)
    }

    /// Key ids of all trusted CIs, in ascending order (for `euiccCiPKIdListForVerification`).
    pub fn ci_key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.cis.keys()
    }

    /// All trusted CI certificates.
    pub fn cis(&self) -> impl Iterator<Item = &RspCertificate> {
        self.cis.values()
    }

    /// Number of trusted CIs.
    pub fn len(&self) -> usize {
        self.cis.len()
    }

    /// Whether no CI is trusted.
    pub fn is_empty(&self) -> bool {
        self.cis.is_empty()
    }

    /// Parses an EUM certificate and checks it against the trusted CIs
    /// (profile, CI, signature; not validity), using and filling the cache.
    pub(crate) fn verified_eum(&self, eum_der: &[u8]) -> Result<Arc<RspCertificate>> {
        if let Some(eum) = self.cache().get(eum_der) {
            return Ok(Arc::clone(eum));
        }
        let eum = RspCertificate::from_der(eum_der)?;
        check_eum_against_ci(self, &eum)?;
        let eum = Arc::new(eum);
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED_EUMS {
            cache.clear();
        }
        cache.insert(eum_der.to_vec(), Arc::clone(&eum));
        Ok(eum)
    }

    /// Number of EUM certificates currently cached as verified.
    pub fn cached_eums(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<RspCertificate>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every operation is a single insert, get or clear), so keep using it.
        self.eum_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for TrustStore {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for TrustStore {
    /// Clones the trusted CIs; the clone starts with an empty EUM cache.
    fn clone(&self) -> Self {
        TrustStore {
            cis: self.cis.clone(),
            eum_cache: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("ci_key_ids", &self.cis.keys().collect::<Vec<_>>())
            .field("cached_eums", &self.cached_eums())
            .finish()
    }
}
