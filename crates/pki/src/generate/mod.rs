//! Test PKI generation: a complete RSP hierarchy shaped like the GSMA SGP.26
//! test set — one CI, one EUM with an EID range, N eUICCs, and the three
//! SM-DP+ certificates (DPauth, DPpb, DPtls) — plus issuing single
//! certificates for keys held elsewhere ([`issue_for_public_key`]), many at
//! a time from one shape ([`EuiccCertificateTemplate`]).
//!
//! Generation happens in memory ([`TestPki::generate`]); [`TestPki::write_to`]
//! and [`TestPki::load_from`] store and read it as PEM files (layout in
//! [`layout`] and the README written beside them). The keys are test keys,
//! written unencrypted: never use a generated hierarchy in production.

mod files;
mod issue;
mod signer;
mod template;

use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use zeroize::Zeroizing;

pub use files::{README_NAME, layout};
pub use issue::{
    CertificateRequest, EidRangeEncoding, SmdpHost, issue_for_public_key, self_signed_ci,
    validate_dns_name,
};
pub use signer::KeySourceSigner;
pub use template::EuiccCertificateTemplate;

use crate::cert::RspCertificate;
use crate::crl::register::CrlIssuer;
use crate::eid::{EID_DIGITS, Eid, EidPrefix};
use crate::error::{Error, Result};
use crate::oid::Oid;
use crate::profile::CertRole;
use crate::trust::TrustStore;

/// Default EID prefix of generated eUICCs (the EIN of the SGP.26 test EUM).
pub const DEFAULT_EID_PREFIX: &str = "89049032";
/// Default SM-DP+ address (SGP.23's `#TEST_DP_ADDRESS1`, as in SGP.26's DPtls).
pub const DEFAULT_SMDP_ADDRESS: &str = "testsmdpplus1.example.com";
/// Default SM-DP+ OID (SGP.26's test SM-DP+ OID).
pub const DEFAULT_SMDP_OID: &str = "2.999.10";
/// Default CI OID (SGP.26's test CI OID).
pub const DEFAULT_CI_OID: &str = "2.999.1";
/// Default EUM OID (SGP.26's test EUM OID).
pub const DEFAULT_EUM_OID: &str = "2.999.5";
/// Most eUICCs one call generates (each takes a key generation and a signature).
pub const MAX_EUICC_COUNT: usize = 100_000;

/// Settings for [`TestPki::generate`].
#[derive(Clone, Debug)]
pub struct TestPkiOptions {
    /// How many eUICC certificates to issue.
    pub euicc_count: usize,
    /// The EUM's EID range; eUICC EIDs are this prefix, a zero-padded
    /// sequence number and the check digits.
    pub eid_prefix: EidPrefix,
    /// Sequence number of the first eUICC.
    pub first_euicc_number: u64,
    /// The SM-DP+ address (`host[:port]`): its host is the DNS name (or, for
    /// an IP address, the IP address) of DPtls and the commonName of the
    /// SM-DP+ certificates; a port is dropped.
    pub smdp_address: String,
    /// The SM-DP+ OID (subjectAltName registeredID of DPauth, DPpb, DPtls).
    pub smdp_oid: Oid,
    /// The CI's OID (subjectAltName registeredID of the CI).
    pub ci_oid: Oid,
    /// The EUM's OID (subjectAltName registeredID of the EUM).
    pub eum_oid: Oid,
    /// Start of validity of every certificate.
    pub not_before: SystemTime,
    /// End of validity of the CI, EUM and SM-DP+ certificates.
    pub not_after: SystemTime,
    /// End of validity of the eUICC certificates (SGP.26's eUICC certificate
    /// effectively never expires: the default is 9999-12-31T23:59:59Z).
    pub euicc_not_after: SystemTime,
    /// Base URL of the CRL distribution points: when set, the EUM and
    /// SM-DP+ certificates name `<base>/ci.crl` and the eUICC certificates
    /// `<base>/eum.crl` in cRLDistributionPoints, as GSMA certificates name
    /// theirs; when unset (the default) no certificate carries the extension.
    pub crl_base_url: Option<String>,
}

impl Default for TestPkiOptions {
    /// SGP.26-like values; valid from one day ago for ten years.
    fn default() -> Self {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let not_before = now.checked_sub(day).unwrap_or(now);
        TestPkiOptions {
            euicc_count: 1,
            eid_prefix: EidPrefix::sgp26_test_eum(),
            first_euicc_number: 1,
            smdp_address: DEFAULT_SMDP_ADDRESS.to_owned(),
            smdp_oid: test_oid(DEFAULT_SMDP_OID),
            ci_oid: test_oid(DEFAULT_CI_OID),
            eum_oid: test_oid(DEFAULT_EUM_OID),
            not_before,
            not_after: not_before + day * 3650,
            euicc_not_after: end_of_time(),
            crl_base_url: None,
        }
    }
}

/// One of the constant test OIDs above, which are valid dotted OIDs.
fn test_oid(dotted: &str) -> Oid {
    Oid::parse(dotted).unwrap_or_else(|_| Oid::from(CertRole::Ci.policy_oid()))
}

/// 9999-12-31T23:59:59Z, the "no well-defined expiration" date of RFC 5280.
pub fn end_of_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// A certificate with its private key (PKCS#8), as generated or loaded.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub certificate: RspCertificate,
    key_pkcs8: Zeroizing<Vec<u8>>,
}

impl Issued {
    /// Pairs a certificate with its PKCS#8 DER private key; checks that they belong together.
    pub fn new(certificate: RspCertificate, key_pkcs8_der: Zeroizing<Vec<u8>>) -> Result<Self> {
        let key = key_pair(&key_pkcs8_der)?;
        if key.public_key_raw() != certificate.public_key_sec1() {
            return Err(Error::KeyMismatch);
        }
        Ok(Issued {
            certificate,
            key_pkcs8: key_pkcs8_der,
        })
    }

    /// The private key, PKCS#8 DER.
    pub fn key_pkcs8_der(&self) -> &[u8] {
        &self.key_pkcs8
    }

    /// The private key as a PEM `PRIVATE KEY` (PKCS#8) document.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.key_pkcs8.to_vec(),
        )))
    }

    /// The certificate as a PEM `CERTIFICATE` document.
    pub fn certificate_pem(&self) -> String {
        pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            self.certificate.der().to_vec(),
        ))
    }

    /// The private key as a signing key (raw `r||s` ECDSA, as SGP.22 signs).
    pub fn signing_key(&self) -> Result<ferrosim_crypto::key::SoftwareKey> {
        Ok(ferrosim_crypto::key::SoftwareKey::from_der(
            &self.key_pkcs8,
        )?)
    }

    fn key_pair(&self) -> Result<KeyPair> {
        key_pair(&self.key_pkcs8)
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("certificate", &self.certificate.subject().to_string())
            .field("key", &"[redacted]")
            .finish()
    }
}

/// A complete test hierarchy.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The Certificate Issuer (root).
    pub ci: Issued,
    /// The eUICC Manufacturer, issued by the CI.
    pub eum: Issued,
    /// The eUICCs, issued by the EUM, in EID order.
    pub euiccs: Vec<Issued>,
    /// SM-DP+ authentication certificate, issued by the CI.
    pub dp_auth: Issued,
    /// SM-DP+ profile binding certificate, issued by the CI.
    pub dp_pb: Issued,
    /// SM-DP+ TLS server certificate, issued by the CI.
    pub dp_tls: Issued,
    /// cRLDistributionPoints written into eUICC certificates issued later.
    pub euicc_crl_distribution_points: Vec<String>,
}

impl TestPki {
    /// Generates a fresh hierarchy with new P-256 keys.
    pub fn generate(options: &TestPkiOptions) -> Result<Self> {
        if options.euicc_count > MAX_EUICC_COUNT {
            return Err(Error::InvalidOption(format!(
                "at most {MAX_EUICC_COUNT} eUICCs per hierarchy, asked for {}",
                options.euicc_count
            )));
        }
        let smdp_host = SmdpHost::parse(&options.smdp_address)?;
        let eids = eid_sequence(
            &options.eid_prefix,
            options.first_euicc_number,
            options.euicc_count,
        )?;
        let (nb, na) = (options.not_before, options.not_after);

        let ci_key = new_key()?;
        let mut ci_req = CertificateRequest::new(CertRole::Ci, "ferrosim Test CI", nb, na);
        ci_req.organization = Some("ferrosim".into());
        ci_req.organizational_unit = Some("TESTCERT".into());
        ci_req.registered_id = Some(options.ci_oid.clone());
        let ci = issued(issue::self_signed(&ci_req, &ci_key)?, &ci_key);

        let eum_key = new_key()?;
        let mut eum_req = CertificateRequest::new(CertRole::Eum, "ferrosim Test EUM", nb, na);
        eum_req.organization = Some(EUM_ORGANIZATION.into());
        eum_req.permitted_eid_prefixes = vec![options.eid_prefix.clone()];
        eum_req.registered_id = Some(options.eum_oid.clone());
        eum_req.crl_distribution_points = crl_url(options, CrlIssuer::Ci);
        let eum = issued(
            issue::issue(&eum_req, &eum_key, &ci.certificate, &ci_key)?,
            &eum_key,
        );

        let euicc_crl = crl_url(options, CrlIssuer::Eum);
        let mut pki = TestPki {
            dp_auth: smdp(CertRole::DpAuth, options, &smdp_host, &ci, &ci_key)?,
            dp_pb: smdp(CertRole::DpPb, options, &smdp_host, &ci, &ci_key)?,
            dp_tls: smdp(CertRole::DpTls, options, &smdp_host, &ci, &ci_key)?,
            ci,
            eum,
            euiccs: Vec::with_capacity(eids.len()),
            euicc_crl_distribution_points: euicc_crl,
        };
        let eum_key = pki.eum.key_pair()?;
        for eid in eids {
            let euicc = pki.issue_euicc_with(&eum_key, eid, nb, options.euicc_not_after)?;
            pki.euiccs.push(euicc);
        }
        Ok(pki)
    }

    /// Issues a CRL of this hierarchy's CI (for EUM and SM-DP+ certificates)
    /// or EUM (for eUICC certificates), listing `revoked`.
    pub fn issue_crl(
        &self,
        issuer: CrlIssuer,
        request: &crate::crl::issue::CrlRequest,
    ) -> Result<crate::crl::Crl> {
        let ca = match issuer {
            CrlIssuer::Ci => &self.ci,
            CrlIssuer::Eum => &self.eum,
        };
        crate::crl::issue::issue_crl(request, &ca.certificate, &ca.signing_key()?)
    }

    /// Issues one more eUICC certificate (new key) from this hierarchy's EUM.
    /// The EID must lie in the EUM's range.
    pub fn issue_euicc(
        &mut self,
        eid: Eid,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<&Issued> {
        if !self.eum.certificate.eid_ranges().permits(&eid) {
            return Err(Error::EidOutsideEumRange { eid });
        }
        let eum_key = self.eum.key_pair()?;
        let euicc = self.issue_euicc_with(&eum_key, eid, not_before, not_after)?;
        let at = self
            .euiccs
            .partition_point(|e| e.certificate.subject_serial_number() < Some(&eid.to_string()));
        self.euiccs.insert(at, euicc);
        Ok(&self.euiccs[at])
    }

    /// A trust store holding this hierarchy's CI.
    pub fn trust_store(&self) -> Result<TrustStore> {
        TrustStore::with_cis([self.ci.certificate.clone()])
    }

    /// The eUICC with this EID.
    pub fn euicc(&self, eid: &Eid) -> Option<&Issued> {
        let digits = eid.to_string();
        self.euiccs
            .iter()
            .find(|e| e.certificate.subject_serial_number() == Some(digits.as_str()))
    }

    /// The EIDs of the eUICCs, in order.
    pub fn eids(&self) -> Vec<Eid> {
        self.euiccs
            .iter()
            .filter_map(|e| e.certificate.eid().ok())
            .collect()
    }

    fn issue_euicc_with(
        &self,
        eum_key: &KeyPair,
        eid: Eid,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued> {
        let key = new_key()?;
        let mut req = CertificateRequest::new(
            CertRole::Euicc,
            "ferrosim Test eUICC",
            not_before,
            not_after,
        );
        req.organization = Some(EUM_ORGANIZATION.into());
        req.eid = Some(eid);
        req.crl_distribution_points = self.euicc_crl_distribution_points.clone();
        let cert = issue::issue(&req, &key, &self.eum.certificate, eum_key)?;
        Ok(issued(cert, &key))
    }
}

/// Organization of the generated EUM and its eUICCs (and of the EUM's nameConstraints).
const EUM_ORGANIZATION: &str = "ferrosim Test EUM";

fn smdp(
    role: CertRole,
    options: &TestPkiOptions,
    host: &SmdpHost,
    ci: &Issued,
    ci_key: &KeyPair,
) -> Result<Issued> {
    let key = new_key()?;
    let mut req = CertificateRequest::new(
        role,
        host.to_string(),
        options.not_before,
        options.not_after,
    );
    req.organization = Some("ferrosim Test SM-DP+".into());
    req.registered_id = Some(options.smdp_oid.clone());
    req.crl_distribution_points = crl_url(options, CrlIssuer::Ci);
    if role == CertRole::DpTls {
        match host {
            SmdpHost::Dns(name) => req.dns_names = vec![name.clone()],
            SmdpHost::Ip(ip) => req.ip_addresses = vec![*ip],
        }
    }
    let cert = issue::issue(&req, &key, &ci.certificate, ci_key)?;
    Ok(issued(cert, &key))
}

/// The distribution point of `issuer`'s CRL, when the options ask for one.
fn crl_url(options: &TestPkiOptions, issuer: CrlIssuer) -> Vec<String> {
    options
        .crl_base_url
        .iter()
        .map(|base| format!("{}/{}.crl", base.trim_end_matches('/'), issuer.name()))
        .collect()
}

/// The EIDs `prefix || zero-padded number || check digits` for `count` numbers from `first`.
fn eid_sequence(prefix: &EidPrefix, first: u64, count: usize) -> Result<Vec<Eid>> {
    let width = EID_DIGITS - 2 - prefix.len();
    let room = 10u128.pow(width as u32);
    let last = u128::from(first) + count as u128;
    if count > 0 && last > room {
        return Err(Error::InvalidOption(format!(
            "EID prefix {prefix} leaves {width} digits: no room for eUICC numbers {first} to {}",
            last - 1
        )));
    }
    (0..count as u64)
        .map(|i| {
            let number = u128::from(first) + u128::from(i);
            let body = if width == 0 {
                prefix.to_string()
            } else {
                format!("{prefix}{number:0width$}")
            };
            Ok(Eid::from_body(&body)?)
        })
        .collect()
}

fn new_key() -> Result<KeyPair> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

fn key_pair(pkcs8_der: &[u8]) -> Result<KeyPair> {
    match KeyPair::try_from(pkcs8_der) {
        Ok(key) if key.algorithm() == &PKCS_ECDSA_P256_SHA256 => Ok(key),
        _ => Err(Error::Key(ferrosim_crypto::Error::InvalidPrivateKey(
            "not a PKCS#8 P-256 private key",
        ))),
    }
}

fn issued(certificate: RspCertificate, key: &KeyPair) -> Issued {
    Issued {
        certificate,
        key_pkcs8: Zeroizing::new(key.serialize_der()),
    }
}
