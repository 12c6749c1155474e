//! `ferrosim simulate <scenario> --target`: the festival's phones against
//! a running `ferrosim serve` over real HTTPS (its ES2+ for the orders,
//! its ES9+ for the downloads), and the full-fidelity report; and every
//! argument of the mode fed garbage: a clear refusal, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use ferrosim_pki::{TestPki, TestPkiOptions};
use ferrosim_store::{SqlStore, StoreOptions};
use ferrosim_testkit::cli::{ferrosim_command, output_text};
use ferrosim_testkit::operator::SlowCallbackEndpoint;
use ferrosim_testkit::serve::ServeCommand;
use ferrosim_testkit::{OPERATOR, PROFILE_TYPE, audit};
use serde_json::Value;

use common::{FERROSIM, seed, simulate_json, spawn};

/// Phones of the run (and profiles in the SM-DP+'s stock).
const PHONES: u64 = 20;

fn simulate(args: &[&str]) -> Output {
    ferrosim_command(FERROSIM)
        .arg("simulate")
        .args(args)
        .env_remove("FERROSIM_ES2_TOKEN")
        .output()
        .expect("running ferrosim simulate")
}

fn pki(dir: &Path) -> TestPki {
    let pki = TestPki::generate(&TestPkiOptions {
        euicc_count: 1,
        smdp_address: "localhost".into(),
        ..TestPkiOptions::default()
    })
    .unwrap();
    pki.write_to(dir).unwrap();
    pki
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn festival_phones_download_from_serve_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let pki_dir = dir.path().join("pki");
    let ci_pem = pki(&pki_dir).ci.certificate_pem();
    let url = format!("sqlite:{}", data_dir.join("ferrosim.db").display());
    let sink = SlowCallbackEndpoint::start(Duration::ZERO).await.unwrap();
    let token = seed(&url, &sink.url, PHONES).await;
    let server = spawn(
        ServeCommand::new(FERROSIM)
            .data_dir(&data_dir)
            .pki_dir(&pki_dir),
    )
    .await;
    server
        .wait_healthy(&ci_pem, Duration::from_secs(30))
        .await
        .unwrap();
    let target = format!("https://{}", server.smdp_address());
    let out_dir = dir.path().join("report");
    let args = [
        "festival",
        "--target",
        &target,
        "--pki",
        pki_dir.to_str().unwrap(),
        "--operator",
        OPERATOR,
        "--token",
        &token,
        "--profile-type",
        PROFILE_TYPE,
        "--devices",
        "20",
        // The festival's four hours in under two seconds; a seed whose
        // phones register at their first attempt (a modem failure costs
        // T3410, 15 real seconds: a slower test, not a failing one).
        "--time-scale",
        "10000",
        "--seed",
        "3",
        "--max-duration",
        "120",
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
    ]
    .map(str::to_owned);
    let summary = simulate_json(args.to_vec()).await;

    // Every phone's order was placed at the SM-DP+, downloaded, installed
    // and enabled, as the SM-DP+'s own store records it.
    let store = SqlStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    let orders = audit::orders(&store).await.unwrap();
    store.close().await;
    // The phones whose scan falls inside the festival's four hours (a
    // late arrival may scan after the end).
    let ff = &summary["full_fidelity"];
    let scheduled = ff["scheduled"].as_u64().unwrap();
    assert!(scheduled >= PHONES - 2, "{summary}");
    assert_eq!(orders.len() as u64, scheduled, "{orders:?}");
    for order in orders.values() {
        assert_eq!(order.state, "installed", "{order:?}");
        assert_eq!(order.download_attempts, 1, "{order:?}");
        let eid = order.eid.as_deref().expect("the EID that downloaded it");
        assert!(eid.starts_with("89049032"), "{eid}");
    }
    let eids: std::collections::BTreeSet<_> = orders.values().map(|o| o.eid.clone()).collect();
    assert_eq!(eids.len() as u64, scheduled, "one phone per order");

    // The summary counts what the SM-DP+ saw.
    assert_eq!(summary["scenario"], "festival");
    assert_eq!(summary["devices"], PHONES);
    assert_eq!(summary["downloads"], scheduled, "{summary}");
    assert_eq!(
        summary["download_failures"],
        serde_json::json!({}),
        "{summary}"
    );
    assert_eq!(summary["download_completion_s"]["count"], scheduled);
    assert_eq!(summary["activations"][0], scheduled, "activations started");
    assert!(
        summary["activation_success_within_60s"].is_number(),
        "{summary}"
    );
    assert!(summary["bytes_per_active_profile"].as_f64().unwrap() > 0.0);
    assert_eq!(ff["target"], target.as_str());
    assert_eq!(ff["loopback"], true);
    assert_eq!(ff["profile_type"], PROFILE_TYPE);
    assert_eq!(ff["orders"], scheduled);
    assert_eq!(ff["orders_failed"], serde_json::json!({}));
    assert!(ff["orders_throttled"].is_u64(), "{ff}");
    assert_eq!(ff["started"], scheduled);
    assert_eq!(ff["not_started"], 0);
    assert_eq!(ff["cut_off"], 0);
    assert_eq!(ff["iot_not_run"], 0);
    assert_eq!(ff["download_retries"], 0);
    assert_eq!(ff["notifications_undelivered"], 0);
    // Four ES9+ calls a download and the enable notification, all ok.
    let calls = &ff["es9_calls"];
    for (function, n) in [
        ("es9plus.initiateAuthentication", scheduled),
        ("es9plus.authenticateClient", scheduled),
        ("es9plus.getBoundProfilePackage", scheduled),
        ("es9plus.handleNotification", 2 * scheduled),
    ] {
        assert_eq!(calls[function]["calls"], n, "{function}: {calls}");
        assert_eq!(calls[function]["failed"], 0, "{function}: {calls}");
    }
    assert!(ff["injected_delay_s"].as_f64().unwrap() > 0.0, "{ff}");

    // The report files: JSON with the same summary, CSV, HTML marked.
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["full_fidelity"]["orders"], scheduled);
    assert_eq!(report["summary"]["downloads"], scheduled);
    let registered = ff["registered"].as_u64().unwrap();
    let series = report["series"].as_array().unwrap();
    let attached_at_end = series.last().unwrap()["attached"][0].as_u64().unwrap();
    assert_eq!(attached_at_end, registered, "{series:?}");
    assert!(
        std::fs::read_to_string(out_dir.join("series.csv"))
            .unwrap()
            .starts_with("start_s,")
    );
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains(&format!("full-fidelity against {target}")),
        "{html}"
    );
    assert!(!html.contains("Signature work"));
    browse(&out_dir.join("report.html"), &target).await;
}

/// The full-fidelity report opens in headless Chromium without console
/// errors and shows its charts and the target (skipped, as the
/// simulator's report test, where FERROSIM_SKIP_CHROMIUM=1 allows it).
async fn browse(page: &Path, target: &str) {
    let Some(browser) = ferrosim_testkit::webdriver::Browser::find_or_skip() else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    tokio::time::timeout(Duration::from_secs(120), async {
        let driver = browser.open(profile.path(), &[]).await;
        driver.navigate(&format!("file://{}", page.display())).await;
        assert_eq!(
            driver.script("return document.title").await,
            serde_json::json!("ferrosim simulate festival")
        );
        let svgs = driver
            .script("return document.querySelectorAll('div.chart svg').length")
            .await;
        assert_eq!(svgs, serde_json::json!(6), "every chart is drawn");
        let text = driver.script("return document.body.innerText").await;
        let text = text.as_str().unwrap();
        assert!(
            text.contains(&format!("full-fidelity against {target}")),
            "{text}"
        );
        assert!(text.contains("es9plus.getBoundProfilePackage"), "{text}");
        let errors = driver.console_errors().await;
        assert!(errors.is_empty(), "console errors: {errors:?}");
        driver.quit().await;
    })
    .await
    .expect("the browser part finishes within its time limit");
}

#[test]
fn garbage_arguments_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pki_dir = dir.path().join("pki");
    pki(&pki_dir);
    let pki_arg = pki_dir.to_str().unwrap().to_owned();
    // Nothing listens on this port (bound, then released).
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = format!("https://127.0.0.1:{}", free.port());
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "festival",
            "--target",
            &target,
            "--pki",
            &pki_arg,
            "--operator",
            "op",
            "--token",
            "t",
            "--out",
            out,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let refused = |args: Vec<String>, expected: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = simulate(&args);
        let text = output_text(&run);
        assert!(!run.status.success(), "{args:?} succeeded: {text}");
        assert!(!text.contains("panicked"), "{args:?} panicked: {text}");
        assert!(
            text.contains(expected),
            "{args:?}: expected `{expected}` in: {text}"
        );
    };
    let with_target = |t: &str, extra: &[&str]| {
        let mut v = base(extra);
        v[2] = t.to_owned();
        v
    };
    refused(
        with_target("http://127.0.0.1:8443", &[]),
        "must start with https://",
    );
    refused(
        with_target("https://127.0.0.1:0", &[]),
        "port must be 1..=65535",
    );
    refused(
        with_target("https://127.0.0.1:8443/x", &[]),
        "without a path",
    );
    refused(with_target("https://10.1.2.3:8443", &[]), "--allow-remote");
    refused(with_target("https://bad host", &[]), "--target");
    refused(base(&["--devices", "0"]), "--devices must be 1..=10000");
    refused(base(&["--devices", "10001"]), "--devices must be 1..=10000");
    refused(base(&["--devices", "lots"]), "invalid value");
    refused(base(&["--time-scale", "0"]), "--time-scale must be above 0");
    refused(base(&["--time-scale=-3"]), "--time-scale must be above 0");
    refused(
        base(&["--time-scale", "NaN"]),
        "--time-scale must be above 0",
    );
    refused(
        base(&["--time-scale", "inf"]),
        "--time-scale must be above 0",
    );
    refused(base(&["--time-scale", "fast"]), "invalid value");
    refused(base(&["--max-duration", "0"]), "invalid value");
    refused(base(&["--max-duration", "3601"]), "invalid value");
    refused(base(&["--concurrency", "0"]), "invalid value");
    refused(base(&["--concurrency", "1025"]), "invalid value");
    refused(base(&["--shards", "4"]), "cannot be used with");
    refused(vec!["festival".into(), "--allow-remote".into()], "--target");
    let mut no_pki = base(&[]);
    no_pki.drain(3..5);
    refused(no_pki, "--target needs --pki");
    let mut no_token = base(&[]);
    no_token.drain(7..9);
    refused(no_token, "--target needs --token");
    let mut no_operator = base(&[]);
    no_operator.drain(5..7);
    refused(no_operator, "--target needs --operator");
    let mut bad_pki = base(&[]);
    bad_pki[4] = dir.path().join("nowhere").to_str().unwrap().to_owned();
    refused(bad_pki, "--pki");
    refused(base(&["--ca", "/nonexistent/ca.pem"]), "--ca: cannot read");
    // An IoT scenario runs against the target's eIM and fleet: it needs
    // their API token (simulate_https_iot.rs runs it).
    let mut iot = base(&[]);
    iot[0] = "outage".into();
    refused(iot, "--api-token");
    // A loopback target where nothing listens: every order fails, said so.
    refused(base(&["--devices", "3"]), "no ES2+ order could be placed");
}
