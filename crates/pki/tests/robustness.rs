//! Random, truncated and mutated input never panics: parsing and chain
//! verification return typed errors.

mod common;

use std::sync::OnceLock;

use ferrosim_pki::{CertRole, RspCertificate, TestPki, load, verify_dp_chain, verify_euicc_chain};
use proptest::prelude::*;

fn fixture() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| common::pki(1))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = RspCertificate::from_der(&bytes);
        let _ = load::certificate_from_bytes(&bytes);
        let _ = load::certificates_from_bytes(&bytes);
        let _ = load::key_from_bytes(&bytes);
    }

    #[test]
    fn truncated_certificates_never_panic(which in 0usize..4, cut in 0usize..1024) {
        let pki = fixture();
        let der = [&pki.ci, &pki.eum, &pki.euiccs[0], &pki.dp_tls][which].certificate.der();
        let truncated = &der[..cut.min(der.len().saturating_sub(1))];
        prop_assert!(RspCertificate::from_der(truncated).is_err());
    }

    #[test]
    fn mutated_chains_never_panic(
        which in 0usize..2,
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let pki = fixture();
        let trust = pki.trust_store().unwrap();
        let mut eum = pki.eum.certificate.der().to_vec();
        let mut euicc = pki.euiccs[0].certificate.der().to_vec();
        let target = if which == 0 { &mut eum } else { &mut euicc };
        let i = at.index(target.len());
        let changed = target[i] != value;
        target[i] = value;
        let result = verify_euicc_chain(&trust, &eum, &euicc, common::now());
        if changed {
            // Any change to a signed certificate must be caught (at worst as a bad signature).
            prop_assert!(result.is_err());
        }
        let mut dp = pki.dp_auth.certificate.der().to_vec();
        let j = at.index(dp.len());
        let changed = dp[j] != value;
        dp[j] = value;
        let result = verify_dp_chain(&trust, &dp, CertRole::DpAuth, common::now());
        if changed {
            prop_assert!(result.is_err());
        }
    }

    #[test]
    fn pem_looking_garbage_never_panics(body in "[A-Za-z0-9+/=\n!-]{0,400}", label in "(CERTIFICATE|PRIVATE KEY|EC PRIVATE KEY|X)") {
        let text = format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n");
        let _ = load::certificate_from_bytes(text.as_bytes());
        let _ = load::certificates_from_bytes(text.as_bytes());
        let _ = load::key_from_bytes(text.as_bytes());
    }
}
