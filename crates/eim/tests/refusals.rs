//! Every refusal the eIM itself makes: results that are tampered with,
//! signed by another key, unsigned from a device not marked as emulating,
//! for counters it never sent or already closed, for another eIM or
//! transaction; packages it will not build; associations it will not make.
//! A refused result is neither stored nor acknowledged, and its package
//! stays open.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Device, EIM_ID, Lab, iccid, now, package_of, pki};
use ferrosim_asn1::esipa::Sgp32Version::{V1_0, V1_2};
use ferrosim_asn1::esipa::read_ipa_message;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::signed::sgp32::package_result_from_parts;
use ferrosim_asn1::tlv::tlv;
use ferrosim_asn1::{decode_der, encode_der, sgp32};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_eim::steps::provide::provide;
use ferrosim_eim::{
    AssociationRequest, Counter, EimError, EimStore, ItemOutcome, ItemState, MAX_COUNTER,
    Operation, PackageContent, ResultRefused, Trust,
};

/// Queues and delivers one enable; returns what the device ran.
async fn delivered(lab: &mut Lab, device: &mut Device) -> common::Ran {
    let content = PackageContent::Psmos(vec![Operation::Enable {
        iccid: iccid(1),
        rollback: false,
    }]);
    lab.eim
        .enqueue_package(&device.eid, &content, &mut lab.rng, now())
        .await
        .unwrap();
    let package = package_of(&lab.send(&device.get_eim_package()).await);
    device.run(&package)
}

/// Runs the provide step directly on `message`; the refusals it reports.
async fn refusals(lab: &Lab, device: &Device, message: &[u8]) -> Vec<ResultRefused> {
    let read = read_ipa_message(message, Some(device.ipa_version)).unwrap();
    let record = lab.eim.store().device(&device.eid).await.unwrap().unwrap();
    let step = provide(&record, &read, &[], &lab.eim.config().trust, now()).unwrap();
    assert!(
        step.changes.results.is_empty(),
        "a refused result is not stored"
    );
    let report = step.answer;
    report.refused.into_iter().map(|(_, r)| r).collect()
}

/// Sends `message` and checks that nothing was stored or acknowledged and
/// the package is still open.
async fn refused(lab: &Lab, device: &Device, message: &[u8]) -> ResultRefused {
    let reasons = refusals(lab, device, message).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    let answer = lab.send(message).await;
    assert_eq!(
        answer,
        tlv(0xBF50, &[0x30, 0x00]),
        "emptyResponse: nothing acknowledged"
    );
    assert!(
        lab.eim
            .store()
            .results(&device.eid)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        lab.eim.device(&device.eid).await.unwrap().queue.len(),
        1,
        "the package stays open"
    );
    reasons.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_tampered_result_is_refused() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    let ran = delivered(&mut lab, &mut device).await;
    let mut tampered = ran.result.clone();
    // The enableResult code (last byte of the result data): ok(0) -> 1.
    let at = tampered.len() - 68;
    assert_eq!(tampered[at], 0x00);
    tampered[at] = 0x01;
    assert_eq!(
        refused(&lab, &device, &device.provide(&tampered)).await,
        ResultRefused::BadSignature
    );
    // The genuine one is still accepted afterwards.
    lab.send(&device.provide(&ran.result)).await;
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_result_signed_by_another_key_is_refused() {
    let mut lab = Lab::new();
    let mut device = lab.device(1, V1_2).await;
    let ran = delivered(&mut lab, &mut device).await;
    device.key = SoftwareKey::generate().unwrap();
    device.seq = 0;
    let forged = device.signed_result(
        &ran.signed,
        vec![sgp32::EuiccResultData::enableResult(
            sgp32::EnableProfileResult(0.into()),
        )],
        &ran.eim_signature,
    );
    assert_eq!(
        refused(&lab, &device, &device.provide(&forged)).await,
        ResultRefused::BadSignature
    );
}

#[tokio::test]
async fn a_result_signed_over_the_other_versions_input_is_refused() {
    let mut lab = Lab::new();
    let mut device = lab.device(2, V1_0).await;
    let ran = delivered(&mut lab, &mut device).await;
    // A v1.0 eUICC signs data || eimSignature; this one signed data || token.
    device.euicc_version = V1_2;
    device.seq = 0;
    let wrong = device.signed_result(
        &ran.signed,
        vec![sgp32::EuiccResultData::enableResult(
            sgp32::EnableProfileResult(0.into()),
        )],
        &ran.eim_signature,
    );
    let message = device.provide(&wrong);
    let reasons = refusals(&lab, &device, &message).await;
    assert_eq!(reasons, vec![ResultRefused::BadSignature]);
}

#[tokio::test]
async fn unsigned_results_only_from_marked_devices_and_shown_as_unsigned() {
    let mut lab = Lab::new();
    let mut device = lab.device(3, V1_2).await;
    let ran = delivered(&mut lab, &mut device).await;
    // An emulating IPA cannot sign: a placeholder signature, and an
    // unsigned error.
    let data = {
        let signed: sgp32::EuiccPackageResult = decode_der(&ran.result).unwrap();
        match signed {
            sgp32::EuiccPackageResult::euiccPackageResultSigned(s) => {
                encode_der(&s.euicc_package_result_data_signed).unwrap()
            }
            other => panic!("{other:?}"),
        }
    };
    let placeholder = package_result_from_parts(false, &data, &[0; 64]);
    let unsigned_error = encode_der(&sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(
        sgp32::EuiccPackageErrorUnsigned::new(
            EIM_ID.into(),
            ran.signed.eim_transaction_id.clone(),
            None,
            Some(sgp32::EuiccPackageUnsignedErrorCode(127.into())),
        ),
    ))
    .unwrap();
    assert_eq!(
        refused(&lab, &device, &device.provide(&placeholder)).await,
        ResultRefused::BadSignature
    );
    assert_eq!(
        refused(&lab, &device, &device.provide(&unsigned_error)).await,
        ResultRefused::Unsigned
    );

    lab.eim.set_emulated(&device.eid, true).await.unwrap();
    lab.send(&device.provide(&placeholder)).await;
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results[0].trust, Some(Trust::Unsigned), "shown as unsigned");
    assert_eq!(results[0].outcome, ItemOutcome::Executed(vec![Some(0)]));

    // An unsigned error of a marked device ends its package, unsigned.
    let ran = delivered(&mut lab, &mut device).await;
    let error = encode_der(&sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(
        sgp32::EuiccPackageErrorUnsigned::new(
            EIM_ID.into(),
            ran.signed.eim_transaction_id.clone(),
            None,
            None,
        ),
    ))
    .unwrap();
    lab.send(&device.provide(&error)).await;
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(
        (results[1].trust, &results[1].outcome),
        (Some(Trust::Unsigned), &ItemOutcome::PackageError(127))
    );
}

#[tokio::test]
async fn counter_rules() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    let ran = delivered(&mut lab, &mut device).await;
    let ok = || {
        vec![sgp32::EuiccResultData::enableResult(
            sgp32::EnableProfileResult(0.into()),
        )]
    };

    // A counter this eIM never sent.
    let mut never = ran.signed.clone();
    never.counter_value = Integer::from(99);
    let result = device.signed_result(&never, ok(), &ran.eim_signature);
    assert_eq!(
        refused(&lab, &device, &device.provide(&result)).await,
        ResultRefused::UnknownCounter(99)
    );

    // A package queued but never delivered.
    lab.eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![Operation::GetRat]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    let mut queued = ran.signed.clone();
    queued.counter_value = Integer::from(12);
    let result = device.signed_result(&queued, ok(), &ran.eim_signature);
    let reasons = refusals(&lab, &device, &device.provide(&result)).await;
    assert_eq!(reasons, vec![ResultRefused::NotDelivered(12)]);

    // The real result: stored once; sent again: acknowledged again, not
    // stored twice; a different result for the same counter: refused.
    let first = lab.send(&device.provide(&ran.result)).await;
    let again = lab.send(&device.provide(&ran.result)).await;
    assert_eq!(first, again, "the same acknowledgement");
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 1);
    let other = device.signed_result(&ran.signed, ok(), &ran.eim_signature);
    let message = device.provide(&other);
    let read = read_ipa_message(&message, None).unwrap();
    let report = lab.eim.provide_result(&message, read, now()).await.unwrap();
    let reasons: Vec<_> = report.refused.into_iter().map(|(_, r)| r).collect();
    assert_eq!(reasons, vec![ResultRefused::AlreadyAnswered(11)]);
    assert!(report.acknowledged.is_empty(), "not acknowledged");
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 1);
}

#[tokio::test]
async fn another_eim_id_or_transaction_is_refused() {
    let mut lab = Lab::new();
    let mut device = lab.device(1, V1_2).await;
    let ran = delivered(&mut lab, &mut device).await;
    let ok = || {
        vec![sgp32::EuiccResultData::enableResult(
            sgp32::EnableProfileResult(0.into()),
        )]
    };
    let mut other_eim = ran.signed.clone();
    other_eim.eim_id = "other.eim".into();
    let result = device.signed_result(&other_eim, ok(), &ran.eim_signature);
    assert_eq!(
        refused(&lab, &device, &device.provide(&result)).await,
        ResultRefused::OtherEim("other.eim".into())
    );
    let mut other_tid = ran.signed.clone();
    other_tid.eim_transaction_id = Some(ferrosim_asn1::rsp::TransactionId(common::octets(&[9; 8])));
    let result = device.signed_result(&other_tid, ok(), &ran.eim_signature);
    let reasons = refusals(&lab, &device, &device.provide(&result)).await;
    assert_eq!(reasons, vec![ResultRefused::TransactionMismatch]);
}

#[tokio::test]
async fn packages_the_eim_will_not_build() {
    let mut lab = Lab::new();
    let device = lab.device(2, V1_0).await;
    let empty = lab
        .eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![]),
            &mut lab.rng,
            now(),
        )
        .await;
    assert!(matches!(empty, Err(EimError::EmptyPackage)));
    let fallback = PackageContent::Psmos(vec![Operation::SetFallback { iccid: iccid(1) }]);
    let refused = lab
        .eim
        .enqueue_package(&device.eid, &fallback, &mut lab.rng, now())
        .await;
    assert!(matches!(
        refused,
        Err(EimError::NotSupportedByDevice {
            version: "v1.0",
            ..
        })
    ));
    let unknown = ferrosim_eim::suite::test_eid(777);
    let no_device = lab
        .eim
        .enqueue_package(&unknown, &fallback, &mut lab.rng, now())
        .await;
    assert!(matches!(no_device, Err(EimError::UnknownDevice(_))));
    assert_eq!(
        lab.eim
            .device(&device.eid)
            .await
            .unwrap()
            .association
            .counter
            .get(),
        10,
        "no counter was used"
    );
}

#[tokio::test]
async fn counters_end_at_0x7fffff() {
    let mut lab = Lab::new();
    let issued = &pki().euiccs[3];
    let eid = issued.certificate.eid().unwrap();
    lab.eim
        .associate(
            AssociationRequest {
                eid,
                eum_certificate: pki().eum.certificate.der().to_vec(),
                euicc_certificate: issued.certificate.der().to_vec(),
                counter: Counter::new(u64::from(MAX_COUNTER) - 1).unwrap(),
                association_token: None,
                euicc_version: V1_2,
                emulated: false,
            },
            now(),
        )
        .await
        .unwrap();
    let content = PackageContent::Psmos(vec![Operation::ListProfiles]);
    let last = lab
        .eim
        .enqueue_package(&eid, &content, &mut lab.rng, now())
        .await
        .unwrap();
    assert_eq!(last.counter.unwrap().get(), MAX_COUNTER);
    let beyond = lab
        .eim
        .enqueue_package(&eid, &content, &mut lab.rng, now())
        .await;
    assert!(matches!(beyond, Err(EimError::CounterExhausted)));
    assert!(Counter::new(u64::from(MAX_COUNTER) + 1).is_err());
}

#[tokio::test]
async fn associations_the_eim_will_not_make() {
    let lab = Lab::new();
    let request = |n: usize, cert_of: usize| AssociationRequest {
        eid: pki().euiccs[n].certificate.eid().unwrap(),
        eum_certificate: pki().eum.certificate.der().to_vec(),
        euicc_certificate: pki().euiccs[cert_of].certificate.der().to_vec(),
        counter: Counter::new(0).unwrap(),
        association_token: None,
        euicc_version: V1_2,
        emulated: false,
    };
    // The certificate of another eUICC.
    let other = lab.eim.associate(request(0, 1), now()).await;
    assert!(matches!(
        other,
        Err(EimError::CertificateForOtherEid { .. })
    ));
    // A chain that does not verify (the EUM certificate given as the eUICC's).
    let mut broken = request(0, 0);
    broken.euicc_certificate = pki().dp_auth.certificate.der().to_vec();
    assert!(matches!(
        lab.eim.associate(broken, now()).await,
        Err(EimError::CertificateChain(_))
    ));
    // Twice.
    lab.eim.associate(request(0, 0), now()).await.unwrap();
    let twice = lab.eim.associate(request(0, 0), now()).await;
    assert!(matches!(twice, Err(EimError::AlreadyAssociated(_))));
}

#[tokio::test]
async fn garbage_is_refused_and_changes_nothing() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    let _ran = delivered(&mut lab, &mut device).await;
    let before = lab.eim.store().device(&device.eid).await.unwrap().unwrap();
    for bytes in [
        &[][..],
        &[0xBF, 0x50, 0x01],
        &[0xBF, 0x4F, 0x00],
        &[0x30, 0x00],
        &tlv(0xBF50, &tlv(0xBF51, &[0xA0, 0x00])),
    ] {
        assert!(
            lab.eim.handle_asn1(bytes, now()).await.is_err(),
            "{bytes:?}"
        );
    }
    let after = lab.eim.store().device(&device.eid).await.unwrap().unwrap();
    assert_eq!(before, after, "nothing changed");
    assert!(matches!(
        after.record.queue[0].state,
        ItemState::Delivered { .. }
    ));
    let _ = SoftwareKey::generate().unwrap().sign_raw(b"x");
}

#[tokio::test]
async fn withdrawing_only_what_was_not_delivered() {
    let mut lab = Lab::new();
    let mut device = lab.device(1, V1_2).await;
    let _ran = delivered(&mut lab, &mut device).await;
    let queued = lab
        .eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![Operation::GetRat]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    let record = lab.eim.device(&device.eid).await.unwrap();
    let delivered_id = record.queue[0].id;
    assert!(matches!(
        lab.eim.withdraw(&device.eid, delivered_id).await,
        Err(EimError::NoSuchItem(_))
    ));
    lab.eim.withdraw(&device.eid, queued.item_id).await.unwrap();
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert_eq!(record.queue.len(), 1);
    assert_eq!(
        record.association.counter.get(),
        12,
        "a withdrawn package's counter stays used"
    );
}
