//! Whether the eUICC certificates the eIM relies on may still be relied on.
//!
//! The association verified the eUICC's chain (CI → EUM → eUICC) once; a
//! CRL published later can revoke the eUICC or its EUM. With revocation on
//! in the eIM's [`TrustStore`] (the `[revocation]` section of `serve`, shared
//! with the SM-DP+), every ESipa exchange of a device first checks the
//! association's two certificates against the CRLs in force: a revoked one,
//! or one whose CRL is stale, incomplete or missing under the `refuse`
//! policy, refuses the exchange; under `warn` the exchange goes on and the
//! warning is returned for the log. Certificates an IPA reports in
//! IpaEuiccData are verified as a whole chain (they are unsigned data).
//!
//! Pure: the trust store (with its CRLs) and `now` in, a decision out.

use ferrosim_pki::crl::RevocationWarning;
use ferrosim_pki::{CertRole, Error as PkiError, RspCertificate, TrustStore, verify_euicc_chain};

use crate::error::EimError;
use crate::ids::Timestamp;
use crate::record::DeviceRecord;

/// Checks the association's EUM and eUICC certificates against the CRLs in
/// force (nothing to check when revocation is off). Only revocation is
/// checked here: the chain itself was verified at association.
pub fn check_device(
    record: &DeviceRecord,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Vec<RevocationWarning>, PkiError> {
    let Some(revocation) = trust.revocation() else {
        return Ok(Vec::new());
    };
    let now = now.to_system_time();
    let eum = RspCertificate::from_der(&record.association.eum_certificate)?;
    let euicc = RspCertificate::from_der(&record.association.euicc_certificate)?;
    let ci_id = eum
        .authority_key_id()
        .cloned()
        .ok_or(PkiError::MissingExtension {
            cert: CertRole::Eum,
            extension: "authorityKeyIdentifier",
        })?;
    let ci = trust
        .ci(&ci_id)
        .ok_or_else(|| PkiError::UnknownCi(ci_id.clone()))?;
    let mut warnings = Vec::new();
    warnings.extend(revocation.check(&eum, CertRole::Eum, ci, now)?);
    warnings.extend(revocation.check(&euicc, CertRole::Euicc, &eum, now)?);
    Ok(warnings)
}

/// Verifies certificates an IPA reported in IpaEuiccData (either may be
/// absent: the association's stands in) as a chain to a trusted CI, with
/// revocation, naming the device's EID.
pub fn check_reported(
    record: &DeviceRecord,
    eum: Option<&[u8]>,
    euicc: Option<&[u8]>,
    trust: &TrustStore,
    now: Timestamp,
) -> Result<Vec<RevocationWarning>, EimError> {
    if eum.is_none() && euicc.is_none() {
        return Ok(Vec::new());
    }
    let eum = eum.unwrap_or(&record.association.eum_certificate);
    let euicc = euicc.unwrap_or(&record.association.euicc_certificate);
    let verified = verify_euicc_chain(trust, eum, euicc, now.to_system_time())?;
    if verified.eid != record.eid {
        return Err(EimError::CertificateForOtherEid {
            requested: record.eid,
            certificate: verified.eid,
        });
    }
    Ok(verified.revocation_warnings)
}

/// Whether a refusal of the eUICC's chain is about revocation (a revoked
/// certificate, or an unknown status under the `refuse` policy).
pub fn is_revocation(e: &PkiError) -> bool {
    matches!(
        e,
        PkiError::Revoked { .. } | PkiError::RevocationUnknown { .. }
    )
}
