//! The store's behaviour, run against every backend: the in-memory store and
//! SQLite always, PostgreSQL on the server FERROSIM_TEST_POSTGRES_URL names
//! (the tests fail without it, unless FERROSIM_SKIP_POSTGRES=1).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use ferrosim_ids::CiKeyId;
use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Imsi, Personalisation};
use ferrosim_smdp::ids::{MatchingId, OperatorId, TransactionId};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::*;
use ferrosim_smdp::session::{Binding, SessionRecord, SessionState};
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{MemStore, SqlStore, StoreOptions};
use ferrosim_testkit::databases;

fn op() -> OperatorId {
    OperatorId::new("op1").unwrap()
}

fn iccid(n: u64) -> Iccid {
    Iccid::from_body(&format!("89440000000000{n:04}")).unwrap()
}

fn eid() -> Eid {
    Eid::from_body("890490320000000000000000000001").unwrap()
}

/// Runs `$check(&store, label)` on a seeded store of every backend.
macro_rules! on_every_store {
    ($profiles:expr, $check:ident) => {{
        let mem = seed(MemStore::new(), $profiles).await;
        $check(&mem, "memory").await;
        for db in databases().await.unwrap() {
            let store = seed(connect(&db.url).await, $profiles).await;
            $check(&store, db.backend).await;
            store.close().await;
        }
    }};
}

async fn connect(url: &str) -> SqlStore {
    SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap()
}

async fn seed<S: Store>(store: S, profiles: u64) -> S {
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
                fallback_allowed: false,
            },
            created_at: Timestamp(1),
            version: 1,
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

async fn load<S: Store>(store: &S, n: u64) -> Versioned<ProfileRecord> {
    store
        .find_profile(&ProfileSelector::Iccid(iccid(n), None))
        .await
        .unwrap()
        .unwrap()
}

/// The rewrite of `read` (as loaded) into `p` (changed from a copy of it).
fn profile_change(
    read: Versioned<ProfileRecord>,
    p: Versioned<ProfileRecord>,
    events: Vec<ProgressEvent>,
) -> Changes {
    Changes {
        profile: Some(ProfileWrite {
            expected: p.version,
            previous: read.record,
            record: p.record,
        }),
        events,
        ..Changes::default()
    }
}

fn insert(session: SessionRecord) -> Changes {
    Changes {
        session: Some(SessionWrite::Insert(session)),
        ..Changes::default()
    }
}

fn update(session: Versioned<SessionRecord>) -> Changes {
    Changes {
        session: Some(SessionWrite::Update {
            expected: session.version,
            record: session.record,
        }),
        ..Changes::default()
    }
}

fn session_record(n: u8) -> SessionRecord {
    SessionRecord::initiated(
        TransactionId::from_bytes(&[n; 16]).unwrap(),
        [n; 16],
        [2; 16],
        CiKeyId::from_bytes(&[3; 20]).unwrap(),
        Timestamp(1),
        Timestamp(i64::MAX),
    )
}

fn binding(iccid: Iccid) -> Binding {
    Binding {
        eid: eid(),
        euicc_public_key: vec![4; 65].into(),
        iccid,
        cc_required: true,
        smdp_signature2: vec![5; 67],
        euicc_otpk: Some(vec![6; 65]),
    }
}

#[tokio::test]
async fn records_round_trip() {
    on_every_store!(3, records_round_trip_on);
}

async fn records_round_trip_on<S: Store>(store: &S, backend: &str) {
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

    // A full order record survives a commit and a read.
    let policy = OrderPolicy::default();
    let tid = TransactionId::from_bytes(&[5; 16]).unwrap();
    let read = load(store, 1).await;
    let mut loaded = read.clone();
    assert_eq!(loaded.version, Version::INITIAL, "{backend}");
    let p = &mut loaded.record;
    let mut events = Vec::new();
    p.allocate(Some(eid()), Timestamp(10), &policy).unwrap();
    p.confirm(
        Confirmation {
            eid: None,
            matching_id: MatchingId::new("ABCDE-12345").unwrap(),
            confirmation_code: Some(ConfirmationCode::from_code("42")),
            smds_address: Some("smds.example".into()),
            release: true,
        },
        Timestamp(10),
    )
    .unwrap();
    p.bind_session(&tid, &eid(), Timestamp(11), &policy, &mut events)
        .unwrap();
    let out = loaded.record.clone();
    store
        .commit(profile_change(read, loaded, events))
        .await
        .unwrap();
    let back = store.profile(&iccid(1)).await.unwrap().unwrap();
    assert_eq!(back, out, "{backend}");
    assert_eq!(load(store, 1).await.version, Version::INITIAL.next());
    let by_mid = store
        .find_profile(&ProfileSelector::MatchingId(
            MatchingId::new("ABCDE-12345").unwrap(),
        ))
        .await
        .unwrap()
        .map(|p| p.record.iccid);
    assert_eq!(by_mid, Some(iccid(1)), "{backend}");
    let by_eid = store
        .find_profile(&ProfileSelector::ReleasedForEid(eid()))
        .await
        .unwrap()
        .map(|p| p.record.iccid);
    assert_eq!(by_eid, Some(iccid(1)), "{backend}");
    let other_operator = store
        .find_profile(&ProfileSelector::Iccid(
            iccid(1),
            Some(OperatorId::new("op2").unwrap()),
        ))
        .await
        .unwrap();
    assert!(other_operator.is_none(), "{backend}");
    assert_eq!(
        store.pending_callbacks().await.unwrap(),
        1,
        "{backend}: the eligibility event is queued"
    );

    // Sessions.
    let s = SessionRecord::initiated(
        tid.clone(),
        [1; 16],
        [2; 16],
        CiKeyId::from_bytes(&[3; 20]).unwrap(),
        Timestamp(1),
        Timestamp(100),
    );
    store.commit(insert(s.clone())).await.unwrap();
    assert!(
        matches!(
            store.commit(insert(s.clone())).await,
            Err(StoreError::Conflict(_))
        ),
        "{backend}"
    );
    let read = store.session(&tid).await.unwrap().unwrap();
    assert_eq!(read.record, s, "{backend}");
    assert_eq!(read.version, Version::INITIAL);
    let mut authenticated = read.clone();
    authenticated
        .record
        .authenticate(binding(iccid(1)), Timestamp(2))
        .unwrap();
    store.commit(update(authenticated)).await.unwrap();
    let s2 = store.session(&tid).await.unwrap().unwrap();
    assert_eq!(s2.record.state(), SessionState::Authenticated, "{backend}");
    assert_eq!(s2.record.binding(), Some(&binding(iccid(1))), "{backend}");
    assert_eq!(s2.version, Version::INITIAL.next());
    // The version read before that commit is stale now.
    let mut late = read;
    late.record.cancel(Timestamp(3));
    assert!(
        matches!(store.commit(update(late)).await, Err(StoreError::Stale)),
        "{backend}"
    );
    assert_eq!(
        store.session(&tid).await.unwrap().unwrap().record,
        s2.record
    );
    // An authenticated session is kept until `ended_before` passes its expiry.
    assert_eq!(
        store
            .purge_sessions(Timestamp(500), Timestamp(50), 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_sessions(Timestamp(500), Timestamp(101), 10)
            .await
            .unwrap(),
        1
    );
    assert!(store.session(&tid).await.unwrap().is_none(), "{backend}");
}

#[tokio::test]
async fn unauthenticated_sessions_are_counted_and_purged_once_expired() {
    on_every_store!(1, unauthenticated_sessions_on);
}

/// A session opened at 1 that expires at `expires`.
fn expiring(n: u8, expires: i64) -> SessionRecord {
    let mut s = session_record(n);
    s.expires_at = Timestamp(expires);
    s
}

async fn unauthenticated_sessions_on<S: Store>(store: &S, backend: &str) {
    // 25 unauthenticated sessions expiring at 100, 5 at 1000, and one
    // authenticated session that expired at 100.
    for n in 0..25 {
        store.commit(insert(expiring(n, 100))).await.unwrap();
    }
    for n in 25..30 {
        store.commit(insert(expiring(n, 1000))).await.unwrap();
    }
    store.commit(insert(expiring(30, 100))).await.unwrap();
    let mut authenticated = store
        .session(&session_record(30).transaction_id)
        .await
        .unwrap()
        .unwrap();
    authenticated
        .record
        .authenticate(binding(iccid(0)), Timestamp(2))
        .unwrap();
    store.commit(update(authenticated)).await.unwrap();

    // Pending: the unauthenticated ones not expired, counted up to a bound.
    assert_eq!(
        store.pending_sessions(Timestamp(50), 1000).await.unwrap(),
        30,
        "{backend}"
    );
    assert_eq!(
        store.pending_sessions(Timestamp(50), 7).await.unwrap(),
        7,
        "{backend}"
    );
    assert_eq!(
        store.pending_sessions(Timestamp(100), 1000).await.unwrap(),
        30,
        "{backend}"
    );
    assert_eq!(
        store.pending_sessions(Timestamp(101), 1000).await.unwrap(),
        5,
        "{backend}"
    );

    // At 101 the 25 expired unauthenticated sessions go, in chunks; the
    // authenticated one stays for its retention (ended_before = 0).
    let (now, ended_before) = (Timestamp(101), Timestamp(0));
    assert_eq!(
        store.purge_sessions(now, ended_before, 10).await.unwrap(),
        10,
        "{backend}"
    );
    assert_eq!(
        store.purge_sessions(now, ended_before, 10).await.unwrap(),
        10,
        "{backend}"
    );
    assert_eq!(
        store.purge_sessions(now, ended_before, 10).await.unwrap(),
        5,
        "{backend}"
    );
    assert_eq!(
        store.purge_sessions(now, ended_before, 10).await.unwrap(),
        0,
        "{backend}"
    );
    for n in 0..25 {
        let tid = session_record(n).transaction_id;
        assert!(
            store.session(&tid).await.unwrap().is_none(),
            "{backend}: {n}"
        );
    }
    for n in 25..31 {
        let tid = session_record(n).transaction_id;
        assert!(
            store.session(&tid).await.unwrap().is_some(),
            "{backend}: {n}"
        );
    }
    // Its retention over, the authenticated session goes too.
    assert_eq!(
        store.purge_sessions(now, Timestamp(101), 10).await.unwrap(),
        1,
        "{backend}"
    );
}

#[tokio::test]
async fn duplicates_and_unique_matching_ids_are_conflicts() {
    on_every_store!(2, duplicates_on);
}

async fn duplicates_on<S: Store>(store: &S, backend: &str) {
    let dup = NewProfile {
        record: ProfileRecord::new_available(iccid(0), op(), "t".into(), Timestamp(1)),
        personalisation: Personalisation::new(iccid(0)),
    };
    assert!(
        matches!(
            store.insert_profiles(&[dup]).await,
            Err(StoreError::Conflict(_))
        ),
        "{backend}"
    );
    let confirm = |read: Versioned<ProfileRecord>| {
        let mut p = read.clone();
        p.record
            .allocate(None, Timestamp(1), &OrderPolicy::default())
            .unwrap();
        p.record
            .confirm(
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
        profile_change(read, p, Vec::new())
    };
    store.commit(confirm(load(store, 0).await)).await.unwrap();
    let second = store.commit(confirm(load(store, 1).await)).await;
    assert!(matches!(second, Err(StoreError::Conflict(_))), "{backend}");
    // The failed commit changed nothing.
    let p = load(store, 1).await;
    assert_eq!(p.record.state, ProfileState::Available, "{backend}");
    assert_eq!(p.version, Version::INITIAL, "{backend}");
}

/// One IMSI, one profile, on every store: an import that reuses a stored
/// IMSI, or gives one IMSI twice in its batch, is refused whole (naming the
/// IMSI and the ICCID holding it) and stores nothing.
/// A profile write names in SQL only the indexed columns that changed
/// (SQLite rewrites the index entries of every column an UPDATE names):
/// what it leaves out stays as stored, and what changes is found by its
/// index, on every store.
#[tokio::test]
async fn profile_writes_keep_the_indexed_columns_they_do_not_change() {
    on_every_store!(2, unchanged_columns_on);
}

async fn unchanged_columns_on<S: Store>(store: &S, backend: &str) {
    let policy = OrderPolicy::default();
    let keep = MatchingId::new("KEEP-1").unwrap();
    let by_matching_id = ProfileSelector::MatchingId(keep.clone());
    let by_eid = ProfileSelector::ReleasedForEid(eid());
    let confirmed = |read: &Versioned<ProfileRecord>| {
        let mut p = read.clone();
        p.record
            .allocate(Some(eid()), Timestamp(2), &policy)
            .unwrap();
        p.record
            .confirm(
                Confirmation {
                    eid: None,
                    matching_id: keep.clone(),
                    confirmation_code: None,
                    smds_address: None,
                    release: true,
                },
                Timestamp(2),
            )
            .unwrap();
        p
    };
    // A released order: state, EID, matching id and expiry all change.
    let read = load(store, 0).await;
    let p = confirmed(&read);
    store
        .commit(profile_change(read, p, Vec::new()))
        .await
        .unwrap();
    // A session binds it: only unindexed columns change.
    let read = load(store, 0).await;
    let mut p = read.clone();
    let tid = TransactionId::from_bytes(&[9; 16]).unwrap();
    let mut events = Vec::new();
    p.record
        .bind_session(&tid, &eid(), Timestamp(3), &policy, &mut events)
        .unwrap();
    assert_eq!(p.record.state, read.record.state, "{backend}");
    let bound = p.record.clone();
    store.commit(profile_change(read, p, events)).await.unwrap();
    assert_eq!(load(store, 0).await.record, bound, "{backend}");
    let found = store.find_profile(&by_matching_id).await.unwrap().unwrap();
    assert_eq!(found.record, bound, "{backend}");
    let found = store.find_profile(&by_eid).await.unwrap().unwrap();
    assert_eq!(found.record, bound, "{backend}");
    // The order ends: neither its matching id nor the EID finds it, and
    // another order may take the matching id.
    let read = load(store, 0).await;
    let mut p = read.clone();
    p.record
        .cancel(FinalProfileStatus::Available, None, None, Timestamp(4))
        .unwrap();
    store
        .commit(profile_change(read, p, Vec::new()))
        .await
        .unwrap();
    assert!(
        store.find_profile(&by_matching_id).await.unwrap().is_none(),
        "{backend}"
    );
    assert!(
        store.find_profile(&by_eid).await.unwrap().is_none(),
        "{backend}"
    );
    let read = load(store, 1).await;
    let p = confirmed(&read);
    let other = p.record.clone();
    store
        .commit(profile_change(read, p, Vec::new()))
        .await
        .unwrap();
    let found = store.find_profile(&by_matching_id).await.unwrap().unwrap();
    assert_eq!(found.record, other, "{backend}");
}

#[tokio::test]
async fn an_imsi_is_given_to_one_profile() {
    on_every_store!(2, imsi_uniqueness_on);
}

async fn imsi_uniqueness_on<S: Store>(store: &S, backend: &str) {
    let with_imsi = |n: u64, imsi: &str| {
        let mut p = Personalisation::new(iccid(n));
        p.imsi = Some(Imsi::with_mnc_len(imsi, 2).unwrap());
        NewProfile {
            record: ProfileRecord::new_available(iccid(n), op(), "t".into(), Timestamp(1)),
            personalisation: p,
        }
    };
    // Profile 1 holds 001010000000001 (see `seed`).
    let reused = store
        .insert_profiles(&[
            with_imsi(10, "001010000099999"),
            with_imsi(11, "001010000000001"),
        ])
        .await;
    match reused {
        Err(StoreError::Conflict(why)) => assert!(
            why.contains("001010000000001") && why.contains(iccid(1).as_str()),
            "{backend}: {why}"
        ),
        other => panic!("{backend}: {other:?}"),
    }
    let twice = store
        .insert_profiles(&[
            with_imsi(12, "001010000077777"),
            with_imsi(13, "001010000077777"),
        ])
        .await;
    match twice {
        Err(StoreError::Conflict(why)) => assert!(
            why.contains("001010000077777") && why.contains(iccid(13).as_str()),
            "{backend}: {why}"
        ),
        other => panic!("{backend}: {other:?}"),
    }
    for n in [10, 11, 12, 13] {
        assert!(
            store.profile(&iccid(n)).await.unwrap().is_none(),
            "{backend}: {n}"
        );
    }
    // The refused batches claimed nothing: their fresh IMSIs are still free.
    let ok = store
        .insert_profiles(&[
            with_imsi(10, "001010000099999"),
            with_imsi(12, "001010000077777"),
        ])
        .await;
    assert_eq!(ok.unwrap(), 2, "{backend}");
}

/// The profile's state on the device (issue 15 item 16) is stored with its
/// order and read back as written, and a device-notification event (point
/// 5) goes through the outbox with its signed notification, on every store.
#[tokio::test]
async fn device_reports_are_kept_with_the_order() {
    on_every_store!(1, device_reports_on);
}

async fn device_reports_on<S: Store>(store: &S, backend: &str) {
    let read = load(store, 0).await;
    let mut p = read.clone();
    p.record
        .allocate(Some(eid()), Timestamp(2), &OrderPolicy::default())
        .unwrap();
    let order = p.record.order.as_mut().unwrap();
    order.device = Some(DeviceReport {
        state: DeviceProfileState::Disabled,
        seq_number: 42,
        at: Timestamp(5),
    });
    let expected = p.record.clone();
    let event = ProgressEvent {
        operator: op(),
        iccid: iccid(0),
        eid: Some(eid()),
        profile_type: "t".into(),
        point: NotificationPoint::DeviceNotification,
        failure: None,
        result_data: Some(vec![0x30, 0x01, 0x02]),
        at: Timestamp(5),
    };
    store
        .commit(profile_change(read, p, vec![event.clone()]))
        .await
        .unwrap();
    let back = load(store, 0).await;
    assert_eq!(back.record, expected, "{backend}");
    assert_eq!(back.record.device_state(), Some("disabled"), "{backend}");
    let claimed = store.claim_callbacks(Timestamp(6), 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "{backend}");
    assert_eq!(claimed[0].event, event, "{backend}");
}

/// Profile-type versions on every store: a new version becomes the latest,
/// every version stays readable, a version number out of turn is a
/// conflict, and an order's pinned version is kept with it.
#[tokio::test]
async fn profile_type_versions_are_kept() {
    on_every_store!(1, type_versions_on);
}

async fn type_versions_on<S: Store>(store: &S, backend: &str) {
    let v1 = store.profile_type(&op(), "t").await.unwrap().unwrap();
    assert_eq!(v1.version, 1, "{backend}");
    let mut v2 = v1.clone();
    v2.version = 2;
    v2.package = vec![9, 9];
    v2.metadata.profile_name = "P2".into();
    v2.created_at = Timestamp(7);
    store.put_profile_type(&v2).await.unwrap();
    assert_eq!(
        store.profile_type(&op(), "t").await.unwrap(),
        Some(v2.clone()),
        "{backend}"
    );
    assert_eq!(
        store.profile_type_version(&op(), "t", 1).await.unwrap(),
        Some(v1.clone()),
        "{backend}"
    );
    assert_eq!(
        store.profile_type_version(&op(), "t", 2).await.unwrap(),
        Some(v2.clone()),
        "{backend}"
    );
    for n in [0, 3, u32::MAX] {
        assert_eq!(
            store.profile_type_version(&op(), "t", n).await.unwrap(),
            None,
            "{backend}: {n}"
        );
    }
    for n in [1, 2, 4] {
        let mut again = v2.clone();
        again.version = n;
        assert!(
            matches!(
                store.put_profile_type(&again).await,
                Err(StoreError::Conflict(_))
            ),
            "{backend}: version {n}"
        );
    }
    assert_eq!(
        store.profile_type(&op(), "t").await.unwrap(),
        Some(v2),
        "{backend}"
    );

    let read = load(store, 0).await;
    let mut p = read.clone();
    p.record
        .allocate(None, Timestamp(2), &OrderPolicy::default())
        .unwrap();
    p.record.order.as_mut().unwrap().type_version = Some(1);
    let expected = p.record.clone();
    store.commit(profile_change(read, p, vec![])).await.unwrap();
    assert_eq!(load(store, 0).await.record, expected, "{backend}");
}

/// A commit whose session is stale writes none of its parts: not the
/// profile, not the events, not the notification.
#[tokio::test]
async fn a_stale_commit_writes_nothing() {
    on_every_store!(1, stale_commit_on);
}

async fn stale_commit_on<S: Store>(store: &S, backend: &str) {
    store.commit(insert(session_record(1))).await.unwrap();
    let tid = TransactionId::from_bytes(&[1; 16]).unwrap();
    let read = store.session(&tid).await.unwrap().unwrap();
    let mut first = read.clone();
    first.record.cancel(Timestamp(2));
    store.commit(update(first)).await.unwrap();

    let profile_read = load(store, 0).await;
    let mut profile = profile_read.clone();
    profile
        .record
        .allocate(None, Timestamp(3), &OrderPolicy::default())
        .unwrap();
    let event = ProgressEvent {
        operator: op(),
        iccid: iccid(0),
        eid: None,
        profile_type: "t".into(),
        point: NotificationPoint::EligibilityCheck,
        failure: None,
        result_data: None,
        at: Timestamp(3),
    };
    let mut stale = read;
    stale.record.cancel(Timestamp(3));
    let changes = Changes {
        notification: Some(NotificationRecord {
            seq_number: 1,
            operation: "enable".into(),
            iccid: Some(iccid(0)),
            eid: Some(eid()),
            address: "smdp.example".into(),
            raw: vec![1, 2, 3],
            received_at: Timestamp(3),
        }),
        ..Changes {
            session: update(stale).session,
            ..profile_change(profile_read, profile, vec![event])
        }
    };
    assert!(
        matches!(store.commit(changes).await, Err(StoreError::Stale)),
        "{backend}"
    );
    let p = load(store, 0).await;
    assert_eq!(p.record.state, ProfileState::Available, "{backend}");
    assert_eq!(p.version, Version::INITIAL, "{backend}");
    assert_eq!(store.pending_callbacks().await.unwrap(), 0, "{backend}");
    // And a stale profile alone is refused the same way.
    let read = load(store, 0).await;
    let mut a = read.clone();
    let mut b = read.clone();
    a.record
        .allocate(None, Timestamp(4), &OrderPolicy::default())
        .unwrap();
    b.record
        .allocate(Some(eid()), Timestamp(4), &OrderPolicy::default())
        .unwrap();
    store
        .commit(profile_change(read.clone(), a, Vec::new()))
        .await
        .unwrap();
    assert!(
        matches!(
            store.commit(profile_change(read, b, Vec::new())).await,
            Err(StoreError::Stale)
        ),
        "{backend}"
    );
    assert_eq!(
        load(store, 0).await.record.state,
        ProfileState::Allocated,
        "{backend}: the first writer's change stays"
    );
    assert!(store.commit(Changes::default()).await.is_ok());
}

#[tokio::test]
async fn concurrent_allocation_gives_each_profile_once() {
    let mem = Arc::new(seed(MemStore::new(), 20).await);
    allocate_concurrently(&mem, "memory").await;
    for db in databases().await.unwrap() {
        let store = Arc::new(seed(connect(&db.url).await, 20).await);
        allocate_concurrently(&store, db.backend).await;
        store.close().await;
    }
}

/// 30 tasks order from 20 profiles: each loads candidates, allocates one
/// and commits; a commit that lost the race tries again.
async fn allocate_concurrently<S: Store>(store: &Arc<S>, backend: &str) {
    let mut tasks = Vec::new();
    for task in 0..30usize {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for attempt in 0..200usize {
                let candidates = store.available_profiles(&op(), "t", 4).await.unwrap();
                if candidates.is_empty() {
                    return None;
                }
                let read = candidates[(task + attempt) % candidates.len()].clone();
                let mut p = read.clone();
                p.record
                    .allocate(None, Timestamp(1), &OrderPolicy::default())
                    .unwrap();
                let iccid = p.record.iccid.clone();
                match store.commit(profile_change(read, p, Vec::new())).await {
                    Ok(()) => return Some(iccid),
                    Err(StoreError::Stale) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
            panic!("no allocation after 200 attempts");
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        if let Some(i) = t.await.unwrap() {
            got.push(i);
        }
    }
    got.sort();
    let n = got.len();
    got.dedup();
    assert_eq!(got.len(), n, "{backend}: an ICCID was allocated twice");
    assert_eq!(n, 20, "{backend}: every profile allocated once");
}

#[tokio::test]
async fn callbacks_are_leased_once_and_retried() {
    on_every_store!(1, callbacks_on);
}

async fn callbacks_on<S: Store>(store: &S, backend: &str) {
    let p = load(store, 0).await;
    let events = [
        NotificationPoint::EligibilityCheck,
        NotificationPoint::BppDownload,
    ]
    .into_iter()
    .map(|point| ProgressEvent {
        operator: op(),
        // Two orders' events (one order's would be leased one at a time).
        iccid: match point {
            NotificationPoint::EligibilityCheck => p.record.iccid.clone(),
            _ => iccid(1),
        },
        eid: Some(eid()),
        profile_type: "t".into(),
        point,
        failure: Some(ferrosim_smdp::status::StatusCode::EID_REFUSED),
        result_data: Some(vec![9, 9]),
        at: Timestamp(1),
    })
    .collect();
    store
        .commit(profile_change(p.clone(), p, events))
        .await
        .unwrap();
    let a = store
        .claim_callbacks(Timestamp(10), 1000, 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 2, "{backend}");
    assert_eq!(
        a[0].event.failure,
        Some(ferrosim_smdp::status::StatusCode::EID_REFUSED)
    );
    assert_eq!(a[0].event.result_data, Some(vec![9, 9]));
    assert_eq!(a[0].event.point, NotificationPoint::EligibilityCheck);
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
    assert_eq!(again.len(), 1, "{backend}");
    assert_eq!(again[0].attempts, 2);
    assert_eq!(store.pending_callbacks().await.unwrap(), 1);
}

/// One order's callbacks leave the outbox in the order they happened
/// (notification-point order): only the oldest undelivered event of a
/// profile is leased, so a later event waits while an earlier one is
/// retried; other orders are not held up.
#[tokio::test]
async fn one_orders_callbacks_leave_in_order() {
    on_every_store!(2, callback_order_on);
}

async fn callback_order_on<S: Store>(store: &S, backend: &str) {
    let (a, b) = (iccid(0), iccid(1));
    let event = |iccid: &Iccid, point, at| ProgressEvent {
        operator: op(),
        iccid: iccid.clone(),
        eid: None,
        profile_type: "t".into(),
        point,
        failure: None,
        result_data: None,
        at: Timestamp(at),
    };
    let p = load(store, 0).await;
    let events = vec![
        event(&a, NotificationPoint::EligibilityCheck, 10),
        event(&b, NotificationPoint::EligibilityCheck, 11),
        event(&a, NotificationPoint::BppDownload, 12),
        event(&a, NotificationPoint::BppInstallation, 13),
    ];
    store
        .commit(profile_change(p.clone(), p, events))
        .await
        .unwrap();
    let points = |claimed: &[CallbackRecord]| -> Vec<(Iccid, i64)> {
        claimed
            .iter()
            .map(|c| (c.event.iccid.clone(), c.event.point.id()))
            .collect()
    };
    let now = Timestamp(1_000);
    let first = store.claim_callbacks(now, 50, 10).await.unwrap();
    assert_eq!(
        points(&first),
        vec![(a.clone(), 1), (b.clone(), 1)],
        "{backend}: one callback per order, the oldest"
    );
    // A's first event fails and waits; B's is delivered.
    let a1 = first[0].id;
    store
        .callback_failed(a1, Timestamp(5_000), "HTTP 503")
        .await
        .unwrap();
    store
        .callbacks_delivered(&[first[1].id], now)
        .await
        .unwrap();
    assert!(
        store
            .claim_callbacks(Timestamp(2_000), 50, 10)
            .await
            .unwrap()
            .is_empty(),
        "{backend}: A's later events wait for its first"
    );
    let again = store
        .claim_callbacks(Timestamp(5_000), 50, 10)
        .await
        .unwrap();
    assert_eq!(points(&again), vec![(a.clone(), 1)], "{backend}");
    store.callbacks_delivered(&[a1], now).await.unwrap();
    for want in [
        NotificationPoint::BppDownload,
        NotificationPoint::BppInstallation,
    ] {
        let next = store
            .claim_callbacks(Timestamp(6_000), 50, 10)
            .await
            .unwrap();
        assert_eq!(points(&next), vec![(a.clone(), want.id())], "{backend}");
        store.callbacks_delivered(&[next[0].id], now).await.unwrap();
    }
    assert_eq!(store.pending_callbacks().await.unwrap(), 0, "{backend}");
}

#[tokio::test]
async fn es2_call_slots() {
    on_every_store!(0, call_slots_on);
}

async fn call_slots_on<S: Store>(store: &S, backend: &str) {
    let h = [1; 32];
    let op = op();
    let slot = |call: &'static str, function: &'static str, at: i64| {
        store.begin_call(&op, call, function, &h, Timestamp(at), 1000)
    };
    assert_eq!(
        slot("c1", "downloadOrder", 1).await.unwrap(),
        CallSlot::Fresh
    );
    assert_eq!(
        slot("c1", "downloadOrder", 2).await.unwrap(),
        CallSlot::InProgress,
        "{backend}"
    );
    assert_eq!(
        slot("c1", "confirmOrder", 2).await.unwrap(),
        CallSlot::Mismatch
    );
    // A stale in-progress slot is taken over.
    assert_eq!(
        slot("c1", "downloadOrder", 5000).await.unwrap(),
        CallSlot::Fresh
    );
    store.finish_call(&op, "c1", "{\"ok\":1}").await.unwrap();
    assert_eq!(
        slot("c1", "downloadOrder", 6000).await.unwrap(),
        CallSlot::Replay("{\"ok\":1}".into())
    );
    assert_eq!(
        slot("c2", "downloadOrder", 1).await.unwrap(),
        CallSlot::Fresh
    );
    store.abandon_call(&op, "c2").await.unwrap();
    assert_eq!(
        slot("c2", "downloadOrder", 2).await.unwrap(),
        CallSlot::Fresh
    );
}

#[tokio::test]
async fn restart_keeps_everything() {
    for db in databases().await.unwrap() {
        let store = seed(connect(&db.url).await, 2).await;
        let read = load(&store, 0).await;
        let mut p = read.clone();
        p.record
            .allocate(None, Timestamp(1), &OrderPolicy::default())
            .unwrap();
        store
            .commit(profile_change(read, p, Vec::new()))
            .await
            .unwrap();
        store.close().await;
        let again = connect(&db.url).await;
        let p = load(&again, 0).await;
        assert_eq!(p.record.state, ProfileState::Allocated, "{}", db.backend);
        assert_eq!(p.version, Version::INITIAL.next(), "{}", db.backend);
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
    }
}

/// Many commits at once (on SQLite they commit in groups): each one that
/// fails (a duplicate, a lost race) leaves nothing and fails alone; every
/// other one is stored and acknowledged.
#[tokio::test]
async fn concurrent_writes_fail_alone() {
    let mem = Arc::new(seed(MemStore::new(), 0).await);
    concurrent_writes_on(&mem, "memory").await;
    for db in databases().await.unwrap() {
        let store = Arc::new(seed(connect(&db.url).await, 0).await);
        concurrent_writes_on(&store, db.backend).await;
        store.close().await;
    }
}

async fn concurrent_writes_on<S: Store>(store: &Arc<S>, backend: &str) {
    let mut tasks = Vec::new();
    // Sessions 1..=40, and a second insert of each of 1..=8 racing the first.
    for n in (1..=40u8).chain(1..=8u8) {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            (n, store.commit(insert(session_record(n))).await)
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            (_, Ok(())) => ok += 1,
            (_, Err(StoreError::Conflict(_))) => conflicts += 1,
            (n, Err(e)) => panic!("{backend}: session {n}: {e}"),
        }
    }
    assert_eq!((ok, conflicts), (40, 8), "{backend}");
    // Every acknowledged session is there and intact; then each is updated
    // twice at once from the same version: exactly one of the two wins.
    let mut tasks = Vec::new();
    for n in 1..=40u8 {
        let tid = TransactionId::from_bytes(&[n; 16]).unwrap();
        let read = store.session(&tid).await.unwrap().unwrap();
        assert_eq!(read.record, session_record(n), "{backend}");
        for _ in 0..2 {
            let store = Arc::clone(store);
            let mut s = read.clone();
            s.record.cancel(Timestamp(2));
            tasks.push(tokio::spawn(async move { store.commit(update(s)).await }));
        }
    }
    let (mut won, mut lost) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Stale) => lost += 1,
            Err(e) => panic!("{backend}: {e}"),
        }
    }
    assert_eq!((won, lost), (40, 40), "{backend}");
    for n in 1..=40u8 {
        let tid = TransactionId::from_bytes(&[n; 16]).unwrap();
        let s = store.session(&tid).await.unwrap().unwrap();
        assert_eq!(s.record.state(), SessionState::Cancelled, "{backend}");
        assert_eq!(s.version, Version::INITIAL.next(), "{backend}");
    }
}

/// A step that panics never reaches its commit: nothing changes, and the
/// store keeps serving writes afterwards.
#[tokio::test]
async fn a_panicking_step_changes_nothing() {
    let mem = Arc::new(seed(MemStore::new(), 1).await);
    panicking_step_on(&mem, "memory").await;
    for db in databases().await.unwrap() {
        let store = Arc::new(seed(connect(&db.url).await, 1).await);
        panicking_step_on(&store, db.backend).await;
        store.close().await;
    }
}

async fn panicking_step_on<S: Store>(store: &Arc<S>, backend: &str) {
    store.commit(insert(session_record(1))).await.unwrap();
    let tid = TransactionId::from_bytes(&[1; 16]).unwrap();
    let panicking = {
        let store = Arc::clone(store);
        let tid = tid.clone();
        tokio::spawn(async move {
            let mut s = store.session(&tid).await.unwrap().unwrap();
            s.record.cancel(Timestamp(2));
            if s.record.state() == SessionState::Cancelled {
                panic!("a bug in a step");
            }
            store.commit(update(s)).await
        })
    };
    assert!(panicking.await.unwrap_err().is_panic(), "{backend}");
    let s = store.session(&tid).await.unwrap().unwrap();
    assert_eq!(s.record.state(), SessionState::Initiated, "{backend}");
    store.commit(insert(session_record(2))).await.unwrap();
    let mut s = s;
    s.record.cancel(Timestamp(3));
    store.commit(update(s)).await.unwrap();
    assert_eq!(
        store.session(&tid).await.unwrap().unwrap().record.state(),
        SessionState::Cancelled,
        "{backend}"
    );
}

#[tokio::test]
async fn session_bindings_are_read_in_one_go() {
    on_every_store!(1, session_bindings_on);
}

async fn session_bindings_on<S: Store>(store: &S, backend: &str) {
    // Session 40 waits for authenticateClient, 41 is bound; 300 ids asked
    // (more than one SELECT's worth), the others unknown.
    store.commit(insert(session_record(40))).await.unwrap();
    store.commit(insert(session_record(41))).await.unwrap();
    let mut bound = store
        .session(&session_record(41).transaction_id)
        .await
        .unwrap()
        .unwrap();
    bound
        .record
        .authenticate(binding(iccid(0)), Timestamp(2))
        .unwrap();
    store.commit(update(bound)).await.unwrap();
    let mut tids: Vec<TransactionId> = (0..298u16)
        .map(|n| {
            let mut b = [0xA0; 16];
            b[..2].copy_from_slice(&n.to_be_bytes());
            TransactionId::from_bytes(&b).unwrap()
        })
        .collect();
    tids.push(session_record(40).transaction_id);
    tids.push(session_record(41).transaction_id);
    let found = store.session_bindings(&tids).await.unwrap();
    assert_eq!(
        found,
        vec![(session_record(41).transaction_id, eid(), iccid(0))],
        "{backend}"
    );
    assert!(
        store.session_bindings(&[]).await.unwrap().is_empty(),
        "{backend}"
    );
}

#[tokio::test]
async fn step_loads_give_what_record_by_record_loads_give() {
    on_every_store!(3, step_loads_on);
}

/// What [`StepLoadStore::session_and_profile`] must give: the session, and
/// the profile `selector` names when the session exists.
async fn by_records_for_client<S: Store>(
    store: &S,
    tid: &TransactionId,
    selector: Option<&ProfileSelector>,
) -> (
    Option<Versioned<SessionRecord>>,
    Option<Versioned<ProfileRecord>>,
) {
    let session = store.session(tid).await.unwrap();
    let profile = match (&session, selector) {
        (Some(_), Some(sel)) => store.find_profile(sel).await.unwrap(),
        _ => None,
    };
    (session, profile)
}

/// What [`StepLoadStore::session_and_bound_profile`] must give.
async fn by_records_for_bound<S: Store>(
    store: &S,
    tid: &TransactionId,
    personalisation: bool,
) -> (
    Option<Versioned<SessionRecord>>,
    Option<Versioned<ProfileRecord>>,
    Option<Personalisation>,
) {
    let session = store.session(tid).await.unwrap();
    let bound = session
        .as_ref()
        .and_then(|s| s.record.binding())
        .map(|b| b.iccid.clone());
    let profile = match &bound {
        Some(i) => store
            .find_profile(&ProfileSelector::Iccid(i.clone(), None))
            .await
            .unwrap(),
        None => None,
    };
    let values = match (&bound, personalisation && profile.is_some()) {
        (Some(i), true) => store.personalisation(i).await.unwrap(),
        _ => None,
    };
    (session, profile, values)
}

async fn step_loads_on<S: Store>(store: &S, backend: &str) {
    // Profile 0 released by matching id to eid(); session 60 waits for
    // authenticateClient, 61 is bound to profile 0, 62 to profile 2 (which
    // has no order), 63 cancelled before it was bound; 64 is unknown.
    let read = load(store, 0).await;
    let mut p = read.clone();
    let policy = OrderPolicy::default();
    p.record.allocate(None, Timestamp(2), &policy).unwrap();
    p.record
        .confirm(
            Confirmation {
                eid: Some(eid()),
                matching_id: MatchingId::new("STEP-LOADS").unwrap(),
                confirmation_code: None,
                smds_address: None,
                release: true,
            },
            Timestamp(2),
        )
        .unwrap();
    store
        .commit(profile_change(read, p, Vec::new()))
        .await
        .unwrap();
    for n in 60..=63 {
        store.commit(insert(session_record(n))).await.unwrap();
    }
    for (n, profile) in [(61, 0), (62, 2)] {
        let mut s = store
            .session(&session_record(n).transaction_id)
            .await
            .unwrap()
            .unwrap();
        s.record
            .authenticate(binding(iccid(profile)), Timestamp(3))
            .unwrap();
        store.commit(update(s)).await.unwrap();
    }
    let mut cancelled = store
        .session(&session_record(63).transaction_id)
        .await
        .unwrap()
        .unwrap();
    cancelled.record.cancel(Timestamp(3));
    store.commit(update(cancelled)).await.unwrap();

    let selectors = [
        None,
        Some(ProfileSelector::MatchingId(
            MatchingId::new("STEP-LOADS").unwrap(),
        )),
        Some(ProfileSelector::MatchingId(
            MatchingId::new("NONE").unwrap(),
        )),
        Some(ProfileSelector::ReleasedForEid(eid())),
        Some(ProfileSelector::Iccid(iccid(1), Some(op()))),
        Some(ProfileSelector::Iccid(
            iccid(1),
            Some(OperatorId::new("other").unwrap()),
        )),
    ];
    for n in 60..=64 {
        let tid = session_record(n).transaction_id;
        for selector in &selectors {
            let got = store
                .session_and_profile(&tid, selector.as_ref())
                .await
                .unwrap();
            let want = by_records_for_client(store, &tid, selector.as_ref()).await;
            assert_eq!(
                (got.session, got.profile),
                want,
                "{backend}: session {n}, {selector:?}"
            );
            assert!(got.personalisation.is_none(), "{backend}");
        }
        for personalisation in [false, true] {
            let got = store
                .session_and_bound_profile(&tid, personalisation)
                .await
                .unwrap();
            let want = by_records_for_bound(store, &tid, personalisation).await;
            assert_eq!(
                (got.session, got.profile, got.personalisation),
                want,
                "{backend}: session {n}, personalisation {personalisation}"
            );
        }
    }
    // The cases above are not vacuous: a bound session finds its profile
    // and its values, the waiting one its order by matching id.
    let bound = store
        .session_and_bound_profile(&session_record(61).transaction_id, true)
        .await
        .unwrap();
    assert_eq!(bound.profile.unwrap().record.iccid, iccid(0), "{backend}");
    assert_eq!(bound.personalisation.unwrap().iccid, iccid(0), "{backend}");
    let waiting = store
        .session_and_profile(&session_record(60).transaction_id, selectors[1].as_ref())
        .await
        .unwrap();
    assert!(waiting.session.is_some(), "{backend}");
    assert_eq!(waiting.profile.unwrap().record.iccid, iccid(0), "{backend}");
}
