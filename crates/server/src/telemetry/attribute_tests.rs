#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferrosim_smdp::ids::OperatorId;
use ferrosim_telemetry::{EuiccOutcome, suite::test_eid};

use super::super::lookup::OrderInfo;
use super::*;

#[derive(Clone, Default)]
struct Fake {
    sessions: Arc<Mutex<HashMap<TransactionId, (Eid, Iccid)>>>,
    orders: Arc<Mutex<HashMap<Iccid, OrderInfo>>>,
    asked: Arc<AtomicUsize>,
}

impl Lookup for Fake {
    async fn session(&self, tid: &TransactionId) -> Result<Option<(Eid, Iccid)>, String> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(self.sessions.lock().unwrap().get(tid).cloned())
    }
    async fn sessions(
        &self,
        tids: &[TransactionId],
    ) -> Result<HashMap<TransactionId, (Eid, Iccid)>, String> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let known = self.sessions.lock().unwrap();
        Ok(tids
            .iter()
            .filter_map(|t| Some((t.clone(), known.get(t)?.clone())))
            .collect())
    }
    async fn order(&self, iccid: &Iccid) -> Result<Option<OrderInfo>, String> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(self.orders.lock().unwrap().get(iccid).cloned())
    }
}

fn iccid() -> Iccid {
    Iccid::from_body("894400000000000001").unwrap()
}

fn tid(n: u8) -> TransactionId {
    TransactionId::from_bytes(&[n; 16]).unwrap()
}

fn call(function: Function, at: i64, status: StepStatus, t: Option<TransactionId>) -> Call {
    let request = match &t {
        Some(t) if function != Function::Es9InitiateAuthentication => {
            Bytes::from(format!(r#"{{"transactionId":"{}"}}"#, t.to_hex()))
        }
        _ => Bytes::from_static(b"{}"),
    };
    Call {
        function,
        status,
        at: Timestamp(at),
        duration_ms: 5,
        signalling_bytes: 100,
        bpp_bytes: 0,
        tid: if function == Function::Es9InitiateAuthentication {
            t
        } else {
            None
        },
        request,
    }
}

fn setup() -> (Fake, Attributor<Fake>, Dictionary) {
    let fake = Fake::default();
    fake.orders.lock().unwrap().insert(
        iccid(),
        OrderInfo {
            operator: OperatorId::new("acme").unwrap(),
            eid: Some(test_eid(1)),
        },
    );
    let dict = Dictionary::new();
    let a = Attributor::new(fake.clone(), dict.clone(), "dp.example.com");
    (fake, a, dict)
}

#[tokio::test]
async fn a_session_is_tied_to_its_order_once_bound() {
    let (fake, mut a, dict) = setup();
    let mut out = Vec::new();
    a.call(
        call(
            Function::Es9InitiateAuthentication,
            1_000,
            StepStatus::Ok,
            Some(tid(1)),
        ),
        &mut out,
    )
    .await;
    assert!(out.is_empty(), "waits for the binding");
    fake.sessions
        .lock()
        .unwrap()
        .insert(tid(1), (test_eid(1), iccid()));
    a.call(
        call(
            Function::Es9AuthenticateClient,
            1_100,
            StepStatus::Ok,
            Some(tid(1)),
        ),
        &mut out,
    )
    .await;
    let id = activation_id(&iccid(), &test_eid(1));
    assert_eq!(out.len(), 2);
    for (e, at) in out.iter().zip([1_000, 1_100]) {
        assert_eq!(e.at, Timestamp(at));
        assert_eq!(e.activation, Some(id));
        assert_eq!(e.device, test_eid(1));
        assert_eq!(
            e.dims.carrier, None,
            "no progress event named the operator yet"
        );
        assert_eq!(e.dims.smdp, dict.get("dp.example.com"));
    }
    let asked = fake.asked.load(Ordering::Relaxed);
    let mut bpp = call(
        Function::Es9GetBoundProfilePackage,
        1_200,
        StepStatus::Ok,
        Some(tid(1)),
    );
    bpp.bpp_bytes = 30_000;
    a.call(bpp, &mut out).await;
    assert_eq!(
        fake.asked.load(Ordering::Relaxed),
        asked,
        "bound: no lookup"
    );
    assert!(matches!(
        out[2].kind,
        EventKind::Step {
            function: Function::Es9GetBoundProfilePackage,
            bpp_bytes: 30_000,
            ..
        }
    ));
    assert_eq!(a.unattributed, 0);
}

#[tokio::test]
async fn sessions_that_never_bind_are_dropped_and_counted() {
    let (_, mut a, _) = setup();
    let mut out = Vec::new();
    let refused = StepStatus::Failed("8.2.6/3.8".parse().unwrap());
    a.call(
        call(
            Function::Es9InitiateAuthentication,
            1_000,
            StepStatus::Ok,
            Some(tid(2)),
        ),
        &mut out,
    )
    .await;
    a.call(
        call(
            Function::Es9AuthenticateClient,
            1_100,
            refused,
            Some(tid(2)),
        ),
        &mut out,
    )
    .await;
    // A call naming no transaction, a garbage notification, an ES2+ call.
    a.call(
        call(Function::Es9CancelSession, 1_200, StepStatus::Ok, None),
        &mut out,
    )
    .await;
    let mut garbage = call(Function::Es9HandleNotification, 1_300, StepStatus::Ok, None);
    garbage.request = Bytes::from_static(b"\x00\xffnot json");
    a.call(garbage, &mut out).await;
    a.call(
        call(Function::Es2DownloadOrder, 1_400, StepStatus::Ok, None),
        &mut out,
    )
    .await;
    assert!(out.is_empty());
    assert_eq!(a.unattributed, 2);
    assert_eq!(a.sessions(), 1);
    a.expire(Timestamp(1_100 + 14 * 60_000));
    assert_eq!(a.sessions(), 1, "still within the session lifetime");
    a.expire(Timestamp(1_100 + 16 * 60_000));
    assert_eq!(a.sessions(), 0);
    assert_eq!(a.unattributed, 4, "the two waiting calls");
}

#[tokio::test]
async fn progress_events() {
    let (_, mut a, dict) = setup();
    let mut out = Vec::new();
    let ev = |point, failure: Option<SmdpStatus>, eid: Option<Eid>| ProgressEvent {
        operator: OperatorId::new("acme").unwrap(),
        iccid: iccid(),
        eid,
        profile_type: "t".into(),
        point,
        failure,
        result_data: None,
        at: Timestamp(2_000),
    };
    let id = activation_id(&iccid(), &test_eid(1));
    let eid = Some(test_eid(1));
    a.progress(
        &ev(NotificationPoint::EligibilityCheck, None, eid),
        &mut out,
    )
    .await;
    a.progress(
        &ev(
            NotificationPoint::EligibilityCheck,
            Some(SmdpStatus::DOWNLOAD_ORDER_EXPIRED),
            eid,
        ),
        &mut out,
    )
    .await;
    a.progress(&ev(NotificationPoint::BppDownload, None, eid), &mut out)
        .await;
    a.progress(
        &ev(NotificationPoint::BppInstallation, None, None),
        &mut out,
    )
    .await;
    assert!(out.is_empty(), "{out:?}");
    a.progress(
        &ev(
            NotificationPoint::EligibilityCheck,
            Some(SmdpStatus::EID_REFUSED),
            eid,
        ),
        &mut out,
    )
    .await;
    a.progress(&ev(NotificationPoint::BppInstallation, None, eid), &mut out)
        .await;
    let mut garbled = ev(
        NotificationPoint::BppInstallation,
        Some(SmdpStatus::PROFILE_UNAVAILABLE),
        eid,
    );
    garbled.result_data = Some(vec![0x30, 0x00]);
    a.progress(&garbled, &mut out).await;
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.activation == Some(id)));
    assert!(out.iter().all(|e| e.dims.carrier == dict.get("acme")));
    assert_eq!(
        out[0].kind,
        EventKind::Step {
            function: Function::Es9AuthenticateClient,
            status: StepStatus::Failed("8.1.1/3.8".parse().unwrap()),
            duration_ms: 0,
            signalling_bytes: 0,
            bpp_bytes: 0,
        }
    );
    assert_eq!(
        out[1].kind,
        EventKind::Euicc {
            profile: Some(ProfileKey::from(&iccid())),
            outcome: EuiccOutcome::Installed,
        }
    );
}

#[test]
fn activation_ids_name_downloads() {
    let a = activation_id(&iccid(), &test_eid(1));
    assert_eq!(a, activation_id(&iccid(), &test_eid(1)));
    assert_ne!(a, activation_id(&iccid(), &test_eid(2)));
    let other = Iccid::from_body("894400000000000002").unwrap();
    assert_ne!(a, activation_id(&other, &test_eid(1)));
}

#[tokio::test]
async fn the_sessions_of_a_batch_are_read_in_one_lookup() {
    let (fake, mut a, _dict) = setup();
    let mut out = Vec::new();
    for n in 1..=3u8 {
        let c = call(
            Function::Es9InitiateAuthentication,
            1_000 + i64::from(n),
            StepStatus::Ok,
            Some(tid(n)),
        );
        a.call(c, &mut out).await;
    }
    assert_eq!(fake.asked.load(Ordering::Relaxed), 0);
    // Sessions 1 and 2 bind; session 3's authenticateClient failed.
    for n in 1..=2u8 {
        fake.sessions
            .lock()
            .unwrap()
            .insert(tid(n), (test_eid(u32::from(n)), iccid()));
    }
    let mut batch: Vec<Call> = (1..=3u8)
        .map(|n| {
            call(
                Function::Es9AuthenticateClient,
                1_100 + i64::from(n),
                StepStatus::Ok,
                Some(tid(n)),
            )
        })
        .collect();
    batch.push(call(
        Function::Es9GetBoundProfilePackage,
        1_200,
        StepStatus::Ok,
        Some(tid(1)),
    ));
    batch.push(call(
        Function::Es9GetBoundProfilePackage,
        1_201,
        StepStatus::Ok,
        None,
    ));
    let names: Vec<Named> = batch.iter().map(named).collect();
    assert_eq!(names[4], Named::Nothing, "no transaction id");
    let asked = a
        .prefetch(batch.iter().map(|c| c.function).zip(names.iter()))
        .await;
    assert_eq!(asked, 3, "three sessions, each once");
    for (c, n) in batch.into_iter().zip(names) {
        a.attribute(c, n, &mut out).await;
    }
    assert_eq!(fake.asked.load(Ordering::Relaxed), 1, "one lookup");
    // Two initiateAuthentication and two authenticateClient calls of the
    // bound sessions, and session 1's getBoundProfilePackage.
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|e| e.activation.is_some()));
    assert_eq!(a.unattributed, 1, "the call naming no session");
    assert_eq!(a.sessions(), 3, "session 3 still waits for its binding");
    // The next batch does not reuse what this one read: session 3 binds
    // now and is asked again.
    fake.sessions
        .lock()
        .unwrap()
        .insert(tid(3), (test_eid(3), iccid()));
    let c = call(
        Function::Es9GetBoundProfilePackage,
        1_300,
        StepStatus::Ok,
        Some(tid(3)),
    );
    let n = named(&c);
    assert_eq!(a.prefetch([(c.function, &n)]).await, 1);
    a.attribute(c, n, &mut out).await;
    assert_eq!(fake.asked.load(Ordering::Relaxed), 2);
    assert_eq!(out.len(), 8, "session 3's two parked calls and this one");
    // A batch whose sessions are all bound asks nothing.
    let c = call(
        Function::Es9GetBoundProfilePackage,
        1_400,
        StepStatus::Ok,
        Some(tid(2)),
    );
    let n = named(&c);
    assert_eq!(a.prefetch([(c.function, &n)]).await, 0);
    assert_eq!(fake.asked.load(Ordering::Relaxed), 2);
}
