//! CRLs: issuing, parsing, loading, and chain verification refusing revoked
//! eUICC, EUM and SM-DP+ certificates; stale and partial CRLs per policy;
//! the sans-IO fetch schedule with failing distribution points.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{date, now};
use ferrosim_pki::crl::issue::{CrlRequest, issue_partial_crls};
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::crl::{
    CrlError, CrlNumber, CrlScope, CrlStatus, LoadOutcome, RevocationProblem, RevokedEntry,
};
use ferrosim_pki::{
    CertRole, Crl, Error, RevocationPolicy, RevocationReason, StalePolicy, TestPki, TrustStore,
    verify_dp_chain, verify_euicc_chain,
};

const DAY: Duration = Duration::from_secs(86_400);

fn request(number: u128, entries: Vec<RevokedEntry>) -> CrlRequest {
    CrlRequest {
        number: CrlNumber::new(number),
        this_update: now() - DAY,
        next_update: now() + 7 * DAY,
        entries,
        scope: CrlScope::default(),
    }
}

fn revoked(cert: &ferrosim_pki::RspCertificate) -> RevokedEntry {
    let mut e = entry(
        cert.serial_number().to_vec(),
        date(2026, 5, 1),
        Some(RevocationReason::KeyCompromise),
    );
    e.certificate_expiry = Some(date(2035, 1, 1));
    e
}

fn trust(pki: &TestPki, on_stale: StalePolicy) -> TrustStore {
    let mut trust = pki.trust_store().unwrap();
    trust.enable_revocation(RevocationPolicy {
        on_stale,
        fetch_distribution_points: false,
    });
    trust
}

fn euicc_chain(pki: &TestPki, trust: &TrustStore) -> Result<ferrosim_pki::VerifiedEuicc, Error> {
    verify_euicc_chain(
        trust,
        pki.eum.certificate.der(),
        pki.euiccs[0].certificate.der(),
        now(),
    )
}

#[test]
fn issued_crl_parses_and_verifies() {
    let pki = common::pki(1);
    let crl = pki
        .issue_crl(
            CrlIssuer::Ci,
            &request(7, vec![revoked(&pki.dp_auth.certificate)]),
        )
        .unwrap();
    let parsed = Crl::from_der(crl.der()).unwrap();
    assert_eq!(parsed.number(), &CrlNumber::new(7));
    assert_eq!(parsed.len(), 1);
    let e = parsed
        .entry(pki.dp_auth.certificate.serial_number())
        .unwrap();
    assert_eq!(e.reason, Some(RevocationReason::KeyCompromise));
    assert_eq!(e.revoked_at, date(2026, 5, 1));
    assert_eq!(e.certificate_expiry, Some(date(2035, 1, 1)));
    assert_eq!(
        parsed.authority_key_id(),
        pki.ci.certificate.subject_key_id().unwrap()
    );
    parsed.verify_issued_by(&pki.ci.certificate).unwrap();
    assert!(matches!(
        parsed.verify_issued_by(&pki.eum.certificate),
        Err(CrlError::WrongIssuer(_))
    ));
    // PEM round trip.
    assert_eq!(Crl::from_bytes(parsed.to_pem().as_bytes()).unwrap(), parsed);
    // A flipped signature bit is a bad signature.
    let tampered = Crl::from_der(&common::flip_last_byte(crl.der())).unwrap();
    assert!(matches!(
        tampered.verify_issued_by(&pki.ci.certificate),
        Err(CrlError::BadSignature)
    ));
}

#[test]
fn revoked_euicc_is_refused_and_others_pass() {
    let pki = common::pki(2);
    let trust = trust(&pki, StalePolicy::Refuse);
    // The EUM is not known to the trust store yet: its CRL waits.
    let crl = pki
        .issue_crl(
            CrlIssuer::Eum,
            &request(1, vec![revoked(&pki.euiccs[0].certificate)]),
        )
        .unwrap();
    assert!(matches!(
        trust.load_crl(crl.der(), None).unwrap(),
        LoadOutcome::AwaitingIssuer { .. }
    ));
    match euicc_chain(&pki, &trust) {
        Err(Error::Revoked {
            cert: CertRole::Euicc,
            serial,
            revoked_at,
            reason,
        }) => {
            assert_eq!(
                serial,
                hex::encode_upper(pki.euiccs[0].certificate.serial_number())
            );
            assert_eq!(revoked_at, date(2026, 5, 1));
            assert_eq!(reason, Some(RevocationReason::KeyCompromise));
        }
        other => panic!("expected a revoked eUICC, got {other:?}"),
    }
    // The other eUICC of the same EUM passes, without warnings.
    let v = verify_euicc_chain(
        &trust,
        pki.eum.certificate.der(),
        pki.euiccs[1].certificate.der(),
        now(),
    )
    .unwrap();
    assert!(v.revocation_warnings.is_empty());
    let message = euicc_chain(&pki, &trust).unwrap_err().to_string();
    assert!(
        message.contains("revoked at 2026-05-01T00:00:00Z (keyCompromise)"),
        "{message}"
    );
}

#[test]
fn revoked_eum_and_dp_certificates_are_refused() {
    let pki = common::pki(1);
    let trust = trust(&pki, StalePolicy::Refuse);
    let crl = pki
        .issue_crl(
            CrlIssuer::Ci,
            &request(
                3,
                vec![
                    revoked(&pki.eum.certificate),
                    revoked(&pki.dp_auth.certificate),
                ],
            ),
        )
        .unwrap();
    assert_eq!(
        trust.load_crl(crl.der(), None).unwrap(),
        LoadOutcome::Loaded {
            number: CrlNumber::new(3),
            missing_parts: vec![]
        }
    );
    assert!(matches!(
        euicc_chain(&pki, &trust),
        Err(Error::Revoked {
            cert: CertRole::Eum,
            ..
        })
    ));
    assert!(matches!(
        verify_dp_chain(
            &trust,
            pki.dp_auth.certificate.der(),
            CertRole::DpAuth,
            now()
        ),
        Err(Error::Revoked {
            cert: CertRole::DpAuth,
            ..
        })
    ));
    // DPpb is not listed: fine.
    verify_dp_chain(&trust, pki.dp_pb.certificate.der(), CertRole::DpPb, now()).unwrap();
    // Without revocation enabled, nothing is checked.
    let plain = pki.trust_store().unwrap();
    verify_dp_chain(
        &plain,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
}

#[test]
fn stale_crl_follows_the_policy() {
    let pki = common::pki(1);
    let mut req = request(1, vec![]);
    req.this_update = date(2026, 1, 1);
    req.next_update = date(2026, 2, 1);
    let crl = pki.issue_crl(CrlIssuer::Ci, &req).unwrap();

    let refusing = trust(&pki, StalePolicy::Refuse);
    refusing.load_crl(crl.der(), None).unwrap();
    match verify_dp_chain(
        &refusing,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    ) {
        Err(Error::RevocationUnknown {
            cert: CertRole::DpAuth,
            problem: RevocationProblem::Stale { next_update },
        }) => assert_eq!(next_update, date(2026, 2, 1)),
        other => panic!("expected a stale refusal, got {other:?}"),
    }
    // Before nextUpdate it was fine.
    verify_dp_chain(
        &refusing,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        date(2026, 1, 15),
    )
    .unwrap();

    let warning = trust(&pki, StalePolicy::Warn);
    warning.load_crl(crl.der(), None).unwrap();
    let v = verify_dp_chain(
        &warning,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
    assert_eq!(v.revocation_warnings.len(), 1);
    assert_eq!(v.revocation_warnings[0].cert, CertRole::DpAuth);
    // A stale CRL still counts for what it lists as revoked.
    let mut req = req.clone();
    req.number = CrlNumber::new(2);
    req.entries = vec![revoked(&pki.dp_auth.certificate)];
    warning
        .load_crl(pki.issue_crl(CrlIssuer::Ci, &req).unwrap().der(), None)
        .unwrap();
    assert!(matches!(
        verify_dp_chain(
            &warning,
            pki.dp_auth.certificate.der(),
            CertRole::DpAuth,
            now()
        ),
        Err(Error::Revoked { .. })
    ));
}

#[test]
fn crl_numbers_only_grow() {
    let pki = common::pki(1);
    let trust = trust(&pki, StalePolicy::Refuse);
    let five = pki.issue_crl(CrlIssuer::Ci, &request(5, vec![])).unwrap();
    let four = pki.issue_crl(CrlIssuer::Ci, &request(4, vec![])).unwrap();
    let other_five = pki
        .issue_crl(
            CrlIssuer::Ci,
            &request(5, vec![revoked(&pki.dp_pb.certificate)]),
        )
        .unwrap();
    trust.load_crl(five.der(), None).unwrap();
    assert_eq!(
        trust.load_crl(five.der(), None).unwrap(),
        LoadOutcome::Unchanged {
            number: CrlNumber::new(5)
        }
    );
    let err = trust.load_crl(four.der(), None).unwrap_err();
    assert!(matches!(err, CrlError::NotNewer { .. }));
    assert_eq!(err.load_crl_error_code(), 5);
    assert!(matches!(
        trust.load_crl(other_five.der(), None),
        Err(CrlError::Inconsistent(_))
    ));
    let six = pki
        .issue_crl(
            CrlIssuer::Ci,
            &request(6, vec![revoked(&pki.dp_pb.certificate)]),
        )
        .unwrap();
    trust.load_crl(six.der(), None).unwrap();
    assert!(matches!(
        verify_dp_chain(&trust, pki.dp_pb.certificate.der(), CertRole::DpPb, now()),
        Err(Error::Revoked { .. })
    ));
    // Loading into a trust store without revocation is a clear error.
    assert!(matches!(
        pki.trust_store().unwrap().load_crl(six.der(), None),
        Err(CrlError::NotEnabled)
    ));
}

#[test]
fn partial_crls_are_assembled() {
    let pki = common::pki(1);
    let trust = trust(&pki, StalePolicy::Refuse);
    let entries = vec![
        revoked(&pki.dp_tls.certificate),
        entry(vec![0x01], date(2026, 1, 1), None),
        entry(vec![0x02], date(2026, 1, 1), None),
    ];
    let ci_key = pki.ci.signing_key().unwrap();
    let parts = issue_partial_crls(&request(9, entries), 3, &pki.ci.certificate, &ci_key).unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts.iter().map(Crl::len).sum::<usize>(), 3);
    let holding_tls = parts
        .iter()
        .position(|p| p.entry(pki.dp_tls.certificate.serial_number()).is_some())
        .unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != holding_tls).collect();

    // The part listing DPtls alone already revokes it; DPauth's status is
    // unknown until every part is in.
    match trust.load_crl(parts[holding_tls].der(), None).unwrap() {
        LoadOutcome::Loaded { missing_parts, .. } => assert_eq!(missing_parts.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        verify_dp_chain(&trust, pki.dp_tls.certificate.der(), CertRole::DpTls, now()),
        Err(Error::Revoked { .. })
    ));
    assert!(matches!(
        verify_dp_chain(
            &trust,
            pki.dp_auth.certificate.der(),
            CertRole::DpAuth,
            now()
        ),
        Err(Error::RevocationUnknown {
            problem: RevocationProblem::Incomplete { .. },
            ..
        })
    ));
    trust.load_crl(parts[others[0]].der(), None).unwrap();
    match trust.load_crl(parts[others[1]].der(), None).unwrap() {
        LoadOutcome::Loaded { missing_parts, .. } => assert!(missing_parts.is_empty()),
        other => panic!("{other:?}"),
    }
    verify_dp_chain(
        &trust,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
}

#[test]
fn scope_limits_what_a_crl_covers() {
    let pki = common::pki(1);
    let trust = trust(&pki, StalePolicy::Warn);
    // A CA-certificates-only CRL listing DPauth does not revoke it...
    let mut req = request(1, vec![revoked(&pki.dp_auth.certificate)]);
    req.scope.only_ca_certs = true;
    trust
        .load_crl(pki.issue_crl(CrlIssuer::Ci, &req).unwrap().der(), None)
        .unwrap();
    let status =
        trust
            .revocation()
            .unwrap()
            .status(&pki.dp_auth.certificate, &pki.ci.certificate, now());
    assert_eq!(status, CrlStatus::NoCrl);
    // ...an end-entity CRL does.
    let mut req = request(1, vec![revoked(&pki.dp_auth.certificate)]);
    req.scope.only_user_certs = true;
    trust
        .load_crl(pki.issue_crl(CrlIssuer::Ci, &req).unwrap().der(), None)
        .unwrap();
    assert!(matches!(
        verify_dp_chain(
            &trust,
            pki.dp_auth.certificate.der(),
            CertRole::DpAuth,
            now()
        ),
        Err(Error::Revoked { .. })
    ));
}

#[test]
fn fetch_schedule_handles_failures_per_policy() {
    let mut options = common::options(1);
    options.crl_base_url = Some("http://127.0.0.1:9/crl".into());
    let pki = TestPki::generate(&options).unwrap();
    assert_eq!(
        pki.euiccs[0].certificate.crl_distribution_points(),
        ["http://127.0.0.1:9/crl/eum.crl"]
    );
    assert_eq!(
        pki.dp_auth.certificate.crl_distribution_points(),
        ["http://127.0.0.1:9/crl/ci.crl"]
    );
    assert!(pki.ci.certificate.crl_distribution_points().is_empty());

    for on_stale in [StalePolicy::Refuse, StalePolicy::Warn] {
        let mut trust = pki.trust_store().unwrap();
        let revocation = trust
            .enable_revocation(RevocationPolicy {
                on_stale,
                fetch_distribution_points: true,
            })
            .clone();
        let t0 = now();
        // Nothing fetched yet: the status is unknown and the URL becomes wanted.
        let first = verify_dp_chain(&trust, pki.dp_auth.certificate.der(), CertRole::DpAuth, t0);
        match on_stale {
            StalePolicy::Refuse => assert!(matches!(
                first,
                Err(Error::RevocationUnknown {
                    problem: RevocationProblem::Unavailable { .. },
                    ..
                })
            )),
            StalePolicy::Warn => assert_eq!(first.unwrap().revocation_warnings.len(), 1),
        }
        let due = revocation.poll_fetch(t0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].url, "http://127.0.0.1:9/crl/ci.crl");
        assert!(revocation.poll_fetch(t0).is_empty(), "in flight");

        // The server sends garbage: refused (or warned) with the reason.
        let err = trust
            .handle_crl_fetch(&due[0].url, Ok(b"<html>oops</html>".to_vec()), t0)
            .unwrap_err();
        assert!(matches!(err, CrlError::Malformed(_)));
        let again = verify_dp_chain(&trust, pki.dp_auth.certificate.der(), CertRole::DpAuth, t0);
        if on_stale == StalePolicy::Refuse {
            let message = again.unwrap_err().to_string();
            assert!(message.contains("malformed CRL"), "{message}");
        } else {
            assert_eq!(again.unwrap().revocation_warnings.len(), 1);
        }
        // Retried after a backoff, not at once.
        assert!(
            revocation
                .poll_fetch(t0 + Duration::from_secs(5))
                .is_empty()
        );
        let due = revocation.poll_fetch(t0 + Duration::from_secs(31));
        assert_eq!(due.len(), 1);

        // A CRL from the wrong issuer (the EUM's) at the CI's URL is refused.
        let wrong = pki.issue_crl(CrlIssuer::Eum, &request(1, vec![])).unwrap();
        assert!(matches!(
            trust.handle_crl_fetch(&due[0].url, Ok(wrong.der().to_vec()), t0),
            Err(CrlError::WrongIssuer(_))
        ));
        // The server is down.
        let t1 = t0 + Duration::from_secs(200);
        let due = revocation.poll_fetch(t1);
        let down = CrlError::Fetch {
            url: due[0].url.clone(),
            problem: "connection refused".into(),
        };
        assert!(trust.handle_crl_fetch(&due[0].url, Err(down), t1).is_err());

        // Then a good CRL arrives: in force, refreshed at 3/4 of its span
        // (at most a day later).
        let t2 = t1 + Duration::from_secs(3600);
        let due = revocation.poll_fetch(t2);
        assert_eq!(due.len(), 1);
        let good = pki.issue_crl(CrlIssuer::Ci, &request(1, vec![])).unwrap();
        trust
            .handle_crl_fetch(&due[0].url, Ok(good.der().to_vec()), t2)
            .unwrap();
        let v =
            verify_dp_chain(&trust, pki.dp_auth.certificate.der(), CertRole::DpAuth, t2).unwrap();
        assert!(v.revocation_warnings.is_empty());
        let span = good
            .next_update()
            .duration_since(good.this_update())
            .unwrap();
        let three_quarters = good.this_update() + span / 4 * 3;
        assert_eq!(
            revocation.next_fetch_at(),
            Some(three_quarters.min(t2 + Duration::from_secs(86_400)))
        );
        assert!(revocation.next_fetch_at().unwrap() < good.next_update());
    }
}

#[test]
fn garbage_is_rejected_without_panic() {
    let pki = common::pki(1);
    let good = pki.issue_crl(CrlIssuer::Ci, &request(1, vec![])).unwrap();
    for bad in [
        &b""[..],
        b"\x30\x00",
        b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        pki.ci.certificate.der(),
        &good.der()[..good.der().len() - 1],
    ] {
        assert!(Crl::from_bytes(bad).is_err());
    }
    // Every single-byte truncation and mutation is an error or a CRL, never a panic.
    let der = good.der();
    for i in 0..der.len() {
        let _ = Crl::from_der(&der[..i]);
        let mut m = der.to_vec();
        m[i] ^= 0xFF;
        let _ = Crl::from_der(&m);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> &'static [u8] {
        static SAMPLE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        SAMPLE.get_or_init(|| {
            let pki = common::pki(1);
            let entries = vec![
                revoked(&pki.dp_auth.certificate),
                revoked(&pki.eum.certificate),
            ];
            let mut req = request(42, entries);
            req.scope.distribution_point_uris = vec!["http://crl.example/ci.crl".into()];
            pki.issue_crl(CrlIssuer::Ci, &req).unwrap().der().to_vec()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Crl::from_bytes(&bytes);
        }

        #[test]
        fn mutated_crls_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut der = sample().to_vec();
            for (at, byte) in edits {
                let i = at.index(der.len());
                der[i] = byte;
            }
            if let Ok(crl) = Crl::from_der(&der) {
                // Whatever parses keeps its invariants.
                prop_assert!(crl.next_update() >= crl.this_update());
                let _ = crl.tbs_der();
            }
        }
    }
}

#[test]
fn unix_epoch_and_far_future_times_issue() {
    let pki = common::pki(1);
    let mut req = request(1, vec![entry(vec![0x05], SystemTime::UNIX_EPOCH, None)]);
    req.next_update = date(2099, 1, 1);
    let crl = pki.issue_crl(CrlIssuer::Ci, &req).unwrap();
    assert_eq!(crl.next_update(), date(2099, 1, 1));
    req.next_update = req.this_update;
    assert!(pki.issue_crl(CrlIssuer::Ci, &req).is_err());
}
