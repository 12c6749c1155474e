//! The store's behaviour, run against every backend: SQLite always,
//! PostgreSQL on the server FERROSIM_TEST_POSTGRES_URL names (the tests fail
//! without it, unless FERROSIM_SKIP_POSTGRES=1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Imsi, Personalisation};
use ferrosim_smdp::ids::{MatchingId, OperatorId, TransactionId};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::*;
use ferrosim_smdp::session::{SessionRecord, SessionState};
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::databases;

fn op() -> OperatorId {
    OperatorId::new("op1").unwrap()
}

fn iccid(n: u64) -> Iccid {
    Iccid::from_body(&format!("89440000000000{n:04}")).unwrap()
}

async fn seeded(url: &str, profiles: u64) -> SqlStore {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    store
        .put_operator(&Operator {
            id: op(),
            name: "Op".into(),
            token_hash: [7; 32],
            callback_url: Some("http://127.0.0.1:1/cb".into()),
        })
        .await
        .unwrap();
    store
        .put_profile_type(&ProfileTypeRecord {
            operator: op(),
            name: "t".into(),
            package: vec![1, 2, 3],
            metadata: ProfileTypeMetadata {
                service_provider_name: "SP".into(),
                profile_name: "P".into(),
                profile_class: ProfileClass::Operational,
                policy_rules: PolicyRules::default(),
                owner_mcc_mnc: None,
            },
            created_at: Timestamp(1),
        })
        .await
        .unwrap();
    let rows: Vec<NewProfile> = (0..profiles)
        .map(|n| {
            let mut p = Personalisation::new(iccid(n)).with_random_keys(&mut rand::rng());
            p.imsi = Some(Imsi::with_mnc_len(&format!("0010100000{n:05}"), 2).unwrap());
            NewProfile {
                record: ProfileRecord::new_available(iccid(n), op(), "t".into(), Timestamp(1)),
                personalisation: p,
            }
        })
        .collect();
    store.insert_profiles(&rows).await.unwrap();
    store
}

#[tokio::test]
async fn records_round_trip() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url, 3).await;
        assert_eq!(
            store.operator_by_token(&[7; 32]).await.unwrap().unwrap().id,
            op()
        );
        assert!(store.operator_by_token(&[8; 32]).await.unwrap().is_none());
        let t = store.profile_type(&op(), "t").await.unwrap().unwrap();
        assert_eq!(t.package, vec![1, 2, 3]);
        let p = store.personalisation(&iccid(1)).await.unwrap().unwrap();
        assert_eq!(p.iccid, iccid(1));
        assert_eq!(p.imsi.unwrap().mnc_len(), Some(2));
        assert!(p.k.is_some() && p.opc.is_some());

        // A full order record survives a write and a read.
        let eid = Eid::from_body("890490320000000000000000000001").unwrap();
        let policy = OrderPolicy::default();
        let tid = TransactionId::from_bytes(&[5; 16]).unwrap();
        let bound_tid = tid.clone();
        let out = store
            .update_profile(
                &ProfileSelector::Iccid(iccid(1), Some(op())),
                Timestamp(10),
                move |p, ev| {
                    p.allocate(Some(eid), Timestamp(10), &policy)?;
                    p.confirm(
                        Confirmation {
                            eid: None,
                            matching_id: MatchingId::new("ABCDE-12345").unwrap(),
                            confirmation_code: Some(ConfirmationCode::from_code("42")),
                            smds_address: Some("smds.example".into()),
                            release: true,
                        },
                        Timestamp(10),
                    )?;
                    p.bind_session(&bound_tid, &eid, Timestamp(11), &policy, ev)
                        .map(|_| p.clone())
                },
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let back = store.profile(&iccid(1)).await.unwrap().unwrap();
        assert_eq!(back, out, "{}", db.backend);
        let by_mid = store
            .update_profile(
                &ProfileSelector::MatchingId(MatchingId::new("ABCDE-12345").unwrap()),
                Timestamp(12),
                |p, _| p.iccid.clone(),
            )
            .await
            .unwrap();
        assert_eq!(by_mid, Some(iccid(1)));
        let by_eid = store
            .update_profile(
                &ProfileSelector::ReleasedForEid(eid),
                Timestamp(12),
                |p, _| p.iccid.clone(),
            )
            .await
            .unwrap();
        assert_eq!(by_eid, Some(iccid(1)));
        assert_eq!(
            store.pending_callbacks().await.unwrap(),
            1,
            "the eligibility event is queued"
        );

        // Sessions.
        let s = SessionRecord::initiated(
            tid.clone(),
            vec![1; 16],
            vec![2; 16],
            vec![3; 20],
            Timestamp(1),
            Timestamp(100),
        );
        store.insert_session(&s).await.unwrap();
        assert!(matches!(
            store.insert_session(&s).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .update_session(
                &tid,
                Some(&ProfileSelector::Iccid(iccid(1), None)),
                Timestamp(2),
                move |s, p, _| {
                    s.state = SessionState::Authenticated;
                    s.eid = Some(eid);
                    s.euicc_public_key = Some(vec![4; 65]);
                    s.iccid = p.map(|p| p.iccid.clone());
                    s.cc_required = true;
                },
            )
            .await
            .unwrap()
            .unwrap();
        let s2 = store.session(&tid).await.unwrap().unwrap();
        assert_eq!(s2.state, SessionState::Authenticated);
        assert_eq!(s2.iccid, Some(iccid(1)));
        assert!(s2.cc_required);
        assert_eq!(store.purge_sessions(Timestamp(50)).await.unwrap(), 0);
        assert_eq!(store.purge_sessions(Timestamp(101)).await.unwrap(), 1);
        assert!(store.session(&tid).await.unwrap().is_none());
        store.close().await;
    }
}

#[tokio::test]
async fn duplicates_and_unique_matching_ids_are_conflicts() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url, 2).await;
        let dup = NewProfile {
            record: ProfileRecord::new_available(iccid(0), op(), "t".into(), Timestamp(1)),
            personalisation: Personalisation::new(iccid(0)),
        };
        assert!(
            matches!(
                store.insert_profiles(&[dup]).await,
                Err(StoreError::Conflict(_))
            ),
            "{}",
            db.backend
        );
        let policy = OrderPolicy::default();
        let confirm = move |p: &mut ProfileRecord| {
            p.allocate(None, Timestamp(1), &policy).unwrap();
            p.confirm(
                Confirmation {
                    eid: None,
                    matching_id: MatchingId::new("SAME").unwrap(),
                    confirmation_code: None,
                    smds_address: None,
                    release: true,
                },
                Timestamp(1),
            )
            .unwrap();
        };
        store
            .update_profile(
                &ProfileSelector::Iccid(iccid(0), None),
                Timestamp(1),
                move |p, _| confirm(p),
            )
            .await
            .unwrap();
        let second = store
            .update_profile(
                &ProfileSelector::Iccid(iccid(1), None),
                Timestamp(1),
                move |p, _| confirm(p),
            )
            .await;
        assert!(
            matches!(second, Err(StoreError::Conflict(_))),
            "{}",
            db.backend
        );
        // The failed transaction changed nothing.
        assert_eq!(
            store.profile(&iccid(1)).await.unwrap().unwrap().state,
            ProfileState::Available
        );
        store.close().await;
    }
}

#[tokio::test]
async fn concurrent_allocation_gives_each_profile_once() {
    for db in databases().await.unwrap() {
        let store = Arc::new(seeded(&db.url, 20).await);
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let sel = ProfileSelector::FirstAvailable {
                    operator: op(),
                    profile_type: "t".into(),
                };
                store
                    .update_profile(&sel, Timestamp(1), |p, _| {
                        p.allocate(None, Timestamp(1), &OrderPolicy::default())
                            .map(|()| p.iccid.clone())
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            if let Some(Ok(i)) = t.await.unwrap() {
                got.push(i);
            }
        }
        got.sort();
        let n = got.len();
        got.dedup();
        assert_eq!(got.len(), n, "{}: an ICCID was allocated twice", db.backend);
        assert_eq!(n, 20, "{}: every profile allocated once", db.backend);
        store.close().await;
    }
}

#[tokio::test]
async fn callbacks_are_leased_once_and_retried() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url, 1).await;
        let eid = Eid::from_body("890490320000000000000000000001").unwrap();
        store
            .update_profile(
                &ProfileSelector::Iccid(iccid(0), None),
                Timestamp(1),
                move |p, ev| {
                    for point in [
                        NotificationPoint::EligibilityCheck,
                        NotificationPoint::BppDownload,
                    ] {
                        // Two orders' events (one order's would be leased one at a time).
                        let iccid = match point {
                            NotificationPoint::EligibilityCheck => p.iccid.clone(),
                            _ => iccid(1),
                        };
                        ev.push(ProgressEvent {
                            operator: op(),
                            iccid,
                            eid: Some(eid),
                            profile_type: "t".into(),
                            point,
                            failure: Some(ferrosim_smdp::status::StatusCode::EID_REFUSED),
                            result_data: Some(vec![9, 9]),
                            at: Timestamp(1),
                        });
                    }
                },
            )
            .await
            .unwrap();
        let a = store
            .claim_callbacks(Timestamp(10), 1000, 10)
            .await
            .unwrap();
        assert_eq!(a.len(), 2, "{}", db.backend);
        assert_eq!(
            a[0].event.failure,
            Some(ferrosim_smdp::status::StatusCode::EID_REFUSED)
        );
        assert_eq!(a[0].event.result_data, Some(vec![9, 9]));
        // Leased: nobody else gets them until the lease ends.
        assert!(
            store
                .claim_callbacks(Timestamp(20), 1000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        store
            .callbacks_delivered(&[a[0].id], Timestamp(30))
            .await
            .unwrap();
        store
            .callback_failed(a[1].id, Timestamp(500), "HTTP 503")
            .await
            .unwrap();
        assert!(
            store
                .claim_callbacks(Timestamp(100), 1000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = store
            .claim_callbacks(Timestamp(600), 1000, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        assert_eq!(store.pending_callbacks().await.unwrap(), 1);
        store.close().await;
    }
}

#[tokio::test]
async fn es2_call_slots() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url, 0).await;
        let h = [1; 32];
        assert_eq!(
            store
                .begin_call(&op(), "c1", "downloadOrder", &h, Timestamp(1), 1000)
                .await
                .unwrap(),
            CallSlot::Fresh
        );
        assert_eq!(
            store
                .begin_call(&op(), "c1", "downloadOrder", &h, Timestamp(2), 1000)
                .await
                .unwrap(),
            CallSlot::InProgress
        );
        assert_eq!(
            store
                .begin_call(&op(), "c1", "confirmOrder", &h, Timestamp(2), 1000)
                .await
                .unwrap(),
            CallSlot::Mismatch
        );
        // A stale in-progress slot is taken over.
        assert_eq!(
            store
                .begin_call(&op(), "c1", "downloadOrder", &h, Timestamp(5000), 1000)
                .await
                .unwrap(),
            CallSlot::Fresh
        );
        store.finish_call(&op(), "c1", "{\"ok\":1}").await.unwrap();
        assert_eq!(
            store
                .begin_call(&op(), "c1", "downloadOrder", &h, Timestamp(6000), 1000)
                .await
                .unwrap(),
            CallSlot::Replay("{\"ok\":1}".into())
        );
        assert_eq!(
            store
                .begin_call(&op(), "c2", "downloadOrder", &h, Timestamp(1), 1000)
                .await
                .unwrap(),
            CallSlot::Fresh
        );
        store.abandon_call(&op(), "c2").await.unwrap();
        assert_eq!(
            store
                .begin_call(&op(), "c2", "downloadOrder", &h, Timestamp(2), 1000)
                .await
                .unwrap(),
            CallSlot::Fresh
        );
        store.close().await;
    }
}

#[tokio::test]
async fn restart_keeps_everything() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url, 2).await;
        store
            .update_profile(
                &ProfileSelector::Iccid(iccid(0), None),
                Timestamp(1),
                |p, _| p.allocate(None, Timestamp(1), &OrderPolicy::default()),
            )
            .await
            .unwrap();
        store.close().await;
        let again = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(
            again.profile(&iccid(0)).await.unwrap().unwrap().state,
            ProfileState::Allocated
        );
        assert_eq!(
            again
                .count_profiles(None)
                .await
                .unwrap()
                .iter()
                .map(|(_, n)| n)
                .sum::<u64>(),
            2
        );
        again.close().await;
        let _ = Duration::ZERO;
    }
}

fn session_record(n: u8) -> SessionRecord {
    SessionRecord::initiated(
        TransactionId::from_bytes(&[n; 16]).unwrap(),
        vec![n; 16],
        vec![2; 16],
        vec![3; 20],
        Timestamp(1),
        Timestamp(i64::MAX),
    )
}

/// Many write transactions at once (on SQLite they commit in groups): each
/// one that fails (a duplicate) leaves nothing and fails alone; every other
/// one is stored and acknowledged.
#[tokio::test]
async fn concurrent_writes_fail_alone() {
    for db in databases().await.unwrap() {
        let store = Arc::new(seeded(&db.url, 0).await);
        let mut tasks = Vec::new();
        // Sessions 1..=40, and a second insert of each of 1..=8 racing the first.
        for n in (1..=40u8).chain(1..=8u8) {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                (n, store.insert_session(&session_record(n)).await)
            }));
        }
        let mut ok = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                (_, Ok(())) => ok += 1,
                (_, Err(StoreError::Conflict(_))) => conflicts += 1,
                (n, Err(e)) => panic!("{}: session {n}: {e}", db.backend),
            }
        }
        assert_eq!((ok, conflicts), (40, 8), "{}", db.backend);
        // Every acknowledged session is there and intact, then all are
        // updated concurrently.
        let mut tasks = Vec::new();
        for n in 1..=40u8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let tid = TransactionId::from_bytes(&[n; 16]).unwrap();
                store
                    .update_session(&tid, None, Timestamp(2), move |s, _, _| {
                        assert_eq!(s.euicc_challenge, vec![n; 16]);
                        s.state = SessionState::Authenticated;
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap().is_some(), "{}", db.backend);
        }
        for n in 1..=40u8 {
            let tid = TransactionId::from_bytes(&[n; 16]).unwrap();
            let s = store.session(&tid).await.unwrap().unwrap();
            assert_eq!(s.state, SessionState::Authenticated, "{}", db.backend);
        }
        store.close().await;
    }
}

/// A transaction whose step panics changes nothing, and the store keeps
/// serving writes afterwards.
#[tokio::test]
async fn a_panicking_step_changes_nothing() {
    for db in databases().await.unwrap() {
        let store = Arc::new(seeded(&db.url, 1).await);
        store.insert_session(&session_record(1)).await.unwrap();
        let tid = TransactionId::from_bytes(&[1; 16]).unwrap();
        let panicking = {
            let store = Arc::clone(&store);
            let tid = tid.clone();
            tokio::spawn(async move {
                store
                    .update_session(&tid, None, Timestamp(2), |s, _, _| {
                        s.state = SessionState::Authenticated;
                        panic!("a bug in a step");
                    })
                    .await
            })
        };
        // Either the panic reaches the caller's task, or (SQLite, where the
        // step runs in the writer task) the caller gets an error.
        match panicking.await {
            Err(join) => assert!(join.is_panic(), "{}", db.backend),
            Ok(result) => assert!(result.is_err(), "{}", db.backend),
        }
        assert_eq!(
            store.session(&tid).await.unwrap().unwrap().state,
            SessionState::Initiated,
            "{}",
            db.backend
        );
        store.insert_session(&session_record(2)).await.unwrap();
        store
            .update_session(&tid, None, Timestamp(3), |s, _, _| {
                s.state = SessionState::Authenticated;
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store.session(&tid).await.unwrap().unwrap().state,
            SessionState::Authenticated
        );
        store.close().await;
    }
}
