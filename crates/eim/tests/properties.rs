//! Properties of the eIM over random runs: operators queue packages while a
//! device polls, runs packages, and its answers get lost or sent twice.
//! Whatever happens, counters are used once and in increasing order, a
//! package never runs twice, every stored result is verified and stored once,
//! and a sequence number is acknowledged only once its result is stored.
//! Also: two instances racing for one device's counter.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;

use common::{Lab, now, package_of};
use ferrosim_asn1::esipa::Sgp32Version::V1_2;
use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_eim::steps::enqueue::enqueue_package;
use ferrosim_eim::{EimStore, Operation, PackageContent, StoreError, Trust};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Action {
    /// The operator queues a package.
    Enqueue,
    /// The IPA polls; the eUICC runs what it gets (if it has not yet).
    Poll,
    /// The IPA returns the last result; the answer may get lost.
    Provide { lose_answer: bool },
    /// The IPA returns an older result again.
    Resend(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        2 => Just(Action::Enqueue),
        3 => Just(Action::Poll),
        3 => any::<bool>().prop_map(|lose_answer| Action::Provide { lose_answer }),
        1 => (0usize..8).prop_map(Action::Resend),
    ]
}

fn acknowledged(answer: &[u8]) -> Vec<i64> {
    match decode_der::<sgp32::EsipaMessageFromEimToIpa>(answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
            sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(a),
        ) => {
            a.0.iter()
                .map(|s| i64::try_from(s.0.clone()).unwrap())
                .collect()
        }
        _ => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn runs_keep_the_invariants(actions in proptest::collection::vec(action(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let mut lab = Lab::new();
            let mut device = lab.device(0, V1_2).await;
            let mut results: Vec<Vec<u8>> = Vec::new();
            let mut ran_counters = Vec::new();
            let mut acked = BTreeSet::new();
            for action in actions {
                match action {
                    Action::Enqueue => {
                        let content = PackageContent::Psmos(vec![Operation::GetRat]);
                        lab.eim.enqueue_package(&device.eid, &content, &mut lab.rng, now()).await.unwrap();
                    }
                    Action::Poll => {
                        let answer = lab.send(&device.get_eim_package()).await;
                        let message: sgp32::EsipaMessageFromEimToIpa = decode_der(&answer).unwrap();
                        if let sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
                            sgp32::GetEimPackageResponse::euiccPackageRequest(r),
                        ) = message {
                            let counter = u32::try_from(r.euicc_package_signed.counter_value.clone()).unwrap();
                            // The eUICC runs a counter once (it answers replayError
                            // otherwise: here, it keeps its earlier result).
                            if counter > device.last_counter {
                                let ran = device.run(&package_of(&answer));
                                ran_counters.push(counter);
                                results.push(ran.result);
                            }
                        }
                    }
                    Action::Provide { lose_answer } => {
                        if let Some(result) = results.last() {
                            let answer = lab.send(&device.provide(result)).await;
                            if !lose_answer {
                                acked.extend(acknowledged(&answer));
                            }
                        }
                    }
                    Action::Resend(i) => {
                        if let Some(result) = results.get(i) {
                            acked.extend(acknowledged(&lab.send(&device.provide(result)).await));
                        }
                    }
                }
                // After every step: what is stored is consistent.
                let stored = lab.eim.store().results(&device.eid).await.unwrap();
                let stored_seqs: BTreeSet<i64> = stored.iter().filter_map(|r| r.seq_number).collect();
                prop_assert_eq!(stored_seqs.len(), stored.len(), "one result per sequence number");
                prop_assert!(acked.is_subset(&stored_seqs), "acknowledged only once stored");
                let counters: BTreeSet<u32> = stored.iter().filter_map(|r| r.counter.map(|c| c.get())).collect();
                prop_assert_eq!(counters.len(), stored.len(), "one result per package");
                prop_assert!(stored.iter().all(|r| r.trust == Some(Trust::Verified)));
            }
            prop_assert!(ran_counters.windows(2).all(|w| w[0] < w[1]), "counters strictly increase: {:?}", ran_counters);
            let record = lab.eim.device(&device.eid).await.unwrap();
            let open: BTreeSet<u32> = record.queue.iter().filter_map(|i| i.counter.map(|c| c.get())).collect();
            let stored = lab.eim.store().results(&device.eid).await.unwrap();
            prop_assert!(stored.iter().all(|r| !open.contains(&r.counter.unwrap().get())), "a stored package is no longer open");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn two_instances_never_issue_one_counter_twice() {
    let mut lab = Lab::new();
    let device = lab.device(1, V1_2).await;
    let store = lab.eim.store().clone();
    let key = lab.eim.config().key.clone();
    let content = PackageContent::Psmos(vec![Operation::ListProfiles]);
    // Both instances read the record at the same version and sign with the
    // same next counter; only the first commit wins.
    let read = store.device(&device.eid).await.unwrap().unwrap();
    let first = enqueue_package(&read, &content, key.as_ref(), &mut lab.rng, now()).unwrap();
    let second = enqueue_package(&read, &content, key.as_ref(), &mut lab.rng, now()).unwrap();
    assert_eq!(first.answer.counter, second.answer.counter);
    store.commit(first.changes).await.unwrap();
    assert!(matches!(
        store.commit(second.changes).await,
        Err(StoreError::Stale)
    ));
    // The driver of the loser runs the step again on the fresh record.
    let retried = lab
        .eim
        .enqueue_package(&device.eid, &content, &mut lab.rng, now())
        .await
        .unwrap();
    assert_eq!(
        retried.counter.unwrap().get(),
        first.answer.counter.unwrap().get() + 1
    );
    let record = lab.eim.device(&device.eid).await.unwrap();
    let counters: Vec<u32> = record
        .queue
        .iter()
        .map(|i| i.counter.unwrap().get())
        .collect();
    assert_eq!(counters, vec![11, 12]);
}
