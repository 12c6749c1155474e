//! A database that cannot be used fails when the store opens, at once and
//! with its cause (a read-only filesystem, a file that is not a database, a
//! damaged page found by the integrity check), instead of a connection
//! pool's time-out after half a minute of retries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use ferrosim_smdp::store::StoreError;
use ferrosim_store::{IntegrityCheck, SqlStore, StoreOptions};
use ferrosim_testkit::namespace::{self, Place};

fn url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

async fn create(path: &Path) {
    let store = SqlStore::connect(&url(path), &StoreOptions::default())
        .await
        .unwrap();
    for n in 0..200 {
        store
            .set_setting(&format!("k{n}"), &"v".repeat(200))
            .await
            .unwrap();
    }
    store.close().await;
}

fn checked() -> StoreOptions {
    StoreOptions {
        integrity_check: IntegrityCheck::Quick,
        ..StoreOptions::default()
    }
}

#[test]
fn a_read_only_database_fails_at_once_naming_the_cause() {
    if namespace::rerun_inside("a_read_only_database_fails_at_once_naming_the_cause")
        == Place::Outside
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    namespace::mount_tmpfs(&dir, "4m");
    let db = dir.join("ferrosim.db");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create(&db));
    namespace::remount(&dir, true);
    let err = rt
        .block_on(SqlStore::connect(&url(&db), &StoreOptions::default()))
        .expect_err("a read-only database must be refused");
    let text = err.to_string();
    assert!(text.contains("read-only"), "{text}");
    assert!(text.contains(&db.display().to_string()), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    namespace::remount(&dir, false);
    let store = rt
        .block_on(SqlStore::connect(&url(&db), &checked()))
        .unwrap();
    assert_eq!(
        rt.block_on(store.setting("k7")).unwrap(),
        Some("v".repeat(200))
    );
    rt.block_on(store.close());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferrosim.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let err = SqlStore::connect(&url(&db), &StoreOptions::default())
        .await
        .expect_err("garbage must be refused");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
}

#[tokio::test]
async fn a_damaged_page_fails_the_integrity_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ferrosim.db");
    create(&db).await;
    // Overwrite the middle of the file (table pages), keeping the header.
    let len = std::fs::metadata(&db).unwrap().len();
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&vec![0xa5; 4096 * 2]).unwrap();
    drop(file);
    let err = SqlStore::connect(&url(&db), &checked())
        .await
        .expect_err("a damaged database must fail its integrity check");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("integrity check") || text.contains("damaged"),
        "{text}"
    );
    assert!(text.contains("backup"), "{text}");
}
