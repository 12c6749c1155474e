//! `ferrosim simulate rollout --target`: the rollout scenario's IoT devices
//! against a running `ferrosim serve` (its eIM, fleet and SM-DP+) over real
//! HTTPS, its two rollouts of a mistyped APN run by the server's own
//! rollout engine: `staged` (waves of 1, 10, 50, 100 % of group `east`) and
//! `big-bang` (all of group `west` at once), the soak and maximum wait
//! divided by the time scale in the REST requests.
//!
//! The devices' agents take the APN settings the server sends; the network
//! model serves only the carriers' correct APNs, so a device on the typo
//! registers but its data path fails, and it reports both to the server.
//! The test checks, in the server's own records (its rollout views, its
//! decision log, its device views), that the staged rollout halted at its
//! canary and rolled it back, that the big bang took its whole group and
//! rolled every device back, that no device ends on the typo; and that the
//! report's comparison says the same. Then garbage: a second run against a
//! fleet that already holds devices in the rollouts' groups is refused, as
//! is a device count past the bound.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;
mod fleet_lab;
mod sim_target;

use std::collections::BTreeSet;

use common::refused;
use serde_json::Value;
use sim_target::{Run, get, run_against_serve};

/// Devices of the run (about half in each group).
const DEVICES: u32 = 30;
/// The typo of the new APN settings (`iot.carrier-a.exmaple`, ...).
const TYPO: &str = "exmaple";

/// The devices of `group`, as the server's fleet lists them.
async fn group(r: &Run, group: &str) -> BTreeSet<String> {
    let listed = get(
        &r.http,
        &r.target,
        &r.token,
        "/api/v1/fleet/devices?limit=1000",
    )
    .await;
    listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["group"] == group)
        .map(|d| d["eid"].as_str().unwrap().to_owned())
        .collect()
}

/// The server's decisions about rollout `id`: (decision, device).
fn of_rollout(decisions: &[Value], id: u64) -> Vec<(String, Option<String>)> {
    decisions
        .iter()
        .filter(|d| d["rollout"].as_u64() == Some(id))
        .map(|d| {
            (
                d["what"]["decision"].as_str().unwrap().to_owned(),
                d["device"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// The devices named by `decision`s in `log`.
fn devices_with(log: &[(String, Option<String>)], decision: &str) -> BTreeSet<String> {
    log.iter()
        .filter(|(d, _)| d == decision)
        .filter_map(|(_, e)| e.clone())
        .collect()
}

/// The rollout the report names `name`: its id at the server.
fn rollout_id(ff: &Value, name: &str) -> u64 {
    ff["rollouts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["id"].as_u64())
        .unwrap_or_else(|| panic!("rollout {name} not created: {ff:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_apn_halts_the_staged_rollout_at_its_canary_and_the_big_bang_rolls_back_its_group() {
    // The scenario's hour in 18 s: the rollouts start 1.5 s in, each wave
    // soaks 3 s (the scenario's 10 minutes) and waits at most 9 s.
    let r = run_against_serve("rollout", DEVICES, "200").await;
    let (summary, http, token, target) = (&r.summary, &r.http, &r.token, &r.target);
    let ff = &summary["full_fidelity_iot"];
    assert_eq!(ff["devices"], r.devices, "{ff:#}");
    assert_eq!(ff["registered_in_fleet"], r.devices, "{ff:#}");
    assert_eq!(ff["converged"], r.devices, "{ff:#}");
    assert_eq!(ff["setup_failures"], serde_json::json!({}), "{ff:#}");
    assert_eq!(ff["cut_off"], false, "{ff:#}");
    let (east, west) = (group(&r, "east").await, group(&r, "west").await);
    assert_eq!((east.len() + west.len()) as u64, r.devices);
    assert!(!east.is_empty() && !west.is_empty(), "{east:?} {west:?}");

    let (staged, big) = (rollout_id(ff, "staged"), rollout_id(ff, "big-bang"));
    let staged_view = get(
        http,
        target,
        token,
        &format!("/api/v1/fleet/rollouts/{staged}"),
    )
    .await;
    let big_view = get(
        http,
        target,
        token,
        &format!("/api/v1/fleet/rollouts/{big}"),
    )
    .await;
    // The soak and maximum wait as the simulator sent them.
    assert_eq!(staged_view["spec"]["soak"], "3s", "{staged_view:#}");
    assert_eq!(staged_view["spec"]["max_wait"], "9s", "{staged_view:#}");
    assert_eq!(big_view["spec"]["waves"], serde_json::json!([100]));

    // Staged: one wave, of one device (1 % of east, rounded up), its gate
    // failed on the data path, halted.
    assert_eq!(staged_view["state"], "halted", "{staged_view:#}");
    assert_eq!(staged_view["wave"], 0, "{staged_view:#}");
    assert_eq!(staged_view["wave_sizes"], serde_json::json!([1]));
    assert_eq!(staged_view["eligible"], east.len() as u64);
    let gates = staged_view["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 1, "{staged_view:#}");
    assert_eq!(gates[0]["verdict"], "fail", "{staged_view:#}");
    assert!(
        gates[0]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["metric"] == "data_path_success" && c["passed"] == false),
        "{staged_view:#}"
    );
    // Big bang: one wave of the whole of west, its gate failed, halted.
    assert_eq!(big_view["state"], "halted", "{big_view:#}");
    assert_eq!(
        big_view["wave_sizes"],
        serde_json::json!([west.len()]),
        "{big_view:#}"
    );
    assert_eq!(big_view["gates"][0]["verdict"], "fail", "{big_view:#}");

    // The decision log: the staged rollout touched its canary only, in
    // east, and rolled it back; the big bang rolled back every device of
    // west and touched nothing else.
    let mut decisions = Vec::new();
    let mut after = 0;
    loop {
        let page = get(
            http,
            target,
            token,
            &format!("/api/v1/fleet/decisions?limit=1000&after={after}"),
        )
        .await;
        let page = page["decisions"].as_array().unwrap().clone();
        let Some(last) = page.last().and_then(|d| d["seq"].as_u64()) else {
            break;
        };
        after = last;
        decisions.extend(page);
    }
    let staged_log = of_rollout(&decisions, staged);
    let big_log = of_rollout(&decisions, big);
    let staged_touched: BTreeSet<String> =
        staged_log.iter().filter_map(|(_, e)| e.clone()).collect();
    assert_eq!(staged_touched.len(), 1, "{staged_log:?}");
    let canary = staged_touched.iter().next().unwrap().clone();
    assert!(east.contains(&canary), "{canary} not in east");
    assert_eq!(devices_with(&staged_log, "roll_back"), staged_touched);
    for (log, waves) in [(&staged_log, 1), (&big_log, 1)] {
        let started = log.iter().filter(|(d, _)| d == "wave_start").count();
        assert_eq!(started, waves, "{log:?}");
        assert_eq!(log.iter().filter(|(d, _)| d == "gate_fail").count(), 1);
        assert_eq!(log.iter().filter(|(d, _)| d == "gate_pass").count(), 0);
    }
    assert_eq!(devices_with(&big_log, "roll_back"), west, "{big_log:?}");
    assert!(
        big_log
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .all(|e| west.contains(e)),
        "{big_log:?}"
    );

    // The server's device views: every device's agent holds a correct APN
    // again; the rollouts that touched them are named.
    for eid in east.iter().chain(&west) {
        let v = get(http, target, token, &format!("/api/v1/fleet/devices/{eid}")).await;
        let apn = v["apn"].as_str().unwrap_or_else(|| panic!("{v:#}"));
        assert!(!apn.contains(TYPO), "{eid} ends on {apn}: {v:#}");
        let expected = if *eid == canary {
            Some(staged)
        } else if west.contains(eid) {
            Some(big)
        } else {
            None
        };
        assert_eq!(v["rollout"].as_u64(), expected, "{eid}: {v:#}");
    }

    // The report: the rollouts as the server ran them and the comparison
    // measured from the devices' side agree with the server's records.
    let ff_rollouts = ff["rollouts"].as_array().unwrap();
    for (name, changed, rolled_back) in [
        ("staged", 1, 1),
        ("big-bang", west.len() as u64, west.len() as u64),
    ] {
        let fr = ff_rollouts.iter().find(|x| x["name"] == name).unwrap();
        assert_eq!(fr["state"], "halted", "{fr:#}");
        assert_eq!(fr["waves_started"], 1, "{fr:#}");
        assert_eq!(fr["devices_changed"], changed, "{fr:#}");
        assert_eq!(fr["rolled_back"], rolled_back, "{fr:#}");
        assert_eq!(fr["gate_verdicts"], serde_json::json!(["fail"]), "{fr:#}");
    }
    let cmp = &summary["comparisons"][0];
    assert_eq!(cmp["a"]["name"], "staged", "{cmp:#}");
    assert_eq!(cmp["a"]["devices"], east.len() as u64, "{cmp:#}");
    assert_eq!(cmp["b"]["devices"], west.len() as u64, "{cmp:#}");
    let (a, b) = (&cmp["a"]["rollout"], &cmp["b"]["rollout"]);
    assert_eq!(a["outcome"]["state"], "halted", "{cmp:#}");
    assert_eq!(b["outcome"]["devices_changed"], west.len() as u64);
    // Only the canary of east got the typo; more of west did (those whose
    // agent took it before the rollback reached them), and none is still
    // on it.
    assert_eq!(a["devices_with_bad_apn"], 1, "{cmp:#}");
    let big_bad = b["devices_with_bad_apn"].as_u64().unwrap();
    assert!(big_bad > 1 && big_bad <= west.len() as u64, "{cmp:#}");
    assert!(
        b["bad_apn_device_minutes"].as_f64().unwrap()
            > a["bad_apn_device_minutes"].as_f64().unwrap(),
        "{cmp:#}"
    );
    assert_eq!(a["devices_on_bad_apn_at_end"], 0, "{cmp:#}");
    assert_eq!(b["devices_on_bad_apn_at_end"], 0, "{cmp:#}");
    // The data-path failures the gates judged are the devices' reports on
    // the typo: east's come from its canary, west's from more devices.
    let (fa, fb) = (
        cmp["a"]["data_path_failures"].as_u64().unwrap(),
        cmp["b"]["data_path_failures"].as_u64().unwrap(),
    );
    assert!(fa >= 1 && fb > fa, "{cmp:#}");
    assert_eq!(
        ff["data_path_failures"].as_u64().unwrap(),
        fa + fb,
        "{ff:#}"
    );
    assert_eq!(summary["rollouts"].as_array().unwrap().len(), 2);
    let html = std::fs::read_to_string(r.out_dir.join("report.html")).unwrap();
    assert!(html.contains("staged rollout vs big bang"));

    // Garbage: the same run again finds this run's devices in east and
    // west and is refused before it registers any; too many devices are
    // refused by the bound.
    let mut again: Vec<&str> = vec!["simulate"];
    again.extend(r.args.iter().map(String::as_str));
    refused(&again, "groups the scenario's rollouts select");
    let n = again.iter().position(|a| *a == "--devices").unwrap();
    again[n + 1] = "501";
    refused(&again, "--devices");
    assert_eq!(
        group(&r, "east").await.len() + group(&r, "west").await.len(),
        DEVICES as usize
    );
}
