//! The simulation report opens in headless Chromium without console
//! errors and shows its charts and comparisons: small `storm` and
//! `rollout` runs, their `report.html` loaded from disk over the W3C
//! WebDriver protocol (chromedriver).
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`); without them the test fails, unless
//! FERROSIM_SKIP_CHROMIUM=1 says they may be missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use ferrosim_sim::{RunOptions, Scenario, simulate};
use ferrosim_testkit::webdriver::Browser;
use serde_json::json;

/// The whole browser part gives up after this long.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

#[tokio::test]
async fn report_opens_in_headless_chromium() {
    let Some(browser) = Browser::find_or_skip() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let mut pages = Vec::new();
    for (name, comparison) in [
        ("storm", "Comparison: failover rate limits on vs off"),
        ("rollout", "Comparison: staged rollout vs big bang"),
    ] {
        let scenario = Scenario::builtin(name).unwrap();
        let options = RunOptions {
            devices: Some(300),
            seed: Some(3),
            ..RunOptions::default()
        };
        let (collected, metrics, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
        assert_eq!(summary.comparisons.len(), 1);
        let dir = out.path().join(name);
        ferrosim_sim::report::write(&dir, &summary, &metrics, &collected).unwrap();
        pages.push((name, comparison, dir.join("report.html")));
    }
    assert!(
        std::fs::read_to_string(out.path().join("storm/report.json"))
            .unwrap()
            .contains("\"comparisons\"")
    );

    let profile = tempfile::tempdir().unwrap();
    tokio::time::timeout(TEST_TIMEOUT, async {
        for (name, comparison, page) in &pages {
            browse(&browser, profile.path(), page, name, comparison).await;
        }
    })
    .await
    .expect("the browser part finishes within its time limit");
}

/// Opens the report in headless Chromium and checks what it shows.
async fn browse(browser: &Browser, profile: &Path, page: &Path, name: &str, comparison: &str) {
    let driver = browser.open(profile, &[]).await;
    driver.navigate(&format!("file://{}", page.display())).await;
    assert_eq!(
        driver.script("return document.title").await,
        json!(format!("ferrosim simulate {name}"))
    );
    let svgs = driver
        .script("return document.querySelectorAll('div.chart svg').length")
        .await;
    assert_eq!(svgs, json!(6), "every chart is drawn");
    let text = driver.script("return document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("activation success within 60 s"));
    assert!(text.contains(comparison), "{comparison}");
    let errors = driver.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    driver.quit().await;
}
