//! Issuing one certificate of the RSP profile with rcgen: the role decides
//! the policy, key usage, basicConstraints and which names go where.
//!
//! The issuer is always given as a parsed certificate plus a signing key, so
//! the same code issues from a freshly generated test CI, from SGP.26 test
//! keys loaded from files, or from a key held in a PKCS#11 token (through
//! [`ferrosim_crypto::key::KeySource`]).

use std::net::IpAddr;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280 as oids;
use der::asn1::{Any, PrintableString};
use der::{Encode, Tag, TagNumber, Tagged};
use ferrosim_crypto::ecdsa::VerifyingKey;
use ferrosim_crypto::key::KeySource;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyIdMethod, KeyUsagePurpose, NameConstraints,
    PublicKeyData, SerialNumber, SigningKey,
};
use x509_cert::ext::pkix::CertificatePolicies;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::name::Name;

use super::signer::{ExternalPublicKey, KeySourceSigner};
use crate::cert::RspCertificate;
use crate::eid::{Eid, EidPrefix};
use crate::error::{Error, Result};
use crate::oid::Oid;
use crate::profile::{CertRole, ID_AT_SERIAL_NUMBER, ID_RSP_PERMITTED_EINS, KeyUsage};

/// What to put in one certificate. The role fills in the rest of the profile.
#[derive(Clone, Debug)]
pub struct CertificateRequest {
    /// The role; decides policy, key usage, basicConstraints, extended key usage.
    pub role: CertRole,
    /// Subject commonName.
    pub common_name: String,
    /// Subject organizationName (SGP.26 gives eUICCs their EUM's organization).
    pub organization: Option<String>,
    /// Subject organizationalUnitName.
    pub organizational_unit: Option<String>,
    /// Subject countryName (two letters).
    pub country: Option<String>,
    /// The EID, written as the subject serialNumber (eUICC certificates).
    pub eid: Option<Eid>,
    /// EID prefixes an EUM may certify.
    pub permitted_eid_prefixes: Vec<EidPrefix>,
    /// How an EUM's EID prefixes are written.
    pub eid_range_encoding: EidRangeEncoding,
    /// subjectAltName registeredID: the SM-DP+ OID for SM-DP+ certificates,
    /// the CI's or EUM's OID for those.
    pub registered_id: Option<Oid>,
    /// subjectAltName DNS names (the SM-DP+ host name for DPtls).
    pub dns_names: Vec<String>,
    /// subjectAltName IP addresses (the SM-DP+ address for a DPtls reached by IP).
    pub ip_addresses: Vec<IpAddr>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// cRLDistributionPoints URIs: where the issuer publishes the CRL that
    /// covers this certificate (none: the extension is left out).
    pub crl_distribution_points: Vec<String>,
    /// Key usage to write instead of the role's. `None` follows the profile;
    /// `Some` exists to produce deliberately non-conforming test certificates.
    pub key_usage: Option<KeyUsage>,
}

impl CertificateRequest {
    /// A request for `role` with the given commonName and validity, everything else empty.
    pub fn new(
        role: CertRole,
        common_name: impl Into<String>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Self {
        CertificateRequest {
            role,
            common_name: common_name.into(),
            organization: None,
            organizational_unit: None,
            country: None,
            eid: None,
            permitted_eid_prefixes: Vec::new(),
            eid_range_encoding: EidRangeEncoding::NameConstraints,
            registered_id: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            not_before,
            not_after,
            crl_distribution_points: Vec::new(),
            key_usage: None,
        }
    }
}

/// How an EUM certificate states its EID ranges (verification accepts both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EidRangeEncoding {
    /// nameConstraints permittedSubtrees directoryNames (organization +
    /// serialNumber = prefix), critical, as the SGP.26 EUM.
    #[default]
    NameConstraints,
    /// The permittedEins extension (2.23.146.1.2.2.0, `SEQUENCE OF PrintableString`).
    PermittedEins,
}

/// Issues a certificate for a public key whose private half is held
/// elsewhere (a PKCS#11 token, another machine), signed by `issuer_key`,
/// the key of `issuer_cert`, which may itself be external.
pub fn issue_for_public_key(
    request: &CertificateRequest,
    public_key_sec1: &[u8],
    issuer_cert: &RspCertificate,
    issuer_key: &dyn KeySource,
) -> Result<RspCertificate> {
    let subject = ExternalPublicKey::new(public_key_sec1)?;
    let signer = KeySourceSigner::new(issuer_key)?;
    if signer.der_bytes() != issuer_cert.public_key_sec1() {
        return Err(Error::InvalidOption(
            "the issuer key does not belong to the issuer certificate".into(),
        ));
    }
    issue(request, &subject, issuer_cert, &signer)
}

/// Issues a self-signed CI certificate for `key`.
pub fn self_signed_ci(request: &CertificateRequest, key: &dyn KeySource) -> Result<RspCertificate> {
    let signer = KeySourceSigner::new(key)?;
    self_signed(request, &signer)
}

/// Issues a certificate for `subject_key`, signed by `issuer_key` on behalf of `issuer_cert`.
pub(crate) fn issue(
    request: &CertificateRequest,
    subject_key: &impl PublicKeyData,
    issuer_cert: &RspCertificate,
    issuer_key: &impl SigningKey,
) -> Result<RspCertificate> {
    let params = profile_params(request)?;
    let issuer_params = issuer_params(issuer_cert)?;
    let issuer = rcgen::Issuer::new(issuer_params, issuer_key);
    let der = params.signed_by(subject_key, &issuer)?;
    let cert = RspCertificate::from_der(der.der())?;
    if cert.issuer() != issuer_cert.subject() {
        return Err(Error::IssuerNameNotReproducible(
            "re-encoded issuer name differs from the issuer's subject",
        ));
    }
    Ok(cert)
}

/// Issues a self-signed certificate (a CI) with `key`.
pub(crate) fn self_signed(
    request: &CertificateRequest,
    key: &impl SigningKey,
) -> Result<RspCertificate> {
    let params = profile_params(request)?;
    let der = params.self_signed(key)?;
    RspCertificate::from_der(der.der())
}

/// Turns a request into rcgen parameters following the RSP profile of its role.
fn profile_params(req: &CertificateRequest) -> Result<CertificateParams> {
    let role = req.role;
    validate(req)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject_name(req)?;
    params.not_before = x509_time(req.not_before)?;
    params.not_after = x509_time(req.not_after)?;
    params.serial_number = Some(random_serial()?);
    params.key_identifier_method = KeyIdMethod::Sha256;
    // A self-signed CI carries no authorityKeyIdentifier (as SGP.26's CI); everything else does.
    params.use_authority_key_identifier_extension = role != CertRole::Ci;
    params.is_ca = match role {
        CertRole::Ci => IsCa::Ca(BasicConstraints::Unconstrained),
        CertRole::Eum => IsCa::Ca(BasicConstraints::Constrained(0)),
        // Explicit CA:false also makes rcgen write the subjectKeyIdentifier.
        _ => IsCa::ExplicitNoCa,
    };
    // An EUM also signs the CRL of its eUICCs, so it gets cRLSign beside the
    // keyCertSign its role requires.
    let default_usage = match role {
        CertRole::Eum => KeyUsage(role.required_key_usage().0 | KeyUsage::CRL_SIGN.0),
        _ => role.required_key_usage(),
    };
    params.key_usages = key_usage_purposes(req.key_usage.unwrap_or(default_usage));
    if !req.crl_distribution_points.is_empty() {
        params.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
            uris: req.crl_distribution_points.clone(),
        }];
    }
    if role.is_tls() {
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
    }
    if role == CertRole::Eum {
        match req.eid_range_encoding {
            EidRangeEncoding::NameConstraints => {
                params.name_constraints = Some(eum_name_constraints(req)?);
            }
            EidRangeEncoding::PermittedEins => {
                params.custom_extensions.push(permitted_eins(req)?);
            }
        }
    }

    // TLS certificates keep the policy non-critical so that generic TLS
    // stacks (which do not know RSP policies) accept them; the others mark it
    // critical as SGP.26 does.
    let mut policies = CustomExtension::from_oid_content(
        &oid_arcs(&oids::ID_CE_CERTIFICATE_POLICIES),
        CertificatePolicies(vec![PolicyInformation {
            policy_identifier: role.policy_oid(),
            policy_qualifiers: None,
        }])
        .to_der()
        .map_err(Error::malformed("certificatePolicies"))?,
    );
    policies.set_criticality(!role.is_tls());
    params.custom_extensions.push(policies);

    // GeneralNames written by hand: x509-cert's OID type cannot hold 2.999.x.
    let mut alt_names = Vec::new();
    for dns in &req.dns_names {
        alt_names.push(context_primitive(2, dns.as_bytes())?);
    }
    for ip in &req.ip_addresses {
        let octets = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        alt_names.push(context_primitive(7, &octets)?);
    }
    if let Some(oid) = &req.registered_id {
        alt_names.push(context_primitive(8, oid.as_ber())?);
    }
    if !alt_names.is_empty() {
        let content = alt_names
            .to_der()
            .map_err(Error::malformed("subjectAltName"))?;
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &oid_arcs(&oids::ID_CE_SUBJECT_ALT_NAME),
                content,
            ));
    }
    Ok(params)
}

/// Checks that the request has what its role needs.
fn validate(req: &CertificateRequest) -> Result<()> {
    let role = req.role;
    if req.not_after <= req.not_before {
        return Err(Error::InvalidOption(format!(
            "{role} certificate: notAfter must be after notBefore"
        )));
    }
    if role == CertRole::Euicc && req.eid.is_none() {
        return Err(Error::InvalidOption(
            "an eUICC certificate needs an EID".into(),
        ));
    }
    if role == CertRole::Eum && req.permitted_eid_prefixes.is_empty() {
        return Err(Error::InvalidOption(
            "an EUM certificate needs at least one permitted EID prefix".into(),
        ));
    }
    if role.is_smdp() && req.registered_id.is_none() {
        return Err(Error::InvalidOption(format!(
            "a {role} certificate needs the SM-DP+ OID (registeredID)"
        )));
    }
    if role.is_tls() && req.dns_names.is_empty() && req.ip_addresses.is_empty() {
        return Err(Error::InvalidOption(format!(
            "a {role} certificate needs a DNS name or an IP address"
        )));
    }
    for dns in &req.dns_names {
        validate_dns_name(dns)?;
    }
    Ok(())
}

/// Accepts a DNS host name: labels of letters, digits and hyphens, not
/// starting or ending with a hyphen, at most 253 characters.
pub fn validate_dns_name(name: &str) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(Error::InvalidDnsName(name.chars().take(64).collect()));
    }
    Ok(())
}

/// The host part of an SM-DP+ address, as a DPtls certificate names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmdpHost {
    /// A DNS host name: goes into a subjectAltName dNSName.
    Dns(String),
    /// An IP address: goes into a subjectAltName iPAddress (RFC 5280 4.2.1.6;
    /// TLS clients do not match an address against a dNSName).
    Ip(IpAddr),
}

impl SmdpHost {
    /// Reads `host`, `host:port`, `IPv4[:port]`, `[IPv6][:port]` or a bare
    /// IPv6 address; the port, if any, must be a number from 1 to 65535 and
    /// is dropped (certificates name hosts, not ports).
    pub fn parse(address: &str) -> Result<Self> {
        let invalid = || Error::InvalidDnsName(address.chars().take(64).collect());
        let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p != 0);
        if let Some(rest) = address.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            if !(after.is_empty() || after.strip_prefix(':').is_some_and(port_ok)) {
                return Err(invalid());
            }
            return host
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| Self::Ip(IpAddr::V6(ip)))
                .map_err(|_| invalid());
        }
        if let Ok(ip) = address.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let host = match address.split_once(':') {
            Some((host, port)) if port_ok(port) => host,
            Some(_) => return Err(invalid()),
            None => address,
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        validate_dns_name(host)?;
        Ok(Self::Dns(host.to_owned()))
    }

    /// Whether a certificate's subjectAltName entries cover this host: an
    /// equal IP address, or a DNS name equal to it (ASCII case-insensitive)
    /// or matched by a `*.` wildcard in the left-most label (RFC 6125 6.4.3).
    pub fn is_covered_by(&self, dns_names: &[String], ip_addresses: &[IpAddr]) -> bool {
        match self {
            Self::Ip(ip) => ip_addresses.contains(ip),
            Self::Dns(host) => dns_names.iter().any(|name| dns_matches(name, host)),
        }
    }
}

impl std::fmt::Display for SmdpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    match (pattern.strip_prefix("*."), host.split_once('.')) {
        (Some(suffix), Some((label, rest))) => {
            !label.is_empty() && suffix.eq_ignore_ascii_case(rest)
        }
        _ => false,
    }
}

/// Subject DN: C, O, OU, serialNumber (EID), CN — general to specific.
fn subject_name(req: &CertificateRequest) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    if let Some(c) = &req.country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::InvalidOption(format!(
                "countryName must be two letters, got {c:?}"
            )));
        }
        dn.push(DnType::CountryName, printable(c)?);
    }
    if let Some(o) = &req.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &req.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    if let Some(eid) = &req.eid {
        dn.push(serial_number_type(), printable(&eid.to_string())?);
    }
    dn.push(DnType::CommonName, req.common_name.as_str());
    Ok(dn)
}

/// nameConstraints of an EUM: one permitted directoryName per prefix.
fn eum_name_constraints(req: &CertificateRequest) -> Result<NameConstraints> {
    let mut permitted = Vec::new();
    for prefix in &req.permitted_eid_prefixes {
        let mut dn = DistinguishedName::new();
        if let Some(o) = &req.organization {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(serial_number_type(), printable(prefix.as_str())?);
        permitted.push(GeneralSubtree::DirectoryName(dn));
    }
    Ok(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    })
}

/// The permittedEins extension of an EUM.
fn permitted_eins(req: &CertificateRequest) -> Result<CustomExtension> {
    let eins = req
        .permitted_eid_prefixes
        .iter()
        .map(|p| PrintableString::new(p.as_str()))
        .collect::<der::Result<Vec<_>>>()
        .and_then(|v| v.to_der())
        .map_err(Error::malformed("permittedEins"))?;
    Ok(CustomExtension::from_oid_content(
        &oid_arcs(&ID_RSP_PERMITTED_EINS),
        eins,
    ))
}

/// rcgen issuer parameters reproducing `issuer`'s subject name and key id.
fn issuer_params(issuer: &RspCertificate) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen_name(issuer.subject())?;
    params.key_identifier_method = match issuer.subject_key_id() {
        Some(ski) => KeyIdMethod::PreSpecified(ski.as_bytes().to_vec()),
        None => KeyIdMethod::Sha256,
    };
    Ok(params)
}

/// Converts a parsed name to rcgen's form, keeping attribute order and string types.
fn rcgen_name(name: &Name) -> Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let mut seen: Vec<ObjectIdentifier> = Vec::new();
    for rdn in name.iter_rdn() {
        if rdn.len() != 1 {
            return Err(Error::IssuerNameNotReproducible(
                "multi-valued relative distinguished name",
            ));
        }
        for atv in rdn.iter() {
            if seen.contains(&atv.oid) {
                return Err(Error::IssuerNameNotReproducible("repeated attribute type"));
            }
            seen.push(atv.oid);
            let text = std::str::from_utf8(atv.value.value())
                .map_err(|_| Error::IssuerNameNotReproducible("attribute is not text"))?;
            let value = match atv.value.tag() {
                der::Tag::PrintableString => printable(text)?,
                der::Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
                der::Tag::Ia5String => DnValue::Ia5String(
                    rcgen::string::Ia5String::try_from(text)
                        .map_err(|_| Error::IssuerNameNotReproducible("bad IA5String"))?,
                ),
                _ => {
                    return Err(Error::IssuerNameNotReproducible(
                        "attribute string type other than Printable, UTF8 or IA5",
                    ));
                }
            };
            dn.push(DnType::from_oid(&oid_arcs(&atv.oid)), value);
        }
    }
    Ok(dn)
}

/// A validity bound as rcgen wants it; X.509 times here span 1970 to 9999.
fn x509_time(t: SystemTime) -> Result<time::OffsetDateTime> {
    let out_of_range = || {
        Error::InvalidOption(format!(
            "certificate time {} is outside 1970-01-01 to 9999-12-31",
            crate::timefmt::format_time(t)
        ))
    };
    let dt = der::DateTime::from_system_time(t).map_err(|_| out_of_range())?;
    let secs = i64::try_from(dt.unix_duration().as_secs()).map_err(|_| out_of_range())?;
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| out_of_range())
}

/// A primitive context-specific TLV `[number] IMPLICIT` holding `content`.
fn context_primitive(number: u32, content: &[u8]) -> Result<Any> {
    let tag = Tag::ContextSpecific {
        constructed: false,
        number: TagNumber(number),
    };
    Any::new(tag, content).map_err(Error::malformed("subjectAltName entry"))
}

fn printable(s: &str) -> Result<DnValue> {
    rcgen::string::PrintableString::try_from(s)
        .map(DnValue::PrintableString)
        .map_err(|_| Error::InvalidOption(format!("{s:?} is not a PrintableString")))
}

fn serial_number_type() -> DnType {
    DnType::CustomDnType(oid_arcs(&ID_AT_SERIAL_NUMBER))
}

fn oid_arcs(oid: &ObjectIdentifier) -> Vec<u64> {
    oid.arcs().map(u64::from).collect()
}

fn key_usage_purposes(usage: KeyUsage) -> Vec<KeyUsagePurpose> {
    [
        (
            KeyUsage::DIGITAL_SIGNATURE,
            KeyUsagePurpose::DigitalSignature,
        ),
        (
            KeyUsage::NON_REPUDIATION,
            KeyUsagePurpose::ContentCommitment,
        ),
        (KeyUsage::KEY_ENCIPHERMENT, KeyUsagePurpose::KeyEncipherment),
        (
            KeyUsage::DATA_ENCIPHERMENT,
            KeyUsagePurpose::DataEncipherment,
        ),
        (KeyUsage::KEY_AGREEMENT, KeyUsagePurpose::KeyAgreement),
        (KeyUsage::KEY_CERT_SIGN, KeyUsagePurpose::KeyCertSign),
        (KeyUsage::CRL_SIGN, KeyUsagePurpose::CrlSign),
        (KeyUsage::ENCIPHER_ONLY, KeyUsagePurpose::EncipherOnly),
        (KeyUsage::DECIPHER_ONLY, KeyUsagePurpose::DecipherOnly),
    ]
    .into_iter()
    .filter(|(bit, _)| usage.contains(*bit))
    .map(|(_, purpose)| purpose)
    .collect()
}

/// A random positive 16-byte serial number.
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| Error::Random)?;
    // Positive (top bit clear) and without a leading zero byte to strip.
    bytes[0] = (bytes[0] & 0x3F) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Checks that a SEC1 point is a valid P-256 key.
pub(crate) fn check_public_key(public_key_sec1: &[u8]) -> Result<()> {
    VerifyingKey::from_sec1(public_key_sec1)
        .map(|_| ())
        .map_err(|_| Error::UnsupportedPublicKey("public key is not a valid P-256 point"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smdp_hosts() {
        let ip = |s: &str| SmdpHost::Ip(s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
        let dns = |s: &str| SmdpHost::Dns(s.into());
        for (text, expected) in [
            ("127.0.0.1", ip("127.0.0.1")),
            ("127.0.0.1:8443", ip("127.0.0.1")),
            ("::1", ip("::1")),
            ("[::1]", ip("::1")),
            ("[2001:db8::5]:443", ip("2001:db8::5")),
            ("localhost", dns("localhost")),
            ("smdp.example.com:8443", dns("smdp.example.com")),
        ] {
            assert_eq!(SmdpHost::parse(text).ok(), Some(expected), "{text}");
        }
        for bad in [
            "",
            ":",
            "host:",
            "host:0",
            "host:99999",
            "host:x",
            "bad host",
            "[::1",
            "[::1]x",
            "[127.0.0.1]",
            "a:b:c",
            "[::1]:0",
        ] {
            assert!(SmdpHost::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn coverage() {
        let names = [
            "smdp.example.com".to_string(),
            "*.rsp.example.org".to_string(),
        ];
        let ips = [IpAddr::from([127, 0, 0, 1])];
        let covered = |s: &str| SmdpHost::parse(s).is_ok_and(|h| h.is_covered_by(&names, &ips));
        assert!(covered("smdp.example.com:443"));
        assert!(covered("SMDP.Example.com"));
        assert!(covered("a.rsp.example.org"));
        assert!(covered("127.0.0.1:1"));
        assert!(!covered("rsp.example.org"));
        assert!(!covered("a.b.rsp.example.org"));
        assert!(!covered("example.com"));
        assert!(!covered("127.0.0.2"));
        assert!(!covered("localhost"));
    }
}
