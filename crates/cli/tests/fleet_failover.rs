//! A carrier failover end to end with the real components of `ferrosim
//! serve` (the lab in `fleet_lab`): four IoT devices, each a virtual eUICC
//! driven by the real IPA over loopback HTTPS ESipa, with a device agent
//! taking its APN settings from the fleet API.
//!
//! The fleet orders every device's primary profile at A and its fallback
//! at B over ES2+, has the eIM trigger both downloads, enables the primary
//! and leaves the fallback installed and disabled (staged) with SGP.32's
//! fallback attribute: the devices report `fallbackSupported`, and the
//! eUICCs accept the attribute because B's profile type allows it, so
//! the SM-DP+ wrote `fallbackAllowed` into the profile's metadata. Then
//! the devices report that A
//! rejects their registrations: each switches to its staged fallback within
//! the rule's bound, never more than the rule's limit per minute onto B
//! (checked on the fleet's decisions and on what the eUICCs really have
//! enabled), and the agent receives B's APN. A's outage is declared over:
//! the devices return after the dwell, and not before.
//!
//! Only the fleet's clock is virtual (a manual clock the test advances in
//! steps), so the per-minute limit and the dwell take seconds of real time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::time::Duration;

use ferrosim_ids::Clock;
use fleet_lab::{
    A_APN, A_ICCIDS, B_APN, B_ICCIDS, FRACTION_PER_MINUTE, JITTER, Lab, RETURN_DWELL, STEP,
};
use serde_json::json;

const DEVICES: usize = 4;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_outage_fails_devices_over_and_back_within_the_rule() {
    let lab = Lab::start(DEVICES).await;

    // Each device gets its primary on A, enabled with A's APN, and its
    // fallback on B staged with the fallback attribute, on the eUICC
    // itself.
    lab.register_and_converge_with(true).await;
    lab.quiesce().await;
    for d in &lab.devices {
        assert_fallback_on_b(&lab, d).await;
    }
    // Working on A.
    lab.report_connectivity().await;
    lab.advance(STEP).await;

    // A rejects every registration: three failures per device.
    let failed_at = lab.advance(STEP).await;
    lab.report_rejections(3).await;

    // Step the fleet's clock; after each step every decided switch is
    // carried out by the eUICC before the next.
    let per_minute = (DEVICES as f64 * FRACTION_PER_MINUTE).ceil() as i64;
    let spacing = 60_000 / per_minute;
    // The first switch comes at the first look after its jitter, each
    // further one a spacing later (rounded up to a look).
    let bound = ms(STEP) + ms(JITTER) + spacing * (DEVICES as i64 - 1) + ms(STEP);
    let mut seen_on_b = Vec::new();
    loop {
        lab.settle(true).await;
        let now = lab.clock.as_ref().unwrap().now();
        let on_b = lab.on(B_ICCIDS).await;
        seen_on_b.push((now.millis() - failed_at.millis(), on_b));
        // On the eUICCs: never more switched than the limit allows so far.
        let elapsed = now.millis() - failed_at.millis();
        let allowed = 1 + usize::try_from(elapsed / spacing).unwrap();
        assert!(
            on_b <= allowed,
            "{on_b} on B after {elapsed} ms: {seen_on_b:?}"
        );
        if on_b == DEVICES {
            break;
        }
        assert!(
            elapsed <= bound,
            "not all switched within {bound} ms: {seen_on_b:?}"
        );
        lab.advance(STEP).await;
    }
    // The fleet's decisions: one failover per device, within the bound,
    // no two closer than the limit allows.
    let failovers = lab.switches(true).await;
    assert_eq!(failovers.len(), DEVICES, "{failovers:?}");
    let mut times: Vec<i64> = failovers.values().flatten().copied().collect();
    times.sort_unstable();
    assert_eq!(times.len(), DEVICES, "one failover each: {failovers:?}");
    for w in times.windows(2) {
        assert!(w[1] - w[0] >= spacing, "switches too close: {times:?}");
    }
    assert!(
        times.iter().all(|t| *t - failed_at.millis() <= bound),
        "{times:?} vs failure at {}",
        failed_at.millis()
    );
    eprintln!(
        "failovers (s after the failures): {:?}; devices on B per look: {seen_on_b:?}",
        times
            .iter()
            .map(|t| (t - failed_at.millis()) as f64 / 1000.0)
            .collect::<Vec<_>>()
    );
    for d in &lab.devices {
        let (enabled, _) = d.profiles().await;
        assert!(enabled.is_some_and(|i| i.starts_with(B_ICCIDS)));
        // The primary stays installed for the return.
        assert!(d.installed().await.iter().any(|i| i.starts_with(A_ICCIDS)));
    }
    // The agents get B's APN settings with the switch.
    lab.wait_apn(B_APN).await;

    // A recovers: its operations centre declares the outage over. Nobody
    // returns before the dwell; everybody returns after it.
    let (s, v) = lab
        .call(
            "POST",
            "/api/v1/fleet/outages",
            Some(json!({"carrier": "carrier-a", "region": "north", "declared": false})),
        )
        .await;
    assert_eq!(s, 204, "{v}");
    let recovered_at = lab.clock.as_ref().unwrap().now();
    loop {
        let now = lab.advance(Duration::from_secs(30)).await;
        lab.settle(false).await;
        let on_a = lab.on(A_ICCIDS).await;
        let elapsed = now.millis() - recovered_at.millis();
        if elapsed < ms(RETURN_DWELL) {
            assert_eq!(on_a, 0, "returned before the dwell ({elapsed} ms)");
        }
        if on_a == DEVICES {
            break;
        }
        assert!(
            elapsed <= ms(RETURN_DWELL) + 60_000 * DEVICES as i64,
            "not all returned {elapsed} ms after the recovery"
        );
    }
    let returns = lab.switches(false).await;
    assert_eq!(returns.len(), DEVICES, "{returns:?}");
    eprintln!(
        "returns (s after the recovery): {:?}",
        returns
            .values()
            .flatten()
            .map(|t| (t - recovered_at.millis()) as f64 / 1000.0)
            .collect::<Vec<_>>()
    );
    for t in returns.values().flatten() {
        assert!(
            *t - recovered_at.millis() >= ms(RETURN_DWELL),
            "{returns:?}"
        );
    }
    lab.wait_apn(A_APN).await;
    // Back on A, each staged fallback carries the attribute again.
    for _ in 0..400 {
        let mut all = true;
        for d in &lab.devices {
            let (enabled, fallback) = d.profiles().await;
            all &= enabled.is_some_and(|i| i.starts_with(A_ICCIDS))
                && fallback.is_some_and(|i| i.starts_with(B_ICCIDS));
        }
        if all {
            break;
        }
        lab.advance(Duration::from_millis(200)).await;
    }
    lab.quiesce().await;
    for d in &lab.devices {
        assert_fallback_on_b(&lab, d).await;
    }

    // Every switch, and the outage's end, is in the audit trail (whose
    // hash chain verifies), with the decision's reason.
    let (auditor, store) = lab.audit.as_ref().unwrap();
    auditor.flush().await;
    let log: &dyn ferrosim_audit::AuditLog = store;
    let entries = log.entries(0, 10_000).await.unwrap();
    for d in &lab.devices {
        let switches: Vec<_> = entries
            .iter()
            .filter(|e| e.action == "fleet.switch" && e.subject == d.eid.to_string())
            .collect();
        assert_eq!(switches.len(), 2, "{}: {switches:#?}", d.eid);
        assert!(
            switches[0].details.contains("registration_failures"),
            "{}",
            switches[0].details
        );
        assert_eq!(switches[0].actor, "system");
    }
    assert!(
        entries
            .iter()
            .any(|e| e.action == "fleet.outage_end" && e.subject == "fleet"),
        "{entries:#?}"
    );
    assert!(!entries.iter().any(|e| e.action == "fleet.issue"));
    log.verify(vec![], None).await.unwrap();
}

/// The device's eUICC holds the fallback attribute on its profile from B
/// (and on no other), and the fleet's view of the device, built from the
/// eUICC's signed results, says so.
async fn assert_fallback_on_b(lab: &fleet_lab::Lab, d: &fleet_lab::Device) {
    let (enabled, fallback) = d.profiles().await;
    assert!(
        enabled.as_deref().is_some_and(|i| i.starts_with(A_ICCIDS)),
        "{}: {enabled:?}",
        d.eid
    );
    let fallback = fallback.unwrap_or_else(|| panic!("{}: no fallback attribute", d.eid));
    assert!(fallback.starts_with(B_ICCIDS), "{}: {fallback}", d.eid);
    let (s, v) = lab
        .call("GET", &format!("/api/v1/fleet/devices/{}", d.eid), None)
        .await;
    assert_eq!(s, 200, "{v}");
    let profiles = v["profiles"].as_array().unwrap();
    let holders: Vec<&str> = profiles
        .iter()
        .filter(|p| p["fallback_attribute"] == true)
        .map(|p| p["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(holders, [fallback.as_str()], "{v:#}");
}
