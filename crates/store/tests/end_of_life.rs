//! Profile end of life in the database: revocations stored once, the
//! operator's reuse policy, and a waiting revocation settled by the device's
//! delete notification as the SM-DP+ records it; on SQLite always and on
//! PostgreSQL when FERROSIM_TEST_POSTGRES_URL names a server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use ferrosim_pki::Eid;
use ferrosim_saip::Iccid;
use ferrosim_smdp::end_of_life::{EndOfLifeState, ReusePolicy, revoke};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::order::{OrderPolicy, ProfileRecord};
use ferrosim_smdp::store::{Changes, CommitStore, NotificationRecord, StoreError};
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};
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

async fn notify(store: &SqlStore, operation: &str, iccid: &Iccid, at: i64) {
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
    for db in databases().await.unwrap() {
        let b = db.backend;
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
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
        notify(&store, "disable", &p.iccid, 11_000).await;
        notify(&store, "delete", &p.iccid, 9_000).await;
        assert!(
            store.settle_device_deletes().await.unwrap().is_empty(),
            "{b}"
        );
        notify(&store, "delete", &p.iccid, 12_000).await;
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
        store.close().await;
    }
}
