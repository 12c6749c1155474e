//! The IPA machine driven by hand: the schedule between sessions (backoff
//! with jitter while the eIM is unreachable or answers garbage, the poll
//! interval after a good session), answers nobody waits for, a broken
//! eUICC link; and the decoders of what the IPA reads fed with arbitrary
//! bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ferrosim_ids::{Eid, Timestamp};
use ferrosim_ipa::esipa::{reply_from_asn1, reply_from_json};
use ferrosim_ipa::modem::at::AnswerReader;
use ferrosim_ipa::{
    Action, Backoff, EimReply, EsipaError, EsipaRequest, Ipa, IpaConfig, PendingResult,
    PendingState, ResultKind, SessionError, SessionReport,
};
use ferrosim_lpa::TransportError;
use ferrosim_lpa::es10::Es10Link;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn eid() -> Eid {
    Eid::parse("89049032123451234512345678901235").unwrap()
}

fn ipa(seed: u64, eid: Option<Eid>) -> Ipa<StdRng> {
    let config = IpaConfig {
        eid,
        r_plmn: Some([0x62, 0xF2, 0x10]),
        backoff: Backoff {
            first: Duration::from_secs(10),
            max: Duration::from_secs(80),
        },
        poll_interval: Duration::from_secs(3600),
        deliver_notifications: false,
        ..IpaConfig::default()
    };
    Ipa::new(
        config,
        Es10Link::new(1, 120).unwrap(),
        PendingState::default(),
        StdRng::seed_from_u64(seed),
        T0,
    )
}

/// The ESipa call the machine wants made now.
fn esipa_call(ipa: &mut Ipa<StdRng>) -> (u64, EsipaRequest) {
    match ipa.poll() {
        Some(Action::Esipa(call)) => (call.id, call.request),
        other => panic!("{other:?}"),
    }
}

/// The end of the session: its persisted state and report.
fn session_end(ipa: &mut Ipa<StdRng>) -> (PendingState, SessionReport) {
    let mut persisted = None;
    loop {
        match ipa.poll() {
            Some(Action::Persist(state)) => persisted = Some(state),
            Some(Action::SessionDone(report)) => return (persisted.unwrap(), *report),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_unreachable_eim_is_retried_with_growing_jittered_waits() {
    let mut ipa = ipa(1, Some(eid()));
    assert_eq!(
        ipa.poll_timeout(),
        Some(T0),
        "the first session is due at once"
    );
    let mut now = T0;
    let mut waits = Vec::new();
    for failures in 1..=5u32 {
        ipa.handle_timeout(now);
        let (id, request) = esipa_call(&mut ipa);
        match request {
            EsipaRequest::GetEimPackage {
                eid: e,
                r_plmn,
                notify_state_change,
                ..
            } => {
                assert_eq!(e, eid());
                assert_eq!(r_plmn, Some([0x62, 0xF2, 0x10]));
                assert!(!notify_state_change);
            }
            other => panic!("{other:?}"),
        }
        let failure = EsipaError::Unreachable {
            function: "getEimPackage",
            reason: "connection refused".into(),
        };
        ipa.handle_esipa_response(id, Err(failure), now);
        let (state, report) = session_end(&mut ipa);
        assert_eq!(state.failures, failures);
        assert!(matches!(
            report.error,
            Some(SessionError::Eim(EsipaError::Unreachable { .. }))
        ));
        let wait = report.next_session.since(now);
        let ceiling = Duration::from_secs(10 << (failures - 1).min(3));
        assert!(
            wait >= ceiling / 2 && wait <= ceiling,
            "failure {failures}: {wait:?} not within {ceiling:?}/2..{ceiling:?}"
        );
        waits.push(wait);
        // Not before its time.
        ipa.handle_timeout(now.plus(wait / 4));
        assert!(ipa.poll().is_none());
        assert!(!ipa.in_session());
        now = report.next_session;
    }
    // Another device (another seed) draws other waits.
    let mut other = ipa_with_failure(2);
    let (_, report) = session_end(&mut other);
    assert_ne!(report.next_session.since(T0), waits[0]);
}

fn ipa_with_failure(seed: u64) -> Ipa<StdRng> {
    let mut ipa = ipa(seed, Some(eid()));
    ipa.start_session(T0);
    let (id, _) = esipa_call(&mut ipa);
    ipa.handle_esipa_response(
        id,
        Err(EsipaError::Timeout {
            function: "getEimPackage",
        }),
        T0,
    );
    ipa
}

#[test]
fn garbage_from_the_eim_ends_the_session_with_a_clear_error_and_a_backoff() {
    for garbage in [
        &b"garbage"[..],
        b"",
        b"\xBF\x4F\x03\x80\x01\x01",
        b"\x30\x00",
    ] {
        let mut ipa = ipa(3, Some(eid()));
        ipa.start_session(T0);
        let (id, request) = esipa_call(&mut ipa);
        let reply = reply_from_asn1(request.function(), 200, garbage);
        let error = reply.clone().unwrap_err();
        assert!(error.to_string().contains("malformed answer"), "{error}");
        ipa.handle_esipa_response(id, reply, T0);
        let (state, report) = session_end(&mut ipa);
        assert_eq!(state.failures, 1);
        assert!(report.error.unwrap().to_string().contains("getEimPackage"));
    }
    // A well-formed answer of another function is refused too.
    let mut ipa = ipa(3, Some(eid()));
    ipa.start_session(T0);
    let (id, _) = esipa_call(&mut ipa);
    ipa.handle_esipa_response(id, Ok(EimReply::Acknowledged(vec![1])), T0);
    let (_, report) = session_end(&mut ipa);
    assert!(
        report
            .error
            .unwrap()
            .to_string()
            .contains("unexpected answer")
    );
}

#[test]
fn a_refused_result_ends_the_session_instead_of_fetching_its_package_again() {
    // A result the eUICC signed that the eIM has not stored yet.
    let element = vec![0xBF, 0x51, 0x03, 0x80, 0x01, 0x01];
    let pending = PendingState {
        results: vec![PendingResult {
            id: 1,
            kind: ResultKind::Package,
            element: element.clone(),
            seq_number: None,
            attempts: 0,
        }],
        next_id: 2,
        ..PendingState::default()
    };
    let config = IpaConfig {
        eid: Some(eid()),
        backoff: Backoff {
            first: Duration::from_secs(10),
            max: Duration::from_secs(80),
        },
        deliver_notifications: false,
        ..IpaConfig::default()
    };
    let mut ipa = Ipa::new(
        config,
        Es10Link::new(1, 120).unwrap(),
        pending,
        StdRng::seed_from_u64(5),
        T0,
    );
    ipa.start_session(T0);
    let (id, request) = esipa_call(&mut ipa);
    assert!(
        matches!(&request, EsipaRequest::ProvideEimPackageResult { element: e, .. } if *e == element),
        "the pending result goes first: {request:?}"
    );
    // The eIM could not store it (undefinedError): no GetEimPackage follows,
    // which would only fetch the same package again for the eUICC to refuse
    // as a replay.
    ipa.handle_esipa_response(id, Ok(EimReply::ProvideError(127)), T0);
    let (state, report) = session_end(&mut ipa);
    assert!(
        matches!(report.error, Some(SessionError::ResultRefused(127))),
        "{:?}",
        report.error
    );
    assert_eq!(state.failures, 1);
    assert_eq!(state.results.len(), 1, "the result is kept");
    assert_eq!(state.results[0].attempts, 1);
    assert_eq!(report.pending, 1);
    let wait = report.next_session.since(T0);
    assert!(
        wait >= Duration::from_secs(5) && wait <= Duration::from_secs(10),
        "backed off: {wait:?}"
    );

    // The next session sends it again first; once stored, the IPA polls.
    let now = report.next_session;
    ipa.handle_timeout(now);
    let (id, request) = esipa_call(&mut ipa);
    assert!(matches!(
        &request,
        EsipaRequest::ProvideEimPackageResult { element: e, .. } if *e == element
    ));
    ipa.handle_esipa_response(id, Ok(EimReply::Empty), now);
    let mut persisted = None;
    let request = loop {
        match ipa.poll() {
            Some(Action::Persist(state)) => persisted = Some(state),
            Some(Action::Esipa(call)) => break call.request,
            other => panic!("{other:?}"),
        }
    };
    assert!(persisted.unwrap().results.is_empty(), "stored: dropped");
    assert!(
        matches!(request, EsipaRequest::GetEimPackage { .. }),
        "{request:?}"
    );
}

#[test]
fn a_good_session_polls_again_after_the_interval_and_clears_the_state_change() {
    let mut ipa = ipa(4, Some(eid()));
    ipa.note_state_change(Some(1));
    assert!(matches!(ipa.poll(), Some(Action::Persist(s)) if s.notify_state_change));
    ipa.start_session(T0);
    let (id, request) = esipa_call(&mut ipa);
    assert!(matches!(
        request,
        EsipaRequest::GetEimPackage {
            notify_state_change: true,
            state_change_cause: Some(1),
            ..
        }
    ));
    // An answer to another call is dropped; the machine keeps waiting.
    ipa.handle_esipa_response(id + 7, Ok(EimReply::NoPackage), T0);
    assert!(ipa.in_session());
    ipa.handle_esipa_response(id, Ok(EimReply::NoPackage), T0);
    let (state, report) = session_end(&mut ipa);
    assert!(report.is_ok());
    assert!(!state.notify_state_change, "told once");
    assert_eq!(state.failures, 0);
    let wait = report.next_session.since(T0);
    assert!(
        wait >= Duration::from_secs(3240) && wait <= Duration::from_secs(3960),
        "{wait:?}"
    );
}

#[test]
fn the_eid_is_read_from_the_euicc_and_a_broken_link_is_an_error() {
    let mut ipa = ipa(5, None);
    ipa.start_session(T0);
    let Some(Action::Transmit(apdu)) = ipa.poll() else {
        panic!("GetEID first");
    };
    assert_eq!(&apdu[..2], &[0x81, 0xE2], "STORE DATA on channel 1");
    ipa.handle_apdu_response(
        Err(TransportError::Protocol(
            "the modem answered `ERROR` to AT+CGLA".into(),
        )),
        T0,
    );
    let (state, report) = session_end(&mut ipa);
    let error = report.error.unwrap().to_string();
    assert!(
        error.contains("eUICC") && error.contains("ERROR"),
        "{error}"
    );
    assert_eq!(state.failures, 1);
    // Garbage instead of a GetEID answer.
    let mut ipa = self::ipa(5, None);
    ipa.start_session(T0);
    let _ = ipa.poll();
    ipa.handle_apdu_response(Ok(vec![0xBF, 0x3E, 0x02, 0x5A, 0x00, 0x90, 0x00]), T0);
    let (_, report) = session_end(&mut ipa);
    assert!(report.error.unwrap().to_string().contains("GetEID"));
    // The EID given back by a well-formed answer is kept.
    let mut ipa = self::ipa(5, None);
    ipa.start_session(T0);
    let _ = ipa.poll();
    let mut answer =
        ferrosim_asn1::tlv::tlv(0xBF3E, &ferrosim_asn1::tlv::tlv(0x5A, &eid().to_bcd()));
    answer.extend([0x90, 0x00]);
    ipa.handle_apdu_response(Ok(answer), T0);
    assert!(matches!(ipa.poll(), Some(Action::Persist(s)) if s.eid == Some(eid())));
    assert_eq!(ipa.eid(), Some(eid()));
    assert!(matches!(ipa.poll(), Some(Action::Esipa(_))));
}

proptest! {
    #[test]
    fn what_the_ipa_reads_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), status in 100u16..600) {
        for function in ["getEimPackage", "provideEimPackageResult"] {
            let _ = reply_from_asn1(function, status, &bytes);
            let _ = reply_from_json(function, status, &bytes);
        }
        let _ = AnswerReader::new().feed("AT+CGLA=1,4,\"0000\"\r", &bytes);
        let _ = ferrosim_ipa::data::DataPlan::new(&bytes);
        let _ = PendingState::from_json(&bytes);
    }
}

/// The answer APDU carrying `value`'s DER.
fn apdu_answer<T: ferrosim_asn1::rasn::Encode>(value: &T) -> Vec<u8> {
    let mut answer = ferrosim_asn1::encode_der(value).unwrap();
    answer.extend([0x90, 0x00]);
    answer
}

/// Runs a local operation with the eUICC answering `answer`.
fn local(
    operation: ferrosim_ipa::LocalOperation,
    answer: Vec<u8>,
) -> (PendingState, SessionReport) {
    let mut ipa = ipa(6, Some(eid()));
    let before = ipa.next_session();
    ipa.start_local(operation, false, T0);
    let Some(Action::Transmit(apdu)) = ipa.poll() else {
        panic!("one STORE DATA");
    };
    assert_eq!(apdu[1], 0xE2);
    ipa.handle_apdu_response(Ok(answer), T0);
    let end = session_end(&mut ipa);
    assert_eq!(
        ipa.next_session(),
        before,
        "the eIM's schedule is left alone"
    );
    end
}

#[test]
fn local_rollback_and_fallback_are_told_to_the_eim_in_the_next_session() {
    use ferrosim_asn1::rasn::types::Integer;
    use ferrosim_asn1::sgp32;
    use ferrosim_ipa::{ItemReport, LocalOperation};
    // A rollback with the eUICC's (here unsigned) package result.
    let result = sgp32::EuiccPackageResult::euiccPackageErrorUnsigned(
        sgp32::EuiccPackageErrorUnsigned::new("eim.test".into(), None, None, None),
    );
    let (state, report) = local(
        LocalOperation::ProfileRollback,
        apdu_answer(&sgp32::ProfileRollbackResponse::new(
            Integer::from(0),
            Some(result),
        )),
    );
    assert!(report.is_ok(), "{report:?}");
    assert!(matches!(
        &report.items[..],
        [ItemReport::Local { code: 0, .. }]
    ));
    assert_eq!(
        state.results.len(),
        1,
        "the result waits for the next session"
    );
    assert!(state.notify_state_change);
    assert_eq!(state.state_change_cause, None);
    // The Fallback Mechanism: cause fallback(1).
    let (state, _) = local(
        LocalOperation::ExecuteFallback,
        apdu_answer(&sgp32::ExecuteFallbackMechanismResponse::new(
            Integer::from(0),
        )),
    );
    assert!(state.notify_state_change);
    assert_eq!(state.state_change_cause, Some(1));
    // Refused (fallbackNotAvailable): nothing to tell.
    let (state, report) = local(
        LocalOperation::ReturnFromFallback,
        apdu_answer(&sgp32::ReturnFromFallbackResponse::new(Integer::from(6))),
    );
    assert!(matches!(
        &report.items[..],
        [ItemReport::Local { code: 6, .. }]
    ));
    assert!(!state.notify_state_change);
    // An eUICC without the function, or garbage: a clear error.
    let (_, report) = local(LocalOperation::ProfileRollback, vec![0x6A, 0x88]);
    assert!(report.error.unwrap().to_string().contains("6A88"));
    let (_, report) = local(
        LocalOperation::ExecuteFallback,
        vec![0xBF, 0x5D, 0x01, 0x90, 0x00],
    );
    assert!(
        report
            .error
            .unwrap()
            .to_string()
            .contains("ExecuteFallbackMechanism"),
    );
}
