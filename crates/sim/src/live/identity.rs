//! The phones' eUICCs in a full-fidelity run: made like the virtual
//! mode's (a new P-256 key and a certificate per phone), but issued by the
//! EUM that the target SM-DP+ trusts, read from a test PKI directory
//! (`ferrosim pki init` layout: `CI/ci.pem`, `EUM/eum.pem`,
//! `EUM/eum.key.pem`), so the SM-DP+ verifies real chains.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_ids::Eid;
use ferrosim_pki::{CertRole, CertificateRequest, RspCertificate};

use crate::error::SimError;

/// Digits of an EID before its two check digits.
const EID_BODY_DIGITS: usize = 30;

/// Issues the phones' eUICCs from a PKI directory's EUM.
pub struct EumIssuer {
    eum_certificate: RspCertificate,
    eum_key: SoftwareKey,
    shared: Arc<SharedIdentity>,
    /// The EID digits every phone's EID starts with (the EUM's range).
    prefix: String,
    not_before: SystemTime,
}

impl std::fmt::Debug for EumIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EumIssuer")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl EumIssuer {
    /// Reads the CI certificate and the EUM's certificate and key from
    /// `dir`, checking that the EUM is an EUM, its key is its own and the
    /// CI signed it.
    pub fn from_pki_dir(dir: &Path) -> Result<Self, SimError> {
        let (ci_path, _) = ferrosim_pki::generate::layout(dir, CertRole::Ci)
            .ok_or_else(|| SimError::Setup("no CI layout".into()))?;
        let (eum_path, eum_key_path) = ferrosim_pki::generate::layout(dir, CertRole::Eum)
            .ok_or_else(|| SimError::Setup("no EUM layout".into()))?;
        let read_err = |path: &Path| {
            let path = path.display().to_string();
            move |e: ferrosim_pki::Error| SimError::Parameter(format!("--pki: {path}: {e}"))
        };
        let ci =
            ferrosim_pki::load::certificates_from_file(&ci_path).map_err(read_err(&ci_path))?;
        let eum_certificate =
            ferrosim_pki::load::certificate_from_file(&eum_path).map_err(read_err(&eum_path))?;
        let eum_key =
            ferrosim_pki::load::key_from_file(&eum_key_path).map_err(read_err(&eum_key_path))?;
        if eum_certificate.role() != Some(CertRole::Eum) {
            return Err(SimError::Parameter(format!(
                "--pki: {} is not an EUM certificate",
                eum_path.display()
            )));
        }
        if eum_key.public_key_sec1() != eum_certificate.public_key_sec1() {
            return Err(SimError::Parameter(format!(
                "--pki: {} is not the key of {}",
                eum_key_path.display(),
                eum_path.display()
            )));
        }
        let ci_der: Vec<Vec<u8>> = ci.iter().map(|c| c.der().to_vec()).collect();
        let shared = SharedIdentity::new(eum_certificate.der(), &ci_der)
            .map_err(|e| SimError::Parameter(format!("--pki: EUM and CI: {e}")))?;
        let prefix = eum_certificate.eid_ranges().all().next().map_or_else(
            || crate::population::EID_PREFIX.to_owned(),
            |p| p.as_str().to_owned(),
        );
        Ok(Self {
            eum_certificate,
            eum_key,
            shared,
            prefix,
            not_before: SystemTime::now() - Duration::from_secs(86_400),
        })
    }

    /// How many distinct EIDs the EUM's range leaves for phones.
    pub fn capacity(&self) -> u64 {
        let free = EID_BODY_DIGITS.saturating_sub(self.prefix.len()).min(18) as u32;
        10u64.saturating_pow(free)
    }

    /// Phone `n`'s EID: the EUM's prefix, zeros, `n`.
    pub fn eid(&self, n: u32) -> Result<Eid, SimError> {
        self.eid_at(u64::from(n))
    }

    /// The EID of number `n` in the EUM's range: its prefix, zeros, `n`.
    pub fn eid_at(&self, n: u64) -> Result<Eid, SimError> {
        let free = EID_BODY_DIGITS.saturating_sub(self.prefix.len());
        let digits = n.to_string();
        if digits.len() > free {
            return Err(SimError::Parameter(format!(
                "the EUM's EID range {} has no room for {n} phones",
                self.prefix
            )));
        }
        Eid::from_body(&format!("{}{digits:0>free$}", self.prefix))
            .map_err(|e| SimError::Setup(format!("EID of phone {n}: {e}")))
    }

    /// A new, empty eUICC for `eid`: a new key and a certificate from the EUM.
    pub fn card(&self, eid: Eid) -> Result<VirtualEuicc, SimError> {
        let setup = |what: &'static str| move |e: String| SimError::Setup(format!("{what}: {e}"));
        let key = SoftwareKey::generate().map_err(|e| setup("eUICC key")(e.to_string()))?;
        let mut request = CertificateRequest::new(
            CertRole::Euicc,
            "ferrosim simulated eUICC",
            self.not_before,
            ferrosim_pki::generate::end_of_time(),
        );
        request.organization = Some("ferrosim Test EUM".into());
        request.eid = Some(eid);
        let certificate = ferrosim_pki::issue_for_public_key(
            &request,
            key.public_key_sec1(),
            &self.eum_certificate,
            &self.eum_key,
        )
        .map_err(|e| setup("eUICC certificate")(e.to_string()))?;
        let identity = EuiccIdentity::with_shared(
            Arc::clone(&self.shared),
            certificate.der(),
            Arc::new(key) as Arc<dyn KeySource>,
        )
        .map_err(|e| setup("eUICC identity")(e.to_string()))?;
        Ok(VirtualEuicc::new(identity, EuiccState::default()))
    }
}
