//! The trust store: the CI certificates a verifier accepts, keyed by their
//! subject key identifier (the CI PKId that SGP.22 exchanges in
//! `euiccCiPKIdListForVerification` and `euiccCiPKIdToBeUsed`).
//!
//! It also caches EUM certificates that have already been verified against
//! one of its CIs, so that the SM-DP+ checks the EUM signature once per EUM
//! rather than once per download.
//!
//! With revocation enabled ([`TrustStore::enable_revocation`]) it also holds
//! the CRLs in force ([`Revocation`]), which chain verification consults for
//! every certificate below the CI; clones share that state, so a CRL loaded
//! or fetched through one clone is in force in all of them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use std::time::SystemTime;

use crate::cert::RspCertificate;
use crate::crl::{Crl, CrlError, LoadOutcome, Revocation, RevocationPolicy};
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
    revocation: Option<Revocation>,
}

impl TrustStore {
    /// An empty trust store (trusts nothing).
    pub fn new() -> Self {
        TrustStore {
            cis: BTreeMap::new(),
            eum_cache: Mutex::new(HashMap::new()),
            revocation: None,
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

    /// Turns revocation checking on with this policy (replacing any earlier
    /// revocation state) and returns the shared state.
    pub fn enable_revocation(&mut self, policy: RevocationPolicy) -> &Revocation {
        self.revocation.insert(Revocation::new(policy))
    }

    /// The revocation state, when revocation checking is on.
    pub fn revocation(&self) -> Option<&Revocation> {
        self.revocation.as_ref()
    }

    /// Loads a CRL (PEM or DER) into the revocation state: a CRL of a
    /// trusted CI is verified now; a CRL of another issuer (an EUM) is
    /// verified with `issuer` when given, else kept until a certificate of
    /// its issuer has been verified. This is what an eUICC's LoadCRL does.
    pub fn load_crl(
        &self,
        bytes: &[u8],
        issuer: Option<&RspCertificate>,
    ) -> Result<LoadOutcome, CrlError> {
        let revocation = self.revocation.as_ref().ok_or(CrlError::NotEnabled)?;
        let crl = Crl::from_bytes(bytes)?;
        self.load_parsed(revocation, crl, issuer)
    }

    /// Loads every CRL of a file ([`Crl::all_from_bytes`]: one CRL, a PEM
    /// bundle or a DER `SegmentedCrlList`) as [`TrustStore::load_crl`] does,
    /// in order; stops at the first that fails.
    pub fn load_crls(
        &self,
        bytes: &[u8],
        issuer: Option<&RspCertificate>,
    ) -> Result<Vec<LoadOutcome>, CrlError> {
        let revocation = self.revocation.as_ref().ok_or(CrlError::NotEnabled)?;
        Crl::all_from_bytes(bytes)?
            .into_iter()
            .map(|crl| self.load_parsed(revocation, crl, issuer))
            .collect()
    }

    /// Hands the result of fetching `url` (as asked by
    /// [`Revocation::poll_fetch`]) to the revocation state: the CRL is
    /// parsed, must come from the CA expected there, and is put in force; a
    /// failure is recorded for the retry schedule and the policy. The CRL in
    /// force before stays in force when anything is wrong.
    pub fn handle_crl_fetch(
        &self,
        url: &str,
        result: std::result::Result<Vec<u8>, CrlError>,
        now: SystemTime,
    ) -> Result<LoadOutcome, CrlError> {
        let revocation = self.revocation.as_ref().ok_or(CrlError::NotEnabled)?;
        let (expected, issuer_cert) = revocation.url_issuer(url);
        let outcome = result.and_then(|bytes| {
            let crls = Crl::all_from_bytes(&bytes)?;
            if let Some(expected) = &expected
                && crls.iter().any(|crl| crl.authority_key_id() != expected)
            {
                return Err(CrlError::WrongIssuer("authority key identifier"));
            }
            let mut outcome = None;
            for crl in &crls {
                outcome = Some(self.load_parsed(revocation, crl.clone(), issuer_cert.as_ref())?);
            }
            // `all_from_bytes` returns at least one CRL.
            let last = crls
                .into_iter()
                .last()
                .ok_or(CrlError::Inconsistent("no CRL"))?;
            Ok((last, outcome.ok_or(CrlError::Inconsistent("no CRL"))?))
        });
        match outcome {
            Ok((crl, outcome)) => {
                revocation.fetched(url, Ok(&crl), now);
                Ok(outcome)
            }
            // Garbage, a wrong signer, an older CRL: the distribution point is
            // retried with backoff and the CRL in force stays.
            Err(e) => {
                revocation.fetched(url, Err(&e), now);
                Err(e)
            }
        }
    }

    fn load_parsed(
        &self,
        revocation: &Revocation,
        crl: Crl,
        issuer: Option<&RspCertificate>,
    ) -> Result<LoadOutcome, CrlError> {
        if let Some(ci) = self.ci(crl.authority_key_id()) {
            crl.verify_issued_by(ci)?;
            return revocation.insert_verified(crl);
        }
        if let Some(issuer) = issuer {
            crl.verify_issued_by(issuer)?;
            return revocation.insert_verified(crl);
        }
        let known_eum = self
            .cache()
            .values()
            .find(|eum| eum.subject_key_id() == Some(crl.authority_key_id()))
            .cloned();
        match known_eum {
            Some(eum) => {
                crl.verify_issued_by(&eum)?;
                revocation.insert_verified(crl)
            }
            None => Ok(revocation.insert_unverified(crl)),
        }
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
    /// Clones the trusted CIs; the clone starts with an empty EUM cache and
    /// shares the revocation state.
    fn clone(&self) -> Self {
        TrustStore {
            cis: self.cis.clone(),
            eum_cache: Mutex::new(HashMap::new()),
            revocation: self.revocation.clone(),
        }
    }
}

impl fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustStore")
            .field("ci_key_ids", &self.cis.keys().collect::<Vec<_>>())
            .field("cached_eums", &self.cached_eums())
            .field("revocation", &self.revocation)
            .finish()
    }
}
