//! Helpers shared by the integration tests: fixed dates and a generated hierarchy.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use ferrosim_crypto::key::{KeySource, SoftwareKey};
use ferrosim_pki::generate::{CertificateRequest, TestPkiOptions};
use ferrosim_pki::{CertRole, Eid, KeyUsage, Oid, RspCertificate, TestPki, issue_for_public_key};

/// Midnight UTC of a calendar date.
pub fn date(year: i32, month: u8, day: u8) -> SystemTime {
    let month = time::Month::try_from(month).unwrap();
    let d = time::Date::from_calendar_date(year, month, day).unwrap();
    let secs = d.midnight().assume_utc().unix_timestamp();
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
}

/// Options valid 2025-01-01 to 2035-01-01, with `euiccs` eUICCs.
pub fn options(euiccs: usize) -> TestPkiOptions {
    TestPkiOptions {
        euicc_count: euiccs,
        not_before: date(2025, 1, 1),
        not_after: date(2035, 1, 1),
        ..TestPkiOptions::default()
    }
}

/// A time at which the hierarchy of [`options`] is valid.
pub fn now() -> SystemTime {
    date(2026, 6, 1)
}

/// A fresh hierarchy with `euiccs` eUICCs.
pub fn pki(euiccs: usize) -> TestPki {
    TestPki::generate(&options(euiccs)).unwrap()
}

/// The first eUICC's EID.
pub fn first_eid(pki: &TestPki) -> Eid {
    pki.euiccs[0].certificate.eid().unwrap()
}

/// The DER with its last byte (inside the signature) changed.
pub fn flip_last_byte(der: &[u8]) -> Vec<u8> {
    let mut out = der.to_vec();
    let last = out.len() - 1;
    out[last] ^= 0x01;
    out
}

/// Issues an eUICC certificate from `pki`'s EUM for a new key, with any EID and validity.
pub fn euicc_cert(
    pki: &TestPki,
    eid: Eid,
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> RspCertificate {
    let mut req = CertificateRequest::new(CertRole::Euicc, "tampered eUICC", not_before, not_after);
    req.organization = Some("ferrosim Test EUM".into());
    req.eid = Some(eid);
    let key = SoftwareKey::generate().unwrap();
    let eum_key = pki.eum.signing_key().unwrap();
    issue_for_public_key(&req, key.public_key_sec1(), &pki.eum.certificate, &eum_key).unwrap()
}

/// Issues an SM-DP+ certificate from `pki`'s CI.
pub fn dp_cert(pki: &TestPki, role: CertRole, key_usage: Option<KeyUsage>) -> RspCertificate {
    let mut req =
        CertificateRequest::new(role, "dp.example.com", date(2025, 1, 1), date(2030, 1, 1));
    req.registered_id = Some(Oid::parse("2.999.10").unwrap());
    req.dns_names = vec!["dp.example.com".into()];
    req.key_usage = key_usage;
    let key = SoftwareKey::generate().unwrap();
    let ci_key = pki.ci.signing_key().unwrap();
    issue_for_public_key(&req, key.public_key_sec1(), &pki.ci.certificate, &ci_key).unwrap()
}
