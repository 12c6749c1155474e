//! Two `ferrosim serve` processes on one PostgreSQL database are one SM-DP+:
//! the same address, PKI and database, and any instance serves any step.
//!
//! 200 virtual devices download their profile while every ES9+ call of a
//! download goes to the other instance than the call before (so each
//! download crosses between the processes at every step). All succeed; the
//! database shows each order installed on its own EID, one Bound Profile
//! Package per profile; the operator's endpoint receives every ES2+
//! callback of the outbox exactly once, although both instances run a
//! callback worker on the same outbox.
//!
//! Needs `FERROSIM_TEST_POSTGRES_URL` (set by `cargo xtask test`); without it the
//! test fails naming the variable, unless `FERROSIM_SKIP_POSTGRES=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrosim_lpa::SmdpAddress;
use ferrosim_lpa::es9::RoundRobin;
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_server::sandbox::{self, SandboxOptions};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{Es2Client, OPERATOR};
use ferrosim_testkit::{audit, fresh_postgres};

use common::{
    Counting, FERROSIM, download_all, https_client, order_devices, spawn, wait_for_outbox,
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
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: DEVICES,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .unwrap();
    let pki_dir = dir.path().join("pki");
    pki.write_to(&pki_dir).unwrap();
    let ci_pem = pki.ci.certificate_pem();

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
