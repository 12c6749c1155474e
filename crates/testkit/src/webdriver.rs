//! Headless Chromium driven over the W3C WebDriver protocol (chromedriver),
//! for the tests that open ferrosim's HTML pages (the live dashboard, the
//! simulation report) and check what a browser really shows.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them
//! [`Browser::find_or_skip`] panics with an install hint, unless
//! `FERROSIM_SKIP_CHROMIUM=1` says they may be missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helper: a failed step is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

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

/// Every WebDriver request gives up after this long, so a stuck browser
/// fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Driver::wait_for`] and chromedriver's start-up may take.
const WAIT: Duration = Duration::from_secs(30);

/// The Chromium and chromedriver executables found on this machine.
pub struct Browser {
    /// The browser binary.
    pub chromium: PathBuf,
    /// The WebDriver server for it.
    pub chromedriver: PathBuf,
}

impl Browser {
    /// Finds both executables, or returns `None` when they are missing and
    /// `FERROSIM_SKIP_CHROMIUM=1` allows it (the caller then skips).
    ///
    /// # Panics
    /// When they are missing and no skip variable is set.
    pub fn find_or_skip() -> Option<Self> {
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let chromedriver = find(&["/usr/bin/chromedriver"]);
        if let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) {
            return Some(Self {
                chromium,
                chromedriver,
            });
        }
        if std::env::var("FERROSIM_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("chromium or chromedriver not found: skipped (FERROSIM_SKIP_CHROMIUM=1)");
            return None;
        }
        panic!(
            "chromium or chromedriver not found: install Debian's `chromium` and `chromium-driver`, \
             or set FERROSIM_SKIP_CHROMIUM=1"
        );
    }

    /// Starts chromedriver and opens a browser session with its own
    /// profile directory and the given extra Chromium arguments
    /// (e.g. `--window-size=1400,2400`). Certificates the test PKI issued
    /// are accepted.
    pub async fn open(&self, profile: &Path, extra_args: &[&str]) -> Driver {
        let mut driver = Driver::start(&self.chromedriver).await;
        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra_args.iter().map(|s| (*s).to_owned()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": self.chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = driver
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        driver.session = Some(v["sessionId"].as_str().unwrap().to_owned());
        driver
    }
}

/// The first candidate path that exists, else the first candidate's file
/// name looked up on `PATH`.
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

/// A running chromedriver with (after [`Browser::open`]) one session;
/// the process is killed when dropped.
pub struct Driver {
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
        let deadline = tokio::time::Instant::now() + WAIT;
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

    /// One WebDriver command (relative to the session once there is one);
    /// returns its `value`.
    ///
    /// # Panics
    /// When the request fails or WebDriver answers with an error.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    /// Loads `url` in the session's window.
    pub async fn navigate(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Runs a synchronous script in the page and returns its result.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Re-runs `script` until it returns something other than null or
    /// false, and returns that.
    ///
    /// # Panics
    /// After 30 s, naming `what` never happened.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
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
    pub async fn console_errors(&self) -> Vec<String> {
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

    /// A PNG screenshot of the window.
    pub async fn screenshot_png(&self) -> Vec<u8> {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    }

    /// Ends the session (closes the browser).
    pub async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", None).await;
        self.session = None;
    }
}
