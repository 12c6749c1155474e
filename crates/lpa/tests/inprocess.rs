//! The LPA end to end without sockets: in-process transport to a virtual
//! eUICC, in-process ES9+ to a real `Smdp` over a temporary SQLite store.
//! Also one download over HTTPS against the loopback SM-DP+, to exercise the
//! HTTPS client with the test CI as its only trust anchor.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_lpa::download::{
    Consent, DownloadFailure, DownloadRequest, Step, download_profile, download_profile_asking,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::es9::{Es9Function, function};
use ferrosim_lpa::es10::types::{
    CancelSessionReason, NotificationOperation, ProfileId, ProfileState,
};
use ferrosim_lpa::notifications::{NotificationFailure, RetryPolicy, process_notifications};
use ferrosim_lpa::{ActivationCode, Es9Client, Es9ClientError, Es10, Es10Options, SmdpAddress};
use ferrosim_saip::{Iccid, ProfilePackage};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::{CatalogStore, ProfileStore};
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::SqlStore;
use ferrosim_testkit::{OPERATOR, PROFILE_TYPE, TestSmdp, TestSmdpOptions};

/// A virtual eUICC of the test PKI, reachable through a closure.
fn euicc(smdp: &TestSmdp) -> VirtualEuicc {
    let eid = smdp.pki.eids()[0].to_string();
    let identity = EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap();
    VirtualEuicc::new(identity, EuiccState::default())
}

fn es10(card: &mut VirtualEuicc) -> Es10<impl FnMut(&[u8]) -> Vec<u8> + '_> {
    Es10::open(
        move |apdu: &[u8]| card.handle_apdu(apdu, SystemTime::now()),
        &Es10Options::default(),
    )
    .unwrap()
}

fn code(smdp: &TestSmdp, matching_id: &str) -> ActivationCode {
    ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(matching_id)).unwrap()
}

async fn order_state(store: &SqlStore, iccid: &str) -> OrderState {
    store
        .profile(&Iccid::new(iccid).unwrap())
        .await
        .unwrap()
        .unwrap()
        .state
}

/// The package the SM-DP+ personalised for `iccid`.
async fn personalised_package(store: &SqlStore, iccid: &str) -> Vec<u8> {
    let iccid = Iccid::new(iccid).unwrap();
    let template = store
        .profile_type(&OperatorId::new(OPERATOR).unwrap(), PROFILE_TYPE)
        .await
        .unwrap()
        .unwrap()
        .package;
    let values = store.personalisation(&iccid).await.unwrap().unwrap();
    ProfilePackage::parse(&template)
        .unwrap()
        .personalise(&values)
        .unwrap()
}

#[tokio::test]
async fn full_download_installs_the_personalised_package() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let mut card = euicc(&smdp);
    let ac = code(&smdp, &matching_id);
    let mut shown = Vec::new();
    let outcome = {
        let mut es10 = es10(&mut card);
        let outcome = download_profile(&mut es10, &es9, &DownloadRequest::new(&ac, None), |m| {
            shown.push(m.clone());
            Consent::Accept
        })
        .await
        .unwrap();
        let profiles = es10.get_profiles_info(None).unwrap();
        assert_eq!(profiles.len(), 1);
        assert_eq!(profiles[0].iccid.as_deref(), Some(iccid.as_str()));
        assert_eq!(profiles[0].state, Some(ProfileState::Disabled));
        assert!(
            es10.list_notifications().unwrap().is_empty(),
            "the acknowledged installation result is removed"
        );
        let _card = es10.close().unwrap();
        outcome
    };
    assert_eq!(outcome.iccid, iccid);
    assert!(outcome.result_delivered);
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].iccid, iccid);
    let profile_type = smdp
        .store
        .profile_type(&OperatorId::new(OPERATOR).unwrap(), PROFILE_TYPE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        shown[0].service_provider_name,
        profile_type.metadata.service_provider_name
    );
    assert_eq!(shown[0].profile_name, profile_type.metadata.profile_name);
    let steps: Vec<Step> = outcome.timings.iter().map(|t| t.step).collect();
    assert_eq!(
        steps,
        vec![
            Step::GetEuiccChallenge,
            Step::GetEuiccInfo1,
            Step::InitiateAuthentication,
            Step::AuthenticateServer,
            Step::AuthenticateClient,
            Step::ConfirmProfile,
            Step::PrepareDownload,
            Step::GetBoundProfilePackage,
            Step::LoadBoundProfilePackage,
            Step::HandleNotification,
            Step::RemoveNotification,
        ]
    );
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );
    let installed = card.state().profile(&iccid).unwrap();
    assert_eq!(
        installed.package_sha256,
        ferrosim_euicc::profile::package_digest(&personalised_package(&smdp.store, &iccid).await)
    );
}

#[tokio::test]
async fn download_over_https_trusting_only_the_test_ci() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let mut card = euicc(&smdp);
    let ac = code(&smdp, &matching_id);
    let outcome = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap();
    assert_eq!(outcome.iccid, iccid);
    assert!(outcome.result_delivered);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );

    // A client trusting another CI refuses the SM-DP+'s certificate.
    let other = ferrosim_pki::TestPki::generate(&ferrosim_pki::TestPkiOptions::default()).unwrap();
    let roots = TlsTrust::roots_from_bytes(other.ci.certificate_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let (_, matching_id) = smdp.order(None, None).await.unwrap();
    let ac = code(&smdp, &matching_id);
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert_eq!(e.step, Step::InitiateAuthentication);
    assert!(matches!(
        e.failure,
        DownloadFailure::Smdp(Es9ClientError::Unreachable { .. })
    ));
    assert!(e.cancellation.is_none(), "no session was opened");
}

#[tokio::test]
async fn confirmation_codes() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let mut card = euicc(&smdp);
    let (iccid, matching_id) = smdp.order(None, Some("4711")).await.unwrap();
    let ac = code(&smdp, &matching_id).with_confirmation_code_required(true);

    // A wrong code: the SM-DP+ refuses the package, both sides cancel, the order stays open.
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, Some("0000")),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert_eq!(e.step, Step::GetBoundProfilePackage);
    let DownloadFailure::Smdp(failure) = &e.failure else {
        panic!("{e}")
    };
    assert_eq!(failure.status_codes(), Some(("8.2.7", "3.8")));
    let cancellation = e.cancellation.as_ref().unwrap();
    assert_eq!(cancellation.reason, CancelSessionReason::UndefinedReason);
    assert!(cancellation.euicc_error.is_none(), "{cancellation}");

    // The right code then works on the same order.
    let outcome = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, Some("4711")),
        |_| Consent::Accept,
    )
    .await
    .unwrap();
    assert_eq!(outcome.iccid, iccid);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );

    // No code at all and nobody to ask: the LPA postpones (not
    // endUserRejection, which would end the order), so the order stays open.
    let (iccid, matching_id) = smdp.order(None, Some("4711")).await.unwrap();
    let ac = code(&smdp, &matching_id);
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e.failure, DownloadFailure::ConfirmationCodeRequired),
        "{e}"
    );
    assert_eq!(e.step, Step::ConfirmProfile);
    let cancellation = e.cancellation.as_ref().unwrap();
    assert_eq!(cancellation.reason, CancelSessionReason::Postponed);
    assert!(cancellation.completed(), "{cancellation}");
    assert_ne!(order_state(&smdp.store, &iccid).await, OrderState::Error);

    // The end user is asked, gives nothing (blank): postponed again.
    let mut asked = Vec::new();
    let e = download_profile_asking(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
        |m| {
            asked.push(m.iccid.clone());
            Some("  ".into())
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(
        e.failure,
        DownloadFailure::ConfirmationCodeRequired
    ));
    assert_eq!(
        e.cancellation.as_ref().map(|c| c.reason),
        Some(CancelSessionReason::Postponed)
    );
    assert_eq!(asked, vec![iccid.clone()]);

    // Asked again, the end user gives the code: the same order installs.
    let outcome = download_profile_asking(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
        |_| Some("4711".into()),
    )
    .await
    .unwrap();
    assert_eq!(outcome.iccid, iccid);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );
}

#[tokio::test]
async fn refused_and_postponed_by_the_end_user() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let mut card = euicc(&smdp);
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let ac = code(&smdp, &matching_id);

    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Postpone,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.failure, DownloadFailure::UserPostponed));
    assert_eq!(
        e.cancellation.as_ref().unwrap().reason,
        CancelSessionReason::Postponed
    );
    assert!(e.cancellation.as_ref().unwrap().completed());
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Released,
        "postponed orders stay open"
    );

    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Reject,
    )
    .await
    .unwrap_err();
    assert!(matches!(e.failure, DownloadFailure::UserRejected));
    assert_eq!(
        e.cancellation.as_ref().unwrap().reason,
        CancelSessionReason::EndUserRejection
    );
    assert_eq!(order_state(&smdp.store, &iccid).await, OrderState::Error);
    assert!(card.state().profiles.is_empty());
}

#[tokio::test]
async fn cancelled_order_is_refused() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let (status, body) = smdp
        .es2(
            "cancelOrder",
            &serde_json::json!({
                "header": ferrosim_testkit::header(),
                "iccid": iccid,
                "finalProfileStatusIndicator": "Available",
            }),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let mut card = euicc(&smdp);
    let ac = code(&smdp, &matching_id);
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert_eq!(e.step, Step::AuthenticateClient);
    assert!(
        matches!(
            e.failure,
            DownloadFailure::Smdp(Es9ClientError::Failed { .. })
        ),
        "{e}"
    );
    let cancellation = e.cancellation.as_ref().unwrap();
    assert_eq!(cancellation.reason, CancelSessionReason::UndefinedReason);
    assert!(
        cancellation.euicc_error.is_none(),
        "the eUICC closed its session: {cancellation}"
    );
    assert!(card.state().profiles.is_empty());
}

#[tokio::test]
async fn expired_order_is_refused() {
    let smdp = TestSmdp::start(TestSmdpOptions {
        order_ttl: Some(Duration::from_secs(3600)),
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    // The SM-DP+ lives two hours later than the order.
    let later = Arc::new(|| Timestamp::now().plus(Duration::from_secs(2 * 3600)));
    let es9 = InProcessEs9::with_clock(smdp.smdp.clone(), later);
    let mut card = euicc(&smdp);
    let ac = code(&smdp, &matching_id);
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert_eq!(e.step, Step::AuthenticateClient);
    let DownloadFailure::Smdp(failure) = &e.failure else {
        panic!("{e}")
    };
    assert_eq!(failure.status_codes(), Some(("8.8.5", "4.10")), "{failure}");
    assert_eq!(order_state(&smdp.store, &iccid).await, OrderState::Expired);
}

#[tokio::test]
async fn wrong_address_or_oid_is_refused() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let mut card = euicc(&smdp);
    let (_, matching_id) = smdp.order(None, None).await.unwrap();

    let ac = code(&smdp, &matching_id).with_smdp_oid("1.2.3.4").unwrap();
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e.failure, DownloadFailure::SmdpOidMismatch { .. }),
        "{e}"
    );
    assert!(e.cancellation.as_ref().unwrap().euicc_error.is_none());

    let ac = ActivationCode::new(
        SmdpAddress::new("elsewhere.example.com").unwrap(),
        Some(&matching_id),
    )
    .unwrap();
    let e = download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap_err();
    assert!(matches!(
        e.failure,
        DownloadFailure::Smdp(Es9ClientError::UnknownAddress(_))
    ));
}

/// An ES9+ client whose handleNotification fails (transiently) a number of
/// times before it reaches the SM-DP+.
struct Flaky<C> {
    inner: C,
    failures_left: AtomicU32,
    calls: AtomicU32,
}

impl<C> Flaky<C> {
    fn new(inner: C, failures: u32) -> Self {
        Self {
            inner,
            failures_left: AtomicU32::new(failures),
            calls: AtomicU32::new(0),
        }
    }
}

impl<C: Es9Client> Es9Client for Flaky<C> {
    async fn call<F: Es9Function>(
        &self,
        a: &SmdpAddress,
        r: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        if F::NAME == function::HANDLE_NOTIFICATION {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let left = self.failures_left.load(Ordering::SeqCst);
            if left > 0 {
                self.failures_left.store(left - 1, Ordering::SeqCst);
                return Err(Es9ClientError::Unreachable {
                    function: F::NAME,
                    address: a.to_string(),
                    reason: "network down (test)".into(),
                });
            }
        }
        self.inner.call::<F>(a, r).await
    }
}

#[tokio::test]
async fn installation_result_retried_until_acknowledged() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let mut card = euicc(&smdp);
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let ac = code(&smdp, &matching_id);

    // The installation result fails 3 times, the 4th attempt goes through.
    let es9 = Flaky::new(InProcessEs9::new(smdp.smdp.clone()), 3);
    let mut request = DownloadRequest::new(&ac, None);
    request.notification_retry = RetryPolicy::immediate(4);
    let outcome = download_profile(&mut es10(&mut card), &es9, &request, |_| Consent::Accept)
        .await
        .unwrap();
    assert!(outcome.result_delivered);
    assert_eq!(es9.calls.load(Ordering::SeqCst), 4);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );
}

#[tokio::test]
async fn other_notifications_survive_failures_until_acknowledged() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let mut card = euicc(&smdp);
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let ac = code(&smdp, &matching_id);
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    download_profile(
        &mut es10(&mut card),
        &es9,
        &DownloadRequest::new(&ac, None),
        |_| Consent::Accept,
    )
    .await
    .unwrap();

    // Enable, disable: two notifications. The network stays down for 5 attempts.
    let id = ProfileId::Iccid(Iccid::new(&iccid).unwrap());
    {
        let mut es10 = es10(&mut card);
        es10.enable_profile(&id, false).unwrap();
        es10.disable_profile(&id, false).unwrap();
    }
    let es9 = Flaky::new(InProcessEs9::new(smdp.smdp.clone()), 5);
    let report =
        process_notifications(&mut es10(&mut card), &es9, None, &RetryPolicy::immediate(2))
            .await
            .unwrap();
    // First: 2 failed attempts; second: 2 failed attempts. Nothing delivered, nothing lost.
    assert!(report.delivered.is_empty());
    assert_eq!(report.undelivered.len(), 2);
    for u in &report.undelivered {
        assert!(
            matches!(
                u.failure,
                NotificationFailure::NotAcknowledged { attempts: 2, .. }
            ),
            "{}",
            u.failure
        );
    }
    assert_eq!(
        card.state().notifications.len(),
        2,
        "both stay on the eUICC"
    );

    // One more failure, then the network is back: both go out, in order, and are removed.
    let report =
        process_notifications(&mut es10(&mut card), &es9, None, &RetryPolicy::immediate(3))
            .await
            .unwrap();
    assert!(report.is_complete(), "{:?}", report.undelivered);
    let ops: Vec<Option<NotificationOperation>> = report
        .delivered
        .iter()
        .map(|d| d.metadata.operation)
        .collect();
    assert_eq!(
        ops,
        vec![
            Some(NotificationOperation::Enable),
            Some(NotificationOperation::Disable)
        ]
    );
    assert_eq!(report.delivered[0].attempts, 2);
    assert_eq!(report.delivered[1].attempts, 1);
    assert!(card.state().notifications.is_empty());
}

#[tokio::test]
async fn installation_result_kept_when_never_acknowledged() {
    let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
    let mut card = euicc(&smdp);
    let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
    let ac = code(&smdp, &matching_id);
    let es9 = Flaky::new(InProcessEs9::new(smdp.smdp.clone()), 100);
    let mut request = DownloadRequest::new(&ac, None);
    request.notification_retry = RetryPolicy::immediate(3);
    let outcome = download_profile(&mut es10(&mut card), &es9, &request, |_| Consent::Accept)
        .await
        .unwrap();
    assert!(!outcome.result_delivered);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Downloaded
    );
    let pending = es10(&mut card).list_notifications().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].operation, Some(NotificationOperation::Install));

    // Later, with a working network, the result reaches the SM-DP+.
    let es9 = InProcessEs9::new(smdp.smdp.clone());
    let report =
        process_notifications(&mut es10(&mut card), &es9, None, &RetryPolicy::immediate(1))
            .await
            .unwrap();
    assert_eq!(report.delivered.len(), 1);
    assert_eq!(
        order_state(&smdp.store, &iccid).await,
        OrderState::Installed
    );
    assert!(card.state().notifications.is_empty());
}
