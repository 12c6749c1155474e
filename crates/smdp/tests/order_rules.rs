//! The order state machine: every transition of SGP.22's profile life cycle,
//! and the rules that refuse the others.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::ids::{MatchingId, OperatorId, TransactionId};
use ferrosim_smdp::order::*;
use ferrosim_smdp::status::StatusCode;
use ferrosim_smdp::time::Timestamp;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn eid(n: u8) -> Eid {
    Eid::from_body(&format!("8904903200000000000000000000{n:02}")).unwrap()
}

fn profile() -> ProfileRecord {
    ProfileRecord::new_available(
        Iccid::from_body("894400000000000001").unwrap(),
        OperatorId::new("op").unwrap(),
        "t".into(),
        Timestamp(1_000),
    )
}

fn tid(n: u8) -> TransactionId {
    TransactionId::from_bytes(&[n; 16]).unwrap()
}

fn released(cc: Option<&str>, linked: Option<Eid>) -> ProfileRecord {
    let mut p = profile();
    p.allocate(linked, Timestamp(1_000), &OrderPolicy::default())
        .unwrap();
    p.confirm(
        Confirmation {
            eid: None,
            matching_id: MatchingId::new("AAAAA-BBBBB").unwrap(),
            confirmation_code: cc.map(ConfirmationCode::from_code),
            smds_address: None,
            release: true,
        },
        Timestamp(1_000),
    )
    .unwrap();
    p
}

fn hashed_cc(cc: &str, t: &TransactionId) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(Sha256::digest(cc.as_bytes()));
    h.update(t.as_bytes());
    h.finalize().to_vec()
}

#[test]
fn happy_path_with_events() {
    let policy = OrderPolicy::default();
    let mut p = released(None, None);
    assert_eq!(p.state, ProfileState::Released);
    let mut ev = Vec::new();
    let cc = p
        .bind_session(&tid(1), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    assert!(!cc);
    p.check_confirmation_code(&tid(1), &eid(1), None, Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    p.mark_downloaded(&tid(1), &eid(1), Timestamp(2_000), &mut ev)
        .unwrap();
    assert_eq!(p.state, ProfileState::Downloaded);
    // A network retry of the same session is allowed; another session is not.
    p.mark_downloaded(&tid(1), &eid(1), Timestamp(2_000), &mut ev)
        .unwrap();
    assert_eq!(
        p.mark_downloaded(&tid(2), &eid(1), Timestamp(2_000), &mut ev),
        Err(OrderError::SessionSuperseded)
    );
    p.record_installation(&tid(1), &eid(1), Ok(()), b"pir", Timestamp(3_000), &mut ev)
        .unwrap();
    assert_eq!(p.state, ProfileState::Installed);
    // Repeated notification: accepted, no new event.
    let n = ev.len();
    p.record_installation(&tid(1), &eid(1), Ok(()), b"pir", Timestamp(3_000), &mut ev)
        .unwrap();
    assert_eq!(ev.len(), n);
    let points: Vec<_> = ev.iter().map(|e| (e.point, e.failure.is_none())).collect();
    assert_eq!(
        points,
        vec![
            (NotificationPoint::EligibilityCheck, true),
            (NotificationPoint::BppDownload, true),
            (NotificationPoint::BppInstallation, true)
        ]
    );
    assert_eq!(ev[2].result_data.as_deref(), Some(&b"pir"[..]));
    // Installed profiles cannot be cancelled or downloaded again.
    assert!(
        p.cancel(FinalProfileStatus::Available, None, None, Timestamp(4_000))
            .is_err()
    );
    assert!(
        p.bind_session(&tid(3), &eid(1), Timestamp(4_000), &policy, &mut ev)
            .is_err()
    );
}

/// The package was issued but never reached the device (the answer to
/// getBoundProfilePackage was lost): the same eUICC may download again, no
/// other eUICC may, and the first session can no longer report.
#[test]
fn download_retry_after_a_lost_package() {
    let policy = OrderPolicy::default();
    for linked in [Some(eid(1)), None] {
        let mut p = released(None, linked);
        let mut ev = Vec::new();
        let now = Timestamp(2_000);
        p.bind_session(&tid(1), &eid(1), now, &policy, &mut ev)
            .unwrap();
        p.mark_downloaded(&tid(1), &eid(1), now, &mut ev).unwrap();
        assert_eq!(p.state, ProfileState::Downloaded);
        // The order now belongs to the eUICC that received the package.
        assert_eq!(p.order.as_ref().unwrap().eid, Some(eid(1)));

        // Another eUICC: refused, nothing changes.
        let before = p.clone();
        assert_eq!(
            p.bind_session(&tid(2), &eid(2), now, &policy, &mut ev),
            Err(OrderError::WrongState {
                state: ProfileState::Downloaded,
                action: "download"
            })
        );
        assert_eq!(p, before);

        // The same eUICC: a new session, a new package, counted as an attempt.
        p.bind_session(&tid(3), &eid(1), now, &policy, &mut ev)
            .unwrap();
        assert_eq!(p.order.as_ref().unwrap().download_attempts, 2);
        p.check_confirmation_code(&tid(3), &eid(1), None, now, &policy, &mut ev)
            .unwrap();
        p.mark_downloaded(&tid(3), &eid(1), now, &mut ev).unwrap();
        assert_eq!(
            p.record_installation(&tid(1), &eid(1), Ok(()), b"old", now, &mut ev),
            Err(OrderError::SessionSuperseded)
        );
        p.record_installation(&tid(3), &eid(1), Ok(()), b"pir", now, &mut ev)
            .unwrap();
        assert_eq!(p.state, ProfileState::Installed);
        // One package-download event: the retry is visible as a second eligibility event.
        let points: Vec<_> = ev.iter().map(|e| (e.point, e.failure.is_none())).collect();
        assert_eq!(
            points,
            vec![
                (NotificationPoint::EligibilityCheck, true),
                (NotificationPoint::BppDownload, true),
                (NotificationPoint::EligibilityCheck, true),
                (NotificationPoint::BppInstallation, true)
            ]
        );
    }
}

/// The answer to getBoundProfilePackage was lost and the device cancelled
/// the session (undefined reason, signed by the eUICC): the order waits for
/// the same eUICC to try again; a cancellation for a failed load ends it.
#[test]
fn cancelled_after_a_lost_package_the_same_euicc_retries() {
    let policy = OrderPolicy::default();
    let mut p = released(None, None);
    let mut ev = Vec::new();
    let now = Timestamp(2_000);
    p.bind_session(&tid(1), &eid(1), now, &policy, &mut ev)
        .unwrap();
    p.mark_downloaded(&tid(1), &eid(1), now, &mut ev).unwrap();
    p.cancel_session(
        &tid(1),
        Some(&eid(1)),
        CancelSessionReason::UndefinedReason,
        now,
        &mut ev,
    )
    .unwrap();
    assert_eq!(p.state, ProfileState::Downloaded);
    assert_eq!(p.order.as_ref().unwrap().session, None);
    assert!(
        p.bind_session(&tid(2), &eid(2), now, &policy, &mut ev)
            .is_err()
    );
    p.bind_session(&tid(3), &eid(1), now, &policy, &mut ev)
        .unwrap();
    p.mark_downloaded(&tid(3), &eid(1), now, &mut ev).unwrap();
    p.cancel_session(
        &tid(3),
        Some(&eid(1)),
        CancelSessionReason::LoadBppExecutionError,
        now,
        &mut ev,
    )
    .unwrap();
    assert_eq!(p.state, ProfileState::Error);
}

/// Download retries of a downloaded order end at the attempt limit.
#[test]
fn download_retries_are_limited() {
    let policy = OrderPolicy {
        max_download_attempts: 2,
        ..OrderPolicy::default()
    };
    let mut p = released(None, Some(eid(1)));
    let mut ev = Vec::new();
    let now = Timestamp(2_000);
    p.bind_session(&tid(1), &eid(1), now, &policy, &mut ev)
        .unwrap();
    p.mark_downloaded(&tid(1), &eid(1), now, &mut ev).unwrap();
    p.bind_session(&tid(2), &eid(1), now, &policy, &mut ev)
        .unwrap();
    assert_eq!(
        p.bind_session(&tid(3), &eid(1), now, &policy, &mut ev),
        Err(OrderError::DownloadAttemptsExceeded)
    );
    assert_eq!(p.state, ProfileState::Error);
}

#[test]
fn confirmation_code_retries_lock_the_order() {
    let policy = OrderPolicy {
        max_confirmation_attempts: 3,
        ..OrderPolicy::default()
    };
    let mut p = released(Some("1234"), None);
    let mut ev = Vec::new();
    for attempt in 1..=3u8 {
        let t = tid(attempt);
        assert!(
            p.bind_session(&t, &eid(1), Timestamp(2_000), &policy, &mut ev)
                .unwrap()
        );
        assert_eq!(
            p.check_confirmation_code(&t, &eid(1), None, Timestamp(2_000), &policy, &mut ev),
            Err(OrderError::ConfirmationCodeMissing)
        );
        let wrong = hashed_cc("9999", &t);
        let r = p.check_confirmation_code(
            &t,
            &eid(1),
            Some(&wrong),
            Timestamp(2_000),
            &policy,
            &mut ev,
        );
        if attempt < 3 {
            assert!(
                matches!(r, Err(OrderError::ConfirmationCodeRefused { attempts, limit: 3 }) if attempts == u32::from(attempt))
            );
        } else {
            assert_eq!(r, Err(OrderError::ConfirmationCodeRetriesExceeded));
            assert_eq!(
                r.unwrap_err().status(),
                StatusCode::CONFIRMATION_CODE_RETRIES_EXCEEDED
            );
        }
    }
    assert_eq!(p.state, ProfileState::Error);
    // Even the right code is now refused: the order is locked.
    let t = tid(9);
    assert!(
        p.bind_session(&t, &eid(1), Timestamp(2_000), &policy, &mut ev)
            .is_err()
    );
    assert!(
        ev.iter()
            .any(|e| e.point == NotificationPoint::ConfirmationFailure
                && e.failure == Some(StatusCode::CONFIRMATION_CODE_RETRIES_EXCEEDED))
    );
}

#[test]
fn right_confirmation_code_passes() {
    let policy = OrderPolicy::default();
    let mut p = released(Some("1234"), None);
    let mut ev = Vec::new();
    p.bind_session(&tid(1), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    let good = hashed_cc("1234", &tid(1));
    p.check_confirmation_code(
        &tid(1),
        &eid(1),
        Some(&good),
        Timestamp(2_000),
        &policy,
        &mut ev,
    )
    .unwrap();
    // The hash is bound to the transaction: replaying it in another session fails.
    p.bind_session(&tid(2), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    assert!(
        p.check_confirmation_code(
            &tid(2),
            &eid(1),
            Some(&good),
            Timestamp(2_000),
            &policy,
            &mut ev
        )
        .is_err()
    );
}

#[test]
fn linked_orders_refuse_other_eids_and_expiry_ends_orders() {
    let policy = OrderPolicy {
        order_ttl: Duration::from_secs(1),
        ..OrderPolicy::default()
    };
    let mut p = profile();
    p.allocate(Some(eid(1)), Timestamp(1_000), &policy).unwrap();
    assert_eq!(p.state, ProfileState::Linked);
    let conf = |e: Option<Eid>| Confirmation {
        eid: e,
        matching_id: MatchingId::new("M1").unwrap(),
        confirmation_code: None,
        smds_address: None,
        release: true,
    };
    assert_eq!(
        p.confirm(conf(Some(eid(2))), Timestamp(1_000)),
        Err(OrderError::EidMismatch)
    );
    p.confirm(conf(None), Timestamp(1_000)).unwrap();
    let mut ev = Vec::new();
    assert_eq!(
        p.bind_session(&tid(1), &eid(2), Timestamp(1_500), &policy, &mut ev),
        Err(OrderError::EidMismatch)
    );
    assert_eq!(ev.last().unwrap().failure, Some(StatusCode::EID_REFUSED));
    // After the TTL the order expires.
    assert_eq!(
        p.bind_session(&tid(1), &eid(1), Timestamp(5_000), &policy, &mut ev),
        Err(OrderError::Expired)
    );
    assert_eq!(p.state, ProfileState::Expired);
    assert_eq!(
        ev.last().unwrap().failure,
        Some(StatusCode::DOWNLOAD_ORDER_EXPIRED)
    );
    // An expired order can be recycled.
    p.cancel(FinalProfileStatus::Available, None, None, Timestamp(6_000))
        .unwrap();
    assert_eq!(p.state, ProfileState::Available);
}

#[test]
fn cancelled_sessions_and_failed_installs() {
    let policy = OrderPolicy::default();
    let mut p = released(None, None);
    let mut ev = Vec::new();
    p.bind_session(&tid(1), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    p.cancel_session(
        &tid(1),
        Some(&eid(1)),
        CancelSessionReason::Postponed,
        Timestamp(2_000),
        &mut ev,
    )
    .unwrap();
    assert_eq!(
        p.state,
        ProfileState::Released,
        "postponed downloads can be retried"
    );
    p.bind_session(&tid(2), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    p.mark_downloaded(&tid(2), &eid(1), Timestamp(2_000), &mut ev)
        .unwrap();
    let failure = FailureInfo {
        bpp_command_id: Some(3),
        error_reason: Some(8),
        message: "x".into(),
    };
    p.record_installation(
        &tid(2),
        &eid(1),
        Err(failure.clone()),
        b"pir",
        Timestamp(3_000),
        &mut ev,
    )
    .unwrap();
    assert_eq!(p.state, ProfileState::Error);
    assert_eq!(p.order.as_ref().unwrap().failure, Some(failure));
    // A downloaded-but-failed profile may not return to the pool only when downloaded...
    assert!(
        p.cancel(
            FinalProfileStatus::Unavailable,
            None,
            None,
            Timestamp(4_000)
        )
        .is_ok()
    );
    assert_eq!(p.state, ProfileState::Unavailable);

    let mut q = released(None, None);
    q.bind_session(&tid(1), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    q.mark_downloaded(&tid(1), &eid(1), Timestamp(2_000), &mut ev)
        .unwrap();
    assert!(
        q.cancel(FinalProfileStatus::Available, None, None, Timestamp(2_000))
            .is_err()
    );
    q.cancel_session(
        &tid(1),
        None,
        CancelSessionReason::LoadBppExecutionError,
        Timestamp(2_000),
        &mut ev,
    )
    .unwrap();
    assert_eq!(q.state, ProfileState::Error);
}

#[test]
fn download_attempts_are_limited() {
    let policy = OrderPolicy {
        max_download_attempts: 2,
        ..OrderPolicy::default()
    };
    let mut p = released(None, None);
    let mut ev = Vec::new();
    p.bind_session(&tid(1), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    p.bind_session(&tid(2), &eid(1), Timestamp(2_000), &policy, &mut ev)
        .unwrap();
    assert_eq!(
        p.bind_session(&tid(3), &eid(1), Timestamp(2_000), &policy, &mut ev),
        Err(OrderError::DownloadAttemptsExceeded)
    );
    assert_eq!(p.state, ProfileState::Error);
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(bool),
    Confirm(bool),
    Release,
    Cancel(bool),
    Bind(u8, bool),
    Cc(u8, bool),
    Download(u8),
    Install(u8, bool),
    CancelSession(u8, i64),
    Expire(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<bool>().prop_map(Op::Allocate),
        any::<bool>().prop_map(Op::Confirm),
        Just(Op::Release),
        any::<bool>().prop_map(Op::Cancel),
        ((0u8..3), any::<bool>()).prop_map(|(t, other)| Op::Bind(t, other)),
        ((0u8..3), any::<bool>()).prop_map(|(t, g)| Op::Cc(t, g)),
        (0u8..3).prop_map(Op::Download),
        ((0u8..3), any::<bool>()).prop_map(|(t, ok)| Op::Install(t, ok)),
        ((0u8..3), 0i64..6).prop_map(|(t, r)| Op::CancelSession(t, r)),
        (0i64..10_000_000).prop_map(Op::Expire),
    ]
}

proptest! {
    /// Whatever sequence of calls arrives: an installed profile stays
    /// installed, a downloaded package never returns to the pool without the
    /// eUICC reporting failure, withdrawn profiles stay withdrawn, and nothing
    /// panics.
    #[test]
    fn any_call_sequence_keeps_the_invariants(ops in proptest::collection::vec(op(), 0..40)) {
        let policy = OrderPolicy { order_ttl: Duration::from_secs(3600), ..OrderPolicy::default() };
        let mut p = profile();
        let mut ev = Vec::new();
        let mut downloads = 0;
        let mut installed = false;
        for o in ops {
            let now = Timestamp(2_000);
            let before = p.state;
            match o {
                Op::Allocate(l) => { let _ = p.allocate(l.then(|| eid(1)), now, &policy); }
                Op::Confirm(r) => { let _ = p.confirm(Confirmation { eid: None, matching_id: MatchingId::new("M").unwrap(), confirmation_code: Some(ConfirmationCode::from_code("1")), smds_address: None, release: r }, now); }
                Op::Release => { let _ = p.release(now); }
                Op::Cancel(a) => { let _ = p.cancel(if a { FinalProfileStatus::Available } else { FinalProfileStatus::Unavailable }, None, None, now); }
                Op::Bind(t, other) => {
                    // Packages are only ever handed to eid(1); eid(2) may only take a released order.
                    let r = p.bind_session(&tid(t), &eid(if other { 2 } else { 1 }), now, &policy, &mut ev);
                    if other && r.is_ok() { prop_assert_eq!(before, ProfileState::Released); }
                }
                Op::Cc(t, good) => { let h = hashed_cc(if good { "1" } else { "2" }, &tid(t)); let _ = p.check_confirmation_code(&tid(t), &eid(1), Some(&h), now, &policy, &mut ev); }
                Op::Download(t) => { let _ = p.mark_downloaded(&tid(t), &eid(1), now, &mut ev); }
                Op::Install(t, ok) => { let _ = p.record_installation(&tid(t), &eid(1), if ok { Ok(()) } else { Err(FailureInfo { bpp_command_id: None, error_reason: None, message: String::new() }) }, b"", now, &mut ev); }
                Op::CancelSession(t, r) => { let _ = p.cancel_session(&tid(t), None, CancelSessionReason::from_code(r), now, &mut ev); }
                Op::Expire(at) => { let _ = p.expire_if_due(Timestamp(at)); }
            }
            if before == ProfileState::Released && p.state == ProfileState::Downloaded { downloads += 1; }
            if installed { prop_assert_eq!(p.state, ProfileState::Installed); }
            if p.state == ProfileState::Installed { installed = true; }
            if before == ProfileState::Unavailable { prop_assert_eq!(p.state, ProfileState::Unavailable); }
            if before == ProfileState::Downloaded {
                // A package that may be on a device never goes back to the pool directly.
                prop_assert!(matches!(p.state, ProfileState::Downloaded | ProfileState::Installed | ProfileState::Error | ProfileState::Unavailable), "{:?}", p.state);
            }
            if matches!(p.state, ProfileState::Downloaded | ProfileState::Installed) && before == ProfileState::Available {
                prop_assert!(false, "a profile jumped from available to downloaded");
            }
        }
        // A second hand-out needs a failure reported in between.
        if downloads > 1 {
            prop_assert!(ev.iter().any(|e| e.failure.is_some()));
        }
    }
}
