//! Each kind of tampering with a generated hierarchy fails with its own error.

mod common;

use common::{date, dp_cert, euicc_cert, flip_last_byte, now, pki};
use ferrosim_pki::verify::verify_dp_certificate;
use ferrosim_pki::{
    CertRole, Eid, Error, KeyUsage, TrustStore, verify_dp_chain, verify_euicc_chain,
};

#[test]
fn flipped_signature_byte_is_bad_signature() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let eum = pki.eum.certificate.der();
    let euicc = pki.euiccs[0].certificate.der();

    let err = verify_euicc_chain(&trust, eum, &flip_last_byte(euicc), now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadSignature {
                cert: CertRole::Euicc
            }
        ),
        "{err}"
    );
    assert_eq!(
        trust.cached_eums(),
        1,
        "the good EUM was verified and cached"
    );

    let err = verify_euicc_chain(&trust, &flip_last_byte(eum), euicc, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadSignature {
                cert: CertRole::Eum
            }
        ),
        "{err}"
    );
    assert_eq!(trust.cached_eums(), 1, "a failed EUM must not be cached");

    let err = verify_dp_chain(
        &trust,
        &flip_last_byte(pki.dp_auth.certificate.der()),
        CertRole::DpAuth,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadSignature {
                cert: CertRole::DpAuth
            }
        ),
        "{err}"
    );
}

#[test]
fn tampered_signed_content_is_bad_signature() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    // Change one letter of the subject commonName inside the signed part.
    let mut der = pki.dp_pb.certificate.der().to_vec();
    let needle = b"testsmdpplus1";
    let at = der.windows(needle.len()).position(|w| w == needle).unwrap();
    der[at] = b'T';
    let err = verify_dp_chain(&trust, &der, CertRole::DpPb, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadSignature {
                cert: CertRole::DpPb
            }
        ),
        "{err}"
    );
}

#[test]
fn expired_euicc_is_expired() {
    let mut pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let eid = Eid::from_body("890490320000000000000000000099").unwrap();
    let euicc = pki
        .issue_euicc(eid, date(2025, 1, 1), date(2026, 1, 1))
        .unwrap()
        .certificate
        .clone();
    let err =
        verify_euicc_chain(&trust, pki.eum.certificate.der(), euicc.der(), now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Expired {
                cert: CertRole::Euicc,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("2026-01-01T00:00:00Z"), "{err}");
    // The same chain verified while it was valid passes.
    verify_euicc_chain(
        &trust,
        pki.eum.certificate.der(),
        euicc.der(),
        date(2025, 6, 1),
    )
    .unwrap();
}

#[test]
fn not_yet_valid_euicc_is_not_yet_valid() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let euicc = euicc_cert(
        &pki,
        Eid::from_body("890490320000000000000000000098").unwrap(),
        date(2027, 1, 1),
        date(2030, 1, 1),
    );
    let err =
        verify_euicc_chain(&trust, pki.eum.certificate.der(), euicc.der(), now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotYetValid {
                cert: CertRole::Euicc,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn expired_hierarchy_names_the_expired_link() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let late = date(2036, 1, 1);
    let err = verify_euicc_chain(
        &trust,
        pki.eum.certificate.der(),
        pki.euiccs[0].certificate.der(),
        late,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Expired {
                cert: CertRole::Eum,
                ..
            }
        ),
        "{err}"
    );
    let err =
        verify_dp_chain(&trust, pki.dp_tls.certificate.der(), CertRole::DpTls, late).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Expired {
                cert: CertRole::DpTls,
                ..
            }
        ),
        "{err}"
    );
    let err = verify_dp_chain(
        &trust,
        pki.dp_tls.certificate.der(),
        CertRole::DpTls,
        date(2024, 1, 1),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotYetValid {
                cert: CertRole::DpTls,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn dppb_presented_as_dpauth_is_wrong_policy() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let err =
        verify_dp_chain(&trust, pki.dp_pb.certificate.der(), CertRole::DpAuth, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::DpAuth,
                found: Some(CertRole::DpPb)
            }
        ),
        "{err}"
    );
    // An eUICC certificate presented as EUM, and an EUM as eUICC.
    let euicc = pki.euiccs[0].certificate.der();
    let err = verify_euicc_chain(&trust, euicc, euicc, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::Eum,
                found: Some(CertRole::Euicc)
            }
        ),
        "{err}"
    );
    let eum = pki.eum.certificate.der();
    let err = verify_euicc_chain(&trust, eum, eum, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::Euicc,
                found: Some(CertRole::Eum)
            }
        ),
        "{err}"
    );
}

#[test]
fn wrong_key_usage_is_wrong_key_usage() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let bad = dp_cert(&pki, CertRole::DpAuth, Some(KeyUsage::KEY_AGREEMENT));
    let err = verify_dp_certificate(&trust, &bad, CertRole::DpAuth, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKeyUsage {
                cert: CertRole::DpAuth,
                ..
            }
        ),
        "{err}"
    );

    let signs_certs = dp_cert(
        &pki,
        CertRole::DpPb,
        Some(KeyUsage(
            KeyUsage::DIGITAL_SIGNATURE.0 | KeyUsage::KEY_CERT_SIGN.0,
        )),
    );
    let err = verify_dp_certificate(&trust, &signs_certs, CertRole::DpPb, now()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKeyUsage {
                cert: CertRole::DpPb,
                ..
            }
        ),
        "{err}"
    );

    // The same request with the profile's key usage verifies.
    let good = dp_cert(&pki, CertRole::DpAuth, None);
    verify_dp_certificate(&trust, &good, CertRole::DpAuth, now()).unwrap();
}

#[test]
fn certificate_from_another_ci_is_unknown_ci() {
    let ours = pki(1);
    let theirs = pki(1);
    let trust = ours.trust_store().unwrap();
    let their_ci = theirs.ci.certificate.subject_key_id().unwrap().clone();

    let err = verify_dp_chain(
        &trust,
        theirs.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownCi(id) if *id == their_ci),
        "{err}"
    );
    let err = verify_euicc_chain(
        &trust,
        theirs.eum.certificate.der(),
        theirs.euiccs[0].certificate.der(),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownCi(id) if *id == their_ci),
        "{err}"
    );

    // Their eUICC under our EUM: the link itself is wrong.
    let err = verify_euicc_chain(
        &trust,
        ours.eum.certificate.der(),
        theirs.euiccs[0].certificate.der(),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotIssuedBy {
                cert: CertRole::Euicc,
                issuer: CertRole::Eum,
                ..
            }
        ),
        "{err}"
    );

    // Trusting both CIs makes both verify.
    let both =
        TrustStore::with_cis([ours.ci.certificate.clone(), theirs.ci.certificate.clone()]).unwrap();
    verify_dp_chain(
        &both,
        theirs.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
    verify_dp_chain(
        &both,
        ours.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
}

#[test]
fn eid_outside_eum_range_is_named() {
    let pki = pki(1);
    let trust = pki.trust_store().unwrap();
    let outside = Eid::from_body("890490330000000000000000000001").unwrap();
    let euicc = euicc_cert(&pki, outside, date(2025, 1, 1), date(2030, 1, 1));
    let err =
        verify_euicc_chain(&trust, pki.eum.certificate.der(), euicc.der(), now()).unwrap_err();
    assert!(
        matches!(err, Error::EidOutsideEumRange { eid } if eid == outside),
        "{err}"
    );
    assert!(err.to_string().contains(&outside.to_string()));

    // The generator refuses to issue it in the first place.
    let mut pki = pki;
    let err = pki
        .issue_euicc(outside, date(2025, 1, 1), date(2030, 1, 1))
        .unwrap_err();
    assert!(matches!(err, Error::EidOutsideEumRange { .. }));
}
