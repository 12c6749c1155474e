//! Operator webhooks delivered from the shared decision log (SQLite file and
//! PostgreSQL): a receiver that fails and then recovers gets every event
//! exactly once and in order, each signature verified; two instances on one
//! database share the delivery cursor, so each event is sent once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use ferrosim_fleet::decision::{Decision, Reason, What};
use ferrosim_fleet::store::{FleetChanges, FleetStore};
use ferrosim_ids::{SystemClock, Timestamp};
use ferrosim_server::fleet::webhooks::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Verifier};
use ferrosim_server::fleet::{WebhookEndpoint, WebhookEvent, Webhooks};
use ferrosim_store::{SqlFleetStore, SqlStore, StoreOptions};

const SECRET: &[u8] = b"a webhook secret of some length";

/// A receiver answering 500 to its first `fail_first` requests, then
/// verifying each request and keeping the ids of the accepted events.
#[derive(Clone)]
struct Receiver {
    verifier: Arc<Mutex<Verifier>>,
    fail_first: Arc<Mutex<u32>>,
    /// Every request's event id, in arrival order (failed ones too).
    arrived: Arc<Mutex<Vec<String>>>,
    accepted: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let event: WebhookEvent = serde_json::from_slice(&body).unwrap();
    r.arrived.lock().unwrap().push(event.id.clone());
    {
        let mut fail = r.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let verdict = r.verifier.lock().unwrap().verify(
        h(TIMESTAMP_HEADER),
        h(SIGNATURE_HEADER),
        &body,
        Timestamp::now().0 / 1000,
    );
    match verdict {
        Ok(()) => {
            r.accepted.lock().unwrap().push(event.id);
            StatusCode::NO_CONTENT
        }
        Err(e) => {
            r.refused.lock().unwrap().push(e.to_string());
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn receiver(fail_first: u32) -> (Receiver, String) {
    let r = Receiver {
        verifier: Arc::new(Mutex::new(Verifier::new(SECRET, Duration::from_secs(300)))),
        fail_first: Arc::new(Mutex::new(fail_first)),
        arrived: Arc::default(),
        accepted: Arc::default(),
        refused: Arc::default(),
    };
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", sink.local_addr().unwrap());
    let app = Router::new()
        .route("/hooks", post(receive))
        .with_state(r.clone());
    tokio::spawn(async move { axum::serve(sink, app).await.unwrap() });
    (r, url)
}

fn hooks(url: &str) -> Webhooks {
    Webhooks::new(
        vec![WebhookEndpoint {
            name: "ops".into(),
            url: url.to_owned(),
            secret: SECRET.to_vec(),
        }],
        reqwest::Client::new(),
        Arc::new(SystemClock),
    )
    .retry_base(Duration::from_millis(20))
}

/// Appends decisions `from..=to` to the log, as a fleet driver would.
async fn decide(store: &SqlFleetStore, from: u64, to: u64) {
    let decisions = (from..=to)
        .map(|seq| Decision {
            seq,
            at: Timestamp::now(),
            device: None,
            rollout: Some(1),
            what: What::Hold,
            reason: Reason::Operator,
        })
        .collect();
    store
        .commit(FleetChanges {
            decisions,
            ..FleetChanges::default()
        })
        .await
        .unwrap();
}

/// Waits (bounded) until the shared cursor of "ops" reached `seq`.
async fn delivered_up_to(store: &SqlFleetStore, seq: u64, backend: &str) {
    for _ in 0..1_000 {
        let cursors = store.webhook_cursors().await.unwrap();
        if cursors
            .iter()
            .any(|c| c.endpoint == "ops" && c.delivered_seq >= seq)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{backend}: events up to {seq} not delivered: {:?}",
        store.webhook_cursors().await
    );
}

fn ids(from: u64, to: u64) -> Vec<String> {
    (from..=to).map(|s| format!("d{s}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_every_event_once_in_order_after_it_recovers() {
    for db in ferrosim_testkit::databases().await.unwrap() {
        let backend = db.backend;
        let sql = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let store = sql.fleet();
        let (r, url) = receiver(4).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = hooks(&url).spawn(store.clone(), stopped);
        decide(&store, 1, 5).await;
        delivered_up_to(&store, 5, backend).await;
        decide(&store, 6, 12).await;
        delivered_up_to(&store, 12, backend).await;
        stop.send(true).unwrap();
        task.await.unwrap();

        assert_eq!(
            *r.accepted.lock().unwrap(),
            ids(1, 12),
            "{backend}: once each, in order"
        );
        assert!(
            r.refused.lock().unwrap().is_empty(),
            "{backend}: every signature verified"
        );
        // The first event was refused four times and sent again each time;
        // nothing after it went out before it was accepted.
        let arrived = r.arrived.lock().unwrap().clone();
        assert_eq!(
            arrived[..5],
            vec!["d1".to_owned(); 5][..],
            "{backend}: retried in order"
        );
        assert_eq!(arrived[5..], ids(2, 12)[..], "{backend}");
        let cursor = store.webhook_cursors().await.unwrap();
        assert_eq!(cursor.len(), 1);
        assert_eq!(
            (cursor[0].delivered_seq, cursor[0].failures),
            (12, 0),
            "{backend}"
        );

        // A restarted instance (a new holder) resumes after the last
        // acknowledged event: nothing is sent again.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = hooks(&url).spawn(store.clone(), stopped);
        decide(&store, 13, 13).await;
        delivered_up_to(&store, 13, backend).await;
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            *r.accepted.lock().unwrap(),
            ids(1, 13),
            "{backend}: resumed, no resend"
        );
        sql.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_event_once() {
    for db in ferrosim_testkit::databases().await.unwrap() {
        let backend = db.backend;
        let one = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let two = SqlStore::connect(&db.url, &StoreOptions::default())
            .await
            .unwrap();
        let (r, url) = receiver(2).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (a, b) = (hooks(&url), hooks(&url));
        assert_ne!(a.holder(), b.holder());
        let tasks = [
            a.spawn(one.fleet(), stopped.clone()),
            b.spawn(two.fleet(), stopped),
        ];
        // Decisions committed through both instances, in turns.
        for round in 0..6u64 {
            let store = if round % 2 == 0 {
                one.fleet()
            } else {
                two.fleet()
            };
            decide(&store, round * 10 + 1, round * 10 + 10).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        delivered_up_to(&one.fleet(), 60, backend).await;
        stop.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            *r.accepted.lock().unwrap(),
            ids(1, 60),
            "{backend}: once each, in order"
        );
        assert!(r.refused.lock().unwrap().is_empty(), "{backend}");
        let arrived = r.arrived.lock().unwrap().clone();
        assert_eq!(
            arrived.len(),
            62,
            "{backend}: only the two refused requests repeated"
        );
        one.close().await;
        two.close().await;
    }
}
