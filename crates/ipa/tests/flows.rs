//! The IPA end to end with an eIM in the process and ferrosim's SM-DP+ over
//! loopback HTTPS: download triggers carried out directly and through the
//! eIM relay (orders end `installed`), queued PSMOs run on the virtual
//! eUICC with results verified and acknowledged, and a power cut between a
//! package and its result losing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::SystemTime;

use common::Lab;
use ferrosim_eim::record::ItemOutcome;
use ferrosim_eim::store::EimStore;
use ferrosim_eim::{DownloadTrigger, Iccid as EimIccid, Operation, PackageContent, Timestamp};
use ferrosim_euicc::{ProfileState, VirtualEuicc};
use ferrosim_ipa::driver::{EsipaClient, MemoryStore, run_session};
use ferrosim_ipa::{
    DownloadPath, EimReply, EsipaError, EsipaRequest, Ipa, IpaConfig, ItemReport, PackageOutcome,
    PendingState,
};
use ferrosim_lpa::es9::{Es9Request, Es9Response};
use ferrosim_lpa::{Es10, Es10Options};
use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::ProfileStore;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config(path: DownloadPath) -> IpaConfig {
    IpaConfig {
        download_path: path,
        notification_retry: ferrosim_lpa::RetryPolicy::immediate(1),
        ..IpaConfig::default()
    }
}

/// One session of an IPA over `card` (channel opened and closed around it).
async fn session(
    lab: &Lab,
    card: &mut VirtualEuicc,
    eim: &impl EsipaClient,
    path: DownloadPath,
    state: PendingState,
    store: &mut MemoryStore,
) -> ferrosim_ipa::SessionReport {
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let mut ipa = Ipa::new(
        config(path),
        es10.link(),
        state,
        StdRng::seed_from_u64(1),
        Timestamp::now(),
    );
    let report = run_session(&mut ipa, es10.transport_mut(), eim, &lab.direct, store)
        .await
        .unwrap();
    let _ = es10.close();
    report
}

async fn order_state(lab: &Lab, iccid: &str) -> OrderState {
    lab.smdp
        .store
        .profile(&ferrosim_ids::Iccid::new(iccid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn triggers_install_directly_and_through_the_eim_then_packages_run() {
    let lab = Lab::start(2).await;
    let mut rng = StdRng::seed_from_u64(9);
    for (n, path) in [(0, DownloadPath::Direct), (1, DownloadPath::ViaEim)] {
        let eid = lab.eid(n);
        let mut card = lab.device(n).await;
        let (iccid, code) = lab.activation_code().await;
        lab.eim
            .eim
            .enqueue_download(
                &eid,
                &DownloadTrigger::ActivationCode(code),
                &mut rng,
                Timestamp::now(),
            )
            .await
            .unwrap();
        let mut store = MemoryStore::default();
        let report = session(
            &lab,
            &mut card,
            &lab.eim,
            path,
            PendingState::default(),
            &mut store,
        )
        .await;
        assert!(report.is_ok(), "{path:?}: {report:?}");
        assert_eq!(report.eid, Some(eid));
        assert!(
            matches!(&report.items[..], [ItemReport::Download { outcome: Ok(i), .. }] if *i == iccid),
            "{path:?}: {:?}",
            report.items
        );
        assert_eq!(report.pending, 0, "the trigger result was taken");
        assert_eq!(
            order_state(&lab, &iccid).await,
            OrderState::Installed,
            "{path:?}"
        );
        let results = lab.eim.eim.store().results(&eid).await.unwrap();
        assert!(
            matches!(&results[..], [r] if matches!(&r.outcome, ItemOutcome::Installed { ok: true, iccid: Some(i) } if i.as_str() == iccid)),
            "{results:?}"
        );

        // The five PSMOs of the operator, in one session.
        let profile = EimIccid::new(&iccid).unwrap();
        let operations = [
            Operation::Enable {
                iccid: profile.clone(),
                rollback: true,
            },
            Operation::ListProfiles,
            Operation::Disable {
                iccid: profile.clone(),
            },
            Operation::SetFallback {
                iccid: profile.clone(),
            },
            Operation::Delete {
                iccid: profile.clone(),
            },
        ];
        for op in operations {
            lab.eim
                .eim
                .enqueue_package(
                    &eid,
                    &PackageContent::Psmos(vec![op]),
                    &mut rng,
                    Timestamp::now(),
                )
                .await
                .unwrap();
        }
        let report = session(
            &lab,
            &mut card,
            &lab.eim,
            path,
            store.last.clone().unwrap(),
            &mut store,
        )
        .await;
        assert!(report.is_ok(), "{report:?}");
        let outcomes: Vec<&PackageOutcome> = report
            .items
            .iter()
            .map(|i| match i {
                ItemReport::Package { outcome, .. } => outcome,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(outcomes.len(), 5, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, PackageOutcome::Executed { .. })),
            "{outcomes:?}"
        );
        assert_eq!(report.acknowledged.len(), 5, "every result acknowledged");
        assert_eq!(report.pending, 0);
        let device = lab.eim.eim.device(&eid).await.unwrap();
        assert!(device.queue.is_empty());
        let results = lab.eim.eim.store().results(&eid).await.unwrap();
        assert_eq!(results.len(), 6);
        assert!(
            results[1..]
                .iter()
                .all(|r| r.trust == Some(ferrosim_eim::record::Trust::Verified)),
            "{results:?}"
        );
        // enable, list, disable ran (0 = ok); the profile is gone.
        match &results[1].outcome {
            ItemOutcome::Executed(codes) => assert_eq!(codes, &[Some(0)]),
            other => panic!("{other:?}"),
        }
        assert!(card.state().profiles.is_empty(), "deleted");
        let _ = ProfileState::Enabled;
    }
}

/// An eIM that loses the first ProvideEimPackageResult (as if the device
/// lost power right after the eUICC ran the package).
struct LosesFirstResult<'a> {
    inner: &'a common::LabEim,
    lost: std::sync::atomic::AtomicBool,
}

impl EsipaClient for LosesFirstResult<'_> {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        if matches!(request, EsipaRequest::ProvideEimPackageResult { .. })
            && !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(EsipaError::Unreachable {
                function: "provideEimPackageResult",
                reason: "power cut".into(),
            });
        }
        self.inner.send(request).await
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        self.inner.relay(request).await
    }
}

#[tokio::test]
async fn a_result_survives_a_power_cut_and_is_stored_once() {
    let lab = Lab::start(1).await;
    let mut rng = StdRng::seed_from_u64(3);
    let eid = lab.eid(0);
    let mut card = lab.device(0).await;
    lab.eim
        .eim
        .enqueue_package(
            &eid,
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            &mut rng,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let flaky = LosesFirstResult {
        inner: &lab.eim,
        lost: std::sync::atomic::AtomicBool::new(false),
    };
    let mut store = MemoryStore::default();
    let report = session(
        &lab,
        &mut card,
        &flaky,
        DownloadPath::Direct,
        PendingState::default(),
        &mut store,
    )
    .await;
    assert!(
        report.error.is_some(),
        "the session ends with the eIM unreachable"
    );
    assert_eq!(report.items.len(), 1, "the package ran");
    let persisted = store.last.clone().unwrap();
    assert_eq!(
        persisted.results.len(),
        1,
        "its result was persisted before sending"
    );
    assert_eq!(persisted.failures, 1);
    // After the power cut: a new IPA from what was on disk.
    let restored = PendingState::from_json(&persisted.to_json()).unwrap();
    let report = session(
        &lab,
        &mut card,
        &flaky,
        DownloadPath::Direct,
        restored,
        &mut store,
    )
    .await;
    assert!(report.is_ok(), "{report:?}");
    assert!(report.items.is_empty(), "nothing ran twice");
    assert_eq!(report.results_sent, 1);
    assert_eq!(report.acknowledged.len(), 1);
    assert_eq!(store.last.as_ref().unwrap().results.len(), 0);
    assert_eq!(store.last.as_ref().unwrap().failures, 0);
    let results = lab.eim.eim.store().results(&eid).await.unwrap();
    assert_eq!(results.len(), 1, "stored once: {results:?}");
    assert!(lab.eim.eim.device(&eid).await.unwrap().queue.is_empty());
}

/// An eIM nobody can reach.
struct Unreachable;

impl EsipaClient for Unreachable {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        Err(EsipaError::Unreachable {
            function: request.function(),
            reason: "connection refused".into(),
        })
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        request.failed(ferrosim_lpa::Es9ClientError::Setup("unreachable".into()))
    }
}

/// `run`: sessions as they fall due, until told to stop. Against an
/// unreachable eIM the failures count up (each session backs off), then
/// against the eIM a package queued meanwhile runs in the next session.
#[tokio::test]
async fn the_run_loop_backs_off_and_picks_up_new_work() {
    use ferrosim_ipa::driver::run;
    use std::time::Duration;
    let lab = Lab::start(1).await;
    let mut rng = StdRng::seed_from_u64(4);
    let eid = lab.eid(0);
    let mut card = lab.device(0).await;
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let config = IpaConfig {
        poll_interval: Duration::from_millis(50),
        backoff: ferrosim_ipa::Backoff {
            first: Duration::from_millis(20),
            max: Duration::from_millis(80),
        },
        deliver_notifications: false,
        ..IpaConfig::default()
    };
    let mut ipa = Ipa::new(
        config,
        es10.link(),
        PendingState::default(),
        StdRng::seed_from_u64(2),
        Timestamp::now(),
    );
    let mut store = MemoryStore::default();
    // Three failed sessions, then stop.
    let (tx, rx) = tokio::sync::watch::channel(0usize);
    let mut errors = Vec::new();
    run(
        &mut ipa,
        es10.transport_mut(),
        &Unreachable,
        &lab.direct,
        &mut store,
        async {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|n| *n >= 3).await;
        },
        |report| {
            errors.push(report.error.as_ref().map(ToString::to_string));
            tx.send_modify(|n| *n += 1);
        },
    )
    .await
    .unwrap();
    assert!(errors.len() >= 3);
    assert!(errors.iter().all(|e| {
        e.as_ref()
            .is_some_and(|e| e.contains("cannot reach the eIM"))
    }));
    assert!(store.last.as_ref().unwrap().failures >= 3);
    // The eIM is back and has a package.
    lab.eim
        .eim
        .enqueue_package(
            &eid,
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            &mut rng,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::watch::channel(0usize);
    let mut ran = 0;
    run(
        &mut ipa,
        es10.transport_mut(),
        &lab.eim,
        &lab.direct,
        &mut store,
        async {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|n| *n >= 1).await;
        },
        |report| {
            assert!(report.is_ok(), "{report:?}");
            ran += report.items.len();
            tx.send_modify(|n| *n += 1);
        },
    )
    .await
    .unwrap();
    assert_eq!(ran, 1);
    assert_eq!(store.last.as_ref().unwrap().failures, 0);
    assert!(lab.eim.eim.device(&eid).await.unwrap().queue.is_empty());
    let _ = es10.close();
}

/// An IpaEuiccDataRequest for everything the IPA can read: the eUICC's
/// info, certificates, addresses and notifications, and the device info,
/// reported to the eIM, which keeps them.
#[tokio::test]
async fn euicc_data_requests_are_answered_from_the_euicc() {
    use ferrosim_eim::DataItem;
    let lab = Lab::start(1).await;
    let mut rng = StdRng::seed_from_u64(8);
    let eid = lab.eid(0);
    let mut card = lab.device(0).await;
    lab.eim
        .eim
        .enqueue_data_request(&eid, &DataItem::ALL, &mut rng, Timestamp::now())
        .await
        .unwrap();
    let mut store = MemoryStore::default();
    let report = session(
        &lab,
        &mut card,
        &lab.eim,
        DownloadPath::Direct,
        PendingState::default(),
        &mut store,
    )
    .await;
    assert!(report.is_ok(), "{report:?}");
    match &report.items[..] {
        [ItemReport::EuiccData { tags }] => {
            for tag in [0xA0, 0xA2, 0x81, 0x83, 0xBF20, 0xBF22, 0xA5, 0xA6, 0xA9] {
                assert!(tags.contains(&tag), "{tag:X} asked: {tags:X?}");
            }
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.pending, 0);
    let device = lab.eim.eim.device(&eid).await.unwrap();
    assert!(device.queue.is_empty());
    let reported = &device.euicc;
    assert!(reported.info1.is_some(), "EUICCInfo1");
    assert!(reported.info2.is_some(), "EUICCInfo2");
    assert_eq!(
        reported.euicc_certificate.as_deref(),
        Some(lab.smdp.pki.euiccs[0].certificate.der()),
        "the eUICC certificate"
    );
    assert!(reported.eum_certificate.is_some());
    assert!(
        reported.root_smds_address.is_some(),
        "the root SM-DS address"
    );
    assert!(reported.device_info.is_some());
    let results = lab.eim.eim.store().results(&eid).await.unwrap();
    assert!(
        matches!(&results[..], [r] if matches!(r.outcome, ItemOutcome::DataReported(None))),
        "{results:?}"
    );
}

/// A result lost before it was persisted (the power went at the worst
/// moment): the eIM hands the package out again, the eUICC refuses to run it
/// twice (replayError), the eIM asks for the results the device still holds
/// (IpaEuiccDataRequest), and the package ends with that evidence; the
/// eUICC ran it once.
#[tokio::test]
async fn a_package_is_never_run_twice_even_when_its_result_is_lost() {
    let lab = Lab::start(1).await;
    let mut rng = StdRng::seed_from_u64(11);
    let eid = lab.eid(0);
    let mut card = lab.device(0).await;
    lab.eim
        .eim
        .enqueue_package(
            &eid,
            &PackageContent::Psmos(vec![Operation::ListProfiles]),
            &mut rng,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let flaky = LosesFirstResult {
        inner: &lab.eim,
        lost: std::sync::atomic::AtomicBool::new(false),
    };
    let mut store = MemoryStore::default();
    let report = session(
        &lab,
        &mut card,
        &flaky,
        DownloadPath::Direct,
        PendingState::default(),
        &mut store,
    )
    .await;
    assert!(report.error.is_some());
    // The state file is lost with the result in it.
    let report = session(
        &lab,
        &mut card,
        &lab.eim,
        DownloadPath::Direct,
        PendingState::default(),
        &mut store,
    )
    .await;
    assert!(report.is_ok(), "{report:?}");
    assert!(
        matches!(
            &report.items[..],
            [
                ItemReport::Package {
                    outcome: PackageOutcome::Refused { code: 4 },
                    ..
                },
                ItemReport::EuiccData { .. }
            ]
        ),
        "replayError, then the eIM's request for held results: {:?}",
        report.items
    );
    let results = lab.eim.eim.store().results(&eid).await.unwrap();
    assert!(
        matches!(&results[..], [r] if r.outcome == ItemOutcome::PackageError(4)),
        "{results:?}"
    );
    assert!(lab.eim.eim.device(&eid).await.unwrap().queue.is_empty());
}
