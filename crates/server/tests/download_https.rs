//! Whole activations over loopback HTTPS: ES2+ order, then the LPA with a
//! virtual eUICC against the running SM-DP+; the installed profile, the
//! order state and the operator's callbacks are checked. Failure paths:
//! confirmation codes, a profile downloaded once only, a tampered package, an
//! untrusted CI, a server restart between two steps, every fixture package.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine;
use ferrosim_asn1::json::es9::*;
use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{
    Consent, DownloadError, DownloadOutcome, DownloadRequest, download_profile,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::{Es9Function, function};
use ferrosim_lpa::{ActivationCode, Es9Client, Es9ClientError, Es10, Es10Options, SmdpAddress};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, ProfilePackage};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileRange, ProfileTypeImport};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass};
use ferrosim_smdp::order::ProfileState;
use ferrosim_smdp::store::{CatalogStore, OutboxStore, ProfileStore};
use ferrosim_smdp::time::Timestamp;
use ferrosim_testkit::{
    CallbackSink, OPERATOR, PROFILE_TYPE, TestSmdp, TestSmdpOptions, upp_fixtures,
};
use tokio::sync::Mutex;

fn client(smdp: &TestSmdp) -> HttpsEs9Client {
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap()
}

fn card(smdp: &TestSmdp, n: usize) -> VirtualEuicc {
    let eid = smdp.pki.eids()[n].to_string();
    VirtualEuicc::new(
        EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap(),
        EuiccState::default(),
    )
}

fn code(smdp: &TestSmdp, matching_id: &str, cc: bool) -> ActivationCode {
    ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(matching_id))
        .unwrap()
        .with_confirmation_code_required(cc)
}

async fn download<C: Es9Client>(
    card: &mut VirtualEuicc,
    es9: &C,
    ac: &ActivationCode,
    cc: Option<&str>,
) -> Result<DownloadOutcome, DownloadError> {
    let mut es10 = Es10::open(
        |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    download_profile(&mut es10, es9, &DownloadRequest::new(ac, cc), |_| {
        Consent::Accept
    })
    .await
}

async fn state(smdp: &TestSmdp, iccid: &str) -> ProfileState {
    smdp.store
        .profile(&Iccid::new(iccid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state
}

fn codes(e: &DownloadError) -> Option<(String, String)> {
    match &e.failure {
        ferrosim_lpa::download::DownloadFailure::Smdp(err) => err
            .status_codes()
            .map(|(s, r)| (s.to_owned(), r.to_owned())),
        _ => None,
    }
}

#[tokio::test]
async fn activation_installs_the_personalised_package_and_reports_to_the_operator() {
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        callback_url: Some(sink.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let (iccid, mid) = smdp.order(Some(&eid), None).await.unwrap();
    let mut euicc = card(&smdp, 0);
    let outcome = download(&mut euicc, &client(&smdp), &code(&smdp, &mid, false), None)
        .await
        .unwrap();
    assert_eq!(outcome.iccid, iccid);
    assert!(outcome.result_delivered);
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Installed);

    // The eUICC holds exactly the package the SM-DP+ personalised for this ICCID.
    let installed = &euicc.state().profiles[0];
    let template = smdp
        .store
        .profile_type(&OperatorId::new(OPERATOR).unwrap(), PROFILE_TYPE)
        .await
        .unwrap()
        .unwrap();
    let values = smdp
        .store
        .personalisation(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let expected = ProfilePackage::parse(&template.package)
        .unwrap()
        .personalise(&values)
        .unwrap();
    assert_eq!(
        installed.package_sha256,
        ferrosim_euicc::profile::package_digest(&expected)
    );
    assert_eq!(installed.iccid, iccid);
    assert_eq!(
        installed.k.as_deref(),
        values.k.as_ref().map(|k| &k.as_bytes()[..])
    );
    assert_eq!(
        installed.imsi.as_deref(),
        values.imsi.as_ref().map(|i| i.as_str())
    );

    // The operator heard of each step, the installation with its signed result.
    assert!(
        sink.wait_for(Duration::from_secs(10), |v| v.len() >= 3)
            .await,
        "{:?}",
        sink.received()
    );
    let got = sink.received();
    let points: Vec<i64> = got
        .iter()
        .map(|v| v["notificationPointId"].as_i64().unwrap())
        .collect();
    assert_eq!(points, vec![1, 3, 4]);
    for v in &got {
        assert_eq!(v["iccid"], iccid.as_str());
        assert_eq!(v["eid"], eid.as_str());
        assert_eq!(v["profileType"], PROFILE_TYPE);
        assert_eq!(v["notificationPointStatus"]["status"], "Executed-Success");
        assert!(
            v["header"]["functionCallIdentifier"]
                .as_str()
                .unwrap()
                .starts_with("ferrosim-callback-")
        );
    }
    let pir = base64::engine::general_purpose::STANDARD
        .decode(got[2]["resultData"].as_str().unwrap())
        .unwrap();
    assert_eq!(pir[..2], [0xBF, 0x37]);
    // The worker marks a callback once the operator answered it: wait for that.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while smdp.store.pending_callbacks().await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callbacks never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_profile_is_downloaded_once_only() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, mid) = smdp.order(None, None).await.unwrap();
    let es9 = client(&smdp);
    let mut first = card(&smdp, 0);
    download(&mut first, &es9, &code(&smdp, &mid, false), None)
        .await
        .unwrap();
    // Another device with the same activation code is refused.
    let mut second = card(&smdp, 1);
    let err = download(&mut second, &es9, &code(&smdp, &mid, false), None)
        .await
        .unwrap_err();
    assert_eq!(codes(&err), Some(("8.2.1".into(), "3.7".into())), "{err}");
    assert!(second.state().profiles.is_empty());
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Installed);
}

#[tokio::test]
async fn wrong_confirmation_codes_lock_the_order() {
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        callback_url: Some(sink.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (iccid, mid) = smdp.order(None, Some("4711")).await.unwrap();
    let es9 = client(&smdp);
    let ac = code(&smdp, &mid, true);
    // The default limit is 5 wrong codes.
    for attempt in 1..=5 {
        let mut euicc = card(&smdp, 0);
        let err = download(&mut euicc, &es9, &ac, Some("0000"))
            .await
            .unwrap_err();
        let expected = if attempt < 5 { "3.8" } else { "6.4" };
        assert_eq!(
            codes(&err),
            Some(("8.2.7".into(), expected.into())),
            "attempt {attempt}: {err}"
        );
        assert!(euicc.state().profiles.is_empty());
    }
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Error);
    // Now even the right code is refused.
    let mut euicc = card(&smdp, 0);
    assert!(download(&mut euicc, &es9, &ac, Some("4711")).await.is_err());
    assert!(
        sink.wait_for(Duration::from_secs(10), |v| v
            .iter()
            .any(|c| c["notificationPointId"] == 2
                && c["notificationPointStatus"]["statusCodeData"]["reasonCode"]
                    == "6.4"))
            .await
    );
}

#[tokio::test]
async fn right_confirmation_code_downloads() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, mid) = smdp.order(None, Some("4711")).await.unwrap();
    let mut euicc = card(&smdp, 0);
    download(
        &mut euicc,
        &client(&smdp),
        &code(&smdp, &mid, true),
        Some("4711"),
    )
    .await
    .unwrap();
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Installed);
}

/// An ES9+ client in front of another that can change the bound profile
/// package on its way, or restart the SM-DP+ before a step.
struct Meddler<C> {
    inner: C,
    tamper: bool,
    before_bpp: Option<Arc<dyn Fn() -> futures_lite_box::BoxFut + Send + Sync>>,
    done: AtomicBool,
}

mod futures_lite_box {
    pub type BoxFut = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

impl<C: Es9Client> Es9Client for Meddler<C> {
    async fn call<F: Es9Function>(
        &self,
        a: &SmdpAddress,
        r: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let bpp_call = F::NAME == function::GET_BOUND_PROFILE_PACKAGE;
        if bpp_call
            && let Some(hook) = &self.before_bpp
            && !self.done.swap(true, Ordering::SeqCst)
        {
            hook().await;
        }
        let mut resp = self.inner.call::<F>(a, r).await?;
        if bpp_call
            && self.tamper
            && let Some(resp) =
                (&mut resp as &mut dyn Any).downcast_mut::<GetBoundProfilePackageResponse>()
        {
            // Flip a byte near the end: inside the last encrypted profile segment.
            let bpp = &mut resp.bound_profile_package.0;
            let i = bpp.len() - 20;
            bpp[i] ^= 0x55;
        }
        Ok(resp)
    }
}

#[tokio::test]
async fn a_tampered_package_is_rejected_and_the_smdp_hears_of_it() {
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        callback_url: Some(sink.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let (iccid, mid) = smdp.order(None, None).await.unwrap();
    let es9 = Meddler {
        inner: client(&smdp),
        tamper: true,
        before_bpp: None,
        done: AtomicBool::new(false),
    };
    let mut euicc = card(&smdp, 0);
    let err = download(&mut euicc, &es9, &code(&smdp, &mid, false), None)
        .await
        .unwrap_err();
    assert!(
        euicc.state().profiles.is_empty(),
        "nothing installed: {err}"
    );
    // The eUICC's signed error result reached the SM-DP+: the order is in error with the eUICC's reason.
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Error);
    let rec = smdp
        .store
        .profile(&Iccid::new(&iccid).unwrap())
        .await
        .unwrap()
        .unwrap();
    let failure = rec.order.unwrap().failure.unwrap();
    assert!(
        failure.bpp_command_id.is_some() && failure.error_reason.is_some(),
        "{failure:?}"
    );
    assert!(
        sink.wait_for(Duration::from_secs(10), |v| v
            .iter()
            .any(|c| c["notificationPointId"] == 4
                && c["notificationPointStatus"]["status"] == "Failed"))
            .await
    );
}

#[tokio::test]
async fn an_smdp_with_certificates_of_an_untrusted_ci_is_refused() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, mid) = smdp.order(None, None).await.unwrap();
    // A rogue SM-DP+ on the same database and TLS identity, but whose DPauth and
    // DPpb certificates come from a CI the eUICCs do not know.
    let rogue_pki = TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("localhost:{}", listener.local_addr().unwrap().port());
    let mut config = ferrosim_server::sandbox::smdp_config(&rogue_pki, &address, None).unwrap();
    config.trust = smdp.pki.trust_store().unwrap();
    let rogue = ferrosim_server::start(
        listener,
        ferrosim_smdp::Smdp::new(config, smdp.store.clone()),
        ferrosim_server::ServerOptions::new(ferrosim_server::sandbox::tls_identity(&smdp.pki)),
    )
    .await
    .unwrap();
    let ac = ActivationCode::new(SmdpAddress::new(&address).unwrap(), Some(&mid)).unwrap();
    let mut euicc = card(&smdp, 0);
    let err = download(&mut euicc, &client(&smdp), &ac, None)
        .await
        .unwrap_err();
    // No DPauth certificate the eUICC can verify: refused before anything is signed for it.
    assert_eq!(codes(&err), Some(("8.8.4".into(), "3.7".into())), "{err}");
    assert!(euicc.state().profiles.is_empty());
    assert_eq!(
        state(&smdp, &iccid).await,
        ProfileState::Released,
        "the order is untouched"
    );
    rogue.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_restart_between_two_steps_loses_nothing() {
    let mut smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, mid) = smdp.order(None, None).await.unwrap();
    let port = smdp.address.rsplit(':').next().unwrap().to_owned();
    // Stop the server after authenticateClient and start a fresh instance on
    // the same port, with a new connection to the same database: nothing of the
    // session is kept in memory.
    let server = Arc::new(Mutex::new(smdp.server.take()));
    let sandbox_db = format!("sqlite:{}", smdp.dir.path().join("smdp.db").display());
    let config = ferrosim_server::sandbox::smdp_config(&smdp.pki, &smdp.address, None).unwrap();
    let tls = ferrosim_server::sandbox::tls_identity(&smdp.pki);
    let restarted: Arc<Mutex<Option<ferrosim_server::RunningServer>>> = Arc::new(Mutex::new(None));
    let hook = {
        let (server, restarted) = (Arc::clone(&server), Arc::clone(&restarted));
        let (db, port) = (sandbox_db.clone(), port.clone());
        Arc::new(move || -> futures_lite_box::BoxFut {
            let (server, restarted, db, port, config, tls) = (
                Arc::clone(&server),
                Arc::clone(&restarted),
                db.clone(),
                port.clone(),
                config.clone(),
                tls.clone(),
            );
            Box::pin(async move {
                if let Some(s) = server.lock().await.take() {
                    s.shutdown(Duration::from_secs(2)).await;
                }
                let store = ferrosim_store::SqlStore::connect(&db, &Default::default())
                    .await
                    .unwrap();
                let listener = loop {
                    match std::net::TcpListener::bind(format!("127.0.0.1:{port}")) {
                        Ok(l) => break l,
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                };
                let smdp = ferrosim_smdp::Smdp::new(config, store);
                let s = ferrosim_server::start(
                    listener,
                    smdp,
                    ferrosim_server::ServerOptions::new(tls),
                )
                .await
                .unwrap();
                *restarted.lock().await = Some(s);
            })
        }) as Arc<dyn Fn() -> futures_lite_box::BoxFut + Send + Sync>
    };
    let es9 = Meddler {
        inner: client(&smdp),
        tamper: false,
        before_bpp: Some(hook),
        done: AtomicBool::new(false),
    };
    let mut euicc = card(&smdp, 0);
    let outcome = download(&mut euicc, &es9, &code(&smdp, &mid, false), None)
        .await
        .unwrap();
    assert!(
        restarted.lock().await.is_some(),
        "the server was restarted mid-download"
    );
    assert_eq!(outcome.iccid, iccid);
    assert_eq!(state(&smdp, &iccid).await, ProfileState::Installed);
    if let Some(s) = restarted.lock().await.take() {
        s.shutdown(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn every_fixture_package_imports_personalises_and_downloads() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 4,
        profiles: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let op = OperatorId::new(OPERATOR).unwrap();
    let fixtures = upp_fixtures();
    assert!(
        fixtures.len() >= 3,
        "testdata/upp has the three TS.48 packages"
    );
    for (n, (name, package)) in fixtures.into_iter().enumerate() {
        let type_name = format!("fixture-{n}");
        inventory::import_profile_type(
            &smdp.store,
            ProfileTypeImport {
                operator: op.clone(),
                name: type_name.clone(),
                package,
                service_provider_name: None,
                profile_name: None,
                profile_class: ProfileClass::Operational,
                policy_rules: PolicyRules::default(),
                owner_mcc_mnc: None,
                fallback_allowed: false,
            },
            Timestamp::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let range = ProfileRange {
            count: 1,
            first_iccid: Iccid::from_body(&format!("89440000009900000{n}")).unwrap(),
            first_imsi: ferrosim_saip::Imsi::with_mnc_len(&format!("00101990000000{n}"), 2)
                .unwrap(),
        };
        inventory::generate_profiles(
            &smdp.store,
            &op,
            &type_name,
            &range,
            &mut rand::rng(),
            Timestamp::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, r) = smdp
            .es2(
                "downloadOrder",
                &serde_json::json!({"header": ferrosim_testkit::header(), "profileType": type_name}),
            )
            .await
            .unwrap();
        let iccid = r["iccid"].as_str().unwrap().to_owned();
        let (_, r) = smdp
            .es2(
                "confirmOrder",
                &serde_json::json!({"header": ferrosim_testkit::header(), "iccid": iccid, "releaseFlag": true}),
            )
            .await
            .unwrap();
        let mid = r["matchingId"].as_str().unwrap().to_owned();
        let mut euicc = card(&smdp, n);
        let outcome = download(&mut euicc, &client(&smdp), &code(&smdp, &mid, false), None)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outcome.iccid, iccid, "{name}");
        assert_eq!(
            state(&smdp, &iccid).await,
            ProfileState::Installed,
            "{name}"
        );
        assert_eq!(euicc.state().profiles[0].iccid, iccid, "{name}");
    }
}

/// Issue 15 item 16 end to end: after the download, the device enables,
/// disables and deletes the profile; the LPA delivers the eUICC's signed
/// notifications to the SM-DP+ over HTTPS, the order's device state follows
/// them (the order stays installed), and the operator receives each as a
/// `handleDownloadProgressInfo` with notification point 5, in order, with
/// the notification in `resultData`.
#[tokio::test]
async fn device_notifications_reach_the_operator_and_the_order() {
    use ferrosim_lpa::es10::types::ProfileId;
    use ferrosim_lpa::notifications::{RetryPolicy, process_notifications};
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        callback_url: Some(sink.url.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    let eid = smdp.pki.eids()[0].to_string();
    let (iccid, mid) = smdp.order(Some(&eid), None).await.unwrap();
    let mut euicc = card(&smdp, 0);
    let es9 = client(&smdp);
    download(&mut euicc, &es9, &code(&smdp, &mid, false), None)
        .await
        .unwrap();
    let profile = |smdp: &TestSmdp| {
        let store = smdp.store.clone();
        let iccid = Iccid::new(&iccid).unwrap();
        async move { store.profile(&iccid).await.unwrap().unwrap() }
    };
    assert_eq!(profile(&smdp).await.device_state(), Some("installed"));

    let id = ProfileId::Iccid(Iccid::new(&iccid).unwrap());
    let mut es10 = Es10::open(
        |apdu: &[u8]| euicc.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap();
    let deliver = async |es10: &mut Es10<_>| {
        let report = process_notifications(es10, &es9, None, &RetryPolicy::immediate(2))
            .await
            .unwrap();
        assert!(report.undelivered.is_empty(), "{:?}", report.undelivered);
    };
    es10.enable_profile(&id, false).unwrap();
    deliver(&mut es10).await;
    assert_eq!(profile(&smdp).await.device_state(), Some("enabled"));
    es10.disable_profile(&id, false).unwrap();
    es10.delete_profile(&id).unwrap();
    deliver(&mut es10).await;
    let p = profile(&smdp).await;
    assert_eq!(p.device_state(), Some("deleted"));
    assert_eq!(p.state, ProfileState::Installed);

    assert!(
        sink.wait_for(Duration::from_secs(10), |v| v.len() >= 6)
            .await,
        "{:?}",
        sink.received()
    );
    let got = sink.received();
    let points: Vec<i64> = got
        .iter()
        .map(|v| v["notificationPointId"].as_i64().unwrap())
        .collect();
    assert_eq!(points, vec![1, 3, 4, 5, 5, 5]);
    for v in &got[3..] {
        assert_eq!(v["iccid"], iccid.as_str());
        assert_eq!(v["eid"], eid.as_str());
        assert_eq!(v["notificationPointStatus"]["status"], "Executed-Success");
        let signed = base64::engine::general_purpose::STANDARD
            .decode(v["resultData"].as_str().unwrap())
            .unwrap();
        assert_eq!(signed[0], 0x30, "an OtherSignedNotification");
    }
}
