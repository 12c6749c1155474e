//! Cost of the certificate work done on every download: the SM-DP+ verifying
//! CI -> EUM -> eUICC (EUM step cached after the first call), the eUICC
//! verifying DPauth / DPpb, and parsing alone.
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosim_pki::generate::TestPkiOptions;
use ferrosim_pki::{CertRole, RspCertificate, TestPki, verify_dp_chain, verify_euicc_chain};

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let options = TestPkiOptions {
        euicc_count: 1,
        not_before: now - Duration::from_secs(86_400),
        not_after: now + Duration::from_secs(86_400 * 365),
        ..TestPkiOptions::default()
    };
    let pki = TestPki::generate(&options).unwrap();
    let trust = pki.trust_store().unwrap();
    let eum = pki.eum.certificate.der().to_vec();
    let euicc = pki.euiccs[0].certificate.der().to_vec();
    let dpauth = pki.dp_auth.certificate.der().to_vec();

    c.bench_function("parse eUICC certificate", |b| {
        b.iter(|| RspCertificate::from_der(&euicc).unwrap())
    });
    c.bench_function("verify eUICC chain (EUM cached)", |b| {
        b.iter(|| verify_euicc_chain(&trust, &eum, &euicc, now).unwrap())
    });
    c.bench_function("verify eUICC chain (cold trust store)", |b| {
        b.iter(|| {
            let cold = trust.clone();
            verify_euicc_chain(&cold, &eum, &euicc, now).unwrap()
        })
    });
    c.bench_function("verify DPauth", |b| {
        b.iter(|| verify_dp_chain(&trust, &dpauth, CertRole::DpAuth, now).unwrap())
    });
    c.bench_function("generate hierarchy with 1 eUICC", |b| {
        b.iter(|| TestPki::generate(&options).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
