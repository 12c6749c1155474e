//! The eIM with revocation on (CRLs loaded into its trust store, as
//! `serve`'s `[revocation]` does): a revoked eUICC or EUM certificate is
//! refused at association; a device whose eUICC certificate is revoked
//! after its association gets `eimPackageError undefinedError(127)` on
//! GetEimPackage and `provideEimPackageResultError undefinedError(127)` on
//! ProvideEimPackageResult, with nothing stored or acknowledged; reported
//! IpaEuiccData certificates are verified (another eUICC's are refused); a
//! stale CRL refuses or warns per policy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{Lab, iccid, now, package_of, pki};
use ferrosim_asn1::esipa::Sgp32Version::V1_2;
use ferrosim_asn1::{decode_der, sgp32};
use ferrosim_crypto::SoftwareKey;
use ferrosim_eim::{
    AssociationRequest, Counter, DataItem, Eim, EimConfig, EimError, EimId, EimStore, MemEimStore,
    Operation, PackageContent,
};
use ferrosim_pki::crl::issue::CrlRequest;
use ferrosim_pki::crl::register::{CrlIssuer, entry};
use ferrosim_pki::crl::{CrlNumber, CrlScope, RevokedEntry};
use ferrosim_pki::{CertRole, RevocationPolicy, StalePolicy, TrustStore};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A lab whose eIM checks revocation; the trust store shares its CRLs with
/// the eIM's, so CRLs loaded later are in force at once.
fn lab(on_stale: StalePolicy) -> (Lab, TrustStore) {
    let mut trust = pki().trust_store().unwrap();
    trust.enable_revocation(RevocationPolicy {
        on_stale,
        fetch_distribution_points: false,
    });
    let key = SoftwareKey::generate().unwrap();
    let eim_key = key.verifying_key().unwrap();
    let config = EimConfig {
        eim_id: EimId::new(common::EIM_ID).unwrap(),
        key: Arc::new(key),
        trust: trust.clone(),
    };
    let lab = Lab {
        eim: Eim::new(MemEimStore::new(), config),
        eim_key,
        rng: StdRng::seed_from_u64(11),
    };
    (lab, trust)
}

fn crl(
    issuer: CrlIssuer,
    number: u128,
    next_update: SystemTime,
    entries: Vec<RevokedEntry>,
) -> Vec<u8> {
    pki()
        .issue_crl(
            issuer,
            &CrlRequest {
                number: CrlNumber::new(number),
                this_update: SystemTime::now() - Duration::from_secs(2 * 86_400),
                next_update,
                entries,
                scope: CrlScope::default(),
            },
        )
        .unwrap()
        .der()
        .to_vec()
}

fn week() -> SystemTime {
    SystemTime::now() + Duration::from_secs(7 * 86_400)
}

fn euicc_entry(n: usize) -> RevokedEntry {
    entry(
        pki().euiccs[n].certificate.serial_number().to_vec(),
        SystemTime::now() - Duration::from_secs(60),
        None,
    )
}

fn load_eum_crl(trust: &TrustStore, number: u128, entries: Vec<RevokedEntry>) {
    trust
        .load_crls(
            &crl(CrlIssuer::Eum, number, week(), entries),
            Some(&pki().eum.certificate),
        )
        .unwrap();
}

fn request(n: usize) -> AssociationRequest {
    let issued = &pki().euiccs[n];
    AssociationRequest {
        eid: issued.certificate.eid().unwrap(),
        eum_certificate: pki().eum.certificate.der().to_vec(),
        euicc_certificate: issued.certificate.der().to_vec(),
        counter: Counter::new(10).unwrap(),
        association_token: Some(0x42),
        euicc_version: V1_2,
        emulated: false,
    }
}

fn poll_error(answer: &[u8]) -> Option<i64> {
    match decode_der::<sgp32::EsipaMessageFromEimToIpa>(answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::eimPackageError(code),
        ) => Some(i64::try_from(code).unwrap()),
        _ => None,
    }
}

fn provide_error(answer: &[u8]) -> Option<i64> {
    match decode_der::<sgp32::EsipaMessageFromEimToIpa>(answer).unwrap() {
        sgp32::EsipaMessageFromEimToIpa::provideEimPackageResultResponse(
            sgp32::ProvideEimPackageResultResponse::provideEimPackageResultError(code),
        ) => Some(i64::try_from(code).unwrap()),
        _ => None,
    }
}

#[tokio::test]
async fn a_revoked_euicc_is_refused_at_association_and_in_every_later_exchange() {
    let (mut lab, trust) = lab(StalePolicy::Refuse);
    load_eum_crl(&trust, 1, vec![euicc_entry(0)]);

    // Association of the revoked eUICC: refused, naming the eUICC certificate.
    let refused = lab.eim.associate(request(0), now()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            EimError::CertificateChain(ferrosim_pki::Error::Revoked {
                cert: CertRole::Euicc,
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(
        lab.eim
            .store()
            .device(&request(0).eid)
            .await
            .unwrap()
            .is_none()
    );

    // Another eUICC of the same EUM is associated and served.
    let mut device = lab.device(1, V1_2).await;
    let content = PackageContent::Psmos(vec![Operation::Enable {
        iccid: iccid(1),
        rollback: false,
    }]);
    lab.eim
        .enqueue_package(&device.eid, &content, &mut lab.rng, now())
        .await
        .unwrap();
    let package = package_of(&lab.send(&device.get_eim_package()).await);
    let ran = device.run(&package);

    // The EUM revokes it before its result comes back: the result is
    // refused (not stored, not acknowledged: the eUICC keeps it) and every
    // poll is answered undefinedError.
    load_eum_crl(&trust, 2, vec![euicc_entry(0), euicc_entry(1)]);
    let answer = lab.send(&device.provide(&ran.result)).await;
    assert_eq!(provide_error(&answer), Some(127));
    assert!(
        lab.eim
            .store()
            .results(&device.eid)
            .await
            .unwrap()
            .is_empty()
    );
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert_eq!(record.queue.len(), 1, "the package stays open");
    assert_eq!(
        poll_error(&lab.send(&device.get_eim_package()).await),
        Some(127)
    );
}

#[tokio::test]
async fn a_revoked_eum_is_refused() {
    let (mut lab, trust) = lab(StalePolicy::Refuse);
    let device = lab.device(2, V1_2).await;
    let eum = entry(
        pki().eum.certificate.serial_number().to_vec(),
        SystemTime::now() - Duration::from_secs(60),
        None,
    );
    trust
        .load_crls(&crl(CrlIssuer::Ci, 1, week(), vec![eum]), None)
        .unwrap();
    let refused = lab.eim.associate(request(3), now()).await.unwrap_err();
    assert!(
        matches!(
            refused,
            EimError::CertificateChain(ferrosim_pki::Error::Revoked {
                cert: CertRole::Eum,
                ..
            })
        ),
        "{refused:?}"
    );
    // The device associated before the EUM's revocation is refused too.
    assert_eq!(
        poll_error(&lab.send(&device.get_eim_package()).await),
        Some(127)
    );
}

#[tokio::test]
async fn a_stale_crl_refuses_or_warns_per_policy() {
    for (policy, accepted) in [(StalePolicy::Refuse, false), (StalePolicy::Warn, true)] {
        let (lab, trust) = lab(policy);
        // A CRL of the EUM that expired yesterday, revoking nobody.
        trust
            .load_crls(
                &crl(
                    CrlIssuer::Eum,
                    1,
                    SystemTime::now() - Duration::from_secs(86_400),
                    Vec::new(),
                ),
                Some(&pki().eum.certificate),
            )
            .unwrap();
        let outcome = lab.eim.associate(request(0), now()).await;
        assert_eq!(outcome.is_ok(), accepted, "{policy:?}: {outcome:?}");
        if let Err(e) = outcome {
            assert!(
                matches!(
                    e,
                    EimError::CertificateChain(ferrosim_pki::Error::RevocationUnknown { .. })
                ),
                "{e:?}"
            );
        }
    }
}

#[tokio::test]
async fn reported_certificates_are_verified_before_they_are_kept() {
    let (mut lab, trust) = lab(StalePolicy::Refuse);
    load_eum_crl(&trust, 1, Vec::new());
    let device = lab.device(0, V1_2).await;
    let data_message = |euicc: usize, tid| {
        let mut data = sgp32::IpaEuiccData::new(
            None, None, None, None, None, None, None, None, None, tid, None, None,
        );
        data.eum_certificate = Some(decode_der(pki().eum.certificate.der()).unwrap());
        data.euicc_certificate = Some(decode_der(pki().euiccs[euicc].certificate.der()).unwrap());
        device.provide_other(sgp32::EimPackageResult::ipaEuiccDataResponse(
            sgp32::IpaEuiccDataResponse::ipaEuiccData(data),
        ))
    };
    lab.eim
        .enqueue_data_request(&device.eid, &[DataItem::Certificates], &mut lab.rng, now())
        .await
        .unwrap();
    let tid = match decode_der::<sgp32::EsipaMessageFromEimToIpa>(
        &lab.send(&device.get_eim_package()).await,
    )
    .unwrap()
    {
        sgp32::EsipaMessageFromEimToIpa::getEimPackageResponse(
            sgp32::GetEimPackageResponse::ipaEuiccDataRequest(r),
        ) => r.eim_transaction_id,
        other => panic!("{other:?}"),
    };
    // Another eUICC's certificate is refused: the message is answered with
    // an error and nothing is kept.
    let refused = lab
        .eim
        .handle_asn1(&data_message(1, tid.clone()), now())
        .await;
    assert!(
        matches!(refused, Err(EimError::CertificateForOtherEid { .. })),
        "{refused:?}"
    );
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert!(record.euicc.euicc_certificate.is_none());
    assert_eq!(record.queue.len(), 1);
    // Its own certificates verify and are kept.
    let answer = lab.send(&data_message(0, tid)).await;
    assert_eq!(provide_error(&answer), None);
    let record = lab.eim.device(&device.eid).await.unwrap();
    assert_eq!(
        record.euicc.euicc_certificate.as_deref(),
        Some(pki().euiccs[0].certificate.der())
    );
    assert!(record.queue.is_empty());
}

#[tokio::test]
async fn a_relayed_authenticate_client_of_a_revoked_device_is_answered_by_the_eim() {
    use ferrosim_asn1::tlv::tlv;
    use ferrosim_eim::relay::NoRelay;
    use ferrosim_eim::{EsipaReply, RelaySession};
    let (mut lab, trust) = lab(StalePolicy::Refuse);
    load_eum_crl(&trust, 1, Vec::new());
    let good = lab.device(0, V1_2).await;
    let revoked = lab.device(1, V1_2).await;
    load_eum_crl(&trust, 2, vec![euicc_entry(1)]);
    let mut answers = Vec::new();
    for (n, device) in [&good, &revoked].into_iter().enumerate() {
        let tid = [n as u8 + 1; 16];
        lab.eim
            .store()
            .put_relay_session(&RelaySession {
                transaction_id: ferrosim_eim::ids::TransactionId::from_bytes(&tid).unwrap(),
                smdp_address: "smdp.example".into(),
                eid: Some(device.eid),
                created_at: now(),
            })
            .await
            .unwrap();
        let message = tlv(
            0xBF3B,
            &[
                tlv(0x80, &tid),
                // authenticateResponseError { transactionId, code 1 }
                tlv(
                    0xBF38,
                    &tlv(0xA1, &[tlv(0x80, &tid), vec![2, 1, 1]].concat()),
                ),
            ]
            .concat(),
        );
        match lab.eim.handle(&message, &NoRelay, now()).await.unwrap() {
            EsipaReply::Relayed { answer, .. } => answers.push(answer),
            other => panic!("{other:?}"),
        }
    }
    // The revoked device's step never reaches the SM-DP+: the eIM answers
    // euiccCertificateInvalid(3) with SGP.22's 8.1.3 / 6.1.
    let code = |a: &ferrosim_eim::relay::RelayAnswer| match decode_der::<
        sgp32::EsipaMessageFromEimToIpa,
    >(a.der.as_ref().unwrap())
    .unwrap()
    {
        sgp32::EsipaMessageFromEimToIpa::authenticateClientResponseEsipa(
            sgp32::AuthenticateClientResponseEsipa::authenticateClientErrorEsipa(c),
        ) => i64::try_from(c).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(code(&answers[1]), 3);
    let status = answers[1]
        .json
        .header
        .function_execution_status
        .status_code_data
        .clone()
        .unwrap();
    assert_eq!(
        (status.subject_code.as_str(), status.reason_code.as_str()),
        ("8.1.3", "6.1")
    );
    // The device in good standing is relayed (this relay reaches no SM-DP+).
    assert_eq!(code(&answers[0]), 127);
}
