//! The CI and EUM of a `pki init` directory revoking certificates and
//! issuing CRLs with growing numbers (whole or in parts); CRL files with
//! several CRLs (PEM bundles, DER SegmentedCrlList) load as a whole.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{date, now};
use ferrosim_pki::crl::authority::CrlAuthority;
use ferrosim_pki::crl::register::{CrlIssuer, Register};
use ferrosim_pki::crl::{CrlNumber, LoadOutcome};
use ferrosim_pki::{
    CertRole, Crl, Error, RevocationPolicy, RevocationReason, StalePolicy, TrustStore,
    verify_dp_chain, verify_euicc_chain,
};

const DAY: Duration = Duration::from_secs(86_400);

fn revocation_trust(ci: &ferrosim_pki::RspCertificate) -> TrustStore {
    let mut trust = TrustStore::with_cis([ci.clone()]).unwrap();
    trust.enable_revocation(RevocationPolicy {
        on_stale: StalePolicy::Refuse,
        fetch_distribution_points: false,
    });
    trust
}

#[test]
fn revoke_and_issue_from_a_directory() {
    let pki = common::pki(2);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();

    let eum = CrlAuthority::load(dir.path(), CrlIssuer::Eum).unwrap();
    let ci = CrlAuthority::load(dir.path(), CrlIssuer::Ci).unwrap();
    let victim = &pki.euiccs[1].certificate;
    eum.revoke(
        victim,
        date(2026, 5, 2),
        Some(RevocationReason::CessationOfOperation),
    )
    .unwrap();
    // Twice is refused; the wrong CA is refused; a certificate of another
    // hierarchy is refused.
    assert!(eum.revoke(victim, date(2026, 5, 3), None).is_err());
    assert!(ci.revoke(victim, date(2026, 5, 3), None).is_err());
    let other = common::pki(1);
    assert!(matches!(
        eum.revoke(&other.euiccs[0].certificate, now(), None),
        Err(Error::NotIssuedBy { .. } | Error::BadSignature { .. })
    ));
    assert!(ci.revoke(&pki.ci.certificate, now(), None).is_err());
    ci.revoke(&pki.dp_pb.certificate, date(2026, 5, 4), None)
        .unwrap();

    let first = eum.issue(now() - DAY, now() + 7 * DAY, 1, None).unwrap();
    assert_eq!(first.files, [dir.path().join("CRL/eum.crl")]);
    assert_eq!(first.crls[0].number(), &CrlNumber::new(1));
    let second = eum.issue(now() - DAY, now() + 7 * DAY, 1, None).unwrap();
    assert_eq!(second.crls[0].number(), &CrlNumber::new(2));
    let ci_crl = ci.issue(now() - DAY, now() + 7 * DAY, 1, None).unwrap();
    assert_eq!(ci_crl.crls[0].number(), &CrlNumber::new(1));

    // The register reads back as written.
    let register = Register::load(dir.path(), CrlIssuer::Eum).unwrap();
    assert_eq!(register.entries().len(), 1);
    assert_eq!(
        register.entries()[0].reason,
        Some(RevocationReason::CessationOfOperation)
    );

    // A verifier with the written files refuses exactly the revoked ones.
    let trust = revocation_trust(&pki.ci.certificate);
    for file in first.files.iter().chain(&second.files).chain(&ci_crl.files) {
        let _ = trust.load_crls(&std::fs::read(file).unwrap(), None);
    }
    assert!(matches!(
        verify_euicc_chain(&trust, pki.eum.certificate.der(), victim.der(), now()),
        Err(Error::Revoked {
            cert: CertRole::Euicc,
            ..
        })
    ));
    verify_euicc_chain(
        &trust,
        pki.eum.certificate.der(),
        pki.euiccs[0].certificate.der(),
        now(),
    )
    .unwrap();
    assert!(matches!(
        verify_dp_chain(&trust, pki.dp_pb.certificate.der(), CertRole::DpPb, now()),
        Err(Error::Revoked { .. })
    ));
    verify_dp_chain(
        &trust,
        pki.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();
}

#[test]
fn parts_are_written_and_bundles_load() {
    let pki = common::pki(1);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let ci = CrlAuthority::load(dir.path(), CrlIssuer::Ci).unwrap();
    for serial in [vec![0x11], vec![0x22], vec![0x33]] {
        ci.revoke_serial(serial, date(2026, 1, 1), None).unwrap();
    }
    ci.revoke(&pki.dp_auth.certificate, date(2026, 1, 1), None)
        .unwrap();
    let out = dir.path().join("pub/ci.crl");
    let issued = ci
        .issue(now() - DAY, now() + 7 * DAY, 2, Some(&out))
        .unwrap();
    assert_eq!(
        issued.files,
        [
            dir.path().join("pub/ci.part1.crl"),
            dir.path().join("pub/ci.part2.crl")
        ]
    );
    assert_eq!(issued.crls.iter().map(Crl::len).sum::<usize>(), 4);

    // A PEM bundle of both parts loads as a complete CRL.
    let bundle: String = issued.crls.iter().map(Crl::to_pem).collect();
    let trust = revocation_trust(&pki.ci.certificate);
    let outcomes = trust.load_crls(bundle.as_bytes(), None).unwrap();
    assert!(matches!(
        outcomes.last(),
        Some(LoadOutcome::Loaded { missing_parts, .. }) if missing_parts.is_empty()
    ));
    assert!(matches!(
        verify_dp_chain(
            &trust,
            pki.dp_auth.certificate.der(),
            CertRole::DpAuth,
            now()
        ),
        Err(Error::Revoked { .. })
    ));

    // So does a DER SegmentedCrlList (SEQUENCE OF CertificateList).
    let mut content = Vec::new();
    for crl in &issued.crls {
        content.extend_from_slice(crl.der());
    }
    let mut segmented = vec![0x30, 0x82];
    segmented.extend_from_slice(&u16::try_from(content.len()).unwrap().to_be_bytes());
    segmented.extend_from_slice(&content);
    let parsed = Crl::all_from_bytes(&segmented).unwrap();
    assert_eq!(parsed, issued.crls);
    let trust = revocation_trust(&pki.ci.certificate);
    trust.load_crls(&segmented, None).unwrap();
    verify_dp_chain(&trust, pki.dp_pb.certificate.der(), CertRole::DpPb, now()).unwrap();

    // A sequence with one element that is not a CRL is not a list of CRLs.
    let mut broken = segmented.clone();
    let last = broken.len() - 1;
    broken[last] ^= 0x01; // the signature: still parses
    assert!(Crl::all_from_bytes(&broken).is_ok());
    broken.truncate(last);
    assert!(Crl::all_from_bytes(&broken).is_err());
    // Zero parts and too many are refused.
    assert!(ci.issue(now(), now() + DAY, 0, None).is_err());
    assert!(ci.issue(now(), now() + DAY, 5000, None).is_err());
}

#[test]
fn a_directory_without_keys_or_with_foreign_keys_is_refused() {
    let pki = common::pki(1);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    // The EUM key swapped for the CI's: refused with the file named.
    std::fs::copy(
        dir.path().join("CI/ci.key.pem"),
        dir.path().join("EUM/eum.key.pem"),
    )
    .unwrap();
    let err = CrlAuthority::load(dir.path(), CrlIssuer::Eum).unwrap_err();
    assert!(err.to_string().contains("eum.key.pem"), "{err}");
    std::fs::remove_file(dir.path().join("CI/ci.key.pem")).unwrap();
    assert!(CrlAuthority::load(dir.path(), CrlIssuer::Ci).is_err());
    assert!(CrlAuthority::load(&dir.path().join("nowhere"), CrlIssuer::Ci).is_err());
    // A register with garbage is an error naming the line.
    std::fs::create_dir_all(dir.path().join("CRL")).unwrap();
    std::fs::write(dir.path().join("CRL/eum-revoked.txt"), "zz yesterday\n").unwrap();
    let err = Register::load(dir.path(), CrlIssuer::Eum).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    std::fs::write(dir.path().join("CRL/eum.number"), "many\n").unwrap();
    assert!(ferrosim_pki::crl::register::last_crl_number(dir.path(), CrlIssuer::Eum).is_err());
}
