//! Sanitized reprovisioning in the eIM: the wipe package built from the
//! profiles it knows, the verdict read from the eUICC's signed results (clean
//! only when the closing listProfileInfo shows nothing to delete), the
//! release by deleteEim, and a new association of the released device.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{EIM_ID, Lab, iccid, listed_iccid, now, package_of};
use ferrosim_asn1::esipa::Sgp32Version::V1_2;
use ferrosim_asn1::rasn::types::Integer;
use ferrosim_asn1::sgp32;
use ferrosim_eim::{
    AssociationRequest, Counter, DownloadTrigger, EimError, Operation, PackageContent,
    SanitizeOptions, Trust, Verdict, WipeStep,
};

fn ok_codes(n: usize) -> Vec<sgp32::EuiccResultData> {
    (0..n)
        .map(|_| sgp32::EuiccResultData::deleteResult(sgp32::DeleteProfileResult(Integer::from(0))))
        .collect()
}

fn empty_list() -> sgp32::EuiccResultData {
    sgp32::EuiccResultData::listProfileInfoResult(
        sgp32::ProfileInfoListResponse::profileInfoListOk(vec![]),
    )
}

fn eim_list(ids: &[&str]) -> sgp32::EuiccResultData {
    sgp32::EuiccResultData::listEimResult(sgp32::ListEimResult::eimIdList(
        ids.iter()
            .map(|id| sgp32::EimIdInfo::new((*id).to_owned(), None))
            .collect(),
    ))
}

#[tokio::test]
async fn a_verified_clean_wipe_releases_the_device_which_can_be_associated_again() {
    let mut lab = Lab::new();
    let mut device = lab.device(0, V1_2).await;
    let eid = device.eid;
    let enable = PackageContent::Psmos(vec![Operation::Enable {
        iccid: iccid(1),
        rollback: false,
    }]);
    lab.eim
        .enqueue_package(&eid, &enable, &mut lab.rng, now())
        .await
        .unwrap();
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    lab.send(&device.provide(&ran.result)).await;
    // An undelivered trigger is withdrawn by the sanitization.
    let trigger = lab
        .eim
        .enqueue_download(
            &eid,
            &DownloadTrigger::ActivationCode("1$smdp.example$ABC".into()),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    assert!(matches!(
        lab.eim.sanitize_report(&eid).await,
        Err(EimError::NotSanitized(_))
    ));

    let s = lab
        .eim
        .sanitize(&eid, SanitizeOptions::default(), &mut lab.rng, now())
        .await
        .unwrap();
    assert_eq!(s.withdrawn, vec![trigger.item_id]);
    assert_eq!(
        s.wipe_steps,
        vec![
            WipeStep::Disable(iccid(1)),
            WipeStep::Delete(iccid(1)),
            WipeStep::ListProfiles
        ]
    );
    let report = lab.eim.sanitize_report(&eid).await.unwrap();
    assert_eq!(report.verdict, Verdict::AwaitingResults);
    assert!(matches!(
        lab.eim.release(&eid, &mut lab.rng, now()).await,
        Err(EimError::NotClean(_))
    ));

    // The eUICC runs the wipe: disable and delete ok, nothing listed after.
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    let mut results = ok_codes(2);
    results.push(empty_list());
    let result = device.signed_result(&ran.signed, results, &ran.eim_signature);
    lab.send(&device.provide(&result)).await;
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    let result = device.signed_result(&ran.signed, vec![eim_list(&[EIM_ID])], &ran.eim_signature);
    lab.send(&device.provide(&result)).await;

    let report = lab.eim.sanitize_report(&eid).await.unwrap();
    assert_eq!(report.verdict, Verdict::Clean, "{report:?}");
    assert_eq!(report.wipe_trust, Some(Trust::Verified));
    assert_eq!(report.remaining_profiles, Some(vec![]));
    assert_eq!(report.eims, Some(vec![EIM_ID.to_owned()]));
    assert!(
        report
            .steps
            .iter()
            .all(|s| s.step == WipeStep::ListProfiles || s.code == Some(0))
    );

    let release = lab.eim.release(&eid, &mut lab.rng, now()).await.unwrap();
    assert!(matches!(
        lab.eim.release(&eid, &mut lab.rng, now()).await,
        Err(EimError::Released(_))
    ));
    assert!(matches!(
        lab.eim
            .enqueue_package(&eid, &enable, &mut lab.rng, now())
            .await,
        Err(EimError::Released(_))
    ));
    let again = AssociationRequest {
        eid,
        eum_certificate: common::pki().eum.certificate.der().to_vec(),
        euicc_certificate: common::pki().euiccs[0].certificate.der().to_vec(),
        counter: Counter::new(0).unwrap(),
        association_token: None,
        euicc_version: V1_2,
        emulated: false,
    };
    assert!(
        matches!(
            lab.eim.associate(again.clone(), now()).await,
            Err(EimError::Released(_))
        ),
        "not before the eUICC confirmed the release"
    );
    assert_eq!(
        lab.eim.sanitize_report(&eid).await.unwrap().verdict,
        Verdict::ReleaseOrdered
    );
    // deleteEim runs (the common eUICC answers ok).
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    assert!(matches!(
        &ran.signed.euicc_package,
        sgp32::EuiccPackage::ecoList(ecos) if matches!(&ecos[..], [sgp32::Eco::deleteEim(d)] if d.eim_id == EIM_ID)
    ));
    lab.send(&device.provide(&ran.result)).await;
    let report = lab.eim.sanitize_report(&eid).await.unwrap();
    assert_eq!(report.verdict, Verdict::Released);
    assert_eq!(report.release_code, Some(0));

    // Associated afresh: item ids go on, the sanitization is kept.
    lab.eim.associate(again, now()).await.unwrap();
    let record = lab.eim.device(&eid).await.unwrap();
    assert!(record.next_item > release.item_id);
    assert_eq!(record.association.counter.get(), 0);
    assert!(record.sanitization.unwrap().reassociated_at.is_some());
    lab.eim
        .enqueue_package(&eid, &enable, &mut lab.rng, now())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_profile_left_on_the_euicc_is_not_clean_and_a_second_sanitization_deletes_it() {
    let mut lab = Lab::new();
    let mut device = lab.device(1, V1_2).await;
    let eid = device.eid;
    // The eIM knows of no profile; the eUICC has one (the common eUICC lists
    // an enabled one carrying the fallback attribute).
    lab.eim
        .sanitize(&eid, SanitizeOptions::default(), &mut lab.rng, now())
        .await
        .unwrap();
    for _ in 0..2 {
        let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
        lab.send(&device.provide(&ran.result)).await;
    }
    let report = lab.eim.sanitize_report(&eid).await.unwrap();
    let Verdict::NotClean(reasons) = &report.verdict else {
        panic!("{report:?}");
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(listed_iccid().as_str()) && r.contains("still on the eUICC")),
        "{reasons:?}"
    );
    assert!(matches!(
        lab.eim.release(&eid, &mut lab.rng, now()).await,
        Err(EimError::NotClean(_))
    ));
    // The second one starts from what the eUICC listed.
    let s = lab
        .eim
        .sanitize(&eid, SanitizeOptions::default(), &mut lab.rng, now())
        .await
        .unwrap();
    assert_eq!(
        s.wipe_steps,
        vec![
            WipeStep::UnsetFallback,
            WipeStep::Disable(listed_iccid()),
            WipeStep::Delete(listed_iccid()),
            WipeStep::ListProfiles
        ]
    );
    // A delivered package that has not answered blocks a new sanitization.
    lab.send(&device.get_eim_package()).await;
    assert!(matches!(
        lab.eim
            .sanitize(&eid, SanitizeOptions::default(), &mut lab.rng, now())
            .await,
        Err(EimError::Busy(1))
    ));
}

#[tokio::test]
async fn provisioning_profiles_can_be_kept_and_a_failed_delete_is_reported() {
    let mut lab = Lab::new();
    let mut device = lab.device(2, V1_2).await;
    let eid = device.eid;
    // The eUICC lists its profile (class 2 in the common eUICC): learn it.
    lab.eim
        .enqueue_package(
            &eid,
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    lab.send(&device.provide(&ran.result)).await;
    let s = lab
        .eim
        .sanitize(
            &eid,
            SanitizeOptions {
                keep_provisioning: true,
            },
            &mut lab.rng,
            now(),
        )
        .await
        .unwrap();
    assert!(s.keep_provisioning);
    assert!(
        s.wipe_steps.contains(&WipeStep::Delete(listed_iccid())),
        "class 2 is not kept"
    );
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    // unsetFallback ok, disable ok, delete refused (code 2), list: still there.
    let mut results = ok_codes(2);
    results.push(sgp32::EuiccResultData::deleteResult(
        sgp32::DeleteProfileResult(Integer::from(2)),
    ));
    results.push(empty_list());
    let result = device.signed_result(&ran.signed, results, &ran.eim_signature);
    lab.send(&device.provide(&result)).await;
    let ran = device.run(&package_of(&lab.send(&device.get_eim_package()).await));
    let result = device.signed_result(&ran.signed, vec![eim_list(&[EIM_ID])], &ran.eim_signature);
    lab.send(&device.provide(&result)).await;
    let report = lab.eim.sanitize_report(&eid).await.unwrap();
    let Verdict::NotClean(reasons) = &report.verdict else {
        panic!("{report:?}");
    };
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("delete of") && reasons[0].contains("code 2"),
        "{reasons:?}"
    );
}
