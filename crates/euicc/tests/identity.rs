//! The eUICC identity: from a `ferrosim pki init` directory, from PEM/DER
//! files, from parts in memory, and the checks that they belong together.

#![allow(clippy::unwrap_used)]

mod common;

use common::{es10, open_isdr, pki};
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};

#[test]
fn identity_from_a_pki_directory_and_from_files() {
    let dir = tempfile::tempdir().unwrap();
    pki().write_to(dir.path()).unwrap();
    // Several eUICCs and none chosen: an error listing them.
    match EuiccIdentity::load_from_dir(dir.path(), None) {
        Err(ferrosim_euicc::Error::SeveralEuiccs { eids, .. }) => assert_eq!(
            eids,
            pki()
                .eids()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        ),
        other => panic!("expected SeveralEuiccs, got {other:?}"),
    }
    let first_eid = pki().eids()[0].to_string();
    let first = EuiccIdentity::load_from_dir(dir.path(), Some(&first_eid)).unwrap();
    assert_eq!(first.eid(), &pki().eids()[0]);
    let second_eid = pki().eids()[1].to_string();
    let second = EuiccIdentity::load_from_dir(dir.path(), Some(&second_eid)).unwrap();
    assert_eq!(second.eid().to_string(), second_eid);
    assert_eq!(
        second.ci_key_ids_for_signing(),
        second.ci_key_ids_for_verification()
    );
    // Unknown or invalid EIDs.
    let mut absent = pki().eids()[0].to_string();
    absent.replace_range(20..22, "77");
    let absent = ferrosim_pki::Eid::from_body(&absent[..30])
        .unwrap()
        .to_string();
    assert!(matches!(
        EuiccIdentity::load_from_dir(dir.path(), Some(&absent)),
        Err(ferrosim_euicc::Error::Layout { .. })
    ));
    assert!(matches!(
        EuiccIdentity::load_from_dir(dir.path(), Some("1234")),
        Err(ferrosim_euicc::Error::Pki { .. })
    ));
    assert!(EuiccIdentity::load_from_dir(&dir.path().join("nothing"), None).is_err());

    // Plain files work too (the same PEM files here).
    let euicc_dir = dir.path().join("eUICC");
    let eid = pki().eids()[0].to_string();
    let files = EuiccIdentity::load_files(
        &euicc_dir.join(format!("{eid}.pem")),
        &euicc_dir.join(format!("{eid}.key.pem")),
        &dir.path().join("EUM/eum.pem"),
        &[dir.path().join("CI/ci.pem")],
    )
    .unwrap();
    assert_eq!(files.eid(), first.eid());
    // The card built from it works.
    let mut c = VirtualEuicc::new(files, EuiccState::default());
    let ch = open_isdr(&mut c);
    assert_eq!(
        es10(&mut c, ch, &[0xBF, 0x3E, 0x03, 0x5C, 0x01, 0x5A]).len(),
        21
    );
}

#[test]
fn identity_parts_must_belong_together() {
    let p = pki();
    let other = common::other_pki();
    let key =
        |issued: &ferrosim_pki::Issued| -> std::sync::Arc<dyn ferrosim_crypto::key::KeySource> {
            std::sync::Arc::new(issued.signing_key().unwrap())
        };
    let ci = vec![p.ci.certificate.der().to_vec()];
    use ferrosim_euicc::Error as E;
    // The key of another eUICC.
    let r = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[1]),
        p.eum.certificate.der(),
        ci.clone(),
    );
    assert!(matches!(r, Err(E::KeyMismatch)));
    // Certificates in the wrong roles.
    let r = EuiccIdentity::from_parts(
        p.eum.certificate.der(),
        key(&p.eum),
        p.eum.certificate.der(),
        ci.clone(),
    );
    assert!(matches!(r, Err(E::WrongRole { .. })));
    let r = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[0]),
        p.ci.certificate.der(),
        ci.clone(),
    );
    assert!(matches!(r, Err(E::WrongRole { .. })));
    // An EUM that did not issue this eUICC.
    let r = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[0]),
        other.eum.certificate.der(),
        vec![other.ci.certificate.der().to_vec()],
    );
    assert!(matches!(r, Err(E::Chain(_))));
    // The EUM's CI missing from the trusted CIs.
    let r = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[0]),
        p.eum.certificate.der(),
        vec![other.ci.certificate.der().to_vec()],
    );
    assert!(matches!(r, Err(E::SigningCiMissing(_))));
    let r = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[0]),
        p.eum.certificate.der(),
        vec![],
    );
    assert!(matches!(r, Err(E::NoCi)));
    // Garbage.
    let r = EuiccIdentity::from_parts(
        [0x30, 0x00],
        key(&p.euiccs[0]),
        p.eum.certificate.der(),
        ci.clone(),
    );
    assert!(matches!(r, Err(E::Pki { .. })));
    // Two CIs trusted: both listed for verification.
    let both = EuiccIdentity::from_parts(
        p.euiccs[0].certificate.der(),
        key(&p.euiccs[0]),
        p.eum.certificate.der(),
        vec![
            p.ci.certificate.der().to_vec(),
            other.ci.certificate.der().to_vec(),
        ],
    )
    .unwrap();
    assert_eq!(both.ci_key_ids_for_verification().len(), 2);
    assert_eq!(both.ci_key_ids_for_signing().len(), 1);
}

/// Many eUICCs share one `SharedIdentity`; a device's own certificate must
/// come from that EUM.
#[test]
fn identities_share_their_manufacturer_part() {
    let pki = pki();
    let shared = ferrosim_euicc::SharedIdentity::new(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
    )
    .unwrap();
    let ids: Vec<EuiccIdentity> = pki
        .euiccs
        .iter()
        .map(|e| {
            EuiccIdentity::with_shared(
                std::sync::Arc::clone(&shared),
                e.certificate.der(),
                std::sync::Arc::new(e.signing_key().unwrap()),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(std::sync::Arc::ptr_eq(ids[0].shared(), ids[1].shared()));
    assert_ne!(ids[0].eid(), ids[1].eid());
    assert_eq!(
        ids[1].euicc_certificate().unwrap().der(),
        pki.euiccs[1].certificate.der()
    );
    // A key that is not the certificate's, or a certificate of another EUM.
    let r = EuiccIdentity::with_shared(
        std::sync::Arc::clone(&shared),
        pki.euiccs[0].certificate.der(),
        std::sync::Arc::new(pki.euiccs[1].signing_key().unwrap()),
    );
    assert!(matches!(r, Err(ferrosim_euicc::Error::KeyMismatch)));
    let other = common::other_pki();
    let r = EuiccIdentity::with_shared(
        shared,
        other.euiccs[0].certificate.der(),
        std::sync::Arc::new(other.euiccs[0].signing_key().unwrap()),
    );
    assert!(matches!(r, Err(ferrosim_euicc::Error::Chain(_))));
}

/// SM-DP+ certificates verified once are reused while valid; a cached
/// certificate is still judged at the time given and for the role asked.
#[test]
fn verified_smdp_certificates_are_cached_but_judged_each_time() {
    use ferrosim_pki::{CertRole, Error as P};
    let pki = pki();
    let shared = ferrosim_euicc::SharedIdentity::new(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
    )
    .unwrap();
    let dpauth = pki.dp_auth.certificate.der();
    let now = std::time::SystemTime::now();
    let first = shared.verify_dp(dpauth, CertRole::DpAuth, now).unwrap();
    let again = shared.verify_dp(dpauth, CertRole::DpAuth, now).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "the second is cached"
    );
    // The same bytes for another role are verified (and refused) afresh.
    assert!(matches!(
        shared.verify_dp(dpauth, CertRole::DpPb, now),
        Err(P::WrongPolicy { .. })
    ));
    // After the certificate's end of validity the cache does not answer.
    let later = pki.dp_auth.certificate.not_after() + std::time::Duration::from_secs(1);
    assert!(matches!(
        shared.verify_dp(dpauth, CertRole::DpAuth, later),
        Err(P::Expired { .. })
    ));
    // Nor before its start.
    let earlier = pki.dp_auth.certificate.not_before() - std::time::Duration::from_secs(1);
    assert!(shared.verify_dp(dpauth, CertRole::DpAuth, earlier).is_err());
    // Garbage is refused, and not cached.
    for bad in [&[][..], &[0x30, 0x00], &dpauth[..dpauth.len() - 1]] {
        assert!(shared.verify_dp(bad, CertRole::DpAuth, now).is_err());
    }
}
