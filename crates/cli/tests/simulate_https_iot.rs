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
mod sim_target;

use std::collections::BTreeMap;

use common::refused;
use serde_json::Value;
use sim_target::{Run, get, p, prefix, run_against_serve};

/// IoT devices of the run.
const DEVICES: u32 = 20;

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
    assert_eq!(listed.len() as u64, u64::from(DEVICES));
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
    let devices = u64::from(DEVICES);
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
    let r = run_against_serve("outage", DEVICES, "200").await;
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
    let r = run_against_serve("storm", DEVICES, "200").await;
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
