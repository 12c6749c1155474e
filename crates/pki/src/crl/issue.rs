//! Issuing signed CRLs for a hierarchy whose CA keys we hold (a
//! `ferrosim pki init` hierarchy, or keys in a PKCS#11 token): the CI for
//! the EUM and SM-DP+ certificates, an EUM for its eUICCs.
//!
//! The CRL follows the RSP profile [`super::parse`] checks: version 2,
//! ecdsa-with-SHA256, thisUpdate and nextUpdate, authorityKeyIdentifier and
//! cRLNumber, an issuingDistributionPoint when the scope is narrowed, and the
//! RSP partial-CRL extensions for a CRL split into parts.

use std::time::SystemTime;

use const_oid::db::rfc5280 as oids;
use der::asn1::{BitString, GeneralizedTime, Ia5String, OctetString, Uint};
use der::{DateTime, Encode};
use ferrosim_crypto::ecdsa::raw_to_der;
use ferrosim_crypto::key::KeySource;
use spki::AlgorithmIdentifierOwned;
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber as X509CrlNumber};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

use super::CrlError;
use super::parse::{
    Crl, CrlNumber, CrlPart, CrlScope, ID_RSP_EXP_DATE, ID_RSP_PARTIAL_CRL_NUMBER,
    ID_RSP_TOTAL_PARTIAL_CRL_NUMBER, MAX_CRL_PARTS, RevokedEntry,
};
use crate::cert::RspCertificate;
use crate::error::{Error, Result};

/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// What to put in a CRL.
#[derive(Clone, Debug)]
pub struct CrlRequest {
    /// cRLNumber: must grow with every CRL the issuer publishes for a scope.
    pub number: CrlNumber,
    /// thisUpdate.
    pub this_update: SystemTime,
    /// nextUpdate: when the next CRL will be out at the latest.
    pub next_update: SystemTime,
    /// The revoked certificates.
    pub entries: Vec<RevokedEntry>,
    /// The certificates covered (an issuingDistributionPoint is written
    /// unless the scope is the default "everything the issuer issued").
    pub scope: CrlScope,
}

/// Issues one CRL signed by `key`, the key of `issuer`.
pub fn issue_crl(
    request: &CrlRequest,
    issuer: &RspCertificate,
    key: &dyn KeySource,
) -> Result<Crl> {
    issue(request, &request.entries, None, issuer, key)
}

/// Issues the CRL as `parts` partial CRLs (SGP.22): each carries the same
/// cRLNumber, its partialCrlNumber (1 to `parts`) and the
/// totalPartialCrlNumber; the entries are dealt out in serial order. A
/// single part is a plain CRL.
pub fn issue_partial_crls(
    request: &CrlRequest,
    parts: u32,
    issuer: &RspCertificate,
    key: &dyn KeySource,
) -> Result<Vec<Crl>> {
    if parts == 0 || parts > MAX_CRL_PARTS {
        return Err(Error::InvalidOption(format!(
            "a CRL is split into 1 to {MAX_CRL_PARTS} parts, not {parts}"
        )));
    }
    if parts == 1 {
        return Ok(vec![issue_crl(request, issuer, key)?]);
    }
    let mut entries = request.entries.clone();
    entries.sort_by(|a, b| a.serial.cmp(&b.serial));
    let per_part = entries.len().div_ceil(parts as usize).max(1);
    (1..=parts)
        .map(|number| {
            let start = (number as usize - 1) * per_part;
            let slice = entries.get(start..).unwrap_or_default();
            let slice = &slice[..slice.len().min(per_part)];
            let part = CrlPart {
                number,
                total: parts,
            };
            issue(request, slice, Some(part), issuer, key)
        })
        .collect()
}

fn issue(
    request: &CrlRequest,
    entries: &[RevokedEntry],
    part: Option<CrlPart>,
    issuer: &RspCertificate,
    key: &dyn KeySource,
) -> Result<Crl> {
    if key.public_key_sec1() != issuer.public_key_sec1() {
        return Err(Error::InvalidOption(
            "the issuer key does not belong to the issuer certificate".into(),
        ));
    }
    if request.next_update <= request.this_update {
        return Err(Error::InvalidOption(
            "nextUpdate must lie after thisUpdate".into(),
        ));
    }
    let ski = issuer.subject_key_id().ok_or(Error::MissingExtension {
        cert: issuer.role().unwrap_or(crate::profile::CertRole::Ci),
        extension: "subjectKeyIdentifier",
    })?;
    let enc = |e: der::Error| Error::Crl(CrlError::Malformed(e));

    let mut extensions = vec![
        extension(
            oids::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(ski.as_bytes()).map_err(enc)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?,
        extension(
            oids::ID_CE_CRL_NUMBER,
            false,
            &X509CrlNumber(uint(request.number.as_be_bytes())?),
        )?,
    ];
    if request.scope != CrlScope::default() {
        extensions.push(extension(
            oids::ID_CE_ISSUING_DISTRIBUTION_POINT,
            true,
            &issuing_distribution_point(&request.scope)?,
        )?);
    }
    if let Some(part) = part {
        extensions.push(extension(
            ID_RSP_TOTAL_PARTIAL_CRL_NUMBER,
            false,
            &uint(&part.total.to_be_bytes())?,
        )?);
        extensions.push(extension(
            ID_RSP_PARTIAL_CRL_NUMBER,
            false,
            &uint(&part.number.to_be_bytes())?,
        )?);
    }
    let revoked = entries
        .iter()
        .map(revoked_cert)
        .collect::<Result<Vec<_>>>()?;
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs = TbsCertList {
        version: x509_cert::Version::V2,
        signature: algorithm.clone(),
        issuer: issuer.subject().clone(),
        this_update: time(request.this_update)?,
        next_update: Some(time(request.next_update)?),
        revoked_certificates: (!revoked.is_empty()).then_some(revoked),
        crl_extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(enc)?;
    let raw = key.sign_raw(&tbs_der)?;
    let signature = BitString::from_bytes(&raw_to_der(&raw)?).map_err(enc)?;
    let list = CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: algorithm,
        signature,
    };
    let crl = Crl::from_der(&list.to_der().map_err(enc)?)?;
    crl.verify_issued_by(issuer)?;
    Ok(crl)
}

fn revoked_cert(entry: &RevokedEntry) -> Result<RevokedCert> {
    let enc = |e: der::Error| Error::Crl(CrlError::Malformed(e));
    let mut extensions = Vec::new();
    if let Some(reason) = entry.reason {
        extensions.push(extension(
            oids::ID_CE_CRL_REASONS,
            false,
            &reason.to_x509(),
        )?);
    }
    if let Some(t) = entry.invalidity_date {
        let t = GeneralizedTime::from_system_time(t).map_err(enc)?;
        extensions.push(extension(oids::ID_CE_INVALIDITY_DATE, false, &t)?);
    }
    if let Some(t) = entry.certificate_expiry {
        extensions.push(extension(ID_RSP_EXP_DATE, false, &time(t)?)?);
    }
    Ok(RevokedCert {
        serial_number: SerialNumber::new(&entry.serial).map_err(enc)?,
        revocation_date: time(entry.revoked_at)?,
        crl_entry_extensions: (!extensions.is_empty()).then_some(extensions),
    })
}

fn issuing_distribution_point(scope: &CrlScope) -> Result<IssuingDistributionPoint> {
    let names = scope
        .distribution_point_uris
        .iter()
        .map(|u| {
            Ia5String::new(u)
                .map(GeneralName::UniformResourceIdentifier)
                .map_err(|_| Error::InvalidOption(format!("{u:?} is not an IA5String URI")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(IssuingDistributionPoint {
        distribution_point: (!names.is_empty()).then_some(DistributionPointName::FullName(names)),
        only_contains_user_certs: scope.only_user_certs,
        only_contains_ca_certs: scope.only_ca_certs,
        only_some_reasons: None,
        indirect_crl: false,
        only_contains_attribute_certs: false,
    })
}

fn extension(
    oid: const_oid::ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension> {
    let enc = |e: der::Error| Error::Crl(CrlError::Malformed(e));
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(enc)?).map_err(enc)?,
    })
}

fn uint(be: &[u8]) -> Result<Uint> {
    let trimmed = match be.iter().position(|b| *b != 0) {
        Some(start) => &be[start..],
        None => &[0u8][..],
    };
    Uint::new(trimmed).map_err(|e| Error::Crl(CrlError::Malformed(e)))
}

/// A CRL time: UTCTime through 2049, GeneralizedTime after (RFC 5280 5.1.2.4).
fn time(t: SystemTime) -> Result<Time> {
    DateTime::from_system_time(t).map(Time::from).map_err(|_| {
        Error::InvalidOption(format!(
            "CRL time {} is outside 1970 to 9999",
            crate::timefmt::format_time(t)
        ))
    })
}
