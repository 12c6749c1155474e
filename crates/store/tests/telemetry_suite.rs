//! The SQL telemetry store against every backend (SQLite always, PostgreSQL
//! when FERROSIM_TEST_POSTGRES_URL names a server): the behaviour suite every
//! `TelemetryStore` passes, and what is particular to SQL (batches larger
//! than one statement, large device sets, correlation ids above i64::MAX,
//! rows that do not decode, retention in chunks).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;

use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_telemetry::suite::{run_all, test_eid};
use ferrosim_telemetry::*;
use ferrosim_testkit::databases;

fn step(dict: &Dictionary, at: i64, activation: u64, device: u32) -> Event {
    Event {
        at: Timestamp(at),
        activation: CorrelationId::new(activation),
        device: test_eid(device),
        source: Source::Smdp,
        dims: Dims {
            carrier: dict.intern("acme").ok(),
            smdp: dict.intern("dp.example.com").ok(),
            group: dict.intern("meters").ok(),
            ..Dims::default()
        },
        kind: EventKind::Step {
            function: Function::Es9AuthenticateClient,
            status: StepStatus::Failed("8.2.6/3.8".parse().unwrap()),
            duration_ms: 12,
            signalling_bytes: 1500,
            bpp_bytes: 0,
        },
    }
}

#[tokio::test]
async fn suite_on_every_backend() {
    for db in databases().await.unwrap() {
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let store = sql.telemetry(Dictionary::new());
        run_all(&store)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        sql.close().await;
    }
}

#[tokio::test]
async fn sql_particulars() {
    for db in databases().await.unwrap() {
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let dict = Dictionary::new();
        let store = sql.telemetry(dict.clone());
        let backend = db.backend;

        // One append larger than one INSERT statement, every kind of event.
        let mut events: Vec<Event> = (0..700u32)
            .map(|i| step(&dict, 1_000 + i64::from(i), u64::from(i % 50) + 1, i % 600))
            .collect();
        let kinds = [
            EventKind::ActivationStarted {
                kind: ActivationKind::EimDownload,
                iot: true,
            },
            EventKind::Euicc {
                profile: ProfileKey::from_digits("8944000000000000019"),
                outcome: EuiccOutcome::Failed {
                    stage: EuiccStage::LoadBoundProfilePackage { bpp_command_id: 3 },
                    reason: 8,
                },
            },
            EventKind::Profile {
                profile: ProfileKey::from_digits("89440000000000000190").unwrap(),
                change: ProfileChange::Enabled,
            },
            EventKind::Registration {
                profile: None,
                outcome: RegistrationOutcome::Rejected { cause: 15 },
            },
            EventKind::DataPath {
                latency_ms: 80,
                loss_permille: 5,
            },
            EventKind::HandoverFailure { cause: 3 },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let mut e = step(&dict, 5_000, u64::MAX - i as u64, 7);
            e.kind = kind;
            e.source = Source::Device;
            e.dims.wave = Some(3);
            e.dims.rollout = dict.intern("fw-2").ok();
            events.push(e);
        }
        store.append(&events).await.unwrap();
        let all = store.query(&EventQuery::all()).await.unwrap();
        assert_eq!(all, events, "{backend}: everything back, in order");

        // A correlation id above i64::MAX round-trips and filters.
        let big = CorrelationId::new(u64::MAX).unwrap();
        let t = store.timeline(big).await.unwrap();
        assert_eq!(t, vec![events[700]], "{backend}");

        // A device set too large for one statement is still applied, with
        // the limit counted after it.
        let devices: BTreeSet<_> = (0..1000u32).filter(|d| d % 2 == 1).map(test_eid).collect();
        let mut q = EventQuery::all();
        q.filter.devices = Some(devices.clone());
        let got = store.query(&q).await.unwrap();
        let want: Vec<Event> = events
            .iter()
            .filter(|e| devices.contains(&e.device))
            .copied()
            .collect();
        assert_eq!(got, want, "{backend}: large device set");
        q.limit = Some(5);
        assert_eq!(store.query(&q).await.unwrap(), want[..5].to_vec());
        q.filter.devices = Some(BTreeSet::new());
        assert!(store.query(&q).await.unwrap().is_empty(), "empty set");

        // Symbols of another dictionary name nothing here.
        let mut q = EventQuery::all();
        q.filter.group = dict.get("meters");
        assert_eq!(store.query(&q).await.unwrap().len(), events.len());
        q.filter.group = dict.intern("no-such-group").ok();
        assert!(store.query(&q).await.unwrap().is_empty());

        // A row that does not decode is reported as corrupt, not skipped or
        // guessed, and the rows around it stay readable by range.
        sqlx::query(
            "INSERT INTO telemetry_events (at, device, source, kind, payload) VALUES (99999, $1, 'smdp', 'step', '{\"type\":\"step\"}')",
        )
        .bind(test_eid(1).to_string())
        .execute(sql.pool())
        .await
        .unwrap();
        let err = store.query(&EventQuery::all()).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{backend}: {err}");
        let before = EventQuery::between(Timestamp(0), Timestamp(99_999));
        assert_eq!(store.query(&before).await.unwrap().len(), events.len());
        sqlx::query("UPDATE telemetry_events SET payload = '{}', device = 'x' WHERE at = 99999")
            .execute(sql.pool())
            .await
            .unwrap();
        assert!(matches!(
            store.query(&EventQuery::all()).await,
            Err(StoreError::Corrupt(_))
        ));

        // Retention removes exactly what is older, however many rows.
        let n = store.purge_before(Timestamp(1_500)).await.unwrap();
        assert_eq!(n, 500, "{backend}");
        assert_eq!(store.purge_before(Timestamp(i64::MAX)).await.unwrap(), 207);
        assert!(store.query(&EventQuery::all()).await.unwrap().is_empty());

        // Appends cut into statements of every size (64, 16, 4 and 1 rows:
        // 2 x 64 + 16 + 2 x 4 + 3 = 155) keep every row and its order.
        for n in [155u32, 1, 4, 16, 64, 85] {
            let batch: Vec<Event> = (0..n)
                .map(|i| step(&dict, 200_000 + i64::from(i), 77, i))
                .collect();
            store.append(&batch).await.unwrap();
            let back = store
                .timeline(CorrelationId::new(77).unwrap())
                .await
                .unwrap();
            assert_eq!(back, batch, "{backend}: append of {n}");
            assert_eq!(
                store.purge_before(Timestamp(i64::MAX)).await.unwrap(),
                u64::from(n)
            );
        }
        sql.close().await;
    }
}

/// Many purge chunks: more rows than one retention transaction deletes.
#[tokio::test]
async fn purge_in_chunks() {
    let db = databases().await.unwrap().remove(0);
    let sql = SqlStore::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let dict = Dictionary::new();
    let store = sql.telemetry(dict.clone());
    let events: Vec<Event> = (0..25_000u32)
        .map(|i| step(&dict, i64::from(i), 1, 1))
        .collect();
    store.append(&events).await.unwrap();
    assert_eq!(store.purge_before(Timestamp(22_000)).await.unwrap(), 22_000);
    let rest = store.query(&EventQuery::all()).await.unwrap();
    assert_eq!(rest.len(), 3_000);
    assert_eq!(rest[0].at, Timestamp(22_000));
    sql.close().await;
}
