//! The live dashboard in headless Chromium, driven from Rust over the W3C
//! WebDriver protocol (chromedriver): after real downloads over loopback
//! HTTPS the page loads without console errors, the numbers it shows are
//! the API's (same evaluation instant), the drill-down shows a device's
//! timeline, and a screenshot is saved as `target/tmp/dashboard.png`.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`); without them the test fails, unless
//! FERROSIM_SKIP_CHROMIUM=1 says they may be missing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::PathBuf;
use std::time::Duration;

use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_testkit::webdriver::Browser;
use ferrosim_testkit::{CallbackSink, TestSmdp, TestSmdpOptions};
use serde_json::Value;

mod common;

async fn activate(
    smdp: &TestSmdp,
    es9: &HttpsEs9Client,
    device: usize,
    mid: &str,
    enable: bool,
) -> bool {
    let Some(report) = common::activate(smdp, es9, device, mid, enable).await else {
        return false;
    };
    if let Some(report) = report {
        assert!(report.is_complete());
    }
    true
}

#[tokio::test]
async fn dashboard_in_headless_chromium() {
    let Some(browser) = Browser::find_or_skip() else {
        return;
    };

    // Activity: two activations (one profile enabled), one refused.
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 3,
        profiles: 3,
        callback_url: Some(sink.url.clone()),
        telemetry: true,
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let eids = smdp.pki.eids();
    for (device, eid) in eids.iter().enumerate().take(2) {
        let (_, mid) = smdp.order(Some(&eid.to_string()), None).await.unwrap();
        assert!(activate(&smdp, &es9, device, &mid, device == 0).await);
    }
    let (_, refused) = smdp.order(Some(&eids[0].to_string()), None).await.unwrap();
    assert!(!activate(&smdp, &es9, 2, &refused, false).await);
    assert!(
        sink.wait_for(Duration::from_secs(20), |v| v.len() >= 7)
            .await
    );
    smdp.telemetry.as_ref().unwrap().flush().await;

    let profile = tempfile::tempdir().unwrap();
    let driver = browser
        .open(profile.path(), &["--window-size=1400,2400"])
        .await;
    driver
        .navigate(&format!("{}/dashboard", smdp.base_url()))
        .await;
    let as_of = driver
        .wait_for(
            "the page loaded its data",
            "return document.body.dataset.loaded || null",
        )
        .await;
    let as_of: i64 = as_of.as_str().unwrap().parse().unwrap();
    driver
        .wait_for(
            "the live stream connected",
            "return document.getElementById('live').textContent === 'live'",
        )
        .await;

    // The numbers shown are the API's at the same instant.
    let shown = driver
        .script(
            "const out = {}; for (const el of document.querySelectorAll('[data-value]')) \
             { if (el.id) out[el.id] = [el.dataset.value, el.textContent]; } return out;",
        )
        .await;
    let http = smdp.https_client();
    let api: Value = http
        .get(format!(
            "{}/api/v1/telemetry/overview?as_of={as_of}",
            smdp.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = &api["headline"];
    let f = &api["fleet"];
    let expect = [
        ("success-ratio", &h["success_ratio"]),
        ("within-target", &h["within_target"]),
        ("decided", &h["decided"]),
        ("pending", &h["pending"]),
        ("started", &h["started"]),
        ("mttr", &h["mttr_ms"]),
        ("recovered", &h["recovered"]),
        ("failed", &h["failed"]),
        ("unrecovered", &h["unrecovered"]),
        ("bytes-per-profile", &h["bytes_per_active_profile"]),
        ("bytes", &h["bytes"]),
        ("active-profiles", &h["active_profiles"]),
        ("never-enabled", &h["downloaded_never_enabled"]),
        ("fleet-devices", &f["devices"]),
        ("fleet-healthy", &f["healthy"]),
        ("fleet-failing", &f["failing"]),
        ("fleet-in-progress", &f["in_progress"]),
    ];
    for (id, value) in expect {
        let (raw, text) = (&shown[id][0], &shown[id][1]);
        let raw = raw
            .as_str()
            .unwrap_or_else(|| panic!("#{id} missing: {shown}"));
        match value.as_f64() {
            Some(v) => {
                let got: f64 = raw
                    .parse()
                    .unwrap_or_else(|_| panic!("#{id} shows {raw:?}, API {v}"));
                assert!(
                    (got - v).abs() <= 1e-9 * v.abs().max(1.0),
                    "#{id}: page {got}, API {v}"
                );
                assert_ne!(text.as_str().unwrap(), "—", "#{id} shows no number");
            }
            None => assert_eq!(raw, "", "#{id}: page {raw:?}, API null"),
        }
    }
    // The fixture's own numbers, so that a page and API both at zero fail.
    assert_eq!(h["started"], 3, "{api}");
    assert_eq!(h["within_target"], 2);
    assert_eq!(h["active_profiles"], 1);
    assert!(h["bytes_per_active_profile"].as_f64().unwrap() > 10_000.0);

    // Carriers and failures as the API has them.
    let carriers: Value = http
        .get(format!("{}/api/v1/telemetry/carriers", smdp.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = driver
        .script("return [...document.querySelectorAll('#carriers tbody tr')].map(r => r.dataset.carrier || null)")
        .await;
    let names: Vec<Value> = carriers["carriers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["carrier"].clone())
        .collect();
    assert_eq!(rows, Value::Array(names), "carrier rows");
    let failures = driver
        .script("return document.querySelectorAll('#failures tbody tr[data-activation]').length")
        .await;
    assert_eq!(failures, 1, "the refused activation");
    for empty in ["failovers", "rollouts", "eim"] {
        let text = driver
            .script(&format!(
                "return document.querySelector('#{empty} tbody').textContent"
            ))
            .await;
        assert_eq!(text, "no data yet", "#{empty}");
    }

    // Drill-down: the failing device's timeline.
    driver
        .script("document.querySelector('#failures tbody button.link').click(); return null")
        .await;
    let device = driver
        .wait_for(
            "the device timeline",
            "return document.getElementById('timeline').dataset.device || null",
        )
        .await;
    assert_eq!(device, eids[2].to_string());
    let timeline_rows = driver
        .script("return document.querySelectorAll('#timeline tbody tr').length")
        .await;
    assert_eq!(
        timeline_rows, 1,
        "the refusal is device 2's only recorded event"
    );

    // The success chart is a percentage: its y axis spans 0-100, never
    // more (uPlot pads a flat line to twice its value unless told).
    let y = driver
        .wait_for(
            "the success chart",
            "const c = state.charts['chart-success']; \
             return c && c.scales.y.max != null ? [c.scales.y.min, c.scales.y.max] : null",
        )
        .await;
    assert_eq!(y, serde_json::json!([0, 100]), "success chart y range");

    let errors = driver.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // The screenshot, kept as a test artifact.
    let png = driver.screenshot_png().await;
    assert!(png.starts_with(b"\x89PNG"));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());
    driver.quit().await;
}
