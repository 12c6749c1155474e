//! `ferrosim simulate outage --target`: the outage's IoT devices against a
//! running `ferrosim serve` (its eIM, fleet and SM-DP+) over real HTTPS.
//!
//! The server is a real process with the scenario's fleet catalog (its
//! three carriers as operators of its SM-DP+, each with a profile type
//! that allows the fallback attribute), the rule's timings shortened for
//! the compressed event. The simulator associates each device with the
//! eIM, registers it in the fleet, lets the fleet provision its primary
//! and staged fallback through the devices' real IPAs, then plays the
//! outage: the devices report what the network model says, the fleet
//! decides the failovers and returns, the devices' agents have their IPAs
//! run them on the eUICCs. The test checks the outcome in the server's own
//! records and the report's consistency; and refuses garbage arguments.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;
mod fleet_lab;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::iot::{add_initial_eim, operator_token};
use common::{FERROSIM, spawn};
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileRange};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::serve::ServeCommand;
use serde_json::Value;

/// IoT devices of the run.
const DEVICES: &str = "20";
/// The ICCID prefix of the profiles of the scenario's `i`-th carrier at
/// the SM-DP+ (carrier A's 894400, B's 894410, ...).
fn prefix(i: usize) -> String {
    format!("8944{i}0")
}

/// The scenario's carriers (its fleet catalog's, in order).
fn carriers(scenario: &str) -> Vec<String> {
    let s = ferrosim_sim::Scenario::builtin(scenario).unwrap();
    let fleet: toml::Table = toml::from_str(&s.fleet_toml()).unwrap();
    fleet["carrier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `ferrosim ARGS` must fail, naming `expected`, without a panic.
fn refused(args: &[&str], expected: &str) {
    let out = ferrosim_command(FERROSIM).args(args).output().unwrap();
    let all = output_text(&out);
    assert!(!out.status.success(), "{args:?} should fail: {all}");
    assert!(!all.contains("panicked"), "{args:?} panicked: {all}");
    assert!(
        all.contains(expected),
        "{args:?}: expected `{expected}` in: {all}"
    );
}

fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// The scenario's fleet catalog for the server: its carriers'
/// SM-DP+ is the server's (credentials in files), the rule's timings
/// shortened for an event compressed 200 times (no jitter, no per-minute
/// limit, a 3 s dwell).
fn fleet_toml(scenario: &str, address: &str, dir: &Path) -> String {
    let scenario = ferrosim_sim::Scenario::builtin(scenario).unwrap();
    let mut fleet: toml::Table = toml::from_str(&scenario.fleet_toml()).unwrap();
    for carrier in fleet["carrier"].as_array_mut().unwrap() {
        let c = carrier.as_table_mut().unwrap();
        let name = c["name"].as_str().unwrap().to_owned();
        c.insert("smdp_address".into(), address.into());
        c.insert("smdp_is_ferrosim".into(), true.into());
        c.insert(
            "es2_credentials".into(),
            format!("file:{}", p(&dir.join(format!("{name}.toml")))).into(),
        );
        c.remove("rate_limits");
        // The SM-DP+'s profile types allow the fallback attribute.
        for t in c["profile_type"].as_array_mut().unwrap() {
            t.as_table_mut()
                .unwrap()
                .insert("fallback_allowed".into(), true.into());
        }
    }
    for rule in fleet["rule"].as_array_mut().unwrap() {
        let r = rule.as_table_mut().unwrap();
        r.insert("return_dwell".into(), "3s".into());
        r.insert("min_on_fallback".into(), "2s".into());
        r.insert("max_fraction_per_minute".into(), 1.0.into());
        r.insert("jitter".into(), "0s".into());
    }
    let reconciler = fleet["reconciler"].as_table_mut().unwrap();
    reconciler.insert("retry_base".into(), "1s".into());
    reconciler.insert("retry_max".into(), "4s".into());
    toml::to_string(&fleet).unwrap()
}

/// Each carrier an operator of the SM-DP+ with its profile type `iot`
/// (allowing the fallback attribute) and enough profiles for every device;
/// its ES2+ credentials in `dir`.
async fn seed(url: &str, dir: &Path, carriers: &[String]) {
    let store = SqlStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    for (i, carrier) in carriers.iter().enumerate() {
        let first = prefix(i);
        let carrier = carrier.as_str();
        let token = fleet_lab::seed_operator(&store, carrier, "iot", &first).await;
        inventory::generate_profiles(
            &store,
            &OperatorId::new(carrier).unwrap(),
            "iot",
            &ProfileRange {
                count: 40,
                first_iccid: Iccid::from_body(&format!("{first}000000000101")).unwrap(),
                first_imsi: Imsi::with_mnc_len(&format!("00101{}00000101", &first[4..]), 2)
                    .unwrap(),
            },
            &mut rand::rng(),
            ferrosim_smdp::time::Timestamp::now(),
        )
        .await
        .unwrap();
        std::fs::write(
            dir.join(format!("{carrier}.toml")),
            format!("operator = {carrier:?}\ntoken = {token:?}\n"),
        )
        .unwrap();
    }
    store.close().await;
}

async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    let resp = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

/// A `ferrosim serve` process with a scenario's fleet catalog, and the
/// simulator's run of the scenario against it.
struct Run {
    summary: Value,
    http: reqwest::Client,
    token: String,
    target: String,
    out_dir: std::path::PathBuf,
    pki_dir: std::path::PathBuf,
    first_eim: std::path::PathBuf,
    dir: tempfile::TempDir,
    _server: ferrosim_testkit::serve::ServeProcess,
}

/// Starts the server with `scenario`'s catalog and runs `ferrosim
/// simulate SCENARIO --target` against it with [`DEVICES`] devices at
/// `time_scale`.
async fn run_against_serve(scenario: &str, time_scale: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, pki_dir) = (dir.path().join("data"), dir.path().join("pki"));
    std::fs::create_dir_all(&data_dir).unwrap();
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .unwrap();
    pki.write_to(&pki_dir).unwrap();
    let ci_pem = pki.ci.certificate_pem();
    // The fleet's configuration names the SM-DP+ by its address: a port
    // the system gave, free again for the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("localhost:{port}");
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    seed(&url, dir.path(), &carriers(scenario)).await;
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, fleet_toml(scenario, &address, dir.path())).unwrap();
    // All the devices share the simulator's address: no per-address limit.
    let config = dir.path().join("ferrosim.toml");
    std::fs::write(
        &config,
        format!(
            "[access]\nenabled = false\n[eim]\nenabled = true\n[fleet]\nconfig = {:?}\ntick_ms = 100\n",
            p(&fleet)
        ),
    )
    .unwrap();
    let instance = vec![
        "--data-dir".to_owned(),
        p(&data_dir),
        "--pki-dir".to_owned(),
        p(&pki_dir),
        "--config".to_owned(),
        p(&config),
    ];
    let server = spawn(
        ServeCommand::new(FERROSIM)
            .data_dir(&data_dir)
            .pki_dir(&pki_dir)
            .config(&config)
            .listen(([127, 0, 0, 1], port).into()),
    )
    .await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let token = operator_token(&instance);
    let first_eim = dir.path().join("first-eim.der");
    std::fs::write(&first_eim, add_initial_eim(&instance, dir.path())).unwrap();

    let target = format!("https://{address}");
    let out_dir = dir.path().join("report");
    let args = [
        scenario,
        "--target",
        &target,
        "--pki",
        &p(&pki_dir),
        "--api-token",
        &token,
        "--add-initial-eim",
        &p(&first_eim),
        "--devices",
        DEVICES,
        "--time-scale",
        time_scale,
        "--seed",
        "3",
        "--max-duration",
        "180",
        "--out",
        &p(&out_dir),
        "--json",
    ]
    .map(str::to_owned);
    let run = tokio::task::spawn_blocking(move || {
        ferrosim_command(FERROSIM)
            .arg("simulate")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = output_text(&run);
    assert!(run.status.success(), "{text}");
    let summary: Value = serde_json::from_slice(&run.stdout).expect(&text);
    eprintln!("{}", serde_json::to_string_pretty(&summary).unwrap());
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ci_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    Run {
        summary,
        http,
        token,
        target,
        out_dir,
        pki_dir,
        first_eim,
        dir,
        _server: server,
    }
}

/// The event's switch decisions per device (failovers, returns), and the
/// devices with a switch decided after it (while the devices ran on).
/// Whether a device's (failovers, returns) can come from switches that
/// alternate, starting with a failover: as many returns as failovers, or
/// one fewer while the device is still on its fallback.
fn alternating((failovers, returns): (u64, u64)) -> bool {
    failovers >= 1 && (failovers == returns || failovers == returns + 1)
}

async fn switches(r: &Run) -> (BTreeMap<String, (u64, u64)>, Vec<String>) {
    let ended_at = r.summary["full_fidelity_iot"]["ended_at_ms"]
        .as_i64()
        .unwrap();
    let mut switches: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut later = Vec::new();
    let decisions = get(
        &r.http,
        &r.target,
        &r.token,
        "/api/v1/fleet/decisions?limit=1000",
    )
    .await;
    for d in decisions["decisions"].as_array().unwrap() {
        if d["what"]["decision"] != "switch" {
            continue;
        }
        let eid = d["device"].as_str().unwrap().to_owned();
        if d["at"].as_i64().unwrap() > ended_at {
            later.push(eid);
            continue;
        }
        let e = switches.entry(eid).or_default();
        if d["what"]["failover"] == true {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    (switches, later)
}

/// The devices of `group`, as the server's fleet lists them.
async fn group(r: &Run, group: &str) -> Vec<String> {
    let listed = get(
        &r.http,
        &r.target,
        &r.token,
        "/api/v1/fleet/devices?limit=1000",
    )
    .await;
    let listed = listed["devices"].as_array().unwrap().clone();
    assert_eq!(listed.len() as u64, DEVICES.parse::<u64>().unwrap());
    listed
        .iter()
        .filter(|d| d["group"] == group)
        .map(|d| d["eid"].as_str().unwrap().to_owned())
        .collect()
}

/// Every device associated, in the fleet, holding its primary and its
/// staged fallback before the event, two downloads each; the event ran to
/// its end.
fn assert_provisioned(ff: &Value) {
    let devices: u64 = DEVICES.parse().unwrap();
    assert_eq!(ff["devices"], devices, "{ff:#}");
    assert_eq!(ff["associated"], devices, "{ff:#}");
    assert_eq!(ff["registered_in_fleet"], devices, "{ff:#}");
    assert_eq!(ff["converged"], devices, "{ff:#}");
    assert_eq!(ff["cut_off"], false, "{ff:#}");
    assert_eq!(ff["setup_failures"], serde_json::json!({}), "{ff:#}");
    assert!(ff["downloads"].as_u64().unwrap() >= 2 * devices, "{ff:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_devices_fail_over_and_return_through_serve() {
    // The outage's 90 minutes in 27 s.
    let r = run_against_serve("outage", "200").await;
    let (summary, http, token, target, out_dir) =
        (&r.summary, &r.http, &r.token, &r.target, &r.out_dir);
    let (pki_dir, first_eim, dir) = (&r.pki_dir, &r.first_eim, &r.dir);
    let ff = &summary["full_fidelity_iot"];

    assert_provisioned(ff);

    // The server's own records: the devices of group `meters` (primary on
    // A) failed over and came back, decided by its fleet.
    let meters = group(&r, "meters").await;
    assert!(!meters.is_empty(), "no device of group meters");
    let (switches, later) = switches(&r).await;
    // Only devices on A switched, failovers and returns alternating: the
    // rule spaces the switches onto a carrier evenly over a real minute (at
    // most as many a minute as devices are staged there), so at this
    // speed-up not every device's turn comes inside the compressed outage,
    // and a device back after the 3 s dwell may leave again while an area
    // of A is still down.
    for (eid, s) in &switches {
        assert!(meters.contains(eid), "{eid} is not on A: {switches:?}");
        assert!(alternating(*s), "{eid}: {switches:?}");
    }
    let failovers: u64 = switches.values().map(|s| s.0).sum();
    let returns: u64 = switches.values().map(|s| s.1).sum();
    assert!(failovers >= 1 && returns >= 1, "{switches:?}");
    for eid in meters.iter().filter(|e| !later.contains(e)) {
        // On the fallback if it failed over and has not returned, on the
        // primary otherwise, as the eUICC's results and the agent told the
        // fleet; the eIM holds the eUICC's verified results.
        let on_fallback = switches.get(eid).is_some_and(|s| s.0 > s.1);
        let v = get(http, target, token, &format!("/api/v1/fleet/devices/{eid}")).await;
        let profiles = v["profiles"].as_array().unwrap();
        let enabled: Vec<&str> = profiles
            .iter()
            .filter(|p| p["enabled"] == true)
            .map(|p| p["iccid"].as_str().unwrap())
            .collect();
        let expected = if on_fallback { prefix(1) } else { prefix(0) };
        assert!(
            enabled.len() == 1 && enabled[0].starts_with(&expected),
            "{eid}: {v:#}"
        );
        let results = get(
            http,
            target,
            token,
            &format!("/api/v1/eim/devices/{eid}/results"),
        )
        .await;
        assert!(
            results.as_array().is_some_and(|r| !r.is_empty()),
            "{eid}: no verified result at the eIM: {results:#}"
        );
    }

    // The report: the failovers and returns as the server decided them,
    // each completed, with measured times; the agents ran them on the
    // eUICCs; the devices' reports and the outage's declarations reached
    // the fleet.
    assert_eq!(summary["failovers"], failovers, "{summary:#}");
    assert_eq!(summary["returns"], returns, "{summary:#}");
    assert_eq!(ff["failovers_decided"], failovers);
    assert_eq!(ff["returns_decided"], returns);
    assert_eq!(summary["failover_completion_s"]["count"], failovers);
    assert_eq!(summary["return_completion_s"]["count"], returns);
    let p50 = summary["failover_completion_s"]["p50"].as_f64().unwrap();
    let max = summary["failover_completion_s"]["max"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= max && max < 60.0, "{summary:#}");
    let executed = ff["agent_commands"]["agent.executeFallbackMechanism"]
        .as_u64()
        .unwrap_or(0);
    let returned = ff["agent_commands"]["agent.returnFromFallback"]
        .as_u64()
        .unwrap_or(0);
    assert!(executed >= failovers && returned >= returns, "{ff:#}");
    assert_eq!(ff["local_switches"], executed + returned, "{ff:#}");
    assert_eq!(ff["local_refusals"], 0, "{ff:#}");
    assert_eq!(ff["on_fallback_at_end"], executed - returned, "{ff:#}");
    assert!(
        ff["reports_sent"].as_u64().unwrap() > 2 * ff["devices"].as_u64().unwrap(),
        "{ff:#}"
    );
    assert_eq!(ff["report_failures"], 0, "{ff:#}");
    // Carrier A's outage declared and declared over in each of the
    // scenario's eight areas.
    assert_eq!(ff["declarations"], 16, "{ff:#}");
    assert_eq!(ff["declaration_failures"], 0, "{ff:#}");
    let rate = summary["registration_success_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{summary:#}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains(&format!("full-fidelity against {target}")));
    let _ = dir;
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(json["summary"]["full_fidelity_iot"], *ff);

    // Garbage: refused with a message naming what is missing or wrong.
    let pki_arg = p(pki_dir);
    let eim_arg = p(first_eim);
    let base = ["simulate", "outage", "--target", target, "--pki", &pki_arg];
    refused(
        &[&base[..], &["--add-initial-eim", &eim_arg]].concat(),
        "--api-token",
    );
    refused(
        &[&base[..], &["--api-token", token]].concat(),
        "--add-initial-eim",
    );
    let garbage = dir.path().join("garbage.der");
    std::fs::write(&garbage, b"\x30\x03\x02\x01\x00").unwrap();
    refused(
        &[
            &base[..],
            &["--api-token", token, "--add-initial-eim", &p(&garbage)],
        ]
        .concat(),
        "--add-initial-eim",
    );
    refused(
        &[
            &base[..],
            &[
                "--api-token",
                token,
                "--add-initial-eim",
                &eim_arg,
                "--devices",
                "501",
            ],
        ]
        .concat(),
        "--devices",
    );
    refused(
        &[
            &base[..],
            &[
                "--api-token",
                "wrong",
                "--add-initial-eim",
                &eim_arg,
                "--devices",
                "2",
            ],
        ]
        .concat(),
        "/api/v1/fleet/groups",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_devices_switch_by_eim_enable_through_serve() {
    // The storm's two arms against one server: `meters` (A to B, under
    // the outage's rule) and `meters-storm` (E to D, no limit), A and E
    // down together. Both rules switch by an eIM enable with rollback: the
    // eIM signs the package, the device's IPA fetches it, the eUICC runs
    // it and signs its result, the eIM verifies it.
    let r = run_against_serve("storm", "200").await;
    let ff = &r.summary["full_fidelity_iot"];
    assert_provisioned(ff);
    let mut arms = group(&r, "meters").await;
    arms.extend(group(&r, "meters-storm").await);
    let (switches, _) = switches(&r).await;
    for (eid, s) in &switches {
        assert!(
            arms.contains(eid),
            "{eid} is on neither A nor E: {switches:?}"
        );
        assert!(alternating(*s), "{eid}: {switches:?}");
    }
    let failovers: u64 = switches.values().map(|s| s.0).sum();
    let returns: u64 = switches.values().map(|s| s.1).sum();
    assert!(failovers >= 1, "{switches:?}");
    // Every switch came through the eIM, none through the agent.
    assert_eq!(ff["local_switches"], 0, "{ff:#}");
    assert_eq!(r.summary["failovers"], failovers);
    assert_eq!(r.summary["returns"], returns);
    assert_eq!(r.summary["failover_completion_s"]["count"], failovers);
    assert_eq!(r.summary["return_completion_s"]["count"], returns);
    for eid in switches.keys() {
        let results = get(
            &r.http,
            &r.target,
            &r.token,
            &format!("/api/v1/eim/devices/{eid}/results"),
        )
        .await;
        // The downloads' enable, the fallback's attribute and the switch.
        assert!(
            results.as_array().is_some_and(|v| v.len() >= 3),
            "{eid}: {results:#}"
        );
    }
}
