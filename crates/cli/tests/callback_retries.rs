//! ES2+ callbacks are never lost: while the operator's endpoint refuses
//! them, `ferrosim serve` retries them with growing delays (each order's
//! later events waiting behind its first); the retries go on
//! through a `kill -9` and a restart; once the endpoint is back, every event
//! arrives exactly once (a refused callback was never acknowledged, so there
//! is nothing to repeat).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::audit;
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{Es2Client, OPERATOR};

use common::{
    FERROSIM, download_all, https_client, loopback_pki, order_devices, restart, seed, spawn,
    wait_for_outbox,
};

const DEVICES: usize = 5;

/// Short retry delays so the test sees several attempts quickly.
const CALLBACK_CONFIG: &str =
    "[callbacks]\npoll_ms = 100\ninitial_backoff_ms = 200\nmax_backoff_secs = 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_survive_an_operator_outage_and_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), DEVICES);
    let config = dir.path().join("ferrosim.toml");
    std::fs::write(&config, CALLBACK_CONFIG).unwrap();

    let endpoint = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    endpoint.set_down(true);
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    let token = seed(&url, &endpoint.url, DEVICES as u64).await;
    let command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir)
        .config(&config);
    let mut server = spawn(command.clone()).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();

    // Downloads do not wait for the operator.
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let devices = order_devices(&pki, &[desk], server.smdp_address(), DEVICES).await;
    let https = https_client(&ci_pem);
    let devices = download_all(devices, DEVICES, |_| https.clone()).await;
    assert!(devices.iter().all(|d| d.has_its_profile()));

    // The first event of every order is tried again and again while the
    // operator is down; the later ones of each order wait behind it (one
    // order's callbacks are delivered in notification-point order).
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outbox = audit::outbox(&store).await.unwrap();
        let (heads, later): (Vec<_>, Vec<_>) = outbox.values().partition(|r| r.point == 1);
        if outbox.len() == 3 * DEVICES
            && heads.len() == DEVICES
            && heads.iter().all(|r| r.attempts >= 3)
        {
            assert!(outbox.values().all(|r| !r.delivered));
            assert!(later.iter().all(|r| r.attempts == 0), "{later:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "callbacks not retried: {outbox:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(endpoint.received().is_empty());
    assert!(endpoint.refused() >= 3);

    // The SM-DP+ dies and comes back; then the operator does.
    server.kill_hard().unwrap();
    let server = restart(&command, &server).await;
    endpoint.set_down(false);
    let drained = wait_for_outbox(&store, Duration::from_secs(60)).await;
    assert!(drained, "callbacks still pending; log:\n{}", server.log());

    // Each event exactly once, with its own outbox id; three per download.
    let outbox = audit::outbox(&store).await.unwrap();
    assert_eq!(outbox.len(), 3 * DEVICES);
    let received = audit::deliveries_by_outbox_id(&endpoint.received());
    let expected: BTreeMap<Option<i64>, usize> = outbox.keys().map(|id| (Some(*id), 1)).collect();
    assert_eq!(received, expected);
    store.close().await;
}
