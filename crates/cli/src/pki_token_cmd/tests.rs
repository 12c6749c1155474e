//! The token-independent steps of `ferrosim pki token-keys`: what the new
//! certificates copy from the old ones, validity rules, the rehearsal, file
//! replacement. The token itself is exercised end to end in
//! `tests/pkcs11_download.rs`.

use std::time::{Duration, SystemTime};

use ferrosim_pki::{TestPki, TestPkiOptions};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn written_pki(options: &TestPkiOptions) -> (tempfile::TempDir, PkiDir) {
    let tmp = tempfile::tempdir().unwrap();
    TestPki::generate(options)
        .unwrap()
        .write_to(tmp.path())
        .unwrap();
    let dir = PkiDir::load(tmp.path()).unwrap();
    (tmp, dir)
}

fn plan(dir: &PkiDir) -> Plan<'_> {
    Plan {
        role: CertRole::DpAuth,
        replaced: &dir.dpauth,
        label: "dpauth",
    }
}

#[test]
fn requests_copy_subject_and_validity_and_rehearse() {
    let options = TestPkiOptions {
        smdp_address: "smdp.example.net".into(),
        ..TestPkiOptions::default()
    };
    let (_tmp, dir) = written_pki(&options);
    let oid = Oid::parse("2.999.77").unwrap();
    let now = SystemTime::now();
    let plans = [
        plan(&dir),
        Plan {
            role: CertRole::DpPb,
            replaced: &dir.dppb,
            label: "dppb",
        },
    ];
    let requests = rehearse(&dir, &plans, &oid, None, now).unwrap();
    let old = &dir.dpauth.certificate;
    assert_eq!(requests[0].common_name, "smdp.example.net");
    assert_eq!(
        requests[0].organization.as_deref(),
        Some("ferrosim Test SM-DP+")
    );
    assert_eq!(requests[0].registered_id.as_ref(), Some(&oid));
    assert_eq!(requests[1].role, CertRole::DpPb);
    assert_eq!(
        (requests[0].not_before, requests[0].not_after),
        (old.not_before(), old.not_after())
    );

    // Asked-for validity never outlives the CI.
    let long = plan(&dir)
        .request(&oid, Some(36_500), &dir.ci, now)
        .unwrap();
    assert_eq!(long.not_after, dir.ci.not_after());
    let short = plan(&dir).request(&oid, Some(30), &dir.ci, now).unwrap();
    assert!(short.not_after < dir.ci.not_after() && short.not_before < now);
}

#[test]
fn expired_certificates_need_a_new_validity() {
    let past = SystemTime::now() - DAY * 30;
    let options = TestPkiOptions {
        not_before: past,
        not_after: past + DAY,
        ..TestPkiOptions::default()
    };
    let (_tmp, dir) = written_pki(&options);
    let oid = Oid::parse("2.999.10").unwrap();
    let err = plan(&dir)
        .request(&oid, None, &dir.ci, SystemTime::now())
        .unwrap_err();
    assert!(err.to_string().contains("--validity-days"), "{err}");
    // With a new validity the request stops at the (expired) CI's end, and
    // the rehearsal refuses it before any key is generated.
    let plans = [plan(&dir)];
    let err = rehearse(&dir, &plans, &oid, Some(30), SystemTime::now()).unwrap_err();
    assert!(format!("{err:#}").contains("would not verify"), "{err:#}");
}

#[test]
fn a_foreign_ci_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    TestPki::generate(&TestPkiOptions::default())
        .unwrap()
        .write_to(tmp.path())
        .unwrap();
    let other = tempfile::tempdir().unwrap();
    TestPki::generate(&TestPkiOptions::default())
        .unwrap()
        .write_to(other.path())
        .unwrap();
    std::fs::copy(
        other.path().join("CI/ci.key.pem"),
        tmp.path().join("CI/ci.key.pem"),
    )
    .unwrap();
    let err = PkiDir::load(tmp.path()).err().unwrap();
    assert!(err.to_string().contains("is not the key of"), "{err}");
    assert!(PkiDir::load(&tmp.path().join("missing")).is_err());
}

#[test]
fn install_replaces_certificates_and_removes_keys() {
    let (tmp, dir) = written_pki(&TestPkiOptions::default());
    let plans = [plan(&dir)];
    // A certificate from another hierarchy stands in for the new one.
    let other = TestPki::generate(&TestPkiOptions::default()).unwrap();
    let new = other.dp_auth.certificate.clone();
    let removed = install(&plans, std::slice::from_ref(&new)).unwrap();
    assert_eq!(removed, vec![tmp.path().join("DPauth/dpauth.key.pem")]);
    let written = load::certificate_from_file(&tmp.path().join("DPauth/dpauth.pem")).unwrap();
    assert_eq!(written.der(), new.der());
    assert!(!tmp.path().join("DPauth/dpauth.pem.new").exists());
    // Running again finds no key to remove, and says so by removing nothing.
    assert!(install(&plans, &[new]).unwrap().is_empty());
}

#[test]
fn labels_are_checked() {
    assert_eq!(parse_label("dpauth").unwrap(), "dpauth");
    assert!(parse_label("").is_err());
    assert!(parse_label(&"x".repeat(MAX_LABEL_LEN + 1)).is_err());
    assert!(parse_label("dp\nauth").is_err());
}
