//! Cost of the store operations one download makes, per backend: a session
//! insert, a session read, and a compare-and-set commit of a session and a
//! profile with an outbox event (what authenticateClient,
//! getBoundProfilePackage and handleNotification each commit).
//!
//! `cargo bench -p ferrosim-store`; set FERROSIM_TEST_POSTGRES_URL to also
//! measure PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosim_ids::CiKeyId;
use ferrosim_saip::{Iccid, Personalisation};
use ferrosim_smdp::ids::{OperatorId, TransactionId};
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::{NotificationPoint, ProfileRecord, ProgressEvent};
use ferrosim_smdp::session::SessionRecord;
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{Durability, SqlStore, StoreOptions};

fn session(n: u64) -> SessionRecord {
    let mut tid = [0u8; 16];
    tid[..8].copy_from_slice(&n.to_be_bytes());
    tid[8] = rand::random();
    SessionRecord::initiated(
        TransactionId::from_bytes(&tid).unwrap(),
        [1; 16],
        [2; 16],
        CiKeyId::from_bytes(&[3; 20]).unwrap(),
        Timestamp(1),
        Timestamp(i64::MAX),
    )
}

async fn seeded(url: &str, durability: Durability) -> SqlStore {
    let store = SqlStore::connect(
        url,
        &StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let op = OperatorId::new("op").unwrap();
    store
        .put_operator(&Operator {
            id: op.clone(),
            name: "op".into(),
            token_hash: [1; 32],
            callback_url: None,
        })
        .await
        .unwrap();
    store
        .put_profile_type(&ProfileTypeRecord {
            operator: op.clone(),
            name: "t".into(),
            package: vec![0; 12_000],
            metadata: ProfileTypeMetadata {
                service_provider_name: "s".into(),
                profile_name: "p".into(),
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
    let iccid = Iccid::from_body("894400000000000001").unwrap();
    store
        .insert_profiles(&[NewProfile {
            record: ProfileRecord::new_available(iccid.clone(), op, "t".into(), Timestamp(1)),
            personalisation: Personalisation::new(iccid),
        }])
        .await
        .unwrap();
    store
}

fn bench_backend(c: &mut Criterion, name: &str, url: String, durability: Durability) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(seeded(&url, durability));
    let iccid = Iccid::from_body("894400000000000001").unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group(format!("store/{name}"));
    let insert = |s: SessionRecord| Changes {
        session: Some(SessionWrite::Insert(s)),
        ..Changes::default()
    };
    g.bench_function("insert_session", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(store.commit(insert(session(n)))).unwrap();
        })
    });
    let s = session(u64::MAX);
    rt.block_on(store.commit(insert(s.clone()))).unwrap();
    g.bench_function("read_session", |b| {
        b.iter(|| {
            rt.block_on(store.session(&s.transaction_id))
                .unwrap()
                .unwrap()
        })
    });
    let sel = ProfileSelector::Iccid(iccid.clone(), None);
    g.bench_function("session_and_profile_commit", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut session = store.session(&s.transaction_id).await.unwrap().unwrap();
                let read = store.find_profile(&sel).await.unwrap().unwrap();
                let mut profile = read.record.clone();
                session.record.updated_at = Timestamp(session.record.updated_at.0 + 1);
                profile.updated_at = Timestamp(profile.updated_at.0 + 1);
                let event = ProgressEvent {
                    operator: profile.operator.clone(),
                    iccid: profile.iccid.clone(),
                    eid: None,
                    profile_type: "t".into(),
                    point: NotificationPoint::BppDownload,
                    failure: None,
                    result_data: None,
                    at: Timestamp(2),
                };
                store
                    .commit(Changes {
                        session: Some(SessionWrite::Update {
                            expected: session.version,
                            record: session.record,
                        }),
                        profile: Some(ProfileWrite::new(read, profile)),
                        events: vec![event],
                        notification: None,
                    })
                    .await
                    .unwrap()
            })
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn stores(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    for (label, durability) in [
        ("sqlite-full", Durability::Full),
        ("sqlite-normal", Durability::Normal),
    ] {
        let url = format!(
            "sqlite:{}",
            dir.path().join(format!("{label}.db")).display()
        );
        bench_backend(c, label, url, durability);
    }
    if let Ok(admin) = std::env::var("FERROSIM_TEST_POSTGRES_URL") {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt
            .block_on(ferrosim_testkit::fresh_postgres(&admin))
            .unwrap();
        bench_backend(c, "postgres", db.url.clone(), Durability::Full);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = stores
}
criterion_main!(benches);
