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
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_testkit::{CallbackSink, TestSmdp, TestSmdpOptions};
use serde_json::{Value, json};

mod common;

/// Headless flags that work in containers and CI.
const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            let name = candidates.first()?.rsplit('/').next()?;
            let out = Command::new("which").arg(name).output().ok()?;
            let path = String::from_utf8(out.stdout).ok()?;
            let path = path.trim();
            (!path.is_empty()).then(|| PathBuf::from(path))
        })
}

/// chromedriver, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start(chromedriver: &PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            session: None,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = match &self.session {
            Some(s) => format!("{}/session/{s}{path}", self.url),
            None => format!("{}{path}", self.url),
        };
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn new_session(&mut self, chromium: &PathBuf, profile: &std::path::Path) {
        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("--window-size=1400,2400".to_owned());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        self.session = Some(v["sessionId"].as_str().unwrap().to_owned());
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.script(script).await;
            if !v.is_null() && v != false {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Browser console entries at level SEVERE (errors) since the last call.
    async fn console_errors(&self) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

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
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find(&["/usr/bin/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        if std::env::var("FERROSIM_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("chromium or chromedriver not found: skipped (FERROSIM_SKIP_CHROMIUM=1)");
            return;
        }
        panic!(
            "chromium or chromedriver not found: install Debian's `chromium` and `chromium-driver`, \
             or set FERROSIM_SKIP_CHROMIUM=1"
        );
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
    let mut driver = Driver::start(&chromedriver).await;
    driver.new_session(&chromium, profile.path()).await;
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": format!("{}/dashboard", smdp.base_url())})),
        )
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

    let errors = driver.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");

    // The screenshot, kept as a test artifact.
    let png = driver.call(reqwest::Method::GET, "/screenshot", None).await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("dashboard screenshot: {}", path.display());
    driver.call(reqwest::Method::DELETE, "", None).await;
}
