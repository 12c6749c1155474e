//! `kill -9` of `ferrosim serve` in the middle of a staged rollout, then a
//! restart on the same data: the rollout resumes where it was and
//! completes, no wave starts twice and no device's step is done twice (each
//! device ordered exactly one profile of the new version at the SM-DP+),
//! none is lost (every device ends on the new version).
//!
//! The server is a real process (`[eim]` and `[fleet]` on, the SM-DP+ with
//! the two carriers' operators); the devices are virtual eUICCs driven by
//! the real IPA over HTTPS with their agents (the lab in `fleet_lab`), on
//! real time: the soak is 3 s.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferrosim_ids::Eid;
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::serve::{ServeCommand, ServeProcess};
use fleet_lab::{A_APN, A_ICCIDS, B_ICCIDS, Lab, fleet_toml, seed_operator};
use serde_json::{Value, json};

const FERROSIM: &str = env!("CARGO_BIN_EXE_ferrosim");
const DEVICES: usize = 4;

fn ferrosim(args: &[&str]) -> String {
    let out = Command::new(FERROSIM).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ferrosim {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

async fn spawn(command: &ServeCommand) -> ServeProcess {
    for _ in 0..40 {
        let c = command.clone();
        if let Ok(server) = tokio::task::spawn_blocking(move || c.spawn())
            .await
            .unwrap()
        {
            return server;
        }
        // The killed process's port may not be free yet.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("ferrosim serve does not start");
}

async fn rollout(lab: &Lab, id: u64) -> Value {
    let (s, v) = lab
        .call("GET", &format!("/api/v1/fleet/rollouts/{id}"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_rollout_resumes_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, data) = (dir.path().join("pki"), dir.path().join("data"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("localhost:{port}");
    ferrosim(&[
        "pki",
        "init",
        "--out",
        p(&pki),
        "--smdp-address",
        &address,
        "--euiccs",
        "4",
    ]);
    let instance = ["--data-dir", p(&data), "--pki-dir", p(&pki)];
    ferrosim(&[&["init", "--smdp-address", &address][..], &instance].concat());
    let mut eids: Vec<Eid> = ferrosim_testkit::cli::euicc_eids(&pki)
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    eids.sort();
    assert_eq!(eids.len(), DEVICES);
    for eid in &eids {
        let eid = eid.to_string();
        ferrosim(
            &[
                &[
                    "eim",
                    "associate",
                    "--eid",
                    &eid,
                    "--association-token",
                    "11",
                ][..],
                &instance,
            ]
            .concat(),
        );
    }
    let first_eim = dir.path().join("first-eim.der");
    ferrosim(
        &[
            &[
                "eim",
                "bootstrap",
                "--out",
                p(&first_eim),
                "--counter",
                "0",
                "--association-token",
                "11",
            ][..],
            &instance,
        ]
        .concat(),
    );
    let token = ferrosim(
        &[
            &[
                "api-token",
                "create",
                "--name",
                "ops",
                "--scope",
                "operator",
            ][..],
            &instance,
        ]
        .concat(),
    )
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_owned();
    let url = format!("sqlite:{}", data.join("ferrosim.db").display());
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    for (carrier, profile_type, first) in [
        ("carrier-a", "iot-a", A_ICCIDS),
        ("carrier-b", "iot-b", B_ICCIDS),
    ] {
        let es2 = seed_operator(&store, carrier, profile_type, first).await;
        std::fs::write(
            dir.path().join(format!("{carrier}.toml")),
            format!("operator = {carrier:?}\ntoken = {es2:?}\n"),
        )
        .unwrap();
    }
    let fleet = dir.path().join("fleet.toml");
    std::fs::write(&fleet, fleet_toml(&address)).unwrap();
    let config = dir.path().join("ferrosim.toml");
    std::fs::write(
        &config,
        format!(
            "[eim]\nenabled = true\n[fleet]\nconfig = {:?}\ntick_ms = 100\n",
            p(&fleet)
        ),
    )
    .unwrap();
    let command = ServeCommand::new(FERROSIM)
        .data_dir(&data)
        .pki_dir(&pki)
        .config(&config)
        .listen(([127, 0, 0, 1], port).into());
    let mut server = spawn(&command).await;
    let ci_pem = std::fs::read_to_string(pki.join("CI/ci.pem")).unwrap();
    let lab = Lab::attach(
        &address,
        &ci_pem,
        &token,
        &pki,
        &eids,
        &std::fs::read(&first_eim).unwrap(),
    );
    lab.register_and_converge().await;
    lab.report_connectivity().await;
    let before: BTreeMap<String, Option<String>> = {
        let mut m = BTreeMap::new();
        for d in &lab.devices {
            m.insert(d.eid.to_string(), d.profiles().await.0);
        }
        m
    };

    let (s, v) = lab
        .call(
            "POST",
            "/api/v1/fleet/rollouts",
            Some(json!({
                "name": "iot-a v3",
                "change": {"kind": "profile_type",
                           "to": {"carrier": "carrier-a", "profile_type": "iot-a", "version": 3}},
                "waves": [25, 50, 100], "soak": "3s", "max_wait": "2m", "seed": 3
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().unwrap();

    // Kill the server while the second wave is under way.
    let mut killed = false;
    for _ in 0..600 {
        lab.report_connectivity().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = rollout(&lab, id).await;
        assert_ne!(v["state"], "halted", "{v:#}");
        if v["wave"].as_u64() == Some(1) {
            server.kill_hard().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the second wave never started");
    tokio::time::sleep(Duration::from_millis(500)).await;
    server = spawn(&command).await;

    let mut done = Value::Null;
    for _ in 0..600 {
        lab.report_connectivity().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = rollout(&lab, id).await;
        assert_ne!(v["state"], "halted", "{v:#}");
        if v["state"] == "completed" {
            done = v;
            break;
        }
    }
    assert_eq!(done["state"], "completed", "{:#}", rollout(&lab, id).await);
    assert_eq!(done["wave_sizes"], json!([1, 1, 2]), "{done:#}");

    // No wave started twice.
    let waves: Vec<u64> = lab
        .decisions()
        .await
        .iter()
        .filter(|d| d["rollout"].as_u64() == Some(id) && d["what"]["decision"] == "wave_start")
        .map(|d| d["what"]["wave"].as_u64().unwrap())
        .collect();
    assert_eq!(waves, [0, 1, 2]);
    // Every device on the new version, each with exactly one new order at
    // A (its first primary and the new version) and one at B.
    lab.wait_apn(A_APN).await;
    let orders = ferrosim_testkit::audit::orders(&store).await.unwrap();
    for d in &lab.devices {
        let eid = d.eid.to_string();
        let enabled = d.profiles().await.0.unwrap();
        assert!(enabled.starts_with(A_ICCIDS), "{eid}: {enabled}");
        if Some(&enabled) == before[&eid].as_ref() {
            let (_, v) = lab
                .call("GET", &format!("/api/v1/fleet/devices/{eid}"), None)
                .await;
            let (_, ds) = lab
                .call(
                    "GET",
                    &format!("/api/v1/fleet/decisions?device={eid}&limit=1000"),
                    None,
                )
                .await;
            panic!("{eid} not on the new version: {v:#}\n{ds:#}\n{done:#}");
        }
        let mine: Vec<&String> = orders
            .values()
            .filter(|o| o.eid.as_deref() == Some(eid.as_str()))
            .map(|o| &o.iccid)
            .collect();
        let at_a = mine.iter().filter(|i| i.starts_with(A_ICCIDS)).count();
        let at_b = mine.iter().filter(|i| i.starts_with(B_ICCIDS)).count();
        assert_eq!((at_a, at_b), (2, 1), "{eid}: {mine:?}");
    }
    drop(lab);
    drop(server);
    store.close().await;
}
