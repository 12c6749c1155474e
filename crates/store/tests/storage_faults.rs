//! Storage faults while the store runs, and recovery without reopening it:
//! a call that fails gets an error naming the cause, the store's readiness
//! check reports the fault while it lasts, later calls succeed once it is
//! gone, and nothing committed before is lost.
//!
//! - SQLite on a full disk: a small tmpfs (in a private mount namespace, see
//!   `ferrosim_testkit::namespace`) filled up, then freed; and SQLite's own
//!   page limit (`PRAGMA max_page_count`), which fails a write group with
//!   `SQLITE_FULL` like a full disk.
//! - PostgreSQL: every backend of the database terminated
//!   (`pg_terminate_backend`) while new connections are refused, then
//!   allowed again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::namespace::{self, Place};

/// A slot is held this long before another instance may take it over.
const STALE_MS: i64 = 3_600_000;

fn op() -> OperatorId {
    OperatorId::new("op1").unwrap()
}

/// A write through the store's write path (on SQLite: the commit group):
/// opens the ES2+ call slot `id` (padded so that each one needs new pages).
async fn open_slot(store: &SqlStore, id: &str) -> Result<CallSlot, StoreError> {
    store
        .begin_call(
            &op(),
            &format!("{id}-{}", "x".repeat(3000)),
            "downloadOrder",
            &[1; 32],
            Timestamp(1_000),
            STALE_MS,
        )
        .await
}

/// Whether slot `id` is stored (opening it again finds it in progress).
async fn is_stored(store: &SqlStore, id: &str) -> bool {
    match open_slot(store, id).await.unwrap() {
        CallSlot::InProgress => true,
        CallSlot::Fresh => false,
        other => panic!("slot {id}: {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_sqlite_write_group_rolls_back_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(open_slot(&store, "before").await.unwrap(), CallSlot::Fresh);

    // The writer connection may not grow the file any more: the next
    // writes fail with SQLITE_FULL, as on a full disk. (The limit belongs
    // to that connection; the writer replaces the connection after a failed
    // group, which ends this fault, as freeing space ends a real one.)
    let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count")
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA max_page_count = {pages}"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..12 {
        let store = store.clone();
        tasks.spawn(async move { (n, open_slot(&store, &format!("during-{n}")).await) });
    }
    let outcomes = tasks.join_all().await;
    let failed: Vec<_> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(!failed.is_empty(), "no write failed: {outcomes:?}");
    for (n, r) in &failed {
        let text = r.as_ref().unwrap_err().to_string();
        assert!(text.contains("full"), "write {n}: {text}");
    }

    // Later writes succeed without reopening the store, and the store
    // says it is ready.
    assert_eq!(open_slot(&store, "after").await.unwrap(), CallSlot::Fresh);
    store.check_ready().await.unwrap();
    // What was acknowledged is stored; what failed left nothing behind.
    assert!(is_stored(&store, "before").await);
    for (n, r) in &outcomes {
        assert_eq!(
            is_stored(&store, &format!("during-{n}")).await,
            r.is_ok(),
            "write {n}: {r:?}"
        );
    }
    store.close().await;
}

#[test]
fn sqlite_on_a_full_disk_reports_it_and_recovers_when_space_is_freed() {
    if namespace::rerun_inside("sqlite_on_a_full_disk_reports_it_and_recovers_when_space_is_freed")
        == Place::Outside
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("small");
    std::fs::create_dir(&dir).unwrap();
    namespace::mount_tmpfs(&dir, "2m");
    let url = format!("sqlite:{}", dir.join("ferrosim.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = SqlStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        for n in 0..5 {
            open_slot(&store, &format!("before-{n}")).await.unwrap();
        }
        store.check_ready().await.unwrap();

        let filler = namespace::fill_up(&dir, "filler");
        // Every write fails, with the cause, while the disk is full; so
        // does the readiness check.
        for n in 0..3 {
            let err = open_slot(&store, &format!("during-{n}"))
                .await
                .expect_err("a write on a full disk");
            assert!(err.to_string().contains("full"), "{err}");
        }
        let err = store
            .check_ready()
            .await
            .expect_err("not ready on a full disk");
        assert!(err.to_string().contains("not writable"), "{err}");
        assert!(err.to_string().contains("full"), "{err}");

        std::fs::remove_file(filler).unwrap();
        // Space is back: the very next calls succeed, on the same store.
        store.check_ready().await.unwrap();
        assert_eq!(open_slot(&store, "after").await.unwrap(), CallSlot::Fresh);
        for n in 0..5 {
            assert!(
                is_stored(&store, &format!("before-{n}")).await,
                "before-{n}"
            );
        }
        for n in 0..3 {
            assert!(
                !is_stored(&store, &format!("during-{n}")).await,
                "during-{n}"
            );
        }
        store.close().await;

        // And all of it is still there when the database is opened again.
        let store = SqlStore::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        assert!(is_stored(&store, "after").await);
        assert!(is_stored(&store, "before-4").await);
        store.close().await;
    });
}

#[tokio::test]
async fn postgres_with_its_connections_lost_reports_it_and_recovers() {
    use sqlx::Connection;
    let Some(admin) = ferrosim_testkit::postgres_admin_url(
        "postgres_with_its_connections_lost_reports_it_and_recovers",
    ) else {
        return;
    };
    let db = ferrosim_testkit::fresh_postgres(&admin).await.unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let store = SqlStore::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    for n in 0..5 {
        open_slot(&store, &format!("before-{n}")).await.unwrap();
    }
    store.check_ready().await.unwrap();

    // The database refuses new connections and every open one is ended,
    // as when the server restarts or the network drops.
    let mut control = sqlx::PgConnection::connect(&admin).await.unwrap();
    let set_allowed = |allowed: bool| {
        sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {allowed}"
        ))
    };
    sqlx::query(set_allowed(false))
        .execute(&mut control)
        .await
        .unwrap();
    let terminated: Vec<(bool,)> =
        sqlx::query_as("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .fetch_all(&mut control)
            .await
            .unwrap();
    assert!(!terminated.is_empty(), "the store had no connection open");

    for n in 0..3 {
        let err = open_slot(&store, &format!("during-{n}"))
            .await
            .expect_err("a write without a connection");
        assert!(
            err.to_string()
                .contains("not currently accepting connections")
                || err.to_string().contains("terminating connection"),
            "{err}"
        );
    }
    let err = store.check_ready().await.expect_err("not ready");
    assert!(err.to_string().contains("not readable"), "{err}");

    sqlx::query(set_allowed(true))
        .execute(&mut control)
        .await
        .unwrap();
    control.close().await.unwrap();
    // Reachable again: the same store works at once.
    store.check_ready().await.unwrap();
    assert_eq!(open_slot(&store, "after").await.unwrap(), CallSlot::Fresh);
    for n in 0..5 {
        assert!(
            is_stored(&store, &format!("before-{n}")).await,
            "before-{n}"
        );
    }
    for n in 0..3 {
        assert!(
            !is_stored(&store, &format!("during-{n}")).await,
            "during-{n}"
        );
    }
    store.close().await;
}
