//! A rollout gate after a restart: the outcomes a wave's devices reported
//! before the fleet driver restarted are read back from the telemetry
//! store, so the gate judges them instead of starting from nothing.
//!
//! A rollout of a new APN in two waves on SQLite (the fleet store and the
//! telemetry events in the same database). The canary device takes the
//! change and reports its registrations and data-path checks during the
//! soak; then the driver is dropped and a new one opened on the same
//! database with a fresh dictionary (as a restarted `ferrosim serve`). No
//! device reports anything after the restart: at the end of the soak the
//! gate passes on exactly the pre-restart samples and the second wave
//! starts. A second rollout, whose canary reported a dead data path before
//! the restart, fails its gate on the data path after the restart and is
//! rolled back. Two instances on one database: the reports go through one,
//! the other answers the gate from the stored events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrosim_fleet::action::{ActionResult, Outcome};
use ferrosim_fleet::gate::Verdict;
use ferrosim_fleet::report::{DeviceReport, Registration, ReportKind};
use ferrosim_fleet::rollout::{RolloutSpec, RolloutState};
use ferrosim_fleet::{DeviceSpec, FleetConfig};
use ferrosim_ids::{Eid, Iccid, ManualClock, Timestamp};
use ferrosim_server::fleet::{FleetDriver, FleetEvents, FleetOptions};
use ferrosim_store::{SqlFleetStore, SqlStore, StoreOptions};
use ferrosim_telemetry::{Event, EventQuery, MemTelemetryStore, StoreError, TelemetryStore};

const CONFIG: &str = r#"
[[carrier]]
name = "carrier-a"
mcc_mnc = ["310-410"]
smdp_address = "smdp.carrier-a.example"
es2_credentials = "vault:a"
[[carrier.apn]]
name = "iot"
apn = "iot.carrier-a.example"
[[carrier.apn]]
name = "iot-new"
apn = "iot2.carrier-a.example"
[[carrier.apn]]
name = "iot-broken"
apn = "iot.carrier-a.exmaple"
[[carrier.profile_type]]
name = "iot"
apn = "iot"
[[group]]
name = "meters"
rule = "default"
primary = { carrier = "carrier-a", profile_type = "iot", version = 1 }
[[rule]]
name = "default"
registration_failures = { count = 50, window = "5m" }
"#;

type Driver = FleetDriver<SqlFleetStore, SqlStore>;

fn eid(n: u32) -> Eid {
    Eid::from_body(&format!("890490321234512345123456{n:06}")).unwrap()
}

async fn open(store: &SqlStore, clock: &ManualClock) -> Driver {
    // A new dictionary, as in a new process: the events are read back by
    // their names.
    let events = FleetEvents::new(store.telemetry(ferrosim_telemetry::Dictionary::new()));
    open_with(store, clock, events).await
}

async fn open_with(store: &SqlStore, clock: &ManualClock, events: FleetEvents) -> Driver {
    FleetDriver::open(
        store.fleet(),
        None,
        FleetConfig::from_toml(CONFIG).unwrap(),
        ferrosim_telemetry::Dictionary::new(),
        Arc::new(clock.clone()),
        FleetOptions {
            events: Some(events),
            ..FleetOptions::default()
        },
        None,
    )
    .await
    .unwrap()
}

/// The device agents: every command waiting for one is carried out.
async fn agents(driver: &Driver) {
    for _ in 0..4 {
        let waiting: Vec<(Eid, Vec<ferrosim_fleet::action::ActionId>)> = driver
            .read(|_, agent| {
                agent
                    .iter()
                    .map(|(eid, list)| (*eid, list.iter().map(|a| a.id).collect()))
                    .collect()
            })
            .await;
        if waiting.is_empty() {
            return;
        }
        for (device, ids) in waiting {
            for id in ids {
                driver.take_agent_command(&device, id).await.unwrap();
                let result = ActionResult {
                    id,
                    device,
                    outcome: Outcome::Done,
                };
                driver
                    .transact(|tx| tx.handle_result(&result))
                    .await
                    .unwrap();
            }
        }
    }
}

async fn report(driver: &Driver, device: Eid, data_ok: bool) {
    let reports = [
        ReportKind::Registration {
            outcome: Registration::Registered,
            plmn: None,
        },
        ReportKind::DataPath {
            latency_ms: 40,
            loss_permille: if data_ok { 0 } else { 1000 },
        },
    ];
    // Through the ingest path of `POST /api/v1/fleet/reports`.
    let reports = reports
        .into_iter()
        .map(|kind| DeviceReport { device, kind })
        .collect();
    ferrosim_server::api::fleet::ops::ingest(driver, reports)
        .await
        .unwrap();
}

/// A telemetry store whose appends fail while `failing` is set.
#[derive(Clone)]
struct Flaky {
    inner: Arc<MemTelemetryStore>,
    failing: Arc<AtomicBool>,
}

impl TelemetryStore for Flaky {
    fn dictionary(&self) -> &ferrosim_telemetry::Dictionary {
        self.inner.dictionary()
    }
    fn append(&self, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send {
        let failing = self.failing.load(Ordering::SeqCst);
        let inner = self.inner.clone();
        let events = events.to_vec();
        async move {
            if failing {
                return Err(StoreError::Backend("down".into()));
            }
            inner.append(&events).await
        }
    }
    fn query(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send {
        let got = self.inner.select(query);
        async move { got }
    }
    fn purge_before(
        &self,
        cutoff: ferrosim_telemetry::Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let inner = self.inner.clone();
        async move { inner.purge_before(cutoff).await }
    }
}

/// Two meters on carrier A's profile, known to work, with their APN.
async fn add_devices(driver: &Driver) {
    for n in 0..2 {
        let spec: DeviceSpec = serde_json::from_value(serde_json::json!({
            "eid": eid(n).to_string(), "group": "meters", "vendor": "acme", "model": "m1",
            "firmware": "1.0.0", "capabilities": {"sgp32_version": [1, 2, 0]},
            "profiles": [{"iccid": Iccid::from_body(&format!("8944000000000000{n:02}")).unwrap().to_string(),
                          "profile_type": {"carrier": "carrier-a", "profile_type": "iot", "version": 1},
                          "enabled": true, "works": true}]
        }))
        .unwrap();
        driver
            .transact(|tx| tx.fleet.add_device(&spec, tx.now))
            .await
            .unwrap();
    }
    poll(driver).await;
    agents(driver).await;
}

async fn poll(driver: &Driver) {
    driver.transact(|_| Ok(())).await.unwrap();
}

async fn rollout(driver: &Driver, id: u32) -> ferrosim_fleet::rollout::Rollout {
    driver
        .read(|fleet, _| fleet.rollout(id).cloned())
        .await
        .unwrap()
}

async fn start_rollout(driver: &Driver, apn: &str, seed: u64) -> u32 {
    let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
        "name": format!("apn {apn}"),
        "change": {"kind": "apn", "apn": apn},
        "waves": [50, 100], "soak": "10m", "max_wait": "30m", "seed": seed,
        "gate": {"min_samples": 2}
    }))
    .unwrap();
    driver
        .transact(|tx| tx.fleet.create_rollout(spec.clone(), tx.now))
        .await
        .unwrap()
}

/// Runs a rollout's canary wave up to 5 minutes into its soak with the
/// canary reporting `data_ok` twice, restarts the driver, and lets the
/// soak end with no further report. Returns the new driver.
async fn canary_then_restart(
    store: &SqlStore,
    clock: &ManualClock,
    driver: Driver,
    apn: &str,
    seed: u64,
    data_ok: bool,
) -> (Driver, u32, Eid) {
    let id = start_rollout(&driver, apn, seed).await;
    clock.advance(Duration::from_secs(1));
    poll(&driver).await;
    agents(&driver).await;
    let r = rollout(&driver, id).await;
    assert_eq!(r.wave, Some(0));
    assert_eq!(r.members[0].len(), 1, "one canary of two devices");
    let canary = r.members[0][0];
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        report(&driver, canary, data_ok).await;
    }
    clock.advance(Duration::from_secs(180));
    poll(&driver).await;
    assert_eq!(rollout(&driver, id).await.gates.len(), 0, "still soaking");

    drop(driver);
    let driver = open(store, clock).await;
    let r = rollout(&driver, id).await;
    assert_eq!((r.state, r.wave), (RolloutState::Running, Some(0)));
    clock.advance(Duration::from_secs(5 * 60 + 1));
    poll(&driver).await;
    (driver, id, canary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_after_a_restart_judges_the_outcomes_reported_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let driver = open(&store, &clock).await;
    add_devices(&driver).await;

    // A healthy change: passes on the samples from before the restart.
    let (driver, id, _) = canary_then_restart(&store, &clock, driver, "iot-new", 1, true).await;
    let r = rollout(&driver, id).await;
    assert_eq!(r.gates.len(), 1, "{r:#?}");
    let gate = &r.gates[0];
    assert_eq!(gate.verdict, Verdict::Pass, "{gate:#?}");
    assert_eq!((gate.registrations, gate.data_path_checks), (2, 2));
    assert_eq!(r.wave, Some(1), "the second wave started");
    // Let it complete.
    for _ in 0..4 {
        agents(&driver).await;
        clock.advance(Duration::from_secs(60));
        for n in 0..2 {
            report(&driver, eid(n), true).await;
        }
    }
    clock.advance(Duration::from_secs(10 * 60));
    poll(&driver).await;
    assert_eq!(rollout(&driver, id).await.state, RolloutState::Completed);

    // A broken change: the dead data path reported before the restart
    // fails the gate after it.
    let (driver, id, canary) =
        canary_then_restart(&store, &clock, driver, "iot-broken", 2, false).await;
    let r = rollout(&driver, id).await;
    assert_eq!(r.state, RolloutState::Halted, "{r:#?}");
    let gate = &r.gates[0];
    assert_eq!(gate.verdict, Verdict::Fail, "{gate:#?}");
    assert_eq!((gate.registrations, gate.data_path_checks), (2, 2));
    let failed: Vec<&str> = gate
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.metric.as_str())
        .collect();
    assert!(
        failed.iter().all(|m| m.contains("data_path")),
        "only the data path fails: {failed:?}"
    );
    // The canary is rolled back to the APN the first rollout gave it.
    agents(&driver).await;
    let apn = driver
        .read(|fleet, _| {
            let d = fleet.device(&canary).unwrap();
            d.desired
                .primary_apn
                .map(|a| fleet.catalog().apns[a.index()].settings.name.clone())
        })
        .await;
    assert_eq!(apn.as_deref(), Some("iot-new"));
    drop(driver);
    store.close().await;
}

/// While the telemetry store refuses appends, the fleet keeps the events:
/// its gates still see them, and they are written once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_in_memory_while_the_telemetry_store_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let flaky = Flaky {
        inner: Arc::new(MemTelemetryStore::with_dictionary(
            ferrosim_telemetry::Dictionary::new(),
        )),
        failing: Arc::new(AtomicBool::new(true)),
    };
    let driver = open_with(&store, &clock, FleetEvents::new(flaky.clone())).await;
    add_devices(&driver).await;
    let id = start_rollout(&driver, "iot-new", 1).await;
    clock.advance(Duration::from_secs(1));
    poll(&driver).await;
    agents(&driver).await;
    let canary = rollout(&driver, id).await.members[0][0];
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        report(&driver, canary, true).await;
    }
    assert_eq!(
        flaky.inner.len(),
        0,
        "nothing written while the store is down"
    );
    clock.advance(Duration::from_secs(10 * 60));
    poll(&driver).await;
    let r = rollout(&driver, id).await;
    let gate = &r.gates[0];
    assert_eq!(gate.verdict, Verdict::Pass, "{gate:#?}");
    assert_eq!((gate.registrations, gate.data_path_checks), (2, 2));
    // The store is back: the waiting events are written with the next
    // change.
    flaky.failing.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(10));
    report(&driver, canary, true).await;
    let stored = flaky.inner.select(&EventQuery::all()).unwrap();
    let reports = stored
        .iter()
        .filter(|e| e.device == canary && e.source == ferrosim_telemetry::Source::Device)
        .count();
    assert_eq!(reports, 6, "the 4 reports of the soak and the 2 after it");
    drop(driver);
    store.close().await;
}

/// Two instances on one database: the rollout runs on one, the canary
/// reports through the other (which learns of the devices from the store),
/// and the first judges the gate on those reports, read from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_judges_a_gate_on_the_reports_the_first_took() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let one = open(&store, &clock).await;
    let two = open(&store, &clock).await;
    add_devices(&one).await;
    let id = start_rollout(&one, "iot-new", 1).await;
    clock.advance(Duration::from_secs(1));
    poll(&one).await;
    let canary = rollout(&one, id).await.members[0][0];
    // The canary's agent asks the second instance for the new APN the
    // first one issued, and answers there.
    use ferrosim_server::api::fleet::ops;
    let waiting = ops::agent_commands(&two, &canary.to_string())
        .await
        .unwrap();
    assert_eq!(waiting.commands.len(), 1, "{waiting:?}");
    let command = &waiting.commands[0];
    assert_eq!(command.command, "agent.apnConfig");
    assert_eq!(
        command.apn.as_ref().unwrap()["apn"],
        "iot2.carrier-a.example"
    );
    let result: ferrosim_server::api::fleet::AgentResult =
        serde_json::from_value(serde_json::json!({"action": command.action, "ok": true})).unwrap();
    ops::agent_result(&two, &canary.to_string(), &result)
        .await
        .unwrap();
    // Answered once: not listed again, a second answer refused.
    assert!(
        ops::agent_commands(&two, &canary.to_string())
            .await
            .unwrap()
            .commands
            .is_empty()
    );
    assert!(
        ops::agent_result(&two, &canary.to_string(), &result)
            .await
            .is_err()
    );
    // The second instance's background task feeds the result to the
    // fleet; the first sees it once it catches up.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = two.spawn(stopped);
    let mut taken = false;
    for _ in 0..200 {
        one.refresh().await.unwrap();
        taken = one
            .read(|fleet, _| fleet.in_flight().all(|a| a.device != canary))
            .await;
        if taken {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(taken, "the agent's result never reached the fleet");
    stop.send(true).unwrap();
    task.await.unwrap();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        report(&two, canary, true).await;
    }
    clock.advance(Duration::from_secs(10 * 60));
    poll(&one).await;
    let r = rollout(&one, id).await;
    assert_eq!(r.gates.len(), 1, "{r:#?}");
    let gate = &r.gates[0];
    assert_eq!(gate.verdict, Verdict::Pass, "{gate:#?}");
    assert_eq!((gate.registrations, gate.data_path_checks), (2, 2));
    // Stored once, with the measurements.
    let decisions = ferrosim_fleet::store::FleetStore::decisions(
        &store.fleet(),
        &ferrosim_fleet::store::DecisionQuery {
            device: None,
            rollout: Some(id),
            after_seq: 0,
            limit: 1000,
        },
    )
    .await
    .unwrap();
    let passes: Vec<_> = decisions
        .iter()
        .filter(|d| matches!(d.what, ferrosim_fleet::What::GatePass { .. }))
        .collect();
    assert_eq!(passes.len(), 1, "{decisions:#?}");
    // A rule added on the first instance and rolled out there shows in the
    // second's view of the device.
    let rule: ferrosim_fleet::config::RuleConfig =
        serde_json::from_value(serde_json::json!({"name": "strict"})).unwrap();
    ops::add_rule(&one, rule).await.unwrap();
    let spec: RolloutSpec = serde_json::from_value(serde_json::json!({
        "name": "strict", "change": {"kind": "rule", "rule": "strict"}, "waves": [100]
    }))
    .unwrap();
    one.transact(|tx| tx.fleet.create_rollout(spec.clone(), tx.now))
        .await
        .unwrap();
    let view = ops::device(&two, &canary.to_string()).await.unwrap();
    assert_eq!(view.rule, "strict");
    drop((one, two));
    store.close().await;
}
