//! A failover by the device itself, end to end with the real components of
//! `ferrosim serve` (the lab in `fleet_lab`): the group's rule switches by
//! the device-local method. Two IoT devices (virtual eUICCs driven by the
//! real IPA over loopback HTTPS ESipa) get their primary on A and their
//! fallback on B staged with SGP.32's fallback attribute. A rejects their
//! registrations: the fleet tells each device's agent to run the Fallback
//! Mechanism, the IPA runs ExecuteFallbackMechanism (ES10b `BF5D`) on the
//! eUICC, which enables the profile holding the attribute (B's), and the
//! agent gets B's APN. A's outage is declared over: after the dwell, and
//! not before, the agents run ReturnFromFallback (`BF5E`) through the IPA
//! and the eUICCs are back on A.
//!
//! Only the fleet's clock is virtual (a manual clock the test advances).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::time::Duration;

use ferrosim_ids::Clock;
use fleet_lab::{A_APN, A_ICCIDS, B_APN, B_ICCIDS, Lab, RETURN_DWELL, STEP};
use serde_json::{Value, json};

const DEVICES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_local_fallback_switches_through_the_ipa_and_returns_after_the_dwell() {
    let lab = Lab::start_opts(DEVICES, true, "device_local").await;
    lab.register_and_converge_with(true).await;
    lab.quiesce().await;
    for d in &lab.devices {
        let (enabled, fallback) = d.profiles().await;
        assert!(
            enabled.is_some_and(|i| i.starts_with(A_ICCIDS)),
            "{}",
            d.eid
        );
        assert!(
            fallback.is_some_and(|i| i.starts_with(B_ICCIDS)),
            "{}",
            d.eid
        );
    }
    lab.report_connectivity().await;
    lab.advance(STEP).await;

    // A rejects every registration: three failures per device.
    let failed_at = lab.clock.as_ref().unwrap().now().millis();
    lab.report_rejections(3).await;
    for _ in 0..100 {
        lab.settle(true).await;
        if lab.on(B_ICCIDS).await == DEVICES {
            break;
        }
        lab.advance(STEP).await;
    }
    assert_eq!(lab.on(B_ICCIDS).await, DEVICES, "every eUICC on B");
    for d in &lab.devices {
        // The primary stays installed for the return.
        assert!(d.installed().await.iter().any(|i| i.starts_with(A_ICCIDS)));
    }
    lab.wait_apn(B_APN).await;
    // The switches were the device-local method's, carried out by the
    // agents (no eIM enable).
    let decisions = lab.decisions().await;
    let switches: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["what"]["decision"] == "switch")
        .collect();
    assert_eq!(switches.len(), DEVICES, "{switches:#?}");
    for s in &switches {
        assert_eq!(s["what"]["method"], "device_local", "{s:#}");
        assert_eq!(s["what"]["failover"], true, "{s:#}");
    }
    let issued = |command: &str| {
        decisions
            .iter()
            .filter(|d| d["what"]["command"] == command && d["at"].as_i64().unwrap() >= failed_at)
            .count()
    };
    assert_eq!(issued("agent.executeFallbackMechanism"), DEVICES);
    assert_eq!(
        issued("eim.enable"),
        0,
        "no eIM enable since the failures: {decisions:#?}"
    );

    // A recovers: nobody returns before the dwell, everybody after it.
    let (s, v) = lab
        .call(
            "POST",
            "/api/v1/fleet/outages",
            Some(json!({"carrier": "carrier-a", "region": "north", "declared": false})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let recovered_at = lab.clock.as_ref().unwrap().now();
    let dwell = i64::try_from(RETURN_DWELL.as_millis()).unwrap();
    loop {
        let now = lab.advance(Duration::from_secs(30)).await;
        lab.settle(false).await;
        let on_a = lab.on(A_ICCIDS).await;
        let elapsed = now.millis() - recovered_at.millis();
        if elapsed < dwell {
            assert_eq!(on_a, 0, "returned before the dwell ({elapsed} ms)");
        }
        if on_a == DEVICES {
            break;
        }
        assert!(
            elapsed <= dwell + 60_000 * DEVICES as i64,
            "not all returned {elapsed} ms after the recovery"
        );
    }
    lab.wait_apn(A_APN).await;
    let decisions = lab.decisions().await;
    let returned = decisions
        .iter()
        .filter(|d| d["what"]["command"] == "agent.returnFromFallback")
        .count();
    assert_eq!(returned, DEVICES, "{decisions:#?}");
    for t in lab.switches(false).await.values().flatten() {
        assert!(*t - recovered_at.millis() >= dwell, "returned at {t}");
    }
}
