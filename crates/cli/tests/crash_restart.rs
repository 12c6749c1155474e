//! `kill -9` of `ferrosim serve` in the middle of 100 concurrent downloads,
//! then a restart on the same data (SQLite in the data directory with the
//! default `full` durability; PostgreSQL when the test environment has one).
//!
//! What a production operator expects afterwards, and what is checked:
//! - **No order lost.** Every order placed before the crash is still there,
//!   linked to its EID. Devices whose download broke off try again (as an
//!   LPA does when the user retries), and devices that installed the profile
//!   while the server was down deliver the installation result they kept on
//!   the card. In the end every order is `installed`.
//! - **No profile issued twice.** No ICCID is on two eUICCs and every card
//!   holds exactly its own profile. A second Bound Profile Package for the
//!   same profile exists only for a device whose first package was issued
//!   (committed) but never reached it because the server died before
//!   answering: SGP.22's download retry to the same eUICC.
//! - **Every ES2+ callback delivered.** The outbox drains to zero after the
//!   restart (callbacks leased by the dead process come back when their
//!   lease ends), the operator endpoint saw every outbox row, and a row
//!   arrived twice only if it had already arrived before the kill (sent, but
//!   the process died before recording the acknowledgement); its
//!   `functionCallIdentifier` lets the operator drop the repeat.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrosim_lpa::es9::{Es9Function, function};
use ferrosim_lpa::{Es9Client, Es9ClientError, SmdpAddress};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{Es2Client, OPERATOR};
use ferrosim_testkit::{audit, fresh_postgres};
use tokio::sync::Mutex;

use common::{
    Device, FERROSIM, https_client, loopback_pki, order_devices, restart, seed, spawn,
    wait_for_outbox,
};

const DEVICES: usize = 100;
/// Downloads that end before the kill.
const KILL_AFTER_DOWNLOADS: usize = DEVICES / 4;
/// How long the operator takes to acknowledge a callback.
const CALLBACK_ANSWER_DELAY: Duration = Duration::from_millis(400);
/// Delay between the starts of two downloads.
const STAGGER: Duration = Duration::from_millis(10);

/// One crash at a time: each run keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_downloads_on_sqlite() {
    let _one = ONE_AT_A_TIME.lock().await;
    crash_and_recover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_downloads_on_postgres() {
    let Some(admin) = common::postgres_admin_url("kill_9_mid_downloads_on_postgres") else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let db = fresh_postgres(&admin).await.unwrap();
    crash_and_recover(Some(db.url.clone())).await;
}

/// The narrowest crash window, made deterministic: the SM-DP+ committed
/// `getBoundProfilePackage` (the order is `downloaded`) but the answer never
/// reached the device, as when the server dies before answering. The
/// device's next attempt gets a new package and installs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_package_answer_is_downloaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), 1);
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, 1).await;
    let server = spawn(
        ServeCommand::new(FERROSIM)
            .data_dir(&data_dir)
            .pki_dir(&pki_dir),
    )
    .await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let mut devices = order_devices(&pki, &[desk], server.smdp_address(), 1).await;
    let device = &mut devices[0];

    let https = https_client(&ci_pem);
    let failure = device.download(&LosePackageAnswer(https.clone())).await;
    assert!(
        failure
            .as_ref()
            .is_err_and(|f| f.starts_with("getBoundProfilePackage")),
        "{failure:?}"
    );
    assert!(device.installed().is_empty());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        audit::orders(&store).await.unwrap()[&device.iccid].state,
        "downloaded"
    );

    device.download(&https).await.unwrap();
    assert_eq!(device.installed(), vec![device.iccid.clone()]);
    let order = audit::orders(&store).await.unwrap()[&device.iccid].clone();
    assert_eq!(order.state, "installed");
    assert_eq!(order.download_attempts, 2);
    assert_eq!(
        audit::issued_packages(&store)
            .await
            .unwrap()
            .get(&device.iccid),
        Some(&2)
    );
    store.close().await;
}

/// Passes every call through, but loses the answer of
/// `getBoundProfilePackage` after the SM-DP+ produced it.
struct LosePackageAnswer<C>(C);

impl<C: Es9Client> Es9Client for LosePackageAnswer<C> {
    async fn call<F: Es9Function>(
        &self,
        address: &SmdpAddress,
        request: &F::Request,
    ) -> Result<F::Response, Es9ClientError> {
        let answer = self.0.call::<F>(address, request).await?;
        if F::NAME == function::GET_BOUND_PROFILE_PACKAGE {
            return Err(Es9ClientError::Unreachable {
                function: F::NAME,
                address: address.to_string(),
                reason: "connection reset before the answer arrived".into(),
            });
        }
        Ok(answer)
    }
}

/// The whole scenario on SQLite in the data directory (`None`) or on the
/// PostgreSQL database `database_url`.
async fn crash_and_recover(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), DEVICES);

    // Seed the database the server will open: its default SQLite file in the
    // data directory, or the PostgreSQL database.
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("ferrosim.db").display()));
    let sink = SlowCallbackEndpoint::start(CALLBACK_ANSWER_DELAY)
        .await
        .unwrap();
    let token = seed(&url, &sink.url, DEVICES as u64).await;

    let mut command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir);
    if let Some(url) = &database_url {
        command = command.database_url(url);
    }
    let mut server = spawn(command.clone()).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let address = server.smdp_address().to_owned();
    let desk = Es2Client::new(&server.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap();
    let devices = order_devices(&pki, &[desk], &address, 16).await;
    let ordered: BTreeMap<String, String> = devices
        .iter()
        .map(|d| (d.iccid.clone(), d.eid.clone()))
        .collect();
    assert_eq!(ordered.len(), DEVICES);

    // 100 concurrent downloads, started a few milliseconds apart so that at
    // any moment they are spread over all the steps; the server dies once a
    // quarter of them ended, at a moment when the operator has callbacks it
    // has not acknowledged yet.
    let https = https_client(&ci_pem);
    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut device in devices {
        let (client, finished) = (https.clone(), Arc::clone(&finished));
        let start = STAGGER * u32::try_from(device.index).unwrap();
        tasks.spawn(async move {
            tokio::time::sleep(start).await;
            let _ = device.download(&client).await;
            finished.fetch_add(1, Ordering::SeqCst);
            device
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while finished.load(Ordering::SeqCst) < KILL_AFTER_DOWNLOADS || sink.in_flight_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress before the kill; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_flight_at_kill: BTreeSet<Option<i64>> =
        audit::deliveries_by_outbox_id(&sink.in_flight())
            .into_keys()
            .collect();
    server.kill_hard().unwrap();
    let finished_at_kill = finished.load(Ordering::SeqCst);
    // A callback the server sent in full just before it died may still be
    // in the endpoint's hands (its body being read): let those land before
    // taking the list, or its redelivery after the restart looks like a
    // duplicate of something never seen.
    loop {
        let before = sink.received().len();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if sink.received().len() == before {
            break;
        }
    }
    let seen_before_kill: BTreeSet<Option<i64>> = audit::deliveries_by_outbox_id(&sink.received())
        .into_keys()
        .collect();
    assert!(
        finished_at_kill < DEVICES,
        "every download ended before the kill: nothing was in flight"
    );

    let states_at_kill = order_states(&url).await;

    // Restart on the same data and the same port (the address devices use).
    let server = restart(&command, &server).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let mut devices: Vec<Device> = tasks.join_all().await;
    devices.sort_by_key(|d| d.index);
    let broken_off: BTreeSet<String> = devices
        .iter()
        .filter(|d| d.last_failure.is_some())
        .map(|d| d.iccid.clone())
        .collect();

    // Recovery as devices do it: deliver what is still on the card, and
    // download again what never arrived.
    let client = https_client(&ci_pem);
    for round in 0..3 {
        let mut left = 0;
        for d in &mut devices {
            if d.pending_notifications() > 0 {
                d.deliver_notifications(&client).await;
            }
            if !d.has_its_profile() {
                let _ = d.download(&client).await;
            }
            if !d.has_its_profile() || d.pending_notifications() > 0 {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        assert!(
            round < 2,
            "{left} devices still without their profile after 3 rounds, e.g. {:?}",
            devices
                .iter()
                .filter(|d| !d.has_its_profile() || d.pending_notifications() > 0)
                .map(|d| (&d.eid, &d.last_failure, d.pending_notifications()))
                .take(5)
                .collect::<Vec<_>>()
        );
    }

    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    // Callbacks leased by the killed process come back when their lease ends (30 s).
    let drained = wait_for_outbox(&store, Duration::from_secs(90)).await;
    assert!(drained, "callbacks still pending; log:\n{}", server.log());

    // No order lost: every order is there, on its EID, and installed.
    let orders = audit::orders(&store).await.unwrap();
    assert_eq!(
        orders.keys().cloned().collect::<BTreeSet<_>>(),
        ordered.keys().cloned().collect::<BTreeSet<_>>()
    );
    for (iccid, eid) in &ordered {
        let o = &orders[iccid];
        assert_eq!(o.eid.as_ref(), Some(eid), "{o:?}");
        assert_eq!(o.state, "installed", "{o:?}");
    }

    // No profile issued twice: unique on the cards, each card has its own.
    let mut on_cards = BTreeSet::new();
    for d in &devices {
        assert_eq!(d.installed(), vec![d.iccid.clone()], "{}", d.eid);
        assert!(
            on_cards.insert(d.iccid.clone()),
            "{} on two eUICCs",
            d.iccid
        );
    }
    // More than one package only for a device whose download broke off.
    let issued = audit::issued_packages(&store).await.unwrap();
    for (iccid, n) in &issued {
        assert!(
            *n == 1 || broken_off.contains(iccid),
            "{iccid}: {n} packages issued, but its first download did not break off"
        );
    }
    assert_eq!(issued.len(), DEVICES);

    // Every callback delivered; repeats only of rows that had arrived before the kill.
    let outbox = audit::outbox(&store).await.unwrap();
    let received = audit::deliveries_by_outbox_id(&sink.received());
    assert_eq!(received.get(&None), None, "callbacks without an outbox id");
    for (id, row) in &outbox {
        assert!(row.delivered, "{row:?}");
        let n = received.get(&Some(*id)).copied().unwrap_or(0);
        assert!(n >= 1, "outbox row {id} never reached the operator");
        assert!(
            n == 1 || (n == 2 && seen_before_kill.contains(&Some(*id))),
            "outbox row {id} arrived {n} times"
        );
    }
    // Those the operator had not acknowledged when the server died came again.
    assert!(!in_flight_at_kill.is_empty());
    for id in &in_flight_at_kill {
        assert_eq!(
            received.get(id),
            Some(&2),
            "callback {id:?} in flight at the kill"
        );
    }
    assert_eq!(
        received.len(),
        outbox.len(),
        "callbacks for rows not in the outbox"
    );
    let installs: BTreeSet<&str> = outbox
        .values()
        .filter(|r| r.point == 4)
        .map(|r| r.iccid.as_str())
        .collect();
    assert_eq!(
        installs.len(),
        DEVICES,
        "one installation callback per order"
    );

    let repeats = received.values().filter(|n| **n > 1).count();
    let retried = devices.iter().filter(|d| d.attempts > 1).count();
    eprintln!(
        "{}: killed with {finished_at_kill}/{DEVICES} downloads ended, orders {states_at_kill:?}; {} broke off, \
         {retried} downloaded again; {} profiles with a second package; \
         {} callbacks, {} in flight at the kill, {repeats} repeated after the restart",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        broken_off.len(),
        issued.values().filter(|n| **n > 1).count(),
        outbox.len(),
        in_flight_at_kill.len(),
    );
    store.close().await;
    drop(server);
}

/// How many orders are in each state (read while no server runs).
async fn order_states(url: &str) -> BTreeMap<String, usize> {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    let mut states = BTreeMap::new();
    for o in audit::orders(&store).await.unwrap().into_values() {
        *states.entry(o.state).or_insert(0) += 1;
    }
    store.close().await;
    states
}
