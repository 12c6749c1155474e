//! One order's ES2+ callbacks leave the outbox in the order they happened
//! (notification-point order): only the oldest undelivered event of a
//! profile can be leased, so a later event waits while an earlier one is
//! retried; other orders' events are not held up. On SQLite, and on
//! PostgreSQL when `FERROSIM_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_smdp::store::Store;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{SqlStore, StoreOptions};

/// Queues an event as the SM-DP+ would (the outbox is plain rows).
async fn queue(store: &SqlStore, iccid: &str, point: i64, at: i64) {
    sqlx::query(
        "INSERT INTO callbacks (operator, iccid, eid, profile_type, point, event_at, next_attempt_at)
         VALUES ('op1', $1, NULL, 't', $2, $3, $3)",
    )
    .bind(iccid)
    .bind(point)
    .bind(at)
    .execute(store.pool())
    .await
    .unwrap();
}

fn points(claimed: &[ferrosim_smdp::store::CallbackRecord]) -> Vec<(String, i64)> {
    claimed
        .iter()
        .map(|c| (c.event.iccid.as_str().to_owned(), c.event.point.id()))
        .collect()
}

async fn run(store: SqlStore) {
    const A: &str = "8944000000000000019";
    const B: &str = "8944000000000000027";
    queue(&store, A, 1, 10).await;
    queue(&store, B, 1, 11).await;
    queue(&store, A, 3, 12).await;
    queue(&store, A, 4, 13).await;
    let now = Timestamp(1_000);

    // Only the head of each order.
    let first = store.claim_callbacks(now, 50, 10).await.unwrap();
    assert_eq!(
        points(&first),
        vec![(A.into(), 1), (B.into(), 1)],
        "one callback per order, the oldest"
    );
    // A's point 1 fails and waits; B's is delivered. A's later points still wait.
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
        "point 3 and 4 must wait for point 1"
    );
    // Point 1 again, then 3, then 4.
    let again = store
        .claim_callbacks(Timestamp(5_000), 50, 10)
        .await
        .unwrap();
    assert_eq!(points(&again), vec![(A.into(), 1)]);
    store.callbacks_delivered(&[a1], now).await.unwrap();
    for want in [3, 4] {
        let next = store
            .claim_callbacks(Timestamp(6_000), 50, 10)
            .await
            .unwrap();
        assert_eq!(points(&next), vec![(A.into(), want)]);
        store.callbacks_delivered(&[next[0].id], now).await.unwrap();
    }
    assert_eq!(store.pending_callbacks().await.unwrap(), 0);
}

#[tokio::test]
async fn one_orders_callbacks_leave_in_order_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    run(store).await;
}

#[tokio::test]
async fn one_orders_callbacks_leave_in_order_on_postgres() {
    let Some(admin) =
        ferrosim_testkit::postgres_admin_url("one_orders_callbacks_leave_in_order_on_postgres")
    else {
        return;
    };
    let db = ferrosim_testkit::fresh_postgres(&admin).await.unwrap();
    let store = SqlStore::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    run(store).await;
}
