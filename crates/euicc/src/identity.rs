//! Who the eUICC is: its EID, its certificate and private key, the EUM
//! certificate above it, and the CI certificates it trusts.
//!
//! The identity is cut in two, because a simulation runs up to a million
//! eUICCs of one manufacturer:
//! - [`SharedIdentity`], what every eUICC of one EUM has in common: the EUM
//!   certificate, the trusted CIs, and a small cache of the SM-DP+
//!   certificates (DPauth, DPpb) already verified, so that a million devices
//!   downloading from one SM-DP+ parse and verify its two certificates once
//!   per validity check instead of twice per download. It is held in an
//!   [`Arc`] and never copied per device.
//! - [`EuiccIdentity`], what is the device's own: the EID, the eUICC
//!   certificate (kept as DER only: it is sent, never read, by the card) and
//!   the private key; plus the `Arc` of its shared part.
//!
//! An identity comes from a `ferrosim pki init` directory
//! ([`EuiccIdentity::load_from_dir`]), from any PEM/DER files
//! ([`EuiccIdentity::load_files`]), from values already in memory
//! ([`EuiccIdentity::from_parts`]) or from a shared part and the device's
//! own certificate and key ([`EuiccIdentity::with_shared`]). Every
//! constructor checks that the pieces belong together: the key matches the
//! eUICC certificate, the eUICC certificate is signed by the EUM with an EID
//! in the EUM's range, and the EUM is signed by one of the given CIs.
//! Validity periods are not checked here: the SM-DP+ judges them at download
//! time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ferrosim_crypto::key::KeySource;
use ferrosim_pki::generate::layout;
use ferrosim_pki::verify::{check_validity, verify_parsed_euicc_chain};
use ferrosim_pki::{CertRole, Eid, KeyId, RspCertificate, TrustStore, VerifiedDp, load};

use crate::error::Error;

/// Directory of the eUICC certificates in a `ferrosim pki init` output.
const EUICC_DIR: &str = "eUICC";
/// SM-DP+ certificates kept verified per [`SharedIdentity`]: a few SM-DP+
/// (each with DPauth and DPpb, and a renewal overlapping) fit.
const DP_CACHE_ENTRIES: usize = 16;

/// The parts of an eUICC identity that many eUICCs share: the EUM
/// certificate, the trusted CIs and the SM-DP+ certificates verified so far.
pub struct SharedIdentity {
    eum: RspCertificate,
    trust: TrustStore,
    ci_for_signing: KeyId,
    dp_cache: Mutex<Vec<Arc<VerifiedDp>>>,
}

impl SharedIdentity {
    /// The shared part from DER certificates: the EUM certificate and the
    /// CIs the eUICCs trust (the one that signed the EUM among them).
    pub fn new(
        eum_cert_der: impl AsRef<[u8]>,
        ci_certs_der: &[Vec<u8>],
    ) -> Result<Arc<Self>, Error> {
        let eum =
            RspCertificate::from_der(eum_cert_der.as_ref()).map_err(pki("EUM certificate"))?;
        if eum.role() != Some(CertRole::Eum) {
            return Err(Error::WrongRole {
                what: "the EUM certificate",
                expected: CertRole::Eum,
            });
        }
        if ci_certs_der.is_empty() {
            return Err(Error::NoCi);
        }
        let mut trust = TrustStore::new();
        for der in ci_certs_der {
            trust.add_ci_der(der).map_err(pki("CI certificate"))?;
        }
        let ci_for_signing = eum
            .authority_key_id()
            .cloned()
            .ok_or_else(|| Error::Chain(missing_aki()))?;
        if trust.ci(&ci_for_signing).is_none() {
            return Err(Error::SigningCiMissing(ci_for_signing));
        }
        Ok(Arc::new(Self {
            eum,
            trust,
            ci_for_signing,
            dp_cache: Mutex::new(Vec::new()),
        }))
    }

    /// The shared part of eUICCs that support CRLs (SGP.22 `crlSupport`):
    /// CRLs loaded with ES10b.LoadCRL ([`SharedIdentity::load_crl`]) are
    /// checked whenever an SM-DP+ certificate is verified, and a revoked
    /// DPauth or DPpb is refused (invalidCertificate). A card cannot fetch a
    /// CRL itself, so a stale one still counts for what it lists and
    /// `on_stale` decides about the others.
    pub fn with_crl_support(
        eum_cert_der: impl AsRef<[u8]>,
        ci_certs_der: &[Vec<u8>],
        on_stale: ferrosim_pki::StalePolicy,
    ) -> Result<Arc<Self>, Error> {
        let mut shared = Self::new(eum_cert_der, ci_certs_der)?;
        // Just made: the only reference.
        let this = Arc::get_mut(&mut shared).ok_or(Error::NoCi)?;
        this.trust
            .enable_revocation(ferrosim_pki::RevocationPolicy {
                on_stale,
                fetch_distribution_points: false,
            });
        Ok(shared)
    }

    /// Whether the eUICCs support CRLs (LoadCRL, revocation checks).
    pub fn supports_crls(&self) -> bool {
        self.trust.revocation().is_some()
    }

    /// ES10b.LoadCRL: verifies a CRL of a trusted CI (or of the EUM) and
    /// puts it in force for every eUICC sharing this part.
    pub fn load_crl(
        &self,
        crl_der: &[u8],
    ) -> Result<ferrosim_pki::crl::LoadOutcome, ferrosim_pki::CrlError> {
        let crl = ferrosim_pki::Crl::from_der(crl_der)?;
        let issuer = crl.authority_key_id();
        if self.trust.ci(issuer).is_none() && self.eum.subject_key_id() != Some(issuer) {
            return Err(ferrosim_pki::CrlError::UnknownIssuer(issuer.clone()));
        }
        let outcome = self.trust.load_crl(crl_der, Some(&self.eum))?;
        // Verifications cached before the CRL are not reused unchecked.
        if let Ok(mut cache) = self.dp_cache.lock() {
            cache.clear();
        }
        Ok(outcome)
    }

    /// Loads the shared part from PEM or DER files: the EUM certificate and
    /// one or more CI certificates (each file may be a PEM bundle).
    pub fn load_files(eum_cert: &Path, ci_certs: &[PathBuf]) -> Result<Arc<Self>, Error> {
        let eum = load::certificate_from_file(eum_cert).map_err(pki("EUM certificate"))?;
        let mut cis = Vec::new();
        for path in ci_certs {
            for ci in load::certificates_from_file(path).map_err(pki("CI certificate"))? {
                cis.push(ci.der().to_vec());
            }
        }
        Self::new(eum.der(), &cis)
    }

    /// The EUM certificate (CERT.EUM.ECDSA).
    pub fn eum_certificate(&self) -> &RspCertificate {
        &self.eum
    }

    /// The CIs whose SM-DP+ certificates the eUICCs accept.
    pub fn trust_store(&self) -> &TrustStore {
        &self.trust
    }

    /// Verifies an SM-DP+ certificate (DPauth or DPpb) as
    /// [`ferrosim_pki::verify_dp_chain`] does, reusing an earlier
    /// verification of the same certificate for the same role when it and
    /// its CI are still valid at `now`. Failures are never cached: each is
    /// computed afresh, so the answer is always the one a full verification
    /// gives.
    pub fn verify_dp(
        &self,
        certificate: &[u8],
        role: CertRole,
        now: SystemTime,
    ) -> Result<Arc<VerifiedDp>, ferrosim_pki::Error> {
        if let Some(hit) = self.cached_dp(certificate, role, now) {
            return Ok(hit);
        }
        let verified = Arc::new(ferrosim_pki::verify_dp_chain(
            &self.trust,
            certificate,
            role,
            now,
        )?);
        if let Ok(mut cache) = self.dp_cache.lock() {
            if cache.len() >= DP_CACHE_ENTRIES {
                cache.remove(0);
            }
            cache.push(Arc::clone(&verified));
        }
        Ok(verified)
    }

    /// A cached verification of `certificate` for `role`, still valid at `now`.
    fn cached_dp(
        &self,
        certificate: &[u8],
        role: CertRole,
        now: SystemTime,
    ) -> Option<Arc<VerifiedDp>> {
        let cache = self.dp_cache.lock().ok()?;
        let hit = cache
            .iter()
            .find(|v| v.role == role && v.certificate.der() == certificate)?;
        let ci = self.trust.ci(&hit.ci_key_id)?;
        check_validity(&hit.certificate, role, now).ok()?;
        check_validity(ci, CertRole::Ci, now).ok()?;
        // With CRLs, revocation is checked again (a CRL may have become stale).
        if let Some(revocation) = self.trust.revocation() {
            revocation.check(&hit.certificate, role, ci, now).ok()?;
        }
        Some(Arc::clone(hit))
    }
}

impl fmt::Debug for SharedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedIdentity")
            .field("ci_for_signing", &self.ci_for_signing)
            .field("trusted_cis", &self.trust.len())
            .finish_non_exhaustive()
    }
}

/// The identity of a virtual eUICC: its own EID, certificate and key, and
/// the [`SharedIdentity`] of its manufacturer.
#[derive(Clone)]
pub struct EuiccIdentity {
    eid: Eid,
    certificate: Box<[u8]>,
    key: Arc<dyn KeySource>,
    shared: Arc<SharedIdentity>,
}

impl EuiccIdentity {
    /// Loads the identity from a `ferrosim pki init` output directory:
    /// `CI/ci.pem`, `EUM/eum.pem` and `eUICC/<EID>.pem` with its
    /// `<EID>.key.pem`. With `eid`, that eUICC is used; without, the only
    /// one there: a directory with several is an error listing their EIDs
    /// ([`Error::SeveralEuiccs`]). Other layouts (the GSMA SGP.26 set) are
    /// read with [`EuiccIdentity::load_files`].
    pub fn load_from_dir(dir: &Path, eid: Option<&str>) -> Result<Self, Error> {
        let (ci_path, _) = layout(dir, CertRole::Ci).ok_or_else(|| no_layout(dir))?;
        let (eum_path, _) = layout(dir, CertRole::Eum).ok_or_else(|| no_layout(dir))?;
        if !ci_path.is_file() || !eum_path.is_file() {
            return Err(no_layout(dir));
        }
        let euicc_dir = dir.join(EUICC_DIR);
        let stem = match eid {
            Some(eid) => Eid::parse(eid.trim())
                .map_err(|source| Error::Pki {
                    what: "EID",
                    source: source.into(),
                })?
                .to_string(),
            None => only_euicc(&euicc_dir)?,
        };
        let cert_path = euicc_dir.join(format!("{stem}.pem"));
        if !cert_path.is_file() {
            return Err(Error::Layout {
                path: cert_path,
                problem: "no eUICC certificate for this EID".into(),
            });
        }
        let key_path = euicc_dir.join(format!("{stem}.key.pem"));
        Self::load_files(&cert_path, &key_path, &eum_path, &[ci_path])
    }

    /// Loads the identity from PEM or DER files: the eUICC certificate, its
    /// private key (PKCS#8 or SEC1), the EUM certificate and one or more CI
    /// certificates (each file may be a PEM bundle).
    pub fn load_files(
        euicc_cert: &Path,
        euicc_key: &Path,
        eum_cert: &Path,
        ci_certs: &[PathBuf],
    ) -> Result<Self, Error> {
        let in_file = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source: Error| Error::File {
                what,
                path,
                source: Box::new(source),
            }
        };
        let euicc = load::certificate_from_file(euicc_cert)
            .map_err(pki("certificate"))
            .and_then(|c| expect_role(c, CertRole::Euicc, "the eUICC certificate"))
            .map_err(in_file("eUICC certificate", euicc_cert))?;
        let key = load::key_from_file(euicc_key)
            .map_err(pki("private key"))
            .and_then(|k| {
                if k.public_key_sec1() == euicc.public_key_sec1() {
                    Ok(k)
                } else {
                    Err(Error::KeyMismatch)
                }
            })
            .map_err(in_file("eUICC private key", euicc_key))?;
        let eum = load::certificate_from_file(eum_cert)
            .map_err(pki("certificate"))
            .and_then(|c| expect_role(c, CertRole::Eum, "the EUM certificate"))
            .map_err(in_file("EUM certificate", eum_cert))?;
        let mut cis = Vec::new();
        for path in ci_certs {
            let certs = load::certificates_from_file(path)
                .map_err(pki("certificate"))
                .map_err(in_file("CI certificate", path))?;
            for ci in certs {
                TrustStore::new()
                    .add_ci_der(ci.der())
                    .map_err(pki("certificate"))
                    .map_err(in_file("CI certificate", path))?;
                cis.push(ci.der().to_vec());
            }
        }
        Self::from_parts(euicc.der(), Arc::new(key), eum.der(), cis)
    }

    /// Builds the identity from DER certificates and a key source, checking
    /// that they belong together (see the module documentation). The shared
    /// part is this identity's alone; to share it, build it once with
    /// [`SharedIdentity::new`] and use [`EuiccIdentity::with_shared`].
    pub fn from_parts(
        euicc_cert_der: impl AsRef<[u8]>,
        euicc_key: Arc<dyn KeySource>,
        eum_cert_der: impl AsRef<[u8]>,
        ci_certs_der: Vec<Vec<u8>>,
    ) -> Result<Self, Error> {
        // Check the eUICC's own parts first: a wrong certificate or key is
        // the more useful error.
        let euicc =
            RspCertificate::from_der(euicc_cert_der.as_ref()).map_err(pki("eUICC certificate"))?;
        let euicc = check_euicc_certificate(euicc, euicc_key.as_ref())?;
        let shared = SharedIdentity::new(eum_cert_der, &ci_certs_der)?;
        Self::with_shared_certificate(shared, euicc, euicc_key)
    }

    /// The identity of one eUICC of the manufacturer `shared` describes: its
    /// certificate must be signed by that EUM, with an EID in its range, and
    /// `euicc_key` must be the certificate's key.
    pub fn with_shared(
        shared: Arc<SharedIdentity>,
        euicc_cert_der: impl AsRef<[u8]>,
        euicc_key: Arc<dyn KeySource>,
    ) -> Result<Self, Error> {
        let euicc =
            RspCertificate::from_der(euicc_cert_der.as_ref()).map_err(pki("eUICC certificate"))?;
        Self::with_shared_certificate(shared, euicc, euicc_key)
    }

    /// [`Self::with_shared`] for a certificate already parsed (a factory
    /// that just issued it), with the same checks.
    pub fn with_shared_certificate(
        shared: Arc<SharedIdentity>,
        euicc: RspCertificate,
        euicc_key: Arc<dyn KeySource>,
    ) -> Result<Self, Error> {
        let euicc = check_euicc_certificate(euicc, euicc_key.as_ref())?;
        let ci = shared
            .trust
            .ci(&shared.ci_for_signing)
            .ok_or_else(|| Error::SigningCiMissing(shared.ci_for_signing.clone()))?;
        // Check the chain at an instant where all three certificates are valid.
        let at = [ci.not_before(), shared.eum.not_before(), euicc.not_before()]
            .into_iter()
            .max()
            .unwrap_or(std::time::UNIX_EPOCH);
        // The EUM -> CI step is verified once per shared identity (the trust
        // store caches it); each eUICC certificate is checked against the EUM.
        let verified = verify_parsed_euicc_chain(&shared.trust, shared.eum.der(), euicc, at)
            .map_err(Error::Chain)?;
        Ok(Self {
            eid: verified.eid,
            certificate: verified.certificate.der().into(),
            key: euicc_key,
            shared,
        })
    }

    /// The EID (from the eUICC certificate's subject serialNumber).
    pub fn eid(&self) -> &Eid {
        &self.eid
    }

    /// The eUICC certificate (CERT.EUICC.ECDSA), parsed from the DER the
    /// identity keeps (the card itself only sends the DER).
    pub fn euicc_certificate(&self) -> Result<RspCertificate, Error> {
        RspCertificate::from_der(&self.certificate).map_err(pki("eUICC certificate"))
    }

    /// The eUICC certificate as DER.
    pub fn euicc_certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// The EUM certificate (CERT.EUM.ECDSA).
    pub fn eum_certificate(&self) -> &RspCertificate {
        &self.shared.eum
    }

    /// The CIs whose SM-DP+ certificates this eUICC accepts.
    pub fn trust_store(&self) -> &TrustStore {
        &self.shared.trust
    }

    /// The part of the identity shared with the other eUICCs of its EUM.
    pub fn shared(&self) -> &Arc<SharedIdentity> {
        &self.shared
    }

    /// CI key ids for `euiccCiPKIdListForVerification`: every trusted CI.
    pub fn ci_key_ids_for_verification(&self) -> Vec<KeyId> {
        self.shared.trust.ci_key_ids().cloned().collect()
    }

    /// CI key ids for `euiccCiPKIdListForSigning`: the CI above our EUM.
    pub fn ci_key_ids_for_signing(&self) -> Vec<KeyId> {
        vec![self.shared.ci_for_signing.clone()]
    }

    /// Signs `message` with the eUICC key (SK.EUICC.ECDSA): the `5F37`
    /// TLV of the raw `r || s` signature, as every ES10 answer carries it.
    pub(crate) fn sign_5f37(&self, message: &[u8]) -> Result<Vec<u8>, ferrosim_crypto::Error> {
        ferrosim_crypto::ecdsa::wrap_5f37(&self.key.sign_raw(message)?)
    }

    /// Signs `message` with the eUICC key: the raw `r || s` (SGP.32 result
    /// signatures euiccSignEPR / euiccSignEPE).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Result<[u8; 64], ferrosim_crypto::Error> {
        self.key.sign_raw(message)
    }
}

impl fmt::Debug for EuiccIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EuiccIdentity")
            .field("eid", &self.eid)
            .field("ci_for_signing", &self.shared.ci_for_signing)
            .field("trusted_cis", &self.shared.trust.len())
            .finish_non_exhaustive()
    }
}

/// Parses the eUICC certificate and checks its role and that `key` is its key.
fn check_euicc_certificate(
    euicc: RspCertificate,
    key: &dyn KeySource,
) -> Result<RspCertificate, Error> {
    if euicc.role() != Some(CertRole::Euicc) {
        return Err(Error::WrongRole {
            what: "the eUICC certificate",
            expected: CertRole::Euicc,
        });
    }
    if key.public_key_sec1() != euicc.public_key_sec1() {
        return Err(Error::KeyMismatch);
    }
    Ok(euicc)
}

/// The one eUICC certificate of a test PKI's `eUICC` directory; several
/// are an error that lists their EIDs.
fn only_euicc(dir: &Path) -> Result<String, Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Layout {
        path: dir.to_path_buf(),
        problem: format!("cannot list the eUICC certificates: {e}"),
    })?;
    let mut stems: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".pem").map(str::to_owned))
        .filter(|stem| !stem.ends_with(".key"))
        .collect();
    stems.sort();
    match stems.len() {
        0 => Err(Error::Layout {
            path: dir.to_path_buf(),
            problem: "no eUICC certificate found".into(),
        }),
        1 => Ok(stems.remove(0)),
        _ => Err(Error::SeveralEuiccs {
            dir: dir.to_path_buf(),
            eids: stems,
        }),
    }
}

/// `cert` if it has `role`, else [`Error::WrongRole`].
fn expect_role(
    cert: RspCertificate,
    role: CertRole,
    what: &'static str,
) -> Result<RspCertificate, Error> {
    if cert.role() == Some(role) {
        Ok(cert)
    } else {
        Err(Error::WrongRole {
            what,
            expected: role,
        })
    }
}

fn no_layout(dir: &Path) -> Error {
    Error::Layout {
        path: dir.to_path_buf(),
        problem: "not a `ferrosim pki init` directory (no CI/ci.pem and EUM/eum.pem); \
                  give the files of another layout (such as the GSMA SGP.26 set) one by one"
            .into(),
    }
}

fn pki(what: &'static str) -> impl Fn(ferrosim_pki::Error) -> Error {
    move |source| Error::Pki { what, source }
}

fn missing_aki() -> ferrosim_pki::Error {
    ferrosim_pki::Error::MissingExtension {
        cert: CertRole::Eum,
        extension: "authorityKeyIdentifier",
    }
}
