//! A fallback profile whose metadata does not allow the fallback
//! attribute, end to end with the real components of `ferrosim serve` (the
//! lab in `fleet_lab`): carrier B's profile type was imported without
//! `--fallback-allowed`, while the fleet's configuration says it allows
//! it. The device reports `fallbackSupported`, so the fleet asks its
//! virtual eUICC (through the eIM and the real IPA) to set the attribute;
//! the eUICC refuses (`fallbackNotAllowed`). The fleet records the refusal
//! on the profile, which its device view shows, leaves the fallback staged
//! without the attribute and does not ask again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod fleet_lab;

use std::time::Duration;

use fleet_lab::{B_ICCIDS, Lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_fallback_attribute_is_shown_and_not_asked_again() {
    let lab = Lab::start_with(1, false).await;
    let d = &lab.devices[0];
    lab.register(true).await;
    let path = format!("/api/v1/fleet/devices/{}", d.eid);
    let mut view = serde_json::Value::Null;
    for _ in 0..600 {
        view = lab.call("GET", &path, None).await.1;
        let refused = view["profiles"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["iccid"].as_str().is_some_and(|i| i.starts_with(B_ICCIDS))
                    && p["fallback_refused"] == true
            })
        });
        if refused && view["converged"] == true {
            break;
        }
        lab.advance(Duration::from_millis(200)).await;
    }
    assert_eq!(view["converged"], true, "{view:#}");
    // The primary works on A, the fallback on B is staged without the
    // attribute, on the eUICC itself.
    lab.converge(false).await;
    let b = view["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["iccid"].as_str().unwrap().starts_with(B_ICCIDS))
        .unwrap();
    assert_eq!(b["fallback_refused"], true, "{view:#}");
    assert_eq!(b["fallback_attribute"], false, "{view:#}");
    // Asked once; the fleet's clock moves on and nothing more is asked.
    for _ in 0..20 {
        lab.advance(Duration::from_secs(30)).await;
    }
    lab.quiesce().await;
    let asks = lab
        .decisions()
        .await
        .into_iter()
        .filter(|d| d["reason"]["need"] == "set_fallback_attribute")
        .count();
    assert_eq!(asks, 1, "asked once");
    assert_eq!(d.profiles().await.1, None, "no attribute on the eUICC");
}
