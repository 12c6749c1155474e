//! Chain verification of generated hierarchies: the good cases, the profile
//! of what is generated, EID range encodings, external keys, trust store rules.

mod common;

use common::{date, flip_last_byte, now, pki};
use ferrosim_crypto::key::{KeySource, SoftwareKey};
use ferrosim_pki::generate::{CertificateRequest, EidRangeEncoding};
use ferrosim_pki::verify::verify_eum;
use ferrosim_pki::{
    CertRole, Eid, EidPrefix, Error, KeyUsage, Oid, TestPki, TrustStore, issue_for_public_key,
    verify_dp_chain, verify_euicc_chain,
};

#[test]
fn generated_hierarchy_verifies() {
    let pki = pki(3);
    let trust = pki.trust_store().unwrap();
    let ci_id = pki.ci.certificate.subject_key_id().unwrap().clone();
    assert_eq!(trust.ci_key_ids().collect::<Vec<_>>(), vec![&ci_id]);

    let eids = pki.eids();
    assert_eq!(eids.len(), 3);
    for (euicc, eid) in pki.euiccs.iter().zip(&eids) {
        assert!(eid.to_string().starts_with("89049032"));
        let v = verify_euicc_chain(
            &trust,
            pki.eum.certificate.der(),
            euicc.certificate.der(),
            now(),
        )
        .unwrap();
        assert_eq!(&v.eid, eid);
        assert_eq!(v.ci_key_id, ci_id);
        assert_eq!(&v.eum_key_id, pki.eum.certificate.subject_key_id().unwrap());
        assert_eq!(v.public_key_sec1, euicc.certificate.public_key_sec1());
    }
    // The EUM was verified against the CI once, then served from the cache.
    assert_eq!(trust.cached_eums(), 1);

    for (issued, role) in [
        (&pki.dp_auth, CertRole::DpAuth),
        (&pki.dp_pb, CertRole::DpPb),
        (&pki.dp_tls, CertRole::DpTls),
    ] {
        let v = verify_dp_chain(&trust, issued.certificate.der(), role, now()).unwrap();
        assert_eq!(v.role, role);
        assert_eq!(v.smdp_oid.to_string(), "2.999.10");
        assert_eq!(v.ci_key_id, ci_id);
        assert_eq!(v.public_key_sec1, issued.certificate.public_key_sec1());
        if role == CertRole::DpTls {
            assert_eq!(v.dns_names, vec!["testsmdpplus1.example.com".to_string()]);
        }
    }
    assert_eq!(
        verify_eum(&trust, &pki.eum.certificate, now()).unwrap(),
        ci_id
    );
}

#[test]
fn generated_profile_matches_sgp26_shapes() {
    let pki = pki(1);
    let ci = &pki.ci.certificate;
    assert_eq!(ci.role(), Some(CertRole::Ci));
    assert!(ci.is_ca() && ci.is_self_issued());
    assert_eq!(
        ci.key_usage(),
        Some(KeyUsage(KeyUsage::KEY_CERT_SIGN.0 | KeyUsage::CRL_SIGN.0))
    );
    assert!(ci.authority_key_id().is_none());
    assert_eq!(ci.registered_ids()[0].to_string(), "2.999.1");

    let eum = &pki.eum.certificate;
    assert_eq!(eum.role(), Some(CertRole::Eum));
    assert!(eum.is_ca());
    assert_eq!(eum.path_len_constraint(), Some(0));
    // keyCertSign for its eUICC certificates, cRLSign for their CRL.
    assert_eq!(
        eum.key_usage(),
        Some(KeyUsage(KeyUsage::KEY_CERT_SIGN.0 | KeyUsage::CRL_SIGN.0))
    );
    assert_eq!(
        eum.eid_ranges().name_constraints,
        vec![EidPrefix::parse("89049032").unwrap()]
    );
    assert_eq!(eum.authority_key_id(), ci.subject_key_id());

    let euicc = &pki.euiccs[0].certificate;
    assert_eq!(euicc.role(), Some(CertRole::Euicc));
    assert!(!euicc.is_ca());
    assert_eq!(euicc.key_usage(), Some(KeyUsage::DIGITAL_SIGNATURE));
    assert_eq!(euicc.authority_key_id(), eum.subject_key_id());
    assert_eq!(euicc.not_after(), ferrosim_pki::generate::end_of_time());

    let tls = &pki.dp_tls.certificate;
    assert_eq!(tls.extended_key_usage().len(), 2);
    assert_eq!(tls.dns_names(), ["testsmdpplus1.example.com"]);
}

#[test]
fn permitted_eins_extension_limits_eids_too() {
    let pki = pki(0);
    let trust = pki.trust_store().unwrap();
    let ci_key = pki.ci.signing_key().unwrap();
    let eum_key = SoftwareKey::generate().unwrap();
    let mut req = CertificateRequest::new(
        CertRole::Eum,
        "EUM with permittedEins",
        date(2025, 1, 1),
        date(2030, 1, 1),
    );
    req.permitted_eid_prefixes = vec![
        EidPrefix::parse("8904903").unwrap(),
        EidPrefix::parse("89086030").unwrap(),
    ];
    req.eid_range_encoding = EidRangeEncoding::PermittedEins;
    let eum = issue_for_public_key(
        &req,
        eum_key.public_key_sec1(),
        &pki.ci.certificate,
        &ci_key,
    )
    .unwrap();
    assert!(eum.eid_ranges().name_constraints.is_empty());
    assert_eq!(eum.eid_ranges().permitted_eins.len(), 2);

    let issue = |eid: Eid| {
        let mut req =
            CertificateRequest::new(CertRole::Euicc, "eUICC", date(2025, 1, 1), date(2030, 1, 1));
        req.eid = Some(eid);
        let key = SoftwareKey::generate().unwrap();
        issue_for_public_key(&req, key.public_key_sec1(), &eum, &eum_key).unwrap()
    };
    for inside in [
        "890860300000000000000000000001",
        "890490390000000000000000000001",
    ] {
        let eid = Eid::from_body(inside).unwrap();
        let v = verify_euicc_chain(&trust, eum.der(), issue(eid).der(), now()).unwrap();
        assert_eq!(v.eid, eid);
    }
    let outside = Eid::from_body("890860310000000000000000000001").unwrap();
    let err = verify_euicc_chain(&trust, eum.der(), issue(outside).der(), now()).unwrap_err();
    assert!(matches!(err, Error::EidOutsideEumRange { .. }), "{err}");
}

#[test]
fn externally_held_keys_can_be_certified_and_used() {
    let pki = pki(0);
    let trust = pki.trust_store().unwrap();
    // A DPauth key that would live in a token: only its public key and a signing interface are used.
    let dp_key = SoftwareKey::generate().unwrap();
    let ci_key = pki.ci.signing_key().unwrap();
    let mut req = CertificateRequest::new(
        CertRole::DpAuth,
        "smdp.example.net",
        date(2025, 1, 1),
        date(2030, 1, 1),
    );
    req.registered_id = Some(Oid::parse("1.3.6.1.4.1.99999.1").unwrap());
    let cert =
        issue_for_public_key(&req, dp_key.public_key_sec1(), &pki.ci.certificate, &ci_key).unwrap();
    let v = verify_dp_chain(&trust, cert.der(), CertRole::DpAuth, now()).unwrap();
    assert_eq!(v.smdp_oid.to_string(), "1.3.6.1.4.1.99999.1");

    let message = b"serverSigned1";
    let sig = dp_key.sign_raw(message).unwrap();
    v.certificate
        .verifying_key()
        .verify_raw(message, &sig)
        .unwrap();

    // The issuer key must belong to the issuer certificate.
    let stranger = SoftwareKey::generate().unwrap();
    let err = issue_for_public_key(
        &req,
        dp_key.public_key_sec1(),
        &pki.ci.certificate,
        &stranger,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
    // And the subject key must be a P-256 point.
    let err = issue_for_public_key(&req, &[0x04; 65], &pki.ci.certificate, &ci_key).unwrap_err();
    assert!(matches!(err, Error::UnsupportedPublicKey(_)), "{err}");
}

#[test]
fn requests_missing_role_data_are_refused() {
    let pki = pki(0);
    let ci_key = pki.ci.signing_key().unwrap();
    let key = SoftwareKey::generate().unwrap();
    let issue = |req: &CertificateRequest| {
        issue_for_public_key(req, key.public_key_sec1(), &pki.ci.certificate, &ci_key)
    };
    let base = |role| CertificateRequest::new(role, "x", date(2025, 1, 1), date(2030, 1, 1));
    assert!(matches!(
        issue(&base(CertRole::Euicc)),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        issue(&base(CertRole::Eum)),
        Err(Error::InvalidOption(_))
    ));
    assert!(matches!(
        issue(&base(CertRole::DpPb)),
        Err(Error::InvalidOption(_))
    ));
    let mut tls = base(CertRole::DpTls);
    tls.registered_id = Some(Oid::parse("2.999.10").unwrap());
    assert!(matches!(issue(&tls), Err(Error::InvalidOption(_))));
    tls.dns_names = vec!["bad name".into()];
    assert!(matches!(issue(&tls), Err(Error::InvalidDnsName(_))));
    let mut backwards = base(CertRole::DpAuth);
    backwards.registered_id = Some(Oid::parse("2.999.10").unwrap());
    backwards.not_after = date(2020, 1, 1);
    assert!(matches!(issue(&backwards), Err(Error::InvalidOption(_))));
}

#[test]
fn trust_store_accepts_only_ci_certificates() {
    let pki = pki(1);
    let mut trust = TrustStore::new();
    assert!(trust.is_empty());
    let err = trust.add_ci(pki.eum.certificate.clone()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::Ci,
                found: Some(CertRole::Eum)
            }
        ),
        "{err}"
    );
    let err = trust
        .add_ci_der(&flip_last_byte(pki.ci.certificate.der()))
        .unwrap_err();
    assert!(
        matches!(err, Error::BadSignature { cert: CertRole::Ci }),
        "{err}"
    );
    trust.add_ci_der(pki.ci.certificate.der()).unwrap();
    assert_eq!(trust.len(), 1);
}

#[test]
fn verify_dp_chain_refuses_non_smdp_roles() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let err = verify_dp_chain(&trust, pki.eum.certificate.der(), CertRole::Eum, now()).unwrap_err();
    assert!(matches!(err, Error::NotSmdpRole(CertRole::Eum)));
}

#[test]
fn more_euiccs_than_the_prefix_allows_is_refused() {
    let mut options = common::options(11);
    options.eid_prefix = EidPrefix::parse(&"8".repeat(29)).unwrap();
    options.first_euicc_number = 0;
    let err = TestPki::generate(&options).unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
    options.euicc_count = 10;
    let pki = TestPki::generate(&options).unwrap();
    assert_eq!(pki.euiccs.len(), 10);
}

#[test]
fn times_outside_x509_range_are_refused_not_panicking() {
    let pki = pki(0);
    let ci_key = pki.ci.signing_key().unwrap();
    let key = SoftwareKey::generate().unwrap();
    let far = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::from(u32::MAX) * 1000);
    let before_epoch = std::time::SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(86_400);
    for (nb, na) in [(date(2025, 1, 1), far), (before_epoch, date(2030, 1, 1))] {
        let mut req = CertificateRequest::new(CertRole::DpAuth, "x", nb, na);
        req.registered_id = Some(Oid::parse("2.999.10").unwrap());
        let err = issue_for_public_key(&req, key.public_key_sec1(), &pki.ci.certificate, &ci_key)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidOption(_)), "{err}");
    }
}
