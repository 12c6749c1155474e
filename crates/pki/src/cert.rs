//! A parsed RSP certificate: everything chain verification and the protocol
//! need, extracted once from the DER, with the original bytes kept.
//!
//! Parsing checks the shape every RSP certificate must have (X.509 v3,
//! ecdsa-with-SHA256, an uncompressed P-256 key, no unknown critical
//! extension) but not the role-specific profile; that is
//! [`crate::verify`]'s job, so that `ferrosim pki show` can display a
//! certificate that would fail verification.

use std::net::IpAddr;
use std::ops::Range;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{AnyRef, PrintableString};
use der::{Class, Decode, Header, Reader, SliceReader, Tag, Tagged};
use ferrosim_crypto::ecdsa::VerifyingKey;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage as X509KeyUsage, NameConstraints, SubjectKeyIdentifier,
};
use x509_cert::name::Name;

use crate::eid::{Eid, EidPrefix};
use crate::error::{Error, Result};
use crate::oid::Oid;
use crate::profile::{CertRole, ID_AT_SERIAL_NUMBER, ID_RSP_PERMITTED_EINS, KeyId, KeyUsage};

/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// id-ecPublicKey (1.2.840.10045.2.1).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1 (1.2.840.10045.3.1.7).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// A parsed certificate of the GSMA RSP PKI.
///
/// Cheap to clone relative to parsing; holds the original DER so that
/// signatures are always checked over the bytes as received.
#[derive(Clone, Debug)]
pub struct RspCertificate {
    der: Vec<u8>,
    tbs: Range<usize>,
    signature: Vec<u8>,
    serial_number: Vec<u8>,
    issuer: Name,
    subject: Name,
    not_before: SystemTime,
    not_after: SystemTime,
    public_key: VerifyingKey,
    policies: Vec<ObjectIdentifier>,
    key_usage: Option<KeyUsage>,
    extended_key_usage: Vec<ObjectIdentifier>,
    basic_constraints: Option<BasicConstraints>,
    subject_key_id: Option<KeyId>,
    authority_key_id: Option<KeyId>,
    subject_serial_number: Option<String>,
    eid_ranges: EidRanges,
    registered_ids: Vec<Oid>,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    crl_distribution_points: Vec<String>,
}

/// The fields of a certificate issued from a template that differ from
/// its prototype's.
pub(crate) struct Reissued {
    pub(crate) der: Vec<u8>,
    pub(crate) tbs: Range<usize>,
    pub(crate) signature: Vec<u8>,
    pub(crate) serial_number: Vec<u8>,
    pub(crate) subject: Name,
    pub(crate) public_key: VerifyingKey,
    pub(crate) subject_key_id: KeyId,
    pub(crate) subject_serial_number: String,
}

impl PartialEq for RspCertificate {
    /// Two parsed certificates are equal when their DER is.
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for RspCertificate {}

/// The EID prefixes an EUM certificate permits, with where they were found.
///
/// GSMA semantics, not RFC 5280 name-constraint semantics: the serialNumber of
/// a permitted directoryName is a prefix that the eUICC's EID must start
/// with; the other attributes of that directoryName are not compared.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EidRanges {
    /// serialNumber values of nameConstraints permittedSubtrees directoryNames
    /// (the SGP.22 v2 / SGP.26 EUM form).
    pub name_constraints: Vec<EidPrefix>,
    /// Entries of the permittedEins extension (2.23.146.1.2.2.0).
    pub permitted_eins: Vec<EidPrefix>,
}

impl EidRanges {
    /// All permitted prefixes, from both sources.
    pub fn all(&self) -> impl Iterator<Item = &EidPrefix> {
        self.name_constraints.iter().chain(&self.permitted_eins)
    }

    /// Whether no range is given at all.
    pub fn is_empty(&self) -> bool {
        self.name_constraints.is_empty() && self.permitted_eins.is_empty()
    }

    /// Whether `eid` lies in one of the ranges.
    pub fn permits(&self, eid: &Eid) -> bool {
        self.all().any(|p| eid.has_prefix(p))
    }
}

impl RspCertificate {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        let cert = Certificate::from_der(der).map_err(Error::malformed("certificate"))?;
        let tbs = tbs_range(der).map_err(Error::malformed("certificate"))?;
        let tbs_cert = cert.tbs_certificate();

        if tbs_cert.version() != x509_cert::Version::V3 {
            return Err(Error::NotVersion3);
        }
        let outer_alg = cert.signature_algorithm();
        if outer_alg.oid != ECDSA_WITH_SHA256 || outer_alg.parameters.is_some() {
            return Err(Error::UnsupportedSignatureAlgorithm(
                outer_alg.oid.to_string(),
            ));
        }
        if tbs_cert.signature() != outer_alg {
            return Err(Error::UnsupportedSignatureAlgorithm(format!(
                "{} (differs from the outer {})",
                tbs_cert.signature().oid,
                outer_alg.oid
            )));
        }
        let signature = cert
            .signature()
            .as_bytes()
            .ok_or(Error::UnsupportedSignatureAlgorithm(
                "signature BIT STRING with unused bits".into(),
            ))?
            .to_vec();

        let public_key = p256_public_key(tbs_cert.subject_public_key_info())?;
        let validity = tbs_cert.validity();

        let mut parsed = RspCertificate {
            der: der.to_vec(),
            tbs,
            signature,
            serial_number: tbs_cert.serial_number().as_bytes().to_vec(),
            issuer: tbs_cert.issuer().clone(),
            subject: tbs_cert.subject().clone(),
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            public_key,
            policies: Vec::new(),
            key_usage: None,
            extended_key_usage: Vec::new(),
            basic_constraints: None,
            subject_key_id: None,
            authority_key_id: None,
            subject_serial_number: name_attribute(tbs_cert.subject(), ID_AT_SERIAL_NUMBER)?,
            eid_ranges: EidRanges::default(),
            registered_ids: Vec::new(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            crl_distribution_points: Vec::new(),
        };
        parsed.read_extensions(tbs_cert.extensions().map(Vec::as_slice).unwrap_or(&[]))?;
        Ok(parsed)
    }

    /// The certificate as received (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Where the TBSCertificate lies in [`Self::der`].
    pub(crate) fn tbs_range(&self) -> Range<usize> {
        self.tbs.clone()
    }

    /// This certificate with the fields a certificate template writes
    /// replaced (see [`crate::generate::EuiccCertificateTemplate`]): the
    /// rest (issuer, validity, policies, extensions) is the same.
    pub(crate) fn reissued(&self, parts: Reissued) -> Self {
        let mut cert = self.clone();
        cert.der = parts.der;
        cert.tbs = parts.tbs;
        cert.signature = parts.signature;
        cert.serial_number = parts.serial_number;
        cert.subject = parts.subject;
        cert.public_key = parts.public_key;
        cert.subject_key_id = Some(parts.subject_key_id);
        cert.subject_serial_number = Some(parts.subject_serial_number);
        cert
    }

    /// The signed part (TBSCertificate), exactly as received.
    pub fn tbs_der(&self) -> &[u8] {
        // The range was computed from `der` at parse time and the bytes never change.
        self.der.get(self.tbs.clone()).unwrap_or_default()
    }

    /// The DER-encoded ECDSA signature over [`Self::tbs_der`].
    pub fn signature_der(&self) -> &[u8] {
        &self.signature
    }

    /// The serial number's bytes (big-endian, as encoded).
    pub fn serial_number(&self) -> &[u8] {
        &self.serial_number
    }

    /// The subject name.
    pub fn subject(&self) -> &Name {
        &self.subject
    }

    /// The issuer name.
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// Start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of the validity period.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The subject's public key as a SEC1 P-256 point (as encoded in the
    /// certificate; uncompressed, 65 bytes, in every RSP certificate seen).
    pub fn public_key_sec1(&self) -> &[u8] {
        self.public_key.sec1()
    }

    /// The subject's public key, parsed and checked to lie on P-256, ready to
    /// verify signatures (for an eUICC: euiccSignature1/2; for DPauth:
    /// serverSignature1; for DPpb: smdpSignature2).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// All certificate policy OIDs.
    pub fn policies(&self) -> &[ObjectIdentifier] {
        &self.policies
    }

    /// The RSP role named by the certificate policies, if exactly one role is named.
    pub fn role(&self) -> Option<CertRole> {
        let mut roles = self.policies.iter().filter_map(CertRole::from_policy_oid);
        let first = roles.next()?;
        roles.all(|r| r == first).then_some(first)
    }

    /// The keyUsage bits, if the extension is present.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    /// The extendedKeyUsage purposes (empty if the extension is absent).
    pub fn extended_key_usage(&self) -> &[ObjectIdentifier] {
        &self.extended_key_usage
    }

    /// Whether basicConstraints says CA:true.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }

    /// basicConstraints pathLenConstraint, if given.
    pub fn path_len_constraint(&self) -> Option<u8> {
        self.basic_constraints
            .as_ref()
            .and_then(|bc| bc.path_len_constraint)
    }

    /// The subjectKeyIdentifier (for a CI: its CI PKId).
    pub fn subject_key_id(&self) -> Option<&KeyId> {
        self.subject_key_id.as_ref()
    }

    /// The authorityKeyIdentifier keyIdentifier: the issuer's subjectKeyIdentifier.
    pub fn authority_key_id(&self) -> Option<&KeyId> {
        self.authority_key_id.as_ref()
    }

    /// The subject's serialNumber attribute (an eUICC certificate's EID).
    pub fn subject_serial_number(&self) -> Option<&str> {
        self.subject_serial_number.as_deref()
    }

    /// The EID carried in the subject serialNumber, validated.
    pub fn eid(&self) -> Result<Eid> {
        Ok(Eid::parse(
            self.subject_serial_number().ok_or(Error::MissingEid)?,
        )?)
    }

    /// The EID ranges an EUM certificate permits.
    pub fn eid_ranges(&self) -> &EidRanges {
        &self.eid_ranges
    }

    /// subjectAltName registeredID values (an SM-DP+ certificate's SM-DP+ OID, a CI's or EUM's OID).
    pub fn registered_ids(&self) -> &[Oid] {
        &self.registered_ids
    }

    /// subjectAltName DNS names (a DPtls certificate's server address).
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// subjectAltName IP addresses (a DPtls certificate for an SM-DP+
    /// reached by address, such as `127.0.0.1`).
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// The URIs of the cRLDistributionPoints extension: where the issuer's
    /// CRL covering this certificate is published.
    pub fn crl_distribution_points(&self) -> &[String] {
        &self.crl_distribution_points
    }

    /// Whether subject and issuer are the same name (a root such as the CI).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Interprets each extension; rejects duplicates and unknown critical ones.
    fn read_extensions(&mut self, extensions: &[x509_cert::ext::Extension]) -> Result<()> {
        let mut seen: Vec<ObjectIdentifier> = Vec::with_capacity(extensions.len());
        for ext in extensions {
            if seen.contains(&ext.extn_id) {
                return Err(Error::DuplicateExtension(ext.extn_id));
            }
            seen.push(ext.extn_id);
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                oids::ID_CE_SUBJECT_KEY_IDENTIFIER => {
                    let ski = SubjectKeyIdentifier::from_der(value)
                        .map_err(Error::malformed("subjectKeyIdentifier"))?;
                    self.subject_key_id = Some(KeyId::from_bytes(ski.0.as_bytes())?);
                }
                oids::ID_CE_AUTHORITY_KEY_IDENTIFIER => {
                    let aki = AuthorityKeyIdentifier::from_der(value)
                        .map_err(Error::malformed("authorityKeyIdentifier"))?;
                    self.authority_key_id = aki
                        .key_identifier
                        .map(|k| KeyId::from_bytes(k.as_bytes()))
                        .transpose()?;
                }
                oids::ID_CE_KEY_USAGE => {
                    let ku = X509KeyUsage::from_der(value).map_err(Error::malformed("keyUsage"))?;
                    self.key_usage = Some(KeyUsage(ku.0.bits()));
                }
                oids::ID_CE_EXT_KEY_USAGE => {
                    let eku = ExtendedKeyUsage::from_der(value)
                        .map_err(Error::malformed("extendedKeyUsage"))?;
                    self.extended_key_usage = eku.0;
                }
                oids::ID_CE_BASIC_CONSTRAINTS => {
                    let bc = BasicConstraints::from_der(value)
                        .map_err(Error::malformed("basicConstraints"))?;
                    self.basic_constraints = Some(bc);
                }
                oids::ID_CE_CERTIFICATE_POLICIES => {
                    let cp = CertificatePolicies::from_der(value)
                        .map_err(Error::malformed("certificatePolicies"))?;
                    self.policies = cp.0.into_iter().map(|p| p.policy_identifier).collect();
                }
                oids::ID_CE_NAME_CONSTRAINTS => {
                    let nc = NameConstraints::from_der(value)
                        .map_err(Error::malformed("nameConstraints"))?;
                    self.eid_ranges.name_constraints = name_constraint_prefixes(&nc)?;
                }
                ID_RSP_PERMITTED_EINS => {
                    let eins = Vec::<PrintableString>::from_der(value)
                        .map_err(Error::malformed("permittedEins"))?;
                    self.eid_ranges.permitted_eins = eins
                        .iter()
                        .map(|s| EidPrefix::parse(s.as_str()))
                        .collect::<Result<_, _>>()?;
                }
                oids::ID_CE_SUBJECT_ALT_NAME => self.read_subject_alt_name(value)?,
                // Only the URIs matter (where the issuer's CRL is fetched);
                // a non-critical extension that does not decode is ignored
                // rather than making the whole certificate unusable.
                oids::ID_CE_CRL_DISTRIBUTION_POINTS => {
                    match CrlDistributionPoints::from_der(value) {
                        Ok(points) => {
                            self.crl_distribution_points = points
                                .0
                                .iter()
                                .filter_map(|p| match &p.distribution_point {
                                    Some(DistributionPointName::FullName(names)) => {
                                        Some(crate::crl::parse::uris(names))
                                    }
                                    _ => None,
                                })
                                .flatten()
                                .collect();
                        }
                        Err(e) if ext.critical => {
                            return Err(Error::malformed("cRLDistributionPoints")(e));
                        }
                        Err(_) => {}
                    }
                }
                other if ext.critical => return Err(Error::UnsupportedCriticalExtension(other)),
                _ => {}
            }
        }
        Ok(())
    }
}

impl RspCertificate {
    /// Reads DNS names, IP addresses and registeredIDs from subjectAltName.
    ///
    /// Decoded by hand rather than with `x509-cert`'s `GeneralName`, whose OID
    /// type cannot hold the `2.999.x` test OIDs of SGP.26.
    fn read_subject_alt_name(&mut self, value: &[u8]) -> Result<()> {
        let names =
            Vec::<AnyRef<'_>>::from_der(value).map_err(Error::malformed("subjectAltName"))?;
        for name in names {
            let tag = name.tag();
            match (tag.class(), tag.number().value(), tag.is_constructed()) {
                (Class::ContextSpecific, SAN_DNS_NAME, false) => {
                    let dns = std::str::from_utf8(name.value())
                        .ok()
                        .filter(|s| s.is_ascii())
                        .ok_or(Error::Malformed {
                            what: "subjectAltName dNSName",
                            source: Tag::Ia5String.value_error().into(),
                        })?;
                    self.dns_names.push(dns.to_owned());
                }
                (Class::ContextSpecific, SAN_IP_ADDRESS, false) => {
                    let bytes = name.value();
                    let ip = if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
                        IpAddr::from(v4)
                    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
                        IpAddr::from(v6)
                    } else {
                        return Err(Error::Malformed {
                            what: "subjectAltName iPAddress",
                            source: Tag::OctetString.length_error().into(),
                        });
                    };
                    self.ip_addresses.push(ip);
                }
                (Class::ContextSpecific, SAN_REGISTERED_ID, false) => {
                    self.registered_ids.push(Oid::from_ber(name.value())?);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// GeneralName tag numbers (RFC 5280 4.2.1.6).
const SAN_DNS_NAME: u32 = 2;
const SAN_IP_ADDRESS: u32 = 7;
const SAN_REGISTERED_ID: u32 = 8;

/// Byte range of the TBSCertificate inside a certificate's DER.
fn tbs_range(der: &[u8]) -> der::Result<Range<usize>> {
    let mut reader = SliceReader::new(der)?;
    let _outer = Header::decode(&mut reader)?;
    let start = usize::try_from(reader.position())?;
    let tbs_header = Header::decode(&mut reader)?;
    let end = usize::try_from((reader.position() + tbs_header.length())?)?;
    Ok(start..end)
}

/// Extracts an uncompressed P-256 point from a SubjectPublicKeyInfo.
fn p256_public_key(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<VerifyingKey> {
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(Error::UnsupportedPublicKey("not an elliptic-curve key"));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .ok_or(Error::UnsupportedPublicKey("EC key without named curve"))?
        .decode_as::<ObjectIdentifier>()
        .map_err(|_| Error::UnsupportedPublicKey("EC key parameters are not a named curve"))?;
    if curve != SECP256R1 {
        return Err(Error::UnsupportedPublicKey(
            "curve is not NIST P-256 (prime256v1)",
        ));
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(Error::UnsupportedPublicKey(
            "public key BIT STRING has unused bits",
        ))?;
    VerifyingKey::from_sec1(point)
        .map_err(|_| Error::UnsupportedPublicKey("public key is not a valid P-256 point"))
}

/// The value of a single-occurrence string attribute of a name.
fn name_attribute(name: &Name, oid: ObjectIdentifier) -> Result<Option<String>> {
    let mut found = None;
    for atv in name.iter().filter(|atv| atv.oid == oid) {
        if found.is_some() {
            return Err(Error::Malformed {
                what: "name (repeated attribute)",
                source: der::ErrorKind::Failed.into(),
            });
        }
        found = Some(directory_string(atv.value.to_ref())?);
    }
    Ok(found)
}

/// Decodes a PrintableString, UTF8String or IA5String attribute value.
fn directory_string(value: AnyRef<'_>) -> Result<String> {
    let tag = value.tag();
    let kind = match tag {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String => {
            match std::str::from_utf8(value.value()) {
                Ok(s) => return Ok(s.to_owned()),
                Err(_) => tag.value_error(),
            }
        }
        _ => tag.unexpected_error(Some(Tag::PrintableString)),
    };
    Err(Error::Malformed {
        what: "name attribute string",
        source: kind.into(),
    })
}

/// EID prefixes from nameConstraints: the serialNumber of each permitted directoryName.
fn name_constraint_prefixes(nc: &NameConstraints) -> Result<Vec<EidPrefix>> {
    let mut prefixes = Vec::new();
    for subtree in nc.permitted_subtrees.iter().flatten() {
        if let GeneralName::DirectoryName(dn) = &subtree.base
            && let Some(serial) = name_attribute(dn, ID_AT_SERIAL_NUMBER)?
        {
            prefixes.push(EidPrefix::parse(&serial)?);
        }
    }
    Ok(prefixes)
}
