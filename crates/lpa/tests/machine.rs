//! The download state machine driven by hand: the test is the driver. It
//! hands the machine's APDUs to a virtual eUICC and its ES9+ calls to a real
//! in-process SM-DP+ (or answers them itself, badly), and moves a manual
//! clock; nothing sleeps. Covers a download whose installation result is
//! delivered after two failures with exponential backoff, an unanswered
//! ES9+ call that cancels the session with reason `timeout`, and answers
//! that are garbage, late, or of the wrong function.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrosim_euicc::{EuiccIdentity, EuiccState, VirtualEuicc};
use ferrosim_ids::{Clock, ManualClock, Timestamp};
use ferrosim_lpa::TransportError;
use ferrosim_lpa::download::{
    Action, Consent, DEFAULT_ES9_TIMEOUT, Download, DownloadError, DownloadFailure,
    DownloadOutcome, DownloadRequest, Step,
};
use ferrosim_lpa::es9::inprocess::InProcessEs9;
use ferrosim_lpa::es9::{Es9Call, Es9Response, function};
use ferrosim_lpa::es10::Es10Link;
use ferrosim_lpa::es10::types::CancelSessionReason;
use ferrosim_lpa::{ActivationCode, Es9ClientError, Es10, Es10Options, SmdpAddress, Transport};
use ferrosim_smdp::order::ProfileState as OrderState;
use ferrosim_smdp::store::ProfileStore;
use ferrosim_store::SqlStore;
use ferrosim_testkit::{TestSmdp, TestSmdpOptions};

/// Virtual time each ES9+ round trip takes.
const ES9_LATENCY: Duration = Duration::from_millis(10);

/// The APDU transport to the virtual eUICC.
type CardTransport = Box<dyn FnMut(&[u8]) -> Vec<u8> + Send>;

/// A virtual eUICC whose clock is the test's, with the ISD-R selected on
/// a logical channel.
struct Card {
    es10: Es10<CardTransport>,
}

impl Card {
    fn new(smdp: &TestSmdp, clock: &ManualClock) -> Self {
        let eid = smdp.pki.eids()[0].to_string();
        let identity = EuiccIdentity::load_from_dir(&smdp.pki_dir, Some(&eid)).unwrap();
        let card = Arc::new(Mutex::new(VirtualEuicc::new(
            identity,
            EuiccState::default(),
        )));
        let clock = clock.clone();
        let transport: CardTransport = Box::new(move |apdu: &[u8]| {
            card.lock()
                .unwrap()
                .handle_apdu(apdu, clock.now().to_system_time())
        });
        Self {
            es10: Es10::open(transport, &Es10Options::default()).unwrap(),
        }
    }

    fn link(&self) -> Es10Link {
        self.es10.link()
    }

    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.es10.transport_mut().transmit(apdu)
    }
}

struct Rig {
    smdp: TestSmdp,
    es9: InProcessEs9<SqlStore>,
    clock: ManualClock,
    code: ActivationCode,
    iccid: String,
    /// The machines' ES9+ timeout.
    es9_timeout: Duration,
}

impl Rig {
    async fn new() -> Self {
        let smdp = TestSmdp::start(TestSmdpOptions::default()).await.unwrap();
        let (iccid, matching_id) = smdp.order(None, None).await.unwrap();
        let code =
            ActivationCode::new(SmdpAddress::new(&smdp.address).unwrap(), Some(&matching_id))
                .unwrap();
        let clock = ManualClock::new(Timestamp::now());
        let smdp_clock = clock.clone();
        Self {
            // The SM-DP+ runs on the test's clock too.
            es9: InProcessEs9::with_clock(smdp.smdp.clone(), Arc::new(move || smdp_clock.now())),
            clock,
            code,
            iccid,
            es9_timeout: DEFAULT_ES9_TIMEOUT,
            smdp,
        }
    }

    /// The SM-DP+'s answer to `call`, `ES9_LATENCY` later.
    async fn answer(&self, call: &Es9Call) -> (Es9Response, Timestamp) {
        let response = call.request.send(&self.es9, &call.address).await;
        (response, self.clock.advance(ES9_LATENCY))
    }

    async fn order_state(&self) -> OrderState {
        let store: &SqlStore = &self.smdp.store;
        store
            .profile(&ferrosim_saip::Iccid::new(&self.iccid).unwrap())
            .await
            .unwrap()
            .unwrap()
            .state
    }
}

/// Feeds the machine until it asks for something `stop` wants to handle
/// itself (returned), answering APDUs with the card, ES9+ calls with the
/// SM-DP+ and the confirmation with Accept; `Done` always stops.
async fn run_until(
    machine: &mut Download,
    card: &mut Card,
    rig: &Rig,
    mut stop: impl FnMut(&Action) -> bool,
) -> Action {
    let es9_timeout = rig.es9_timeout;
    loop {
        let action = machine
            .poll()
            .expect("the machine always has an action or waits for a deadline");
        if stop(&action) || matches!(action, Action::Done(_)) {
            return action;
        }
        match action {
            Action::Transmit(apdu) => {
                let response = card.transmit(&apdu);
                machine.handle_apdu_response(response, rig.clock.now());
            }
            Action::Es9(call) => {
                assert_eq!(
                    machine.poll_timeout(),
                    Some(rig.clock.now().plus(es9_timeout)),
                    "every ES9+ call has its deadline"
                );
                let (response, now) = rig.answer(&call).await;
                machine.handle_es9_response(call.id, response, now);
            }
            Action::Confirm(_) => machine.handle_consent(Consent::Accept, rig.clock.now()),
            Action::ConfirmationCode(_) => machine.handle_confirmation_code(None, rig.clock.now()),
            Action::WaitUntil(t) => {
                rig.clock.set(t);
                machine.handle_timeout(t);
            }
            Action::Done(_) => unreachable!(),
        }
    }
}

fn done(action: Action) -> Result<DownloadOutcome, DownloadError> {
    match action {
        Action::Done(result) => *result,
        other => panic!("expected the end, got {other:?}"),
    }
}

fn es9_call(action: Action, name: &str) -> Es9Call {
    match action {
        Action::Es9(call) if call.request.name() == name => call,
        other => panic!("expected {name}, got {other:?}"),
    }
}

fn is_es9(name: &'static str) -> impl FnMut(&Action) -> bool {
    move |a| matches!(a, Action::Es9(call) if call.request.name() == name)
}

fn unreachable_smdp(call: &Es9Call) -> Es9Response {
    call.request.failed(Es9ClientError::Unreachable {
        function: call.request.name(),
        address: call.address.to_string(),
        reason: "network down (test)".into(),
    })
}

#[tokio::test]
async fn download_by_hand_with_installation_result_backoff() {
    let rig = Rig::new().await;
    let mut card = Card::new(&rig.smdp, &rig.clock);
    let request = DownloadRequest::new(&rig.code, None);
    let mut machine = Download::new(&request, card.link(), rig.clock.now());
    assert_eq!(machine.step(), Some(Step::GetEuiccChallenge));

    // Everything up to the installation result runs normally.
    let call = es9_call(
        run_until(
            &mut machine,
            &mut card,
            &rig,
            is_es9(function::HANDLE_NOTIFICATION),
        )
        .await,
        function::HANDLE_NOTIFICATION,
    );
    assert_eq!(rig.order_state().await, OrderState::Downloaded);

    // The first attempt fails: wait 500 ms (the default policy's first delay).
    let now = rig.clock.advance(ES9_LATENCY);
    machine.handle_es9_response(call.id, unreachable_smdp(&call), now);
    let first_wait = now.plus(Duration::from_millis(500));
    assert!(matches!(machine.poll(), Some(Action::WaitUntil(t)) if t == first_wait));
    assert_eq!(machine.poll_timeout(), Some(first_wait));
    // Too early: nothing happens; the wait is handed out again.
    machine.handle_timeout(first_wait.minus(Duration::from_millis(1)));
    assert!(matches!(machine.poll(), Some(Action::WaitUntil(t)) if t == first_wait));
    rig.clock.set(first_wait);
    machine.handle_timeout(first_wait);
    let call = es9_call(machine.poll().unwrap(), function::HANDLE_NOTIFICATION);

    // The second attempt fails: the wait doubles to 1 s.
    let now = rig.clock.advance(ES9_LATENCY);
    machine.handle_es9_response(call.id, unreachable_smdp(&call), now);
    let second_wait = now.plus(Duration::from_secs(1));
    assert!(matches!(machine.poll(), Some(Action::WaitUntil(t)) if t == second_wait));
    rig.clock.set(second_wait);
    machine.handle_timeout(second_wait);

    // The third attempt goes through; the result is then removed from the eUICC.
    let outcome = done(run_until(&mut machine, &mut card, &rig, |_| false).await).unwrap();
    assert!(machine.is_finished());
    assert!(machine.poll().is_none(), "Done is handed out once");
    assert!(outcome.result_delivered);
    assert_eq!(outcome.iccid, rig.iccid);
    assert_eq!(rig.order_state().await, OrderState::Installed);
    assert!(card.es10.list_notifications().unwrap().is_empty());

    // Step durations come from the manual clock: three ES9+ round trips
    // and the two waits for the installation result.
    let notify = outcome
        .timings
        .iter()
        .find(|t| t.step == Step::HandleNotification)
        .unwrap();
    assert_eq!(
        notify.elapsed,
        3 * ES9_LATENCY + Duration::from_millis(1500)
    );
    let steps: Vec<Step> = outcome.timings.iter().map(|t| t.step).collect();
    assert_eq!(steps.first(), Some(&Step::GetEuiccChallenge));
    assert_eq!(steps.last(), Some(&Step::RemoveNotification));
}

#[tokio::test]
async fn unanswered_es9_call_cancels_with_reason_timeout() {
    let mut rig = Rig::new().await;
    rig.es9_timeout = Duration::from_secs(30);
    let mut card = Card::new(&rig.smdp, &rig.clock);
    let request = DownloadRequest::new(&rig.code, None);
    let mut machine =
        Download::new(&request, card.link(), rig.clock.now()).with_es9_timeout(rig.es9_timeout);

    let call = es9_call(
        run_until(
            &mut machine,
            &mut card,
            &rig,
            is_es9(function::AUTHENTICATE_CLIENT),
        )
        .await,
        function::AUTHENTICATE_CLIENT,
    );
    // The SM-DP+ answers, but the answer is lost on the way.
    let (lost, _) = rig.answer(&call).await;
    let deadline = machine.poll_timeout().unwrap();
    assert_eq!(
        deadline,
        rig.clock
            .now()
            .minus(ES9_LATENCY)
            .plus(Duration::from_secs(30))
    );
    assert!(machine.poll().is_none(), "waiting for the answer");
    machine.handle_timeout(deadline.minus(Duration::from_millis(1)));
    assert!(machine.poll().is_none(), "not yet");

    rig.clock.set(deadline);
    machine.handle_timeout(deadline);
    // ES10b CancelSession on the eUICC, then ES9+ cancelSession with its
    // signed answer, both carried out for real.
    let mut cancel_sent = false;
    let result = run_until(&mut machine, &mut card, &rig, |a| {
        cancel_sent |= matches!(a, Action::Es9(c) if c.request.name() == function::CANCEL_SESSION);
        false
    })
    .await;
    let error = done(result).unwrap_err();
    assert!(cancel_sent);
    assert_eq!(error.step, Step::AuthenticateClient);
    assert!(
        matches!(&error.failure, DownloadFailure::Smdp(Es9ClientError::Timeout { function, .. }) if *function == function::AUTHENTICATE_CLIENT),
        "{}",
        error.failure
    );
    let cancellation = error.cancellation.as_ref().unwrap();
    assert_eq!(cancellation.reason, CancelSessionReason::Timeout);
    assert!(cancellation.completed(), "{cancellation}");
    assert_ne!(rig.order_state().await, OrderState::Installed);

    // The lost answer turns up late: dropped, the machine stays finished.
    machine.handle_es9_response(call.id, lost, rig.clock.now());
    assert!(machine.is_finished());
    assert!(machine.poll().is_none());
}

#[tokio::test]
async fn garbage_from_the_euicc_ends_before_any_session() {
    let rig = Rig::new().await;
    let card = Card::new(&rig.smdp, &rig.clock);
    let request = DownloadRequest::new(&rig.code, None);
    let garbage: Vec<Result<Vec<u8>, TransportError>> = vec![
        Ok(vec![0x90]),                                           // shorter than a status word
        Ok(vec![0x6A, 0x88]),                                     // refused
        Ok(vec![0x01, 0x02, 0x03, 0x90, 0x00]),                   // not the BF2E answer
        Ok(vec![0xBF, 0x2E, 0x03, 0x80, 0x01, 0x00, 0x90, 0x00]), // 1-byte challenge
        Err(TransportError::NoReader),
    ];
    for response in garbage {
        let mut machine = Download::new(&request, card.link(), rig.clock.now());
        assert!(matches!(machine.poll(), Some(Action::Transmit(_))));
        // Things nobody asked for are dropped without effect.
        machine.handle_consent(Consent::Accept, rig.clock.now());
        machine.handle_timeout(rig.clock.now().plus(Duration::from_secs(3600)));
        assert!(machine.poll().is_none() && !machine.is_finished());

        machine.handle_apdu_response(response, rig.clock.now());
        let error = done(machine.poll().unwrap()).unwrap_err();
        assert_eq!(error.step, Step::GetEuiccChallenge);
        assert!(
            matches!(error.failure, DownloadFailure::Euicc(_)),
            "{}",
            error.failure
        );
        assert!(error.cancellation.is_none(), "no session to cancel yet");
    }
}

#[tokio::test]
async fn bad_smdp_answers_cancel_the_session() {
    let rig = Rig::new().await;
    let mut card = Card::new(&rig.smdp, &rig.clock);
    let request = DownloadRequest::new(&rig.code, None);
    let mut machine = Download::new(&request, card.link(), rig.clock.now());
    let call = es9_call(
        run_until(
            &mut machine,
            &mut card,
            &rig,
            is_es9(function::AUTHENTICATE_CLIENT),
        )
        .await,
        function::AUTHENTICATE_CLIENT,
    );
    let (answer, now) = rig.answer(&call).await;

    // A response APDU, an answer to another call and an answer of another
    // function are all dropped: the machine still waits for this call.
    machine.handle_apdu_response(Ok(vec![0x90, 0x00]), now);
    let Es9Response::AuthenticateClient(Ok(mut authenticated)) = answer else {
        panic!("authenticateClient failed")
    };
    machine.handle_es9_response(
        call.id + 1,
        Es9Response::AuthenticateClient(Ok(authenticated.clone())),
        now,
    );
    machine.handle_es9_response(call.id, Es9Response::HandleNotification(Ok(())), now);
    assert!(machine.poll().is_none());
    assert!(machine.poll_timeout().is_some());

    // The SM-DP+ answers with another session's transaction id.
    authenticated.transaction_id = "0102030405060708".parse().unwrap();
    machine.handle_es9_response(
        call.id,
        Es9Response::AuthenticateClient(Ok(authenticated)),
        now,
    );
    let error = done(run_until(&mut machine, &mut card, &rig, |_| false).await).unwrap_err();
    assert_eq!(error.step, Step::AuthenticateClient);
    assert!(
        matches!(error.failure, DownloadFailure::InvalidSmdpAnswer(_)),
        "{}",
        error.failure
    );
    let cancellation = error.cancellation.unwrap();
    assert_eq!(cancellation.reason, CancelSessionReason::UndefinedReason);
    assert!(cancellation.completed());
}

#[tokio::test]
async fn unusable_bound_profile_package_cancels_with_load_bpp_error() {
    let rig = Rig::new().await;
    let mut card = Card::new(&rig.smdp, &rig.clock);
    let request = DownloadRequest::new(&rig.code, None);
    let mut machine = Download::new(&request, card.link(), rig.clock.now());
    let call = es9_call(
        run_until(
            &mut machine,
            &mut card,
            &rig,
            is_es9(function::GET_BOUND_PROFILE_PACKAGE),
        )
        .await,
        function::GET_BOUND_PROFILE_PACKAGE,
    );
    let (answer, now) = rig.answer(&call).await;
    let Es9Response::GetBoundProfilePackage(Ok(mut package)) = answer else {
        panic!("getBoundProfilePackage failed")
    };
    package.bound_profile_package.0 = vec![0xBF, 0x36, 0x05, 0xFF, 0xFF];
    machine.handle_es9_response(
        call.id,
        Es9Response::GetBoundProfilePackage(Ok(package)),
        now,
    );
    let error = done(run_until(&mut machine, &mut card, &rig, |_| false).await).unwrap_err();
    assert_eq!(error.step, Step::LoadBoundProfilePackage);
    let cancellation = error.cancellation.unwrap();
    assert_eq!(
        cancellation.reason,
        CancelSessionReason::LoadBppExecutionError
    );
    assert!(cancellation.completed(), "{cancellation}");
    assert_ne!(rig.order_state().await, OrderState::Installed);
}
