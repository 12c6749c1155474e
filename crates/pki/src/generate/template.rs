//! Issuing many eUICC certificates of one shape: a factory personalising a
//! batch of eUICCs issues certificates that differ only in their serial
//! number, their EID (subject serialNumber), their public key and the
//! subjectKeyIdentifier derived from it.
//!
//! [`EuiccCertificateTemplate`] issues one prototype certificate through
//! the regular path ([`super::issue_for_public_key`]'s profile and
//! encoding), remembers where those four fields sit in its
//! TBSCertificate, and then issues each certificate by writing the
//! device's values there and signing the TBSCertificate for real with the
//! issuer's key. All four fields have a fixed length (a 16-byte serial,
//! 32 EID digits, a 65-byte uncompressed point, a 20-byte key id), so the
//! encoding around them does not change. The certificate it returns is
//! the one [`RspCertificate::from_der`] would read from its DER, without
//! parsing it again.

use std::ops::Range;

use der::{Decode, Header, Reader, SliceReader};
use ferrosim_crypto::ecdsa::{VerifyingKey, raw_to_der};
use ferrosim_crypto::key::KeySource;
use x509_cert::name::Name;

use super::issue::{CertificateRequest, issue_for_public_key};
use crate::cert::RspCertificate;
use crate::eid::{EID_DIGITS, Eid};
use crate::error::{Error, Result};
use crate::profile::KeyId;

/// Length of the serial numbers it writes (as `random_serial`).
const SERIAL_LEN: usize = 16;
/// Length of an uncompressed P-256 point.
const POINT_LEN: usize = 65;
/// Length of a SHA-256 key identifier truncated as RFC 7093 method 1.
const KEY_ID_LEN: usize = 20;

/// Issues eUICC certificates shaped like one prototype (see the module
/// documentation).
#[derive(Clone, Debug)]
pub struct EuiccCertificateTemplate {
    /// The prototype, parsed: what every certificate shares.
    prototype: RspCertificate,
    /// The issuer's public key (SEC1), to refuse another signing key.
    issuer_public: Vec<u8>,
    /// The prototype's TBSCertificate.
    tbs: Vec<u8>,
    /// The serial number's content octets, in `tbs`.
    serial: Range<usize>,
    /// The subject Name (whole TLV), in `tbs`.
    subject: Range<usize>,
    /// The EID digits of the subject serialNumber, in `tbs`.
    eid: Range<usize>,
    /// The SubjectPublicKeyInfo (whole TLV), in `tbs`; the point is its
    /// last 65 bytes.
    spki: Range<usize>,
    /// The subjectKeyIdentifier's 20 bytes, in `tbs`.
    key_id: Range<usize>,
    /// The outer signatureAlgorithm (whole TLV).
    algorithm: Vec<u8>,
}

impl EuiccCertificateTemplate {
    /// A template for certificates of `request` (which must name an EID:
    /// it is written into the prototype only) issued by `issuer_cert` with
    /// `issuer_key`. Issues the prototype for a fresh key.
    pub fn new(
        request: &CertificateRequest,
        issuer_cert: &RspCertificate,
        issuer_key: &dyn KeySource,
    ) -> Result<Self> {
        let eid = request
            .eid
            .ok_or_else(|| Error::InvalidOption("a certificate template needs an EID".into()))?;
        let subject_key = ferrosim_crypto::key::SoftwareKey::generate()?;
        let prototype = issue_for_public_key(
            request,
            subject_key.public_key_sec1(),
            issuer_cert,
            issuer_key,
        )?;
        let layout =
            |what: &'static str| Error::InvalidOption(format!("certificate template: {what}"));
        let der = prototype.der();
        let tbs_der = prototype.tbs_der().to_vec();
        let fields = tbs_fields(&tbs_der).map_err(Error::malformed("certificate template"))?;
        let [
            _version,
            serial_tlv,
            _signature,
            _issuer,
            _validity,
            subject,
            spki,
            ..,
        ] = fields.as_slice()
        else {
            return Err(layout("too few TBSCertificate fields"));
        };
        let serial = content_of(&tbs_der, serial_tlv.clone())
            .map_err(Error::malformed("certificate template"))?;
        if serial.len() != SERIAL_LEN || tbs_der[serial.clone()] != *prototype.serial_number() {
            return Err(layout("unexpected serial number"));
        }
        let eid_digits = eid.to_string();
        let eid = unique(&tbs_der, subject.clone(), eid_digits.as_bytes())
            .ok_or_else(|| layout("EID not found once in the subject"))?;
        if spki.len() < POINT_LEN
            || tbs_der[spki.end - POINT_LEN..spki.end] != *subject_key.public_key_sec1()
        {
            return Err(layout(
                "public key not at the end of the SubjectPublicKeyInfo",
            ));
        }
        let expected_id = key_id(&tbs_der[spki.clone()]);
        if prototype.subject_key_id().map(|k| k.as_bytes()) != Some(expected_id.as_slice()) {
            return Err(layout("the subjectKeyIdentifier is not SHA-256 of the key"));
        }
        let key_id = unique(&tbs_der, spki.end..tbs_der.len(), &expected_id)
            .ok_or_else(|| layout("subjectKeyIdentifier not found once"))?;
        let tbs_end = prototype.tbs_range().end;
        let algorithm =
            der_tlv_at(der, tbs_end).map_err(Error::malformed("certificate template"))?;
        let algorithm = der[algorithm].to_vec();
        Ok(Self {
            issuer_public: issuer_key.public_key_sec1().to_vec(),
            tbs: tbs_der,
            serial,
            subject: subject.clone(),
            eid,
            spki: spki.clone(),
            key_id,
            algorithm,
            prototype,
        })
    }

    /// Issues the certificate of `eid` for `public_key_sec1`, signed by
    /// `issuer_key` (the key the template was made with): a new random
    /// serial number, one signature.
    pub fn issue(
        &self,
        eid: &Eid,
        public_key_sec1: &[u8],
        issuer_key: &dyn KeySource,
    ) -> Result<RspCertificate> {
        if issuer_key.public_key_sec1() != self.issuer_public.as_slice() {
            return Err(Error::InvalidOption(
                "the issuer key does not belong to the template's issuer".into(),
            ));
        }
        let public_key = VerifyingKey::from_sec1(public_key_sec1)
            .map_err(|_| Error::UnsupportedPublicKey("public key is not a valid P-256 point"))?;
        if public_key_sec1.len() != POINT_LEN {
            return Err(Error::UnsupportedPublicKey(
                "public key is not an uncompressed P-256 point",
            ));
        }
        let digits = eid.to_string();
        if digits.len() != EID_DIGITS {
            return Err(Error::MissingEid);
        }
        let mut tbs = self.tbs.clone();
        let mut serial = [0u8; SERIAL_LEN];
        aws_lc_rs::rand::fill(&mut serial).map_err(|_| Error::Random)?;
        // Positive (top bit clear) and without a leading zero byte to strip.
        serial[0] = (serial[0] & 0x3F) | 0x40;
        tbs[self.serial.clone()].copy_from_slice(&serial);
        tbs[self.eid.clone()].copy_from_slice(digits.as_bytes());
        tbs[self.spki.end - POINT_LEN..self.spki.end].copy_from_slice(public_key_sec1);
        let id = key_id(&tbs[self.spki.clone()]);
        tbs[self.key_id.clone()].copy_from_slice(&id);

        let raw = issuer_key.sign_raw(&tbs)?;
        let signature = raw_to_der(&raw)?;
        let mut bit_string = Vec::with_capacity(signature.len() + 1);
        bit_string.push(0);
        bit_string.extend_from_slice(&signature);
        let mut body = Vec::with_capacity(tbs.len() + self.algorithm.len() + bit_string.len() + 4);
        body.extend_from_slice(&tbs);
        body.extend_from_slice(&self.algorithm);
        push_tlv(&mut body, 0x03, &bit_string);
        let mut der = Vec::with_capacity(body.len() + 4);
        push_tlv(&mut der, 0x30, &body);
        let tbs_start = der.len() - body.len();

        let subject =
            Name::from_der(&tbs[self.subject.clone()]).map_err(Error::malformed("subject"))?;
        Ok(self.prototype.reissued(crate::cert::Reissued {
            tbs: tbs_start..tbs_start + tbs.len(),
            der,
            signature,
            serial_number: serial.to_vec(),
            subject,
            public_key,
            subject_key_id: KeyId::from_bytes(&id)?,
            subject_serial_number: digits,
        }))
    }
}

/// SHA-256 of a SubjectPublicKeyInfo, truncated to 20 bytes (RFC 7093
/// method 1, as the regular path writes subjectKeyIdentifier).
fn key_id(spki: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
    id
}

/// The position of the only occurrence of `needle` in `hay[within]`.
fn unique(hay: &[u8], within: Range<usize>, needle: &[u8]) -> Option<Range<usize>> {
    let part = hay.get(within.clone())?;
    let mut found = part
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| within.start + i);
    let at = found.next()?;
    found.next().is_none().then_some(at..at + needle.len())
}

/// The TLV ranges of a TBSCertificate's fields (in `tbs`).
fn tbs_fields(tbs: &[u8]) -> der::Result<Vec<Range<usize>>> {
    let mut reader = SliceReader::new(tbs)?;
    let outer = Header::decode(&mut reader)?;
    let end = usize::try_from((reader.position() + outer.length())?)?;
    let mut fields = Vec::new();
    let mut at = usize::try_from(reader.position())?;
    while at < end {
        let field = der_tlv_at(tbs, at)?;
        at = field.end;
        fields.push(field);
    }
    Ok(fields)
}

/// The whole TLV starting at `at`.
fn der_tlv_at(der: &[u8], at: usize) -> der::Result<Range<usize>> {
    let mut reader = SliceReader::new(&der[at.min(der.len())..])?;
    let header = Header::decode(&mut reader)?;
    let len = usize::try_from((reader.position() + header.length())?)?;
    Ok(at..at + len)
}

/// The content octets of the TLV at `tlv`.
fn content_of(der: &[u8], tlv: Range<usize>) -> der::Result<Range<usize>> {
    let mut reader = SliceReader::new(&der[tlv.clone()])?;
    let header = Header::decode(&mut reader)?;
    let start = tlv.start + usize::try_from(reader.position())?;
    Ok(start..start + usize::try_from(header.length())?)
}

/// Appends a DER TLV with a one-byte tag.
fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::generate::{TestPki, TestPkiOptions};
    use crate::profile::CertRole;

    fn pki() -> TestPki {
        let options = TestPkiOptions {
            euicc_count: 0,
            not_before: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ..TestPkiOptions::default()
        };
        TestPki::generate(&options).unwrap()
    }

    fn request(eid: Eid) -> CertificateRequest {
        let mut request = CertificateRequest::new(
            CertRole::Euicc,
            "ferrosim simulated eUICC",
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            crate::generate::end_of_time(),
        );
        request.organization = Some("ferrosim Test EUM".into());
        request.eid = Some(eid);
        request
    }

    fn eid(n: u64) -> Eid {
        Eid::from_body(&format!("89049032{n:022}")).unwrap()
    }

    #[test]
    fn issues_what_parsing_its_der_gives_and_the_chain_verifies() {
        let pki = pki();
        let eum_key = pki.eum.signing_key().unwrap();
        let template =
            EuiccCertificateTemplate::new(&request(eid(1)), &pki.eum.certificate, &eum_key)
                .unwrap();
        let trust = pki.trust_store().unwrap();
        for n in [2, 3, 99_999_999] {
            let key = ferrosim_crypto::key::SoftwareKey::generate().unwrap();
            let cert = template
                .issue(&eid(n), key.public_key_sec1(), &eum_key)
                .unwrap();
            let parsed = RspCertificate::from_der(cert.der()).unwrap();
            assert_eq!(format!("{cert:?}"), format!("{parsed:?}"));
            assert_eq!(cert.eid().unwrap(), eid(n));
            assert_eq!(cert.public_key_sec1(), key.public_key_sec1());
            assert_eq!(cert.tbs_der(), parsed.tbs_der());
            let verified = crate::verify::verify_euicc_chain(
                &trust,
                pki.eum.certificate.der(),
                cert.der(),
                UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )
            .unwrap();
            assert_eq!(verified.eid, eid(n));
            // The same fields as the regular path writes, but the device's own.
            let regular = issue_for_public_key(
                &request(eid(n)),
                key.public_key_sec1(),
                &pki.eum.certificate,
                &eum_key,
            )
            .unwrap();
            assert_eq!(regular.subject(), cert.subject());
            assert_eq!(regular.subject_key_id(), cert.subject_key_id());
            assert_eq!(regular.tbs_der().len(), cert.tbs_der().len());
        }
    }

    #[test]
    fn refuses_another_issuer_key_and_bad_points() {
        let pki = pki();
        let eum_key = pki.eum.signing_key().unwrap();
        let template =
            EuiccCertificateTemplate::new(&request(eid(1)), &pki.eum.certificate, &eum_key)
                .unwrap();
        let other = ferrosim_crypto::key::SoftwareKey::generate().unwrap();
        assert!(
            template
                .issue(&eid(2), other.public_key_sec1(), &other)
                .is_err()
        );
        let mut bad = other.public_key_sec1().to_vec();
        bad[40] ^= 1;
        assert!(template.issue(&eid(2), &bad, &eum_key).is_err());
        assert!(template.issue(&eid(2), &bad[..33], &eum_key).is_err());
        assert!(
            EuiccCertificateTemplate::new(
                &CertificateRequest {
                    eid: None,
                    ..request(eid(1))
                },
                &pki.eum.certificate,
                &eum_key
            )
            .is_err()
        );
    }
}
