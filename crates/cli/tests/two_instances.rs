//! Several `ferrosim serve` processes on one database are one SM-DP+ and
//! one eIM: the same address, PKI, eIM key and database, and any instance
//! serves any step.
//!
//! SM-DP+ (PostgreSQL): 200 virtual devices download their profile while
//! every ES9+ call of a download goes to the other instance than the call
//! before (so each download crosses between the processes at every step).
//! All succeed; the database shows each order installed on its own EID, one
//! Bound Profile Package per profile; the operator's endpoint receives every
//! ES2+ callback of the outbox exactly once, although both instances run a
//! callback worker on the same outbox.
//!
//! eIM (one SQLite file, and PostgreSQL): three instances; the operator
//! queues packages for the same devices through all three at once while
//! the devices' IPAs poll, each ESipa call going to the next instance. Every
//! counter value of a device is issued exactly once (1, 2, ... with no gap),
//! the eUICC runs them in strictly increasing order, each once, and the eIM
//! stores one verified result per package, in queue order.
//!
//! The PostgreSQL parts need `FERROSIM_TEST_POSTGRES_URL` (set by `cargo
//! xtask test`); without it they fail naming the variable, unless
//! `FERROSIM_SKIP_POSTGRES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferrosim_eim::{EimStore, ItemOutcome, Trust};
use ferrosim_ipa::{Binding, PackageOutcome};
use ferrosim_lpa::SmdpAddress;
use ferrosim_lpa::es9::RoundRobin;
use ferrosim_server::sandbox::{self, SandboxOptions};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{Es2Client, OPERATOR};
use ferrosim_testkit::{audit, fresh_postgres};

use common::iot::{Eims, IotDevice, Operator, add_initial_eim, direct_client, operator_token};
use common::{
    Counting, FERROSIM, download_all, https_client, loopback_pki, order_devices, spawn,
    wait_for_outbox,
};

const DEVICES: usize = 200;
const CONCURRENCY: usize = 16;
/// The operator acknowledges callbacks slowly, so both instances' workers
/// hold leases on the outbox at the same time.
const CALLBACK_ANSWER_DELAY: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_serve_one_smdp() {
    let Some(admin) = common::postgres_admin_url("two_instances_serve_one_smdp") else {
        return;
    };
    let db = fresh_postgres(&admin).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    // One PKI for both instances, with an eUICC certificate per device.
    let (pki, pki_dir, ci_pem) = loopback_pki(dir.path(), DEVICES);

    // The operator, the profile type and the profiles, with callbacks to a
    // recording (slow) endpoint.
    let sink = SlowCallbackEndpoint::start(CALLBACK_ANSWER_DELAY)
        .await
        .unwrap();
    let store = SqlStore::connect(&db.url, &StoreOptions::default())
        .await
        .unwrap();
    let token = sandbox::seed(
        &store,
        &SandboxOptions {
            profiles: DEVICES as u64,
            callback_url: Some(sink.url.clone()),
            ..SandboxOptions::default()
        },
    )
    .await
    .unwrap();

    // Instance A serves as localhost:PORT_A; B serves as the same SM-DP+.
    let command = ServeCommand::new(FERROSIM)
        .database_url(&db.url)
        .pki_dir(&pki_dir);
    let a = spawn(command.clone().data_dir(dir.path().join("a"))).await;
    let address = a.smdp_address().to_owned();
    let b = spawn(
        command
            .data_dir(dir.path().join("b"))
            .smdp_address(&address),
    )
    .await;
    assert_eq!(b.smdp_address(), address);
    assert_ne!(a.port(), b.port());
    a.wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    b.wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();

    // Orders over ES2+, alternately through each instance.
    let desks = [
        Es2Client::new(&a.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap(),
        Es2Client::new(&b.base_url(), OPERATOR, &token, ci_pem.as_bytes()).unwrap(),
    ];
    let devices = order_devices(&pki, &desks, &address, CONCURRENCY).await;
    assert_eq!(devices.len(), DEVICES);

    // Downloads: every device has its own turn, so its consecutive ES9+
    // calls alternate A, B, A, ... (half the devices start with B).
    let https = Counting::new(https_client(&ci_pem));
    let (ia, ib) = (
        SmdpAddress::new(&a.instance_address()).unwrap(),
        SmdpAddress::new(&b.instance_address()).unwrap(),
    );
    let devices = download_all(devices, CONCURRENCY, |i| {
        let targets = if i % 2 == 0 {
            vec![ia.clone(), ib.clone()]
        } else {
            vec![ib.clone(), ia.clone()]
        };
        RoundRobin::new(https.clone(), targets)
    })
    .await;
    let failed: Vec<String> = devices
        .iter()
        .filter_map(|d| d.last_failure.as_ref().map(|f| format!("{}: {f}", d.eid)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {DEVICES} downloads failed, e.g. {:?}\nA log:\n{}\nB log:\n{}",
        failed.len(),
        &failed[..failed.len().min(5)],
        a.log(),
        b.log()
    );

    // Each instance served half of every ES9+ function.
    let counts = https.counts();
    for instance in [&ia, &ib] {
        for function in [
            "initiateAuthentication",
            "authenticateClient",
            "getBoundProfilePackage",
            "handleNotification",
        ] {
            let n = counts.get(&(instance.to_string(), function)).copied();
            assert_eq!(n, Some(DEVICES / 2), "{function} at {instance}: {counts:?}");
        }
    }

    // On the cards: each device holds exactly its own profile, and no
    // profile is on two cards.
    let mut on_cards = BTreeSet::new();
    for d in &devices {
        assert_eq!(d.installed(), vec![d.iccid.clone()], "{}", d.eid);
        assert!(
            on_cards.insert(d.iccid.clone()),
            "{} on two eUICCs",
            d.iccid
        );
        assert_eq!(d.pending_notifications(), 0, "{}", d.eid);
    }

    // In the database: every order installed, on its own EID, one package
    // issued per profile.
    let orders = audit::orders(&store).await.unwrap();
    assert_eq!(orders.len(), DEVICES);
    for d in &devices {
        let o = &orders[&d.iccid];
        assert_eq!(o.state, "installed", "{o:?}");
        assert_eq!(o.eid.as_deref(), Some(d.eid.as_str()), "{o:?}");
        assert_eq!(o.download_attempts, 1, "{o:?}");
    }
    let issued = audit::issued_packages(&store).await.unwrap();
    assert_eq!(issued.len(), DEVICES);
    assert!(issued.values().all(|n| *n == 1), "{issued:?}");

    // Callbacks: both instances deliver from one outbox; each event
    // reaches the operator exactly once. Per download: eligibility (1),
    // package download (3), installation (4).
    let delivered = wait_for_outbox(&store, Duration::from_secs(60)).await;
    assert!(delivered, "callbacks still pending after 60 s");
    let outbox = audit::outbox(&store).await.unwrap();
    assert_eq!(outbox.len(), 3 * DEVICES);
    let mut points: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in outbox.values() {
        points.entry(row.iccid.clone()).or_default().push(row.point);
    }
    assert!(points.values().all(|p| {
        let mut p = p.clone();
        p.sort();
        p == [1, 3, 4]
    }));
    let received = audit::deliveries_by_outbox_id(&sink.received());
    let expected: BTreeMap<Option<i64>, usize> = outbox.keys().map(|id| (Some(*id), 1)).collect();
    assert_eq!(
        received, expected,
        "every outbox row exactly once at the operator"
    );

    eprintln!(
        "{DEVICES} downloads alternating between 2 instances: ES9+ calls per instance {:?}; \
         {} callbacks from one outbox, each delivered once",
        [&ia, &ib].map(|i| counts
            .iter()
            .filter(|((a, _), _)| *a == i.to_string())
            .map(|(_, n)| n)
            .sum::<usize>()),
        outbox.len()
    );

    // Both processes are still up: nothing crashed along the way.
    let (mut a, mut b) = (a, b);
    assert!(a.is_running() && b.is_running());
    store.close().await;
}

/// eIM instances on one database.
const EIM_INSTANCES: usize = 3;
/// IoT devices the eIM instances share.
const IOT_DEVICES: usize = 12;
/// Packages queued per device, all at once, spread over the instances.
const PACKAGES_PER_DEVICE: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_eim_instances_on_one_sqlite_file_issue_each_counter_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("shared.db").display());
    eim_instances_share_counters(&url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_eim_instances_on_postgres_issue_each_counter_once() {
    let Some(admin) =
        common::postgres_admin_url("three_eim_instances_on_postgres_issue_each_counter_once")
    else {
        return;
    };
    let db = fresh_postgres(&admin).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    eim_instances_share_counters(&db.url, dir.path()).await;
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// [`EIM_INSTANCES`] `serve` processes on the database `url`: packages
/// queued through all of them at once for the same devices while the
/// devices poll all of them.
async fn eim_instances_share_counters(url: &str, dir: &Path) {
    let (pki, pki_dir, ci_pem) = loopback_pki(dir, IOT_DEVICES);
    // The operator and every device share one address.
    let config = dir.join("ferrosim.toml");
    std::fs::write(
        &config,
        "[access]\nrate_per_sec = 100000.0\nburst = 100000\n",
    )
    .unwrap();
    let command = ServeCommand::new(FERROSIM)
        .database_url(url)
        .pki_dir(&pki_dir)
        .config(&config);
    // The first instance makes the schema and the eIM identity (in the
    // shared PKI directory); the others serve as the same SM-DP+ and eIM.
    let first = spawn(command.clone().data_dir(dir.join("i0"))).await;
    first
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let address = first.smdp_address().to_owned();
    let mut instances = vec![first];
    for i in 1..EIM_INSTANCES {
        let next = spawn(
            command
                .clone()
                .data_dir(dir.join(format!("i{i}")))
                .smdp_address(&address),
        )
        .await;
        next.wait_healthy(&ci_pem, Duration::from_secs(30))
            .await
            .unwrap();
        instances.push(next);
    }
    let cli = vec![
        "--data-dir".to_owned(),
        path(&dir.join("i0")),
        "--pki-dir".to_owned(),
        path(&pki_dir),
        "--config".to_owned(),
        path(&config),
        "--database-url".to_owned(),
        url.to_owned(),
    ];
    let token = operator_token(&cli);
    let first_eim = add_initial_eim(&cli, dir);
    let operators: Vec<Operator> = instances
        .iter()
        .map(|i| Operator::new(&i.base_url(), &token, &ci_pem))
        .collect();
    let eims: Vec<String> = instances.iter().map(|i| i.instance_address()).collect();
    let devices: Vec<IotDevice> = common::identities(&pki)
        .into_iter()
        .map(|identity| IotDevice::new(identity, &first_eim))
        .collect();
    for (i, device) in devices.iter().enumerate() {
        operators[i % EIM_INSTANCES]
            .associate(
                &device.eid,
                &pki.eum.certificate_pem(),
                &pki.euiccs[i].certificate_pem(),
            )
            .await;
    }

    // The devices poll (each ESipa call to the next instance) while every
    // package of every device is queued at once, package n of device i
    // through instance (i + n) % EIM_INSTANCES.
    let more_coming = Arc::new(AtomicBool::new(true));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let direct = direct_client(&ci_pem);
    let mut polling = tokio::task::JoinSet::new();
    let eids: Vec<_> = devices.iter().map(|d| d.eid).collect();
    for (i, device) in devices.into_iter().enumerate() {
        let binding = if i % 2 == 0 {
            Binding::Asn1
        } else {
            Binding::Json
        };
        let eim = Eims::new(&eims, binding, &ci_pem, i, acknowledged.clone());
        polling.spawn(device.run(eim, direct.clone(), more_coming.clone()));
    }
    let mut queuing = tokio::task::JoinSet::new();
    for (i, eid) in eids.iter().enumerate() {
        for n in 0..PACKAGES_PER_DEVICE {
            let instance = (i + n) % EIM_INSTANCES;
            let (operator, eid) = (operators[instance].clone(), *eid);
            queuing.spawn(async move {
                let (counter, conflicts) = operator
                    .queue(&eid, &serde_json::json!({"operation": "list-profiles"}))
                    .await;
                (eid, counter, instance, conflicts)
            });
        }
    }
    let issued = queuing.join_all().await;
    more_coming.store(false, Ordering::SeqCst);
    let mut devices: Vec<IotDevice> = polling.join_all().await;
    devices.sort_by_key(|d| d.eid);

    // Issued: per device, 1..=PACKAGES_PER_DEVICE, each once, by every instance.
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    let expected: Vec<u32> = (1..=PACKAGES_PER_DEVICE as u32).collect();
    for device in &mut devices {
        let eid = device.eid;
        let mut counters: Vec<u32> = issued
            .iter()
            .filter(|(e, ..)| *e == eid)
            .map(|(_, c, ..)| *c)
            .collect();
        counters.sort_unstable();
        assert_eq!(counters, expected, "{eid}: counters issued");
        let by: BTreeSet<usize> = issued
            .iter()
            .filter(|(e, ..)| *e == eid)
            .map(|(.., instance, _)| *instance)
            .collect();
        assert_eq!(by.len(), EIM_INSTANCES, "{eid}: issued by every instance");

        // Delivered and run in strictly increasing counter order, each once.
        let ran: Vec<u64> = device.runs.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            ran,
            expected.iter().map(|c| u64::from(*c)).collect::<Vec<_>>(),
            "{eid}: the order the eUICC ran them in"
        );
        assert!(
            device
                .runs
                .iter()
                .all(|(_, o)| matches!(o, PackageOutcome::Executed { .. })),
            "{eid}: {:?}",
            device.runs
        );
        let card = device.card();
        assert_eq!(card.last_seq_number, PACKAGES_PER_DEVICE as u64, "{eid}");
        assert_eq!(card.eims[0].counter, PACKAGES_PER_DEVICE as u32, "{eid}");

        // Stored: one verified result per package, in queue order.
        let results = store.results(&eid).await.unwrap();
        let stored: Vec<u32> = results
            .iter()
            .map(|r| r.counter.expect("a package result has its counter").get())
            .collect();
        assert_eq!(stored, expected, "{eid}: results in queue order");
        assert!(
            results.iter().all(|r| r.trust == Some(Trust::Verified)
                && matches!(&r.outcome, ItemOutcome::Executed(codes) if codes == &[None])),
            "{eid}: {results:?}"
        );
        let record = store.device(&eid).await.unwrap().unwrap().record;
        assert!(record.queue.is_empty(), "{eid}: {:?}", record.queue);
        assert_eq!(
            record.association.counter.get(),
            PACKAGES_PER_DEVICE as u32,
            "{eid}"
        );
    }
    let conflicts: usize = issued.iter().map(|(.., c)| *c).sum();
    eprintln!(
        "{}: {} packages queued through {EIM_INSTANCES} instances at once ({conflicts} retried \
         after a 409), {} ESipa sessions ({} failed and retried); every counter issued once",
        if url.starts_with("sqlite") {
            "SQLite"
        } else {
            "PostgreSQL"
        },
        issued.len(),
        devices.iter().map(|d| d.sessions).sum::<usize>(),
        devices.iter().map(|d| d.failed_sessions).sum::<usize>(),
    );
    store.close().await;
    for mut instance in instances {
        assert!(instance.is_running(), "an instance died");
    }
}
