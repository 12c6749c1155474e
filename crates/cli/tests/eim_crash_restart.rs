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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use ferrosim_asn1::rasn::types::FixedOctetString;
use ferrosim_asn1::{decode_der, encode_der, rsp, sgp32};
use ferrosim_eim::{EimStore, ItemOutcome, Trust};
use ferrosim_euicc::profile::PolicyRules;
use ferrosim_euicc::{
    EuiccIdentity, EuiccState, InstalledProfile, ProfileClass, ProfileState, VirtualEuicc,
};
use ferrosim_ids::{Eid, Iccid, Timestamp};
use ferrosim_ipa::driver::https::HttpsEsipa;
use ferrosim_ipa::driver::{EsipaClient, MemoryStore, run_session};
use ferrosim_ipa::{
    Backoff, Binding, EimReply, EsipaError, EsipaRequest, Ipa, IpaConfig, ItemReport,
    PackageOutcome, PendingState,
};
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_lpa::es9::{Es9Request, Es9Response};
use ferrosim_lpa::{Es10, Es10Options, Transport, TransportError};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::fresh_postgres;
use ferrosim_testkit::serve::ServeCommand;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use common::{FERROSIM, restart, spawn};

const DEVICES: usize = 100;
const ASSOCIATION_TOKEN: i64 = 7;
/// Results acknowledged before the kill (of `DEVICES * OPERATIONS.len()`).
const KILL_AFTER_ACKS: usize = DEVICES * 5 / 3;
/// Sessions a device may take in all (a bound, not a timing).
const MAX_SESSIONS: usize = 400;

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
    crash_and_recover(Some(db.url)).await;
}

fn p1() -> Iccid {
    Iccid::from_body("894400000000000001").unwrap()
}

fn p2() -> Iccid {
    Iccid::from_body("894400000000000002").unwrap()
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

/// A profile as the eUICC keeps it after an installation (metadata
/// without notification addresses: enabling and disabling leave no
/// notification).
fn installed(iccid: &Iccid, n: u8, enabled: bool) -> InstalledProfile {
    let metadata = rsp::StoreMetadataRequest::new(
        rsp::Iccid(FixedOctetString::new(iccid.to_bcd())),
        "ferrosim crash test".into(),
        format!("profile {n}"),
        None,
        None,
        ProfileClass::Operational.to_asn1(),
        None,
        None,
        None,
        None,
        None,
    );
    let mut isdp_aid = [0u8; 16];
    isdp_aid[..9].copy_from_slice(&[0xA0, 0x00, 0x00, 0x05, 0x59, 0x10, 0x10, 0xFF, 0xFF]);
    isdp_aid[15] = n;
    InstalledProfile {
        iccid: iccid.as_str().to_owned(),
        isdp_aid,
        state: if enabled {
            ProfileState::Enabled
        } else {
            ProfileState::Disabled
        },
        nickname: None,
        profile_class: ProfileClass::Operational,
        policy_rules: PolicyRules::default(),
        metadata_der: encode_der(&metadata).unwrap().into_boxed_slice(),
        dp_oid: None,
        smdp_address: "smdp.crash.invalid".to_owned(),
        smdp_oid: "2.999.10".to_owned(),
        imsi: None,
        aka_algorithm: None,
        k: None,
        opc: None,
        pins: Vec::new(),
        puks: Vec::new(),
        spn: None,
        apn: None,
        package_len: 0,
        package_sha256: [0; 32],
        installed_at: 0,
    }
}

/// The virtual eUICC as the IPA's APDU transport.
struct Card(VirtualEuicc);

impl Transport for Card {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.0.handle_apdu(command, SystemTime::now()))
    }
}

/// The eIM over HTTPS, counting the results it acknowledged (to time the kill).
#[derive(Clone)]
struct CountingEim {
    inner: HttpsEsipa,
    acknowledged: Arc<AtomicUsize>,
}

impl EsipaClient for CountingEim {
    async fn send(&self, request: &EsipaRequest) -> Result<EimReply, EsipaError> {
        let reply = self.inner.send(request).await;
        if let Ok(EimReply::Acknowledged(seqs)) = &reply {
            self.acknowledged.fetch_add(seqs.len(), Ordering::SeqCst);
        }
        reply
    }

    async fn relay(&self, request: &Es9Request) -> Es9Response {
        self.inner.relay(request).await
    }
}

/// One virtual IoT device and what its IPA saw.
struct Device {
    eid: Eid,
    es10: Es10<Card>,
    ipa: Ipa<StdRng>,
    state: MemoryStore,
    /// Per counter value: the outcomes the eUICC gave, over all sessions.
    runs: BTreeMap<u64, Vec<PackageOutcome>>,
    /// Sessions that ended with an error (the eIM away).
    failed_sessions: usize,
    /// Sessions in all.
    sessions: usize,
    /// ProvideEimPackageResult calls made (a result sent again counts again).
    results_sent: usize,
}

impl Device {
    fn new(identity: EuiccIdentity, add_initial_eim: &[u8]) -> Self {
        let eid = *identity.eid();
        let state = EuiccState {
            profiles: vec![installed(&p1(), 1, true), installed(&p2(), 2, false)],
            ..EuiccState::default()
        };
        let mut es10 = Es10::open(
            Card(VirtualEuicc::new(identity, state)),
            &Es10Options::default(),
        )
        .unwrap();
        let answer: sgp32::AddInitialEimResponse =
            decode_der(&es10.transmit_es10(add_initial_eim).unwrap()).unwrap();
        assert!(
            matches!(answer, sgp32::AddInitialEimResponse::addInitialEimOk(_)),
            "{answer:?}"
        );
        let config = IpaConfig {
            eid: Some(eid),
            deliver_notifications: false,
            max_items_per_session: 1,
            backoff: Backoff {
                first: Duration::from_millis(100),
                max: Duration::from_millis(800),
            },
            ..IpaConfig::default()
        };
        let ipa = Ipa::new(
            config,
            es10.link(),
            PendingState::default(),
            StdRng::from_rng(&mut rand::rng()),
            Timestamp::now(),
        );
        Self {
            eid,
            es10,
            ipa,
            state: MemoryStore::default(),
            runs: BTreeMap::new(),
            failed_sessions: 0,
            sessions: 0,
            results_sent: 0,
        }
    }

    /// Polls until a session finds nothing to run and nothing pending,
    /// waiting out the IPA's backoff after a failed session.
    async fn run(mut self, eim: CountingEim, direct: HttpsEs9Client) -> Self {
        loop {
            assert!(
                self.sessions < MAX_SESSIONS,
                "{}: still polling after {MAX_SESSIONS} sessions",
                self.eid
            );
            let report = run_session(
                &mut self.ipa,
                self.es10.transport_mut(),
                &eim,
                &direct,
                &mut self.state,
            )
            .await
            .unwrap();
            self.sessions += 1;
            self.results_sent += report.results_sent;
            for item in &report.items {
                match item {
                    ItemReport::Package {
                        counter: Some(counter),
                        outcome,
                    } => self.runs.entry(*counter).or_default().push(outcome.clone()),
                    other => panic!("{}: unexpected item {other:?}", self.eid),
                }
            }
            assert!(report.abandoned.is_empty(), "{}: {report:?}", self.eid);
            if report.error.is_some() {
                self.failed_sessions += 1;
                tokio::time::sleep(self.ipa.next_session().since(Timestamp::now())).await;
                continue;
            }
            if report.items.is_empty() && report.pending == 0 {
                return self;
            }
        }
    }

    fn card(&mut self) -> &EuiccState {
        self.es10.transport_mut().0.state()
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `ferrosim` on the instance; its stdout.
fn ferrosim_ok(instance: &[&str], args: &[&str]) -> String {
    let out = ferrosim_command(FERROSIM)
        .args(args)
        .args(instance)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn crash_and_recover(database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, pki_dir) = (dir.path().join("data"), dir.path().join("pki"));
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: DEVICES,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .unwrap();
    pki.write_to(&pki_dir).unwrap();
    let ci_pem = pki.ci.certificate_pem();
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
        "--data-dir",
        path(&data_dir),
        "--pki-dir",
        path(&pki_dir),
        "--config",
        path(&config),
    ];
    let mut command = ServeCommand::new(FERROSIM)
        .data_dir(&data_dir)
        .pki_dir(&pki_dir)
        .config(&config);
    if let Some(url) = &database_url {
        command = command.database_url(url);
        instance.extend(["--database-url", url.as_str()]);
    }
    let server = spawn(command.clone()).await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let address = server.smdp_address().to_owned();

    // The operator's token and the eIM's AddInitialEim for the devices
    // (the eIM identity was made by serve's first start).
    let token = ferrosim_ok(
        &instance,
        &[
            "api-token",
            "create",
            "--name",
            "ops",
            "--scope",
            "operator",
        ],
    )
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_owned();
    let first_eim = dir.path().join("first-eim.der");
    ferrosim_ok(
        &instance,
        &[
            "eim",
            "bootstrap",
            "--out",
            path(&first_eim),
            "--association-token",
            &ASSOCIATION_TOKEN.to_string(),
        ],
    );
    let add_initial_eim = std::fs::read(&first_eim).unwrap();
    let devices: Vec<Device> = common::identities(&pki)
        .into_iter()
        .map(|identity| Device::new(identity, &add_initial_eim))
        .collect();

    // Associate every device and queue its packages over the REST API.
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let base = server.base_url();
    let sem = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    for (i, device) in devices.iter().enumerate() {
        let (http, base, token, sem) = (http.clone(), base.clone(), token.clone(), sem.clone());
        let eid = device.eid.to_string();
        let body = json!({
            "eid": eid,
            "eumCertificate": pki.eum.certificate_pem(),
            "euiccCertificate": pki.euiccs[i].certificate_pem(),
            "associationToken": ASSOCIATION_TOKEN,
        });
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let post = |path: String, body: Value| {
                http.post(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
            };
            let r = post("/api/v1/eim/devices".into(), body).await.unwrap();
            assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
            for (n, (operation, _)) in operations().into_iter().enumerate() {
                let r = post(format!("/api/v1/eim/devices/{eid}/queue"), operation)
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let queued: Value = r.json().await.unwrap();
                assert_eq!(queued["counter"], n + 1, "{queued}");
            }
        });
    }
    tasks.join_all().await;

    // The devices poll, all at once; the server dies once a third of the
    // results are acknowledged.
    let roots = TlsTrust::roots_from_bytes(ci_pem.as_bytes()).unwrap();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let direct = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots.clone()))).unwrap();
    let mut polling = JoinSet::new();
    for (i, device) in devices.into_iter().enumerate() {
        let binding = if i % 2 == 0 {
            Binding::Asn1
        } else {
            Binding::Json
        };
        let eim = CountingEim {
            inner: HttpsEsipa::new(
                &address,
                binding,
                &TlsTrust::Roots(roots.clone()),
                Duration::from_secs(30),
            )
            .unwrap(),
            acknowledged: acknowledged.clone(),
        };
        polling.spawn(device.run(eim, direct.clone()));
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
    let mut devices: Vec<Device> = polling.join_all().await;
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
        for (counter, outcomes) in &device.runs {
            assert!(
                matches!(outcomes.as_slice(), [PackageOutcome::Executed { .. }]),
                "{eid}: counter {counter} ran as {outcomes:?}"
            );
        }
        assert_eq!(
            device.runs.keys().copied().collect::<Vec<_>>(),
            (1..=expected.len() as u64).collect::<Vec<_>>(),
            "{eid}"
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
            .map(|p| (p.iccid.clone(), p.state == ProfileState::Enabled))
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
