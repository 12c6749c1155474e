//! Staged rollouts end to end with the real components of `ferrosim serve`
//! (the lab in `fleet_lab`: SM-DP+ with two operators, eIM, fleet API, four
//! virtual eUICCs driven by the real IPA, device agents, a network model
//! where data flows only with the carrier's real APN).
//!
//! - A new version of the primary's profile type whose APN is mistyped:
//!   the canary device downloads and enables it, registers, but its data
//!   path fails; the canary's gate fails, the rollout halts, the canary
//!   is rolled back to its previous profile (enabled again, its APN
//!   delivered again, the new profile deleted) and no other device is
//!   touched.
//! - A healthy new version: every wave passes and every device ends on it.
//!
//! The fleet's clock is virtual (soak times pass in seconds).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_lab::{A_APN, A_ICCIDS, Lab};
use serde_json::{Value, json};

const DEVICES: usize = 4;

/// What each device holds: (enabled ICCID, installed ICCIDs), by EID.
async fn holdings(lab: &Lab) -> BTreeMap<String, (Option<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for d in &lab.devices {
        let mut installed = d.installed().await;
        installed.sort();
        out.insert(d.eid.to_string(), (d.profiles().await.0, installed));
    }
    out
}

/// Starts a rollout of `iot-a@version` in waves of 25 % then 100 %.
async fn start_rollout(lab: &Lab, version: u16) -> u64 {
    let (s, v) = lab
        .call(
            "POST",
            "/api/v1/fleet/rollouts",
            Some(json!({
                "name": format!("iot-a v{version}"),
                "change": {"kind": "profile_type",
                           "to": {"carrier": "carrier-a", "profile_type": "iot-a", "version": version}},
                "waves": [25, 100], "soak": "2m", "max_wait": "20m", "seed": 7
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_u64().unwrap()
}

/// Devices the rollout's decisions name.
async fn touched(lab: &Lab, rollout: u64) -> Vec<String> {
    let mut out: Vec<String> = lab
        .decisions()
        .await
        .iter()
        .filter(|d| d["rollout"].as_u64() == Some(rollout))
        .filter_map(|d| d["device"].as_str().map(str::to_owned))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Advances the fleet's clock in 10 s steps, the devices reporting what
/// the network sees after each, until the rollout is in `state` (or the
/// steps run out).
async fn run_until(lab: &Lab, rollout: u64, state: &str, mut each: impl AsyncFnMut()) -> Value {
    let mut v = Value::Null;
    for _ in 0..240 {
        lab.report_connectivity().await;
        lab.advance(Duration::from_secs(10)).await;
        lab.quiesce().await;
        each().await;
        let (s, got) = lab
            .call("GET", &format!("/api/v1/fleet/rollouts/{rollout}"), None)
            .await;
        assert_eq!(s, 200, "{got}");
        v = got;
        if v["state"] == state {
            return v;
        }
    }
    panic!("rollout not {state}: {v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_apn_canary_fails_its_gate_and_is_rolled_back() {
    let lab = Lab::start(DEVICES).await;
    lab.register_and_converge().await;
    lab.report_connectivity().await;
    let before = holdings(&lab).await;

    let id = start_rollout(&lab, 2).await;
    let view = run_until(&lab, id, "halted", async || {}).await;
    assert_eq!(view["wave_sizes"][0].as_u64(), Some(1), "{view:#}");
    let canary = touched(&lab, id).await;
    assert_eq!(canary.len(), 1, "only the canary: {canary:?}");
    let canary = &canary[0];
    let gates = view["gates"].to_string();
    assert!(
        gates.contains("data"),
        "the gate names the data path: {gates}"
    );

    // The canary comes back to its previous profile (and its APN), the
    // new profile is removed.
    let mut back = false;
    for _ in 0..200 {
        lab.report_connectivity().await;
        lab.advance(Duration::from_secs(10)).await;
        lab.quiesce().await;
        let now = holdings(&lab).await;
        let apn = lab
            .devices
            .iter()
            .find(|d| d.eid.to_string() == *canary)
            .map(|d| d.apns.lock().unwrap().last().cloned())
            .unwrap();
        if now[canary] == before[canary] && apn.as_deref() == Some(A_APN) {
            back = true;
            break;
        }
    }
    let after = holdings(&lab).await;
    assert!(
        back,
        "canary not rolled back: {:?} -> {:?}",
        before[canary], after[canary]
    );
    // Nobody else was touched: same profiles, same APN history.
    assert_eq!(before, after);
    for d in &lab.devices {
        if d.eid.to_string() != *canary {
            assert_eq!(*d.apns.lock().unwrap(), vec![A_APN.to_owned()], "{}", d.eid);
        }
    }
    // The wrong APN did reach the canary, and the rollout stays halted.
    let canary_apns = lab
        .devices
        .iter()
        .find(|d| d.eid.to_string() == *canary)
        .map(|d| d.apns.lock().unwrap().clone())
        .unwrap();
    assert!(
        canary_apns.contains(&fleet_lab::A_TYPO_APN.to_owned()),
        "{canary_apns:?}"
    );
    let (_, v) = lab
        .call("GET", &format!("/api/v1/fleet/rollouts/{id}"), None)
        .await;
    assert_eq!(v["state"], "halted", "{v:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_rollout_completes_every_wave() {
    let lab = Lab::start(DEVICES).await;
    lab.register_and_converge().await;
    lab.report_connectivity().await;
    let before = holdings(&lab).await;

    let id = start_rollout(&lab, 3).await;
    let view = run_until(&lab, id, "completed", async || {}).await;
    assert_eq!(view["wave_sizes"], json!([1, 3]), "{view:#}");
    for gate in view["gates"].as_array().unwrap() {
        assert_eq!(gate["verdict"], "pass", "{view:#}");
    }
    assert_eq!(touched(&lab, id).await.len(), DEVICES);
    let after = holdings(&lab).await;
    for (eid, (enabled, _)) in &after {
        let enabled = enabled.as_deref().unwrap();
        assert!(enabled.starts_with(A_ICCIDS), "{eid}: {enabled}");
        assert_ne!(
            Some(enabled),
            before[eid].0.as_deref(),
            "{eid} on the new profile"
        );
    }
    lab.wait_apn(A_APN).await;
}
