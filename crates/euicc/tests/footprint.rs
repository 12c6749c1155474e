//! Heap per virtual eUICC, measured with a counting global allocator: each
//! device its own EID, certificate and key, all of one EUM sharing one
//! `SharedIdentity`, two profiles installed on each (the TS.48 fixture
//! personalised with two ICCIDs, bound by the test SM-DP+ keys), one of them
//! enabled. The target: at most 4 KB per device once its notifications are
//! delivered.
//!
//! This binary holds one test so that nothing else allocates while it counts.

#![allow(clippy::unwrap_used)]

mod common;

use std::alloc::System;
use std::sync::{Arc, OnceLock};

use cap::Cap;
use common::{FakeSmdp, es10, fixture, open_isdr, pir_result};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::{encode_der, rsp};
use ferrosim_euicc::footprint::measure_by_drop;
use ferrosim_euicc::{EuiccIdentity, EuiccState, SharedIdentity, VirtualEuicc};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Personalisation, ProfilePackage};
use ferrosim_smdp::metadata::PolicyRules;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Devices per measurement.
const DEVICES: usize = 8;
/// The target of issue 9: heap per device with two profiles installed.
const TARGET_BYTES_PER_DEVICE: usize = 4096;

fn fleet_pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        TestPki::generate(&TestPkiOptions {
            euicc_count: 2 * DEVICES,
            ..TestPkiOptions::default()
        })
        .unwrap()
    })
}

fn package_with_iccid(body: &str) -> Vec<u8> {
    let iccid = Iccid::from_body(body).unwrap();
    ProfilePackage::parse(&fixture().0)
        .unwrap()
        .personalise(&Personalisation::new(iccid))
        .unwrap()
}

/// `DEVICES` devices, numbered from `first`, each with two profiles
/// installed and the first enabled; with `deliver`, their notifications
/// removed as an LPA does once the SM-DP+ acknowledged them.
fn devices(shared: &Arc<SharedIdentity>, first: usize, deliver: bool) -> Vec<VirtualEuicc> {
    let pki = fleet_pki();
    let server = FakeSmdp::new(pki);
    (first..first + DEVICES)
        .map(|n| {
            let issued = &pki.euiccs[n];
            let identity = EuiccIdentity::with_shared(
                Arc::clone(shared),
                issued.certificate.der(),
                Arc::new(issued.signing_key().unwrap()),
            )
            .unwrap();
            let mut card = VirtualEuicc::new(identity, EuiccState::default());
            let ch = open_isdr(&mut card);
            for k in 0..2 {
                let package = package_with_iccid(&format!("8949440000{n:04}{k:04}"));
                let pir = server.install(&mut card, ch, &package, PolicyRules::default());
                assert!(pir_result(&pir).is_ok());
            }
            let iccid = card.state().profiles[0].iccid_bytes();
            let enable = rsp::EnableProfileRequest::new(
                rsp::EnableProfileRequestProfileIdentifier::iccid(rsp::Iccid(
                    FixedOctetString::new(iccid),
                )),
                false,
            );
            es10(&mut card, ch, &encode_der(&enable).unwrap());
            if deliver {
                let seqs: Vec<u64> = card
                    .state()
                    .notifications
                    .iter()
                    .map(|n| n.seq_number)
                    .collect();
                for seq in seqs {
                    let sent = rsp::NotificationSentRequest::new(Integer::from(seq));
                    es10(&mut card, ch, &encode_der(&sent).unwrap());
                }
                assert!(card.state().notifications.is_empty());
            }
            card
        })
        .collect()
}

#[test]
fn heap_per_device_with_two_profiles() {
    let pki = fleet_pki();
    let shared = SharedIdentity::new(
        pki.eum.certificate.der(),
        &[pki.ci.certificate.der().to_vec()],
    )
    .unwrap();
    let live = || ALLOCATOR.allocated();

    let pending = measure_by_drop(devices(&shared, 0, false), live);
    let delivered = measure_by_drop(devices(&shared, DEVICES, true), live);
    println!("notifications pending:   {pending}");
    println!("notifications delivered: {delivered}");
    println!(
        "inline size of a VirtualEuicc: {} bytes",
        std::mem::size_of::<VirtualEuicc>()
    );
    assert_eq!(delivered.profiles, 2 * DEVICES);
    assert_eq!(pending.notifications, 3 * DEVICES, "2 installs, 1 enable");
    assert!(
        delivered.bytes_per_device() <= TARGET_BYTES_PER_DEVICE,
        "{delivered}"
    );
    assert!(
        pending.bytes_per_device() > delivered.bytes_per_device(),
        "stored notifications are counted"
    );
}
