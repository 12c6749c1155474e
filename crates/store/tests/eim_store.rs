//! The eIM's store on SQLite and PostgreSQL: the behaviour every `EimStore`
//! must have (`ferrosim_eim::suite`), and two instances on one database
//! racing for the same devices' counters.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;

use ferrosim_eim::store::DeviceWrite;
use ferrosim_eim::suite::{run_all, test_device};
use ferrosim_eim::{Counter, EimChanges, EimStore, StoreError};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::databases;

#[tokio::test]
async fn the_eim_suite_passes_on_every_backend() {
    for db in databases().await.unwrap() {
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        run_all(&store)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        store.close().await;
    }
}

/// Two stores on one database (two `serve` instances) each take the next
/// counter of the same devices many times at once, the way the eIM does
/// (read, step, compare-and-set, again on a lost race): every counter value
/// is issued exactly once.
#[tokio::test]
async fn two_instances_never_issue_a_counter_twice() {
    for db in databases().await.unwrap() {
        let a = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let b = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let devices: Vec<_> = (0..3).map(test_device).collect();
        for d in &devices {
            a.commit(EimChanges {
                device: Some(DeviceWrite::Insert(d.clone())),
                ..EimChanges::default()
            })
            .await
            .unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..8 {
            let store = if worker % 2 == 0 {
                a.clone()
            } else {
                b.clone()
            };
            let eid = devices[worker % devices.len()].eid;
            tasks.spawn(async move {
                let mut issued = Vec::new();
                for _ in 0..10 {
                    loop {
                        let current = store.device(&eid).await.unwrap().unwrap();
                        let mut record = current.record.clone();
                        let next = record.association.counter.next().unwrap();
                        record.association.counter = next;
                        match store
                            .commit(EimChanges {
                                device: Some(DeviceWrite::Update {
                                    expected: current.version,
                                    record,
                                }),
                                ..EimChanges::default()
                            })
                            .await
                        {
                            Ok(()) => {
                                issued.push((eid, next));
                                break;
                            }
                            Err(StoreError::Stale) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                issued
            });
        }
        let mut all: Vec<(ferrosim_eim::Eid, Counter)> = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.unwrap());
        }
        let unique: BTreeSet<_> = all.iter().copied().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "{}: a counter was issued twice",
            db.backend
        );
        assert_eq!(all.len(), 80);
        for d in &devices {
            let stored = a.device(&d.eid).await.unwrap().unwrap().record;
            let issued = all.iter().filter(|(e, _)| *e == d.eid).count() as u32;
            assert_eq!(
                stored.association.counter.get(),
                d.association.counter.get() + issued,
                "{}: the stored counter is the last issued",
                db.backend
            );
        }
        a.close().await;
        b.close().await;
    }
}

/// Two eIMs (two `serve` instances) on one database queue packages for the
/// same device at once: each package gets its own counter value, every
/// value from the association's on is used once, and the queue holds them
/// all in counter order.
#[tokio::test]
async fn two_eims_on_one_database_sign_each_counter_once() {
    use std::sync::Arc;

    use ferrosim_asn1::esipa::Sgp32Version;
    use ferrosim_eim::{
        AssociationRequest, Eim, EimConfig, EimId, Operation, PackageContent, Timestamp,
    };
    use ferrosim_pki::{TestPki, TestPkiOptions};
    use rand::SeedableRng;

    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        ..TestPkiOptions::default()
    })
    .unwrap();
    let eid = pki.euiccs[0].certificate.eid().unwrap();
    let key: Arc<dyn ferrosim_crypto::KeySource> =
        Arc::new(ferrosim_crypto::SoftwareKey::generate().unwrap());
    let config = EimConfig {
        eim_id: EimId::new("eim.example").unwrap(),
        key,
        trust: pki.trust_store().unwrap(),
    };
    for db in databases().await.unwrap() {
        let a = Eim::new(
            SqlStore::connect(&db.url, &StoreOptions::default())
                .await
                .unwrap(),
            config.clone(),
        );
        let b = Eim::new(
            SqlStore::connect(&db.url, &StoreOptions::default())
                .await
                .unwrap(),
            config.clone(),
        );
        a.associate(
            AssociationRequest {
                eid,
                eum_certificate: pki.eum.certificate.der().to_vec(),
                euicc_certificate: pki.euiccs[0].certificate.der().to_vec(),
                counter: Counter::new(100).unwrap(),
                association_token: Some(1),
                euicc_version: Sgp32Version::V1_2,
                emulated: false,
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
        let content = PackageContent::Psmos(vec![Operation::ListProfiles]);
        let mut tasks = tokio::task::JoinSet::new();
        for (n, eim) in [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            let content = content.clone();
            tasks.spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
                let mut counters = Vec::new();
                while counters.len() < 5 {
                    // Losing the compare-and-set race several times in a row
                    // is a refusal (the REST API answers 409); try again.
                    match eim
                        .enqueue_package(&eid, &content, &mut rng, Timestamp(2))
                        .await
                    {
                        Ok(queued) => counters.push(queued.counter.unwrap().get()),
                        Err(ferrosim_eim::EimError::Store(StoreError::Stale)) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                counters
            });
        }
        let mut all = Vec::new();
        while let Some(r) = tasks.join_next().await {
            all.extend(r.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (101..=120).collect::<Vec<u32>>(), "{}", db.backend);
        let record = b.device(&eid).await.unwrap();
        let queued: Vec<u32> = record
            .queue
            .iter()
            .map(|i| i.counter.unwrap().get())
            .collect();
        assert_eq!(queued, (101..=120).collect::<Vec<u32>>(), "{}", db.backend);
        assert_eq!(record.association.counter.get(), 120);
        a.store().close().await;
        b.store().close().await;
    }
}

/// Stored identifiers that are not valid (an ICCID with a wrong check
/// digit, an eIM transaction id that is not hex, an EID column of garbage)
/// are refused as corrupt data when read back, never a panic.
#[tokio::test]
async fn corrupt_stored_identifiers_are_refused_as_corrupt() {
    use ferrosim_eim::record::{ItemKind, ItemOutcome, ItemState, ProfileEntry, QueueItem};
    use ferrosim_eim::suite::test_eid;
    use ferrosim_eim::{EimTransactionId, Iccid, RelaySession, ResultRecord, Timestamp};
    use ferrosim_ids::TransactionId;

    const GOOD_ICCID: &str = "8944000000000000001";
    const BAD_ICCID: &str = "8944000000000000002";
    for db in databases().await.unwrap() {
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let backend = db.backend;
        let mut device = test_device(60);
        device.profiles.profiles = vec![ProfileEntry {
            iccid: Iccid::new(GOOD_ICCID).unwrap(),
            enabled: true,
            fallback: false,
            class: Some(2),
            name: None,
            service_provider: None,
        }];
        let mut queued = test_device(61);
        queued.queue = vec![QueueItem {
            id: 1,
            kind: ItemKind::Package,
            counter: Some(Counter::new(11).unwrap()),
            transaction_id: EimTransactionId::from_slice(&[0xA7; 8]).unwrap(),
            der: vec![0xBF, 0x51, 0x00],
            state: ItemState::Queued,
            replay_error: None,
            created_at: Timestamp(1_000),
        }];
        let result = ResultRecord {
            eid: device.eid,
            item_id: 1,
            kind: ItemKind::DownloadTrigger,
            counter: None,
            seq_number: None,
            trust: None,
            outcome: ItemOutcome::Installed {
                ok: true,
                iccid: Some(Iccid::new(GOOD_ICCID).unwrap()),
            },
            der: vec![0xBF, 0x54, 0x00],
            read_as: ferrosim_asn1::esipa::Sgp32Version::V1_2,
            received_at: Timestamp(2_000),
        };
        for d in [&device, &queued] {
            store
                .commit(EimChanges {
                    device: Some(DeviceWrite::Insert(d.clone())),
                    ..EimChanges::default()
                })
                .await
                .unwrap();
        }
        store
            .commit(EimChanges {
                results: vec![result],
                ..EimChanges::default()
            })
            .await
            .unwrap();
        let tamper = |table: &'static str, column: &'static str, eid: String, from, to| {
            let pool = store.pool().clone();
            async move {
                let select = format!("SELECT {column} FROM {table} WHERE eid = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(select))
                    .bind(eid.clone())
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                let text: String = sqlx::Row::get(&row, column);
                assert!(text.contains(from), "{text}");
                let update = format!("UPDATE {table} SET {column} = $1 WHERE eid = $2");
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(text.replace(from, to))
                    .bind(eid)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        // A profile's ICCID with a wrong check digit.
        tamper(
            "eim_devices",
            "record",
            device.eid.digits(),
            GOOD_ICCID,
            BAD_ICCID,
        )
        .await;
        let err = store.device(&device.eid).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        // A queue item's eIM transaction id that is not hex.
        tamper(
            "eim_devices",
            "record",
            queued.eid.digits(),
            "a7a7a7a7a7a7a7a7",
            "a7a7a7a7a7a7a7zz",
        )
        .await;
        let err = store.device(&queued.eid).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        // A result outcome's ICCID.
        tamper(
            "eim_results",
            "outcome",
            device.eid.digits(),
            GOOD_ICCID,
            "89440000x0000000001",
        )
        .await;
        let err = store.results(&device.eid).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        // A relayed session's EID.
        let tid = TransactionId::from_hex("0A0B0C0D").unwrap();
        store
            .put_relay_session(&RelaySession {
                transaction_id: tid.clone(),
                smdp_address: "smdp.example".to_owned(),
                eid: Some(test_eid(62)),
                created_at: Timestamp(3_000),
            })
            .await
            .unwrap();
        let relayed = test_eid(62).digits();
        tamper(
            "eim_relay_sessions",
            "eid",
            relayed.clone(),
            &relayed,
            "8904903200000000000000000000000X",
        )
        .await;
        let err = store.relay_session(&tid).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        // A device row keyed by garbage: the listing refuses it.
        // (a device no other table refers to)
        let lone = test_device(63);
        store
            .commit(EimChanges {
                device: Some(DeviceWrite::Insert(lone.clone())),
                ..EimChanges::default()
            })
            .await
            .unwrap();
        let listed = lone.eid.digits();
        tamper("eim_devices", "eid", listed.clone(), &listed, "not an EID").await;
        let err = store.devices(None, 10).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        store.close().await;
    }
}
