//! A ProfileRollback the device ran on its own, delivered to the eIM: after
//! an enable with rollbackFlag whose result the eIM stored, the eUICC's
//! signed `rollbackResult` (with the enabling package's counter value and
//! eimTransactionId, a new sequence number) is verified, stored once as a
//! result of kind `rollback`, acknowledged, and the device's profiles go
//! back; sent again it is acknowledged again and not stored twice. Refused:
//! a tampered one, a second different one, one for a package without
//! rollbackFlag, and one after the eUICC ran a later package.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Device, Lab, Ran, iccid, now, package_of};
use ferrosim_asn1::esipa::Sgp32Version::{self, V1_0, V1_2};
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::sgp32;
use ferrosim_asn1::tlv::Tlv;
use ferrosim_eim::{EimStore, ItemKind, ItemOutcome, Operation, PackageContent, Trust};

/// The sequence numbers a ProvideEimPackageResultResponse acknowledges
/// (`BF50 { BF53 { 80 seq ... } }` in v1.2 and v1.0); none for an empty
/// answer. Any other answer fails the test.
fn acks(answer: &[u8]) -> Vec<i64> {
    let outer = Tlv::parse_exact(answer).unwrap();
    assert_eq!(outer.tag, 0xBF50, "not a provide answer: {answer:02X?}");
    let Some(list) = outer.find(0xBF53).unwrap() else {
        return Vec::new();
    };
    list.children()
        .map(|seq| {
            let seq = seq.unwrap();
            seq.value.iter().fold(0i64, |n, b| (n << 8) | i64::from(*b))
        })
        .collect()
}

/// Queues `operation`, lets the device run it and returns its result to
/// the eIM (acknowledged); what the eUICC did.
async fn run(lab: &mut Lab, device: &mut Device, operation: Operation) -> Ran {
    lab.eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![operation]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    let package = package_of(&lab.send(&device.get_eim_package()).await);
    let ran = device.run(&package);
    let answer = lab.send(&device.provide(&ran.result)).await;
    assert_eq!(acks(&answer), vec![device.seq]);
    ran
}

/// The eUICC's signed result of a ProfileRollback back from the package `ran`.
fn rollback_result(device: &mut Device, ran: &Ran) -> Vec<u8> {
    device.signed_result(
        &ran.signed,
        vec![sgp32::EuiccResultData::rollbackResult(
            sgp32::RollbackProfileResult(Integer::from(0)),
        )],
        &ran.eim_signature,
    )
}

async fn enabled(lab: &Lab, device: &Device) -> Vec<(String, bool)> {
    let record = lab.eim.device(&device.eid).await.unwrap();
    let mut profiles: Vec<(String, bool)> = record
        .profiles
        .profiles
        .iter()
        .map(|p| (p.iccid.as_str().to_owned(), p.enabled))
        .collect();
    profiles.sort();
    profiles
}

#[tokio::test]
async fn a_delivered_rollback_result_is_verified_stored_once_and_applied() {
    for (n, version) in [V1_2, V1_0].into_iter().enumerate() {
        accepted(n, version).await;
    }
}

async fn accepted(n: usize, version: Sgp32Version) {
    let mut lab = Lab::new();
    let mut device = lab.device(n, version).await;
    run(
        &mut lab,
        &mut device,
        Operation::Enable {
            iccid: iccid(1),
            rollback: false,
        },
    )
    .await;
    let enabling = run(
        &mut lab,
        &mut device,
        Operation::Enable {
            iccid: iccid(2),
            rollback: true,
        },
    )
    .await;
    let p = |i: u8| iccid(i).as_str().to_owned();
    assert_eq!(
        enabled(&lab, &device).await,
        vec![(p(1), false), (p(2), true)]
    );

    // Tampered (its signature no longer matches): refused, nothing changes.
    let good = rollback_result(&mut device, &enabling);
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        acks(&lab.send(&device.provide(&tampered)).await),
        Vec::<i64>::new()
    );
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 2);

    // The real one: acknowledged, stored, the profiles go back.
    let seq = device.seq;
    assert_eq!(
        acks(&lab.send(&device.provide(&good)).await),
        vec![seq],
        "{version}"
    );
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results.len(), 3, "{version}");
    let stored = &results[2];
    assert_eq!(stored.kind, ItemKind::Rollback);
    assert_eq!(stored.counter, results[1].counter, "the enabling package's");
    assert_eq!(stored.seq_number, Some(seq));
    assert_eq!(stored.trust, Some(Trust::Verified));
    assert_eq!(stored.outcome, ItemOutcome::Executed(vec![Some(0)]));
    assert!(stored.item_id > results[1].item_id, "an item id of its own");
    assert_eq!(
        enabled(&lab, &device).await,
        vec![(p(1), true), (p(2), false)],
        "{version}: back to the profile enabled before"
    );

    // Sent again (its acknowledgement lost): acknowledged, stored once.
    assert_eq!(acks(&lab.send(&device.provide(&good)).await), vec![seq]);
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 3);

    // Another rollback result for the same package: refused.
    let second = rollback_result(&mut device, &enabling);
    assert_eq!(
        acks(&lab.send(&device.provide(&second)).await),
        Vec::<i64>::new()
    );
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 3);
}

#[tokio::test]
async fn rollback_results_without_a_grant_are_refused() {
    let mut lab = Lab::new();
    let mut device = lab.device(2, V1_2).await;
    // A package without rollbackFlag grants none.
    let plain = run(
        &mut lab,
        &mut device,
        Operation::Enable {
            iccid: iccid(1),
            rollback: false,
        },
    )
    .await;
    let result = rollback_result(&mut device, &plain);
    assert_eq!(
        acks(&lab.send(&device.provide(&result)).await),
        Vec::<i64>::new()
    );

    // A later package run by the eUICC ends the rollback of an earlier one.
    let enabling = run(
        &mut lab,
        &mut device,
        Operation::Enable {
            iccid: iccid(2),
            rollback: true,
        },
    )
    .await;
    run(&mut lab, &mut device, Operation::ListProfiles).await;
    let late = rollback_result(&mut device, &enabling);
    assert_eq!(
        acks(&lab.send(&device.provide(&late)).await),
        Vec::<i64>::new()
    );
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results.len(), 3, "three packages, no rollback");
    assert!(results.iter().all(|r| r.kind == ItemKind::Package));
}
