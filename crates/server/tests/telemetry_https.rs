//! Telemetry of a running SM-DP+ over loopback HTTPS: real downloads (ES2+
//! orders, the LPA with virtual eUICCs), then `/metrics` is scraped and its
//! numbers checked against what happened; the events recorded in the
//! database are checked against the same downloads; `promtool check
//! metrics` accepts the exposition (FERROSIM_SKIP_PROMTOOL=1 allows promtool
//! to be missing); the dashboard's API answers garbage with clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;
use std::time::Duration;

use ferrosim_lpa::es9::https::{HttpsEs9Client, HttpsOptions, TlsTrust};
use ferrosim_saip::Iccid;
use ferrosim_server::telemetry::activation_id;
use ferrosim_telemetry::{
    EuiccOutcome, EventKind, EventQuery, Function, StepStatus, TelemetryStore,
};
use ferrosim_testkit::{CallbackSink, TestSmdp, TestSmdpOptions};

mod common;

/// Downloads the order of `matching_id` on `device`; with `enable`, then
/// enables the profile and sends the eUICC's enable notification.
async fn download(
    smdp: &TestSmdp,
    es9: &HttpsEs9Client,
    device: usize,
    matching_id: &str,
    enable: bool,
) -> bool {
    let Some(report) = common::activate(smdp, es9, device, matching_id, enable).await else {
        return false;
    };
    if let Some(report) = report {
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.delivered.len(), 1);
    }
    true
}

/// The value of the sample `name{labels}` in an exposition, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn calls(text: &str, function: &str, status: &str) -> f64 {
    let iface = if function.starts_with("download") || function.starts_with("confirm") {
        "es2plus"
    } else {
        "es9plus"
    };
    sample(
        text,
        &format!(
            r#"ferrosim_function_calls_total{{interface="{iface}",function="{function}",status="{status}"}}"#
        ),
    )
    .unwrap_or(0.0)
}

/// `/metrics` as Prometheus asks for it (OpenMetrics), or as `curl` and
/// `promtool` take it (the Prometheus text format).
async fn scrape_as(smdp: &TestSmdp, openmetrics: bool) -> String {
    let mut req = smdp
        .https_client()
        .get(format!("{}/metrics", smdp.base_url()));
    if openmetrics {
        req = req.header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        );
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let kind = resp.headers()["content-type"].to_str().unwrap().to_owned();
    if openmetrics {
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    } else {
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    }
    resp.text().await.unwrap()
}

async fn scrape(smdp: &TestSmdp) -> String {
    scrape_as(smdp, true).await
}

#[tokio::test]
async fn metrics_and_events_after_real_downloads() {
    let sink = CallbackSink::start().await.unwrap();
    let smdp = TestSmdp::start(TestSmdpOptions {
        euiccs: 3,
        profiles: 4,
        callback_url: Some(sink.url.clone()),
        telemetry: true,
        ..TestSmdpOptions::default()
    })
    .await
    .unwrap();
    let telemetry = smdp.telemetry.clone().unwrap();
    let roots = TlsTrust::roots_from_bytes(smdp.ci_pem().as_bytes()).unwrap();
    let es9 = HttpsEs9Client::new(&HttpsOptions::new(TlsTrust::Roots(roots))).unwrap();
    let eids = smdp.pki.eids();

    // Devices 0 and 1 download the orders made for them; device 0 enables
    // its profile (and tells the SM-DP+ with the enable notification).
    let mut orders = Vec::new();
    for (device, eid) in eids.iter().enumerate().take(2) {
        let (iccid, mid) = smdp.order(Some(&eid.to_string()), None).await.unwrap();
        assert!(download(&smdp, &es9, device, &mid, device == 0).await);
        orders.push(iccid);
    }
    // Device 2 tries an order linked to device 0: refused at the
    // eligibility check (8.1.1/3.8), which the outbox ties to the order.
    let (refused_iccid, refused_mid) = smdp.order(Some(&eids[0].to_string()), None).await.unwrap();
    assert!(!download(&smdp, &es9, 2, &refused_mid, false).await);
    // Device 2 tries a matching id that names no order (8.2.6/3.8): a call
    // of no order, counted per function only.
    assert!(!download(&smdp, &es9, 2, "NO-SUCH-ORDER", false).await);

    // Eligibility, download and installation per success, device 0's
    // enable notification (point 5), and the refusal.
    assert!(
        sink.wait_for(Duration::from_secs(20), |v| v.len() >= 8)
            .await,
        "callbacks: {}",
        sink.received().len()
    );
    telemetry.flush().await;

    // The outbox gauge is set once a second: wait for it to see the
    // delivered outbox.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&smdp).await;
        if sample(&text, "ferrosim_callback_outbox_backlog") == Some(0.0) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog never 0:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Per function and status.
    assert_eq!(calls(&text, "initiateAuthentication", "ok"), 4.0, "{text}");
    assert_eq!(calls(&text, "authenticateClient", "ok"), 2.0);
    assert_eq!(calls(&text, "authenticateClient", "8.1.1/3.8"), 1.0);
    assert_eq!(calls(&text, "authenticateClient", "8.2.6/3.8"), 1.0);
    assert_eq!(calls(&text, "getBoundProfilePackage", "ok"), 2.0);
    assert_eq!(
        calls(&text, "handleNotification", "ok"),
        3.0,
        "2 results, 1 enable"
    );
    assert_eq!(
        sample(&text, r#"ferrosim_telemetry_events_total{kind="profile"}"#),
        Some(1.0)
    );
    assert_eq!(calls(&text, "downloadOrder", "ok"), 3.0);
    assert_eq!(calls(&text, "confirmOrder", "ok"), 3.0);
    let cancels: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"ferrosim_function_calls_total{interface="es9plus",function="cancelSession""#,
            )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(cancels, 2.0, "the LPA cancels both failed sessions");
    assert_eq!(
        sample(
            &text,
            r#"ferrosim_function_duration_seconds_count{interface="es9plus",function="getBoundProfilePackage"}"#
        ),
        Some(2.0)
    );

    // Activation time: two successes, both within the 60 s bucket.
    let labels = r#"kind="order_download",carrier="sandbox-operator""#;
    assert_eq!(
        sample(
            &text,
            &format!("ferrosim_activation_duration_seconds_count{{{labels}}}")
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ferrosim_activation_duration_seconds_bucket{{le="60.0",{labels}}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"ferrosim_activations_total{{{labels},outcome="success"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"ferrosim_euicc_results_total{result="installed",stage="none"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"ferrosim_telemetry_events_dropped_total{reason="queue_full"}"#
        )
        .unwrap_or(0.0),
        0.0
    );

    // No device or profile identifier in any label.
    for eid in &eids {
        assert!(!text.contains(&eid.to_string()));
    }
    for iccid in orders.iter().chain([&refused_iccid]) {
        assert!(!text.contains(iccid.as_str()));
    }

    // The events in the database (the telemetry's own, beside the SM-DP+'s:
    // none in the SM-DP+'s): each successful order is one activation with
    // its four ES9+ steps and the installation.
    let own = smdp.telemetry_store.as_ref().unwrap_or(&smdp.store);
    let store = own.telemetry(telemetry.dictionary().clone());
    if smdp.telemetry_store.is_some() {
        assert!(
            smdp.store
                .telemetry(telemetry.dictionary().clone())
                .query(&EventQuery::all())
                .await
                .unwrap()
                .is_empty()
        );
    }
    let mut bpp_total = 0u64;
    for (device, iccid) in orders.iter().enumerate() {
        let iccid = Iccid::new(iccid).unwrap();
        let timeline = store
            .timeline(activation_id(&iccid, &eids[device]))
            .await
            .unwrap();
        let functions: Vec<Function> = timeline
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Step {
                    function,
                    status: StepStatus::Ok,
                    bpp_bytes,
                    ..
                } => {
                    bpp_total += u64::from(bpp_bytes);
                    Some(function)
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            functions,
            [
                Function::Es9InitiateAuthentication,
                Function::Es9AuthenticateClient,
                Function::Es9GetBoundProfilePackage,
                Function::Es9HandleNotification,
            ],
            "{timeline:?}"
        );
        assert!(timeline.iter().any(|e| matches!(
            e.kind,
            EventKind::Euicc {
                outcome: EuiccOutcome::Installed,
                ..
            }
        )));
        assert!(timeline.iter().all(|e| e.device == eids[device]));
    }
    assert_eq!(
        sample(
            &text,
            r#"ferrosim_ota_bytes_total{interface="es9plus",kind="bpp"}"#
        ),
        Some(bpp_total as f64),
        "the BPP bytes counted are those recorded"
    );
    assert!(bpp_total > 10_000);
    let iccid = Iccid::new(&refused_iccid).unwrap();
    let refused = store
        .timeline(activation_id(&iccid, &eids[2]))
        .await
        .unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].device, eids[2]);
    assert_eq!(
        refused[0].kind,
        EventKind::Step {
            function: Function::Es9AuthenticateClient,
            status: StepStatus::Failed("8.1.1/3.8".parse().unwrap()),
            duration_ms: 0,
            signalling_bytes: 0,
            bpp_bytes: 0,
        }
    );
    // The enable: a step and a profile change of device 0, outside the
    // activation (a profile's life on the device is not its activation).
    let all = store.query(&EventQuery::all()).await.unwrap();
    let enables: Vec<_> = all.iter().filter(|e| e.activation.is_none()).collect();
    assert_eq!(enables.len(), 2, "{enables:?}");
    assert!(enables.iter().all(|e| e.device == eids[0]));
    assert!(matches!(
        enables[1].kind,
        EventKind::Profile {
            change: ferrosim_telemetry::ProfileChange::Enabled,
            ..
        }
    ));

    // promtool accepts the exposition in the Prometheus text format, which
    // has the same samples.
    let plain = scrape_as(&smdp, false).await;
    assert!(plain.contains("# TYPE ferrosim_function_calls_total counter"));
    promtool_check(&plain);

    // The dashboard's API: numbers from the same events, garbage refused.
    let http = smdp.https_client();
    let get = |path: &str| {
        let http = http.clone();
        let url = format!("{}{path}", smdp.base_url());
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, o) = get("/api/v1/telemetry/overview").await;
    assert_eq!(status, 200);
    let h = &o["headline"];
    assert_eq!(h["started"], 3, "{o}");
    assert_eq!(h["within_target"], 2);
    assert_eq!(h["failed"], 1);
    assert_eq!(h["downloads"], 2);
    assert_eq!(h["active_profiles"], 1, "device 0 enabled its profile");
    assert_eq!(h["downloaded_never_enabled"], 1);
    assert_eq!(h["bytes_per_active_profile"].as_f64(), h["bytes"].as_f64());
    assert_eq!(o["fleet"]["devices"], 3);
    for bad in [
        "/api/v1/telemetry/overview?window=abc",
        "/api/v1/telemetry/overview?window=5",
        "/api/v1/telemetry/series?buckets=0",
        "/api/v1/telemetry/failures?limit=-1",
        "/api/v1/telemetry/devices/12345/timeline",
        "/api/v1/telemetry/devices/89049032000000000000000000000000/timeline",
    ] {
        let (status, body) = get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    let (status, t) = get(&format!("/api/v1/telemetry/devices/{}/timeline", eids[0])).await;
    assert_eq!(status, 200);
    assert!(t["events"].as_array().unwrap().len() >= 5, "{t}");
    let missing = smdp
        .https_client()
        .get(format!("{}/dashboard/assets/nothing.js", smdp.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

fn promtool_check(text: &str) {
    use std::io::Write;
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        if std::env::var("FERROSIM_SKIP_PROMTOOL").as_deref() == Ok("1") {
            eprintln!("promtool not found: skipped (FERROSIM_SKIP_PROMTOOL=1)");
            return;
        }
        panic!(
            "promtool not found: install Debian's `prometheus` package, or set FERROSIM_SKIP_PROMTOOL=1"
        );
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the exposition:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
