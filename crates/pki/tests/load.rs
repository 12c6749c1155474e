//! Writing and reading hierarchies, and loading certificates and keys from PEM and DER.

mod common;

use common::{now, pki};
use ferrosim_crypto::key::KeySource;
use ferrosim_pki::generate::layout;
use ferrosim_pki::{CertRole, Error, TestPki, load, verify_dp_chain, verify_euicc_chain};

#[test]
fn write_and_load_round_trip() {
    let pki = pki(2);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();

    let loaded = TestPki::load_from(dir.path()).unwrap();
    assert_eq!(loaded.ci.certificate, pki.ci.certificate);
    assert_eq!(loaded.eum.certificate, pki.eum.certificate);
    assert_eq!(loaded.dp_auth.certificate, pki.dp_auth.certificate);
    assert_eq!(loaded.dp_pb.certificate, pki.dp_pb.certificate);
    assert_eq!(loaded.dp_tls.certificate, pki.dp_tls.certificate);
    assert_eq!(loaded.eids(), pki.eids());
    assert_eq!(loaded.dp_pb.key_pkcs8_der(), pki.dp_pb.key_pkcs8_der());

    let trust = loaded.trust_store().unwrap();
    for euicc in &loaded.euiccs {
        verify_euicc_chain(
            &trust,
            loaded.eum.certificate.der(),
            euicc.certificate.der(),
            now(),
        )
        .unwrap();
    }
    verify_dp_chain(
        &trust,
        loaded.dp_auth.certificate.der(),
        CertRole::DpAuth,
        now(),
    )
    .unwrap();

    let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
    assert!(readme.contains("89049032"), "{readme}");
    assert!(readme.contains(&pki.ci.certificate.subject_key_id().unwrap().to_string()));
    for eid in pki.eids() {
        assert!(
            dir.path()
                .join("eUICC")
                .join(format!("{eid}.pem"))
                .is_file()
        );
        assert!(readme.contains(&eid.to_string()));
    }
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let pki = pki(1);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let (cert, key) = layout(dir.path(), CertRole::DpAuth).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_ne!(mode(&cert) & 0o044, 0, "certificates stay readable");
    let eid = pki.eids()[0];
    assert_eq!(
        mode(&dir.path().join("eUICC").join(format!("{eid}.key.pem"))),
        0o600
    );
}

#[test]
fn existing_hierarchy_is_not_overwritten_unless_asked() {
    let first = pki(3);
    let dir = tempfile::tempdir().unwrap();
    first.write_to(dir.path()).unwrap();
    let second = TestPki::generate(&common::options(1)).unwrap();
    let err = second.write_to(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    // Still the first one.
    assert_eq!(
        TestPki::load_from(dir.path()).unwrap().ci.certificate,
        first.ci.certificate
    );

    second.write_to_replacing(dir.path()).unwrap();
    let loaded = TestPki::load_from(dir.path()).unwrap();
    assert_eq!(loaded.ci.certificate, second.ci.certificate);
    assert_eq!(
        loaded.euiccs.len(),
        1,
        "eUICCs of the old hierarchy are removed"
    );
}

#[test]
fn loading_a_damaged_hierarchy_names_the_problem() {
    let pki = pki(1);
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let (dpauth, dpauth_key) = layout(dir.path(), CertRole::DpAuth).unwrap();
    let (_, dppb_key) = layout(dir.path(), CertRole::DpPb).unwrap();

    // A key that belongs to another certificate.
    std::fs::copy(&dppb_key, &dpauth_key).unwrap();
    assert!(matches!(
        TestPki::load_from(dir.path()),
        Err(Error::KeyMismatch)
    ));

    // A certificate of the wrong role in a role's place.
    let (dppb, _) = layout(dir.path(), CertRole::DpPb).unwrap();
    std::fs::copy(&dppb, &dpauth).unwrap();
    let err = TestPki::load_from(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::DpAuth,
                ..
            }
        ),
        "{err}"
    );

    // A missing file.
    std::fs::remove_file(&dpauth).unwrap();
    assert!(matches!(
        TestPki::load_from(dir.path()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn certificates_load_from_pem_and_der() {
    let pki = pki(1);
    let cert = &pki.eum.certificate;
    let pem = pki.eum.certificate_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(&load::certificate_from_bytes(pem.as_bytes()).unwrap(), cert);
    assert_eq!(&load::certificate_from_bytes(cert.der()).unwrap(), cert);

    // Text around the block (openssl x509 -text output) is ignored.
    let noisy = format!("Certificate:\n    Data: ...\n{pem}\ntrailing words\n");
    assert_eq!(
        &load::certificate_from_bytes(noisy.as_bytes()).unwrap(),
        cert
    );

    // A bundle holds several.
    let bundle = format!(
        "{}{}",
        pki.ci.certificate_pem(),
        pki.dp_tls.certificate_pem()
    );
    let all = load::certificates_from_bytes(bundle.as_bytes()).unwrap();
    assert_eq!(
        all,
        vec![pki.ci.certificate.clone(), pki.dp_tls.certificate.clone()]
    );

    let dir = tempfile::tempdir().unwrap();
    let der_path = dir.path().join("eum.der");
    std::fs::write(&der_path, cert.der()).unwrap();
    assert_eq!(&load::certificate_from_file(&der_path).unwrap(), cert);
    assert_eq!(load::certificates_from_file(&der_path).unwrap().len(), 1);
}

#[test]
fn keys_load_from_pem_and_der() {
    let pki = pki(1);
    let issued = &pki.dp_auth;
    let expected = issued.certificate.public_key_sec1();

    let from_pem = load::key_from_bytes(issued.key_pem().as_bytes()).unwrap();
    assert_eq!(from_pem.public_key_sec1(), expected);
    let from_der = load::key_from_bytes(issued.key_pkcs8_der()).unwrap();
    assert_eq!(from_der.public_key_sec1(), expected);
    // SEC1 ("EC PRIVATE KEY"), as openssl ecparam writes.
    let sec1 = from_der.to_sec1_der().unwrap();
    let sec1_pem = pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.to_vec()));
    assert_eq!(
        load::key_from_bytes(sec1_pem.as_bytes())
            .unwrap()
            .public_key_sec1(),
        expected
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    std::fs::write(&path, issued.key_pem().as_bytes()).unwrap();
    assert_eq!(
        load::key_from_file(&path).unwrap().public_key_sec1(),
        expected
    );
}

#[test]
fn garbage_gives_typed_errors() {
    assert!(matches!(
        load::certificate_from_bytes(b""),
        Err(Error::Malformed { .. })
    ));
    assert!(matches!(
        load::certificate_from_bytes(b"hello"),
        Err(Error::Malformed { .. })
    ));
    let key_only = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(matches!(
        load::certificate_from_bytes(key_only.as_bytes()),
        Err(Error::NoPemBlock { .. })
    ));
    let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(load::certificate_from_bytes(broken.as_bytes()).is_err());
    assert!(matches!(
        load::key_from_bytes(b"\x30\x03\x02\x01\x00"),
        Err(Error::Key(_))
    ));
    assert!(matches!(
        load::key_from_bytes(b"-----BEGIN \xff"),
        Err(Error::Pem(_) | Error::Key(_))
    ));
    let missing = std::path::Path::new("/nonexistent/ferrosim/ci.pem");
    assert!(matches!(
        load::certificate_from_file(missing),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        load::key_from_file(missing),
        Err(Error::Io { .. })
    ));
}
