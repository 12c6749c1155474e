//! Capabilities read through the IPA, end to end with the real components
//! of `ferrosim serve` (the lab in `fleet_lab`): a device registered without
//! capabilities is asked for them first (the eIM queues an
//! IpaEuiccDataRequest, the real IPA answers with the virtual eUICC's
//! EUICCInfo2 and its own IpaCapabilities); the device's REST view shows
//! them as the IPA's, and the fleet then provisions the device.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::time::Duration;

use fleet_lab::{A_ICCIDS, Lab};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_read_through_the_ipa_before_provisioning() {
    let lab = Lab::start(1).await;
    let d = &lab.devices[0];
    let (s, v) = lab
        .call(
            "POST",
            "/api/v1/fleet/devices",
            Some(json!({
                "eid": d.eid.to_string(), "group": "meters", "vendor": "acme",
                "model": "m1", "firmware": "1.0.0", "region": "north"
            })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["capabilities"]["source"], "pending", "{v}");
    let path = format!("/api/v1/fleet/devices/{}", d.eid);
    let mut view = v;
    for _ in 0..600 {
        if view["capabilities"]["source"] == "ipa" && d.enabled_on(A_ICCIDS).await {
            break;
        }
        lab.advance(Duration::from_millis(200)).await;
        view = lab.call("GET", &path, None).await.1;
    }
    let caps = &view["capabilities"];
    assert_eq!(caps["source"], "ipa", "{view:#}");
    // The virtual eUICC's EUICCInfo2: SGP.32 1.2.0 with fallbackSupported.
    assert_eq!(caps["sgp32_version"], "1.2.0");
    assert_eq!(caps["fallback_supported"], true);
    // The IPA's IpaCapabilities: direct downloads (0), eIM download data
    // handling (2), eIM packages retrieved over HTTPS (0).
    assert_eq!(caps["ipa_features"], json!([0, 2]));
    assert_eq!(caps["ipa_protocols"], json!([0]));
    assert!(d.enabled_on(A_ICCIDS).await, "then provisioned: {view:#}");
    // The first thing the fleet did for the device was to ask.
    let first = lab
        .decisions()
        .await
        .into_iter()
        .find(|d| d["what"]["decision"] == "issue")
        .unwrap();
    assert_eq!(first["reason"]["need"], "capabilities", "{first:#}");
}
