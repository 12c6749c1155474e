//! A parsed certificate revocation list of the RSP PKI.
//!
//! Parsing checks the shape SGP.22 and RFC 5280 give a CRL of the GSMA
//! hierarchy: version 2, ecdsa-with-SHA256, a nextUpdate, an
//! authorityKeyIdentifier and a cRLNumber, no delta and no indirect CRLs,
//! and the RSP partial-CRL extensions (`id-rsp-totalPartialCrlNumber`,
//! `id-rsp-partialCrlNumber`) when the issuer split its CRL into parts. Who
//! signed it is checked by [`Crl::verify_issued_by`]; whether it is fresh
//! by the caller, against the time it passes in.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
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

/// A cRLNumber: a non-negative integer of up to 20 octets (RFC 5280 5.2.3),
/// kept as its big-endian magnitude without leading zeros and ordered as a number.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct CrlNumber(Vec<u8>);

impl CrlNumber {
    /// The number `n`.
    pub fn new(n: u128) -> Self {
        Self::from_be_bytes(&n.to_be_bytes())
    }

    /// A number from big-endian bytes (leading zeros are dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        CrlNumber(bytes[start..].to_vec())
    }

    /// Big-endian magnitude, no leading zeros (empty for zero).
    pub fn as_be_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value, when it fits 128 bits.
    pub fn to_u128(&self) -> Option<u128> {
        (self.0.len() <= 16).then(|| self.0.iter().fold(0u128, |n, b| (n << 8) | u128::from(*b)))
    }

    /// The next number (this plus one).
    pub fn successor(&self) -> Self {
        let mut bytes = self.0.clone();
        for b in bytes.iter_mut().rev() {
            if *b == 0xFF {
                *b = 0;
            } else {
                *b += 1;
                return CrlNumber(bytes);
            }
        }
        bytes.insert(0, 1);
        CrlNumber(bytes)
    }
}

impl Ord for CrlNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for CrlNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_u128() {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "0x{}", hex::encode_upper(&self.0)),
        }
    }
}

impl fmt::Debug for CrlNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CrlNumber({self})")
    }
}

/// Why a certificate was revoked (CRLReason, RFC 5280 5.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6): suspended; still refused while listed.
    CertificateHold,
    /// removeFromCRL (8): only meaningful in delta CRLs, which RSP does not use.
    RemoveFromCrl,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 name (`keyCompromise`, ...), as the CLI accepts it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::RemoveFromCrl => "removeFromCRL",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// Reads a name (case-insensitive) or the numeric code.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(text) || text.parse::<u32>() == Ok(r.code()))
    }

    /// The ENUMERATED value.
    pub const fn code(self) -> u32 {
        self.to_x509() as u32
    }

    pub(crate) const fn to_x509(self) -> CrlReason {
        match self {
            Self::Unspecified => CrlReason::Unspecified,
            Self::KeyCompromise => CrlReason::KeyCompromise,
            Self::CaCompromise => CrlReason::CaCompromise,
            Self::AffiliationChanged => CrlReason::AffiliationChanged,
            Self::Superseded => CrlReason::Superseded,
            Self::CessationOfOperation => CrlReason::CessationOfOperation,
            Self::CertificateHold => CrlReason::CertificateHold,
            Self::RemoveFromCrl => CrlReason::RemoveFromCRL,
            Self::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
            Self::AaCompromise => CrlReason::AaCompromise,
        }
    }

    fn from_x509(reason: CrlReason) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.to_x509() == reason)
            .unwrap_or(Self::Unspecified)
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One revoked certificate of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number (DER INTEGER content, as in the certificate).
    pub serial: Vec<u8>,
    /// revocationDate.
    pub revoked_at: SystemTime,
    /// reasonCode entry extension, if given.
    pub reason: Option<RevocationReason>,
    /// invalidityDate entry extension: when the key is known or suspected to
    /// have been compromised, if given.
    pub invalidity_date: Option<SystemTime>,
    /// `id-rsp-expDate` entry extension: when the revoked certificate expires
    /// (after which an eUICC may drop the entry), if given.
    pub certificate_expiry: Option<SystemTime>,
}

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
                    self.authority_key_id = Some(KeyId::new(id.as_bytes()));
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
    fn crl_numbers_order_as_numbers() {
        assert!(CrlNumber::new(255) < CrlNumber::new(256));
        assert_eq!(CrlNumber::from_be_bytes(&[0, 0, 1]), CrlNumber::new(1));
        assert_eq!(CrlNumber::new(255).successor(), CrlNumber::new(256));
        assert_eq!(CrlNumber::new(0).successor(), CrlNumber::new(1));
        assert_eq!(CrlNumber::new(2024).to_string(), "2024");
        let big = CrlNumber::from_be_bytes(&[1; 20]);
        assert!(big > CrlNumber::new(u128::MAX));
        assert!(big.to_string().starts_with("0x"));
    }

    #[test]
    fn reasons_by_name_and_code() {
        assert_eq!(
            RevocationReason::parse("keycompromise"),
            Some(RevocationReason::KeyCompromise)
        );
        assert_eq!(
            RevocationReason::parse("9"),
            Some(RevocationReason::PrivilegeWithdrawn)
        );
        assert_eq!(RevocationReason::parse("7"), None);
        assert_eq!(RevocationReason::parse("stolen"), None);
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_x509(r.to_x509()), r);
        }
    }

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
