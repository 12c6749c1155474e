//! The audit trail in SQL on every backend (SQLite always, PostgreSQL when
//! FERROSIM_TEST_POSTGRES_URL names a server): concurrent appends from two
//! stores (two instances) keep one chain; the database refuses changes;
//! and each kind of tampering by someone who gets past that (edit, delete,
//! reorder, truncate the tail) is found and named by verification, which
//! passes again once the tampering is undone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_audit::{Actor, AuditLog, AuditRecord, Problem};
use ferrosim_crypto::{KeySource, SoftwareKey};
use ferrosim_ids::Timestamp;
use ferrosim_store::{Backend, SqlStore, StoreOptions};
use ferrosim_testkit::databases;

async fn exec(store: &SqlStore, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn problems(store: &SqlStore, pk: &[u8]) -> Vec<Problem> {
    let log: &dyn AuditLog = store;
    log.verify(vec![], Some(pk.to_vec()))
        .await
        .unwrap()
        .problems
}

fn record(i: usize) -> AuditRecord {
    AuditRecord::new(
        Timestamp(1_000 + i as i64),
        Actor::operator("acme"),
        "es2.downloadOrder",
        &format!("894400000000000000{i:02}"),
    )
    .with_details(serde_json::json!({"ok": true, "i": i}))
}

#[tokio::test]
async fn chain_is_kept_and_tampering_is_named() {
    for db in databases().await.unwrap() {
        let a = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let b = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let key = SoftwareKey::generate().unwrap();
        let pk = key.public_key_sec1().to_vec();

        // Two stores (two instances) appending at once: one chain, 40 entries.
        let mut tasks = Vec::new();
        for t in 0..8 {
            let s = if t % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                for j in 0..5 {
                    let log: &dyn AuditLog = &s;
                    log.append(vec![record(t * 5 + j)]).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let log: &dyn AuditLog = &a;
        let report = log.verify(vec![], Some(pk.clone())).await.unwrap();
        assert!(report.ok(), "{}: {:?}", db.backend, report.problems);
        assert_eq!(
            (report.entries, report.last_seq),
            (40, 40),
            "{}",
            db.backend
        );

        // The database refuses to change or delete an entry.
        for sql in [
            "UPDATE audit_log SET subject = 'x' WHERE seq = 5",
            "DELETE FROM audit_log WHERE seq = 5",
        ] {
            let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(a.pool())
                .await;
            assert!(r.is_err(), "{}: {sql} was allowed", db.backend);
        }
        // Someone who owns the database drops that protection.
        match a.backend() {
            Backend::Sqlite => {
                exec(
                    &a,
                    "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete",
                )
                .await
            }
            Backend::Postgres => {
                exec(
                    &a,
                    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
                )
                .await
            }
        }

        // Edit.
        let before = log.entries(4, 1).await.unwrap().remove(0);
        exec(
            &a,
            "UPDATE audit_log SET subject = '89440000000000009999' WHERE seq = 5",
        )
        .await;
        assert_eq!(
            problems(&a, &pk).await,
            vec![Problem::Edited { seq: 5 }],
            "{}",
            db.backend
        );
        exec(
            &a,
            &format!(
                "UPDATE audit_log SET subject = '{}' WHERE seq = 5",
                before.subject
            ),
        )
        .await;
        assert_eq!(problems(&a, &pk).await, vec![], "{}", db.backend);

        // Delete.
        exec(
            &a,
            "CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq = 7",
        )
        .await;
        exec(&a, "DELETE FROM audit_log WHERE seq = 7").await;
        assert_eq!(
            problems(&a, &pk).await,
            vec![Problem::Removed { first: 7, last: 7 }],
            "{}",
            db.backend
        );
        exec(
            &a,
            "INSERT INTO audit_log SELECT * FROM saved; DROP TABLE saved",
        )
        .await;
        assert_eq!(problems(&a, &pk).await, vec![], "{}", db.backend);

        // Reorder: entries 3 and 4 change places.
        let swap = "UPDATE audit_log SET seq = -1 WHERE seq = 3; \
                    UPDATE audit_log SET seq = 3 WHERE seq = 4; \
                    UPDATE audit_log SET seq = 4 WHERE seq = -1";
        exec(&a, swap).await;
        assert_eq!(
            problems(&a, &pk).await,
            vec![
                Problem::Reordered {
                    stored_at: 3,
                    belongs_at: 4
                },
                Problem::Reordered {
                    stored_at: 4,
                    belongs_at: 3
                }
            ],
            "{}",
            db.backend
        );
        exec(&a, swap).await;
        assert_eq!(problems(&a, &pk).await, vec![], "{}", db.backend);

        // Truncate the tail: invisible without a checkpoint, found with one.
        let cp = log.checkpoint(&key, 9_000).await.unwrap().unwrap();
        assert_eq!(cp.seq, 40);
        exec(&a, "DELETE FROM audit_log WHERE seq > 36").await;
        let log_b: &dyn AuditLog = &b;
        assert_eq!(
            problems(&a, &pk).await,
            vec![Problem::Truncated {
                checkpoint: 40,
                last: 36
            }],
            "{}",
            db.backend
        );
        // The checkpoints deleted too: a copy kept elsewhere still finds it.
        exec(&a, "DELETE FROM audit_checkpoints").await;
        assert!(log_b.verify(vec![], None).await.unwrap().ok());
        let r = log_b.verify(vec![cp], Some(pk.clone())).await.unwrap();
        assert_eq!(
            r.problems,
            vec![Problem::Truncated {
                checkpoint: 40,
                last: 36
            }]
        );

        // Appends continue the (shortened) chain.
        log_b.append(vec![record(99)]).await.unwrap();
        assert_eq!(log_b.head().await.unwrap().unwrap().0, 37);
        a.close().await;
        b.close().await;
    }
}
