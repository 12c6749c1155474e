//! `kill -9` of `ferrosim serve` while 100 IoT devices poll its eIM, then a
//! restart on the same database (SQLite in the data directory with the
//! default `full` durability; PostgreSQL when the test environment has one).
//!
//! Each device is a virtual IoT eUICC with two profiles and the real IPA
//! (`ferrosim-ipa`), polling the eIM of `serve` over loopback HTTPS (ASN.1
//! binding for even devices, JSON for odd ones), one package per session.
//! The operator queues five packages per device over the REST API before
//! the devices start: disable P1, enable P2, list the profiles, disable
//! P2, enable P1 (each fails with a non-zero code if it runs twice or out
//! of order). Once a third of the results are acknowledged, the server is
//! killed with SIGKILL; it is started again on the same port and data, and
//! the IPAs go on as they do in the field (pending results kept, backoff
//! with jitter while the eIM is away).
//!
//! What is checked afterwards:
//! - **No package lost.** Every queued package has exactly one stored
//!   result at the eIM, with a verified eUICC signature and the outcome the
//!   operation must have (ok, or the profile list); every queue is empty.
//! - **None ran twice on a device.** The eUICC signed exactly five package
//!   results (its sequence number), its counter for the eIM is the last
//!   package's, every counter was executed exactly once as the IPA saw it,
//!   and the eUICC never had to refuse a package as a replay; the cards end
//!   with P1 enabled and P2 disabled.
//! - **Every result stored once.** One result per counter and per eUICC
//!   sequence number at the eIM, and the eIM's view of the profiles matches
//!   the card.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferrosim_eim::{EimStore, ItemOutcome, Trust};
use ferrosim_euicc::ProfileState;
use ferrosim_ipa::{Binding, PackageOutcome};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::fresh_postgres;
use ferrosim_testkit::serve::ServeCommand;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use common::iot::{
    Eims, IotDevice, Operator, add_initial_eim, direct_client, operator_token, p1, p2,
};
use common::{FERROSIM, loopback_pki, restart, spawn};

const DEVICES: usize = 100;
/// Results acknowledged before the kill (of `DEVICES * operations().len()`).
const KILL_AFTER_ACKS: usize = DEVICES * 5 / 3;

/// One crash at a time: each run keeps both cores busy.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_iot_devices_poll_on_sqlite() {
    let _one = ONE_AT_A_TIME.lock().await;
    crash_and_recover(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_iot_devices_poll_on_postgres() {
    let Some(admin) = common::postgres_admin_url("kill_9_while_iot_devices_poll_on_postgres")
    else {
        return;
    };
    let _one = ONE_AT_A_TIME.lock().await;
    let db = fresh_postgres(&admin).await.unwrap();
    crash_and_recover(Some(db.url.clone())).await;
}

/// The packages queued for every device, in order, as REST bodies, with
/// the result code each must end with (`None`: a profile list).
fn operations() -> [(Value, Option<i64>); 5] {
    [
        (
            json!({"operation": "disable", "iccid": p1().as_str()}),
            Some(0),
        ),
        (
            json!({"operation": "enable", "iccid": p2().as_str()}),
            Some(0),
        ),
        (json!({"operation": "list-profiles"}), None),
        (
            json!({"operation": "disable", "iccid": p2().as_str()}),
            Some(0),
        ),
        (
            json!({"operation": "enable", "iccid": p1().as_str()}),
            Some(0),
        ),
    ]
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

async fn crash_and_recover(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), DEVICES);
    // All the devices and the operator share one address: limits above
    // what they make, as for a fleet behind one NAT.
    let config = dir.path().join("ferrosim.toml");
    std::fs::write(
        &config,
        "[access]\nrate_per_sec = 100000.0\nburst = 100000\n",
    )
    .unwrap();
    let url = database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("ferrosim.db").display()));
    let mut instance = vec![
        "--data-dir".to_owned(),
        path(&data_dir),
        "--pki-dir".to_owned(),
        path(&pki_dir),
        "--config".to_owned(),
        path(&config),
    ];
    let mut command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir)
        .config(&config);
    if let Some(url) = &database_url {
        command = command.database_url(url);
        instance.extend(["--database-url".to_owned(), url.clone()]);
    }
    let server = spawn(command.clone()).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let address = server.smdp_address().to_owned();

    // The operator's token and the eIM's AddInitialEim for the devices
    // (the eIM identity was made by serve's first start).
    let token = operator_token(&instance);
    let first_eim = add_initial_eim(&instance, dir.path());
    let devices: Vec<IotDevice> = common::identities(&pki)
        .into_iter()
        .map(|identity| IotDevice::new(identity, &first_eim))
        .collect();

    // Associate every device and queue its packages over the REST API.
    let operator = Operator::new(&server.base_url(), &token, &ci_pem);
    let sem = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    for (i, device) in devices.iter().enumerate() {
        let (operator, sem, eid) = (operator.clone(), sem.clone(), device.eid);
        let eum = pki.eum.certificate_pem();
        let euicc = pki.euiccs[i].certificate_pem();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            operator.associate(&eid, &eum, &euicc).await;
            for (n, (operation, _)) in operations().iter().enumerate() {
                let (counter, _) = operator.queue(&eid, operation).await;
                assert_eq!(counter as usize, n + 1, "{eid}");
            }
        });
    }
    tasks.join_all().await;

    // The devices poll, all at once; the server dies once a third of the
    // results are acknowledged.
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let direct = direct_client(&ci_pem);
    // Everything is queued: a device is done once it finds nothing more.
    let more_coming = Arc::new(AtomicBool::new(false));
    let mut polling = JoinSet::new();
    for (i, device) in devices.into_iter().enumerate() {
        let binding = if i % 2 == 0 {
            Binding::Asn1
        } else {
            Binding::Json
        };
        let eim = Eims::new(
            std::slice::from_ref(&address),
            binding,
            &ci_pem,
            0,
            acknowledged.clone(),
        );
        polling.spawn(device.run(eim, direct.clone(), more_coming.clone()));
    }
    let total = DEVICES * operations().len();
    let mut server = server;
    let mut waited = 0;
    while acknowledged.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        waited += 1;
        assert!(
            waited < 60_000 && !polling.is_empty(),
            "no progress before the kill; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill_hard().unwrap();
    let acked_at_kill = acknowledged.load(Ordering::SeqCst);
    assert!(acked_at_kill < total, "every package ended before the kill");

    let server = restart(&command, &server).await;
    let mut devices: Vec<IotDevice> = polling.join_all().await;
    devices.sort_by_key(|d| d.eid);

    // The eIM's store, read beside the restarted server.
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let expected = operations();
    let mut stored = 0;
    for device in &mut devices {
        let eid = device.eid;
        let results = store.results(&eid).await.unwrap();
        let counters: Vec<u32> = results
            .iter()
            .map(|r| r.counter.expect("a package result has its counter").get())
            .collect();
        assert_eq!(
            counters,
            (1..=expected.len() as u32).collect::<Vec<_>>(),
            "{eid}: one result per queued package, in order: {results:?}"
        );
        let seqs: BTreeSet<i64> = results.iter().filter_map(|r| r.seq_number).collect();
        assert_eq!(seqs.len(), expected.len(), "{eid}: {results:?}");
        for (r, (operation, code)) in results.iter().zip(&expected) {
            assert_eq!(r.trust, Some(Trust::Verified), "{eid} {operation}");
            let ItemOutcome::Executed(codes) = &r.outcome else {
                panic!("{eid} {operation}: {:?}", r.outcome);
            };
            assert_eq!(codes, &vec![*code], "{eid} {operation}");
        }
        stored += results.len();
        let record = store.device(&eid).await.unwrap().unwrap().record;
        assert!(record.queue.is_empty(), "{eid}: {:?}", record.queue);
        assert_eq!(record.association.counter.get(), expected.len() as u32);
        let profiles: BTreeMap<String, bool> = record
            .profiles
            .profiles
            .iter()
            .map(|p| (p.iccid.as_str().to_owned(), p.enabled))
            .collect();
        assert_eq!(
            profiles,
            BTreeMap::from([
                (p1().as_str().to_owned(), true),
                (p2().as_str().to_owned(), false)
            ]),
            "{eid}: the eIM's view of the profiles"
        );

        // The eUICC: each package run once, in order; none refused.
        for (counter, outcome) in &device.runs {
            assert!(
                matches!(outcome, PackageOutcome::Executed { .. }),
                "{eid}: counter {counter} ran as {outcome:?}"
            );
        }
        assert_eq!(
            device.runs.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            (1..=expected.len() as u64).collect::<Vec<_>>(),
            "{eid}: each package run once, in order"
        );
        let card = device.card();
        assert_eq!(
            card.last_seq_number,
            expected.len() as u64,
            "{eid}: results the eUICC signed"
        );
        assert_eq!(card.eims.len(), 1);
        assert_eq!(card.eims[0].counter, expected.len() as u32);
        let on_card: BTreeMap<String, bool> = card
            .profiles
            .iter()
            .map(|p| (p.iccid.to_string(), p.state == ProfileState::Enabled))
            .collect();
        assert_eq!(on_card, profiles, "{eid}: the card and the eIM agree");
        assert_eq!(
            device.ipa.state().results.len(),
            0,
            "{eid}: nothing pending"
        );
    }
    assert_eq!(stored, total);
    let interrupted = devices.iter().filter(|d| d.failed_sessions > 0).count();
    assert!(interrupted > 0, "no device saw the server go away");
    eprintln!(
        "{}: killed with {acked_at_kill}/{total} results acknowledged; {interrupted} devices had \
         failed sessions ({} in all); {} sessions; {} results sent for {stored} stored once each",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        devices.iter().map(|d| d.failed_sessions).sum::<usize>(),
        devices.iter().map(|d| d.sessions).sum::<usize>(),
        devices.iter().map(|d| d.results_sent).sum::<usize>(),
    );
    store.close().await;
    drop(server);
}
