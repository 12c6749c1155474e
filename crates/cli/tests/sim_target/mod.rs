//! A `ferrosim serve` process with a scenario's fleet catalog for the
//! simulator's full-fidelity IoT runs (`simulate outage|storm|rollout
//! --target`): its carriers as operators of the server's SM-DP+, each with
//! the scenario's profile type and enough profiles, the rule's and the
//! reconciler's timings shortened for a compressed event; and the
//! simulator's run against it.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use crate::common::iot::{add_initial_eim, operator_token};
use crate::common::{FERROSIM, simulate_json, spawn};
use crate::fleet_lab;
use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_saip::{Iccid, Imsi};
use ferrosim_smdp::ids::OperatorId;
use ferrosim_smdp::inventory::{self, ProfileRange};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::serve::ServeCommand;
use serde_json::Value;

/// The ICCID prefix of the profiles of the scenario's `i`-th carrier at
/// the SM-DP+ (carrier A's 894400, B's 894410, ...).
pub fn prefix(i: usize) -> String {
    format!("8944{i}0")
}

/// The scenario's carriers (its fleet catalog's, in order).
pub fn carriers(scenario: &str) -> Vec<String> {
    let s = ferrosim_sim::Scenario::builtin(scenario).unwrap();
    let fleet: toml::Table = toml::from_str(&s.fleet_toml()).unwrap();
    fleet["carrier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

pub fn p(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// The scenario's fleet catalog for the server: its carriers'
/// SM-DP+ is the server's (credentials in files), the rule's timings
/// shortened for an event compressed 200 times (no jitter, no per-minute
/// limit, a 3 s dwell).
pub fn fleet_toml(scenario: &str, address: &str, dir: &Path) -> String {
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
    let reconciler = fleet
        .entry("reconciler")
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .unwrap();
    reconciler.insert("retry_base".into(), "1s".into());
    reconciler.insert("retry_max".into(), "4s".into());
    toml::to_string(&fleet).unwrap()
}

/// Each carrier an operator of the SM-DP+ with its profile type `iot`
/// (allowing the fallback attribute) and enough profiles for every device;
/// its ES2+ credentials in `dir`.
pub async fn seed(url: &str, dir: &Path, carriers: &[String]) {
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

pub async fn get(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
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
pub struct Run {
    /// The simulator's JSON summary.
    pub summary: Value,
    /// An HTTPS client trusting the server's CI.
    pub http: reqwest::Client,
    /// An operator API token of the server.
    pub token: String,
    /// The server's base URL.
    pub target: String,
    /// The report's directory.
    pub out_dir: std::path::PathBuf,
    /// The test PKI.
    pub pki_dir: std::path::PathBuf,
    /// The eIM's AddInitialEim request.
    pub first_eim: std::path::PathBuf,
    /// Devices of the run.
    pub devices: u64,
    /// The simulator's arguments (after `simulate`).
    pub args: Vec<String>,
    /// The temporary directory of it all.
    pub dir: tempfile::TempDir,
    _server: ferrosim_testkit::serve::ServeProcess,
}

/// Starts the server with `scenario`'s catalog and runs `ferrosim
/// simulate SCENARIO --target` against it with `devices` devices at
/// `time_scale`.
pub async fn run_against_serve(scenario: &str, devices: u32, time_scale: &str) -> Run {
    run_file_against_serve(scenario, None, devices, time_scale).await
}

/// Like [`run_against_serve`], the simulator given the scenario file
/// `file` (TOML text) instead of the shipped scenario, whose fleet catalog
/// the server gets.
pub async fn run_file_against_serve(
    scenario: &str,
    file: Option<&str>,
    devices: u32,
    time_scale: &str,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let scenario_arg = match file {
        Some(text) => {
            let path = dir.path().join(format!("{scenario}.toml"));
            std::fs::write(&path, text).unwrap();
            p(&path)
        }
        None => scenario.to_owned(),
    };
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
        scenario_arg.as_str(),
        "--target",
        &target,
        "--pki",
        &p(&pki_dir),
        "--api-token",
        &token,
        "--add-initial-eim",
        &p(&first_eim),
        "--devices",
        &devices.to_string(),
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
    let all = args.to_vec();
    let summary = simulate_json(args.to_vec()).await;
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
        devices: u64::from(devices),
        args: all,
        dir,
        _server: server,
    }
}
