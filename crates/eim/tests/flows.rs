//! The eIM end to end with a device playing the IPA and the eUICC: packages
//! signed, delivered in order, run, their results verified, stored and then
//! acknowledged; v1.0 peers; replayError recovery; download triggers; eUICC
//! data; notifications.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Lab, iccid, listed_iccid, now, package_of};
use ferrosim_asn1::esipa::Sgp32Version::{V1_0, V1_2};
use ferrosim_asn1::rasn::types::{FixedOctetString, Integer};
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_eim::steps::poll::package_error;
use ferrosim_eim::{
    DataItem, DownloadTrigger, EimStore, ItemKind, ItemOutcome, ItemState, Operation,
    PackageContent, Trust,
};

fn h(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .flat_map(|w| {
            (0..w.len())
                .step_by(2)
                .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
        })
        .collect()
}

fn acks(answer: &[u8]) -> Vec<i64> {
    match decode_der::<sgp32::EsipaMessageFromEimToIpa>(answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
            sgp32::ProvideEimPackageResultResponse::eimAcknowledgements(a),
        ) => {
            a.0.iter()
                .map(|s| i64::try_from(s.0.clone()).unwrap())
                .collect()
        }
        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
            sgp32::ProvideEimPackageResultResponse::emptyResponse(_),
        ) => Vec::new(),
        other => panic!("not a provide answer: {other:?}"),
    }
}

#[tokio::test]
async fn enable_with_rollback_runs_and_its_verified_result_is_acknowledged() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    let content = PackageContent::Psmos(vec![Operation::Enable {
        iccid: iccid(1),
        rollback: true,
    }]);
    let queued = lab
        .eim
        .enqueue_package(&device.eid, &content, &mut lab.rng, now())
        .await
        .unwrap();
    assert_eq!(
        queued.counter.unwrap().get(),
        11,
        "the first package takes the counter after the configured one"
    );

    let answer = lab.send(&device.get_eim_package()).await;
    let package = package_of(&answer);
    let ran = device.run(&package);
    let psmo = match &ran.signed.euicc_package {
        sgp32::EuiccPackage::psmoList(list) => list[0].clone(),
        other => panic!("{other:?}"),
    };
    assert!(matches!(psmo, sgp32::Psmo::enable(e) if e.rollback_flag.is_some()));

    let answer = lab.send(&device.provide(&ran.result)).await;
    assert_eq!(
        acks(&answer),
        vec![1],
        "the stored result's sequence number is acknowledged"
    );
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].trust, Some(Trust::Verified));
    assert_eq!(results[0].outcome, ItemOutcome::Executed(vec![Some(0)]));
    assert_eq!(results[0].seq_number, Some(1));
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert!(record.queue.is_empty(), "the package ended");
    let profile = &record.profiles.profiles[0];
    assert_eq!((profile.iccid.clone(), profile.enabled), (iccid(1), true));
    // Nothing left: noEimPackageAvailable.
    assert_eq!(
        lab.send(&device.get_eim_package()).await,
        h("bf4f03 020101")
    );
}

#[tokio::test]
async fn packages_are_delivered_in_order_with_strictly_increasing_counters() {
    let mut lab = Lab::new();
    let mut device = lab.device(1, V1_2).await;
    let ops = [
        Operation::Disable { iccid: iccid(1) },
        Operation::Delete { iccid: iccid(1) },
        Operation::ListProfiles,
    ];
    for op in &ops {
        lab.eim
            .enqueue_package(
                &device.eid,
                &PackageContent::Psmos(vec![op.clone()]),
                &mut lab.rng,
                now(),
            )
            .await
            .unwrap();
    }
    let mut counters = Vec::new();
    for _ in &ops {
        let first = lab.send(&device.get_eim_package()).await;
        // Polling again before the result: the same bytes again.
        assert_eq!(lab.send(&device.get_eim_package()).await, first);
        let ran = device.run(&package_of(&first));
        counters.push(u32::try_from(ran.signed.counter_value.clone()).unwrap());
        lab.send(&device.provide(&ran.result)).await;
    }
    assert_eq!(counters, vec![11, 12, 13]);
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert_eq!(record.association.counter.get(), 13);
    // The listProfileInfo result replaced the snapshot.
    assert_eq!(record.profiles.profiles.len(), 1);
    assert_eq!(record.profiles.profiles[0].iccid, listed_iccid());
    assert!(record.profiles.profiles[0].fallback);
    assert_eq!(lab.eim.store().results(&device.eid).await.unwrap().len(), 3);
}

#[tokio::test]
async fn fallback_attribute_set_and_unset() {
    let mut lab = Lab::new();
    let mut device = lab.device(2, V1_2).await;
    for op in [
        Operation::SetFallback { iccid: iccid(3) },
        Operation::UnsetFallback,
    ] {
        lab.eim
            .enqueue_package(
                &device.eid,
                &PackageContent::Psmos(vec![op]),
                &mut lab.rng,
                now(),
            )
            .await
            .unwrap();
        let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
        lab.send(&device.provide(&ran.result)).await;
    }
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert!(record.profiles.profiles.iter().all(|p| !p.fallback));
    assert_eq!(record.profiles.profiles[0].iccid, iccid(3));
}

#[tokio::test]
async fn a_v1_0_peer_is_read_and_answered_in_v1_0() {
    let mut lab = Lab::new();
    let mut device = lab.device(3, V1_0).await;
    lab.eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![Operation::Disable { iccid: iccid(2) }]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    // GetEimPackageRequest with the v1.0 rPLMN in [1].
    let answer = lab.send(&device.get_eim_package()).await;
    let record = lab.eim.device(&device.eid).await.unwrap();
    let poll = record.last_poll.unwrap();
    assert_eq!(
        (poll.read_as, poll.r_plmn),
        (V1_0, Some(vec![0x62, 0xF2, 0x10]))
    );
    // The eUICC signs data || eimSignature (v1.0); the IPA sends BF50
    // without EID; the eIM finds the device by the eimTransactionId.
    let ran = device.run(&package_of(&answer));
    let answer = lab.send(&device.provide(&ran.result)).await;
    assert_eq!(
        answer,
        h("bf50 06 bf53 03 800101"),
        "a v1.0 ProvideEimPackageResultResponse"
    );
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(
        (results[0].read_as, results[0].trust),
        (V1_0, Some(Trust::Verified))
    );
    // Nothing queued: answered in v1.0 too.
    assert_eq!(
        lab.send(&device.get_eim_package()).await,
        h("bf4f03 020101")
    );
}

#[tokio::test]
async fn replay_error_is_followed_by_a_request_for_the_kept_result() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    lab.eim
        .enqueue_package(
            &device.eid,
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    let package = package_of(&lab.send(&device.get_eim_package()).await);
    // The eUICC ran it but the answer was lost; the package comes again and
    // the eUICC answers replayError.
    let ran = device.run(&package);
    let replay = device.signed_error(&ran.signed, 4, &ran.eim_signature);
    assert_eq!(
        acks(&lab.send(&device.provide(&replay)).await),
        Vec::<i64>::new()
    );
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert!(matches!(
        record.queue[0].state,
        ItemState::AwaitingResult { .. }
    ));
    // The next poll asks for the results the eUICC keeps, with the item's transaction id.
    let answer = lab.send(&device.get_eim_package()).await;
    let request = match decode_der::<sgp32::EsipaMessageFromEimToIpa>(&answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::ipaEuiccDataRequest(r),
        ) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(request.tag_list.as_ref(), &[0xA2]);
    let tid = request.eim_transaction_id.clone();
    // The IPA returns the kept result in IpaEuiccData.
    let result: sgp32::EuiccPackageResult = decode_der(&ran.result).unwrap();
    let data = sgp32::IpaEuiccData::new(
        None,
        None,
        Some(sgp32::EuiccPackageResultList(vec![result])),
        None,
        None,
        None,
        None,
        None,
        None,
        tid,
        None,
        None,
    );
    let message = device.provide_other(sgp32::EimPackageResult::ipaEuiccDataResponse(
        sgp32::IpaEuiccDataResponse::ipaEuiccData(data),
    ));
    assert_eq!(acks(&lab.send(&message).await), vec![1]);
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].kind, ItemKind::Package);
    assert_eq!(results[0].outcome, ItemOutcome::Executed(vec![None]));
    assert!(lab.eim.device(&device.eid).await.unwrap().queue.is_empty());
}

#[tokio::test]
async fn download_trigger_ends_with_the_installation_result() {
    let mut lab = Lab::new();
    let device = lab.device(1, V1_2).await;
    let trigger = DownloadTrigger::ActivationCode("1$smdp.example$MATCH-1".into());
    lab.eim
        .enqueue_download(&device.eid, &trigger, &mut lab.rng, now())
        .await
        .unwrap();
    let answer = lab.send(&device.get_eim_package()).await;
    let request = match decode_der::<sgp32::EsipaMessageFromEimToIpa>(&answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::profileDownloadTriggerRequest(r),
        ) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        request.profile_download_data,
        Some(sgp32::ProfileDownloadData::activationCode(
            "1$smdp.example$MATCH-1".into()
        ))
    );
    let mut install = ferrosim_asn1::rasn::types::BitString::new();
    install.push(true);
    let metadata = rsp::NotificationMetadata::new(
        Integer::from(9),
        rsp::NotificationEvent(install),
        "smdp.example".into(),
        Some(rsp::Iccid(FixedOctetString::new(iccid(7).to_bcd()))),
    );
    let pir = sgp32::ProfileInstallationResult::new(
        rsp::ProfileInstallationResultData::new(
            rsp::TransactionId(common::octets(&[1])),
            metadata,
            ferrosim_asn1::rasn::types::ObjectIdentifier::new(vec![2, 999, 1]).unwrap(),
            rsp::ProfileInstallationResultDataFinalResult::successResult(rsp::SuccessResult::new(
                common::octets(&[0xA0; 16]),
                common::octets(&[0x00]),
            )),
        ),
        rsp::EuiccSignPIR(common::octets(&[0x55; 64])),
    );
    let result = sgp32::ProfileDownloadTriggerResult::new(
        request.eim_transaction_id.clone(),
        sgp32::ProfileDownloadTriggerResultProfileDownloadTriggerResultData::profileInstallationResult(pir),
    );
    let answer = lab
        .send(
            &device.provide_other(sgp32::EimPackageResult::profileDownloadTriggerResult(
                result,
            )),
        )
        .await;
    assert_eq!(acks(&answer), Vec::<i64>::new());
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(
        results[0].outcome,
        ItemOutcome::Installed {
            ok: true,
            iccid: Some(iccid(7))
        }
    );
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert!(record.queue.is_empty());
    assert_eq!(record.profiles.profiles[0].iccid, iccid(7));
}

fn euicc_info2(version: [u8; 3]) -> sgp32::EUICCInfo2 {
    let v = |b: [u8; 3]| rsp::VersionType(FixedOctetString::new(b));
    sgp32::EUICCInfo2::new(
        v([2, 3, 0]),
        v([2, 3, 0]),
        v([1, 0, 0]),
        common::octets(&[]),
        ferrosim_asn1::pe::UICCCapability(Default::default()),
        None,
        None,
        rsp::RspCapability(Default::default()),
        vec![],
        vec![],
        None,
        None,
        v([1, 0, 0]),
        String::new(),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        Some(sgp32::IoTSpecificInfo::new(
            vec![v(version)],
            None,
            Some(()),
            None,
        )),
        None,
    )
}

#[tokio::test]
async fn euicc_data_is_kept_and_its_sgp32_version_becomes_the_associations() {
    let mut lab = Lab::new();
    let device = lab.device(2, V1_2).await;
    let queued = lab
        .eim
        .enqueue_data_request(&device.eid, &DataItem::ALL, &mut lab.rng, now())
        .await
        .unwrap();
    let answer = lab.send(&device.get_eim_package()).await;
    assert!(matches!(
        decode_der::<sgp32::EsipaMessageFromEimToIpa>(&answer).unwrap(),
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::ipaEuiccDataRequest(_)
        )
    ));
    let data = sgp32::IpaEuiccData::new(
        Some(sgp32::PendingNotificationList(vec![])),
        Some("smdp.example".into()),
        None,
        None,
        Some(euicc_info2([1, 0, 0])),
        None,
        None,
        None,
        None,
        Some(queued.transaction_id.to_asn1()),
        None,
        None,
    );
    let message = device.provide_other(sgp32::EimPackageResult::ipaEuiccDataResponse(
        sgp32::IpaEuiccDataResponse::ipaEuiccData(data),
    ));
    lab.send(&message).await;
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert_eq!(
        record.association.euicc_version, V1_0,
        "EUICCInfo2 says SGP.32 1.0.0"
    );
    assert_eq!(
        record.euicc.default_smdp_address.as_deref(),
        Some("smdp.example")
    );
    assert!(record.euicc.info2.is_some());
    let results = lab.eim.store().results(&device.eid).await.unwrap();
    assert_eq!(results[0].outcome, ItemOutcome::DataReported(None));
}

#[tokio::test]
async fn a_result_in_a_handle_notification_is_acknowledged_with_the_next_answer() {
    let mut lab = Lab::new();
    let mut device = lab.device(3, V1_2).await;
    for op in [Operation::GetRat, Operation::ListProfiles] {
        lab.eim
            .enqueue_package(
                &device.eid,
                &PackageContent::Psmos(vec![op]),
                &mut lab.rng,
                now(),
            )
            .await
            .unwrap();
    }
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    let provide: sgp32::ProvideEimPackageResult = decode_der(&device.provide(&ran.result)).unwrap();
    let notification = encode_der(&sgp32::EsipaMessageFromIpaToEim::handleNotificationEsipa(
        sgp32::HandleNotificationEsipa::provideEimPackageResult(provide),
    ))
    .unwrap();
    assert!(
        lab.send(&notification).await.is_empty(),
        "HandleNotification has no answer"
    );
    assert_eq!(
        lab.eim.device(&device.eid).await.unwrap().pending_acks,
        vec![1]
    );
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    assert_eq!(
        acks(&lab.send(&device.provide(&ran.result)).await),
        vec![1, 2]
    );
    assert!(
        lab.eim
            .device(&device.eid)
            .await
            .unwrap()
            .pending_acks
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_and_invalid_eids_get_their_error_codes() {
    let lab = Lab::new();
    let unknown = ferrosim_eim::suite::test_eid(4242);
    let request = encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
        sgp32::GetEimPackageRequest::new(
            rsp::Octet16(FixedOctetString::new(unknown.to_bcd())),
            None,
            None,
            None,
        ),
    ))
    .unwrap();
    assert_eq!(
        lab.send(&request).await,
        h("bf4f03 020102"),
        "eidNotFound(2)"
    );
    let invalid = encode_der(&sgp32::EsipaMessageFromIpaToEim::getEimPackageRequest(
        sgp32::GetEimPackageRequest::new(
            rsp::Octet16(FixedOctetString::new([0xFF; 16])),
            None,
            None,
            None,
        ),
    ))
    .unwrap();
    assert_eq!(
        lab.send(&invalid).await,
        h("bf4f03 020103"),
        "invalidEid(3)"
    );
    let _ = package_error::NO_EIM_PACKAGE_AVAILABLE;
}
