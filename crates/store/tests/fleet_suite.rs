//! The SQL fleet store against every backend (SQLite always, PostgreSQL when
//! FERROSIM_TEST_POSTGRES_URL names a server): the behaviour suite every
//! `FleetStore` passes, rows that do not decode, and two instances racing
//! for the same device (exactly one commit wins).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_fleet::store::suite::{fixture_fleet, run_all, test_eid};
use ferrosim_fleet::store::{FleetChanges, FleetStore, StoreError, Write};
use ferrosim_ids::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::databases;

#[tokio::test]
async fn suite_on_every_backend() {
    for db in databases().await.unwrap() {
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        run_all(&sql.fleet())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        sql.close().await;
    }
}

#[tokio::test]
async fn corrupt_rows_are_reported() {
    for db in databases().await.unwrap() {
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let store = sql.fleet();
        let backend = db.backend;
        let fleet = fixture_fleet(3, Timestamp(1_000));
        let devices: Vec<_> = fleet.devices().copied().collect();
        store
            .commit(FleetChanges {
                devices: devices.iter().map(|d| Write::Insert(*d)).collect(),
                ..FleetChanges::default()
            })
            .await
            .unwrap();
        // A payload that is not a device.
        sqlx::query("UPDATE fleet_devices SET payload = '{\"eid\":1}' WHERE eid = $1")
            .bind(test_eid(0).to_string())
            .execute(sql.pool())
            .await
            .unwrap();
        let err = store.device(&test_eid(0)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        assert!(matches!(
            store.devices(None, 10).await,
            Err(StoreError::Corrupt(_))
        ));
        // A row whose key names another device than its record.
        let other = serde_json::to_string(&devices[2]).unwrap();
        sqlx::query("UPDATE fleet_devices SET payload = $1 WHERE eid = $2")
            .bind(other)
            .bind(test_eid(1).to_string())
            .execute(sql.pool())
            .await
            .unwrap();
        let err = store.device(&test_eid(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        // The untouched device still reads.
        assert_eq!(
            store.device(&test_eid(2)).await.unwrap().unwrap().record,
            devices[2]
        );
        // A negative version is not a version.
        sqlx::query("UPDATE fleet_devices SET version = -4 WHERE eid = $1")
            .bind(test_eid(2).to_string())
            .execute(sql.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.device(&test_eid(2)).await,
            Err(StoreError::Corrupt(_))
        ));
        sql.close().await;
    }
}

#[tokio::test]
async fn a_stored_key_that_is_not_an_eid_is_corrupt() {
    for db in databases().await.unwrap() {
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let store = sql.fleet();
        let backend = db.backend;
        let fleet = fixture_fleet(1, Timestamp(1_000));
        let device = *fleet.devices().next().unwrap();
        store
            .commit(FleetChanges {
                devices: vec![Write::Insert(device)],
                ..FleetChanges::default()
            })
            .await
            .unwrap();
        let payload = serde_json::to_string(&device).unwrap();
        for key in [
            "",
            "x",
            "89049032123451234512345678901234",
            "8904903212345123451234567890123é",
        ] {
            sqlx::query("INSERT INTO fleet_devices (eid, version, payload) VALUES ($1, 0, $2)")
                .bind(key)
                .bind(&payload)
                .execute(sql.pool())
                .await
                .unwrap();
            let err = store.devices(None, 10).await.unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt(m) if m.contains("fleet_devices.eid")),
                "{backend} {key:?}: {err}"
            );
            sqlx::query("DELETE FROM fleet_devices WHERE eid = $1")
                .bind(key)
                .execute(sql.pool())
                .await
                .unwrap();
        }
        assert_eq!(store.devices(None, 10).await.unwrap().len(), 1, "{backend}");
        sql.close().await;
    }
}

/// Two instances (two connections to one database) read the same device and
/// both commit a decision for it: exactly one wins, the other is stale and
/// wrote nothing.
#[tokio::test]
async fn two_instances_never_both_decide() {
    for db in databases().await.unwrap() {
        let a = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let b = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let (fa, fb) = (a.fleet(), b.fleet());
        let fleet = fixture_fleet(1, Timestamp(1_000));
        let device = *fleet.devices().next().unwrap();
        fa.commit(FleetChanges {
            devices: vec![Write::Insert(device)],
            ..FleetChanges::default()
        })
        .await
        .unwrap();
        for round in 0..5u8 {
            let ra = fa.device(&device.eid).await.unwrap().unwrap();
            let rb = fb.device(&device.eid).await.unwrap().unwrap();
            assert_eq!(ra.version, rb.version);
            let write = |v: &ferrosim_fleet::store::Versioned<_>, attempts: u8| {
                let mut record: ferrosim_fleet::device::DeviceState = v.record;
                record.work.attempts = attempts;
                FleetChanges {
                    devices: vec![Write::Update {
                        expected: v.version,
                        record,
                    }],
                    ..FleetChanges::default()
                }
            };
            let (x, y) = tokio::join!(
                fa.commit(write(&ra, 2 * round + 1)),
                fb.commit(write(&rb, 2 * round + 2))
            );
            let wins = [&x, &y].iter().filter(|r| r.is_ok()).count();
            assert_eq!(wins, 1, "{}: round {round}: {x:?} {y:?}", db.backend);
            let loser = if x.is_ok() { y } else { x };
            assert!(matches!(loser, Err(StoreError::Stale)), "{loser:?}");
            let now = fa.device(&device.eid).await.unwrap().unwrap();
            assert_eq!(now.version, ra.version.next(), "one write, one version");
        }
        a.close().await;
        b.close().await;
    }
}
