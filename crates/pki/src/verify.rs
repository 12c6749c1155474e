//! Chain verification: CI → EUM → eUICC and CI → SM-DP+ certificate.
//!
//! The SM-DP+ verifies the eUICC chain on every authenticateClient and the
//! eUICC verifies DPauth and DPpb on every download, so this is a hot path:
//! certificates are parsed once, and the EUM → CI step is cached in the
//! [`TrustStore`] after it first succeeds (validity is still checked on
//! every call, against the time the caller passes in — nothing here reads
//! the clock).
//!
//! Every failure is its own [`Error`] variant: `BadSignature`, `Expired`,
//! `NotYetValid`, `WrongPolicy`, `WrongKeyUsage`, `UnknownCi`,
//! `EidOutsideEumRange`, `Revoked`, `RevocationUnknown`, and the parse errors.
//!
//! When the trust store has revocation enabled, every certificate below the
//! CI (EUM, eUICC, DPauth, DPpb, DPtls) is checked against its issuer's CRL
//! last, once its signature is known good; a certificate accepted with an
//! unknown revocation status (policy `warn`) carries a
//! [`RevocationWarning`] in the result.

use std::time::SystemTime;

use crate::cert::RspCertificate;
use crate::crl::RevocationWarning;
use crate::eid::Eid;
use crate::error::{Error, Result};
use crate::oid::Oid;
use crate::profile::{CertRole, ID_KP_SERVER_AUTH, KeyId, KeyUsage};
use crate::trust::TrustStore;

/// What a verified eUICC certificate chain establishes.
#[derive(Clone, Debug)]
pub struct VerifiedEuicc {
    /// The eUICC's EID (subject serialNumber), inside the EUM's permitted range.
    pub eid: Eid,
    /// The eUICC's public key (SEC1), which signs euiccSigned1/2 and the installation result.
    pub public_key_sec1: Vec<u8>,
    /// Key id of the CI the chain ends at (the CI PKId).
    pub ci_key_id: KeyId,
    /// Key id of the EUM that issued the eUICC certificate.
    pub eum_key_id: KeyId,
    /// The parsed eUICC certificate (its `verifying_key()` checks eUICC signatures).
    pub certificate: RspCertificate,
    /// EUM or eUICC certificates accepted with an unknown revocation status
    /// (policy `warn`); empty when revocation is off or everything was checked.
    pub revocation_warnings: Vec<RevocationWarning>,
}

/// What a verified SM-DP+ certificate establishes.
#[derive(Clone, Debug)]
pub struct VerifiedDp {
    /// The role the certificate was verified for.
    pub role: CertRole,
    /// The SM-DP+ public key (SEC1).
    pub public_key_sec1: Vec<u8>,
    /// The SM-DP+ OID (subjectAltName registeredID).
    pub smdp_oid: Oid,
    /// Key id of the CI that issued the certificate (the CI PKId).
    pub ci_key_id: KeyId,
    /// subjectAltName DNS names (the SM-DP+ address for DPtls; may be empty for DPauth/DPpb).
    pub dns_names: Vec<String>,
    /// The parsed certificate (its `verifying_key()` checks SM-DP+ signatures).
    pub certificate: RspCertificate,
    /// Set when the certificate was accepted with an unknown revocation
    /// status (policy `warn`).
    pub revocation_warnings: Vec<RevocationWarning>,
}

/// Verifies CI → EUM → eUICC from DER certificates, as received in
/// authenticateClient (`euiccCertificate`, `eumCertificate`).
///
/// The EUM → CI step is cached in `trust` after it first succeeds.
pub fn verify_euicc_chain(
    trust: &TrustStore,
    eum_der: &[u8],
    euicc_der: &[u8],
    now: SystemTime,
) -> Result<VerifiedEuicc> {
    verify_parsed_euicc_chain(trust, eum_der, RspCertificate::from_der(euicc_der)?, now)
}

/// [`verify_euicc_chain`] for an eUICC certificate its holder has already
/// parsed (a factory personalising the eUICC it just issued it for), so it
/// is not parsed again. The checks are the same.
pub fn verify_parsed_euicc_chain(
    trust: &TrustStore,
    eum_der: &[u8],
    euicc: RspCertificate,
    now: SystemTime,
) -> Result<VerifiedEuicc> {
    let eum = trust.verified_eum(eum_der)?;
    finish_euicc_chain(trust, &eum, euicc, now)
}

/// Verifies CI → EUM → eUICC from parsed certificates.
pub fn verify_euicc_certificates(
    trust: &TrustStore,
    eum: &RspCertificate,
    euicc: &RspCertificate,
    now: SystemTime,
) -> Result<VerifiedEuicc> {
    check_eum_against_ci(trust, eum)?;
    finish_euicc_chain(trust, eum, euicc.clone(), now)
}

/// Verifies an EUM certificate against the trusted CIs; returns the CI's key id.
pub fn verify_eum(trust: &TrustStore, eum: &RspCertificate, now: SystemTime) -> Result<KeyId> {
    let ci_key_id = check_eum_against_ci(trust, eum)?;
    check_validity(eum, CertRole::Eum, now)?;
    check_ci_validity(trust, &ci_key_id, now)?;
    check_revocation(trust, eum, CertRole::Eum, &ci_key_id, now)?;
    Ok(ci_key_id)
}

/// Verifies an SM-DP+ certificate (DPauth, DPpb or DPtls) issued directly by
/// a trusted CI, as the eUICC does for `serverCertificate` and `smdpCertificate`.
pub fn verify_dp_chain(
    trust: &TrustStore,
    cert_der: &[u8],
    expected_role: CertRole,
    now: SystemTime,
) -> Result<VerifiedDp> {
    if !expected_role.is_smdp() {
        return Err(Error::NotSmdpRole(expected_role));
    }
    let cert = RspCertificate::from_der(cert_der)?;
    verify_dp_certificate(trust, &cert, expected_role, now)
}

/// Verifies a parsed SM-DP+ certificate issued directly by a trusted CI.
pub fn verify_dp_certificate(
    trust: &TrustStore,
    cert: &RspCertificate,
    expected_role: CertRole,
    now: SystemTime,
) -> Result<VerifiedDp> {
    if !expected_role.is_smdp() {
        return Err(Error::NotSmdpRole(expected_role));
    }
    check_profile(cert, expected_role)?;
    let ci_key_id = authority_key_id(cert, expected_role)?;
    let ci = trust
        .ci(&ci_key_id)
        .ok_or_else(|| Error::UnknownCi(ci_key_id.clone()))?;
    check_issued_by(cert, expected_role, ci, CertRole::Ci)?;
    check_validity(cert, expected_role, now)?;
    check_validity(ci, CertRole::Ci, now)?;

    let smdp_oid = cert
        .registered_ids()
        .first()
        .cloned()
        .ok_or(Error::MissingSmdpOid {
            cert: expected_role,
        })?;
    if expected_role.is_tls() && cert.dns_names().is_empty() && cert.ip_addresses().is_empty() {
        return Err(Error::MissingDnsName);
    }
    let revocation_warnings = match trust.revocation() {
        Some(revocation) => revocation
            .check(cert, expected_role, ci, now)?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    Ok(VerifiedDp {
        revocation_warnings,
        role: expected_role,
        public_key_sec1: cert.public_key_sec1().to_vec(),
        smdp_oid,
        ci_key_id,
        dns_names: cert.dns_names().to_vec(),
        certificate: cert.clone(),
    })
}

/// Checks that a certificate fits the profile of `role`: policy, key usage,
/// basicConstraints, extended key usage for TLS, key identifiers for CAs.
pub fn check_profile(cert: &RspCertificate, role: CertRole) -> Result<()> {
    let found = cert.role();
    if found != Some(role) {
        return Err(Error::WrongPolicy {
            expected: role,
            found,
        });
    }
    let usage = cert.key_usage().ok_or(Error::MissingExtension {
        cert: role,
        extension: "keyUsage",
    })?;
    let required = role.required_key_usage();
    if !usage.contains(required) {
        return Err(Error::WrongKeyUsage {
            cert: role,
            problem: match role {
                CertRole::Ci => "a CI needs keyCertSign and cRLSign",
                CertRole::Eum => "an EUM needs keyCertSign",
                _ => "an end-entity certificate needs digitalSignature",
            },
        });
    }
    let signs_certificates = KeyUsage(KeyUsage::KEY_CERT_SIGN.0 | KeyUsage::CRL_SIGN.0);
    if !role.is_ca() && usage.intersects(signs_certificates) {
        return Err(Error::WrongKeyUsage {
            cert: role,
            problem: "an end-entity certificate must not have keyCertSign or cRLSign",
        });
    }
    if role.is_ca() && !cert.is_ca() {
        return Err(Error::WrongBasicConstraints {
            cert: role,
            problem: "a CI or EUM certificate needs basicConstraints CA:true",
        });
    }
    if !role.is_ca() && cert.is_ca() {
        return Err(Error::WrongBasicConstraints {
            cert: role,
            problem: "an end-entity certificate must not be a CA",
        });
    }
    if role.is_tls() && !cert.extended_key_usage().contains(&ID_KP_SERVER_AUTH) {
        return Err(Error::WrongKeyUsage {
            cert: role,
            problem: "a TLS server certificate needs extendedKeyUsage serverAuth",
        });
    }
    if role.is_ca() && cert.subject_key_id().is_none() {
        return Err(Error::MissingExtension {
            cert: role,
            extension: "subjectKeyIdentifier",
        });
    }
    Ok(())
}

/// Checks `now` against a certificate's validity period.
pub fn check_validity(cert: &RspCertificate, role: CertRole, now: SystemTime) -> Result<()> {
    if now < cert.not_before() {
        return Err(Error::NotYetValid {
            cert: role,
            not_before: cert.not_before(),
        });
    }
    if now > cert.not_after() {
        return Err(Error::Expired {
            cert: role,
            not_after: cert.not_after(),
        });
    }
    Ok(())
}

/// Checks the EUM's profile, finds its CI and verifies its signature (no validity).
pub(crate) fn check_eum_against_ci(trust: &TrustStore, eum: &RspCertificate) -> Result<KeyId> {
    check_profile(eum, CertRole::Eum)?;
    let ci_key_id = authority_key_id(eum, CertRole::Eum)?;
    let ci = trust
        .ci(&ci_key_id)
        .ok_or_else(|| Error::UnknownCi(ci_key_id.clone()))?;
    check_issued_by(eum, CertRole::Eum, ci, CertRole::Ci)?;
    Ok(ci_key_id)
}

/// Checks that `cert` names `issuer` (key id and name) and carries its valid signature.
pub(crate) fn check_issued_by(
    cert: &RspCertificate,
    cert_role: CertRole,
    issuer: &RspCertificate,
    issuer_role: CertRole,
) -> Result<()> {
    if let (Some(aki), Some(ski)) = (cert.authority_key_id(), issuer.subject_key_id())
        && aki != ski
    {
        return Err(Error::NotIssuedBy {
            cert: cert_role,
            issuer: issuer_role,
            what: "key identifier",
        });
    }
    if cert.issuer() != issuer.subject() {
        return Err(Error::NotIssuedBy {
            cert: cert_role,
            issuer: issuer_role,
            what: "issuer name",
        });
    }
    issuer
        .verifying_key()
        .verify_der(cert.tbs_der(), cert.signature_der())
        .map_err(|_| Error::BadSignature { cert: cert_role })
}

/// Second half of the eUICC chain, once the EUM → CI step is known good.
fn finish_euicc_chain(
    trust: &TrustStore,
    eum: &RspCertificate,
    euicc: RspCertificate,
    now: SystemTime,
) -> Result<VerifiedEuicc> {
    // The cached or just-checked EUM still has to be valid now, and so does its CI.
    let ci_key_id = authority_key_id(eum, CertRole::Eum)?;
    check_validity(eum, CertRole::Eum, now)?;
    check_ci_validity(trust, &ci_key_id, now)?;

    check_profile(&euicc, CertRole::Euicc)?;
    authority_key_id(&euicc, CertRole::Euicc)?;
    check_issued_by(&euicc, CertRole::Euicc, eum, CertRole::Eum)?;
    check_validity(&euicc, CertRole::Euicc, now)?;

    let eid = euicc.eid()?;
    let ranges = eum.eid_ranges();
    if ranges.is_empty() {
        return Err(Error::EumWithoutEidRange);
    }
    if !ranges.permits(&eid) {
        return Err(Error::EidOutsideEumRange { eid });
    }
    let eum_key_id = eum
        .subject_key_id()
        .cloned()
        .ok_or(Error::MissingExtension {
            cert: CertRole::Eum,
            extension: "subjectKeyIdentifier",
        })?;
    let mut revocation_warnings = Vec::new();
    if let Some(revocation) = trust.revocation() {
        let ci = trust
            .ci(&ci_key_id)
            .ok_or_else(|| Error::UnknownCi(ci_key_id.clone()))?;
        revocation_warnings.extend(revocation.check(eum, CertRole::Eum, ci, now)?);
        revocation_warnings.extend(revocation.check(&euicc, CertRole::Euicc, eum, now)?);
    }
    Ok(VerifiedEuicc {
        revocation_warnings,
        eid,
        public_key_sec1: euicc.public_key_sec1().to_vec(),
        ci_key_id,
        eum_key_id,
        certificate: euicc,
    })
}

/// Checks `cert`, issued by the trusted CI `ci_key_id`, against the CI's
/// CRLs when revocation is on; returns the warning accepted per policy.
pub fn check_revocation(
    trust: &TrustStore,
    cert: &RspCertificate,
    role: CertRole,
    ci_key_id: &KeyId,
    now: SystemTime,
) -> Result<Option<RevocationWarning>> {
    let Some(revocation) = trust.revocation() else {
        return Ok(None);
    };
    let ci = trust
        .ci(ci_key_id)
        .ok_or_else(|| Error::UnknownCi(ci_key_id.clone()))?;
    revocation.check(cert, role, ci, now)
}

fn check_ci_validity(trust: &TrustStore, ci_key_id: &KeyId, now: SystemTime) -> Result<()> {
    let ci = trust
        .ci(ci_key_id)
        .ok_or_else(|| Error::UnknownCi(ci_key_id.clone()))?;
    check_validity(ci, CertRole::Ci, now)
}

fn authority_key_id(cert: &RspCertificate, role: CertRole) -> Result<KeyId> {
    cert.authority_key_id()
        .cloned()
        .ok_or(Error::MissingExtension {
            cert: role,
            extension: "authorityKeyIdentifier",
        })
}
