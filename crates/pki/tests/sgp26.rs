//! Published GSMA SGP.26 test certificates (tests/data/sgp26) read and verify.

mod common;

use common::date;
use ferrosim_pki::{CertRole, Error, KeyUsage, TrustStore, load, verify_dp_chain};

const CI_PEM: &[u8] = include_bytes!("data/sgp26/CERT_CI_ECDSA_NIST.pem");
const CI_DER: &[u8] = include_bytes!("data/sgp26/CERT_CI_ECDSA_NIST.der");
const DP_TLS_PEM: &[u8] = include_bytes!("data/sgp26/CERT_S_SM_DP_TLS_NIST.pem");

#[test]
fn sgp26_ci_parses() {
    let ci = load::certificate_from_bytes(CI_PEM).unwrap();
    assert_eq!(ci, load::certificate_from_bytes(CI_DER).unwrap());
    assert_eq!(ci.role(), Some(CertRole::Ci));
    assert!(ci.is_ca() && ci.is_self_issued());
    assert_eq!(
        ci.subject_key_id().unwrap().to_string(),
        "F54172BDF98A95D65CBEB88A38A1C11D800A85C3"
    );
    assert_eq!(
        ci.key_usage(),
        Some(KeyUsage(KeyUsage::KEY_CERT_SIGN.0 | KeyUsage::CRL_SIGN.0))
    );
    assert_eq!(ci.registered_ids()[0].to_string(), "2.999.1");
    assert_eq!(
        ci.subject().to_string(),
        "C=IT,O=RSPTEST,OU=TESTCERT,CN=Test CI"
    );
    assert_eq!(
        ci.not_after(),
        date(2055, 4, 1) + std::time::Duration::from_secs(8 * 3600 + 27 * 60 + 51)
    );
}

#[test]
fn sgp26_dptls_verifies_against_sgp26_ci() {
    let mut trust = TrustStore::new();
    let ci_id = trust.add_ci_der(CI_DER).unwrap();
    let dp = load::certificate_from_bytes(DP_TLS_PEM).unwrap();

    let v = verify_dp_chain(&trust, dp.der(), CertRole::DpTls, date(2024, 1, 1)).unwrap();
    assert_eq!(v.ci_key_id, ci_id);
    assert_eq!(v.smdp_oid.to_string(), "2.999.10");
    assert_eq!(v.dns_names, vec!["testsmdpplus1.example.com".to_string()]);

    let err = verify_dp_chain(&trust, dp.der(), CertRole::DpTls, date(2025, 1, 1)).unwrap_err();
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
    let err = verify_dp_chain(&trust, dp.der(), CertRole::DpAuth, date(2024, 1, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongPolicy {
                expected: CertRole::DpAuth,
                found: Some(CertRole::DpTls)
            }
        ),
        "{err}"
    );
}
