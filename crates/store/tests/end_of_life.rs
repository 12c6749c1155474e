//! Profile end of life in the database: revocations stored once, the
//! operator's reuse policy, and a waiting revocation settled by the device's
//! delete notification as the SM-DP+ records it, and the reuse policy
//! enforced at import; in memory and on SQLite always, on PostgreSQL when
//! FERROSIM_TEST_POSTGRES_URL names a server (the same checks for each).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use ferrosim_pki::Eid;
use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::end_of_life::{EndOfLifeState, ReusePolicy, revoke};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::{OrderPolicy, ProfileRecord, ProfileState};
use ferrosim_smdp::store::{
    CatalogStore, Changes, CommitStore, EndOfLifeStore, NewProfile, NotificationRecord, Operator,
    ProfileStore, ProfileTypeRecord, Store, StoreError,
};
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{MemStore, SqlStore, StoreOptions};
use ferrosim_testkit::databases;

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

fn eid() -> Eid {
    Eid::from_body("890490320000000000000000000001").unwrap()
}

fn installed(n: u64) -> ProfileRecord {
    let t = Timestamp::from_millis(1_000);
    let mut p = ProfileRecord::new_available(
        Iccid::from_body(&format!("89440000000000{n:04}")).unwrap(),
        op("op1"),
        "t".into(),
        t,
    );
    p.allocate(Some(eid()), t, &OrderPolicy::default()).unwrap();
    p.state = ferrosim_smdp::order::ProfileState::Installed;
    p
}

async fn notify(store: &impl CommitStore, operation: &str, iccid: &Iccid, at: i64) {
    store
        .commit(Changes {
            notification: Some(NotificationRecord {
                seq_number: 1,
                operation: operation.into(),
                iccid: Some(iccid.clone()),
                eid: Some(eid()),
                address: "smdp.example.com".into(),
                raw: vec![0xBF, 0x2F, 0x00],
                received_at: Timestamp::from_millis(at),
            }),
            ..Changes::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn revocations_are_stored_once_and_settled_by_the_delete_notification() {
    stored_once_and_settled(&MemStore::new(), "memory").await;
    for db in databases().await.unwrap() {
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        stored_once_and_settled(&store, db.backend).await;
        store.close().await;
    }
}

async fn stored_once_and_settled<S: Store + EndOfLifeStore>(store: &S, b: &str) {
    {
        assert_eq!(
            store.reuse_policy(&op("op1")).await.unwrap(),
            ReusePolicy::Retire
        );
        let day = ReusePolicy::Quarantine(Duration::from_secs(86_400));
        store.set_reuse_policy(&op("op1"), day).await.unwrap();
        store.set_reuse_policy(&op("op1"), day).await.unwrap();
        assert_eq!(store.reuse_policy(&op("op1")).await.unwrap(), day, "{b}");

        let p = installed(1);
        let now = Timestamp::from_millis(10_000);
        let (_, r) = revoke(Some(&p), None, &op("op1"), day, "stolen", now).unwrap();
        store.insert_revocation(&r).await.unwrap();
        assert_eq!(
            store.revocation(&p.iccid).await.unwrap().as_ref(),
            Some(&r),
            "{b}"
        );
        // Twice: refused, the stored one unchanged.
        let err = store.insert_revocation(&r).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{b}: {err}");
        assert_eq!(
            store.revocation(&p.iccid).await.unwrap().as_ref(),
            Some(&r),
            "{b}"
        );

        // A disable, and a delete older than the revocation, settle nothing.
        notify(store, "disable", &p.iccid, 11_000).await;
        notify(store, "delete", &p.iccid, 9_000).await;
        assert!(
            store.settle_device_deletes().await.unwrap().is_empty(),
            "{b}"
        );
        notify(store, "delete", &p.iccid, 12_000).await;
        let moved = store.settle_device_deletes().await.unwrap();
        assert_eq!(moved.len(), 1, "{b}");
        let stored = store.revocation(&p.iccid).await.unwrap().unwrap();
        assert_eq!(stored.state, EndOfLifeState::Quarantined, "{b}");
        assert_eq!(
            stored.deleted_on_device_at,
            Some(Timestamp::from_millis(12_000)),
            "{b}"
        );
        assert_eq!(
            stored.reusable_from(),
            Some(Timestamp::from_millis(12_000 + 86_400_000))
        );
        assert!(
            store.settle_device_deletes().await.unwrap().is_empty(),
            "{b}"
        );
        assert_eq!(
            store
                .revocations(Some(EndOfLifeState::Quarantined), Some(&op("op1")))
                .await
                .unwrap()
                .len(),
            1,
            "{b}"
        );
        assert!(
            store
                .revocations(None, Some(&op("op2")))
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        assert_eq!(store.revocation(&installed(2).iccid).await.unwrap(), None);
    }
}

/// A new profile `n` of `operator` imported at `at` (fresh keys).
fn fresh(n: u64, operator: &str, at: i64) -> NewProfile {
    let mut record = installed(n);
    record = ProfileRecord::new_available(
        record.iccid,
        op(operator),
        "t".into(),
        Timestamp::from_millis(at),
    );
    NewProfile {
        personalisation: Personalisation::new(record.iccid.clone())
            .with_random_keys(&mut rand::rng()),
        record,
    }
}

/// Operators `op1` and `op2`, each with profile type `t`.
async fn seed(store: &impl CatalogStore) {
    for (k, name) in [(1u8, "op1"), (2u8, "op2")] {
        store
            .put_operator(&Operator {
                id: op(name),
                name: name.into(),
                token_hash: [k; 32],
                callback_url: None,
            })
            .await
            .unwrap();
        store
            .put_profile_type(&ProfileTypeRecord {
                operator: op(name),
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
                created_at: Timestamp::from_millis(1),
                version: 1,
            })
            .await
            .unwrap();
    }
}

async fn import(store: &impl ProfileStore, batch: &[NewProfile]) -> Result<u64, StoreError> {
    store.insert_profiles(batch).await
}

fn refusal(r: Result<u64, StoreError>) -> String {
    match r {
        Err(StoreError::Conflict(why)) => why,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn a_revoked_iccid_is_imported_again_only_when_its_policy_allows() {
    reuse_enforced(&MemStore::new(), "memory").await;
    for db in databases().await.unwrap() {
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        reuse_enforced(&store, db.backend).await;
        store.close().await;
    }
}

async fn reuse_enforced<S: Store + EndOfLifeStore>(store: &S, b: &str) {
    const DAY_MS: i64 = 86_400_000;
    {
        seed(store).await;
        let day = ReusePolicy::Quarantine(Duration::from_secs(86_400));
        // Profile 3: imported, never ordered, revoked with a day's quarantine.
        let first = fresh(3, "op1", 1_000);
        import(store, std::slice::from_ref(&first)).await.unwrap();
        let revoked_at = Timestamp::from_millis(10_000);
        let (_, r) = revoke(Some(&first.record), None, &op("op1"), day, "", revoked_at).unwrap();
        assert_eq!(r.state, EndOfLifeState::Quarantined, "{b}");
        store.insert_revocation(&r).await.unwrap();
        // Profile 4: an ordinary profile.
        import(store, &[fresh(4, "op1", 1_000)]).await.unwrap();

        // In quarantine: refused, nothing changed.
        let why = refusal(import(store, &[fresh(3, "op1", 10_000 + DAY_MS - 1)]).await);
        assert!(why.contains("quarantined until"), "{b}: {why}");
        assert_eq!(
            store.revocation(&first.record.iccid).await.unwrap(),
            Some(r.clone())
        );
        // Another operator, after the quarantine: refused.
        let why = refusal(import(store, &[fresh(3, "op2", 10_000 + DAY_MS)]).await);
        assert!(why.contains("another operator"), "{b}: {why}");
        // Reusable, but in a batch with a duplicate: refused whole, the
        // revocation and the old profile kept.
        let err = import(
            store,
            &[
                fresh(3, "op1", 10_000 + DAY_MS),
                fresh(4, "op1", 10_000 + DAY_MS),
            ],
        )
        .await
        .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{b}: {err}");
        assert!(
            store
                .revocation(&first.record.iccid)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store
                .personalisation(&first.record.iccid)
                .await
                .unwrap()
                .unwrap()
                .k,
            first.personalisation.k,
            "{b}"
        );
        // Quarantine over: imported afresh with its new keys, the
        // revocation gone.
        let again = fresh(3, "op1", 10_000 + DAY_MS);
        assert_eq!(
            import(store, std::slice::from_ref(&again)).await.unwrap(),
            1
        );
        assert_eq!(store.revocation(&again.record.iccid).await.unwrap(), None);
        let stored = store.profile(&again.record.iccid).await.unwrap().unwrap();
        assert_eq!(stored.state, ProfileState::Available, "{b}");
        assert_eq!(stored.updated_at, again.record.updated_at, "{b}");
        assert_eq!(
            store
                .personalisation(&again.record.iccid)
                .await
                .unwrap()
                .unwrap()
                .k,
            again.personalisation.k,
            "{b}"
        );

        // Retired: never again.
        let five = fresh(5, "op1", 1_000);
        import(store, std::slice::from_ref(&five)).await.unwrap();
        let (_, r5) = revoke(
            Some(&five.record),
            None,
            &op("op1"),
            ReusePolicy::Retire,
            "",
            revoked_at,
        )
        .unwrap();
        store.insert_revocation(&r5).await.unwrap();
        let why = refusal(import(store, &[fresh(5, "op1", 400 * DAY_MS)]).await);
        assert!(why.contains("retired"), "{b}: {why}");

        // Still on a device (no delete notification yet): refused even with
        // a zero quarantine.
        let six = installed(6);
        let zero = ReusePolicy::Quarantine(Duration::ZERO);
        let (_, r6) = revoke(Some(&six), None, &op("op1"), zero, "", revoked_at).unwrap();
        assert_eq!(r6.state, EndOfLifeState::AwaitingDeviceDelete, "{b}");
        store.insert_revocation(&r6).await.unwrap();
        let why = refusal(import(store, &[fresh(6, "op1", 400 * DAY_MS)]).await);
        assert!(why.contains("still be on device"), "{b}: {why}");
    }
}
