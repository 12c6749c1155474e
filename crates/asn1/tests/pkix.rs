//! The generated PKIX types agree with an independent X.509 implementation
//! (the `x509-cert` crate): a certificate built with them parses there, reads
//! back the same fields and re-encodes to the same bytes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use ferrosim_asn1::rasn::types::{Any, BitString, Integer, ObjectIdentifier, OctetString, SetOf};
use ferrosim_asn1::tlv::Tlv;
use ferrosim_asn1::{decode_der, encode_der, pkix};
use x509_cert::der::{Decode as _, Encode as _};

fn oid(arcs: &[u32]) -> ObjectIdentifier {
    ObjectIdentifier::new(arcs.to_vec()).unwrap()
}

fn name(cn: &str) -> pkix::Name {
    let mut value = vec![0x0C, cn.len() as u8];
    value.extend_from_slice(cn.as_bytes());
    let atv = pkix::AttributeTypeAndValue::new(
        pkix::AttributeType(oid(&[2, 5, 4, 3])),
        pkix::AttributeValue(Any::new(value)),
    );
    pkix::Name::rdnSequence(pkix::RDNSequence(vec![pkix::RelativeDistinguishedName(
        SetOf::from(vec![atv]),
    )]))
}

fn certificate() -> pkix::Certificate {
    let ecdsa_sha256 = pkix::AlgorithmIdentifier::new(oid(&[1, 2, 840, 10045, 4, 3, 2]), None);
    // id-ecPublicKey with namedCurve prime256v1.
    let ec_key = pkix::AlgorithmIdentifier::new(
        oid(&[1, 2, 840, 10045, 2, 1]),
        Some(Any::new(vec![
            0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07,
        ])),
    );
    let mut point = vec![0x04];
    point.extend([0x42; 64]);
    let ski = [vec![0x04, 0x14], vec![0xF5; 20]].concat();
    let basic_constraints = vec![0x30, 0x03, 0x01, 0x01, 0xFF];
    let tbs = pkix::TBSCertificate::new(
        pkix::Version(Integer::from(2)),
        pkix::CertificateSerialNumber(Integer::from(0x1234)),
        ecdsa_sha256.clone(),
        name("Test CI"),
        pkix::Validity::new(
            pkix::Time::utcTime(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            pkix::Time::generalTime(
                Utc.with_ymd_and_hms(2099, 12, 31, 23, 59, 59)
                    .unwrap()
                    .fixed_offset(),
            ),
        ),
        name("Test EUM"),
        pkix::SubjectPublicKeyInfo::new(ec_key, BitString::from_slice(&point)),
        None,
        None,
        Some(pkix::Extensions(vec![
            pkix::Extension::new(oid(&[2, 5, 29, 14]), false, OctetString::from(ski)),
            pkix::Extension::new(
                oid(&[2, 5, 29, 19]),
                true,
                OctetString::from(basic_constraints),
            ),
        ])),
    );
    let signature = [vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]].concat();
    pkix::Certificate::new(tbs, ecdsa_sha256, BitString::from_slice(&signature))
}

#[test]
fn certificate_from_generated_types_parses_with_x509_cert() {
    let ours = encode_der(&certificate()).unwrap();
    let theirs = x509_cert::Certificate::from_der(&ours).unwrap();
    let tbs = theirs.tbs_certificate();
    assert_eq!(tbs.version(), x509_cert::certificate::Version::V3);
    assert_eq!(tbs.serial_number().as_bytes(), &[0x12, 0x34]);
    assert_eq!(tbs.subject().to_string(), "CN=Test EUM");
    assert_eq!(tbs.issuer().to_string(), "CN=Test CI");
    let extensions = tbs.extensions().unwrap();
    assert_eq!(extensions.len(), 2);
    assert!(extensions[1].critical);
    assert_eq!(theirs.to_der().unwrap(), ours);
    let back: pkix::Certificate = decode_der(&ours).unwrap();
    assert_eq!(back, certificate());
}

#[test]
fn default_version_and_critical_flag_are_left_out() {
    // TBSCertificate.version DEFAULT v1 and Extension.critical DEFAULT FALSE.
    let mut cert = certificate();
    cert.tbs_certificate.version = pkix::Version(Integer::from(0));
    let der = encode_der(&cert).unwrap();
    let theirs = x509_cert::Certificate::from_der(&der).unwrap();
    assert_eq!(
        theirs.tbs_certificate().version(),
        x509_cert::certificate::Version::V1
    );
    // The TBS starts with the serial number (02), not with [0] (A0).
    let outer = Tlv::parse_exact(&der).unwrap();
    let tbs = outer.children().next().unwrap().unwrap();
    assert_eq!(tbs.children().next().unwrap().unwrap().tag, 0x02);
    let ext = pkix::Extension::new(
        oid(&[2, 5, 29, 14]),
        false,
        OctetString::from_static(&[4, 0]),
    );
    assert_eq!(
        encode_der(&ext).unwrap(),
        [
            0x30, 0x09, 0x06, 0x03, 0x55, 0x1D, 0x0E, 0x04, 0x02, 0x04, 0x00
        ]
    );
}
