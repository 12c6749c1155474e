//! A parsed certificate revocation list of the RSP PKI.
//!
//! Parsing checks the shape SGP.22 and RFC 5280 give a CRL of the GSMA
//! hierarchy: version 2, ecdsa-with-SHA256, a nextUpdate, an
//! authorityKeyIdentifier and a cRLNumber, no delta and no indirect CRLs,
//! and the RSP partial-CRL extensions (`id-rsp-totalPartialCrlNumber`,
//! `id-rsp-partialCrlNumber`) when the issuer split its CRL into parts. Who
//! signed it is checked by [`Crl::verify_issued_by`]; whether it is fresh
//! by the caller, against the time it passes in.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{GeneralizedTime, Uint};
use der::{Decode, Header, Reader, SliceReader};
use x509_cert::crl::CertificateList;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber as X509CrlNumber, CrlReason};
use x509_cert::name::Name;

use super::CrlError;
pub use super::entry::{CrlNumber, RevocationReason, RevokedEntry};
use crate::cert::RspCertificate;
use crate::profile::{KeyId, KeyUsage};

/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// `id-rsp-expDate` (2.23.146.1.2.0.1): a CRL entry's certificate expiry date.
pub const ID_RSP_EXP_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.146.1.2.0.1");
/// `id-rsp-totalPartialCrlNumber` (2.23.146.1.2.0.2): how many parts the CRL has.
pub const ID_RSP_TOTAL_PARTIAL_CRL_NUMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.146.1.2.0.2");
/// `id-rsp-partialCrlNumber` (2.23.146.1.2.0.3): which part this is (1-based).
pub const ID_RSP_PARTIAL_CRL_NUMBER: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.146.1.2.0.3");
/// Most parts a partial CRL may announce (bounds what a loader keeps per CRL number).
pub const MAX_CRL_PARTS: u32 = 1024;

/// Which part of a CRL split into parts (SGP.22 partial CRLs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CrlPart {
    /// This part's number, 1 to `total`.
    pub number: u32,
    /// How many parts the CRL with this cRLNumber has.
    pub total: u32,
}

/// The certificates a CRL speaks about (issuingDistributionPoint, RFC 5280 5.2.5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct CrlScope {
    /// Only end-entity certificates (eUICC, DPauth, DPpb, DPtls).
    pub only_user_certs: bool,
    /// Only CA certificates (EUM, sub-CAs).
    pub only_ca_certs: bool,
    /// The distribution point's URIs, when the CRL names one: then it covers
    /// only certificates whose cRLDistributionPoints name one of them.
    pub distribution_point_uris: Vec<String>,
}

impl CrlScope {
    /// Whether a certificate (a CA or not, with these distribution point URIs) is in scope.
    pub fn covers(&self, is_ca: bool, cert_uris: &[String]) -> bool {
        if (self.only_user_certs && is_ca) || (self.only_ca_certs && !is_ca) {
            return false;
        }
        self.distribution_point_uris.is_empty()
            || cert_uris
                .iter()
                .any(|u| self.distribution_point_uris.contains(u))
    }
}

/// A parsed CRL, with its DER kept so the signature is checked over the bytes as received.
#[derive(Clone, Debug)]
pub struct Crl {
    der: Vec<u8>,
    tbs: Range<usize>,
    signature: Vec<u8>,
    issuer: Name,
    authority_key_id: KeyId,
    this_update: SystemTime,
    next_update: SystemTime,
    number: CrlNumber,
    part: Option<CrlPart>,
    scope: CrlScope,
    entries: BTreeMap<Vec<u8>, RevokedEntry>,
}

impl PartialEq for Crl {
    /// Two parsed CRLs are equal when their DER is.
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for Crl {}

impl Crl {
    /// Parses a DER `CertificateList`.
    pub fn from_der(der: &[u8]) -> Result<Self, CrlError> {
        let list = CertificateList::from_der(der).map_err(CrlError::Malformed)?;
        let tbs = tbs_range(der).map_err(CrlError::Malformed)?;
        let tbs_list = &list.tbs_cert_list;
        if tbs_list.version != x509_cert::Version::V2 {
            return Err(CrlError::NotVersion2);
        }
        let outer = &list.signature_algorithm;
        if outer.oid != ECDSA_WITH_SHA256
            || outer.parameters.is_some()
            || tbs_list.signature != *outer
        {
            return Err(CrlError::UnsupportedSignatureAlgorithm(
                outer.oid.to_string(),
            ));
        }
        let signature = list
            .signature
            .as_bytes()
            .ok_or(CrlError::UnsupportedSignatureAlgorithm(
                "signature BIT STRING with unused bits".into(),
            ))?
            .to_vec();
        let next_update = tbs_list
            .next_update
            .ok_or(CrlError::MissingNextUpdate)?
            .to_system_time();
        let this_update = tbs_list.this_update.to_system_time();
        if next_update < this_update {
            return Err(CrlError::Inconsistent("nextUpdate lies before thisUpdate"));
        }

        let mut extensions = CrlExtensions::default();
        extensions.read(tbs_list.crl_extensions.as_deref().unwrap_or(&[]))?;
        let mut entries = BTreeMap::new();
        for revoked in tbs_list.revoked_certificates.iter().flatten() {
            let entry = read_entry(revoked)?;
            if entries.insert(entry.serial.clone(), entry).is_some() {
                return Err(CrlError::Inconsistent("a serial number is listed twice"));
            }
        }
        let part = extensions.part()?;
        Ok(Crl {
            der: der.to_vec(),
            tbs,
            signature,
            issuer: tbs_list.issuer.clone(),
            authority_key_id: extensions
                .authority_key_id
                .ok_or(CrlError::MissingExtension("authorityKeyIdentifier"))?,
            this_update,
            next_update,
            number: extensions
                .number
                .ok_or(CrlError::MissingExtension("cRLNumber"))?,
            part,
            scope: extensions.scope,
            entries,
        })
    }

    /// Parses a CRL from PEM (`X509 CRL` block) or DER.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CrlError> {
        if crate::load::is_pem(bytes) {
            let blocks = pem::parse_many(bytes).map_err(|e| CrlError::Pem(e.to_string()))?;
            let block = blocks
                .into_iter()
                .find(|p| p.tag() == PEM_LABEL)
                .ok_or(CrlError::Pem(format!("no PEM block labelled {PEM_LABEL}")))?;
            Self::from_der(block.contents())
        } else {
            Self::from_der(bytes)
        }
    }

    /// Parses one or more CRLs: a PEM file with one or more `X509 CRL`
    /// blocks, a DER `CertificateList`, or a DER `SegmentedCrlList` (SGP.22:
    /// `SEQUENCE OF CertificateList`, the parts of a partial CRL).
    pub fn all_from_bytes(bytes: &[u8]) -> Result<Vec<Self>, CrlError> {
        if crate::load::is_pem(bytes) {
            let blocks = pem::parse_many(bytes).map_err(|e| CrlError::Pem(e.to_string()))?;
            let crls = blocks
                .iter()
                .filter(|p| p.tag() == PEM_LABEL)
                .map(|p| Self::from_der(p.contents()))
                .collect::<Result<Vec<_>, _>>()?;
            if crls.is_empty() {
                return Err(CrlError::Pem(format!("no PEM block labelled {PEM_LABEL}")));
            }
            return Ok(crls);
        }
        let single = match Self::from_der(bytes) {
            Ok(crl) => return Ok(vec![crl]),
            Err(e) => e,
        };
        segments(bytes).ok_or(single)
    }

    /// Checks that `issuer` issued this CRL: names and key ids match, the
    /// issuer may sign CRLs (cRLSign when it has a keyUsage), and the
    /// signature verifies with its key.
    pub fn verify_issued_by(&self, issuer: &RspCertificate) -> Result<(), CrlError> {
        if issuer.subject_key_id() != Some(&self.authority_key_id) {
            return Err(CrlError::WrongIssuer("authority key identifier"));
        }
        if issuer.subject() != &self.issuer {
            return Err(CrlError::WrongIssuer("issuer name"));
        }
        if issuer
            .key_usage()
            .is_some_and(|u| !u.contains(KeyUsage::CRL_SIGN))
        {
            return Err(CrlError::IssuerMayNotSignCrls);
        }
        issuer
            .verifying_key()
            .verify_der(self.tbs_der(), &self.signature)
            .map_err(|_| CrlError::BadSignature)
    }

    /// The CRL as received (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CRL as a PEM `X509 CRL` document.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new(PEM_LABEL, self.der.clone()))
    }

    /// The signed part (TBSCertList), exactly as received.
    pub fn tbs_der(&self) -> &[u8] {
        // The range was computed from `der` at parse time and the bytes never change.
        self.der.get(self.tbs.clone()).unwrap_or_default()
    }

    /// The issuer name.
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// The issuer's key id (authorityKeyIdentifier): the CI PKId for a CI CRL.
    pub fn authority_key_id(&self) -> &KeyId {
        &self.authority_key_id
    }

    /// thisUpdate.
    pub fn this_update(&self) -> SystemTime {
        self.this_update
    }

    /// nextUpdate: after it the CRL is stale.
    pub fn next_update(&self) -> SystemTime {
        self.next_update
    }

    /// The cRLNumber.
    pub fn number(&self) -> &CrlNumber {
        &self.number
    }

    /// Which part this is, for a CRL split into parts.
    pub fn part(&self) -> Option<CrlPart> {
        self.part
    }

    /// The certificates it covers (issuingDistributionPoint).
    pub fn scope(&self) -> &CrlScope {
        &self.scope
    }

    /// The revoked certificates, by serial number.
    pub fn entries(&self) -> impl Iterator<Item = &RevokedEntry> {
        self.entries.values()
    }

    /// How many certificates are listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no certificate is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for this serial number, if the certificate is listed.
    pub fn entry(&self, serial: &[u8]) -> Option<&RevokedEntry> {
        self.entries.get(serial)
    }

    /// Whether `now` lies after nextUpdate.
    pub fn is_stale(&self, now: SystemTime) -> bool {
        now > self.next_update
    }
}

/// PEM label of a CRL.
pub const PEM_LABEL: &str = "X509 CRL";

/// What the CRL extensions say.
#[derive(Default)]
struct CrlExtensions {
    authority_key_id: Option<KeyId>,
    number: Option<CrlNumber>,
    scope: CrlScope,
    part_number: Option<u32>,
    total_parts: Option<u32>,
}

impl CrlExtensions {
    fn read(&mut self, extensions: &[Extension]) -> Result<(), CrlError> {
        let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(extensions.len());
        for ext in extensions {
            if seen.contains(&ext.extn_id) {
                return Err(CrlError::DuplicateExtension(ext.extn_id));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            let bad = |what: &'static str| move |e| CrlError::BadExtension(what, e);
            match ext.extn_id {
                oids::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    let aki = AuthorityKeyIdentifier::from_der(value)
                        .map_err(bad("authorityKeyIdentifier"))?;
                    let id = aki.key_identifier.ok_or(CrlError::MissingExtension(
                        "authorityKeyIdentifier keyIdentifier",
                    ))?;
                    let id = KeyId::from_bytes(id.as_bytes()).map_err(|_| {
                        CrlError::Inconsistent("authorityKeyIdentifier of 0 or over 64 bytes")
                    })?;
                    self.authority_key_id = Some(id);
                }
                oids::ID_CE_CRL_NUMBER => {
                    let n = X509CrlNumber::from_der(value).map_err(bad("cRLNumber"))?;
                    self.number = Some(crl_number(&n.0)?);
                }
                oids::ID_CE_ISSUING_DISTRIBUTION_POINT => {
                    let idp = IssuingDistributionPoint::from_der(value)
                        .map_err(bad("issuingDistributionPoint"))?;
                    self.scope = scope(&idp)?;
                }
                oids::ID_CE_DELTA_CRL_INDICATOR => return Err(CrlError::DeltaCrl),
                ID_RSP_TOTAL_PARTIAL_CRL_NUMBER => {
                    self.total_parts = Some(small_int(value, "totalPartialCrlNumber")?);
                }
                ID_RSP_PARTIAL_CRL_NUMBER => {
                    self.part_number = Some(small_int(value, "partialCrlNumber")?);
                }
                other if ext.critical => return Err(CrlError::UnsupportedCriticalExtension(other)),
                _ => {}
            }
        }
        Ok(())
    }

    fn part(&self) -> Result<Option<CrlPart>, CrlError> {
        match (self.part_number, self.total_parts) {
            (None, None) => Ok(None),
            (Some(number), Some(total))
                if (1..=total).contains(&number) && total <= MAX_CRL_PARTS =>
            {
                Ok(Some(CrlPart { number, total }))
            }
            (Some(_), Some(_)) => Err(CrlError::Inconsistent(
                "partialCrlNumber must lie between 1 and totalPartialCrlNumber (at most 1024)",
            )),
            _ => Err(CrlError::Inconsistent(
                "partialCrlNumber and totalPartialCrlNumber come together",
            )),
        }
    }
}

fn scope(idp: &IssuingDistributionPoint) -> Result<CrlScope, CrlError> {
    if idp.indirect_crl {
        return Err(CrlError::UnsupportedScope("indirect CRL"));
    }
    if idp.only_some_reasons.is_some() {
        return Err(CrlError::UnsupportedScope("onlySomeReasons"));
    }
    if idp.only_contains_attribute_certs {
        return Err(CrlError::UnsupportedScope("onlyContainsAttributeCerts"));
    }
    if idp.only_contains_user_certs && idp.only_contains_ca_certs {
        return Err(CrlError::Inconsistent(
            "onlyContainsUserCerts and onlyContainsCACerts together",
        ));
    }
    let distribution_point_uris = match &idp.distribution_point {
        None => Vec::new(),
        Some(DistributionPointName::FullName(names)) => uris(names),
        Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
            return Err(CrlError::UnsupportedScope("nameRelativeToCRLIssuer"));
        }
    };
    Ok(CrlScope {
        only_user_certs: idp.only_contains_user_certs,
        only_ca_certs: idp.only_contains_ca_certs,
        distribution_point_uris,
    })
}

/// The URIs among general names.
pub(crate) fn uris(names: &[GeneralName]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| match n {
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect()
}

fn crl_number(n: &Uint) -> Result<CrlNumber, CrlError> {
    let number = CrlNumber::from_be_bytes(n.as_bytes());
    if number.as_be_bytes().len() > 20 {
        return Err(CrlError::Inconsistent("cRLNumber longer than 20 octets"));
    }
    Ok(number)
}

fn small_int(value: &[u8], what: &'static str) -> Result<u32, CrlError> {
    let n = Uint::from_der(value).map_err(|e| CrlError::BadExtension(what, e))?;
    CrlNumber::from_be_bytes(n.as_bytes())
        .to_u128()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(CrlError::Inconsistent("partial CRL number out of range"))
}

fn read_entry(revoked: &x509_cert::crl::RevokedCert) -> Result<RevokedEntry, CrlError> {
    let mut entry = RevokedEntry {
        serial: revoked.serial_number.as_bytes().to_vec(),
        revoked_at: revoked.revocation_date.to_system_time(),
        reason: None,
        invalidity_date: None,
        certificate_expiry: None,
    };
    let mut seen: Vec<ObjectIdentifier> = Vec::new();
    for ext in revoked.crl_entry_extensions.iter().flatten() {
        if seen.contains(&ext.extn_id) {
            return Err(CrlError::DuplicateExtension(ext.extn_id));
        }
        seen.push(ext.extn_id);
        let value = ext.extn_value.as_bytes();
        let bad = |what: &'static str| move |e| CrlError::BadExtension(what, e);
        match ext.extn_id {
            oids::ID_CE_CRL_REASONS => {
                let reason = CrlReason::from_der(value).map_err(bad("reasonCode"))?;
                entry.reason = Some(RevocationReason::from_x509(reason));
            }
            oids::ID_CE_INVALIDITY_DATE => {
                let t = GeneralizedTime::from_der(value).map_err(bad("invalidityDate"))?;
                entry.invalidity_date = Some(t.to_system_time());
            }
            ID_RSP_EXP_DATE => {
                let t = x509_cert::time::Time::from_der(value).map_err(bad("expDate"))?;
                entry.certificate_expiry = Some(t.to_system_time());
            }
            oids::ID_CE_CERTIFICATE_ISSUER => {
                return Err(CrlError::UnsupportedScope(
                    "certificateIssuer (indirect CRL)",
                ));
            }
            other if ext.critical => return Err(CrlError::UnsupportedCriticalExtension(other)),
            _ => {}
        }
    }
    Ok(entry)
}

/// The CRLs of a DER `SegmentedCrlList`, when every element is one.
fn segments(der: &[u8]) -> Option<Vec<Crl>> {
    let mut reader = SliceReader::new(der).ok()?;
    let outer = Header::decode(&mut reader).ok()?;
    if outer.tag() != der::Tag::Sequence || reader.remaining_len() != outer.length() {
        return None;
    }
    let mut crls = Vec::new();
    while !reader.is_finished() {
        let start = usize::try_from(reader.position()).ok()?;
        let header = Header::decode(&mut reader).ok()?;
        let end = usize::try_from((reader.position() + header.length()).ok()?).ok()?;
        crls.push(Crl::from_der(der.get(start..end)?).ok()?);
        reader.read_slice(header.length()).ok()?;
    }
    (!crls.is_empty()).then_some(crls)
}

/// Byte range of the TBSCertList inside a CRL's DER.
fn tbs_range(der: &[u8]) -> der::Result<Range<usize>> {
    let mut reader = SliceReader::new(der)?;
    let _outer = Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let tbs_header = Header::decode(&mut reader)?;
    let end = usize::try_from((reader.position() + tbs_header.length())?)?;
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_coverage() {
        let users = CrlScope {
            only_user_certs: true,
            ..CrlScope::default()
        };
        assert!(users.covers(false, &[]));
        assert!(!users.covers(true, &[]));
        let dp = CrlScope {
            distribution_point_uris: vec!["http://a/ci.crl".into()],
            ..CrlScope::default()
        };
        assert!(dp.covers(true, &["http://a/ci.crl".into()]));
        assert!(!dp.covers(true, &["http://b/ci.crl".into()]));
        assert!(!dp.covers(true, &[]));
    }
}
