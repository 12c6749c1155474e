//! The IPA in memory, end to end: the eIM signs and queues eUICC packages,
//! one IPA session fetches each (ASN.1 binding bytes through an eIM in the
//! process), runs it on a virtual eUICC (eIM signature verified, result
//! signed), returns the result (verified and stored by the eIM) and handles
//! the acknowledgement. Four EC operations per package, as in the field.
//!
//! `cargo bench -p ferrosim-ipa` → packages per second = 16 / time per
//! iteration.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_eim::relay::NoRelay;
use ferrosim_eim::{
    AssociationRequest, Counter, Eim, EimConfig, EimId, MemEimStore, Operation, PackageContent,
    Timestamp,
};
use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_ipa::driver::inprocess::InProcessEim;
use ferrosim_ipa::driver::{MemoryStore, run_session};
use ferrosim_ipa::{Ipa, IpaConfig, PendingState};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::{Es10, Es10Options};
use ferrosim_pki::{TestPki, TestPkiOptions};
use rand::SeedableRng;
use rand::rngs::StdRng;

const PACKAGES: u64 = 16;

fn bench(c: &mut Criterion) {
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        ..TestPkiOptions::default()
    })
    .unwrap();
    let issued = &pki.euiccs[0];
    let eid = issued.certificate.eid().unwrap();
    let shared = SharedIdentity::new(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
    )
    .unwrap();
    let key: Arc<dyn KeySource> = Arc::new(issued.signing_key().unwrap());
    let identity = EuiccIdentity::with_shared(shared, issued.certificate.der(), key).unwrap();
    let mut card = VirtualEuicc::new(identity, EuiccState::default());
    let eim_key = SoftwareKey::generate().unwrap();
    let point = eim_key.verifying_key().unwrap().to_uncompressed().unwrap();
    let eim = Eim::new(
        MemEimStore::new(),
        EimConfig {
            eim_id: EimId::new("eim.bench").unwrap(),
            key: Arc::new(eim_key),
            trust: pki.trust_store().unwrap(),
        },
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(eim.associate(
            AssociationRequest {
                eid,
                eum_certificate: pki.eum.certificate.der().to_vec(),
                euicc_certificate: issued.certificate.der().to_vec(),
                counter: Counter::new(0).unwrap(),
                association_token: Some(1),
                euicc_version: ferrosim_asn1::esipa::Sgp32Version::V1_2,
                emulated: false,
            },
            Timestamp::now(),
        ))
        .unwrap();
    let mut spki = hex::decode("3059301306072A8648CE3D020106082A8648CE3D030107034200").unwrap();
    spki.extend_from_slice(&point);
    let add = encode_der(&sgp32::AddInitialEimRequest::new(vec![
        sgp32::EimConfigurationData::new(
            "eim.bench".into(),
            None,
            None,
            Some(Integer::from(0)),
            Some(Integer::from(1)),
            Some(sgp32::EimConfigurationDataEimPublicKeyData::eimPublicKey(
                decode_der(&spki).unwrap(),
            )),
            None,
            None,
            None,
            None,
            None,
        ),
    ]))
    .unwrap();
    let mut es10 = Es10::open(
        move |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    es10.transmit_es10(&add).unwrap();
    let client = InProcessEim {
        eim: eim.clone(),
        relay: NoRelay,
    };
    let direct =
        HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::InsecureAcceptAnyCertificate)).unwrap();
    let config = IpaConfig {
        eid: Some(eid),
        deliver_notifications: false,
        max_items_per_session: PACKAGES as usize,
        ..IpaConfig::default()
    };
    let mut ipa = Ipa::new(
        config,
        es10.link(),
        PendingState::default(),
        StdRng::seed_from_u64(1),
        Timestamp::now(),
    );
    let mut rng = StdRng::seed_from_u64(2);
    let mut store = MemoryStore::default();
    let mut group = c.benchmark_group("ipa");
    group.throughput(Throughput::Elements(PACKAGES));
    group.sample_size(20);
    group.bench_function("packages_in_memory", |b| {
        b.iter_custom(|iterations| {
            let start = Instant::now();
            for _ in 0..iterations {
                runtime.block_on(async {
                    for _ in 0..PACKAGES {
                        eim.enqueue_package(
                            &eid,
                            &PackageContent::Psmos(vec![Operation::ListProfiles]),
                            &mut rng,
                            Timestamp::now(),
                        )
                        .await
                        .unwrap();
                    }
                    let report =
                        run_session(&mut ipa, es10.transport_mut(), &client, &direct, &mut store)
                            .await
                            .unwrap();
                    assert_eq!(report.items.len() as u64, PACKAGES);
                });
            }
            start.elapsed()
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
