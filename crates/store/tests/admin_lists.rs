//! One IMSI, one profile, and the administrators' listings (orders,
//! callback outbox, device notifications), on SQLite always and on
//! PostgreSQL when FERROSIM_TEST_POSTGRES_URL names a server.
//!
//! Orders, callbacks and notifications are written with plain SQL here, so
//! the listings are tested on exactly the rows they must find.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use ferrosim_saip::{Iccid, Imsi, Personalisation};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::metadata::{PolicyRules, ProfileClass, ProfileTypeMetadata};
use ferrosim_smdp::order::{ProfileRecord, ProfileState};
use ferrosim_smdp::store::*;
use ferrosim_smdp::time::Timestamp;
use ferrosim_store::{
    CallbackQuery, CallbackStatus, DEFAULT_TOKEN, ListError, MAX_PAGE, NotificationQuery,
    OrderEvent, OrderQuery, SqlStore, StoreOptions,
};
use ferrosim_testkit::databases;

fn op(name: &str) -> OperatorId {
    OperatorId::new(name).unwrap()
}

fn iccid(n: u64) -> Iccid {
    Iccid::from_body(&format!("89440000000000{n:04}")).unwrap()
}

fn imsi(n: u64) -> Imsi {
    Imsi::with_mnc_len(&format!("0010100000{n:05}"), 2).unwrap()
}

async fn exec(store: &SqlStore, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn count(store: &SqlStore) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM profiles")
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

/// A store with operators `op1` and `op2`, each with type `t`.
async fn seeded(url: &str) -> SqlStore {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    for (k, name) in [(1u8, "op1"), (2u8, "op2")] {
        store
            .put_operator(&Operator {
                id: op(name),
                name: name.into(),
                token_hash: [k; 32],
                callback_url: None,
            })
            .await
            .unwrap();
        store
            .put_profile_type(&ProfileTypeRecord {
                operator: op(name),
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
    }
    store
}

/// Profiles `ns` of `operator`, profile `n` with IMSI `imsis(n)`.
fn batch(operator: &str, ns: &[u64], imsis: impl Fn(u64) -> Option<Imsi>) -> Vec<NewProfile> {
    ns.iter()
        .map(|&n| {
            let mut p = Personalisation::new(iccid(n)).with_random_keys(&mut rand::rng());
            p.imsi = imsis(n);
            NewProfile {
                record: ProfileRecord::new_available(
                    iccid(n),
                    op(operator),
                    "t".into(),
                    Timestamp(1),
                ),
                personalisation: p,
            }
        })
        .collect()
}

#[tokio::test]
async fn an_imsi_belongs_to_one_profile() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url).await;
        let b = db.backend;
        store
            .insert_profiles(&batch("op1", &[0, 1, 2], |n| Some(imsi(n))))
            .await
            .unwrap();

        // A later batch (of another operator even) reusing IMSI 2: refused
        // whole, naming the IMSI and the ICCID that has it.
        let err = store
            .insert_profiles(&batch("op2", &[10, 11, 12], |n| Some(imsi(n - 10 + 2))))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Conflict(_)), "{b}: {text}");
        assert!(
            text.contains(imsi(2).as_str()) && text.contains(iccid(2).as_str()),
            "{b}: {text}"
        );
        assert_eq!(count(&store).await, 3, "{b}: nothing of the batch stored");

        // Two profiles of one batch with one IMSI: refused, both named.
        let err = store
            .insert_profiles(&batch("op1", &[20, 21], |_| Some(imsi(50))))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(imsi(50).as_str())
                && text.contains(iccid(20).as_str())
                && text.contains(iccid(21).as_str()),
            "{b}: {text}"
        );
        assert_eq!(count(&store).await, 3, "{b}");

        // New IMSIs, and profiles without one, go in; the refused IMSI 50 is free.
        store
            .insert_profiles(&batch("op1", &[20, 21, 22], |n| {
                (n != 22).then(|| imsi(n + 30))
            }))
            .await
            .unwrap();
        store
            .insert_profiles(&batch("op1", &[23], |_| None))
            .await
            .unwrap();
        assert_eq!(count(&store).await, 7, "{b}");

        // The database itself refuses a second holder (two instances racing).
        let dup = format!(
            "UPDATE profiles SET imsi = '{}' WHERE iccid = '{}'",
            imsi(0).as_str(),
            iccid(1).as_str()
        );
        let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(dup))
            .execute(store.pool())
            .await;
        assert!(refused.is_err(), "{b}: unique index on profiles.imsi");
        store.close().await;
    }
}

/// Gives profile `n` an order created at `at` in `state`.
async fn order(store: &SqlStore, n: u64, state: ProfileState, at: i64) {
    exec(
        store,
        &format!(
            "UPDATE profiles SET has_order = 1, state = '{}', order_created_at = {at},
             order_expires_at = {}, matching_id = 'MATCH-{n:06}' WHERE iccid = '{}'",
            state.as_str(),
            at + 1_000_000,
            iccid(n).as_str()
        ),
    )
    .await;
}

fn iccids(orders: &[ProfileRecord]) -> Vec<Iccid> {
    orders.iter().map(|p| p.iccid.clone()).collect()
}

#[tokio::test]
async fn orders_are_listed_filtered_and_paged() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url).await;
        let b = db.backend;
        store
            .insert_profiles(&batch("op1", &[0, 1, 2, 3, 4], |n| Some(imsi(n))))
            .await
            .unwrap();
        store
            .insert_profiles(&batch("op2", &[5, 6], |n| Some(imsi(n))))
            .await
            .unwrap();
        // Profile 4 stays available (no order). Profiles 1 and 2 share a time.
        order(&store, 0, ProfileState::Released, 3_000).await;
        order(&store, 1, ProfileState::Confirmed, 2_000).await;
        order(&store, 2, ProfileState::Released, 2_000).await;
        order(&store, 3, ProfileState::Installed, 5_000).await;
        order(&store, 5, ProfileState::Released, 1_000).await;
        order(&store, 6, ProfileState::Released, 4_000).await;

        let all = store.list_orders(&OrderQuery::default()).await.unwrap();
        assert_eq!(
            iccids(&all),
            vec![iccid(5), iccid(1), iccid(2), iccid(0), iccid(6), iccid(3)],
            "{b}: oldest first, then by ICCID; no order, no row"
        );
        assert!(all.iter().all(|p| p.order.is_some()), "{b}");

        let q = |f: fn(&mut OrderQuery)| {
            let mut q = OrderQuery::default();
            f(&mut q);
            q
        };
        let released = store
            .list_orders(&q(|q| q.state = Some(ProfileState::Released)))
            .await
            .unwrap();
        assert_eq!(
            iccids(&released),
            vec![iccid(5), iccid(2), iccid(0), iccid(6)],
            "{b}"
        );
        let op2 = store
            .list_orders(&q(|q| q.operator = Some(op("op2"))))
            .await
            .unwrap();
        assert_eq!(iccids(&op2), vec![iccid(5), iccid(6)], "{b}");
        let other_type = store
            .list_orders(&q(|q| q.profile_type = Some("nope".into())))
            .await
            .unwrap();
        assert!(other_type.is_empty(), "{b}");
        let window = store
            .list_orders(&q(|q| {
                q.since = Some(Timestamp(2_000));
                q.until = Some(Timestamp(4_000));
            }))
            .await
            .unwrap();
        assert_eq!(iccids(&window), vec![iccid(1), iccid(2), iccid(0)], "{b}");

        // Pages of two follow each other without a gap or a repeat, also
        // across two orders of the same time.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_orders(&OrderQuery {
                    after: after.clone(),
                    limit: 2,
                    ..OrderQuery::default()
                })
                .await
                .unwrap();
            seen.extend(iccids(&page));
            if page.len() < 2 {
                break;
            }
            after = page.last().map(|p| p.iccid.clone());
        }
        assert_eq!(seen, iccids(&all), "{b}");

        // Refused: page sizes out of range, an empty window, a cursor that is no order.
        for limit in [0, 1001] {
            let e = store
                .list_orders(&OrderQuery {
                    limit,
                    ..OrderQuery::default()
                })
                .await
                .unwrap_err();
            assert!(matches!(e, ListError::PageSize(_)), "{b}: {e}");
        }
        let e = store
            .list_orders(&q(|q| {
                q.since = Some(Timestamp(5));
                q.until = Some(Timestamp(5));
            }))
            .await
            .unwrap_err();
        assert!(matches!(e, ListError::EmptyRange { .. }), "{b}: {e}");
        let e = store
            .list_orders(&OrderQuery {
                after: Some(iccid(4)),
                ..OrderQuery::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(e, ListError::UnknownCursor(_)), "{b}: {e}");
        store.close().await;
    }
}

#[tokio::test]
async fn callbacks_and_notifications_are_listed() {
    for db in databases().await.unwrap() {
        let store = seeded(&db.url).await;
        let b = db.backend;
        let (i0, i1) = (iccid(0), iccid(1));
        let eid = ferrosim_pki::Eid::from_body("890490320000000000000000000001")
            .unwrap()
            .to_string();
        exec(
            &store,
            &format!(
                "INSERT INTO callbacks (operator, iccid, eid, profile_type, point, failure_subject,
                    failure_reason, event_at, attempts, next_attempt_at, delivered_at, last_error)
                 VALUES
                 ('op1', '{i0}', NULL, 't', 1, NULL, NULL, 100, 1, 200, 150, NULL),
                 ('op1', '{i0}', NULL, 't', 3, '8.1', '4.2', 110, 3, 900, NULL, 'HTTP 503'),
                 ('op2', '{i1}', NULL, 't', 1, NULL, NULL, 120, 0, 120, NULL, NULL)",
                i0 = i0.as_str(),
                i1 = i1.as_str()
            ),
        )
        .await;
        let all = store
            .list_callbacks(&CallbackQuery::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "{b}");
        assert_eq!(all[0].delivered_at, Some(Timestamp(150)), "{b}");
        let retried = &all[1];
        assert_eq!(
            (
                retried.attempts,
                retried.failure.as_deref(),
                retried.last_error.as_deref(),
                retried.next_attempt_at
            ),
            (3, Some("8.1/4.2"), Some("HTTP 503"), Timestamp(900)),
            "{b}"
        );
        let pending = store
            .list_callbacks(&CallbackQuery {
                status: Some(CallbackStatus::Pending),
                ..CallbackQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(pending.len(), 2, "{b}");
        let delivered = store
            .list_callbacks(&CallbackQuery {
                status: Some(CallbackStatus::Delivered),
                ..CallbackQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(delivered.len(), 1, "{b}");
        let op2 = store
            .list_callbacks(&CallbackQuery {
                operator: Some(op("op2")),
                ..CallbackQuery::default()
            })
            .await
            .unwrap();
        assert_eq!((op2.len(), &op2[0].iccid), (1, &i1), "{b}");
        let page2 = store
            .list_callbacks(&CallbackQuery {
                after: Some(all[0].id),
                limit: 1,
                ..CallbackQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page2, vec![all[1].clone()], "{b}");

        exec(
            &store,
            &format!(
                "INSERT INTO notifications (seq_number, operation, iccid, eid, address, raw, received_at)
                 VALUES
                 (7, 'disable', '{i0}', '{eid}', 'smdp.example.com', X'0102', 1000),
                 (8, 'delete', '{i0}', '{eid}', 'smdp.example.com', X'010203', 2000),
                 (9, 'enable', '{i1}', NULL, 'smdp.example.com', X'01', 3000)",
                i0 = i0.as_str(),
                i1 = i1.as_str(),
                eid = eid
            )
            .replace("X'", if b == "sqlite" { "X'" } else { "'\\x" }),
        )
        .await;
        let all = store
            .list_notifications(&NotificationQuery::default())
            .await
            .unwrap();
        assert_eq!(
            all.iter().map(|n| n.operation.as_str()).collect::<Vec<_>>(),
            vec!["disable", "delete", "enable"],
            "{b}"
        );
        assert_eq!((all[1].seq_number, all[1].raw_len), (8, 3), "{b}");
        let deletes = store
            .list_notifications(&NotificationQuery {
                operation: Some("delete".into()),
                ..NotificationQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(deletes.len(), 1, "{b}");
        let about_i1 = store
            .list_notifications(&NotificationQuery {
                iccid: Some(i1.clone()),
                ..NotificationQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(about_i1.len(), 1, "{b}");
        let window = store
            .list_notifications(&NotificationQuery {
                since: Some(Timestamp(2000)),
                until: Some(Timestamp(3000)),
                ..NotificationQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(window.len(), 1, "{b}");

        // The history of i0: its audit entries, callbacks and notifications
        // merged by time; nothing about i1.
        let log: &dyn ferrosim_audit::AuditLog = &store;
        let rec = |at: i64, action: &str, subject: &Iccid| {
            ferrosim_audit::AuditRecord::new(
                ferrosim_ids::Timestamp(at),
                ferrosim_audit::Actor::operator("op1"),
                action,
                subject.as_str(),
            )
        };
        log.append(vec![
            rec(50, "es2.downloadOrder", &i0),
            rec(60, "es2.downloadOrder", &i1),
            rec(1500, "es2.cancelOrder", &i0),
        ])
        .await
        .unwrap();
        let history = store.order_history(&i0, 100).await.unwrap();
        assert!(!history.truncated, "{b}");
        let seen: Vec<(i64, String)> = history
            .events
            .iter()
            .map(|e| {
                let what = match e {
                    OrderEvent::Audited(a) => a.action.clone(),
                    OrderEvent::Progress(c) => format!("point {}", c.point),
                    OrderEvent::Notification(n) => n.operation.clone(),
                };
                (e.at().millis(), what)
            })
            .collect();
        let expected: Vec<(i64, String)> = [
            (50, "es2.downloadOrder"),
            (100, "point 1"),
            (110, "point 3"),
            (1000, "disable"),
            (1500, "es2.cancelOrder"),
            (2000, "delete"),
        ]
        .into_iter()
        .map(|(t, w)| (t, w.to_owned()))
        .collect();
        assert_eq!(seen, expected, "{b}");
        let short = store.order_history(&i0, 1).await.unwrap();
        assert!(short.truncated, "{b}");
        assert_eq!(short.events.len(), 3, "{b}: one of each source");
        for bad in [0, MAX_PAGE + 1] {
            assert!(
                matches!(
                    store.order_history(&i0, bad).await,
                    Err(ListError::PageSize(_))
                ),
                "{b}: {bad}"
            );
        }
        let none = store.order_history(&iccid(99), 100).await.unwrap();
        assert!(none.events.is_empty(), "{b}");
        store.close().await;
    }
}

/// Several ES2+ tokens per operator: each one authenticates
/// (`operator_by_token` is what ES2+ authentication asks), a revoked one no
/// longer does, a rotation of the default token leaves the named ones alone,
/// and rewriting the operator with its current token does not bring a
/// revoked default back. Names and hashes are unique; the last active token
/// cannot be revoked.
#[tokio::test]
async fn an_operator_has_several_tokens() {
    let hash = ferrosim_smdp::es2::token_hash;
    for db in databases().await.unwrap() {
        let store = seeded(&db.url).await;
        let b = db.backend;
        let who = |t: &'static str| {
            let store = store.clone();
            async move {
                store
                    .operator_by_token(&hash(t))
                    .await
                    .unwrap()
                    .map(|o| o.id)
            }
        };
        let mut op1 = store.operator(&op("op1")).await.unwrap().unwrap();
        op1.token_hash = hash("first");
        store.put_operator(&op1).await.unwrap();
        store
            .add_operator_token(&op("op1"), "ci", &hash("second"), Timestamp(10))
            .await
            .unwrap();
        assert_eq!(who("first").await, Some(op("op1")), "{b}");
        assert_eq!(who("second").await, Some(op("op1")), "{b}");
        assert_eq!(who("nothing").await, None, "{b}");
        let names: Vec<String> = store
            .operator_tokens(&op("op1"))
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["ci", DEFAULT_TOKEN], "{b}");

        // Refusals, nothing changed by them.
        for (name, h) in [("ci", hash("third")), ("other", hash("second"))] {
            assert!(
                matches!(
                    store
                        .add_operator_token(&op("op1"), name, &h, Timestamp(11))
                        .await,
                    Err(StoreError::Conflict(_))
                ),
                "{b}: {name}"
            );
        }
        assert!(matches!(
            store
                .add_operator_token(&op("nobody"), "x", &hash("x"), Timestamp(11))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert!(
            !store
                .revoke_operator_token(&op("op1"), "nope", Timestamp(12))
                .await
                .unwrap(),
            "{b}"
        );

        // Revoke the default: the named token goes on working.
        assert!(
            store
                .revoke_operator_token(&op("op1"), DEFAULT_TOKEN, Timestamp(20))
                .await
                .unwrap()
        );
        assert_eq!(who("first").await, None, "{b}");
        assert_eq!(who("second").await, Some(op("op1")), "{b}");
        // Rewriting the operator (a new name) keeps the revoked default revoked.
        let mut renamed = store.operator(&op("op1")).await.unwrap().unwrap();
        renamed.name = "Renamed".into();
        store.put_operator(&renamed).await.unwrap();
        assert_eq!(who("first").await, None, "{b}");
        let listed = store.operator_tokens(&op("op1")).await.unwrap();
        assert_eq!(listed[1].revoked_at, Some(Timestamp(20)), "{b}");
        // The last active token cannot be revoked.
        assert!(matches!(
            store
                .revoke_operator_token(&op("op1"), "ci", Timestamp(21))
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(who("second").await, Some(op("op1")), "{b}");
        // A rotation issues a new, active default.
        renamed.token_hash = hash("fourth");
        store.put_operator(&renamed).await.unwrap();
        assert_eq!(who("fourth").await, Some(op("op1")), "{b}");
        assert_eq!(who("second").await, Some(op("op1")), "{b}");
        assert_eq!(who("first").await, None, "{b}");
        // Another operator's tokens are its own.
        assert_eq!(who("nothing").await, None, "{b}");
        assert_eq!(
            store
                .operator_by_token(&[2; 32])
                .await
                .unwrap()
                .map(|o| o.id),
            Some(op("op2")),
            "{b}"
        );
        // Removing an operator removes its tokens.
        assert!(
            store.remove_operator(&op("op2")).await.is_err(),
            "{b}: it owns type t"
        );
        store.close().await;
    }
}
