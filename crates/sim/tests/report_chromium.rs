//! The simulation report opens in headless Chromium without console
//! errors and shows its charts: a small outage run, its `report.html`
//! loaded from disk over the W3C WebDriver protocol (chromedriver).
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`); without them the test fails, unless
//! FERROSIM_SKIP_CHROMIUM=1 says they may be missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrosim_sim::{RunOptions, Scenario, simulate};
use serde_json::{Value, json};

fn find(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        return Some(p);
    }
    let name = path.rsplit('/').next()?;
    let out = Command::new("which").arg(name).output().ok()?;
    let found = String::from_utf8(out.stdout).ok()?;
    let found = found.trim();
    (!found.is_empty()).then(|| PathBuf::from(found))
}

/// Every WebDriver request gives up after this long (a stuck browser fails
/// the test instead of hanging it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole browser part gives up after this long.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

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
    async fn start(chromedriver: &Path) -> Self {
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
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
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
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = resp.status();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }
}

#[tokio::test]
async fn report_opens_in_headless_chromium() {
    let (Some(chromium), Some(chromedriver)) =
        (find("/usr/bin/chromium"), find("/usr/bin/chromedriver"))
    else {
        if std::env::var("FERROSIM_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("chromium or chromedriver not found: skipped (FERROSIM_SKIP_CHROMIUM=1)");
            return;
        }
        panic!(
            "chromium or chromedriver not found: install Debian's `chromium` and `chromium-driver`, \
             or set FERROSIM_SKIP_CHROMIUM=1"
        );
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
    tokio::time::timeout(
        TEST_TIMEOUT,
        browse(&chromium, &chromedriver, profile.path(), &page),
    )
    .await
    .expect("the browser part finishes within its time limit");
}

/// Opens the report in headless Chromium and checks what it shows.
async fn browse(chromium: &Path, chromedriver: &Path, profile: &Path, page: &Path) {
    let mut driver = Driver::start(chromedriver).await;
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": chromium, "args": args},
        "goog:loggingPrefs": {"browser": "ALL"},
    }}});
    let v = driver
        .call(reqwest::Method::POST, "/session", Some(caps))
        .await;
    driver.session = Some(v["sessionId"].as_str().unwrap().to_owned());
    driver
        .call(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": format!("file://{}", page.display())})),
        )
        .await;
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
    let log = driver
        .call(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        )
        .await;
    let errors: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    driver.call(reqwest::Method::DELETE, "", None).await;
}
