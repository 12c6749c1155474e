//! Profile secrets sealed at rest, on SQLite and on PostgreSQL (when
//! FERROSIM_TEST_POSTGRES_URL names a server): a database written in clear
//! is migrated in place, a data key rotated, and neither the table nor (on
//! SQLite) the raw database file shows any K, OPc, PIN, PUK or ADM of the
//! test operator data afterwards; every profile still opens; a wrong
//! key-encryption key is a typed error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_saip::{AdmKey, Iccid, Key128, Personalisation, Pin, Puk};
use ferrosim_secrets::Kek;
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::ProfileRecord;
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::databases;

const PROFILES: u64 = 12;

fn op() -> OperatorId {
    OperatorId::new("op1").unwrap()
}

fn iccid(n: u64) -> Iccid {
    Iccid::from_body(&format!("89440000000000{n:04}")).unwrap()
}

/// Operator data of profile `n`: every secret distinct and recognisable.
fn secrets(n: u64) -> Personalisation {
    let mut p = Personalisation::new(iccid(n));
    p.k =
        Some(Key128::from_hex("K", &format!("{:032x}", 0x5eed_0000_u128 + u128::from(n))).unwrap());
    p.opc = Some(
        Key128::from_hex("OPc", &format!("{:032x}", 0x0bc0_0000_u128 + u128::from(n))).unwrap(),
    );
    p.pin1 = Some(Pin::new("PIN1", &format!("{:08}", 31_000_000 + n)).unwrap());
    p.puk1 = Some(Puk::new("PUK1", &format!("{:08}", 72_000_000 + n)).unwrap());
    p.adm1 = Some(AdmKey::new("ADM1", &format!("{:016x}", 0xad00_0000_u64 + n)).unwrap());
    p
}

/// The secrets of profile `n` as they would appear in clear (hex, digits).
fn needles(n: u64) -> Vec<String> {
    vec![
        format!("{:032x}", 0x5eed_0000_u128 + u128::from(n)),
        format!("{:032x}", 0x0bc0_0000_u128 + u128::from(n)),
        format!("{:08}", 31_000_000 + n),
        format!("{:08}", 72_000_000 + n),
        format!("{:016x}", 0xad00_0000_u64 + n),
    ]
}

async fn seeded(url: &str) -> SqlStore {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    store
        .put_operator(&Operator {
            id: op(),
            name: "op1".into(),
            token_hash: [1; 32],
            callback_url: None,
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
    store
}

fn batch(ns: std::ops::Range<u64>) -> Vec<NewProfile> {
    ns.map(|n| NewProfile {
        record: ProfileRecord::new_available(iccid(n), op(), "t".into(), Timestamp(1)),
        personalisation: secrets(n),
    })
    .collect()
}

/// Every stored personalisation text, as the database holds it.
async fn column(store: &SqlStore) -> String {
    use sqlx::Row;
    sqlx::query("SELECT personalisation FROM profiles ORDER BY iccid")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("personalisation"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The raw SQLite database file (and its WAL) after a checkpoint.
fn raw_file(url: &str) -> String {
    let path = url.trim_start_matches("sqlite:");
    let mut bytes = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn clear_secrets_in(haystack: &str) -> Vec<String> {
    (0..PROFILES)
        .flat_map(needles)
        .filter(|s| haystack.contains(s.as_str()))
        .collect()
}

async fn all_open(store: &SqlStore) {
    for n in 0..PROFILES {
        let p = store.personalisation(&iccid(n)).await.unwrap().unwrap();
        let want = secrets(n);
        assert_eq!(p.k.map(|k| *k.as_bytes()), want.k.map(|k| *k.as_bytes()));
        assert_eq!(
            p.opc.map(|k| *k.as_bytes()),
            want.opc.map(|k| *k.as_bytes())
        );
        assert_eq!(
            p.puk1.map(|c| *c.as_bytes()),
            want.puk1.map(|c| *c.as_bytes())
        );
    }
}

async fn reseal_all(store: &SqlStore, mut after: Option<String>) -> u64 {
    let mut total = 0;
    loop {
        let r = store.reseal_chunk(after.as_deref(), 5).await.unwrap();
        total += r.resealed;
        after = r.next_after;
        if after.is_none() {
            assert_eq!(store.rows_to_reseal().await.unwrap(), 0);
            return total;
        }
    }
}

#[tokio::test]
async fn secrets_sealed_migrated_and_rotated_in_place() {
    for db in databases().await.unwrap() {
        let b = db.backend;
        let kek_bytes = [7u8; 32];

        // A database written in clear (as before sealing), half the rows.
        let clear = seeded(&db.url).await;
        clear
            .insert_profiles(&batch(0..PROFILES / 2))
            .await
            .unwrap();
        assert!(
            !clear_secrets_in(&column(&clear).await).is_empty(),
            "{b}: written in clear"
        );
        clear.close().await;

        // Opened with a KEK: new rows sealed, old ones still read, then
        // migrated in place.
        let store = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap()
            .with_kek(Kek::from_bytes(kek_bytes))
            .await
            .unwrap();
        store
            .insert_profiles(&batch(PROFILES / 2..PROFILES))
            .await
            .unwrap();
        all_open(&store).await;
        assert_eq!(
            reseal_all(&store, None).await,
            PROFILES / 2,
            "{b}: clear rows migrated"
        );
        assert_eq!(
            clear_secrets_in(&column(&store).await),
            Vec::<String>::new(),
            "{b}"
        );
        all_open(&store).await;

        // Rotation: a new data key, every row re-sealed under it in chunks
        // (the old key opening rows until then).
        let old = store.newest_data_key().unwrap();
        let new = store.add_data_key().await.unwrap();
        assert!(new > old);
        let first = store.reseal_chunk(None, 5).await.unwrap();
        assert_eq!(first.resealed, 5, "{b}");
        assert_eq!(store.rows_to_reseal().await.unwrap(), PROFILES - 5, "{b}");
        all_open(&store).await;
        // Resumed after the first chunk (as after a crash).
        assert_eq!(
            reseal_all(&store, first.next_after).await,
            PROFILES - 5,
            "{b}: rotation finished"
        );
        let text = column(&store).await;
        assert_eq!(clear_secrets_in(&text), Vec::<String>::new(), "{b}");
        let prefix = format!("sealed1:01{}", hex::encode(new.to_be_bytes()));
        assert!(
            text.lines().all(|l| l.starts_with(&prefix)),
            "{b}: all under key {new}"
        );
        all_open(&store).await;
        let census = store.secrets_census().await.unwrap();
        assert_eq!(census.clear, 0, "{b}");
        assert_eq!(census.sealed.get(&new), Some(&PROFILES), "{b}");
        store.scrub_free_space().await.unwrap();

        // KEK rotation: the data keys re-wrapped, no row touched.
        let new_kek = Kek::from_bytes([6u8; 32]);
        assert_eq!(
            store.rewrap_data_keys(&new_kek).await.unwrap(),
            vec![old, new],
            "{b}"
        );
        assert_eq!(column(&store).await, text, "{b}: rows untouched");
        assert!(
            store
                .data_keys()
                .await
                .unwrap()
                .iter()
                .all(|k| k.kek_id == new_kek.id_hex()),
            "{b}"
        );
        store.close().await;
        let rewrapped = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap()
            .with_kek(Kek::from_bytes([6u8; 32]))
            .await
            .unwrap();
        all_open(&rewrapped).await;
        rewrapped.close().await;
        let old_kek = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap()
            .with_kek(Kek::from_bytes(kek_bytes))
            .await;
        assert!(matches!(old_kek, Err(StoreError::Corrupt(_))), "{b}");

        if b == "sqlite" {
            assert_eq!(
                clear_secrets_in(&raw_file(&db.url)),
                Vec::<String>::new(),
                "raw file"
            );
        }

        // A wrong KEK is refused with a typed error before anything is read.
        let wrong = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap()
            .with_kek(Kek::from_bytes([8u8; 32]))
            .await;
        assert!(
            matches!(wrong, Err(StoreError::Corrupt(_))),
            "{b}: {wrong:?}"
        );
        // No KEK: the sealed rows are a typed error, not a panic.
        let keyless = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let err = keyless.personalisation(&iccid(0)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{b}: {err:?}");
        keyless.close().await;
    }
}

/// Issue 15 item 2: the secrets of installed profiles are purged after the
/// retention; other profiles, the ICCID and the IMSI are kept.
#[tokio::test]
async fn installed_profiles_lose_their_secrets_after_the_retention() {
    use ferrosim_saip::Imsi;
    for db in databases().await.unwrap() {
        let b = db.backend;
        seeded(&db.url).await.close().await;
        for sealed in [false, true] {
            let store = SqlStore::connect(&db.url, &StoreOptions::default())
                .await
                .unwrap();
            let store = if sealed {
                store.with_kek(Kek::from_bytes([9u8; 32])).await.unwrap()
            } else {
                store
            };
            let base = if sealed { 100 } else { 200 };
            let mut profiles = batch(base..base + 4);
            for p in &mut profiles {
                let n = p.record.iccid.as_str()[14..18].parse::<u64>().unwrap();
                p.personalisation.imsi =
                    Some(Imsi::with_mnc_len(&format!("0010100000{n:05}"), 2).unwrap());
            }
            store.insert_profiles(&profiles).await.unwrap();
            // Profiles base and base+1 installed at t=1000 and t=5000,
            // base+2 downloaded (not installed), base+3 available.
            for (n, state, at) in [
                (0, "installed", 1000),
                (1, "installed", 5000),
                (2, "downloaded", 1000),
            ] {
                sqlx::query("UPDATE profiles SET state = $1, updated_at = $2 WHERE iccid = $3")
                    .bind(state)
                    .bind(at as i64)
                    .bind(iccid(base + n).as_str())
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
            // Retention: purge what was installed before t=2000.
            let before = Timestamp(2000);
            assert_eq!(
                store
                    .purge_installed_secrets(before, Timestamp(9000), 10)
                    .await
                    .unwrap(),
                1,
                "{b}"
            );
            assert_eq!(
                store
                    .purge_installed_secrets(before, Timestamp(9000), 10)
                    .await
                    .unwrap(),
                0,
                "{b}: done"
            );
            let purged = store.personalisation(&iccid(base)).await.unwrap().unwrap();
            assert!(
                purged.k.is_none() && purged.opc.is_none() && purged.pin1.is_none(),
                "{b}"
            );
            assert!(purged.puk1.is_none() && purged.adm1.is_none(), "{b}");
            assert_eq!(purged.iccid, iccid(base));
            assert!(purged.imsi.is_some(), "{b}: IMSI kept");
            let column = column(&store).await;
            if !sealed {
                for s in needles(base) {
                    assert!(!column.contains(&s), "{b}: {s} still stored");
                }
                for n in 1..4 {
                    assert!(
                        column.contains(&needles(base + n)[0]),
                        "{b}: profile {n} kept"
                    );
                }
            }
            for n in 1..4 {
                let kept = store
                    .personalisation(&iccid(base + n))
                    .await
                    .unwrap()
                    .unwrap();
                assert!(kept.k.is_some(), "{b}: profile {n} keeps its K");
            }
            // Later, with a retention passed for the second one too.
            assert_eq!(
                store
                    .purge_installed_secrets(Timestamp(6000), Timestamp(9000), 10)
                    .await
                    .unwrap(),
                1,
                "{b}"
            );
            store.close().await;
        }
    }
}
