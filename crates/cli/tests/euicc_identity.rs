//! `ferrosim euicc init` with identities that are not one-eUICC `pki init`
//! directories: files of another layout named one by one (an SGP.26-like set
//! built here, certificates and keys in several encodings), a file that
//! cannot be used named in the error, and a directory with several eUICCs
//! that needs an explicit choice.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Command, Output};

use ferrosim_pki::{TestPki, TestPkiOptions};

fn ferrosim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosim"))
        .args(args)
        .env("FERROSIM_LOG", "warn")
        .output()
        .expect("running ferrosim")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// SubjectPublicKeyInfo DER of a P-256 point (id-ecPublicKey, prime256v1).
fn spki(point: &[u8]) -> Vec<u8> {
    let prefix = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    [prefix, point.to_vec()].concat()
}

#[test]
fn explicit_files_in_any_encoding() {
    let pki = TestPki::generate(&TestPkiOptions::default()).unwrap();
    let euicc = &pki.euiccs[0];
    let eid = euicc.certificate.eid().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An SGP.26-like set: DER certificates, a SEC1 PEM key, a public key file
    // beside them, and PEM / PKCS#8 DER variants.
    let w = |name: &str, bytes: &[u8]| std::fs::write(d.join(name), bytes).unwrap();
    let key = euicc.signing_key().unwrap();
    let sec1 = key.to_sec1_der().unwrap();
    w("CERT_EUICC_ECDSA_NIST.der", euicc.certificate.der());
    w("CERT_EUM_ECDSA_NIST.der", pki.eum.certificate.der());
    w("CERT_CI_ECDSA_NIST.der", pki.ci.certificate.der());
    w(
        "CERT_CI_ECDSA_NIST.pem",
        pki.ci.certificate_pem().as_bytes(),
    );
    w(
        "CERT_EUICC_ECDSA_NIST.pem",
        euicc.certificate_pem().as_bytes(),
    );
    w(
        "SK_EUICC_ECDSA_NIST.pem",
        pem::encode(&pem::Pem::new("EC PRIVATE KEY", sec1.to_vec())).as_bytes(),
    );
    w("SK_EUICC_ECDSA_NIST.der", &sec1);
    w("SK_EUICC_ECDSA_NIST.pk8", euicc.key_pkcs8_der());
    w(
        "PK_EUICC_ECDSA_NIST.pem",
        pem::encode(&pem::Pem::new(
            "PUBLIC KEY",
            spki(euicc.certificate.public_key_sec1()),
        ))
        .as_bytes(),
    );
    w("garbage.bin", b"\x00\x01not a key at all");

    let init = |cert: &str, key: &str, eum: &str, ci: &str, state: &str| {
        ferrosim(&[
            "euicc",
            "init",
            "--euicc-cert",
            s(&d.join(cert)),
            "--euicc-key",
            s(&d.join(key)),
            "--eum-cert",
            s(&d.join(eum)),
            "--ci-cert",
            s(&d.join(ci)),
            "--state",
            s(&d.join(state)),
        ])
    };
    for (i, (cert, key, ci)) in [
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_CI_ECDSA_NIST.der",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.pem",
            "SK_EUICC_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.pem",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pk8",
            "CERT_CI_ECDSA_NIST.pem",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let state = format!("state{i}.json");
        let out = init(cert, key, "CERT_EUM_ECDSA_NIST.der", ci, &state);
        assert!(out.status.success(), "{cert} {key} {ci}: {}", text(&out));
        assert!(text(&out).contains(&eid), "{}", text(&out));
        assert!(d.join(&state).is_file());
    }

    // Each unusable file is named, with what it was given for.
    for (cert, key, eum, ci, names, why) in [
        (
            "PK_EUICC_ECDSA_NIST.pem",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_EUM_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "PK_EUICC_ECDSA_NIST.pem",
            "eUICC certificate",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "PK_EUICC_ECDSA_NIST.pem",
            "CERT_EUM_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "PK_EUICC_ECDSA_NIST.pem",
            "eUICC private key",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "garbage.bin",
            "CERT_EUM_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "garbage.bin",
            "eUICC private key",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_CI_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "EUM certificate",
        ),
        (
            "CERT_EUM_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_EUM_ECDSA_NIST.der",
            "CERT_CI_ECDSA_NIST.der",
            "CERT_EUM_ECDSA_NIST.der",
            "eUICC certificate",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_EUM_ECDSA_NIST.der",
            "garbage.bin",
            "garbage.bin",
            "CI certificate",
        ),
        (
            "CERT_EUICC_ECDSA_NIST.der",
            "SK_EUICC_ECDSA_NIST.pem",
            "CERT_EUM_ECDSA_NIST.der",
            "missing.pem",
            "missing.pem",
            "CI certificate",
        ),
    ] {
        let out = init(cert, key, eum, ci, "refused.json");
        let t = text(&out);
        assert!(!out.status.success(), "{cert} {key} {eum} {ci}: {t}");
        assert!(
            t.contains(names) && t.contains(why),
            "expected {why} {names}: {t}"
        );
        assert!(!t.contains("panicked"), "{t}");
        assert!(!d.join("refused.json").exists());
    }
    // Another hierarchy's key for this certificate.
    let other = TestPki::generate(&TestPkiOptions::default()).unwrap();
    w("other.key.pem", other.euiccs[0].key_pem().as_bytes());
    let out = init(
        "CERT_EUICC_ECDSA_NIST.der",
        "other.key.pem",
        "CERT_EUM_ECDSA_NIST.der",
        "CERT_CI_ECDSA_NIST.der",
        "refused.json",
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("other.key.pem"), "{}", text(&out));
    assert!(text(&out).contains("does not match"), "{}", text(&out));

    // The SGP.26-like directory is not a `pki init` directory: said so.
    let out = ferrosim(&[
        "euicc",
        "init",
        "--identity",
        s(d),
        "--state",
        s(&d.join("refused.json")),
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--euicc-cert") || text(&out).contains("one by one"),
        "{}",
        text(&out)
    );
    // Incomplete or mixed arguments.
    for args in [
        vec!["euicc", "init", "--state", "x.json"],
        vec!["euicc", "init", "--euicc-cert", "a", "--state", "x.json"],
        vec![
            "euicc",
            "init",
            "--identity",
            "a",
            "--euicc-cert",
            "b",
            "--state",
            "x.json",
        ],
    ] {
        let out = ferrosim(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
}

#[test]
fn several_euiccs_need_an_explicit_choice() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = ferrosim(&["pki", "init", "--out", s(&pki), "--euiccs", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let eids: Vec<String> = TestPki::load_from(&pki)
        .unwrap()
        .eids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(eids.len(), 3);
    let state = dir.path().join("euicc.json");
    let out = ferrosim(&["euicc", "init", "--identity", s(&pki), "--state", s(&state)]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("--eid"), "{t}");
    for eid in &eids {
        assert!(t.contains(eid.as_str()), "{eid} not listed: {t}");
    }
    assert!(!state.exists());
    let out = ferrosim(&[
        "euicc",
        "init",
        "--identity",
        s(&pki),
        "--eid",
        &eids[1],
        "--state",
        s(&state),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&eids[1]));
}
