//! `ferrosim simulate rollout --target` the other way round: the same
//! scenario as a file whose carriers' cores also serve the new APNs (the
//! typos added to their `apns`) and no registration failing by chance
//! (no modem failures, every carrier's `registration_success` 1: a gate of
//! one device would fail on one unlucky attempt), against `ferrosim serve`
//! with the same fleet catalog. The rollouts, their waves, soak and gate
//! and the time scale's adaptation are unchanged, and the server's rollout
//! engine
//! passes every gate: both rollouts complete, every device ends on the new
//! APN and none is rolled back. So what halts them in
//! `simulate_https_rollout.rs` is the APN, not the staging or the
//! compressed timings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;
mod fleet_lab;
mod sim_target;

use serde_json::Value;
use sim_target::{get, run_file_against_serve};

/// Devices of the run.
const DEVICES: u32 = 20;

/// The shipped `rollout` scenario with the new APNs served by the cores.
fn served_scenario() -> String {
    let text = ferrosim_sim::scenario::BUILTIN
        .iter()
        .find(|(name, _)| *name == "rollout")
        .unwrap()
        .1;
    let mut scenario: toml::Table = toml::from_str(text).unwrap();
    for c in scenario["carrier"].as_array_mut().unwrap() {
        let c = c.as_table_mut().unwrap();
        // A network that fails nothing by chance: a gate of a few devices
        // would fail on one unlucky registration.
        c.insert("registration_success".into(), 1.0.into());
        if let Some(apns) = c.get_mut("apns").and_then(toml::Value::as_array_mut) {
            let typos: Vec<toml::Value> = apns
                .iter()
                .filter_map(|a| a.as_str())
                .map(|a| a.replace("example", "exmaple").into())
                .collect();
            apns.extend(typos);
        }
    }
    let population = scenario["population"].as_table_mut().unwrap();
    for v in population["vendor"].as_array_mut().unwrap() {
        v.as_table_mut()
            .unwrap()
            .insert("modem_failure".into(), 0.0.into());
    }
    toml::to_string(&scenario).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_new_apn_served_both_rollouts_complete_through_serve() {
    // The hour in 36 s: the rollouts start 3 s in, each wave soaks 6 s.
    let r = run_file_against_serve("rollout", Some(&served_scenario()), DEVICES, "100").await;
    let (summary, http, token, target) = (&r.summary, &r.http, &r.token, &r.target);
    let ff = &summary["full_fidelity_iot"];
    assert_eq!(ff["converged"], r.devices, "{ff:#}");
    let rollouts = ff["rollouts"].as_array().unwrap();
    assert_eq!(rollouts.len(), 2, "{ff:#}");
    let listed = get(http, target, token, "/api/v1/fleet/devices?limit=1000").await;
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len() as u64, r.devices);
    for fr in rollouts {
        // The server's view: completed, every wave started, every gate
        // passed, the whole group changed.
        let id = fr["id"].as_u64().unwrap_or_else(|| panic!("{fr:#}"));
        let v = get(http, target, token, &format!("/api/v1/fleet/rollouts/{id}")).await;
        assert_eq!(v["state"], "completed", "{v:#}");
        let waves = v["waves"].as_array().unwrap().len();
        assert_eq!(v["gates"].as_array().unwrap().len(), waves, "{v:#}");
        assert!(
            v["gates"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["verdict"] == "pass"),
            "{v:#}"
        );
        let group = v["spec"]["groups"][0].as_str().unwrap();
        let members = devices.iter().filter(|d| d["group"] == group).count() as u64;
        let changed: u64 = v["wave_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(changed, members, "{v:#}");
        assert_eq!(fr["state"], "completed", "{fr:#}");
        assert_eq!(fr["rolled_back"], 0, "{fr:#}");
    }
    // Every device's agent holds the new APN, and none lost data.
    for d in devices {
        let eid = d["eid"].as_str().unwrap();
        let v = get(http, target, token, &format!("/api/v1/fleet/devices/{eid}")).await;
        let apn = v["apn"].as_str().unwrap_or_else(|| panic!("{v:#}"));
        assert!(apn.contains("exmaple"), "{eid} on {apn}");
    }
    assert_eq!(ff["data_path_failures"], 0, "{ff:#}");
    let cmp = &summary["comparisons"][0];
    for arm in ["a", "b"] {
        assert_eq!(cmp[arm]["rollout"]["devices_with_bad_apn"], 0, "{cmp:#}");
        assert_eq!(cmp[arm]["data_path_failures"], 0, "{cmp:#}");
    }
}
