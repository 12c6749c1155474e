//! The simulation report opens in headless Chromium without console
//! errors and shows its charts: a small outage run, its `report.html`
//! loaded from disk over the W3C WebDriver protocol (chromedriver).
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
    let scenario = Scenario::builtin("outage").unwrap();
    let options = RunOptions {
        devices: Some(300),
        seed: Some(3),
        ..RunOptions::default()
    };
    let (collected, metrics, summary) = simulate(&scenario, &options, &mut |_| {}).unwrap();
    assert!(summary.failovers > 0);
    let out = tempfile::tempdir().unwrap();
    ferrosim_sim::report::write(out.path(), &summary, &metrics, &collected).unwrap();
    let page = out.path().join("report.html");

    let profile = tempfile::tempdir().unwrap();
    tokio::time::timeout(TEST_TIMEOUT, browse(&browser, profile.path(), &page))
        .await
        .expect("the browser part finishes within its time limit");
}

/// Opens the report in headless Chromium and checks what it shows.
async fn browse(browser: &Browser, profile: &Path, page: &Path) {
    let driver = browser.open(profile, &[]).await;
    driver.navigate(&format!("file://{}", page.display())).await;
    assert_eq!(
        driver.script("return document.title").await,
        json!("ferrosim simulate outage")
    );
    let svgs = driver
        .script("return document.querySelectorAll('div.chart svg').length")
        .await;
    assert_eq!(svgs, json!(6), "every chart is drawn");
    let text = driver.script("return document.body.innerText").await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("activation success within 60 s")
    );
    let errors = driver.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    driver.quit().await;
}
